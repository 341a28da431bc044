//! The dashboard's forms, over real HTTP on both databases: every `POST` route of the pages
//! is declared in `permissions::FORMS`, answers as its declared guard says for every kind
//! of reader, needs the session's CSRF token and this site's `Origin`, and a `POST` to a
//! route declared nowhere is refused in the reader's language.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use aiops::approvals::LinkSigner;
use aiops::model::{
    ApprovalKind, ApprovalLinks, ApprovalRequestMirror, Preferences, ProjectRole, SessionMethod,
};
use aiops::permissions::{FORMS, FormGuard, Permission};
use aiops::users::{self, UserSpec};
use common::pages::{client, seed, seed_deliveries_and_dead_letters};
use common::pipeline::create_task;
use common::{Db, TestApp};
use reqwest::StatusCode;

/// The password of the user who signs in through the sign-in form.
const PASSWORD: &str = "a long enough phrase";

/// The members of the preset the team forms make.
const DOCS_MEMBERS: &str = "leader | contextualizing | Gather the context and drive the phases
scribe | executing | Write the docs the task asks for
checker | reviewing | Check the docs against the code";

/// Who posts a form in the matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    SignedOut,
    Viewer,
    Operator,
    MaintainerOfOther,
    Approver,
    Maintainer,
    Admin,
}

impl Who {
    const ALL: [Who; 7] = [
        Who::SignedOut,
        Who::Viewer,
        Who::Operator,
        Who::MaintainerOfOther,
        Who::Approver,
        Who::Maintainer,
        Who::Admin,
    ];

    /// The user's login, their role and the project it is held in.
    fn member(self) -> Option<(&'static str, ProjectRole, &'static str)> {
        match self {
            Who::SignedOut | Who::Admin => None,
            Who::Viewer => Some(("vera", ProjectRole::Viewer, "shop")),
            Who::Operator => Some(("otto", ProjectRole::Operator, "shop")),
            Who::MaintainerOfOther => Some(("olaf", ProjectRole::Maintainer, "other")),
            Who::Approver => Some(("anna", ProjectRole::Approver, "shop")),
            Who::Maintainer => Some(("mia", ProjectRole::Maintainer, "shop")),
        }
    }

    fn login(self) -> Option<&'static str> {
        match self {
            Who::SignedOut => None,
            Who::Admin => Some("admin"),
            other => other.member().map(|(login, _, _)| login),
        }
    }
}

/// What a form touches: project `shop`, some project (the team presets), or every project
/// (the admin's forms, a delivery that made no task).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Shop,
    Any,
    Every,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Sent to the sign-in page; nothing happens.
    SignIn,
    Forbidden,
    Allowed,
}

/// The project role a permission needs, written out here apart from the code under test
/// (None: the admin role; `SignedIn` needs none).
fn needs(permission: Permission) -> Option<ProjectRole> {
    match permission {
        Permission::SignedIn | Permission::Read => Some(ProjectRole::Viewer),
        Permission::Operate => Some(ProjectRole::Operator),
        Permission::Decide => Some(ProjectRole::Approver),
        Permission::Maintain => Some(ProjectRole::Maintainer),
        Permission::Admin => None,
    }
}

fn expected(who: Who, guard: FormGuard, target: Target) -> Expect {
    let permission = match guard {
        FormGuard::Public | FormGuard::SignedLink => return Expect::Allowed,
        _ if who == Who::SignedOut => return Expect::SignIn,
        FormGuard::OwnSession => return Expect::Allowed,
        FormGuard::Session(permission) => permission,
    };
    if who == Who::Admin || permission == Permission::SignedIn {
        return Expect::Allowed;
    }
    let (_, held, project) = who.member().expect("a member");
    let allowed = needs(permission).is_some_and(|needed| {
        held >= needed
            && match target {
                Target::Shop => project == "shop",
                Target::Any => true,
                Target::Every => false,
            }
    });
    if allowed {
        Expect::Allowed
    } else {
        Expect::Forbidden
    }
}

/// The ids the forms act on.
struct Fixtures {
    /// A queued task of `shop`, cancelled and retried.
    task: i64,
    /// A pending approval of `shop`, decided in the inbox.
    approval: i64,
    /// The signed link of another pending approval of `shop` (links alone decide there).
    link: String,
    /// A dead letter of `shop`'s channel.
    notification: i64,
    /// A GitHub delivery that made a task of `shop`.
    delivery: i64,
}

/// A pending result approval of a new queued task of `shop`.
async fn pending_approval(app: &TestApp, prompt: &str) -> i64 {
    let task = create_task(app, "shop", prompt, "normal").await;
    let mirror = ApprovalRequestMirror {
        request_id: format!("req-{task}"),
        kind: ApprovalKind::Result,
        risk_level: None,
        tool_name: None,
        tool_input: None,
        summary: Some("ship it".into()),
        diff_stat: None,
        file_status: "pending".into(),
        file_decision: None,
        requested_at: chrono::Utc::now(),
    };
    app.store.upsert_approval(task, &mirror).await.unwrap();
    app.store.approvals(task).await.unwrap()[0].id
}

/// The two seeded projects with their parts, a member for each kind of reader, a user who
/// signs in with a password, and what the forms act on.
async fn fixtures(app: &TestApp) -> Fixtures {
    seed(app).await;
    let notification = seed_deliveries_and_dead_letters(app).await;
    let deliveries = app.get_json("/api/v1/deliveries").await;
    let delivery = deliveries["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["outcome"] == "task_created")
        .unwrap_or_else(|| panic!("a delivery that made a task: {deliveries}"))["id"]
        .as_i64()
        .unwrap();
    for who in Who::ALL {
        if let Some((login, role, project)) = who.member() {
            let spec = UserSpec {
                login: login.into(),
                ..UserSpec::default()
            };
            users::add(&app.store, &spec).await.unwrap();
            users::grant(&app.store, login, Some(project), role)
                .await
                .unwrap();
        }
    }
    for (login, password) in [("zed", None), ("sally", Some(PASSWORD.to_string()))] {
        let spec = UserSpec {
            login: login.into(),
            password,
            ..UserSpec::default()
        };
        users::add(&app.store, &spec).await.unwrap();
    }
    let task = create_task(app, "shop", "Cancel and retry me", "normal").await;
    let approval = pending_approval(app, "Decide me in the inbox").await;
    let linked = pending_approval(app, "Decide me through the link").await;
    // The admin asked for these tasks and is among those who may decide them.
    let policy = serde_json::json!({"approval_policy": {"self_approval": true}});
    let response = app
        .req(reqwest::Method::PATCH, "/api/v1/projects/shop")
        .json(&policy)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let shop = app.store.project("shop").await.unwrap().id;
    app.store
        .set_approval_links(shop, ApprovalLinks::Link)
        .await
        .unwrap();
    let expires = chrono::Utc::now() + chrono::Duration::hours(1);
    let link = LinkSigner::new(&app.vault).token(linked, expires);
    Fixtures {
        task,
        approval,
        link,
        notification,
        delivery,
    }
}

/// The app (GitHub issues make tasks, no retry of a dead letter on its own) and its
/// fixtures.
async fn forms_app(db: Db) -> (TestApp, Fixtures) {
    let app = TestApp::spawn_with(db, |c| {
        c.github.reply = false;
        c.github.on_issue_opened = true;
        c.notify.backoff_ms = 3_600_000;
    })
    .await;
    let fx = fixtures(&app).await;
    (app, fx)
}

/// The CSRF token a form carries: the session's, or a double-submit pair of a cookie of
/// this name and the same value in the field (the sign-in form, a link's form).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Csrf {
    Session,
    DoubleSubmit(&'static str),
}

/// A form as the matrix posts it.
struct Posting {
    url: String,
    fields: Vec<(&'static str, String)>,
    target: Target,
    csrf: Csrf,
}

/// The form the matrix posts for route `route`; None for a route this test does not know
/// yet (which fails it).
fn posting_for(route: &str, fx: &Fixtures, n: usize) -> Option<Posting> {
    let session = |url: String, fields: &[(&'static str, &str)], target| Posting {
        url,
        fields: fields.iter().map(|(k, v)| (*k, v.to_string())).collect(),
        target,
        csrf: Csrf::Session,
    };
    let name = format!("made-{n}-{}", common::uuid_like());
    let posting = match route {
        "/tasks" => session(
            route.into(),
            &[("project", "shop"), ("prompt", "One more")],
            Target::Shop,
        ),
        "/tasks/{id}/cancel" | "/tasks/{id}/retry" => session(
            route.replace("{id}", &fx.task.to_string()),
            &[],
            Target::Shop,
        ),
        "/inbox/{id}" => session(
            format!("/inbox/{}", fx.approval),
            &[("decision", "approve"), ("comment", "")],
            Target::Shop,
        ),
        // Empty settings are refused at their field (422), past the guard.
        "/projects/{name}" => session("/projects/shop".into(), &[], Target::Shop),
        // A credential and a channel made by those allowed; unknown ones deleted (404), past
        // the guard.
        "/projects/{name}/credentials" => session(
            "/projects/shop/credentials".into(),
            &[("name", &name), ("kind", "token"), ("value", "not-shown")],
            Target::Shop,
        ),
        "/projects/{name}/channels" => session(
            "/projects/shop/channels".into(),
            &[
                ("kind", "slack"),
                ("credential", &name),
                ("event_task_failed", "on"),
            ],
            Target::Shop,
        ),
        "/projects/{name}/credentials/{id}/delete" | "/projects/{name}/channels/{id}/delete" => {
            session(
                route.replace("{name}", "shop").replace("{id}", "999999"),
                &[],
                Target::Shop,
            )
        }
        "/schedules/{name}/enabled" => session(
            "/schedules/shop-nightly/enabled".into(),
            &[("enabled", "true")],
            Target::Shop,
        ),
        "/schedules/{name}/run" => session("/schedules/shop-nightly/run".into(), &[], Target::Shop),
        "/deliveries/{id}/replay" => session(
            format!("/deliveries/{}/replay", fx.delivery),
            &[],
            Target::Shop,
        ),
        "/notifications/{id}/retry" => session(
            format!("/notifications/{}/retry", fx.notification),
            &[],
            Target::Shop,
        ),
        "/users/{login}/status" => session(
            "/users/zed/status".into(),
            &[("status", "active")],
            Target::Every,
        ),
        "/users/{login}/sign-out" => session("/users/zed/sign-out".into(), &[], Target::Every),
        // A preset made by the first form, then edited, copied and deleted.
        "/teams" | "/teams/{name}" => session(
            route.replace("{name}", "docs"),
            &[
                ("name", "docs"),
                ("description", "Writes the docs"),
                ("keywords", "docs"),
                ("members", DOCS_MEMBERS),
            ],
            Target::Any,
        ),
        "/teams/{name}/copy" => session("/teams/docs/copy".into(), &[("name", &name)], Target::Any),
        "/teams/{name}/delete" => session("/teams/docs/delete".into(), &[], Target::Any),
        "/account" => session(
            "/account".into(),
            &[("language", "en"), ("time_zone", "UTC")],
            Target::Any,
        ),
        "/account/sessions/{id}/revoke" => {
            session("/account/sessions/999999/revoke".into(), &[], Target::Any)
        }
        "/account/link" => session("/account/link".into(), &[("code", "0.0.00")], Target::Any),
        // An unknown grant (404) and a consent for an unknown client (400), past the guard.
        "/account/apps/{id}/revoke" => {
            session("/account/apps/999999/revoke".into(), &[], Target::Any)
        }
        "/oauth/authorize" => session(
            "/oauth/authorize".into(),
            &[("client_id", "aiops-client-unknown"), ("decision", "allow")],
            Target::Any,
        ),
        "/tokens/{name}/revoke" => session(
            "/tokens/no-such-token/revoke".into(),
            &[("back", "/account")],
            Target::Any,
        ),
        "/sign-out" => session("/sign-out".into(), &[], Target::Any),
        "/approvals/{token}" => Posting {
            csrf: Csrf::DoubleSubmit("aiops_link_csrf"),
            ..session(
                format!("/approvals/{}", fx.link),
                &[("decision", "approve"), ("comment", "")],
                Target::Shop,
            )
        },
        "/sign-in" => Posting {
            csrf: Csrf::DoubleSubmit("aiops_sign_in_csrf"),
            ..session(
                "/sign-in".into(),
                &[("login", "sally"), ("password", PASSWORD), ("next", "")],
                Target::Any,
            )
        },
        _ => return None,
    };
    Some(posting)
}

/// A new sign-in session: its cookie's value and its CSRF token.
struct Session {
    secret: String,
    csrf: String,
}

/// A new session of `who` (None when signed out); each post gets its own, since signing
/// out ends one.
async fn session_of(app: &TestApp, who: Who) -> Option<Session> {
    let user = app.store.user(who.login()?).await.unwrap();
    let client = aiops::sessions::Client {
        addr: "127.0.0.1",
        user_agent: Some("forms"),
    };
    let started = aiops::sessions::start(
        &app.store,
        &app.config,
        user.id,
        SessionMethod::Password,
        client,
    )
    .await
    .unwrap();
    Some(Session {
        csrf: started.info.csrf_token.clone(),
        secret: started.secret,
    })
}

/// The token a reader's browser would put in `posting`'s form.
fn token_for(posting: &Posting, session: Option<&Session>) -> String {
    match (posting.csrf, session) {
        (Csrf::Session, Some(session)) => session.csrf.clone(),
        (Csrf::Session, None) => "no-session".into(),
        (Csrf::DoubleSubmit(_), _) => common::uuid_like(),
    }
}

/// POSTs `posting` as the holder of `session` with CSRF field `csrf` (None: left out) and
/// `origin`: the status and the redirect's target, if any.
async fn send(
    app: &TestApp,
    session: Option<&Session>,
    posting: &Posting,
    csrf: Option<&str>,
    origin: &str,
) -> (StatusCode, String) {
    let mut cookies = Vec::new();
    if let Some(session) = session {
        cookies.push(format!("{}={}", aiops::sessions::COOKIE, session.secret));
    }
    let mut fields = posting.fields.clone();
    if let Some(csrf) = csrf {
        fields.push(("csrf", csrf.to_string()));
        if let Csrf::DoubleSubmit(cookie) = posting.csrf {
            cookies.push(format!("{cookie}={csrf}"));
        }
    }
    let response = client()
        .post(app.url(&posting.url))
        .header("cookie", cookies.join("; "))
        .header("origin", origin)
        .form(&fields)
        .send()
        .await
        .unwrap();
    let location = response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    (response.status(), location)
}

/// The `POST` routes the pages' routers declare, read from `src/web/`: every
/// `.route("…", …)` whose handlers include a `post(…)`.
fn post_routes_of_the_pages() -> BTreeSet<String> {
    let mut routes = BTreeSet::new();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/web");
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for (start, _) in text.match_indices(".route(") {
            let call = balanced(&text[start + ".route".len()..]);
            let route = call.split('"').nth(1).expect("a route's path");
            if call.contains("post(") {
                routes.insert(route.to_string());
            }
        }
    }
    routes
}

/// The parenthesised text at the start of `text`, up to its closing parenthesis.
fn balanced(text: &str) -> &str {
    let mut depth = 0;
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' if depth == 1 => return &text[..=i],
            ')' => depth -= 1,
            _ => {}
        }
    }
    text
}

/// For every form `permissions::FORMS` declares and every kind of reader, the answer is
/// what the form's declared guard says: the sign-in page without a session, 403 without the
/// permission on the project the form touches, neither with it; and the table declares
/// exactly the `POST` routes the pages have.
async fn every_dashboard_form_answers_as_its_declared_guard(db: Db) {
    let declared: BTreeSet<String> = FORMS.iter().map(|(r, _)| r.to_string()).collect();
    assert_eq!(
        post_routes_of_the_pages(),
        declared,
        "permissions::FORMS declares every POST route of the pages, and only those"
    );
    let (app, fx) = forms_app(db).await;
    let mut checked = 0;
    for (n, (route, guard)) in FORMS.iter().enumerate() {
        let posting = posting_for(route, &fx, n)
            .unwrap_or_else(|| panic!("{route}: the matrix has no form for it"));
        let mut ordered: Vec<(Who, Expect)> = Who::ALL
            .iter()
            .map(|who| (*who, expected(*who, *guard, posting.target)))
            .collect();
        ordered.sort_by_key(|(_, expect)| *expect == Expect::Allowed);
        for (who, expect) in ordered {
            let session = session_of(&app, who).await;
            let csrf = token_for(&posting, session.as_ref());
            let (status, location) =
                send(&app, session.as_ref(), &posting, Some(&csrf), &app.base).await;
            let what = format!(
                "POST {route} as {who:?} ({guard:?} on {:?})",
                posting.target
            );
            match expect {
                Expect::SignIn => assert!(
                    status == StatusCode::SEE_OTHER && location.starts_with("/sign-in"),
                    "{what}: {status} to {location:?}"
                ),
                Expect::Forbidden => assert_eq!(status, StatusCode::FORBIDDEN, "{what}"),
                // Past the guard a form may still be refused by its use case (a field, an
                // unknown id, a decision already taken), never as a 401, 403 or 405.
                Expect::Allowed => assert!(
                    !matches!(status.as_u16(), 401 | 403 | 405),
                    "{what}: {status}"
                ),
            }
            assert!(!status.is_server_error(), "{what}: {status}");
            assert!(
                expect == Expect::SignIn || !location.starts_with("/sign-in?next="),
                "{what}: sent to sign in"
            );
            checked += 1;
        }
        if *guard == FormGuard::SignedLink {
            let tampered = Posting {
                url: format!("{}0", posting.url),
                ..posting
            };
            for who in Who::ALL {
                let session = session_of(&app, who).await;
                let csrf = token_for(&tampered, session.as_ref());
                let (status, _) =
                    send(&app, session.as_ref(), &tampered, Some(&csrf), &app.base).await;
                assert_eq!(status, StatusCode::FORBIDDEN, "a tampered link as {who:?}");
            }
        }
    }
    assert_eq!(checked, FORMS.len() * Who::ALL.len());
}

/// Every form of a session (its own things or a permission's) is refused (403) without the
/// session's CSRF token, with another token, or from another site, and goes past that check
/// with the token from this site.
async fn a_form_needs_the_sessions_csrf_token_and_this_sites_origin(db: Db) {
    let (app, fx) = forms_app(db).await;
    let mut checked = 0;
    for (n, (route, guard)) in FORMS.iter().enumerate() {
        if matches!(guard, FormGuard::Public | FormGuard::SignedLink) {
            continue;
        }
        let posting = posting_for(route, &fx, n)
            .unwrap_or_else(|| panic!("{route}: the matrix has no form for it"));
        let session = session_of(&app, Who::Admin).await.unwrap();
        let evil = "https://evil.example";
        for (case, csrf, origin) in [
            ("without a token", None, app.base.as_str()),
            ("with another token", Some("forged"), app.base.as_str()),
            ("from another site", Some(session.csrf.as_str()), evil),
        ] {
            let (status, _) = send(&app, Some(&session), &posting, csrf, origin).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "POST {route} {case}");
        }
        let (status, location) = send(
            &app,
            Some(&session),
            &posting,
            Some(&session.csrf),
            &app.base,
        )
        .await;
        assert!(
            !matches!(status.as_u16(), 401 | 403) && !location.starts_with("/sign-in?next="),
            "POST {route} with the token from this site: {status}"
        );
        checked += 1;
    }
    assert!(checked >= 15, "{checked} forms");
}

/// A `POST` to a route of the pages that declares no form (here, a page that is only read)
/// is refused with 403, saying so in the reader's language.
async fn a_post_to_an_undeclared_route_is_refused_in_the_readers_language(db: Db) {
    let app = TestApp::spawn(db).await;
    let session = session_of(&app, Who::Admin).await.unwrap();
    for (language, says) in [
        ("en", "This form is not declared"),
        ("ko", "선언되지 않은 양식"),
    ] {
        for path in ["/audit", "/sign-in/github"] {
            let response = client()
                .post(app.url(path))
                .header(
                    "cookie",
                    format!("{}={}", aiops::sessions::COOKIE, session.secret),
                )
                .header("accept-language", language)
                .form(&[("csrf", session.csrf.as_str())])
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::FORBIDDEN, "POST {path}");
            let body = response.text().await.unwrap();
            assert!(body.contains(says), "POST {path} in {language}: {body}");
        }
    }
    // A signed-in reader who chose Korean on /account reads Korean, whatever the browser
    // says.
    let admin = app.store.user("admin").await.unwrap();
    let korean = Preferences {
        language: Some("ko".into()),
        time_zone: None,
    };
    app.store.set_preferences(admin.id, &korean).await.unwrap();
    let response = client()
        .post(app.url("/audit"))
        .header(
            "cookie",
            format!("{}={}", aiops::sessions::COOKIE, session.secret),
        )
        .header("accept-language", "en")
        .form(&[("csrf", session.csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let body = response.text().await.unwrap();
    assert!(body.contains("선언되지 않은 양식"), "{body}");
}

on_both_databases!(
    every_dashboard_form_answers_as_its_declared_guard,
    a_form_needs_the_sessions_csrf_token_and_this_sites_origin,
    a_post_to_an_undeclared_route_is_refused_in_the_readers_language,
);

//! Signing in with GitHub (an OAuth App) and an OpenID Connect provider, over real HTTP on
//! both databases, against stand-in providers that speak the protocols and record what they
//! received (tests/common/providers.rs): state, PKCE, nonce and the ID token's signature each
//! refused when wrong; organisation and team restrictions; a first sign-in creating the user
//! or refused by policy; claims giving roles; every outcome audited, and no code, token or
//! secret in an answer or the audit log.

mod common;

use std::time::Duration;

use aiops::config::{ClaimRole, ClientSecretSource, Config, GithubSignIn, OidcSignIn};
use aiops::model::{ProjectRole, UserStatus};
use aiops::users::{self, UserSpec};
use common::providers::{CLIENT_ID, CLIENT_SECRET, Person, ProviderStandIn};
use common::{Db, TestApp};
use reqwest::StatusCode;
use serde_json::{Value, json};

const SECRET_CREDENTIAL: &str = "sign-in-client-secret";

/// A client that shows redirects instead of following them and keeps no cookies.
fn plain() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

fn secret_source() -> ClientSecretSource {
    ClientSecretSource {
        client_secret_env: String::new(),
        client_secret_credential: SECRET_CREDENTIAL.into(),
    }
}

fn github_config(provider: &ProviderStandIn) -> GithubSignIn {
    GithubSignIn {
        client_id: CLIENT_ID.into(),
        secret: secret_source(),
        web_url: provider.base.clone(),
        api_url: format!("{}/api", provider.base),
        allowed_orgs: Vec::new(),
        allowed_teams: Vec::new(),
        create_users: true,
    }
}

fn oidc_config(provider: &ProviderStandIn) -> OidcSignIn {
    OidcSignIn {
        name: "Stand-in SSO".into(),
        issuer_url: provider.base.clone(),
        client_id: CLIENT_ID.into(),
        secret: secret_source(),
        scopes: vec!["email".into(), "profile".into()],
        create_users: true,
        roles: Vec::new(),
    }
}

/// The app with the provider's client secret stored as a platform-only global credential.
async fn app_with(db: Db, adjust: impl FnOnce(&mut Config)) -> TestApp {
    let app = TestApp::spawn_with(db, adjust).await;
    let stored = app
        .post("/api/v1/credentials")
        .json(&json!({"name": SECRET_CREDENTIAL, "kind": "webhook_secret", "value": CLIENT_SECRET}))
        .send()
        .await
        .unwrap();
    assert_eq!(stored.status(), StatusCode::CREATED);
    app
}

fn ann() -> Person {
    Person {
        id: "Ann-Lee".into(),
        github_id: 583_231,
        name: "Ann Lee".into(),
        email: "ann@example.com".into(),
        email_verified: true,
        ..Person::default()
    }
}

/// The value of cookie `name` a response sets.
fn set_cookie(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| v[name.len() + 1..].split(';').next().unwrap().to_string())
}

fn location(response: &reqwest::Response) -> String {
    response.headers()["location"].to_str().unwrap().to_string()
}

fn param(url: &str, name: &str) -> String {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// A sign-in started at the app: the provider's authorize URL and the state cookie.
async fn start(app: &TestApp, provider: &str, next: &str) -> (String, String) {
    let response = plain()
        .get(app.url(&format!("/sign-in/{provider}?next={next}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER, "start {provider}");
    let cookie = set_cookie(&response, "aiops_sign_in_state").expect("a state cookie");
    (location(&response), cookie)
}

/// The provider's redirect back to the app: the callback URL with code and state.
async fn at_provider(authorize_url: &str) -> String {
    let response = plain().get(authorize_url).send().await.unwrap();
    assert_eq!(
        response.status(),
        StatusCode::FOUND,
        "the provider approves"
    );
    location(&response)
}

/// The browser arriving at the callback with (or without) the state cookie.
async fn back(callback_url: &str, cookie: Option<&str>) -> reqwest::Response {
    let mut request = plain().get(callback_url);
    if let Some(cookie) = cookie {
        request = request.header("Cookie", format!("aiops_sign_in_state={cookie}"));
    }
    request.send().await.unwrap()
}

/// A whole sign-in through `provider`: the callback's answer.
async fn sign_in_through(app: &TestApp, provider: &str) -> reqwest::Response {
    let (authorize_url, cookie) = start(app, provider, "/tasks").await;
    let callback = at_provider(&authorize_url).await;
    back(&callback, Some(&cookie)).await
}

/// A signed-in answer: the session cookie, after checking it goes to `/tasks`.
fn session_of(response: &reqwest::Response) -> String {
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(response), "/tasks");
    set_cookie(response, aiops::sessions::COOKIE).expect("a session cookie")
}

/// Who the API takes session cookie `secret` for, and how it signed in.
async fn whoami(app: &TestApp, secret: &str) -> (String, String) {
    let listed: Value = plain()
        .get(app.url("/api/v1/sessions"))
        .header("Cookie", format!("{}={secret}", aiops::sessions::COOKIE))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let user = listed[0]["user"].as_str().unwrap_or_default().to_string();
    let method = listed[0]["method"].as_str().unwrap_or_default().to_string();
    (user, method)
}

/// The sign-in entries of the audit log, oldest first: (outcome, reason, principal).
async fn sign_in_audit(app: &TestApp) -> Vec<(String, String, String)> {
    let audit = app.get_json("/api/v1/audit?limit=200").await;
    let text = audit.to_string();
    assert!(
        !text.contains(CLIENT_SECRET),
        "a secret in the audit log: {text}"
    );
    let mut entries: Vec<(String, String, String)> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "sign_in")
        .map(|e| {
            (
                e["outcome"].as_str().unwrap_or_default().into(),
                e["detail"]["reason"].as_str().unwrap_or_default().into(),
                e["principal_name"].as_str().unwrap_or_default().into(),
            )
        })
        .collect();
    entries.reverse();
    entries
}

async fn refused_page(response: reqwest::Response, status: StatusCode, says: &str) -> String {
    assert_eq!(response.status(), status);
    assert!(
        set_cookie(&response, aiops::sessions::COOKIE).is_none(),
        "no session"
    );
    let page = response.text().await.unwrap();
    assert!(page.contains("id=\"sign-in-error\""), "{page}");
    assert!(page.contains(says), "the page says {says:?}: {page}");
    page
}

/// A first GitHub sign-in creates the user (login from GitHub, `github_login` recorded) with
/// a session like a password's; the next one finds the same user. The authorize request
/// carried state and an S256 challenge, the token request the client secret and a verifier
/// that matched; nothing secret reaches an answer or the audit log.
async fn github_sign_in_creates_the_user_then_finds_it(db: Db) {
    let github = ProviderStandIn::github(ann()).await;
    let app = app_with(db, |c| c.auth.github = Some(github_config(&github))).await;
    let page = plain()
        .get(app.url("/sign-in"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("Sign in with GitHub"), "{page}");
    assert!(
        !page.contains("sign-in-oidc"),
        "only configured providers: {page}"
    );

    let response = sign_in_through(&app, "github").await;
    let secret = session_of(&response);
    assert_eq!(
        whoami(&app, &secret).await,
        ("ann-lee".into(), "github".into())
    );
    let user = app.store.user("ann-lee").await.unwrap();
    assert_eq!(user.github_login.as_deref(), Some("Ann-Lee"));
    assert_eq!(user.display_name, "Ann Lee");

    let authorize = &github.authorizations()[0].query;
    assert_eq!(authorize["code_challenge_method"], "S256");
    assert!(authorize["scope"].contains("read:user"), "{authorize:?}");
    let token = &github.token_requests()[0];
    assert!(
        token.verifier_matched,
        "the PKCE verifier matched the challenge"
    );
    assert_eq!(token.form["client_secret"], CLIENT_SECRET);
    assert_eq!(
        github.api_calls(),
        ["/user"],
        "no org check without a restriction"
    );

    let again = session_of(&sign_in_through(&app, "github").await);
    assert_eq!(whoami(&app, &again).await.0, "ann-lee");
    assert_eq!(
        app.store.list_users().await.unwrap().len(),
        2,
        "admin and ann, once"
    );
    let audit = sign_in_audit(&app).await;
    assert_eq!(
        audit,
        [
            ("ok".into(), String::new(), "ann-lee".into()),
            ("ok".into(), String::new(), "ann-lee".into())
        ]
    );
    let everything = app.get_json("/api/v1/audit?limit=200").await.to_string();
    for request in github.token_requests() {
        let code = &request.form["code"];
        assert!(
            !everything.contains(code.as_str()),
            "a code in the audit log"
        );
        assert!(
            !everything.contains(&request.form["code_verifier"]),
            "a verifier"
        );
    }
}

/// With `create_users = false` an unknown GitHub account is refused with a page saying what
/// to do; a user an admin added with that `github_login` signs in (and is bound to GitHub's
/// numeric id: the same login on another GitHub account is refused); a disabled one does not.
async fn github_without_create_users_matches_existing_users_only(db: Db) {
    let github = ProviderStandIn::github(ann()).await;
    let app = app_with(db, |c| {
        c.auth.github = Some(GithubSignIn {
            create_users: false,
            ..github_config(&github)
        })
    })
    .await;
    let response = sign_in_through(&app, "github").await;
    refused_page(response, StatusCode::FORBIDDEN, "no aiops account").await;
    assert!(
        app.store.user("ann-lee").await.is_err(),
        "nobody was created"
    );

    let spec = UserSpec {
        login: "ann".into(),
        github_login: Some("ann-lee".into()),
        ..UserSpec::default()
    };
    users::add(&app.store, &spec).await.unwrap();
    let secret = session_of(&sign_in_through(&app, "github").await);
    assert_eq!(
        whoami(&app, &secret).await.0,
        "ann",
        "matched ignoring case"
    );

    let again = session_of(&sign_in_through(&app, "github").await);
    assert_eq!(
        whoami(&app, &again).await.0,
        "ann",
        "now by GitHub's numeric id"
    );
    github.set_person(Person {
        github_id: 999_999,
        ..ann()
    });
    let response = sign_in_through(&app, "github").await;
    refused_page(response, StatusCode::FORBIDDEN, "another GitHub account").await;
    github.set_person(ann());

    users::set_status(&app.store, "ann", UserStatus::Disabled)
        .await
        .unwrap();
    let response = sign_in_through(&app, "github").await;
    refused_page(response, StatusCode::FORBIDDEN, "disabled").await;
    let reasons: Vec<String> = sign_in_audit(&app).await.into_iter().map(|e| e.1).collect();
    assert_eq!(
        reasons,
        ["no_account", "", "", "github_account_changed", "disabled"]
    );
}

/// `allowed_orgs` and `allowed_teams` are checked against GitHub's API: outside them the
/// sign-in is refused (and audited), inside it goes through.
async fn github_org_and_team_restrictions_refuse_outsiders(db: Db) {
    let outsider = Person {
        orgs: vec!["other-co".into()],
        teams: vec!["acme/dev".into()],
        ..ann()
    };
    let github = ProviderStandIn::github(outsider).await;
    let app = app_with(db, |c| {
        c.auth.github = Some(GithubSignIn {
            allowed_orgs: vec!["acme".into()],
            ..github_config(&github)
        })
    })
    .await;
    let response = sign_in_through(&app, "github").await;
    refused_page(response, StatusCode::FORBIDDEN, "organisation").await;
    assert!(github.authorizations()[0].query["scope"].contains("read:org"));
    assert_eq!(github.api_calls(), ["/user", "/user/orgs"]);
    assert!(app.store.user("ann-lee").await.is_err());

    github.set_person(Person {
        orgs: vec!["ACME".into()],
        ..ann()
    });
    session_of(&sign_in_through(&app, "github").await);
    let reasons: Vec<String> = sign_in_audit(&app).await.into_iter().map(|e| e.1).collect();
    assert_eq!(reasons, ["not_in_allowed_org", ""]);

    let teams = app_with(db, |c| {
        c.auth.github = Some(GithubSignIn {
            allowed_teams: vec!["acme/ops".into()],
            ..github_config(&github)
        })
    })
    .await;
    github.set_person(Person {
        teams: vec!["acme/dev".into()],
        ..ann()
    });
    let response = sign_in_through(&teams, "github").await;
    refused_page(response, StatusCode::FORBIDDEN, "team").await;
    github.set_person(Person {
        teams: vec!["acme/ops".into()],
        ..ann()
    });
    session_of(&sign_in_through(&teams, "github").await);
}

/// The state must come back to the browser that started the sign-in: a callback without
/// the cookie, or with another flow's cookie, is refused before any code is exchanged; a
/// used flow cannot be replayed; a provider's error is a page, not a session.
async fn a_wrong_or_replayed_state_is_refused(db: Db) {
    let github = ProviderStandIn::github(ann()).await;
    let app = app_with(db, |c| c.auth.github = Some(github_config(&github))).await;
    let (authorize_url, cookie) = start(&app, "github", "/tasks").await;
    let callback = at_provider(&authorize_url).await;
    refused_page(
        back(&callback, None).await,
        StatusCode::BAD_REQUEST,
        "state",
    )
    .await;
    let (_, other_cookie) = start(&app, "github", "/").await;
    let response = back(&callback, Some(&other_cookie)).await;
    refused_page(response, StatusCode::BAD_REQUEST, "state").await;
    let tampered = callback.replace(&param(&callback, "state"), &other_cookie);
    let response = back(&tampered, Some(&cookie)).await;
    refused_page(response, StatusCode::BAD_REQUEST, "state").await;
    assert!(github.token_requests().is_empty(), "no code was exchanged");

    session_of(&back(&callback, Some(&cookie)).await);
    let replayed = back(&callback, Some(&cookie)).await;
    refused_page(
        replayed,
        StatusCode::BAD_REQUEST,
        "expired or was already used",
    )
    .await;
    assert_eq!(
        github.token_requests().len(),
        1,
        "the code was exchanged once"
    );

    let (authorize_url, cookie) = start(&app, "github", "/tasks").await;
    let state = param(&authorize_url, "state");
    let denied = app.url(&format!(
        "/sign-in/github/callback?error=access_denied&state={state}"
    ));
    refused_page(
        back(&denied, Some(&cookie)).await,
        StatusCode::BAD_GATEWAY,
        "access_denied",
    )
    .await;
    let reasons: Vec<String> = sign_in_audit(&app).await.into_iter().map(|e| e.1).collect();
    assert_eq!(
        reasons,
        [
            "state_mismatch",
            "state_mismatch",
            "state_mismatch",
            "",
            "flow_expired",
            "provider_error"
        ]
    );
}

/// A code issued for another sign-in (another PKCE challenge), injected into this one's
/// callback, is refused by the provider: our flow's verifier does not match it.
async fn an_injected_code_fails_the_pkce_check(db: Db) {
    let github = ProviderStandIn::github(ann()).await;
    let oidc = ProviderStandIn::oidc(ann()).await;
    let app = app_with(db, |c| {
        c.auth.github = Some(github_config(&github));
        c.auth.oidc = Some(oidc_config(&oidc));
    })
    .await;
    for (provider, stand_in) in [("github", &github), ("oidc", &oidc)] {
        let (attacker_url, _) = start(&app, provider, "/").await;
        let attacker_callback = at_provider(&attacker_url).await;
        let (victim_url, victim_cookie) = start(&app, provider, "/").await;
        let victim_state = param(&victim_url, "state");
        let injected =
            attacker_callback.replace(&param(&attacker_callback, "state"), &victim_state);
        let response = back(&injected, Some(&victim_cookie)).await;
        refused_page(response, StatusCode::BAD_GATEWAY, "did not accept").await;
        let requests = stand_in.token_requests();
        assert_eq!(requests.len(), 1, "{provider}");
        assert!(
            !requests[0].verifier_matched,
            "{provider}: the verifier did not match"
        );
    }
    assert!(app.store.user("ann-lee").await.is_err());
    let reasons: Vec<String> = sign_in_audit(&app).await.into_iter().map(|e| e.1).collect();
    assert_eq!(reasons, ["token_exchange_failed", "token_exchange_failed"]);
}

/// OpenID Connect: discovery, client authentication, PKCE and a nonce; the first sign-in
/// creates the user from the verified claims, `roles` rules give a global admin and a project
/// role (never lowering one an admin granted), the next sign-in finds the same user by issuer
/// + subject, and a sign-in whose claims no longer give a role takes back what claims gave.
async fn oidc_sign_in_creates_the_user_and_maps_claims_to_roles(db: Db) {
    let person = Person {
        id: "00u1a2b3".into(),
        preferred_username: Some("kim.minji".into()),
        groups: vec!["shop-approvers".into()],
        ..ann()
    };
    let oidc = ProviderStandIn::oidc(person.clone()).await;
    let app = app_with(db, |c| {
        c.auth.oidc = Some(OidcSignIn {
            roles: vec![
                ClaimRole {
                    claim: "groups".into(),
                    value: "shop-approvers".into(),
                    admin: false,
                    project: Some("shop".into()),
                    role: Some(ProjectRole::Approver),
                },
                ClaimRole {
                    claim: "groups".into(),
                    value: "aiops-admins".into(),
                    admin: true,
                    project: None,
                    role: None,
                },
                ClaimRole {
                    claim: "groups".into(),
                    value: "docs-writers".into(),
                    admin: false,
                    project: Some("docs".into()),
                    role: Some(ProjectRole::Operator),
                },
            ],
            ..oidc_config(&oidc)
        })
    })
    .await;
    let created = app
        .post("/api/v1/projects")
        .json(&json!({"name": "shop", "repo_url": "https://github.com/acme/shop.git"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let docs = json!({"name": "docs", "repo_url": "https://github.com/acme/docs.git"});
    let created = app
        .post("/api/v1/projects")
        .json(&docs)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let page = plain()
        .get(app.url("/sign-in"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("Sign in with Stand-in SSO"), "{page}");
    let korean = plain()
        .get(app.url("/sign-in"))
        .header("Accept-Language", "ko-KR,ko;q=0.9")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(korean.contains("Stand-in SSO(으)로 로그인"), "{korean}");

    let secret = session_of(&sign_in_through(&app, "oidc").await);
    assert_eq!(
        whoami(&app, &secret).await,
        ("kim-minji".into(), "oidc".into())
    );
    let authorize = &oidc.authorizations()[0].query;
    assert!(!authorize["nonce"].is_empty(), "{authorize:?}");
    assert!(
        authorize["scope"].split(' ').any(|s| s == "openid"),
        "{authorize:?}"
    );
    let token = &oidc.token_requests()[0];
    assert!(token.verifier_matched);
    assert_eq!(
        token.basic_auth,
        Some((CLIENT_ID.to_string(), CLIENT_SECRET.to_string())),
        "client_secret_basic"
    );
    let detail = users::detail(&app.store, "kim-minji").await.unwrap();
    assert_eq!(detail.user.email.as_deref(), Some("ann@example.com"));
    assert_eq!(detail.user.global_role, aiops::model::GlobalRole::Member);
    let roles: Vec<_> = detail
        .memberships
        .iter()
        .map(|m| (m.project.clone(), m.role))
        .collect();
    assert_eq!(roles, [(Some("shop".into()), ProjectRole::Approver)]);

    users::grant(
        &app.store,
        "kim-minji",
        Some("shop"),
        ProjectRole::Maintainer,
    )
    .await
    .unwrap();
    oidc.set_person(Person {
        groups: vec![
            "shop-approvers".into(),
            "aiops-admins".into(),
            "docs-writers".into(),
        ],
        preferred_username: Some("renamed".into()),
        ..person.clone()
    });
    let again = session_of(&sign_in_through(&app, "oidc").await);
    assert_eq!(
        whoami(&app, &again).await.0,
        "kim-minji",
        "found by subject"
    );
    let detail = users::detail(&app.store, "kim-minji").await.unwrap();
    assert_eq!(detail.user.global_role, aiops::model::GlobalRole::Admin);
    assert_eq!(
        roles_of(&detail),
        [
            (Some("docs".into()), ProjectRole::Operator),
            (Some("shop".into()), ProjectRole::Maintainer)
        ],
        "an admin's grant is never lowered by a claim"
    );

    // The claims no longer give anything: what they gave is taken back, the admin's grant stays.
    oidc.set_person(Person {
        groups: Vec::new(),
        ..person
    });
    session_of(&sign_in_through(&app, "oidc").await);
    let detail = users::detail(&app.store, "kim-minji").await.unwrap();
    assert_eq!(detail.user.global_role, aiops::model::GlobalRole::Member);
    assert_eq!(
        roles_of(&detail),
        [(Some("shop".into()), ProjectRole::Maintainer)]
    );
}

/// A user's memberships as (project, role), by project name.
fn roles_of(detail: &users::UserDetail) -> Vec<(Option<String>, ProjectRole)> {
    let mut roles: Vec<_> = detail
        .memberships
        .iter()
        .map(|m| (m.project.clone(), m.role))
        .collect();
    roles.sort();
    roles
}

/// An existing user is found by the provider's verified email (and linked); without
/// `create_users` an unknown account is refused, and an unverified email matches nobody.
async fn oidc_matches_a_verified_email_and_refuses_unknown_accounts(db: Db) {
    let oidc = ProviderStandIn::oidc(ann()).await;
    let app = app_with(db, |c| {
        c.auth.oidc = Some(OidcSignIn {
            create_users: false,
            ..oidc_config(&oidc)
        })
    })
    .await;
    let spec = UserSpec {
        login: "ann".into(),
        email: Some("ANN@example.com".into()),
        ..UserSpec::default()
    };
    users::add(&app.store, &spec).await.unwrap();
    oidc.set_person(Person {
        email_verified: false,
        ..ann()
    });
    let response = sign_in_through(&app, "oidc").await;
    refused_page(response, StatusCode::FORBIDDEN, "no aiops account").await;
    oidc.set_person(ann());
    let secret = session_of(&sign_in_through(&app, "oidc").await);
    assert_eq!(whoami(&app, &secret).await.0, "ann");
    oidc.set_person(Person {
        email: "changed@example.com".into(),
        ..ann()
    });
    let secret = session_of(&sign_in_through(&app, "oidc").await);
    assert_eq!(
        whoami(&app, &secret).await.0,
        "ann",
        "linked by subject now"
    );
}

/// An ID token with another nonce, or signed by a key the provider's JWKS does not hold,
/// is refused naming the check, and nobody is signed in or created.
async fn oidc_refuses_a_wrong_nonce_and_a_foreign_signature(db: Db) {
    let oidc = ProviderStandIn::oidc(ann()).await;
    let app = app_with(db, |c| c.auth.oidc = Some(oidc_config(&oidc))).await;
    oidc.send_wrong_nonce(true);
    let response = sign_in_through(&app, "oidc").await;
    refused_page(response, StatusCode::BAD_GATEWAY, "nonce").await;
    oidc.send_wrong_nonce(false);
    oidc.sign_with_foreign_key(true);
    let response = sign_in_through(&app, "oidc").await;
    refused_page(response, StatusCode::BAD_GATEWAY, "signature").await;
    assert_eq!(
        app.store.list_users().await.unwrap().len(),
        1,
        "only the admin"
    );
    oidc.sign_with_foreign_key(false);
    session_of(&sign_in_through(&app, "oidc").await);
    let reasons: Vec<String> = sign_in_audit(&app).await.into_iter().map(|e| e.1).collect();
    assert_eq!(reasons, ["id_token_nonce", "id_token_signature", ""]);
}

/// Starting a sign-in stores a flow, so it counts against the address's sign-in rate: past
/// `auth.sign_in_per_minute` the start is refused with 429 and sends nobody to the provider.
async fn starting_sign_ins_is_rate_limited(db: Db) {
    let github = ProviderStandIn::github(ann()).await;
    let app = app_with(db, |c| {
        c.auth.github = Some(github_config(&github));
        c.auth.sign_in_per_minute = 3;
    })
    .await;
    // Eight starts within a minute put at least four in one minute's window, whatever
    // boundary falls between them.
    let mut statuses = Vec::new();
    for _ in 0..8 {
        let response = plain()
            .get(app.url("/sign-in/github"))
            .send()
            .await
            .unwrap();
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            assert!(response.headers().get("location").is_none());
        }
        statuses.push(response.status());
    }
    assert_eq!(statuses[0], StatusCode::SEE_OTHER, "{statuses:?}");
    assert!(
        statuses.contains(&StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    // The refusals are audited once per address and minute, not once each.
    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    let audited = sign_in_audit(&app)
        .await
        .into_iter()
        .filter(|(outcome, reason, _)| outcome == "refused" && reason == "rate_limited")
        .count();
    assert!(
        (1..=2).contains(&audited),
        "{audited} rows for {refused} refusals"
    );
    assert!(
        refused <= 2 || audited < refused,
        "{audited} rows for {refused} refusals"
    );
}

/// A provider that is not configured has no button and no route.
async fn an_unconfigured_provider_is_not_offered(db: Db) {
    let app = TestApp::spawn(db).await;
    let page = plain()
        .get(app.url("/sign-in"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!page.contains("class=\"provider\""), "{page}");
    for provider in ["github", "oidc", "other"] {
        let response = plain()
            .get(app.url(&format!("/sign-in/{provider}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{provider}");
    }
}

on_both_databases!(
    github_sign_in_creates_the_user_then_finds_it,
    github_without_create_users_matches_existing_users_only,
    github_org_and_team_restrictions_refuse_outsiders,
    a_wrong_or_replayed_state_is_refused,
    an_injected_code_fails_the_pkce_check,
    oidc_sign_in_creates_the_user_and_maps_claims_to_roles,
    oidc_matches_a_verified_email_and_refuses_unknown_accounts,
    oidc_refuses_a_wrong_nonce_and_a_foreign_signature,
    an_unconfigured_provider_is_not_offered,
    starting_sign_ins_is_rate_limited,
);

//! Signing in with a password, sessions and their ends, over real HTTP on both databases:
//! the form and its CSRF, the session cookie on the API (with its CSRF header), lockout and
//! the per-address rate, idle and absolute expiry, disabling, revoking, open redirects, and
//! no secret in any log or answer.

mod common;

use std::time::Duration;

use aiops::model::{SessionMethod, UserStatus};
use aiops::sessions::{self, COOKIE, CSRF_HEADER, Client};
use aiops::users::{self, UserSpec};
use common::{Db, TestApp, wait_for};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::Digest as _;

const PASSWORD: &str = "a long enough phrase";

/// A client that shows redirects instead of following them and keeps no cookies.
fn plain_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

async fn add_user(app: &TestApp, login: &str) -> i64 {
    let spec = UserSpec {
        login: login.into(),
        password: Some(PASSWORD.into()),
        ..UserSpec::default()
    };
    users::add(&app.store, &spec).await.unwrap().id
}

/// The value of cookie `name` a response sets.
fn set_cookie(response: &reqwest::Response, name: &str) -> Option<(String, String)> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| {
            let value = v[name.len() + 1..].split(';').next().unwrap().to_string();
            (value, v.to_string())
        })
}

/// The value of the hidden `csrf` field in a page.
fn csrf_field(html: &str) -> String {
    let re = regex::Regex::new(r#"name="csrf" value="([^"]+)""#).unwrap();
    re.captures(html).expect("a csrf field")[1].to_string()
}

/// The sign-in form's pre-session cookie and field.
async fn open_form(app: &TestApp) -> (String, String) {
    let response = plain_client()
        .get(app.url("/sign-in"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let csp = response.headers()["content-security-policy"]
        .to_str()
        .unwrap();
    assert!(
        csp.contains("default-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    let (cookie, _) = set_cookie(&response, "aiops_sign_in_csrf").expect("form cookie");
    let field = csrf_field(&response.text().await.unwrap());
    (cookie, field)
}

/// Posts the sign-in form with a fresh pre-session token.
async fn post_sign_in(app: &TestApp, login: &str, password: &str, next: &str) -> reqwest::Response {
    let (cookie, field) = open_form(app).await;
    plain_client()
        .post(app.url("/sign-in"))
        .header("Cookie", format!("aiops_sign_in_csrf={cookie}"))
        .form(&[
            ("login", login),
            ("password", password),
            ("csrf", &field),
            ("next", next),
        ])
        .send()
        .await
        .unwrap()
}

/// Signs in through the form; the session cookie's value.
async fn sign_in(app: &TestApp, login: &str) -> String {
    let response = post_sign_in(app, login, PASSWORD, "").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    set_cookie(&response, COOKIE).expect("a session cookie").0
}

fn with_session(request: reqwest::RequestBuilder, secret: &str) -> reqwest::RequestBuilder {
    request.header("Cookie", format!("{COOKIE}={secret}"))
}

async fn api_status(app: &TestApp, secret: &str, path: &str) -> StatusCode {
    let request = plain_client().get(app.url(path));
    with_session(request, secret).send().await.unwrap().status()
}

/// The session's CSRF token, as the signed-in page shows it.
async fn page_csrf(app: &TestApp, secret: &str) -> String {
    let request = with_session(plain_client().get(app.url("/sign-in")), secret);
    let page = request.send().await.unwrap().text().await.unwrap();
    assert!(page.contains("id=\"signed-in\""), "{page}");
    csrf_field(&page)
}

/// A password signs in through the form: a 303 to `/`, an HttpOnly, SameSite=Lax cookie
/// that the API takes as the user, and a stored hash that is argon2id, never the password.
async fn a_password_signs_in_and_the_cookie_authenticates_the_api(db: Db) {
    let app = TestApp::spawn(db).await;
    add_user(&app, "ann").await;
    let response = post_sign_in(&app, "ann", PASSWORD, "").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()["location"], "/");
    let (secret, header) = set_cookie(&response, COOKIE).unwrap();
    for part in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(header.contains(part), "{header}");
    }
    assert!(!header.contains("Secure"), "http public URL: {header}");
    let listed = with_session(plain_client().get(app.url("/api/v1/sessions")), &secret)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), StatusCode::OK);
    let listed: Value = listed.json().await.unwrap();
    assert_eq!(listed[0]["user"], "ann", "{listed}");
    assert_eq!(listed[0]["current"], true);
    assert_eq!(listed[0]["method"], "password");
    assert!(
        !listed.to_string().contains(&secret),
        "no secret in {listed}"
    );
    let account = app.store.sign_in_account("ann").await.unwrap().unwrap();
    let hash = account.password_hash.unwrap();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(!hash.contains(PASSWORD));
    // A Korean browser gets the Korean page.
    let korean = plain_client()
        .get(app.url("/sign-in"))
        .header("Accept-Language", "ko-KR,ko;q=0.9,en;q=0.5")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        korean.contains("lang=\"ko\"") && korean.contains("비밀번호"),
        "{korean}"
    );
}

/// After `lockout_after_failures` wrong passwords even the right one is refused, until the
/// lock ends; then it signs in again.
async fn a_locked_account_refuses_the_right_password_until_the_lock_ends(db: Db) {
    let app = TestApp::spawn_with(db, |c| {
        c.auth.lockout_after_failures = 3;
        c.auth.lockout_base_secs = 2;
        c.auth.lockout_max_secs = 2;
        // The wait below polls with the right password; the address's rate stays out of it.
        c.auth.sign_in_per_minute = 100_000;
    })
    .await;
    add_user(&app, "ann").await;
    for attempt in 1..=2 {
        let response = post_sign_in(&app, "ann", "wrong password here", "").await;
        assert_eq!(
            response.status(),
            StatusCode::UNAUTHORIZED,
            "attempt {attempt}"
        );
    }
    let third = post_sign_in(&app, "ann", "wrong password here", "").await;
    assert_eq!(third.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(third.headers().contains_key("retry-after"));
    let right = post_sign_in(&app, "ann", PASSWORD, "").await;
    assert_eq!(right.status(), StatusCode::TOO_MANY_REQUESTS, "locked");
    assert!(set_cookie(&right, COOKIE).is_none());
    let audit = app.get_json("/api/v1/audit?principal=ann").await;
    let reasons: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["detail"]["reason"].as_str())
        .collect();
    assert!(reasons.contains(&"wrong_password_locked"), "{audit}");
    assert!(reasons.contains(&"locked"), "{audit}");
    let client = Client {
        addr: "192.0.2.1",
        user_agent: None,
    };
    wait_for("the lock to end", Duration::from_secs(15), || {
        let (store, config) = (app.store.clone(), app.config.clone());
        async move {
            sessions::sign_in_with_password(&store, &config, "ann", PASSWORD, client)
                .await
                .ok()
        }
    })
    .await;
}

/// One address may try `sign_in_per_minute` times a minute; then 429 with Retry-After.
async fn an_address_over_its_rate_gets_429_with_retry_after(db: Db) {
    let app = TestApp::spawn_with(db, |c| c.auth.sign_in_per_minute = 3).await;
    add_user(&app, "ann").await;
    // Four attempts must fall into one minute's window.
    wait_for(
        "a minute with time left",
        Duration::from_secs(20),
        || async { (chrono::Utc::now().timestamp() % 60 < 45).then_some(()) },
    )
    .await;
    for _ in 0..3 {
        let response = post_sign_in(&app, "nobody", "wrong password here", "").await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    let refused = post_sign_in(&app, "ann", PASSWORD, "").await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
}

/// The form without its pre-session token is refused, and a cookie-authenticated mutation
/// of the API needs the session's CSRF token; a bearer request does not.
async fn csrf_is_refused_without_the_token(db: Db) {
    let app = TestApp::spawn(db).await;
    add_user(&app, "ann").await;
    let (_, field) = open_form(&app).await;
    let forged = plain_client()
        .post(app.url("/sign-in"))
        .form(&[("login", "ann"), ("password", PASSWORD), ("csrf", &field)])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN, "no form cookie");
    assert!(set_cookie(&forged, COOKIE).is_none());
    let secret = sign_in(&app, "ann").await;
    let csrf = page_csrf(&app, &secret).await;
    let create = |token: Option<&str>, name: &str| {
        let mut request = with_session(plain_client().post(app.url("/api/v1/tokens")), &secret)
            .json(&json!({"name": name, "scopes": ["read"]}));
        if let Some(token) = token {
            request = request.header(CSRF_HEADER, token);
        }
        async move { request.send().await.unwrap().status() }
    };
    assert_eq!(create(None, "t1").await, StatusCode::FORBIDDEN);
    assert_eq!(create(Some("forged"), "t1").await, StatusCode::FORBIDDEN);
    assert_eq!(create(Some(&csrf), "t1").await, StatusCode::CREATED);
    let sign_out = with_session(plain_client().post(app.url("/sign-out")), &secret)
        .form(&[("csrf", "forged")])
        .send()
        .await
        .unwrap();
    assert_eq!(sign_out.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        api_status(&app, &secret, "/api/v1/sessions").await,
        StatusCode::OK
    );
    let sign_out = with_session(plain_client().post(app.url("/sign-out")), &secret)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(sign_out.status(), StatusCode::SEE_OTHER);
    let (cleared, _) = set_cookie(&sign_out, COOKIE).unwrap();
    assert!(cleared.is_empty());
    assert_eq!(
        api_status(&app, &secret, "/api/v1/sessions").await,
        StatusCode::UNAUTHORIZED
    );
}

/// A session unused for `session_idle_secs` ends, and a session in constant use ends at
/// `session_absolute_secs`.
async fn sessions_end_when_idle_and_at_their_absolute_end(db: Db) {
    let app = TestApp::spawn_with(db, |c| {
        c.auth.session_idle_secs = 1;
        c.auth.session_absolute_secs = 3600;
    })
    .await;
    let id = add_user(&app, "ann").await;
    let client = Client {
        addr: "127.0.0.1",
        user_agent: None,
    };
    let idle = sessions::start(&app.store, &app.config, id, SessionMethod::Password, client)
        .await
        .unwrap();
    let owner = idle.principal.clone();
    // Listing does not use a session, so waiting on it lets the idle time run out.
    wait_for(
        "the idle session to drop out",
        Duration::from_secs(15),
        || {
            let (store, config, owner) = (app.store.clone(), app.config.clone(), owner.clone());
            async move {
                let live = sessions::list(&store, &config, &owner, None).await.unwrap();
                live.is_empty().then_some(())
            }
        },
    )
    .await;
    let resolved = sessions::resolve(&app.store, &app.config, &idle.secret).await;
    assert!(resolved.unwrap().is_none(), "idle session still resolves");

    let app = TestApp::spawn_with(db, |c| {
        c.auth.session_idle_secs = 2;
        c.auth.session_absolute_secs = 2;
    })
    .await;
    let id = add_user(&app, "bob").await;
    let busy = sessions::start(&app.store, &app.config, id, SessionMethod::Password, client)
        .await
        .unwrap();
    // Every poll uses the session (and so keeps it from going idle).
    wait_for(
        "the busy session to reach its end",
        Duration::from_secs(15),
        || {
            let (store, config, secret) =
                (app.store.clone(), app.config.clone(), busy.secret.clone());
            async move {
                let resolved = sessions::resolve(&store, &config, &secret).await.unwrap();
                resolved.is_none().then_some(())
            }
        },
    )
    .await;
    assert!(chrono::Utc::now() >= busy.info.expires_at);
}

/// Disabling a user ends its session at the next request; enabling it again does not
/// bring the session back.
async fn a_disabled_users_session_stops_at_its_next_request(db: Db) {
    let app = TestApp::spawn(db).await;
    add_user(&app, "ann").await;
    let secret = sign_in(&app, "ann").await;
    assert_eq!(
        api_status(&app, &secret, "/api/v1/sessions").await,
        StatusCode::OK
    );
    let disabled = app
        .req(reqwest::Method::PATCH, "/api/v1/users/ann")
        .json(&json!({"status": "disabled"}))
        .send()
        .await
        .unwrap();
    assert_eq!(disabled.status(), StatusCode::OK);
    assert_eq!(
        api_status(&app, &secret, "/api/v1/sessions").await,
        StatusCode::UNAUTHORIZED
    );
    users::set_status(&app.store, "ann", UserStatus::Active)
        .await
        .unwrap();
    assert_eq!(
        api_status(&app, &secret, "/api/v1/sessions").await,
        StatusCode::UNAUTHORIZED
    );
    let again = post_sign_in(&app, "ann", PASSWORD, "").await;
    assert_eq!(
        again.status(),
        StatusCode::SEE_OTHER,
        "enabled again, signs in anew"
    );
}

/// "My sessions": one's own are listed and revocable, another's are not found; an admin
/// ends every session of a user; the audit log names who did it.
async fn sessions_are_listed_and_revoked(db: Db) {
    let app = TestApp::spawn(db).await;
    add_user(&app, "ann").await;
    add_user(&app, "bob").await;
    let ann_first = sign_in(&app, "ann").await;
    let ann_second = sign_in(&app, "ann").await;
    let bob = sign_in(&app, "bob").await;
    let list = |secret: &str| {
        let request = with_session(plain_client().get(app.url("/api/v1/sessions")), secret);
        async move { request.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let listed = list(&ann_second).await;
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
    assert_eq!(listed[0]["current"], true);
    assert_eq!(listed[1]["current"], false);
    let first_id = listed[1]["id"].as_i64().unwrap();
    let bob_id = list(&bob).await[0]["id"].as_i64().unwrap();
    let csrf = page_csrf(&app, &ann_second).await;
    let delete = |path: String| {
        let request = with_session(plain_client().delete(app.url(&path)), &ann_second)
            .header(CSRF_HEADER, csrf.clone());
        async move { request.send().await.unwrap().status() }
    };
    assert_eq!(
        delete(format!("/api/v1/sessions/{bob_id}")).await,
        StatusCode::NOT_FOUND,
        "another's session"
    );
    assert_eq!(
        api_status(&app, &bob, "/api/v1/sessions").await,
        StatusCode::OK
    );
    assert_eq!(
        delete(format!("/api/v1/sessions/{first_id}")).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        api_status(&app, &ann_first, "/api/v1/sessions").await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        delete("/api/v1/users/ann/sessions".into()).await,
        StatusCode::FORBIDDEN,
        "not an admin"
    );
    let ended = app
        .req(reqwest::Method::DELETE, "/api/v1/users/ann/sessions")
        .send()
        .await
        .unwrap();
    assert_eq!(ended.json::<Value>().await.unwrap(), json!({"ended": 1}));
    assert_eq!(
        api_status(&app, &ann_second, "/api/v1/sessions").await,
        StatusCode::UNAUTHORIZED
    );
    let audit = app.get_json("/api/v1/audit?principal=ann").await;
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(actions.contains(&"DELETE /api/v1/sessions/{id}"), "{audit}");
    assert!(actions.contains(&"sign_in"), "{audit}");
}

/// After sign-in the browser goes only to a path on this site.
async fn the_sign_in_page_refuses_open_redirects(db: Db) {
    let app = TestApp::spawn_with(db, |c| c.auth.sign_in_per_minute = 100).await;
    add_user(&app, "ann").await;
    for (next, location) in [
        ("/tasks?id=3", "/tasks?id=3"),
        ("https://evil.example/", "/"),
        ("//evil.example/x", "/"),
        ("/\\evil.example", "/"),
        ("javascript:alert(1)", "/"),
    ] {
        let response = post_sign_in(&app, "ann", PASSWORD, next).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{next}");
        assert_eq!(response.headers()["location"], location, "{next}");
    }
    // The page itself never carries an absolute `next` into its form.
    let page = plain_client()
        .get(app.url("/sign-in?next=https://evil.example/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!page.contains("evil.example"), "{page}");
}

/// The password policy holds on the API as on the CLI.
async fn a_weak_password_is_refused(db: Db) {
    let app = TestApp::spawn(db).await;
    add_user(&app, "ann").await;
    for weak in ["short", "ann-is-my-password"] {
        let response = app
            .req(reqwest::Method::PATCH, "/api/v1/users/ann")
            .json(&json!({ "password": weak }))
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{weak}"
        );
        let body = response.text().await.unwrap();
        assert!(!body.contains(weak), "{body}");
    }
}

/// `aiops user sign-out LOGIN` (the real binary, on the same store) ends every session of
/// the user and is audited; `set-password` refuses a weak password read from stdin.
async fn the_cli_signs_a_user_out_and_refuses_weak_passwords(db: Db) {
    let app = TestApp::spawn(db).await;
    add_user(&app, "ann").await;
    let secret = sign_in(&app, "ann").await;
    assert_eq!(
        api_status(&app, &secret, "/api/v1/sessions").await,
        StatusCode::OK
    );
    let cli = |args: &[&str], stdin: &str| {
        let mut child = common::child::aiops()
            .args(args)
            .args(["--data-dir"])
            .arg(app.db.data_dir())
            .args(["--database-url", &app.db.url])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write as _;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let out = cli(&["user", "sign-out", "ann"], "");
    let said = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{said}");
    assert!(said.contains("1 session(s) of ann ended"), "{said}");
    assert_eq!(
        api_status(&app, &secret, "/api/v1/sessions").await,
        StatusCode::UNAUTHORIZED
    );
    let weak = cli(&["user", "set-password", "ann"], "short\n");
    let said = String::from_utf8_lossy(&weak.stderr).to_string();
    assert!(!weak.status.success());
    assert!(said.contains("at least 12 characters"), "{said}");
    let audit = app
        .get_json("/api/v1/audit?target=users/ann/sessions")
        .await;
    assert_eq!(audit["items"][0]["action"], "cli user sign-out", "{audit}");
}

/// Stops a child `aiops serve` when the test ends, even by a panic.
struct Stop(u32);

impl Drop for Stop {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.0 as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
    }
}

/// The real binary at log level debug: after sign-ins (right and wrong), listing sessions,
/// reading the audit log and signing out, no password, password hash, session secret or its
/// hash is in its log or in any answer.
async fn no_secret_reaches_a_log_or_an_api_response(db: Db) {
    let fresh = common::FreshDb::new(db).await;
    let data = fresh.data_dir();
    let config = data.join("aiops.toml");
    std::fs::write(&config, format!("database_url = {:?}\n", fresh.url)).unwrap();
    let child = common::child::aiops()
        .env("AIOPS_LOG__LEVEL", "debug")
        .args(["serve", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(&data)
        .args(["--listen", "127.0.0.1:0"])
        .current_dir(&data)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let _stop = Stop(child.id());
    let mut served = common::child::attach(child, true);
    let admin = served.token.clone().expect("the admin token");
    let base = served.base.clone();
    let http = plain_client();
    let mut answers = Vec::new();
    let added = http
        .post(format!("{base}/api/v1/users"))
        .bearer_auth(&admin)
        .json(&json!({"login": "ann", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(added.status(), StatusCode::CREATED);
    answers.push(added.text().await.unwrap());
    let mut secret = String::new();
    for password in ["wrong horse battery staple", PASSWORD] {
        let form = http.get(format!("{base}/sign-in")).send().await.unwrap();
        let (cookie, _) = set_cookie(&form, "aiops_sign_in_csrf").unwrap();
        let field = csrf_field(&form.text().await.unwrap());
        let response = http
            .post(format!("{base}/sign-in"))
            .header("Cookie", format!("aiops_sign_in_csrf={cookie}"))
            .form(&[("login", "ann"), ("password", password), ("csrf", &field)])
            .send()
            .await
            .unwrap();
        if let Some((value, _)) = set_cookie(&response, COOKIE) {
            secret = value;
        }
        answers.push(response.text().await.unwrap());
    }
    assert!(!secret.is_empty(), "signed in");
    for path in ["/api/v1/sessions", "/api/v1/users/ann", "/api/v1/users"] {
        let request = with_session(http.get(format!("{base}{path}")), &secret);
        answers.push(request.send().await.unwrap().text().await.unwrap());
    }
    let page = with_session(http.get(format!("{base}/sign-in")), &secret);
    let page = page.send().await.unwrap().text().await.unwrap();
    let csrf = csrf_field(&page);
    answers.push(page);
    let out = with_session(http.post(format!("{base}/sign-out")), &secret).form(&[("csrf", &csrf)]);
    assert_eq!(out.send().await.unwrap().status(), StatusCode::SEE_OTHER);
    let audit = http.get(format!("{base}/api/v1/audit")).bearer_auth(&admin);
    let audit = audit.send().await.unwrap().text().await.unwrap();
    assert!(
        audit.contains("sign_out") && audit.contains("sign_in"),
        "{audit}"
    );
    answers.push(audit);
    served.signal(nix::sys::signal::Signal::SIGTERM);
    served.wait_exit(Duration::from_secs(30)).await;
    let log = served.log.lock().unwrap().join("\n");
    assert!(log.contains("DEBUG"), "the log is at debug level");
    let secret_hash = hex::encode(sha2::Sha256::digest(secret.as_bytes()));
    for (what, text) in
        std::iter::once(("the log", &log)).chain(answers.iter().map(|a| ("an answer", a)))
    {
        for needle in [
            PASSWORD,
            "wrong horse battery staple",
            &secret,
            &secret_hash,
            "$argon2",
        ] {
            assert!(!text.contains(needle), "{what} holds {needle:?}: {text}");
        }
    }
}

on_both_databases!(
    a_password_signs_in_and_the_cookie_authenticates_the_api,
    a_locked_account_refuses_the_right_password_until_the_lock_ends,
    an_address_over_its_rate_gets_429_with_retry_after,
    csrf_is_refused_without_the_token,
    sessions_end_when_idle_and_at_their_absolute_end,
    a_disabled_users_session_stops_at_its_next_request,
    sessions_are_listed_and_revoked,
    the_sign_in_page_refuses_open_redirects,
    a_weak_password_is_refused,
    no_secret_reaches_a_log_or_an_api_response,
    the_cli_signs_a_user_out_and_refuses_weak_passwords,
);

//! Password sign-in and sign-out through the real page in headless Chromium: a wrong
//! password is refused on the page, the right one lands on the dashboard with an HttpOnly
//! session cookie that the API accepts, and signing out ends the session. Signing in with
//! GitHub and with OpenID Connect goes through the stand-in providers and back to the
//! dashboard with the same kind of session.

mod common;

use common::browser::{BROWSER_WAIT, ChromeDriver, click, keep_screenshot};
use common::{Db, TestApp};
use fantoccini::{Client, Locator};

const PASSWORD: &str = "a long enough phrase";

async fn fill_and_submit(browser: &Client, login: &str, password: &str) {
    let login_input = browser
        .wait()
        .at_most(BROWSER_WAIT)
        .for_element(Locator::Css("#login"))
        .await
        .expect("the sign-in form");
    login_input.clear().await.unwrap();
    login_input.send_keys(login).await.unwrap();
    let password_input = browser.find(Locator::Css("#password")).await.unwrap();
    password_input.send_keys(password).await.unwrap();
    click(browser, "#sign-in").await;
}

async fn body_text(browser: &Client) -> String {
    browser
        .find(Locator::Css("body"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_sign_in_and_sign_out_in_chromium() {
    let driver = ChromeDriver::start().await;
    let app = TestApp::spawn(Db::Sqlite).await;
    let spec = aiops::users::UserSpec {
        login: "ann".into(),
        password: Some(PASSWORD.into()),
        ..Default::default()
    };
    aiops::users::add(&app.store, &spec).await.unwrap();
    let browser = driver.session().await;

    browser.goto(&app.url("/sign-in")).await.unwrap();
    fill_and_submit(&browser, "ann", "not the password at all").await;
    let error = browser
        .wait()
        .at_most(BROWSER_WAIT)
        .for_element(Locator::Css("#sign-in-error"))
        .await
        .expect("the refusal is shown");
    assert!(error.text().await.unwrap().contains("wrong"));
    keep_screenshot(&browser, "sign-in-refused").await;

    fill_and_submit(&browser, "ann", PASSWORD).await;
    browser
        .wait()
        .at_most(BROWSER_WAIT)
        .for_url(&url::Url::parse(&app.url("/")).unwrap())
        .await
        .expect("signed in, the browser goes to the dashboard");
    let cookies = browser.get_all_cookies().await.unwrap();
    let session = cookies
        .iter()
        .find(|c| c.name() == aiops::sessions::COOKIE)
        .expect("the session cookie");
    assert_eq!(session.http_only(), Some(true));
    let script_sees: String = browser
        .execute("return document.cookie;", vec![])
        .await
        .unwrap()
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        !script_sees.contains(aiops::sessions::COOKIE),
        "{script_sees}"
    );

    browser.goto(&app.url("/api/v1/sessions")).await.unwrap();
    let listed = body_text(&browser).await;
    assert!(listed.contains("\"user\":\"ann\""), "{listed}");

    browser.goto(&app.url("/sign-in")).await.unwrap();
    let signed_in = browser
        .wait()
        .at_most(BROWSER_WAIT)
        .for_element(Locator::Css("#signed-in"))
        .await
        .expect("the page knows who is signed in");
    assert!(signed_in.text().await.unwrap().contains("ann"));
    keep_screenshot(&browser, "signed-in").await;
    click(&browser, "#sign-out").await;
    browser
        .wait()
        .at_most(BROWSER_WAIT)
        .for_element(Locator::Css(".notice"))
        .await
        .expect("signed out");
    keep_screenshot(&browser, "signed-out").await;

    browser.goto(&app.url("/api/v1/sessions")).await.unwrap();
    let refused = body_text(&browser).await;
    assert!(refused.contains("unauthorized"), "{refused}");
    browser.close().await.expect("end the browser session");
    let ann = app.store.user("ann").await.unwrap();
    let now = chrono::Utc::now();
    let live = app
        .store
        .live_sessions_of(ann.id, now, now - chrono::Duration::hours(24))
        .await
        .unwrap();
    assert!(live.is_empty(), "the session ended on the server");
}

/// Signs in by clicking `button` on the real sign-in page: the browser goes to the stand-in
/// provider, comes back to the callback and lands on the dashboard, with a session the API
/// takes as `login`, signed in by `method`.
async fn provider_sign_in_in_chromium(
    adjust: impl FnOnce(&mut aiops::config::Config),
    button: &str,
    login: &str,
    method: &str,
) {
    let driver = ChromeDriver::start().await;
    let app = TestApp::spawn_with(Db::Sqlite, adjust).await;
    let stored = app
        .post("/api/v1/credentials")
        .json(
            &serde_json::json!({"name": "sign-in-client-secret", "kind": "webhook_secret",
            "value": common::providers::CLIENT_SECRET}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(stored.status(), reqwest::StatusCode::CREATED);
    let browser = driver.session().await;
    browser.goto(&app.url("/sign-in")).await.unwrap();
    browser
        .wait()
        .at_most(BROWSER_WAIT)
        .for_element(Locator::Css(button))
        .await
        .expect("the provider's button");
    keep_screenshot(&browser, &format!("sign-in-{method}-button")).await;
    click(&browser, button).await;
    browser
        .wait()
        .at_most(BROWSER_WAIT)
        .for_url(&url::Url::parse(&app.url("/")).unwrap())
        .await
        .expect("back from the provider, the browser lands on the dashboard");
    keep_screenshot(&browser, &format!("signed-in-with-{method}")).await;
    let cookies = browser.get_all_cookies().await.unwrap();
    let session = cookies
        .iter()
        .find(|c| c.name() == aiops::sessions::COOKIE)
        .expect("the session cookie");
    assert_eq!(session.http_only(), Some(true));
    browser.goto(&app.url("/api/v1/sessions")).await.unwrap();
    let listed = body_text(&browser).await;
    assert!(
        listed.contains(&format!("\"user\":\"{login}\"")),
        "{listed}"
    );
    assert!(
        listed.contains(&format!("\"method\":\"{method}\"")),
        "{listed}"
    );
    browser.close().await.expect("end the browser session");
}

/// An MCP client (a Claude connector) sends a signed-out person to `/oauth/authorize`: they
/// sign in, see what the client asks for, allow it, and the browser arrives at the client's
/// loopback redirect URI with a code and the state (the page's CSP lets the answer go there).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connector_is_allowed_in_chromium() {
    use base64::Engine as _;
    use sha2::Digest as _;
    let driver = ChromeDriver::start().await;
    let app = TestApp::spawn(Db::Sqlite).await;
    let spec = aiops::users::UserSpec {
        login: "ann".into(),
        password: Some(PASSWORD.into()),
        ..Default::default()
    };
    aiops::users::add(&app.store, &spec).await.unwrap();
    // The client's own callback: records the query it is sent.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let callback = format!("http://{}/callback", listener.local_addr().unwrap());
    let seen = std::sync::Arc::new(std::sync::Mutex::new(None::<String>));
    let record = seen.clone();
    let router = axum::Router::new().route(
        "/callback",
        axum::routing::get(move |uri: axum::http::Uri| async move {
            *record.lock().unwrap() = uri.query().map(str::to_string);
            "connected"
        }),
    );
    tokio::spawn(async move { axum::serve(listener, router).await });
    let registered: serde_json::Value = reqwest::Client::new()
        .post(app.url("/oauth/register"))
        .json(
            &serde_json::json!({"client_name": "Claude", "redirect_uris": [callback],
                                  "token_endpoint_auth_method": "none"}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let verifier = "a-verifier-that-is-long-enough-for-pkce-0123456789";
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(verifier.as_bytes()));
    let mut authorize = url::Url::parse(&app.url("/oauth/authorize")).unwrap();
    authorize
        .query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", registered["client_id"].as_str().unwrap())
        .append_pair("redirect_uri", &callback)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256")
        .append_pair("state", "from-claude");
    let browser = driver.session().await;
    browser.goto(authorize.as_str()).await.unwrap();
    fill_and_submit(&browser, "ann", PASSWORD).await;
    browser
        .wait()
        .at_most(BROWSER_WAIT)
        .for_element(Locator::Css("#consent-allow"))
        .await
        .expect("signed in, the consent page");
    let asked = body_text(&browser).await;
    assert!(asked.contains("Claude asks to act as you"), "{asked}");
    keep_screenshot(&browser, "oauth-consent").await;
    click(&browser, "#consent-allow").await;
    let query = common::wait_for("the client's callback", BROWSER_WAIT, || async {
        seen.lock().unwrap().clone()
    })
    .await;
    assert!(
        query.contains("code=") && query.contains("state=from-claude"),
        "{query}"
    );
    assert!(body_text(&browser).await.contains("connected"));
    browser.close().await.expect("end the browser session");
}

fn secret_source() -> aiops::config::ClientSecretSource {
    aiops::config::ClientSecretSource {
        client_secret_env: String::new(),
        client_secret_credential: "sign-in-client-secret".into(),
    }
}

fn person() -> common::providers::Person {
    common::providers::Person {
        id: "octo-ann".into(),
        name: "Ann".into(),
        email: "ann@example.com".into(),
        email_verified: true,
        orgs: vec!["acme".into()],
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn github_sign_in_in_chromium() {
    let github = common::providers::ProviderStandIn::github(person()).await;
    let config = aiops::config::GithubSignIn {
        client_id: common::providers::CLIENT_ID.into(),
        secret: secret_source(),
        web_url: github.base.clone(),
        api_url: format!("{}/api", github.base),
        allowed_orgs: vec!["acme".into()],
        allowed_teams: Vec::new(),
        create_users: true,
    };
    let adjust = move |c: &mut aiops::config::Config| c.auth.github = Some(config);
    provider_sign_in_in_chromium(adjust, "#sign-in-github", "octo-ann", "github").await;
    assert!(github.token_requests()[0].verifier_matched);
    assert_eq!(github.api_calls(), ["/user", "/user/orgs"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidc_sign_in_in_chromium() {
    let oidc = common::providers::ProviderStandIn::oidc(person()).await;
    let config = aiops::config::OidcSignIn {
        name: "Stand-in SSO".into(),
        issuer_url: oidc.base.clone(),
        client_id: common::providers::CLIENT_ID.into(),
        secret: secret_source(),
        scopes: vec!["email".into()],
        create_users: true,
        roles: Vec::new(),
    };
    let adjust = move |c: &mut aiops::config::Config| c.auth.oidc = Some(config);
    provider_sign_in_in_chromium(adjust, "#sign-in-oidc", "ann", "oidc").await;
    assert!(oidc.token_requests()[0].verifier_matched);
}

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

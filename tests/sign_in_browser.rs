//! Password sign-in and sign-out through the real page in headless Chromium: a wrong
//! password is refused on the page, the right one lands on the dashboard with an HttpOnly
//! session cookie that the API accepts, and signing out ends the session.

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

//! The approval page in a real browser: headless Chromium opens a signed approval link, sees
//! the change and the findings, clicks Approve and sees the decided state; the API agrees and
//! the pipeline goes on to done.
//!
//! Chromium runs headless through `common::browser` (chromedriver over WebDriver).

mod common;

use aiops::approvals::LinkSigner;
use common::browser::{BROWSER_WAIT, ChromeDriver, keep_screenshot};
use common::pipeline::{WAIT, add_project, create_task, engine_app, wait_status};
use common::{Db, TestApp, wait_for};
use fantoccini::Locator;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// The task's pending approval, once the change and findings it shows have been taken.
async fn pending_approval_with_snapshot(app: &TestApp, task: i64) -> Value {
    let path = format!("/api/v1/approvals?task={task}&status=pending");
    wait_for(
        &format!("task {task}'s pending approval to have its snapshot"),
        WAIT,
        || async {
            let page: Value = app.get(&path).send().await.ok()?.json().await.ok()?;
            page["items"]
                .as_array()?
                .iter()
                .find(|approval| !approval["snapshot_at"].is_null())
                .cloned()
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approval_link_shows_the_change_and_approves_in_chromium() {
    // First, so that a machine without Chromium fails at once and says what to install.
    let driver = ChromeDriver::start().await;

    let repo = common::git_repo();
    let app = engine_app(Db::Sqlite, "", |_| {}).await;
    add_project(&app, "shop", repo.path(), json!({})).await;
    let task = create_task(&app, "shop", "Fix the checkout crash", "high").await;
    let detail = wait_status(&app, task, &["awaiting_approval", "failed"]).await;
    assert_eq!(detail["status"], "awaiting_approval", "{detail:#}");
    let approval = pending_approval_with_snapshot(&app, task).await;
    let id = approval["id"].as_i64().expect("approval id");
    let token =
        LinkSigner::new(&app.vault).token(id, chrono::Utc::now() + chrono::Duration::hours(1));
    let link = app.url(&format!("/approvals/{token}"));

    let browser = driver.session().await;
    browser.goto(&link).await.expect("open the approval link");
    let diff = browser
        .wait()
        .at_most(BROWSER_WAIT)
        .for_element(Locator::Css("#diff"))
        .await
        .expect("the page shows the change");
    let diff_text = diff.text().await.unwrap();
    assert!(
        diff_text.contains("SIMULATED_CHANGE.md"),
        "the diff names the changed file: {diff_text}"
    );
    let added = diff.find_all(Locator::Css(".add")).await.unwrap();
    assert!(!added.is_empty(), "the diff has added lines: {diff_text}");
    for line in &added {
        assert!(line.is_displayed().await.unwrap());
        let background = line.css_value("background-color").await.unwrap();
        assert_ne!(background, "rgba(0, 0, 0, 0)", "added lines are coloured");
    }
    let findings = browser.find(Locator::Css("#findings")).await.unwrap();
    let mut headings = Vec::new();
    for heading in findings.find_all(Locator::Css("h1")).await.unwrap() {
        headings.push(heading.text().await.unwrap());
    }
    for expected in ["Analysis", "Review"] {
        assert!(
            headings.iter().any(|h| h == expected),
            "the findings' markdown is rendered, with a heading {expected:?}: {headings:?}"
        );
    }
    keep_screenshot(&browser, "approval-pending").await;

    browser
        .find(Locator::Css("#approve"))
        .await
        .unwrap()
        .click()
        .await
        .expect("click Approve");
    let decided = browser
        .wait()
        .at_most(BROWSER_WAIT)
        .for_element(Locator::Css("#decided"))
        .await
        .expect("after approving, the page shows the decision");
    assert!(decided.is_displayed().await.unwrap());
    let decided_text = decided.text().await.unwrap();
    assert!(
        decided_text.contains("approve") && decided_text.contains("web"),
        "the page says what was decided and where: {decided_text}"
    );
    assert_eq!(browser.current_url().await.unwrap().as_str(), link);
    keep_screenshot(&browser, "approval-decided").await;
    browser.close().await.expect("end the browser session");

    let again = app.client.get(&link).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::GONE);
    let decided: Value = app
        .get(&format!("/api/v1/approvals/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(decided["status"], "decided", "{decided:#}");
    assert_eq!(decided["decision"], "approve");
    assert_eq!(decided["channel"], "web");
    let detail = wait_status(&app, task, &["done", "failed", "rolled_back"]).await;
    assert_eq!(detail["status"], "done", "{detail:#}");
}

/// The dashboard in a real browser: log in with a token, open the waiting task, try to
/// revise without a comment (the API's refusal is shown), then revise with one; the pipeline
/// works again and asks again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_decides_a_pending_approval_in_chromium() {
    let driver = ChromeDriver::start().await;
    let repo = common::git_repo();
    let app = engine_app(Db::Sqlite, "", |_| {}).await;
    add_project(&app, "shop", repo.path(), json!({})).await;
    let task = create_task(&app, "shop", "Fix the checkout crash", "high").await;
    let first = pending_approval_with_snapshot(&app, task).await;

    let browser = driver.session().await;
    browser
        .goto(&app.url("/"))
        .await
        .expect("open the dashboard");
    let token_input = browser
        .wait()
        .at_most(BROWSER_WAIT)
        .for_element(Locator::Css("#token"))
        .await
        .expect("the login form");
    token_input.send_keys(&app.token).await.unwrap();
    browser
        .find(Locator::Css("#login-form button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let row = format!("tr.task[data-id=\"{task}\"]");
    browser
        .wait()
        .at_most(BROWSER_WAIT)
        .for_element(Locator::Css(&row))
        .await
        .expect("the task is listed")
        .click()
        .await
        .unwrap();
    let revise = ".approval button[data-decision=\"revise\"]";
    browser
        .wait()
        .at_most(BROWSER_WAIT)
        .for_element(Locator::Css(revise))
        .await
        .expect("the pending approval has decision buttons")
        .click()
        .await
        .unwrap();
    let refusal = wait_for("the refusal of a revise without comment", WAIT, || async {
        let outcome = browser
            .find(Locator::Css(".approval .outcome"))
            .await
            .ok()?;
        let text = outcome.text().await.ok()?;
        (!text.is_empty()).then_some(text)
    })
    .await;
    assert!(refusal.contains("comment"), "{refusal}");
    keep_screenshot(&browser, "dashboard-refused").await;

    browser
        .find(Locator::Css(".approval .comment"))
        .await
        .unwrap()
        .send_keys("add a regression test")
        .await
        .unwrap();
    browser
        .find(Locator::Css(revise))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let decided = wait_for("the revise decision", WAIT, || async {
        let approval = app
            .get_json(&format!("/api/v1/approvals/{}", first["id"]))
            .await;
        (approval["status"] == "decided").then_some(approval)
    })
    .await;
    assert_eq!(decided["decision"], "revise");
    assert_eq!(decided["comment"], "add a regression test");
    assert_eq!(decided["channel"], "api");
    wait_for("the pipeline to ask again", WAIT, || async {
        let again = pending_approval_with_snapshot(&app, task).await;
        (again["id"] != first["id"]).then_some(())
    })
    .await;
    browser.close().await.expect("end the browser session");
}

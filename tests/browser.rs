//! The approval page in a real browser: headless Chromium opens a signed approval link, sees
//! the change and the findings, clicks Approve and sees the decided state; the API agrees and
//! the pipeline goes on to done.
//!
//! Chromium is driven over WebDriver by `fantoccini`, through Debian's `chromedriver`, which
//! this test starts on a free loopback port. Why WebDriver and not the DevTools protocol:
//! chromedriver is built from the same Debian source package as Chromium, so the two always
//! match, while the DevTools crates carry bindings generated from one Chromium revision's
//! protocol (chromiumoxide compiles a large generated crate, headless_chrome blocks a thread);
//! and WebDriver's find, click and wait are exactly the steps this test takes.
//!
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver` (Debian's `chromium` and
//! `chromium-driver`); `.ci/run` installs them when they are missing. Without them this test
//! fails: it never skips. `AIOPS_TEST_SCREENSHOTS=<dir>` keeps a PNG of each page it saw.

mod common;

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use aiops::approvals::LinkSigner;
use common::pipeline::{WAIT, add_project, create_task, engine_app, wait_status};
use common::{Db, TestApp, wait_for};
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use reqwest::StatusCode;
use serde_json::{Value, json};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// How long the browser may take to start, load a page or show an element.
const BROWSER_WAIT: Duration = Duration::from_secs(30);

/// A chromedriver child listening on a loopback port, in a process group of its own so that
/// dropping this value ends it and every Chromium it started, even when the test panics.
struct ChromeDriver {
    child: Child,
    url: String,
    /// The fresh `--user-data-dir` of its Chromium; removed after the processes are gone.
    profile: tempfile::TempDir,
}

impl ChromeDriver {
    /// Starts chromedriver and waits until it accepts sessions; fails the test, saying how
    /// to install them, when Chromium or chromedriver is missing.
    async fn start() -> ChromeDriver {
        for program in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(program).exists(),
                "{program} is missing: the browser test needs Debian's Chromium and ChromeDriver. \
                 Run `.ci/run` (it installs them), or `apt-get install chromium chromium-driver`."
            );
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free loopback port")
            .port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg("--log-level=SEVERE")
            .stdout(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("could not start {CHROMEDRIVER}: {e}"));
        let driver = ChromeDriver {
            child,
            url: format!("http://127.0.0.1:{port}"),
            profile: tempfile::tempdir().expect("temp dir"),
        };
        let status = format!("{}/status", driver.url);
        let client = reqwest::Client::new();
        wait_for(
            &format!("chromedriver to be ready on port {port}"),
            BROWSER_WAIT,
            || async {
                let status: Value = client.get(&status).send().await.ok()?.json().await.ok()?;
                (status["value"]["ready"] == true).then_some(())
            },
        )
        .await;
        driver
    }

    /// A new session in headless Chromium, started with the flags a closed network needs.
    async fn session(&self) -> Client {
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1280,2400",
        ]
        .map(String::from)
        .into_iter()
        .chain([format!("--user-data-dir={}", self.profile.path().display())])
        .collect::<Vec<_>>();
        let capabilities = json!({"goog:chromeOptions": {"binary": CHROMIUM, "args": args}});
        let Value::Object(capabilities) = capabilities else {
            unreachable!("capabilities are an object")
        };
        ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("headless Chromium did not start through chromedriver: {e}"))
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let group = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

/// Keeps a PNG of what the browser shows as `<name>.png` in `$AIOPS_TEST_SCREENSHOTS`, if set.
async fn keep_screenshot(browser: &Client, name: &str) {
    let Some(dir) = std::env::var_os("AIOPS_TEST_SCREENSHOTS") else {
        return;
    };
    let png = browser.screenshot().await.expect("screenshot");
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    std::fs::write(Path::new(&dir).join(format!("{name}.png")), png).expect("write screenshot");
}

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

//! The approval page in a real browser: headless Chromium opens a signed approval link, sees
//! the change and the findings, clicks Approve and sees the decided state; the API agrees and
//! the pipeline goes on to done.
//!
//! Chromium runs headless through `common::browser` (chromedriver over WebDriver).

mod common;

use aiops::approvals::LinkSigner;
use aiops::model::{ApprovalLinks, ProjectRole, TaskStatus};
use common::browser::{BROWSER_WAIT, ChromeDriver, click, keep_screenshot};
use common::people::{member, session_of};
use common::pipeline::{WAIT, add_project, create_task, engine_app, wait_status};
use common::{Db, TestApp, wait_for};
use std::time::Duration;

use fantoccini::{Client, Locator};
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
    // This project lets its links decide alone; the default (sign_in) is tested in tests/dashboard.rs.
    let project = app.store.project("shop").await.unwrap();
    app.store
        .set_approval_links(project.id, ApprovalLinks::Link)
        .await
        .unwrap();
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
    let findings = browser
        .find(Locator::Css("article.approval"))
        .await
        .unwrap();
    let mut headings = Vec::new();
    for heading in findings
        .find_all(Locator::Css(".findings h1"))
        .await
        .unwrap()
    {
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
        .find(Locator::Css("button.approve"))
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
        decided_text.contains("approve")
            && decided_text.contains("web")
            && decided_text.contains("via link"),
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
    assert_eq!(
        decided["decided_by"], "via link",
        "no notification was sent, so no channel is named"
    );
    let detail = wait_status(&app, task, &["done", "failed", "rolled_back"]).await;
    assert_eq!(detail["status"], "done", "{detail:#}");
}

/// Signs the browser in as the holder of `token`: the session cookie the sign-in page sets.
async fn sign_in(browser: &Client, app: &TestApp, token: &str) {
    browser
        .goto(&app.url("/healthz"))
        .await
        .expect("open the site");
    browser
        .execute(
            "document.cookie = arguments[0] + '=' + arguments[1] + '; path=/'; return null;",
            vec![json!(aiops::sessions::COOKIE), json!(token)],
        )
        .await
        .expect("set the session cookie");
}

/// The text of the element `css`, once it is there.
async fn text_of(browser: &Client, css: &str) -> String {
    browser
        .wait()
        .at_most(BROWSER_WAIT)
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css} is on the page: {e}"))
        .text()
        .await
        .unwrap()
}

/// Signed in, every view opens on seeded data and shows it: the overview counts the waiting
/// task, the list filters it, its page shows phases, tickets, findings and the diff, the inbox
/// offers it, a create form with an empty prompt shows the error at the field, and the page
/// itself runs no inline script (the CSP would refuse it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_views_show_seeded_data_in_chromium() {
    let driver = ChromeDriver::start().await;
    let repo = common::git_repo();
    let app = engine_app(Db::Sqlite, "", |_| {}).await;
    add_project(&app, "shop", repo.path(), json!({})).await;
    let task = create_task(&app, "shop", "Fix the checkout crash", "high").await;
    pending_approval_with_snapshot(&app, task).await;

    let browser = driver.session().await;
    let admin = session_of(&app, "admin").await;
    sign_in(&browser, &app, &admin).await;
    browser.goto(&app.url("/")).await.unwrap();
    let counts = text_of(&browser, "#project-counts tr[data-project=\"shop\"]").await;
    assert!(counts.starts_with("shop"), "{counts}");
    assert_eq!(text_of(&browser, "#waiting-count .big").await, "1");
    let waiting = text_of(&browser, "#waiting").await;
    assert!(waiting.contains("Fix the checkout crash"), "{waiting}");
    keep_screenshot(&browser, "dashboard-overview").await;

    browser
        .goto(&app.url("/tasks?status=awaiting_approval&q=checkout"))
        .await
        .unwrap();
    let row = text_of(&browser, &format!("tr.task[data-id=\"{task}\"]")).await;
    assert!(
        row.contains("awaiting approval"),
        "the status is written out: {row}"
    );
    keep_screenshot(&browser, "dashboard-tasks").await;
    browser
        .goto(&app.url("/tasks?q=no-such-words"))
        .await
        .unwrap();
    text_of(&browser, "p.empty").await;
    assert!(browser.find(Locator::Css("tr.task")).await.is_err());

    browser
        .goto(&app.url(&format!("/tasks/{task}")))
        .await
        .unwrap();
    let timeline = text_of(&browser, "#timeline").await;
    for phase in ["analyzing", "executing", "reviewing", "awaiting approval"] {
        assert!(
            timeline.contains(phase),
            "the timeline has {phase}: {timeline}"
        );
    }
    let kanban = text_of(&browser, "#kanban section[data-column=\"DONE\"]").await;
    assert!(
        kanban.contains("PRT-"),
        "done tickets are in the DONE column: {kanban}"
    );
    let findings = text_of(&browser, "#findings").await;
    assert!(findings.contains("analysis.md"), "{findings}");
    let diff = text_of(&browser, "#approvals #diff").await;
    assert!(diff.contains("SIMULATED_CHANGE.md"), "{diff}");
    let added = browser
        .find(Locator::Css("#approvals pre.diff .add"))
        .await
        .unwrap();
    assert_ne!(
        added.css_value("background-color").await.unwrap(),
        "rgba(0, 0, 0, 0)"
    );
    browser
        .find(Locator::Css("#approvals button.approve"))
        .await
        .expect("an admin may decide");
    keep_screenshot(&browser, "dashboard-task").await;

    browser.goto(&app.url("/inbox")).await.unwrap();
    text_of(&browser, "section.inbox-item").await;
    keep_screenshot(&browser, "dashboard-inbox").await;

    browser.goto(&app.url("/tasks")).await.unwrap();
    click(&browser, "#new-project option[value=\"shop\"]").await;
    click(&browser, "#create-task button[type=submit]").await;
    let error = text_of(&browser, "#prompt-error").await;
    assert!(error.contains("must not be empty"), "{error}");
    let prompt = browser.find(Locator::Css("#prompt")).await.unwrap();
    assert_eq!(
        prompt.attr("aria-invalid").await.unwrap().as_deref(),
        Some("true")
    );
    keep_screenshot(&browser, "dashboard-field-error").await;

    prompt.send_keys("Add a health check").await.unwrap();
    click(&browser, "#create-task button[type=submit]").await;
    let header = text_of(&browser, "#task-header").await;
    assert!(header.contains("shop"), "{header}");
    browser.goto(&app.url("/account")).await.unwrap();
    text_of(&browser, "#settings").await;
    keep_screenshot(&browser, "dashboard-account").await;
    browser.close().await.unwrap();
}

/// An approver decides from the inbox on a 400 px wide screen: a revise without a comment is
/// refused at the comment field, an approve is recorded as theirs through channel
/// `dashboard`, and the pipeline goes on to done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbox_decides_at_400px_in_chromium() {
    let driver = ChromeDriver::start().await;
    let repo = common::git_repo();
    let app = engine_app(Db::Sqlite, "", |_| {}).await;
    add_project(&app, "shop", repo.path(), json!({})).await;
    let anna = member(&app, "anna", "shop", ProjectRole::Approver).await;
    let task = create_task(&app, "shop", "Fix the checkout crash", "high").await;
    let approval = pending_approval_with_snapshot(&app, task).await;
    let id = approval["id"].as_i64().unwrap();

    let browser = driver.session().await;
    browser.set_window_size(400, 1400).await.unwrap();
    sign_in(&browser, &app, &anna).await;
    browser.goto(&app.url("/inbox")).await.unwrap();
    let width = browser
        .execute("return document.documentElement.clientWidth", vec![])
        .await
        .unwrap();
    assert!(
        width.as_i64().unwrap() <= 400,
        "the page is 400 px wide: {width}"
    );
    let item = format!("section.inbox-item[data-approval=\"{id}\"]");
    text_of(&browser, &item).await;
    let revise = format!("{item} button[value=\"revise\"]");
    let button = browser.find(Locator::Css(&revise)).await.unwrap();
    let right = browser
        .execute(
            "const r = arguments[0].getBoundingClientRect(); return r.right;",
            vec![serde_json::to_value(&button).unwrap()],
        )
        .await
        .unwrap();
    assert!(
        right.as_f64().unwrap() <= 400.0,
        "the buttons fit the screen: {right}"
    );
    button.click().await.unwrap();
    let error = text_of(&browser, &format!("#comment-{id}-error")).await;
    assert!(error.contains("comment"), "{error}");
    keep_screenshot(&browser, "inbox-400px-refused").await;

    browser
        .find(Locator::Css(&format!("#comment-{id}")))
        .await
        .unwrap()
        .send_keys("looks right")
        .await
        .unwrap();
    click(&browser, &format!("{item} button.approve")).await;
    let notice = text_of(&browser, "#decided-notice").await;
    assert!(notice.contains(&id.to_string()), "{notice}");
    keep_screenshot(&browser, "inbox-400px-decided").await;
    browser.close().await.unwrap();

    let decided = app.get_json(&format!("/api/v1/approvals/{id}")).await;
    assert_eq!(decided["decision"], "approve", "{decided:#}");
    assert_eq!(decided["channel"], "dashboard");
    assert_eq!(decided["decided_by"], "anna");
    assert_eq!(decided["comment"], "looks right");
    let detail = wait_status(&app, task, &["done", "failed", "rolled_back"]).await;
    assert_eq!(detail["status"], "done", "{detail:#}");
}

/// A task page open while the simulator's pipeline runs follows it without reloading: the
/// phase timeline grows, a ticket reaches the DONE column and a finding appears, each within
/// 2 seconds of the store having it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_page_follows_a_running_pipeline_in_chromium() {
    let driver = ChromeDriver::start().await;
    let repo = common::git_repo();
    let app = engine_app(Db::Sqlite, "--sim-phase-delay-ms 1200", |_| {}).await;
    add_project(&app, "shop", repo.path(), json!({})).await;
    let task = create_task(&app, "shop", "Fix the checkout crash", "high").await;

    let browser = driver.session().await;
    let admin = session_of(&app, "admin").await;
    sign_in(&browser, &app, &admin).await;
    browser
        .goto(&app.url(&format!("/tasks/{task}")))
        .await
        .unwrap();
    text_of(&browser, "#task-state").await;
    browser
        .execute("window.stillTheSamePage = true; return null;", vec![])
        .await
        .unwrap();
    let live = Duration::from_secs(2);
    let mut seen = Vec::new();
    for phase in ["ANALYZING", "PLANNING", "EXECUTING", "REVIEWING"] {
        // Once the store has the phase, the open page must show it within 2 s.
        wait_for(&format!("the store to have {phase}"), WAIT, || async {
            let events = app
                .store
                .task_events(task, Some("phase_changed"), 50)
                .await
                .ok()?;
            events
                .iter()
                .any(|e| e.data["data"]["to"] == phase)
                .then_some(())
        })
        .await;
        wait_for(
            &format!("the timeline to show {phase} without a reload"),
            live,
            || async {
                let found = browser
                    .find(Locator::Css(&format!(
                        "#timeline li[data-phase=\"{phase}\"]"
                    )))
                    .await
                    .ok()?;
                found.text().await.ok()
            },
        )
        .await;
        seen.push(phase);
        if phase == "EXECUTING" {
            keep_screenshot(&browser, "task-live-executing").await;
        }
    }
    wait_for("a finding to appear", live, || async {
        browser
            .find(Locator::Css("#findings section.finding"))
            .await
            .ok()
    })
    .await;
    wait_for("a ticket in the DONE column", live, || async {
        browser
            .find(Locator::Css(
                "#kanban section[data-column=\"DONE\"] .ticket",
            ))
            .await
            .ok()
    })
    .await;
    let same = browser
        .execute("return window.stillTheSamePage === true;", vec![])
        .await
        .unwrap();
    assert_eq!(same, Value::Bool(true), "the page was never reloaded");
    keep_screenshot(&browser, "task-live-later").await;
    browser.close().await.unwrap();
}

/// The horizontal overflow of the page: how far its content reaches past the window.
async fn overflow(browser: &Client) -> i64 {
    browser
        .execute(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth;",
            vec![],
        )
        .await
        .unwrap()
        .as_i64()
        .unwrap()
}

/// `project`'s newest task done, with a run that cost `cost_usd` (figures for the analytics).
async fn finish_with_a_run(app: &TestApp, project: &str, cost_usd: f64) {
    let task = app
        .get_json(&format!("/api/v1/tasks?project={project}"))
        .await["items"][0]["id"]
        .as_i64()
        .unwrap();
    aiops::tasks::set_status(&app.store, task, TaskStatus::Done, None, None)
        .await
        .unwrap();
    let aiops::store::Pool::Sqlite(pool) = app.store.pool() else {
        panic!("the browser tests run on SQLite");
    };
    sqlx::query(
        "INSERT INTO runs (task_id, kind, status, input_tokens, output_tokens, cache_read_tokens,
             cache_creation_tokens, cost_usd, started_at, finished_at)
         VALUES ($1, 'start', 'succeeded', 100, 10, 0, 0, $2, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)",
    )
    .bind(task)
    .bind(cost_usd)
    .execute(pool)
    .await
    .unwrap();
}

/// Signed in as the admin, the project, schedule, delivery, notification, audit, people,
/// team, account and analytics views open on seeded data and show it; the project settings
/// form shows its error at the field; at 400 px the project, people and analytics pages fit
/// the screen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn project_and_admin_views_show_seeded_data_in_chromium() {
    let driver = ChromeDriver::start().await;
    let app = TestApp::spawn_with(Db::Sqlite, |c| {
        c.github.reply = false;
        c.github.on_issue_opened = true;
        c.notify.backoff_ms = 3_600_000;
    })
    .await;
    common::pages::seed(&app).await;
    common::pages::seed_deliveries_and_dead_letters(&app).await;
    member(&app, "maya", "shop", ProjectRole::Maintainer).await;
    finish_with_a_run(&app, "shop", 0.42).await;
    finish_with_a_run(&app, "other", 0.17).await;
    let browser = driver.session().await;
    let admin = session_of(&app, "admin").await;
    sign_in(&browser, &app, &admin).await;

    let views: [(&str, &str, &str, &str); 10] = [
        (
            "/projects",
            "#projects tr[data-project=\"shop\"]",
            "shop",
            "views-projects",
        ),
        (
            "/projects/shop",
            "#schedules + .table-wrap",
            "shop-nightly",
            "views-project",
        ),
        (
            "/schedules",
            "tr[data-schedule=\"other-nightly\"]",
            "other",
            "views-schedules",
        ),
        (
            "/deliveries",
            "#delivery-list",
            "task created",
            "views-deliveries",
        ),
        (
            "/notifications",
            "#notification-list",
            "HTTP 410 from shop",
            "views-notifications",
        ),
        (
            "/audit?actor=admin",
            "#audit-list",
            "POST /api/v1/projects",
            "views-audit",
        ),
        (
            "/users",
            "#user-list tr[data-login=\"maya\"]",
            "maya",
            "views-users",
        ),
        ("/account", "#session-list", "this session", "views-account"),
        (
            "/teams",
            "section[data-team=\"bugfix\"]",
            "analyst",
            "views-teams",
        ),
        ("/analytics", "#cost-table", "$0.42", "views-analytics"),
    ];
    for (path, css, expected, shot) in views {
        browser.goto(&app.url(path)).await.unwrap();
        let text = text_of(&browser, css).await;
        assert!(
            text.contains(expected),
            "{path}: {css} shows {expected}: {text}"
        );
        keep_screenshot(&browser, shot).await;
    }

    browser.goto(&app.url("/projects/shop")).await.unwrap();
    let field = browser
        .find(Locator::Css("#max_concurrency"))
        .await
        .unwrap();
    field.clear().await.unwrap();
    field.send_keys("lots").await.unwrap();
    click(&browser, "#project-settings button[type=submit]").await;
    let error = text_of(&browser, "#max_concurrency-error").await;
    assert!(error.contains("whole number"), "{error}");
    let field = browser
        .find(Locator::Css("#max_concurrency"))
        .await
        .unwrap();
    assert_eq!(
        field.attr("aria-invalid").await.unwrap().as_deref(),
        Some("true")
    );
    keep_screenshot(&browser, "views-project-field-error").await;

    browser.set_window_size(400, 1400).await.unwrap();
    for (path, shot) in [
        ("/projects/shop", "views-project-400px"),
        ("/users", "views-users-400px"),
        ("/analytics", "views-analytics-400px"),
    ] {
        browser.goto(&app.url(path)).await.unwrap();
        text_of(&browser, "h1").await;
        assert!(overflow(&browser).await <= 0, "{path} fits 400 px");
        keep_screenshot(&browser, shot).await;
    }
    browser.close().await.unwrap();
}

/// A maintainer makes a team preset on `/teams` and runs a task with it from the task form;
/// the pipeline receives it: the simulator runs with `--team docs` and finds the preset file
/// in its worktree.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_preset_made_on_the_page_runs_a_task_in_chromium() {
    let driver = ChromeDriver::start().await;
    let repo = common::git_repo();
    let app = engine_app(Db::Sqlite, "", |_| {}).await;
    add_project(&app, "shop", repo.path(), json!({})).await;
    let maya = member(&app, "maya", "shop", ProjectRole::Maintainer).await;
    let browser = driver.session().await;
    sign_in(&browser, &app, &maya).await;

    browser.goto(&app.url("/teams")).await.unwrap();
    click(&browser, "#new-preset summary").await;
    let fields = [
        ("#new-name", "docs"),
        ("#new-description", "Writes and checks documentation"),
        ("#new-keywords", "docs"),
        (
            "#new-members",
            "leader | contextualizing | Gather the context and drive the phases\n\
             scribe | executing | Write the docs the task asks for",
        ),
    ];
    for (css, value) in fields {
        let input = browser
            .wait()
            .at_most(BROWSER_WAIT)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"));
        input.send_keys(value).await.unwrap();
    }
    keep_screenshot(&browser, "preset-new").await;
    click(&browser, "form[data-form=\"new\"] button[type=\"submit\"]").await;
    wait_for("the new preset on the page", BROWSER_WAIT, || async {
        let text = browser
            .find(Locator::Css("main"))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.contains("Writes and checks documentation")
            .then_some(())
    })
    .await;

    browser.goto(&app.url("/tasks")).await.unwrap();
    let project = browser
        .wait()
        .at_most(BROWSER_WAIT)
        .for_element(Locator::Css("#new-project"))
        .await
        .unwrap();
    project.select_by_value("shop").await.unwrap();
    let team = browser.find(Locator::Css("#new-team")).await.unwrap();
    team.select_by_value("docs")
        .await
        .expect("the new preset is offered");
    let prompt = browser.find(Locator::Css("#prompt")).await.unwrap();
    prompt
        .send_keys("Document the checkout flow")
        .await
        .unwrap();
    click(&browser, "#create-task button[type=\"submit\"]").await;
    let id = wait_for("the new task's page", BROWSER_WAIT, || async {
        let url = browser.current_url().await.ok()?;
        url.path().strip_prefix("/tasks/")?.parse::<i64>().ok()
    })
    .await;
    let detail = wait_status(&app, id, &["awaiting_approval"]).await;
    assert_eq!(detail["team"], "docs");
    assert_eq!(
        detail["team_ran"], "docs",
        "the pipeline ran with --team docs"
    );
    let exec = app.store.task_exec(id).await.unwrap();
    let preset = std::path::PathBuf::from(exec.worktree_path.unwrap()).join(".party/teams/docs.md");
    let text = std::fs::read_to_string(&preset).expect("the preset file in the worktree");
    assert!(text.contains("### scribe"), "{text}");
    browser.refresh().await.unwrap();
    text_of(&browser, "#task-state").await;
    keep_screenshot(&browser, "preset-task").await;
    browser.close().await.unwrap();
}

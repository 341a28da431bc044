//! The dashboard over plain HTTP, as a browser without JavaScript sees it: the session
//! cookie signs in, reads are limited to the reader's projects, a viewer gets no control and
//! a 403 when posting anyway, forms need the session's CSRF token and this site's Origin,
//! pages speak Korean when asked, carry the strict CSP, and the approval link needs a
//! signed-in approver by default.

mod common;

use aiops::approvals::LinkSigner;
use aiops::model::ProjectRole;
use common::pages::{client, csrf_of, page, post_form};
use common::people::{member, session_of};
use common::pipeline::{WAIT, add_project, create_task, engine_app};
use common::{Db, TestApp, wait_for};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// The task's pending approval, once its snapshot is taken.
async fn pending_approval(app: &TestApp, task: i64) -> i64 {
    wait_for("the pending approval with its snapshot", WAIT, || async {
        let page: Value = app
            .get(&format!("/api/v1/approvals?task={task}&status=pending"))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        page["items"]
            .as_array()?
            .iter()
            .find(|a| !a["snapshot_at"].is_null())?["id"]
            .as_i64()
    })
    .await
}

async fn a_viewer_sees_no_control_and_is_refused_when_posting(db: Db) {
    let repo = common::git_repo();
    let app = engine_app(db, "", |_| {}).await;
    add_project(&app, "shop", repo.path(), json!({})).await;
    let vera = member(&app, "vera", "shop", ProjectRole::Viewer).await;
    let task = create_task(&app, "shop", "Fix the checkout crash", "high").await;
    let approval = pending_approval(&app, task).await;

    let (status, html) = page(&app, &vera, &format!("/tasks/{task}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains("SIMULATED_CHANGE.md"),
        "a viewer reads the change"
    );
    for control in [
        "button class=\"approve\"",
        "id=\"cancel\"",
        "id=\"retry\"",
        "decide-form",
    ] {
        assert!(!html.contains(control), "a viewer sees no {control}");
    }
    let (_, list) = page(&app, &vera, "/tasks").await;
    assert!(
        !list.contains("id=\"create-task\""),
        "a viewer gets no create form"
    );
    let csrf = csrf_of(&html);
    let (status, _) = post_form(
        &app,
        &vera,
        &format!("/inbox/{approval}"),
        &[("csrf", &csrf), ("decision", "approve"), ("comment", "")],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = post_form(
        &app,
        &vera,
        &format!("/tasks/{task}/cancel"),
        &[("csrf", &csrf)],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = post_form(
        &app,
        &vera,
        "/tasks",
        &[("csrf", &csrf), ("project", "shop"), ("prompt", "x")],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let still: Value = app.get_json(&format!("/api/v1/approvals/{approval}")).await;
    assert_eq!(still["status"], "pending");
    let audit: Value = app.get_json("/api/v1/audit?principal=vera").await;
    let refused = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["outcome"] == "403")
        .count();
    assert!(refused >= 3, "each refusal is audited: {audit:#}");

    // An approver's form without the session's token, or from another site, changes nothing.
    let anna = member(&app, "anna", "shop", ProjectRole::Approver).await;
    let (_, html) = page(&app, &anna, "/inbox").await;
    let csrf = csrf_of(&html);
    let (status, _) = post_form(
        &app,
        &anna,
        &format!("/inbox/{approval}"),
        &[("csrf", "forged"), ("decision", "approve")],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = post_form(
        &app,
        &anna,
        &format!("/inbox/{approval}"),
        &[("csrf", &csrf), ("decision", "approve")],
        Some("https://evil.example"),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let still: Value = app.get_json(&format!("/api/v1/approvals/{approval}")).await;
    assert_eq!(still["status"], "pending");
    let (status, _) = post_form(
        &app,
        &anna,
        &format!("/inbox/{approval}"),
        &[("csrf", &csrf), ("decision", "approve")],
        Some(&app.base),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let decided: Value = app.get_json(&format!("/api/v1/approvals/{approval}")).await;
    assert_eq!(
        (decided["decided_by"].as_str(), decided["channel"].as_str()),
        (Some("anna"), Some("dashboard"))
    );
}

async fn a_user_sees_only_their_projects(db: Db) {
    let app = TestApp::spawn(db).await;
    let repo = common::git_repo();
    let other_repo = common::git_repo();
    add_project(&app, "shop", repo.path(), json!({})).await;
    add_project(&app, "other", other_repo.path(), json!({})).await;
    let shop_task = create_task(&app, "shop", "Shop only work", "normal").await;
    let other_task = create_task(&app, "other", "Other project work", "normal").await;
    let olga = member(&app, "olga", "other", ProjectRole::Operator).await;

    let (_, list) = page(&app, &olga, "/tasks").await;
    assert!(list.contains("Other project work"));
    assert!(
        !list.contains("Shop only work"),
        "another project's task is not listed"
    );
    let (_, overview) = page(&app, &olga, "/").await;
    assert!(overview.contains("data-project=\"other\""));
    assert!(
        !overview.contains("data-project=\"shop\""),
        "another project is not counted"
    );
    let (status, _) = page(&app, &olga, &format!("/tasks/{shop_task}")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = page(&app, &olga, &format!("/tasks/{other_task}")).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = page(&app, &olga, &format!("/live?task={shop_task}")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

/// A finding of a megabyte: the task's detail (API and page) carries its first
/// `FINDING_PREVIEW_CHARS` characters, counted as characters (Korean text included), with
/// its size and a link; the whole one is one request away, for its project's members only.
async fn a_huge_finding_shows_its_beginning_and_whole_on_its_own_page(db: Db) {
    let app = TestApp::spawn(db).await;
    let repo = common::git_repo();
    let other_repo = common::git_repo();
    add_project(&app, "shop", repo.path(), json!({})).await;
    add_project(&app, "other", other_repo.path(), json!({})).await;
    let task = create_task(&app, "shop", "Write a lot", "normal").await;
    let huge = format!("# 분석\n{}\nTHE-END", "가나다라 findings ".repeat(60_000));
    let size = huge.chars().count() as i64;
    let now = chrono::Utc::now();
    for (name, content) in [("huge.md", huge.as_str()), ("small.md", "short and whole")] {
        app.store
            .upsert_finding(task, name, content, &format!("{}", content.len()), now)
            .await
            .unwrap();
    }

    let detail = app.get_json(&format!("/api/v1/tasks/{task}")).await;
    let findings = detail["findings"].as_array().unwrap();
    let huge_one = findings.iter().find(|f| f["name"] == "huge.md").unwrap();
    let preview = huge_one["content"].as_str().unwrap();
    let preview_chars = aiops::tasks::FINDING_PREVIEW_CHARS as usize;
    assert_eq!(preview.chars().count(), preview_chars);
    assert!(huge.starts_with(preview));
    assert_eq!(huge_one["size"], size);
    assert_eq!(huge_one["truncated"], true);
    let small = findings.iter().find(|f| f["name"] == "small.md").unwrap();
    assert_eq!(small["content"], "short and whole");
    assert_eq!(small["truncated"], false);

    let whole = app
        .get_json(&format!("/api/v1/tasks/{task}/findings/huge.md"))
        .await;
    assert_eq!(whole["content"].as_str().unwrap(), huge);
    let missing = app
        .get(&format!("/api/v1/tasks/{task}/findings/nothing.md"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);

    let maya = member(&app, "maya", "shop", ProjectRole::Viewer).await;
    let (status, task_page) = page(&app, &maya, &format!("/tasks/{task}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        !task_page.contains("THE-END"),
        "the page holds the beginning only"
    );
    assert!(task_page.contains(&format!("href=\"/tasks/{task}/findings/huge.md\"")));
    let (status, finding_page) =
        page(&app, &maya, &format!("/tasks/{task}/findings/huge.md")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(finding_page.contains("THE-END"));

    let olga = member(&app, "olga", "other", ProjectRole::Maintainer).await;
    let (status, page_text) = page(&app, &olga, &format!("/tasks/{task}/findings/huge.md")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(!page_text.contains("THE-END"));
}

async fn pages_need_a_session_speak_korean_and_carry_a_strict_csp(db: Db) {
    let app = TestApp::spawn(db).await;
    let admin = session_of(&app, "admin").await;
    let anonymous = client()
        .get(app.url("/tasks?status=failed"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        anonymous.headers()["location"].to_str().unwrap(),
        "/sign-in?next=%2Ftasks%3Fstatus%3Dfailed"
    );

    let response = client()
        .get(app.url("/"))
        .header("cookie", format!("{}={}", aiops::sessions::COOKIE, admin))
        .header("accept-language", "ko-KR,ko;q=0.9,en;q=0.5")
        .send()
        .await
        .unwrap();
    let csp = response.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("script-src 'self'")
            && csp.contains("style-src 'self'")
            && !csp.contains("unsafe"),
        "{csp}"
    );
    let html = response.text().await.unwrap();
    assert!(html.contains("<html lang=\"ko\">"), "{html}");
    for korean in ["개요", "작업", "승인", "내 결정을 기다리는 승인"] {
        assert!(html.contains(korean), "the page shows {korean}");
    }
    assert!(
        !html.contains("<style") && !html.contains(" style=") && !html.contains("<script>"),
        "no inline style or script"
    );

    let stylesheet = html
        .split("href=\"/static/")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let css = client()
        .get(app.url(&format!("/static/{stylesheet}")))
        .send()
        .await
        .unwrap();
    assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");
    assert!(
        css.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("immutable")
    );
    let stale = client()
        .get(app.url("/static/000000000000/app.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), StatusCode::NOT_FOUND);

    // The person's setting wins over the browser's.
    let (_, html) = page(&app, &admin, "/account").await;
    let csrf = csrf_of(&html);
    let (status, html) = post_form(
        &app,
        &admin,
        "/account",
        &[
            ("csrf", &csrf),
            ("language", "ko"),
            ("time_zone", "Mars/Olympus"),
        ],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        html.contains("id=\"time_zone-error\""),
        "the error is at the field"
    );
    let (status, _) = post_form(
        &app,
        &admin,
        "/account",
        &[
            ("csrf", &csrf),
            ("language", "ko"),
            ("time_zone", "Asia/Seoul"),
        ],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, html) = page(&app, &admin, "/tasks").await;
    assert!(
        html.contains("조건에 맞는 작업이 없습니다"),
        "Korean from the setting, without Accept-Language"
    );
}

async fn an_approval_link_needs_a_signed_in_approver_by_default(db: Db) {
    let repo = common::git_repo();
    let app = engine_app(db, "", |_| {}).await;
    add_project(&app, "shop", repo.path(), json!({})).await;
    let vera = member(&app, "vera", "shop", ProjectRole::Viewer).await;
    let anna = member(&app, "anna", "shop", ProjectRole::Approver).await;
    let task = create_task(&app, "shop", "Fix the checkout crash", "high").await;
    let approval = pending_approval(&app, task).await;
    let token = LinkSigner::new(&app.vault)
        .token(approval, chrono::Utc::now() + chrono::Duration::hours(1));
    let link = format!("/approvals/{token}");

    let (status, html) = page(&app, "nobody", &link).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("SIMULATED_CHANGE.md") && html.contains("id=\"sign-in-first\""));
    assert!(
        !html.contains("decide-form") && !html.contains("name=\"name\""),
        "no form, no name field"
    );
    let (status, _) = post_form(
        &app,
        "nobody",
        &link,
        &[("csrf", "x"), ("decision", "approve")],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let (_, html) = page(&app, &vera, &link).await;
    assert!(html.contains("id=\"not-allowed\"") && !html.contains("decide-form"));

    let (_, html) = page(&app, &anna, &link).await;
    assert!(html.contains("decide-form"), "an approver gets the buttons");
    let csrf = html
        .split("name=\"csrf\" value=\"")
        .last()
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    let (status, _) = post_form(
        &app,
        &anna,
        &link,
        &[("csrf", &csrf), ("decision", "approve")],
        Some("https://evil.example"),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "a POST from another site is refused"
    );
    let (status, _) = post_form(
        &app,
        &anna,
        &link,
        &[("csrf", &csrf), ("decision", "approve"), ("comment", "ok")],
        Some(&app.base),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let decided: Value = app.get_json(&format!("/api/v1/approvals/{approval}")).await;
    assert_eq!(
        (decided["decided_by"].as_str(), decided["channel"].as_str()),
        (Some("anna"), Some("web"))
    );
    let (status, html) = page(&app, &anna, &link).await;
    assert_eq!(status, StatusCode::GONE);
    assert!(html.contains("anna"));
}

on_both_databases!(
    a_viewer_sees_no_control_and_is_refused_when_posting,
    a_user_sees_only_their_projects,
    a_huge_finding_shows_its_beginning_and_whole_on_its_own_page,
    pages_need_a_session_speak_korean_and_carry_a_strict_csp,
    an_approval_link_needs_a_signed_in_approver_by_default,
);

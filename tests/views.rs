//! The dashboard's project, schedule, delivery, notification, audit, people and team pages
//! over plain HTTP: each shows its seeded content to a member, a viewer gets no control and
//! a 403 when posting anyway (nothing changes), another project's data never shows, and each
//! form shows its error at the field. Decisions made here are audited with channel
//! `dashboard`.

mod common;

use aiops::model::{NotificationStatus, ProjectRole, TaskStatus};
use aiops::tasks;
use common::pages::{csrf_for, page, post_form, seed, seed_deliveries_and_dead_letters};
use common::people::{member, session_of};
use common::pipeline::create_task;
use common::{Db, TestApp};
use reqwest::StatusCode;

async fn views_app(db: Db) -> TestApp {
    let app = TestApp::spawn_with(db, |c| {
        c.github.reply = false;
        c.github.on_issue_opened = true;
        c.notify.backoff_ms = 3_600_000;
    })
    .await;
    seed(&app).await;
    app
}

async fn projects_show_health_and_parts_and_maintainers_edit_settings(db: Db) {
    let app = views_app(db).await;
    let maya = member(&app, "maya", "shop", ProjectRole::Maintainer).await;

    // One task done, then one failed: the last outcome is the failure, the success rate 50%.
    let first = app.get_json("/api/v1/tasks?project=shop").await["items"][0]["id"]
        .as_i64()
        .unwrap();
    let second = create_task(&app, "shop", "Another shop fix", "normal").await;
    for (task, status) in [(first, TaskStatus::Done), (second, TaskStatus::Failed)] {
        tasks::set_status(&app.store, task, status, None, None)
            .await
            .unwrap();
    }
    let (status, list) = page(&app, &maya, "/projects").await;
    assert_eq!(status, StatusCode::OK);
    let shop_row = list
        .split(r#"data-project="shop""#)
        .nth(1)
        .unwrap()
        .split("</tr>")
        .next()
        .unwrap();
    assert!(
        shop_row.contains("badge s-failed") && shop_row.contains("50%"),
        "{shop_row}"
    );
    assert!(list.contains(r#"data-project="shop""#), "{list}");
    assert!(
        !list.contains(r#"data-project="other""#),
        "another project is not listed"
    );

    let (status, html) = page(&app, &maya, "/projects/shop").await;
    assert_eq!(status, StatusCode::OK);
    for seeded in [
        "shop-deploy-key",
        "hooks.example.test/shop",
        "shop-nightly",
        "shop-issues",
        "Fix the shop checkout crash",
        r#"data-login="maya""#,
        r#"id="project-settings""#,
        "run-now",
        "schedules/shop-nightly/enabled",
    ] {
        assert!(html.contains(seeded), "the project page shows {seeded}");
    }
    for foreign in [
        "other-deploy-key",
        "other-nightly",
        "other-issues",
        "Fix the other",
    ] {
        assert!(
            !html.contains(foreign),
            "the project page never shows {foreign}"
        );
    }
    assert!(
        !html.contains("not-a-real-secret-value"),
        "no credential value"
    );

    // A value that is not a number, and one the project's rules refuse, come back at the field.
    let csrf = csrf_for(&app, &maya).await;
    let settings = |concurrency: &'static str| {
        vec![
            ("csrf", csrf.clone()),
            ("local_path", String::new()),
            ("repo_url", String::new()),
            ("default_branch", "main".into()),
            ("branch_strategy", "aiops/{team}/{task_id}".into()),
            ("max_concurrency", concurrency.into()),
            ("decide_role", "approver".into()),
            ("required_approvals", "1".into()),
            ("approval_links", "link".into()),
        ]
    };
    let form = settings("many");
    let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, html) = post_form(&app, &maya, "/projects/shop", &pairs, None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains(r#"id="max_concurrency-error""#), "{html}");
    let (status, html) = post_form(
        &app,
        &maya,
        "/projects/shop",
        &pairs_with(&settings("3"), "local_path", ""),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        html.contains(r#"id="repo_url-error""#),
        "a project needs a remote or a checkout: {html}"
    );
    let local = app.get_json("/api/v1/projects/shop").await["local_path"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, _) = post_form(
        &app,
        &maya,
        "/projects/shop",
        &pairs_with(&settings("3"), "local_path", &local),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let project = app.get_json("/api/v1/projects/shop").await;
    assert_eq!(project["max_concurrency"], 3);
    let shop_id = app.store.project("shop").await.unwrap().id;
    assert_eq!(
        app.store.approval_links(shop_id).await.unwrap().as_str(),
        "link"
    );

    // Schedules: disable, then run now; both through the schedule use cases.
    let (status, _) = post_form(
        &app,
        &maya,
        "/schedules/shop-nightly/enabled",
        &[("csrf", &csrf), ("enabled", "false")],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(
        app.get_json("/api/v1/schedules/shop-nightly").await["enabled"],
        false
    );
    let (status, _) = post_form(
        &app,
        &maya,
        "/schedules/shop-nightly/run",
        &[("csrf", &csrf)],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let tasks = app.get_json("/api/v1/tasks?project=shop").await;
    let by_schedule = tasks["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["source"] == "cron")
        .expect("run now made a task")
        .clone();
    assert_eq!(by_schedule["prompt"], "Nightly check of shop-nightly");
    let (_, across) = page(&app, &maya, "/schedules").await;
    assert!(
        across.contains(r#"data-schedule="shop-nightly""#) && !across.contains("other-nightly")
    );

    let audit = app.get_json("/api/v1/audit?principal=maya").await;
    let entries = audit["items"].as_array().unwrap();
    assert!(
        entries
            .iter()
            .any(|e| e["action"] == "dashboard POST /projects/{name}"
                && e["outcome"] == "200"
                && e["detail"]["channel"] == "dashboard"),
        "{audit:#}"
    );
    assert!(
        entries
            .iter()
            .any(|e| e["action"] == "dashboard POST /schedules/{name}/run")
    );
}

/// `form` as pairs, with `field` set to `value`.
fn pairs_with<'a>(
    form: &'a [(&'a str, String)],
    field: &str,
    value: &'a str,
) -> Vec<(&'a str, &'a str)> {
    form.iter()
        .map(|(k, v)| (*k, if *k == field { value } else { v.as_str() }))
        .collect()
}

async fn a_viewer_gets_no_control_and_403_and_other_projects_stay_hidden(db: Db) {
    let app = views_app(db).await;
    let vera = member(&app, "vera", "shop", ProjectRole::Viewer).await;
    let olga = member(&app, "olga", "other", ProjectRole::Operator).await;

    let (status, html) = page(&app, &vera, "/projects/shop").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("shop-nightly") && html.contains("shop-deploy-key"));
    for control in [
        r#"id="project-settings""#,
        "run-now",
        "/enabled",
        "button class=\"toggle\"",
    ] {
        assert!(!html.contains(control), "a viewer sees no {control}");
    }
    let (_, schedules) = page(&app, &vera, "/schedules").await;
    assert!(schedules.contains("shop-nightly") && !schedules.contains("run-now"));
    let csrf = csrf_for(&app, &vera).await;
    for (path, form) in [
        (
            "/projects/shop",
            vec![
                ("csrf", csrf.as_str()),
                ("max_concurrency", "7"),
                ("decide_role", "approver"),
                ("approval_links", "link"),
            ],
        ),
        (
            "/schedules/shop-nightly/enabled",
            vec![("csrf", csrf.as_str()), ("enabled", "false")],
        ),
        ("/schedules/shop-nightly/run", vec![("csrf", csrf.as_str())]),
    ] {
        let (status, _) = post_form(&app, &vera, path, &form, None).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "a viewer posting to {path}");
    }
    assert_eq!(
        app.get_json("/api/v1/projects/shop").await["max_concurrency"],
        1
    );
    assert_eq!(
        app.get_json("/api/v1/schedules/shop-nightly").await["enabled"],
        true
    );
    let tasks = app.get_json("/api/v1/tasks?project=shop").await;
    assert_eq!(
        tasks["items"].as_array().unwrap().len(),
        1,
        "no task was run"
    );

    let (status, _) = page(&app, &olga, "/projects/shop").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "another project's page");
    let (_, list) = page(&app, &olga, "/projects").await;
    assert!(list.contains(r#"data-project="other""#) && !list.contains(r#"data-project="shop""#));
    let (_, schedules) = page(&app, &olga, "/schedules").await;
    assert!(schedules.contains("other-nightly") && !schedules.contains("shop-nightly"));
    let (status, _) = post_form(
        &app,
        &olga,
        "/schedules/shop-nightly/run",
        &[("csrf", &csrf_for(&app, &olga).await)],
        None,
    )
    .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "an operator of another project"
    );
    for admin_only in ["/audit", "/users"] {
        let (status, _) = page(&app, &olga, admin_only).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{admin_only} is for admins");
    }
}

async fn deliveries_and_notifications_show_their_project_and_replay_and_retry(db: Db) {
    let app = views_app(db).await;
    let shop_dead = seed_deliveries_and_dead_letters(&app).await;
    let otto = member(&app, "otto", "shop", ProjectRole::Operator).await;
    let vera = member(&app, "vera", "shop", ProjectRole::Viewer).await;
    let olga = member(&app, "olga", "other", ProjectRole::Operator).await;

    let (_, html) = page(&app, &otto, "/deliveries").await;
    assert!(
        html.contains("delivery-list") && html.contains(r#"data-outcome="task_created""#),
        "{html}"
    );
    assert!(
        !html.contains("<code>ping</code>"),
        "a delivery that made no task is for those who see every project"
    );
    assert!(html.contains("/replay"), "an operator may replay");
    let (_, html) = page(&app, &olga, "/deliveries").await;
    assert!(!html.contains("task_created"), "another project's delivery");
    let admin = session_of(&app, "admin").await;
    let (_, html) = page(&app, &admin, "/deliveries").await;
    assert!(
        html.contains("<code>ping</code>"),
        "an admin sees every delivery"
    );

    let (_, html) = page(&app, &vera, "/deliveries").await;
    assert!(
        html.contains("task_created") && !html.contains("/replay"),
        "a viewer gets no replay"
    );
    let shop_delivery = app.get_json("/api/v1/deliveries").await["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["outcome"] == "task_created")
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let before = app.get_json("/api/v1/deliveries").await["items"]
        .as_array()
        .unwrap()
        .len();
    let (status, _) = post_form(
        &app,
        &vera,
        &format!("/deliveries/{shop_delivery}/replay"),
        &[("csrf", &csrf_for(&app, &vera).await)],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        app.get_json("/api/v1/deliveries").await["items"]
            .as_array()
            .unwrap()
            .len(),
        before
    );
    let (status, _) = post_form(
        &app,
        &otto,
        &format!("/deliveries/{shop_delivery}/replay"),
        &[("csrf", &csrf_for(&app, &otto).await)],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(
        app.get_json("/api/v1/deliveries").await["items"]
            .as_array()
            .unwrap()
            .len(),
        before + 1,
        "the replay is recorded as a delivery"
    );

    let (_, html) = page(&app, &otto, "/notifications?status=dead").await;
    assert!(
        html.contains("HTTP 410 from shop") && !html.contains("HTTP 410 from other"),
        "{html}"
    );
    assert!(html.contains(&format!("/notifications/{shop_dead}/retry")));
    let (status, html) = page(&app, &otto, "/notifications?status=lost").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains(r#"id="status-error""#),
        "a bad filter is shown at its field"
    );
    let (_, html) = page(&app, &vera, "/notifications?status=dead").await;
    assert!(html.contains("HTTP 410 from shop") && !html.contains("/retry"));
    let (status, _) = post_form(
        &app,
        &vera,
        &format!("/notifications/{shop_dead}/retry"),
        &[("csrf", &csrf_for(&app, &vera).await)],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        app.store.notification(shop_dead).await.unwrap().status,
        NotificationStatus::Dead
    );
    let (status, _) = post_form(
        &app,
        &otto,
        &format!("/notifications/{shop_dead}/retry"),
        &[("csrf", &csrf_for(&app, &otto).await)],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_ne!(
        app.store.notification(shop_dead).await.unwrap().status,
        NotificationStatus::Dead
    );
}

async fn admins_read_the_audit_log_and_manage_people_and_tokens(db: Db) {
    let app = views_app(db).await;
    let admin = session_of(&app, "admin").await;
    let maya = member(&app, "maya", "shop", ProjectRole::Maintainer).await;
    let vera = member(&app, "vera", "shop", ProjectRole::Viewer).await;
    let grant = aiops::auth::TokenGrant {
        name: "maya-laptop".into(),
        scopes: aiops::model::Scopes::ALL,
        project_id: None,
        expires_at: None,
        service: false,
    };
    let maya_id = app.store.user("maya").await.unwrap().id;
    let (maya_token, _) = aiops::auth::create_token_for(&app.store, maya_id, &grant)
        .await
        .unwrap();
    let csrf = csrf_for(&app, &maya).await;
    post_form(
        &app,
        &maya,
        "/schedules/shop-nightly/enabled",
        &[("csrf", &csrf), ("enabled", "false")],
        None,
    )
    .await;

    let (status, html) = page(&app, &admin, "/audit?actor=maya&project=shop").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains("dashboard POST /schedules/{name}/enabled"),
        "{html}"
    );
    let (_, html) = page(&app, &admin, "/audit?project=other").await;
    assert!(
        !html.contains("schedules/shop-nightly"),
        "the project filter keeps shop's entries out"
    );
    let (status, html) = page(&app, &admin, "/audit?from=2026-13-45").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains(r#"id="from-error""#));

    let (_, html) = page(&app, &admin, "/users").await;
    assert!(html.contains(r#"data-login="maya""#) && html.contains(r#"data-token="maya-laptop""#));
    let (_, html) = page(&app, &maya, "/account").await;
    assert!(html.contains(r#"data-token="maya-laptop""#) && html.contains("session-list"));
    // Another member cannot revoke maya's token; she can.
    let (status, _) = post_form(
        &app,
        &vera,
        "/tokens/maya-laptop/revoke",
        &[("csrf", &csrf_for(&app, &vera).await), ("back", "/account")],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        aiops::auth::authenticate(&app.store, &maya_token)
            .await
            .is_ok()
    );
    let (status, _) = post_form(
        &app,
        &maya,
        "/tokens/maya-laptop/revoke",
        &[("csrf", &csrf), ("back", "/account")],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(
        aiops::auth::authenticate(&app.store, &maya_token)
            .await
            .is_err(),
        "revoked at once"
    );

    // A member may not disable anyone; the admin disables vera, whose session then stops.
    let (status, _) = post_form(
        &app,
        &maya,
        "/users/vera/status",
        &[("csrf", &csrf), ("status", "disabled")],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let admin_csrf = csrf_for(&app, &admin).await;
    let (status, _) = post_form(
        &app,
        &admin,
        "/users/vera/status",
        &[("csrf", &admin_csrf), ("status", "disabled")],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (status, _) = page(&app, &vera, "/projects").await;
    assert_eq!(
        status,
        StatusCode::SEE_OTHER,
        "a disabled user's session is refused"
    );
    post_form(
        &app,
        &admin,
        "/users/vera/status",
        &[("csrf", &admin_csrf), ("status", "active")],
        None,
    )
    .await;
    let (status, _) = post_form(
        &app,
        &admin,
        "/users/maya/sign-out",
        &[("csrf", &admin_csrf)],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (status, _) = page(&app, &maya, "/projects").await;
    assert_eq!(status, StatusCode::SEE_OTHER, "her sessions were ended");
}

/// A maintainer adds a credential (its value never shown again) and a channel on the project
/// page, sees a refused field's error at the field, and deletes both; a viewer gets no form
/// and a 403 that changes nothing. Each change is audited.
async fn maintainers_manage_credentials_and_channels_on_the_project_page(db: Db) {
    let app = views_app(db).await;
    let maya = member(&app, "maya", "shop", ProjectRole::Maintainer).await;
    let vic = member(&app, "vic", "shop", ProjectRole::Viewer).await;
    let csrf = csrf_for(&app, &maya).await;
    let origin = Some(app.base.as_str());
    let (_, html) = page(&app, &maya, "/projects/shop").await;
    assert!(html.contains(r#"id="credential-form""#) && html.contains(r#"id="channel-form""#));

    let secret = "s3cr3t-VALUE-never-shown";
    let form = [
        ("csrf", csrf.as_str()),
        ("name", "pager-token"),
        ("kind", "token"),
        ("value", secret),
    ];
    let (status, _) = post_form(&app, &maya, "/projects/shop/credentials", &form, origin).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, html) = page(&app, &maya, "/projects/shop").await;
    assert!(html.contains(r#"data-name="pager-token""#), "listed");
    assert!(!html.contains(secret), "the value is never shown");
    let listed = app.get_json("/api/v1/credentials?project=shop").await;
    let pager = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "pager-token")
        .cloned();
    let pager_id = pager.expect("stored")["id"].as_i64().unwrap();

    // A loader hook as the variable: refused at its field, the value not sent back.
    let form = [
        ("csrf", csrf.as_str()),
        ("name", "sneaky"),
        ("kind", "token"),
        ("env_var", "LD_PRELOAD"),
        ("value", "another-secret-value"),
    ];
    let (status, html) = post_form(&app, &maya, "/projects/shop/credentials", &form, origin).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains(r#"id="credential_env_var-error""#), "{html}");
    assert!(!html.contains("another-secret-value"));

    let form = [
        ("csrf", csrf.as_str()),
        ("kind", "webhook"),
        ("target", "ftp://hooks.example.test/x"),
        ("credential", "pager-token"),
        ("event_task_failed", "on"),
    ];
    let (status, html) = post_form(&app, &maya, "/projects/shop/channels", &form, origin).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains(r#"id="channel_target-error""#), "{html}");
    assert!(
        html.contains("ftp://hooks.example.test/x"),
        "what was typed stays in the form"
    );
    let form = [
        ("csrf", csrf.as_str()),
        ("kind", "slack"),
        ("credential", "pager-token"),
    ];
    let (status, html) = post_form(&app, &maya, "/projects/shop/channels", &form, origin).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "no event chosen");
    assert!(html.contains(r#"id="channel_events-error""#), "{html}");
    let form = [
        ("csrf", csrf.as_str()),
        ("kind", "slack"),
        ("credential", "pager-token"),
        ("event_task_failed", "on"),
    ];
    let (status, _) = post_form(&app, &maya, "/projects/shop/channels", &form, origin).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let project = app.store.project("shop").await.unwrap().id;
    let channels = app.store.channels(project).await.unwrap();
    let made = channels
        .iter()
        .find(|c| c.credential == "pager-token")
        .expect("made");
    assert_eq!(made.events, [aiops::model::NoticeKind::TaskFailed]);

    // A viewer: no form, and posting anyway changes nothing.
    let (_, html) = page(&app, &vic, "/projects/shop").await;
    assert!(!html.contains(r#"id="credential-form""#) && !html.contains("/delete"));
    let vic_csrf = csrf_for(&app, &vic).await;
    let form = [
        ("csrf", vic_csrf.as_str()),
        ("name", "vic-token"),
        ("kind", "token"),
        ("value", "x"),
    ];
    let (status, _) = post_form(&app, &vic, "/projects/shop/credentials", &form, origin).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let delete = format!("/projects/shop/channels/{}/delete", made.id);
    let (status, _) = post_form(&app, &vic, &delete, &[("csrf", vic_csrf.as_str())], origin).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        app.store.channels(project).await.unwrap().len(),
        channels.len()
    );

    let (status, _) = post_form(&app, &maya, &delete, &[("csrf", csrf.as_str())], origin).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let delete = format!("/projects/shop/credentials/{pager_id}/delete");
    let (status, _) = post_form(&app, &maya, &delete, &[("csrf", csrf.as_str())], origin).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(
        app.store.channels(project).await.unwrap().len(),
        channels.len() - 1
    );
    let listed = app.get_json("/api/v1/credentials?project=shop").await;
    assert!(!listed.to_string().contains("pager-token"), "{listed}");
    let audit = app.get_json("/api/v1/audit?limit=200").await.to_string();
    for action in [
        "POST /projects/{name}/credentials",
        "POST /projects/{name}/channels/{id}/delete",
    ] {
        assert!(
            audit.contains(&format!("dashboard {action}")),
            "{action} audited"
        );
    }
}

async fn teams_list_presets_with_members_and_keywords(db: Db) {
    let app = views_app(db).await;
    let vera = member(&app, "vera", "shop", ProjectRole::Viewer).await;
    let (status, html) = page(&app, &vera, "/teams").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains(r#"data-team="bugfix""#) && html.contains(r#"data-team="security""#));
    assert!(
        html.contains("<strong>analyst</strong>"),
        "members from the preset"
    );
    assert!(html.contains("크래시"), "Korean keywords too");

    // With the Korean setting the new pages speak Korean.
    let vera_id = app.store.user("vera").await.unwrap().id;
    let korean = aiops::model::Preferences {
        language: Some("ko".into()),
        time_zone: None,
    };
    app.store.set_preferences(vera_id, &korean).await.unwrap();
    for (path, words) in [
        ("/teams", "기본 제공"),
        ("/projects", "성공률(7일)"),
        ("/projects/shop", "구성원과 역할"),
        ("/schedules", "다음 실행"),
        ("/deliveries", "웹훅 수신 기록이 없습니다"),
        ("/notifications", "알림이 없습니다"),
        ("/account", "내 세션"),
    ] {
        let (_, html) = page(&app, &vera, path).await;
        assert!(html.contains(words), "{path} shows {words}");
    }
}

on_both_databases!(
    maintainers_manage_credentials_and_channels_on_the_project_page,
    projects_show_health_and_parts_and_maintainers_edit_settings,
    a_viewer_gets_no_control_and_403_and_other_projects_stay_hidden,
    deliveries_and_notifications_show_their_project_and_replay_and_retry,
    admins_read_the_audit_log_and_manage_people_and_tokens,
    teams_list_presets_with_members_and_keywords,
);

//! Team presets made on the dashboard's `/teams` page, over plain HTTP on both databases: a
//! maintainer creates, edits, copies and deletes them with errors shown at the field, the API
//! lists them, schedules and routing rules may name them, a viewer sees no form and gets 403
//! posting anyway, and a task naming one runs the pipeline simulator with it, the preset
//! written in the plugin's format into the task's worktree. Changes are audited with channel
//! `dashboard`.

mod common;

use aiops::model::ProjectRole;
use common::pages::{created, csrf_for, page, post_form, seed};
use common::people::member;
use common::pipeline::{add_project, engine_app, wait_status};
use common::{Db, TestApp, wait_for};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn views_app(db: Db) -> TestApp {
    let app = TestApp::spawn_with(db, |c| c.github.reply = false).await;
    seed(&app).await;
    app
}

/// A preset's members as the form takes them: one a line, `name | phase | instructions`.
const DOCS_MEMBERS: &str = "leader | contextualizing | Gather the context and drive the phases
scribe | executing | Write the docs the task asks for
checker | reviewing | Check the docs against the code";

fn preset_form<'a>(csrf: &'a str, name: &'a str, members: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("csrf", csrf),
        ("name", name),
        ("description", "Writes and checks documentation"),
        ("keywords", "docs\n문서"),
        ("members", members),
    ]
}

/// The preset called `name` in `GET /api/v1/teams`, if listed.
async fn listed_team(app: &TestApp, name: &str) -> Option<Value> {
    let teams = app.get_json("/api/v1/teams").await;
    teams
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == name)
        .cloned()
}

async fn maintainers_create_edit_copy_and_delete_team_presets(db: Db) {
    let app = views_app(db).await;
    let maya = member(&app, "maya", "shop", ProjectRole::Maintainer).await;
    let csrf = csrf_for(&app, &maya).await;

    let invalid = [
        ("Docs Team", DOCS_MEMBERS, "new-name-error", "not a slug"),
        (
            "bugfix",
            DOCS_MEMBERS,
            "new-name-error",
            "choose another name",
        ),
        (
            "docs",
            "scribe | executing | Write",
            "new-members-error",
            "leader",
        ),
        (
            "docs",
            "leader | deploying | Ship it",
            "new-members-error",
            "deploying",
        ),
        (
            "docs",
            "leader contextualizing",
            "new-members-error",
            "line 1",
        ),
    ];
    for (name, members, error_id, problem) in invalid {
        let form = preset_form(&csrf, name, members);
        let (status, html) = post_form(&app, &maya, "/teams", &form, None).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{name}: {members}"
        );
        assert!(html.contains(&format!(r#"id="{error_id}""#)), "{error_id}");
        assert!(html.contains(problem), "{problem}");
        assert!(html.contains(name), "the posted name is shown again");
    }
    assert!(listed_team(&app, "docs").await.is_none());

    let form = preset_form(&csrf, "docs", DOCS_MEMBERS);
    let (status, _) = post_form(&app, &maya, "/teams", &form, None).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, html) = page(&app, &maya, "/teams").await;
    assert!(html.contains(r#"data-team="docs""#) && html.contains("<strong>scribe</strong>"));
    assert!(
        html.contains(r#"data-controls="docs""#) && !html.contains(r#"data-controls="bugfix""#)
    );
    let docs = listed_team(&app, "docs").await.expect("listed by the API");
    assert_eq!(docs["origin"], "user_defined");
    assert_eq!(docs["stored"], true);
    assert_eq!(docs["trigger_keywords"], json!(["docs", "문서"]));

    // Schedules and routing rules may name it, like any preset.
    created(
        &app,
        "/api/v1/schedules",
        json!({"name": "docs-nightly", "project": "shop",
        "team": "docs", "cron": "0 3 * * *", "prompt_template": "Docs of {schedule}"}),
    )
    .await;
    created(
        &app,
        "/api/v1/routing-rules",
        json!({"kind": "github", "name": "docs-issues",
        "project": "shop", "labels": ["docs"], "default_team": "docs"}),
    )
    .await;

    let mut edit = preset_form(&csrf, "docs", DOCS_MEMBERS);
    edit[2] = ("description", "Keeps the documentation true");
    let (status, _) = post_form(&app, &maya, "/teams/docs", &edit, None).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let docs = listed_team(&app, "docs").await.unwrap();
    assert_eq!(docs["description"], "Keeps the documentation true");
    edit[4] = ("members", "checker | reviewing | Check");
    let (status, html) = post_form(&app, &maya, "/teams/docs", &edit, None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains(r#"id="edit-docs-members-error""#));

    let copy = [("csrf", csrf.as_str()), ("name", "bugfix")];
    let (status, html) = post_form(&app, &maya, "/teams/docs/copy", &copy, None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains(r#"id="copy-docs-error""#));
    let copy = [("csrf", csrf.as_str()), ("name", "docs-copy")];
    let (status, _) = post_form(&app, &maya, "/teams/docs/copy", &copy, None).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let copied = listed_team(&app, "docs-copy")
        .await
        .expect("the copy is listed");
    assert_eq!(
        copied["body"],
        docs["body"]
            .as_str()
            .unwrap()
            .replace("# docs team", "# docs-copy team")
    );

    let delete = [("csrf", csrf.as_str())];
    let (status, _) = post_form(&app, &maya, "/teams/docs-copy/delete", &delete, None).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(listed_team(&app, "docs-copy").await.is_none());
    let (status, _) = post_form(&app, &maya, "/teams/bugfix/delete", &delete, None).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "a file preset is not deleted"
    );
    assert!(listed_team(&app, "bugfix").await.is_some());

    let audit = app.get_json("/api/v1/audit?principal=maya").await;
    for (action, outcome) in [
        ("dashboard POST /teams", "422"),
        ("dashboard POST /teams", "200"),
        ("dashboard POST /teams/{name}", "200"),
        ("dashboard POST /teams/{name}/copy", "200"),
        ("dashboard POST /teams/{name}/delete", "200"),
    ] {
        assert!(
            audit["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["action"] == action
                    && e["outcome"] == outcome
                    && e["detail"]["channel"] == "dashboard"),
            "{action} {outcome}"
        );
    }
}

async fn a_viewer_sees_no_preset_form_and_gets_403_posting_one(db: Db) {
    let app = views_app(db).await;
    let maya = member(&app, "maya", "shop", ProjectRole::Maintainer).await;
    let vera = member(&app, "vera", "shop", ProjectRole::Viewer).await;
    let csrf = csrf_for(&app, &maya).await;
    let form = preset_form(&csrf, "docs", DOCS_MEMBERS);
    assert_eq!(
        post_form(&app, &maya, "/teams", &form, None).await.0,
        StatusCode::SEE_OTHER
    );

    let (status, html) = page(&app, &vera, "/teams").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains(r#"data-team="docs""#),
        "a viewer reads the preset"
    );
    for control in [r#"id="new-preset""#, "data-controls", r#"action="/teams"#] {
        assert!(!html.contains(control), "a viewer sees no {control}");
    }
    let csrf = csrf_for(&app, &vera).await;
    let copy = [("csrf", csrf.as_str()), ("name", "docs-copy")];
    let posts: [(&str, Vec<(&str, &str)>); 4] = [
        ("/teams", preset_form(&csrf, "docs-2", DOCS_MEMBERS)),
        (
            "/teams/docs",
            preset_form(&csrf, "docs", "leader | planning | Plan"),
        ),
        ("/teams/docs/copy", copy.to_vec()),
        ("/teams/docs/delete", vec![("csrf", csrf.as_str())]),
    ];
    for (path, form) in posts {
        let (status, _) = post_form(&app, &vera, path, &form, None).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "a viewer posting to {path}");
    }
    let names: Vec<String> = app
        .get_json("/api/v1/teams")
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect();
    assert!(names.contains(&"docs".to_string()));
    assert!(
        !names.iter().any(|n| n == "docs-2" || n == "docs-copy"),
        "{names:?}"
    );
    let docs = listed_team(&app, "docs").await.unwrap();
    assert!(
        docs["body"].as_str().unwrap().contains("### scribe"),
        "unchanged"
    );
}

async fn a_task_with_a_stored_preset_finds_it_in_its_worktree(db: Db) {
    let app = engine_app(db, "", |_| {}).await;
    let repo = common::git_repo();
    add_project(&app, "shop", repo.path(), json!({})).await;
    let maya = member(&app, "maya", "shop", ProjectRole::Maintainer).await;
    let csrf = csrf_for(&app, &maya).await;
    let form = preset_form(&csrf, "docs", DOCS_MEMBERS);
    assert_eq!(
        post_form(&app, &maya, "/teams", &form, None).await.0,
        StatusCode::SEE_OTHER
    );

    let task = created(
        &app,
        "/api/v1/tasks",
        json!({"project": "shop", "team": "docs",
        "prompt": "Document the checkout flow"}),
    )
    .await;
    let id = task["id"].as_i64().unwrap();
    let detail = wait_status(&app, id, &["awaiting_approval"]).await;
    assert_eq!(detail["team"], "docs");
    assert_eq!(
        detail["team_ran"], "docs",
        "the pipeline ran with --team docs"
    );

    let exec = app.store.task_exec(id).await.unwrap();
    let teams_dir = std::path::PathBuf::from(exec.worktree_path.unwrap()).join(".party/teams");
    let text = std::fs::read_to_string(teams_dir.join("docs.md")).expect("the preset file");
    assert!(text.starts_with("---\nname: docs\n"), "{text}");
    assert!(
        text.contains("### scribe\n- **Phase**: executing\n- **Instructions**: Write the docs the task asks for\n"),
        "{text}"
    );
    assert!(
        text.contains(
            "Phase sequence: CONTEXTUALIZING → EXECUTING → REVIEWING → AWAITING_APPROVAL\n"
        )
    );
    // The file loads as a preset file does: the plugin's format.
    let loaded = aiops::teams::Teams::load(&teams_dir).expect("a valid preset file");
    let preset = loaded.get("docs").unwrap();
    assert_eq!(preset.description, "Writes and checks documentation");
    assert_eq!(preset.trigger_keywords, ["docs", "문서"]);

    // While the task has not ended, its preset stays: it is written again if the task runs
    // again. Once the task is over, the preset can go.
    let delete = [("csrf", csrf.as_str())];
    let (status, page) = post_form(&app, &maya, "/teams/docs/delete", &delete, None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{page}");
    assert!(page.contains(&format!("#{id}")), "{page}");
    assert!(listed_team(&app, "docs").await.is_some());
    let cancelled = app
        .post(&format!("/api/v1/tasks/{id}/cancel"))
        .send()
        .await
        .unwrap();
    assert!(cancelled.status().is_success(), "{cancelled:?}");
    wait_status(&app, id, &["cancelled"]).await;
    let (status, _) = post_form(&app, &maya, "/teams/docs/delete", &delete, None).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(listed_team(&app, "docs").await.is_none());
}

/// Another node on the same store (its own `Teams`, as `aiops serve` on another machine has)
/// makes a preset; this node knows it within `REFRESH_EVERY` without a restart: it lists it
/// and takes a task naming it. Deleted there, it is gone here too.
async fn a_preset_made_on_another_node_is_known_here(db: Db) {
    let app = TestApp::spawn(db).await;
    let repo = common::git_repo();
    add_project(&app, "shop", repo.path(), json!({})).await;
    let other_node = aiops::server::load_teams(&app.config).unwrap();
    let member = |name: &str, phase: &str| aiops::model::PresetMember {
        name: name.into(),
        phase: phase.into(),
        instructions: format!("{name} does the {phase} work"),
    };
    let draft = aiops::model::PresetDraft {
        name: "remote".into(),
        description: "Made on another node".into(),
        members: vec![
            member("leader", "contextualizing"),
            member("scribe", "executing"),
        ],
        trigger_keywords: vec!["remote".into()],
    };
    aiops::team_presets::create(&app.store, &other_node, draft, "someone")
        .await
        .unwrap();
    assert!(
        !app.teams.contains("remote"),
        "not known here until the refresh"
    );
    let deadline = aiops::team_presets::REFRESH_EVERY * 4;
    wait_for("the other node's preset", deadline, || async {
        listed_team(&app, "remote").await
    })
    .await;
    let task = created(
        &app,
        "/api/v1/tasks",
        json!({"project": "shop", "team": "remote", "prompt": "Write it down"}),
    )
    .await;
    assert_eq!(task["team"], "remote");
    app.post(&format!("/api/v1/tasks/{}/cancel", task["id"]))
        .send()
        .await
        .unwrap();
    wait_status(&app, task["id"].as_i64().unwrap(), &["cancelled"]).await;
    aiops::team_presets::delete(&app.store, &other_node, "remote")
        .await
        .unwrap();
    wait_for("the preset gone here too", deadline, || async {
        listed_team(&app, "remote").await.is_none().then_some(())
    })
    .await;
}

on_both_databases!(
    a_preset_made_on_another_node_is_known_here,
    maintainers_create_edit_copy_and_delete_team_presets,
    a_viewer_sees_no_preset_form_and_gets_403_posting_one,
    a_task_with_a_stored_preset_finds_it_in_its_worktree,
);

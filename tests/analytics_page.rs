//! `/analytics` and `/analytics.csv` over plain HTTP on SQLite and PostgreSQL, against a
//! seeded history of two projects: a member of one sees exactly its figures (worked out by
//! hand below) in the charts' tables, the team table, the dearest tasks and the CSV, and
//! none of the other's; a bad filter is shown at its field; the page speaks Korean.

mod common;

use aiops::model::ProjectRole;
use aiops::store::Pool;
use chrono::{DateTime, Duration, Utc};
use common::pages::{cells, csrf_for, page, post_form};
use common::people::member;
use common::{Db, TestApp};
use reqwest::StatusCode;
use serde_json::json;

/// One seeded task: project, team, status, creation, seconds to completion, and its one
/// run's input tokens, output tokens and cost.
type Seed = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    i64,
    (i64, i64, f64),
);

/// 2026-03-02 and 03-03: shop has a done and a failed task on Monday and a done one on
/// Tuesday; blog one dear task on Monday.
const TASKS: &[Seed] = &[
    (
        "shop",
        "bugfix",
        "done",
        "2026-03-02T10:00:00Z",
        60,
        (100, 10, 0.40),
    ),
    (
        "shop",
        "feature",
        "failed",
        "2026-03-02T11:00:00Z",
        30,
        (50, 5, 0.10),
    ),
    (
        "shop",
        "bugfix",
        "done",
        "2026-03-03T09:00:00Z",
        120,
        (20, 2, 0.20),
    ),
    (
        "blog",
        "bugfix",
        "done",
        "2026-03-02T12:00:00Z",
        200,
        (1000, 100, 7.77),
    ),
];

const RANGE: &str = "from=2026-03-01&to=2026-03-04&bucket=day&group_by=project";

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

/// The app with projects `shop` and `blog` and the seeded tasks and runs.
async fn seeded(db: Db) -> TestApp {
    let app = TestApp::spawn(db).await;
    for name in ["shop", "blog"] {
        let response = app
            .post("/api/v1/projects")
            .json(&json!({"name": name, "repo_url": format!("https://example.com/{name}.git")}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
    }
    for (project, team, status, created, took, run) in TASKS {
        let project_id = app.store.project(project).await.unwrap().id;
        let created = at(created);
        let task =
            "INSERT INTO tasks (project_id, team, prompt, source, priority, status, created_at,
                        started_at, completed_at)
                    VALUES ($1, $2, 'seeded', 'api', 'normal', $3, $4, $4, $5) RETURNING id";
        let run_sql = "INSERT INTO runs (task_id, kind, status, input_tokens, output_tokens,
                           cache_read_tokens, cache_creation_tokens, cost_usd, started_at, finished_at)
                       VALUES ($1, 'start', 'succeeded', $2, $3, 0, 0, $4, $5, $5)";
        macro_rules! insert {
            ($pool:ident) => {{
                let id: i64 = sqlx::query_scalar(task)
                    .bind(project_id)
                    .bind(team)
                    .bind(status)
                    .bind(created)
                    .bind(created + Duration::seconds(*took))
                    .fetch_one($pool)
                    .await
                    .unwrap();
                sqlx::query(run_sql)
                    .bind(id)
                    .bind(run.0)
                    .bind(run.1)
                    .bind(run.2)
                    .bind(created)
                    .execute($pool)
                    .await
                    .unwrap();
            }};
        }
        match app.store.pool() {
            Pool::Sqlite(pool) => insert!(pool),
            Pool::Postgres(pool) => insert!(pool),
        }
    }
    app
}

async fn a_member_sees_only_their_projects_figures_in_the_page_and_the_csv(db: Db) {
    let app = seeded(db).await;
    let maya = member(&app, "maya", "shop", ProjectRole::Viewer).await;
    let bo = member(&app, "bo", "blog", ProjectRole::Viewer).await;

    let (status, html) = page(&app, &maya, &format!("/analytics?{RANGE}")).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains("<svg") && html.contains(r#"viewBox="0 0 640 240""#));
    assert!(!html.contains("style="), "no inline style under the CSP");
    assert!(
        html.contains("From 2026-03-01 to 2026-03-03 (UTC"),
        "the range names its last day, not the exclusive end"
    );
    // Monday: 2 tasks, 1 done, 1 failed, 50 %; Tuesday: 1 done, 100 %.
    let monday = cells(&html, "tasks-table", r#"data-bucket="2026-03-02""#);
    assert_eq!(monday, ["2026-03-02", "2", "1", "1", "0", "0", "50%"]);
    let tuesday = cells(&html, "tasks-table", r#"data-bucket="2026-03-03""#);
    assert_eq!(tuesday, ["2026-03-03", "1", "1", "0", "0", "0", "100%"]);
    // Monday's shop cost: 0.40 + 0.10, tokens 110 + 55, per task 0.25.
    let cost = cells(&html, "cost-table", r#"data-group="shop""#);
    assert_eq!(cost, ["2026-03-02", "shop", "2", "165", "$0.50", "$0.25"]);
    // Teams over the range: bugfix 2 done for 0.60; feature 1 failed for 0.10.
    let bugfix = cells(&html, "team-table", r#"data-team="bugfix""#);
    assert_eq!(
        bugfix,
        [
            "bugfix", "2", "2", "0", "0", "100%", "$0.60", "$0.30", "$0.30"
        ]
    );
    let feature = cells(&html, "team-table", r#"data-team="feature""#);
    assert_eq!(
        feature,
        ["feature", "1", "0", "1", "0", "0%", "$0.10", "$0.10", "—"]
    );
    let dearest = html.split(r#"id="dearest-tasks""#).nth(1).unwrap();
    assert!(dearest.find("$0.40").unwrap() < dearest.find("$0.20").unwrap());
    for foreign in ["blog", "$7.77"] {
        assert!(
            !html.contains(foreign),
            "shop's member never sees {foreign}"
        );
    }
    let (_, blog_page) = page(&app, &bo, &format!("/analytics?{RANGE}")).await;
    assert!(blog_page.contains("$7.77") && !blog_page.contains(r#"data-group="shop""#));

    let href = format!("/analytics.csv?{}", RANGE.replace('&', "&amp;"));
    assert!(
        html.contains(&href),
        "the CSV link asks for the same figures"
    );
    assert_eq!(
        common::pages::csv(&app, &maya, &format!("/analytics.csv?{RANGE}")).await,
        "bucket_start,group,tasks,started,done,failed,cancelled,rolled_back,success_rate,\
         duration_p50_ms,duration_p90_ms,input_tokens,output_tokens,cache_read_tokens,\
         cache_write_tokens,cost_usd\r\n\
         2026-03-02T00:00:00+00:00,shop,2,2,1,1,0,0,0.5000,60000,60000,150,15,0,0,0.500000\r\n\
         2026-03-03T00:00:00+00:00,shop,1,1,1,0,0,0,1.0000,120000,120000,20,2,0,0,0.200000\r\n"
    );
}

async fn a_bad_filter_is_shown_at_its_field_and_the_page_speaks_korean(db: Db) {
    let app = seeded(db).await;
    let maya = member(&app, "maya", "shop", ProjectRole::Viewer).await;
    for (query, field) in [
        ("bucket=hour", "bucket"),
        ("group_by=agent", "group_by"),
        ("from=yesterday", "from"),
        ("from=2026-03-04&to=2026-03-01", "to"),
    ] {
        let (status, html) = page(&app, &maya, &format!("/analytics?{query}")).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query}");
        assert!(
            html.contains(&format!(r#"id="{field}-error""#)),
            "{query}: {html}"
        );
        assert!(html.contains(&format!(r#"aria-describedby="{field}-error""#)));
        assert!(html.contains(r#"id="analytics-filters""#), "the form stays");
    }

    let csrf = csrf_for(&app, &maya).await;
    let form = [
        ("csrf", csrf.as_str()),
        ("language", "ko"),
        ("time_zone", "UTC"),
    ];
    let (status, _) = post_form(&app, &maya, "/account", &form, None).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (status, html) = page(&app, &maya, &format!("/analytics?{RANGE}")).await;
    assert_eq!(status, StatusCode::OK);
    for korean in [
        "분석",
        "작업 수와 성공률",
        "묶음별 비용",
        "팀 비교",
        "비용이 가장 큰 작업",
        "승인",
        "에이전트 비교",
    ] {
        assert!(html.contains(korean), "the page shows {korean}");
    }
    let (_, html) = page(&app, &maya, "/analytics?bucket=hour").await;
    assert!(html.contains("일, 주, 월 중에서 고르세요"), "{html}");
}

on_both_databases!(
    a_member_sees_only_their_projects_figures_in_the_page_and_the_csv,
    a_bad_filter_is_shown_at_its_field_and_the_page_speaks_korean,
);

//! The store suite: the same tests, unchanged, on SQLite and on PostgreSQL.

mod common;

use aiops::Error;
use aiops::audit::{AuditFilter, NewAuditEntry};
use aiops::auth::{self, Principal, Role};
use aiops::credentials::{self, CredentialKind, NewCredential};
use aiops::projects::{NewProject, ProjectPatch};
use aiops::routing::RoutingRuleSpec;
use aiops::schedules::Origin;
use aiops::store::Store;
use aiops::tasks::{self, Priority, Source, TaskFilter, TaskSpec, TaskStatus};
use common::{Db, FreshDb};

fn project(name: &str) -> NewProject {
    NewProject {
        name: name.into(),
        repo_url: Some(format!("https://github.com/acme/{name}.git")),
        ..Default::default()
    }
}

fn task(project_id: i64, prompt: &str, dedup: Option<&str>) -> TaskSpec {
    TaskSpec {
        project_id,
        team: "bugfix".into(),
        prompt: prompt.into(),
        source: Source::Api,
        priority: Priority::High,
        dedup_key: dedup.map(str::to_string),
        source_ref: serde_json::json!({"issue": 1}),
        created_by: "test".into(),
        requested_by: None,
    }
}

async fn migrations_are_current_and_idempotent(db: Db) {
    let fresh = FreshDb::new(db).await;
    let store = fresh.store().await;
    assert!(store.is_ready().await.unwrap());
    store.migrate().await.unwrap();
    assert!(store.is_ready().await.unwrap());
    let unmigrated = FreshDb::new(db).await;
    let raw = Store::connect(&unmigrated.url, &unmigrated.config().store)
        .await
        .unwrap();
    assert!(!raw.is_ready().await.unwrap());
}

async fn projects_round_trip(db: Db) {
    let fresh = FreshDb::new(db).await;
    let store = fresh.store().await;
    let mut new = project("shop");
    new.tech_stack = Some(vec!["rust".into(), "sqlx".into()]);
    new.timeout_secs = Some(600);
    let created = store
        .insert_project(&new.into_spec(&common::test_inputs()).unwrap())
        .await
        .unwrap();
    assert_eq!(created.tech_stack, ["rust", "sqlx"]);
    assert_eq!(created.timeout_secs, Some(600));
    assert_eq!(store.project("shop").await.unwrap().id, created.id);
    assert_eq!(store.project_by_id(created.id).await.unwrap().name, "shop");
    assert!(matches!(
        store.project("nope").await,
        Err(Error::NotFound(_))
    ));

    let duplicate = store
        .insert_project(&project("shop").into_spec(&common::test_inputs()).unwrap())
        .await;
    assert!(
        matches!(duplicate, Err(Error::Conflict(_))),
        "{duplicate:?}"
    );

    let patch = ProjectPatch {
        github_repo: Some("acme/shop".into()),
        max_concurrency: Some(4),
        ..Default::default()
    };
    let updated = store
        .update_project(
            created.id,
            &created.patched(patch, &common::test_inputs()).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(updated.github_repo.as_deref(), Some("acme/shop"));
    assert_eq!(updated.max_concurrency, 4);
    assert!(updated.updated_at >= created.updated_at);
    let cleared = store
        .update_project(
            created.id,
            &updated
                .patched(
                    ProjectPatch {
                        github_repo: Some(String::new()),
                        ..Default::default()
                    },
                    &common::test_inputs(),
                )
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(cleared.github_repo, None);

    store
        .insert_project(&project("blog").into_spec(&common::test_inputs()).unwrap())
        .await
        .unwrap();
    let names: Vec<_> = store
        .list_projects()
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(names, ["blog", "shop"]);
}

async fn project_with_tasks_cannot_be_deleted(db: Db) {
    let fresh = FreshDb::new(db).await;
    let store = fresh.store().await;
    let shop = store
        .insert_project(&project("shop").into_spec(&common::test_inputs()).unwrap())
        .await
        .unwrap();
    tasks::enqueue(&store, &task(shop.id, "fix", None))
        .await
        .unwrap();
    let refused = store.delete_project(shop.id).await;
    assert!(matches!(refused, Err(Error::Conflict(_))), "{refused:?}");
    let blog = store
        .insert_project(&project("blog").into_spec(&common::test_inputs()).unwrap())
        .await
        .unwrap();
    store.delete_project(blog.id).await.unwrap();
    assert!(matches!(
        store.delete_project(blog.id).await,
        Err(Error::NotFound(_))
    ));
}

async fn tasks_filter_and_paginate(db: Db) {
    let fresh = FreshDb::new(db).await;
    let store = fresh.store().await;
    let shop = store
        .insert_project(&project("shop").into_spec(&common::test_inputs()).unwrap())
        .await
        .unwrap();
    let blog = store
        .insert_project(&project("blog").into_spec(&common::test_inputs()).unwrap())
        .await
        .unwrap();
    let mut ids = Vec::new();
    for i in 0..5 {
        let project_id = if i % 2 == 0 { shop.id } else { blog.id };
        ids.push(
            tasks::enqueue(&store, &task(project_id, &format!("t{i}"), None))
                .await
                .unwrap()
                .id,
        );
    }
    let first = tasks::enqueue(&store, &task(shop.id, "dedup", Some("issue-7")))
        .await
        .unwrap();
    assert_eq!(first.source_ref["issue"], 1);
    assert_eq!(first.project, "shop");
    assert_eq!(first.status, "queued");
    let again = tasks::enqueue(&store, &task(shop.id, "dedup", Some("issue-7"))).await;
    assert!(matches!(again, Err(Error::Conflict(_))), "{again:?}");
    // The same key on another project is a different task.
    tasks::enqueue(&store, &task(blog.id, "dedup", Some("issue-7")))
        .await
        .unwrap();

    let page = |project_id, before_id, limit| TaskFilter {
        project_id,
        status: None,
        before_id,
        limit,
    };
    let shop_tasks = store
        .list_tasks(&page(Some(shop.id), None, 100))
        .await
        .unwrap();
    assert_eq!(shop_tasks.len(), 4);
    assert!(
        shop_tasks.windows(2).all(|w| w[0].id > w[1].id),
        "newest first"
    );
    let first_page = store.list_tasks(&page(None, None, 3)).await.unwrap();
    let second_page = store
        .list_tasks(&page(None, Some(first_page[2].id), 3))
        .await
        .unwrap();
    let third_page = store
        .list_tasks(&page(None, Some(second_page[2].id), 3))
        .await
        .unwrap();
    assert_eq!(first_page.len() + second_page.len() + third_page.len(), 7);
    let queued = TaskFilter {
        status: Some(TaskStatus::Queued),
        limit: 100,
        ..Default::default()
    };
    assert_eq!(store.list_tasks(&queued).await.unwrap().len(), 7);
    let done = TaskFilter {
        status: Some(TaskStatus::Done),
        limit: 100,
        ..Default::default()
    };
    assert!(store.list_tasks(&done).await.unwrap().is_empty());
    assert!(matches!(store.task(999_999).await, Err(Error::NotFound(_))));
}

async fn tokens_authenticate_until_revoked(db: Db) {
    let fresh = FreshDb::new(db).await;
    let store = fresh.store().await;
    assert_eq!(store.count_tokens().await.unwrap(), 0);
    let (token, meta) = auth::create_token(&store, "ci", Role::Admin).await.unwrap();
    assert!(token.starts_with("aiops_"));
    assert!(token.starts_with(&meta.prefix));
    assert_ne!(meta.prefix, token);
    let principal = auth::authenticate(&store, &token).await.unwrap();
    assert_eq!(principal.name, "ci");
    assert_eq!(principal.role, Role::Admin);
    assert!(matches!(
        auth::create_token(&store, "ci", Role::Viewer).await,
        Err(Error::Conflict(_))
    ));
    assert!(matches!(
        auth::authenticate(&store, "aiops_wrong").await,
        Err(Error::Unauthorized(_))
    ));
    let listed = store.list_tokens().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert!(listed[0].last_used_at.is_some());
    store.revoke_token("ci").await.unwrap();
    assert!(matches!(
        auth::authenticate(&store, &token).await,
        Err(Error::Unauthorized(_))
    ));
    assert!(matches!(
        store.revoke_token("ci").await,
        Err(Error::NotFound(_))
    ));
    // Only the hash is stored.
    let hashes: Vec<String> = match store.pool() {
        aiops::store::Pool::Sqlite(p) => sqlx::query_scalar("SELECT token_hash FROM api_tokens")
            .fetch_all(p)
            .await
            .unwrap(),
        aiops::store::Pool::Postgres(p) => sqlx::query_scalar("SELECT token_hash FROM api_tokens")
            .fetch_all(p)
            .await
            .unwrap(),
    };
    assert_eq!(hashes, [auth::hash_token(&token)]);
}

async fn credentials_scope_and_reveal(db: Db) {
    let fresh = FreshDb::new(db).await;
    let store = fresh.store().await;
    let (vault, _, generated) = aiops::server::open_vault(&fresh.config(), &store, true)
        .await
        .unwrap();
    assert!(generated.is_some());
    let shop = store
        .insert_project(&project("shop").into_spec(&common::test_inputs()).unwrap())
        .await
        .unwrap();
    let blog = store
        .insert_project(&project("blog").into_spec(&common::test_inputs()).unwrap())
        .await
        .unwrap();
    let put = |project: Option<&str>, name: &str, env: &str, value: &str| NewCredential {
        project: project.map(str::to_string),
        name: name.into(),
        kind: CredentialKind::ApiKey,
        env_var: Some(env.into()),
        value: value.into(),
    };
    credentials::store_credential(
        &store,
        &vault,
        &aiops::config::Config::default(),
        &aiops::auth::Principal::cli(),
        put(None, "shared", "SHARED_KEY", "global-value-1"),
        false,
    )
    .await
    .unwrap();
    credentials::store_credential(
        &store,
        &vault,
        &aiops::config::Config::default(),
        &aiops::auth::Principal::cli(),
        put(Some("shop"), "db", "DATABASE_URL", "shop-db-secret"),
        false,
    )
    .await
    .unwrap();
    credentials::store_credential(
        &store,
        &vault,
        &aiops::config::Config::default(),
        &aiops::auth::Principal::cli(),
        put(Some("blog"), "db", "DATABASE_URL", "blog-db-secret"),
        false,
    )
    .await
    .unwrap();
    let dup = credentials::store_credential(
        &store,
        &vault,
        &aiops::config::Config::default(),
        &aiops::auth::Principal::cli(),
        put(Some("shop"), "db", "DATABASE_URL", "x"),
        false,
    )
    .await;
    assert!(matches!(dup, Err(Error::Conflict(_))), "{dup:?}");
    let dup_global = credentials::store_credential(
        &store,
        &vault,
        &aiops::config::Config::default(),
        &aiops::auth::Principal::cli(),
        put(None, "shared", "SHARED_KEY", "y"),
        false,
    )
    .await;
    assert!(
        matches!(dup_global, Err(Error::Conflict(_))),
        "NULL scope must still be unique: {dup_global:?}"
    );
    // `replace` overwrites in place.
    credentials::store_credential(
        &store,
        &vault,
        &aiops::config::Config::default(),
        &aiops::auth::Principal::cli(),
        put(Some("shop"), "db", "DATABASE_URL", "shop-db-rotated"),
        true,
    )
    .await
    .unwrap();

    let shop_env = credentials::reveal_for_project(&store, &vault, shop.id)
        .await
        .unwrap();
    let shop_env: Vec<(&str, &str)> = shop_env
        .iter()
        .map(|(k, v, _)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        shop_env,
        [
            ("SHARED_KEY", "global-value-1"),
            ("DATABASE_URL", "shop-db-rotated")
        ]
    );
    // Secrets only the platform uses never reach an agent: webhook secrets, GitHub App
    // keys, and whatever a notification channel names.
    for (name, kind) in [
        ("hook", CredentialKind::WebhookSecret),
        ("app", CredentialKind::GithubApp),
        ("slack-bot", CredentialKind::Token),
    ] {
        credentials::store_credential(
            &store,
            &vault,
            &aiops::config::Config::default(),
            &aiops::auth::Principal::cli(),
            NewCredential {
                kind,
                ..put(
                    Some("shop"),
                    name,
                    &name.to_uppercase().replace('-', "_"),
                    "platform-only",
                )
            },
            false,
        )
        .await
        .unwrap();
    }
    store
        .insert_channel(
            shop.id,
            &aiops::notify::ChannelSpec {
                kind: aiops::notify::ChannelKind::Slack,
                target: Some("C1".into()),
                credential: "slack-bot".into(),
                events: vec![aiops::notify::NoticeKind::TaskDone],
                enabled: true,
            },
        )
        .await
        .unwrap();
    let agent_env = credentials::reveal_for_project(&store, &vault, shop.id)
        .await
        .unwrap();
    assert_eq!(
        agent_env.len(),
        2,
        "{:?}",
        agent_env.iter().map(|(k, _, _)| k).collect::<Vec<_>>()
    );
    assert!(agent_env.iter().all(|(_, v, _)| v != "platform-only"));
    for name in ["hook", "app", "slack-bot"] {
        let id = store
            .list_credentials(Some(shop.id))
            .await
            .unwrap()
            .into_iter()
            .find(|c| c.name == name)
            .unwrap()
            .id;
        store.delete_credential(id).await.unwrap();
    }

    let blog_env = credentials::reveal_for_project(&store, &vault, blog.id)
        .await
        .unwrap();
    assert!(
        blog_env.iter().all(|(_, v, _)| !v.starts_with("shop")),
        "no other project's secret"
    );

    assert_eq!(store.list_credentials(None).await.unwrap().len(), 3);
    let shop_meta = store.list_credentials(Some(shop.id)).await.unwrap();
    assert_eq!(shop_meta.len(), 1);
    assert!(shop_meta[0].last_used_at.is_some());
    store.delete_credential(shop_meta[0].id).await.unwrap();
    assert!(matches!(
        store.delete_credential(shop_meta[0].id).await,
        Err(Error::NotFound(_))
    ));
}

async fn audit_appends_and_filters(db: Db) {
    let fresh = FreshDb::new(db).await;
    let store = fresh.store().await;
    let entry = |principal: Option<Principal>, target: &str| NewAuditEntry {
        principal: principal.map(Into::into),
        action: "POST /api/v1/x".into(),
        target: target.into(),
        source: "127.0.0.1".into(),
        outcome: "201".into(),
        detail: serde_json::json!({"k": "v"}),
    };
    store
        .append_audit(&entry(Some(Principal::cli()), "projects/a"))
        .await
        .unwrap();
    store
        .append_audit(&entry(None, "projects/b"))
        .await
        .unwrap();
    store
        .append_audit(&entry(None, "projects/a"))
        .await
        .unwrap();
    let all = store
        .list_audit(&AuditFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 3);
    assert_eq!(all[2].detail["k"], "v");
    let a = store
        .list_audit(&AuditFilter {
            target: Some("projects/a".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(a.len(), 2);
    let anon = store
        .list_audit(&AuditFilter {
            principal: Some("anonymous".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(anon.len(), 2);
    let since = store
        .list_audit(&AuditFilter {
            since: Some(all[1].at),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(since.len(), 2);
    let until = store
        .list_audit(&AuditFilter {
            until: Some(all[1].at),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(until.len(), 2);
    let before = store
        .list_audit(&AuditFilter {
            before_id: Some(all[0].id),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(before.len(), 2);
}

/// The names of the GitHub rules a delivery from `repository` is routed by, in order.
async fn github_rules_of(store: &Store, repository: &str) -> Vec<String> {
    let context = store
        .github_delivery_context(Some(repository), "github-app-webhook", "nobody")
        .await
        .unwrap();
    context.rules.iter().map(|r| r.name.clone()).collect()
}

async fn routing_rules_in_routing_order(db: Db) {
    let fresh = FreshDb::new(db).await;
    let store = fresh.store().await;
    let on_github = |name: &str| NewProject {
        github_repo: Some(format!("acme/{name}")),
        ..project(name)
    };
    let shop = store
        .insert_project(&on_github("shop").into_spec(&common::test_inputs()).unwrap())
        .await
        .unwrap();
    let hello = store
        .insert_project(
            &on_github("hello")
                .into_spec(&common::test_inputs())
                .unwrap(),
        )
        .await
        .unwrap();
    let rule = |body: serde_json::Value| {
        let serde_json::Value::Object(fields) = body else {
            panic!("an object")
        };
        RoutingRuleSpec::from_json(fields).unwrap()
    };
    let github = |name: &str, project: Option<&str>, position: i64, enabled: bool| {
        rule(
            serde_json::json!({"kind": "github", "name": name, "project": project,
            "labels": ["bug"], "position": position, "enabled": enabled}),
        )
    };
    let alert = |name: &str, position: i64| {
        rule(
            serde_json::json!({"kind": "alert", "name": name, "project": "shop",
            "match": {"service": "shop"}, "position": position}),
        )
    };
    for (spec, project_id) in [
        (github("b-everywhere", None, 100, true), None),
        (github("a-shop", Some("shop"), 100, true), Some(shop.id)),
        (github("z-shop-first", Some("shop"), 5, true), Some(shop.id)),
        (github("shop-off", Some("shop"), 1, false), Some(shop.id)),
        (github("hello-only", Some("hello"), 1, true), Some(hello.id)),
        (alert("late", 200), Some(shop.id)),
        (alert("mid-b", 100), Some(shop.id)),
        (alert("mid-a", 100), Some(shop.id)),
        (alert("early", 10), Some(shop.id)),
    ] {
        store
            .insert_routing_rule(&spec, project_id, Origin::Api, None)
            .await
            .unwrap();
    }
    assert_eq!(
        github_rules_of(&store, "Acme/Shop").await,
        ["z-shop-first", "a-shop", "b-everywhere"],
        "the project's and everyone's enabled rules, by position then name"
    );
    let alert_rules = store.alert_routing_rules().await.unwrap();
    assert_eq!(
        alert_rules.into_iter().map(|r| r.name).collect::<Vec<_>>(),
        ["early", "mid-a", "mid-b", "late"]
    );

    let stored = store.routing_rule("a-shop").await.unwrap();
    assert_eq!(stored.spec, github("a-shop", Some("shop"), 100, true));
    assert_eq!(stored.origin, Origin::Api);
    let moved = store
        .update_routing_rule(
            stored.id,
            &github("a-shop", Some("hello"), 100, true),
            Some(hello.id),
            None,
        )
        .await
        .unwrap();
    assert_eq!(moved.spec.project(), Some("hello"));
    assert_eq!(
        github_rules_of(&store, "acme/hello").await,
        ["hello-only", "a-shop", "b-everywhere"]
    );
    assert!(matches!(
        store
            .insert_routing_rule(&alert("a-shop", 1), Some(shop.id), Origin::Api, None)
            .await,
        Err(Error::Conflict(_))
    ));

    // A removed project takes its rules along; rules for every project stay.
    store.delete_project(shop.id).await.unwrap();
    let left: Vec<String> = store
        .list_routing_rules()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.spec.name().to_string())
        .collect();
    assert_eq!(left, ["hello-only", "a-shop", "b-everywhere"]);
}

async fn a_github_delivery_context_holds_what_routing_reads(db: Db) {
    let fresh = FreshDb::new(db).await;
    let store = fresh.store().await;
    let config = aiops::config::Config::default();
    let (vault, _, _) = aiops::server::open_vault(&fresh.config(), &store, true)
        .await
        .unwrap();
    for (name, github_repo) in [("shop", "acme/shop"), ("blog", "acme/blog")] {
        let new = NewProject {
            github_repo: Some(github_repo.into()),
            ..project(name)
        };
        store
            .insert_project(&new.into_spec(&common::test_inputs()).unwrap())
            .await
            .unwrap();
    }
    let app_secret = config.github.app_secret_credential.clone();
    for (project, name, kind, value) in [
        (
            Some("shop"),
            "hook-b",
            CredentialKind::WebhookSecret,
            "shop-b",
        ),
        (
            Some("shop"),
            "hook-a",
            CredentialKind::WebhookSecret,
            "shop-a",
        ),
        (
            Some("shop"),
            "deploy",
            CredentialKind::Token,
            "not-a-signer",
        ),
        (Some("blog"), "hook", CredentialKind::WebhookSecret, "blog"),
        (
            None,
            app_secret.as_str(),
            CredentialKind::WebhookSecret,
            "app",
        ),
        (None, "other", CredentialKind::WebhookSecret, "other"),
    ] {
        let new = NewCredential {
            project: project.map(str::to_string),
            name: name.into(),
            kind,
            env_var: None,
            value: value.into(),
        };
        credentials::store_credential(&store, &vault, &config, &Principal::cli(), new, false)
            .await
            .unwrap();
    }
    let mut tx = store.begin().await.unwrap();
    let octo = aiops::store::users::insert(
        &mut tx,
        &aiops::store::users::NewUser {
            kind: aiops::model::PrincipalKind::User,
            login: "octo",
            display_name: "Octo",
            email: None,
            github_login: Some("Octocat"),
            global_role: aiops::model::GlobalRole::Member,
            password_hash: None,
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();

    let shop = store
        .github_delivery_context(Some("ACME/shop"), &app_secret, "octocat")
        .await
        .unwrap();
    assert_eq!(
        shop.project_id,
        Some(store.project("shop").await.unwrap().id)
    );
    let secrets = credentials::reveal_sealed(&vault, &shop.secrets).unwrap();
    assert_eq!(
        secrets,
        ["app", "shop-a", "shop-b"],
        "the project's webhook secrets and the App's, by name"
    );
    assert_eq!(shop.sender, Some(octo), "GitHub logins ignore case");

    let unknown = store
        .github_delivery_context(Some("acme/unknown"), &app_secret, "someone")
        .await
        .unwrap();
    assert_eq!(unknown.project_id, None);
    let secrets = credentials::reveal_sealed(&vault, &unknown.secrets).unwrap();
    assert_eq!(
        secrets,
        ["app"],
        "only the App's secret signs for the unregistered"
    );
    assert_eq!(unknown.sender, None);
    let none = store
        .github_delivery_context(None, "no-such-credential", "?")
        .await
        .unwrap();
    assert!(none.project_id.is_none() && none.secrets.is_empty() && none.rules.is_empty());
}

on_both_databases!(
    migrations_are_current_and_idempotent,
    projects_round_trip,
    project_with_tasks_cannot_be_deleted,
    tasks_filter_and_paginate,
    tokens_authenticate_until_revoked,
    credentials_scope_and_reveal,
    audit_appends_and_filters,
    routing_rules_in_routing_order,
    a_github_delivery_context_holds_what_routing_reads,
);

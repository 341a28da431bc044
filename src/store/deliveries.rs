//! Queries on `deliveries`, `alert_groups` and `github_replies`, and the one read a GitHub
//! delivery makes before its write. The writes take the caller's transaction: an inbound
//! event and the task it creates are stored together (`triggers::intake`), so an accepted
//! delivery is never lost and never makes two tasks.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use sqlx::types::Json;

use super::kept_payload::{KeptPayload, PayloadArg, StoredPayload};
use super::shared_read::SharedRead;
use super::{Backend, Pool, Store, Tx};
use crate::error::{Error, Result};
use crate::model::{
    ApprovalStatus, CredentialKind, Delivery, DeliveryStatus, GithubDeliveryContext, NewDelivery,
    OpenAlertGroup, RoutingRuleSpec, Sealed, SealedCredential, TaskStatus, sql_list,
};

/// Key space of the PostgreSQL advisory locks that serialise one alert fingerprint.
const ALERT_LOCK_SPACE: i32 = 0x616c;

const DELIVERY_SELECT: &str =
    "SELECT id, source, delivery_id, event, action, repository, received_at,
    outcome, reason, task_id FROM deliveries";

/// Records a delivery as received inside `tx`, with its payload; None when its delivery id
/// was seen before.
pub async fn insert_received(
    tx: &mut Tx,
    delivery: &NewDelivery,
    kept: &KeptPayload,
) -> Result<Option<i64>> {
    Ok(with_tx!(tx, conn => sqlx::query_scalar(
        "INSERT INTO deliveries (source, delivery_id, event, action, repository, received_at, outcome, payload)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT DO NOTHING RETURNING id")
        .bind(&delivery.source)
        .bind(&delivery.delivery_id)
        .bind(&delivery.event)
        .bind(&delivery.action)
        .bind(&delivery.repository)
        .bind(Utc::now())
        .bind(DeliveryStatus::Received)
        .bind(PayloadArg { json: &delivery.payload, kept })
        .fetch_optional(&mut *conn)
        .await)?)
}

/// Which of `keys` (source, delivery id) were received before, read inside `tx`.
pub async fn received_before(tx: &mut Tx, keys: &[(&str, &str)]) -> Result<Vec<(String, String)>> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    Ok(with_tx!(tx, conn => {
        let mut select = sqlx::QueryBuilder::new(
            "SELECT source, delivery_id FROM deliveries WHERE outcome <> ");
        select.push_bind(DeliveryStatus::Duplicate);
        select.push(" AND (source, delivery_id) IN (");
        select.push_values(keys, |mut row, (source, delivery_id)| {
            row.push_bind(*source).push_bind(*delivery_id);
        });
        select.push(")");
        select.build_query_as().persistent(false).fetch_all(&mut *conn).await
    })?)
}

/// A delivery to record as it ends: with its payload as kept, its outcome, the reason and
/// its task.
pub type Settled<'a> = (
    &'a NewDelivery,
    &'a KeptPayload,
    DeliveryStatus,
    Option<&'a str>,
    Option<i64>,
);

/// Records `deliveries`, none of whose ids was received before, with what became of them,
/// inside `tx` in one statement; their row ids in order. Errs when one of their ids was
/// received meanwhile (another node's delivery), so nothing of them is kept.
pub async fn insert_settled_all(tx: &mut Tx, deliveries: &[Settled<'_>]) -> Result<Vec<i64>> {
    if deliveries.is_empty() {
        return Ok(Vec::new());
    }
    let now = Utc::now();
    let rows: Vec<(i64, String, String)> = with_tx!(tx, conn => {
        let mut insert = sqlx::QueryBuilder::new(
            "INSERT INTO deliveries (source, delivery_id, event, action, repository, received_at,
                outcome, reason, task_id, payload) ");
        insert.push_values(deliveries, |mut row, (delivery, kept, outcome, reason, task_id)| {
            row.push_bind(&delivery.source)
                .push_bind(&delivery.delivery_id)
                .push_bind(&delivery.event)
                .push_bind(&delivery.action)
                .push_bind(&delivery.repository)
                .push_bind(now)
                .push_bind(*outcome)
                .push_bind(*reason)
                .push_bind(*task_id)
                .push_bind(PayloadArg { json: &delivery.payload, kept });
        });
        insert.push(" ON CONFLICT DO NOTHING RETURNING id, source, delivery_id");
        insert.build_query_as().persistent(false).fetch_all(&mut *conn).await
    })?;
    let mut ids: HashMap<(String, String), i64> = rows
        .into_iter()
        .map(|(id, source, delivery_id)| ((source, delivery_id), id))
        .collect();
    deliveries
        .iter()
        .map(|(delivery, ..)| {
            let key = (delivery.source.clone(), delivery.delivery_id.clone());
            ids.remove(&key).ok_or_else(|| {
                Error::Conflict(format!(
                    "delivery {} was received meanwhile",
                    delivery.delivery_id
                ))
            })
        })
        .collect()
}

/// A GitHub issue a task answers: the task, owner/repo, issue number and App installation.
pub type GithubReply<'a> = (i64, &'a str, i64, Option<i64>);

/// Remembers inside `tx`, in one statement, that each task of `replies` answers its GitHub
/// issue, so its sticky comment is kept up to date.
pub async fn insert_github_replies(tx: &mut Tx, replies: &[GithubReply<'_>]) -> Result<()> {
    if replies.is_empty() {
        return Ok(());
    }
    let now = Utc::now();
    with_tx!(tx, conn => {
        let mut insert = sqlx::QueryBuilder::new(
            "INSERT INTO github_replies (task_id, repo, issue_number, installation_id, updated_at) ");
        insert.push_values(replies, |mut row, (task_id, repo, issue_number, installation_id)| {
            row.push_bind(*task_id)
                .push_bind(*repo)
                .push_bind(*issue_number)
                .push_bind(*installation_id)
                .push_bind(now);
        });
        // One row is always the same text, worth keeping prepared; many vary with their count.
        let one = replies.len() == 1;
        insert.build().persistent(one).execute(&mut *conn).await.map(drop)
    })?;
    Ok(())
}

/// Records a repeated delivery inside `tx`, pointing at the first one's task; returns the
/// new row's id and that task.
pub async fn insert_duplicate(
    tx: &mut Tx,
    delivery: &NewDelivery,
    reason: &str,
) -> Result<(i64, Option<i64>)> {
    Ok(with_tx!(tx, conn => {
        let original: Option<i64> = sqlx::query_scalar(
            "SELECT task_id FROM deliveries WHERE source = $1 AND delivery_id = $2 AND outcome <> $3")
            .bind(&delivery.source)
            .bind(&delivery.delivery_id)
            .bind(DeliveryStatus::Duplicate)
            .fetch_one(&mut *conn)
            .await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO deliveries (source, delivery_id, event, action, repository, received_at, outcome, reason, task_id, payload)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id")
            .bind(&delivery.source)
            .bind(&delivery.delivery_id)
            .bind(&delivery.event)
            .bind(&delivery.action)
            .bind(&delivery.repository)
            .bind(Utc::now())
            .bind(DeliveryStatus::Duplicate)
            .bind(reason)
            .bind(original)
            .bind(Json(serde_json::Value::Null))
            .fetch_one(&mut *conn)
            .await?;
        Ok::<_, sqlx::Error>((id, original))
    })?)
}

/// Sets what became of delivery `id` inside `tx`.
pub async fn settle(
    tx: &mut Tx,
    id: i64,
    outcome: DeliveryStatus,
    reason: Option<&str>,
    task_id: Option<i64>,
) -> Result<()> {
    with_tx!(tx, conn => sqlx::query("UPDATE deliveries SET outcome = $2, reason = $3, task_id = $4 WHERE id = $1")
        .bind(id)
        .bind(outcome)
        .bind(reason)
        .bind(task_id)
        .execute(&mut *conn)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(())
}

/// The open alert group of a fingerprint and its task's status, read inside `tx`, after
/// taking the fingerprint's lock there: occurrences of one fingerprint are serialised (on
/// SQLite the transaction's write lock already serialises everything).
pub async fn lock_open_alert_group(
    tx: &mut Tx,
    source: &str,
    fingerprint: &str,
) -> Result<Option<OpenAlertGroup>> {
    let postgres = tx.backend() == Backend::Postgres;
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT g.id, g.task_id, t.status AS task_status FROM alert_groups g JOIN tasks t ON t.id = g.task_id
         WHERE g.source = $1 AND g.fingerprint = $2 AND g.resolved_at IS NULL
           AND t.status IN ({})
         ORDER BY g.id DESC LIMIT 1",
        sql_list(TaskStatus::OPEN, TaskStatus::as_str)
    ));
    Ok(with_tx!(tx, conn => {
        if postgres {
            sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
                .bind(ALERT_LOCK_SPACE)
                .bind(format!("{source}:{fingerprint}"))
                .execute(&mut *conn)
                .await?;
        }
        sqlx::query_as(sql)
            .bind(source)
            .bind(fingerprint)
            .fetch_optional(&mut *conn)
            .await
    })?)
}

/// Counts one more occurrence of an open alert group inside `tx`.
pub async fn add_alert_occurrence(tx: &mut Tx, group_id: i64) -> Result<()> {
    with_tx!(tx, conn => sqlx::query(
        "UPDATE alert_groups SET occurrences = occurrences + 1, last_seen = $2 WHERE id = $1")
        .bind(group_id)
        .bind(Utc::now())
        .execute(&mut *conn)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(())
}

/// Opens the alert group of a fingerprint for `task_id` inside `tx`.
pub async fn open_alert_group(
    tx: &mut Tx,
    source: &str,
    fingerprint: &str,
    task_id: i64,
) -> Result<()> {
    with_tx!(tx, conn => sqlx::query(
        "INSERT INTO alert_groups (source, fingerprint, task_id, occurrences, first_seen, last_seen)
         VALUES ($1, $2, $3, 1, $4, $4)")
        .bind(source)
        .bind(fingerprint)
        .bind(task_id)
        .bind(Utc::now())
        .execute(&mut *conn)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(())
}

/// Marks an alert group resolved inside `tx`.
pub async fn resolve_alert_group(tx: &mut Tx, group_id: i64) -> Result<()> {
    with_tx!(tx, conn => sqlx::query(
        "UPDATE alert_groups SET resolved_at = $2, last_seen = $2 WHERE id = $1")
        .bind(group_id)
        .bind(Utc::now())
        .execute(&mut *conn)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(())
}

impl Store {
    /// Deliveries, newest first.
    pub async fn list_deliveries(
        &self,
        source: Option<&str>,
        before_id: Option<i64>,
        limit: i64,
    ) -> Result<Vec<Delivery>> {
        self.list_deliveries_in(source, before_id, limit, &crate::model::ProjectScope::All)
            .await
    }

    /// Deliveries that made a task of a project in `scope` (all of them for every
    /// project), newest first.
    pub async fn list_deliveries_in(
        &self,
        source: Option<&str>,
        before_id: Option<i64>,
        limit: i64,
        scope: &crate::model::ProjectScope,
    ) -> Result<Vec<Delivery>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "{DELIVERY_SELECT} WHERE ($1 IS NULL OR source = $1) AND ($2 IS NULL OR id < $2){} ORDER BY id DESC LIMIT $3",
            super::scope_sql(
                "(SELECT t.project_id FROM tasks t WHERE t.id = task_id)",
                scope
            )
        ));
        Ok(with_pool!(self, pool => sqlx::query_as(sql)
            .bind(source)
            .bind(before_id)
            .bind(limit)
            .fetch_all(pool)
            .await)?)
    }

    /// A delivery with its payload, for replay.
    pub async fn delivery_payload(&self, id: i64) -> Result<(Delivery, serde_json::Value)> {
        let sql = sqlx::AssertSqlSafe(format!("{DELIVERY_SELECT} WHERE id = $1"));
        let delivery: Delivery = with_pool!(self, pool => sqlx::query_as(sql)
            .bind(id)
            .fetch_optional(pool)
            .await)?
        .ok_or_else(|| Error::NotFound(format!("delivery {id}")))?;
        let payload: StoredPayload = with_pool!(self, pool => sqlx::query_scalar(
            "SELECT payload FROM deliveries WHERE id = $1")
            .bind(id)
            .fetch_one(pool)
            .await)?;
        Ok((delivery, payload.0))
    }

    /// Occurrences and resolution of a task's alert, if it came from one.
    pub async fn alert_group_of(
        &self,
        task_id: i64,
    ) -> Result<Option<(i64, Option<DateTime<Utc>>)>> {
        Ok(with_pool!(self, pool => sqlx::query_as(
            "SELECT occurrences, resolved_at FROM alert_groups WHERE task_id = $1 ORDER BY id DESC LIMIT 1")
            .bind(task_id)
            .fetch_optional(pool)
            .await)?)
    }
}

/// A GitHub comment whose task moved on since it was last written.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ReplyDue {
    pub task_id: i64,
    pub project_id: i64,
    pub team: String,
    pub repo: String,
    pub issue_number: i64,
    pub comment_id: Option<i64>,
    pub installation_id: Option<i64>,
    pub status: TaskStatus,
    pub status_reason: Option<String>,
    /// The pull request made of the task's work.
    pub pr_url: Option<String>,
    /// Why there is no pull request.
    pub change_note: Option<String>,
    /// The newest pending approval that is ready to be shown.
    pub approval_id: Option<i64>,
    /// Everything the comment shows, as one comparable key.
    pub shown: String,
}

impl Store {
    /// Comments to create or edit: tasks that moved on since their comment was written
    /// (status, pull request, pending approval).
    pub async fn github_replies_due(&self) -> Result<Vec<ReplyDue>> {
        Ok(with_pool!(self, pool => sqlx::query_as(
            "SELECT task_id, project_id, team, repo, issue_number, comment_id, installation_id, status,
                status_reason, pr_url, change_note, approval_id, shown
             FROM (SELECT r.task_id, t.project_id, t.team, r.repo, r.issue_number, r.comment_id,
                     r.installation_id, t.status, t.status_reason, t.pr_url, t.change_note, r.reported_status, a.approval_id,
                     t.status || '|' || COALESCE(t.pr_url, '') || '|' || COALESCE(t.change_note, '')
                        || '|' || COALESCE(CAST(a.approval_id AS TEXT), '') AS shown
                   FROM github_replies r JOIN tasks t ON t.id = r.task_id
                   LEFT JOIN (SELECT task_id, MAX(id) AS approval_id FROM approvals
                              WHERE status = $1 AND snapshot_at IS NOT NULL GROUP BY task_id) a
                     ON a.task_id = t.id) due
             WHERE reported_status IS NULL OR reported_status <> shown
             ORDER BY task_id LIMIT 100")
            .bind(ApprovalStatus::Pending)
            .fetch_all(pool)
            .await)?)
    }

    /// Records that a task's comment now shows `shown` (a [`ReplyDue::shown`] key).
    pub async fn mark_reply(
        &self,
        task_id: i64,
        comment_id: Option<i64>,
        shown: &str,
    ) -> Result<()> {
        with_pool!(self, pool => sqlx::query(
            "UPDATE github_replies SET comment_id = COALESCE($2, comment_id), reported_status = $3, updated_at = $4 WHERE task_id = $1")
            .bind(task_id)
            .bind(comment_id)
            .bind(shown)
            .bind(Utc::now())
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }
}

impl Store {
    /// The issue a task answers on GitHub: (owner/repo, issue number, App installation).
    pub async fn github_issue_of(
        &self,
        task_id: i64,
    ) -> Result<Option<(String, i64, Option<i64>)>> {
        Ok(with_pool!(self, pool => sqlx::query_as(
            "SELECT repo, issue_number, installation_id FROM github_replies WHERE task_id = $1")
            .bind(task_id)
            .fetch_optional(pool)
            .await)?)
    }
}

/// A row of [`Store::github_delivery_context`]: which part it is, and that part's columns.
type ContextRow = (
    String,
    Option<i64>,
    Option<i64>,
    Option<String>,
    Option<String>,
    Option<Vec<u8>>,
    Option<Vec<u8>>,
    Option<Json<RoutingRuleSpec>>,
    Option<i64>,
);

/// Everything [`Store::github_delivery_context`] reads, in one statement: the project of the
/// repository `$1`, its credentials of kind `$2` and the global credential named `$3`, the
/// enabled GitHub rules (its own and those for every project), and the user whose GitHub
/// login is `$4`. The first part names its columns' types, which PostgreSQL needs to unite
/// the parts (SQLite takes any type name and keeps the NULL).
const GITHUB_DELIVERY_CONTEXT: &str = "
    WITH project AS (
        SELECT id FROM projects WHERE LOWER(github_repo) = LOWER($1) ORDER BY id LIMIT 1
    )
    SELECT 'project' AS part, id, CAST(NULL AS BIGINT) AS project_id, CAST(NULL AS TEXT) AS name,
           CAST(NULL AS TEXT) AS env_var, CAST(NULL AS BYTEA) AS ciphertext,
           CAST(NULL AS BYTEA) AS nonce, CAST(NULL AS JSONB) AS definition,
           CAST(NULL AS BIGINT) AS position
      FROM project
    UNION ALL
    SELECT 'secret', id, project_id, name, env_var, ciphertext, nonce, NULL, NULL
      FROM credentials
     WHERE (project_id = (SELECT id FROM project) AND kind = $2)
        OR (project_id IS NULL AND name = $3)
    UNION ALL
    SELECT 'rule', id, project_id, name, NULL, NULL, NULL, definition, position
      FROM routing_rules
     WHERE kind = 'github' AND enabled
       AND (project_id IS NULL OR project_id = (SELECT id FROM project))
    UNION ALL
    SELECT 'sender', MIN(id), NULL, NULL, NULL, NULL, NULL, NULL, NULL
      FROM principals WHERE LOWER(github_login) = LOWER($4)
    ORDER BY part, position, name";

/// Whose context a GitHub delivery needs: its repository, the name of the App's secret, its
/// sender.
pub type ContextKey = (Option<String>, String, String);

/// The GitHub delivery contexts read on `pool`, shared by the deliveries that ask at the
/// same time.
pub type SharedContexts = SharedRead<ReadPool, ContextKey, Arc<GithubDeliveryContext>>;

/// A pool to read on, apart from the store (a shared read kept in the store must not hold
/// the store itself).
#[derive(Clone, Debug)]
pub struct ReadPool {
    pub(super) pool: Pool,
}

/// The shared read of GitHub delivery contexts on `pool`.
pub(super) fn shared_contexts(pool: Pool) -> Arc<SharedContexts> {
    SharedRead::new(ReadPool { pool }, |at, (repository, app_secret, sender)| {
        Box::pin(async move {
            read_context(&at, repository.as_deref(), &app_secret, &sender)
                .await
                .map(Arc::new)
        })
    })
}

impl Store {
    /// What a GitHub delivery from `repository`, sent by `sender`, needs before its write, in
    /// one round trip: the project, the sealed secrets that may sign it (the project's
    /// webhook secrets and the global credential `app_secret`), the project's enabled GitHub
    /// rules and the user linked to `sender` (GitHub names ignore case). Read for every
    /// delivery after it arrived, so a change made anywhere counts at the next one; the
    /// deliveries that ask while a read of the same key runs share the next read
    /// (`store::shared_read`).
    pub async fn github_delivery_context(
        &self,
        repository: Option<&str>,
        app_secret: &str,
        sender: &str,
    ) -> Result<Arc<GithubDeliveryContext>> {
        let key = (
            repository.map(str::to_owned),
            app_secret.to_owned(),
            sender.to_owned(),
        );
        self.delivery_contexts.get(key).await
    }
}

/// The read of [`Store::github_delivery_context`], one statement on `at`.
async fn read_context(
    at: &ReadPool,
    repository: Option<&str>,
    app_secret: &str,
    sender: &str,
) -> Result<GithubDeliveryContext> {
    let rows: Vec<ContextRow> = with_pool!(at, pool => sqlx::query_as(GITHUB_DELIVERY_CONTEXT)
            .bind(repository)
            .bind(CredentialKind::WebhookSecret)
            .bind(app_secret)
            .bind(sender)
            .fetch_all(pool)
            .await)?;
    let mut context = GithubDeliveryContext::default();
    for (part, id, project_id, name, env_var, ciphertext, nonce, definition, _) in rows {
        match (part.as_str(), definition) {
            ("project", _) => context.project_id = id,
            ("sender", _) => context.sender = id,
            ("rule", Some(Json(RoutingRuleSpec::Github(rule)))) => context.rules.push(rule),
            ("secret", _) => context.secrets.push(SealedCredential {
                id: id.unwrap_or_default(),
                project_id,
                name: name.unwrap_or_default(),
                env_var: env_var.unwrap_or_default(),
                sealed: Sealed {
                    ciphertext: ciphertext.unwrap_or_default(),
                    nonce: nonce.unwrap_or_default(),
                },
            }),
            _ => {}
        }
    }
    Ok(context)
}

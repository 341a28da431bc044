//! Queries on `tasks`.

use super::{BeginWrite, Store};
use crate::error::{Error, Result};
use crate::queue::{self, Job, NewJob};
use crate::tasks::{Task, TaskFilter, TaskSpec};

/// Pushes a queue job inside an open transaction of either database.
macro_rules! push_job {
    ($store:expr, $tx:expr, $job:expr) => {{
        push_into(&mut *$tx, $job).await?;
    }};
}

/// The queue push for each database, so `push_job!` reads the same for both.
pub(crate) trait PushInto {
    async fn push_into_queue<J: Job>(&mut self, job: &NewJob<J>) -> Result<String, sqlx::Error>;
}

impl PushInto for sqlx::SqliteConnection {
    async fn push_into_queue<J: Job>(&mut self, job: &NewJob<J>) -> Result<String, sqlx::Error> {
        queue::push_sqlite(self, job).await
    }
}

impl PushInto for sqlx::PgConnection {
    async fn push_into_queue<J: Job>(&mut self, job: &NewJob<J>) -> Result<String, sqlx::Error> {
        queue::push_postgres(self, job).await
    }
}

pub(crate) async fn push_into<C: PushInto, J: Job>(
    conn: &mut C,
    job: &NewJob<J>,
) -> Result<String, sqlx::Error> {
    conn.push_into_queue(job).await
}

/// Inserts a queued task with its job and `task_queued` event inside an open
/// transaction. Evaluates to `Some((task id, event id))`, or None when the project already
/// has a task with this dedup key (the transaction stays usable).
macro_rules! insert_task_in_tx {
    ($store:expr, $tx:expr, $spec:expr) => {{
        let spec: &$crate::tasks::TaskSpec = $spec;
        let id: Option<i64> = sqlx::query_scalar(
            "INSERT INTO tasks (project_id, team, prompt, source, priority, status, dedup_key,
                source_ref, created_by, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, 'queued', $6, $7, $8, $9, $9)
             ON CONFLICT DO NOTHING RETURNING id",
        )
        .bind(spec.project_id)
        .bind(&spec.team)
        .bind(&spec.prompt)
        .bind(spec.source.as_str())
        .bind(spec.priority.as_str())
        .bind(&spec.dedup_key)
        .bind(sqlx::types::Json(&spec.source_ref))
        .bind(&spec.created_by)
        .bind(chrono::Utc::now())
        .fetch_optional(&mut *$tx)
        .await?;
        match id {
            Some(id) => {
                $crate::store::tasks::push_into(&mut *$tx, &$crate::queue::NewJob::now(id, spec.priority)).await?;
                let event = $crate::records::NewEvent::platform(
                    id,
                    spec.project_id,
                    "task_queued",
                    serde_json::json!({
                        "priority": spec.priority.as_str(), "team": spec.team, "source": spec.source.as_str(),
                    }),
                );
                let event_id = $crate::store::events::insert_event_in_tx!($store, $tx, &event);
                Some((id, event_id))
            }
            None => None,
        }
    }};
}
#[allow(unused_imports)]
pub(crate) use insert_task_in_tx;

const TASK_SELECT: &str = "SELECT t.id, p.name AS project, t.team, t.prompt, t.source, t.priority,
    t.status, t.status_reason, t.dedup_key, t.phase, t.party_session_id, t.branch, t.source_ref,
    t.created_by, t.created_at, t.started_at, t.completed_at, t.pr_url, t.pr_number, t.change_note
    FROM tasks t JOIN projects p ON p.id = t.project_id";

impl Store {
    /// Inserts a queued task, its queue job and its `task_queued` event in one
    /// transaction: there is never a task without a job or a job without a task. A dedup
    /// key already used on the project is a conflict.
    pub async fn insert_task(&self, spec: &TaskSpec) -> Result<Task> {
        let inserted: Option<(i64, Option<i64>)> = with_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let inserted = insert_task_in_tx!(self, tx, spec);
            tx.commit().await?;
            inserted
        });
        let Some((id, event_id)) = inserted else {
            return Err(Error::Conflict(format!(
                "a task with dedup key {:?} already exists for this project",
                spec.dedup_key.as_deref().unwrap_or_default()
            )));
        };
        if let Some(event_id) = event_id {
            self.announce_event(event_id);
        }
        self.task(id).await
    }

    /// Pushes a job for an existing task (a retry, a wait for a slot, a resume).
    pub async fn push_job(&self, job: &NewJob) -> Result<()> {
        with_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            push_job!(self, tx, job);
            tx.commit().await?;
        });
        Ok(())
    }

    /// The task with this id, or NotFound.
    pub async fn task(&self, id: i64) -> Result<Task> {
        let sql = sqlx::AssertSqlSafe(format!("{TASK_SELECT} WHERE t.id = $1"));
        with_pool!(self, pool => sqlx::query_as(sql).bind(id).fetch_optional(pool).await)?
            .ok_or_else(|| Error::NotFound(format!("task {id}")))
    }

    /// A page of tasks, newest first.
    pub async fn list_tasks(&self, filter: &TaskFilter) -> Result<Vec<Task>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "{TASK_SELECT}
             WHERE ($1 IS NULL OR t.project_id = $1)
               AND ($2 IS NULL OR t.status = $2)
               AND ($3 IS NULL OR t.id < $3)
             ORDER BY t.id DESC LIMIT $4"
        ));
        Ok(with_pool!(self, pool => sqlx::query_as(sql)
            .bind(filter.project_id)
            .bind(&filter.status)
            .bind(filter.before_id)
            .bind(filter.limit)
            .fetch_all(pool)
            .await)?)
    }
}

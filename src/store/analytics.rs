//! Queries for analytics: tasks, runs and approvals added up per time bucket and group in
//! SQL, never by loading rows; and the live counts `/metrics` reports.
//!
//! The buckets arrive as bound values (`WITH buckets(b_start, b_end) AS (VALUES …)`), so
//! one SQL text serves both databases; only the difference of two timestamps in
//! milliseconds is spelled per database. Percentiles are nearest-rank, from window
//! functions: in each bucket and group the value whose rank is ⌈p·n/100⌉ among the n
//! values (SQLite has no percentile function). Every query is limited to the projects in
//! the caller's scope.

use chrono::{DateTime, Utc};

use super::{Backend, Store};
use crate::error::Result;
use crate::model::{
    AnalyticsQuery, ApprovalStatus, ApprovalSums, Channel, Decision, GroupBy, Priority,
    ProjectScope, TaskCost, TaskStatus, TaskSums, sql_list,
};

/// The values a range query binds, in the order its SQL numbers them: each bucket's start
/// and end, then the first start and last end, then the project ids of the scope.
struct RangeBinds {
    times: Vec<DateTime<Utc>>,
    project_ids: Vec<i64>,
}

/// Binds a [`RangeBinds`] to a query, in order.
macro_rules! bind_range {
    ($query:expr, $binds:expr) => {{
        let mut query = $query;
        for time in &$binds.times {
            query = query.bind(*time);
        }
        for id in &$binds.project_ids {
            query = query.bind(*id);
        }
        query
    }};
}

/// The SQL pieces of a range query that depend on its values.
struct RangeSql {
    /// `WITH buckets(b_start, b_end) AS (VALUES ($1, $2), …)`.
    buckets: String,
    /// The placeholders of the first start and the last end.
    first: String,
    last: String,
    /// ` AND t.project_id IN (…)`, or nothing for every project.
    scope: String,
    binds: RangeBinds,
}

/// The SQL and values of `query`'s scope, its whole range and, `with_buckets`, each of its
/// buckets; None when the scope is empty.
fn range_sql(query: &AnalyticsQuery, with_buckets: bool) -> Option<RangeSql> {
    let (first, last) = (query.buckets.first()?, query.buckets.last()?);
    let mut times = Vec::with_capacity(query.buckets.len() * 2 + 2);
    let values: Vec<String> = query
        .buckets
        .iter()
        .filter(|_| with_buckets)
        .map(|b| {
            times.extend([b.start, b.end]);
            format!("(${}, ${})", times.len() - 1, times.len())
        })
        .collect();
    times.extend([first.start, last.end]);
    let n = times.len();
    let project_ids = match &query.scope {
        ProjectScope::All => Vec::new(),
        ProjectScope::Only(ids) if ids.is_empty() => return None,
        ProjectScope::Only(ids) => ids.clone(),
    };
    let scope = if project_ids.is_empty() {
        String::new()
    } else {
        let list: Vec<String> = (1..=project_ids.len())
            .map(|i| format!("${}", n + i))
            .collect();
        format!(" AND t.project_id IN ({})", list.join(", "))
    };
    Some(RangeSql {
        buckets: format!(
            "WITH buckets(b_start, b_end) AS (VALUES {})",
            values.join(", ")
        ),
        first: format!("${}", n - 1),
        last: format!("${n}"),
        scope,
        binds: RangeBinds { times, project_ids },
    })
}

/// The SQL expression naming a row's group (`t` is the task, `p` its project).
fn group_sql(group_by: GroupBy) -> &'static str {
    match group_by {
        GroupBy::Project => "p.name",
        GroupBy::Team => "t.team",
        GroupBy::Source => "t.source",
    }
}

/// Milliseconds from timestamp `from` to timestamp `to`: the one expression that differs
/// between the databases (SQLite stores RFC 3339 text, PostgreSQL `timestamptz`).
fn millis_between(backend: Backend, from: &str, to: &str) -> String {
    match backend {
        Backend::Sqlite => {
            format!("CAST(ROUND((julianday({to}) - julianday({from})) * 86400000.0) AS INTEGER)")
        }
        Backend::Postgres => {
            format!("CAST(ROUND(EXTRACT(EPOCH FROM ({to} - {from})) * 1000) AS BIGINT)")
        }
    }
}

/// The nearest-rank `percent`th percentile of `value` over a `ranked` row set whose `rn`
/// numbers the non-null values 1..=`n` in order.
fn nearest_rank(value: &str, percent: u32) -> String {
    format!(
        "MIN(CASE WHEN {value} IS NOT NULL AND rn = (n * {percent} + 99) / 100 THEN {value} END)"
    )
}

/// `SUM(CASE WHEN {column} IN ({list}) THEN 1 ELSE 0 END)`: how many rows have one of `list`.
fn count_in(column: &str, list: &str) -> String {
    format!("SUM(CASE WHEN {column} IN ({list}) THEN 1 ELSE 0 END)")
}

impl Store {
    /// Tasks created in each bucket, per group: outcomes, end-to-end duration percentiles of
    /// the done ones (creation to completion), and their runs' tokens and cost.
    pub async fn task_sums(&self, query: &AnalyticsQuery) -> Result<Vec<TaskSums>> {
        let Some(range) = range_sql(query, true) else {
            return Ok(Vec::new());
        };
        let done = sql_list(&[TaskStatus::Done], TaskStatus::as_str);
        let duration = millis_between(self.backend(), "t.created_at", "t.completed_at");
        let count =
            |status: TaskStatus| count_in("status", &sql_list(&[status], TaskStatus::as_str));
        let sql = sqlx::AssertSqlSafe(format!(
            "{buckets},
             per_task AS (
                SELECT b.b_start AS bucket_start, {group} AS grp, t.status,
                    CASE WHEN t.started_at IS NULL THEN 0 ELSE 1 END AS started,
                    CASE WHEN t.status IN ({done}) THEN {duration} END AS duration_ms,
                    COALESCE(SUM(r.input_tokens), 0) AS input_tokens,
                    COALESCE(SUM(r.output_tokens), 0) AS output_tokens,
                    COALESCE(SUM(r.cache_read_tokens), 0) AS cache_read_tokens,
                    COALESCE(SUM(r.cache_creation_tokens), 0) AS cache_write_tokens,
                    COALESCE(SUM(r.cost_usd), 0.0) AS cost_usd
                FROM tasks t
                JOIN buckets b ON t.created_at >= b.b_start AND t.created_at < b.b_end
                JOIN projects p ON p.id = t.project_id
                LEFT JOIN runs r ON r.task_id = t.id
                WHERE t.created_at >= {first} AND t.created_at < {last}{scope}
                GROUP BY t.id, b.b_start, {group}, t.status, t.started_at, t.created_at,
                    t.completed_at
             ),
             ranked AS (
                SELECT per_task.*,
                    ROW_NUMBER() OVER (PARTITION BY bucket_start, grp, duration_ms IS NULL
                                       ORDER BY duration_ms) AS rn,
                    COUNT(duration_ms) OVER (PARTITION BY bucket_start, grp) AS n
                FROM per_task
             )
             SELECT bucket_start, grp AS \"group\", COUNT(*) AS tasks,
                CAST(SUM(started) AS BIGINT) AS started,
                CAST({done_count} AS BIGINT) AS done,
                CAST({failed} AS BIGINT) AS failed,
                CAST({cancelled} AS BIGINT) AS cancelled,
                CAST({rolled_back} AS BIGINT) AS rolled_back,
                CAST({p50} AS BIGINT) AS duration_p50_ms,
                CAST({p90} AS BIGINT) AS duration_p90_ms,
                CAST(SUM(input_tokens) AS BIGINT) AS input_tokens,
                CAST(SUM(output_tokens) AS BIGINT) AS output_tokens,
                CAST(SUM(cache_read_tokens) AS BIGINT) AS cache_read_tokens,
                CAST(SUM(cache_write_tokens) AS BIGINT) AS cache_write_tokens,
                CAST(SUM(cost_usd) AS DOUBLE PRECISION) AS cost_usd
             FROM ranked GROUP BY bucket_start, grp ORDER BY bucket_start, grp",
            buckets = range.buckets,
            group = group_sql(query.group_by),
            first = range.first,
            last = range.last,
            scope = range.scope,
            done_count = count(TaskStatus::Done),
            failed = count(TaskStatus::Failed),
            cancelled = count(TaskStatus::Cancelled),
            rolled_back = count(TaskStatus::RolledBack),
            p50 = nearest_rank("duration_ms", 50),
            p90 = nearest_rank("duration_ms", 90),
        ));
        Ok(
            with_pool!(self, pool => bind_range!(sqlx::query_as(sql), range.binds)
            .fetch_all(pool)
            .await)?,
        )
    }

    /// Approval requests filed in each bucket, per group (of their task): human decisions
    /// and their shares, expired ones (rejected by the deadline, or marked expired), those
    /// still pending, and time-to-decision percentiles of the human decisions.
    pub async fn approval_sums(&self, query: &AnalyticsQuery) -> Result<Vec<ApprovalSums>> {
        let Some(range) = range_sql(query, true) else {
            return Ok(Vec::new());
        };
        let machine = sql_list(&[Channel::System, Channel::Pipeline], Channel::as_str);
        let decided = sql_list(&[ApprovalStatus::Decided], ApprovalStatus::as_str);
        let expired = sql_list(&[ApprovalStatus::Expired], ApprovalStatus::as_str);
        let deadline = sql_list(&[Channel::System], Channel::as_str);
        let wait = millis_between(self.backend(), "a.requested_at", "a.decided_at");
        let decision = |d: Decision| count_in("decision", &sql_list(&[d], Decision::as_str));
        let sql = sqlx::AssertSqlSafe(format!(
            "{buckets},
             per_approval AS (
                SELECT b.b_start AS bucket_start, {group} AS grp, a.status,
                    CASE WHEN a.status IN ({decided}) AND a.channel NOT IN ({machine})
                         THEN a.decision END AS decision,
                    CASE WHEN a.status IN ({decided}) AND a.channel NOT IN ({machine})
                         THEN {wait} END AS wait_ms,
                    CASE WHEN a.status IN ({expired}) OR a.channel IN ({deadline})
                         THEN 1 ELSE 0 END AS expired
                FROM approvals a
                JOIN tasks t ON t.id = a.task_id
                JOIN projects p ON p.id = t.project_id
                JOIN buckets b ON a.requested_at >= b.b_start AND a.requested_at < b.b_end
                WHERE a.requested_at >= {first} AND a.requested_at < {last}{scope}
             ),
             ranked AS (
                SELECT per_approval.*,
                    ROW_NUMBER() OVER (PARTITION BY bucket_start, grp, wait_ms IS NULL
                                       ORDER BY wait_ms) AS rn,
                    COUNT(wait_ms) OVER (PARTITION BY bucket_start, grp) AS n
                FROM per_approval
             )
             SELECT bucket_start, grp AS \"group\", COUNT(*) AS requested,
                COUNT(decision) AS decided,
                CAST({approved} AS BIGINT) AS approved,
                CAST({rejected} AS BIGINT) AS rejected,
                CAST({revised} AS BIGINT) AS revised,
                CAST(SUM(expired) AS BIGINT) AS expired,
                CAST({pending} AS BIGINT) AS pending,
                CAST({p50} AS BIGINT) AS decision_p50_ms,
                CAST({p90} AS BIGINT) AS decision_p90_ms
             FROM ranked GROUP BY bucket_start, grp ORDER BY bucket_start, grp",
            buckets = range.buckets,
            group = group_sql(query.group_by),
            first = range.first,
            last = range.last,
            scope = range.scope,
            approved = decision(Decision::Approve),
            rejected = decision(Decision::Reject),
            revised = decision(Decision::Revise),
            pending = count_in(
                "status",
                &sql_list(&[ApprovalStatus::Pending], ApprovalStatus::as_str)
            ),
            p50 = nearest_rank("wait_ms", 50),
            p90 = nearest_rank("wait_ms", 90),
        ));
        Ok(
            with_pool!(self, pool => bind_range!(sqlx::query_as(sql), range.binds)
            .fetch_all(pool)
            .await)?,
        )
    }

    /// The `limit` tasks created in the range whose runs cost the most, dearest first (ties
    /// by id, newest first).
    pub async fn most_expensive_tasks(
        &self,
        query: &AnalyticsQuery,
        limit: i64,
    ) -> Result<Vec<TaskCost>> {
        let Some(range) = range_sql(query, false) else {
            return Ok(Vec::new());
        };
        let limit_param = range.binds.times.len() + range.binds.project_ids.len() + 1;
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT t.id AS task_id, p.name AS project, t.team, t.source, t.status, t.created_at,
                COUNT(r.id) AS runs,
                CAST(COALESCE(SUM(r.input_tokens), 0) AS BIGINT) AS input_tokens,
                CAST(COALESCE(SUM(r.output_tokens), 0) AS BIGINT) AS output_tokens,
                CAST(COALESCE(SUM(r.cache_read_tokens), 0) AS BIGINT) AS cache_read_tokens,
                CAST(COALESCE(SUM(r.cache_creation_tokens), 0) AS BIGINT) AS cache_write_tokens,
                CAST(COALESCE(SUM(r.cost_usd), 0.0) AS DOUBLE PRECISION) AS cost_usd
             FROM tasks t
             JOIN projects p ON p.id = t.project_id
             JOIN runs r ON r.task_id = t.id
             WHERE t.created_at >= {first} AND t.created_at < {last}{scope}
             GROUP BY t.id, p.name, t.team, t.source, t.status, t.created_at
             ORDER BY cost_usd DESC, t.id DESC LIMIT ${limit_param}",
            first = range.first,
            last = range.last,
            scope = range.scope,
        ));
        Ok(
            with_pool!(self, pool => bind_range!(sqlx::query_as(sql), range.binds)
            .bind(limit)
            .fetch_all(pool)
            .await)?,
        )
    }

    /// How many tasks wait in the queue, per priority (priorities without any are absent).
    pub async fn queued_tasks_by_priority(&self) -> Result<Vec<(Priority, i64)>> {
        Ok(with_pool!(self, pool => sqlx::query_as(
            "SELECT priority, COUNT(*) FROM tasks WHERE status = $1 GROUP BY priority")
            .bind(TaskStatus::Queued)
            .fetch_all(pool)
            .await)?)
    }

    /// How many tasks run now, for every project (0 for those with none).
    pub async fn running_tasks_by_project(&self) -> Result<Vec<(String, i64)>> {
        Ok(with_pool!(self, pool => sqlx::query_as(
            "SELECT p.name, COUNT(t.id) FROM projects p
             LEFT JOIN tasks t ON t.project_id = p.id AND t.status = $1
             GROUP BY p.name ORDER BY p.name")
            .bind(TaskStatus::Running)
            .fetch_all(pool)
            .await)?)
    }
}

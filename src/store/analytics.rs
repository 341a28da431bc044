//! Queries for analytics: the rollups the database keeps (migration 0022: per UTC day,
//! project, team and source, maintained by triggers on tasks, runs and approvals) added up
//! per time bucket and group, never the raw rows; and the live counts `/metrics` reports.
//!
//! The buckets arrive as bound values (`buckets(b, b_start, d_start, d_end)`: each bucket's
//! number, start, first and past-the-last day, expanded to `days(day, b)` so a rollup row
//! finds its bucket by equality), so one SQL text serves both databases. Buckets are whole UTC days (a day, an ISO week, a month), as
//! `analytics::buckets` cuts them. Percentiles come from the duration histograms of the
//! rollups: the nearest-rank value (rank ⌈p·n/100⌉ of the n values) is read as the lower
//! bound of the histogram bucket holding it, so it is never above the true value and less
//! than 9.1 % below it (exact under 10 ms and for values that are bounds: 30 s, 45 s, 2 min,
//! …; see `duration_buckets` in the migration). The agents' figures come the same way from
//! the agent rollups (migration 0028: per UTC day of opening, project and agent, kept by
//! triggers on tickets, tasks and reopens), the whole range as one bucket. Every query is
//! limited to the projects in the caller's scope.

use chrono::{DateTime, Utc};

use super::Store;
use crate::error::Result;
use crate::model::{
    AgentSums, AnalyticsQuery, ApprovalSums, Bucket, GroupBy, Priority, ProjectScope, TaskCost,
    TaskStatus, TaskSums,
};

/// One value a query binds.
enum Bind {
    Time(DateTime<Utc>),
    Number(i64),
}

/// The values a query binds, in the order its SQL numbers them (`$1`, `$2`, …).
#[derive(Default)]
struct Binds(Vec<Bind>);

impl Binds {
    /// Adds `value` and returns its placeholder.
    fn push(&mut self, value: Bind) -> String {
        self.0.push(value);
        format!("${}", self.0.len())
    }
}

/// Binds a [`Binds`] to a query, in order.
macro_rules! bind_all {
    ($query:expr, $binds:expr) => {{
        let mut query = $query;
        for value in &$binds.0 {
            query = match value {
                Bind::Time(time) => query.bind(*time),
                Bind::Number(number) => query.bind(*number),
            };
        }
        query
    }};
}

/// The day `time` falls on, as the rollups number days: since 1970-01-01 in UTC.
fn day_number(time: DateTime<Utc>) -> i64 {
    time.timestamp().div_euclid(86_400)
}

/// The placeholders of the scope's project ids (`$4, $5`), bound into `binds`; an empty
/// string for every project, None for none at all.
fn scope_list(scope: &ProjectScope, binds: &mut Binds) -> Option<String> {
    match scope {
        ProjectScope::All => Some(String::new()),
        ProjectScope::Only(ids) if ids.is_empty() => None,
        ProjectScope::Only(ids) => Some(
            ids.iter()
                .map(|id| binds.push(Bind::Number(*id)))
                .collect::<Vec<_>>()
                .join(", "),
        ),
    }
}

/// ` AND {alias}.project_id IN (…)` for a scope list, or nothing for every project.
fn scope_filter(alias: &str, list: &str) -> String {
    if list.is_empty() {
        String::new()
    } else {
        format!(" AND {alias}.project_id IN ({list})")
    }
}

/// The SQL pieces of a rollup query that depend on its values.
struct RollupRange {
    /// `WITH RECURSIVE buckets(b, b_start, d_start, d_end) AS (VALUES (0, $1, $2, $3), …)`
    /// and `days(day, b, d_end)`, each day of the range with its bucket's number `b`.
    buckets: String,
    /// The placeholders of the first day and the day after the last.
    first: String,
    last: String,
    /// The scope's placeholders (see [`scope_list`]).
    scope: String,
    binds: Binds,
}

/// The buckets, range and scope of `query` as rollup days; None when the scope is empty.
fn rollup_range(query: &AnalyticsQuery) -> Option<RollupRange> {
    let (first, last) = (query.buckets.first()?, query.buckets.last()?);
    let mut binds = Binds::default();
    let values: Vec<String> = query
        .buckets
        .iter()
        .enumerate()
        .map(|(n, b)| {
            let start = binds.push(Bind::Time(b.start));
            let from = binds.push(Bind::Number(day_number(b.start)));
            let to = binds.push(Bind::Number(day_number(b.end)));
            format!("({n}, {start}, {from}, {to})")
        })
        .collect();
    let first = binds.push(Bind::Number(day_number(first.start)));
    let last = binds.push(Bind::Number(day_number(last.end)));
    let scope = scope_list(&query.scope, &mut binds)?;
    Some(RollupRange {
        buckets: format!(
            "WITH RECURSIVE buckets(b, b_start, d_start, d_end) AS (VALUES {}),
             days(day, b, d_end) AS (
                SELECT d_start, b, d_end FROM buckets
                UNION ALL SELECT day + 1, b, d_end FROM days WHERE day + 1 < d_end
             )",
            values.join(", ")
        ),
        first,
        last,
        scope,
        binds,
    })
}

/// The SQL expression naming a rollup row's group (`alias` is the rollup, `p` its project).
fn group_sql(group_by: GroupBy, alias: &str) -> String {
    match group_by {
        GroupBy::Project => "p.name".to_owned(),
        GroupBy::Team => format!("{alias}.team"),
        GroupBy::Source => format!("{alias}.source"),
    }
}

/// `FROM {table} {alias}` joined to its day `d` (with its bucket `d.b`) and project `p`,
/// within the range and scope.
fn rollup_from(table: &str, alias: &str, range: &RollupRange) -> String {
    format!(
        "FROM {table} {alias}
         JOIN days d ON d.day = {alias}.day
         JOIN projects p ON p.id = {alias}.project_id
         WHERE {alias}.day >= {first} AND {alias}.day < {last}{scope}",
        first = range.first,
        last = range.last,
        scope = scope_filter(alias, &range.scope),
    )
}

/// The CTEs ending in `percentiles(b, grp, p50, p90)`: the 50th and 90th
/// nearest-rank percentiles per bucket and group (the SQL expression `group` over the
/// histogram row `h` and its project `p`) of the histogram `table` (its counts in column
/// `count`), each as the lower bound of the histogram bucket holding that rank.
fn histogram_percentiles(table: &str, count: &str, group: &str, range: &RollupRange) -> String {
    format!(
        "histogram AS (
            SELECT d.b, {group} AS grp, h.lower_ms, CAST(SUM(h.{count}) AS INTEGER) AS c
            {from}
            GROUP BY d.b, {group}, h.lower_ms
            HAVING SUM(h.{count}) > 0
         ),
         reached AS (
            SELECT b, grp, lower_ms, SUM(c) OVER running AS up_to,
                SUM(c) OVER (running ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)
                    AS n
            FROM histogram
            WINDOW running AS (PARTITION BY b, grp ORDER BY lower_ms)
         ),
         percentiles AS (
            SELECT b, grp,
                MIN(CASE WHEN up_to >= (n * 50 + 99) / 100 THEN lower_ms END) AS p50,
                MIN(CASE WHEN up_to >= (n * 90 + 99) / 100 THEN lower_ms END) AS p90
            FROM reached GROUP BY b, grp
         )",
        from = rollup_from(table, "h", range),
    )
}

impl Store {
    /// Tasks created in each bucket, per group: outcomes, end-to-end duration percentiles of
    /// the done ones (creation to completion), and their runs' tokens and cost.
    pub async fn task_sums(&self, query: &AnalyticsQuery) -> Result<Vec<TaskSums>> {
        let Some(range) = rollup_range(query) else {
            return Ok(Vec::new());
        };
        let sql = sqlx::AssertSqlSafe(format!(
            "{buckets},
             sums AS (
                SELECT d.b, {group} AS grp,
                    SUM(r.tasks) AS tasks, SUM(r.started) AS started, SUM(r.done) AS done,
                    SUM(r.failed) AS failed, SUM(r.cancelled) AS cancelled,
                    SUM(r.rolled_back) AS rolled_back, SUM(r.input_tokens) AS input_tokens,
                    SUM(r.output_tokens) AS output_tokens,
                    SUM(r.cache_read_tokens) AS cache_read_tokens,
                    SUM(r.cache_write_tokens) AS cache_write_tokens, SUM(r.cost_usd) AS cost_usd
                {from}
                GROUP BY d.b, {group}
                HAVING SUM(r.tasks) > 0
             ),
             {percentiles}
             SELECT bk.b_start AS bucket_start, s.grp AS \"group\", CAST(s.tasks AS BIGINT) AS tasks,
                CAST(s.started AS BIGINT) AS started, CAST(s.done AS BIGINT) AS done,
                CAST(s.failed AS BIGINT) AS failed, CAST(s.cancelled AS BIGINT) AS cancelled,
                CAST(s.rolled_back AS BIGINT) AS rolled_back,
                CAST(pc.p50 AS BIGINT) AS duration_p50_ms,
                CAST(pc.p90 AS BIGINT) AS duration_p90_ms,
                CAST(s.input_tokens AS BIGINT) AS input_tokens,
                CAST(s.output_tokens AS BIGINT) AS output_tokens,
                CAST(s.cache_read_tokens AS BIGINT) AS cache_read_tokens,
                CAST(s.cache_write_tokens AS BIGINT) AS cache_write_tokens,
                CAST(s.cost_usd AS DOUBLE PRECISION) AS cost_usd
             FROM sums s
             JOIN buckets bk ON bk.b = s.b
             LEFT JOIN percentiles pc ON pc.b = s.b AND pc.grp = s.grp
             ORDER BY s.b, s.grp",
            buckets = range.buckets,
            group = group_sql(query.group_by, "r"),
            from = rollup_from("task_rollups", "r", &range),
            percentiles = histogram_percentiles(
                "task_duration_counts",
                "tasks",
                &group_sql(query.group_by, "h"),
                &range,
            ),
        ));
        Ok(
            with_pool!(self, pool => bind_all!(sqlx::query_as(sql), range.binds)
            .fetch_all(pool)
            .await)?,
        )
    }

    /// Approval requests filed in each bucket, per group (of their task): human decisions
    /// and their shares, expired ones (rejected by the deadline, or marked expired), those
    /// still pending, and time-to-decision percentiles of the human decisions.
    pub async fn approval_sums(&self, query: &AnalyticsQuery) -> Result<Vec<ApprovalSums>> {
        let Some(range) = rollup_range(query) else {
            return Ok(Vec::new());
        };
        let sql = sqlx::AssertSqlSafe(format!(
            "{buckets},
             sums AS (
                SELECT d.b, {group} AS grp,
                    SUM(r.requested) AS requested, SUM(r.decided) AS decided,
                    SUM(r.approved) AS approved, SUM(r.rejected) AS rejected,
                    SUM(r.revised) AS revised, SUM(r.expired) AS expired,
                    SUM(r.pending) AS pending
                {from}
                GROUP BY d.b, {group}
                HAVING SUM(r.requested) > 0
             ),
             {percentiles}
             SELECT bk.b_start AS bucket_start, s.grp AS \"group\", CAST(s.requested AS BIGINT) AS requested,
                CAST(s.decided AS BIGINT) AS decided, CAST(s.approved AS BIGINT) AS approved,
                CAST(s.rejected AS BIGINT) AS rejected, CAST(s.revised AS BIGINT) AS revised,
                CAST(s.expired AS BIGINT) AS expired, CAST(s.pending AS BIGINT) AS pending,
                CAST(pc.p50 AS BIGINT) AS decision_p50_ms,
                CAST(pc.p90 AS BIGINT) AS decision_p90_ms
             FROM sums s
             JOIN buckets bk ON bk.b = s.b
             LEFT JOIN percentiles pc ON pc.b = s.b AND pc.grp = s.grp
             ORDER BY s.b, s.grp",
            buckets = range.buckets,
            group = group_sql(query.group_by, "r"),
            from = rollup_from("approval_rollups", "r", &range),
            percentiles = histogram_percentiles(
                "approval_wait_counts",
                "approvals",
                &group_sql(query.group_by, "h"),
                &range,
            ),
        ));
        Ok(
            with_pool!(self, pool => bind_all!(sqlx::query_as(sql), range.binds)
            .fetch_all(pool)
            .await)?,
        )
    }

    /// The `limit` tasks created in the range whose runs cost the most, dearest first (ties
    /// by id, newest first); read from `task_costs` down its cost index.
    pub async fn most_expensive_tasks(
        &self,
        query: &AnalyticsQuery,
        limit: i64,
    ) -> Result<Vec<TaskCost>> {
        let (Some(first), Some(last)) = (query.buckets.first(), query.buckets.last()) else {
            return Ok(Vec::new());
        };
        let mut binds = Binds::default();
        let from = binds.push(Bind::Time(first.start));
        let to = binds.push(Bind::Time(last.end));
        let Some(scope) = scope_list(&query.scope, &mut binds) else {
            return Ok(Vec::new());
        };
        let limit_param = binds.push(Bind::Number(limit));
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT c.task_id, p.name AS project, t.team, t.source, t.status, t.created_at,
                c.runs, c.input_tokens, c.output_tokens, c.cache_read_tokens,
                c.cache_write_tokens, c.cost_usd
             FROM (SELECT * FROM task_costs c
                   WHERE c.created_at >= {from} AND c.created_at < {to}{scope}
                   ORDER BY c.cost_usd DESC, c.task_id DESC LIMIT {limit_param}) AS c
             JOIN tasks t ON t.id = c.task_id
             JOIN projects p ON p.id = c.project_id
             ORDER BY c.cost_usd DESC, c.task_id DESC",
            scope = scope_filter("c", &scope),
        ));
        Ok(
            with_pool!(self, pool => bind_all!(sqlx::query_as(sql), binds)
            .fetch_all(pool)
            .await)?,
        )
    }

    /// Per agent (a ticket's assignee), the tickets opened in the range of `query` in its
    /// scope and what became of them: done, blocked, failed (not done when its task ended
    /// failed, rolled back or over budget), reopened (at least once), failed or reopened,
    /// and nearest-rank percentiles of opened to done over the done ones, read from the
    /// agent rollups (migration 0028) over the whole range as one bucket.
    pub async fn agent_sums(&self, query: &AnalyticsQuery) -> Result<Vec<AgentSums>> {
        let (Some(first), Some(last)) = (query.buckets.first(), query.buckets.last()) else {
            return Ok(Vec::new());
        };
        let whole = AnalyticsQuery {
            buckets: vec![Bucket {
                start: first.start,
                end: last.end,
            }],
            ..query.clone()
        };
        let Some(range) = rollup_range(&whole) else {
            return Ok(Vec::new());
        };
        let sql = sqlx::AssertSqlSafe(format!(
            "{buckets},
             sums AS (
                SELECT d.b, r.agent AS grp, SUM(r.tickets) AS tickets, SUM(r.done) AS done,
                    SUM(r.blocked) AS blocked, SUM(r.failed) AS failed,
                    SUM(r.reopened) AS reopened, SUM(r.failed_or_reopened) AS failed_or_reopened
                {from}
                GROUP BY d.b, r.agent
                HAVING SUM(r.tickets) > 0
             ),
             {percentiles}
             SELECT s.grp AS agent, CAST(s.tickets AS BIGINT) AS tickets,
                CAST(s.done AS BIGINT) AS done, CAST(s.blocked AS BIGINT) AS blocked,
                CAST(s.failed AS BIGINT) AS failed, CAST(s.reopened AS BIGINT) AS reopened,
                CAST(s.failed_or_reopened AS BIGINT) AS failed_or_reopened,
                CAST(pc.p50 AS BIGINT) AS time_p50_ms, CAST(pc.p90 AS BIGINT) AS time_p90_ms
             FROM sums s
             LEFT JOIN percentiles pc ON pc.b = s.b AND pc.grp = s.grp
             ORDER BY s.grp",
            buckets = range.buckets,
            from = rollup_from("agent_rollups", "r", &range),
            percentiles = histogram_percentiles("agent_time_counts", "tickets", "h.agent", &range),
        ));
        Ok(
            with_pool!(self, pool => bind_all!(sqlx::query_as(sql), range.binds)
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

//! Analytics: the history of tasks, runs and approvals read back as figures per time bucket
//! (day, ISO week, month; UTC) and group (project, team, source), and the agents' tickets as
//! figures per agent over a range.
//!
//! Owns the rules: which range a request means, how it is cut into calendar buckets, which
//! projects a reader may see, and the ratios derived from the sums. The sums themselves
//! come from the rollups the database keeps per UTC day and group (`store::analytics`);
//! nothing here loads rows one by one.

use chrono::{DateTime, Datelike, Duration, Months, NaiveDate, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::{Error, Result};
use crate::model::Principal;
pub use crate::model::{
    AgentSums, AnalyticsQuery, ApprovalSums, Bucket, BucketSize, GroupBy, ProjectScope, TaskCost,
    TaskSums,
};
use crate::store::Store;

/// Most buckets one answer holds (a year of days).
pub const MAX_BUCKETS: usize = 366;

/// The range a request without `from` covers, back from `to`.
pub const DEFAULT_RANGE_DAYS: i64 = 30;

/// Most tasks `expensive-tasks` lists.
pub const MAX_EXPENSIVE_TASKS: u32 = 100;

/// What an analytics request asks for, as given (checked by [`AnalyticsRequest::query`]).
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AnalyticsRequest {
    /// Start of the range: RFC 3339 or `YYYY-MM-DD` (UTC), rounded down to its bucket;
    /// default 30 days before `to`.
    pub from: Option<String>,
    /// End of the range (exclusive): RFC 3339 or `YYYY-MM-DD` (UTC), rounded up to whole
    /// buckets; default now.
    pub to: Option<String>,
    /// `day` (default), `week` (ISO, from Monday) or `month`.
    #[param(value_type = Option<crate::model::BucketSize>)]
    pub bucket: Option<String>,
    /// `project` (default), `team` or `source`.
    #[param(value_type = Option<crate::model::GroupBy>)]
    pub group_by: Option<String>,
    /// Only this project's figures.
    pub project: Option<String>,
    /// How many tasks `expensive-tasks` lists (1-100, default 10); the other answers have no
    /// list to cut and ignore it.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
}

impl AnalyticsRequest {
    /// The buckets, split and scope this request asks for, within what `reader` may see
    /// (an unknown `project` is NotFound), at `now`.
    pub async fn query(
        &self,
        store: &Store,
        reader: &Principal,
        now: DateTime<Utc>,
    ) -> Result<AnalyticsQuery> {
        if let Some(limit) = self.limit
            && !(1..=MAX_EXPENSIVE_TASKS).contains(&limit)
        {
            return Err(Error::invalid(
                "limit",
                format!("must be between 1 and {MAX_EXPENSIVE_TASKS}"),
            ));
        }
        let size = parse_or(self.bucket.as_deref(), BucketSize::Day)?;
        let group_by = parse_or(self.group_by.as_deref(), GroupBy::Project)?;
        let to = self
            .to
            .as_deref()
            .map(|t| parse_time("to", t))
            .transpose()?;
        let to = to.unwrap_or(now);
        let from = match self.from.as_deref() {
            Some(from) => parse_time("from", from)?,
            None => to - Duration::days(DEFAULT_RANGE_DAYS),
        };
        let mut scope = reader_scope(reader);
        if let Some(name) = &self.project {
            scope = narrow(scope, store.project(name).await?.id);
        }
        Ok(AnalyticsQuery {
            buckets: buckets(from, to, size)?,
            size,
            group_by,
            scope,
        })
    }
}

/// The projects whose figures `reader` may see: those it may read.
pub fn reader_scope(reader: &Principal) -> ProjectScope {
    crate::permissions::visible_projects(reader)
}

/// `scope` limited to project `id`: nothing at all when `id` is outside it.
pub fn narrow(scope: ProjectScope, id: i64) -> ProjectScope {
    match scope {
        ProjectScope::All => ProjectScope::Only(vec![id]),
        ProjectScope::Only(ids) => {
            ProjectScope::Only(ids.into_iter().filter(|i| *i == id).collect())
        }
    }
}

fn parse_or<T: std::str::FromStr<Err = Error>>(value: Option<&str>, default: T) -> Result<T> {
    value.map_or(Ok(default), str::parse)
}

/// An RFC 3339 time, or a `YYYY-MM-DD` date meaning its midnight in UTC.
fn parse_time(field: &str, value: &str) -> Result<DateTime<Utc>> {
    if let Ok(time) = DateTime::parse_from_rfc3339(value) {
        return Ok(time.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(value, "%Y-%m-%d")
        .map(|date| Utc.from_utc_datetime(&date.and_time(chrono::NaiveTime::MIN)))
        .map_err(|_| {
            Error::invalid(
                field,
                format!("{value:?} is not a time; use RFC 3339 (2026-01-31T00:00:00Z) or a date (2026-01-31)"),
            )
        })
}

/// The start of the bucket of `size` holding `time`.
pub fn bucket_start(time: DateTime<Utc>, size: BucketSize) -> DateTime<Utc> {
    let date = time.date_naive();
    let first_day = match size {
        BucketSize::Day => date,
        BucketSize::Week => date - Duration::days(i64::from(date.weekday().num_days_from_monday())),
        BucketSize::Month => date.with_day(1).unwrap_or(date),
    };
    Utc.from_utc_datetime(&first_day.and_time(chrono::NaiveTime::MIN))
}

/// The start of the bucket after the one starting at `start`.
fn next_bucket(start: DateTime<Utc>, size: BucketSize) -> DateTime<Utc> {
    match size {
        BucketSize::Day => start + Duration::days(1),
        BucketSize::Week => start + Duration::weeks(1),
        BucketSize::Month => start + Months::new(1),
    }
}

/// The whole buckets of `size` that cover `[from, to)`, oldest first.
pub fn buckets(from: DateTime<Utc>, to: DateTime<Utc>, size: BucketSize) -> Result<Vec<Bucket>> {
    if to <= from {
        return Err(Error::invalid("to", "must be after from"));
    }
    let mut buckets = Vec::new();
    let mut start = bucket_start(from, size);
    while start < to {
        if buckets.len() == MAX_BUCKETS {
            return Err(Error::invalid(
                "bucket",
                format!(
                    "the range holds more than {MAX_BUCKETS} buckets of a {size}; use a larger bucket or a shorter range"
                ),
            ));
        }
        let end = next_bucket(start, size);
        buckets.push(Bucket { start, end });
        start = end;
    }
    Ok(buckets)
}

/// What the range of an answer was, after rounding to whole buckets.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AnswerRange {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub bucket: BucketSize,
    pub group_by: GroupBy,
}

impl AnswerRange {
    fn of(query: &AnalyticsQuery) -> Self {
        let first = query.buckets.first().map(|b| b.start);
        let last = query.buckets.last().map(|b| b.end);
        AnswerRange {
            from: first.unwrap_or_default(),
            to: last.unwrap_or_default(),
            bucket: query.size,
            group_by: query.group_by,
        }
    }
}

/// Tokens used, by kind.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Tokens {
    pub input: i64,
    pub output: i64,
    pub cache_read: i64,
    pub cache_write: i64,
}

/// The tasks created in one bucket by one group, and what they became and cost.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct TaskFigures {
    pub bucket_start: DateTime<Utc>,
    /// The project's name, the team, or the source.
    pub group: String,
    /// Tasks created in the bucket.
    pub tasks: i64,
    /// Of those, the ones a worker started.
    pub started: i64,
    pub done: i64,
    pub failed: i64,
    pub cancelled: i64,
    pub rolled_back: i64,
    /// done / (done + failed + rolled_back); none before any of those. Cancelled tasks
    /// (a person's or a resolved alert's choice) do not count against it.
    pub success_rate: Option<f64>,
    /// Nearest-rank percentiles of creation to completion, over the done tasks, read from a
    /// histogram: never above the true value and less than 9.1 % below it.
    pub duration_p50_ms: Option<i64>,
    pub duration_p90_ms: Option<i64>,
    /// Summed over every run of the tasks.
    pub tokens: Tokens,
    pub cost_usd: f64,
    /// cost_usd / tasks.
    pub cost_per_task_usd: Option<f64>,
    /// cost_usd / done: what one success cost, failures included.
    pub cost_per_success_usd: Option<f64>,
}

impl From<TaskSums> for TaskFigures {
    fn from(s: TaskSums) -> Self {
        TaskFigures {
            success_rate: ratio(s.done, s.done + s.failed + s.rolled_back),
            cost_per_task_usd: per(s.cost_usd, s.tasks),
            cost_per_success_usd: per(s.cost_usd, s.done),
            bucket_start: s.bucket_start,
            group: s.group,
            tasks: s.tasks,
            started: s.started,
            done: s.done,
            failed: s.failed,
            cancelled: s.cancelled,
            rolled_back: s.rolled_back,
            duration_p50_ms: s.duration_p50_ms,
            duration_p90_ms: s.duration_p90_ms,
            tokens: Tokens {
                input: s.input_tokens,
                output: s.output_tokens,
                cache_read: s.cache_read_tokens,
                cache_write: s.cache_write_tokens,
            },
            cost_usd: s.cost_usd,
        }
    }
}

impl TaskFigures {
    /// The sums this row was worked out from.
    fn sums(&self) -> TaskSums {
        TaskSums {
            bucket_start: self.bucket_start,
            group: self.group.clone(),
            tasks: self.tasks,
            started: self.started,
            done: self.done,
            failed: self.failed,
            cancelled: self.cancelled,
            rolled_back: self.rolled_back,
            duration_p50_ms: self.duration_p50_ms,
            duration_p90_ms: self.duration_p90_ms,
            input_tokens: self.tokens.input,
            output_tokens: self.tokens.output,
            cache_read_tokens: self.tokens.cache_read,
            cache_write_tokens: self.tokens.cache_write,
            cost_usd: self.cost_usd,
        }
    }
}

/// `rows` added up per `key` (bucket start, group), in key order: counts, tokens and cost
/// summed and the ratios worked out again. Percentiles do not add up, so a row made of more
/// than one keeps none.
pub fn combine(
    rows: &[TaskFigures],
    key: impl Fn(&TaskFigures) -> (DateTime<Utc>, String),
) -> Vec<TaskFigures> {
    let mut sums: std::collections::BTreeMap<_, TaskSums> = std::collections::BTreeMap::new();
    for row in rows {
        let (bucket_start, group) = key(row);
        let next = row.sums();
        sums.entry((bucket_start, group.clone()))
            .and_modify(|s| {
                s.tasks += next.tasks;
                s.started += next.started;
                s.done += next.done;
                s.failed += next.failed;
                s.cancelled += next.cancelled;
                s.rolled_back += next.rolled_back;
                s.duration_p50_ms = None;
                s.duration_p90_ms = None;
                s.input_tokens += next.input_tokens;
                s.output_tokens += next.output_tokens;
                s.cache_read_tokens += next.cache_read_tokens;
                s.cache_write_tokens += next.cache_write_tokens;
                s.cost_usd += next.cost_usd;
            })
            .or_insert(TaskSums {
                bucket_start,
                group,
                ..next
            });
    }
    sums.into_values().map(TaskFigures::from).collect()
}

/// Task figures per bucket and group.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TaskAnalytics {
    #[serde(flatten)]
    pub range: AnswerRange,
    /// By bucket, then group; a bucket or group without tasks has no row.
    pub rows: Vec<TaskFigures>,
}

/// The approval requests filed in one bucket by one group's tasks, and how they were decided.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ApprovalFigures {
    pub bucket_start: DateTime<Utc>,
    pub group: String,
    pub requested: i64,
    /// Decided by a person (not by the deadline or the pipeline itself).
    pub decided: i64,
    pub approved: i64,
    pub rejected: i64,
    pub revised: i64,
    /// approved / decided, rejected / decided, revised / decided.
    pub approve_share: Option<f64>,
    pub reject_share: Option<f64>,
    pub revise_share: Option<f64>,
    /// Nobody decided before the deadline.
    pub expired: i64,
    pub pending: i64,
    /// Nearest-rank percentiles of request to decision, over the decisions made by people,
    /// read from a histogram: never above the true value and less than 9.1 % below it.
    pub decision_p50_ms: Option<i64>,
    pub decision_p90_ms: Option<i64>,
}

impl From<ApprovalSums> for ApprovalFigures {
    fn from(s: ApprovalSums) -> Self {
        ApprovalFigures {
            approve_share: ratio(s.approved, s.decided),
            reject_share: ratio(s.rejected, s.decided),
            revise_share: ratio(s.revised, s.decided),
            bucket_start: s.bucket_start,
            group: s.group,
            requested: s.requested,
            decided: s.decided,
            approved: s.approved,
            rejected: s.rejected,
            revised: s.revised,
            expired: s.expired,
            pending: s.pending,
            decision_p50_ms: s.decision_p50_ms,
            decision_p90_ms: s.decision_p90_ms,
        }
    }
}

/// Approval figures per bucket and group.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ApprovalAnalytics {
    #[serde(flatten)]
    pub range: AnswerRange,
    pub rows: Vec<ApprovalFigures>,
}

/// The tasks of a range whose runs cost the most.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ExpensiveTasks {
    #[serde(flatten)]
    pub range: AnswerRange,
    /// Dearest first.
    pub items: Vec<TaskCost>,
}

/// One agent's tickets opened in the range, and what became of them.
///
/// An agent is a ticket's `assignee`: a member of the plugin's team (`session.json`'s
/// `members[].name`), the one `ticket_created`/`ticket_updated` events name. Epics and
/// stories have no assignee and do not count.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct AgentFigures {
    pub agent: String,
    /// Tickets assigned to the agent opened in the range (the plugin's `createdAt`, else
    /// when aiops first stored the ticket).
    pub tickets: i64,
    /// Of those, the ones whose status is DONE now.
    pub done: i64,
    /// Those whose status is BLOCKED now.
    pub blocked: i64,
    /// Those not DONE when their task ended failed, rolled back or over its budget.
    pub failed: i64,
    /// Those that went from DONE back to another status at least once (the plugin's
    /// `ticket_updated` events with `prevStatus` DONE).
    pub reopened: i64,
    /// Those failed or reopened (each counted once).
    pub failed_or_reopened: i64,
    /// failed_or_reopened / tickets.
    pub failed_or_reopened_share: Option<f64>,
    /// Nearest-rank percentiles of the time from opened to done (the plugin's
    /// `completedAt`, else when aiops first stored the ticket DONE), over the done ones,
    /// read from a histogram: never above the true value and less than 9.1 % below it.
    pub time_p50_ms: Option<i64>,
    pub time_p90_ms: Option<i64>,
}

impl From<AgentSums> for AgentFigures {
    fn from(s: AgentSums) -> Self {
        AgentFigures {
            failed_or_reopened_share: ratio(s.failed_or_reopened, s.tickets),
            agent: s.agent,
            tickets: s.tickets,
            done: s.done,
            blocked: s.blocked,
            failed: s.failed,
            reopened: s.reopened,
            failed_or_reopened: s.failed_or_reopened,
            time_p50_ms: s.time_p50_ms,
            time_p90_ms: s.time_p90_ms,
        }
    }
}

/// Per-agent figures over a whole range: one row per agent, by name.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AgentAnalytics {
    /// The range after rounding to whole buckets; `group_by` does not split these figures.
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub rows: Vec<AgentFigures>,
}

fn ratio(part: i64, whole: i64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

fn per(total: f64, count: i64) -> Option<f64> {
    (count > 0).then(|| total / count as f64)
}

/// Task figures for `request`, as `reader` may see them.
pub async fn tasks(
    store: &Store,
    reader: &Principal,
    request: &AnalyticsRequest,
) -> Result<TaskAnalytics> {
    let query = request.query(store, reader, Utc::now()).await?;
    let rows = store.task_sums(&query).await?;
    Ok(TaskAnalytics {
        range: AnswerRange::of(&query),
        rows: rows.into_iter().map(TaskFigures::from).collect(),
    })
}

/// Approval figures for `request`, as `reader` may see them.
pub async fn approvals(
    store: &Store,
    reader: &Principal,
    request: &AnalyticsRequest,
) -> Result<ApprovalAnalytics> {
    let query = request.query(store, reader, Utc::now()).await?;
    let rows = store.approval_sums(&query).await?;
    Ok(ApprovalAnalytics {
        range: AnswerRange::of(&query),
        rows: rows.into_iter().map(ApprovalFigures::from).collect(),
    })
}

/// Per-agent figures of the tickets opened in `request`'s range, as `reader` may see them.
pub async fn agents(
    store: &Store,
    reader: &Principal,
    request: &AnalyticsRequest,
) -> Result<AgentAnalytics> {
    let query = request.query(store, reader, Utc::now()).await?;
    let rows = store.agent_sums(&query).await?;
    let range = AnswerRange::of(&query);
    Ok(AgentAnalytics {
        from: range.from,
        to: range.to,
        rows: rows.into_iter().map(AgentFigures::from).collect(),
    })
}

/// The most expensive tasks created in `request`'s range, as `reader` may see them.
pub async fn expensive_tasks(
    store: &Store,
    reader: &Principal,
    request: &AnalyticsRequest,
) -> Result<ExpensiveTasks> {
    // `query` refuses a limit out of range.
    let query = request.query(store, reader, Utc::now()).await?;
    let limit = i64::from(request.limit.unwrap_or(10));
    let items = store.most_expensive_tasks(&query, limit).await?;
    Ok(ExpensiveTasks {
        range: AnswerRange::of(&query),
        items,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        parse_time("t", text).unwrap()
    }

    #[test]
    fn buckets_are_whole_calendar_periods() {
        let days = buckets(
            at("2026-03-01T10:00:00Z"),
            at("2026-03-03T00:00:01Z"),
            BucketSize::Day,
        )
        .unwrap();
        assert_eq!(days.len(), 3);
        assert_eq!(days[0].start, at("2026-03-01"));
        assert_eq!(days[2].end, at("2026-03-04"));
        // 2026-03-04 is a Wednesday: its ISO week starts on Monday the 2nd.
        let weeks = buckets(at("2026-03-04"), at("2026-03-10"), BucketSize::Week).unwrap();
        assert_eq!(
            weeks.iter().map(|b| b.start).collect::<Vec<_>>(),
            vec![at("2026-03-02"), at("2026-03-09")]
        );
        let months = buckets(at("2026-01-31"), at("2026-03-01"), BucketSize::Month).unwrap();
        assert_eq!(
            months.iter().map(|b| (b.start, b.end)).collect::<Vec<_>>(),
            vec![
                (at("2026-01-01"), at("2026-02-01")),
                (at("2026-02-01"), at("2026-03-01"))
            ]
        );
    }

    #[test]
    fn a_bad_range_names_its_field() {
        let err = buckets(at("2026-03-02"), at("2026-03-01"), BucketSize::Day).unwrap_err();
        assert!(matches!(err, Error::Invalid { ref field, .. } if field == "to"));
        let err = buckets(at("2020-01-01"), at("2026-01-01"), BucketSize::Day).unwrap_err();
        assert!(matches!(err, Error::Invalid { ref field, .. } if field == "bucket"));
        assert!(
            matches!(parse_time("from", "yesterday"), Err(Error::Invalid { ref field, .. }) if field == "from")
        );
    }

    #[test]
    fn combined_rows_add_up_and_drop_percentiles() {
        let row = |group: &str, done: i64, failed: i64, cost: f64| {
            TaskFigures::from(TaskSums {
                bucket_start: at("2026-03-02"),
                group: group.into(),
                tasks: done + failed,
                started: done + failed,
                done,
                failed,
                cancelled: 0,
                rolled_back: 0,
                duration_p50_ms: Some(1000),
                duration_p90_ms: Some(2000),
                input_tokens: 1,
                output_tokens: 2,
                cache_read_tokens: 3,
                cache_write_tokens: 4,
                cost_usd: cost,
            })
        };
        let rows = [
            row("shop", 3, 1, 0.5),
            row("blog", 0, 2, 0.25),
            row("shop", 1, 0, 0.25),
        ];
        let by_bucket = combine(&rows[..2], |r| (r.bucket_start, String::new()));
        assert_eq!(by_bucket.len(), 1);
        assert_eq!((by_bucket[0].tasks, by_bucket[0].done), (6, 3));
        assert_eq!(by_bucket[0].success_rate, Some(0.5));
        assert_eq!(by_bucket[0].cost_usd, 0.75);
        assert_eq!(by_bucket[0].duration_p50_ms, None);
        assert_eq!(by_bucket[0].tokens.cache_write, 8);
        let by_group = combine(&rows, |r| (at("2026-03-01"), r.group.clone()));
        let groups: Vec<_> = by_group
            .iter()
            .map(|r| (r.group.as_str(), r.tasks))
            .collect();
        assert_eq!(groups, vec![("blog", 2), ("shop", 5)]);
        assert_eq!(
            by_group[0].duration_p90_ms,
            Some(2000),
            "one row keeps its own"
        );
    }

    #[test]
    fn a_project_filter_never_widens_the_scope() {
        assert_eq!(narrow(ProjectScope::All, 3), ProjectScope::Only(vec![3]));
        assert_eq!(
            narrow(ProjectScope::Only(vec![1, 3]), 3),
            ProjectScope::Only(vec![3])
        );
        assert_eq!(
            narrow(ProjectScope::Only(vec![1]), 3),
            ProjectScope::Only(vec![])
        );
    }
}

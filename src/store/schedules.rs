//! Queries on `schedules`, and the signal that wakes this process' scheduler when one changes.

use chrono::{DateTime, Utc};
use tokio::sync::watch;

use super::{ConstraintExt, Store};
use crate::error::{Error, Result};
use crate::model::{Origin, Schedule, ScheduleSpec, TaskStatus, sql_list};

const SCHEDULE_SELECT: &str = "SELECT s.id, s.name, p.name AS project, s.project_id, s.team,
    s.prompt_template, s.cron, s.timezone, s.priority, s.overlap, s.missed, s.enabled, s.origin,
    s.next_run_at, s.last_fired_at, s.created_at, s.updated_at
    FROM schedules s JOIN projects p ON p.id = s.project_id";

impl Store {
    /// Inserts a schedule; a taken name is a conflict.
    pub async fn insert_schedule(
        &self,
        spec: &ScheduleSpec,
        project_id: i64,
        origin: Origin,
        next_run_at: Option<DateTime<Utc>>,
    ) -> Result<Schedule> {
        let id: i64 = with_pool!(self, pool => sqlx::query_scalar(
            "INSERT INTO schedules (name, project_id, team, prompt_template, cron, timezone, priority,
                overlap, missed, enabled, origin, next_run_at, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13) RETURNING id")
            .bind(&spec.name)
            .bind(project_id)
            .bind(&spec.team)
            .bind(&spec.prompt_template)
            .bind(&spec.cron)
            .bind(&spec.timezone)
            .bind(spec.priority)
            .bind(spec.overlap)
            .bind(spec.missed)
            .bind(spec.enabled)
            .bind(origin)
            .bind(next_run_at)
            .bind(Utc::now())
            .fetch_one(pool)
            .await)
        .on_conflict(format!("a schedule named {:?} already exists", spec.name))?;
        self.announce_schedule_change();
        self.schedule_by_id(id).await
    }

    /// Replaces a schedule's definition (its name and origin stay). With `retime`, its
    /// next tick becomes the given one; without, its timing is left as it is.
    pub async fn update_schedule(
        &self,
        id: i64,
        spec: &ScheduleSpec,
        project_id: i64,
        retime: Option<Option<DateTime<Utc>>>,
    ) -> Result<Schedule> {
        let updated = with_pool!(self, pool => sqlx::query(
            "UPDATE schedules SET project_id = $2, team = $3, prompt_template = $4, cron = $5,
                timezone = $6, priority = $7, overlap = $8, missed = $9, enabled = $10,
                next_run_at = CASE WHEN $11 THEN $12 ELSE next_run_at END, updated_at = $13
             WHERE id = $1")
            .bind(id)
            .bind(project_id)
            .bind(&spec.team)
            .bind(&spec.prompt_template)
            .bind(&spec.cron)
            .bind(&spec.timezone)
            .bind(spec.priority)
            .bind(spec.overlap)
            .bind(spec.missed)
            .bind(spec.enabled)
            .bind(retime.is_some())
            .bind(retime.flatten())
            .bind(Utc::now())
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        if updated == 0 {
            return Err(Error::NotFound(format!("schedule {:?}", spec.name)));
        }
        self.announce_schedule_change();
        self.schedule_by_id(id).await
    }

    /// Deletes a schedule. The tasks it created stay.
    pub async fn delete_schedule(&self, id: i64) -> Result<()> {
        let deleted = with_pool!(self, pool => sqlx::query("DELETE FROM schedules WHERE id = $1")
            .bind(id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        if deleted == 0 {
            return Err(Error::NotFound(format!("schedule {id}")));
        }
        self.announce_schedule_change();
        Ok(())
    }

    /// The schedule with this name, if any.
    pub async fn find_schedule(&self, name: &str) -> Result<Option<Schedule>> {
        let sql = sqlx::AssertSqlSafe(format!("{SCHEDULE_SELECT} WHERE s.name = $1"));
        Ok(with_pool!(self, pool => sqlx::query_as(sql).bind(name).fetch_optional(pool).await)?)
    }

    /// The schedule with this name, or NotFound.
    pub async fn schedule(&self, name: &str) -> Result<Schedule> {
        self.find_schedule(name)
            .await?
            .ok_or_else(|| Error::NotFound(format!("schedule {name:?}")))
    }

    async fn schedule_by_id(&self, id: i64) -> Result<Schedule> {
        let sql = sqlx::AssertSqlSafe(format!("{SCHEDULE_SELECT} WHERE s.id = $1"));
        with_pool!(self, pool => sqlx::query_as(sql).bind(id).fetch_optional(pool).await)?
            .ok_or_else(|| Error::NotFound(format!("schedule {id}")))
    }

    /// Every schedule, by name.
    pub async fn list_schedules(&self) -> Result<Vec<Schedule>> {
        let sql = sqlx::AssertSqlSafe(format!("{SCHEDULE_SELECT} ORDER BY s.name"));
        Ok(with_pool!(self, pool => sqlx::query_as(sql).fetch_all(pool).await)?)
    }

    /// Enabled schedules whose next tick is at or before `now`, earliest first.
    pub async fn due_schedules(&self, now: DateTime<Utc>) -> Result<Vec<Schedule>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "{SCHEDULE_SELECT} WHERE s.enabled AND s.next_run_at <= $1 ORDER BY s.next_run_at"
        ));
        Ok(with_pool!(self, pool => sqlx::query_as(sql).bind(now).fetch_all(pool).await)?)
    }

    /// The earliest next tick of any enabled schedule.
    pub async fn next_schedule_tick(&self) -> Result<Option<DateTime<Utc>>> {
        Ok(with_pool!(self, pool => sqlx::query_scalar(
            "SELECT next_run_at FROM schedules WHERE enabled AND next_run_at IS NOT NULL
             ORDER BY next_run_at LIMIT 1")
            .fetch_optional(pool)
            .await)?)
    }

    /// True while a task whose dedup key starts with `dedup_prefix` (one schedule's tasks)
    /// is queued, running or awaiting approval.
    pub async fn has_open_task_with_dedup_prefix(&self, dedup_prefix: &str) -> Result<bool> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM tasks WHERE status IN ({}) AND dedup_key LIKE $1",
            sql_list(TaskStatus::OPEN, TaskStatus::as_str)
        ));
        let open: i64 = with_pool!(self, pool => sqlx::query_scalar(sql)
            .bind(format!("{dedup_prefix}%"))
            .fetch_one(pool)
            .await)?;
        Ok(open > 0)
    }

    /// Moves a schedule past `tick` to `next_run_at`, if it still is where this process
    /// found it (`last_fired_at` and `next_run_at` unchanged): a compare-and-set, so of
    /// several processes handling the same tick exactly one moves it. True for that one.
    pub async fn advance_schedule(
        &self,
        id: i64,
        found_last_fired_at: Option<DateTime<Utc>>,
        found_next_run_at: DateTime<Utc>,
        tick: DateTime<Utc>,
        next_run_at: Option<DateTime<Utc>>,
    ) -> Result<bool> {
        let moved = with_pool!(self, pool => sqlx::query(
            "UPDATE schedules SET last_fired_at = $4, next_run_at = $5
             WHERE id = $1 AND last_fired_at IS NOT DISTINCT FROM $2 AND next_run_at = $3")
            .bind(id)
            .bind(found_last_fired_at)
            .bind(found_next_run_at)
            .bind(tick)
            .bind(next_run_at)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(moved == 1)
    }

    /// Watches schedule changes made through this process (API, jobs reload), so its
    /// scheduler wakes at once instead of after its longest sleep.
    pub fn subscribe_schedule_changes(&self) -> watch::Receiver<u64> {
        self.schedules_changed.subscribe()
    }

    fn announce_schedule_change(&self) {
        self.schedules_changed
            .send_modify(|changes| *changes = changes.wrapping_add(1));
    }
}

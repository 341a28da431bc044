//! Cron schedules: what a schedule is, which values are acceptable, and when it ticks.
//!
//! Validation lives here so the API and `jobs/*.toml` accept exactly the same things;
//! `scheduler` turns due schedules into tasks (`crate::declarations` reconciles the store with `jobs/`).
//! This module writes no SQL and knows nothing about HTTP.
//!
//! Cron expressions are parsed by croner, the parser tokio-cron-scheduler is built on (the
//! same major version). We take the parser alone: tokio-cron-scheduler and apalis-cron fire
//! jobs from a timer in every process, whereas here a tick must become one task across all
//! processes sharing the store, so the store holds the timing (`next_run_at`) and the
//! parser only answers "which tick comes next". Using croner directly also keeps its error
//! reasons for the 422, which tokio-cron-scheduler reduces to `ParseSchedule`. apalis-cron
//! was the other candidate; its `cron` crate has no 5-field form and counts weekdays from
//! 1 = Sunday, so `0 9 * * 1` would not mean Monday there. Time zones are chrono-tz (IANA
//! names), so a 09:00 schedule stays at 09:00 local time across daylight-saving changes.

use std::str::FromStr;
use std::sync::LazyLock;

use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use regex::Regex;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::config::TasksConfig;
use crate::error::{Error, Result};
use crate::model::is_slug;
pub use crate::model::{Missed, Origin, Overlap, Schedule, ScheduleSpec};
use crate::store::Store;
use crate::tasks::{MAX_PROMPT_BYTES, Priority, Source, TaskSpec};

pub mod scheduler;

/// Time zone of a schedule that names none.
pub const DEFAULT_TIMEZONE: &str = "UTC";

/// Placeholders a prompt template may use: the tick's date and the schedule's name.
pub const TEMPLATE_PLACEHOLDERS: [&str; 2] = ["date", "schedule"];

/// `created_by` of the tasks schedules create.
pub const SCHEDULER_PRINCIPAL: &str = "scheduler";

/// Body of a schedule creation, and one `[[schedule]]` table of a jobs file.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSchedule {
    /// Unique slug: lower-case letters, digits and '-'.
    #[schema(pattern = "^[a-z0-9][a-z0-9-]{0,62}$")]
    pub name: String,
    /// Project name.
    pub project: String,
    /// Team preset; the configured default (`tasks.default_team`) when omitted.
    pub team: Option<String>,
    /// Prompt of each task; may use `{date}` (the tick's date in the schedule's time zone,
    /// YYYY-MM-DD) and `{schedule}` (the schedule's name).
    pub prompt_template: String,
    /// `minute hour day-of-month month day-of-week`, e.g. `0 3 * * *`, or the same with
    /// seconds first, e.g. `*/30 * * * * *`.
    pub cron: String,
    /// IANA time zone, e.g. `Europe/Berlin`; UTC when omitted.
    pub timezone: Option<String>,
    /// The configured default (`tasks.default_priority`) when omitted.
    pub priority: Option<Priority>,
    /// `skip` when omitted.
    pub overlap: Option<Overlap>,
    /// `run_once` when omitted.
    pub missed: Option<Missed>,
    /// true when omitted.
    pub enabled: Option<bool>,
}

/// Body of a schedule update: only the fields present change. The name stays.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SchedulePatch {
    pub project: Option<String>,
    pub team: Option<String>,
    pub prompt_template: Option<String>,
    pub cron: Option<String>,
    pub timezone: Option<String>,
    pub priority: Option<Priority>,
    pub overlap: Option<Overlap>,
    pub missed: Option<Missed>,
    pub enabled: Option<bool>,
}

impl NewSchedule {
    /// Fills defaults and validates everything but the project's existence.
    pub fn into_spec(self, defaults: &TasksConfig) -> Result<ScheduleSpec> {
        ScheduleSpec {
            name: self.name,
            project: self.project,
            team: self.team.unwrap_or_else(|| defaults.default_team.clone()),
            prompt_template: self.prompt_template,
            cron: self.cron.trim().to_string(),
            timezone: self
                .timezone
                .unwrap_or_else(|| DEFAULT_TIMEZONE.to_string()),
            priority: self.priority.unwrap_or(defaults.default_priority),
            overlap: self.overlap.unwrap_or(Overlap::Skip),
            missed: self.missed.unwrap_or(Missed::RunOnce),
            enabled: self.enabled.unwrap_or(true),
        }
        .validated()
    }
}

impl Schedule {
    /// The stored definition.
    pub fn spec(&self) -> Result<ScheduleSpec> {
        Ok(ScheduleSpec {
            name: self.name.clone(),
            project: self.project.clone(),
            team: self.team.clone(),
            prompt_template: self.prompt_template.clone(),
            cron: self.cron.clone(),
            timezone: self.timezone.clone(),
            priority: self.priority,
            overlap: self.overlap,
            missed: self.missed,
            enabled: self.enabled,
        })
    }

    /// The definition with `patch` applied, validated.
    pub fn patched(&self, patch: SchedulePatch) -> Result<ScheduleSpec> {
        let current = self.spec()?;
        ScheduleSpec {
            name: current.name,
            project: patch.project.unwrap_or(current.project),
            team: patch.team.unwrap_or(current.team),
            prompt_template: patch.prompt_template.unwrap_or(current.prompt_template),
            cron: patch.cron.map_or(current.cron, |c| c.trim().to_string()),
            timezone: patch.timezone.unwrap_or(current.timezone),
            priority: patch.priority.unwrap_or(current.priority),
            overlap: patch.overlap.unwrap_or(current.overlap),
            missed: patch.missed.unwrap_or(current.missed),
            enabled: patch.enabled.unwrap_or(current.enabled),
        }
        .validated()
    }

    /// Its cron expression in its time zone.
    pub fn timing(&self) -> Result<Timing> {
        Timing::parse(&self.cron, &self.timezone)
    }

    /// The task this schedule creates for `tick`. The dedup key names the schedule and the
    /// tick, so a second insert for the same tick (by another process) is a conflict.
    pub fn task_for_tick(&self, timing: &Timing, tick: DateTime<Utc>) -> Result<TaskSpec> {
        let tick_text = tick.to_rfc3339_opts(SecondsFormat::Secs, true);
        Ok(TaskSpec {
            project_id: self.project_id,
            team: self.team.clone(),
            prompt: render_prompt(&self.prompt_template, &self.name, &timing.date_of(tick)),
            source: Source::Cron,
            priority: self.priority,
            dedup_key: Some(format!("{}{tick_text}", dedup_key_prefix(self.id))),
            source_ref: serde_json::json!({ "schedule": self.name, "tick": tick_text }),
            created_by: SCHEDULER_PRINCIPAL.to_string(),
            requested_by: None,
        })
    }
}

/// The start of the dedup key of every task schedule `id` creates.
pub fn dedup_key_prefix(id: i64) -> String {
    format!("schedule:{id}:")
}

impl ScheduleSpec {
    fn validated(self) -> Result<Self> {
        if !is_slug(&self.name) {
            return Err(Error::invalid(
                "name",
                "must be 1-63 characters: lower-case letters, digits and '-'",
            ));
        }
        if !is_slug(&self.team) {
            return Err(Error::invalid(
                "team",
                "must be a team name: lower-case letters, digits and '-'",
            ));
        }
        validate_prompt_template(&self.prompt_template)?;
        Timing::parse(&self.cron, &self.timezone)?;
        Ok(self)
    }

    /// The first tick after `now`, or None while disabled.
    fn first_run(&self, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>> {
        if !self.enabled {
            return Ok(None);
        }
        Ok(Timing::parse(&self.cron, &self.timezone)?.next_after(now))
    }

    /// True when `other` ticks at other times than this (cron, time zone or enabled differ).
    fn ticks_differently(&self, other: &ScheduleSpec) -> bool {
        self.cron != other.cron || self.timezone != other.timezone || self.enabled != other.enabled
    }
}

/// A cron expression read in a time zone: when a schedule ticks.
#[derive(Debug, Clone)]
pub struct Timing {
    cron: Cron,
    timezone: Tz,
}

/// The cron fields by position (five fields; six with seconds first) and their ranges.
const CRON_FIELDS: [(&str, u32, u32); 6] = [
    ("second", 0, 59),
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day-of-month", 1, 31),
    ("month", 1, 12),
    ("day-of-week", 0, 7),
];

/// Names the first number of `cron` outside its field's range ("the hour field has 25;
/// hours run 0-23"), which croner reports only as "Number out of bounds".
fn out_of_range(cron: &str) -> Option<String> {
    let fields: Vec<&str> = cron.split_whitespace().collect();
    let names = match fields.len() {
        5 => &CRON_FIELDS[1..],
        6 => &CRON_FIELDS[..],
        _ => return None,
    };
    for (field, (name, low, high)) in fields.iter().zip(names) {
        for part in field.split(',') {
            let (values, step) = part.split_once('/').unwrap_or((part, ""));
            let numbers = values.split('-').filter_map(|n| n.parse::<u32>().ok());
            if let Some(bad) = numbers.into_iter().find(|n| n < low || n > high) {
                return Some(format!("the {name} field has {bad}; it runs {low}-{high}"));
            }
            if step.parse::<u32>().is_ok_and(|s| s == 0 || s > *high) {
                return Some(format!(
                    "the {name} field steps by {step}; use a step from 1 to {high}"
                ));
            }
        }
    }
    None
}

impl Timing {
    /// Parses `cron` read in `timezone`; a bad value is an invalid `cron` or `timezone`
    /// with the reason.
    pub fn parse(cron: &str, timezone: &str) -> Result<Timing> {
        let zone = Tz::from_str(timezone).map_err(|_| {
            Error::invalid(
                "timezone",
                format!(
                    "{timezone:?} is not an IANA time zone name; use e.g. \"UTC\", \"Europe/Berlin\" or \"Asia/Seoul\""
                ),
            )
        })?;
        let parsed = CronParser::builder()
            .seconds(Seconds::Optional)
            .year(Year::Disallowed)
            .build()
            .parse(cron)
            .map_err(|e| {
                let why = out_of_range(cron).unwrap_or_else(|| e.to_string());
                Error::invalid(
                    "cron",
                    format!(
                        "{why} (expected \"minute hour day-of-month month day-of-week\", optionally with seconds first)"
                    ),
                )
            })?;
        let timing = Timing {
            cron: parsed,
            timezone: zone,
        };
        if timing.next_after(Utc::now()).is_none() {
            return Err(Error::invalid("cron", "never matches a date"));
        }
        Ok(timing)
    }

    /// The first tick strictly after `time`.
    pub fn next_after(&self, time: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron
            .find_next_occurrence(&self.whole_second(time), false)
            .ok()
            .map(|tick| tick.with_timezone(&Utc))
    }

    /// The last tick at or before `time`.
    pub fn latest_at_or_before(&self, time: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron
            .find_previous_occurrence(&self.whole_second(time), true)
            .ok()
            .map(|tick| tick.with_timezone(&Utc))
    }

    /// `time` in the schedule's zone without its fraction of a second: croner keeps the
    /// fraction of the time it starts from, and ticks are whole seconds.
    fn whole_second(&self, time: DateTime<Utc>) -> DateTime<Tz> {
        time.trunc_subsecs(0).with_timezone(&self.timezone)
    }

    /// The calendar date of `tick` in the schedule's time zone, YYYY-MM-DD.
    pub fn date_of(&self, tick: DateTime<Utc>) -> String {
        tick.with_timezone(&self.timezone)
            .format("%Y-%m-%d")
            .to_string()
    }
}

static PLACEHOLDER: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\{([A-Za-z0-9_]+)\}").expect("valid pattern"));

fn validate_prompt_template(template: &str) -> Result<()> {
    let invalid = |message: String| Error::invalid("prompt_template", message);
    if template.trim().is_empty() {
        return Err(invalid("must not be empty".into()));
    }
    if template.len() > MAX_PROMPT_BYTES {
        return Err(invalid(format!("must be at most {MAX_PROMPT_BYTES} bytes")));
    }
    for found in PLACEHOLDER.captures_iter(template) {
        if !TEMPLATE_PLACEHOLDERS.contains(&&found[1]) {
            return Err(invalid(format!(
                "unknown placeholder {}; a prompt template may use only {{date}} and {{schedule}}",
                &found[0]
            )));
        }
    }
    Ok(())
}

/// A prompt template with `{date}` and `{schedule}` filled in.
pub fn render_prompt(template: &str, schedule: &str, date: &str) -> String {
    template
        .replace("{date}", date)
        .replace("{schedule}", schedule)
}

/// Creates a schedule; an unknown project is NotFound, a taken name a conflict.
pub async fn create(store: &Store, spec: &ScheduleSpec, origin: Origin) -> Result<Schedule> {
    let project = store.project(&spec.project).await?;
    let next_run_at = spec.first_run(Utc::now())?;
    store
        .insert_schedule(spec, project.id, origin, next_run_at)
        .await
}

/// Gives `current` the definition `spec`. Its timing carries on unless the cron
/// expression, time zone or enabled flag changed; then the next tick counts from now.
pub async fn replace(store: &Store, current: &Schedule, spec: &ScheduleSpec) -> Result<Schedule> {
    let project = store.project(&spec.project).await?;
    let retime = current
        .spec()?
        .ticks_differently(spec)
        .then(|| spec.first_run(Utc::now()))
        .transpose()?;
    store
        .update_schedule(current.id, spec, project.id, retime)
        .await
}

/// Changes a schedule through the API; one declared in `jobs/` is refused.
pub async fn update(store: &Store, name: &str, patch: SchedulePatch) -> Result<Schedule> {
    let current = store.schedule(name).await?;
    ensure_api_managed(&current)?;
    let spec = current.patched(patch)?;
    replace(store, &current, &spec).await
}

/// Removes a schedule through the API; one declared in `jobs/` is refused. Its tasks stay.
pub async fn delete(store: &Store, name: &str) -> Result<()> {
    let current = store.schedule(name).await?;
    ensure_api_managed(&current)?;
    store.delete_schedule(current.id).await
}

/// Runs schedule `name` once now, at the request of `by` (a person, `by_id`): one task as a
/// tick at this moment would make, recorded as asked for by them. Its timing is unchanged.
pub async fn run_now(
    store: &Store,
    name: &str,
    by: &str,
    by_id: Option<i64>,
) -> Result<crate::model::Task> {
    let schedule = store.schedule(name).await?;
    let timing = schedule.timing()?;
    let mut spec = schedule.task_for_tick(&timing, Utc::now().trunc_subsecs(0))?;
    spec.created_by = by.to_string();
    spec.requested_by = by_id;
    crate::tasks::enqueue(store, &spec).await
}

fn ensure_api_managed(schedule: &Schedule) -> Result<()> {
    match schedule.origin {
        Origin::Api => Ok(()),
        Origin::File => Err(Error::Conflict(format!(
            "schedule {:?} is declared in the jobs directory; change its file and run `aiops jobs reload`",
            schedule.name
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().to_utc()
    }

    #[test]
    fn five_fields_tick_at_second_zero_and_six_fields_have_seconds_first() {
        let five = Timing::parse("30 9 * * *", "UTC").unwrap();
        assert_eq!(
            five.next_after(at("2025-03-01T09:29:59Z")),
            Some(at("2025-03-01T09:30:00Z"))
        );
        let six = Timing::parse("15 30 9 * * *", "UTC").unwrap();
        assert_eq!(
            six.next_after(at("2025-03-01T09:30:00Z")),
            Some(at("2025-03-01T09:30:15Z"))
        );
        let every_second = Timing::parse("*/1 * * * * *", "UTC").unwrap();
        assert_eq!(
            every_second.next_after(at("2025-03-01T09:30:00Z")),
            Some(at("2025-03-01T09:30:01Z"))
        );
        // Ticks are whole seconds, whatever the fraction of the time asked about.
        assert_eq!(
            every_second.next_after(at("2025-03-01T09:30:00.75Z")),
            Some(at("2025-03-01T09:30:01Z"))
        );
        assert_eq!(
            every_second.latest_at_or_before(at("2025-03-01T09:30:00.75Z")),
            Some(at("2025-03-01T09:30:00Z"))
        );
        // Monday is 1, as in cron.
        let monday = Timing::parse("0 9 * * 1", "UTC").unwrap();
        assert_eq!(
            monday.next_after(at("2025-03-01T00:00:00Z")),
            Some(at("2025-03-03T09:00:00Z"))
        );
    }

    #[test]
    fn ticks_are_read_in_the_time_zone_across_daylight_saving() {
        let seoul = Timing::parse("0 0 9 * * *", "Asia/Seoul").unwrap();
        assert_eq!(
            seoul.next_after(at("2025-03-01T00:00:00Z")),
            Some(at("2025-03-02T00:00:00Z"))
        );
        // Berlin moves to summer time on 2025-03-30: 09:00 local is 08:00 UTC, then 07:00.
        let berlin = Timing::parse("0 9 * * *", "Europe/Berlin").unwrap();
        assert_eq!(
            berlin.next_after(at("2025-03-29T12:00:00Z")),
            Some(at("2025-03-30T07:00:00Z"))
        );
        assert_eq!(
            berlin.next_after(at("2025-03-28T12:00:00Z")),
            Some(at("2025-03-29T08:00:00Z"))
        );
        assert_eq!(seoul.date_of(at("2025-03-01T15:00:00Z")), "2025-03-02");
    }

    #[test]
    fn latest_tick_is_inclusive() {
        let hourly = Timing::parse("0 * * * *", "UTC").unwrap();
        assert_eq!(
            hourly.latest_at_or_before(at("2025-03-01T10:00:00Z")),
            Some(at("2025-03-01T10:00:00Z"))
        );
        assert_eq!(
            hourly.latest_at_or_before(at("2025-03-01T10:59:59Z")),
            Some(at("2025-03-01T10:00:00Z"))
        );
    }

    #[test]
    fn bad_values_name_their_field_and_reason() {
        for (cron, zone, field, phrase) in [
            (
                "61 * * * *",
                "UTC",
                "cron",
                "the minute field has 61; it runs 0-59",
            ),
            (
                "0 25 * * *",
                "UTC",
                "cron",
                "the hour field has 25; it runs 0-23",
            ),
            (
                "0 0 9 * * 8",
                "UTC",
                "cron",
                "the day-of-week field has 8; it runs 0-7",
            ),
            ("*/0 * * * *", "UTC", "cron", "steps by 0"),
            ("* * * *", "UTC", "cron", "5 or 6 fields"),
            ("0 0 0 * * * 2030", "UTC", "cron", "5 or 6 fields"),
            ("0 0 30 2 *", "UTC", "cron", "never matches"),
            ("0 9 * * *", "Mars/Olympus", "timezone", "IANA"),
        ] {
            match Timing::parse(cron, zone) {
                Err(Error::Invalid {
                    field: got,
                    message,
                }) => {
                    assert_eq!(got, field, "{cron} {zone}: {message}");
                    assert!(message.contains(phrase), "{cron}: {message}");
                }
                other => panic!("{cron} {zone}: {other:?}"),
            }
        }
    }

    #[test]
    fn templates_use_only_date_and_schedule() {
        assert!(
            validate_prompt_template("Audit {schedule} for {date}; keep {\"json\": 1}").is_ok()
        );
        assert!(matches!(
            validate_prompt_template("Audit {project}"),
            Err(Error::Invalid { field, message }) if field == "prompt_template" && message.contains("{project}")
        ));
        assert_eq!(
            render_prompt("{schedule} on {date}", "nightly", "2025-03-01"),
            "nightly on 2025-03-01"
        );
    }
}

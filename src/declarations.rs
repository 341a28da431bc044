//! Declarations: the jobs directory (`jobs/*.toml`; named so for users, and not the
//! queue's jobs), which declares cron schedules
//! (`[[schedule]]` tables, the fields of `POST /api/v1/schedules`) and routing rules
//! (`[[github_rule]]` and `[[alert_rule]]` tables, the fields of `POST
//! /api/v1/routing-rules` without `kind`).
//!
//! The directory is the source of truth for schedules and rules of origin `file`:
//! reconciling creates, changes and removes them until the store matches the files. Every
//! file is read and validated before anything is written, so a bad file changes nothing.
//! What was created through the API is never touched here. A schedule or rule whose project
//! is not registered is skipped with a warning rather than failing the start, so example
//! files can ship.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow, bail};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::config::Config;
use crate::error::Error;
use crate::routing::{self, AlertRuleSpec, GithubRuleSpec, RoutingRule, RoutingRuleSpec};
use crate::schedules::{self, NewSchedule, Origin, Schedule, ScheduleSpec};
use crate::store::Store;
use crate::teams::Teams;

/// The kinds of table a jobs file may hold.
const TABLES: [&str; 3] = ["schedule", "github_rule", "alert_rule"];

/// One schedule or routing rule declared in a file.
#[derive(Debug, Clone)]
pub struct Declared<T> {
    pub file: PathBuf,
    pub spec: T,
}

/// Everything the jobs directory declares.
#[derive(Debug, Default)]
pub struct Declarations {
    pub schedules: Vec<Declared<ScheduleSpec>>,
    pub routing_rules: Vec<Declared<RoutingRuleSpec>>,
}

/// What a reconcile did to one kind, by name.
#[derive(Debug, Default, Serialize)]
pub struct Reconciled {
    pub created: Vec<String>,
    pub updated: Vec<String>,
    pub unchanged: Vec<String>,
    pub removed: Vec<String>,
    pub skipped: Vec<Skipped>,
}

/// A declared schedule or rule that could not be applied, and why.
#[derive(Debug, Serialize)]
pub struct Skipped {
    pub name: String,
    pub file: String,
    pub reason: String,
}

/// What a reload did to the schedules and to the routing rules.
#[derive(Debug, Default, Serialize)]
pub struct Reloaded {
    pub schedules: Reconciled,
    pub routing_rules: Reconciled,
}

impl Reconciled {
    /// One line for people.
    pub fn summary(&self) -> String {
        format!(
            "{} created, {} updated, {} unchanged, {} removed, {} skipped",
            self.created.len(),
            self.updated.len(),
            self.unchanged.len(),
            self.removed.len(),
            self.skipped.len()
        )
    }

    /// Skips `name` when `project` is not registered; true when it was skipped.
    async fn skip_unregistered(
        &mut self,
        store: &Store,
        name: &str,
        project: &str,
        file: &Path,
    ) -> anyhow::Result<bool> {
        if store.find_project(project).await?.is_some() {
            return Ok(false);
        }
        self.skipped.push(Skipped {
            name: name.to_string(),
            file: file.display().to_string(),
            reason: format!(
                "project {project:?} is not registered; register it (aiops project add) and reload"
            ),
        });
        Ok(true)
    }
}

impl Reloaded {
    /// One line for people.
    pub fn summary(&self) -> String {
        format!(
            "schedules: {}; routing rules: {}",
            self.schedules.summary(),
            self.routing_rules.summary()
        )
    }

    /// Everything skipped, with its kind (`schedule` or `routing rule`).
    pub fn skipped(&self) -> impl Iterator<Item = (&'static str, &Skipped)> {
        let schedules = self.schedules.skipped.iter().map(|s| ("schedule", s));
        let rules = self
            .routing_rules
            .skipped
            .iter()
            .map(|s| ("routing rule", s));
        schedules.chain(rules)
    }
}

/// `serve`'s start-up load of `scheduler.jobs_dir`: reconciles when the directory exists,
/// leaves the store alone when it does not (or when the setting is empty).
pub async fn load_at_start(
    store: &Store,
    config: &Config,
    teams: &Teams,
) -> anyhow::Result<Option<Reloaded>> {
    let dir = &config.scheduler.jobs_dir;
    if dir.as_os_str().is_empty() {
        return Ok(None);
    }
    if !dir.is_dir() {
        tracing::debug!(dir = %dir.display(), "no jobs directory; file schedules and routing rules are left as they are");
        return Ok(None);
    }
    let reloaded = reconcile(store, config, teams, dir)
        .await
        .with_context(|| format!("cannot load the jobs in {}", dir.display()))?;
    // A declaration for a project not registered here (the shipped examples, on a fresh
    // install) is expected, not a fault: noted, not warned; `aiops jobs reload` lists them.
    for (kind, skipped) in reloaded.skipped() {
        tracing::info!(
            kind,
            name = skipped.name,
            file = skipped.file,
            reason = skipped.reason,
            "{kind} not loaded"
        );
    }
    tracing::info!(dir = %dir.display(), "jobs loaded: {}", reloaded.summary());
    Ok(Some(reloaded))
}

/// Makes the store's file schedules and file routing rules match the `*.toml` files in `dir`.
pub async fn reconcile(
    store: &Store,
    config: &Config,
    teams: &Teams,
    dir: &Path,
) -> anyhow::Result<Reloaded> {
    let declared = read_dir(dir, config, teams)?;
    let schedules = store.list_schedules().await?;
    let rules = store.list_routing_rules().await?;
    refuse_api_names(
        "schedule",
        declared
            .schedules
            .iter()
            .map(|d| (&d.file, d.spec.name.as_str())),
        schedules.iter().map(|s| (s.name.as_str(), s.origin)),
    )?;
    refuse_api_names(
        "routing rule",
        declared
            .routing_rules
            .iter()
            .map(|d| (&d.file, d.spec.name())),
        rules.iter().map(|r| (r.spec.name(), r.origin)),
    )?;
    Ok(Reloaded {
        schedules: reconcile_schedules(store, declared.schedules, &schedules).await?,
        routing_rules: reconcile_routing_rules(store, declared.routing_rules, &rules).await?,
    })
}

/// A file may not take over what was created through the API.
fn refuse_api_names<'a>(
    kind: &str,
    declared: impl Iterator<Item = (&'a PathBuf, &'a str)>,
    existing: impl Iterator<Item = (&'a str, Origin)>,
) -> anyhow::Result<()> {
    let through_api: Vec<&str> = existing
        .filter(|(_, origin)| *origin == Origin::Api)
        .map(|(name, _)| name)
        .collect();
    for (file, name) in declared {
        if through_api.contains(&name) {
            bail!(
                "{}: {kind} {name:?}: name: a {kind} with this name was created through the API; rename one of them",
                file.display()
            );
        }
    }
    Ok(())
}

async fn reconcile_schedules(
    store: &Store,
    declared: Vec<Declared<ScheduleSpec>>,
    existing: &[Schedule],
) -> anyhow::Result<Reconciled> {
    let mut done = Reconciled::default();
    let mut applied = Vec::new();
    for d in declared {
        let name = d.spec.name.clone();
        if done
            .skip_unregistered(store, &name, &d.spec.project, &d.file)
            .await?
        {
            continue;
        }
        match existing.iter().find(|s| s.name == name) {
            None => match schedules::create(store, &d.spec, Origin::File).await {
                Ok(_) => done.created.push(name.clone()),
                // Another process loading the same files created it a moment ago.
                Err(Error::Conflict(_)) => done.unchanged.push(name.clone()),
                Err(e) => return Err(e.into()),
            },
            Some(current) if current.spec()? == d.spec => done.unchanged.push(name.clone()),
            Some(current) => {
                schedules::replace(store, current, &d.spec).await?;
                done.updated.push(name.clone());
            }
        }
        applied.push(name);
    }
    for gone in existing
        .iter()
        .filter(|s| s.origin == Origin::File && !applied.contains(&s.name))
    {
        match store.delete_schedule(gone.id).await {
            Ok(()) | Err(Error::NotFound(_)) => done.removed.push(gone.name.clone()),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(done)
}

async fn reconcile_routing_rules(
    store: &Store,
    declared: Vec<Declared<RoutingRuleSpec>>,
    existing: &[RoutingRule],
) -> anyhow::Result<Reconciled> {
    let mut done = Reconciled::default();
    let mut applied = Vec::new();
    for d in declared {
        let name = d.spec.name().to_string();
        if let Some(project) = d.spec.project()
            && done
                .skip_unregistered(store, &name, project, &d.file)
                .await?
        {
            continue;
        }
        let file = file_name(&d.file);
        match existing.iter().find(|r| r.spec.name() == name) {
            None => match routing::create(store, &d.spec, Origin::File, Some(&file)).await {
                Ok(_) => done.created.push(name.clone()),
                // Another process loading the same files created it a moment ago.
                Err(Error::Conflict(_)) => done.unchanged.push(name.clone()),
                Err(e) => return Err(e.into()),
            },
            Some(current) if current.spec == d.spec && current.file.as_ref() == Some(&file) => {
                done.unchanged.push(name.clone())
            }
            Some(current) => {
                routing::replace(store, current, &d.spec, Some(&file)).await?;
                done.updated.push(name.clone());
            }
        }
        applied.push(name);
    }
    for gone in existing
        .iter()
        .filter(|r| r.origin == Origin::File && !applied.iter().any(|name| name == r.spec.name()))
    {
        match store.delete_routing_rule(gone.id).await {
            Ok(()) | Err(Error::NotFound(_)) => done.removed.push(gone.spec.name().to_string()),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(done)
}

/// The name a file is stored under: its file name within the jobs directory.
fn file_name(file: &Path) -> String {
    file.file_name().map_or_else(
        || file.display().to_string(),
        |name| name.to_string_lossy().into_owned(),
    )
}

/// Reads and validates every `*.toml` file in `dir`, in name order. An error names the
/// file, the table and the field.
pub fn read_dir(dir: &Path, config: &Config, teams: &Teams) -> anyhow::Result<Declarations> {
    let entries = std::fs::read_dir(dir).with_context(|| {
        format!(
            "cannot read the jobs directory {}; pass an existing one (--jobs-dir / scheduler.jobs_dir)",
            dir.display()
        )
    })?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "toml") && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    let mut declared = Declarations::default();
    let mut schedules_seen: HashMap<String, PathBuf> = HashMap::new();
    let mut rules_seen: HashMap<String, PathBuf> = HashMap::new();
    for file in files {
        let (schedules, rules) = read_file(&file, config, teams)?;
        for spec in schedules {
            first_declaration(&mut schedules_seen, &file, "schedule", &spec.name)?;
            declared.schedules.push(Declared {
                file: file.clone(),
                spec,
            });
        }
        for spec in rules {
            let kind = format!("{}_rule", spec.kind());
            first_declaration(&mut rules_seen, &file, &kind, spec.name())?;
            declared.routing_rules.push(Declared {
                file: file.clone(),
                spec,
            });
        }
    }
    Ok(declared)
}

/// Notes that `file` declares `name`; an error when an earlier file (or table) did.
fn first_declaration(
    seen: &mut HashMap<String, PathBuf>,
    file: &Path,
    kind: &str,
    name: &str,
) -> anyhow::Result<()> {
    if let Some(first) = seen.get(name) {
        bail!(
            "{}: {kind} {name:?}: name: already declared in {}",
            file.display(),
            first.display()
        );
    }
    seen.insert(name.to_string(), file.to_path_buf());
    Ok(())
}

fn read_file(
    file: &Path,
    config: &Config,
    teams: &Teams,
) -> anyhow::Result<(Vec<ScheduleSpec>, Vec<RoutingRuleSpec>)> {
    let at = file.display().to_string();
    let text = std::fs::read_to_string(file).with_context(|| format!("{at}: cannot read"))?;
    let mut table: toml::Table = toml::from_str(&text).map_err(|e| anyhow!("{at}: {e}"))?;
    let [schedules, github_rules, alert_rules] = TABLES.map(|key| table.remove(key));
    if let Some(key) = table.keys().next() {
        bail!(
            "{at}: unknown key `{key}`; a jobs file holds only [[schedule]], [[github_rule]] and [[alert_rule]] tables"
        );
    }
    let validated = |spec: RoutingRuleSpec| {
        spec.validate(teams, &config.alerts)?;
        Ok(spec)
    };
    let schedules = parse_tables(&at, "schedule", schedules, |new: NewSchedule| {
        new.into_spec(&config.tasks)
    })?;
    let mut rules = parse_tables(&at, "github_rule", github_rules, |rule: GithubRuleSpec| {
        validated(RoutingRuleSpec::Github(rule))
    })?;
    rules.extend(parse_tables(
        &at,
        "alert_rule",
        alert_rules,
        |rule: AlertRuleSpec| validated(RoutingRuleSpec::Alert(rule)),
    )?);
    Ok((schedules, rules))
}

/// The `[[key]]` tables of a file, each read as `T` and checked by `check`. An error names
/// the file, the table (by its name, else its number) and the field.
fn parse_tables<T: DeserializeOwned, S>(
    at: &str,
    key: &str,
    tables: Option<toml::Value>,
    check: impl Fn(T) -> crate::error::Result<S>,
) -> anyhow::Result<Vec<S>> {
    let tables = match tables {
        None => Vec::new(),
        Some(toml::Value::Array(tables)) => tables,
        Some(_) => bail!("{at}: `{key}` must be a list of tables, written [[{key}]]"),
    };
    tables
        .into_iter()
        .enumerate()
        .map(|(index, value)| {
            let label = match value.get("name").and_then(toml::Value::as_str) {
                Some(name) => format!("{name:?}"),
                None => format!("#{}", index + 1),
            };
            let parsed: T = serde_path_to_error::deserialize(value).map_err(|e| {
                match e.path().to_string().as_str() {
                    "." => anyhow!("{at}: {key} {label}: {}", e.inner()),
                    field => anyhow!("{at}: {key} {label}: {field}: {}", e.inner()),
                }
            })?;
            check(parsed).map_err(|e| anyhow!("{at}: {key} {label}: {e}"))
        })
        .collect()
}

//! Declarative schedules: `jobs/*.toml`, each file holding `[[schedule]]` tables with the
//! same fields as `POST /api/v1/schedules`.
//!
//! The directory is the source of truth for schedules of origin `file`: reconciling creates,
//! changes and removes them until the store matches the files. Every file is read and
//! validated before anything is written, so a bad file changes nothing. Schedules created
//! through the API are never touched here. A schedule whose project is not registered is
//! skipped with a warning rather than failing the start, so example files can ship.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow, bail};
use serde::Serialize;

use super::{NewSchedule, Origin, ScheduleSpec};
use crate::config::{Config, TasksConfig};
use crate::error::Error;
use crate::store::Store;

/// One schedule declared in a file.
#[derive(Debug, Clone)]
pub struct Declared {
    pub file: PathBuf,
    pub spec: ScheduleSpec,
}

/// What a reconcile did, by schedule name.
#[derive(Debug, Default, Serialize)]
pub struct Reconciled {
    pub created: Vec<String>,
    pub updated: Vec<String>,
    pub unchanged: Vec<String>,
    pub removed: Vec<String>,
    pub skipped: Vec<Skipped>,
}

/// A declared schedule that could not be applied, and why.
#[derive(Debug, Serialize)]
pub struct Skipped {
    pub name: String,
    pub file: String,
    pub reason: String,
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
}

/// `serve`'s start-up load of `scheduler.jobs_dir`: reconciles when the directory exists,
/// leaves the store alone when it does not (or when the setting is empty).
pub async fn load_at_start(store: &Store, config: &Config) -> anyhow::Result<Option<Reconciled>> {
    let dir = &config.scheduler.jobs_dir;
    if dir.as_os_str().is_empty() {
        return Ok(None);
    }
    if !dir.is_dir() {
        tracing::debug!(dir = %dir.display(), "no jobs directory; file schedules are left as they are");
        return Ok(None);
    }
    let reconciled = reconcile(store, &config.tasks, dir)
        .await
        .with_context(|| format!("cannot load the schedules in {}", dir.display()))?;
    for skipped in &reconciled.skipped {
        tracing::warn!(
            schedule = skipped.name,
            file = skipped.file,
            reason = skipped.reason,
            "schedule not loaded"
        );
    }
    tracing::info!(dir = %dir.display(), "jobs loaded: {}", reconciled.summary());
    Ok(Some(reconciled))
}

/// Makes the store's file schedules match the `*.toml` files in `dir`.
pub async fn reconcile(
    store: &Store,
    defaults: &TasksConfig,
    dir: &Path,
) -> anyhow::Result<Reconciled> {
    let declared = read_dir(dir, defaults)?;
    let existing = store.list_schedules().await?;
    for d in &declared {
        if existing
            .iter()
            .any(|s| s.name == d.spec.name && s.origin == Origin::Api)
        {
            bail!(
                "{}: schedule {:?}: name: a schedule with this name was created through the API; rename one of them",
                d.file.display(),
                d.spec.name
            );
        }
    }
    let mut done = Reconciled::default();
    let mut applied = Vec::new();
    for d in declared {
        let name = d.spec.name.clone();
        if store.find_project(&d.spec.project).await?.is_none() {
            done.skipped.push(Skipped {
                name,
                file: d.file.display().to_string(),
                reason: format!(
                    "project {:?} is not registered; register it (aiops project add) and reload",
                    d.spec.project
                ),
            });
            continue;
        }
        match existing.iter().find(|s| s.name == name) {
            None => match super::create(store, &d.spec, Origin::File).await {
                Ok(_) => done.created.push(name.clone()),
                // Another process loading the same files created it a moment ago.
                Err(Error::Conflict(_)) => done.unchanged.push(name.clone()),
                Err(e) => return Err(e.into()),
            },
            Some(current) if current.spec()? == d.spec => done.unchanged.push(name.clone()),
            Some(current) => {
                super::replace(store, current, &d.spec).await?;
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

/// Reads and validates every `*.toml` file in `dir`, in name order. An error names the
/// file, the schedule and the field.
pub fn read_dir(dir: &Path, defaults: &TasksConfig) -> anyhow::Result<Vec<Declared>> {
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
    let mut declared: Vec<Declared> = Vec::new();
    let mut seen: HashMap<String, PathBuf> = HashMap::new();
    for file in files {
        for spec in read_file(&file, defaults)? {
            if let Some(first) = seen.get(&spec.name) {
                bail!(
                    "{}: schedule {:?}: name: already declared in {}",
                    file.display(),
                    spec.name,
                    first.display()
                );
            }
            seen.insert(spec.name.clone(), file.clone());
            declared.push(Declared {
                file: file.clone(),
                spec,
            });
        }
    }
    Ok(declared)
}

fn read_file(file: &Path, defaults: &TasksConfig) -> anyhow::Result<Vec<ScheduleSpec>> {
    let at = file.display();
    let text = std::fs::read_to_string(file).with_context(|| format!("{at}: cannot read"))?;
    let mut table: toml::Table = toml::from_str(&text).map_err(|e| anyhow!("{at}: {e}"))?;
    let tables = match table.remove("schedule") {
        None => Vec::new(),
        Some(toml::Value::Array(tables)) => tables,
        Some(_) => bail!("{at}: `schedule` must be a list of tables, written [[schedule]]"),
    };
    if let Some(key) = table.keys().next() {
        bail!("{at}: unknown key `{key}`; a jobs file holds only [[schedule]] tables");
    }
    tables
        .into_iter()
        .enumerate()
        .map(|(index, value)| {
            let label = match value.get("name").and_then(toml::Value::as_str) {
                Some(name) => format!("{name:?}"),
                None => format!("#{}", index + 1),
            };
            let new: NewSchedule =
                serde_path_to_error::deserialize(value).map_err(|e| {
                    match e.path().to_string().as_str() {
                        "." => anyhow!("{at}: schedule {label}: {}", e.inner()),
                        field => anyhow!("{at}: schedule {label}: {field}: {}", e.inner()),
                    }
                })?;
            new.into_spec(defaults)
                .map_err(|e| anyhow!("{at}: schedule {label}: {e}"))
        })
        .collect()
}

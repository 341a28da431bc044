//! The execution engine: takes a task from the queue, holds a concurrency slot, runs the
//! pipeline in the task's worktree with only the project's credentials, mirrors `.party/`
//! into the store while it runs and once more after it exits, and settles the task.
//!
//! The engine decides nothing about what to run (triggers do) and never decrypts except
//! through the vault, right before a spawn.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::credentials;
use crate::error::{Error, Result};
use crate::model::{
    NewEvent, NewJob, RunEnd, RunJob, RunKind, RunStatus, RunTotals, TaskExec, TaskStatus,
};
use crate::projects::{self, Project};
use crate::store::Store;
use crate::store::slots::HandedJob;
use crate::tasks;
use crate::vault::{Redactor, Vault};

pub mod agent;
mod budget;
mod conclude;
mod confine;
mod gate;
pub mod ingest;
pub mod party;
pub mod worker;
pub mod worktree;

use agent::{AgentEvent, AgentSpec};
use conclude::Conclusion;
pub(crate) use conclude::Executed;
use ingest::{Ingestor, PipelineState};
use worktree::{RepoSpec, Worktrees};

/// The engine of one process: shared by its queue workers.
pub struct Engine {
    pub(crate) store: Store,
    vault: Vault,
    pub(crate) config: Arc<Config>,
    worktrees: Worktrees,
    /// Identifies this process in slots and runs.
    holder: String,
    /// Cancellation handles of the pipelines this process runs.
    running: Mutex<HashMap<i64, CancellationToken>>,
    /// Per task starting in a slot handed to it: whom to tell once its run has started (the
    /// conclusion of the run that handed the slot on waits for it).
    handed_starts: Mutex<HashMap<i64, tokio::sync::oneshot::Sender<()>>>,
    /// Kernel notifications of `.party/` writes; None where the host gives none (then
    /// ingestion polls every `engine.ingest_interval_ms`).
    party_watcher: Option<Arc<party::PartyWatcher>>,
    /// What confines the agents, decided at start.
    sandbox: confine::Sandbox,
    /// Set once this process' queue workers stop: a slot freed then goes to the queue, not to
    /// a new run here.
    stopping: AtomicBool,
}

/// How one job ended, for the log.
#[derive(Debug, PartialEq, Eq)]
pub enum JobOutcome {
    /// Nothing to do (task ended, or waits for a human).
    Skipped,
    /// No free slot; the task waits for one (its job is pushed again when one frees).
    Deferred,
    /// An infrastructure failure; queued again with backoff.
    Retried,
    /// The pipeline ran; the task now has this status.
    Ran(TaskStatus),
}

impl Engine {
    /// An engine for this process.
    pub fn new(store: Store, vault: Vault, config: Arc<Config>) -> Arc<Self> {
        let holder = worker::new_holder(&config.data_dir);
        let party_watcher = config
            .engine
            .file_notifications
            .then(|| {
                party::PartyWatcher::new()
                    .inspect_err(|e| {
                        tracing::warn!(error = %e, "no file notifications on this host; .party/ is polled every engine.ingest_interval_ms")
                    })
                    .ok()
            })
            .flatten();
        Arc::new(Self {
            party_watcher,
            sandbox: confine::Sandbox::new(&config),
            worktrees: Worktrees::new(config.data_dir.clone())
                .with_private_targets(config.inputs.allow_private_targets),
            store,
            vault,
            config,
            holder,
            running: Mutex::new(HashMap::new()),
            handed_starts: Mutex::new(HashMap::new()),
            stopping: AtomicBool::new(false),
        })
    }

    /// How agents are confined on this host (for `/readyz` and the start-up message).
    pub fn sandbox_status(&self) -> &agent::sandbox::SandboxStatus {
        self.sandbox.status()
    }

    /// This process' id in slots and runs.
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// Stops a pipeline this process runs; false if it runs elsewhere or not at all.
    pub fn cancel_local(&self, task_id: i64) -> bool {
        match self.running.lock().expect("not poisoned").get(&task_id) {
            Some(token) => {
                token.cancel();
                true
            }
            None => false,
        }
    }

    /// Brings the task of a run job forward by one step: start, recover or resume it.
    pub async fn advance_task(&self, job: &RunJob) -> Result<JobOutcome> {
        let executed = self.advance(job, None).await.0?;
        self.finish(executed).await
    }

    /// `advance_task`. With `handoff` (the queue worker that claimed `job`), the slot the run
    /// frees goes straight to the waiter that gets it next, whose job comes back claimed by
    /// that worker, to run now. A run's conclusion is left to do after the slot's release
    /// (`Engine::finish`).
    pub(crate) async fn advance(
        &self,
        job: &RunJob,
        handoff: Option<&str>,
    ) -> (Result<Executed>, Option<HandedJob>) {
        match self.take_slot(job).await {
            Ok(Ok(task)) => self.run_in_slot(task, job, handoff).await,
            Ok(Err(outcome)) => (Ok(outcome.into()), None),
            Err(e) => (Err(e), None),
        }
    }

    /// The task of `job`, now holding a running slot; or how the job ended without one.
    async fn take_slot(&self, job: &RunJob) -> Result<std::result::Result<TaskExec, JobOutcome>> {
        let task = self.store.task_exec(job.task_id).await?;
        if task.status.has_ended() {
            return Ok(Err(JobOutcome::Skipped));
        }
        if task.cancel_requested_at.is_some() {
            let reason = Some("cancelled by request");
            tasks::set_status(&self.store, task.id, TaskStatus::Cancelled, reason, None).await?;
            return Ok(Err(JobOutcome::Skipped));
        }
        if task.status == TaskStatus::AwaitingApproval && job.resume_approval_id.is_none() {
            return Ok(Err(JobOutcome::Skipped));
        }
        if !self.admitted(&task, job).await? {
            return Ok(Err(JobOutcome::Deferred));
        }
        let ttl = chrono::Duration::seconds(self.config.engine.slot_ttl_secs as i64);
        let limit = self.config.engine.max_concurrent_tasks;
        // No free slot: the task waits, without a job, until a slot it fits in frees.
        let wait = Some((job, task.priority));
        if !self
            .store
            .acquire_slot(task.id, task.project_id, &self.holder, ttl, limit, wait)
            .await?
        {
            return Ok(Err(JobOutcome::Deferred));
        }
        Ok(Ok(task))
    }

    async fn execute(&self, task: TaskExec, job: &RunJob) -> Result<Executed> {
        let interrupted = self.close_interrupted_runs(&task).await?;
        let project = self.store.project_by_id(task.project_id).await?;
        let (worktree, task) = match self.prepare_worktree(&project, task).await {
            Ok(ready) => ready,
            Err(PrepareError::Retry(task, reason)) => {
                return self.retry_later(&task, &reason).await.map(Into::into);
            }
            Err(PrepareError::Fatal(task, reason)) => {
                return self.fail(task.id, &reason).await.map(Into::into);
            }
            Err(PrepareError::Store(e)) => return Err(e),
        };
        let (kind, template, resume) = match job.resume_approval_id {
            Some(approval_id) => match self
                .prepare_resume(approval_id, &task, &worktree, interrupted)
                .await?
            {
                Some(resume) => (
                    RunKind::Resume,
                    &self.config.engine.resume_command,
                    Some(resume),
                ),
                None => return Ok(JobOutcome::Skipped.into()),
            },
            None if interrupted => (RunKind::Recover, &self.config.engine.command, None),
            None => (RunKind::Start, &self.config.engine.command, None),
        };
        let secrets = credentials::reveal_for_project(&self.store, &self.vault, project.id).await?;
        let redactor = self.vault.redactor(
            secrets
                .iter()
                .map(|(_, value, name)| (name.clone(), value.clone())),
        );
        let budget = budget::for_task(&self.store, &self.config, task.id).await?;
        let max_budget = self.max_budget_usd(&budget, &project).await?;
        let decision = resume.as_ref().map_or("", |r| r.prompt.as_str());
        let argv = match budget::command_line(template, &task, &project, decision, &max_budget) {
            Ok(argv) => argv,
            Err(e) => {
                let reason = format!("cannot build the agent command: {e}");
                return self.fail(task.id, &reason).await.map(Into::into);
            }
        };
        let spec = match self
            .agent_spec(
                &task,
                &project,
                &worktree,
                (argv, budget),
                &secrets,
                &redactor,
            )
            .await?
        {
            Ok(spec) => spec,
            Err((status, why)) => return self.end(task.id, status, &why).await.map(Into::into),
        };
        drop(secrets);
        let run = PipelineRun {
            kind,
            worktree,
            spec,
            redactor,
            resume,
        };
        self.run_pipeline(task, project, run).await
    }

    /// What the agent of `task` runs with: its confinement, environment, limits and budget;
    /// the status and reason to end the task with when it cannot run.
    async fn agent_spec(
        &self,
        task: &TaskExec,
        project: &Project,
        worktree: &Path,
        (argv, budget): (Vec<String>, agent::Budget),
        secrets: &[(String, String, String)],
        redactor: &Redactor,
    ) -> Result<std::result::Result<AgentSpec, (TaskStatus, String)>> {
        let timeout = project.timeout_secs.map(|s| s as u64);
        if let Some(why) = budget.exceeded(agent::Spent {
            cost_usd: 0.0,
            turns: 0,
        }) {
            let why = why.replacen("stopped: ", "not run again: ", 1);
            return Ok(Err((TaskStatus::BudgetExceeded, why)));
        }
        let shared_redactor = Arc::new(redactor.clone());
        let (env, shim) = match self.confined_env(task.id, worktree, &argv[0], secrets) {
            Ok(confined) => confined,
            Err(reason) => return Ok(Err((TaskStatus::Failed, reason))),
        };
        Ok(Ok(AgentSpec {
            argv,
            cwd: worktree.to_path_buf(),
            env,
            shim: Some(shim),
            timeout: Duration::from_secs(timeout.unwrap_or(self.config.engine.timeout_secs)),
            max_output_bytes: self.config.engine.max_log_bytes,
            redact: Arc::new(move |text: &str| shared_redactor.redact(text).into_owned()),
            budget,
        }))
    }

    /// Closes runs an earlier life of a worker left open (it died), killing what is left of
    /// their processes. True if there were any: the task is being recovered.
    async fn close_interrupted_runs(&self, task: &TaskExec) -> Result<bool> {
        let open = self.store.open_runs(task.id).await?;
        for (run_id, pgid) in &open {
            if let Some(pgid) = pgid {
                agent::kill_group(*pgid as i32);
            }
            let end =
                failed_run("interrupted: the worker running it stopped; the task is run again");
            self.store.finish_run(*run_id, &end).await?;
        }
        Ok(!open.is_empty() || task.status == TaskStatus::Running)
    }

    async fn prepare_worktree(
        &self,
        project: &Project,
        task: TaskExec,
    ) -> Result<(PathBuf, TaskExec), PrepareError> {
        let spec = RepoSpec {
            project: project.name.clone(),
            repo_url: project.repo_url.clone(),
            local_path: project.local_path.as_ref().map(PathBuf::from),
            default_branch: project.default_branch.clone(),
        };
        let (repo, base) = match self.worktrees.prepare(&spec).await {
            Ok(ready) => ready,
            Err(e) if e.is_retryable() => return Err(PrepareError::Retry(task, e.to_string())),
            Err(e) => return Err(PrepareError::Fatal(task, e.to_string())),
        };
        let base = task.base_ref.clone().unwrap_or(base);
        let branch = task.branch.clone().unwrap_or_else(|| {
            projects::render_branch(&project.branch_strategy, &project.name, &task.team, task.id)
        });
        let path = match self
            .worktrees
            .add(&repo, &project.name, task.id, &branch, &base)
            .await
        {
            Ok(path) => path,
            Err(e) if e.is_retryable() => return Err(PrepareError::Retry(task, e.to_string())),
            Err(e) => return Err(PrepareError::Fatal(task, e.to_string())),
        };
        self.store
            .set_task_worktree(
                task.id,
                &repo.to_string_lossy(),
                &base,
                &branch,
                &path.to_string_lossy(),
            )
            .await
            .map_err(PrepareError::Store)?;
        crate::team_presets::write_into_worktree(&self.store, &task.team, &path)
            .await
            .map_err(PrepareError::Store)?;
        Ok((path, task))
    }

    async fn retry_later(&self, task: &TaskExec, reason: &str) -> Result<JobOutcome> {
        let attempts = self.store.bump_infra_attempts(task.id).await?;
        if attempts > self.config.engine.max_infra_attempts {
            let reason = format!("gave up after {} attempts: {reason}", attempts);
            return self.fail(task.id, &reason).await;
        }
        let backoff = self.config.engine.retry_backoff_secs << (attempts - 1).min(10);
        tracing::warn!(
            task = task.id,
            attempts,
            backoff,
            reason,
            "infrastructure failure; retrying later"
        );
        let mut retry = NewJob::now(task.id, task.priority);
        retry.delay = Duration::from_secs(backoff);
        tasks::push_job(&self.store, &retry).await?;
        let event = NewEvent::platform(
            task.id,
            task.project_id,
            "retry_scheduled",
            json!({"attempt": attempts, "in_secs": backoff, "reason": reason}),
        );
        self.store.insert_events(&[event]).await?;
        Ok(JobOutcome::Retried)
    }

    /// Ends a task as failed before its pipeline could run, and says so to its channels.
    async fn fail(&self, task_id: i64, reason: &str) -> Result<JobOutcome> {
        self.end(task_id, TaskStatus::Failed, reason).await
    }

    /// Ends a task that did not run (or cannot run again) in `status`, saying why.
    async fn end(&self, task_id: i64, status: TaskStatus, reason: &str) -> Result<JobOutcome> {
        if tasks::set_status(&self.store, task_id, status, Some(reason), None).await? {
            self.announce_end(task_id, status).await;
        }
        Ok(JobOutcome::Ran(status))
    }

    fn party_limits(&self) -> party::Limits {
        party::Limits {
            max_json_bytes: self.config.engine.max_party_json_bytes,
            max_finding_bytes: self.config.engine.max_finding_bytes,
            max_events_read_bytes: self.config.ingest.max_event_line_bytes,
            max_findings: self.config.ingest.max_findings,
            max_findings_bytes: self.config.ingest.max_findings_bytes,
            max_tickets: self.config.ingest.max_tickets,
            max_approval_files: self.config.ingest.max_approval_files,
        }
    }

    async fn run_pipeline(
        &self,
        task: TaskExec,
        project: Project,
        run: PipelineRun,
    ) -> Result<Executed> {
        let PipelineRun {
            kind,
            worktree,
            spec,
            redactor,
            resume,
        } = run;
        let store = &self.store;
        tasks::set_status(store, task.id, TaskStatus::Running, None, None).await?;
        let run_id = store.insert_run(task.id, kind, &self.holder).await?;
        let started = json!({"run_id": run_id, "kind": kind});
        let event = NewEvent::platform(task.id, project.id, "run_started", started);
        store.insert_events(&[event]).await?;
        self.handed_start_over(task.id);
        let mut ingestor = Ingestor::new(
            store.clone(),
            &task,
            worktree.clone(),
            self.party_limits(),
            self.config.ingest,
            redactor.clone(),
        );
        let (outcome, state) = self.watch_agent(&task, run_id, spec, &mut ingestor).await;
        let final_state = ingestor.tick().await.unwrap_or(state);
        let (final_state, released) = match &outcome {
            Ok(_) => {
                self.settle_result_approval(&task, &worktree, &mut ingestor, final_state)
                    .await
            }
            Err(_) => (final_state, None),
        };
        let (mut status, mut reason, run) = match outcome {
            Ok(outcome) => settle(&outcome, &final_state),
            Err(e) => (
                TaskStatus::Failed,
                Some(format!("the agent could not start: {e}")),
                failed_run(&e.to_string()),
            ),
        };
        if let Some(released) = released {
            (status, reason) = (TaskStatus::AwaitingApproval, Some(released));
        }
        if status == TaskStatus::Failed {
            reason = explain_failure(&final_state, resume.as_ref(), reason);
        }
        store.finish_run(run_id, &run).await?;
        crate::metrics::run_finished(&project.name, &run.totals);
        let finished = json!({
            "run_id": run_id, "status": run.status, "exit_code": run.exit_code,
            "cost_usd": run.totals.cost_usd,
        });
        Ok(Executed::Concluding(Box::new(Conclusion {
            task,
            project,
            worktree,
            redactor,
            status,
            reason,
            final_state,
            finished,
        })))
    }

    /// Runs the agent to its end, ingesting `.party/` when the kernel says it changed (and
    /// every `engine.ingest_interval_ms` as a safety net, which also notices a cancel
    /// requested through another node), and stopping it when a cancel is requested.
    async fn watch_agent(
        &self,
        task: &TaskExec,
        run_id: i64,
        spec: AgentSpec,
        ingestor: &mut Ingestor,
    ) -> (
        Result<agent::AgentOutcome, agent::AgentError>,
        PipelineState,
    ) {
        let cancel = CancellationToken::new();
        self.running
            .lock()
            .expect("not poisoned")
            .insert(task.id, cancel.clone());
        let (events_tx, mut events_rx) = tokio::sync::mpsc::unbounded_channel();
        let agent = agent::run_agent(spec, cancel.clone(), move |event| {
            if !matches!(event, AgentEvent::Line { .. }) {
                let _ = events_tx.send(event);
            }
        });
        tokio::pin!(agent);
        let changed = Arc::new(tokio::sync::Notify::new());
        let mut watch = self.party_watcher.as_ref().map(|watcher| {
            let changed = Arc::clone(&changed);
            watcher.watch(ingestor.worktree(), move |_| changed.notify_one())
        });
        let mut poll =
            tokio::time::interval(Duration::from_millis(self.config.engine.ingest_interval_ms));
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut state = PipelineState::default();
        let mut shown = None;
        let outcome = loop {
            tokio::select! {
                outcome = &mut agent => break outcome,
                Some(event) = events_rx.recv() => self.record_agent_event(task.id, run_id, event).await,
                () = changed.notified() => {
                    if let Some(watch) = watch.as_mut() {
                        watch.refresh();
                    }
                    state = self.observe(ingestor, task, state, &mut shown).await;
                }
                _ = poll.tick() => {
                    if let Some(watch) = watch.as_mut() {
                        watch.refresh();
                    }
                    state = self.observe(ingestor, task, state, &mut shown).await;
                    // A cancel requested through another node reaches the pipeline here.
                    match self.store.cancel_requested(task.id).await {
                        Ok(true) => cancel.cancel(),
                        Ok(false) => {}
                        Err(e) => tracing::warn!(task = task.id, error = %e, "could not check for a cancel request"),
                    }
                }
            }
        };
        drop(watch);
        self.running.lock().expect("not poisoned").remove(&task.id);
        while let Ok(event) = events_rx.try_recv() {
            self.record_agent_event(task.id, run_id, event).await;
        }
        (outcome, state)
    }

    /// Records the process id and Claude session of a run as soon as they are known; a
    /// failure is logged, the run goes on (the final record repeats the session id).
    async fn record_agent_event(&self, task_id: i64, run_id: i64, event: AgentEvent) {
        let recorded = match event {
            AgentEvent::Started { pid } => self.store.set_run_process(run_id, i64::from(pid)).await,
            AgentEvent::SessionId(id) => self.store.set_task_claude_session(task_id, &id).await,
            AgentEvent::Spent(spent) => {
                self.store
                    .set_run_spent(run_id, spent.cost_usd, spent.turns)
                    .await
            }
            AgentEvent::Line { .. } => Ok(()),
        };
        if let Err(e) = recorded {
            tracing::warn!(task = task_id, error = %e, "could not record an agent event");
        }
    }

    /// One ingestion pass while the pipeline runs, reading only what changed; the task's
    /// status is written when it moved (`shown`: what was written last). A failed pass is
    /// retried next time.
    async fn observe(
        &self,
        ingestor: &mut Ingestor,
        task: &TaskExec,
        last: PipelineState,
        shown: &mut Option<(TaskStatus, Option<String>)>,
    ) -> PipelineState {
        match ingestor.tick_changed().await {
            Ok(state) => {
                let (status, _) =
                    party::derive_status(state.phase.as_deref(), state.has_pending_request, None);
                // An end (done, rolled back, failed) is the engine's to record once the run has
                // finished and its work is delivered; until then the task is running.
                let status = if status.has_ended() {
                    TaskStatus::Running
                } else {
                    status
                };
                let now = Some((status, state.phase.clone()));
                if *shown != now {
                    let phase = state.phase.as_deref();
                    match tasks::set_status(&self.store, task.id, status, None, phase).await {
                        Ok(_) => *shown = now,
                        Err(e) => {
                            tracing::warn!(task = task.id, error = %e, "could not record the pipeline's status")
                        }
                    }
                }
                state
            }
            Err(e) => {
                tracing::warn!(task = task.id, error = %e, "ingestion pass failed; retrying");
                last
            }
        }
    }
}

/// One run of the agent: its kind, where, how, and the decision it carries.
struct PipelineRun {
    kind: RunKind,
    worktree: PathBuf,
    spec: AgentSpec,
    redactor: Redactor,
    resume: Option<gate::Resume>,
}

/// The reason a failed task gives: a resumed run that never moved on says so, and a fourth
/// revise says it is over the plugin's limit.
fn explain_failure(
    state: &PipelineState,
    resume: Option<&gate::Resume>,
    reason: Option<String>,
) -> Option<String> {
    let reason = reason.unwrap_or_else(|| "the pipeline failed".to_owned());
    let phase = state.phase.as_deref();
    let attempts = |key: &str| {
        state
            .fix_loop
            .as_ref()
            .and_then(|f| f.get(key))
            .and_then(serde_json::Value::as_u64)
    };
    if phase == Some("FAILED")
        && let (Some(attempt), Some(max)) = (attempts("attempt"), attempts("max_attempts"))
        && attempt > max
    {
        return Some(format!(
            "the pipeline failed: revise {attempt} is over the plugin's limit of {max} revisions (fix_loop); \
             start a new task to change the work further"
        ));
    }
    Some(
        resume
            .and_then(|r| r.explain_stall(phase, &reason))
            .unwrap_or(reason),
    )
}

enum PrepareError {
    Retry(TaskExec, String),
    Fatal(TaskExec, String),
    Store(Error),
}

/// How a run that never got going ended.
fn failed_run(error: &str) -> RunEnd {
    RunEnd {
        status: RunStatus::Failed,
        exit_code: None,
        totals: RunTotals::default(),
        error: Some(error.to_string()),
        log: String::new(),
    }
}

/// The task status, its reason and the run's record from how the agent ended and what
/// the pipeline's files say.
fn settle(
    outcome: &agent::AgentOutcome,
    state: &PipelineState,
) -> (TaskStatus, Option<String>, RunEnd) {
    let stats = &outcome.stats;
    let exit = party::ExitSummary {
        code: outcome.exit_code,
        signal: outcome.signal,
        timed_out: outcome.timed_out,
        cancelled: outcome.cancelled,
        error: stats.result_subtype.clone().filter(|s| s != "success"),
    };
    let (status, reason) = if outcome.cancelled {
        (
            TaskStatus::Cancelled,
            Some("cancelled by request".to_string()),
        )
    } else if let Some(why) = &outcome.budget_exceeded {
        (TaskStatus::BudgetExceeded, Some(why.clone()))
    } else if outcome.timed_out {
        (
            TaskStatus::Failed,
            Some(format!("timed out after {} s", outcome.duration.as_secs())),
        )
    } else {
        party::derive_status(
            state.phase.as_deref(),
            state.has_pending_request,
            Some(&exit),
        )
    };
    let run_status = match () {
        _ if outcome.cancelled => RunStatus::Cancelled,
        _ if outcome.budget_exceeded.is_some() => RunStatus::Failed,
        _ if outcome.timed_out => RunStatus::TimedOut,
        _ if outcome.exit_code == Some(0) => RunStatus::Succeeded,
        _ => RunStatus::Failed,
    };
    let run = RunEnd {
        status: run_status,
        exit_code: outcome.exit_code.map(i64::from),
        totals: RunTotals {
            duration_ms: stats
                .duration_ms
                .or(Some(outcome.duration.as_millis() as i64)),
            ..stats.totals.clone()
        },
        error: reason
            .clone()
            .filter(|_| matches!(status, TaskStatus::Failed | TaskStatus::BudgetExceeded)),
        log: outcome.log.clone(),
    };
    (status, reason, run)
}

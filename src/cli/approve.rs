//! `aiops approvals list` and `aiops approve|reject|revise`: approval requests of pipelines.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::{StoreArgs, open_store};
use crate::approvals::{self, Decision};
use crate::auth;
use crate::model::{ApprovalFilter, ApprovalRecord, ApprovalStatus};

#[derive(Debug, Clone, Args)]
pub(super) struct DecisionArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Approval id (`aiops approvals list`).
    id: i64,
    /// Why, or what should change (required by revise).
    #[arg(long, short = 'm')]
    comment: Option<String>,
}

#[derive(Debug, Subcommand)]
pub(super) enum ApprovalsCommand {
    /// List approvals, newest first: pending ones unless --all.
    List {
        #[command(flatten)]
        store: StoreArgs,
        /// Include decided and expired approvals.
        #[arg(long)]
        all: bool,
        /// Only this project's approvals.
        #[arg(long)]
        project: Option<String>,
    },
}

/// Runs an `aiops approvals` subcommand.
pub(super) async fn approvals(
    config_file: &Option<PathBuf>,
    command: ApprovalsCommand,
) -> anyhow::Result<()> {
    let ApprovalsCommand::List {
        store,
        all,
        project,
    } = command;
    list(config_file, &store, all, project).await
}

async fn list(
    config_file: &Option<PathBuf>,
    store: &StoreArgs,
    all: bool,
    project: Option<String>,
) -> anyhow::Result<()> {
    let store = open_store(config_file, store).await?;
    let project_id = crate::projects::filter_id(&store, project.as_deref()).await?;
    let filter = ApprovalFilter {
        status: (!all).then_some(ApprovalStatus::Pending),
        project_id,
        task_id: None,
        before_id: None,
        limit: 200,
    };
    println!(
        "{:<6} {:<6} {:<7} {:<9} {:<26} WHAT",
        "ID", "TASK", "KIND", "STATUS", "REQUESTED"
    );
    for a in store.list_approvals(&filter).await? {
        println!(
            "{:<6} {:<6} {:<7} {:<9} {:<26} {}",
            a.id,
            a.task_id,
            a.kind,
            a.status,
            a.requested_at.to_rfc3339(),
            what(&a)
        );
    }
    Ok(())
}

/// The WHAT column of `approvals list`: the decision, the tool asked for or the summary's
/// first line.
fn what(a: &ApprovalRecord) -> String {
    match (&a.decision, &a.tool_name, &a.summary) {
        (Some(decision), _, _) => format!(
            "{decision} by {} via {}",
            a.decided_by.as_deref().unwrap_or("?"),
            a.channel.map_or("?", |c| c.as_str())
        ),
        (None, Some(tool), _) => format!("{tool} ({})", a.risk_level.as_deref().unwrap_or("?")),
        (None, None, Some(summary)) => summary
            .lines()
            .next()
            .unwrap_or("")
            .chars()
            .take(60)
            .collect(),
        _ => String::new(),
    }
}

/// `aiops approve|reject|revise`: decides a pending approval as the CLI user.
pub(super) async fn decide(
    config_file: &Option<PathBuf>,
    args: DecisionArgs,
    decision: Decision,
) -> anyhow::Result<()> {
    let store = open_store(config_file, &args.store).await?;
    let principal = auth::Principal::cli();
    let decider = approvals::Decider {
        name: principal.name,
        principal_id: None,
        channel: approvals::Channel::Cli,
        source: "cli".into(),
    };
    let request = approvals::DecisionRequest {
        decision,
        comment: args.comment,
    };
    let approval = approvals::decide(&store, args.id, &request, &decider).await?;
    eprintln!(
        "approval {} decided: {decision}; task {} resumes with it",
        approval.id, approval.task_id
    );
    Ok(())
}

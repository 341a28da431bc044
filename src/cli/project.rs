//! `aiops project add|list|show|update|remove`: registering and managing projects.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::{StoreArgs, audited, load_config, open_store, print_json};
use crate::model::ProjectRole;
use crate::projects::{self, ApprovalPolicyPatch, NewProject, ProjectPatch};
use crate::server;

/// Project values shared by `add` and `update`.
#[derive(Debug, Clone, Args)]
pub(super) struct ProjectFields {
    /// Git remote to clone, e.g. https://github.com/acme/shop.git or git@github.com:acme/shop.git.
    #[arg(long, value_name = "URL")]
    repo_url: Option<String>,
    /// Existing local checkout (must be a git repository).
    #[arg(long, value_name = "DIR")]
    path: Option<String>,
    /// Branch new work starts from [default: main].
    #[arg(long, value_name = "BRANCH")]
    default_branch: Option<String>,
    /// Task branch template with {team}, {task_id}, {project} [default: aiops/{team}/{task_id}].
    #[arg(long, value_name = "TEMPLATE")]
    branch_strategy: Option<String>,
    /// Tech stack, comma-separated, e.g. rust,postgres.
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    stack: Option<Vec<String>>,
    /// Conventions the agents should follow (free text).
    #[arg(long, value_name = "TEXT")]
    conventions: Option<String>,
    /// GitHub repository as owner/repo.
    #[arg(long, value_name = "OWNER/REPO")]
    github: Option<String>,
    /// Most tasks of this project running at once [default: 1].
    #[arg(long, value_name = "N")]
    max_concurrency: Option<i64>,
    /// Agent timeout for this project in seconds [default: the global one].
    #[arg(long, value_name = "SECS")]
    timeout_secs: Option<i64>,
    /// Least project role that decides approvals: approver or maintainer [default: approver].
    #[arg(long, value_name = "ROLE")]
    decide_role: Option<ProjectRole>,
    /// Whether the user whose request started a task may approve it [default: false].
    #[arg(long, value_name = "BOOL")]
    self_approval: Option<bool>,
    /// Distinct approvers a tool request of risk HIGH or a result needs [default: 1].
    #[arg(long, value_name = "N")]
    required_approvals: Option<i64>,
}

impl ProjectFields {
    /// The approval policy options given, if any.
    fn approval_policy(&self) -> Option<ApprovalPolicyPatch> {
        let patch = ApprovalPolicyPatch {
            decide_role: self.decide_role,
            self_approval: self.self_approval,
            required_approvals: self.required_approvals,
        };
        let given = patch.decide_role.is_some()
            || patch.self_approval.is_some()
            || patch.required_approvals.is_some();
        given.then_some(patch)
    }

    /// The project `add` registers under `name`.
    fn into_new_project(self, name: String) -> NewProject {
        NewProject {
            approval_policy: self.approval_policy(),
            name,
            repo_url: self.repo_url,
            local_path: self.path,
            default_branch: self.default_branch,
            branch_strategy: self.branch_strategy,
            tech_stack: self.stack,
            conventions: self.conventions,
            github_repo: self.github,
            max_concurrency: self.max_concurrency,
            timeout_secs: self.timeout_secs,
        }
    }

    /// The change `update` applies.
    fn into_patch(self) -> ProjectPatch {
        ProjectPatch {
            approval_policy: self.approval_policy(),
            repo_url: self.repo_url,
            local_path: self.path,
            default_branch: self.default_branch,
            branch_strategy: self.branch_strategy,
            tech_stack: self.stack,
            conventions: self.conventions,
            github_repo: self.github,
            max_concurrency: self.max_concurrency,
            timeout_secs: self.timeout_secs,
        }
    }
}

#[derive(Debug, Subcommand)]
pub(super) enum ProjectCommand {
    /// Register a project.
    Add {
        #[command(flatten)]
        store: StoreArgs,
        /// Unique slug: lower-case letters, digits and '-'.
        name: String,
        #[command(flatten)]
        fields: ProjectFields,
    },
    /// List projects.
    List {
        #[command(flatten)]
        store: StoreArgs,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one project as JSON.
    Show {
        #[command(flatten)]
        store: StoreArgs,
        name: String,
    },
    /// Change a project; only the options given change ("" clears a URL, path or repo).
    Update {
        #[command(flatten)]
        store: StoreArgs,
        name: String,
        #[command(flatten)]
        fields: ProjectFields,
    },
    /// Remove a project and its credentials (refused while it has tasks).
    Remove {
        #[command(flatten)]
        store: StoreArgs,
        name: String,
    },
}

/// Runs an `aiops project` subcommand.
pub(super) async fn run(
    config_file: &Option<PathBuf>,
    command: ProjectCommand,
) -> anyhow::Result<()> {
    match command {
        ProjectCommand::Add {
            store,
            name,
            fields,
        } => add(config_file, &store, name, fields).await,
        ProjectCommand::List { store, json } => list(config_file, &store, json).await,
        ProjectCommand::Show { store, name } => show(config_file, &store, &name).await,
        ProjectCommand::Update {
            store,
            name,
            fields,
        } => update(config_file, &store, &name, fields).await,
        ProjectCommand::Remove { store, name } => remove(config_file, &store, &name).await,
    }
}

async fn add(
    config_file: &Option<PathBuf>,
    store: &StoreArgs,
    name: String,
    fields: ProjectFields,
) -> anyhow::Result<()> {
    let config = load_config(config_file, store, None)?;
    let store = server::open_store(&config).await?;
    let target = format!("projects/{name}");
    let new = fields.into_new_project(name);
    let project = audited(&store, "project add", target, async {
        store.insert_project(&new.into_spec(&config.inputs)?).await
    })
    .await?;
    print_json(&project)
}

async fn list(config_file: &Option<PathBuf>, store: &StoreArgs, json: bool) -> anyhow::Result<()> {
    let store = open_store(config_file, store).await?;
    let projects = store.list_projects().await?;
    if json {
        return print_json(&projects);
    }
    println!("{:<24} {:<8} {:<16} SOURCE", "NAME", "MAX", "BRANCH");
    for p in projects {
        let source = p.repo_url.or(p.local_path).unwrap_or_default();
        println!(
            "{:<24} {:<8} {:<16} {source}",
            p.name, p.max_concurrency, p.default_branch
        );
    }
    Ok(())
}

async fn show(config_file: &Option<PathBuf>, store: &StoreArgs, name: &str) -> anyhow::Result<()> {
    let store = open_store(config_file, store).await?;
    print_json(&store.project(name).await?)
}

async fn update(
    config_file: &Option<PathBuf>,
    store: &StoreArgs,
    name: &str,
    fields: ProjectFields,
) -> anyhow::Result<()> {
    let config = load_config(config_file, store, None)?;
    let store = server::open_store(&config).await?;
    let patch = fields.into_patch();
    let project = audited(
        &store,
        "project update",
        format!("projects/{name}"),
        projects::update(&store, &config.inputs, name, patch),
    )
    .await?;
    print_json(&project)
}

async fn remove(
    config_file: &Option<PathBuf>,
    store: &StoreArgs,
    name: &str,
) -> anyhow::Result<()> {
    let store = open_store(config_file, store).await?;
    audited(
        &store,
        "project remove",
        format!("projects/{name}"),
        projects::remove(&store, name),
    )
    .await?;
    eprintln!("removed project {name}");
    Ok(())
}

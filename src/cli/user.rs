//! `aiops user add|list|show|disable|enable|set-password|sign-out|grant|revoke|link|unlink`:
//! people and service accounts, through the same use cases as `/api/v1/users`.

use std::io::BufRead;
use std::path::PathBuf;

use clap::Subcommand;

use super::{StoreArgs, audited, open_store, print_json};
use crate::identities;
use crate::model::{ChatProvider, ProjectRole, UserStatus};
use crate::sessions;
use crate::users::{self, UserSpec};

#[derive(Debug, Subcommand)]
pub(super) enum UserCommand {
    /// Add a user (or, with --service, an account for automation that never signs in).
    Add {
        #[command(flatten)]
        store: StoreArgs,
        /// The login: lower-case letters, digits and '-'.
        login: String,
        #[arg(long)]
        display_name: Option<String>,
        #[arg(long)]
        email: Option<String>,
        #[arg(long)]
        github_login: Option<String>,
        /// Make the user a global admin.
        #[arg(long)]
        admin: bool,
        /// A service account.
        #[arg(long, conflicts_with = "password_stdin")]
        service: bool,
        /// Read the password from the first line of stdin (never from an argument).
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users and service accounts.
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Show a user and its memberships, as JSON.
    Show {
        #[command(flatten)]
        store: StoreArgs,
        login: String,
    },
    /// Disable a user: its tokens and sessions stop at their next request.
    Disable {
        #[command(flatten)]
        store: StoreArgs,
        login: String,
    },
    /// Enable a disabled user again.
    Enable {
        #[command(flatten)]
        store: StoreArgs,
        login: String,
    },
    /// Set a user's password, read from the first line of stdin.
    SetPassword {
        #[command(flatten)]
        store: StoreArgs,
        login: String,
    },
    /// Give a user a role in a project (or, without --project, in every project).
    Grant {
        #[command(flatten)]
        store: StoreArgs,
        login: String,
        #[arg(long, value_enum)]
        role: ProjectRole,
        #[arg(long)]
        project: Option<String>,
    },
    /// End every sign-in session of a user; its browsers must sign in again.
    SignOut {
        #[command(flatten)]
        store: StoreArgs,
        login: String,
    },
    /// Take a user's role in a project (or its every-project role) away.
    Revoke {
        #[command(flatten)]
        store: StoreArgs,
        login: String,
        #[arg(long)]
        project: Option<String>,
    },
    /// Link chat accounts to a user: their clicks in chat then act as the user.
    Link {
        #[command(flatten)]
        store: StoreArgs,
        login: String,
        /// The Slack user id (U…).
        #[arg(long, value_name = "ID", required_unless_present = "kakaowork")]
        slack: Option<String>,
        /// The KakaoWork user id.
        #[arg(long, value_name = "ID")]
        kakaowork: Option<String>,
    },
    /// Unlink a user's chat accounts.
    Unlink {
        #[command(flatten)]
        store: StoreArgs,
        login: String,
        /// Unlink the Slack account.
        #[arg(long, required_unless_present = "kakaowork")]
        slack: bool,
        /// Unlink the KakaoWork account.
        #[arg(long)]
        kakaowork: bool,
    },
}

/// Runs an `aiops user` subcommand.
pub(super) async fn run(config_file: &Option<PathBuf>, command: UserCommand) -> anyhow::Result<()> {
    match command {
        UserCommand::Add {
            store,
            login,
            display_name,
            email,
            github_login,
            admin,
            service,
            password_stdin,
        } => {
            let store = open_store(config_file, &store).await?;
            let spec = UserSpec {
                password: password_stdin.then(read_password).transpose()?,
                login,
                display_name,
                email,
                github_login,
                admin,
                service,
            };
            let target = format!("users/{}", spec.login);
            let user = audited(&store, "user add", target, users::add(&store, &spec)).await?;
            print_json(&user)
        }
        UserCommand::List { store } => list(config_file, &store).await,
        command @ (UserCommand::Link { .. } | UserCommand::Unlink { .. }) => {
            chat(config_file, command).await
        }
        UserCommand::Show { store, login } => {
            let store = open_store(config_file, &store).await?;
            print_json(&users::detail(&store, &login).await?)
        }
        UserCommand::Disable { store, login } => {
            status(config_file, &store, &login, UserStatus::Disabled).await
        }
        UserCommand::Enable { store, login } => {
            status(config_file, &store, &login, UserStatus::Active).await
        }
        UserCommand::SetPassword { store, login } => {
            let store = open_store(config_file, &store).await?;
            let password = read_password()?;
            let work = users::set_password(&store, &login, &password);
            audited(&store, "user set-password", format!("users/{login}"), work).await?;
            eprintln!("password of {login} set");
            Ok(())
        }
        UserCommand::Grant {
            store,
            login,
            role,
            project,
        } => {
            let store = open_store(config_file, &store).await?;
            let work = users::grant(&store, &login, project.as_deref(), role);
            let detail = audited(&store, "user grant", format!("users/{login}"), work).await?;
            print_json(&detail)
        }
        UserCommand::SignOut { store, login } => {
            let store = open_store(config_file, &store).await?;
            let work = sessions::end_all_of(&store, &login);
            let target = format!("users/{login}/sessions");
            let ended = audited(&store, "user sign-out", target, work).await?;
            eprintln!("{ended} session(s) of {login} ended");
            Ok(())
        }
        UserCommand::Revoke {
            store,
            login,
            project,
        } => {
            let store = open_store(config_file, &store).await?;
            let work = users::revoke(&store, &login, project.as_deref());
            let detail = audited(&store, "user revoke", format!("users/{login}"), work).await?;
            print_json(&detail)
        }
    }
}

/// `aiops user link|unlink`.
async fn chat(config_file: &Option<PathBuf>, command: UserCommand) -> anyhow::Result<()> {
    let (store, login, changes) = match command {
        UserCommand::Link {
            store,
            login,
            slack,
            kakaowork,
        } => (store, login, [slack, kakaowork]),
        UserCommand::Unlink {
            store,
            login,
            slack,
            kakaowork,
        } => {
            let none = |unlink: bool| unlink.then(String::new);
            (store, login, [none(slack), none(kakaowork)])
        }
        _ => unreachable!("only link and unlink come here"),
    };
    let store = open_store(config_file, &store).await?;
    let providers = [ChatProvider::Slack, ChatProvider::Kakaowork];
    for (provider, change) in providers.into_iter().zip(changes) {
        let Some(id) = change else { continue };
        let target = format!("users/{login}/chat/{provider}");
        if id.is_empty() {
            let work = identities::unlink(&store, &login, provider);
            audited(&store, "user unlink", target, work).await?;
        } else {
            let work = identities::link(&store, &login, provider, &id);
            audited(&store, "user link", target, work).await?;
        }
    }
    print_json(&users::detail(&store, &login).await?)
}

async fn list(config_file: &Option<PathBuf>, store: &StoreArgs) -> anyhow::Result<()> {
    let store = open_store(config_file, store).await?;
    println!(
        "{:<24} {:<8} {:<7} {:<9} {:<9} LAST SEEN",
        "LOGIN", "KIND", "ROLE", "STATUS", "PASSWORD"
    );
    for u in store.list_users().await? {
        println!(
            "{:<24} {:<8} {:<7} {:<9} {:<9} {}",
            u.login,
            u.kind,
            u.global_role,
            u.status,
            if u.has_password { "set" } else { "-" },
            u.last_seen_at
                .map_or_else(|| "-".into(), |t| t.to_rfc3339())
        );
    }
    Ok(())
}

async fn status(
    config_file: &Option<PathBuf>,
    store: &StoreArgs,
    login: &str,
    status: UserStatus,
) -> anyhow::Result<()> {
    let store = open_store(config_file, store).await?;
    let action = if status == UserStatus::Disabled {
        "user disable"
    } else {
        "user enable"
    };
    let work = users::set_status(&store, login, status);
    audited(&store, action, format!("users/{login}"), work).await?;
    eprintln!("{login} is {status}");
    Ok(())
}

/// The first line of stdin, without its line ending.
fn read_password() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

//! What confines each agent: decided once at start (the host's Landlock ABI, the shim
//! program, the user agents run as, the system paths they may read) and, per run, the rules
//! of one task: its worktree, its home and temp dir, its project's git object store.
//!
//! Nothing under the data directory is granted except the task's own worktree, its own
//! `agents/<task>` directory and the parts of its repository's git directory git writes
//! (objects, refs, logs, the worktree's admin directory; the rest, hooks and config
//! included, only readable).

use std::path::{Path, PathBuf};

use crate::config::{Config, SandboxMode};

use super::agent::sandbox::{self, Confinement, Rules, SandboxStatus};
use super::agent::{KILL_GRACE, Shim};

/// System directories every agent may read: binaries, libraries, configuration, devices,
/// process and system information.
const SYSTEM_READ_PATHS: &[&str] = &[
    "/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin", "/etc", "/opt", "/proc", "/sys", "/dev",
];
/// Devices an agent may also write (and use as terminals).
const DEVICE_WRITE_PATHS: &[&str] = &[
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/tty",
    "/dev/ptmx",
    "/dev/pts",
];
/// Toolchain directories in the service user's home, readable when they exist.
const HOME_TOOLCHAINS: &[&str] = &[".cargo", ".rustup", ".local"];

/// The confinement this process gives its agents.
pub struct Sandbox {
    status: SandboxStatus,
    program: PathBuf,
    user: Option<(u32, u32)>,
    read_only: Vec<PathBuf>,
    ports: Vec<u16>,
    agent_home: Option<PathBuf>,
    data_dir: PathBuf,
    agents_dir: PathBuf,
}

impl Sandbox {
    /// Detects what the host offers for `config` and says so in the log.
    pub fn new(config: &Config) -> Self {
        let engine = &config.engine;
        let data_dir = std::path::absolute(&config.data_dir).unwrap_or(config.data_dir.clone());
        let read_only = read_paths(config);
        let (user, user_problem) = resolve_user(&engine.run_as_user);
        let (program, program_problem) = shim_program(&engine.shim_program);
        let exposed = read_only
            .iter()
            .find(|p| data_dir.starts_with(p) || config.key_file().starts_with(p))
            .map(|p| {
                format!(
                    "the read path {} holds the data directory or the master key; move the data \
                     directory out of it or drop it from engine.sandbox_read_paths",
                    p.display()
                )
            });
        let wanted = engine.sandbox == SandboxMode::On;
        let problem = user_problem
            .or(program_problem)
            .or(exposed.filter(|_| wanted));
        let status = sandbox::detect(wanted, problem);
        if status.enforced() {
            // Landlock lets a sandboxed process read /proc/<pid>/environ of a process of its
            // own user; a process that is not dumpable can only be read with SYS_PTRACE,
            // which the shim takes from agents.
            // SAFETY: PR_SET_DUMPABLE takes a number and touches no memory.
            unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
        }
        match status.mode {
            "enforced" => tracing::info!(
                landlock_abi = status.landlock_abi,
                "agent sandbox enforced (Landlock ABI {})",
                status.landlock_abi
            ),
            "off" => tracing::warn!(
                landlock_abi = status.landlock_abi,
                "agent sandbox off (engine.sandbox = \"off\"): agents run unconfined"
            ),
            _ => tracing::error!(
                landlock_abi = status.landlock_abi,
                reason = status.reason.as_deref().unwrap_or_default(),
                "agent sandbox unavailable: no agent will start; fix it or set engine.sandbox = \"off\""
            ),
        }
        Self {
            status,
            program,
            user,
            read_only,
            ports: engine.sandbox_connect_ports.clone(),
            agent_home: (!engine.agent_home.as_os_str().is_empty())
                .then(|| engine.agent_home.clone()),
            agents_dir: data_dir.join("agents"),
            data_dir,
        }
    }

    /// What the sandbox does on this host.
    pub fn status(&self) -> &SandboxStatus {
        &self.status
    }

    /// The shim for one run of task `task_id` in `worktree`, with HOME and TMPDIR in `env`
    /// replaced by the agent's own; errs (in words for the task's reason) when no agent may
    /// start.
    pub fn confine(
        &self,
        task_id: i64,
        worktree: &Path,
        program: &str,
        env: &mut Vec<(String, String)>,
    ) -> Result<Shim, String> {
        let (shim, private) = self.for_run(task_id, worktree, program, env)?;
        env.retain(|(name, _)| !private.iter().any(|(own, _)| own == name));
        env.extend(private);
        Ok(shim)
    }

    fn for_run(
        &self,
        task_id: i64,
        worktree: &Path,
        program: &str,
        env: &[(String, String)],
    ) -> Result<(Shim, Vec<(String, String)>), String> {
        if !self.status.allows_agents() {
            return Err(format!(
                "the agent sandbox cannot be applied on this host ({}); no agent starts until it \
                 can, or until engine.sandbox = \"off\" is set",
                self.status.reason.as_deref().unwrap_or("unknown reason")
            ));
        }
        if self.program.as_os_str().is_empty() {
            return Err("no shim program; set engine.shim_program to the aiops binary".into());
        }
        let own = self.agents_dir.join(task_id.to_string());
        let home = self.agent_home.clone().unwrap_or_else(|| own.join("home"));
        let tmp = own.join("tmp");
        for dir in [&home, &tmp] {
            create_private_dir(dir)
                .map_err(|e| format!("cannot create the agent's {}: {e}", dir.display()))?;
        }
        let rules = self.status.enforced().then(|| {
            let mut rules = Rules {
                read_write: vec![worktree.to_path_buf(), home.clone(), tmp.clone()],
                read_only: self.read_only.clone(),
                connect_ports: self.ports.clone(),
            };
            rules
                .read_write
                .extend(DEVICE_WRITE_PATHS.iter().map(PathBuf::from));
            rules.read_only.extend(resolve_program(program, env));
            grant_git(&mut rules, worktree);
            rules
        });
        if let Some((uid, gid)) = self.user {
            let mut owned = vec![worktree.to_path_buf(), tmp.clone()];
            if self.agent_home.is_none() {
                owned.push(home.clone());
            }
            if let Some(rules) = &rules {
                owned.extend(
                    rules
                        .read_write
                        .iter()
                        .filter(|p| is_git_dir(p) && p.starts_with(&self.data_dir))
                        .cloned(),
                );
            }
            for path in &owned {
                chown_tree(path, uid, gid).map_err(|e| {
                    format!("cannot hand {} to the agent's user: {e}", path.display())
                })?;
                open_ancestors(path, &self.data_dir).map_err(|e| {
                    format!(
                        "cannot open the way to {} for the agent's user: {e}",
                        path.display()
                    )
                })?;
            }
        }
        let confinement = Confinement {
            parent_pid: std::process::id() as i32,
            rules,
            user: self.user,
            grace_ms: KILL_GRACE.as_millis() as u64,
        };
        let env = vec![
            ("HOME".to_owned(), home.display().to_string()),
            ("TMPDIR".to_owned(), tmp.display().to_string()),
        ];
        let shim = Shim {
            program: self.program.clone(),
            confinement,
        };
        Ok((shim, env))
    }

    /// Removes the private directories of an ended task.
    pub fn forget(&self, task_id: i64) {
        let own = self.agents_dir.join(task_id.to_string());
        if let Err(e) = std::fs::remove_dir_all(&own)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(task = task_id, error = %e, "cannot remove the agent's directory");
        }
    }
}

impl super::Engine {
    /// The agent's environment (the passthrough variables, the project's credentials
    /// `secrets` as (variable, value, name), its own HOME and TMPDIR) and the shim that
    /// confines it; errs when no agent may start.
    pub(super) fn confined_env(
        &self,
        task_id: i64,
        worktree: &Path,
        program: &str,
        secrets: &[(String, String, String)],
    ) -> Result<(Vec<(String, String)>, Shim), String> {
        let credentials: Vec<(String, String)> = secrets
            .iter()
            .map(|(var, value, _)| (var.clone(), value.clone()))
            .collect();
        let mut env = super::agent::agent_env(&self.config.engine.env_passthrough, &credentials);
        let shim = self.sandbox.confine(task_id, worktree, program, &mut env)?;
        Ok((env, shim))
    }
}

/// The read-only paths of every agent: the system's, the service user's toolchains and the
/// configured ones.
fn read_paths(config: &Config) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = SYSTEM_READ_PATHS.iter().map(PathBuf::from).collect();
    // DNS on systemd hosts: /etc/resolv.conf links into /run.
    paths.push(PathBuf::from("/run/systemd/resolve"));
    if let Some(home) = std::env::var_os("HOME") {
        let home = PathBuf::from(home);
        paths.extend(HOME_TOOLCHAINS.iter().map(|dir| home.join(dir)));
    }
    paths.extend(config.engine.sandbox_read_paths.iter().cloned());
    paths
}

/// The uid and gid of `engine.run_as_user`, and why it cannot be used.
fn resolve_user(name: &str) -> (Option<(u32, u32)>, Option<String>) {
    if name.is_empty() {
        return (None, None);
    }
    if !nix::unistd::geteuid().is_root() {
        let why = format!(
            "engine.run_as_user = {name:?} needs the service to run as root; leave it empty"
        );
        return (None, Some(why));
    }
    match nix::unistd::User::from_name(name) {
        Ok(Some(user)) => (Some((user.uid.as_raw(), user.gid.as_raw())), None),
        _ => (
            None,
            Some(format!(
                "engine.run_as_user: no Unix user {name:?} on this host"
            )),
        ),
    }
}

/// The shim program: the configured one, or this binary when it is `aiops`.
fn shim_program(configured: &Path) -> (PathBuf, Option<String>) {
    if !configured.as_os_str().is_empty() {
        return (configured.to_path_buf(), None);
    }
    match std::env::current_exe() {
        Ok(exe) if exe.file_name().is_some_and(|n| n == "aiops") => (exe, None),
        _ => (
            PathBuf::new(),
            Some("this process is not the aiops binary; set engine.shim_program to it".into()),
        ),
    }
}

/// The agent command's program as a file to read and execute: absolute as given, or found
/// on the agent's PATH.
fn resolve_program(program: &str, env: &[(String, String)]) -> Option<PathBuf> {
    let path = Path::new(program);
    if path.is_absolute() {
        return Some(path.to_path_buf());
    }
    let search = env.iter().find(|(name, _)| name == "PATH")?;
    std::env::split_paths(&search.1)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// Git in the worktree: the worktree's admin directory and the repository's objects, refs
/// and logs writable, the rest of the repository's git directory (config, hooks) readable.
fn grant_git(rules: &mut Rules, worktree: &Path) {
    let Ok(dot_git) = std::fs::read_to_string(worktree.join(".git")) else {
        return;
    };
    let Some(admin) = dot_git
        .trim()
        .strip_prefix("gitdir:")
        .map(|p| PathBuf::from(p.trim()))
    else {
        return;
    };
    let common = std::fs::read_to_string(admin.join("commondir"))
        .map(|c| admin.join(c.trim()))
        .unwrap_or_else(|_| admin.join("../.."));
    let common = common.canonicalize().unwrap_or(common);
    rules.read_write.push(admin);
    for dir in ["objects", "refs", "logs"] {
        rules.read_write.push(common.join(dir));
    }
    rules.read_only.push(common);
}

fn is_git_dir(path: &Path) -> bool {
    path.components().any(|c| c.as_os_str() == ".git")
}

/// Lets others pass through (not list) each directory from `data_dir` down to `path`, so an
/// agent running as another user reaches what it was given in the 0700 data directory.
fn open_ancestors(path: &Path, data_dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let Ok(rest) = path.strip_prefix(data_dir) else {
        return Ok(());
    };
    let mut dir = data_dir.to_path_buf();
    let mut steps = vec![dir.clone()];
    for component in rest.parent().into_iter().flat_map(Path::components) {
        dir.push(component);
        steps.push(dir.clone());
    }
    for dir in steps {
        let mode = std::fs::metadata(&dir)?.permissions().mode();
        if mode & 0o001 == 0 {
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode | 0o001))?;
        }
    }
    Ok(())
}

/// Creates `dir` (and its parents) readable by its owner only.
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Gives `path` and everything beneath it to `uid`:`gid` (links themselves, not targets).
fn chown_tree(path: &Path, uid: u32, gid: u32) -> std::io::Result<()> {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid))?;
    if std::fs::symlink_metadata(path)?.is_dir() {
        for entry in std::fs::read_dir(path)? {
            chown_tree(&entry?.path(), uid, gid)?;
        }
    }
    Ok(())
}

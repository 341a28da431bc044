//! The agent sandbox: what the host offers (the Landlock ABI, detected once at start) and the
//! rules one agent gets (paths it may read and write, paths it may only read, TCP ports it
//! may connect to, the Unix user it runs as), applied by the shim in the agent's process
//! between fork and exec.
//!
//! Landlock rules are an allow-list: whatever no rule names (the data directory with the
//! master key and the SQLite file, other worktrees, other homes) is out of reach. A sandboxed
//! process also cannot ptrace, and so cannot read `/proc/<pid>/environ` of, a process outside
//! its sandbox, and (ABI 6) cannot signal one.

use std::path::PathBuf;

use landlock::{
    ABI, Access, AccessFs, AccessNet, BitFlags, CompatLevel, Compatible, NetPort, PathBeneath,
    PathFd, Ruleset, RulesetAttr, RulesetCreated, RulesetCreatedAttr, RulesetStatus, Scope,
};
use serde::{Deserialize, Serialize};

/// The Landlock ABI whose rules aiops sets (filesystem, TCP connect, IPC scopes); a newer
/// kernel enforces exactly these, an older one the part it knows.
const RULES_ABI: ABI = ABI::V6;
/// The least ABI that confines an agent as aiops promises: filesystem and TCP connect rules.
pub const MIN_ABI: i32 = 4;
/// A hook for tests only: set to 1, the host is treated as one without Landlock.
pub const TEST_UNSUPPORTED_VAR: &str = "AIOPS_TEST_SANDBOX_UNSUPPORTED";

/// How agents are confined on this host, decided once at start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SandboxStatus {
    /// `enforced`: every agent is confined; `off`: `engine.sandbox = "off"`, agents run
    /// unconfined; `unavailable`: the sandbox cannot be applied here and no agent starts.
    pub mode: &'static str,
    /// The kernel's Landlock ABI version; 0 when the kernel has no Landlock.
    pub landlock_abi: i32,
    /// Why the sandbox is unavailable or off, in words for an operator.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl SandboxStatus {
    /// Agents may start: the sandbox is enforced or explicitly off.
    pub fn allows_agents(&self) -> bool {
        self.mode != "unavailable"
    }

    /// Confined agents.
    pub fn enforced(&self) -> bool {
        self.mode == "enforced"
    }
}

/// What the sandbox can do on this host: `wanted` false is `engine.sandbox = "off"`;
/// `problem` is a reason found elsewhere that stops agents either way (an unknown
/// `run_as_user`, no shim program, a read path holding the data directory).
pub fn detect(wanted: bool, problem: Option<String>) -> SandboxStatus {
    let abi = landlock_abi();
    let (mode, reason) = match problem {
        Some(problem) => ("unavailable", Some(problem)),
        None if !wanted => (
            "off",
            Some("engine.sandbox = \"off\": agents run unconfined".to_owned()),
        ),
        None if abi < MIN_ABI => (
            "unavailable",
            Some(format!(
                "the kernel's Landlock ABI is {abi} (0: none); aiops needs ABI {MIN_ABI} (Linux \
                 6.7 with landlock in the lsm= boot list) for filesystem and network rules"
            )),
        ),
        None => ("enforced", None),
    };
    SandboxStatus {
        mode,
        landlock_abi: abi,
        reason,
    }
}

/// The kernel's Landlock ABI version (`landlock_create_ruleset` with the version flag), 0
/// without Landlock; also 0 while the test hook [`TEST_UNSUPPORTED_VAR`] is set.
pub fn landlock_abi() -> i32 {
    if std::env::var(TEST_UNSUPPORTED_VAR).is_ok_and(|v| v == "1") {
        return 0;
    }
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_long = 1;
    // SAFETY: with a null attribute pointer, size 0 and the version flag the system call only
    // returns a number; it reads and writes no memory.
    let version = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    i32::try_from(version).unwrap_or(0).max(0)
}

/// The confinement of one agent, handed to the shim as JSON on its command line (paths and
/// numbers only, never a secret).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Confinement {
    /// The service's pid: the shim stops everything when it is no longer its parent.
    pub parent_pid: i32,
    /// Landlock rules; none when the sandbox is off.
    pub rules: Option<Rules>,
    /// Run the agent as this uid and gid (the service runs as root and `engine.run_as_user`
    /// names a user).
    pub user: Option<(u32, u32)>,
    /// How long a stopped agent's processes get between SIGTERM and SIGKILL.
    pub grace_ms: u64,
}

/// What an agent may touch.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Rules {
    /// Read, write, create, remove, execute beneath each.
    pub read_write: Vec<PathBuf>,
    /// Read and execute beneath each (a file: that file).
    pub read_only: Vec<PathBuf>,
    /// TCP ports the agent may connect to, on any address.
    pub connect_ports: Vec<u16>,
}

impl Rules {
    /// The ruleset, created but not yet applied; a path that does not exist is left out
    /// (nothing can be reached through it). Errs when the kernel cannot enforce the
    /// filesystem and network rules.
    pub fn build(&self) -> Result<RulesetCreated, String> {
        let fail = |e: landlock::RulesetError| format!("cannot build the Landlock rules: {e}");
        let mut ruleset = Ruleset::default()
            .set_compatibility(CompatLevel::HardRequirement)
            .handle_access(AccessFs::from_all(ABI::V4))
            .map_err(fail)?
            .handle_access(AccessNet::ConnectTcp)
            .map_err(fail)?
            .set_compatibility(CompatLevel::BestEffort)
            .handle_access(AccessFs::from_all(RULES_ABI))
            .map_err(fail)?
            .scope(Scope::from_all(RULES_ABI))
            .map_err(fail)?
            .create()
            .map_err(fail)?;
        for (paths, access) in [
            (&self.read_write, AccessFs::from_all(RULES_ABI)),
            (&self.read_only, AccessFs::from_read(RULES_ABI)),
        ] {
            for path in paths {
                ruleset = add_path(ruleset, path, access)?;
            }
        }
        for port in &self.connect_ports {
            ruleset = ruleset
                .add_rule(NetPort::new(*port, AccessNet::ConnectTcp))
                .map_err(|e| format!("cannot allow TCP port {port}: {e}"))?;
        }
        Ok(ruleset)
    }
}

/// One path rule; a file gets only the rights a file can have.
fn add_path(
    ruleset: RulesetCreated,
    path: &std::path::Path,
    access: BitFlags<AccessFs>,
) -> Result<RulesetCreated, String> {
    let Ok(metadata) = std::fs::metadata(path) else {
        return Ok(ruleset);
    };
    let access = if metadata.is_dir() {
        access
    } else {
        access & AccessFs::from_file(RULES_ABI)
    };
    let fd = PathFd::new(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    ruleset
        .add_rule(PathBeneath::new(fd, access))
        .map_err(|e| format!("cannot allow {}: {e}", path.display()))
}

/// Applies a built ruleset to the calling process (the shim's child, just before exec);
/// errs unless the kernel enforces it.
pub fn restrict_self(ruleset: RulesetCreated) -> std::io::Result<()> {
    let status = ruleset.restrict_self().map_err(std::io::Error::other)?;
    if status.ruleset == RulesetStatus::NotEnforced {
        return Err(std::io::Error::other(
            "the kernel did not enforce the rules",
        ));
    }
    Ok(())
}

/// The seccomp filter every confined agent gets beside its Landlock rules: creating a Unix
/// socket (`socket(AF_UNIX, …)`) fails with EACCES, since Landlock below ABI 9 does not
/// stop connecting to a socket file by path (PostgreSQL's, a container engine's); so does
/// `io_uring_setup`, since io_uring could create sockets past the filter (runtimes fall back
/// to plain system calls). Socket pairs and pipes stay allowed.
pub fn socket_filter() -> Result<seccompiler::BpfProgram, String> {
    use seccompiler::{SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition};
    use seccompiler::{SeccompFilter, SeccompRule};
    let unix = SeccompCondition::new(
        0,
        SeccompCmpArgLen::Dword,
        SeccompCmpOp::Eq,
        libc::AF_UNIX as u64,
    )
    .and_then(|condition| SeccompRule::new(vec![condition]))
    .map_err(|e| format!("cannot build the socket rule: {e}"))?;
    let arch = std::env::consts::ARCH
        .try_into()
        .map_err(|e| format!("no seccomp filter for this architecture: {e}"))?;
    let rules = [
        (libc::SYS_socket, vec![unix]),
        (libc::SYS_io_uring_setup, vec![]),
    ];
    let filter = SeccompFilter::new(
        rules.into_iter().collect(),
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EACCES as u32),
        arch,
    )
    .map_err(|e| format!("cannot build the seccomp filter: {e}"))?;
    filter
        .try_into()
        .map_err(|e| format!("cannot compile the seccomp filter: {e}"))
}

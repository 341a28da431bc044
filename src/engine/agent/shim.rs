//! `aiops agent-shim CONFINEMENT -- AGENT ARGV…`: the small process between the service and
//! an agent. It makes itself the subreaper of everything the agent starts (a process that
//! double-forks or calls `setsid` is reparented to it, not to init), learns when the service
//! dies (parent-death signal), starts the agent confined (Landlock rules applied and the
//! user switched in the agent's process between fork and exec), and when the agent exits,
//! when the service stops the run (SIGTERM) or when the service dies, kills every process
//! below itself, found by walking /proc, until none is left. Then it exits as the agent did.
//!
//! It runs single-threaded before any async runtime, so the work between fork and exec is
//! safe; it writes nothing but its own errors (prefixed "aiops agent-shim:") on stderr.

use std::collections::HashMap;
use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use nix::sys::signal::{SigSet, SigmaskHow, Signal, kill, sigprocmask};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{Gid, Pid, Uid, getpid, getppid, setgid, setgroups, setuid};

use super::sandbox::{self, Confinement, restrict_self};

/// The hidden subcommand's name.
pub const SUBCOMMAND: &str = "agent-shim";
/// Sent to the shim when the service dies (parent-death signal), or by the service when it
/// must go at once: everything below it is killed without grace.
pub const STOP_NOW: Signal = Signal::SIGUSR1;
/// The exit code when the agent could not be started or confined.
const CANNOT_START: u8 = 125;
/// How long the final SIGKILL sweep keeps looking for processes before it gives up.
const SWEEP_LIMIT: Duration = Duration::from_secs(5);

/// Runs the shim; `args` are the words after the subcommand.
pub fn main(args: Vec<OsString>) -> ExitCode {
    match run(args) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("aiops agent-shim: {message}");
            ExitCode::from(CANNOT_START)
        }
    }
}

fn run(args: Vec<OsString>) -> Result<ExitCode, String> {
    let (confinement, argv) = parse(args)?;
    let signals = handled_signals();
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&signals), None)
        .map_err(|e| format!("cannot block signals: {e}"))?;
    nix::sys::prctl::set_child_subreaper(true)
        .map_err(|e| format!("cannot become a subreaper: {e}"))?;
    nix::sys::prctl::set_pdeathsig(STOP_NOW)
        .map_err(|e| format!("cannot ask for the parent-death signal: {e}"))?;
    if getppid().as_raw() != confinement.parent_pid {
        return Err("the service is gone".into());
    }
    let agent = spawn_agent(&confinement, &argv)?;
    let grace = Duration::from_millis(confinement.grace_ms);
    let status = supervise(agent, &signals, grace, confinement.parent_pid);
    sweep();
    Ok(exit_like(status))
}

/// `CONFINEMENT -- ARGV…`.
fn parse(args: Vec<OsString>) -> Result<(Confinement, Vec<OsString>), String> {
    let mut args = args.into_iter();
    let json = args.next().ok_or("no confinement given")?;
    let confinement: Confinement = serde_json::from_str(json.to_str().unwrap_or_default())
        .map_err(|e| format!("the confinement is not valid JSON: {e}"))?;
    if args.next().is_none_or(|word| word != "--") {
        return Err("expected `--` and the agent's command after the confinement".into());
    }
    let argv: Vec<OsString> = args.collect();
    if argv.is_empty() {
        return Err("no agent command given".into());
    }
    Ok((confinement, argv))
}

fn handled_signals() -> SigSet {
    let mut set = SigSet::empty();
    for signal in [
        Signal::SIGCHLD,
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        STOP_NOW,
    ] {
        set.add(signal);
    }
    set
}

/// Starts the agent with the shim's stdio, environment and directory, confined.
fn spawn_agent(confinement: &Confinement, argv: &[OsString]) -> Result<Pid, String> {
    let mut ruleset = confinement.rules.as_ref().map(|r| r.build()).transpose()?;
    let filter = match &ruleset {
        Some(_) => Some(sandbox::socket_filter()?),
        None => None,
    };
    let user = confinement.user;
    let mut command = Command::new(&argv[0]);
    command.args(&argv[1..]);
    // SAFETY: the shim is single-threaded, so the child may do anything between fork and
    // exec: unblock signals, switch user, restrict itself.
    unsafe {
        command.pre_exec(move || {
            sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)?;
            drop_capabilities();
            if let Some((uid, gid)) = user {
                setgroups(&[Gid::from_raw(gid)])?;
                setgid(Gid::from_raw(gid))?;
                setuid(Uid::from_raw(uid))?;
            }
            if let Some(ruleset) = ruleset.take() {
                restrict_self(ruleset)?;
            }
            if let Some(filter) = &filter {
                seccompiler::apply_filter(filter).map_err(std::io::Error::other)?;
            }
            Ok(())
        });
    }
    let child = command
        .spawn()
        .map_err(|e| format!("cannot start `{}`: {e}", argv[0].to_string_lossy()))?;
    Ok(Pid::from_raw(child.id() as i32))
}

/// Capabilities a root agent must not keep: reading other processes' memory and environment
/// (SYS_PTRACE), opening files by handle past the path rules (DAC_READ_SEARCH), raw sockets
/// past the TCP rules (NET_RAW), and the ones that administer the host (SYS_ADMIN,
/// SYS_MODULE, SYS_RAWIO, SYS_BOOT, MKNOD, NET_ADMIN, PERFMON, BPF).
const DROPPED_CAPABILITIES: &[libc::c_int] = &[19, 2, 13, 21, 16, 17, 22, 27, 12, 38, 39];

/// Drops [`DROPPED_CAPABILITIES`] from the bounding set, so the agent's exec leaves them out
/// even as root; without privileges there is nothing to drop and the calls fail harmlessly.
fn drop_capabilities() {
    for capability in DROPPED_CAPABILITIES {
        // SAFETY: PR_CAPBSET_DROP takes a capability number and touches no memory.
        unsafe {
            libc::prctl(libc::PR_CAPBSET_DROP, *capability as libc::c_ulong, 0, 0, 0);
        }
    }
}

/// How the agent ended.
enum Ended {
    Code(i32),
    Signal(i32),
}

/// Waits for the agent's end, reaping orphans on the way; a stop request sends SIGTERM to
/// everything below and SIGKILL after `grace`; the service's death kills everything at once.
fn supervise(agent: Pid, signals: &SigSet, grace: Duration, parent: i32) -> Ended {
    let mut kill_at: Option<Instant> = None;
    loop {
        if let Some(ended) = reap(agent) {
            return ended;
        }
        let timeout = kill_at.map(|at| at.saturating_duration_since(Instant::now()));
        match wait_signal(signals, timeout) {
            Some(Signal::SIGCHLD) => {}
            Some(signal) if signal == STOP_NOW => {
                signal_descendants(Signal::SIGKILL);
                kill_at = None;
            }
            Some(_) if kill_at.is_none() => {
                signal_descendants(Signal::SIGTERM);
                kill_at = Some(Instant::now() + grace);
            }
            Some(_) => {}
            None if kill_at.is_some_and(|at| Instant::now() >= at) => {
                signal_descendants(Signal::SIGKILL);
                kill_at = None;
            }
            None => {}
        }
        if getppid().as_raw() != parent {
            signal_descendants(Signal::SIGKILL);
        }
    }
}

/// Reaps every exited child; the agent's end once it is among them.
fn reap(agent: Pid) -> Option<Ended> {
    let mut ended = None;
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) if pid == agent => ended = Some(Ended::Code(code)),
            Ok(WaitStatus::Signaled(pid, signal, _)) if pid == agent => {
                ended = Some(Ended::Signal(signal as i32));
            }
            Ok(WaitStatus::StillAlive) | Err(_) => return ended,
            Ok(_) => {}
        }
    }
}

/// The next of `signals`, or None when `timeout` passed first (None: wait without limit).
fn wait_signal(signals: &SigSet, timeout: Option<Duration>) -> Option<Signal> {
    let timespec = timeout.map(|t| libc::timespec {
        tv_sec: t.as_secs() as libc::time_t,
        tv_nsec: libc::c_long::from(t.subsec_nanos() as i32),
    });
    let timespec_ptr = timespec
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: the set and the timespec live across the call; the info pointer may be null.
    let number =
        unsafe { libc::sigtimedwait(signals.as_ref(), std::ptr::null_mut(), timespec_ptr) };
    Signal::try_from(number).ok()
}

/// Kills whatever is still below the shim, again and again until nothing is (a process
/// killed may have had children, which come to the shim), reaping as it goes.
fn sweep() {
    let give_up_at = Instant::now() + SWEEP_LIMIT;
    while signal_descendants(Signal::SIGKILL) > 0 && Instant::now() < give_up_at {
        let _ = reap(Pid::from_raw(0));
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = reap(Pid::from_raw(0));
}

/// Sends `signal` to every live descendant of the shim; how many there were.
fn signal_descendants(signal: Signal) -> usize {
    let targets = descendants(getpid().as_raw());
    for pid in &targets {
        let _ = kill(Pid::from_raw(*pid), signal);
    }
    targets.len()
}

/// Every process below `root` that is not a zombie, from /proc.
pub(super) fn descendants(root: i32) -> Vec<i32> {
    let mut children: HashMap<i32, Vec<(i32, bool)>> = HashMap::new();
    for (pid, state, ppid) in proc_table() {
        let live = !matches!(state, 'Z' | 'X' | 'x');
        children.entry(ppid).or_default().push((pid, live));
    }
    let mut found = Vec::new();
    let mut queue = vec![root];
    while let Some(parent) = queue.pop() {
        for (pid, live) in children.get(&parent).into_iter().flatten() {
            queue.push(*pid);
            if *live {
                found.push(*pid);
            }
        }
    }
    found
}

/// (pid, state, ppid) of every process /proc lists.
fn proc_table() -> Vec<(i32, char, i32)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let after_comm = &stat[stat.rfind(')')? + 1..];
            let mut fields = after_comm.split_whitespace();
            let state = fields.next()?.chars().next()?;
            let ppid = fields.next()?.parse().ok()?;
            Some((pid, state, ppid))
        })
        .collect()
}

/// Ends the shim as the agent ended: its exit code, or its signal raised again.
fn exit_like(ended: Ended) -> ExitCode {
    match ended {
        Ended::Code(code) => ExitCode::from(code as u8),
        Ended::Signal(number) => {
            if let Ok(signal) = Signal::try_from(number) {
                // SAFETY: restoring the default disposition of a signal has no preconditions.
                let _ = unsafe {
                    nix::sys::signal::signal(signal, nix::sys::signal::SigHandler::SigDfl)
                };
                let mut set = SigSet::empty();
                set.add(signal);
                let _ = sigprocmask(SigmaskHow::SIG_UNBLOCK, Some(&set), None);
                let _ = kill(getpid(), signal);
            }
            ExitCode::from(128 + number as u8)
        }
    }
}

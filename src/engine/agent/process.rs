//! The agent's process and its process group: spawning it alone in a new group that dies with
//! the server, signalling the group, and telling whether anything of it is still alive.

use std::io;
use std::process::Stdio;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::{Pid, getpgrp, getppid};
use tokio::process::{Child, Command};
use tokio::time::{Instant, sleep};

use super::{AgentError, AgentSpec, TemplateError};

/// How long a stopped agent gets between SIGTERM and SIGKILL.
pub const KILL_GRACE: Duration = Duration::from_secs(2);
/// How much longer the service waits for a shim, which applies the grace itself to every
/// process below it, before it kills the shim's group.
pub(super) const SHIM_MARGIN: Duration = Duration::from_secs(3);
/// How long to wait for the killed group's processes to finish dying.
const GROUP_EXIT_WAIT: Duration = Duration::from_secs(2);
const GROUP_EXIT_POLL: Duration = Duration::from_millis(10);

/// Starts `spec.argv` in `spec.cwd` with only `spec.env`, as the leader of a new process
/// group, with stdout and stderr piped.
pub(super) fn spawn_in_own_group(spec: &AgentSpec) -> Result<Child, AgentError> {
    let (binary, args) = spec
        .argv
        .split_first()
        .ok_or(AgentError::Template(TemplateError::EmptyCommand))?;
    if !spec.cwd.is_dir() {
        return Err(AgentError::MissingWorkDir {
            path: spec.cwd.clone(),
        });
    }
    let server_pid = std::process::id() as i32;
    let mut command = match &spec.shim {
        Some(shim) => {
            let mut command = Command::new(&shim.program);
            let confinement = serde_json::to_string(&shim.confinement)
                .expect("a confinement is plain data and always serializes");
            command
                .arg(super::shim::SUBCOMMAND)
                .arg(confinement)
                .arg("--")
                .arg(binary);
            command
        }
        None => Command::new(binary),
    };
    command
        .args(args)
        .env_clear()
        .envs(spec.env.iter().map(|(name, value)| (name, value)))
        .current_dir(&spec.cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    // SAFETY: the closure runs between fork and exec; it only makes the prctl and getppid
    // system calls, which are async-signal-safe, and allocates nothing.
    unsafe {
        command.pre_exec(move || die_with_server(server_pid));
    }
    command.spawn().map_err(|source| AgentError::Spawn {
        binary: binary.clone(),
        source,
    })
}

/// Makes the kernel SIGKILL the agent when the server dies, so a crashed server leaves no
/// agent running unsupervised. (The kernel watches the thread that forked, which for tokio
/// is a runtime worker living as long as the runtime.)
fn die_with_server(server_pid: i32) -> io::Result<()> {
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)?;
    // The server may have died between fork and prctl; then the signal would never come.
    if getppid().as_raw() != server_pid {
        return Err(Errno::ESRCH.into());
    }
    Ok(())
}

/// Kills the group if `run_agent` is dropped before it finished (its task aborted).
pub(super) struct GroupGuard {
    pgid: i32,
    shim: bool,
    armed: bool,
}

impl GroupGuard {
    /// Kills group `pgid` when dropped, until disarmed; a shim (the group's leader) is told
    /// to kill everything below it instead, which reaches processes that left the group.
    pub(super) fn arm(pgid: i32, shim: bool) -> Self {
        Self {
            pgid,
            shim,
            armed: true,
        }
    }

    /// The run finished normally; the group is no longer this guard's to kill.
    pub(super) fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if self.armed && self.shim && self.pgid > 1 {
            let _ = nix::sys::signal::kill(Pid::from_raw(self.pgid), super::shim::STOP_NOW);
        } else if self.armed {
            kill_group(self.pgid);
        }
    }
}

/// Sends SIGTERM to the group and returns when SIGKILL is due.
pub(super) fn terminate_group(pgid: i32) -> Instant {
    signal_group(pgid, Some(Signal::SIGTERM));
    Instant::now() + KILL_GRACE
}

/// Waits (briefly) until SIGKILLed members of the group are really gone, so a caller that
/// checks [`group_alive`] after `run_agent` returns sees the truth.
pub(super) async fn wait_for_group_exit(pgid: i32) {
    let give_up_at = Instant::now() + GROUP_EXIT_WAIT;
    while group_alive(pgid) {
        if Instant::now() >= give_up_at {
            tracing::warn!(pgid, "processes of the agent's group survive SIGKILL");
            return;
        }
        sleep(GROUP_EXIT_POLL).await;
    }
}

/// True if any process of this process group is still alive (killpg with signal 0).
///
/// On Linux a zombie (dead, not yet reaped; a container's PID 1 may never reap) also answers
/// signal 0, so a positive answer is confirmed against /proc.
pub fn group_alive(pgid: i32) -> bool {
    if pgid <= 1 {
        return false;
    }
    match killpg(Pid::from_raw(pgid), None) {
        Ok(()) => group_has_running_member(pgid).unwrap_or(true),
        // The group exists but belongs to another user.
        Err(Errno::EPERM) => true,
        Err(_) => false,
    }
}

/// Whether /proc lists a process of group `pgid` that is not a zombie; `None` if /proc cannot
/// be read.
fn group_has_running_member(pgid: i32) -> Option<bool> {
    let entries = std::fs::read_dir("/proc").ok()?;
    let running = entries
        .flatten()
        .filter(|entry| entry.file_name().to_str().is_some_and(is_pid))
        .filter_map(|entry| std::fs::read_to_string(entry.path().join("stat")).ok())
        .filter_map(|stat| parse_state_and_pgrp(&stat))
        .any(|(state, pgrp)| pgrp == pgid && !matches!(state, 'Z' | 'X' | 'x'));
    Some(running)
}

fn is_pid(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit())
}

/// From `/proc/<pid>/stat` ("pid (comm) state ppid pgrp …"; comm may hold spaces and
/// parentheses, so fields are counted from the last ')').
pub(super) fn parse_state_and_pgrp(stat: &str) -> Option<(char, i32)> {
    let after_comm = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_comm.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let _ppid = fields.next()?;
    let pgrp = fields.next()?.parse().ok()?;
    Some((state, pgrp))
}

/// Sends SIGKILL to a whole process group left from an earlier server life (recovery after a
/// crash); no error if it is gone.
pub fn kill_group(pgid: i32) {
    signal_group(pgid, Some(Signal::SIGKILL));
}

/// Signals a group, refusing the ids that would hit far more than an agent: 0 is our own
/// group, 1 (as `kill(-1)`) every process we may signal, and our own group id can only come
/// from a reused pid.
fn signal_group(pgid: i32, signal: Option<Signal>) {
    if pgid <= 1 || pgid == getpgrp().as_raw() {
        tracing::warn!(pgid, "refusing to signal this process group");
        return;
    }
    match killpg(Pid::from_raw(pgid), signal) {
        Ok(()) | Err(Errno::ESRCH) => {}
        Err(e) => tracing::warn!(pgid, error = %e, "cannot signal the agent's process group"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_alive_is_false_for_ids_that_are_no_agent_group() {
        assert!(!group_alive(0));
        assert!(!group_alive(1));
        assert!(!group_alive(-1));
    }

    #[test]
    fn proc_stat_is_parsed_from_after_the_command_name() {
        assert_eq!(
            parse_state_and_pgrp("42 (a) b (c)) S 1 4242 4242 0 -1"),
            Some(('S', 4242))
        );
        assert_eq!(parse_state_and_pgrp("42 (sleep"), None);
    }
}

//! The real `aiops` binary as a child process: start `serve`, read where it listens and
//! the one-time token, and keep every stderr line for the test to wait on.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The binary, quiet unless something is wrong, with no master key from the environment.
pub fn aiops() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_aiops"));
    command
        .env_remove("AIOPS_MASTER_KEY")
        .env("AIOPS_LOG__LEVEL", "warn");
    command
}

/// A running `aiops serve`.
pub struct Served {
    pub child: Child,
    pub base: String,
    /// The admin token it printed on its first start.
    pub token: Option<String>,
    /// Every stderr line so far.
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Served {
    /// Waits until a stderr line contains `text`.
    pub async fn wait_log(&self, text: &str, deadline: Duration) -> String {
        let log = self.log.clone();
        super::wait_for(&format!("serve to print {text:?}"), deadline, || {
            let found = log
                .lock()
                .unwrap()
                .iter()
                .find(|line| line.contains(text))
                .cloned();
            async move { found }
        })
        .await
    }

    /// Sends `signal` to the process.
    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, signal).unwrap();
    }

    /// Waits until the process has exited; its exit status.
    pub async fn wait_exit(&mut self, deadline: Duration) -> std::process::ExitStatus {
        let child = &mut self.child;
        let until = std::time::Instant::now() + deadline;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            assert!(
                std::time::Instant::now() < until,
                "serve did not exit within {deadline:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A test that fails before it stops its `serve` must not leave the process running (it
/// would hold CPU and ports for every test and benchmark after it).
impl Drop for Served {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Starts `aiops serve` with `config` on `data` on a port of the system's choosing.
pub fn serve(config: &Path, data: &Path) -> Served {
    serve_logging(config, data, "warn")
}

/// [`serve`] logging at `level` (`AIOPS_LOG__LEVEL`).
pub fn serve_logging(config: &Path, data: &Path, level: &str) -> Served {
    let child = aiops()
        .env("AIOPS_LOG__LEVEL", level)
        .args(["serve", "--config"])
        .arg(config)
        .arg("--data-dir")
        .arg(data)
        .args(["--listen", "127.0.0.1:0"])
        .current_dir(data)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let fresh = !data.join(".started").exists();
    std::fs::write(data.join(".started"), "").unwrap();
    attach(child, fresh)
}

/// Reads a started serve's address (and, when `fresh`, its one-time token) from `child`,
/// whose stdout and stderr are pipes, and keeps reading its stderr.
pub fn attach(mut child: Child, fresh: bool) -> Served {
    // stderr says where it listens once start-up is done; the token (if any) is on stdout.
    // The rest of stderr keeps being read so the server never writes into a closed pipe.
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut base = None;
    for line in stderr.by_ref() {
        let line = line.unwrap();
        log.lock().unwrap().push(line.clone());
        if let Some(address) = line.split("is listening on ").nth(1) {
            base = Some(address.trim().to_string());
            break;
        }
    }
    let base = base.unwrap_or_else(|| panic!("serve did not start: {:?}", log.lock().unwrap()));
    let kept = log.clone();
    std::thread::spawn(move || {
        for line in stderr.map_while(Result::ok) {
            kept.lock().unwrap().push(line);
        }
    });
    let token = fresh.then(|| {
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        line.trim().to_string()
    });
    Served {
        child,
        base,
        token,
        log,
    }
}

//! The `aiops` binary as an operator uses it: real child processes on a temp data dir,
//! real HTTP against `aiops serve`, and the store the commands leave behind.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use aiops::audit::AuditFilter;
use aiops::config::Config;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

/// Longest any single command or wait may take before the test fails.
const DEADLINE: Duration = Duration::from_secs(30);

/// An `aiops` command that sees nothing of the caller's aiops settings: no `AIOPS_*`
/// variable (not even the master key) and a working directory without `config/aiops.toml`.
fn aiops_in(cwd: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_aiops"));
    cmd.current_dir(cwd);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("AIOPS_") {
            cmd.env_remove(&key);
        }
    }
    cmd.env_remove("AIOPS_MASTER_KEY");
    // Test repositories live in temp dirs; projects may be registered there.
    cmd.env(
        "AIOPS_INPUTS__LOCAL_ROOTS",
        format!("[{:?}]", std::env::temp_dir()),
    );
    cmd
}

/// A temp working directory with a data directory inside it.
struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Self {
        Sandbox {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn key_file(&self) -> PathBuf {
        self.data().join("master.key")
    }

    /// `aiops <args>`, without a data dir.
    fn bare(&self, args: &[&str]) -> Command {
        let mut cmd = aiops_in(self.path());
        cmd.args(args);
        cmd
    }

    /// `aiops <args> --data-dir <data>`.
    fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = self.bare(args);
        cmd.arg("--data-dir").arg(self.data());
        cmd
    }

    /// A config that opens the same store the commands use.
    fn config(&self) -> Config {
        Config {
            data_dir: self.data(),
            ..Config::default()
        }
    }
}

/// What a finished command left.
#[derive(Debug)]
struct Run {
    what: String,
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Run {
    fn ok(self) -> Run {
        assert!(
            self.status.success(),
            "{} failed with {}\nstdout: {}\nstderr: {}",
            self.what,
            self.status,
            self.stdout,
            self.stderr
        );
        self
    }

    fn failed(self) -> Run {
        assert!(
            !self.status.success(),
            "{} should have failed\nstdout: {}\nstderr: {}",
            self.what,
            self.stdout,
            self.stderr
        );
        assert_eq!(
            self.status.code(),
            Some(1),
            "{}: {}",
            self.what,
            self.stderr
        );
        self
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("{} printed no JSON ({e}): {}", self.what, self.stdout))
    }
}

fn describe(cmd: &Command) -> String {
    let args: Vec<String> = cmd
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    format!("aiops {}", args.join(" "))
}

/// Runs `cmd` to completion, feeding it `stdin`; fails the test if it takes longer than
/// `DEADLINE` (e.g. a `serve` that should have refused to start).
fn run(mut cmd: Command, stdin: Option<&str>) -> Run {
    let what = describe(&cmd);
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot spawn {what}: {e}"));
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin pipe");
        let input = input.to_string();
        std::thread::spawn(move || {
            let _ = pipe.write_all(input.as_bytes());
        });
    }
    let (tx, rx) = mpsc::channel::<(bool, String)>();
    let mut out = child.stdout.take().expect("stdout pipe");
    let mut err = child.stderr.take().expect("stderr pipe");
    let tx_out = tx.clone();
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = out.read_to_string(&mut text);
        let _ = tx_out.send((true, text));
    });
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = err.read_to_string(&mut text);
        let _ = tx.send((false, text));
    });
    let deadline = Instant::now() + DEADLINE;
    let (mut stdout, mut stderr) = (None, None);
    while stdout.is_none() || stderr.is_none() {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok((true, text)) => stdout = Some(text),
            Ok((false, text)) => stderr = Some(text),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{what} did not finish within {DEADLINE:?}");
            }
        }
    }
    let status = child.wait().expect("wait for aiops");
    Run {
        what,
        status,
        stdout: stdout.unwrap_or_default(),
        stderr: stderr.unwrap_or_default(),
    }
}

/// Sends each line of `reader` to the returned channel; the channel disconnects at EOF.
fn lines_of(reader: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(reader).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// A running `aiops serve` child. Killed when dropped.
struct Server {
    child: Child,
    stdout: Receiver<String>,
    stderr: Receiver<String>,
    stderr_seen: Vec<String>,
    base: String,
}

impl Server {
    /// Spawns `cmd` (a `serve` command) and waits until it says where it listens.
    fn spawn(mut cmd: Command) -> Server {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let what = describe(&cmd);
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {what}: {e}"));
        let stdout = lines_of(child.stdout.take().expect("stdout pipe"));
        let stderr = lines_of(child.stderr.take().expect("stderr pipe"));
        let mut server = Server {
            child,
            stdout,
            stderr,
            stderr_seen: Vec::new(),
            base: String::new(),
        };
        let line = server.wait_stderr(|l| l.starts_with("aiops is listening on http://"));
        let addr = line
            .trim_start_matches("aiops is listening on http://")
            .trim();
        let addr: std::net::SocketAddr = addr.parse().unwrap_or_else(|e| panic!("{line:?}: {e}"));
        assert!(addr.ip().is_loopback() && addr.port() != 0, "{line}");
        server.base = format!("http://{addr}");
        server
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Waits for a stderr line matching `pred` and returns it.
    fn wait_stderr(&mut self, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + DEADLINE;
        loop {
            match self
                .stderr
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(line) => {
                    self.stderr_seen.push(line.clone());
                    if pred(&line) {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!(
                        "no such stderr line within {DEADLINE:?}; seen: {:#?}",
                        self.stderr_seen
                    )
                }
                Err(RecvTimeoutError::Disconnected) => panic!(
                    "serve exited ({:?}) before printing the line; stderr: {:#?}",
                    self.child.try_wait(),
                    self.stderr_seen
                ),
            }
        }
    }

    /// The next line on stdout.
    fn stdout_line(&mut self) -> String {
        self.stdout
            .recv_timeout(DEADLINE)
            .unwrap_or_else(|e| panic!("no stdout line ({e}); stderr: {:#?}", self.stderr_seen))
    }

    /// Sends SIGTERM, waits for the process to close its output and exit, and returns
    /// its exit status and whatever stdout lines were not read yet.
    fn terminate(mut self) -> (ExitStatus, Vec<String>) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
        let deadline = Instant::now() + DEADLINE;
        let mut rest = Vec::new();
        loop {
            match self
                .stdout
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(line) => rest.push(line),
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => panic!("serve did not stop after SIGTERM"),
            }
        }
        loop {
            match self
                .stderr
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(line) => self.stderr_seen.push(line),
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {
                    panic!("serve did not close stderr after SIGTERM")
                }
            }
        }
        (self.child.wait().expect("wait for serve"), rest)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve_cmd(sandbox: &Sandbox) -> Command {
    sandbox.cmd(&["serve", "--listen", "127.0.0.1:0"])
}

fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("HTTP client")
}

fn get_status(url: &str, token: Option<&str>) -> u16 {
    let mut req = http().get(url);
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    req.send()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
        .status()
        .as_u16()
}

/// Collapses runs of whitespace, so phrases survive clap's line wrapping.
fn squash(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn random_hex(bytes: usize) -> String {
    use rand::RngCore;
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    hex::encode(buf)
}

// ---------------------------------------------------------------------------------------
// 1. Help
// ---------------------------------------------------------------------------------------

#[test]
fn every_command_has_help_with_a_description() {
    let sandbox = Sandbox::new();
    // (command, a phrase of its description)
    let commands: &[(&[&str], &str)] = &[
        (&[], "git worktree"),
        (&["serve"], "one-time admin token"),
        (&["migrate"], "migrations"),
        (&["keygen"], "base64 of 32 bytes"),
        (&["project"], "Register and manage projects"),
        (&["project", "add"], "Register a project"),
        (&["project", "list"], "List projects"),
        (&["project", "show"], "Show one project as JSON"),
        (&["project", "update"], "only the options given change"),
        (&["project", "remove"], "refused while it has tasks"),
        (&["secret"], "encrypted credentials"),
        (&["secret", "set"], "reading its value from standard input"),
        (&["secret", "list"], "values are never shown"),
        (&["secret", "remove"], "Delete a secret by id"),
        (
            &["secret", "rotate-key"],
            "Re-encrypt every secret under a new master key",
        ),
        (&["token"], "bearer tokens"),
        (&["token", "create"], "shown only this once"),
        (&["token", "list"], "List tokens"),
        (&["token", "revoke"], "stops working at once"),
        (&["task"], "retry and follow tasks"),
        (&["task", "create"], "Create a task"),
        (&["task", "list"], "List tasks"),
        (&["task", "show"], "Show a task"),
        (&["task", "cancel"], "Cancel a task"),
        (&["task", "retry"], "failed or cancelled task again"),
        (&["approvals"], "Approval requests"),
        (&["approvals", "list"], "pending ones unless --all"),
        (&["approve"], "A decision is final"),
        (&["reject"], "branch is deleted"),
        (&["revise"], "works again and asks again"),
    ];
    let store_commands: &[&[&str]] = &[
        &["serve"],
        &["migrate"],
        &["project", "add"],
        &["project", "list"],
        &["project", "show"],
        &["project", "update"],
        &["project", "remove"],
        &["secret", "set"],
        &["secret", "list"],
        &["secret", "remove"],
        &["secret", "rotate-key"],
        &["token", "create"],
        &["token", "list"],
        &["token", "revoke"],
        &["task", "create"],
        &["task", "list"],
        &["task", "show"],
        &["task", "cancel"],
        &["task", "retry"],
        &["approvals", "list"],
        &["approve"],
        &["reject"],
        &["revise"],
    ];
    for (command, phrase) in commands {
        let mut args = command.to_vec();
        args.push("--help");
        let out = run(sandbox.bare(&args), None).ok();
        let help = squash(&out.stdout);
        assert!(
            help.contains(phrase),
            "{}: no {phrase:?} in\n{}",
            out.what,
            out.stdout
        );
        assert!(
            help.contains("Usage: aiops"),
            "{}: {}",
            out.what,
            out.stdout
        );
        assert!(
            help.contains("--config") && help.contains("AIOPS_CONFIG"),
            "{}",
            out.what
        );
        let is_store_command = store_commands.contains(command);
        for option in [
            "--data-dir",
            "AIOPS_DATA_DIR",
            "--database-url",
            "AIOPS_DATABASE_URL",
        ] {
            assert_eq!(
                help.contains(option),
                is_store_command,
                "{}: {option} mentioned = {}, expected {is_store_command}\n{}",
                out.what,
                help.contains(option),
                out.stdout
            );
        }
        let is_serve = *command == ["serve"];
        for option in ["--listen", "AIOPS_LISTEN"] {
            assert_eq!(
                help.contains(option),
                is_serve,
                "{}: {option}\n{}",
                out.what,
                out.stdout
            );
        }
    }

    // Groups list their subcommands.
    let top = run(sandbox.bare(&["--help"]), None).ok().stdout;
    for sub in ["serve", "migrate", "keygen", "project", "secret", "token"] {
        assert!(
            top.lines().any(|l| l.trim_start().starts_with(sub)),
            "{sub} missing:\n{top}"
        );
    }
    for (group, subs) in [
        ("project", &["add", "list", "show", "update", "remove"][..]),
        ("secret", &["set", "list", "remove", "rotate-key"][..]),
        ("token", &["create", "list", "revoke"][..]),
    ] {
        let help = run(sandbox.bare(&[group, "--help"]), None).ok().stdout;
        for sub in subs {
            assert!(
                help.lines().any(|l| l.trim_start().starts_with(sub)),
                "{group} {sub} missing:\n{help}"
            );
        }
    }

    let version = run(sandbox.bare(&["--version"]), None).ok();
    assert_eq!(
        version.stdout.trim(),
        format!("aiops {}", env!("CARGO_PKG_VERSION"))
    );

    // No command, or an unknown one, is a usage error (exit 2), not a crash.
    for args in [&[][..], &["frobnicate"][..]] {
        let out = run(sandbox.bare(args), None);
        assert_eq!(out.status.code(), Some(2), "{}: {}", out.what, out.stderr);
        assert!(out.stderr.contains("Usage: aiops"), "{}", out.stderr);
    }
    assert!(!sandbox.data().exists(), "help must not create a data dir");
}

// ---------------------------------------------------------------------------------------
// 2. keygen
// ---------------------------------------------------------------------------------------

#[test]
fn keygen_prints_one_fresh_32_byte_key() {
    let sandbox = Sandbox::new();
    let mut keys = Vec::new();
    for _ in 0..2 {
        let out = run(sandbox.bare(&["keygen"]), None).ok();
        assert!(out.stdout.ends_with('\n'), "{:?}", out.stdout);
        let lines: Vec<&str> = out.stdout.lines().collect();
        assert_eq!(
            lines.len(),
            1,
            "keygen must print exactly one line: {:?}",
            out.stdout
        );
        let bytes = BASE64
            .decode(lines[0])
            .unwrap_or_else(|e| panic!("{:?} is not base64: {e}", lines[0]));
        assert_eq!(bytes.len(), 32);
        assert!(
            !out.stderr.contains(lines[0]),
            "the key must not go to stderr"
        );
        keys.push(lines[0].to_string());
    }
    assert_ne!(keys[0], keys[1], "two runs must give different keys");
    assert!(!sandbox.data().exists(), "keygen must not touch a data dir");
}

// ---------------------------------------------------------------------------------------
// 3. Tokens
// ---------------------------------------------------------------------------------------

#[test]
fn token_create_use_revoke_list() {
    let sandbox = Sandbox::new();
    let created = run(
        sandbox.cmd(&["token", "create", "--name", "ci", "--admin"]),
        None,
    )
    .ok();
    let lines: Vec<&str> = created.stdout.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "the token alone on stdout: {:?}",
        created.stdout
    );
    let token = lines[0].to_string();
    assert!(token.starts_with("aiops_") && token.len() > 40, "{token:?}");
    assert_eq!(created.stdout, format!("{token}\n"));
    assert!(
        !created.stderr.contains(&token),
        "the token must not go to stderr"
    );

    let viewer = run(
        sandbox.cmd(&["token", "create", "--name", "ro", "--role", "viewer"]),
        None,
    )
    .ok();
    let viewer_token = viewer.stdout.trim().to_string();
    assert!(viewer_token.starts_with("aiops_") && viewer_token != token);

    let dup = run(sandbox.cmd(&["token", "create", "--name", "ci"]), None).failed();
    assert!(dup.stderr.contains("already exists"), "{}", dup.stderr);
    assert!(dup.stdout.is_empty(), "{}", dup.stdout);
    let both = run(
        sandbox.cmd(&[
            "token", "create", "--name", "x", "--admin", "--role", "viewer",
        ]),
        None,
    );
    assert_eq!(
        both.status.code(),
        Some(2),
        "--admin and --role conflict: {}",
        both.stderr
    );

    let mut server = Server::spawn(serve_cmd(&sandbox));
    let projects = server.url("/api/v1/projects");
    assert_eq!(get_status(&projects, Some(&token)), 200);
    assert_eq!(get_status(&projects, Some(&viewer_token)), 200);
    assert_eq!(get_status(&projects, None), 401);
    assert_eq!(get_status(&projects, Some("aiops_not-a-real-token")), 401);
    // Tokens existed before the first start: serve creates and prints none.
    server.wait_stderr(|l| l.contains("Log in with an existing token"));

    let revoked = run(sandbox.cmd(&["token", "revoke", "ci"]), None).ok();
    assert!(
        revoked.stderr.contains("revoked token ci"),
        "{}",
        revoked.stderr
    );
    assert_eq!(
        get_status(&projects, Some(&token)),
        401,
        "a revoked token must stop working at once"
    );
    assert_eq!(
        get_status(&projects, Some(&viewer_token)),
        200,
        "other tokens keep working"
    );
    let again = run(sandbox.cmd(&["token", "revoke", "ci"]), None).failed();
    assert!(again.stderr.contains("not found"), "{}", again.stderr);

    let list = run(sandbox.cmd(&["token", "list"]), None).ok();
    let row = |name: &str| {
        list.stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no {name} in\n{}", list.stdout))
            .to_string()
    };
    let ci = row("ci");
    assert!(
        ci.contains("admin") && ci.trim_end().ends_with("revoked"),
        "{ci}"
    );
    let ro = row("ro");
    assert!(
        ro.contains(" read ") && ro.trim_end().ends_with("active"),
        "{ro}"
    );
    assert_eq!(
        list.stdout.lines().count(),
        3,
        "header and two tokens:\n{}",
        list.stdout
    );
    for secret in [&token, &viewer_token] {
        assert!(
            !list.stdout.contains(secret.as_str()),
            "token list must not show tokens"
        );
    }
    assert!(
        ci.contains(&token[..12]),
        "the prefix identifies the token: {ci}"
    );
}

// ---------------------------------------------------------------------------------------
// 4. First start
// ---------------------------------------------------------------------------------------

#[test]
fn first_serve_creates_key_and_prints_a_working_admin_token_once() {
    let sandbox = Sandbox::new();
    let mut server = Server::spawn(serve_cmd(&sandbox));
    let token = server.stdout_line();
    assert!(
        token.starts_with("aiops_"),
        "first stdout line is the token: {token:?}"
    );
    assert!(
        server
            .stderr_seen
            .iter()
            .any(|l| l.contains("Generated a new master key")
                && l.contains("master.key")
                && l.contains("0600")),
        "stderr must say a key was generated: {:#?}",
        server.stderr_seen
    );
    assert!(
        !server.stderr_seen.iter().any(|l| l.contains(&token)),
        "the token must not go to stderr"
    );

    let key_file = sandbox.key_file();
    let meta = std::fs::metadata(&key_file).expect("serve creates data/master.key");
    assert_eq!(
        meta.permissions().mode() & 0o777,
        0o600,
        "master.key must be private"
    );
    // The data directory (store, key, worktrees) and the store's files are the owner's alone,
    // whatever the umask gave.
    let mode = |path: PathBuf| std::fs::metadata(&path).map(|m| m.permissions().mode() & 0o777);
    assert_eq!(mode(sandbox.data()).unwrap(), 0o700, "the data directory");
    for file in ["aiops.db", "aiops.db-wal", "aiops.db-shm"] {
        if let Ok(found) = mode(sandbox.data().join(file)) {
            assert_eq!(found, 0o600, "{file} must be private");
        }
    }
    assert!(
        mode(sandbox.data().join("aiops.db")).is_ok(),
        "the store is in the data directory"
    );
    let key_text = std::fs::read_to_string(&key_file).unwrap();
    assert_eq!(
        BASE64.decode(key_text.trim()).expect("base64 key").len(),
        32
    );
    assert!(sandbox.data().join("aiops.db").exists());

    assert_eq!(get_status(&server.url("/readyz"), None), 200);
    assert_eq!(get_status(&server.url("/healthz"), None), 200);
    assert_eq!(
        get_status(&server.url("/api/v1/projects"), Some(&token)),
        200
    );
    assert_eq!(get_status(&server.url("/api/v1/projects"), None), 401);
    drop(server); // kills it

    // Second start on the same data dir: no new key, no token.
    let mut server = Server::spawn(serve_cmd(&sandbox));
    server.wait_stderr(|l| l.contains("Log in with an existing token"));
    assert_eq!(
        get_status(&server.url("/api/v1/projects"), Some(&token)),
        200,
        "the first token still works"
    );
    assert_eq!(
        std::fs::read_to_string(&key_file).unwrap(),
        key_text,
        "the key file is kept"
    );
    let (status, stdout) = server.terminate();
    assert!(status.success(), "SIGTERM is a clean shutdown: {status}");
    assert!(stdout.is_empty(), "no token on a second start: {stdout:?}");

    let list = run(sandbox.cmd(&["token", "list"]), None).ok();
    let admin_rows: Vec<&str> = list
        .stdout
        .lines()
        .filter(|l| l.starts_with("admin "))
        .collect();
    assert_eq!(admin_rows.len(), 1, "{}", list.stdout);
    assert!(admin_rows[0].contains("active"));
}

// ---------------------------------------------------------------------------------------
// 5. Bad configuration
// ---------------------------------------------------------------------------------------

/// Runs a `serve` that must refuse to start, and returns its stderr.
fn refused(cmd: Command) -> String {
    let out = run(cmd, None).failed();
    assert!(out.stdout.is_empty(), "{}: {}", out.what, out.stdout);
    assert!(
        !out.stderr.contains("listening"),
        "{}: {}",
        out.what,
        out.stderr
    );
    assert!(
        out.stderr.lines().any(|l| l.starts_with("error: ")),
        "{}: {}",
        out.what,
        out.stderr
    );
    out.stderr
}

#[test]
fn bad_configuration_stops_the_start_and_says_how_to_fix_it() {
    let sandbox = Sandbox::new();

    let mut cmd = serve_cmd(&sandbox);
    cmd.env("AIOPS_HTTP__MAX_BODY_BYTES", "10");
    let err = refused(cmd);
    assert!(
        err.contains("http.max_body_bytes") && err.contains("1024"),
        "{err}"
    );

    let mut cmd = serve_cmd(&sandbox);
    cmd.env("AIOPS_HTTP__MAX_BODY_BYTES", "lots");
    let err = refused(cmd);
    assert!(
        err.contains("MAX_BODY_BYTES") && err.contains("AIOPS_"),
        "{err}"
    );

    let err = refused(sandbox.cmd(&["serve", "--listen", "nonsense"]));
    assert!(err.contains("listen") && err.contains("host:port"), "{err}");

    let err = refused(sandbox.cmd(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--database-url",
        "mysql://x/y",
    ]));
    assert!(
        err.contains("database_url") && err.contains("postgres://"),
        "{err}"
    );

    let config = sandbox.path().join("custom.toml");
    std::fs::write(&config, "listen = \"127.0.0.1:0\"\nbogus_key = 1\n").unwrap();
    let mut cmd = sandbox.cmd(&["serve"]);
    cmd.arg("--config").arg(&config);
    let err = refused(cmd);
    assert!(
        err.contains("bogus_key") && err.contains("custom.toml"),
        "{err}"
    );

    std::fs::write(
        &config,
        "listen = \"127.0.0.1:0\"\n[http]\nmax_bodyy = 4096\n",
    )
    .unwrap();
    let mut cmd = sandbox.cmd(&["serve"]);
    cmd.arg("--config").arg(&config);
    let err = refused(cmd);
    assert!(
        err.contains("max_bodyy") && err.contains("max_body_bytes"),
        "{err}"
    );

    let mut cmd = serve_cmd(&sandbox);
    cmd.arg("--config").arg(sandbox.path().join("missing.toml"));
    let err = refused(cmd);
    assert!(
        err.contains("missing.toml") && err.contains("does not exist"),
        "{err}"
    );

    // None of the above got as far as the data dir.
    assert!(
        !sandbox.data().exists(),
        "a config error must stop before anything is created"
    );

    let mut cmd = serve_cmd(&sandbox);
    cmd.env("AIOPS_MASTER_KEY", "not-a-key");
    let err = refused(cmd);
    assert!(
        err.contains("AIOPS_MASTER_KEY") && err.contains("aiops keygen"),
        "{err}"
    );
    assert!(
        !sandbox.key_file().exists(),
        "a bad env key must not be replaced by a key file"
    );
}

#[test]
fn wrong_master_key_or_busy_port_stops_the_start() {
    let sandbox = Sandbox::new();
    let mut server = Server::spawn(serve_cmd(&sandbox));
    let token = server.stdout_line();
    assert!(token.starts_with("aiops_"));
    let addr = server.base.trim_start_matches("http://").to_string();

    // The address is taken (by the first server).
    let err = refused(sandbox.cmd(&["serve", "--listen", &addr]));
    assert!(
        err.contains("cannot listen on") && err.contains("--listen"),
        "{err}"
    );

    // One serve per data directory: a second one on another address names the first.
    let err = refused(serve_cmd(&sandbox));
    assert!(
        err.contains("already runs on the data directory")
            && err.contains(&format!("pid={}", server.child.id()))
            && err.contains(&format!("listen={addr}"))
            && err.contains("--data-dir"),
        "{err}"
    );
    drop(server);

    // A valid key that is not this store's key.
    let other = run(sandbox.bare(&["keygen"]), None)
        .ok()
        .stdout
        .trim()
        .to_string();
    let mut cmd = serve_cmd(&sandbox);
    cmd.env("AIOPS_MASTER_KEY", &other);
    let err = refused(cmd);
    assert!(
        err.contains("does not match") && err.contains("AIOPS_MASTER_KEY"),
        "{err}"
    );

    // A damaged key file.
    std::fs::write(sandbox.key_file(), "garbage\n").unwrap();
    let err = refused(serve_cmd(&sandbox));
    assert!(
        err.contains("master.key") && err.contains("aiops keygen"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------
// 6. Projects
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn project_commands_manage_projects_and_leave_audit_entries() {
    let sandbox = Sandbox::new();
    let repo = common::git_repo();
    let repo_path = repo.path().canonicalize().unwrap();
    let repo_str = repo_path.to_str().unwrap();

    let added = run(
        sandbox.cmd(&[
            "project",
            "add",
            "shop",
            "--path",
            repo_str,
            "--stack",
            "rust,postgres",
            "--github",
            "acme/shop",
        ]),
        None,
    )
    .ok();
    let project = added.json();
    assert_eq!(project["name"], "shop");
    assert_eq!(project["local_path"], repo_str);
    assert_eq!(project["default_branch"], "main");
    assert_eq!(
        project["tech_stack"],
        serde_json::json!(["rust", "postgres"])
    );
    assert_eq!(project["github_repo"], "acme/shop");
    assert_eq!(project["max_concurrency"], 1);

    let dup = run(
        sandbox.cmd(&["project", "add", "shop", "--path", repo_str]),
        None,
    )
    .failed();
    assert!(dup.stderr.contains("already exists"), "{}", dup.stderr);

    let not_git = tempfile::tempdir().unwrap();
    let bad = run(
        sandbox.cmd(&[
            "project",
            "add",
            "other",
            "--path",
            not_git.path().to_str().unwrap(),
        ]),
        None,
    )
    .failed();
    assert!(
        bad.stderr.contains("error: --path: ") && bad.stderr.contains("not a git repository"),
        "{}",
        bad.stderr
    );

    let table = run(sandbox.cmd(&["project", "list"]), None).ok();
    let rows: Vec<&str> = table.stdout.lines().collect();
    assert_eq!(rows.len(), 2, "header and one project:\n{}", table.stdout);
    assert!(rows[0].starts_with("NAME"));
    assert!(
        rows[1].starts_with("shop ") && rows[1].ends_with(repo_str),
        "{}",
        rows[1]
    );

    let list = run(sandbox.cmd(&["project", "list", "--json"]), None)
        .ok()
        .json();
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
    assert_eq!(list[0]["name"], "shop");

    let updated = run(
        sandbox.cmd(&[
            "project",
            "update",
            "shop",
            "--max-concurrency",
            "3",
            "--default-branch",
            "develop",
        ]),
        None,
    )
    .ok()
    .json();
    assert_eq!(updated["max_concurrency"], 3);
    assert_eq!(updated["default_branch"], "develop");
    assert_eq!(
        updated["github_repo"], "acme/shop",
        "options not given stay"
    );

    let shown = run(sandbox.cmd(&["project", "show", "shop"]), None)
        .ok()
        .json();
    assert_eq!(shown["max_concurrency"], 3, "the update is stored");
    assert_eq!(shown["default_branch"], "develop");
    assert_eq!(shown["id"], project["id"]);

    let invalid = run(
        sandbox.cmd(&["project", "update", "shop", "--max-concurrency", "0"]),
        None,
    )
    .failed();
    assert!(
        invalid
            .stderr
            .contains("error: --max-concurrency: must be between 1 and 64"),
        "{}",
        invalid.stderr
    );

    let missing = run(sandbox.cmd(&["project", "show", "nope"]), None).failed();
    assert!(missing.stderr.contains("not found"), "{}", missing.stderr);
    let missing = run(sandbox.cmd(&["project", "remove", "nope"]), None).failed();
    assert!(
        missing.stderr.contains("nope") && missing.stderr.contains("not found"),
        "{}",
        missing.stderr
    );

    let removed = run(sandbox.cmd(&["project", "remove", "shop"]), None).ok();
    assert!(
        removed.stderr.contains("removed project shop"),
        "{}",
        removed.stderr
    );
    let list = run(sandbox.cmd(&["project", "list", "--json"]), None)
        .ok()
        .json();
    assert_eq!(list, serde_json::json!([]));

    // Every mutation, successful or not, is in the audit log as the CLI; reads are not.
    let store = aiops::server::open_store(&sandbox.config())
        .await
        .expect("open store");
    let mut entries = store
        .list_audit(&AuditFilter {
            limit: 100,
            ..Default::default()
        })
        .await
        .expect("audit log");
    entries.reverse();
    let got: Vec<(String, String, String)> = entries
        .iter()
        .map(|e| (e.action.clone(), e.target.clone(), e.outcome.clone()))
        .collect();
    let expected: Vec<(String, String, String)> = [
        ("cli project add", "projects/shop", "ok"),
        ("cli project add", "projects/shop", "error"),
        ("cli project add", "projects/other", "error"),
        ("cli project update", "projects/shop", "ok"),
        ("cli project update", "projects/shop", "error"),
        ("cli project remove", "projects/nope", "error"),
        ("cli project remove", "projects/shop", "ok"),
    ]
    .iter()
    .map(|(a, t, o)| (a.to_string(), t.to_string(), o.to_string()))
    .collect();
    assert_eq!(got, expected);
    for entry in &entries {
        assert!(entry.action.starts_with("cli "), "{entry:?}");
        assert!(entry.principal_name.starts_with("cli:"), "{entry:?}");
        assert_eq!(entry.source, "cli");
        assert_eq!(entry.principal_id, None);
    }
    let failed = &entries[2];
    assert!(
        failed.detail["error"]
            .as_str()
            .is_some_and(|e| e.contains("not a git repository")),
        "a failure records why: {failed:?}"
    );
    store.close().await;
}

#[tokio::test]
async fn task_commands_create_list_cancel_and_retry() {
    let sandbox = Sandbox::new();
    let repo = common::git_repo();
    let repo_path = repo.path().canonicalize().unwrap();
    run(
        sandbox.cmd(&[
            "project",
            "add",
            "shop",
            "--path",
            repo_path.to_str().unwrap(),
        ]),
        None,
    )
    .ok();

    let created = run(
        sandbox.cmd(&[
            "task",
            "create",
            "--project",
            "shop",
            "--prompt",
            "Fix the checkout",
            "--team",
            "bugfix",
            "--priority",
            "high",
        ]),
        None,
    )
    .ok();
    let task = created.json();
    let id = task["id"].as_i64().unwrap();
    assert_eq!(task["status"], "queued");
    assert_eq!(task["priority"], "high");
    assert_eq!(task["source"], "cli");
    assert!(
        created.stderr.contains(&format!("aiops task watch {id}")),
        "{}",
        created.stderr
    );

    let listed = run(sandbox.cmd(&["task", "list", "--project", "shop"]), None).ok();
    let row = listed
        .stdout
        .lines()
        .find(|l| l.starts_with(&id.to_string()))
        .unwrap_or_else(|| panic!("task {id} not listed:\n{}", listed.stdout));
    assert!(
        row.contains("queued") && row.contains("Fix the checkout"),
        "{row}"
    );
    let bad_status = run(sandbox.cmd(&["task", "list", "--status", "later"]), None).failed();
    assert!(
        bad_status.stderr.contains("is not a status"),
        "{}",
        bad_status.stderr
    );
    let unknown = run(
        sandbox.cmd(&["task", "create", "--project", "nope", "--prompt", "x"]),
        None,
    )
    .failed();
    assert!(
        unknown.stderr.contains(
            "error: --project: unknown project \"nope\"; register it first (aiops project add"
        ),
        "{}",
        unknown.stderr
    );

    let early = run(sandbox.cmd(&["task", "retry", &id.to_string()]), None).failed();
    assert!(
        early
            .stderr
            .contains("only a failed, cancelled or budget_exceeded task can be retried"),
        "{}",
        early.stderr
    );
    let cancelled = run(sandbox.cmd(&["task", "cancel", &id.to_string()]), None).ok();
    assert!(
        cancelled.stderr.contains("cancelled"),
        "{}",
        cancelled.stderr
    );
    let retried = run(sandbox.cmd(&["task", "retry", &id.to_string()]), None).ok();
    assert!(
        retried.stderr.contains("queued again"),
        "{}",
        retried.stderr
    );
    let shown = run(sandbox.cmd(&["task", "show", &id.to_string()]), None)
        .ok()
        .json();
    assert_eq!(shown["status"], "queued");
    assert!(
        shown["status_reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("retry requested by cli:")),
        "{shown:#}"
    );

    // The mutations are audited as the CLI; the store holds one job per queueing.
    let store = aiops::server::open_store(&sandbox.config())
        .await
        .expect("open store");
    let mut entries = store
        .list_audit(&AuditFilter {
            limit: 100,
            ..Default::default()
        })
        .await
        .expect("audit log");
    entries.reverse();
    let tasks: Vec<(String, String)> = entries
        .iter()
        .filter(|e| e.action.starts_with("cli task"))
        .map(|e| (e.action.clone(), e.outcome.clone()))
        .collect();
    let expected: Vec<(String, String)> = [
        ("cli task create", "ok"),
        ("cli task create", "error"),
        ("cli task retry", "error"),
        ("cli task cancel", "ok"),
        ("cli task retry", "ok"),
    ]
    .iter()
    .map(|(a, o)| (a.to_string(), o.to_string()))
    .collect();
    assert_eq!(tasks, expected);
    store.close().await;
}

// ---------------------------------------------------------------------------------------
// 7. Secrets
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn secret_commands_take_values_from_stdin_and_never_print_them() {
    let sandbox = Sandbox::new();
    let repo = common::git_repo();
    run(
        sandbox.cmd(&[
            "project",
            "add",
            "shop",
            "--path",
            repo.path().to_str().unwrap(),
        ]),
        None,
    )
    .ok();

    let project_value = format!("ghp_{}", random_hex(20));
    let global_value = format!("sk-{}", random_hex(20));
    let replaced_value = format!("ghp_{}", random_hex(20));
    let values = [&project_value, &global_value, &replaced_value];
    // Every command's output is checked for every value.
    let check = |run: Run| {
        for value in values {
            assert!(
                !run.stdout.contains(value.as_str()),
                "{} printed a secret: {}",
                run.what,
                run.stdout
            );
            assert!(
                !run.stderr.contains(value.as_str()),
                "{} printed a secret: {}",
                run.what,
                run.stderr
            );
        }
        run
    };

    let set = check(
        run(
            sandbox.cmd(&[
                "secret",
                "set",
                "--project",
                "shop",
                "--name",
                "github-token",
                "--kind",
                "token",
            ]),
            Some(&format!("{project_value}\n")),
        )
        .ok(),
    );
    assert!(
        set.stderr.contains("Generated a new master key"),
        "{}",
        set.stderr
    );
    let project_secret = set.json();
    assert_eq!(project_secret["project"], "shop");
    assert_eq!(project_secret["name"], "github-token");
    assert_eq!(project_secret["kind"], "token");
    assert_eq!(project_secret["env_var"], "GITHUB_TOKEN");
    assert_eq!(project_secret["key_version"], 1);
    assert!(project_secret.get("value").is_none(), "{project_secret}");
    assert_eq!(
        std::fs::metadata(sandbox.key_file())
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );

    let set = check(
        run(
            sandbox.cmd(&[
                "secret",
                "set",
                "--name",
                "openai",
                "--kind",
                "api_key",
                "--env-var",
                "OPENAI_API_KEY",
            ]),
            Some(&global_value),
        )
        .ok(),
    );
    let global_secret = set.json();
    assert_eq!(global_secret["project"], serde_json::Value::Null);
    assert_eq!(global_secret["env_var"], "OPENAI_API_KEY");

    // Setting the same name again replaces the value in place.
    let set = check(
        run(
            sandbox.cmd(&[
                "secret",
                "set",
                "--project",
                "shop",
                "--name",
                "github-token",
                "--kind",
                "token",
            ]),
            Some(&replaced_value),
        )
        .ok(),
    );
    assert_eq!(set.json()["id"], project_secret["id"]);

    let empty = check(
        run(
            sandbox.cmd(&["secret", "set", "--name", "empty", "--kind", "token"]),
            Some(""),
        )
        .failed(),
    );
    assert!(empty.stderr.contains("standard input"), "{}", empty.stderr);
    let reserved = check(
        run(
            sandbox.cmd(&[
                "secret",
                "set",
                "--name",
                "path",
                "--kind",
                "token",
                "--env-var",
                "PATH",
            ]),
            Some("x"),
        )
        .failed(),
    );
    assert!(reserved.stderr.contains("env_var"), "{}", reserved.stderr);
    let no_project = check(
        run(
            sandbox.cmd(&[
                "secret",
                "set",
                "--project",
                "nope",
                "--name",
                "x",
                "--kind",
                "token",
            ]),
            Some("x"),
        )
        .failed(),
    );
    assert!(
        no_project.stderr.contains("not found"),
        "{}",
        no_project.stderr
    );

    let list = check(run(sandbox.cmd(&["secret", "list"]), None).ok());
    let rows: Vec<String> = list.stdout.lines().map(str::to_string).collect();
    assert_eq!(rows.len(), 3, "header and two secrets:\n{}", list.stdout);
    assert!(
        rows.iter().any(|r| r.contains("shop")
            && r.contains("github-token")
            && r.contains("GITHUB_TOKEN")
            && r.ends_with("v1")),
        "{}",
        list.stdout
    );
    assert!(
        rows.iter()
            .any(|r| r.contains("(global)") && r.contains("openai") && r.contains("api_key")),
        "{}",
        list.stdout
    );
    let only_shop = check(run(sandbox.cmd(&["secret", "list", "--project", "shop"]), None).ok());
    assert_eq!(only_shop.stdout.lines().count(), 2, "{}", only_shop.stdout);
    assert!(only_shop.stdout.contains("github-token") && !only_shop.stdout.contains("openai"));

    // The values are stored: the vault opens them with the key the commands created.
    let config = sandbox.config();
    let store = aiops::server::open_store(&config).await.unwrap();
    let (vault, _, generated) = aiops::server::open_vault(&config, &store, false)
        .await
        .unwrap();
    assert_eq!(generated, None);
    let shop = store.project("shop").await.unwrap();
    let mut revealed = aiops::credentials::reveal_for_project(&store, &vault, shop.id)
        .await
        .unwrap();
    revealed.sort();
    assert_eq!(
        revealed,
        vec![
            (
                "GITHUB_TOKEN".to_string(),
                replaced_value.clone(),
                "github-token".to_string()
            ),
            (
                "OPENAI_API_KEY".to_string(),
                global_value.clone(),
                "openai".to_string()
            ),
        ]
    );

    let id = project_secret["id"].as_i64().unwrap().to_string();
    let removed = check(run(sandbox.cmd(&["secret", "remove", &id]), None).ok());
    assert!(
        removed.stderr.contains(&format!("removed credential {id}")),
        "{}",
        removed.stderr
    );
    let again = check(run(sandbox.cmd(&["secret", "remove", &id]), None).failed());
    assert!(again.stderr.contains("not found"), "{}", again.stderr);
    let list = check(run(sandbox.cmd(&["secret", "list"]), None).ok());
    assert_eq!(list.stdout.lines().count(), 2, "{}", list.stdout);
    assert!(!list.stdout.contains("github-token") && list.stdout.contains("openai"));

    // Nor does the audit log hold a value.
    let entries = store
        .list_audit(&AuditFilter {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    let actions: Vec<&str> = entries.iter().map(|e| e.action.as_str()).collect();
    assert!(
        actions.contains(&"cli secret set") && actions.contains(&"cli secret remove"),
        "{actions:?}"
    );
    let dump = serde_json::to_string(&entries).unwrap();
    for value in values {
        assert!(
            !dump.contains(value.as_str()),
            "the audit log holds a secret"
        );
    }
    store.close().await;
}

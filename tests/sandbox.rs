//! The agent is untrusted: a hostile agent (a shell script as `engine.command`) reaches no
//! secret and no store, and nothing an agent starts outlives its task or the service.
//!
//! The sandbox is Linux Landlock; these tests need a kernel with Landlock ABI 4 or later
//! (they print the ABI they found). The refusal test simulates a host without Landlock through
//! the test-only variable `AIOPS_TEST_SANDBOX_UNSUPPORTED=1`.

mod common;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use aiops::config::Config;
use common::pipeline::{add_project, create_task, task_detail, wait_status};
use common::{Db, FreshDb, TestApp, wait_for};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(60);

/// Writes an executable bash script `name` into `dir`.
fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    let mut file = std::fs::File::create(&path).unwrap();
    writeln!(file, "#!/bin/bash\n{body}").unwrap();
    drop(file);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// The app with `agent` (a script) as the engine's command, one worker, short polls and
/// only `PATH` passed to agents; `adjust` changes the rest.
async fn agent_app(db: Db, agent: &Path, adjust: impl FnOnce(&mut Config)) -> TestApp {
    TestApp::spawn_with(db, |c| {
        c.engine.workers = 1;
        c.engine.command = format!("{} {{prompt}}", agent.display());
        c.engine.queue_poll_ms = 100;
        c.engine.ingest_interval_ms = 100;
        c.engine.env_passthrough = vec!["PATH".into()];
        adjust(c);
    })
    .await
}

/// The stored text of a task: its detail (events, findings, runs) and every run's log.
async fn stored_text(app: &TestApp, id: i64) -> String {
    let detail = task_detail(app, id).await;
    let mut text = detail.to_string();
    let events = app
        .store
        .events_after(0, Some(id), None, 10_000)
        .await
        .unwrap();
    text.push_str(&serde_json::to_string(&events).unwrap());
    for run in detail["runs"].as_array().unwrap() {
        let log = app
            .get(&format!("/api/v1/tasks/{id}/runs/{}/log", run["id"]))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.push_str(&log);
    }
    text
}

/// A shell function `probe NAME COMMAND…` that prints `PROBE <name> OPEN <what it got>` or
/// `PROBE <name> DENIED`.
macro_rules! probe_fn {
    () => {
        r#"
probe() {
  local name=$1; shift
  if out=$("$@" 2>/dev/null) && [ -n "$out" ]; then
    echo "PROBE $name OPEN $(printf %s "$out" | tr -d '\0' | head -c 300)"
  else
    echo "PROBE $name DENIED"
  fi
}
"#
    };
}

/// The probes of the hostile agent: each prints `PROBE <name> OPEN <what it got>` or
/// `PROBE <name> DENIED`.
const PROBES: &str = concat!(
    probe_fn!(),
    r#"
probe master_key cat "$DATA/master.key"
probe database head -c 100 "$DATA/aiops.db"
probe data_dir ls "$DATA"
probe other_worktree cat "$OTHER/secret.txt"
probe service_environ cat "/proc/$SERVICE/environ"
probe postgres bash -c 'exec 3<>/dev/tcp/127.0.0.1/5432 && echo connected'
probe unix_socket /usr/bin/python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); print("connected")' "$SOCKET"
probe postgres_socket psql -h /var/run/postgresql -U postgres -d postgres -Atc "select 'reached'"
probe socket_pair /usr/bin/python3 -c 'import socket; a,b=socket.socketpair(); a.send(b"paired"); print(b.recv(6).decode())'
probe allowed_port bash -c "exec 3<>/dev/tcp/127.0.0.1/$ALLOWED && echo connected"
probe own_worktree bash -c 'echo mine > own.txt && cat own.txt'
probe system_read head -c 20 /etc/passwd
"#
);

/// A hostile agent tries the master key, the SQLite file, the data directory, another
/// task's worktree, the service's environment and the PostgreSQL port: each is denied, and
/// the task's stored text holds none of it. What it needs (its worktree, the system's files,
/// an allowed port) still works.
async fn a_hostile_agent_reaches_no_secret_and_no_store(db: Db) {
    let tools = tempfile::tempdir().unwrap();
    let allowed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let allowed_port = allowed.local_addr().unwrap().port();
    let repo = common::git_repo();
    let other_secret = format!("other-task-secret-{}", common::uuid_like());
    let agent = script(tools.path(), "agent.sh", "");
    let app = agent_app(db, &agent, |c| {
        c.engine.sandbox_connect_ports = vec![443, 22, allowed_port];
    })
    .await;
    let data = app.config.data_dir.clone();
    // A Unix socket outside the agent's paths, listening (a local service's, say).
    let socket_path = tools.path().join("service.sock");
    let _listening = std::os::unix::net::UnixListener::bind(&socket_path).unwrap();
    assert!(
        Path::new("/usr/bin/python3").exists(),
        "the Unix socket probe needs /usr/bin/python3"
    );
    let other = data.join("worktrees/shop/999999");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("secret.txt"), &other_secret).unwrap();
    assert!(
        data.join("master.key").exists(),
        "the vault keeps its key in the data dir"
    );
    script(
        tools.path(),
        "agent.sh",
        &format!(
            "DATA={data}\nOTHER={other}\nSERVICE={pid}\nALLOWED={allowed_port}\nSOCKET={socket}\n{PROBES}",
            data = data.display(),
            other = other.display(),
            pid = std::process::id(),
            socket = socket_path.display(),
        ),
    );

    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let ready: Value = ready.json().await.unwrap();
    assert_eq!(ready["sandbox"]["mode"], "enforced", "{ready}");
    eprintln!(
        "Landlock ABI on this host: {}",
        ready["sandbox"]["landlock_abi"]
    );

    add_project(&app, "shop", repo.path(), json!({})).await;
    let id = create_task(&app, "shop", "probe", "normal").await;
    wait_status(&app, id, &["done", "failed"]).await;
    let text = stored_text(&app, id).await;
    let mut denied = vec![
        "master_key",
        "database",
        "data_dir",
        "other_worktree",
        "service_environ",
        "postgres",
        "unix_socket",
    ];
    if Path::new("/var/run/postgresql/.s.PGSQL.5432").exists() {
        denied.push("postgres_socket");
    }
    for denied in denied {
        assert!(
            text.contains(&format!("PROBE {denied} DENIED")),
            "{denied} was not denied: {text}"
        );
    }
    for open in [
        "allowed_port OPEN connected",
        "own_worktree OPEN mine",
        "system_read OPEN root",
        "socket_pair OPEN paired",
    ] {
        assert!(
            text.contains(&format!("PROBE {open}")),
            "{open} failed: {text}"
        );
    }
    let key = std::fs::read_to_string(data.join("master.key")).unwrap();
    let environ = std::fs::read("/proc/self/environ").unwrap();
    let first_variable = String::from_utf8_lossy(environ.split(|b| *b == 0).next().unwrap());
    for secret in [
        key.trim(),
        &other_secret,
        "SQLite format",
        first_variable.as_ref(),
    ] {
        assert!(!text.contains(secret), "the stored text holds {secret:?}");
    }
}

/// Processes whose command line holds `marker`, from /proc (zombies have none).
fn processes_with(marker: &str) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(marker))
        })
        .collect()
}

/// What `ps` lists with `marker` in its arguments.
fn ps_with(marker: &str) -> Vec<String> {
    let out = std::process::Command::new("ps")
        .args(["-eo", "pid,stat,args"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|line| line.contains(marker) && !line.contains("ps -eo"))
        .map(str::to_owned)
        .collect()
}

/// An agent that leaves a background child and a `setsid` grandchild behind, each a `sleep`
/// whose argument holds `marker`, and then sleeps itself.
fn leaving_agent(dir: &Path, marker: &str) -> PathBuf {
    script(
        dir,
        "leaving.sh",
        &format!(
            "sleep 1000.{marker}1 &\nsetsid -f sleep 1000.{marker}2\nbash -c 'setsid sleep 1000.{marker}3 & sleep 1000.{marker}4' &\nsleep 1000.{marker}5\n"
        ),
    )
}

/// Waits until all five sleeps run, then until none does (and `ps` agrees).
async fn wait_all_started(marker: &str) {
    wait_for("the agent's processes to start", WAIT, || async {
        (processes_with(&format!("1000.{marker}")).len() >= 5).then_some(())
    })
    .await;
}

async fn wait_all_gone(marker: &str) {
    wait_for("every process the agent started to die", WAIT, || async {
        (processes_with(&format!("1000.{marker}")).is_empty()).then_some(())
    })
    .await;
    assert_eq!(ps_with(&format!("1000.{marker}")), Vec::<String>::new());
}

/// `kill -9` of the service leaves no agent process alive, `setsid` ones included.
async fn kill_dash_nine_of_the_service_leaves_no_agent_process(db: Db) {
    let store = FreshDb::new(db).await;
    let data = tempfile::tempdir().unwrap();
    let repo = common::git_repo();
    let marker = format!("{}", 10_000 + rand_digits());
    let agent = leaving_agent(data.path(), &marker);
    let config = data.path().join("aiops.toml");
    std::fs::write(
        &config,
        format!(
            "database_url = {:?}\n[engine]\nworkers = 1\ncommand = \"{} {{prompt}}\"\nqueue_poll_ms = 100\n[inputs]\nlocal_roots = [{:?}]\n",
            store.url,
            agent.display(),
            std::env::temp_dir()
        ),
    )
    .unwrap();
    let mut served = common::child::serve(&config, data.path());
    let token = served.token.clone().expect("admin token on first start");
    let client = reqwest::Client::new();
    let base = served.base.clone();
    let post = |path: &str, body: Value| {
        client
            .post(format!("{base}{path}"))
            .bearer_auth(&token)
            .json(&body)
            .send()
    };
    let created = post(
        "/api/v1/projects",
        json!({"name": "shop", "local_path": repo.path()}),
    )
    .await
    .unwrap();
    assert!(created.status().is_success());
    let task = post(
        "/api/v1/tasks",
        json!({"project": "shop", "prompt": "leave"}),
    )
    .await
    .unwrap();
    assert!(task.status().is_success());
    wait_all_started(&marker).await;

    served.signal(nix::sys::signal::Signal::SIGKILL);
    served.wait_exit(WAIT).await;
    wait_all_gone(&marker).await;
}

/// A cancelled task's processes die, grandchildren that called `setsid` included.
async fn a_cancelled_tasks_grandchildren_die_too(db: Db) {
    let tools = tempfile::tempdir().unwrap();
    let repo = common::git_repo();
    let marker = format!("{}", 10_000 + rand_digits());
    let agent = leaving_agent(tools.path(), &marker);
    let app = agent_app(db, &agent, |_| {}).await;
    add_project(&app, "shop", repo.path(), json!({})).await;
    let id = create_task(&app, "shop", "leave", "normal").await;
    wait_all_started(&marker).await;
    cancel(&app, id).await;
    wait_all_gone(&marker).await;
}

/// The agent of one task: `hold` holds its run open (a process whose arguments carry
/// `marker`, with its project's credential in its environment); `probe` finds that process
/// and tries its environment, its working directory and a signal.
fn neighbour_agent(dir: &Path, marker: &str) -> PathBuf {
    script(
        dir,
        "neighbour.sh",
        &format!(
            r#"if [ "$1" = hold ]; then echo mine > held.txt; exec -a holder-{marker} sleep 600; fi
for p in /proc/[0-9]*; do
  if tr '\0' ' ' < "$p/cmdline" 2>/dev/null | grep -q "[h]older-{marker}"; then HOLDER=${{p#/proc/}}; fi
done
echo "HOLDER $HOLDER"
{probe}
probe other_environ cat "/proc/$HOLDER/environ"
probe other_cwd cat "/proc/$HOLDER/cwd/held.txt"
probe other_root ls "/proc/$HOLDER/root/"
probe other_signal bash -c "kill -0 $HOLDER && echo signalled"
"#,
            probe = probe_fn!()
        ),
    )
}

/// One agent reaches nothing of another project's agent running beside it: not its
/// environment (its credentials), not its worktree through `/proc`, and (Landlock ABI 6 and
/// later) no signal; the prober's stored text holds none of the neighbour's secret.
async fn an_agent_reads_nothing_of_another_running_agent(db: Db) {
    let tools = tempfile::tempdir().unwrap();
    let marker = format!("{}", 10_000 + rand_digits());
    let agent = neighbour_agent(tools.path(), &marker);
    let app = agent_app(db, &agent, |c| {
        c.engine.workers = 2;
        c.engine.max_concurrent_tasks = 2;
    })
    .await;
    let (bank_repo, shop_repo) = (common::git_repo(), common::git_repo());
    add_project(&app, "bank", bank_repo.path(), json!({})).await;
    add_project(&app, "shop", shop_repo.path(), json!({})).await;
    let secret = format!("bank-token-{}", common::uuid_like());
    let credential = json!({"project": "bank", "name": "vault", "kind": "token",
        "env_var": "BANK_TOKEN", "value": secret});
    let stored = app
        .post("/api/v1/credentials")
        .json(&credential)
        .send()
        .await
        .unwrap();
    assert!(stored.status().is_success(), "{:?}", stored.text().await);
    let holder = create_task(&app, "bank", "hold", "normal").await;
    let pid = wait_for("the bank agent to hold its run", WAIT, || async {
        processes_with(&format!("holder-{marker}")).first().copied()
    })
    .await;
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    assert!(
        String::from_utf8_lossy(&environ).contains(&secret),
        "the holder has its credential, so the probe below can fail"
    );

    let prober = create_task(&app, "shop", "probe", "normal").await;
    wait_status(&app, prober, &["done", "failed"]).await;
    let text = stored_text(&app, prober).await;
    assert!(
        text.contains(&format!("HOLDER {pid}")),
        "the prober found the holder: {text}"
    );
    let ready: Value = app.get_json("/readyz").await;
    let abi = ready["sandbox"]["landlock_abi"].as_i64().unwrap_or(0);
    let mut denied = vec!["other_environ", "other_cwd", "other_root"];
    if abi >= 6 {
        denied.push("other_signal");
    }
    for probe in denied {
        assert!(
            text.contains(&format!("PROBE {probe} DENIED")),
            "{probe} was not denied (Landlock ABI {abi}): {text}"
        );
    }
    assert!(
        !text.contains(&secret),
        "the prober's text holds the secret"
    );
    cancel(&app, holder).await;
}

/// When the service runs as root, `engine.run_as_user` runs the agent as that user: `id`
/// says so, it writes in its own worktree (handed to it), and the master key stays out of its
/// reach. Needs root (CI runs as root); elsewhere it says it cannot run and passes.
async fn agents_run_as_the_configured_user_when_the_service_is_root(db: Db) {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("not root: engine.run_as_user cannot be exercised here");
        return;
    }
    let nobody = nix::unistd::User::from_name("nobody")
        .unwrap()
        .expect("user nobody");
    let tools = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tools.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let agent = script(tools.path(), "agent.sh", "");
    let app = agent_app(db, &agent, |c| c.engine.run_as_user = "nobody".into()).await;
    let data = app.config.data_dir.clone();
    script(
        tools.path(),
        "agent.sh",
        &format!(
            "DATA={data}\necho \"AGENT UID $(id -u)\"\n{probe}\nprobe own_worktree bash -c 'echo mine > own.txt && cat own.txt'\nprobe master_key cat \"$DATA/master.key\"\n",
            data = data.display(),
            probe = probe_fn!()
        ),
    );
    let repo = common::git_repo();
    add_project(&app, "shop", repo.path(), json!({})).await;
    let id = create_task(&app, "shop", "who am i", "normal").await;
    wait_status(&app, id, &["done", "failed"]).await;
    let text = stored_text(&app, id).await;
    assert!(
        text.contains(&format!("AGENT UID {}", nobody.uid)),
        "the agent ran as nobody: {text}"
    );
    assert!(text.contains("PROBE own_worktree OPEN mine"), "{text}");
    assert!(text.contains("PROBE master_key DENIED"), "{text}");
    let key = std::fs::read_to_string(data.join("master.key")).unwrap();
    assert!(!text.contains(key.trim()));
}

/// Cancels task `id` through the API and waits until it is cancelled.
async fn cancel(app: &TestApp, id: i64) {
    let cancelled = app
        .post(&format!("/api/v1/tasks/{id}/cancel"))
        .send()
        .await
        .unwrap();
    assert!(cancelled.status().is_success());
    wait_status(app, id, &["cancelled"]).await;
}

fn rand_digits() -> u32 {
    u32::from_str_radix(&common::uuid_like()[..6], 16).unwrap() % 80_000
}

on_both_databases!(
    a_hostile_agent_reaches_no_secret_and_no_store,
    kill_dash_nine_of_the_service_leaves_no_agent_process,
    a_cancelled_tasks_grandchildren_die_too,
    an_agent_reads_nothing_of_another_running_agent,
    agents_run_as_the_configured_user_when_the_service_is_root,
);

/// Where the sandbox cannot be applied, `serve` says so at start and on `/readyz`, and no
/// agent starts; with `engine.sandbox = "off"` agents start again, unconfined.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_do_not_start_where_the_sandbox_cannot_be_applied() {
    let data = tempfile::tempdir().unwrap();
    let repo = common::git_repo();
    let ran = data.path().join("agent-ran");
    let agent = script(
        data.path(),
        "agent.sh",
        &format!(
            "cat {}/master.key > /dev/null && echo read > {}",
            data.path().display(),
            ran.display()
        ),
    );
    let write_config = |sandbox: &str| {
        let config = data.path().join("aiops.toml");
        std::fs::write(
            &config,
            format!(
                "[engine]\nworkers = 1\ncommand = \"{} {{prompt}}\"\nqueue_poll_ms = 100\nsandbox = {sandbox:?}\n[inputs]\nlocal_roots = [{:?}]\n",
                agent.display(),
                std::env::temp_dir()
            ),
        )
        .unwrap();
        config
    };
    let start = |config: &Path| {
        common::child::aiops()
            .args(["serve", "--config"])
            .arg(config)
            .arg("--data-dir")
            .arg(data.path())
            .args(["--listen", "127.0.0.1:0"])
            .env("AIOPS_TEST_SANDBOX_UNSUPPORTED", "1")
            .env("AIOPS_LOG__LEVEL", "error")
            .current_dir(data.path())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let client = reqwest::Client::new();

    let config = write_config("on");
    let mut served = common::child::attach(start(&config), true);
    let token = served.token.clone().unwrap();
    let log = served.log.lock().unwrap().join("\n");
    assert!(log.contains("Agent sandbox: UNAVAILABLE"), "{log}");
    let ready = client
        .get(format!("{}/readyz", served.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    let ready: Value = ready.json().await.unwrap();
    assert_eq!(ready["sandbox"]["mode"], "unavailable");
    assert_eq!(ready["sandbox"]["landlock_abi"], 0);
    assert!(
        ready["reason"]
            .as_str()
            .unwrap()
            .contains("engine.sandbox = \"off\""),
        "{ready}"
    );
    let post = |base: String, path: &'static str, body: Value| {
        client
            .post(format!("{base}{path}"))
            .bearer_auth(&token)
            .json(&body)
            .send()
    };
    let created = post(
        served.base.clone(),
        "/api/v1/projects",
        json!({"name": "shop", "local_path": repo.path()}),
    )
    .await
    .unwrap();
    assert!(created.status().is_success());
    let task: Value = post(
        served.base.clone(),
        "/api/v1/tasks",
        json!({"project": "shop", "prompt": "go"}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let url = format!("{}/api/v1/tasks/{}", served.base, task["id"]);
    let failed = wait_for("the task to be refused", WAIT, || async {
        let detail: Value = client
            .get(&url)
            .bearer_auth(&token)
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        (detail["status"] == "failed").then_some(detail)
    })
    .await;
    assert!(
        failed["status_reason"]
            .to_string()
            .contains("sandbox cannot be applied"),
        "{failed}"
    );
    assert!(!ran.exists(), "no agent ran");
    served.child.kill().unwrap();
    served.wait_exit(WAIT).await;

    let config = write_config("off");
    let mut served = common::child::attach(start(&config), false);
    let log = served.log.lock().unwrap().join("\n");
    assert!(log.contains("Agent sandbox: OFF"), "{log}");
    let ready: Value = client
        .get(format!("{}/readyz", served.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["status"], "ready", "{ready}");
    assert_eq!(ready["sandbox"]["mode"], "off");
    let _ = post(
        served.base.clone(),
        "/api/v1/tasks",
        json!({"project": "shop", "prompt": "go"}),
    )
    .await
    .unwrap();
    wait_for("the unconfined agent to run", WAIT, || async {
        ran.exists().then_some(())
    })
    .await;
    served.child.kill().unwrap();
    served.wait_exit(WAIT).await;
}

//! Several machines on one PostgreSQL, proven with real processes: one `aiops serve` (no
//! workers) and two `aiops worker`s, each with its own data and worktree directory. A worker
//! killed with `kill -9` mid-pipeline has its task finished by the other; a decision posted
//! to the server resumes a pipeline a worker owns; the server's event stream shows what the
//! workers ingest; the global concurrency limit holds across the nodes; and with a
//! `local_path` project shared by two workers on one host, a dead worker's worktree and
//! branch are taken over, never a reason to fail.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{Db, FreshDb, wait_for};
use futures::StreamExt;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(90);
/// Tasks running at once across every node.
const GLOBAL_LIMIT: usize = 2;

/// One `aiops` process with its own data directory.
struct Node {
    child: Child,
    data: PathBuf,
    kind: &'static str,
}

impl Node {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The cluster's shared settings: one database, one master key, one simulator.
struct Cluster {
    db: FreshDb,
    key: String,
    root: tempfile::TempDir,
}

impl Cluster {
    fn config(&self, data: &Path, workers: usize) -> PathBuf {
        let sim = common::simulator();
        let flags =
            "--output-format stream-json --verbose --sim-phase-delay-ms 400 --sim-no-change";
        let text = format!(
            "[engine]\nworkers = {workers}\nmax_concurrent_tasks = {GLOBAL_LIMIT}\n\
             command = \"{sim} -p '/ai-party:party {{prompt}}' {flags}\"\n\
             resume_command = \"{sim} -p {{decision}} --resume {{claude_session_id}} {flags}\"\n\
             heartbeat_secs = 1\nslot_ttl_secs = 2\nslot_wait_secs = 1\nqueue_poll_ms = 200\n\
             env_passthrough = [\"PATH\"]\n\
             [inputs]\nlocal_roots = [{:?}]\nallow_private_targets = true\n",
            std::env::temp_dir(),
            sim = sim.display(),
        );
        std::fs::create_dir_all(data).unwrap();
        let path = data.join("aiops.toml");
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Starts `aiops serve` (no workers); returns it, its base URL and the admin token.
    fn serve(&self) -> (Node, String, String) {
        let data = self.root.path().join("server");
        let config = self.config(&data, 0);
        let mut child = self.command(&config, &data, &["serve", "--listen", "127.0.0.1:0"]);
        let base = wait_line(&mut child, |line| {
            line.split("is listening on ")
                .nth(1)
                .map(|a| a.trim().to_owned())
        });
        let mut token = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut token)
            .unwrap();
        let node = Node {
            child,
            data,
            kind: "serve",
        };
        (node, base, token.trim().to_owned())
    }

    /// Starts `aiops worker` number `n` with two concurrent pipelines.
    fn worker(&self, n: usize) -> Node {
        let data = self.root.path().join(format!("worker {n}"));
        let config = self.config(&data, 2);
        let mut child = self.command(&config, &data, &["worker"]);
        wait_line(&mut child, |line| line.contains("is running").then_some(()));
        Node {
            child,
            data,
            kind: "worker",
        }
    }

    fn command(&self, config: &Path, data: &Path, args: &[&str]) -> Child {
        Command::new(env!("CARGO_BIN_EXE_aiops"))
            .args(&args[..1])
            .arg("--config")
            .arg(config)
            .arg("--data-dir")
            .arg(data)
            .arg("--database-url")
            .arg(&self.db.url)
            .args(&args[1..])
            .env("AIOPS_MASTER_KEY", &self.key)
            .env("AIOPS_LOG__LEVEL", "warn")
            .current_dir(data)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// The pid of the process holding each run of a task, oldest first.
    async fn run_holders(&self, task: i64) -> Vec<u32> {
        let pool = sqlx::PgPool::connect(&self.db.url).await.unwrap();
        let holders: Vec<String> =
            sqlx::query_scalar("SELECT holder FROM runs WHERE task_id = $1 ORDER BY id")
                .bind(task)
                .fetch_all(&pool)
                .await
                .unwrap();
        pool.close().await;
        // A holder is `<host>-<pid>-<suffix>`.
        holders
            .iter()
            .map(|h| h.rsplit('-').nth(1).unwrap().parse().unwrap())
            .collect()
    }
}

/// Reads the child's stderr until `find` recognises a line; the rest is drained.
fn wait_line<T>(child: &mut Child, find: impl Fn(&str) -> Option<T>) -> T {
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let found = lines
        .by_ref()
        .map(|line| line.unwrap())
        .find_map(|line| find(&line))
        .expect("the node did not start");
    std::thread::spawn(move || lines.for_each(drop));
    found
}

/// The API of the server node.
struct Api {
    base: String,
    token: String,
    client: reqwest::Client,
}

impl Api {
    async fn get(&self, path: &str) -> Value {
        self.client
            .get(format!("{}/api/v1{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        let response = self
            .client
            .post(format!("{}/api/v1{path}", self.base))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert!(status.is_success(), "POST {path}: {status} {body:#}");
        body
    }

    async fn task(&self, project: &str, prompt: &str) -> i64 {
        let body = json!({"project": project, "prompt": prompt, "team": "bugfix"});
        self.post("/tasks", body).await["id"].as_i64().unwrap()
    }

    /// Waits until the task has `status` and none of its runs is still going.
    async fn settled(&self, id: i64, status: &str) -> Value {
        wait_for(&format!("task {id} to be {status}"), WAIT, || async {
            let detail = self.get(&format!("/tasks/{id}")).await;
            let runs = detail["runs"].as_array().unwrap();
            let settled = !runs.is_empty() && runs.iter().all(|r| !r["finished_at"].is_null());
            (settled && detail["status"] == status).then_some(detail)
        })
        .await
    }

    /// Waits until the pipeline is well under way (its process runs, tickets are stored).
    async fn under_way(&self, id: i64) {
        wait_for(&format!("task {id} to be under way"), WAIT, || async {
            let detail = self.get(&format!("/tasks/{id}")).await;
            let running = detail["runs"][0]["pid"].as_i64().is_some();
            let tickets = detail["tickets"].as_array().map_or(0, Vec::len);
            (running && tickets >= 2).then_some(())
        })
        .await;
    }
}

/// The worker (of `workers`) whose process holds the task's newest run.
async fn owner(cluster: &Cluster, task: i64, workers: &[&Node]) -> usize {
    let holders = cluster.run_holders(task).await;
    let pid = *holders.last().expect("a run");
    workers
        .iter()
        .position(|w| w.pid() == pid)
        .unwrap_or_else(|| panic!("run held by {pid}, not by a worker"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_share_one_postgresql() {
    let cluster = Cluster {
        db: FreshDb::new(Db::Postgres).await,
        key: aiops::vault::MasterKey::generate().to_base64(),
        root: tempfile::tempdir().unwrap(),
    };
    let origin = common::git_repo();
    let remote = cluster.root.path().join("remote.git");
    let cloned = Command::new("git")
        .args(["clone", "--quiet", "--bare"])
        .arg(origin.path())
        .arg(&remote)
        .status()
        .unwrap();
    assert!(cloned.success());
    let (server, base, token) = cluster.serve();
    assert_eq!(server.kind, "serve");
    let api = Api {
        base,
        token,
        client: reqwest::Client::new(),
    };
    let mut workers = [cluster.worker(1), cluster.worker(2)];
    let url = format!("file://{}", remote.display());
    // Its own limit above the global one: the global limit is the one that binds. The one
    // token here asks for the tasks and decides them.
    let project = json!({"name": "remote", "repo_url": url, "max_concurrency": 4,
        "approval_policy": {"self_approval": true}});
    api.post("/projects", project).await;

    // An event stream on the server, opened before the task exists.
    let after = 0;
    let stream = api
        .client
        .get(format!("{}/api/v1/events/stream?after={after}", api.base))
        .bearer_auth(&api.token)
        .send()
        .await
        .unwrap();
    let id = api.task("remote", "survive a dead node").await;
    let mut body = stream.bytes_stream();
    let mut seen = String::new();
    tokio::time::timeout(WAIT, async {
        while !seen.contains("event: phase_changed") {
            let chunk = body.next().await.expect("stream open").unwrap();
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
    })
    .await
    .expect("the server's stream shows a phase change a worker ingested");

    // kill -9 of the worker running it: the other one finishes it.
    api.under_way(id).await;
    let first = owner(&cluster, id, &[&workers[0], &workers[1]]).await;
    workers[first].kill();
    let detail = api.settled(id, "awaiting_approval").await;
    let runs = detail["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2, "{runs:#?}");
    assert_eq!(runs[1]["kind"], "recover");
    let survivor = 1 - first;
    assert_eq!(
        owner(&cluster, id, &[&workers[0], &workers[1]]).await,
        survivor
    );

    // A decision posted to the server resumes the pipeline on the worker that owns it (the
    // worktree and the agent's conversation live on that machine).
    let approval = wait_for("the pending approval", WAIT, || async {
        let page = api
            .get(&format!("/approvals?task={id}&status=pending"))
            .await;
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| !a["snapshot_at"].is_null())
            .and_then(|a| a["id"].as_i64())
    })
    .await;
    api.post(
        &format!("/approvals/{approval}/decision"),
        json!({"decision": "approve"}),
    )
    .await;
    let done = api.settled(id, "done").await;
    assert_eq!(done["runs"].as_array().unwrap().len(), 3);
    assert_eq!(
        owner(&cluster, id, &[&workers[0], &workers[1]]).await,
        survivor
    );

    workers[first] = cluster.worker(first + 1);

    global_limit_holds(&api).await;
    local_path_takeover(&cluster, &api, &mut workers).await;
    drop(server);
}

/// Five tasks on two workers of two pipelines each: never more than the global limit at once.
async fn global_limit_holds(api: &Api) {
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(api.task("remote", &format!("parallel {i}")).await);
    }
    let mut points = Vec::new();
    for id in ids {
        let detail = api.settled(id, "awaiting_approval").await;
        for run in detail["runs"].as_array().unwrap() {
            let at = |key: &str| {
                chrono::DateTime::parse_from_rfc3339(run[key].as_str().unwrap()).unwrap()
            };
            points.push((at("started_at"), 1));
            points.push((at("finished_at"), -1));
        }
    }
    points.sort();
    let (mut now, mut max) = (0, 0);
    for (_, delta) in points {
        now += delta;
        max = max.max(now);
    }
    println!("most pipelines at once across the nodes: {max}");
    assert!(max <= GLOBAL_LIMIT as i32, "{max} ran at once");
    assert_eq!(
        max, GLOBAL_LIMIT as i32,
        "the workers never ran side by side"
    );
}

/// Two workers on one host and a `local_path` project: the worker running a task dies; the
/// other takes its worktree and branch over (before: "'aiops/bugfix/<id>' is already used by
/// worktree at …") and finishes the task.
async fn local_path_takeover(cluster: &Cluster, api: &Api, workers: &mut [Node; 2]) {
    let repo = common::git_repo();
    api.post(
        "/projects",
        json!({"name": "local", "local_path": repo.path()}),
    )
    .await;
    let id = api.task("local", "take my worktree over").await;
    api.under_way(id).await;
    let first = owner(cluster, id, &[&workers[0], &workers[1]]).await;
    workers[first].kill();
    let detail = api.settled(id, "awaiting_approval").await;
    let runs = detail["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2, "{runs:#?}");
    assert_eq!(runs[1]["status"], "succeeded", "{runs:#?}");
    assert_eq!(
        owner(cluster, id, &[&workers[0], &workers[1]]).await,
        1 - first
    );
    let taken = workers[1 - first]
        .data
        .join("worktrees/local")
        .join(id.to_string());
    assert!(
        taken.join(".party").exists(),
        "the worktree moved with its files"
    );
}

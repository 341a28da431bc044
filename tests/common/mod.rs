//! Shared test support: fresh stores on both databases and the real application on a
//! random loopback port.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use aiops::config::Config;
use aiops::store::Store;

pub mod browser;
pub mod chat;
pub mod child;
pub mod pages;
pub mod people;
pub mod pipeline;
pub mod providers;
pub mod scale;
pub mod stand_in;

/// A file of ../shared/fixtures.
pub fn fixture(path: &str) -> Vec<u8> {
    std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/fixtures")
            .join(path),
    )
    .unwrap_or_else(|e| panic!("fixture {path}: {e}"))
}

/// A JSON file of ../shared/fixtures.
pub fn fixture_json(path: &str) -> serde_json::Value {
    serde_json::from_slice(&fixture(path)).unwrap()
}

/// PostgreSQL used when AIOPS_TEST_DATABASE_URL is not set (the CI machine's server).
pub const DEFAULT_TEST_PG: &str = "postgres://postgres@127.0.0.1:5432/test";

/// Which database a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// A fresh, empty database: a SQLite file in a temp dir, or a new PostgreSQL database
/// that is dropped when this value is.
pub struct FreshDb {
    pub url: String,
    pub dir: tempfile::TempDir,
    pg_cleanup: Option<(String, String)>,
}

impl FreshDb {
    pub async fn new(db: Db) -> FreshDb {
        let dir = tempfile::tempdir().expect("temp dir");
        match db {
            Db::Sqlite => FreshDb {
                url: format!(
                    "sqlite://{}?mode=rwc",
                    dir.path().join("aiops.db").display()
                ),
                dir,
                pg_cleanup: None,
            },
            Db::Postgres => {
                let admin_url = std::env::var("AIOPS_TEST_DATABASE_URL")
                    .unwrap_or_else(|_| DEFAULT_TEST_PG.to_string());
                let name = format!("aiops_t_{}", uuid_like());
                let admin = sqlx::PgPool::connect(&admin_url).await.unwrap_or_else(|e| {
                    panic!("PostgreSQL at {admin_url} is unreachable ({e}); start it or set AIOPS_TEST_DATABASE_URL")
                });
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&admin)
                    .await
                    .expect("create test database");
                admin.close().await;
                let mut url =
                    url::Url::parse(&admin_url).expect("AIOPS_TEST_DATABASE_URL is a URL");
                url.set_path(&format!("/{name}"));
                FreshDb {
                    url: url.to_string(),
                    dir,
                    pg_cleanup: Some((admin_url, name)),
                }
            }
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// A config pointing at this database and a data dir of its own.
    pub fn config(&self) -> Config {
        let mut config = Config {
            data_dir: self.data_dir(),
            database_url: self.url.clone(),
            listen: "127.0.0.1:0".into(),
            ..Default::default()
        };
        config.store.max_connections = 8;
        config.inputs = test_inputs();
        // Webhook tests send storms from one address; tests/intake.rs checks the limit.
        config.intake.webhook_burst = 100_000;
        config.intake.webhook_per_second = 100_000;
        // API tests run no pipelines; engine tests turn workers on.
        config.engine.workers = 0;
        // The engine starts agents through the binary's `agent-shim`; this process is the
        // test binary.
        config.engine.shim_program = PathBuf::from(env!("CARGO_BIN_EXE_aiops"));
        config
    }

    /// A migrated store on this database.
    pub async fn store(&self) -> Store {
        aiops::server::open_store(&self.config())
            .await
            .expect("open store")
    }
}

impl Drop for FreshDb {
    fn drop(&mut self) {
        if let Some((admin_url, name)) = self.pg_cleanup.take() {
            // Best effort, on a thread of its own: Drop cannot be async.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    if let Ok(admin) = sqlx::PgPool::connect(&admin_url).await {
                        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                        )))
                        .execute(&admin)
                        .await;
                    }
                });
            })
            .join();
        }
    }
}

/// What the tests' configs let in: repositories in temp dirs, stand-in servers on loopback.
pub fn test_inputs() -> aiops::config::InputsConfig {
    aiops::config::InputsConfig {
        local_roots: vec![std::env::temp_dir()],
        allow_private_targets: true,
    }
}

/// Waits until `check` returns Some, polling every 25 ms, or panics after `deadline`
/// naming `what`.
pub async fn wait_for<T, F, Fut>(what: &str, deadline: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let until = tokio::time::Instant::now() + deadline;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if tokio::time::Instant::now() > until {
            panic!("timed out after {deadline:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Path of the pipeline simulator example binary. A plain `cargo test` builds it; a
/// filtered run (`cargo test --test engine`) builds it here once.
pub fn simulator() -> PathBuf {
    static BUILT: std::sync::Once = std::sync::Once::new();
    let exe = std::env::current_exe().expect("test exe");
    let target = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target dir");
    let sim = target.join("examples").join("party_sim");
    BUILT.call_once(|| {
        if !sim.exists() {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let status = std::process::Command::new(cargo)
                .args(["build", "--example", "party_sim"])
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .status()
                .expect("run cargo");
            assert!(status.success(), "building the simulator failed");
        }
    });
    assert!(
        sim.exists(),
        "{} is missing; build it with `cargo build --examples`",
        sim.display()
    );
    sim
}

/// A random lower-case hex id.
pub fn uuid_like() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 8];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// The real application, serving on a random loopback port.
pub struct TestApp {
    pub base: String,
    pub token: String,
    pub client: reqwest::Client,
    pub store: Store,
    pub config: Arc<Config>,
    pub teams: Arc<aiops::teams::Teams>,
    pub db: FreshDb,
    pub engine: std::sync::Arc<aiops::engine::Engine>,
    /// The app's vault, to sign approval links as notifications do.
    pub vault: aiops::vault::Vault,
    workers: Option<aiops::server::Workers>,
    notifications: Option<aiops::server::Workers>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl TestApp {
    pub async fn spawn(db: Db) -> TestApp {
        Self::spawn_with(db, |_| {}).await
    }

    pub async fn spawn_with(db: Db, adjust: impl FnOnce(&mut Config)) -> TestApp {
        // AIOPS_TEST_LOG=aiops=debug shows the server's log in failing tests.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(std::env::var("AIOPS_TEST_LOG").unwrap_or_else(|_| "off".into()))
            .with_test_writer()
            .try_init();
        let db = FreshDb::new(db).await;
        let mut config = db.config();
        adjust(&mut config);
        let started = aiops::server::start(config).await.expect("start");
        let token = started
            .admin_token
            .clone()
            .expect("admin token on an empty store");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let store = started.state.store.clone();
        let config = started.state.config.clone();
        let teams = started.state.teams.clone();
        let engine = started.state.engine.clone();
        let vault = started.state.vault.clone();
        let workers = started.workers;
        let notifications = started.notifications;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(aiops::http::serve(listener, started.state, async {
            let _ = rx.await;
        }));
        TestApp {
            base,
            token,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            store,
            config,
            teams,
            db,
            engine,
            vault,
            workers,
            notifications,
            shutdown: Some(tx),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A request with the admin token.
    pub fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, self.url(path))
            .bearer_auth(&self.token)
    }

    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.req(reqwest::Method::GET, path)
    }

    pub fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.req(reqwest::Method::POST, path)
    }

    /// Stops the app's queue workers the way a Ctrl-C does; false if that took longer than
    /// `deadline`.
    pub async fn stop_workers(&mut self, deadline: Duration) -> bool {
        let Some(workers) = self.workers.take() else {
            return true;
        };
        tokio::time::timeout(deadline, workers.stop()).await.is_ok()
    }

    /// GET `path` with the admin token: 200, as JSON.
    pub async fn get_json(&self, path: &str) -> serde_json::Value {
        let response = self.get(path).send().await.expect("GET");
        assert_eq!(response.status(), reqwest::StatusCode::OK, "GET {path}");
        response.json().await.expect("a JSON answer")
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        for workers in [self.workers.take(), self.notifications.take()]
            .into_iter()
            .flatten()
        {
            workers.shutdown.cancel();
        }
    }
}

/// A real git repository with one commit, in a temp dir.
pub fn git_repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let git = |args: &[&str]| {
        let status = std::process::Command::new("git")
            .args(args)
            .current_dir(dir.path())
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.com")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.com")
            .output()
            .unwrap();
        assert!(
            status.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&status.stderr)
        );
    };
    git(&["init", "-q", "-b", "main"]);
    std::fs::write(dir.path().join("README.md"), "hello\n").unwrap();
    git(&["add", "."]);
    git(&["commit", "-q", "-m", "init"]);
    dir
}

/// Generates one `#[tokio::test]` per database for an `async fn(Db)` test body.
#[macro_export]
macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Db::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Db::Postgres).await
                }
            )*
        }
    };
}

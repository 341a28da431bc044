//! Acceptance tests of the vault: plaintext never reaches the database, a sealed value is
//! bound to its row, and key rotation (in-process and through the real CLI) re-encrypts
//! everything under a new key that alone opens the store. On SQLite and PostgreSQL.

mod common;

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use aiops::config::Config;
use aiops::credentials::{self, CredentialKind, NewCredential};
use aiops::projects::{NewProject, Project};
use aiops::store::Store;
use aiops::vault::{KeySource, MasterKey, Vault, VaultError};
use common::{Db, FreshDb};

const DEADLINE: Duration = Duration::from_secs(30);

fn random_hex(bytes: usize) -> String {
    use rand::RngCore;
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    hex::encode(buf)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The in-process tests read the key from the key file; a master key in the test's own
/// environment would take precedence and make them test something else.
fn assert_no_env_key() {
    assert!(
        std::env::var_os("AIOPS_MASTER_KEY").is_none(),
        "unset AIOPS_MASTER_KEY to run the vault tests"
    );
}

/// A second connection to the same database, for the raw SQL a test uses to look at or
/// tamper with what the store wrote.
enum Raw {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

macro_rules! with_raw {
    ($raw:expr, $pool:ident => $body:expr) => {
        match $raw {
            Raw::Sqlite($pool) => $body,
            Raw::Postgres($pool) => $body,
        }
    };
}

impl Raw {
    async fn connect(db: &FreshDb) -> Raw {
        if db.url.starts_with("sqlite:") {
            Raw::Sqlite(
                sqlx::SqlitePool::connect(&db.url)
                    .await
                    .expect("raw SQLite pool"),
            )
        } else {
            Raw::Postgres(
                sqlx::PgPool::connect(&db.url)
                    .await
                    .expect("raw PostgreSQL pool"),
            )
        }
    }

    async fn sealed(&self, id: i64) -> (Vec<u8>, Vec<u8>) {
        with_raw!(self, pool => sqlx::query_as::<_, (Vec<u8>, Vec<u8>)>(
            "SELECT ciphertext, nonce FROM credentials WHERE id = $1")
            .bind(id)
            .fetch_one(pool)
            .await
            .expect("read a sealed row"))
    }

    async fn set_sealed(&self, id: i64, (ciphertext, nonce): &(Vec<u8>, Vec<u8>)) {
        let done = with_raw!(self, pool => sqlx::query(
            "UPDATE credentials SET ciphertext = $2, nonce = $3 WHERE id = $1")
            .bind(id)
            .bind(ciphertext)
            .bind(nonce)
            .execute(pool)
            .await
            .expect("write a sealed row")
            .rows_affected());
        assert_eq!(done, 1);
    }

    /// Swaps ciphertext and nonce of two rows.
    async fn swap(&self, a: i64, b: i64) {
        let (sealed_a, sealed_b) = (self.sealed(a).await, self.sealed(b).await);
        self.set_sealed(a, &sealed_b).await;
        self.set_sealed(b, &sealed_a).await;
    }

    async fn ciphertexts(&self) -> Vec<Vec<u8>> {
        with_raw!(self, pool => sqlx::query_scalar::<_, Vec<u8>>("SELECT ciphertext FROM credentials ORDER BY id")
            .fetch_all(pool)
            .await
            .expect("read ciphertexts"))
    }

    /// Every row of every table of the database, as text (PostgreSQL only).
    async fn pg_dump_text(&self) -> String {
        let Raw::Postgres(pool) = self else {
            panic!("pg_dump_text on SQLite")
        };
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT table_name::text FROM information_schema.tables
             WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'",
        )
        .fetch_all(pool)
        .await
        .unwrap();
        assert!(tables.iter().any(|t| t == "credentials"), "{tables:?}");
        let mut dump = String::new();
        for table in tables {
            let rows: String = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT COALESCE(string_agg(t::text, E'\\n'), '') FROM \"{table}\" t"
            )))
            .fetch_one(pool)
            .await
            .unwrap();
            dump.push_str(&rows);
            dump.push('\n');
        }
        dump
    }

    async fn close(&self) {
        with_raw!(self, pool => pool.close().await)
    }
}

async fn add_project(store: &Store, name: &str, repo: &Path) -> Project {
    let spec = NewProject {
        name: name.into(),
        local_path: Some(repo.to_str().unwrap().into()),
        ..Default::default()
    }
    .into_spec(&common::test_inputs())
    .expect("valid project");
    store.insert_project(&spec).await.expect("insert project")
}

async fn put(store: &Store, vault: &Vault, project: Option<&str>, name: &str, value: &str) -> i64 {
    credentials::store_credential(
        store,
        vault,
        &aiops::config::Config::default(),
        &aiops::auth::Principal::cli(),
        NewCredential {
            project: project.map(str::to_string),
            name: name.into(),
            kind: CredentialKind::ApiKey,
            env_var: None,
            value: value.into(),
        },
        false,
    )
    .await
    .expect("store credential")
    .id
}

/// (name, value) of what an agent of `project_id` gets, sorted.
async fn revealed(
    store: &Store,
    vault: &Vault,
    project_id: i64,
) -> aiops::Result<Vec<(String, String)>> {
    let mut out: Vec<(String, String)> = credentials::reveal_for_project(store, vault, project_id)
        .await?
        .into_iter()
        .map(|(_, value, name)| (name, value))
        .collect();
    out.sort();
    Ok(out)
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = items
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    out.sort();
    out
}

fn read_if_exists(path: &Path) -> Option<Vec<u8>> {
    match std::fs::read(path) {
        Ok(bytes) => Some(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => panic!("read {}: {e}", path.display()),
    }
}

/// The bytes of the SQLite database and its -wal and -shm files, those that exist.
fn sqlite_bytes(dir: &Path) -> Vec<(String, Vec<u8>)> {
    ["aiops.db", "aiops.db-wal", "aiops.db-shm"]
        .iter()
        .filter_map(|name| read_if_exists(&dir.join(name)).map(|bytes| (name.to_string(), bytes)))
        .collect()
}

/// Asserts `secret` is nowhere in what the database holds, and that `marker` (a value that
/// is stored in clear) is, so the search is known to look at the right data.
async fn assert_not_stored(db: &FreshDb, raw: &Raw, secret: &str, marker: &str) {
    for ciphertext in raw.ciphertexts().await {
        assert!(
            !contains(&ciphertext, secret.as_bytes()),
            "plaintext in the ciphertext column"
        );
    }
    match raw {
        Raw::Sqlite(_) => {
            let files = sqlite_bytes(&db.data_dir());
            assert!(
                files.iter().any(|(name, _)| name == "aiops.db"),
                "no database file"
            );
            for (name, bytes) in &files {
                assert!(
                    !contains(bytes, secret.as_bytes()),
                    "the plaintext is in {name}"
                );
            }
            assert!(
                files
                    .iter()
                    .any(|(_, bytes)| contains(bytes, marker.as_bytes())),
                "the credential name should be in the database files"
            );
        }
        Raw::Postgres(_) => {
            let dump = raw.pg_dump_text().await;
            assert!(!dump.contains(secret), "the plaintext is in a column");
            assert!(
                !dump.contains(&hex::encode(secret)),
                "the plaintext is in a bytea column"
            );
            assert!(
                dump.contains(marker),
                "the credential name should be in the dump"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// A. Plaintext never reaches the database
// ---------------------------------------------------------------------------------------

async fn plaintext_is_not_stored(kind: Db) {
    assert_no_env_key();
    let db = FreshDb::new(kind).await;
    let config = db.config();
    let store = db.store().await;
    let (vault, _, generated) = aiops::server::open_vault(&config, &store, true)
        .await
        .expect("vault");
    assert_eq!(generated, Some(config.key_file()));
    let repo = common::git_repo();
    let project = add_project(&store, "shop", repo.path()).await;

    let secret = random_hex(20);
    let global_secret = random_hex(20);
    let name = format!("probe-{}", random_hex(6));
    put(&store, &vault, Some("shop"), &name, &secret).await;
    put(&store, &vault, None, "global-probe", &global_secret).await;
    assert_eq!(
        revealed(&store, &vault, project.id).await.expect("reveal"),
        pairs(&[(&name, &secret), ("global-probe", &global_secret)])
    );

    let raw = Raw::connect(&db).await;
    // While the store is open (SQLite: the rows are still in the WAL) ...
    assert_not_stored(&db, &raw, &secret, &name).await;
    assert_not_stored(&db, &raw, &global_secret, "global-probe").await;
    // ... and after everything is closed and checkpointed into the main file.
    raw.close().await;
    store.close().await;
    let raw = Raw::connect(&db).await;
    assert_not_stored(&db, &raw, &secret, &name).await;
    assert_not_stored(&db, &raw, &global_secret, "global-probe").await;
    raw.close().await;
}

// ---------------------------------------------------------------------------------------
// B. A sealed value is bound to its row
// ---------------------------------------------------------------------------------------

async fn swapped_ciphertexts_fail_to_decrypt(kind: Db) {
    assert_no_env_key();
    let db = FreshDb::new(kind).await;
    let config = db.config();
    let store = db.store().await;
    let (vault, _, _) = aiops::server::open_vault(&config, &store, true)
        .await
        .expect("vault");
    let repo = common::git_repo();
    let shop = add_project(&store, "shop", repo.path()).await;
    let blog = add_project(&store, "blog", repo.path()).await;

    let a = put(&store, &vault, Some("shop"), "alpha", "value-of-alpha").await;
    let b = put(&store, &vault, Some("shop"), "beta", "value-of-beta").await;
    let global = put(&store, &vault, None, "deploy", "global-deploy").await;
    let blog_deploy = put(&store, &vault, Some("blog"), "deploy", "blog-deploy").await;
    let shop_expected = pairs(&[
        ("alpha", "value-of-alpha"),
        ("beta", "value-of-beta"),
        ("deploy", "global-deploy"),
    ]);
    let blog_expected = pairs(&[("deploy", "blog-deploy"), ("deploy", "global-deploy")]);
    assert_eq!(
        revealed(&store, &vault, shop.id).await.unwrap(),
        shop_expected
    );
    assert_eq!(
        revealed(&store, &vault, blog.id).await.unwrap(),
        blog_expected
    );

    let raw = Raw::connect(&db).await;
    let original_a = raw.sealed(a).await;
    let original_b = raw.sealed(b).await;

    // Two names in one project.
    raw.swap(a, b).await;
    let err = revealed(&store, &vault, shop.id)
        .await
        .expect_err("swapped values must not decrypt");
    assert!(err.to_string().contains("failed to decrypt"), "{err}");
    raw.swap(a, b).await;
    assert_eq!(
        revealed(&store, &vault, shop.id).await.unwrap(),
        shop_expected
    );

    // The same name in two scopes (global and a project).
    raw.swap(global, blog_deploy).await;
    let err = revealed(&store, &vault, blog.id)
        .await
        .expect_err("moved between scopes");
    assert!(err.to_string().contains("failed to decrypt"), "{err}");
    raw.swap(global, blog_deploy).await;
    assert_eq!(
        revealed(&store, &vault, blog.id).await.unwrap(),
        blog_expected
    );

    // A copy of a row's ciphertext onto another row.
    raw.set_sealed(b, &original_a).await;
    assert!(
        revealed(&store, &vault, shop.id).await.is_err(),
        "a copied value must not decrypt"
    );

    raw.set_sealed(b, &original_b).await;
    assert_eq!(
        revealed(&store, &vault, shop.id).await.unwrap(),
        shop_expected
    );

    // A flipped bit, in the ciphertext or in the nonce.
    let mut tampered = original_a.clone();
    tampered.0[0] ^= 1;
    raw.set_sealed(a, &tampered).await;
    assert!(
        revealed(&store, &vault, shop.id).await.is_err(),
        "a changed ciphertext must not decrypt"
    );
    let mut tampered = original_a.clone();
    tampered.1[0] ^= 1;
    raw.set_sealed(a, &tampered).await;
    assert!(
        revealed(&store, &vault, shop.id).await.is_err(),
        "a changed nonce must not decrypt"
    );
    raw.set_sealed(a, &original_a).await;
    assert_eq!(
        revealed(&store, &vault, shop.id).await.unwrap(),
        shop_expected
    );
    raw.close().await;
    store.close().await;
}

// ---------------------------------------------------------------------------------------
// D. Rotation in-process, on both databases
// ---------------------------------------------------------------------------------------

fn key_in(path: &Path) -> MasterKey {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    MasterKey::from_base64(&text, "test").expect("a key")
}

fn next_path(key_file: &Path) -> PathBuf {
    PathBuf::from(format!("{}.next", key_file.display()))
}

async fn key_versions(store: &Store) -> Vec<i64> {
    store
        .list_credentials(None)
        .await
        .unwrap()
        .iter()
        .map(|c| c.key_version)
        .collect()
}

async fn rotation_reencrypts_everything_under_a_new_key(kind: Db) {
    assert_no_env_key();
    let db = FreshDb::new(kind).await;
    let config = db.config();
    let key_file = config.key_file();
    let store = db.store().await;
    let (vault, source, _) = aiops::server::open_vault(&config, &store, true)
        .await
        .expect("vault");
    assert_eq!(source, KeySource::File(key_file.clone()));
    assert_eq!(vault.key_version(), 1);
    let repo = common::git_repo();
    let shop = add_project(&store, "shop", repo.path()).await;
    let values = [random_hex(20), random_hex(20), random_hex(20)];
    put(&store, &vault, Some("shop"), "one", &values[0]).await;
    put(&store, &vault, Some("shop"), "two", &values[1]).await;
    put(&store, &vault, None, "global", &values[2]).await;
    let expected = pairs(&[
        ("one", &values[0]),
        ("two", &values[1]),
        ("global", &values[2]),
    ]);
    let old_key = key_in(&key_file);
    let raw = Raw::connect(&db).await;
    let old_ciphertexts = raw.ciphertexts().await;

    let (rotated, new_key) = vault.rotate(&store, &source).await.expect("rotate");
    assert_eq!(rotated.key_version(), 2);
    assert_ne!(new_key, old_key);
    assert_eq!(key_in(&key_file), new_key, "the key file holds the new key");
    assert!(
        !next_path(&key_file).exists(),
        "the parked key was moved into place"
    );
    assert_eq!(
        std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(key_versions(&store).await, vec![2, 2, 2]);
    assert_eq!(
        store.current_vault_key().await.unwrap().map(|(v, _)| v),
        Some(2)
    );
    let new_ciphertexts = raw.ciphertexts().await;
    for (old, new) in old_ciphertexts.iter().zip(&new_ciphertexts) {
        assert_ne!(old, new, "every value was resealed");
    }
    for value in &values {
        assert_not_stored(&db, &raw, value, "global").await;
    }

    assert_eq!(revealed(&store, &rotated, shop.id).await.unwrap(), expected);
    assert!(
        revealed(&store, &vault, shop.id).await.is_err(),
        "the old key opens nothing"
    );
    match Vault::unlock(&store, old_key.clone(), &KeySource::Env).await {
        Err(VaultError::WrongKey { version, .. }) => assert_eq!(version, 2),
        other => panic!("the old key must be refused, got {other:?}"),
    }
    let (reopened, _, generated) = aiops::server::open_vault(&config, &store, true)
        .await
        .expect("reopen");
    assert_eq!((reopened.key_version(), generated), (2, None));
    assert_eq!(
        revealed(&store, &reopened, shop.id).await.unwrap(),
        expected
    );

    // A crash after the commit but before the key file was replaced: the old key is still
    // in the file and the new one parked beside it. The next start finishes the rotation.
    aiops::vault::write_key_file(&key_file, &old_key).unwrap();
    aiops::vault::write_key_file(&next_path(&key_file), &new_key).unwrap();
    let (recovered, _, _) = aiops::server::open_vault(&config, &store, false)
        .await
        .expect("recover");
    assert_eq!(recovered.key_version(), 2);
    assert_eq!(key_in(&key_file), new_key);
    assert!(!next_path(&key_file).exists());
    assert_eq!(
        revealed(&store, &recovered, shop.id).await.unwrap(),
        expected
    );

    // Rotating again goes to version 3.
    let (third, third_key) = recovered
        .rotate(&store, &source)
        .await
        .expect("rotate again");
    assert_eq!(third.key_version(), 3);
    assert_eq!(key_in(&key_file), third_key);
    assert_eq!(key_versions(&store).await, vec![3, 3, 3]);
    assert_eq!(revealed(&store, &third, shop.id).await.unwrap(), expected);
    raw.close().await;
    store.close().await;
}

async fn failed_rotation_changes_nothing(kind: Db) {
    assert_no_env_key();
    let db = FreshDb::new(kind).await;
    let config = db.config();
    let key_file = config.key_file();
    let store = db.store().await;
    let (vault, source, _) = aiops::server::open_vault(&config, &store, true)
        .await
        .expect("vault");
    let repo = common::git_repo();
    let shop = add_project(&store, "shop", repo.path()).await;
    let first = put(&store, &vault, Some("shop"), "one", "value-one").await;
    let second = put(&store, &vault, Some("shop"), "two", "value-two").await;
    let old_key = key_in(&key_file);
    let raw = Raw::connect(&db).await;
    let good_second = raw.sealed(second).await;
    let good_first = raw.sealed(first).await;

    // The second row cannot be opened, so the rotation must fail after resealing the first.
    let mut tampered = good_second.clone();
    tampered.0[0] ^= 1;
    raw.set_sealed(second, &tampered).await;
    match vault.rotate(&store, &source).await {
        Err(VaultError::Decrypt) => {}
        other => panic!("rotation over a damaged value must fail, got {other:?}"),
    }
    assert_eq!(key_in(&key_file), old_key, "the key file is untouched");
    assert_eq!(
        store.current_vault_key().await.unwrap().map(|(v, _)| v),
        Some(1)
    );
    assert_eq!(key_versions(&store).await, vec![1, 1]);
    assert_eq!(
        raw.sealed(first).await,
        good_first,
        "the first row was rolled back"
    );

    raw.set_sealed(second, &good_second).await;
    let (reopened, _, _) = aiops::server::open_vault(&config, &store, false)
        .await
        .expect("old key still opens");
    assert_eq!(reopened.key_version(), 1);
    assert_eq!(
        revealed(&store, &reopened, shop.id).await.unwrap(),
        pairs(&[("one", "value-one"), ("two", "value-two")])
    );
    let (rotated, _) = reopened
        .rotate(&store, &source)
        .await
        .expect("rotation after the repair");
    assert_eq!(rotated.key_version(), 2);
    assert_eq!(key_versions(&store).await, vec![2, 2]);
    raw.close().await;
    store.close().await;
}

/// An agent script that prints `$DEPLOY_TOKEN` and the master key file in the encodings a
/// hostile agent would try: plain, upper case, base64 at two alignments, base64url, hex and
/// URL-encoded.
fn encoding_agent(key_file: &Path) -> String {
    let script = r#"
v="$DEPLOY_TOKEN"; k="$(cat "$1")"
echo "plain $v"
echo "upper $(printf %s "$v" | tr a-z A-Z)"
echo "b64 $(printf %s "$v" | base64 -w0)"
echo "b64-shifted $(printf 'x%s' "$v" | base64 -w0)"
echo "b64url $(printf 'yz%s' "$v" | base64 -w0 | tr '+/' '-_')"
echo "hex $(printf %s "$v" | od -An -v -tx1 | tr -d ' \n')"
echo "url $(printf %s "$v" | od -An -v -tx1 | tr -d '\n' | tr ' ' '%')"
echo "key $k"
echo "key-b64 $(printf %s "$k" | base64 -w0)"
echo "key-hex $(printf %s "$k" | base64 -d | od -An -v -tx1 | tr -d ' \n')"
"#;
    format!(
        "/bin/sh -c {} agent {}",
        shell_words::quote(script),
        shell_words::quote(&key_file.display().to_string())
    )
}

async fn encoded_secrets_are_not_stored(kind: Db) {
    assert_no_env_key();
    let repo = common::git_repo();
    let secret = format!("Dep/loy+{}", random_hex(12));
    let data_dir = tempfile::tempdir().unwrap();
    let key_file = data_dir.path().join("master.key");
    let command = encoding_agent(&key_file);
    let app = common::TestApp::spawn_with(kind, |c| {
        c.data_dir = data_dir.path().to_path_buf();
        c.engine.workers = 1;
        c.engine.command = command;
        c.engine.queue_poll_ms = 100;
        c.engine.ingest_interval_ms = 100;
        c.engine.env_passthrough = vec!["PATH".into()];
        // The agent reads the master key to print it in every encoding: redaction is the last
        // line of defence, tested here without the sandbox that keeps the key out of reach
        // (tests/sandbox.rs shows that read refused).
        c.engine.sandbox = aiops::config::SandboxMode::Off;
    })
    .await;
    let key = std::fs::read_to_string(&key_file)
        .unwrap()
        .trim()
        .to_string();
    common::pipeline::add_project(&app, "shop", repo.path(), serde_json::json!({})).await;
    let created = app
        .post("/api/v1/credentials")
        .json(&serde_json::json!({"project": "shop", "name": "deploy", "kind": "token", "env_var": "DEPLOY_TOKEN", "value": secret}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), reqwest::StatusCode::CREATED);
    let id = common::pipeline::create_task(&app, "shop", "print it", "normal").await;
    common::pipeline::wait_status(&app, id, &["done", "failed"]).await;
    let log: Vec<String> = match app.store.pool() {
        aiops::store::Pool::Sqlite(p) => sqlx::query_scalar("SELECT COALESCE(log, '') FROM runs")
            .fetch_all(p)
            .await
            .unwrap(),
        aiops::store::Pool::Postgres(p) => sqlx::query_scalar("SELECT COALESCE(log, '') FROM runs")
            .fetch_all(p)
            .await
            .unwrap(),
    };
    let stored = log.concat();
    let line = |label: &str| {
        stored
            .lines()
            .find(|l| l.starts_with(&format!("{label} ")))
            .unwrap_or_else(|| panic!("the agent printed {label}: {stored}"))
            .to_string()
    };
    for label in [
        "plain",
        "upper",
        "b64",
        "b64-shifted",
        "b64url",
        "hex",
        "url",
    ] {
        assert!(line(label).contains("[REDACTED:deploy]"), "{stored}");
    }
    for label in ["key", "key-b64", "key-hex"] {
        assert!(line(label).contains("[REDACTED:master_key]"), "{stored}");
    }
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD_NO_PAD;
    for form in [
        secret.clone(),
        secret.to_uppercase(),
        b64.encode(&secret),
        hex::encode(&secret),
        key.clone(),
        b64.encode(&key),
        hex::encode(
            base64::engine::general_purpose::STANDARD
                .decode(&key)
                .unwrap(),
        ),
    ] {
        assert!(!stored.contains(&form), "{form} was stored: {stored}");
    }
}

on_both_databases!(
    plaintext_is_not_stored,
    encoded_secrets_are_not_stored,
    swapped_ciphertexts_fail_to_decrypt,
    rotation_reencrypts_everything_under_a_new_key,
    failed_rotation_changes_nothing,
);

// ---------------------------------------------------------------------------------------
// C. Rotation through the real CLI
// ---------------------------------------------------------------------------------------

/// `aiops <args> [--data-dir <data>]` in `cwd`, with no `AIOPS_*` variable from the caller.
fn aiops(cwd: &Path, data: Option<&Path>, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_aiops"));
    cmd.current_dir(cwd).args(args);
    if let Some(data) = data {
        cmd.arg("--data-dir").arg(data);
    }
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("AIOPS_") {
            cmd.env_remove(&key);
        }
    }
    cmd.env_remove("AIOPS_MASTER_KEY");
    cmd.env(
        "AIOPS_INPUTS__LOCAL_ROOTS",
        format!("[{:?}]", std::env::temp_dir()),
    );
    cmd
}

struct Output {
    what: String,
    success: bool,
    stdout: String,
    stderr: String,
}

/// Runs `cmd` with `stdin`, failing the test if it does not finish within `DEADLINE`.
fn run(mut cmd: Command, stdin: &str) -> Output {
    let what = format!("{:?}", cmd.get_args().collect::<Vec<_>>());
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn aiops");
    let mut pipe = child.stdin.take().unwrap();
    let input = stdin.to_string();
    std::thread::spawn(move || {
        let _ = pipe.write_all(input.as_bytes());
    });
    let (tx, rx) = mpsc::channel::<(bool, String)>();
    let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
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
    let (mut stdout, mut stderr) = (String::new(), String::new());
    for _ in 0..2 {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok((true, text)) => stdout = text,
            Ok((false, text)) => stderr = text,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("aiops {what} did not finish within {DEADLINE:?}");
            }
        }
    }
    let success = child.wait().unwrap().success();
    Output {
        what,
        success,
        stdout,
        stderr,
    }
}

fn ok(out: Output) -> Output {
    assert!(
        out.success,
        "aiops {} failed: {}{}",
        out.what, out.stdout, out.stderr
    );
    out
}

fn data_config(data: &Path) -> Config {
    Config {
        data_dir: data.to_path_buf(),
        ..Config::default()
    }
}

#[tokio::test]
async fn cli_rotate_key_with_a_key_file() {
    assert_no_env_key();
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let repo = common::git_repo();
    let cli = |args: &[&str]| aiops(work.path(), Some(&data), args);
    ok(run(
        cli(&[
            "project",
            "add",
            "shop",
            "--path",
            repo.path().to_str().unwrap(),
        ]),
        "",
    ));
    let values = [random_hex(20), random_hex(20), random_hex(20)];
    ok(run(
        cli(&[
            "secret",
            "set",
            "--project",
            "shop",
            "--name",
            "one",
            "--kind",
            "token",
        ]),
        &values[0],
    ));
    ok(run(
        cli(&[
            "secret",
            "set",
            "--project",
            "shop",
            "--name",
            "two",
            "--kind",
            "ssh_key",
        ]),
        &values[1],
    ));
    ok(run(
        cli(&["secret", "set", "--name", "global", "--kind", "api_key"]),
        &values[2],
    ));
    let key_file = data.join("master.key");
    let old_text = std::fs::read_to_string(&key_file).expect("secret set created the key file");
    let old_key = MasterKey::from_base64(&old_text, "old").unwrap();

    let out = ok(run(cli(&["secret", "rotate-key"]), ""));
    assert!(
        out.stdout.is_empty(),
        "with a key file nothing is printed on stdout: {}",
        out.stdout
    );
    assert!(
        out.stderr.contains("key version 2") && out.stderr.contains("master.key"),
        "{}",
        out.stderr
    );
    let new_text = std::fs::read_to_string(&key_file).unwrap();
    assert_ne!(new_text, old_text, "the key file was replaced");
    assert_eq!(
        std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(!next_path(&key_file).exists());

    // Every secret decrypts with the new key.
    let config = data_config(&data);
    let store = aiops::server::open_store(&config).await.unwrap();
    let (vault, source, _) = aiops::server::open_vault(&config, &store, false)
        .await
        .unwrap();
    assert_eq!(source, KeySource::File(key_file.clone()));
    assert_eq!(vault.key_version(), 2);
    let shop = store.project("shop").await.unwrap();
    assert_eq!(
        revealed(&store, &vault, shop.id).await.unwrap(),
        pairs(&[
            ("one", &values[0]),
            ("two", &values[1]),
            ("global", &values[2])
        ])
    );
    assert_eq!(key_versions(&store).await, vec![2, 2, 2]);
    // The old key opens nothing.
    match Vault::unlock(&store, old_key.clone(), &KeySource::Env).await {
        Err(VaultError::WrongKey { version, .. }) => assert_eq!(version, 2),
        other => panic!("the old key must be refused, got {other:?}"),
    }
    let mut with_old_key = cli(&["secret", "set", "--name", "later", "--kind", "token"]);
    with_old_key.env("AIOPS_MASTER_KEY", old_text.trim());
    let refused = run(with_old_key, "x");
    assert!(
        !refused.success && refused.stderr.contains("does not match"),
        "{}",
        refused.stderr
    );

    let list = ok(run(cli(&["secret", "list"]), ""));
    assert_eq!(
        list.stdout.lines().filter(|l| l.ends_with(" v2")).count(),
        3,
        "{}",
        list.stdout
    );
    for value in &values {
        assert!(!out.stdout.contains(value.as_str()) && !out.stderr.contains(value.as_str()));
        assert!(!list.stdout.contains(value.as_str()));
    }
    let audit = store
        .list_audit(&aiops::audit::AuditFilter {
            limit: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        (audit[0].action.as_str(), audit[0].outcome.as_str()),
        ("cli secret rotate-key", "ok")
    );
    store.close().await;
}

#[tokio::test]
async fn cli_rotate_key_with_the_environment_variable() {
    assert_no_env_key();
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let old_key = ok(run(aiops(work.path(), None, &["keygen"]), ""))
        .stdout
        .trim()
        .to_string();
    let cli = |args: &[&str], key: &str| {
        let mut cmd = aiops(work.path(), Some(&data), args);
        cmd.env("AIOPS_MASTER_KEY", key);
        cmd
    };
    let values = [random_hex(20), random_hex(20)];
    ok(run(
        cli(
            &["secret", "set", "--name", "one", "--kind", "token"],
            &old_key,
        ),
        &values[0],
    ));
    ok(run(
        cli(
            &["secret", "set", "--name", "two", "--kind", "token"],
            &old_key,
        ),
        &values[1],
    ));
    assert!(
        !data.join("master.key").exists(),
        "with AIOPS_MASTER_KEY no key file is written"
    );

    let out = ok(run(cli(&["secret", "rotate-key"], &old_key), ""));
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "the new key alone on stdout: {:?}",
        out.stdout
    );
    let new_key_text = lines[0].to_string();
    assert_ne!(new_key_text, old_key);
    let new_key = MasterKey::from_base64(&new_key_text, "stdout").expect("a base64 32-byte key");
    assert!(
        out.stderr.contains("AIOPS_MASTER_KEY") && out.stderr.contains("key version 2"),
        "{}",
        out.stderr
    );
    assert!(
        !out.stderr.contains(&new_key_text),
        "the key goes to stdout only"
    );
    assert!(
        !data.join("master.key").exists(),
        "rotation with the variable writes no key file"
    );

    // The printed key opens the store; the old one does not.
    let config = data_config(&data);
    let store = aiops::server::open_store(&config).await.unwrap();
    let vault = Vault::unlock(&store, new_key, &KeySource::Env)
        .await
        .expect("the new key opens the store");
    assert_eq!(vault.key_version(), 2);
    let global: Vec<(String, String)> = {
        // Global credentials reach every project; use a project to read them.
        let repo = common::git_repo();
        let project = add_project(&store, "any", repo.path()).await;
        revealed(&store, &vault, project.id).await.unwrap()
    };
    assert_eq!(global, pairs(&[("one", &values[0]), ("two", &values[1])]));
    let old = MasterKey::from_base64(&old_key, "old").unwrap();
    assert!(matches!(
        Vault::unlock(&store, old, &KeySource::Env).await,
        Err(VaultError::WrongKey { version: 2, .. })
    ));
    store.close().await;

    ok(run(
        cli(
            &["secret", "set", "--name", "three", "--kind", "token"],
            &new_key_text,
        ),
        "v3",
    ));
    let refused = run(
        cli(
            &["secret", "set", "--name", "four", "--kind", "token"],
            &old_key,
        ),
        "v4",
    );
    assert!(
        !refused.success && refused.stderr.contains("does not match"),
        "{}",
        refused.stderr
    );
}

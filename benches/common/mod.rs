//! What every benchmark shares: settings from the environment, a scratch git repository,
//! percentiles and scratch PostgreSQL databases.
#![allow(dead_code)]

/// The environment variable `name` parsed, or `default`.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A git repository with one commit on `main` in `dir`.
pub fn git_repo(dir: &std::path::Path) {
    std::fs::write(dir.join("README.md"), "bench\n").unwrap();
    for args in [
        &["init", "-q", "-b", "main"][..],
        &["add", "."],
        &[
            "-c",
            "user.name=b",
            "-c",
            "user.email=b@b",
            "commit",
            "-qm",
            "init",
        ],
    ] {
        assert!(
            std::process::Command::new("git")
                .args(args)
                .current_dir(dir)
                .status()
                .unwrap()
                .success()
        );
    }
}

/// The `p` percentile (0..=1) of ascending `sorted`.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 * p).ceil() as usize).saturating_sub(1);
    sorted[i.min(sorted.len() - 1)]
}

/// A fresh, empty database `name` next to `admin_url`'s; its URL.
pub async fn scratch_pg(admin_url: &str, name: &str) -> String {
    let admin = sqlx::PgPool::connect(admin_url)
        .await
        .expect("PostgreSQL reachable");
    for sql in [
        format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        format!("CREATE DATABASE {name}"),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&admin)
            .await
            .unwrap();
    }
    let mut url = url::Url::parse(admin_url).unwrap();
    url.set_path(&format!("/{name}"));
    url.to_string()
}

/// The aiops binary, which every agent starts through (`aiops agent-shim`, the sandbox).
pub fn shim_program() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_BIN_EXE_aiops"))
}

/// The JSON fixture at `path` under the shared fixtures (real payloads).
pub fn fixture_json(path: &str) -> serde_json::Value {
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/fixtures")
        .join(path);
    serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap()
}

//! Tests of the worktree manager against real git repositories in temporary directories.

use std::path::{Path, PathBuf};
use std::process::Command as StdCommand;
use std::sync::Arc;

use tempfile::TempDir;

use super::*;

/// A temporary directory whose path contains spaces.
fn scratch_dir() -> TempDir {
    tempfile::Builder::new()
        .prefix("aiops worktree ")
        .tempdir()
        .unwrap()
}

/// Runs git for test setup and inspection, isolated from the user's config.
fn sh_git(dir: &Path, args: &[&str]) -> String {
    let output = StdCommand::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=test", "-c", "user.email=test@localhost"])
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("LC_ALL", "C")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// A repository on `main` with README.md (3 lines), gone.txt (2 lines) and docs.txt.
fn init_repo(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    sh_git(dir, &["init", "--quiet", "--initial-branch=main"]);
    write(&dir.join("README.md"), "line1\nline2\nline3\n");
    write(&dir.join("gone.txt"), "a\nb\n");
    let docs: String = (1..=10)
        .map(|n| format!("documentation line {n}\n"))
        .collect();
    write(&dir.join("docs.txt"), &docs);
    sh_git(dir, &["add", "--all"]);
    sh_git(dir, &["commit", "--quiet", "-m", "initial"]);
    dir.to_path_buf()
}

/// A bare repository holding `init_repo`'s content, and its file:// URL.
fn init_remote(root: &Path) -> (PathBuf, String) {
    let seed = init_repo(&root.join("seed repo"));
    let bare = root.join("remote repo.git");
    sh_git(
        root,
        &[
            "clone",
            "--quiet",
            "--bare",
            seed.to_str().unwrap(),
            bare.to_str().unwrap(),
        ],
    );
    let url = format!("file://{}", bare.display());
    (bare, url)
}

fn local_spec(repo: &Path) -> RepoSpec {
    RepoSpec {
        project: "shop".to_owned(),
        repo_url: None,
        local_path: Some(repo.to_path_buf()),
        default_branch: "main".to_owned(),
    }
}

fn url_spec(url: &str) -> RepoSpec {
    RepoSpec {
        project: "shop".to_owned(),
        repo_url: Some(url.to_owned()),
        local_path: None,
        default_branch: "main".to_owned(),
    }
}

fn current_branch(worktree: &Path) -> String {
    sh_git(worktree, &["rev-parse", "--abbrev-ref", "HEAD"])
}

fn branch_exists(repo: &Path, branch: &str) -> bool {
    StdCommand::new("git")
        .arg("-C")
        .arg(repo)
        .args([
            "rev-parse",
            "--verify",
            "--quiet",
            &format!("refs/heads/{branch}"),
        ])
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .unwrap()
        .status
        .success()
}

#[tokio::test]
async fn add_creates_a_worktree_on_a_new_branch_of_a_local_project() {
    let root = scratch_dir();
    let repo = init_repo(&root.path().join("my repo"));
    let worktrees = Worktrees::new(root.path().join("data dir"));

    let (prepared, base) = worktrees.prepare(&local_spec(&repo)).await.unwrap();
    assert_eq!(
        (prepared.as_path(), base.as_str()),
        (repo.as_path(), "main")
    );
    let path = worktrees
        .add(&prepared, "shop", 7, "aiops/dev/7", &base)
        .await
        .unwrap();

    assert_eq!(path, worktrees.path_for("shop", 7));
    assert!(path.ends_with("data dir/worktrees/shop/7"));
    assert_eq!(current_branch(&path), "aiops/dev/7");
    assert_eq!(
        std::fs::read_to_string(path.join("README.md")).unwrap(),
        "line1\nline2\nline3\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn eight_concurrent_adds_on_one_repository_all_succeed() {
    let root = scratch_dir();
    let (_bare, url) = init_remote(root.path());
    let worktrees = Arc::new(Worktrees::new(root.path().join("data dir")));
    // A cloned project: its base is a remote-tracking branch, the case where an
    // unserialized `worktree add -b` fights over .git/config.
    let (repo, base) = worktrees.prepare(&url_spec(&url)).await.unwrap();

    let adds: Vec<_> = (1..=8)
        .map(|task_id| {
            let (worktrees, repo, base) = (worktrees.clone(), repo.clone(), base.clone());
            tokio::spawn(async move {
                let branch = format!("aiops/dev/{task_id}");
                worktrees.add(&repo, "shop", task_id, &branch, &base).await
            })
        })
        .collect();
    for (task_id, add) in (1..=8).zip(adds) {
        let path = add.await.unwrap().unwrap();
        assert_eq!(current_branch(&path), format!("aiops/dev/{task_id}"));
    }
    let listing = sh_git(&repo, &["worktree", "list", "--porcelain"]);
    assert_eq!(listing.matches("branch refs/heads/aiops/dev/").count(), 8);
}

#[tokio::test]
async fn add_twice_returns_the_same_worktree_unchanged() {
    let root = scratch_dir();
    let repo = init_repo(&root.path().join("my repo"));
    let worktrees = Worktrees::new(root.path().join("data dir"));

    let first = worktrees
        .add(&repo, "shop", 1, "task-1", "main")
        .await
        .unwrap();
    write(&first.join("work in progress.txt"), "keep me\n");
    let second = worktrees
        .add(&repo, "shop", 1, "task-1", "main")
        .await
        .unwrap();

    assert_eq!(first, second);
    assert_eq!(
        std::fs::read_to_string(second.join("work in progress.txt")).unwrap(),
        "keep me\n"
    );
}

#[tokio::test]
async fn add_recovers_the_branch_a_crash_left_behind() {
    let root = scratch_dir();
    let repo = init_repo(&root.path().join("my repo"));
    let worktrees = Worktrees::new(root.path().join("data dir"));
    let path = worktrees
        .add(&repo, "shop", 3, "task-3", "main")
        .await
        .unwrap();
    write(&path.join("progress.txt"), "done so far\n");
    sh_git(&path, &["add", "progress.txt"]);
    sh_git(&path, &["commit", "--quiet", "-m", "progress"]);

    // Crash: the worktree directory is gone and git has forgotten it; the branch stays.
    std::fs::remove_dir_all(&path).unwrap();
    sh_git(&repo, &["worktree", "prune"]);
    assert!(branch_exists(&repo, "task-3"));
    let recovered = worktrees
        .add(&repo, "shop", 3, "task-3", "main")
        .await
        .unwrap();
    assert_eq!(recovered, path);
    assert_eq!(current_branch(&path), "task-3");
    assert_eq!(
        std::fs::read_to_string(path.join("progress.txt")).unwrap(),
        "done so far\n"
    );

    // Crash before git forgot it: the directory is gone but still registered.
    std::fs::remove_dir_all(&path).unwrap();
    worktrees
        .add(&repo, "shop", 3, "task-3", "main")
        .await
        .unwrap();
    assert!(path.join("progress.txt").exists());

    // A stray directory where the worktree should go is replaced.
    let stray = worktrees.path_for("shop", 4);
    write(&stray.join("junk.txt"), "junk\n");
    worktrees
        .add(&repo, "shop", 4, "task-4", "main")
        .await
        .unwrap();
    assert_eq!(current_branch(&stray), "task-4");
    assert!(!stray.join("junk.txt").exists());
}

#[tokio::test]
async fn a_dead_nodes_worktree_of_the_task_is_taken_over_with_its_files() {
    let root = scratch_dir();
    let repo = init_repo(&root.path().join("my repo"));
    let dead = Worktrees::new(root.path().join("node a"));
    let alive = Worktrees::new(root.path().join("node b"));
    let left = dead
        .add(&repo, "shop", 1, "aiops/bugfix/1", "main")
        .await
        .unwrap();
    write(&left.join(".party/state.json"), "{}\n");
    write(&left.join("work.txt"), "uncommitted\n");

    // Before: "'aiops/bugfix/1' is already used by worktree at <node a>/…".
    let path = alive
        .add(&repo, "shop", 1, "aiops/bugfix/1", "main")
        .await
        .unwrap();
    assert_eq!(path, alive.path_for("shop", 1));
    assert_eq!(current_branch(&path), "aiops/bugfix/1");
    assert_eq!(
        std::fs::read_to_string(path.join("work.txt")).unwrap(),
        "uncommitted\n"
    );
    assert!(path.join(".party/state.json").exists());
    assert!(!left.exists(), "the dead node's copy is gone");

    // A branch checked out anywhere else (here the main checkout) is never touched.
    sh_git(&repo, &["checkout", "--quiet", "-b", "mine"]);
    let refused = alive.add(&repo, "shop", 2, "mine", "main").await;
    assert!(refused.is_err());
    assert_eq!(current_branch(&repo), "mine");
}

#[tokio::test]
async fn prepare_clones_once_then_fetches_new_commits() {
    let root = scratch_dir();
    let (bare, url) = init_remote(root.path());
    let worktrees = Worktrees::new(root.path().join("data dir"));

    let (repo, base) = worktrees.prepare(&url_spec(&url)).await.unwrap();
    assert_eq!(repo, root.path().join("data dir/repos/shop"));
    assert_eq!(base, "origin/main");
    let marker = repo.join(".git/aiops-test-marker");
    write(&marker, "cloned once\n");

    let pusher = root.path().join("pusher");
    sh_git(
        root.path(),
        &[
            "clone",
            "--quiet",
            bare.to_str().unwrap(),
            pusher.to_str().unwrap(),
        ],
    );
    write(&pusher.join("fresh.txt"), "from upstream\n");
    sh_git(&pusher, &["add", "fresh.txt"]);
    sh_git(&pusher, &["commit", "--quiet", "-m", "upstream change"]);
    sh_git(&pusher, &["push", "--quiet", "origin", "main"]);
    let pushed = sh_git(&pusher, &["rev-parse", "HEAD"]);

    let (again, base) = worktrees.prepare(&url_spec(&url)).await.unwrap();
    assert_eq!(again, repo);
    assert!(marker.exists(), "prepare cloned a second time");
    assert_eq!(sh_git(&repo, &["rev-parse", &base]), pushed);
    let path = worktrees
        .add(&repo, "shop", 1, "task-1", &base)
        .await
        .unwrap();
    assert!(path.join("fresh.txt").exists());
}

#[tokio::test]
async fn prepare_redoes_a_half_finished_clone() {
    let root = scratch_dir();
    // The data directory sits inside another checkout, as `./data` in a source tree does.
    init_repo(root.path());
    let (_bare, url) = init_remote(root.path());
    let worktrees = Worktrees::new(root.path().join("data dir"));
    let clone = root.path().join("data dir/repos/shop");

    std::fs::create_dir_all(&clone).unwrap();
    let (repo, base) = worktrees.prepare(&url_spec(&url)).await.unwrap();
    assert_eq!(
        sh_git(&repo, &["rev-parse", "--show-toplevel"]),
        repo.to_str().unwrap()
    );
    assert!(repo.join("README.md").exists());

    std::fs::remove_dir_all(clone.join(".git")).unwrap();
    let (repo, _) = worktrees.prepare(&url_spec(&url)).await.unwrap();
    assert_eq!(
        sh_git(&repo, &["rev-parse", "--show-toplevel"]),
        repo.to_str().unwrap()
    );
    assert!(!sh_git(&repo, &["rev-parse", &base]).is_empty());
}

#[tokio::test]
async fn remove_deletes_the_worktree_and_its_branch() {
    let root = scratch_dir();
    let repo = init_repo(&root.path().join("my repo"));
    let worktrees = Worktrees::new(root.path().join("data dir"));
    let path = worktrees
        .add(&repo, "shop", 5, "task-5", "main")
        .await
        .unwrap();
    write(&path.join("uncommitted.txt"), "dirty\n");

    worktrees
        .remove(&repo, &path, Some("task-5"))
        .await
        .unwrap();
    assert!(!path.exists());
    assert!(!sh_git(&repo, &["worktree", "list"]).contains(path.to_str().unwrap()));
    assert!(!branch_exists(&repo, "task-5"));

    worktrees
        .remove(&repo, &path, Some("task-5"))
        .await
        .unwrap();

    let kept = worktrees
        .add(&repo, "shop", 6, "task-6", "main")
        .await
        .unwrap();
    worktrees.remove(&repo, &kept, None).await.unwrap();
    assert!(!kept.exists());
    assert!(branch_exists(&repo, "task-6"));
}

#[tokio::test]
async fn remove_refuses_a_directory_that_is_not_a_task_worktree() {
    let root = scratch_dir();
    let repo = init_repo(&root.path().join("my repo"));
    let worktrees = Worktrees::new(root.path().join("data dir"));
    let precious = root.path().join("precious");
    write(&precious.join("file.txt"), "keep\n");

    let error = worktrees.remove(&repo, &precious, None).await.unwrap_err();
    assert!(
        matches!(error, WorktreeError::ForeignPath { .. }),
        "{error}"
    );
    assert!(precious.join("file.txt").exists());

    // Nor a whole project's directory under the data directory.
    let task = worktrees
        .add(&repo, "shop", 1, "task-1", "main")
        .await
        .unwrap();
    let project_dir = task.parent().unwrap();
    let error = worktrees
        .remove(&repo, project_dir, None)
        .await
        .unwrap_err();
    assert!(
        matches!(error, WorktreeError::ForeignPath { .. }),
        "{error}"
    );
    assert!(task.join("README.md").exists());
}

#[tokio::test]
async fn diff_reports_every_change_outside_party_without_touching_the_index() {
    let root = scratch_dir();
    let repo = init_repo(&root.path().join("my repo"));
    let worktrees = Worktrees::new(root.path().join("data dir"));
    let path = worktrees
        .add(&repo, "shop", 1, "task-1", "main")
        .await
        .unwrap();
    write(&path.join("README.md"), "line1\nchanged\nline3\nline4\n");
    write(&path.join("new file.txt"), "x\ny\nz\n");
    std::fs::remove_file(path.join("gone.txt")).unwrap();
    std::fs::rename(path.join("docs.txt"), path.join("manual.txt")).unwrap();
    write(
        &path.join(".party/events.jsonl"),
        "{\"event\":\"secret-ish\"}\n",
    );
    let status_before = sh_git(&path, &["status", "--porcelain"]);
    // The default branch moves on after the task started; that is not the task's change.
    write(&repo.join("upstream.txt"), "later\n");
    sh_git(&repo, &["add", "upstream.txt"]);
    sh_git(&repo, &["commit", "--quiet", "-m", "upstream"]);

    let diff = worktrees.diff(&path, "main", 1 << 20).await.unwrap();

    assert_eq!(sh_git(&path, &["status", "--porcelain"]), status_before);
    let mut files: Vec<_> = diff
        .files
        .iter()
        .map(|file| {
            (
                file.path.as_str(),
                file.status.as_str(),
                file.insertions,
                file.deletions,
            )
        })
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            ("README.md", "modified", 2, 1),
            ("gone.txt", "deleted", 0, 2),
            ("manual.txt", "renamed", 0, 0),
            ("new file.txt", "added", 3, 0),
        ]
    );
    assert!(diff.stat.contains("README.md"), "{}", diff.stat);
    assert!(diff.stat.contains("4 files changed"), "{}", diff.stat);
    assert!(diff.patch.contains("+changed\n"), "{}", diff.patch);
    assert!(diff.patch.contains("+++ b/new file.txt"), "{}", diff.patch);
    assert!(!diff.patch.contains(".party") && !diff.stat.contains(".party"));
    assert!(!diff.truncated);
}

#[tokio::test]
async fn diff_truncates_a_large_patch_on_a_line_boundary() {
    let root = scratch_dir();
    let repo = init_repo(&root.path().join("my repo"));
    let worktrees = Worktrees::new(root.path().join("data dir"));
    let path = worktrees
        .add(&repo, "shop", 1, "task-1", "main")
        .await
        .unwrap();
    let big: String = (0..200_000)
        .map(|n| format!("generated line {n}\n"))
        .collect();
    write(&path.join("big.txt"), &big);

    let diff = worktrees.diff(&path, "main", 4096).await.unwrap();

    assert!(diff.truncated);
    assert!(diff.patch.len() <= 4096 && diff.patch.ends_with('\n'));
    assert!(diff.patch.starts_with("diff --git a/big.txt b/big.txt\n"));
    assert_eq!(diff.files.len(), 1);
    assert_eq!(diff.files[0].insertions, 200_000);
}

#[tokio::test]
async fn a_base_that_does_not_exist_is_a_permanent_error_with_gits_message() {
    let root = scratch_dir();
    let repo = init_repo(&root.path().join("my repo"));
    let worktrees = Worktrees::new(root.path().join("data dir"));

    let error = worktrees
        .add(&repo, "shop", 1, "task-1", "no-such-branch")
        .await
        .unwrap_err();
    assert!(
        matches!(error, WorktreeError::BaseNotFound { .. }),
        "{error}"
    );
    assert!(!error.is_retryable());
    let message = error.to_string();
    assert!(message.contains("no-such-branch"), "{message}");
    assert!(
        message.contains("fatal: Needed a single revision"),
        "{message}"
    );
    assert!(!branch_exists(&repo, "task-1"));

    let mut spec = local_spec(&repo);
    spec.default_branch = "trunk".to_owned();
    let error = worktrees.prepare(&spec).await.unwrap_err();
    assert!(
        matches!(error, WorktreeError::BaseNotFound { .. }),
        "{error}"
    );
    assert!(!error.is_retryable());
}

#[tokio::test]
async fn a_local_path_that_is_not_a_repository_is_a_permanent_error() {
    let root = scratch_dir();
    let worktrees = Worktrees::new(root.path().join("data dir"));

    let error = worktrees
        .prepare(&local_spec(&root.path().join("nothing here")))
        .await
        .unwrap_err();
    assert!(
        matches!(error, WorktreeError::NotARepository { .. }),
        "{error}"
    );
    assert!(!error.is_retryable());
}

#[tokio::test]
async fn an_unreachable_remote_is_a_retryable_error() {
    let root = scratch_dir();
    let worktrees = Worktrees::new(root.path().join("data dir"));

    let error = worktrees
        .prepare(&url_spec("file:///does/not/exist"))
        .await
        .unwrap_err();
    assert!(matches!(error, WorktreeError::Network { .. }), "{error}");
    assert!(error.is_retryable());
    assert!(
        error
            .to_string()
            .contains("does not appear to be a git repository")
    );
    assert!(!root.path().join("data dir/repos/shop").exists());
}

#[tokio::test]
async fn a_held_git_lock_is_a_retryable_error() {
    let root = scratch_dir();
    let repo = init_repo(&root.path().join("my repo"));
    let worktrees = Worktrees::new(root.path().join("data dir"));
    write(&repo.join(".git/refs/heads/task-1.lock"), "");

    let error = worktrees
        .add(&repo, "shop", 1, "task-1", "main")
        .await
        .unwrap_err();
    assert!(matches!(error, WorktreeError::Locked { .. }), "{error}");
    assert!(error.is_retryable());
}

#[tokio::test]
async fn project_names_that_leave_the_data_directory_are_refused() {
    let root = scratch_dir();
    let repo = init_repo(&root.path().join("my repo"));
    let worktrees = Worktrees::new(root.path().join("data dir"));

    for project in ["..", "../escape", "a/b", "/abs", ".hidden", ""] {
        let error = worktrees
            .add(&repo, project, 1, "task-1", "main")
            .await
            .unwrap_err();
        assert!(
            matches!(error, WorktreeError::InvalidProject(_)),
            "{project}: {error}"
        );
        let mut spec = url_spec("file:///unused");
        spec.project = project.to_owned();
        let error = worktrees.prepare(&spec).await.unwrap_err();
        assert!(
            matches!(error, WorktreeError::InvalidProject(_)),
            "{project}: {error}"
        );
    }
}

/// With private targets not allowed, a `repo_url` whose name resolves to loopback is refused
/// before git runs (not retryable, naming the address); allowed, git is asked and reports
/// the refused connection.
#[tokio::test]
async fn a_repo_host_that_resolves_inside_is_refused_unless_allowed() {
    let root = scratch_dir();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let spec = url_spec(&format!("https://localhost:{port}/acme/shop.git"));

    let strict = Worktrees::new(root.path().join("strict")).with_private_targets(false);
    let error = strict.prepare(&spec).await.unwrap_err();
    assert!(
        matches!(error, WorktreeError::InternalHost { .. }),
        "{error}"
    );
    assert!(
        error.to_string().contains("resolves to 127.0.0.1"),
        "{error}"
    );
    assert!(!error.is_retryable());

    let lan = Worktrees::new(root.path().join("lan"));
    let error = lan.prepare(&spec).await.unwrap_err();
    assert!(matches!(error, WorktreeError::Network { .. }), "{error}");
}

#[test]
fn the_host_of_each_remote_form() {
    for (url, host) in [
        ("https://github.com/acme/shop.git", Some("github.com")),
        (
            "ssh://git@gitlab.example:2222/acme/shop.git",
            Some("gitlab.example"),
        ),
        ("git@github.com:acme/shop.git", Some("github.com")),
        ("https://[::1]/x.git", Some("::1")),
        ("file:///srv/git/shop.git", None),
    ] {
        assert_eq!(super::repo::host_of(url).as_deref(), host, "{url}");
    }
}

//! File-system helpers for the manager: project names that stay one directory, and making,
//! finding and deleting paths, each failure a [`WorktreeError`].

use std::io;
use std::path::{Component, Path, PathBuf};

use super::error::{WorktreeError, io_error};

/// Refuses project names that are not one plain directory name.
pub(super) fn check_project(project: &str) -> Result<(), WorktreeError> {
    let mut components = Path::new(project).components();
    let one_plain_component =
        matches!(components.next(), Some(Component::Normal(_))) && components.next().is_none();
    if one_plain_component && !project.starts_with('.') && !project.contains(['/', '\\']) {
        Ok(())
    } else {
        Err(WorktreeError::InvalidProject(project.to_owned()))
    }
}

/// `path` made absolute against the current directory, without touching the file system.
pub(super) fn absolute(path: &Path) -> Result<PathBuf, WorktreeError> {
    std::path::absolute(path)
        .map_err(|error| io_error(format!("make {} absolute", path.display()), error))
}

/// `path` with symlinks resolved, or as given when it does not exist.
pub(super) async fn canonical(path: &Path) -> PathBuf {
    tokio::fs::canonicalize(path)
        .await
        .unwrap_or_else(|_| path.to_path_buf())
}

/// Whether anything, even a dangling symlink, is at `path`.
pub(super) async fn path_exists(path: &Path) -> Result<bool, WorktreeError> {
    match tokio::fs::symlink_metadata(path).await {
        Ok(_) => Ok(true),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(error) => Err(io_error(format!("look at {}", path.display()), error)),
    }
}

/// Creates `path` and its missing parents.
pub(super) async fn create_dir_all(path: &Path) -> Result<(), WorktreeError> {
    tokio::fs::create_dir_all(path)
        .await
        .map_err(|error| io_error(format!("create {}", path.display()), error))
}

/// Deletes a file, a symlink or a whole directory tree.
pub(super) async fn remove_path(path: &Path) -> Result<(), WorktreeError> {
    let is_dir = tokio::fs::symlink_metadata(path)
        .await
        .is_ok_and(|metadata| metadata.is_dir());
    let removed = if is_dir {
        tokio::fs::remove_dir_all(path).await
    } else {
        tokio::fs::remove_file(path).await
    };
    removed.map_err(|error| io_error(format!("delete {}", path.display()), error))
}

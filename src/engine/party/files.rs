//! The one safe way to open and list files under `.party/`: no links, no `..`, regular files
//! only, nothing swapped while it is opened, and every read capped.

use std::ffi::OsStr;
use std::fs::{self, File, Metadata, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

use super::PartyError;

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
const O_NOFOLLOW: i32 = 0o400_000;
#[cfg(all(target_os = "linux", target_arch = "aarch64"))]
const O_NOFOLLOW: i32 = 0o100_000;
#[cfg(not(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
)))]
compile_error!("engine::party knows the O_NOFOLLOW value only for Linux on x86_64 and aarch64");
/// The same on x86_64 and aarch64. A FIFO planted under `.party/` must not block the open.
const O_NONBLOCK: i32 = 0o4000;
/// What `open` fails with when `O_NOFOLLOW` meets a link (the same on x86_64 and aarch64).
const ELOOP: i32 = 40;

/// Files that could not be used, with why: (path relative to the worktree, reason).
pub(super) type Skipped = Vec<(PathBuf, String)>;

/// Reads a whole regular file at `root/relative`, refusing anything that leaves `root` (an
/// absolute path, `..`, a link in any component) and files over `max_bytes` (an error, not a
/// truncation). Never reads more than `max_bytes + 1` bytes, even from a growing file.
pub fn read_capped(root: &Path, relative: &Path, max_bytes: u64) -> Result<Vec<u8>, PartyError> {
    read_capped_with_metadata(root, relative, max_bytes).map(|(bytes, _)| bytes)
}

/// `read_capped`, also returning the opened file's metadata.
pub(super) fn read_capped_with_metadata(
    root: &Path,
    relative: &Path,
    max_bytes: u64,
) -> Result<(Vec<u8>, Metadata), PartyError> {
    let (file, metadata) = open_checked(root, relative, OpenOptions::new().read(true))?;
    if metadata.len() > max_bytes {
        return Err(PartyError::TooLarge {
            path: relative.to_path_buf(),
            size: metadata.len(),
            max: max_bytes,
        });
    }
    let bytes = read_at_most(file, max_bytes, relative)?;
    Ok((bytes, metadata))
}

/// Reads to the end, but fails as soon as there is one byte more than `max_bytes`: the file
/// grew past the cap after it was measured.
pub(super) fn read_at_most(
    reader: impl Read,
    max_bytes: u64,
    relative: &Path,
) -> Result<Vec<u8>, PartyError> {
    let mut bytes = Vec::new();
    reader
        .take(max_bytes.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|source| io_error(relative, source))?;
    if bytes.len() as u64 > max_bytes {
        return Err(PartyError::TooLarge {
            path: relative.to_path_buf(),
            size: bytes.len() as u64,
            max: max_bytes,
        });
    }
    Ok(bytes)
}

/// The one gate every open under `.party/` goes through: opens `root/relative` (as `options`
/// says: read, append, create) only if no component below `root` is a link, every parent is a
/// directory and the file is regular, and only if nothing was swapped while it was opened.
pub(super) fn open_checked(
    root: &Path,
    relative: &Path,
    options: &mut OpenOptions,
) -> Result<(File, Metadata), PartyError> {
    open_checked_with_race_windows(root, relative, options, |_| ())
}

/// A moment in `open_checked` where a swap would be attempted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CheckPoint {
    DirectoriesChecked,
    FileChecked,
}

/// `open_checked`, calling `at` at each `CheckPoint`, where tests stage the swaps it defends
/// against.
pub(super) fn open_checked_with_race_windows(
    root: &Path,
    relative: &Path,
    options: &mut OpenOptions,
    mut at: impl FnMut(CheckPoint),
) -> Result<(File, Metadata), PartyError> {
    let parts = normal_components(relative)?;
    let directories = check_directories(root, relative, &parts[..parts.len() - 1])?;
    at(CheckPoint::DirectoriesChecked);
    let path = root.join(relative);
    let checked = match fs::symlink_metadata(&path) {
        Ok(metadata) => {
            ensure_regular(relative, &metadata)?;
            Some(FileIdentity::of(&metadata))
        }
        // `open` decides: it fails, or creates the file when `options` asks it to.
        Err(error) if error.kind() == io::ErrorKind::NotFound => None,
        Err(source) => return Err(io_error(relative, source)),
    };
    at(CheckPoint::FileChecked);
    let file = open_no_follow(&path, relative, options)?;
    let opened = file
        .metadata()
        .map_err(|source| io_error(relative, source))?;
    ensure_regular(relative, &opened)?;
    let expected = match checked {
        Some(identity) => identity,
        None => fs::symlink_metadata(&path)
            .map(|metadata| FileIdentity::of(&metadata))
            .map_err(|source| io_error(relative, source))?,
    };
    ensure_same_file(relative, expected, FileIdentity::of(&opened))?;
    recheck_directories(&directories)?;
    Ok((file, opened))
}

/// Opens without following a link in the last component; a link there is refused.
pub(super) fn open_no_follow(
    path: &Path,
    relative: &Path,
    options: &mut OpenOptions,
) -> Result<File, PartyError> {
    options
        .custom_flags(O_NOFOLLOW | O_NONBLOCK)
        .open(path)
        .map_err(|source| {
            if source.raw_os_error() == Some(ELOOP) {
                PartyError::Symlink {
                    path: relative.to_path_buf(),
                }
            } else {
                io_error(relative, source)
            }
        })
}

/// The components of `relative`, if it is a plain relative path: no root, no `.` or `..`.
fn normal_components(relative: &Path) -> Result<Vec<&OsStr>, PartyError> {
    let escape = || PartyError::Escape {
        path: relative.to_path_buf(),
    };
    let parts = relative
        .components()
        .map(|component| match component {
            Component::Normal(part) => Ok(part),
            _ => Err(escape()),
        })
        .collect::<Result<Vec<_>, _>>()?;
    if parts.is_empty() {
        return Err(escape());
    }
    Ok(parts)
}

/// Which file a path named when it was checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct FileIdentity {
    device: u64,
    inode: u64,
}

impl FileIdentity {
    fn of(metadata: &Metadata) -> Self {
        Self {
            device: metadata.dev(),
            inode: metadata.ino(),
        }
    }
}

/// A directory as it was checked: absolute path, path relative to the worktree, identity.
pub(super) type CheckedDirectory = (PathBuf, PathBuf, FileIdentity);

/// Checks that each of `parts` below `root` is a real directory, not a link, and remembers
/// which one it was.
pub(super) fn check_directories(
    root: &Path,
    relative: &Path,
    parts: &[&OsStr],
) -> Result<Vec<CheckedDirectory>, PartyError> {
    let mut path = root.to_path_buf();
    let mut shown = PathBuf::new();
    let mut checked = Vec::with_capacity(parts.len());
    for part in parts {
        path.push(part);
        shown.push(part);
        let metadata = fs::symlink_metadata(&path).map_err(|source| io_error(&shown, source))?;
        if metadata.file_type().is_symlink() {
            tracing::warn!(path = %shown.display(), target = %relative.display(), "link under .party/ refused");
            return Err(PartyError::Symlink { path: shown });
        }
        if !metadata.is_dir() {
            return Err(PartyError::NotDirectory { path: shown });
        }
        checked.push((path.clone(), shown.clone(), FileIdentity::of(&metadata)));
    }
    Ok(checked)
}

/// Fails when a checked directory has since been swapped for a link or another directory.
pub(super) fn recheck_directories(checked: &[CheckedDirectory]) -> Result<(), PartyError> {
    for (path, shown, identity) in checked {
        let unchanged = fs::symlink_metadata(path).is_ok_and(|metadata| {
            !metadata.file_type().is_symlink()
                && metadata.is_dir()
                && FileIdentity::of(&metadata) == *identity
        });
        if !unchanged {
            return Err(PartyError::Replaced {
                path: shown.clone(),
            });
        }
    }
    Ok(())
}

/// Refuses a link or anything but a regular file.
fn ensure_regular(relative: &Path, metadata: &Metadata) -> Result<(), PartyError> {
    if metadata.file_type().is_symlink() {
        tracing::warn!(path = %relative.display(), "link under .party/ refused");
        return Err(PartyError::Symlink {
            path: relative.to_path_buf(),
        });
    }
    if !metadata.is_file() {
        return Err(PartyError::NotRegular {
            path: relative.to_path_buf(),
        });
    }
    Ok(())
}

/// Refuses a file other than the one that was checked.
fn ensure_same_file(
    relative: &Path,
    checked: FileIdentity,
    opened: FileIdentity,
) -> Result<(), PartyError> {
    if checked != opened {
        tracing::warn!(path = %relative.display(), "file under .party/ swapped while opened");
        return Err(PartyError::Replaced {
            path: relative.to_path_buf(),
        });
    }
    Ok(())
}

pub(super) fn io_error(relative: &Path, source: io::Error) -> PartyError {
    PartyError::Io {
        path: relative.to_path_buf(),
        source,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum EntryKind {
    File,
    Directory,
}

/// Sorted names of the entries of `kind` in `root/relative` whose names `accept` takes (never
/// hidden ones). A link or an entry of another kind under such a name is reported in
/// `skipped`, never followed. A missing directory lists as empty.
pub(super) fn list_names(
    root: &Path,
    relative: &Path,
    kind: EntryKind,
    accept: impl Fn(&str) -> bool,
    skipped: &mut Skipped,
) -> Vec<String> {
    match try_list_names(root, relative, kind, accept, skipped) {
        Ok(names) => names,
        Err(error) => {
            skip_unless_missing(skipped, relative, &error);
            Vec::new()
        }
    }
}

fn try_list_names(
    root: &Path,
    relative: &Path,
    kind: EntryKind,
    accept: impl Fn(&str) -> bool,
    skipped: &mut Skipped,
) -> Result<Vec<String>, PartyError> {
    let parts = normal_components(relative)?;
    check_directories(root, relative, &parts)?;
    let entries = fs::read_dir(root.join(relative)).map_err(|source| io_error(relative, source))?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| io_error(relative, source))?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if name.starts_with('.') || name.contains(['/', '\\']) || !accept(&name) {
            continue;
        }
        let path = relative.join(&name);
        let file_type = entry
            .file_type()
            .map_err(|source| io_error(&path, source))?;
        let wanted = match kind {
            EntryKind::File => file_type.is_file(),
            EntryKind::Directory => file_type.is_dir(),
        };
        if wanted {
            names.push(name);
        } else if file_type.is_symlink() {
            tracing::warn!(path = %path.display(), "link under .party/ skipped");
            skipped.push((path, "symbolic link, not followed".to_owned()));
        } else {
            let expected = match kind {
                EntryKind::File => "not a regular file",
                EntryKind::Directory => "not a directory",
            };
            skipped.push((path, expected.to_owned()));
        }
    }
    names.sort();
    Ok(names)
}

/// Records why a file was left out; a file that is simply not there (yet) is not recorded.
pub(super) fn skip_unless_missing(skipped: &mut Skipped, relative: &Path, error: &PartyError) {
    if !error.is_not_found() {
        tracing::debug!(path = %relative.display(), %error, "skipped under .party/");
        skipped.push((relative.to_path_buf(), error.to_string()));
    }
}

//! Kernel file notifications for `.party/` (inotify through the `notify` crate), so a
//! running pipeline is read when it writes and not otherwise; and a cheap fingerprint of a
//! session's files, so a read (notified or polled) skips what did not change.
//!
//! One [`PartyWatcher`] per process watches every running task's `.party/` recursively
//! (and the worktree root, not recursively, until `.party/` appears). Notifications only
//! say "look again"; what is read still goes through the checked readers of this module,
//! and symbolic links are never followed by the watch.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use notify::event::{AccessKind, AccessMode};
use notify::{Config, Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher};

use super::read::{is_valid_session_id, session_dir};

/// What changed under one worktree's `.party/` since it was last told.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Change {
    /// An `events.ndjson` was written.
    pub events: bool,
    /// Any other file or directory (sessions, findings, tickets, approvals).
    pub files: bool,
}

type OnChange = Arc<dyn Fn(Change) + Send + Sync>;

/// The process's one watcher of every running task's `.party/`.
pub struct PartyWatcher {
    watcher: Mutex<RecommendedWatcher>,
    /// Worktree → who to tell.
    routes: Arc<Mutex<HashMap<PathBuf, OnChange>>>,
}

impl PartyWatcher {
    /// Starts the watcher (one inotify instance and its thread); an error means the host
    /// gives no notifications and readers must rely on their poll.
    pub fn new() -> Result<Arc<Self>, notify::Error> {
        let routes: Arc<Mutex<HashMap<PathBuf, OnChange>>> = Arc::default();
        let seen = Arc::clone(&routes);
        let watcher = RecommendedWatcher::new(
            move |event: notify::Result<Event>| match event {
                Ok(event) => route(&seen, &event),
                // An overflowed queue or a lost watch: tell everyone to look.
                Err(_) => {
                    let all = Change {
                        events: true,
                        files: true,
                    };
                    for on_change in seen.lock().expect("not poisoned").values() {
                        on_change(all);
                    }
                }
            },
            Config::default().with_follow_symlinks(false),
        )?;
        Ok(Arc::new(Self {
            watcher: Mutex::new(watcher),
            routes,
        }))
    }

    /// Watches `worktree`'s `.party/` until the returned guard is dropped; `on_change` is
    /// called on the watcher's thread and must only signal.
    pub fn watch(
        self: &Arc<Self>,
        worktree: &Path,
        on_change: impl Fn(Change) + Send + Sync + 'static,
    ) -> PartyWatch {
        self.routes
            .lock()
            .expect("not poisoned")
            .insert(worktree.to_path_buf(), Arc::new(on_change));
        let mut watch = PartyWatch {
            watcher: Arc::clone(self),
            worktree: worktree.to_path_buf(),
            root_watched: false,
            party_watched: false,
        };
        watch.refresh();
        watch
    }
}

/// Tells the worktree an event belongs to what changed. Reads (`open`) and other accesses
/// are not changes: aiops' own reads must not wake it again.
fn route(routes: &Mutex<HashMap<PathBuf, OnChange>>, event: &Event) {
    let is_change = match event.kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    };
    if !is_change {
        return;
    }
    let routes = routes.lock().expect("not poisoned");
    for path in &event.paths {
        for (worktree, on_change) in routes.iter() {
            let Ok(inside) = path.strip_prefix(worktree.join(".party")) else {
                continue;
            };
            let events = inside.file_name().is_some_and(|n| n == "events.ndjson");
            // `.party/` itself appearing: everything may be new.
            let whole = inside.as_os_str().is_empty();
            on_change(Change {
                events: events || whole,
                files: !events,
            });
        }
    }
}

/// One worktree's watch; dropping it stops the notifications.
pub struct PartyWatch {
    watcher: Arc<PartyWatcher>,
    worktree: PathBuf,
    root_watched: bool,
    party_watched: bool,
}

impl PartyWatch {
    /// Watches `.party/` recursively once it exists (a real directory, not a link), and the
    /// worktree root until then. Cheap; call it whenever the pipeline is looked at.
    pub fn refresh(&mut self) {
        if self.party_watched {
            return;
        }
        let party = self.worktree.join(".party");
        let is_dir = std::fs::symlink_metadata(&party).is_ok_and(|m| m.file_type().is_dir());
        let mut watcher = self.watcher.watcher.lock().expect("not poisoned");
        if is_dir {
            match watcher.watch(&party, RecursiveMode::Recursive) {
                Ok(()) => self.party_watched = true,
                Err(e) => {
                    tracing::debug!(path = %party.display(), error = %e, "cannot watch .party/; polling it")
                }
            }
        }
        if self.party_watched && self.root_watched {
            let _ = watcher.unwatch(&self.worktree);
            self.root_watched = false;
        } else if !self.party_watched && !self.root_watched {
            match watcher.watch(&self.worktree, RecursiveMode::NonRecursive) {
                Ok(()) => self.root_watched = true,
                Err(e) => {
                    tracing::debug!(path = %self.worktree.display(), error = %e, "cannot watch the worktree; polling it")
                }
            }
        }
    }

    /// True once `.party/` itself is watched.
    pub fn is_watching_party(&self) -> bool {
        self.party_watched
    }
}

impl Drop for PartyWatch {
    fn drop(&mut self) {
        let mut watcher = self.watcher.watcher.lock().expect("not poisoned");
        if self.party_watched {
            let _ = watcher.unwatch(&self.worktree.join(".party"));
        }
        if self.root_watched {
            let _ = watcher.unwatch(&self.worktree);
        }
        drop(watcher);
        self.watcher
            .routes
            .lock()
            .expect("not poisoned")
            .remove(&self.worktree);
    }
}

/// A hash of the names, sizes and modification times of what a snapshot reads
/// (`active-session.json`, and the session's `session.json`, findings, tickets and
/// approvals; not `events.ndjson`): equal fingerprints mean nothing to read again. Only
/// metadata is looked at, links are not followed; a missing path hashes as missing.
pub fn fingerprint(worktree: &Path, session_id: &str) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    let party = worktree.join(".party");
    hash_entry(&mut hasher, &party.join("active-session.json"));
    if is_valid_session_id(session_id) {
        let session = worktree.join(session_dir(session_id));
        hash_entry(&mut hasher, &session.join("session.json"));
        for dir in ["findings", "tickets", "approvals"] {
            let dir = session.join(dir);
            hash_entry(&mut hasher, &dir);
            let is_dir = std::fs::symlink_metadata(&dir).is_ok_and(|m| m.file_type().is_dir());
            let Ok(entries) = std::fs::read_dir(&dir)
                .map_err(|_| ())
                .and_then(|entries| is_dir.then_some(entries).ok_or(()))
            else {
                continue;
            };
            let mut names: Vec<PathBuf> = entries.flatten().map(|entry| entry.path()).collect();
            names.sort();
            for path in &names {
                hash_entry(&mut hasher, path);
            }
        }
    }
    hasher.finish()
}

/// Hashes a path with its type, size and modification time (nanoseconds).
fn hash_entry(hasher: &mut impl Hasher, path: &Path) {
    path.hash(hasher);
    if let Ok(metadata) = std::fs::symlink_metadata(path) {
        use std::os::unix::fs::MetadataExt;
        (
            metadata.file_type().is_dir(),
            metadata.len(),
            metadata.mtime(),
            metadata.mtime_nsec(),
            metadata.ino(),
        )
            .hash(hasher);
    }
}

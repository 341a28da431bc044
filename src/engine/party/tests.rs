//! Tests of reading `.party/` and writing decisions back, against the shared fixture and
//! scratch worktrees planted with links, swaps, corrupt and oversized files.

use std::ffi::OsStr;
use std::fs::{self, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::symlink;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use chrono::{DateTime, TimeDelta};
use serde_json::{Map, Value, json};

use super::decide::GRANT_LIFETIME_MINUTES;
use super::files::{
    CheckPoint, EntryKind, check_directories, list_names, open_checked_with_race_windows,
    open_no_follow, read_at_most, recheck_directories,
};
use super::read::{has_extension, is_valid_session_id};
use super::*;

const FIXTURE_SESSION: &str = "party-bugfix-20261124051937";
const SESSION: &str = "party-bugfix-20260101120000";
/// Planted outside the worktree; must never show up in anything read.
const MARKER: &str = "MARKER-OUTSIDE-THE-WORKTREE-7f3a";

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/party/pending-tool-approval")
}

/// A scratch directory (a worktree, or a place outside one) to plant files in.
struct Tree {
    dir: tempfile::TempDir,
}

impl Tree {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    fn fixture_copy() -> Self {
        let tree = Self::new();
        copy_tree(&fixture(), tree.root());
        tree
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.root().join(relative)
    }

    fn write(&self, relative: &str, content: impl AsRef<[u8]>) -> PathBuf {
        let path = self.path(relative);
        fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        fs::write(&path, content).expect("write");
        path
    }

    fn append(&self, relative: &str, content: &str) {
        let mut file = OpenOptions::new()
            .append(true)
            .create(true)
            .open(self.path(relative))
            .expect("open for append");
        file.write_all(content.as_bytes()).expect("append");
    }

    /// Replaces whatever is at `relative` with a link to `target`.
    fn link(&self, relative: &str, target: &Path) {
        let path = self.path(relative);
        fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        if fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir() && !m.is_symlink()) {
            fs::remove_dir_all(&path).expect("remove dir");
        } else {
            let _ = fs::remove_file(&path);
        }
        symlink(target, &path).expect("symlink");
    }
}

fn session_file(relative: &str) -> String {
    format!(".party/sessions/{SESSION}/{relative}")
}

fn fixture_file(relative: &str) -> String {
    format!(".party/sessions/{FIXTURE_SESSION}/{relative}")
}

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("mkdir");
    for entry in fs::read_dir(from).expect("read fixture dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            fs::write(&target, fs::read(entry.path()).expect("read")).expect("write");
        }
    }
}

fn edit_json(path: &Path, edit: impl FnOnce(&mut Map<String, Value>)) {
    let mut value: Value = serde_json::from_slice(&fs::read(path).expect("read")).expect("json");
    edit(value.as_object_mut().expect("object"));
    fs::write(path, serde_json::to_vec_pretty(&value).expect("serialize")).expect("write");
}

fn count_files(dir: &Path, extension: &str) -> usize {
    fs::read_dir(dir)
        .expect("read dir")
        .filter(|entry| {
            let name = entry.as_ref().expect("entry").file_name();
            name.to_string_lossy().ends_with(extension)
        })
        .count()
}

fn line_count(bytes: &[u8]) -> usize {
    bytes.iter().filter(|&&b| b == b'\n').count()
}

/// Reads from `from` until a call makes no progress, as a poller would.
fn read_until_idle(root: &Path, id: &str, from: u64, limits: &Limits) -> EventBatch {
    read_until_idle_from(root, id, from, false, limits)
}

/// `read_until_idle` from an offset that may be inside an over-long line.
fn read_until_idle_from(
    root: &Path,
    id: &str,
    from: u64,
    inside_long_line: bool,
    limits: &Limits,
) -> EventBatch {
    let mut all = EventBatch {
        events: Vec::new(),
        next_offset: from,
        skipped: Vec::new(),
        inside_long_line,
        scanned_to: from,
    };
    loop {
        let batch = read_events_after(root, id, all.next_offset, all.inside_long_line, limits)
            .expect("read events");
        let progressed = batch.next_offset != all.next_offset;
        all.events.extend(batch.events);
        all.skipped.extend(batch.skipped);
        all.next_offset = batch.next_offset;
        all.inside_long_line = batch.inside_long_line;
        if !progressed {
            return all;
        }
    }
}

fn assert_strictly_increasing(events: &[PartyEvent]) {
    for pair in events.windows(2) {
        assert!(
            pair[0].offset < pair[1].offset,
            "{} then {}",
            pair[0].offset,
            pair[1].offset
        );
    }
}

fn pending_request(snapshot: &Snapshot) -> ApprovalRequest {
    snapshot
        .approvals
        .iter()
        .find(|approval| approval.status == "pending")
        .cloned()
        .expect("a pending request")
}

fn event_line_for_test(kind: &str, extra: &str) -> String {
    format!(
        "{{\"ts\":\"2026-01-01T12:00:00.000Z\",\"type\":\"{kind}\",\"sessionId\":\"{SESSION}\",\"data\":{{}}{extra}}}\n"
    )
}

/// A place outside the worktree holding a party session whose every file carries MARKER.
fn outside_session() -> Tree {
    let outside = Tree::new();
    outside.write(
        &session_file("session.json"),
        format!(r#"{{"id":"{SESSION}","phase":"EXECUTING","task":"{MARKER}"}}"#),
    );
    outside.write(&session_file("findings/secret.md"), MARKER);
    outside.write(
        &session_file("tickets/T-1.json"),
        format!(r#"{{"id":"{MARKER}"}}"#),
    );
    outside.write(
        &session_file("approvals/APR-1.json"),
        format!(r#"{{"request_id":"APR-1","status":"pending","tool_name":"{MARKER}"}}"#),
    );
    outside.write(
        &session_file("events.ndjson"),
        event_line_for_test(MARKER, ""),
    );
    outside.write(
        ".party/active-session.json",
        format!(r#"{{"session_id":"{SESSION}"}}"#),
    );
    outside
}

#[test]
fn the_fixture_ingests_completely() {
    let root = fixture();
    let limits = Limits::default();
    let id = active_session_id(&root, None, &limits).expect("active session");
    assert_eq!(id, FIXTURE_SESSION);
    let dir = root.join(fixture_file(""));

    let snapshot = read_snapshot(&root, &id, &limits);
    assert!(snapshot.skipped.is_empty(), "{:?}", snapshot.skipped);
    let session = snapshot.session.as_ref().expect("session.json");
    assert_eq!(session.id, FIXTURE_SESSION);
    assert_eq!(session.team.as_deref(), Some("bugfix"));
    assert_eq!(session.phase.as_deref(), Some("PENDING_APPROVAL"));
    assert!(session.created_at.is_some());
    assert_eq!(session.completed_at, None);
    let context = session.approval_context.as_ref().expect("approval context");
    assert_eq!(context["previous_phase"], "EXECUTING");
    assert_eq!(session.raw["starting_phase"], "ANALYZING");

    assert_eq!(
        snapshot.findings.len(),
        count_files(&dir.join("findings"), ".md")
    );
    let analysis = snapshot
        .findings
        .iter()
        .find(|f| f.name == "analysis.md")
        .expect("analysis");
    assert!(analysis.content.contains("Root cause"));

    assert_eq!(
        snapshot.tickets.len(),
        count_files(&dir.join("tickets"), ".json")
    );
    let epic = snapshot
        .tickets
        .iter()
        .find(|t| t.id == "PRT-41FBEB")
        .expect("epic");
    assert_eq!(
        (epic.kind.as_deref(), epic.parent_id.as_deref()),
        (Some("epic"), None)
    );
    let task = snapshot
        .tickets
        .iter()
        .find(|t| t.id == "PRT-41FBEB-ANA-001")
        .expect("task");
    assert_eq!(task.parent_id.as_deref(), Some("PRT-41FBEB-ANA"));
    assert_eq!(task.assignee.as_deref(), Some("analyst"));
    assert_eq!(task.status.as_deref(), Some("DONE"));

    assert_eq!(
        snapshot.approvals.len(),
        count_files(&dir.join("approvals"), ".json")
    );
    let pending: Vec<_> = snapshot
        .approvals
        .iter()
        .filter(|a| a.status == "pending")
        .collect();
    assert_eq!(pending.len(), 1);
    let request = pending[0];
    assert_eq!(request.kind, ApprovalKind::Tool);
    assert_eq!(request.request_id, "APR-1795497578015");
    assert_eq!(request.tool_name.as_deref(), Some("Edit"));
    assert_eq!(request.risk_level.as_deref(), Some("MEDIUM"));
    assert!(
        request
            .tool_input
            .as_ref()
            .is_some_and(|input| input["file_path"].is_string())
    );
    assert!(request.requested_at.is_some());
    assert_eq!(request.decision, None);

    let log = fs::read(dir.join("events.ndjson")).expect("events");
    let batch = read_events(&root, &id, 0, &limits).expect("events");
    assert_eq!(batch.events.len(), line_count(&log));
    assert!(batch.skipped.is_empty(), "{:?}", batch.skipped);
    assert_eq!(batch.next_offset, log.len() as u64);
    assert_eq!(batch.events[0].offset, 0);
    assert_strictly_increasing(&batch.events);
    assert!(batch.events.iter().all(|event| event.ts.is_some()));
    assert_eq!(batch.events[0].kind, "pipeline_started");
    assert_eq!(batch.events.last().expect("last").kind, "phase_changed");

    let has_pending = !pending.is_empty();
    let status = derive_status(session.phase.as_deref(), has_pending, None);
    assert_eq!(status, (crate::model::TaskStatus::AwaitingApproval, None));
    let exited = ExitSummary {
        code: Some(0),
        signal: None,
        timed_out: false,
        cancelled: false,
        error: None,
    };
    let status = derive_status(session.phase.as_deref(), has_pending, Some(&exited));
    assert_eq!(status.0, "awaiting_approval");
}

#[test]
fn events_read_in_small_windows_match_one_read() {
    let root = fixture();
    let log = fs::read(root.join(fixture_file("events.ndjson"))).expect("events");
    let longest = log
        .split(|&b| b == b'\n')
        .map(<[u8]>::len)
        .max()
        .expect("lines") as u64;
    let whole = read_events(&root, FIXTURE_SESSION, 0, &Limits::default()).expect("events");
    for window in [longest + 1, longest + 2, 2 * longest + 7] {
        let limits = Limits {
            max_events_read_bytes: window,
            ..Limits::default()
        };
        let pieces = read_until_idle(&root, FIXTURE_SESSION, 0, &limits);
        let offsets: Vec<u64> = pieces.events.iter().map(|e| e.offset).collect();
        let expected: Vec<u64> = whole.events.iter().map(|e| e.offset).collect();
        assert_eq!(offsets, expected, "window {window}");
        assert!(pieces.skipped.is_empty());
        assert_eq!(pieces.next_offset, log.len() as u64);
    }
}

#[test]
fn the_active_session_falls_back_to_the_override_then_the_newest_directory() {
    let tree = Tree::fixture_copy();
    let outside = outside_session();
    let limits = Limits::default();
    fs::remove_file(tree.path(".party/active-session.json")).expect("remove");
    fs::create_dir_all(tree.path(".party/sessions/party-bugfix-20250101000000")).expect("older");
    fs::create_dir_all(tree.path(".party/sessions/no-timestamp-here")).expect("odd name");
    // Newest by name, but a link: never chosen.
    tree.link(
        ".party/sessions/party-evil-20991231235959",
        &outside.path(&session_file("")),
    );

    assert_eq!(
        active_session_id(tree.root(), None, &limits).as_deref(),
        Some(FIXTURE_SESSION)
    );
    assert_eq!(
        active_session_id(tree.root(), Some("party-review-20260202020202"), &limits).as_deref(),
        Some("party-review-20260202020202")
    );
    assert_eq!(
        active_session_id(tree.root(), Some("../../etc"), &limits).as_deref(),
        Some(FIXTURE_SESSION)
    );
    assert_eq!(active_session_id(Tree::new().root(), None, &limits), None);
}

#[test]
fn a_traversal_in_a_session_id_is_rejected() {
    let tree = Tree::fixture_copy();
    let limits = Limits::default();
    tree.write(
        ".party/active-session.json",
        r#"{"session_id":"../../etc"}"#,
    );
    assert_eq!(
        active_session_id(tree.root(), None, &limits).as_deref(),
        Some(FIXTURE_SESSION)
    );

    let snapshot = read_snapshot(tree.root(), "../../etc", &limits);
    assert!(snapshot.session.is_none() && snapshot.findings.is_empty());
    assert_eq!(snapshot.skipped.len(), 1);
    let error = read_events(tree.root(), "../../etc", 0, &limits).expect_err("refused");
    assert!(
        matches!(error, PartyError::InvalidSessionId { .. }),
        "{error}"
    );
    let request = pending_request(&read_snapshot(tree.root(), FIXTURE_SESSION, &limits));
    let error = apply_decision(
        tree.root(),
        "..",
        &request.request_id,
        "approve",
        None,
        "u",
        &limits,
    )
    .expect_err("refused");
    assert!(
        matches!(error, PartyError::InvalidSessionId { .. }),
        "{error}"
    );
}

#[test]
fn session_ids_are_plain_names() {
    for id in [FIXTURE_SESSION, "a", "a.b_c-1", "TICKET-001"] {
        assert!(is_valid_session_id(id), "{id}");
    }
    for id in [
        "", ".", "..", "../x", "a/b", "a\\b", ".hidden", "a b", "é", "/etc",
    ] {
        assert!(!is_valid_session_id(id), "{id}");
    }
    assert!(!is_valid_session_id(&"a".repeat(256)));
}

#[test]
fn a_half_written_line_waits_and_is_then_read_once() {
    let tree = Tree::new();
    let limits = Limits::default();
    let events = session_file("events.ndjson");
    let first = event_line_for_test("pipeline_started", "");
    let second = event_line_for_test("ticket_created", "");
    tree.write(&events, format!("{first}{second}"));

    let batch = read_events(tree.root(), SESSION, 0, &limits).expect("read");
    assert_eq!(batch.events.len(), 2);
    assert_eq!(batch.next_offset, (first.len() + second.len()) as u64);

    let third = event_line_for_test("phase_changed", "");
    let (head, tail) = third.split_at(third.len() / 2);
    tree.append(&events, head);
    let waiting = read_events(tree.root(), SESSION, batch.next_offset, &limits).expect("read");
    assert!(waiting.events.is_empty() && waiting.skipped.is_empty());
    assert_eq!(waiting.next_offset, batch.next_offset);

    tree.append(&events, tail);
    let completed = read_events(tree.root(), SESSION, waiting.next_offset, &limits).expect("read");
    assert_eq!(completed.events.len(), 1);
    assert_eq!(completed.events[0].offset, batch.next_offset);
    assert_eq!(completed.events[0].kind, "phase_changed");
    assert_eq!(
        completed.next_offset,
        fs::metadata(tree.path(&events)).expect("len").len()
    );

    let again = read_events(tree.root(), SESSION, completed.next_offset, &limits).expect("read");
    assert!(again.events.is_empty() && again.skipped.is_empty());
    assert_eq!(again.next_offset, completed.next_offset);

    let all: Vec<PartyEvent> = batch.events.into_iter().chain(completed.events).collect();
    assert_strictly_increasing(&all);
}

#[test]
fn garbage_lines_are_skipped_and_reported_around_valid_ones() {
    let tree = Tree::new();
    let lines = [
        event_line_for_test("pipeline_started", ""),
        "not json at all\n".to_owned(),
        "[1,2,3]\n".to_owned(),
        "\"just a string\"\n".to_owned(),
        "\n".to_owned(),
        "{\"type\":\"cut short\",\n".to_owned(),
        "\u{0}\u{1}binary\n".to_owned(),
        event_line_for_test("phase_changed", ""),
    ];
    let offsets: Vec<u64> = lines
        .iter()
        .scan(0, |start, line| {
            let offset = *start;
            *start += line.len() as u64;
            Some(offset)
        })
        .collect();
    tree.write(&session_file("events.ndjson"), lines.concat());

    let batch = read_events(tree.root(), SESSION, 0, &Limits::default()).expect("read");
    let kinds: Vec<&str> = batch.events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["pipeline_started", "phase_changed"]);
    assert_eq!(batch.events[0].offset, offsets[0]);
    assert_eq!(batch.events[1].offset, offsets[7]);
    let skipped: Vec<u64> = batch.skipped.iter().map(|(offset, _)| *offset).collect();
    assert_eq!(
        skipped,
        [offsets[1], offsets[2], offsets[3], offsets[5], offsets[6]]
    );
    assert!(batch.skipped.iter().all(|(_, reason)| !reason.is_empty()));
    assert_eq!(batch.next_offset, lines.concat().len() as u64);
}

#[test]
fn unknown_event_types_and_fields_are_kept() {
    let tree = Tree::new();
    let content = [
        event_line_for_test("brand_new_event", r#","extra":{"nested":true}"#),
        "{\"ts\":\"yesterday\",\"data\":{\"x\":1}}\n".to_owned(),
    ]
    .concat();
    tree.write(&session_file("events.ndjson"), content);

    let batch = read_events(tree.root(), SESSION, 0, &Limits::default()).expect("read");
    assert!(batch.skipped.is_empty());
    assert_eq!(batch.events.len(), 2);
    assert_eq!(batch.events[0].kind, "brand_new_event");
    assert_eq!(batch.events[0].raw["extra"]["nested"], true);
    assert!(batch.events[0].ts.is_some());
    assert_eq!(batch.events[1].kind, "unknown");
    assert_eq!(batch.events[1].ts, None);
    assert_eq!(batch.events[1].raw["data"]["x"], 1);
}

#[test]
fn a_line_longer_than_the_read_limit_is_skipped_not_stuck() {
    let tree = Tree::new();
    let limits = Limits {
        max_events_read_bytes: 128,
        ..Limits::default()
    };
    let events = session_file("events.ndjson");
    let short = event_line_for_test("a", "");
    let long = event_line_for_test("big", &format!(r#","blob":"{}""#, "x".repeat(1000)));
    assert!(short.len() < 128 && long.len() > 128);
    tree.write(&events, format!("{short}{}", long.trim_end()));

    let waiting = read_until_idle(tree.root(), SESSION, 0, &limits);
    assert_eq!(waiting.events.len(), 1);
    assert_eq!(waiting.skipped.len(), 1, "the long line is reported once");
    assert_eq!(waiting.skipped[0].0, short.len() as u64);
    assert!(
        waiting.skipped[0].1.contains("longer"),
        "{}",
        waiting.skipped[0].1
    );
    // Not rescanned: the next read goes on from where the look for its end stopped.
    let file_len = fs::metadata(tree.path(&events)).expect("len").len();
    assert_eq!(waiting.next_offset, file_len);
    assert!(waiting.inside_long_line);

    tree.append(&events, &format!("\n{short}"));
    let done = read_until_idle_from(tree.root(), SESSION, waiting.next_offset, true, &limits);
    assert_eq!(done.events.len(), 1);
    assert_eq!(
        done.events[0].offset,
        long.len() as u64 + short.len() as u64
    );
    assert!(done.skipped.is_empty(), "{:?}", done.skipped);
    assert_eq!(
        done.next_offset,
        fs::metadata(tree.path(&events)).expect("len").len()
    );
}

#[test]
fn an_unfinished_line_is_looked_at_once_per_byte_then_read_whole() {
    let tree = Tree::new();
    let limits = Limits {
        max_events_read_bytes: 256,
        ..Limits::default()
    };
    let events = session_file("events.ndjson");
    let first = event_line_for_test("a", "");
    let partial = r#"{"type":"b","pad":"#;
    tree.write(&events, format!("{first}{partial}"));
    let batch = read_events(tree.root(), SESSION, 0, &limits).expect("read");
    assert_eq!(batch.events.len(), 1);
    let cursor = batch.cursor();
    assert_eq!(cursor.offset, first.len() as u64);
    assert_eq!(cursor.scanned_to, (first.len() + partial.len()) as u64);

    // Plant a '\n' inside the bytes already looked at (same length), then let the line grow:
    // a reader that rescanned from the line's start would find it and skip a "line".
    let path = tree.path(&events);
    let mut bytes = fs::read(&path).expect("read");
    bytes[first.len() + 1] = b'\n';
    bytes.extend_from_slice(br#""more"#);
    fs::write(&path, &bytes).expect("write");
    let grown = read_events_at(tree.root(), SESSION, cursor, &limits).expect("read");
    assert!(
        grown.events.is_empty() && grown.skipped.is_empty(),
        "{grown:?}"
    );
    assert_eq!(grown.next_offset, cursor.offset);
    assert_eq!(
        grown.scanned_to,
        bytes.len() as u64,
        "only the new bytes were looked at"
    );
    let rescanned = read_events(tree.root(), SESSION, cursor.offset, &limits).expect("read");
    assert_eq!(
        rescanned.skipped.len(),
        1,
        "a rescan sees the planted newline"
    );

    // Unchanged: nothing is read. Growing past the cap: skipped once, never stuck.
    let same = read_events_at(tree.root(), SESSION, grown.cursor(), &limits).expect("read");
    assert_eq!(same.cursor(), grown.cursor());
    tree.append(&events, &"x".repeat(300));
    let long = read_events_at(tree.root(), SESSION, grown.cursor(), &limits).expect("read");
    assert_eq!(long.skipped.len(), 1, "{:?}", long.skipped);
    assert!(long.inside_long_line);
    let end = fs::metadata(&path).expect("len").len();
    assert_eq!(long.next_offset, end);
    tree.append(&events, &format!("\n{first}"));
    let after = read_events_at(tree.root(), SESSION, long.cursor(), &limits).expect("read");
    assert_eq!(after.events.len(), 1);
    assert_eq!(after.events[0].offset, end + 1);
    assert!(after.skipped.is_empty());
}

#[test]
fn a_truncated_or_removed_log_is_reported_and_the_offset_kept() {
    let tree = Tree::new();
    let limits = Limits::default();
    let events = session_file("events.ndjson");
    assert_eq!(
        read_events(tree.root(), SESSION, 0, &limits)
            .expect("missing")
            .next_offset,
        0
    );
    tree.write(&events, event_line_for_test("a", "").repeat(3));
    let batch = read_events(tree.root(), SESSION, 0, &limits).expect("read");

    tree.write(&events, event_line_for_test("b", ""));
    let after = read_events(tree.root(), SESSION, batch.next_offset, &limits).expect("read");
    assert!(after.events.is_empty());
    assert_eq!(after.next_offset, batch.next_offset);
    assert_eq!(after.skipped.len(), 1);
    assert!(
        after.skipped[0].1.contains("truncated"),
        "{}",
        after.skipped[0].1
    );

    fs::remove_file(tree.path(&events)).expect("remove");
    let gone = read_events(tree.root(), SESSION, batch.next_offset, &limits).expect("read");
    assert_eq!((gone.events.len(), gone.skipped.len()), (0, 1));
    assert_eq!(gone.next_offset, batch.next_offset);
}

#[test]
fn read_capped_rejects_paths_that_leave_the_root() {
    let tree = Tree::new();
    tree.write("ok.txt", "fine");
    tree.write("a/ok.txt", "fine");
    assert_eq!(
        read_capped(tree.root(), Path::new("ok.txt"), 10).expect("read"),
        b"fine"
    );
    let absolute = tree.path("ok.txt");
    for bad in [
        absolute.as_path(),
        Path::new("../ok.txt"),
        Path::new("a/../ok.txt"),
        Path::new("./ok.txt"),
        Path::new(""),
    ] {
        let error = read_capped(tree.root(), bad, 10).expect_err("refused");
        assert!(
            matches!(error, PartyError::Escape { .. }),
            "{}: {error}",
            bad.display()
        );
    }
}

#[test]
fn read_capped_refuses_links_in_any_component() {
    let tree = Tree::new();
    let outside = Tree::new();
    let secret = outside.write("d/secret.txt", MARKER);
    tree.link("link.txt", &secret);
    tree.link("dirlink", &outside.path("d"));
    tree.write("real/ok.txt", "ok");
    tree.link("real/inner", &outside.path("d"));

    for (relative, refused) in [
        ("link.txt", "link.txt"),
        ("dirlink/secret.txt", "dirlink"),
        ("real/inner/secret.txt", "real/inner"),
    ] {
        let error = read_capped(tree.root(), Path::new(relative), 1000).expect_err("refused");
        match error {
            PartyError::Symlink { path } => assert_eq!(path, Path::new(refused)),
            other => panic!("{relative}: {other}"),
        }
    }
}

#[test]
fn the_open_itself_refuses_a_link_in_the_last_component() {
    // Checks the O_NOFOLLOW value for this architecture, without the lstat in front.
    let tree = Tree::new();
    let outside = Tree::new();
    tree.link("link.txt", &outside.write("secret.txt", MARKER));
    let error = open_no_follow(
        &tree.path("link.txt"),
        Path::new("link.txt"),
        OpenOptions::new().read(true),
    )
    .expect_err("refused");
    assert!(matches!(error, PartyError::Symlink { .. }), "{error}");
}

#[test]
fn a_file_swapped_for_a_link_while_opening_is_refused() {
    let tree = Tree::new();
    let outside = Tree::new();
    let secret = outside.write("secret.txt", MARKER);
    let path = tree.write("f.json", "{}");
    let error = open_checked_with_race_windows(
        tree.root(),
        Path::new("f.json"),
        OpenOptions::new().read(true),
        |at| {
            if at != CheckPoint::FileChecked {
                return;
            }
            fs::remove_file(&path).expect("remove");
            symlink(&secret, &path).expect("symlink");
        },
    )
    .expect_err("refused");
    assert!(matches!(error, PartyError::Symlink { .. }), "{error}");
}

#[test]
fn a_file_swapped_for_another_file_while_opening_is_refused() {
    let tree = Tree::new();
    let path = tree.write("f.json", "{}");
    let other = tree.write("other.json", MARKER);
    let error = open_checked_with_race_windows(
        tree.root(),
        Path::new("f.json"),
        OpenOptions::new().read(true),
        |at| {
            if at != CheckPoint::FileChecked {
                return;
            }
            fs::rename(&other, &path).expect("rename");
        },
    )
    .expect_err("refused");
    assert!(matches!(error, PartyError::Replaced { .. }), "{error}");
}

#[test]
fn a_file_swapped_for_a_directory_while_opening_is_refused() {
    let tree = Tree::new();
    let path = tree.write("f.json", "{}");
    let error = open_checked_with_race_windows(
        tree.root(),
        Path::new("f.json"),
        OpenOptions::new().read(true),
        |at| {
            if at != CheckPoint::FileChecked {
                return;
            }
            fs::remove_file(&path).expect("remove");
            fs::create_dir(&path).expect("mkdir");
        },
    )
    .expect_err("refused");
    assert!(matches!(error, PartyError::NotRegular { .. }), "{error}");
}

#[test]
fn a_parent_swapped_for_a_link_while_opening_is_refused() {
    // Before the file is checked (so the file's identity matches) and after it is.
    for moment in [CheckPoint::DirectoriesChecked, CheckPoint::FileChecked] {
        let tree = Tree::new();
        let outside = Tree::new();
        outside.write("d/f.json", MARKER);
        tree.write("d/f.json", "{}");
        let error = open_checked_with_race_windows(
            tree.root(),
            Path::new("d/f.json"),
            OpenOptions::new().read(true),
            |at| {
                if at == moment {
                    fs::rename(tree.path("d"), tree.path("d-old")).expect("rename");
                    symlink(outside.path("d"), tree.path("d")).expect("symlink");
                }
            },
        )
        .expect_err("read through a swapped parent");
        assert!(
            matches!(error, PartyError::Replaced { .. }),
            "{moment:?}: {error}"
        );
    }
}

#[test]
fn rechecking_directories_notices_a_swap() {
    let tree = Tree::new();
    let outside = Tree::new();
    tree.write("d/f.json", "{}");
    let parts = [OsStr::new("d")];
    let checked = check_directories(tree.root(), Path::new("d/f.json"), &parts).expect("check");
    recheck_directories(&checked).expect("unchanged");

    fs::rename(tree.path("d"), tree.path("d-old")).expect("rename");
    symlink(outside.root(), tree.path("d")).expect("symlink");
    assert!(matches!(
        recheck_directories(&checked),
        Err(PartyError::Replaced { .. })
    ));

    fs::remove_file(tree.path("d")).expect("remove link");
    fs::create_dir(tree.path("d")).expect("another directory");
    assert!(matches!(
        recheck_directories(&checked),
        Err(PartyError::Replaced { .. })
    ));
}

#[test]
fn read_capped_refuses_what_is_not_a_regular_file() {
    let tree = Tree::new();
    fs::create_dir(tree.path("dir.json")).expect("mkdir");
    let _socket = UnixListener::bind(tree.path("sock.json")).expect("socket");
    tree.write("file/inner.json", "{}");
    tree.write("plain", "x");
    for relative in ["dir.json", "sock.json"] {
        let error = read_capped(tree.root(), Path::new(relative), 100).expect_err("refused");
        assert!(
            matches!(error, PartyError::NotRegular { .. }),
            "{relative}: {error}"
        );
    }
    let error = read_capped(tree.root(), Path::new("plain/x.json"), 100).expect_err("refused");
    assert!(matches!(error, PartyError::NotDirectory { .. }), "{error}");
}

#[test]
fn read_capped_refuses_files_over_the_cap() {
    let tree = Tree::new();
    tree.write("big.md", vec![b'a'; 5000]);
    // Measured before reading: the real size, not the cap plus one.
    let error = read_capped(tree.root(), Path::new("big.md"), 10).expect_err("refused");
    assert!(
        matches!(
            error,
            PartyError::TooLarge {
                size: 5000,
                max: 10,
                ..
            }
        ),
        "{error}"
    );
    assert_eq!(
        read_capped(tree.root(), Path::new("big.md"), 5000)
            .expect("read")
            .len(),
        5000
    );
}

/// A file that keeps growing; reading far past the cap is a failure of the test.
struct Growing {
    delivered: usize,
}

impl Read for Growing {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        assert!(self.delivered < 1000, "read far past the cap");
        let n = buffer.len().min(4);
        buffer[..n].fill(b'a');
        self.delivered += n;
        Ok(n)
    }
}

#[test]
fn reading_stops_one_byte_past_the_cap_even_when_the_file_keeps_growing() {
    let mut growing = Growing { delivered: 0 };
    let error = read_at_most(&mut growing, 10, Path::new("growing")).expect_err("refused");
    assert!(growing.delivered <= 12, "read {} bytes", growing.delivered);
    assert!(
        matches!(
            error,
            PartyError::TooLarge {
                size: 11,
                max: 10,
                ..
            }
        ),
        "{error}"
    );
    assert_eq!(
        read_at_most(&b"0123456789"[..], 10, Path::new("x"))
            .expect("read")
            .len(),
        10
    );
}

#[test]
fn listings_skip_links_other_kinds_and_odd_names() {
    let tree = Tree::new();
    let outside = Tree::new();
    let findings = session_file("findings");
    tree.write(&format!("{findings}/a.md"), "a");
    tree.write(&format!("{findings}/c.md"), "c");
    tree.link(&format!("{findings}/b.md"), &outside.write("b.md", MARKER));
    fs::create_dir(tree.path(&format!("{findings}/sub.md"))).expect("mkdir");
    tree.write(&format!("{findings}/.hidden.md"), "h");
    tree.write(&format!("{findings}/.md"), "h");
    tree.write(&format!("{findings}/notes.txt"), "n");

    let mut skipped = Vec::new();
    let names = list_names(
        tree.root(),
        Path::new(&findings),
        EntryKind::File,
        |n| has_extension(n, ".md"),
        &mut skipped,
    );
    assert_eq!(names, ["a.md", "c.md"]);
    let mut reported: Vec<String> = skipped
        .iter()
        .map(|(p, _)| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    reported.sort();
    assert_eq!(reported, ["b.md", "sub.md"]);
}

#[test]
fn a_linked_finding_is_skipped() {
    let tree = Tree::new();
    let outside = Tree::new();
    tree.write(
        &session_file("session.json"),
        format!(r#"{{"id":"{SESSION}","phase":"ANALYZING"}}"#),
    );
    tree.write(&session_file("findings/ok.md"), "# ok");
    tree.link(
        &session_file("findings/evil.md"),
        &outside.write("secret.md", MARKER),
    );

    let snapshot = read_snapshot(tree.root(), SESSION, &Limits::default());
    let names: Vec<&str> = snapshot.findings.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["ok.md"]);
    assert!(
        snapshot
            .skipped
            .iter()
            .any(|(path, _)| path.ends_with("findings/evil.md"))
    );
    assert!(!format!("{snapshot:?}").contains(MARKER));
}

#[test]
fn a_linked_session_directory_reads_nothing_outside() {
    let tree = Tree::new();
    let outside = outside_session();
    let limits = Limits::default();
    tree.link(
        session_file("").trim_end_matches('/'),
        &outside.path(&session_file("")),
    );

    assert_eq!(active_session_id(tree.root(), None, &limits), None);
    let snapshot = read_snapshot(tree.root(), SESSION, &limits);
    assert!(snapshot.session.is_none());
    assert!(
        snapshot.findings.is_empty()
            && snapshot.tickets.is_empty()
            && snapshot.approvals.is_empty()
    );
    assert!(!snapshot.skipped.is_empty());
    assert!(!format!("{snapshot:?}").contains(MARKER));
    let error = read_events(tree.root(), SESSION, 0, &limits).expect_err("refused");
    assert!(matches!(error, PartyError::Symlink { .. }), "{error}");
    assert!(!error.to_string().contains(MARKER));
}

#[test]
fn a_linked_party_directory_reads_nothing_outside() {
    let tree = Tree::new();
    let outside = outside_session();
    let limits = Limits::default();
    tree.link(".party", &outside.path(".party"));

    assert_eq!(active_session_id(tree.root(), None, &limits), None);
    let snapshot = read_snapshot(tree.root(), SESSION, &limits);
    assert!(snapshot.session.is_none() && snapshot.findings.is_empty());
    assert!(!format!("{snapshot:?}").contains(MARKER));
    let error = read_events(tree.root(), SESSION, 0, &limits).expect_err("refused");
    assert!(matches!(error, PartyError::Symlink { .. }), "{error}");

    let outside_request = ApprovalRequest {
        request_id: "APR-1".to_owned(),
        kind: ApprovalKind::Tool,
        status: "pending".to_owned(),
        risk_level: None,
        tool_name: None,
        tool_input: None,
        summary: None,
        diff_stat: None,
        requested_at: None,
        decision: None,
        raw: Value::Null,
    };
    let before = fs::read(outside.path(&session_file("approvals/APR-1.json"))).expect("read");
    apply_decision(
        tree.root(),
        SESSION,
        &outside_request.request_id,
        "approve",
        None,
        "u",
        &limits,
    )
    .expect_err("refused");
    assert_eq!(
        fs::read(outside.path(&session_file("approvals/APR-1.json"))).expect("read"),
        before
    );
}

#[test]
fn an_oversized_finding_is_skipped_and_the_others_kept() {
    let tree = Tree::new();
    let limits = Limits {
        max_finding_bytes: 100,
        ..Limits::default()
    };
    tree.write(&session_file("findings/a.md"), "a");
    tree.write(&session_file("findings/big.md"), "b".repeat(101));
    tree.write(&session_file("findings/z.md"), "z");

    let snapshot = read_snapshot(tree.root(), SESSION, &limits);
    let names: Vec<&str> = snapshot.findings.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["a.md", "z.md"]);
    let (path, reason) = &snapshot.skipped[0];
    assert!(path.ends_with("findings/big.md"));
    assert!(reason.contains("over the limit"), "{reason}");
    assert_eq!(snapshot.skipped.len(), 1);
}

#[test]
fn corrupt_empty_and_half_written_json_is_skipped() {
    let tree = Tree::new();
    tree.write(&session_file("session.json"), r#"{"id":"x","pha"#);
    tree.write(
        &session_file("tickets/good.json"),
        r#"{"id":"T-1","type":"task"}"#,
    );
    tree.write(&session_file("tickets/corrupt.json"), r#"{"id": "T-2", "#);
    tree.write(&session_file("tickets/empty.json"), "");
    tree.write(&session_file("tickets/array.json"), "[1]");
    tree.write(
        &session_file("tickets/no-id.json"),
        r#"{"title":"named by its file"}"#,
    );
    tree.write(&session_file("approvals/APR-2.json"), "  \n");
    tree.write(
        &session_file("approvals/APR-3.json"),
        r#"{"request_id":"APR-3","status":"pending"}"#,
    );

    let snapshot = read_snapshot(tree.root(), SESSION, &Limits::default());
    assert!(snapshot.session.is_none());
    let ids: Vec<&str> = snapshot.tickets.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(ids, ["T-1", "no-id"]);
    let approvals: Vec<&str> = snapshot
        .approvals
        .iter()
        .map(|a| a.request_id.as_str())
        .collect();
    assert_eq!(approvals, ["APR-3"]);
    assert_eq!(snapshot.approvals[0].kind, ApprovalKind::Tool);
    let mut skipped: Vec<String> = snapshot
        .skipped
        .iter()
        .map(|(path, _)| path.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    skipped.sort();
    assert_eq!(
        skipped,
        [
            "APR-2.json",
            "array.json",
            "corrupt.json",
            "empty.json",
            "session.json"
        ]
    );
}

#[test]
fn derive_status_follows_the_table() {
    let exit = |code: i32| ExitSummary {
        code: Some(code),
        signal: None,
        timed_out: false,
        cancelled: false,
        error: None,
    };
    let (ok, crash) = (exit(0), exit(1));
    let cases: [(Option<&str>, bool, Option<&ExitSummary>, &str); 18] = [
        (None, false, None, "running"),
        (Some("EXECUTING"), false, None, "running"),
        (Some("EXECUTING"), true, None, "running"),
        (Some("PENDING_APPROVAL"), true, None, "awaiting_approval"),
        (Some("PENDING_APPROVAL"), false, None, "awaiting_approval"),
        (Some("AWAITING_APPROVAL"), true, None, "awaiting_approval"),
        (Some("AWAITING_APPROVAL"), false, None, "running"),
        (Some("DONE"), false, None, "done"),
        (Some("DONE"), false, Some(&crash), "done"),
        (Some("FAILED"), false, Some(&ok), "failed"),
        (Some("ROLLED_BACK"), false, Some(&ok), "rolled_back"),
        (
            Some("PENDING_APPROVAL"),
            true,
            Some(&ok),
            "awaiting_approval",
        ),
        (
            Some("AWAITING_APPROVAL"),
            true,
            Some(&ok),
            "awaiting_approval",
        ),
        (Some("EXECUTING"), true, Some(&ok), "awaiting_approval"),
        (Some("EXECUTING"), false, Some(&ok), "failed"),
        (Some("AWAITING_APPROVAL"), false, Some(&ok), "failed"),
        (Some("PENDING_APPROVAL"), false, Some(&crash), "failed"),
        (None, false, Some(&crash), "failed"),
    ];
    for (phase, pending, exited, expected) in cases {
        let (status, reason) = derive_status(phase, pending, exited);
        assert_eq!(
            status, expected,
            "{phase:?} pending={pending} exited={exited:?}"
        );
        assert_eq!(
            reason.is_some(),
            status == "failed",
            "{phase:?}: {reason:?}"
        );
    }

    let reason =
        |exit: ExitSummary, phase| derive_status(phase, false, Some(&exit)).1.expect("reason");
    let text = reason(exit(1), Some("EXECUTING"));
    assert!(
        text.contains("code 1") && text.contains("EXECUTING"),
        "{text}"
    );
    let killed = ExitSummary {
        code: None,
        signal: Some(9),
        ..exit(0)
    };
    assert!(reason(killed, Some("REVIEWING")).contains("signal 9"));
    let max_turns = ExitSummary {
        error: Some("error_max_turns".to_owned()),
        ..exit(0)
    };
    assert!(reason(max_turns, Some("PLANNING")).contains("error_max_turns"));
    assert!(
        reason(
            ExitSummary {
                timed_out: true,
                ..exit(0)
            },
            Some("PLANNING")
        )
        .contains("timed out")
    );
    assert!(
        reason(
            ExitSummary {
                cancelled: true,
                ..exit(0)
            },
            Some("PLANNING")
        )
        .contains("cancelled")
    );
    assert!(reason(exit(0), None).contains("before the pipeline"));

    for phase in ["DONE", "ROLLED_BACK", "FAILED"] {
        assert!(is_terminal_phase(phase), "{phase}");
    }
    for phase in [
        "IDLE",
        "EXECUTING",
        "APPROVED",
        "REJECTED",
        "REVISION",
        "AWAITING_APPROVAL",
        "PENDING_APPROVAL",
        "done",
    ] {
        assert!(!is_terminal_phase(phase), "{phase}");
    }
}

#[test]
fn approving_the_fixture_tool_request_updates_the_files_like_the_hook() {
    let tree = Tree::fixture_copy();
    let root = tree.root();
    let limits = Limits::default();
    edit_json(&tree.path(&fixture_file("session.json")), |session| {
        session.insert("x_future_field".into(), json!({ "keep": true }));
    });
    let approval_file = tree.path(&fixture_file("approvals/APR-1795497578015.json"));
    edit_json(&approval_file, |approval| {
        approval.insert("x_extra".into(), json!([1, 2]));
    });
    let before = read_snapshot(root, FIXTURE_SESSION, &limits);
    let history_before = before.session.as_ref().expect("session").raw["phase_history"]
        .as_array()
        .expect("history")
        .len();
    let events_before = read_events(root, FIXTURE_SESSION, 0, &limits).expect("events");
    let request = pending_request(&before);

    apply_decision(
        root,
        FIXTURE_SESSION,
        &request.request_id,
        "approve",
        Some("looks good"),
        "alice@example.com",
        &limits,
    )
    .expect("applied");

    let after = read_snapshot(root, FIXTURE_SESSION, &limits);
    assert!(after.skipped.is_empty(), "{:?}", after.skipped);
    let decided = after
        .approvals
        .iter()
        .find(|a| a.request_id == request.request_id)
        .expect("request");
    assert_eq!(decided.status, "decided");
    assert_eq!(decided.decision.as_deref(), Some("approve"));
    assert_eq!(decided.raw["decision_comment"], "looks good");
    assert_eq!(decided.raw["decided_by"], "alice@example.com");
    let decided_at = decided.raw["decided_at"].as_str().expect("decided_at");
    assert!(
        DateTime::parse_from_rfc3339(decided_at).is_ok(),
        "{decided_at}"
    );
    assert_eq!(decided.raw["x_extra"], json!([1, 2]));
    assert_eq!(decided.raw["tool_input"], request.raw["tool_input"]);
    assert_eq!(decided.raw["retries"], 0);

    let session = after.session.as_ref().expect("session");
    assert_eq!(session.phase.as_deref(), Some("EXECUTING"));
    assert!(session.approval_context.is_none());
    assert!(session.raw.get("approval_context").is_none());
    assert_eq!(session.raw["x_future_field"]["keep"], true);
    assert_eq!(session.raw["starting_phase"], "ANALYZING");
    assert_eq!(session.raw["members"].as_array().expect("members").len(), 4);
    let grants = session.raw["approval_grants"].as_array().expect("grants");
    assert_eq!(grants.len(), 1);
    assert_eq!(grants[0]["request_id"], "APR-1795497578015");
    assert_eq!(grants[0]["tool_name"], "Edit");
    assert_eq!(grants[0]["fingerprint"], request.raw["fingerprint"]);
    assert_eq!(grants[0]["uses_left"], 1);
    let granted =
        DateTime::parse_from_rfc3339(grants[0]["granted_at"].as_str().expect("granted_at"))
            .expect("time");
    let expires =
        DateTime::parse_from_rfc3339(grants[0]["expires_at"].as_str().expect("expires_at"))
            .expect("time");
    assert_eq!(
        expires - granted,
        TimeDelta::minutes(GRANT_LIFETIME_MINUTES)
    );
    let history = session.raw["phase_history"].as_array().expect("history");
    assert_eq!(history.len(), history_before + 1);
    assert_eq!(history.last().expect("entry")["phase"], "EXECUTING");

    let new =
        read_events(root, FIXTURE_SESSION, events_before.next_offset, &limits).expect("events");
    assert!(new.skipped.is_empty(), "{:?}", new.skipped);
    let kinds: Vec<&str> = new.events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["decision_made", "phase_changed"]);
    let made = &new.events[0].raw;
    assert_eq!(made["sessionId"], FIXTURE_SESSION);
    assert_eq!(made["data"]["request_id"], "APR-1795497578015");
    assert_eq!(made["data"]["decision"], "approve");
    assert_eq!(made["data"]["comment"], "looks good");
    assert_eq!(made["data"]["decided_by"], "alice@example.com");
    let changed = &new.events[1].raw["data"];
    assert_eq!(
        (changed["from"].as_str(), changed["to"].as_str()),
        (Some("PENDING_APPROVAL"), Some("EXECUTING"))
    );
    assert!(
        changed["reason"]
            .as_str()
            .expect("reason")
            .contains("APR-1795497578015")
    );
    assert!(new.events.iter().all(|e| e.ts.is_some()));
    let all = read_events(root, FIXTURE_SESSION, 0, &limits).expect("events");
    assert_eq!(all.events.len(), events_before.events.len() + 2);
    assert_strictly_increasing(&all.events);

    assert_eq!(
        derive_status(session.phase.as_deref(), false, None).0,
        "running"
    );
    for dir in ["approvals", ""] {
        let leftovers: Vec<_> = fs::read_dir(tree.path(&fixture_file(dir)))
            .expect("dir")
            .filter_map(|entry| entry.ok())
            .filter(|entry| entry.file_name().to_string_lossy().starts_with('.'))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    let error = apply_decision(
        root,
        FIXTURE_SESSION,
        &request.request_id,
        "approve",
        None,
        "bob",
        &limits,
    )
    .expect_err("decided already");
    assert!(
        matches!(error, PartyError::NotPending { ref status, .. } if status == "decided"),
        "{error}"
    );
    let unchanged = read_events(root, FIXTURE_SESSION, 0, &limits).expect("events");
    assert_eq!(unchanged.events.len(), all.events.len());
}

#[test]
fn a_result_decision_moves_the_phase_out_of_awaiting_approval() {
    for (decision, phase) in [
        ("approve", "APPROVED"),
        ("reject", "REJECTED"),
        ("revise", "REVISION"),
    ] {
        let tree = Tree::new();
        let limits = Limits::default();
        tree.write(
            &session_file("session.json"),
            format!(r#"{{"id":"{SESSION}","phase":"AWAITING_APPROVAL","custom":1}}"#),
        );
        tree.write(
            &session_file("approvals/20260101T120500.json"),
            format!(r#"{{"session_id":"{SESSION}","summary":"null guard added","git_diff_stat":"1 file changed","requested_at":"2026-01-01T12:05:00.000Z","status":"pending"}}"#),
        );
        let snapshot = read_snapshot(tree.root(), SESSION, &limits);
        let request = pending_request(&snapshot);
        assert_eq!(request.kind, ApprovalKind::Result);
        assert_eq!(request.request_id, "20260101T120500");
        assert_eq!(request.summary.as_deref(), Some("null guard added"));
        assert_eq!(request.diff_stat.as_deref(), Some("1 file changed"));
        assert_eq!(
            derive_status(Some("AWAITING_APPROVAL"), true, None).0,
            "awaiting_approval"
        );

        apply_decision(
            tree.root(),
            SESSION,
            &request.request_id,
            decision,
            None,
            "carol",
            &limits,
        )
        .expect("applied");

        let after = read_snapshot(tree.root(), SESSION, &limits);
        let session = after.session.expect("session");
        assert_eq!(session.phase.as_deref(), Some(phase));
        assert_eq!(session.raw["custom"], 1);
        assert!(session.raw.get("approval_grants").is_none());
        assert_eq!(after.approvals[0].status, "decided");
        assert_eq!(after.approvals[0].decision.as_deref(), Some(decision));
        assert_eq!(after.approvals[0].raw["decision_comment"], "");
        let events = read_events(tree.root(), SESSION, 0, &limits).expect("events");
        let kinds: Vec<&str> = events.events.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(kinds, ["decision_made", "phase_changed"]);
        assert_eq!(events.events[1].raw["data"]["from"], "AWAITING_APPROVAL");
        assert_eq!(events.events[1].raw["data"]["to"], phase);
    }
}

#[test]
fn a_decision_moves_the_phase_only_out_of_the_waiting_phase() {
    let tree = Tree::new();
    let limits = Limits::default();
    tree.write(
        &session_file("session.json"),
        format!(r#"{{"id":"{SESSION}","phase":"REVIEWING"}}"#),
    );
    tree.write(
        &session_file("approvals/20260101T120500.json"),
        format!(r#"{{"session_id":"{SESSION}","summary":"s","status":"pending"}}"#),
    );
    let request = pending_request(&read_snapshot(tree.root(), SESSION, &limits));

    apply_decision(
        tree.root(),
        SESSION,
        &request.request_id,
        "approve",
        None,
        "erin",
        &limits,
    )
    .expect("applied");

    let after = read_snapshot(tree.root(), SESSION, &limits);
    let session = after.session.expect("session");
    assert_eq!(session.phase.as_deref(), Some("REVIEWING"));
    assert!(session.raw.get("phase_history").is_none());
    assert_eq!(after.approvals[0].status, "decided");
    let events = read_events(tree.root(), SESSION, 0, &limits).expect("events");
    let kinds: Vec<&str> = events.events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["decision_made"]);
    assert_eq!(events.events[0].raw["data"]["phase"], "REVIEWING");
}

#[test]
fn a_decision_refuses_linked_files_and_changes_nothing() {
    let limits = Limits::default();
    for linked in ["session.json", "events.ndjson"] {
        let tree = Tree::fixture_copy();
        let outside = Tree::new();
        let request = pending_request(&read_snapshot(tree.root(), FIXTURE_SESSION, &limits));
        let target = outside.write(
            "target",
            fs::read(tree.path(&fixture_file(linked))).expect("read"),
        );
        tree.link(&fixture_file(linked), &target);
        let approval_before =
            fs::read(tree.path(&fixture_file("approvals/APR-1795497578015.json"))).expect("read");

        let error = apply_decision(
            tree.root(),
            FIXTURE_SESSION,
            &request.request_id,
            "approve",
            None,
            "u",
            &limits,
        )
        .expect_err("refused");
        assert!(
            matches!(error, PartyError::Symlink { .. }),
            "{linked}: {error}"
        );
        assert_eq!(
            fs::read(&target).expect("read"),
            fs::read(fixture().join(fixture_file(linked))).expect("read")
        );
        assert_eq!(
            fs::read(tree.path(&fixture_file("approvals/APR-1795497578015.json"))).expect("read"),
            approval_before
        );
    }

    let tree = Tree::fixture_copy();
    let outside = Tree::new();
    let request = pending_request(&read_snapshot(tree.root(), FIXTURE_SESSION, &limits));
    let approval = fixture_file("approvals/APR-1795497578015.json");
    let target = outside.write(
        "approval.json",
        fs::read(tree.path(&approval)).expect("read"),
    );
    tree.link(&approval, &target);
    let error = apply_decision(
        tree.root(),
        FIXTURE_SESSION,
        &request.request_id,
        "approve",
        None,
        "u",
        &limits,
    )
    .expect_err("refused");
    assert!(
        matches!(error, PartyError::RequestNotFound { .. }),
        "{error}"
    );
    assert_eq!(
        fs::read(&target).expect("read"),
        fs::read(fixture().join(&approval)).expect("read")
    );
}

#[test]
fn a_decision_checks_its_words_and_its_session() {
    let tree = Tree::fixture_copy();
    let limits = Limits::default();
    let request = pending_request(&read_snapshot(tree.root(), FIXTURE_SESSION, &limits));
    let error = apply_decision(
        tree.root(),
        FIXTURE_SESSION,
        &request.request_id,
        "maybe",
        None,
        "u",
        &limits,
    )
    .expect_err("refused");
    assert!(
        matches!(error, PartyError::InvalidDecision { .. }),
        "{error}"
    );

    edit_json(
        &tree.path(&fixture_file("approvals/APR-1795497578015.json")),
        |approval| {
            approval.insert("session_id".into(), json!("party-other-20260101000000"));
        },
    );
    let error = apply_decision(
        tree.root(),
        FIXTURE_SESSION,
        &request.request_id,
        "approve",
        None,
        "u",
        &limits,
    )
    .expect_err("refused");
    assert!(matches!(error, PartyError::WrongSession { .. }), "{error}");
    let still = read_snapshot(tree.root(), FIXTURE_SESSION, &limits);
    assert_eq!(
        still.session.expect("session").phase.as_deref(),
        Some("PENDING_APPROVAL")
    );
}

#[test]
fn a_decision_after_a_torn_event_line_still_lands_on_its_own_lines() {
    let tree = Tree::fixture_copy();
    let limits = Limits::default();
    let log = fixture_file("events.ndjson");
    let torn_at = fs::metadata(tree.path(&log)).expect("len").len();
    tree.append(
        &log,
        r#"{"ts":"2026-11-24T05:19:39.000Z","type":"agent_comp"#,
    );
    let request = pending_request(&read_snapshot(tree.root(), FIXTURE_SESSION, &limits));

    apply_decision(
        tree.root(),
        FIXTURE_SESSION,
        &request.request_id,
        "reject",
        Some("too risky"),
        "dave",
        &limits,
    )
    .expect("applied");

    let batch = read_events(tree.root(), FIXTURE_SESSION, torn_at, &limits).expect("events");
    assert_eq!(batch.skipped.len(), 1);
    assert_eq!(batch.skipped[0].0, torn_at);
    let kinds: Vec<&str> = batch.events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["decision_made", "phase_changed"]);
    assert_eq!(batch.events[0].raw["data"]["comment"], "too risky");
    let session = read_snapshot(tree.root(), FIXTURE_SESSION, &limits)
        .session
        .expect("session");
    assert!(
        session.raw.get("approval_grants").is_none(),
        "a rejection grants nothing"
    );
    assert_eq!(session.phase.as_deref(), Some("EXECUTING"));
}

/// The real hooks' awaiting-result tree: a revise past `fix_loop.max_attempts` goes straight
/// to FAILED (no REVISION), a revise within it counts in `fix_loop.attempt`; a stale session
/// is made current again.
#[test]
fn result_revises_count_in_fix_loop_and_a_stale_session_is_made_current() {
    let session = "party-bugfix-20261130145906";
    let awaiting = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/fixtures/party/hooks-awaiting-result-approval");
    let limits = Limits::default();
    let session_file = format!(".party/sessions/{session}/session.json");
    for (attempt, phase) in [(0, "REVISION"), (3, "FAILED")] {
        let tree = Tree::new();
        copy_tree(&awaiting, tree.root());
        edit_json(&tree.path(&session_file), |s| {
            s.insert(
                "fix_loop".into(),
                json!({"attempt": attempt, "max_attempts": 3}),
            );
        });
        apply_decision(
            tree.root(),
            session,
            "20261130T145918379Z",
            "revise",
            Some("add a test"),
            "alice",
            &limits,
        )
        .expect("applied");
        let after: Value =
            serde_json::from_slice(&fs::read(tree.path(&session_file)).unwrap()).unwrap();
        assert_eq!(after["phase"], phase);
        assert_eq!(after["fix_loop"]["attempt"], attempt + 1);
        let file = format!(".party/sessions/{session}/approvals/20261130T145918379Z.json");
        let decided: Value = serde_json::from_slice(&fs::read(tree.path(&file)).unwrap()).unwrap();
        assert_eq!(decided["status"], "decided");
        assert_eq!(decided["decision_comment"], "add a test");
    }

    let tree = Tree::new();
    copy_tree(&awaiting, tree.root());
    let late = chrono::Utc::now() + TimeDelta::hours(5);
    assert!(hook_ignores(tree.root(), session, late, &limits));
    assert!(make_current(tree.root(), session, late, &limits).expect("made current"));
    assert!(!hook_ignores(tree.root(), session, late, &limits));
    let after: Value =
        serde_json::from_slice(&fs::read(tree.path(&session_file)).unwrap()).unwrap();
    assert_eq!(after["aiops_created_at"], "2026-11-30T14:59:06.674Z");
}

//! `party_sim` — a pipeline simulator that behaves, from the outside, like `claude`
//! (Claude Code CLI, print mode, `--output-format stream-json --verbose`) running the
//! ai-party plugin (see `PARTY-CONTRACT.md`). The project's tests point the real process
//! runner at it instead of `claude`.
//!
//! It is a single self-contained file: std + serde (derive) + serde_json + chrono + sha1 + rand.
//! Arguments are parsed by hand; argument order does not matter.
//!
//! # Command lines
//!
//! * start:  `party_sim -p "/ai-party:party <task text>" --output-format stream-json --verbose [sim flags]`
//! * resume: `party_sim -p "<decision prompt>" --resume <claude_session_id> --output-format stream-json --verbose [sim flags]`
//!
//! The prompt may also be given as a positional argument (`-p` / `--print` then being a plain
//! switch). `--flag=value` works for every flag that takes a value.
//!
//! # Claude flags
//!
//! * `-p, --print [PROMPT]` — print mode; the prompt is the next argument unless it starts with `-`.
//! * `-r, --resume ID` — resume the Claude session `ID` (must have been created by this simulator
//!   in the same cwd, else a `result` line with `is_error: true`, subtype
//!   `error_during_execution` is printed and the exit code is 1).
//! * `--model NAME` — echoed in the stream's `model` fields (default `claude-opus-4-5`).
//! * `--permission-mode MODE` — echoed as `permissionMode` in the init line.
//! * Accepted and ignored: `--output-format X`, `--input-format X`, `--verbose`, `--max-turns N`,
//!   `--fallback-model X`, `--allowedTools X`, `--disallowedTools X`, `--append-system-prompt X`,
//!   `--system-prompt X`, `--mcp-config X`, `--settings X`, `--add-dir X`, `--session-id X`,
//!   `--setting-sources X`, `--plugin-dir X`, `--agents X`, `--permission-prompt-tool X`,
//!   `--dangerously-skip-permissions`, `--include-partial-messages`, `--strict-mcp-config`,
//!   `--debug`, `-c/--continue`. Any other unknown `--flag` is ignored too; it swallows the next
//!   argument as its value when that argument does not start with `-`.
//!
//! # Simulator flags
//!
//! * `--sim-team NAME` — team preset name used in the session id `party-<team>-<YYYYMMDDhhmmss>` (default `bugfix`).
//! * `--sim-phase-delay-ms N` — sleep before each phase change (default 30).
//! * `--sim-no-change` — do not touch `SIMULATED_CHANGE.md` in EXECUTING.
//! * `--sim-tool-approval` — stop in EXECUTING with a platform-mode tool approval
//!   (`approvals/APR-<epoch ms>.json`, Bash, HIGH) and phase `PENDING_APPROVAL`.
//! * `--sim-result-then-tool` — in EXECUTING, file a result approval early and then stop on a
//!   tool approval, so both are pending at once.
//! * `--sim-no-result-file` — reach AWAITING_APPROVAL without writing the result approval file.
//! * `--sim-crash-in PHASE` — upon entering PHASE (after session.json and the `phase_changed`
//!   event are written) print a panic message to stderr and exit 101, without a `result` line.
//! * `--sim-hang` — after the init line (and after creating the session and entering
//!   CONTEXTUALIZING on start) spawn a child `sleep 1000` in the same process group and sleep
//!   forever (dies on SIGTERM/SIGKILL).
//! * `--sim-garbage` — interleave a non-JSON line and a truncated JSON line between valid lines.
//! * `--sim-huge-finding BYTES` — write `findings/huge.md` of exactly BYTES bytes (in ANALYZING).
//! * `--sim-huge-findings N` — with `--sim-huge-finding`, also `findings/huge-2.md` … `huge-N.md`.
//! * `--sim-leak-env VAR` — print `$VAR`'s value in an assistant text, in `findings/leak.md`
//!   and in the `data.excerpt` of that finding's `findings_submitted` event (in CONTEXTUALIZING).
//! * `--sim-symlink TARGET` — create `findings/escape.md` and `tickets/PRT-ESCAPE.json` as
//!   symlinks to TARGET (in CONTEXTUALIZING; a `findings_submitted` event names escape.md).
//! * `--sim-exit-code N` — after a normal run (result line printed) exit with N.
//! * `--sim-stderr TEXT` — print TEXT to stderr at start.
//!
//! # Decision prompts on resume
//!
//! * Tool approval: `approve <party_session_id> <APR-id> [comment]`, `approve <APR-id> [comment]`,
//!   `reject [<party_session_id>] <APR-id> <reason>`, `revise [<party_session_id>] <APR-id> <instructions>`.
//!   These first run an emulation of the plugin's UserPromptSubmit hook: when a session is
//!   active (`AI_PARTY_SESSION_ID` or `.party/active-session.json`), its `created_at` is at most
//!   4 hours old and the request is still pending, the approval is marked decided, the phase goes
//!   back to `approval_context.previous_phase`, `approval_context` is removed, an
//!   `approval_grants` entry is pushed (approve only) and `decision_made` + `phase_changed` are
//!   appended. Otherwise the hook does nothing.
//! * Result approval: `approve [comment]`, `reject <reason>`, `revise <instructions>`.
//! * As the real hook (contract section 4): the *last* line that begins with a decision word
//!   (or 승인/거절/수정) decides; the first `APR-…` word is the request id and the first
//!   `party-…` word the session id wherever they stand (a mismatch leaves the request
//!   pending); a bare decision in PENDING_APPROVAL decides the pending tool request. Every
//!   phase move is ignored for a session created over 4 hours ago. No code decides a result
//!   approval file: the agent only moves the phase (a 4th revise goes straight to FAILED,
//!   counted in `fix_loop.attempt`) and files a new request only when none is pending.
//!
//! After the hook the "agent" acts only on what the files say: a decided tool approval
//! (approve/revise) continues EXECUTING → REVIEWING → AWAITING_APPROVAL; reject goes
//! REJECTED → ROLLED_BACK; a still pending one prints "still waiting" and changes nothing.
//! A result approval that somebody else already marked decided is followed as it is.
//! Approve → APPROVED → DONE; reject → REJECTED → ROLLED_BACK (SIMULATED_CHANGE.md restored);
//! revise → REVISION → EXECUTING → REVIEWING → AWAITING_APPROVAL (new pending approval file);
//! the 4th revision goes REVISION → FAILED.
//!
//! # Files written (relative to cwd)
//!
//! * `.party/active-session.json`, `.party/sessions/<id>/{session.json, events.ndjson,
//!   findings/*.md, tickets/*.json, approvals/*.json}` — JSON written temp-then-rename,
//!   events appended one line per write.
//! * `.party/.sim-claude-sessions.json` — Claude session id → party session id, plus the
//!   original content of `SIMULATED_CHANGE.md` (for rollback).
//! * `SIMULATED_CHANGE.md` — a line appended in EXECUTING (created and `git add -N`-ed if missing,
//!   so a plain `git diff` shows it); rollback restores the original content (or removes the
//!   file and its index entry), leaving `git diff` empty.
//!
//! Result approvals are `approvals/<YYYYMMDDThhmmssmmmZ>.json`; their `approval_requested` event
//! has `data {approval_type: "result", file, summary}`. Tool approvals are
//! `approvals/APR-<epoch ms>.json`, event `data {request_id, tool_name, risk_level, approval_mode}`.
//!
//! # Event counts (events.ndjson lines, no misbehaviour flags)
//!
//! Counted on 2026-12-01 by running this simulator by hand, each decision sent as the hook
//! reads it (`<verb> <session id> <request id> <comment>`):
//!
//! * start → AWAITING_APPROVAL: 46. start with `--sim-tool-approval` → PENDING_APPROVAL: 35.
//! * tool approve/revise via the hook → AWAITING_APPROVAL: +15 (fewer when the platform
//!   already applied the decision; +0 while still pending). Tool reject via the hook: +5.
//! * result approve: +4, reject: +3, revise: +10, the 4th revise (FAILED): +1 (fewer when the
//!   approval file was already decided by someone else: no `decision_made` from the agent).
//! * `--sim-leak-env` and `--sim-symlink` add one `findings_submitted` each, `--sim-huge-finding` one.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sha1::{Digest, Sha1};

const CHANGE_FILE: &str = "SIMULATED_CHANGE.md";
const STATE_FILE: &str = ".sim-claude-sessions.json";
const STALE_AFTER_HOURS: i64 = 4;
const MAX_REVISIONS: u64 = 3;
const DEFAULT_MODEL: &str = "claude-opus-4-5";
const MEMBERS: [&str; 4] = ["analyst", "architect", "builder", "reviewer"];
/// The phases each member works in, as the plugin's bugfix team has them.
const MEMBER_PHASES: [&[&str]; 4] = [
    &["ANALYZING"],
    &["ANALYZING", "PLANNING"],
    &["EXECUTING"],
    &["REVIEWING"],
];
const PIPELINE: [&str; 6] = [
    "CONTEXTUALIZING",
    "ANALYZING",
    "PLANNING",
    "EXECUTING",
    "REVIEWING",
    "AWAITING_APPROVAL",
];
const ENTER_REASONS: [&str; 6] = [
    "team initialised",
    "context collected",
    "analysis complete",
    "design approved by leader",
    "implementation complete",
    "review passed",
];
const EXECUTING: usize = 3;

type Res<T> = Result<T, String>;

trait Ctx<T> {
    fn ctx(self, what: impl std::fmt::Display) -> Res<T>;
}

impl<T, E: std::fmt::Display> Ctx<T> for Result<T, E> {
    fn ctx(self, what: impl std::fmt::Display) -> Res<T> {
        self.map_err(|e| format!("{what}: {e}"))
    }
}

// ---------------------------------------------------------------------------------------------
// Arguments
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Default)]
struct Opts {
    prompt: Option<String>,
    resume: Option<String>,
    model: Option<String>,
    permission_mode: Option<String>,
    team: String,
    /// `--sim-team` was given: the team the "plugin" runs whatever the prompt asks for.
    team_forced: bool,
    phase_delay_ms: u64,
    no_change: bool,
    tool_approval: bool,
    result_then_tool: bool,
    no_result_file: bool,
    crash_in: Option<String>,
    hang: bool,
    garbage: bool,
    huge_finding: Option<u64>,
    huge_findings: u64,
    leak_env: Option<String>,
    symlink: Option<PathBuf>,
    exit_code: Option<i32>,
    stderr_text: Option<String>,
}

const VALUE_FLAGS: [&str; 18] = [
    "--output-format",
    "--input-format",
    "--max-turns",
    "--fallback-model",
    "--allowedTools",
    "--allowed-tools",
    "--disallowedTools",
    "--disallowed-tools",
    "--append-system-prompt",
    "--system-prompt",
    "--mcp-config",
    "--settings",
    "--add-dir",
    "--session-id",
    "--setting-sources",
    "--plugin-dir",
    "--agents",
    "--permission-prompt-tool",
];

const BOOL_FLAGS: [&str; 7] = [
    "--verbose",
    "--dangerously-skip-permissions",
    "--include-partial-messages",
    "--strict-mcp-config",
    "--debug",
    "--continue",
    "-c",
];

fn take_value(args: &[String], i: &mut usize, inline: &Option<String>, name: &str) -> Res<String> {
    if let Some(v) = inline {
        return Ok(v.clone());
    }
    let v = args
        .get(*i)
        .cloned()
        .ok_or_else(|| format!("option '{name}' argument missing"))?;
    *i += 1;
    Ok(v)
}

fn parse_args(args: &[String]) -> Res<Opts> {
    let mut o = Opts {
        team: "bugfix".to_string(),
        phase_delay_ms: 30,
        ..Opts::default()
    };
    let mut i = 0;
    while i < args.len() {
        let raw = &args[i];
        i += 1;
        if !raw.starts_with('-') || raw == "-" {
            if o.prompt.is_none() {
                o.prompt = Some(raw.clone());
            }
            continue;
        }
        let (flag, inline) = match raw.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (raw.clone(), None),
        };
        let mut value = |name: &str| take_value(args, &mut i, &inline, name);
        match flag.as_str() {
            "-p" | "--print" => {
                if let Some(v) = inline.clone() {
                    o.prompt = Some(v);
                } else if let Some(next) = args.get(i)
                    && !next.starts_with('-')
                {
                    o.prompt = Some(next.clone());
                    i += 1;
                }
            }
            "-r" | "--resume" => o.resume = Some(value(&flag)?),
            "--model" => o.model = Some(value(&flag)?),
            "--permission-mode" => o.permission_mode = Some(value(&flag)?),
            "--sim-team" => {
                let t: String = value(&flag)?
                    .to_ascii_lowercase()
                    .chars()
                    .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
                    .collect();
                o.team = if t.is_empty() { "bugfix".into() } else { t };
                o.team_forced = true;
            }
            "--sim-phase-delay-ms" => {
                o.phase_delay_ms = value(&flag)?
                    .parse()
                    .ctx("--sim-phase-delay-ms expects a number")?
            }
            "--sim-no-change" => o.no_change = true,
            "--sim-tool-approval" => o.tool_approval = true,
            "--sim-result-then-tool" => o.result_then_tool = true,
            "--sim-no-result-file" => o.no_result_file = true,
            "--sim-crash-in" => o.crash_in = Some(value(&flag)?.to_ascii_uppercase()),
            "--sim-hang" => o.hang = true,
            "--sim-garbage" => o.garbage = true,
            "--sim-huge-finding" => {
                o.huge_finding = Some(
                    value(&flag)?
                        .parse()
                        .ctx("--sim-huge-finding expects a byte count")?,
                )
            }
            "--sim-huge-findings" => {
                o.huge_findings = value(&flag)?
                    .parse()
                    .ctx("--sim-huge-findings expects a count")?
            }
            "--sim-leak-env" => o.leak_env = Some(value(&flag)?),
            "--sim-symlink" => o.symlink = Some(PathBuf::from(value(&flag)?)),
            "--sim-exit-code" => {
                o.exit_code = Some(
                    value(&flag)?
                        .parse()
                        .ctx("--sim-exit-code expects a number")?,
                )
            }
            "--sim-stderr" => o.stderr_text = Some(value(&flag)?),
            f if VALUE_FLAGS.contains(&f) => {
                value(f)?;
            }
            f if BOOL_FLAGS.contains(&f) => {}
            _ => {
                if inline.is_none()
                    && let Some(next) = args.get(i)
                    && !next.starts_with('-')
                {
                    i += 1;
                }
            }
        }
    }
    Ok(o)
}

// ---------------------------------------------------------------------------------------------
// File shapes (field names and order as in the plugin's real trees; unknown fields are kept)
// ---------------------------------------------------------------------------------------------

#[derive(Serialize, Deserialize, Clone, Default)]
struct PhaseEntry {
    #[serde(default)]
    phase: String,
    #[serde(default)]
    entered_at: String,
    #[serde(default)]
    reason: String,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

#[derive(Serialize, Deserialize, Clone, Default)]
struct Execution {
    #[serde(default)]
    workers_total: u64,
    #[serde(default)]
    workers_active: u64,
    #[serde(default)]
    tasks_total: u64,
    #[serde(default)]
    tasks_completed: u64,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

#[derive(Serialize, Deserialize, Clone, Default)]
struct FixLoop {
    #[serde(default)]
    attempt: u64,
    #[serde(default)]
    max_attempts: u64,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

#[derive(Serialize, Deserialize, Clone, Default)]
struct Cancel {
    #[serde(default)]
    requested: bool,
    #[serde(default)]
    preserve_for_resume: bool,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

#[derive(Serialize, Deserialize, Clone, Default)]
struct Artifacts {
    #[serde(default)]
    analysis_path: Option<String>,
    #[serde(default)]
    design_path: Option<String>,
    #[serde(default)]
    implementation_path: Option<String>,
    #[serde(default)]
    review_path: Option<String>,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

#[derive(Serialize, Deserialize, Clone, Default)]
struct Member {
    #[serde(default)]
    name: String,
    #[serde(default)]
    agent: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    phases: Vec<String>,
    #[serde(default)]
    spawned: bool,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

#[derive(Serialize, Deserialize, Clone, Default)]
struct ApprovalContext {
    #[serde(default, alias = "request_id")]
    pending_request_id: Option<String>,
    #[serde(default)]
    previous_phase: Option<String>,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

#[derive(Serialize, Deserialize, Clone, Default)]
struct Session {
    #[serde(default)]
    id: String,
    #[serde(default)]
    team: String,
    #[serde(default)]
    task: String,
    #[serde(default)]
    phase: String,
    #[serde(default)]
    phase_history: Vec<PhaseEntry>,
    #[serde(default)]
    execution: Execution,
    #[serde(default)]
    fix_loop: FixLoop,
    #[serde(default)]
    cancel: Cancel,
    #[serde(default)]
    artifacts: Artifacts,
    #[serde(default)]
    members: Vec<Member>,
    #[serde(default)]
    created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    completed_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    starting_phase: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    approval_context: Option<ApprovalContext>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    approval_grants: Option<Vec<Value>>,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

#[derive(Serialize, Deserialize, Clone, Default)]
#[serde(rename_all = "camelCase")]
struct Ticket {
    #[serde(default)]
    id: String,
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    phase: Option<String>,
    #[serde(default)]
    status: String,
    #[serde(default)]
    assignee: Option<String>,
    #[serde(default)]
    parent_id: Option<String>,
    #[serde(default)]
    depends_on: Vec<String>,
    #[serde(default)]
    created_at: Option<String>,
    #[serde(default)]
    started_at: Option<String>,
    #[serde(default)]
    completed_at: Option<String>,
    #[serde(default)]
    findings: Option<Value>,
    #[serde(default)]
    report: Option<String>,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

#[derive(Serialize, Deserialize, Clone, Default)]
struct ToolApproval {
    #[serde(default)]
    request_id: String,
    #[serde(default)]
    session_id: String,
    #[serde(default)]
    team: String,
    #[serde(default)]
    phase: String,
    #[serde(default)]
    previous_phase: Option<String>,
    #[serde(default)]
    approval_mode: String,
    #[serde(default)]
    risk_level: String,
    #[serde(default)]
    tool_name: String,
    #[serde(default)]
    tool_input: Value,
    #[serde(default)]
    fingerprint: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    retries: u64,
    #[serde(default)]
    requested_at: String,
    #[serde(default)]
    last_seen_at: String,
    #[serde(default)]
    decision: Option<String>,
    #[serde(default)]
    decided_at: Option<String>,
    #[serde(default)]
    decision_comment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    decided_by: Option<String>,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

#[derive(Serialize, Deserialize, Clone, Default)]
struct ResultApproval {
    #[serde(default)]
    session_id: String,
    #[serde(default)]
    summary: String,
    #[serde(default)]
    git_diff_stat: String,
    #[serde(default)]
    requested_at: String,
    #[serde(default)]
    status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    decision: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    decision_comment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    decided_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    decided_at: Option<String>,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

#[derive(Serialize)]
struct Event<'a> {
    ts: String,
    #[serde(rename = "type")]
    kind: &'a str,
    #[serde(rename = "sessionId")]
    session_id: &'a str,
    data: Value,
}

// ---------------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------------

fn now() -> DateTime<Utc> {
    Utc::now()
}

fn iso(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

fn ts() -> String {
    iso(now())
}

fn sha1_hex(data: &[u8]) -> String {
    Sha1::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn epic_of(session_id: &str) -> String {
    format!(
        "PRT-{}",
        sha1_hex(session_id.as_bytes())[..6].to_uppercase()
    )
}

fn uuid_v4() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn random_hex(bytes: usize) -> String {
    (0..bytes)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect()
}

/// Write-to-temp-then-rename. A symlink at `path` is replaced, never followed.
fn write_atomic(path: &Path, content: &[u8]) -> Res<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).ctx(format!("creating {}", dir.display()))?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    fs::write(&tmp, content).ctx(format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, path).ctx(format!("renaming to {}", path.display()))
}

fn write_json<T: Serialize>(path: &Path, v: &T) -> Res<()> {
    let mut s = serde_json::to_string_pretty(v).ctx("serializing")?;
    s.push('\n');
    write_atomic(path, s.as_bytes())
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Res<T> {
    let s = fs::read_to_string(path).ctx(format!("reading {}", path.display()))?;
    serde_json::from_str(&s).ctx(format!("parsing {}", path.display()))
}

/// True when the plugin's hooks ignore the session: created more than 4 hours ago.
fn is_stale(s: &Session) -> bool {
    DateTime::parse_from_rfc3339(&s.created_at).is_ok_and(|created| {
        now().signed_duration_since(created) > chrono::Duration::hours(STALE_AFTER_HOURS)
    })
}

fn is_terminal(phase: &str) -> bool {
    matches!(phase, "DONE" | "ROLLED_BACK" | "FAILED")
}

/// Run git in `cwd`, trying PATH first and then the usual absolute locations (PATH may be unset).
fn git(cwd: &Path, args: &[&str]) -> Option<std::process::Output> {
    for bin in [
        "git",
        "/usr/local/bin/git",
        "/usr/bin/git",
        "/bin/git",
        "/opt/homebrew/bin/git",
    ] {
        let r = Command::new(bin)
            .args(args)
            .current_dir(cwd)
            .stdin(Stdio::null())
            .output();
        if let Ok(out) = r {
            return Some(out);
        }
    }
    None
}

fn split_word(s: &str) -> (&str, &str) {
    let s = s.trim_start();
    match s.find(char::is_whitespace) {
        Some(i) => (&s[..i], s[i..].trim_start()),
        None => (s, ""),
    }
}

#[derive(Debug, Clone, Default)]
struct Prompt {
    /// "approve" | "reject" | "revise" | "" (anything else)
    verb: String,
    /// The first `party-…` word: the hook leaves the request pending when it is not the active session.
    session_arg: Option<String>,
    request_id: Option<String>,
    text: String,
}

/// The decision word of a line, as the plugin's prompt hook reads it (Korean words too).
fn decision_verb(word: &str) -> Option<&'static str> {
    match word.to_ascii_lowercase().as_str() {
        "approve" | "승인" => Some("approve"),
        "reject" | "거절" => Some("reject"),
        "revise" | "수정" => Some("revise"),
        _ => None,
    }
}

/// Parses a prompt as the plugin's prompt hook does: the *last* line that begins with a
/// decision word decides; after it the first `APR-…` word is the request id and the first
/// `party-…` word the session id, wherever they stand; the other words are the comment.
fn parse_prompt(p: &str) -> Prompt {
    let line = p
        .lines()
        .rev()
        .find(|line| decision_verb(split_word(line).0).is_some());
    let Some(line) = line else {
        return Prompt {
            text: p.trim().to_string(),
            ..Prompt::default()
        };
    };
    let (verb, rest) = split_word(line);
    let mut prompt = Prompt {
        verb: decision_verb(verb).unwrap_or_default().to_string(),
        ..Prompt::default()
    };
    let mut comment = Vec::new();
    for word in rest.split_whitespace() {
        if word.starts_with("APR-") && prompt.request_id.is_none() {
            prompt.request_id = Some(word.to_string());
        } else if word.starts_with("party-") && prompt.session_arg.is_none() {
            prompt.session_arg = Some(word.to_string());
        } else {
            comment.push(word);
        }
    }
    prompt.text = comment.join(" ");
    prompt
}

fn non_empty(s: &str) -> Option<String> {
    (!s.trim().is_empty()).then(|| s.trim().to_string())
}

// ---------------------------------------------------------------------------------------------
// stdout: stream-json
// ---------------------------------------------------------------------------------------------

#[derive(Serialize, Default, Clone, Copy)]
struct Usage {
    input_tokens: u64,
    output_tokens: u64,
    cache_creation_input_tokens: u64,
    cache_read_input_tokens: u64,
}

#[derive(Serialize)]
struct InitLine<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    subtype: &'a str,
    cwd: String,
    session_id: &'a str,
    tools: Vec<&'a str>,
    mcp_servers: Vec<Value>,
    model: &'a str,
    #[serde(rename = "permissionMode")]
    permission_mode: &'a str,
    slash_commands: Vec<&'a str>,
    #[serde(rename = "apiKeySource")]
    api_key_source: &'a str,
}

#[derive(Serialize)]
struct MessageLine<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    message: Value,
    parent_tool_use_id: Option<String>,
    session_id: &'a str,
}

#[derive(Serialize)]
struct ResultLine<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    subtype: &'a str,
    is_error: bool,
    duration_ms: u64,
    duration_api_ms: u64,
    num_turns: u64,
    result: String,
    session_id: &'a str,
    total_cost_usd: f64,
    usage: Usage,
    #[serde(rename = "modelUsage")]
    model_usage: Value,
    permission_denials: Vec<Value>,
}

struct Out {
    session_id: String,
    model: String,
    turns: u64,
    total: Usage,
    garbage: bool,
    lines: u64,
    last: String,
    started: Instant,
}

impl Out {
    fn emit<T: Serialize>(&mut self, v: &T) {
        let line = serde_json::to_string(v).unwrap_or_default();
        let stdout = io::stdout();
        let mut w = stdout.lock();
        if self.garbage && self.lines > 0 {
            let mut cut = self.last.len() / 2;
            while !self.last.is_char_boundary(cut) {
                cut -= 1;
            }
            let _ = writeln!(
                w,
                "[party-sim] progress {}: this line is not JSON",
                self.lines
            );
            let _ = writeln!(w, "{}", &self.last[..cut]);
        }
        let _ = writeln!(w, "{line}");
        let _ = w.flush();
        self.lines += 1;
        self.last = line;
    }

    fn init(&mut self, cwd: &Path, permission_mode: &str) {
        let model = self.model.clone();
        let sid = self.session_id.clone();
        self.emit(&InitLine {
            kind: "system",
            subtype: "init",
            cwd: cwd.display().to_string(),
            session_id: &sid,
            tools: vec![
                "Agent",
                "Bash",
                "Edit",
                "Glob",
                "Grep",
                "Read",
                "Write",
                "TeamCreate",
                "SendMessage",
                "TaskCreate",
                "TaskUpdate",
                "TaskList",
            ],
            mcp_servers: vec![],
            model: &model,
            permission_mode,
            slash_commands: vec![
                "ai-party:party",
                "ai-party:party-status",
                "ai-party:party-board",
            ],
            api_key_source: "none",
        });
    }

    /// Deterministic per-turn usage: turn n (1-based) reads what turn n-1 sent from cache.
    fn next_usage(&mut self) -> Usage {
        self.turns += 1;
        let n = self.turns;
        let u = Usage {
            input_tokens: 3000 + 250 * n,
            output_tokens: 40 + 12 * n,
            cache_creation_input_tokens: if n == 1 { 2048 } else { 0 },
            cache_read_input_tokens: if n == 1 { 0 } else { 3000 + 250 * (n - 1) },
        };
        self.total.input_tokens += u.input_tokens;
        self.total.output_tokens += u.output_tokens;
        self.total.cache_creation_input_tokens += u.cache_creation_input_tokens;
        self.total.cache_read_input_tokens += u.cache_read_input_tokens;
        u
    }

    fn assistant(&mut self, content: Value, stop_reason: Option<&str>) {
        let usage = self.next_usage();
        let sid = self.session_id.clone();
        let message = json!({
            "id": format!("msg_{}", random_hex(12)),
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": content,
            "stop_reason": stop_reason,
            "usage": usage,
        });
        self.emit(&MessageLine {
            kind: "assistant",
            message,
            parent_tool_use_id: None,
            session_id: &sid,
        });
    }

    fn say(&mut self, text: &str) {
        self.assistant(json!([{"type": "text", "text": text}]), None);
    }

    fn tool_use(&mut self, name: &str, input: Value) -> String {
        let id = format!("toolu_{}", random_hex(12));
        self.assistant(
            json!([{"type": "tool_use", "id": id, "name": name, "input": input}]),
            Some("tool_use"),
        );
        id
    }

    fn tool_result(&mut self, id: &str, content: &str) {
        let sid = self.session_id.clone();
        self.emit(&MessageLine {
            kind: "user",
            message: json!({
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": id, "content": content}],
            }),
            parent_tool_use_id: None,
            session_id: &sid,
        });
    }

    fn cost(&self) -> f64 {
        let u = &self.total;
        let usd = (u.input_tokens as f64 * 3.0
            + u.output_tokens as f64 * 15.0
            + u.cache_creation_input_tokens as f64 * 3.75
            + u.cache_read_input_tokens as f64 * 0.30)
            / 1_000_000.0;
        (usd * 1_000_000.0).round() / 1_000_000.0
    }

    fn result(&mut self, subtype: &str, is_error: bool, text: &str) {
        let duration_ms = self.started.elapsed().as_millis() as u64;
        let cost = self.cost();
        let u = self.total;
        let sid = self.session_id.clone();
        let mut model_usage = Map::new();
        model_usage.insert(
            self.model.clone(),
            json!({
                "inputTokens": u.input_tokens,
                "outputTokens": u.output_tokens,
                "cacheReadInputTokens": u.cache_read_input_tokens,
                "cacheCreationInputTokens": u.cache_creation_input_tokens,
                "costUSD": cost,
            }),
        );
        self.emit(&ResultLine {
            kind: "result",
            subtype,
            is_error,
            duration_ms,
            duration_api_ms: duration_ms * 2 / 3,
            num_turns: self.turns,
            result: text.to_string(),
            session_id: &sid,
            total_cost_usd: cost,
            usage: u,
            model_usage: Value::Object(model_usage),
            permission_denials: vec![],
        });
    }
}

// ---------------------------------------------------------------------------------------------
// Simulator state file: .party/.sim-claude-sessions.json
// ---------------------------------------------------------------------------------------------

fn state_path(party: &Path) -> PathBuf {
    party.join(STATE_FILE)
}

fn load_state(party: &Path) -> Map<String, Value> {
    fs::read_to_string(state_path(party))
        .ok()
        .and_then(|s| serde_json::from_str::<Value>(&s).ok())
        .and_then(|v| v.as_object().cloned())
        .unwrap_or_default()
}

fn state_section<'a>(st: &'a mut Map<String, Value>, key: &str) -> &'a mut Map<String, Value> {
    let entry = st
        .entry(key.to_string())
        .or_insert_with(|| Value::Object(Map::new()));
    if !entry.is_object() {
        *entry = Value::Object(Map::new());
    }
    entry.as_object_mut().expect("object")
}

fn lookup_claude_session(party: &Path, claude_id: &str) -> Option<String> {
    load_state(party)
        .get("claude_sessions")?
        .get(claude_id)?
        .get("party_session_id")?
        .as_str()
        .map(str::to_string)
}

// ---------------------------------------------------------------------------------------------
// The simulator
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
enum Mode {
    Initial,
    AfterTool {
        decision: String,
        request_id: String,
        note: String,
    },
    Revision {
        n: u64,
        instructions: String,
    },
}

struct Sim {
    opts: Opts,
    cwd: PathBuf,
    party: PathBuf,
    out: Out,
    sid: String,
    epic: String,
}

impl Sim {
    fn dir(&self) -> PathBuf {
        self.party.join("sessions").join(&self.sid)
    }

    fn set_sid(&mut self, sid: &str) {
        self.sid = sid.to_string();
        self.epic = epic_of(sid);
    }

    fn load_session(&self) -> Res<Session> {
        read_json(&self.dir().join("session.json"))
    }

    fn save_session(&self, s: &Session) -> Res<()> {
        write_json(&self.dir().join("session.json"), s)
    }

    fn update_session(&self, f: impl FnOnce(&mut Session)) -> Res<()> {
        let mut s = self.load_session()?;
        f(&mut s);
        self.save_session(&s)
    }

    fn event(&self, kind: &str, data: Value) -> Res<()> {
        let ev = Event {
            ts: ts(),
            kind,
            session_id: &self.sid,
            data,
        };
        let mut line = serde_json::to_string(&ev).ctx("serializing event")?;
        line.push('\n');
        let path = self.dir().join("events.ndjson");
        let mut f = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .ctx(format!("opening {}", path.display()))?;
        f.write_all(line.as_bytes())
            .ctx(format!("appending to {}", path.display()))
    }

    fn save_state(&self, st: &Map<String, Value>) -> Res<()> {
        write_json(&state_path(&self.party), st)
    }

    fn register_claude_session(&self) -> Res<()> {
        let mut st = load_state(&self.party);
        state_section(&mut st, "claude_sessions").insert(
            self.out.session_id.clone(),
            json!({
                "party_session_id": self.sid,
                "cwd": self.cwd.display().to_string(),
                "updated_at": ts(),
            }),
        );
        self.save_state(&st)
    }

    fn crash_if(&self, phase: &str) {
        if self.opts.crash_in.as_deref() == Some(phase) {
            let _ = io::stdout().flush();
            eprintln!(
                "thread 'main' panicked at examples/party_sim.rs:{}:9:\n\
                 simulated crash on entering phase {phase} (--sim-crash-in)\n\
                 note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace",
                line!()
            );
            std::process::exit(101);
        }
    }

    fn set_phase(&mut self, to: &str, reason: &str) -> Res<()> {
        self.set_phase_with(to, reason, |_| {})
    }

    fn set_phase_with(&mut self, to: &str, reason: &str, f: impl FnOnce(&mut Session)) -> Res<()> {
        if to != "CONTEXTUALIZING" && self.opts.phase_delay_ms > 0 {
            std::thread::sleep(Duration::from_millis(self.opts.phase_delay_ms));
        }
        let mut s = self.load_session()?;
        if is_stale(&s) {
            // Every hook that moves phases ignores sessions over 4 hours old.
            self.out.say(&format!(
                "The plugin's hooks ignore this session (created over {STALE_AFTER_HOURS} hours ago); the phase stays {}.",
                s.phase
            ));
            return Ok(());
        }
        let from = s.phase.clone();
        let at = ts();
        s.phase = to.to_string();
        s.phase_history.push(PhaseEntry {
            phase: to.to_string(),
            entered_at: at.clone(),
            reason: reason.to_string(),
            extra: Map::new(),
        });
        if is_terminal(to) {
            s.completed_at = Some(at);
        }
        f(&mut s);
        self.save_session(&s)?;
        self.event(
            "phase_changed",
            json!({"from": from, "to": to, "reason": reason}),
        )?;
        self.crash_if(to);
        Ok(())
    }

    // ---- tickets --------------------------------------------------------------------------

    fn ticket_path(&self, id: &str) -> PathBuf {
        self.dir().join("tickets").join(format!("{id}.json"))
    }

    #[allow(clippy::too_many_arguments)]
    fn ensure_ticket(
        &self,
        id: &str,
        kind: &str,
        title: &str,
        phase: Option<&str>,
        status: &str,
        assignee: Option<&str>,
        parent: Option<&str>,
        depends_on: &[&str],
    ) -> Res<()> {
        let path = self.ticket_path(id);
        if path.exists() {
            return Ok(());
        }
        let at = ts();
        let t = Ticket {
            id: id.to_string(),
            kind: kind.to_string(),
            title: title.to_string(),
            description: String::new(),
            phase: phase.map(str::to_string),
            status: status.to_string(),
            assignee: assignee.map(str::to_string),
            parent_id: parent.map(str::to_string),
            depends_on: depends_on.iter().map(|d| d.to_string()).collect(),
            created_at: Some(at.clone()),
            started_at: (status == "IN_PROGRESS").then_some(at),
            completed_at: None,
            findings: None,
            report: None,
            extra: Map::new(),
        };
        write_json(&path, &t)?;
        let data = match kind {
            "epic" => json!({"ticketId": id, "title": title, "type": kind}),
            "story" => json!({"ticketId": id, "title": title, "type": kind, "phase": phase}),
            _ => json!({
                "ticketId": id, "title": title, "type": kind, "phase": phase,
                "assignee": assignee, "status": status, "dependsOn": depends_on,
            }),
        };
        self.event("ticket_created", data)?;
        if kind == "task" {
            self.update_session(|s| s.execution.tasks_total += 1)?;
        }
        Ok(())
    }

    fn new_story(&self, code: &str, title: &str) -> Res<()> {
        let id = self.story(code);
        let epic = self.epic.clone();
        self.ensure_ticket(
            &id,
            "story",
            title,
            Some(phase_of(code)),
            "IN_PROGRESS",
            None,
            Some(&epic),
            &[],
        )
    }

    /// A task `PRT-XXXXXX-<CODE>-NNN`; phase and parent story follow from CODE.
    fn new_task(
        &self,
        id: &str,
        title: &str,
        assignee: &str,
        status: &str,
        deps: &[&str],
    ) -> Res<()> {
        let code = id.rsplit('-').nth(1).unwrap_or("EXE");
        let story = self.story(code);
        self.ensure_ticket(
            id,
            "task",
            title,
            Some(phase_of(code)),
            status,
            Some(assignee),
            Some(&story),
            deps,
        )
    }

    fn ticket_status(&self, id: &str, status: &str, report: Option<&str>) -> Res<()> {
        let path = self.ticket_path(id);
        let mut t: Ticket = read_json(&path)?;
        if t.status == status {
            return Ok(());
        }
        let prev = std::mem::replace(&mut t.status, status.to_string());
        let at = ts();
        if status == "IN_PROGRESS" && t.started_at.is_none() {
            t.started_at = Some(at.clone());
        }
        if status == "DONE" {
            t.completed_at = Some(at);
        }
        if let Some(r) = report {
            t.report = Some(r.to_string());
        }
        write_json(&path, &t)?;
        let mut data =
            json!({"ticketId": id, "prevStatus": prev, "status": status, "phase": t.phase});
        if let Some(a) = &t.assignee {
            data["assignee"] = json!(a);
        }
        self.event("ticket_updated", data)?;
        if t.kind == "task" && status == "DONE" {
            self.update_session(|s| s.execution.tasks_completed += 1)?;
        }
        Ok(())
    }

    fn story(&self, code: &str) -> String {
        format!("{}-{code}", self.epic)
    }

    fn task(&self, code: &str, n: u32) -> String {
        format!("{}-{code}-{n:03}", self.epic)
    }

    /// Next free task number under a story (file names only; nothing is read).
    fn next_task_no(&self, code: &str) -> u32 {
        let prefix = format!("{}-{code}-", self.epic);
        let mut max = 0;
        if let Ok(rd) = fs::read_dir(self.dir().join("tickets")) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().to_string();
                if let Some(n) = name
                    .strip_prefix(&prefix)
                    .and_then(|r| r.strip_suffix(".json"))
                    .and_then(|r| r.parse::<u32>().ok())
                {
                    max = max.max(n);
                }
            }
        }
        max + 1
    }

    fn agent_completed(&self, name: &str) -> Res<()> {
        let phase = self.load_session()?.phase;
        self.event(
            "agent_completed",
            json!({"agent": name, "name": name, "phase": phase}),
        )?;
        self.update_session(|s| {
            s.execution.workers_active = s.execution.workers_active.saturating_sub(1)
        })
    }

    // ---- findings -------------------------------------------------------------------------

    fn finding(
        &self,
        name: &str,
        content: &str,
        phase: &str,
        agent: &str,
        extra: Option<(&str, &str)>,
    ) -> Res<()> {
        write_atomic(&self.dir().join("findings").join(name), content.as_bytes())?;
        // The real hooks emit no `findings_submitted` (contract section 4); only the
        // misbehaviour flags write one, to carry their hostile text into events.ndjson.
        let file = format!("findings/{name}");
        if let Some((k, v)) = extra {
            let mut data = json!({"phase": phase, "file": file, "agent": agent});
            data[k] = json!(v);
            self.event("findings_submitted", data)?;
        }
        let slot = match name {
            "analysis.md" => Some(0),
            "design.md" => Some(1),
            "implementation.md" => Some(2),
            "review.md" => Some(3),
            _ => None,
        };
        if let Some(slot) = slot {
            self.update_session(|s| {
                let a = &mut s.artifacts;
                let p = Some(file.clone());
                match slot {
                    0 => a.analysis_path = p,
                    1 => a.design_path = p,
                    2 => a.implementation_path = p,
                    _ => a.review_path = p,
                }
            })?;
        }
        Ok(())
    }

    fn huge_finding(&self, name: &str, bytes: u64) -> Res<()> {
        let path = self.dir().join("findings").join(name);
        let tmp = self
            .dir()
            .join("findings")
            .join(format!(".{name}.tmp-{}", std::process::id()));
        {
            let f = fs::File::create(&tmp).ctx("creating huge.md")?;
            let mut w = io::BufWriter::new(f);
            let header = b"# Huge finding\n\n";
            let line =
                b"- lorem ipsum dolor sit amet, simulated oversized finding content 0123456789\n";
            let mut left = bytes;
            let h = header.len().min(left as usize);
            w.write_all(&header[..h]).ctx("writing huge.md")?;
            left -= h as u64;
            while left > 0 {
                let n = line.len().min(left as usize);
                w.write_all(&line[..n]).ctx("writing huge.md")?;
                left -= n as u64;
            }
            w.flush().ctx("writing huge.md")?;
        }
        fs::rename(&tmp, &path).ctx("renaming huge.md")?;
        self.event(
            "findings_submitted",
            json!({"phase": "ANALYZING", "file": "findings/huge.md", "agent": "analyst", "bytes": bytes}),
        )
    }

    // ---- the worktree change ---------------------------------------------------------------

    fn apply_change(&mut self, text: &str) -> Res<()> {
        if self.opts.no_change {
            return Ok(());
        }
        let line = format!("- {} {}: {}\n", ts(), self.sid, text.replace('\n', " "));
        let id = self.out.tool_use(
            "Bash",
            json!({
                "command": format!("cat >> {CHANGE_FILE} <<'EOF'\n{line}EOF"),
                "description": "Apply the planned change",
            }),
        );
        let path = self.cwd.join(CHANGE_FILE);
        let existed = path.exists();
        let before = if existed {
            fs::read_to_string(&path).ctx(format!("reading {CHANGE_FILE}"))?
        } else {
            String::new()
        };
        let mut st = load_state(&self.party);
        let baselines = state_section(&mut st, "change_baselines");
        if !baselines.contains_key(&self.sid) {
            baselines.insert(
                self.sid.clone(),
                json!({"existed": existed, "content": before}),
            );
            self.save_state(&st)?;
        }
        let mut content = if existed {
            before
        } else {
            "# Simulated change\n\n".to_string()
        };
        content.push_str(&line);
        fs::write(&path, content).ctx(format!("writing {CHANGE_FILE}"))?;
        if !existed {
            // Intent-to-add, so that a plain `git diff` shows the new file.
            let _ = git(&self.cwd, &["add", "-N", "--", CHANGE_FILE]);
        }
        self.out.tool_result(&id, "");
        Ok(())
    }

    fn rollback(&mut self) -> Res<()> {
        let id = self.out.tool_use(
            "Bash",
            json!({"command": format!("git checkout -- {CHANGE_FILE}"), "description": "Revert the change"}),
        );
        let mut st = load_state(&self.party);
        let baseline = state_section(&mut st, "change_baselines").remove(&self.sid);
        if let Some(b) = baseline {
            let path = self.cwd.join(CHANGE_FILE);
            if b.get("existed").and_then(Value::as_bool).unwrap_or(false) {
                let content = b.get("content").and_then(Value::as_str).unwrap_or("");
                fs::write(&path, content).ctx(format!("restoring {CHANGE_FILE}"))?;
            } else {
                let _ = git(
                    &self.cwd,
                    &[
                        "rm",
                        "--cached",
                        "-q",
                        "-f",
                        "--ignore-unmatch",
                        "--",
                        CHANGE_FILE,
                    ],
                );
                if path.exists() {
                    fs::remove_file(&path).ctx(format!("removing {CHANGE_FILE}"))?;
                }
            }
            self.save_state(&st)?;
        }
        self.out.tool_result(&id, "");
        Ok(())
    }

    fn git_diff_stat(&self) -> String {
        git(&self.cwd, &["diff", "--stat"])
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim_end().to_string())
            .unwrap_or_default()
    }

    // ---- approvals --------------------------------------------------------------------------

    fn approvals_dir(&self) -> PathBuf {
        self.dir().join("approvals")
    }

    /// (file stem, path) of approval files, sorted by name; `tool` selects APR-* or the others.
    fn approval_files(&self, tool: bool) -> Vec<(String, PathBuf)> {
        let mut v: Vec<(String, PathBuf)> = fs::read_dir(self.approvals_dir())
            .map(|rd| {
                rd.flatten()
                    .filter_map(|e| {
                        let name = e.file_name().to_string_lossy().to_string();
                        let stem = name.strip_suffix(".json")?.to_string();
                        if stem.starts_with('.') || stem.starts_with("APR-") != tool {
                            return None;
                        }
                        Some((stem, e.path()))
                    })
                    .collect()
            })
            .unwrap_or_default();
        v.sort_by(|a, b| {
            let key = |s: &str| {
                s.strip_prefix("APR-")
                    .and_then(|n| n.parse::<u64>().ok())
                    .unwrap_or(0)
            };
            key(&a.0).cmp(&key(&b.0)).then_with(|| a.0.cmp(&b.0))
        });
        v
    }

    fn request_tool_approval(&mut self) -> Res<String> {
        let mut ms = now().timestamp_millis();
        while self.approvals_dir().join(format!("APR-{ms}.json")).exists() {
            ms += 1;
        }
        let request_id = format!("APR-{ms}");
        let tool_input = json!({
            "command": format!("cat >> {CHANGE_FILE} <<'EOF'\n- simulated change for {}\nEOF", self.sid),
            "description": "Apply the planned change",
        });
        let fingerprint = sha1_hex(format!("Bash:{tool_input}").as_bytes());
        let team = self.load_session()?.team;
        let mode = std::env::var("AI_PARTY_APPROVAL_MODE").unwrap_or_else(|_| "platform".into());
        let at = ts();
        let a = ToolApproval {
            request_id: request_id.clone(),
            session_id: self.sid.clone(),
            team,
            phase: "EXECUTING".into(),
            previous_phase: Some("EXECUTING".into()),
            approval_mode: mode.clone(),
            risk_level: "HIGH".into(),
            tool_name: "Bash".into(),
            tool_input,
            fingerprint,
            status: "pending".into(),
            retries: 0,
            requested_at: at.clone(),
            last_seen_at: at,
            decision: None,
            decided_at: None,
            decision_comment: None,
            decided_by: None,
            extra: Map::new(),
        };
        write_json(&self.approvals_dir().join(format!("{request_id}.json")), &a)?;
        self.event(
            "approval_requested",
            json!({"request_id": request_id, "tool_name": "Bash", "risk_level": "HIGH",
                   "approval_mode": mode, "source": "pre-tool-enforce", "phase": "EXECUTING",
                   "team": self.opts.team, "tool_input": {"command": format!("git add {CHANGE_FILE}")},
                   "summary": format!("Bash on {CHANGE_FILE}")}),
        )?;
        let rid = request_id.clone();
        self.set_phase_with(
            "PENDING_APPROVAL",
            &format!("tool approval {request_id}"),
            |s| {
                let mut extra = Map::new();
                extra.insert("requested_tool".into(), json!("Bash"));
                extra.insert("requested_at".into(), json!(ts()));
                s.approval_context = Some(ApprovalContext {
                    pending_request_id: Some(rid),
                    previous_phase: Some("EXECUTING".into()),
                    extra,
                });
            },
        )?;
        self.out.say(&format!(
            "The builder wants to run Bash on {CHANGE_FILE} (risk HIGH). Waiting for approval {request_id}."
        ));
        Ok(format!(
            "Pipeline paused: approval {request_id} pending for Bash on {CHANGE_FILE}."
        ))
    }

    fn request_result_approval(&mut self, mode: &Mode) -> Res<String> {
        let s = self.load_session()?;
        // The plugin's approval-gate instructions act in AWAITING_APPROVAL, once per request.
        if s.phase != "AWAITING_APPROVAL" {
            self.out.say(&format!(
                "The pipeline did not reach AWAITING_APPROVAL (phase {}); nothing to ask.",
                s.phase
            ));
            return Ok(format!("Pipeline stopped in phase {}.", s.phase));
        }
        if let Some(pending) = self.pending_result_request() {
            self.out.say(&format!(
                "A result approval is still pending (approvals/{pending}.json); waiting for it."
            ));
            return Ok(format!(
                "Pipeline awaiting approval (approvals/{pending}.json)."
            ));
        }
        self.write_result_request(mode)
    }

    /// The stem of a result approval file still pending, if any.
    fn pending_result_request(&self) -> Option<String> {
        self.approval_files(false)
            .into_iter()
            .find(|(_, path)| {
                read_json::<ResultApproval>(path).is_ok_and(|a| a.status == "pending")
            })
            .map(|(stem, _)| stem)
    }

    /// Writes `approvals/<timestamp>.json` as the approval-gate instructions tell the agent.
    fn write_result_request(&mut self, mode: &Mode) -> Res<String> {
        let s = self.load_session()?;
        if self.opts.no_result_file {
            self.out
                .say("Waiting for your decision (no approval file written).");
            return Ok("Pipeline awaiting approval.".into());
        }
        let mut t = now();
        let name = loop {
            let n = format!("{}.json", t.format("%Y%m%dT%H%M%S%3fZ"));
            if !self.approvals_dir().join(&n).exists() {
                break n;
            }
            t += chrono::Duration::milliseconds(1);
        };
        let revisions = s.fix_loop.attempt;
        let summary = match mode {
            Mode::Revision { n, .. } => format!(
                "{} team finished revision {n} of \"{}\"; see findings/implementation.md and findings/review.md.",
                s.team, s.task
            ),
            _ => format!(
                "{} team finished \"{}\"{}; see findings/implementation.md and findings/review.md.",
                s.team,
                s.task,
                if revisions > 0 {
                    format!(" after {revisions} revision(s)")
                } else {
                    String::new()
                }
            ),
        };
        let a = ResultApproval {
            session_id: self.sid.clone(),
            summary: summary.clone(),
            git_diff_stat: self.git_diff_stat(),
            requested_at: ts(),
            status: "pending".into(),
            ..ResultApproval::default()
        };
        write_json(&self.approvals_dir().join(&name), &a)?;
        self.out.say(&format!(
            "Pipeline complete and waiting for your decision: approve, reject <reason> or revise <instructions>.\n{summary}"
        ));
        Ok(format!(
            "Pipeline awaiting approval (approvals/{name}): {summary}"
        ))
    }

    // ---- phases -----------------------------------------------------------------------------

    fn run_from(&mut self, start: usize, entered: bool, mode: Mode) -> Res<String> {
        for i in start..PIPELINE.len() {
            if !(i == start && entered) {
                let reason = match (&mode, i) {
                    (Mode::Revision { n, .. }, EXECUTING) => format!("revision {n} requested"),
                    (Mode::AfterTool { request_id, .. }, EXECUTING) => {
                        format!("approval {request_id} decided")
                    }
                    _ => ENTER_REASONS[i].to_string(),
                };
                self.set_phase(PIPELINE[i], &reason)?;
            }
            match i {
                0 => self.contextualize()?,
                1 => self.analyze()?,
                2 => self.plan()?,
                3 => {
                    if let Some(paused) = self.execute(&mode)? {
                        return Ok(paused);
                    }
                }
                4 => self.review(&mode)?,
                _ => return self.request_result_approval(&mode),
            }
        }
        Err("pipeline ended unexpectedly".into())
    }

    fn contextualize(&mut self) -> Res<()> {
        let story = self.story("CTX");
        self.new_story("CTX", "Collect project context")?;
        let id = self.out.tool_use("Glob", json!({"pattern": "**/*"}));
        let files = git(&self.cwd, &["ls-files"])
            .map(|o| String::from_utf8_lossy(&o.stdout).lines().count())
            .unwrap_or(0);
        self.out.tool_result(&id, &format!("{files} files"));
        let task = self.load_session()?.task;
        self.finding(
            "context.md",
            &format!(
                "# Context\n\nTask: {task}\n\nThe worktree tracks {files} file(s). Conventions: small commits, tests next to code.\n"
            ),
            "CONTEXTUALIZING",
            "leader",
            None,
        )?;
        if let Some(var) = self.opts.leak_env.clone() {
            let value = std::env::var(&var).unwrap_or_default();
            self.out.say(&format!("Environment check: {var}={value}"));
            self.finding(
                "leak.md",
                &format!("# Environment\n\n{var}={value}\n"),
                "CONTEXTUALIZING",
                "leader",
                Some(("excerpt", &format!("{var}={value}"))),
            )?;
        }
        if let Some(target) = self.opts.symlink.clone() {
            let links = [
                self.dir().join("findings").join("escape.md"),
                self.dir().join("tickets").join("PRT-ESCAPE.json"),
            ];
            for link in links {
                if fs::symlink_metadata(&link).is_ok() {
                    fs::remove_file(&link).ctx(format!("removing {}", link.display()))?;
                }
                std::os::unix::fs::symlink(&target, &link)
                    .ctx(format!("symlinking {}", link.display()))?;
            }
            self.event(
                "findings_submitted",
                json!({"phase": "CONTEXTUALIZING", "file": "findings/escape.md", "agent": "leader"}),
            )?;
        }
        self.out
            .say("Project context collected; handing over to the analyst.");
        self.ticket_status(&story, "DONE", None)
    }

    fn analyze(&mut self) -> Res<()> {
        let story = self.story("ANA");
        let (t1, t2) = (self.task("ANA", 1), self.task("ANA", 2));
        self.new_story("ANA", "Analyze codebase and requirements")?;
        self.new_task(&t1, "Find the root cause", "analyst", "TODO", &[])?;
        self.new_task(&t2, "Assess blast radius", "architect", "TODO", &[])?;
        self.ticket_status(&t1, "IN_PROGRESS", None)?;
        self.ticket_status(&t2, "IN_PROGRESS", None)?;
        let task = self.load_session()?.task;
        self.out.say("Analyst and architect are investigating.");
        self.finding(
            "analysis.md",
            &format!(
                "# Analysis\n\n- Task: {task}\n- Root cause: simulated; the fix is a one-line change\n- File: {CHANGE_FILE}\n"
            ),
            "ANALYZING",
            "analyst",
            None,
        )?;
        if let Some(bytes) = self.opts.huge_finding {
            self.huge_finding("huge.md", bytes)?;
            for i in 2..=self.opts.huge_findings {
                self.huge_finding(&format!("huge-{i}.md"), bytes)?;
            }
        }
        self.ticket_status(&t1, "DONE", Some("root cause found"))?;
        self.ticket_status(&t2, "DONE", None)?;
        self.agent_completed("analyst")?;
        self.ticket_status(&story, "DONE", None)
    }

    fn plan(&mut self) -> Res<()> {
        let story = self.story("PLN");
        let t1 = self.task("PLN", 1);
        let dep = self.task("ANA", 1);
        self.new_story("PLN", "Design solution approach")?;
        self.new_task(&t1, "Design the fix", "architect", "TODO", &[&dep])?;
        self.ticket_status(&t1, "IN_PROGRESS", None)?;
        self.out.say("Architect is designing the fix.");
        self.finding(
            "design.md",
            &format!("# Design\n\nAppend one line to `{CHANGE_FILE}`; add a regression check.\n"),
            "PLANNING",
            "architect",
            None,
        )?;
        self.ticket_status(&t1, "DONE", None)?;
        self.agent_completed("architect")?;
        self.ticket_status(&story, "DONE", None)
    }

    /// Returns Some(result text) when the pipeline pauses on a tool approval.
    fn execute(&mut self, mode: &Mode) -> Res<Option<String>> {
        let story = self.story("EXE");
        let (t1, t2) = (self.task("EXE", 1), self.task("EXE", 2));
        let dep = self.task("PLN", 1);
        if let Mode::Revision { n, instructions } = mode {
            let no = self.next_task_no("EXE");
            let t = self.task("EXE", no);
            let title = format!("Apply revision {n}");
            self.new_task(&t, &title, "builder", "TODO", &[])?;
            self.ticket_status(&t, "IN_PROGRESS", None)?;
            self.out
                .say(&format!("Builder is applying revision {n}: {instructions}"));
            self.apply_change(&format!("revision {n}: {instructions}"))?;
            self.finding(
                "implementation.md",
                &format!("# Implementation\n\nRevision {n}: {instructions}\n\nAppended a line to `{CHANGE_FILE}`.\n"),
                "EXECUTING",
                "builder",
                None,
            )?;
            self.ticket_status(&t, "DONE", None)?;
            return Ok(None);
        }
        self.new_story("EXE", "Implement changes")?;
        self.new_task(&t1, "Implement the fix", "builder", "TODO", &[&dep])?;
        self.new_task(&t2, "Add regression test", "builder", "BLOCKED", &[&t1])?;
        self.ticket_status(&t1, "IN_PROGRESS", None)?;
        let text = match mode {
            Mode::AfterTool {
                decision,
                request_id,
                note,
            } => {
                if note.is_empty() {
                    format!("change applied after {request_id} ({decision})")
                } else {
                    format!("change applied after {request_id} ({decision}: {note})")
                }
            }
            _ => {
                if self.opts.result_then_tool && self.approval_files(true).is_empty() {
                    self.write_result_request(mode)?;
                    return self.request_tool_approval().map(Some);
                }
                if self.opts.tool_approval && self.approval_files(true).is_empty() {
                    return self.request_tool_approval().map(Some);
                }
                "change applied".to_string()
            }
        };
        self.out.say("Builder is implementing the design.");
        self.apply_change(&text)?;
        self.ticket_status(&t1, "DONE", None)?;
        self.ticket_status(&t2, "IN_PROGRESS", None)?;
        self.finding(
            "implementation.md",
            &format!("# Implementation\n\n- Appended a line to `{CHANGE_FILE}` ({text})\n- Regression check added\n"),
            "EXECUTING",
            "builder",
            None,
        )?;
        self.ticket_status(&t2, "DONE", None)?;
        self.agent_completed("builder")?;
        self.ticket_status(&story, "DONE", None)?;
        Ok(None)
    }

    fn review(&mut self, mode: &Mode) -> Res<()> {
        let story = self.story("REV");
        if let Mode::Revision { n, .. } = mode {
            let no = self.next_task_no("REV");
            let t = self.task("REV", no);
            self.new_task(
                &t,
                &format!("Re-review after revision {n}"),
                "reviewer",
                "TODO",
                &[],
            )?;
            self.ticket_status(&t, "IN_PROGRESS", None)?;
            self.finding(
                "review.md",
                &format!("# Review\n\nRevision {n} looks good. Verdict: **APPROVE**.\n"),
                "REVIEWING",
                "reviewer",
                None,
            )?;
            self.ticket_status(&t, "DONE", Some("approved"))?;
            self.out.say(&format!("Reviewer approved revision {n}."));
            return Ok(());
        }
        let t1 = self.task("REV", 1);
        let dep = self.task("EXE", 1);
        self.new_story("REV", "Review changes")?;
        self.new_task(
            &t1,
            "Review the implementation",
            "reviewer",
            "TODO",
            &[&dep],
        )?;
        self.ticket_status(&t1, "IN_PROGRESS", None)?;
        self.finding(
            "review.md",
            "# Review\n\n- Change is minimal and matches the design\n- No regressions found\n\nVerdict: **APPROVE**.\n",
            "REVIEWING",
            "reviewer",
            None,
        )?;
        self.ticket_status(&t1, "DONE", Some("approved"))?;
        self.agent_completed("reviewer")?;
        self.ticket_status(&story, "DONE", None)?;
        self.out.say("Reviewer approved the change.");
        Ok(())
    }

    // ---- start ------------------------------------------------------------------------------

    fn create_session(&mut self, task: &str) -> Res<()> {
        let sessions = self.party.join("sessions");
        let mut t = now();
        let sid = loop {
            let id = format!("party-{}-{}", self.opts.team, t.format("%Y%m%d%H%M%S"));
            if !sessions.join(&id).exists() {
                break id;
            }
            t += chrono::Duration::seconds(1);
        };
        self.set_sid(&sid);
        for sub in ["findings", "tickets", "approvals"] {
            fs::create_dir_all(self.dir().join(sub)).ctx("creating session directories")?;
        }
        let s = Session {
            id: sid.clone(),
            team: self.opts.team.clone(),
            task: task.to_string(),
            phase: "IDLE".into(),
            execution: Execution {
                workers_total: MEMBERS.len() as u64 + 1,
                ..Execution::default()
            },
            fix_loop: FixLoop {
                max_attempts: 3,
                ..FixLoop::default()
            },
            members: team_members(),
            created_at: ts(),
            starting_phase: Some("CONTEXTUALIZING".into()),
            extra: session_extras(&sid),
            ..Session::default()
        };
        self.save_session(&s)?;
        write_json(
            &self.party.join("active-session.json"),
            &json!({"session_id": sid, "updated_at": ts()}),
        )?;
        self.register_claude_session()?;
        self.event(
            "pipeline_started",
            json!({"sessionId": sid, "team": self.opts.team, "task": task,
                   "membersCount": MEMBERS.len() + 1}),
        )?;
        let title: String = task.chars().take(120).collect();
        self.ensure_ticket(
            &self.epic.clone(),
            "epic",
            &title,
            None,
            "IN_PROGRESS",
            None,
            None,
            &[],
        )
    }

    fn spawn_team(&mut self) -> Res<()> {
        let id = self
            .out
            .tool_use("TeamCreate", json!({"team_name": self.sid}));
        self.event(
            "agent_spawned",
            json!({"agent": "leader", "name": "leader", "role": "orchestrator"}),
        )?;
        for m in MEMBERS {
            self.event("agent_spawned", json!({"agent": m, "name": m, "role": m}))?;
            self.update_session(|s| {
                for mem in s.members.iter_mut().filter(|x| x.name == m) {
                    mem.spawned = true;
                }
                s.execution.workers_active += 1;
            })?;
        }
        self.event(
            "team_spawn_verified",
            json!({"team": self.opts.team, "memberCount": MEMBERS.len() + 1}),
        )?;
        self.out
            .tool_result(&id, &format!("Team {} created", self.sid));
        Ok(())
    }

    fn start(&mut self, task: &str) -> Res<String> {
        self.create_session(task)?;
        if self.opts.hang {
            self.set_phase("CONTEXTUALIZING", ENTER_REASONS[0])?;
            hang();
        }
        self.out.say(&format!(
            "Selecting the {} team for this task: {task}",
            self.opts.team
        ));
        self.spawn_team()?;
        self.run_from(0, false, Mode::Initial)
    }

    // ---- resume -----------------------------------------------------------------------------

    /// Emulation of the plugin's UserPromptSubmit hook for tool approvals.
    fn hook(&self, p: &Prompt) -> Res<()> {
        if p.verb.is_empty() {
            return Ok(());
        }
        let active = std::env::var("AI_PARTY_SESSION_ID")
            .ok()
            .filter(|s| !s.is_empty())
            .or_else(|| {
                read_json::<Value>(&self.party.join("active-session.json"))
                    .ok()
                    .and_then(|v| v.get("session_id")?.as_str().map(str::to_string))
            });
        let Some(active) = active else {
            return Ok(());
        };
        let dir = self.party.join("sessions").join(&active);
        let Ok(mut s) = read_json::<Session>(&dir.join("session.json")) else {
            return Ok(());
        };
        if is_stale(&s) {
            return Ok(()); // stale session: the real hook silently ignores it
        }
        if p.session_arg.as_ref().is_some_and(|named| *named != active) {
            return Ok(()); // session mismatch: the request stays pending
        }
        // A bare decision word in PENDING_APPROVAL decides the latest pending tool request.
        let request_id = match &p.request_id {
            Some(id) => id.clone(),
            None if s.phase == "PENDING_APPROVAL" => {
                let Some(id) = s
                    .approval_context
                    .as_ref()
                    .and_then(|c| c.pending_request_id.clone())
                else {
                    return Ok(());
                };
                id
            }
            None => return Ok(()),
        };
        let request_id = &request_id;
        let apath = dir.join("approvals").join(format!("{request_id}.json"));
        let Ok(mut a) = read_json::<ToolApproval>(&apath) else {
            return Ok(());
        };
        if a.status != "pending" {
            return Ok(());
        }
        let at = ts();
        let comment = non_empty(&p.text);
        a.status = "decided".into();
        a.decision = Some(p.verb.clone());
        a.decision_comment = comment.clone();
        a.decided_by = Some("user".into());
        a.decided_at = Some(at.clone());
        a.last_seen_at = at.clone();
        write_json(&apath, &a)?;
        let previous = s
            .approval_context
            .as_ref()
            .and_then(|c| c.previous_phase.clone())
            .or_else(|| a.previous_phase.clone())
            .unwrap_or_else(|| "EXECUTING".into());
        let from = s.phase.clone();
        let reason = format!("approval {request_id} {}", p.verb);
        s.phase = previous.clone();
        s.phase_history.push(PhaseEntry {
            phase: previous.clone(),
            entered_at: at.clone(),
            reason: reason.clone(),
            extra: Map::new(),
        });
        s.approval_context = None;
        if p.verb == "approve" {
            let expires = now() + chrono::Duration::minutes(10);
            s.approval_grants.get_or_insert_with(Vec::new).push(json!({
                "request_id": request_id,
                "tool_name": a.tool_name,
                "fingerprint": a.fingerprint,
                "granted_at": at,
                "granted_by": "user",
                "uses_left": 1,
                "expires_at": iso(expires),
            }));
        }
        write_json(&dir.join("session.json"), &s)?;
        let ev = |kind: &str, data: Value| -> Res<()> {
            let line = serde_json::to_string(&Event {
                ts: ts(),
                kind,
                session_id: &active,
                data,
            })
            .ctx("serializing event")?;
            let mut f = fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join("events.ndjson"))
                .ctx("opening events.ndjson")?;
            f.write_all(format!("{line}\n").as_bytes())
                .ctx("appending event")
        };
        ev(
            "decision_made",
            json!({"request_id": request_id, "decision": p.verb, "comment": comment, "phase": previous}),
        )?;
        ev(
            "phase_changed",
            json!({"from": from, "to": previous, "reason": reason}),
        )
    }

    fn resume(&mut self, prompt: &str) -> Res<String> {
        if let Some((team, task)) = party_task(prompt) {
            self.choose_team(team);
            return self.start(&task);
        }
        let p = parse_prompt(prompt);
        self.hook(&p)?;
        let Ok(s) = self.load_session() else {
            self.out.say(&format!(
                "I can't find the party session {} any more.",
                self.sid
            ));
            return Ok(format!("No party session {} found.", self.sid));
        };
        let phase = s.phase.clone();
        match phase.as_str() {
            "PENDING_APPROVAL" => self.resume_pending_tool(&s, &p),
            "EXECUTING" => {
                let apr = match &p.request_id {
                    Some(r) => Some(r.clone()),
                    None => self.approval_files(true).last().map(|x| x.0.clone()),
                };
                match apr.and_then(|r| self.load_tool_approval(&r).ok()) {
                    Some(a) if a.status == "decided" => self.act_on_tool_decision(&a),
                    _ => self.run_from(EXECUTING, true, Mode::Initial),
                }
            }
            "CONTEXTUALIZING" | "ANALYZING" | "PLANNING" | "REVIEWING" => {
                let i = PIPELINE.iter().position(|x| *x == phase).unwrap_or(0);
                self.run_from(i, true, Mode::Initial)
            }
            "AWAITING_APPROVAL" => self.resume_result(&p),
            "APPROVED" => self.finish_approved(),
            "REJECTED" => self.finish_rejected("rejected"),
            "REVISION" => {
                let n = s.fix_loop.attempt.max(1);
                let instructions = self.without_result_stem(&p.text);
                self.run_from(EXECUTING, false, Mode::Revision { n, instructions })
            }
            _ if is_terminal(&phase) => {
                self.out.say(&format!(
                    "The pipeline has already finished ({phase}). Nothing to do."
                ));
                Ok(format!("Pipeline already finished: {phase}."))
            }
            _ => {
                self.out
                    .say(&format!("The pipeline is in phase {phase}; nothing to do."));
                Ok(format!("Pipeline in phase {phase}."))
            }
        }
    }

    fn load_tool_approval(&self, request_id: &str) -> Res<ToolApproval> {
        read_json(&self.approvals_dir().join(format!("{request_id}.json")))
    }

    fn resume_pending_tool(&mut self, s: &Session, p: &Prompt) -> Res<String> {
        let rid = s
            .approval_context
            .as_ref()
            .and_then(|c| c.pending_request_id.clone())
            .or_else(|| p.request_id.clone())
            .or_else(|| self.approval_files(true).last().map(|x| x.0.clone()));
        let Some(rid) = rid else {
            self.out
                .say("Waiting for a tool approval, but I can't find the request.");
            return Ok("Still waiting for approval.".into());
        };
        let a = match self.load_tool_approval(&rid) {
            Ok(a) if a.status == "decided" => a,
            _ => {
                self.out.say(&format!(
                    "Approval {rid} is still pending; I'm still waiting for a decision before running the tool."
                ));
                return Ok(format!(
                    "Still waiting for approval {rid} (status pending)."
                ));
            }
        };
        // Decided in the file, but nobody moved the phase back: do it ourselves.
        let prev = s
            .approval_context
            .as_ref()
            .and_then(|c| c.previous_phase.clone())
            .or_else(|| a.previous_phase.clone())
            .unwrap_or_else(|| "EXECUTING".into());
        let decision = a.decision.clone().unwrap_or_default();
        self.set_phase_with(&prev, &format!("approval {rid} {decision}"), |s| {
            s.approval_context = None;
        })?;
        self.act_on_tool_decision(&a)
    }

    fn act_on_tool_decision(&mut self, a: &ToolApproval) -> Res<String> {
        let decision = a.decision.clone().unwrap_or_default().to_ascii_lowercase();
        let rid = a.request_id.clone();
        if decision == "reject" {
            let reason = a
                .decision_comment
                .clone()
                .unwrap_or_else(|| "tool call rejected".into());
            self.out.say(&format!(
                "Approval {rid} was rejected ({reason}); rolling back."
            ));
            return self.finish_rejected(&format!("tool approval {rid} rejected: {reason}"));
        }
        let note = a.decision_comment.clone().unwrap_or_default();
        self.out.say(&format!(
            "Approval {rid} decided ({decision}){}; continuing.",
            if note.is_empty() {
                String::new()
            } else {
                format!(": {note}")
            }
        ));
        let phase = self.load_session()?.phase;
        self.run_from(
            EXECUTING,
            phase == "EXECUTING",
            Mode::AfterTool {
                decision,
                request_id: rid,
                note,
            },
        )
    }

    fn resume_result(&mut self, p: &Prompt) -> Res<String> {
        let files = self.approval_files(false);
        let pick = files
            .iter()
            .rev()
            .find(|(_, path)| {
                read_json::<ResultApproval>(path)
                    .map(|a| a.status == "pending")
                    .unwrap_or(false)
            })
            .or_else(|| files.last())
            .cloned();
        let Some((name, path)) = pick else {
            self.out.say("I can't find the result approval request.");
            return Ok("No result approval found.".into());
        };
        let a: ResultApproval = read_json(&path)?;
        let (decision, comment) = if a.status == "decided" {
            let d = a.decision.clone().unwrap_or_default().to_ascii_lowercase();
            let c = a.decision_comment.clone().or_else(|| non_empty(&p.text));
            self.out.say(&format!(
                "The approval {name} is already decided ({d}); following it."
            ));
            (d, c)
        } else if p.verb.is_empty() {
            self.out.say(
                "The pipeline is waiting for approval: reply approve [comment], reject <reason> or revise <instructions>.",
            );
            return Ok("Pipeline still awaiting approval.".into());
        } else {
            // No plugin code decides the result file: the agent only moves the phase.
            (
                p.verb.clone(),
                non_empty(&self.without_result_stem(&p.text)),
            )
        };
        match decision.as_str() {
            "approve" => {
                self.set_phase("APPROVED", "approved by user")?;
                self.finish_approved()
            }
            "reject" => {
                let reason = comment.unwrap_or_else(|| "rejected by user".into());
                self.finish_rejected(&format!("rejected by user: {reason}"))
            }
            "revise" => self.revise(comment.unwrap_or_default()),
            other => {
                self.out.say(&format!(
                    "Unknown decision '{other}' in approvals/{name}.json."
                ));
                Ok(format!("Unknown decision '{other}'."))
            }
        }
    }

    fn finish_approved(&mut self) -> Res<String> {
        let epic = self.epic.clone();
        self.ticket_status(&epic, "DONE", None)?;
        self.set_phase("DONE", "pipeline complete")?;
        self.event(
            "pipeline_completed",
            json!({"finalPhase": "DONE", "completedAt": ts()}),
        )?;
        self.out.say("Approved. The pipeline is done.");
        Ok("Pipeline approved and done.".into())
    }

    fn finish_rejected(&mut self, reason: &str) -> Res<String> {
        if self.load_session()?.phase != "REJECTED" {
            self.set_phase("REJECTED", reason)?;
        }
        self.rollback()?;
        self.set_phase("ROLLED_BACK", "changes reverted")?;
        self.event(
            "pipeline_completed",
            json!({"finalPhase": "ROLLED_BACK", "completedAt": ts()}),
        )?;
        self.out.say("Rejected; the changes were rolled back.");
        Ok(format!("Pipeline rejected and rolled back ({reason})."))
    }

    /// A result file stem (`20261130T145918379Z`) at the start of a comment is the request
    /// the prompt names, not part of the instructions.
    fn without_result_stem(&self, text: &str) -> String {
        let (first, rest) = split_word(text);
        if self
            .approval_files(false)
            .iter()
            .any(|(stem, _)| stem == first)
        {
            rest.to_string()
        } else {
            text.trim().to_string()
        }
    }

    fn revise(&mut self, instructions: String) -> Res<String> {
        let mut n = 0;
        let mut max = MAX_REVISIONS;
        self.update_session(|s| {
            n = s.fix_loop.attempt + 1;
            s.fix_loop.attempt = n;
            if s.fix_loop.max_attempts > 0 {
                max = s.fix_loop.max_attempts;
            }
        })?;
        if n > max {
            // As the plugin's state machine: straight to FAILED, no REVISION, no completed_at.
            let at = ts();
            self.update_session(|s| {
                s.phase = "FAILED".into();
                s.phase_history.push(PhaseEntry {
                    phase: "FAILED".into(),
                    entered_at: at,
                    reason: format!("too many revisions ({n} > {max})"),
                    extra: Map::new(),
                });
            })?;
            self.event(
                "phase_changed",
                json!({"from": "AWAITING_APPROVAL", "to": "FAILED", "reason": format!("too many revisions ({n} > {max})")}),
            )?;
            self.out.say(&format!(
                "Revision limit reached ({MAX_REVISIONS}); the pipeline failed."
            ));
            return Ok(format!(
                "Pipeline failed: more than {MAX_REVISIONS} revisions."
            ));
        }
        self.set_phase(
            "REVISION",
            &format!("revision {n} requested: {instructions}"),
        )?;
        self.run_from(EXECUTING, false, Mode::Revision { n, instructions })
    }
}

fn phase_of(code: &str) -> &'static str {
    match code {
        "CTX" => "CONTEXTUALIZING",
        "ANA" => "ANALYZING",
        "PLN" => "PLANNING",
        "REV" => "REVIEWING",
        _ => "EXECUTING",
    }
}

/// The task text of a `/ai-party:party [--team NAME] <task>` prompt, and the team it asks for.
fn party_task(prompt: &str) -> Option<(Option<String>, String)> {
    let p = prompt.trim_start();
    let rest = ["/ai-party:party", "/party"].iter().find_map(|pre| {
        let rest = p.strip_prefix(pre)?;
        (rest.is_empty() || rest.starts_with(char::is_whitespace)).then(|| rest.trim())
    })?;
    match rest.strip_prefix("--team") {
        Some(after) if after.starts_with(char::is_whitespace) => {
            let after = after.trim_start();
            let (team, task) = after.split_once(char::is_whitespace).unwrap_or((after, ""));
            Some((Some(team.to_string()), task.trim().to_string()))
        }
        _ => Some((None, rest.to_string())),
    }
}

impl Sim {
    /// Takes the team a start prompt asks for, unless `--sim-team` forces another.
    fn choose_team(&mut self, asked: Option<String>) {
        if let Some(team) = asked.filter(|t| !t.is_empty() && !self.opts.team_forced) {
            self.opts.team = team;
        }
    }
}

fn hang() -> ! {
    let _ = io::stdout().flush();
    for bin in ["sleep", "/bin/sleep", "/usr/bin/sleep"] {
        let spawned = Command::new(bin)
            .arg("1000")
            .stdin(Stdio::null())
            .spawn()
            .map(std::mem::forget);
        if spawned.is_ok() {
            break;
        }
    }
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

fn run(opts: Opts) -> i32 {
    let started = Instant::now();
    if let Some(text) = &opts.stderr_text {
        eprintln!("{text}");
    }
    let cwd = match std::env::current_dir() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: cannot determine the working directory: {e}");
            return 1;
        }
    };
    let party = cwd.join(".party");
    let prompt = opts.prompt.clone().unwrap_or_default();
    if prompt.trim().is_empty() {
        eprintln!(
            "Error: Input must be provided either through stdin or as a prompt argument when using --print"
        );
        return 1;
    }
    let model = opts.model.clone().unwrap_or_else(|| DEFAULT_MODEL.into());
    let permission_mode = opts
        .permission_mode
        .clone()
        .unwrap_or_else(|| "default".into());
    let mut out = Out {
        session_id: String::new(),
        model,
        turns: 0,
        total: Usage::default(),
        garbage: opts.garbage,
        lines: 0,
        last: String::new(),
        started,
    };
    let resume = opts.resume.clone();
    let party_sid = match &resume {
        Some(id) => {
            out.session_id = id.clone();
            match lookup_claude_session(&party, id) {
                Some(sid) => Some(sid),
                None => {
                    eprintln!("No conversation found with session ID: {id}");
                    out.result(
                        "error_during_execution",
                        true,
                        &format!("No conversation found with session ID: {id}"),
                    );
                    return 1;
                }
            }
        }
        None => {
            out.session_id = uuid_v4();
            None
        }
    };
    out.init(&cwd, &permission_mode);
    let mut sim = Sim {
        opts,
        cwd,
        party,
        out,
        sid: String::new(),
        epic: String::new(),
    };
    let outcome = match party_sid {
        Some(sid) => {
            sim.set_sid(&sid);
            if sim.opts.hang {
                hang();
            }
            sim.resume(&prompt)
        }
        None => {
            let (team, task) =
                party_task(&prompt).unwrap_or_else(|| (None, prompt.trim().to_string()));
            sim.choose_team(team);
            sim.start(&task)
        }
    };
    match outcome {
        Ok(text) => {
            sim.out.result("success", false, &text);
            sim.opts.exit_code.unwrap_or(0)
        }
        Err(e) => {
            eprintln!("party_sim: {e}");
            sim.out.result("error_during_execution", true, &e);
            1
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let code = match parse_args(&args) {
        Ok(opts) => run(opts),
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    };
    std::process::exit(code);
}

/// The team as `session.json` lists it: the leader (an orchestrator, always there and
/// spawned with the session) and the members, not spawned yet.
fn team_members() -> Vec<Member> {
    let leader = Member {
        name: "leader".into(),
        agent: "leader".into(),
        role: "orchestrator".into(),
        phases: vec!["CONTEXTUALIZING".into()],
        spawned: true,
        extra: Map::new(),
    };
    let members = MEMBERS.iter().zip(MEMBER_PHASES).map(|(m, phases)| Member {
        name: m.to_string(),
        agent: m.to_string(),
        role: m.to_string(),
        phases: phases.iter().map(|p| p.to_string()).collect(),
        spawned: false,
        extra: Map::new(),
    });
    std::iter::once(leader).chain(members).collect()
}

/// The fields the real plugin adds to `session.json` (contract section 4).
fn session_extras(sid: &str) -> Map<String, Value> {
    let mut extra = Map::new();
    extra.insert("pluginRoot".into(), json!("/opt/party-sim"));
    extra.insert(
        "runtime_root".into(),
        json!(format!(".party/sessions/{sid}")),
    );
    extra.insert("starting_phase_after_context".into(), json!("ANALYZING"));
    extra.insert("approval_mode".into(), json!("platform"));
    extra.insert("task_ticket_map".into(), json!({}));
    extra
}

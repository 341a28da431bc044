//! Tests of whole agent runs: real child processes, their output, stats and process groups.

use std::process::Stdio;

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep};
use tokio_util::sync::CancellationToken;

use super::output::{MAX_LINE_BYTES, TRUNCATION_NOTE};
use super::process::{KILL_GRACE, parse_state_and_pgrp};
use super::run::DRAIN_AFTER_EXIT;
use super::*;

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/fixtures/claude/stream-json.ndjson"
);

fn sh(script: &str) -> Vec<String> {
    vec!["sh".to_owned(), "-c".to_owned(), script.to_owned()]
}

fn spec(argv: Vec<String>) -> AgentSpec {
    AgentSpec {
        argv,
        cwd: PathBuf::from(env!("CARGO_MANIFEST_DIR")),
        env: agent_env(&["PATH".to_owned()], &[]),
        timeout: Duration::from_secs(10),
        max_output_bytes: 1024 * 1024,
        redact: Arc::new(str::to_owned),
        budget: super::Budget {
            prices: Arc::new(crate::config::CostsConfig::default()),
            spent_before: super::Spent {
                cost_usd: 0.0,
                turns: 0,
            },
            max_cost_usd: None,
            max_turns: None,
        },
        shim: None,
    }
}

/// A message line as Claude streams it: 5,000 input and 333 output tokens of Sonnet cost
/// $0.019995.
fn priced_message(n: usize) -> String {
    format!(
        r#"{{"type":"assistant","message":{{"id":"msg_{n}","model":"claude-sonnet-4-5","usage":{{"input_tokens":5000,"output_tokens":333}}}}}}"#
    )
}

/// A shell that streams twenty priced messages, 0.2 s apart.
fn priced_messages() -> Vec<String> {
    let script: String = (0..20)
        .map(|n| format!("echo '{}'; sleep 0.2; ", priced_message(n)))
        .collect();
    vec!["sh".into(), "-c".into(), script]
}

#[tokio::test]
async fn a_run_is_stopped_within_one_message_of_passing_its_budget() {
    // Twenty messages, 0.2 s apart; the limit is passed by the third ($0.06 > $0.05 with
    // $0.01 spent by earlier runs: the second already makes $0.05, not over).
    let mut spec = spec(priced_messages());
    spec.budget.spent_before.cost_usd = 0.01;
    spec.budget.max_cost_usd = Some(0.05);
    let (outcome, events) = run(spec).await;
    let why = outcome.budget_exceeded.expect("stopped over budget");
    assert!(why.contains("over its limit of $0.05"), "{why}");
    let messages = outcome.log.matches("\"type\":\"assistant\"").count();
    assert!(
        (3..=4).contains(&messages),
        "{messages} messages: {}",
        outcome.log
    );
    assert!(!outcome.cancelled && !outcome.timed_out);
    // The stored cost is the streamed one (no result line came).
    assert!((outcome.stats.cost_usd - 0.019995 * messages as f64).abs() < 1e-9);
    let spent: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            AgentEvent::Spent(spent) => Some(spent.turns),
            _ => None,
        })
        .collect();
    assert_eq!(spent, (1..=messages as i64).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_turn_limit_stops_the_run_too() {
    let mut spec = spec(priced_messages());
    spec.budget.max_turns = Some(2);
    let (outcome, _) = run(spec).await;
    let why = outcome.budget_exceeded.expect("stopped over its turns");
    assert!(why.contains("3 turns, over its limit of 2"), "{why}");
}

/// Runs the agent to its end, collecting every event.
async fn run(spec: AgentSpec) -> (AgentOutcome, Vec<AgentEvent>) {
    let mut events = Vec::new();
    let outcome = run_agent(spec, CancellationToken::new(), |event| events.push(event))
        .await
        .expect("agent starts");
    (outcome, events)
}

fn started_pid(events: &[AgentEvent]) -> i32 {
    match events.first() {
        Some(AgentEvent::Started { pid }) => *pid as i32,
        other => panic!("first event is not Started: {other:?}"),
    }
}

fn line_texts(events: &[AgentEvent]) -> Vec<&str> {
    events
        .iter()
        .filter_map(|event| match event {
            AgentEvent::Line { text, .. } => Some(text.as_str()),
            _ => None,
        })
        .collect()
}

/// Alive and not a zombie, by /proc.
fn process_running(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| parse_state_and_pgrp(&stat))
        .is_some_and(|(state, _)| !matches!(state, 'Z' | 'X' | 'x'))
}

/// Polls a condition that no event announces (the death of a process we are not the
/// parent of) until it holds or the deadline passes.
async fn wait_until(mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(3);
    while !condition() {
        if Instant::now() >= deadline {
            return false;
        }
        sleep(Duration::from_millis(5)).await;
    }
    true
}

/// The stats the fixture's result line states, read straight from the JSON.
fn fixture_result_stats() -> RunStats {
    let text = std::fs::read_to_string(FIXTURE).expect("fixture is readable");
    let result: Value = text
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).expect("fixture line is JSON"))
        .find(|event| event["type"] == "result")
        .expect("fixture has a result line");
    let usage = &result["usage"];
    RunStats {
        totals: crate::model::RunTotals {
            claude_session_id: result["session_id"].as_str().map(str::to_owned),
            result_subtype: result["subtype"].as_str().map(str::to_owned),
            num_turns: result["num_turns"].as_i64(),
            input_tokens: usage["input_tokens"].as_i64().unwrap(),
            output_tokens: usage["output_tokens"].as_i64().unwrap(),
            cache_read_tokens: usage["cache_read_input_tokens"].as_i64().unwrap(),
            cache_creation_tokens: usage["cache_creation_input_tokens"].as_i64().unwrap(),
            cost_usd: result["total_cost_usd"].as_f64().unwrap(),
            duration_ms: result["duration_ms"].as_i64(),
        },
        is_error: result["is_error"].as_bool(),
        garbage_lines: 0,
    }
}

fn assert_stats_eq(actual: &RunStats, expected: &RunStats) {
    assert_eq!(
        serde_json::to_value(actual).unwrap(),
        serde_json::to_value(expected).unwrap()
    );
}

#[tokio::test]
async fn the_child_sees_exactly_agent_env() {
    let passthrough = ["PATH", "HOME", "LANG", "TZ", "TMPDIR", "USER"].map(str::to_owned);
    let credentials = [(
        "GITHUB_TOKEN".to_owned(),
        "ghp with spaces $HOME 'q'".to_owned(),
    )];
    let env = agent_env(&passthrough, &credentials);
    let mut spec = spec(vec!["env".to_owned()]);
    spec.env = env.clone();

    let (outcome, _) = run(spec).await;

    assert_eq!(outcome.exit_code, Some(0));
    let mut seen: Vec<(String, String)> = outcome
        .log
        .lines()
        .map(|line| {
            let (name, value) = line.split_once('=').expect("env prints NAME=value");
            (name.to_owned(), value.to_owned())
        })
        .collect();
    let mut expected = env;
    seen.sort();
    expected.sort();
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn the_fixture_stream_yields_the_result_line_stats() {
    let (outcome, events) = run(spec(vec!["cat".to_owned(), FIXTURE.to_owned()])).await;

    assert_eq!(outcome.exit_code, Some(0));
    assert_eq!(outcome.signal, None);
    assert!(!outcome.timed_out && !outcome.cancelled && !outcome.log_truncated);
    assert_stats_eq(&outcome.stats, &fixture_result_stats());
    assert_eq!(
        outcome.log,
        std::fs::read_to_string(FIXTURE).unwrap(),
        "stdout is logged line for line"
    );
    let session_ids: Vec<&AgentEvent> = events
        .iter()
        .filter(|event| matches!(event, AgentEvent::SessionId(_)))
        .collect();
    assert!(
        matches!(session_ids.as_slice(), [AgentEvent::SessionId(id)] if id == "3f8a1c2e-7b4d-4e9a-9c1f-2d6e8b0a5c71"),
        "{session_ids:?}"
    );
    assert_eq!(line_texts(&events).len(), 5);
}

#[tokio::test]
async fn garbage_between_fixture_lines_is_counted_and_kept() {
    let script = r#"
        while IFS= read -r line || [ -n "$line" ]; do
            printf '%s\n' "$line"
            echo 'npm WARN not json at all'
            printf '%s\n' '{"type":"assistant","message":{"usage":{"input_tok'
            echo '[1, 2, 3]'
            echo '"a string"'
            echo 'a warning on stderr' >&2
        done < "$0"
    "#;
    let mut argv = sh(script);
    argv.push(FIXTURE.to_owned());

    let (outcome, _) = run(spec(argv)).await;

    assert_eq!(outcome.exit_code, Some(0));
    let expected = RunStats {
        garbage_lines: 5 * 4,
        ..fixture_result_stats()
    };
    assert_stats_eq(&outcome.stats, &expected);
    assert!(outcome.log.contains("npm WARN not json at all\n"));
    assert!(outcome.log.contains("\n[1, 2, 3]\n"));
    assert!(outcome.log.contains("[stderr] a warning on stderr\n"));
}

#[tokio::test]
async fn without_a_result_line_message_usage_is_summed_once_per_message() {
    // The fixture without its result line, its first message repeated as Claude does
    // for a message with several content blocks.
    let script = r#"head -n 1 "$0"; head -n 2 "$0" | tail -n 1; head -n 4 "$0""#;
    let mut argv = sh(script);
    argv.push(FIXTURE.to_owned());

    let (outcome, _) = run(spec(argv)).await;

    let stats = outcome.stats;
    assert_eq!(
        stats.claude_session_id.as_deref(),
        Some("3f8a1c2e-7b4d-4e9a-9c1f-2d6e8b0a5c71")
    );
    assert_eq!(stats.result_subtype, None);
    // Two messages (the repeated one counted once), priced as claude-opus-4-5:
    // (5120·5 + 64·25 + 2048·6.25) + (5300·5 + 41·25 + 5120·0.5) dollars per million.
    assert_eq!(stats.num_turns, Some(2));
    assert_eq!(stats.input_tokens, 5120 + 5300);
    assert_eq!(stats.output_tokens, 64 + 41);
    assert_eq!(stats.cache_creation_tokens, 2048);
    assert_eq!(stats.cache_read_tokens, 5120);
    assert!(
        (stats.cost_usd - 0.070085).abs() < 1e-9,
        "{}",
        stats.cost_usd
    );
    assert_eq!(stats.garbage_lines, 0);
}

#[tokio::test]
async fn secrets_are_redacted_from_the_log_and_the_events() {
    const SECRET: &str = "hunter2-5ecret";
    let mut spec = spec(sh(&format!(
        r#"echo "token={SECRET}"; echo '{{"type":"user","text":"{SECRET}"}}'; echo "{SECRET}" >&2"#
    )));
    spec.redact = Arc::new(|line: &str| line.replace(SECRET, "[REDACTED]"));

    let (outcome, events) = run(spec).await;

    assert!(!outcome.log.contains(SECRET), "{}", outcome.log);
    assert!(outcome.log.contains("token=[REDACTED]\n"));
    assert!(outcome.log.contains("[stderr] [REDACTED]\n"));
    let texts = line_texts(&events);
    assert_eq!(texts.len(), 3);
    assert!(texts.iter().all(|text| !text.contains(SECRET)), "{texts:?}");
}

#[tokio::test]
async fn a_timeout_kills_the_whole_group() {
    let mut spec = spec(sh("sleep 1000 & echo $!; sleep 1000"));
    spec.timeout = Duration::from_millis(300);

    let (outcome, events) = run(spec).await;

    let pgid = started_pid(&events);
    let grandchild: i32 = outcome.log.trim().parse().expect("the script prints $!");
    assert!(outcome.timed_out && !outcome.cancelled);
    assert_eq!(outcome.signal, Some(Signal::SIGTERM as i32));
    assert_eq!(outcome.exit_code, None);
    assert!(!group_alive(pgid));
    assert!(!process_running(grandchild));
    assert!(
        outcome.duration < KILL_GRACE,
        "SIGTERM was enough: {:?}",
        outcome.duration
    );
}

#[tokio::test]
async fn an_agent_ignoring_sigterm_gets_sigkill_after_the_grace() {
    let mut spec = spec(sh("trap '' TERM; sleep 1000 & echo $!; sleep 1000"));
    spec.timeout = Duration::from_millis(100);

    let (outcome, events) = run(spec).await;

    let grandchild: i32 = outcome.log.trim().parse().expect("the script prints $!");
    assert!(outcome.timed_out);
    assert_eq!(outcome.signal, Some(Signal::SIGKILL as i32));
    assert!(outcome.duration >= KILL_GRACE);
    assert!(!group_alive(started_pid(&events)));
    assert!(!process_running(grandchild));
}

#[tokio::test]
async fn cancelling_stops_the_whole_group() {
    let cancel = CancellationToken::new();
    let mut events = Vec::new();
    let spec = spec(sh("sleep 1000 & echo $!; echo ready; sleep 1000"));

    let outcome = run_agent(spec, cancel.clone(), |event| {
        if matches!(&event, AgentEvent::Line { text, .. } if text == "ready") {
            cancel.cancel();
        }
        events.push(event);
    })
    .await
    .unwrap();

    let grandchild: i32 = line_texts(&events)[0].parse().unwrap();
    assert!(outcome.cancelled && !outcome.timed_out);
    assert!(!group_alive(started_pid(&events)));
    assert!(!process_running(grandchild));
}

#[tokio::test]
async fn dropping_a_run_kills_its_group() {
    let (event_tx, mut event_rx) = mpsc::unbounded_channel();
    let run = tokio::spawn(run_agent(
        spec(sh("sleep 1000 & echo $!; sleep 1000")),
        CancellationToken::new(),
        move |event| {
            let _ = event_tx.send(event);
        },
    ));
    let Some(AgentEvent::Started { pid }) = event_rx.recv().await else {
        panic!("first event is Started");
    };
    let Some(AgentEvent::Line { text, .. }) = event_rx.recv().await else {
        panic!("second event is the grandchild's pid");
    };
    let grandchild: i32 = text.parse().unwrap();

    run.abort();
    assert!(run.await.unwrap_err().is_cancelled());

    assert!(wait_until(|| !group_alive(pid as i32)).await);
    assert!(!process_running(grandchild));
}

#[tokio::test]
async fn a_process_that_left_the_group_cannot_hold_the_run_open() {
    let (outcome, _) = run(spec(sh("setsid sleep 1000 & echo $!"))).await;

    let escaped = Pid::from_raw(outcome.log.trim().parse().expect("the script prints $!"));
    nix::sys::signal::kill(escaped, Signal::SIGKILL).expect("the escaped sleep was running");
    assert_eq!(outcome.exit_code, Some(0));
    assert!(outcome.duration < DRAIN_AFTER_EXIT + Duration::from_secs(1));
}

#[tokio::test]
async fn output_beyond_the_cap_is_drained_but_not_kept() {
    const CAP: usize = 64 * 1024;
    let mut spec = spec(sh(
        "yes 0123456789012345678901234567890123456789 | head -c 5000000; echo done >&2",
    ));
    spec.max_output_bytes = CAP;

    let (outcome, events) = run(spec).await;

    assert_eq!(outcome.exit_code, Some(0), "the child was never blocked");
    assert!(!outcome.timed_out);
    assert!(outcome.log_truncated);
    assert!(outcome.log.len() <= CAP + TRUNCATION_NOTE.len());
    assert!(outcome.log.len() >= CAP);
    assert!(!outcome.log.contains("done"));
    let stdout_lines = events
        .iter()
        .filter(|event| {
            matches!(
                event,
                AgentEvent::Line {
                    stream: Stream::Stdout,
                    ..
                }
            )
        })
        .count();
    assert_eq!(
        stdout_lines,
        5_000_000_usize.div_ceil(41),
        "every line was read"
    );
    assert!(line_texts(&events).contains(&"done"));
}

#[tokio::test]
async fn an_overlong_line_is_cut() {
    let (outcome, events) = run(spec(sh(
        "head -c 3000000 /dev/zero | tr '\\0' a; echo; echo after",
    )))
    .await;

    let texts = line_texts(&events);
    assert_eq!(texts.len(), 2);
    assert_eq!(texts[0].len(), MAX_LINE_BYTES);
    assert_eq!(texts[1], "after");
    assert_eq!(outcome.stats.garbage_lines, 2);
}

#[tokio::test]
async fn the_exit_code_is_propagated() {
    let (outcome, _) = run(spec(sh("echo oops >&2; exit 7"))).await;

    assert_eq!(outcome.exit_code, Some(7));
    assert_eq!(outcome.signal, None);
    assert!(!outcome.timed_out && !outcome.cancelled);
    assert_eq!(outcome.log, "[stderr] oops\n");
}

#[tokio::test]
async fn a_missing_binary_is_an_error_naming_it() {
    let mut events = Vec::new();
    let err = run_agent(
        spec(vec![
            "aiops-test-no-such-claude".to_owned(),
            "-p".to_owned(),
        ]),
        CancellationToken::new(),
        |event| events.push(event),
    )
    .await
    .unwrap_err();

    assert!(matches!(err, AgentError::Spawn { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("aiops-test-no-such-claude"), "{message}");
    assert!(message.contains("engine.command"), "{message}");
    assert!(events.is_empty());
}

#[tokio::test]
async fn a_missing_working_directory_is_an_error() {
    let gone = tempfile::tempdir().unwrap().path().to_owned();
    let mut spec = spec(vec!["true".to_owned()]);
    spec.cwd = gone.clone();

    let err = run_agent(spec, CancellationToken::new(), |_| {})
        .await
        .unwrap_err();

    assert!(matches!(err, AgentError::MissingWorkDir { path } if path == gone));
}

#[tokio::test]
async fn kill_group_kills_a_detached_group() {
    use std::io::BufRead;
    use std::os::unix::process::{CommandExt, ExitStatusExt};

    let mut leader = std::process::Command::new("sh")
        .args(["-c", "sleep 1000 & echo $!; sleep 1000"])
        .process_group(0)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first_line = String::new();
    std::io::BufReader::new(leader.stdout.take().unwrap())
        .read_line(&mut first_line)
        .unwrap();
    let grandchild: i32 = first_line.trim().parse().unwrap();
    let pgid = leader.id() as i32;
    assert!(group_alive(pgid));

    kill_group(pgid);

    let status = leader.wait().unwrap();
    assert_eq!(status.signal(), Some(Signal::SIGKILL as i32));
    assert!(wait_until(|| !group_alive(pgid)).await);
    assert!(!process_running(grandchild));
    kill_group(pgid);
}

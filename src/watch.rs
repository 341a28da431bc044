//! `aiops task watch`: follows a task's event stream over the API and prints it.

use std::time::Duration;

use anyhow::{Context, bail};
use futures::StreamExt;
use serde_json::Value;

use crate::model::TaskStatus;

/// Prints the task's events as they happen, reconnecting with `Last-Event-ID` when the
/// connection drops; returns when the task ends (or, unless `follow`, waits for a human).
pub async fn watch_task(base: &str, token: &str, task_id: i64, follow: bool) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .build()?;
    let base = base.trim_end_matches('/');
    let task: Value = fetch_json(&client, &format!("{base}/api/v1/tasks/{task_id}"), token).await?;
    println!(
        "task {task_id} on {}: {} ({})",
        task["project"].as_str().unwrap_or("?"),
        task["status"].as_str().unwrap_or("?"),
        task["prompt"].as_str().unwrap_or("")
    );
    let mut last_id: Option<i64> = None;
    let mut failures = 0;
    loop {
        let mut request = client
            .get(format!("{base}/api/v1/events/stream?task={task_id}"))
            .bearer_auth(token);
        if let Some(id) = last_id {
            request = request.header("Last-Event-ID", id.to_string());
        }
        let response = match request.send().await {
            Ok(r) if r.status().is_success() => r,
            Ok(r) => bail!(
                "the server answered {}: {}",
                r.status(),
                r.text().await.unwrap_or_default()
            ),
            Err(e) => {
                failures += 1;
                if failures > 5 {
                    return Err(e).context("lost the connection to the server");
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        failures = 0;
        let mut body = response.bytes_stream();
        let mut buffer = String::new();
        while let Some(chunk) = body.next().await {
            let Ok(chunk) = chunk else { break };
            buffer.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buffer.find("\n\n") {
                let frame: String = buffer.drain(..end + 2).collect();
                let Some(event) = parse_frame(&frame) else {
                    continue;
                };
                last_id = event["id"].as_i64().or(last_id);
                println!("{}", describe(&event));
                if event["kind"] == "status_changed" {
                    let to = serde_json::from_value::<TaskStatus>(event["data"]["to"].clone()).ok();
                    if to.is_some_and(TaskStatus::has_ended)
                        || (!follow && to == Some(TaskStatus::AwaitingApproval))
                    {
                        return Ok(());
                    }
                }
            }
        }
    }
}

async fn fetch_json(client: &reqwest::Client, url: &str, token: &str) -> anyhow::Result<Value> {
    let response = client
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .with_context(|| format!("cannot reach {url}"))?;
    if !response.status().is_success() {
        bail!(
            "{url}: {} {}",
            response.status(),
            response.text().await.unwrap_or_default()
        );
    }
    Ok(response.json().await?)
}

/// The JSON `data:` of one SSE frame.
fn parse_frame(frame: &str) -> Option<Value> {
    let data: String = frame
        .lines()
        .filter_map(|line| line.strip_prefix("data:"))
        .map(str::trim_start)
        .collect::<Vec<_>>()
        .join("\n");
    serde_json::from_str(&data).ok()
}

/// One line for a person.
fn describe(event: &Value) -> String {
    let ts = event["ts"].as_str().unwrap_or("");
    let kind = event["kind"].as_str().unwrap_or("?");
    let data = &event["data"];
    let detail = match kind {
        "status_changed" => format!(
            "{} → {}{}",
            data["from"].as_str().unwrap_or("?"),
            data["to"].as_str().unwrap_or("?"),
            data["reason"]
                .as_str()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        ),
        "phase_changed" => format!(
            "{} → {}",
            data["data"]["from"]
                .as_str()
                .or(data["data"]["previous_phase"].as_str())
                .unwrap_or("?"),
            data["data"]["to"]
                .as_str()
                .or(data["data"]["phase"].as_str())
                .unwrap_or("?")
        ),
        "run_finished" => format!(
            "run {} {} (exit {}, ${:.4})",
            data["run_id"],
            data["status"].as_str().unwrap_or("?"),
            data["exit_code"],
            data["cost_usd"].as_f64().unwrap_or(0.0)
        ),
        _ => String::new(),
    };
    format!("{ts} {kind:<20} {detail}")
}

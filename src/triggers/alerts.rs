//! Monitoring alerts: Alertmanager (webhook version 4), Grafana unified alerting, and a
//! generic JSON shape, parsed into occurrences and routed by label matchers.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::config::{AlertRule, AlertsConfig};
use crate::model::Priority;

/// Whether an alert is going on or over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertStatus {
    Firing,
    Resolved,
}

/// One alert of a notification.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertOccurrence {
    /// What identifies "the same alert" across notifications.
    pub fingerprint: String,
    pub status: AlertStatus,
    pub labels: BTreeMap<String, String>,
    pub title: String,
    pub description: String,
    pub link: Option<String>,
}

/// Where a routed alert goes.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertRoute {
    pub project: String,
    pub team: String,
    pub priority: Priority,
}

fn labels_of(value: &Value) -> BTreeMap<String, String> {
    value
        .as_object()
        .map(|map| {
            map.iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.as_str().map_or_else(|| v.to_string(), str::to_string),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn status_of(text: &str) -> AlertStatus {
    if text.eq_ignore_ascii_case("resolved") || text.eq_ignore_ascii_case("ok") {
        AlertStatus::Resolved
    } else {
        AlertStatus::Firing
    }
}

/// Occurrences of an Alertmanager (version 4) or Grafana notification: both carry an
/// `alerts` array of the same shape. A missing fingerprint falls back to the group key.
pub fn parse_grouped(
    payload: &Value,
    require_version: Option<&str>,
) -> Result<Vec<AlertOccurrence>, String> {
    if let Some(version) = require_version {
        let got = payload["version"].as_str().unwrap_or("none");
        if got != version {
            return Err(format!(
                "version {got:?} is not supported; expected {version:?}"
            ));
        }
    }
    let alerts = payload["alerts"]
        .as_array()
        .ok_or("the body has no \"alerts\" array")?;
    let group_key = payload["groupKey"].as_str().unwrap_or_default();
    alerts
        .iter()
        .enumerate()
        .map(|(i, alert)| {
            let labels = labels_of(&alert["labels"]);
            let fingerprint = alert["fingerprint"]
                .as_str()
                .filter(|f| !f.is_empty())
                .map(str::to_string)
                .or_else(|| (!group_key.is_empty()).then(|| group_key.to_string()))
                .ok_or(format!(
                    "alerts[{i}] has no fingerprint and the body no groupKey"
                ))?;
            let annotations = &alert["annotations"];
            let title = annotations["summary"]
                .as_str()
                .or(labels.get("alertname").map(String::as_str))
                .unwrap_or("alert")
                .to_string();
            Ok(AlertOccurrence {
                fingerprint,
                status: status_of(alert["status"].as_str().unwrap_or("firing")),
                title,
                description: annotations["description"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                link: alert["generatorURL"].as_str().map(str::to_string),
                labels,
            })
        })
        .collect()
}

/// The generic shape: `{title, body, severity, fingerprint, status?, labels?}`.
pub fn parse_generic(payload: &Value) -> Result<Vec<AlertOccurrence>, String> {
    let field = |name: &str| payload[name].as_str().filter(|s| !s.trim().is_empty());
    let title = field("title").ok_or("\"title\" is required")?;
    let fingerprint = field("fingerprint").ok_or("\"fingerprint\" is required")?;
    let mut labels = labels_of(&payload["labels"]);
    if let Some(severity) = field("severity") {
        labels.insert("severity".into(), severity.to_string());
    }
    Ok(vec![AlertOccurrence {
        fingerprint: fingerprint.to_string(),
        status: status_of(field("status").unwrap_or("firing")),
        labels,
        title: title.to_string(),
        description: field("body").unwrap_or_default().to_string(),
        link: field("url").map(str::to_string),
    }])
}

/// The first rule whose source and labels match, trying `rules` (the routing rules, in
/// order) before the configured `[[alerts.rules]]`; None when no rule does.
pub fn route(
    source: &str,
    alert: &AlertOccurrence,
    rules: &[AlertRule],
    config: &AlertsConfig,
) -> Option<AlertRoute> {
    let rule = rules.iter().chain(&config.rules).find(|rule| {
        (rule.source.is_empty() || rule.source == source)
            && rule
                .matchers
                .iter()
                .all(|(k, v)| alert.labels.get(k) == Some(v))
    })?;
    let by_severity = alert
        .labels
        .get("severity")
        .and_then(|s| config.severity_priority.get(&s.to_ascii_lowercase()))
        .copied();
    Some(AlertRoute {
        project: rule.project.clone(),
        team: rule
            .team
            .clone()
            .unwrap_or_else(|| config.default_team.clone()),
        priority: rule.priority.or(by_severity).unwrap_or(Priority::Normal),
    })
}

/// The task prompt for an alert.
pub fn prompt(source: &str, alert: &AlertOccurrence) -> String {
    let labels: Vec<String> = alert
        .labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let mut prompt = format!(
        "Alert from {source}: {}\nLabels: {}",
        alert.title,
        labels.join(", ")
    );
    if !alert.description.is_empty() {
        prompt.push_str(&format!("\n\n{}", alert.description));
    }
    if let Some(link) = &alert.link {
        prompt.push_str(&format!("\n\n{link}"));
    }
    prompt.push_str("\n\nFind the cause and propose a fix.");
    prompt
}

/// What is kept on the task about the alert.
pub fn source_ref(source: &str, alert: &AlertOccurrence) -> Value {
    json!({"kind": "alert", "source": source, "fingerprint": alert.fingerprint, "labels": alert.labels, "url": alert.link})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(matchers: &[(&str, &str)], project: &str) -> AlertRule {
        AlertRule {
            source: String::new(),
            matchers: matchers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            project: project.into(),
            team: None,
            priority: None,
        }
    }

    #[test]
    fn routing_rules_are_tried_in_order_before_the_configured_ones() {
        let alert = AlertOccurrence {
            fingerprint: "f".into(),
            status: AlertStatus::Firing,
            labels: [("service", "shop"), ("severity", "critical")]
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .into(),
            title: "t".into(),
            description: String::new(),
            link: None,
        };
        let config = AlertsConfig {
            rules: vec![rule(&[("service", "shop")], "from-config")],
            ..AlertsConfig::default()
        };
        let stored = [
            rule(&[("service", "cart")], "cart"),
            rule(&[("severity", "critical")], "first-match"),
            rule(&[("service", "shop")], "second-match"),
        ];
        let routed = route("alertmanager", &alert, &stored, &config).unwrap();
        assert_eq!(routed.project, "first-match");
        assert_eq!(routed.priority, Priority::Critical, "by severity");
        assert_eq!(routed.team, "bugfix", "alerts.default_team");
        let routed = route("alertmanager", &alert, &stored[..1], &config).unwrap();
        assert_eq!(routed.project, "from-config");
        assert!(
            route(
                "alertmanager",
                &alert,
                &stored[..1],
                &AlertsConfig::default()
            )
            .is_none()
        );
    }
}

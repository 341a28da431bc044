//! Routing rules: which GitHub events and alerts become tasks, declared in `jobs/*.toml`
//! or through `/api/v1/routing-rules`, on top of the `[github]` and `[[alerts.rules]]`
//! settings (which stay the defaults).
//!
//! Validation lives here so the API and jobs files accept exactly the same rules; turning a
//! rule into what `triggers` routes with is here too. The routing itself stays in
//! `triggers`, which is handed the rules. This module writes no SQL and knows nothing
//! about HTTP.

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::config::{AlertRule, AlertsConfig};
use crate::error::{Error, Result};
use crate::model::Origin;
use crate::model::is_slug;
pub use crate::model::{
    AlertRuleSpec, DEFAULT_POSITION, GithubRuleSpec, RoutingRule, RoutingRuleSpec,
};
use crate::store::Store;
use crate::teams::Teams;

impl RoutingRuleSpec {
    /// A definition from a JSON object with a `kind`; a bad value is an invalid field.
    pub fn from_json(mut body: Map<String, Value>) -> Result<Self> {
        let kind = body.remove("kind");
        match kind.as_ref().and_then(Value::as_str) {
            Some("github") => fields_of(body).map(Self::Github),
            Some("alert") => fields_of(body).map(Self::Alert),
            _ => Err(Error::invalid(
                "kind",
                format!(
                    "must be \"github\" or \"alert\", not {}",
                    kind.unwrap_or(Value::Null)
                ),
            )),
        }
    }

    /// The rule's unique name.
    pub fn name(&self) -> &str {
        match self {
            Self::Github(rule) => &rule.name,
            Self::Alert(rule) => &rule.name,
        }
    }

    /// `github` or `alert`, as stored.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Github(_) => "github",
            Self::Alert(_) => "alert",
        }
    }

    /// The project the rule names, if any.
    pub fn project(&self) -> Option<&str> {
        match self {
            Self::Github(rule) => rule.project.as_deref(),
            Self::Alert(rule) => Some(&rule.project),
        }
    }

    /// Where the rule comes in the order rules of its kind are tried.
    pub fn position(&self) -> i64 {
        match self {
            Self::Github(rule) => rule.position,
            Self::Alert(rule) => rule.position,
        }
    }

    /// Whether the rule applies.
    pub fn enabled(&self) -> bool {
        match self {
            Self::Github(rule) => rule.enabled,
            Self::Alert(rule) => rule.enabled,
        }
    }

    /// Checks everything but the project's existence: the name, the teams (against the
    /// presets), the alert source (against `[[alerts.sources]]`), and that the rule can
    /// match something.
    pub fn validate(&self, teams: &Teams, alerts: &AlertsConfig) -> Result<()> {
        if !is_slug(self.name()) {
            return Err(Error::invalid(
                "name",
                "must be 1-63 characters: lower-case letters, digits and '-'",
            ));
        }
        match self {
            Self::Github(rule) => rule.validate(teams),
            Self::Alert(rule) => rule.validate(teams, alerts),
        }
    }
}

/// The fields of one kind of rule, from a JSON object without `kind`.
fn fields_of<T: DeserializeOwned>(body: Map<String, Value>) -> Result<T> {
    serde_path_to_error::deserialize(Value::Object(body)).map_err(|e| Error::from_json_path(&e))
}

impl GithubRuleSpec {
    fn validate(&self, teams: &Teams) -> Result<()> {
        if !self.on_issue_opened
            && !self.on_workflow_failure
            && self.labels.is_empty()
            && self.bot_logins.is_empty()
        {
            return Err(Error::invalid(
                "on_issue_opened",
                "the rule turns no event on; set on_issue_opened, on_workflow_failure, labels or bot_logins",
            ));
        }
        for label in &self.labels {
            if label.trim().is_empty() {
                return Err(Error::invalid("labels", "a label must not be empty"));
            }
            if label.starts_with("party:") {
                return Err(Error::invalid(
                    "labels",
                    format!(
                        "{label:?}: party:<team> labels start a task anyway; list other labels"
                    ),
                ));
            }
        }
        if self.bot_logins.iter().any(|login| login.trim().is_empty()) {
            return Err(Error::invalid("bot_logins", "a login must not be empty"));
        }
        if let Some(team) = &self.workflow_failure_team {
            if !self.on_workflow_failure {
                return Err(Error::invalid(
                    "workflow_failure_team",
                    "is used only with on_workflow_failure = true",
                ));
            }
            teams.check("workflow_failure_team", team)?;
        }
        if let Some(team) = &self.default_team {
            teams.check("default_team", team)?;
        }
        Ok(())
    }
}

impl AlertRuleSpec {
    fn validate(&self, teams: &Teams, alerts: &AlertsConfig) -> Result<()> {
        if self.matchers.is_empty() {
            return Err(Error::invalid(
                "match",
                "name at least one label, e.g. {\"service\": \"shopping-md\"}; a rule without matchers would take every alert",
            ));
        }
        if self.matchers.keys().any(|label| label.trim().is_empty()) {
            return Err(Error::invalid("match", "a label name must not be empty"));
        }
        if let Some(source) = &self.source
            && !alerts.sources.iter().any(|s| &s.name == source)
        {
            let known: Vec<&str> = alerts.sources.iter().map(|s| s.name.as_str()).collect();
            return Err(Error::invalid(
                "source",
                format!(
                    "unknown alert source {source:?}; configured sources: {} (add one under [[alerts.sources]])",
                    known.join(", ")
                ),
            ));
        }
        if let Some(team) = &self.team {
            teams.check("team", team)?;
        }
        Ok(())
    }

    /// The rule in the shape of `[[alerts.rules]]`, which alert routing tries.
    pub fn as_alert_rule(&self) -> AlertRule {
        AlertRule {
            source: self.source.clone().unwrap_or_default(),
            matchers: self.matchers.clone(),
            project: self.project.clone(),
            team: self.team.clone(),
            priority: self.priority,
        }
    }
}

/// `current` with the fields of `patch` replaced (`null` clears an optional one), not yet
/// validated. The name and the kind stay.
fn patched(current: &RoutingRuleSpec, patch: Map<String, Value>) -> Result<RoutingRuleSpec> {
    let Value::Object(mut fields) = serde_json::to_value(current).map_err(anyhow::Error::from)?
    else {
        unreachable!("a rule serializes to an object");
    };
    for fixed in ["name", "kind"] {
        if patch
            .get(fixed)
            .is_some_and(|value| Some(value) != fields.get(fixed))
        {
            return Err(Error::invalid(
                fixed,
                "cannot change; create a new rule and delete this one",
            ));
        }
    }
    fields.extend(patch);
    RoutingRuleSpec::from_json(fields)
}

/// Stores a new rule; an unknown project is an invalid `project`, a taken name a conflict.
pub async fn create(
    store: &Store,
    spec: &RoutingRuleSpec,
    origin: Origin,
    file: Option<&str>,
) -> Result<RoutingRule> {
    let project_id = project_id(store, spec).await?;
    store
        .insert_routing_rule(spec, project_id, origin, file)
        .await
}

/// Gives `current` the definition `spec`, declared in `file` (None: through the API).
pub async fn replace(
    store: &Store,
    current: &RoutingRule,
    spec: &RoutingRuleSpec,
    file: Option<&str>,
) -> Result<RoutingRule> {
    let project_id = project_id(store, spec).await?;
    store
        .update_routing_rule(current.id, spec, project_id, file)
        .await
}

/// Changes a rule through the API; one declared in `jobs/` is refused.
pub async fn update(
    store: &Store,
    name: &str,
    patch: Map<String, Value>,
    teams: &Teams,
    alerts: &AlertsConfig,
) -> Result<RoutingRule> {
    let current = store.routing_rule(name).await?;
    ensure_api_managed(&current)?;
    let spec = patched(&current.spec, patch)?;
    spec.validate(teams, alerts)?;
    replace(store, &current, &spec, None).await
}

/// Removes a rule through the API; one declared in `jobs/` is refused.
pub async fn delete(store: &Store, name: &str) -> Result<()> {
    let current = store.routing_rule(name).await?;
    ensure_api_managed(&current)?;
    store.delete_routing_rule(current.id).await
}

/// The id of the project `spec` names, if it names one.
async fn project_id(store: &Store, spec: &RoutingRuleSpec) -> Result<Option<i64>> {
    let Some(name) = spec.project() else {
        return Ok(None);
    };
    match store.find_project(name).await? {
        Some(project) => Ok(Some(project.id)),
        None => Err(Error::invalid(
            "project",
            format!(
                "unknown project {name:?}; register it first (aiops project add, or POST /api/v1/projects)"
            ),
        )),
    }
}

fn ensure_api_managed(rule: &RoutingRule) -> Result<()> {
    match rule.origin {
        Origin::Api => Ok(()),
        Origin::File => Err(Error::Conflict(format!(
            "routing rule {:?} is defined in jobs/{}; edit the file and run `aiops jobs reload`",
            rule.spec.name(),
            rule.file.as_deref().unwrap_or_default()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;

    fn spec(body: Value) -> Result<RoutingRuleSpec> {
        let Value::Object(fields) = body else {
            panic!("an object")
        };
        RoutingRuleSpec::from_json(fields)
    }

    fn invalid_field(result: Result<impl std::fmt::Debug>) -> (String, String) {
        match result {
            Err(Error::Invalid { field, message }) => (field, message),
            other => panic!("expected an invalid field, got {other:?}"),
        }
    }

    #[test]
    fn bodies_name_the_field_they_fail_on() {
        let github = json!({"kind": "github", "name": "a", "labels": ["x"]});
        assert!(spec(github.clone()).is_ok());
        for (body, field, phrase) in [
            (json!({"name": "a"}), "kind", "\"github\" or \"alert\""),
            (json!({"kind": "email", "name": "a"}), "kind", "\"email\""),
            (
                json!({"kind": "github", "name": "a", "priority": "urgent"}),
                "priority",
                "unknown variant",
            ),
            (
                json!({"kind": "github", "name": "a", "colour": "blue"}),
                "colour",
                "unknown field",
            ),
            (
                json!({"kind": "alert", "name": "a", "match": {"service": "x"}}),
                "project",
                "missing field",
            ),
            (
                json!({"kind": "alert", "name": "a", "project": "shop", "match": {"service": 3}}),
                "match.service",
                "invalid type",
            ),
        ] {
            let (got, message) = invalid_field(spec(body.clone()));
            assert_eq!(got, field, "{body}: {message}");
            assert!(message.contains(phrase), "{body}: {message}");
        }
    }

    #[test]
    fn rules_that_cannot_match_or_name_unknown_things_are_invalid() {
        let alerts = AlertsConfig::default();
        let teams = Teams::default();
        for (body, field) in [
            (json!({"kind": "github", "name": "a"}), "on_issue_opened"),
            (
                json!({"kind": "github", "name": "A", "labels": ["x"]}),
                "name",
            ),
            (
                json!({"kind": "github", "name": "a", "labels": ["party:bugfix"]}),
                "labels",
            ),
            (
                json!({"kind": "github", "name": "a", "bot_logins": [" "]}),
                "bot_logins",
            ),
            (
                json!({"kind": "github", "name": "a", "labels": ["x"], "workflow_failure_team": "bugfix"}),
                "workflow_failure_team",
            ),
            (
                json!({"kind": "github", "name": "a", "labels": ["x"], "default_team": "Not A Team"}),
                "default_team",
            ),
            (
                json!({"kind": "alert", "name": "a", "project": "p", "match": {}}),
                "match",
            ),
            (
                json!({"kind": "alert", "name": "a", "project": "p", "match": {"a": "b"}, "source": "pagerduty"}),
                "source",
            ),
        ] {
            let (got, message) =
                invalid_field(spec(body.clone()).unwrap().validate(&teams, &alerts));
            assert_eq!(got, field, "{body}: {message}");
        }
    }

    #[test]
    fn a_patch_replaces_fields_and_keeps_name_and_kind() {
        let current = spec(json!({"kind": "alert", "name": "a", "project": "p", "match": {"a": "b"}, "team": "bugfix"}))
            .unwrap();
        let patch = |body: Value| {
            let Value::Object(fields) = body else {
                panic!("an object")
            };
            patched(&current, fields)
        };
        let RoutingRuleSpec::Alert(changed) =
            patch(json!({"enabled": false, "team": null, "match": {"c": "d"}})).unwrap()
        else {
            panic!("still an alert rule")
        };
        assert!(!changed.enabled);
        assert_eq!(changed.team, None);
        assert_eq!(changed.matchers, BTreeMap::from([("c".into(), "d".into())]));
        assert_eq!(changed.project, "p");
        assert_eq!(patch(json!({"name": "a"})).unwrap(), current);
        assert_eq!(invalid_field(patch(json!({"name": "b"}))).0, "name");
        assert_eq!(invalid_field(patch(json!({"kind": "github"}))).0, "kind");
        assert_eq!(invalid_field(patch(json!({"labels": ["x"]}))).0, "labels");
    }
}

//! A GitHub delivery's payload as routing reads it: parsed with only the parts
//! [`super::github::route`] and intake look at, the rest skipped while parsing; and as it is
//! kept, the body as received.
//!
//! A payload is 5–30 KB of which routing reads a few dozen bytes; parsed whole it is hundreds
//! of small allocations made and freed for every delivery. What is kept is exactly what the
//! whole parse would hold at those paths (a value that is not an object where one is
//! expected is kept whole), so routing answers the same on either (a test compares them on
//! every fixture). What is stored is the body as received, not this: no second
//! serialization, and byte for byte what GitHub signed.

use serde::Deserialize;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// Which keys of an object are kept, each with what is kept of its value; `None`: the whole
/// value.
#[derive(Clone, Copy)]
struct Keep(Option<&'static [(&'static str, Keep)]>);

const WHOLE: Keep = Keep(None);

const fn only(fields: &'static [(&'static str, Keep)]) -> Keep {
    Keep(Some(fields))
}

/// Every path of a payload that routing and intake read.
const ROUTED: Keep = only(&[
    ("action", WHOLE),
    ("assignee", only(&[("login", WHOLE)])),
    (
        "comment",
        only(&[
            ("author_association", WHOLE),
            ("body", WHOLE),
            ("id", WHOLE),
            ("user", only(&[("login", WHOLE)])),
        ]),
    ),
    ("installation", only(&[("id", WHOLE)])),
    (
        "issue",
        only(&[
            ("body", WHOLE),
            ("html_url", WHOLE),
            ("number", WHOLE),
            ("pull_request", WHOLE),
            ("title", WHOLE),
        ]),
    ),
    ("label", only(&[("name", WHOLE)])),
    (
        "repository",
        only(&[("default_branch", WHOLE), ("full_name", WHOLE)]),
    ),
    ("sender", only(&[("login", WHOLE)])),
    (
        "workflow_run",
        only(&[
            ("conclusion", WHOLE),
            ("head_branch", WHOLE),
            ("head_commit", only(&[("message", WHOLE)])),
            ("head_sha", WHOLE),
            ("html_url", WHOLE),
            ("id", WHOLE),
            ("name", WHOLE),
        ]),
    ),
]);

/// Parses a GitHub payload: what routing reads, and the body as it is kept (checked as
/// JSON); errs where a whole parse would.
pub fn parse(body: &[u8]) -> serde_json::Result<(Value, Box<RawValue>)> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let routed = ROUTED.deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok((routed, serde_json::from_slice(body)?))
}

impl<'de> DeserializeSeed<'de> for Keep {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        match self.0 {
            None => Value::deserialize(deserializer),
            Some(fields) => deserializer.deserialize_any(Pruning(fields)),
        }
    }
}

/// Builds the value, keeping of an object only `.0`'s keys.
struct Pruning(&'static [(&'static str, Keep)]);

impl<'de> Visitor<'de> for Pruning {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut kept = Map::new();
        while let Some(field) = map.next_key_seed(FieldOf(self.0))? {
            match field {
                Some((name, keep)) => {
                    // A repeated key: the last one counts, as in a whole parse.
                    kept.insert(name.to_owned(), map.next_value_seed(keep)?);
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Value::Object(kept))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Value, A::Error> {
        Value::deserialize(serde::de::value::SeqAccessDeserializer::new(seq))
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
}

/// A key of an object: the kept field it names, if any (read without copying it).
struct FieldOf(&'static [(&'static str, Keep)]);

impl<'de> DeserializeSeed<'de> for FieldOf {
    type Value = Option<(&'static str, Keep)>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for FieldOf {
    type Value = Option<(&'static str, Keep)>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E>(self, key: &str) -> Result<Self::Value, E> {
        Ok(self.0.iter().find(|(name, _)| *name == key).copied())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::config::GithubConfig;
    use crate::model::GithubRuleSpec;
    use crate::teams::Teams;
    use crate::triggers::github::{Triggers, route};

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!(
            "{}/../shared/fixtures/github/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// The events the fixtures are deliveries of, by file name.
    const FIXTURES: &[(&str, &str)] = &[
        ("installation.created.json", "installation"),
        ("issue_comment.created.json", "issue_comment"),
        ("issue_comment.edited.json", "issue_comment"),
        ("issues.assigned-installation.json", "issues"),
        ("issues.labeled.json", "issues"),
        ("issues.opened-empty-body.json", "issues"),
        ("issues.opened.json", "issues"),
        ("ping.json", "ping"),
        ("pull_request.opened.json", "pull_request"),
        ("workflow_run.completed.json", "workflow_run"),
    ];

    /// Every trigger on, so that routing reads as much of each payload as it can.
    fn all_on() -> (Vec<Triggers>, Triggers) {
        let mut config = GithubConfig {
            on_issue_opened: true,
            on_workflow_failure: true,
            ..GithubConfig::default()
        };
        config.labels = vec!["bug".into(), "aiops".into(), "enhancement".into()];
        config.bot_logins = vec!["aiops-bot".into(), "octocat".into()];
        let defaults = Triggers::from_config(&config, "feature");
        let rule: GithubRuleSpec = serde_json::from_value(json!({
            "name": "everything", "on_issue_opened": true, "on_workflow_failure": true,
            "labels": ["bug"], "bot_logins": ["octocat"]
        }))
        .unwrap();
        (vec![Triggers::from_rule(&rule, &defaults)], defaults)
    }

    #[test]
    fn routing_answers_the_same_on_the_kept_parts_as_on_every_fixture_whole() {
        let teams = Teams::built_in();
        let (rules, defaults) = all_on();
        for (name, event) in FIXTURES {
            let body = fixture(name);
            let whole: Value = serde_json::from_slice(&body).unwrap();
            let (kept, raw) = parse(&body).unwrap();
            assert_eq!(
                raw.get().as_bytes(),
                body.trim_ascii(),
                "{name}: kept as received"
            );
            assert!(
                kept.to_string().len() < whole.to_string().len() / 2 || name == &"ping.json",
                "{name}: little was left out"
            );
            for rules in [&rules[..], &[]] {
                assert_eq!(
                    route(event, &kept, rules, &defaults, &teams),
                    route(event, &whole, rules, &defaults, &teams),
                    "{name}"
                );
            }
            // What intake reads beside routing.
            for path in [
                &["repository", "full_name"][..],
                &["sender", "login"],
                &["action"],
            ] {
                let at = |v: &Value| path.iter().fold(v.clone(), |v, key| v[*key].clone());
                assert_eq!(at(&kept), at(&whole), "{name}: {path:?}");
            }
        }
    }

    #[test]
    fn odd_shapes_are_kept_as_a_whole_parse_holds_them() {
        let body = br#"{"issue": "not an object", "repository": {"full_name": ["a", {"b": 1}],
            "full_name": "last/wins", "owner": {"login": "x"}}, "label": null,
            "comment": {"id": 1.5e3, "body": "\u00e9\"", "user": [1, 2]}, "other": [1, 2, 3]}"#;
        let kept = parse(body).unwrap().0;
        assert_eq!(
            kept,
            json!({"issue": "not an object", "repository": {"full_name": "last/wins"},
                   "label": null, "comment": {"id": 1500.0, "body": "é\"", "user": [1, 2]}})
        );
        for bad in [&b"{"[..], b"{\"a\": 1} x", b"[1,", b""] {
            assert!(parse(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        let (kept, raw) = parse(b" [1, {\"a\": 2}] ").unwrap();
        assert_eq!((kept, raw.get()), (json!([1, {"a": 2}]), "[1, {\"a\": 2}]"));
    }
}

//! Redaction of secret values and common token shapes from text before it is stored.

use std::borrow::Cow;
use std::sync::LazyLock;

use regex::Regex;

/// Secrets shorter than this are not redacted by value: they would match everywhere.
const MIN_SECRET_LEN: usize = 6;

/// Token shapes that are secrets wherever they appear, with the name they are replaced by.
static TOKEN_SHAPES: LazyLock<Vec<(&'static str, Regex)>> = LazyLock::new(|| {
    [
        (
            "private_key",
            r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z0-9 ]*PRIVATE KEY-----",
        ),
        ("github_token", r"\bgithub_pat_[A-Za-z0-9_]{20,}"),
        ("github_token", r"\bgh[pousr]_[A-Za-z0-9]{20,}"),
        ("slack_token", r"\bxox[abposr]-[A-Za-z0-9-]{10,}"),
        ("aws_access_key", r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    ]
    .into_iter()
    .map(|(name, pattern)| (name, Regex::new(pattern).expect("valid pattern")))
    .collect()
});

/// Replaces known secret values and common token shapes with `[REDACTED:<name>]`.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    /// (name, value), longest value first so a secret containing another is replaced whole.
    secrets: Vec<(String, String)>,
}

impl Redactor {
    /// A redactor for these named secret values, plus the token shapes.
    pub fn new(secrets: impl IntoIterator<Item = (String, String)>) -> Self {
        let mut secrets: Vec<_> = secrets
            .into_iter()
            .filter(|(_, value)| value.len() >= MIN_SECRET_LEN)
            .collect();
        secrets.sort_by_key(|(_, value)| std::cmp::Reverse(value.len()));
        Self { secrets }
    }

    /// `text` with every secret replaced.
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(text);
        for (name, value) in &self.secrets {
            if out.contains(value.as_str()) {
                out = Cow::Owned(out.replace(value.as_str(), &format!("[REDACTED:{name}]")));
            }
        }
        for (name, shape) in TOKEN_SHAPES.iter() {
            if shape.is_match(&out) {
                out = Cow::Owned(
                    shape
                        .replace_all(&out, format!("[REDACTED:{name}]"))
                        .into_owned(),
                );
            }
        }
        out
    }

    /// Redacts every string inside a JSON value, keys included.
    pub fn redact_json(&self, value: &serde_json::Value) -> serde_json::Value {
        use serde_json::Value;
        match value {
            Value::String(s) => Value::String(self.redact(s).into_owned()),
            Value::Array(items) => {
                Value::Array(items.iter().map(|v| self.redact_json(v)).collect())
            }
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| (self.redact(k).into_owned(), self.redact_json(v)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values_are_replaced_by_name() {
        let r = Redactor::new([("db".to_string(), "hunter2-password".to_string())]);
        assert_eq!(
            r.redact("url=postgres://u:hunter2-password@h"),
            "url=postgres://u:[REDACTED:db]@h"
        );
        assert!(matches!(r.redact("nothing here"), Cow::Borrowed(_)));
    }

    #[test]
    fn token_shapes_are_replaced() {
        let r = Redactor::default();
        let text = format!(
            "a ghp_{} b github_pat_{} c xoxb-1234567890-abcdef d AKIAIOSFODNN7EXAMPLE e",
            "a".repeat(36),
            "B".repeat(40)
        );
        let out = r.redact(&text);
        assert_eq!(
            out,
            "a [REDACTED:github_token] b [REDACTED:github_token] c [REDACTED:slack_token] d [REDACTED:aws_access_key] e"
        );
        let pem = "x\n-----BEGIN RSA PRIVATE KEY-----\nMIIE\nabc\n-----END RSA PRIVATE KEY-----\ny";
        assert_eq!(r.redact(pem), "x\n[REDACTED:private_key]\ny");
    }

    #[test]
    fn longer_secret_wins_over_its_prefix() {
        let r = Redactor::new([
            ("short".to_string(), "abcdef".to_string()),
            ("long".to_string(), "abcdef-ghijkl".to_string()),
        ]);
        assert_eq!(
            r.redact("abcdef-ghijkl abcdef"),
            "[REDACTED:long] [REDACTED:short]"
        );
    }

    #[test]
    fn json_strings_are_redacted() {
        let r = Redactor::new([("k".to_string(), "topsecret".to_string())]);
        let v = serde_json::json!({"a": ["x topsecret"], "topsecret": 1});
        assert_eq!(
            r.redact_json(&v),
            serde_json::json!({"a": ["x [REDACTED:k]"], "[REDACTED:k]": 1})
        );
    }
}

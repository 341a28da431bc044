//! Redaction of secret values and common token shapes from text before it is stored.
//!
//! A known secret is matched case-insensitively and in the encodings an agent can print it
//! in without trying hard: base64 (standard and URL-safe, at any alignment inside a longer
//! encoded text), hex and URL encoding. Token shapes catch secrets nobody registered.

use std::borrow::Cow;
use std::sync::LazyLock;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use regex::{Regex, RegexBuilder};

/// Secrets shorter than this are not redacted by value: they would match everywhere.
const MIN_SECRET_LEN: usize = 6;

/// Encoded forms shorter than this are left out: a few base64 characters match anywhere.
const MIN_ENCODED_LEN: usize = 6;

/// What a sensitive `key=value` pair is called before its value (`password=…`, `"token": …`).
const SECRET_KEYS: &str = r"password|passwd|pwd|secret|client_secret|token|access_token|refresh_token|api_key|apikey|private_key";

/// Token shapes that are secrets wherever they appear: the name they are replaced by, the
/// pattern, and the replacement (`None`: the whole match; otherwise a template keeping
/// the parts around the secret).
static TOKEN_SHAPES: LazyLock<Vec<(&'static str, Regex, Option<&'static str>)>> =
    LazyLock::new(|| {
        let pair = format!(
            r#"(?i)\b(?P<key>{SECRET_KEYS})(?P<sep>"?\s*[=:]\s*["']?)[^\s"'&,;\[][^\s"'&,;]{{2,}}"#
        );
        [
            (
                "private_key",
                r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z0-9 ]*PRIVATE KEY-----",
                None,
            ),
            ("github_token", r"\bgithub_pat_[A-Za-z0-9_]{20,}", None),
            ("github_token", r"\bgh[pousr]_[A-Za-z0-9]{20,}", None),
            ("slack_token", r"\bxox[abposr]-[A-Za-z0-9-]{10,}", None),
            ("aws_access_key", r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b", None),
            (
                "stripe_key",
                r"\b[sr]k_(?:live|test)_[A-Za-z0-9]{16,}",
                None,
            ),
            ("anthropic_key", r"\bsk-ant-[A-Za-z0-9_-]{20,}", None),
            ("openai_key", r"\bsk-[A-Za-z0-9_-]{20,}", None),
            (
                "jwt",
                r"\beyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{8,}",
                None,
            ),
            (
                "password",
                r"(?i)\b(?P<head>[a-z][a-z0-9+.-]*://[^\s:/@\[]+:)[^\s@/\[][^\s@/]*(?P<at>@)",
                Some("${head}[REDACTED:password]${at}"),
            ),
            (
                "secret",
                pair.as_str(),
                Some("${key}${sep}[REDACTED:secret]"),
            ),
        ]
        .into_iter()
        .map(|(name, pattern, replacement)| {
            (
                name,
                Regex::new(pattern).expect("valid pattern"),
                replacement,
            )
        })
        .collect()
    });

/// Replaces known secret values (in their common encodings) and common token shapes with
/// `[REDACTED:<name>]`.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    /// (name, every form of the value), longest value first so a secret containing another
    /// is replaced whole.
    secrets: Vec<(String, Regex)>,
}

impl Redactor {
    /// A redactor for these named secret values, plus the token shapes.
    pub fn new(secrets: impl IntoIterator<Item = (String, String)>) -> Self {
        let mut named: Vec<_> = secrets
            .into_iter()
            .filter(|(_, value)| value.len() >= MIN_SECRET_LEN)
            .collect();
        named.sort_by_key(|(_, value)| std::cmp::Reverse(value.len()));
        let secrets = named
            .into_iter()
            .map(|(name, value)| (name, any_form_of(&encoded_forms(value.as_bytes()))))
            .collect();
        Self { secrets }
    }

    /// Also redacts `bytes` (a binary secret such as the master key) in its encoded forms,
    /// and the text `also` (how it is written down), before every other secret.
    pub(super) fn with_binary_secret(mut self, name: &str, bytes: &[u8], also: &str) -> Self {
        let mut forms = encoded_forms(bytes);
        forms.extend(encoded_forms(also.as_bytes()));
        self.secrets
            .insert(0, (name.to_string(), any_form_of(&forms)));
        self
    }

    /// `text` with every secret replaced.
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(text);
        for (name, forms) in &self.secrets {
            if forms.is_match(&out) {
                out = Cow::Owned(
                    forms
                        .replace_all(&out, regex::NoExpand(&format!("[REDACTED:{name}]")))
                        .into_owned(),
                );
            }
        }
        for (name, shape, replacement) in TOKEN_SHAPES.iter() {
            if shape.is_match(&out) {
                let whole = format!("[REDACTED:{name}]");
                let replacement = replacement.unwrap_or(&whole);
                out = Cow::Owned(shape.replace_all(&out, replacement).into_owned());
            }
        }
        out
    }

    /// Redacts every string inside a JSON value, keys included; the value of a key that names
    /// a secret (`"password": "…"`) is redacted whole.
    pub fn redact_json(&self, value: &serde_json::Value) -> serde_json::Value {
        use serde_json::Value;
        match value {
            Value::String(s) => Value::String(self.redact(s).into_owned()),
            Value::Array(items) => {
                Value::Array(items.iter().map(|v| self.redact_json(v)).collect())
            }
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| {
                        let value = match v {
                            Value::String(s) if names_a_secret(k) && s.len() >= 3 => {
                                Value::String("[REDACTED:secret]".into())
                            }
                            other => self.redact_json(other),
                        };
                        (self.redact(k).into_owned(), value)
                    })
                    .collect(),
            ),
            other => other.clone(),
        }
    }
}

/// True if a JSON key says its value is a secret (`password`, `api_key`, `Token`, …).
fn names_a_secret(key: &str) -> bool {
    static WHOLE_KEY: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(&format!("(?i)^(?:{SECRET_KEYS})$")).expect("valid pattern"));
    WHOLE_KEY.is_match(key)
}

/// Patterns for the forms `secret` is recognised in: itself with any of its characters
/// URL-encoded, hex, and base64 / base64url at each of the three alignments it can have
/// inside a longer encoded text (only the characters that do not depend on its neighbours).
fn encoded_forms(secret: &[u8]) -> Vec<String> {
    let mut forms = Vec::new();
    match std::str::from_utf8(secret) {
        Ok(text) if text.len() <= MAX_PER_CHAR_PATTERN => forms.push(url_encoded_pattern(text)),
        Ok(text) => forms.push(regex::escape(text)),
        Err(_) => forms.push(secret.iter().map(|b| format!("%{b:02x}")).collect()),
    }
    forms.push(hex::encode(secret));
    for shift in 0..3usize {
        let mut shifted = vec![0u8; shift];
        shifted.extend_from_slice(secret);
        let (start, end) = ((8 * shift).div_ceil(6), 8 * shifted.len() / 6);
        for encoded in [
            STANDARD_NO_PAD.encode(&shifted),
            URL_SAFE_NO_PAD.encode(&shifted),
        ] {
            if let Some(core) = encoded.get(start..end)
                && core.len() >= MIN_ENCODED_LEN
            {
                forms.push(regex::escape(core));
            }
        }
    }
    forms
}

/// Secrets longer than this are matched as plain text only, not with each character
/// possibly URL-encoded (the pattern would grow too large).
const MAX_PER_CHAR_PATTERN: usize = 512;

/// A pattern matching `text` with any of its characters percent-encoded (a space also as
/// `+`).
fn url_encoded_pattern(text: &str) -> String {
    let mut pattern = String::new();
    let mut buf = [0u8; 4];
    for c in text.chars() {
        let escaped: String = c
            .encode_utf8(&mut buf)
            .bytes()
            .map(|b| format!("%{b:02x}"))
            .collect();
        let plus = if c == ' ' { r"|\+" } else { "" };
        pattern.push_str(&format!(
            "(?:{}|{escaped}{plus})",
            regex::escape(&c.to_string())
        ));
    }
    pattern
}

/// One case-insensitive pattern matching any of `forms`, longest first.
fn any_form_of(forms: &[String]) -> Regex {
    let mut forms = forms.to_vec();
    forms.sort_by_key(|form| std::cmp::Reverse(form.len()));
    forms.dedup();
    RegexBuilder::new(&forms.join("|"))
        .case_insensitive(true)
        .size_limit(64 << 20)
        .build()
        .expect("escaped forms make a valid pattern")
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

    fn deploy() -> Redactor {
        Redactor::new([(
            "deploy".to_string(),
            "Tr0ub4dor&3 horse/battery".to_string(),
        )])
    }

    #[test]
    fn a_secret_is_found_in_any_case() {
        let out = deploy().redact("x TR0UB4DOR&3 HORSE/BATTERY y");
        assert_eq!(out, "x [REDACTED:deploy] y");
    }

    #[test]
    fn a_secret_is_found_url_encoded() {
        let r = deploy();
        for encoded in [
            "Tr0ub4dor%263%20horse%2Fbattery",
            "Tr0ub4dor%263+horse%2fbattery",
            "%54%72%30%75%62%34%64%6f%72%26%33%20%68%6f%72%73%65%2f%62%61%74%74%65%72%79",
        ] {
            assert_eq!(
                r.redact(&format!("?q={encoded}&")),
                "?q=[REDACTED:deploy]&",
                "{encoded}"
            );
        }
    }

    #[test]
    fn a_secret_is_found_in_hex() {
        let r = deploy();
        let hex = hex::encode("Tr0ub4dor&3 horse/battery");
        assert_eq!(r.redact(&format!("h {hex} h")), "h [REDACTED:deploy] h");
        let upper = hex.to_uppercase();
        assert!(!r.redact(&upper).contains(&upper));
    }

    #[test]
    fn a_secret_is_found_in_base64_at_any_alignment() {
        let r = deploy();
        let secret = b"Tr0ub4dor&3 horse/battery";
        for prefix in ["", "a", "ab", "abc"] {
            let mut data = prefix.as_bytes().to_vec();
            data.extend_from_slice(secret);
            data.extend_from_slice(b"tail");
            for encoded in [
                base64::engine::general_purpose::STANDARD.encode(&data),
                base64::engine::general_purpose::URL_SAFE.encode(&data),
            ] {
                let out = r.redact(&encoded);
                assert!(out.contains("[REDACTED:deploy]"), "{prefix:?}: {out}");
                let decoded = out.replace("[REDACTED:deploy]", "");
                assert!(decoded.len() < 16, "little but the edges is left: {out}");
            }
        }
    }

    #[test]
    fn a_binary_secret_and_its_text_are_redacted() {
        let key = [7u8; 32];
        let text = base64::engine::general_purpose::STANDARD.encode(key);
        let r = Redactor::default().with_binary_secret("master_key", &key, &text);
        for form in [
            text.clone(),
            hex::encode(key),
            base64::engine::general_purpose::STANDARD.encode(text.as_bytes()),
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key),
        ] {
            let out = r.redact(&form);
            let rest = out.replace("[REDACTED:master_key]", "");
            assert!(rest.len() < 4, "{form} -> {out}");
        }
    }

    #[test]
    fn common_token_shapes_are_redacted() {
        let r = Redactor::default();
        let cases = [
            (format!("sk_live_{}", "a1B2".repeat(6)), "[REDACTED:stripe_key]"),
            (format!("rk_live_{}", "Z9y8".repeat(6)), "[REDACTED:stripe_key]"),
            (format!("sk-ant-api03-{}", "x_Y-".repeat(10)), "[REDACTED:anthropic_key]"),
            (format!("sk-proj-{}", "AbC1".repeat(10)), "[REDACTED:openai_key]"),
            (
                "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
                    .to_string(),
                "[REDACTED:jwt]",
            ),
            ("password=hunter2".to_string(), "password=[REDACTED:secret]"),
            ("SECRET: 'swordfish'".to_string(), "SECRET: '[REDACTED:secret]'"),
            (r#""token":"abc.def.ghi""#.to_string(), r#""token":"[REDACTED:secret]""#),
            (
                "postgres://app:s3cr3t@db.internal:5432/x".to_string(),
                "postgres://app:[REDACTED:password]@db.internal:5432/x",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(
                r.redact(&format!("a {text} b")),
                format!("a {want} b"),
                "{text}"
            );
        }
        assert_eq!(r.redact("tokens = 5; password"), "tokens = 5; password");
    }

    #[test]
    fn json_values_of_secret_keys_are_redacted() {
        let v =
            serde_json::json!({"Password": "plain words", "n": {"api_key": "k-123"}, "note": "ok"});
        assert_eq!(
            Redactor::default().redact_json(&v),
            serde_json::json!({"Password": "[REDACTED:secret]", "n": {"api_key": "[REDACTED:secret]"}, "note": "ok"})
        );
    }
}

//! Configuration errors in aiops' own words: the key as written in the file (or the
//! `AIOPS_*` variable that set it), the line, and the values it takes — never the loader's
//! internal profile-prefixed key or serde's phrasing.

use std::path::Path;

use figment::error::Actual;
use figment::error::{Error, Kind};

/// One sentence per problem in `error`, joined.
pub(super) fn describe(error: Error) -> String {
    error
        .into_iter()
        .map(|e| one(&e))
        .collect::<Vec<_>>()
        .join("; ")
}

fn one(e: &Error) -> String {
    let key = e.path.join(".");
    let place = place(e);
    match &e.kind {
        Kind::UnknownField(_, expected) => {
            let section = match e.path.len() {
                0 | 1 => "the top level".to_string(),
                n => format!("[{}]", e.path[..n - 1].join(".")),
            };
            format!(
                "unknown key `{key}`{place}; {section} takes {}",
                one_of(expected)
            )
        }
        Kind::UnknownVariant(value, expected) => {
            format!("`{key}`{place} is {value:?}; use {}", one_of(expected))
        }
        Kind::InvalidType(actual, expected) | Kind::InvalidValue(actual, expected) => {
            format!(
                "`{key}`{place} is {}; it must be {expected}",
                actual_text(actual)
            )
        }
        Kind::Message(message) if key.is_empty() => message.clone(),
        other => format!("`{key}`{place}: {other}"),
    }
}

/// ` (line N of FILE)` or ` (set by AIOPS_…)`, whatever is known.
fn place(e: &Error) -> String {
    let Some(metadata) = &e.metadata else {
        return String::new();
    };
    if let Some(file) = metadata.source.as_ref().and_then(|s| s.file_path()) {
        return match line_of(file, &e.path) {
            Some(line) => format!(" (line {line} of {})", file.display()),
            None => format!(" (in {})", file.display()),
        };
    }
    if metadata.name.contains("environment") {
        let variable = format!("AIOPS_{}", e.path.join("__")).to_uppercase();
        return format!(" (set by {variable})");
    }
    String::new()
}

/// The line where `path` is written in the TOML `file`: a `key = …` line under the
/// table `[a.b]` that holds it (or the table header itself, for a whole table).
pub(super) fn line_of(file: &Path, path: &[String]) -> Option<usize> {
    let text = std::fs::read_to_string(file).ok()?;
    let (last, parents) = path.split_last()?;
    let table = parents.join(".");
    let whole = path.join(".");
    let mut current = String::new();
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if let Some(header) = line.strip_prefix('[') {
            current = header
                .trim_start_matches('[')
                .split(']')
                .next()
                .unwrap_or_default()
                .trim()
                .to_string();
            if current == whole {
                return Some(index + 1);
            }
            continue;
        }
        let Some((name, _)) = line.split_once('=') else {
            continue;
        };
        if current == table && name.trim().trim_matches('"') == last {
            return Some(index + 1);
        }
    }
    None
}

fn one_of(expected: &[&str]) -> String {
    match expected {
        [] => "no keys".into(),
        [only] => format!("`{only}`"),
        _ => {
            let names: Vec<String> = expected.iter().map(|n| format!("`{n}`")).collect();
            format!("one of {}", names.join(", "))
        }
    }
}

fn actual_text(actual: &Actual) -> String {
    match actual {
        Actual::Str(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use figment::Figment;
    use figment::providers::{Format, Toml};

    fn error_for(toml: &str) -> String {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("aiops.toml");
        std::fs::write(&file, toml).unwrap();
        let figment = Figment::from(figment::providers::Serialized::defaults(
            crate::config::Config::default(),
        ))
        .merge(Toml::file_exact(&file));
        let error = figment.extract::<crate::config::Config>().unwrap_err();
        describe(error).replace(&file.display().to_string(), "FILE")
    }

    #[test]
    fn an_unknown_key_is_named_as_written_with_its_line_and_the_keys_it_could_be() {
        let message = error_for("listen = \"127.0.0.1:1\"\n\n[engine]\nwokers = 2\n");
        assert!(
            message.starts_with(
                "unknown key `engine.wokers` (line 4 of FILE); [engine] takes one of `workers`"
            ),
            "{message}"
        );
        assert!(!message.contains("default."), "{message}");
    }

    #[test]
    fn a_bad_enum_value_lists_the_allowed_values() {
        let message = error_for("[log]\nformat = \"xml\"\n");
        assert_eq!(
            message,
            "`log.format` (line 2 of FILE) is \"xml\"; use one of `text`, `json`"
        );
    }

    #[test]
    fn a_wrong_type_says_what_it_must_be() {
        let message = error_for("[engine]\nworkers = \"two\"\n");
        assert!(
            message.starts_with("`engine.workers` (line 2 of FILE) is \"two\"; it must be"),
            "{message}"
        );
    }
}

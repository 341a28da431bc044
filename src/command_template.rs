//! The agent command template (`engine.command`): splitting it into argv and filling its
//! `{placeholders}`. Pure text; it starts no process and uses only the model's names.

use crate::model::Decision;

/// Placeholders a command template may use, with sample values for validation.
pub const TEMPLATE_CHECK_VARS: [(&str, &str); 8] = [
    ("prompt", "p"),
    ("task_id", "1"),
    ("team", "t"),
    ("project", "p"),
    ("decision", Decision::Approve.as_str()),
    ("claude_session_id", "s"),
    ("party_session_id", "s"),
    ("max_budget_usd", "1.00"),
];

/// Why a command template cannot be rendered into a command line.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// The command template has no words.
    #[error(
        "the command template setting `engine.command` is empty; set it to a command line such as \
         `claude -p {{prompt}} --output-format stream-json --verbose`"
    )]
    EmptyCommand,
    /// The command template is not a valid shell-style command line.
    #[error("the command template setting `engine.command` cannot be split into arguments: {0}")]
    Unsplittable(#[from] shell_words::ParseError),
    /// The command template names a placeholder nobody fills.
    #[error(
        "the command template setting `engine.command` uses the unknown placeholder `{{{name}}}`; \
         the known ones are: {known}"
    )]
    UnknownPlaceholder { name: String, known: String },
}

/// Renders a command template into argv: split the template with shell-words FIRST, then
/// replace placeholders `{name}` inside each word from `vars` (so a value with spaces or
/// quotes stays inside its one argument and can never inject extra arguments). Unknown
/// placeholder → error naming it. Empty template → error.
///
/// A placeholder is `{` + letters, digits or `_` + `}`; any other brace is literal text, and
/// inserted values are never scanned again.
/// `template` with a relative program path (`target/debug/x`, `./bin/agent`) made absolute
/// against `base`: the command runs inside each task's worktree, where a relative path
/// would never resolve. A bare name (`claude`) is left for `PATH`; the rest is unchanged.
pub fn anchor_program(template: &str, base: &std::path::Path) -> String {
    let Ok(mut words) = shell_words::split(template) else {
        return template.to_string();
    };
    let Some(program) = words.first() else {
        return template.to_string();
    };
    let path = std::path::Path::new(program);
    if !program.contains('/') || path.is_absolute() {
        return template.to_string();
    }
    let anchored = base.join(path);
    words[0] = anchored.to_string_lossy().into_owned();
    shell_words::join(words)
}

/// Where the program of `template` is, or why it cannot be started: a path must be an
/// executable file, a bare name must be found on `PATH`.
pub fn locate_program(template: &str) -> Result<std::path::PathBuf, String> {
    let words = shell_words::split(template).map_err(|e| e.to_string())?;
    let program = words.first().ok_or("the command is empty")?;
    let is_executable = |path: &std::path::Path| {
        use std::os::unix::fs::PermissionsExt;
        path.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.contains('/') {
        let path = std::path::PathBuf::from(program);
        return if is_executable(&path) {
            Ok(path)
        } else {
            Err(format!("`{program}` is not an executable file"))
        };
    }
    let search = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&search)
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
        .ok_or_else(|| format!("`{program}` is not on PATH"))
}

pub fn render_command(template: &str, vars: &[(&str, &str)]) -> Result<Vec<String>, TemplateError> {
    let words = shell_words::split(template)?;
    if words.is_empty() {
        return Err(TemplateError::EmptyCommand);
    }
    words
        .iter()
        .map(|word| fill_placeholders(word, vars))
        .collect()
}

fn fill_placeholders(word: &str, vars: &[(&str, &str)]) -> Result<String, TemplateError> {
    let mut filled = String::with_capacity(word.len());
    let mut rest = word;
    while let Some(open) = rest.find('{') {
        filled.push_str(&rest[..open]);
        let after_open = &rest[open + 1..];
        let name_len = after_open
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(after_open.len());
        let is_placeholder = name_len > 0 && after_open[name_len..].starts_with('}');
        if !is_placeholder {
            filled.push('{');
            rest = after_open;
            continue;
        }
        let name = &after_open[..name_len];
        let value = vars
            .iter()
            .find_map(|(var, value)| (*var == name).then_some(*value))
            .ok_or_else(|| TemplateError::UnknownPlaceholder {
                name: name.to_owned(),
                known: known_placeholders(vars),
            })?;
        filled.push_str(value);
        rest = &after_open[name_len + 1..];
    }
    filled.push_str(rest);
    Ok(filled)
}

fn known_placeholders(vars: &[(&str, &str)]) -> String {
    if vars.is_empty() {
        return "none".to_owned();
    }
    vars.iter()
        .map(|(name, _)| format!("{{{name}}}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_command_keeps_a_hostile_value_in_one_argument() {
        let prompt = r#"fix "the bug" it's $(rm -rf /); echo x `id` > /tmp/y"#;
        let argv = render_command(
            r#"claude -p "/ai-party:party {prompt}" --resume {claude_session_id} --verbose"#,
            &[("prompt", prompt), ("claude_session_id", "abc 123")],
        )
        .unwrap();
        assert_eq!(
            argv,
            [
                "claude".to_owned(),
                "-p".to_owned(),
                format!("/ai-party:party {prompt}"),
                "--resume".to_owned(),
                "abc 123".to_owned(),
                "--verbose".to_owned(),
            ]
        );
        let argv = render_command("claude -p {prompt}", &[("prompt", prompt)]).unwrap();
        assert_eq!(argv, ["claude", "-p", prompt]);
    }

    #[test]
    fn render_command_leaves_other_braces_and_inserted_values_alone() {
        let argv = render_command(
            r#"run --json '{"a":1}' {} {task}x{ {task}"#,
            &[("task", "{prompt}")],
        )
        .unwrap();
        assert_eq!(
            argv,
            [
                "run",
                "--json",
                r#"{"a":1}"#,
                "{}",
                "{prompt}x{",
                "{prompt}"
            ]
        );
    }

    #[test]
    fn a_relative_program_is_anchored_and_a_bare_name_is_left_for_path() {
        let base = std::path::Path::new("/etc/aiops");
        assert_eq!(
            anchor_program(
                "../target/debug/examples/party_sim -p \"/ai-party:party {prompt}\"",
                base
            ),
            "/etc/aiops/../target/debug/examples/party_sim -p \'/ai-party:party {prompt}\'"
        );
        let claude = "claude -p {prompt} --verbose";
        assert_eq!(anchor_program(claude, base), claude);
        assert_eq!(anchor_program("/usr/bin/env x", base), "/usr/bin/env x");
    }

    #[test]
    fn a_missing_program_is_named() {
        assert!(locate_program("sh -c true").is_ok());
        assert_eq!(
            locate_program("no-such-agent-binary -p x").unwrap_err(),
            "`no-such-agent-binary` is not on PATH"
        );
        assert_eq!(
            locate_program("/nonexistent/agent -p x").unwrap_err(),
            "`/nonexistent/agent` is not an executable file"
        );
    }

    #[test]
    fn render_command_names_an_unknown_placeholder() {
        let err =
            render_command("claude -p {prompt} --model {model}", &[("prompt", "hi")]).unwrap_err();
        assert!(
            matches!(&err, TemplateError::UnknownPlaceholder { name, .. } if name == "model"),
            "{err:?}"
        );
        let message = err.to_string();
        assert!(message.contains("{model}"), "{message}");
        assert!(message.contains("{prompt}"), "{message}");
        assert!(message.contains("engine.command"), "{message}");
    }

    #[test]
    fn render_command_rejects_empty_and_unbalanced_templates() {
        assert!(matches!(
            render_command("", &[]),
            Err(TemplateError::EmptyCommand)
        ));
        assert!(matches!(
            render_command("  \t ", &[]),
            Err(TemplateError::EmptyCommand)
        ));
        assert!(matches!(
            render_command("claude -p 'open", &[]),
            Err(TemplateError::Unsplittable(_))
        ));
    }
}

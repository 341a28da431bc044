//! The environment an agent process gets: a short allow-list from this process, fixed
//! variables and the caller's credentials; never the server's own settings.

/// Never handed to an agent, whatever the configuration says.
const MASTER_KEY_VAR: &str = "AIOPS_MASTER_KEY";
/// The server's own settings (database URL, master key, …) are not the agent's business.
const SERVER_VAR_PREFIX: &str = "AIOPS_";
/// Set for every agent: approvals go to aiops, and the ai-party plugin may spawn teams.
const FIXED_AGENT_VARS: &[(&str, &str)] = &[
    ("AI_PARTY_APPROVAL_MODE", "platform"),
    ("CLAUDE_CODE_EXPERIMENTAL_AGENT_TEAMS", "1"),
];

/// The environment an agent gets: only `passthrough` variables copied from this process's
/// env if set (the caller passes e.g. PATH, HOME, LANG, TZ, TMPDIR, USER), then
/// AI_PARTY_APPROVAL_MODE=platform and CLAUDE_CODE_EXPERIMENTAL_AGENT_TEAMS=1, then `extra`
/// (the project's credentials as (VAR, value)). Never anything else; in particular never
/// AIOPS_MASTER_KEY even if listed in passthrough.
///
/// No `AIOPS_*` variable is passed through (they are the server's own settings). A name
/// appears once; a later source overrides an earlier one. Variables that are not valid
/// UTF-8 are not passed through.
pub fn agent_env(passthrough: &[String], extra: &[(String, String)]) -> Vec<(String, String)> {
    let inherited = passthrough
        .iter()
        .filter(|name| !name.starts_with(SERVER_VAR_PREFIX))
        .filter_map(|name| Some((name.clone(), std::env::var(name).ok()?)));
    let fixed = FIXED_AGENT_VARS
        .iter()
        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()));
    let mut env: Vec<(String, String)> = Vec::new();
    for (name, value) in inherited.chain(fixed).chain(extra.iter().cloned()) {
        if name == MASTER_KEY_VAR {
            continue;
        }
        match env.iter_mut().find(|(existing, _)| *existing == name) {
            Some(entry) => entry.1 = value,
            None => env.push((name, value)),
        }
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `body` with these variables set (or unset) in this process's environment, then
    /// puts the previous values back, keeping the window in which other tests of this
    /// binary could see them as short as possible.
    fn with_process_env<T>(vars: &[(&str, Option<&str>)], body: impl FnOnce() -> T) -> T {
        let set = |name: &str, value: Option<&str>| {
            // SAFETY: tests read the environment only through std, which serialises access
            // with its own lock; no test thread calls libc's getenv directly.
            unsafe {
                match value {
                    Some(value) => std::env::set_var(name, value),
                    None => std::env::remove_var(name),
                }
            }
        };
        let previous: Vec<(&str, Option<String>)> = vars
            .iter()
            .map(|(name, _)| (*name, std::env::var(name).ok()))
            .collect();
        for (name, value) in vars {
            set(name, *value);
        }
        let result = body();
        for (name, value) in &previous {
            set(name, value.as_deref());
        }
        result
    }

    #[test]
    fn agent_env_holds_only_passthrough_fixed_vars_and_credentials() {
        let passthrough = [
            "PATH",
            "AGENT_TEST_PASSTHROUGH",
            "AGENT_TEST_UNSET",
            "AIOPS_MASTER_KEY",
            "AIOPS_DATABASE_URL",
            "AI_PARTY_APPROVAL_MODE",
        ]
        .map(str::to_owned);
        let credentials = [
            ("ANTHROPIC_API_KEY".to_owned(), "sk-test".to_owned()),
            ("AIOPS_MASTER_KEY".to_owned(), "still-not".to_owned()),
        ];

        let env = with_process_env(
            &[
                ("AIOPS_MASTER_KEY", Some("master-key-must-not-leak")),
                ("AIOPS_DATABASE_URL", Some("postgres://u:pw@db/aiops")),
                ("OTHER_SECRET", Some("other-secret-must-not-leak")),
                ("AGENT_TEST_PASSTHROUGH", Some("kept")),
                ("AI_PARTY_APPROVAL_MODE", Some("terminal")),
                ("AGENT_TEST_UNSET", None),
            ],
            || agent_env(&passthrough, &credentials),
        );

        let path = std::env::var("PATH").expect("tests run with PATH set");
        let expected = [
            ("PATH", path.as_str()),
            ("AGENT_TEST_PASSTHROUGH", "kept"),
            ("AI_PARTY_APPROVAL_MODE", "platform"),
            ("CLAUDE_CODE_EXPERIMENTAL_AGENT_TEAMS", "1"),
            ("ANTHROPIC_API_KEY", "sk-test"),
        ]
        .map(|(name, value)| (name.to_owned(), value.to_owned()));
        assert_eq!(env, expected);
    }
}

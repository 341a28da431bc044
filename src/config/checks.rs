//! Checks and adjustments of loaded values that serde's types cannot express.

use std::path::Path;

use super::{Config, ConfigError, DEFAULT_CONFIG_FILE, bad};

/// Makes a relative program path in the engine commands absolute against the config file's
/// directory (the working directory without one): the commands run inside each task's
/// worktree, where a relative path would never resolve.
pub(super) fn anchor_engine_programs(config: &mut Config, config_file: Option<&Path>) {
    let base = match config_file {
        Some(path) => path.parent().unwrap_or(Path::new("")),
        None if Path::new(DEFAULT_CONFIG_FILE).exists() => Path::new("config"),
        None => Path::new(""),
    };
    let base = if base.as_os_str().is_empty() {
        Path::new(".")
    } else {
        base
    };
    if let Ok(base) = std::path::absolute(base) {
        let engine = &mut config.engine;
        engine.command = crate::command_template::anchor_program(&engine.command, &base);
        engine.resume_command =
            crate::command_template::anchor_program(&engine.resume_command, &base);
    }
}

/// The sandbox's settings: absolute read paths, real ports, a user name.
pub(super) fn validate_sandbox(engine: &super::EngineConfig) -> Result<(), ConfigError> {
    if let Some(path) = engine.sandbox_read_paths.iter().find(|p| !p.is_absolute()) {
        return bad(
            "engine.sandbox_read_paths",
            format!(
                "{} is not an absolute path; name each directory from /",
                path.display()
            ),
        );
    }
    if engine.sandbox_connect_ports.contains(&0) {
        return bad(
            "engine.sandbox_connect_ports",
            "0 is no port; list TCP ports such as [443, 22]".into(),
        );
    }
    let name_ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
    if !engine.run_as_user.chars().all(name_ok) {
        return bad(
            "engine.run_as_user",
            format!("{:?} is not a Unix user name", engine.run_as_user),
        );
    }
    for (key, path) in [
        ("engine.agent_home", &engine.agent_home),
        ("engine.shim_program", &engine.shim_program),
    ] {
        if !path.as_os_str().is_empty() && !path.is_absolute() {
            return bad(
                key,
                format!(
                    "{} is not an absolute path; give one, or leave it empty",
                    path.display()
                ),
            );
        }
    }
    Ok(())
}

/// The levels a `log.level` directive may name.
const LOG_LEVELS: &[&str] = &["trace", "debug", "info", "warn", "error", "off"];

/// `log.level` is a tracing filter: comma-separated directives, each a level or
/// `target=level`. A word that is not a level (`inof`) would silently become a target
/// name and log nothing; it is refused.
pub(super) fn validate_log_level(level: &str) -> Result<(), ConfigError> {
    let refuse = |why: String| {
        bad(
            "log.level",
            format!(
                "{why}; use one of {} or target=level directives such as \"info,aiops=debug\" (AIOPS_LOG__LEVEL)",
                LOG_LEVELS.join(", ")
            ),
        )
    };
    if tracing_subscriber::EnvFilter::try_new(level).is_err() {
        return refuse(format!("{level:?} is not a log filter"));
    }
    for directive in level.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let named = directive.rsplit_once('=').map_or(directive, |(_, l)| l);
        if !LOG_LEVELS.contains(&named.to_ascii_lowercase().as_str()) {
            return refuse(format!("{named:?} in {level:?} is not a log level"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::validate_log_level;

    #[test]
    fn a_misspelt_level_is_refused_naming_the_levels() {
        let error = validate_log_level("inof").unwrap_err().to_string();
        assert_eq!(
            error,
            "invalid configuration: log.level: \"inof\" in \"inof\" is not a log level; use one of trace, debug, info, warn, error, off or target=level directives such as \"info,aiops=debug\" (AIOPS_LOG__LEVEL)"
        );
        assert!(validate_log_level("info,aiops=debug,tower_http=WARN").is_ok());
        assert!(validate_log_level("info,aiops=verbose").is_err());
    }
}

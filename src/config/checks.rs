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

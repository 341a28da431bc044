//! Team presets (`config/teams/*.md`) and the keyword rule that picks a team for a task.
//!
//! The files use the ai-party plugin's own preset format (YAML front matter with `name`,
//! `description` and `trigger_keywords`, then a markdown body with `## Members` and
//! `## Workflow`), so the same directory can serve as the plugin's `teams/`. This module only
//! reads that directory; it never starts the engine and never touches a worktree.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::model::is_slug;

/// One ai-party team: who is on it and which words route a task to it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TeamPreset {
    /// Slug the plugin and aiops know the team by, e.g. `bugfix`.
    pub name: String,
    /// One line on what the team does.
    pub description: String,
    /// Words that route a task to this team; see [`score`] for how they match.
    pub trigger_keywords: Vec<String>,
    /// The markdown after the front matter: members and workflow.
    pub body: String,
    /// Built in (the plugin's), overriding a built-in, or user-defined.
    pub origin: PresetOrigin,
    /// Stored in the database (made on the dashboard, changed there), not a file.
    pub stored: bool,
}

impl TeamPreset {
    fn same_text(&self, other: &TeamPreset) -> bool {
        self.description == other.description
            && self.trigger_keywords == other.trigger_keywords
            && self.body == other.body
    }
}

/// Why the team presets could not be loaded, naming the directory or file to fix.
#[derive(Debug, thiserror::Error)]
pub enum TeamsError {
    /// The preset directory itself could not be listed.
    #[error("cannot read the team preset directory {}: {source}", .dir.display())]
    ReadDir {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A preset file could not be read (permissions, not UTF-8).
    #[error("cannot read team preset {}: {source}", .path.display())]
    ReadFile {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A preset file's front matter is missing, not YAML, or has a bad value.
    #[error("team preset {}: {problem}", .path.display())]
    Invalid { path: PathBuf, problem: String },
    /// Two files declare the same team name.
    #[error("team name {name:?} is declared by both {} and {}; rename one of them", .first.display(), .second.display())]
    DuplicateName {
        name: String,
        first: PathBuf,
        second: PathBuf,
    },
    /// The directory holds no preset at all, so no task could ever get a team.
    #[error("no team presets (*.md) in {}; point the teams directory at aiops' config/teams", .dir.display())]
    NoPresets { dir: PathBuf },
}

/// The front matter fields aiops reads; other fields the plugin may add are ignored.
#[derive(Deserialize, Serialize)]
pub(crate) struct FrontMatter {
    pub name: String,
    pub description: String,
    pub trigger_keywords: Vec<String>,
}

/// A front matter field and what is wrong with it.
pub(crate) type FieldProblem = (&'static str, String);

/// Loads every `*.md` file in `dir` as a team preset, sorted by name.
pub fn load_presets(dir: &Path) -> Result<Vec<TeamPreset>, TeamsError> {
    let read_dir_error = |source| TeamsError::ReadDir {
        dir: dir.to_path_buf(),
        source,
    };
    let mut paths = Vec::new();
    for entry in fs::read_dir(dir).map_err(read_dir_error)? {
        let path = entry.map_err(read_dir_error)?.path();
        if path.extension().is_some_and(|ext| ext == "md") && path.is_file() {
            paths.push(path);
        }
    }
    if paths.is_empty() {
        return Err(TeamsError::NoPresets {
            dir: dir.to_path_buf(),
        });
    }
    // Sorted so that which of two duplicates counts as "first" does not depend on the file system.
    paths.sort();

    let mut declared_in: HashMap<String, PathBuf> = HashMap::new();
    let mut presets = Vec::with_capacity(paths.len());
    for path in paths {
        let preset = read_preset(&path)?;
        if let Some(first) = declared_in.get(&preset.name) {
            return Err(TeamsError::DuplicateName {
                name: preset.name,
                first: first.clone(),
                second: path,
            });
        }
        declared_in.insert(preset.name.clone(), path);
        presets.push(preset);
    }
    presets.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(presets)
}

/// Reads and validates one preset file.
fn read_preset(path: &Path) -> Result<TeamPreset, TeamsError> {
    let text = fs::read_to_string(path).map_err(|source| TeamsError::ReadFile {
        path: path.to_path_buf(),
        source,
    })?;
    parse_preset(&text).map_err(|problem| TeamsError::Invalid {
        path: path.to_path_buf(),
        problem,
    })
}

/// Parses a preset's text; the error is the problem, for the caller to pair with the file name.
pub(crate) fn parse_preset(text: &str) -> Result<TeamPreset, String> {
    let (yaml, body) = split_front_matter(text)?;
    let front: FrontMatter =
        yaml_serde::from_str(yaml).map_err(|e| format!("invalid front matter: {e}"))?;

    let front = checked_front_matter(front).map_err(|(_, problem)| problem)?;
    Ok(TeamPreset {
        name: front.name,
        description: front.description,
        trigger_keywords: front.trigger_keywords,
        body: body.trim_start_matches(['\r', '\n']).to_string(),
        origin: PresetOrigin::UserDefined,
        stored: false,
    })
}

/// The preset rules every front matter obeys, a file's or a stored preset's: the field at
/// fault and the problem, or the front matter with its text trimmed.
pub(crate) fn checked_front_matter(front: FrontMatter) -> Result<FrontMatter, FieldProblem> {
    if !is_slug(&front.name) {
        return Err((
            "name",
            format!(
                "name {:?} is not a slug; use lowercase letters, digits and '-'",
                front.name
            ),
        ));
    }
    if front.description.trim().is_empty() {
        return Err((
            "description",
            "description is empty; say in one line what the team does".into(),
        ));
    }
    if front.trigger_keywords.is_empty() {
        return Err((
            "trigger_keywords",
            "trigger_keywords is empty; list the words that should route a task to this team"
                .into(),
        ));
    }
    let mut keywords: Vec<String> = Vec::with_capacity(front.trigger_keywords.len());
    for keyword in front.trigger_keywords {
        let keyword = keyword.trim();
        if keyword.is_empty() {
            return Err((
                "trigger_keywords",
                "trigger_keywords has a blank entry".into(),
            ));
        }
        // A repeated keyword would silently count twice in `score`.
        if keywords
            .iter()
            .any(|k| k.to_lowercase() == keyword.to_lowercase())
        {
            return Err((
                "trigger_keywords",
                format!("trigger_keywords lists {keyword:?} twice"),
            ));
        }
        keywords.push(keyword.to_string());
    }

    Ok(FrontMatter {
        name: front.name,
        description: front.description.trim().to_string(),
        trigger_keywords: keywords,
    })
}

/// Splits `---\n<yaml>\n---\n<body>` into the YAML and the body.
///
/// The YAML keeps its opening `---` (a YAML document start), so the line numbers in YAML
/// errors are the file's own.
fn split_front_matter(text: &str) -> Result<(&str, &str), String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = text.split_inclusive('\n');
    let opening = lines.next().unwrap_or_default();
    if opening.trim_end() != "---" {
        return Err(
            "no front matter: the file must start with a `---` line, then the YAML fields \
             name, description and trigger_keywords, then another `---` line"
                .into(),
        );
    }
    let mut offset = opening.len();
    for line in lines {
        if line.trim_end() == "---" {
            return Ok((&text[..offset], &text[offset + line.len()..]));
        }
        offset += line.len();
    }
    Err("the front matter is never closed; add a `---` line after its last field".into())
}

/// How strongly `text` asks for `preset`: the number of its trigger keywords found in `text`.
///
/// Matching ignores case, and each keyword counts at most once. A keyword made only of
/// ASCII characters must stand as a whole word: the characters around it must not be ASCII
/// letters, digits or `_` (so `fix` is not found in "prefix", while `PR` is found in "PR을"),
/// and a plural `s` or `es` right after it is allowed ("crashes", "CVEs"). A keyword with any
/// other character (Korean) is found anywhere, because Korean attaches particles and endings
/// to words ("오류가", "수정해줘").
pub fn score(preset: &TeamPreset, text: &str) -> u32 {
    keyword_hits(preset, &text.to_lowercase())
}

/// [`score`] over text that is already lower case.
fn keyword_hits(preset: &TeamPreset, lowercase_text: &str) -> u32 {
    preset
        .trigger_keywords
        .iter()
        .map(|keyword| {
            // Keywords are mostly lower case already: no copy for those.
            let keyword: std::borrow::Cow<'_, str> = if keyword.chars().any(char::is_uppercase) {
                keyword.to_lowercase().into()
            } else {
                keyword.as_str().into()
            };
            u32::from(contains_keyword(lowercase_text, &keyword))
        })
        .sum()
}

/// Whether the lower-case `keyword` occurs in the lower-case `text` under [`score`]'s rule.
fn contains_keyword(text: &str, keyword: &str) -> bool {
    if !keyword.is_ascii() {
        return text.contains(keyword);
    }
    let is_word_char = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let ends_word = |rest: &str| rest.chars().next().is_none_or(|c| !is_word_char(c));
    text.match_indices(keyword).any(|(start, _)| {
        let starts_word = text[..start]
            .chars()
            .next_back()
            .is_none_or(|c| !is_word_char(c));
        let rest = &text[start + keyword.len()..];
        starts_word
            && ["", "s", "es"]
                .iter()
                .any(|plural| rest.strip_prefix(plural).is_some_and(ends_word))
    })
}

/// The name of the preset with the highest [`score`] for `text`, or `default` when no
/// keyword of any preset occurs in it.
///
/// A tie goes to the preset that comes first in `presets`; [`load_presets`] sorts by name,
/// so with loaded presets ties go to the alphabetically first team.
pub fn pick_team<'a>(
    presets: impl IntoIterator<Item = &'a TeamPreset>,
    text: &str,
    default: &'a str,
) -> &'a str {
    let text = text.to_lowercase();
    let mut best: Option<(&'a TeamPreset, u32)> = None;
    for preset in presets {
        let hits = keyword_hits(preset, &text);
        if hits > 0 && best.is_none_or(|(_, best_hits)| hits > best_hits) {
            best = Some((preset, hits));
        }
    }
    best.map_or(default, |(preset, _)| preset.name.as_str())
}

/// The ai-party plugin's own teams (PARTY-CONTRACT section 4), built into the binary so
/// that aiops knows and checks them wherever it runs; `teams_dir` adds or overrides.
const BUILT_IN: [(&str, &str); 10] = [
    ("bugfix", include_str!("../config/teams/bugfix.md")),
    (
        "dev-backend",
        include_str!("../config/teams/dev-backend.md"),
    ),
    (
        "dev-frontend",
        include_str!("../config/teams/dev-frontend.md"),
    ),
    ("devops", include_str!("../config/teams/devops.md")),
    ("feature", include_str!("../config/teams/feature.md")),
    ("fullstack", include_str!("../config/teams/fullstack.md")),
    ("migration", include_str!("../config/teams/migration.md")),
    ("research", include_str!("../config/teams/research.md")),
    ("review", include_str!("../config/teams/review.md")),
    ("security", include_str!("../config/teams/security.md")),
];

/// Where a loaded preset came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PresetOrigin {
    /// One of the plugin's teams, built into aiops.
    BuiltIn,
    /// A file in `teams_dir` that replaces the built-in preset of the same name.
    Override,
    /// A file in `teams_dir` naming a team the plugin does not ship: the plugin runs it only
    /// if the same preset is installed in its `teams/` directory.
    UserDefined,
}

/// The team presets: those of the files (built in and `teams_dir`), loaded once, and those
/// stored in the database, replaced whenever they change. The default (no presets) checks
/// no team name.
#[derive(Debug, Default)]
pub struct Teams {
    presets: Vec<TeamPreset>,
    stored: RwLock<Vec<TeamPreset>>,
}

impl Teams {
    fn from_files(presets: Vec<TeamPreset>) -> Self {
        Self {
            presets,
            stored: RwLock::default(),
        }
    }

    /// Loads every preset in `dir` and nothing else; see [`load_presets`].
    pub fn load(dir: &Path) -> Result<Self, TeamsError> {
        Ok(Self::from_files(load_presets(dir)?))
    }

    /// The plugin's teams as built into aiops.
    pub fn built_in() -> Self {
        let presets = BUILT_IN
            .iter()
            .map(|(name, text)| {
                let mut preset = parse_preset(text)
                    .unwrap_or_else(|e| panic!("built-in team preset {name}: {e}"));
                preset.origin = PresetOrigin::BuiltIn;
                preset
            })
            .collect();
        Self::from_files(presets)
    }

    /// The built-in teams, then every preset in `dir`: a file named like a built-in team
    /// replaces it, any other adds a user-defined team. An empty `dir` changes nothing.
    pub fn built_in_with(dir: &Path) -> Result<Self, TeamsError> {
        let mut teams = Self::built_in();
        let files = match load_presets(dir) {
            Ok(files) => files,
            Err(TeamsError::NoPresets { .. }) => return Ok(teams),
            Err(e) => return Err(e),
        };
        for mut preset in files {
            match teams.presets.iter_mut().find(|p| p.name == preset.name) {
                // The shipped `config/teams/` holds the built-in files themselves.
                Some(slot) if slot.same_text(&preset) => {}
                Some(slot) => {
                    preset.origin = PresetOrigin::Override;
                    *slot = preset;
                }
                None => {
                    preset.origin = PresetOrigin::UserDefined;
                    teams.presets.push(preset);
                }
            }
        }
        teams.presets.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(teams)
    }

    /// Replaces the presets stored in the database with `stored` (a name a file declares
    /// is the file's: such a stored preset is left out).
    pub fn set_stored(&self, stored: Vec<TeamPreset>) {
        let stored = stored
            .into_iter()
            .filter(|preset| !self.is_file_preset(&preset.name))
            .collect();
        *self.stored.write().unwrap_or_else(|e| e.into_inner()) = stored;
    }

    /// Whether a file (built in or in `teams_dir`) declares the team `name`.
    pub fn is_file_preset(&self, name: &str) -> bool {
        self.presets.iter().any(|preset| preset.name == name)
    }

    /// The preset called `name`.
    pub fn get(&self, name: &str) -> Option<TeamPreset> {
        self.presets()
            .into_iter()
            .find(|preset| preset.name == name)
    }

    /// Whether no preset is loaded (team names are then not checked).
    pub fn is_empty(&self) -> bool {
        self.presets.is_empty()
    }

    /// Whether a preset called `name` exists.
    pub fn contains(&self, name: &str) -> bool {
        self.is_file_preset(name) || self.read_stored().iter().any(|p| p.name == name)
    }

    /// The team names, in alphabetical order.
    pub fn names(&self) -> Vec<String> {
        self.presets()
            .into_iter()
            .map(|preset| preset.name)
            .collect()
    }

    /// All presets, files' and stored, in alphabetical order of name.
    pub fn presets(&self) -> Vec<TeamPreset> {
        self.with_presets(|all| all.into_iter().cloned().collect())
    }

    /// `f` of every preset, files' and stored, by reference in alphabetical order of name.
    fn with_presets<R>(&self, f: impl FnOnce(Vec<&TeamPreset>) -> R) -> R {
        let stored = self.read_stored();
        let mut all: Vec<&TeamPreset> = self.presets.iter().chain(stored.iter()).collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        f(all)
    }

    fn read_stored(&self) -> std::sync::RwLockReadGuard<'_, Vec<TeamPreset>> {
        self.stored.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The team for a task's text; see [`pick_team`].
    pub fn pick(&self, text: &str, default: &str) -> String {
        // Without copying the presets: this runs for every delivery.
        self.with_presets(|all| pick_team(all, text, default).to_string())
    }

    /// Accepts `team` as the value of `field` when it is a team name and, with presets
    /// loaded, one of them; otherwise an invalid `field` listing the known teams.
    pub fn check(&self, field: &str, team: &str) -> crate::error::Result<()> {
        if !is_slug(team) {
            return Err(crate::error::Error::invalid(
                field,
                "must be a team name: lower-case letters, digits and '-'",
            ));
        }
        if !self.is_empty() && !self.contains(team) {
            return Err(crate::error::Error::invalid(
                field,
                format!(
                    "unknown team {team:?}; known teams: {}",
                    self.names().join(", ")
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plugin's own teams (PARTY-CONTRACT section 4), no more and no fewer.
    const SHIPPED: [&str; 10] = [
        "bugfix",
        "dev-backend",
        "dev-frontend",
        "devops",
        "feature",
        "fullstack",
        "migration",
        "research",
        "review",
        "security",
    ];

    fn shipped() -> Teams {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/teams");
        Teams::load(&dir).expect("the shipped presets load")
    }

    #[test]
    fn the_built_in_teams_are_the_plugins_and_the_shipped_directory_changes_nothing() {
        let built_in = Teams::built_in();
        assert_eq!(built_in.names(), SHIPPED);
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/teams");
        let with_shipped = Teams::built_in_with(&dir).unwrap();
        assert_eq!(with_shipped.names(), SHIPPED);
        assert!(
            with_shipped
                .presets()
                .iter()
                .all(|p| p.origin == PresetOrigin::BuiltIn)
        );
    }

    #[test]
    fn a_teams_directory_overrides_a_built_in_team_and_adds_its_own() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "bugfix.md", &preset_file("bugfix"));
        write(dir.path(), "planning.md", &preset_file("planning"));
        let teams = Teams::built_in_with(dir.path()).unwrap();
        assert_eq!(teams.presets().len(), SHIPPED.len() + 1);
        assert_eq!(teams.get("bugfix").unwrap().origin, PresetOrigin::Override);
        assert_eq!(teams.get("bugfix").unwrap().trigger_keywords, ["bugfix"]);
        assert_eq!(
            teams.get("planning").unwrap().origin,
            PresetOrigin::UserDefined
        );
        assert_eq!(teams.get("feature").unwrap().origin, PresetOrigin::BuiltIn);
        let empty = tempfile::tempdir().unwrap();
        assert_eq!(
            Teams::built_in_with(empty.path()).unwrap().presets().len(),
            SHIPPED.len()
        );
    }

    fn preset(name: &str, keywords: &[&str]) -> TeamPreset {
        TeamPreset {
            name: name.into(),
            description: format!("{name} team"),
            trigger_keywords: keywords.iter().map(|k| k.to_string()).collect(),
            body: String::new(),
            origin: PresetOrigin::UserDefined,
            stored: false,
        }
    }

    fn write(dir: &Path, file: &str, text: &str) {
        fs::write(dir.join(file), text).unwrap();
    }

    fn preset_file(name: &str) -> String {
        format!(
            "---\nname: {name}\ndescription: \"the {name} team\"\ntrigger_keywords:\n  - {name}\n---\n\n# Team\n"
        )
    }

    #[test]
    fn shipped_presets_all_load_with_english_and_korean_keywords() {
        let teams = shipped();
        assert_eq!(teams.names(), SHIPPED);
        for preset in teams.presets() {
            let keywords = &preset.trigger_keywords;
            assert!(keywords.len() >= 5, "{}: {keywords:?}", preset.name);
            assert!(keywords.iter().any(|k| k.is_ascii()), "{}", preset.name);
            assert!(keywords.iter().any(|k| !k.is_ascii()), "{}", preset.name);
            for section in ["## Members", "### leader", "## Workflow"] {
                assert!(preset.body.contains(section), "{}: {section}", preset.name);
            }
        }
    }

    #[test]
    fn shipped_presets_follow_the_contract_phases() {
        let teams = shipped();
        let full =
            "CONTEXTUALIZING → ANALYZING → PLANNING → EXECUTING → REVIEWING → AWAITING_APPROVAL";
        let report = "CONTEXTUALIZING → ANALYZING → PLANNING → AWAITING_APPROVAL";
        for name in SHIPPED {
            let expected = match name {
                "review" => "CONTEXTUALIZING → ANALYZING → REVIEWING → AWAITING_APPROVAL",
                "research" | "security" => report,
                _ => full,
            };
            let body = teams.get(name).unwrap().body;
            assert!(
                body.contains(&format!("Phase sequence: {expected}\n")),
                "{name}"
            );
        }
    }

    #[test]
    fn shipped_presets_route_typical_tasks() {
        let teams = shipped();
        let cases = [
            ("Fix the crash on checkout", "bugfix"),
            ("결제 페이지 오류 수정", "bugfix"),
            ("audit our dependencies for CVEs", "security"),
            ("please review PR #12", "review"),
            ("hello", "feature"),
        ];
        for (text, team) in cases {
            assert_eq!(teams.pick(text, "feature"), team, "{text}");
        }
    }

    #[test]
    fn ascii_keywords_match_whole_words_only() {
        let fix = preset("bugfix", &["fix", "PR"]);
        assert_eq!(score(&fix, "update the prefix"), 0);
        assert_eq!(score(&fix, "fixture"), 0);
        assert_eq!(score(&fix, "FIX: null check"), 1);
        assert_eq!(score(&fix, "two fixes"), 1);
        assert_eq!(score(&fix, "a quick-fix"), 1);
        assert_eq!(score(&fix, "PR을 고쳐줘"), 1);
        assert_eq!(score(&fix, "fix and fix again"), 1, "a keyword counts once");
        assert_eq!(score(&fix, "fix PR #3"), 2);
    }

    #[test]
    fn korean_keywords_match_inside_words() {
        let bugfix = preset("bugfix", &["오류", "수정"]);
        assert_eq!(score(&bugfix, "로그인 오류가 나요. 수정해줘"), 2);
        assert_eq!(score(&bugfix, "로그인 화면"), 0);
    }

    #[test]
    fn pick_prefers_more_hits_then_earlier_preset() {
        let presets = [
            preset("bugfix", &["fix", "crash"]),
            preset("feature", &["add", "crash"]),
        ];
        assert_eq!(pick_team(&presets, "add a page", "review"), "feature");
        assert_eq!(pick_team(&presets, "fix the crash", "review"), "bugfix");
        assert_eq!(pick_team(&presets, "crash", "review"), "bugfix");
        assert_eq!(pick_team(&presets, "hello", "review"), "review");
    }

    #[test]
    fn teams_lookups() {
        let teams = shipped();
        assert!(teams.contains("bugfix"));
        assert!(!teams.contains("Bugfix"));
        assert_eq!(teams.get("review").unwrap().name, "review");
        assert!(teams.get("nope").is_none());
    }

    #[test]
    fn malformed_front_matter_is_an_error_naming_the_file() {
        let cases = [
            ("# no front matter\n", "no front matter"),
            ("---\nname: x\n", "never closed"),
            ("---\nname: [unclosed\n---\n", "invalid front matter"),
            (
                "---\nname: broken\ndescription: d\n---\n",
                "trigger_keywords",
            ),
            (
                "---\nname: Not A Slug\ndescription: d\ntrigger_keywords: [a]\n---\n",
                "not a slug",
            ),
            (
                "---\nname: broken\ndescription: d\ntrigger_keywords: bug\n---\n",
                "expected a sequence at line 4",
            ),
            (
                "---\nname: broken\ndescription: d\ntrigger_keywords: []\n---\n",
                "trigger_keywords is empty",
            ),
            (
                "---\nname: broken\ndescription: d\ntrigger_keywords: [bug, Bug]\n---\n",
                "twice",
            ),
        ];
        for (text, problem) in cases {
            let dir = tempfile::tempdir().unwrap();
            write(dir.path(), "good.md", &preset_file("good"));
            write(dir.path(), "broken.md", text);
            let err = load_presets(dir.path()).unwrap_err();
            assert!(
                matches!(&err, TeamsError::Invalid { path, .. } if path.ends_with("broken.md")),
                "{err:?}"
            );
            let message = err.to_string();
            assert!(message.contains("broken.md"), "{message}");
            assert!(message.contains(problem), "{message}");
        }
    }

    #[test]
    fn duplicate_names_are_an_error() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "bugfix.md", &preset_file("bugfix"));
        write(dir.path(), "bugfix-copy.md", &preset_file("bugfix"));
        let err = load_presets(dir.path()).unwrap_err();
        let TeamsError::DuplicateName {
            name,
            first,
            second,
        } = &err
        else {
            panic!("{err:?}");
        };
        assert_eq!(name, "bugfix");
        assert!(first.ends_with("bugfix-copy.md") && second.ends_with("bugfix.md"));
        assert!(err.to_string().contains("bugfix-copy.md"));
    }

    #[test]
    fn only_markdown_files_are_read_and_results_are_sorted() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "zeta.md", &preset_file("alpha"));
        write(dir.path(), "beta.md", &preset_file("beta"));
        write(dir.path(), "notes.txt", "not a preset");
        fs::create_dir(dir.path().join("nested.md")).unwrap();
        let presets = load_presets(dir.path()).unwrap();
        let names: Vec<_> = presets.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["alpha", "beta"]);
        assert_eq!(presets[0].body, "# Team\n");
        assert_eq!(presets[0].description, "the alpha team");
    }

    #[test]
    fn crlf_and_byte_order_mark_are_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!("\u{feff}{}", preset_file("win").replace('\n', "\r\n"));
        write(dir.path(), "win.md", &text);
        let presets = load_presets(dir.path()).unwrap();
        assert_eq!(presets[0].trigger_keywords, ["win"]);
        assert_eq!(presets[0].body, "# Team\r\n");
    }

    #[test]
    fn an_empty_or_missing_directory_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = load_presets(dir.path()).unwrap_err();
        assert!(matches!(err, TeamsError::NoPresets { .. }), "{err:?}");
        let err = load_presets(&dir.path().join("missing")).unwrap_err();
        assert!(matches!(err, TeamsError::ReadDir { .. }), "{err:?}");
    }
}

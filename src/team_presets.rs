//! Team presets made on the dashboard: create, update, copy and delete them, each checked by
//! the rules of the preset files (`teams::checked_front_matter`, then the rendered file parsed
//! as a file is), and keep the shared [`Teams`] in step; and write a task's stored preset into
//! its worktree, in the plugin's format, before the pipeline starts.
//!
//! Boundary: this module never decides who may change a preset (the caller authorizes) and
//! writes nothing in a worktree but `.party/teams/<name>.md`.

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::error::{Error, Result};
use crate::model::{PresetDraft, PresetMember, StoredPreset, is_slug};
use crate::store::Store;
use crate::teams::{self, FrontMatter, PresetOrigin, TeamPreset, Teams};

/// The phases a member may work in, in pipeline order (the plugin's working phases).
pub const PHASES: [&str; 5] = [
    "contextualizing",
    "analyzing",
    "planning",
    "executing",
    "reviewing",
];

/// Where in a worktree a task's stored preset is written: `.party/` is the plugin's own
/// directory, kept out of every diff and commit.
pub fn preset_path(worktree: &Path, team: &str) -> PathBuf {
    worktree.join(".party/teams").join(format!("{team}.md"))
}

/// The draft with its text trimmed, or an invalid field (`name`, `description`,
/// `trigger_keywords`, `members`) saying what to fix.
pub fn validate(draft: PresetDraft) -> Result<PresetDraft> {
    let front = teams::checked_front_matter(FrontMatter {
        name: draft.name.trim().to_string(),
        description: draft.description.trim().to_string(),
        trigger_keywords: draft.trigger_keywords,
    })
    .map_err(|(field, problem)| Error::invalid(field, problem))?;
    let checked = PresetDraft {
        name: front.name,
        description: front.description,
        trigger_keywords: front.trigger_keywords,
        members: checked_members(draft.members)?,
    };
    // The file the plugin will read must load like any preset file.
    teams::parse_preset(&file_text(&checked))
        .map_err(|problem| Error::invalid("members", problem))?;
    Ok(checked)
}

fn checked_members(members: Vec<PresetMember>) -> Result<Vec<PresetMember>> {
    let invalid = |message: String| Error::invalid("members", message);
    let mut checked: Vec<PresetMember> = Vec::with_capacity(members.len());
    for member in members {
        let member = PresetMember {
            name: member.name.trim().to_string(),
            phase: member.phase.trim().to_lowercase(),
            instructions: member
                .instructions
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" "),
        };
        if !is_slug(&member.name) {
            return Err(invalid(format!(
                "member {:?} is not a name; use lowercase letters, digits and '-'",
                member.name
            )));
        }
        if !PHASES.contains(&member.phase.as_str()) {
            return Err(invalid(format!(
                "member {} has phase {:?}; use one of {}",
                member.name,
                member.phase,
                PHASES.join(", ")
            )));
        }
        if member.instructions.is_empty() {
            return Err(invalid(format!(
                "member {} has no instructions",
                member.name
            )));
        }
        if checked.iter().any(|m| m.name == member.name) {
            return Err(invalid(format!("member {} is listed twice", member.name)));
        }
        checked.push(member);
    }
    if !checked.iter().any(|m| m.name == "leader") {
        return Err(invalid(
            "a team needs a member called leader: it drives the phases".into(),
        ));
    }
    Ok(checked)
}

/// The preset as a file in the plugin's format (`config/teams/*.md`): front matter, then
/// the members and the phase sequence their phases make.
pub fn file_text(draft: &PresetDraft) -> String {
    let front = FrontMatter {
        name: draft.name.clone(),
        description: draft.description.clone(),
        trigger_keywords: draft.trigger_keywords.clone(),
    };
    let yaml = yaml_serde::to_string(&front).expect("strings always serialize to YAML");
    let mut text = format!(
        "---\n{yaml}---\n\n# {} team\n\n{}\n\n## Members\n",
        draft.name, draft.description
    );
    for member in &draft.members {
        text.push_str(&format!(
            "\n### {}\n- **Phase**: {}\n- **Instructions**: {}\n",
            member.name, member.phase, member.instructions
        ));
    }
    let mut sequence: Vec<String> = PHASES
        .iter()
        .filter(|phase| draft.members.iter().any(|m| m.phase == **phase))
        .map(|phase| phase.to_uppercase())
        .collect();
    sequence.push("AWAITING_APPROVAL".into());
    text.push_str(&format!(
        "\n## Workflow\n\nPhase sequence: {}\n",
        sequence.join(" → ")
    ));
    text
}

/// A stored preset as the rest of aiops sees presets.
fn preset_of(stored: &StoredPreset) -> Result<TeamPreset> {
    let mut preset = teams::parse_preset(&file_text(&stored.draft()))
        .map_err(|problem| anyhow::anyhow!("stored team preset {}: {problem}", stored.name))?;
    preset.origin = PresetOrigin::UserDefined;
    preset.stored = true;
    Ok(preset)
}

/// Loads the stored presets into `teams` (at start, and after every change).
pub async fn refresh(store: &Store, teams: &Teams) -> Result<()> {
    let stored = store.team_presets().await?;
    teams.set_stored(stored.iter().map(preset_of).collect::<Result<_>>()?);
    Ok(())
}

/// How often every node reads the stored presets again, so one made or deleted through
/// another node is known here (for task creation, routing and schedules) within this time.
pub const REFRESH_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Reads the stored presets into `teams` every [`REFRESH_EVERY`] until `stop`.
pub async fn run_refresh(
    store: Store,
    teams: std::sync::Arc<Teams>,
    stop: tokio_util::sync::CancellationToken,
) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(REFRESH_EVERY) => {}
        }
        if let Err(e) = refresh(&store, &teams).await {
            tracing::warn!(error = %e, "could not read the stored team presets again");
        }
    }
}

/// Stores a new preset made by `created_by`; a name a file or another preset holds is refused.
pub async fn create(
    store: &Store,
    teams: &Teams,
    draft: PresetDraft,
    created_by: &str,
) -> Result<()> {
    let draft = validate(draft)?;
    if teams.is_file_preset(&draft.name) {
        return Err(Error::invalid(
            "name",
            format!(
                "{} is a preset of aiops' files; choose another name or copy it",
                draft.name
            ),
        ));
    }
    store.insert_team_preset(&draft, created_by).await?;
    refresh(store, teams).await
}

/// Changes the description, members and keywords of the stored preset `draft.name`.
pub async fn update(store: &Store, teams: &Teams, draft: PresetDraft) -> Result<()> {
    let draft = validate(draft)?;
    store.update_team_preset(&draft).await?;
    refresh(store, teams).await
}

/// Stores a copy of the stored preset `from` called `to`, made by `created_by`.
pub async fn copy(
    store: &Store,
    teams: &Teams,
    from: &str,
    to: &str,
    created_by: &str,
) -> Result<()> {
    let source = store
        .team_preset(from)
        .await?
        .ok_or_else(|| Error::NotFound(format!("team preset {from:?}")))?;
    let draft = PresetDraft {
        name: to.to_string(),
        ..source.draft()
    };
    create(store, teams, draft, created_by).await
}

/// Deletes the stored preset `name`; tasks that ran with it keep their history.
pub async fn delete(store: &Store, teams: &Teams, name: &str) -> Result<()> {
    if store.team_preset(name).await?.is_none() {
        return Err(Error::NotFound(format!("team preset {name:?}")));
    }
    // A task that has not ended writes its preset into its worktree when it (re)starts.
    let open = store.open_tasks_of_team(name).await?;
    if !open.is_empty() {
        let ids: Vec<String> = open.iter().map(|id| format!("#{id}")).collect();
        return Err(Error::Conflict(format!(
            "team preset {name:?} is used by tasks that have not ended ({}); delete it when they \
             are done or cancelled",
            ids.join(", ")
        )));
    }
    store.delete_team_preset(name).await?;
    refresh(store, teams).await
}

/// Writes the stored preset `team` (if `team` is one) to [`preset_path`] in `worktree`, so
/// the plugin finds a team it does not ship.
pub async fn write_into_worktree(store: &Store, team: &str, worktree: &Path) -> Result<()> {
    let Some(stored) = store.team_preset(team).await? else {
        return Ok(());
    };
    let path = preset_path(worktree, team);
    let dir = path.parent().expect("the preset path has a directory");
    tokio::fs::create_dir_all(dir)
        .await
        .with_context(|| format!("cannot create {}", dir.display()))?;
    tokio::fs::write(&path, file_text(&stored.draft()))
        .await
        .with_context(|| format!("cannot write the team preset {}", path.display()))?;
    Ok(())
}

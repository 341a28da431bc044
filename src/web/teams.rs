//! `/teams`: the team presets tasks, schedules and routing rules may name (the plugin's,
//! built in, and those of `teams_dir`, in ai-party's preset format), each with its origin,
//! what it does, its members with the phase each works in, and the keywords that route a
//! task to it.

use axum::extract::State;
use axum::response::Response;
use maud::{Markup, html};

use super::WebState;
use super::components::{badge, empty};
use super::i18n::Locale;
use super::layout::{Nav, Page};
use super::viewer::Viewer;
use crate::teams::{PresetOrigin, TeamPreset};

pub async fn list(State(state): State<WebState>, viewer: Viewer) -> Response {
    let locale = &viewer.locale;
    let presets = state.teams.presets();
    let body = html! {
        h1 { (locale.t("nav.teams")) }
        p.muted { (locale.t("teams.intro")) }
        @if presets.is_empty() {
            (empty(&locale.t("teams.none")))
        }
        div.team-list {
            @for preset in presets { (preset_card(locale, preset)) }
        }
    };
    Page {
        title: locale.t("nav.teams"),
        nav: Nav::Teams,
        locale,
        viewer: Some(viewer.signed_in()),
        live: None,
    }
    .render(body)
}

fn preset_card(locale: &Locale, preset: &TeamPreset) -> Markup {
    let origin = match preset.origin {
        PresetOrigin::BuiltIn => "built_in",
        PresetOrigin::Override => "override",
        PresetOrigin::UserDefined => "user_defined",
    };
    html! {
        section.card.team id={ "team-" (preset.name) } data-team=(preset.name) {
            h2 { (preset.name) " " (badge(origin, &locale.t(&format!("teams.origin_{origin}")))) }
            p { (preset.description) }
            h3 { (locale.t("teams.members")) }
            ul.plain.members {
                @for (member, phase) in members(&preset.body) {
                    li { strong { (member) } @if let Some(phase) = phase { " " span.muted { (phase) } } }
                }
            }
            h3 { (locale.t("teams.keywords")) }
            p.keywords { @for keyword in &preset.trigger_keywords { span.tag { (keyword) } " " } }
        }
    }
}

/// The members a preset's body lists under `## Members` (`### name`), with the phase of each
/// (`- **Phase**: …`).
fn members(body: &str) -> Vec<(String, Option<String>)> {
    let mut members: Vec<(String, Option<String>)> = Vec::new();
    let mut in_members = false;
    for line in body.lines() {
        let line = line.trim();
        if let Some(heading) = line.strip_prefix("## ") {
            in_members = heading.trim().eq_ignore_ascii_case("members");
        } else if !in_members {
            continue;
        } else if let Some(name) = line.strip_prefix("### ") {
            members.push((name.trim().to_string(), None));
        } else if let Some(phase) = line.strip_prefix("- **Phase**:")
            && let Some(last) = members.last_mut()
        {
            last.1 = Some(phase.trim().to_string());
        }
    }
    members
}

#[cfg(test)]
mod tests {
    #[test]
    fn members_are_read_from_the_members_section() {
        let body = "# T\n## Members\n### leader\n- **Phase**: planning\n### coder\n## Workflow\n### not-a-member\n";
        assert_eq!(
            super::members(body),
            vec![
                ("leader".to_string(), Some("planning".to_string())),
                ("coder".to_string(), None)
            ]
        );
    }
}

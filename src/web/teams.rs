//! `/teams`: the team presets tasks, schedules and routing rules may name (the plugin's,
//! built in, those of `teams_dir`, in ai-party's preset format, and those stored from this
//! page), each with its origin, what it does, its members with the phase each works in, and
//! the keywords that route a task to it. Maintainers of any project (admins too) create,
//! edit, copy and delete the stored presets here; viewers and operators only read.

use std::collections::HashMap;

use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::WebState;
use super::action::{ButtonForm, Posted};
use super::components::{badge, danger_button, empty, field_error};
use super::i18n::Locale;
use super::layout::{Nav, Page, PageError};
use super::task_list::status_of;
use super::viewer::Viewer;
use crate::error::{Error, Result};
use crate::model::{PresetDraft, PresetMember};
use crate::permissions::On;
use crate::team_presets;
use crate::teams::{PresetOrigin, TeamPreset};

/// The fields of the create, edit and copy forms (copy posts only `name`).
#[derive(Debug, Default, Clone, Deserialize)]
pub struct PresetForm {
    #[serde(default)]
    pub csrf: Option<String>,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// One keyword a line (or comma-separated).
    #[serde(default)]
    pub keywords: String,
    /// One member a line: `name | phase | instructions`.
    #[serde(default)]
    pub members: String,
}

impl PresetForm {
    fn of(draft: &PresetDraft) -> Self {
        let members: Vec<String> = draft
            .members
            .iter()
            .map(|m| format!("{} | {} | {}", m.name, m.phase, m.instructions))
            .collect();
        Self {
            csrf: None,
            name: draft.name.clone(),
            description: draft.description.clone(),
            keywords: draft.trigger_keywords.join("\n"),
            members: members.join("\n"),
        }
    }

    fn draft(&self) -> Result<PresetDraft> {
        let mut members = Vec::new();
        for (number, line) in self.members.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let parts: Vec<&str> = line.splitn(3, '|').collect();
            let [name, phase, instructions] = parts[..] else {
                return Err(Error::invalid(
                    "members",
                    format!("line {}: write `name | phase | instructions`", number + 1),
                ));
            };
            members.push(PresetMember {
                name: name.to_string(),
                phase: phase.to_string(),
                instructions: instructions.to_string(),
            });
        }
        Ok(PresetDraft {
            name: self.name.clone(),
            description: self.description.clone(),
            members,
            trigger_keywords: self
                .keywords
                .split(['\n', ','])
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .map(String::from)
                .collect(),
        })
    }
}

/// Which form a posted error belongs to: the new-preset form, or a stored preset's edit or
/// copy form.
#[derive(Debug, Clone, PartialEq, Eq)]
enum FormId {
    New,
    Edit(String),
    Copy(String),
}

/// A form shown again with what was posted and its error at the field.
struct Rejected {
    id: FormId,
    form: PresetForm,
    errors: HashMap<String, String>,
}

fn may_edit(viewer: &Viewer) -> bool {
    viewer.may_post("/teams", On::AnyProject)
}

pub async fn list(State(state): State<WebState>, viewer: Viewer) -> Response {
    render(&state, &viewer, None, StatusCode::OK)
        .await
        .unwrap_or_else(|e| PageError(e).into_page(&viewer.locale))
}

async fn render(
    state: &WebState,
    viewer: &Viewer,
    rejected: Option<&Rejected>,
    status: StatusCode,
) -> Result<Response> {
    let locale = &viewer.locale;
    let presets = state.teams.presets();
    let editor = may_edit(viewer);
    let stored: HashMap<String, PresetDraft> = if editor {
        let rows = state.store.team_presets().await?;
        rows.iter()
            .map(|row| (row.name.clone(), row.draft()))
            .collect()
    } else {
        HashMap::new()
    };
    let body = html! {
        h1 { (locale.t("nav.teams")) }
        p.muted { (locale.t("teams.intro")) }
        @if editor {
            @let (form, errors) = form_of(rejected, &FormId::New, PresetForm::default());
            details.card #new-preset open[errors.is_some()] {
                summary { (locale.t("teams_edit.new")) }
                (preset_form(viewer, "/teams", &form, errors, true))
            }
        }
        @if presets.is_empty() {
            (empty(&locale.t("teams.none")))
        }
        div.team-list {
            @for preset in &presets {
                (preset_card(locale, preset))
                @if let Some(draft) = stored.get(&preset.name) {
                    (stored_controls(viewer, preset, draft, rejected))
                }
            }
        }
    };
    Ok(Page {
        title: locale.t("nav.teams"),
        nav: Nav::Teams,
        locale,
        viewer: Some(viewer.signed_in()),
        live: None,
    }
    .render_with(status, body))
}

/// Form `id` as `rejected` left it, or else `fallback`, with the errors to show.
fn form_of<'a>(
    rejected: Option<&'a Rejected>,
    id: &FormId,
    fallback: PresetForm,
) -> (PresetForm, Option<&'a HashMap<String, String>>) {
    match rejected {
        Some(r) if r.id == *id => (r.form.clone(), Some(&r.errors)),
        _ => (fallback, None),
    }
}

/// The edit, copy and delete forms of a stored preset.
fn stored_controls(
    viewer: &Viewer,
    preset: &TeamPreset,
    draft: &PresetDraft,
    rejected: Option<&Rejected>,
) -> Markup {
    let locale = &viewer.locale;
    let name = &preset.name;
    let (edit, edit_errors) = form_of(rejected, &FormId::Edit(name.clone()), PresetForm::of(draft));
    let copy_default = PresetForm {
        name: format!("{name}-copy"),
        ..PresetForm::default()
    };
    let (copy, copy_errors) = form_of(rejected, &FormId::Copy(name.clone()), copy_default);
    let copy_error = copy_errors.and_then(|e| e.get("name")).map(String::as_str);
    html! {
        div.preset-controls data-controls=(name) {
            details open[edit_errors.is_some()] {
                summary { (locale.t("teams_edit.edit")) }
                (preset_form(viewer, &format!("/teams/{name}"), &edit, edit_errors, false))
            }
            form.inline method="post" action={ "/teams/" (name) "/copy" } {
                input type="hidden" name="csrf" value=(viewer.csrf());
                label for={ "copy-" (name) } {
                    (locale.t("teams_edit.copy_as"))
                    input id={ "copy-" (name) } name="name" value=(copy.name)
                        aria-invalid=[copy_error.map(|_| "true")];
                    (field_error(&format!("copy-{name}"), copy_error))
                }
                button type="submit" { (locale.t("teams_edit.copy")) }
            }
            (danger_button(viewer.csrf(), &format!("/teams/{name}/delete"), &locale.t("teams_edit.delete")))
        }
    }
}

/// The create form (`creating`) or a stored preset's edit form (its name fixed).
fn preset_form(
    viewer: &Viewer,
    action: &str,
    form: &PresetForm,
    errors: Option<&HashMap<String, String>>,
    creating: bool,
) -> Markup {
    let locale = &viewer.locale;
    let prefix = if creating {
        "new".to_string()
    } else {
        format!("edit-{}", form.name)
    };
    let error = |field: &str| errors.and_then(|e| e.get(field)).map(String::as_str);
    let field = |name: &str, value: &str, multiline: bool| {
        let id = format!("{prefix}-{name}");
        html! {
            label for=(id) {
                (locale.t(&format!("teams_edit.field_{name}")))
                @if multiline {
                    textarea id=(id) name=(name) rows="5" aria-invalid=[error(name).map(|_| "true")]
                        aria-describedby=[error(name).map(|_| format!("{id}-error"))] { (value) }
                } @else {
                    input id=(id) name=(name) value=(value) readonly[!creating && name == "name"]
                        aria-invalid=[error(name).map(|_| "true")]
                        aria-describedby=[error(name).map(|_| format!("{id}-error"))];
                }
                (field_error(&id, error(name)))
            }
        }
    };
    html! {
        form.stack method="post" action=(action) novalidate data-form=(prefix) {
            input type="hidden" name="csrf" value=(viewer.csrf());
            (field("name", &form.name, false))
            (field("description", &form.description, false))
            (field("keywords", &form.keywords, true))
            p.muted { (locale.t("teams_edit.members_help")) }
            (field("members", &form.members, true))
            div { button.primary type="submit" { (locale.t(if creating { "teams_edit.create" } else { "teams_edit.save" })) } }
        }
    }
}

pub async fn create(
    State(state): State<WebState>,
    viewer: Viewer,
    headers: HeaderMap,
    Form(form): Form<PresetForm>,
) -> Response {
    let work = async {
        let by = viewer.principal.name.clone();
        team_presets::create(&state.store, &state.teams, form.draft()?, &by).await
    };
    let target = format!("teams/{}", form.name);
    save(
        &state,
        &viewer,
        &headers,
        ("POST /teams", &target),
        FormId::New,
        &form,
        work,
    )
    .await
}

pub async fn update(
    State(state): State<WebState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(mut form): Form<PresetForm>,
) -> Response {
    form.name = name.clone();
    let work = async { team_presets::update(&state.store, &state.teams, form.draft()?).await };
    let target = format!("teams/{name}");
    let id = FormId::Edit(name.clone());
    save(
        &state,
        &viewer,
        &headers,
        ("POST /teams/{name}", &target),
        id,
        &form,
        work,
    )
    .await
}

pub async fn copy(
    State(state): State<WebState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(form): Form<PresetForm>,
) -> Response {
    let work = async {
        let by = viewer.principal.name.clone();
        team_presets::copy(&state.store, &state.teams, &name, &form.name, &by).await
    };
    let target = format!("teams/{name}");
    let id = FormId::Copy(name.clone());
    save(
        &state,
        &viewer,
        &headers,
        ("POST /teams/{name}/copy", &target),
        id,
        &form,
        work,
    )
    .await
}

pub async fn delete(
    State(state): State<WebState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(form): Form<ButtonForm>,
) -> Response {
    let posted = Posted {
        state: &state,
        viewer: &viewer,
        headers: &headers,
        csrf: form.csrf.as_deref(),
    };
    let work = team_presets::delete(&state.store, &state.teams, &name);
    posted
        .act(
            "POST /teams/{name}/delete",
            &format!("teams/{name}"),
            "/teams",
            work,
        )
        .await
}

/// Checks the form and the editor, runs `work`, audits `(action, target)`; a field error
/// shows the page again (422) with the error at the field of form `id`.
async fn save(
    state: &WebState,
    viewer: &Viewer,
    headers: &HeaderMap,
    (action, target): (&str, &str),
    id: FormId,
    form: &PresetForm,
    work: impl Future<Output = Result<()>>,
) -> Response {
    let outcome = async {
        viewer.check_declared_form(headers, form.csrf.as_deref())?;
        work.await
    }
    .await;
    let status = outcome
        .as_ref()
        .map_or_else(status_of, |()| "200".to_string());
    viewer.audit(state, action, target, &status).await;
    let locale = &viewer.locale;
    match outcome {
        Ok(()) => Redirect::to("/teams").into_response(),
        Err(Error::Invalid { field, message }) => {
            let text = format!(
                "{}: {message}",
                locale.t(&format!("teams_edit.error_{field}"))
            );
            let rejected = Rejected {
                id,
                form: form.clone(),
                errors: HashMap::from([(field, text)]),
            };
            render(
                state,
                viewer,
                Some(&rejected),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
            .unwrap_or_else(|e| PageError(e).into_page(locale))
        }
        Err(e) => PageError(e).into_page(locale),
    }
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

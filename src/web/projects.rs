//! `/projects`: the reader's projects with their health (running, queued, how the last task
//! ended, the success rate of the last seven days), and a project's page: its settings
//! (maintainers edit them, errors shown at the field), members, credentials (names only),
//! channels, schedules, routing rules and recent tasks (`project_parts`).

use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
use maud::{Markup, html};
use serde::Deserialize;

use super::WebState;
use super::components::{empty, field_error, task_status};
use super::i18n::Locale;
use super::layout::{Nav, Page, PageError};
use super::project_forms::{FieldErrors, Forms};
use super::project_parts;
use super::task_list::status_of;
use super::viewer::Viewer;
use crate::error::{Error, Result};
use crate::model::{ApprovalLinks, Project, ProjectHealth, ProjectRole};
use crate::permissions::{On, Permission, visible_projects};
use crate::projects::{self, ApprovalPolicyPatch, ProjectPatch};

pub async fn list(State(state): State<WebState>, viewer: Viewer) -> Response {
    let locale = &viewer.locale;
    let since = Utc::now() - chrono::Duration::days(7);
    let scope = visible_projects(&viewer.principal);
    let health = match state.store.project_health(since, &scope).await {
        Ok(health) => health,
        Err(e) => return PageError(e).into_page(locale),
    };
    let body = html! {
        h1 { (locale.t("nav.projects")) }
        @if health.is_empty() {
            (empty(&locale.t("overview.no_projects")))
        } @else {
            (health_table(locale, &health))
        }
    };
    Page {
        title: locale.t("nav.projects"),
        nav: Nav::Projects,
        locale,
        viewer: Some(viewer.signed_in()),
        live: None,
    }
    .render(body)
}

fn health_table(locale: &Locale, health: &[ProjectHealth]) -> Markup {
    html! {
        div.table-wrap { table.stack-small #projects {
            thead { tr {
                th scope="col" { (locale.t("field.project")) }
                th.num scope="col" { (locale.t("status.running")) }
                th.num scope="col" { (locale.t("status.queued")) }
                th scope="col" { (locale.t("projects.last_outcome")) }
                th.num scope="col" { (locale.t("projects.success_7d")) }
            } }
            tbody { @for line in health {
                tr data-project=(line.project) {
                    td { a href={ "/projects/" (line.project) } { (line.project) } }
                    td.num data-label=(locale.t("status.running")) { (line.running) }
                    td.num data-label=(locale.t("status.queued")) { (line.queued) }
                    td data-label=(locale.t("projects.last_outcome")) {
                        @match line.last_outcome {
                            Some(status) => (task_status(locale, status)),
                            None => span.muted { (locale.t("projects.no_outcome")) },
                        }
                    }
                    td.num data-label=(locale.t("projects.success_7d")) {
                        @match line.success_rate() {
                            Some(rate) => { (rate) "%" },
                            None => span.muted { "—" },
                        }
                    }
                }
            } }
        } }
    }
}

pub async fn show(
    State(state): State<WebState>,
    viewer: Viewer,
    Path(name): Path<String>,
) -> Response {
    let outcome = async {
        let project = readable(&state, &viewer, &name).await?;
        render_with(&state, &viewer, &project, None, Forms::default()).await
    }
    .await;
    outcome.unwrap_or_else(|e| PageError(e).into_page(&viewer.locale))
}

/// Project `name`, if the reader may read it.
pub async fn readable(state: &WebState, viewer: &Viewer, name: &str) -> Result<Project> {
    let project = state.store.project(name).await?;
    viewer.require(Permission::Read, project.id)?;
    Ok(projects::shown(project))
}

/// The settings form as posted (and as first shown, from the project).
#[derive(Debug, Default, Clone, Deserialize)]
pub struct SettingsForm {
    #[serde(default)]
    repo_url: String,
    #[serde(default)]
    local_path: String,
    #[serde(default)]
    default_branch: String,
    #[serde(default)]
    branch_strategy: String,
    #[serde(default)]
    github_repo: String,
    #[serde(default)]
    tech_stack: String,
    #[serde(default)]
    conventions: String,
    #[serde(default)]
    max_concurrency: String,
    #[serde(default)]
    timeout_secs: String,
    #[serde(default)]
    decide_role: String,
    #[serde(default)]
    self_approval: Option<String>,
    #[serde(default)]
    required_approvals: String,
    #[serde(default)]
    approval_links: String,
    #[serde(default)]
    csrf: Option<String>,
}

impl SettingsForm {
    fn of(project: &Project, links: ApprovalLinks) -> SettingsForm {
        let policy = &project.approval_policy;
        SettingsForm {
            repo_url: project.repo_url.clone().unwrap_or_default(),
            local_path: project.local_path.clone().unwrap_or_default(),
            default_branch: project.default_branch.clone(),
            branch_strategy: project.branch_strategy.clone(),
            github_repo: project.github_repo.clone().unwrap_or_default(),
            tech_stack: project.tech_stack.join(", "),
            conventions: project.conventions.clone(),
            max_concurrency: project.max_concurrency.to_string(),
            timeout_secs: project
                .timeout_secs
                .map(|t| t.to_string())
                .unwrap_or_default(),
            decide_role: policy.decide_role.as_str().to_string(),
            self_approval: policy.self_approval.then(|| "on".to_string()),
            required_approvals: policy.required_approvals.to_string(),
            approval_links: links.as_str().to_string(),
            csrf: None,
        }
    }

    /// The change this form asks for, or the field that does not parse.
    fn patch(&self, locale: &Locale) -> Result<(ProjectPatch, ApprovalLinks)> {
        let whole = locale.t("projects.whole_number");
        let number = |field: &str, text: &str| -> Result<Option<i64>> {
            match text.trim() {
                "" => Ok(None),
                text => text
                    .parse()
                    .map(Some)
                    .map_err(|_| Error::invalid(field, whole.clone())),
            }
        };
        let decide_role = self
            .decide_role
            .parse::<ProjectRole>()
            .map_err(|_| Error::invalid("decide_role", "must be approver or maintainer"))?;
        let links = self
            .approval_links
            .parse::<ApprovalLinks>()
            .map_err(|e| Error::invalid("approval_links", e.to_string()))?;
        let tech_stack = self
            .tech_stack
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        let patch = ProjectPatch {
            repo_url: Some(self.repo_url.trim().to_string()),
            local_path: Some(self.local_path.trim().to_string()),
            default_branch: Some(self.default_branch.trim().to_string()),
            branch_strategy: Some(self.branch_strategy.trim().to_string()),
            tech_stack: Some(tech_stack),
            conventions: Some(self.conventions.clone()),
            github_repo: Some(self.github_repo.trim().to_string()),
            max_concurrency: Some(
                number("max_concurrency", &self.max_concurrency)?
                    .ok_or_else(|| Error::invalid("max_concurrency", whole.clone()))?,
            ),
            timeout_secs: number("timeout_secs", &self.timeout_secs)?,
            approval_policy: Some(ApprovalPolicyPatch {
                decide_role: Some(decide_role),
                self_approval: Some(self.self_approval.is_some()),
                required_approvals: number("required_approvals", &self.required_approvals)?,
            }),
        };
        Ok((patch, links))
    }
}

pub async fn save(
    State(state): State<WebState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(form): Form<SettingsForm>,
) -> Response {
    let outcome = async {
        viewer.check_form(&headers, form.csrf.as_deref())?;
        let project = maintained(&state, &viewer, &name).await?;
        let (patch, links) = form.patch(&viewer.locale)?;
        projects::update(&state.store, &state.config.inputs, &name, patch).await?;
        state.store.set_approval_links(project.id, links).await
    }
    .await;
    let answer = FormAnswer {
        action: "POST /projects/{name}",
        target: format!("projects/{name}"),
        back: format!("/projects/{name}?saved=1#settings"),
        field: |field: &str| field.trim_start_matches("approval_policy.").to_string(),
    };
    answer
        .give(
            &state,
            &viewer,
            &name,
            outcome,
            Some(form),
            Forms::default(),
        )
        .await
}

/// Project `name`, if the reader may post its page's form (the declared guard on it).
pub(super) async fn maintained(state: &WebState, viewer: &Viewer, name: &str) -> Result<Project> {
    let project = state.store.project(name).await?;
    viewer.require_form(On::Project(project.id))?;
    Ok(project)
}

/// How a form of a project's page is answered: audited as `action` on `target`; `back` when
/// it worked; the page again, with the refused field's error at `field(name)`, when a field
/// was refused (422); the error page otherwise.
pub(super) struct FormAnswer<F> {
    pub action: &'static str,
    pub target: String,
    pub back: String,
    pub field: F,
}

impl<F: Fn(&str) -> String> FormAnswer<F> {
    /// Answers `outcome`; `settings` and `forms` are what the page shows again.
    pub async fn give(
        self,
        state: &WebState,
        viewer: &Viewer,
        name: &str,
        outcome: Result<()>,
        settings: Option<SettingsForm>,
        mut forms: Forms,
    ) -> Response {
        let status = outcome.as_ref().map_or_else(status_of, |()| "200".into());
        viewer
            .audit(state, self.action, &self.target, &status)
            .await;
        match outcome {
            Ok(()) => Redirect::to(&self.back).into_response(),
            Err(Error::Invalid { field, message }) => {
                forms.errors = FieldErrors::from([((self.field)(&field), message)]);
                let page = async {
                    let project = readable(state, viewer, name).await?;
                    render_with(state, viewer, &project, settings, forms).await
                };
                let page = page.await;
                page.unwrap_or_else(|e| PageError(e).into_page(&viewer.locale))
            }
            Err(e) => PageError(e).into_page(&viewer.locale),
        }
    }
}

/// The project's page with the settings as posted (else as stored) and the other `forms`;
/// 422 when one of them carries an error.
pub async fn render_with(
    state: &WebState,
    viewer: &Viewer,
    project: &Project,
    settings: Option<SettingsForm>,
    forms: Forms,
) -> Result<Response> {
    let locale = &viewer.locale;
    let maintains = viewer.may_post("/projects/{name}", On::Project(project.id));
    let parts = project_parts::sections(state, viewer, project, &forms).await?;
    let form = match settings {
        Some(form) => form,
        None => SettingsForm::of(project, state.store.approval_links(project.id).await?),
    };
    let (form, errors) = (&form, &forms.errors);
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let body = html! {
        h1 { (locale.t("projects.project")) " " (project.name) }
        nav.sections aria-label=(locale.t("projects.sections")) {
            a href="#settings" { (locale.t("projects.settings")) }
            a href="#members" { (locale.t("projects.members")) }
            a href="#credentials" { (locale.t("projects.credentials")) }
            a href="#channels" { (locale.t("projects.channels")) }
            a href="#schedules" { (locale.t("nav.schedules")) }
            a href="#rules" { (locale.t("projects.rules")) }
            a href="#recent" { (locale.t("projects.recent")) }
        }
        h2 #settings { (locale.t("projects.settings")) }
        @if maintains {
            (settings_form(viewer, project, form, errors))
        } @else {
            (settings_facts(locale, form))
        }
        (parts)
    };
    Ok(Page {
        title: project.name.clone(),
        nav: Nav::Projects,
        locale,
        viewer: Some(viewer.signed_in()),
        live: None,
    }
    .render_with(status, body))
}

/// The settings as read-only facts, for those who may not change them.
fn settings_facts(locale: &Locale, form: &SettingsForm) -> Markup {
    html! {
        dl.facts #settings-facts {
            @for (key, value) in settings_fields(form) {
                div { dt { (locale.t(&format!("projects.field_{key}"))) } dd { (value) } }
            }
        }
    }
}

/// The plain text fields of the settings, by name, in the order shown.
fn settings_fields(form: &SettingsForm) -> [(&'static str, &str); 8] {
    [
        ("repo_url", form.repo_url.as_str()),
        ("local_path", form.local_path.as_str()),
        ("default_branch", form.default_branch.as_str()),
        ("branch_strategy", form.branch_strategy.as_str()),
        ("github_repo", form.github_repo.as_str()),
        ("tech_stack", form.tech_stack.as_str()),
        ("max_concurrency", form.max_concurrency.as_str()),
        ("timeout_secs", form.timeout_secs.as_str()),
    ]
}

fn settings_form(
    viewer: &Viewer,
    project: &Project,
    form: &SettingsForm,
    errors: &FieldErrors,
) -> Markup {
    let locale = &viewer.locale;
    let error = |field: &str| errors.get(field).map(String::as_str);
    let choice = |name: &str, values: &[&str], current: &str| {
        html! {
            label for=(name) {
                (locale.t(&format!("projects.field_{name}")))
                select #(name) name=(name) aria-invalid=[error(name).map(|_| "true")] {
                    @for value in values {
                        option value=(value) selected[*value == current] {
                            (locale.t(&format!("projects.{name}_{value}")))
                        }
                    }
                }
                (field_error(name, error(name)))
            }
        }
    };
    html! {
        form.stack method="post" action={ "/projects/" (project.name) } #project-settings novalidate {
            input type="hidden" name="csrf" value=(viewer.csrf());
            @for (name, value) in settings_fields(form) {
                label for=(name) {
                    (locale.t(&format!("projects.field_{name}")))
                    input #(name) name=(name) value=(value)
                        aria-invalid=[error(name).map(|_| "true")]
                        aria-describedby=[error(name).map(|_| format!("{name}-error"))];
                    (field_error(name, error(name)))
                }
            }
            label for="conventions" {
                (locale.t("projects.field_conventions"))
                textarea #conventions name="conventions" { (form.conventions) }
            }
            (choice("decide_role", &["approver", "maintainer"], &form.decide_role))
            label for="required_approvals" {
                (locale.t("projects.field_required_approvals"))
                input #required_approvals name="required_approvals" value=(form.required_approvals)
                    aria-invalid=[error("required_approvals").map(|_| "true")];
                (field_error("required_approvals", error("required_approvals")))
            }
            label.check for="self_approval" {
                input #self_approval type="checkbox" name="self_approval" checked[form.self_approval.is_some()];
                (locale.t("projects.field_self_approval"))
            }
            (choice("approval_links", &["sign_in", "link"], &form.approval_links))
            div { button.primary type="submit" { (locale.t("projects.save")) } }
        }
    }
}

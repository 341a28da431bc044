//! `/tasks`: the task list with its filters (project, status, team, source, priority, text
//! in the prompt, created between two days), paged by cursor; the form that creates a task;
//! cancel and retry. Only the reader's projects are listed or offered.

use std::collections::HashMap;

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, NaiveDate, Utc};
use maud::{Markup, html};
use serde::Deserialize;

use super::WebState;
use super::components::{empty, field_error, list_pager, list_url, task_status};
use super::i18n::Locale;
use super::layout::{Nav, Page, PageError};
use super::overview::short;
use super::viewer::Viewer;
use crate::error::Error;
use crate::model::{Priority, Project, Source, Task, TaskSearch, TaskStatus};
use crate::permissions::{On, sees, visible_projects};
use crate::tasks::{self, NewTask};

/// Tasks on one page.
const PAGE_SIZE: i64 = 50;

/// The list's filters as the form sends them (an empty field is no filter).
#[derive(Debug, Default, Clone, Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    project: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    team: String,
    #[serde(default)]
    source: String,
    #[serde(default)]
    priority: String,
    #[serde(default)]
    q: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    before: Option<i64>,
}

/// The create form as posted.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct CreateForm {
    #[serde(default)]
    project: String,
    #[serde(default)]
    team: String,
    #[serde(default)]
    priority: String,
    #[serde(default)]
    prompt: String,
    #[serde(default)]
    csrf: Option<String>,
}

/// A form's errors by field name.
type FieldErrors = HashMap<String, String>;

pub async fn list(
    State(state): State<WebState>,
    viewer: Viewer,
    Query(query): Query<ListQuery>,
) -> Response {
    render(
        &state,
        &viewer,
        &query,
        &CreateForm::default(),
        &FieldErrors::new(),
        StatusCode::OK,
    )
    .await
    .unwrap_or_else(|e| e.into_page(&viewer.locale))
}

pub async fn create(
    State(state): State<WebState>,
    viewer: Viewer,
    headers: HeaderMap,
    Form(form): Form<CreateForm>,
) -> Response {
    let locale = viewer.locale;
    if let Err(e) = viewer.check_form(&headers, form.csrf.as_deref()) {
        return PageError(e).into_page(&locale);
    }
    match create_task(&state, &viewer, &form).await {
        Ok(task) => {
            viewer
                .audit(&state, "POST /tasks", &format!("tasks/{}", task.id), "201")
                .await;
            Redirect::to(&format!("/tasks/{}", task.id)).into_response()
        }
        Err(Error::Invalid { field, message }) => {
            let errors = FieldErrors::from([(field, message)]);
            let status = StatusCode::UNPROCESSABLE_ENTITY;
            render(
                &state,
                &viewer,
                &ListQuery::default(),
                &form,
                &errors,
                status,
            )
            .await
            .unwrap_or_else(|e| e.into_page(&locale))
        }
        Err(e) => {
            viewer
                .audit(&state, "POST /tasks", "tasks", &status_of(&e))
                .await;
            PageError(e).into_page(&locale)
        }
    }
}

async fn create_task(state: &WebState, viewer: &Viewer, form: &CreateForm) -> crate::Result<Task> {
    let project = state
        .store
        .find_project(&form.project)
        .await?
        .ok_or_else(|| Error::invalid("project", viewer.locale.t("tasks.pick_project")))?;
    viewer.require_form(On::Project(project.id))?;
    let priority = match form.priority.as_str() {
        "" => None,
        text => Some(text.parse::<Priority>()?),
    };
    let new = NewTask {
        project: project.name,
        team: (!form.team.is_empty()).then(|| form.team.clone()),
        prompt: form.prompt.clone(),
        priority,
        dedup_key: None,
    };
    let spec = tasks::task_spec(
        &state.store,
        &state.config.tasks,
        &state.teams,
        new,
        Source::Api,
        &viewer.principal.name,
        viewer.principal.id,
    )
    .await?;
    tasks::enqueue(&state.store, &spec).await
}

/// `POST /tasks/{id}/cancel` and `/retry`.
#[derive(Debug, Deserialize)]
pub struct ActionForm {
    #[serde(default)]
    csrf: Option<String>,
}

pub async fn cancel(
    State(state): State<WebState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Form(form): Form<ActionForm>,
) -> Response {
    task_action(
        &state,
        &viewer,
        &headers,
        id,
        form.csrf.as_deref(),
        "cancel",
    )
    .await
}

pub async fn retry(
    State(state): State<WebState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Form(form): Form<ActionForm>,
) -> Response {
    task_action(&state, &viewer, &headers, id, form.csrf.as_deref(), "retry").await
}

async fn task_action(
    state: &WebState,
    viewer: &Viewer,
    headers: &HeaderMap,
    id: i64,
    csrf: Option<&str>,
    action: &str,
) -> Response {
    let outcome = async {
        viewer.check_form(headers, csrf)?;
        let task = state.store.task(id).await?;
        let project = state.store.project(&task.project).await?;
        viewer.require_form(On::Project(project.id))?;
        match action {
            "cancel" => tasks::request_cancel(&state.store, id).await.map(|_| ()),
            _ => tasks::retry(&state.store, id, &viewer.principal.name)
                .await
                .map(|_| ()),
        }
    }
    .await;
    let path = format!("POST /tasks/{{id}}/{action}");
    match outcome {
        Ok(()) => {
            viewer
                .audit(state, &path, &format!("tasks/{id}"), "200")
                .await;
            Redirect::to(&format!("/tasks/{id}")).into_response()
        }
        Err(e) => {
            viewer
                .audit(state, &path, &format!("tasks/{id}"), &status_of(&e))
                .await;
            PageError(e).into_page(&viewer.locale)
        }
    }
}

/// The HTTP status an error answers with, for the audit log.
pub fn status_of(error: &Error) -> String {
    match error {
        Error::Forbidden(_) => "403",
        Error::NotFound(_) => "404",
        Error::Conflict(_) => "409",
        Error::Invalid { .. } => "422",
        Error::BadRequest(_) => "400",
        _ => "500",
    }
    .to_string()
}

/// The filters as a store search, or the field that does not parse.
fn search_of(
    query: &ListQuery,
    projects: &[Project],
    locale: &Locale,
) -> Result<TaskSearch, (String, String)> {
    fn parse<T: std::str::FromStr>(field: &str, text: &str) -> Result<Option<T>, (String, String)>
    where
        T::Err: std::fmt::Display,
    {
        if text.is_empty() {
            return Ok(None);
        }
        text.parse()
            .map(Some)
            .map_err(|e: T::Err| (field.to_string(), e.to_string()))
    }
    let day = |field: &str, text: &str| -> Result<Option<DateTime<Utc>>, (String, String)> {
        if text.is_empty() {
            return Ok(None);
        }
        let date = NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .map_err(|_| (field.to_string(), locale.t("tasks.bad_date")))?;
        let start = date
            .and_hms_opt(0, 0, 0)
            .and_then(|t| t.and_local_timezone(locale.zone).earliest());
        Ok(start.map(|s| s.with_timezone(&Utc)))
    };
    let project_id = match query.project.as_str() {
        "" => None,
        name => Some(
            projects
                .iter()
                .find(|p| p.name == name)
                .map(|p| p.id)
                .ok_or_else(|| ("project".to_string(), locale.t("tasks.unknown_project")))?,
        ),
    };
    Ok(TaskSearch {
        project_id,
        status: parse::<TaskStatus>("status", &query.status)?,
        team: (!query.team.is_empty()).then(|| query.team.clone()),
        source: parse::<Source>("source", &query.source)?,
        priority: parse::<Priority>("priority", &query.priority)?,
        text: (!query.q.trim().is_empty()).then(|| query.q.trim().to_string()),
        created_from: day("from", &query.from)?,
        created_before: day("to", &query.to)?.map(|d| d + chrono::Duration::days(1)),
        before_id: query.before,
        limit: PAGE_SIZE,
    })
}

async fn render(
    state: &WebState,
    viewer: &Viewer,
    query: &ListQuery,
    form: &CreateForm,
    form_errors: &FieldErrors,
    status: StatusCode,
) -> Result<Response, PageError> {
    let locale = &viewer.locale;
    let scope = visible_projects(&viewer.principal);
    let projects: Vec<Project> = state
        .store
        .list_projects()
        .await?
        .into_iter()
        .filter(|p| sees(&scope, p.id))
        .collect();
    let (tasks, filter_error) = match search_of(query, &projects, locale) {
        Ok(search) => (state.store.search_tasks(&search, &scope).await?, None),
        Err(error) => (Vec::new(), Some(error)),
    };
    let body = html! {
        h1 { (locale.t("tasks.title")) }
        (filters(state, locale, query, &projects, filter_error.as_ref()))
        @if tasks.is_empty() {
            (empty(&locale.t("tasks.none")))
        } @else {
            (task_table(viewer, &tasks))
        }
        (list_pager(locale, tasks.len(), tasks.last().map(|t| t.id), query.before, PAGE_SIZE, |before| page_url(query, before)))
        (create_form(state, viewer, &projects, form, form_errors))
    };
    Ok(Page {
        title: locale.t("tasks.title"),
        nav: Nav::Tasks,
        locale,
        viewer: Some(viewer.signed_in()),
        live: Some("/live".into()),
    }
    .render_with(status, body))
}

/// This list's address with its filters and cursor `before`.
fn page_url(query: &ListQuery, before: Option<i64>) -> String {
    let filters = [
        ("project", query.project.as_str()),
        ("status", &query.status),
        ("team", &query.team),
        ("source", &query.source),
        ("priority", &query.priority),
        ("q", &query.q),
        ("from", &query.from),
        ("to", &query.to),
    ];
    list_url("/tasks", &filters, before)
}

/// A `<select>` of `choices` (value, label) with an "any" first, `selected` chosen.
fn select(
    name: &str,
    label: &str,
    any: &str,
    choices: &[(String, String)],
    selected: &str,
    error: Option<&str>,
) -> Markup {
    select_with_id(name, name, label, any, choices, selected, error)
}

/// `select` with an element id apart from its name (two forms on one page).
fn select_with_id(
    id: &str,
    name: &str,
    label: &str,
    any: &str,
    choices: &[(String, String)],
    selected: &str,
    error: Option<&str>,
) -> Markup {
    html! {
        label for=(id) {
            (label)
            select #(id) name=(name) aria-invalid=[error.map(|_| "true")] aria-describedby=[error.map(|_| format!("{id}-error"))] {
                option value="" { (any) }
                @for (value, text) in choices {
                    option value=(value) selected[value == selected] { (text) }
                }
            }
            (field_error(id, error))
        }
    }
}

fn filters(
    state: &WebState,
    locale: &Locale,
    query: &ListQuery,
    projects: &[Project],
    error: Option<&(String, String)>,
) -> Markup {
    let error_of = |field: &str| error.filter(|(f, _)| f == field).map(|(_, m)| m.as_str());
    let any = locale.t("list.any");
    let named = |values: Vec<&str>, prefix: &str| -> Vec<(String, String)> {
        values
            .into_iter()
            .map(|v| {
                (
                    v.to_string(),
                    if prefix.is_empty() {
                        v.to_string()
                    } else {
                        locale.t(&format!("{prefix}.{v}"))
                    },
                )
            })
            .collect()
    };
    let project_names = projects.iter().map(|p| p.name.as_str()).collect();
    let team_names = state.teams.names();
    html! {
        form.filters method="get" action="/tasks" role="search" #task-filters {
            (select("project", &locale.t("field.project"), &any, &named(project_names, ""), &query.project, error_of("project")))
            (select("status", &locale.t("field.status"), &any, &named(TaskStatus::ALL.iter().map(|s| s.as_str()).collect(), "status"), &query.status, error_of("status")))
            (select("team", &locale.t("field.team"), &any, &named(team_names.iter().map(String::as_str).collect(), ""), &query.team, error_of("team")))
            (select("source", &locale.t("field.source"), &any, &named(Source::ALL.iter().map(|s| s.as_str()).collect(), "source"), &query.source, error_of("source")))
            (select("priority", &locale.t("field.priority"), &any, &named(Priority::ALL.iter().map(|s| s.as_str()).collect(), "priority"), &query.priority, error_of("priority")))
            label for="q" { (locale.t("tasks.search")) input #q type="search" name="q" value=(query.q); }
            label for="from" {
                (locale.t("tasks.from"))
                input #from type="date" name="from" value=(query.from) aria-invalid=[error_of("from").map(|_| "true")];
                (field_error("from", error_of("from")))
            }
            label for="to" {
                (locale.t("tasks.to"))
                input #to type="date" name="to" value=(query.to) aria-invalid=[error_of("to").map(|_| "true")];
                (field_error("to", error_of("to")))
            }
            button type="submit" { (locale.t("list.filter")) }
        }
    }
}

fn task_table(viewer: &Viewer, tasks: &[Task]) -> Markup {
    let locale = &viewer.locale;
    let now = Utc::now();
    html! {
        div.table-wrap #tasks {
            table.stack-small {
                thead { tr {
                    th scope="col" { "#" }
                    th scope="col" { (locale.t("field.project")) }
                    th scope="col" { (locale.t("field.status")) }
                    th scope="col" { (locale.t("field.prompt")) }
                    th scope="col" { (locale.t("field.team")) }
                    th scope="col" { (locale.t("field.priority")) }
                    th scope="col" { (locale.t("field.source")) }
                    th scope="col" { (locale.t("field.created")) }
                } }
                tbody { @for task in tasks {
                    tr.task data-id=(task.id) data-status=(task.status.as_str()) {
                        td { a href={ "/tasks/" (task.id) } { "#" (task.id) } }
                        td data-label=(locale.t("field.project")) { (task.project) }
                        td data-label=(locale.t("field.status")) {
                            (task_status(locale, task.status))
                            @if let Some(phase) = &task.phase { " " span.muted { (super::components::phase_name(locale, phase)) } }
                        }
                        td data-label=(locale.t("field.prompt")) { a href={ "/tasks/" (task.id) } { (short(&task.prompt)) } }
                        td data-label=(locale.t("field.team")) { (task.team) }
                        td data-label=(locale.t("field.priority")) { (locale.t(&format!("priority.{}", task.priority.as_str()))) }
                        td data-label=(locale.t("field.source")) { (locale.t(&format!("source.{}", task.source.as_str()))) }
                        td data-label=(locale.t("field.created")) { time datetime=(task.created_at.to_rfc3339()) title=(locale.time(task.created_at)) { (locale.ago(task.created_at, now)) } }
                    }
                } }
            }
        }
    }
}

fn create_form(
    state: &WebState,
    viewer: &Viewer,
    projects: &[Project],
    form: &CreateForm,
    errors: &FieldErrors,
) -> Markup {
    let locale = &viewer.locale;
    let allowed: Vec<(String, String)> = projects
        .iter()
        .filter(|p| viewer.may_post("/tasks", On::Project(p.id)))
        .map(|p| (p.name.clone(), p.name.clone()))
        .collect();
    if allowed.is_empty() {
        return html! {};
    }
    let error = |field: &str| errors.get(field).map(String::as_str);
    let teams: Vec<(String, String)> = state
        .teams
        .names()
        .into_iter()
        .map(|n| (n.clone(), n))
        .collect();
    let priorities: Vec<(String, String)> = Priority::ALL
        .iter()
        .map(|p| {
            (
                p.as_str().to_string(),
                locale.t(&format!("priority.{}", p.as_str())),
            )
        })
        .collect();
    html! {
        h2 #create { (locale.t("tasks.create")) }
        form.stack method="post" action="/tasks" #create-task novalidate {
            input type="hidden" name="csrf" value=(viewer.csrf());
            (select_with_id("new-project", "project", &locale.t("field.project"), &locale.t("tasks.pick"), &allowed, &form.project, error("project")))
            (select_with_id("new-team", "team", &locale.t("field.team"), &locale.t("tasks.team_auto"), &teams, &form.team, error("team")))
            (select_with_id("new-priority", "priority", &locale.t("field.priority"), &locale.t("tasks.priority_default"), &priorities, &form.priority, error("priority")))
            label for="prompt" {
                (locale.t("field.prompt"))
                textarea #prompt name="prompt" required aria-invalid=[error("prompt").map(|_| "true")] aria-describedby=[error("prompt").map(|_| "prompt-error")] { (form.prompt) }
                (field_error("prompt", error("prompt")))
            }
            div { button.primary type="submit" { (locale.t("tasks.create_button")) } }
        }
    }
}

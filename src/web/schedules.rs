//! `/schedules`: the schedules of the reader's projects with their next and last run;
//! maintainers enable and disable them, operators run one now. The same table sits on each
//! project's page. Changes go through `schedules` (a schedule declared in `jobs/` is
//! changed only there, and says so).

use axum::Form;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use chrono::Utc;
use maud::{Markup, html};
use serde::Deserialize;

use super::WebState;
use super::action::{ButtonForm, Posted};
use super::components::empty;
use super::components::yes_no;
use super::layout::{Nav, Page, PageError};
use super::viewer::Viewer;
use crate::model::{Origin, Schedule};
use crate::permissions::{On, sees, visible_projects};
use crate::schedules::{self, SchedulePatch};

pub async fn list(State(state): State<WebState>, viewer: Viewer) -> Response {
    let locale = &viewer.locale;
    let scope = visible_projects(&viewer.principal);
    let schedules: Vec<Schedule> = match state.store.list_schedules().await {
        Ok(all) => all
            .into_iter()
            .filter(|s| sees(&scope, s.project_id))
            .collect(),
        Err(e) => return PageError(e).into_page(locale),
    };
    let body = html! {
        h1 { (locale.t("nav.schedules")) }
        (schedule_table(&viewer, &schedules, true))
    };
    Page {
        title: locale.t("nav.schedules"),
        nav: Nav::Schedules,
        locale,
        viewer: Some(viewer.signed_in()),
        live: None,
    }
    .render(body)
}

/// The schedules with their timing and, where the reader's role allows, their buttons;
/// `with_project` adds the project column.
pub fn schedule_table(viewer: &Viewer, schedules: &[Schedule], with_project: bool) -> Markup {
    let locale = &viewer.locale;
    if schedules.is_empty() {
        return empty(&locale.t("schedules.none"));
    }
    let now = Utc::now();
    let when = |at: Option<chrono::DateTime<Utc>>| match at {
        Some(at) => {
            html! { time datetime=(at.to_rfc3339()) title=(locale.time(at)) { (locale.time(at)) } }
        }
        None => html! { span.muted { "—" } },
    };
    html! {
        div.table-wrap { table.stack-small.schedule-list {
            thead { tr {
                th scope="col" { (locale.t("projects.name")) }
                @if with_project { th scope="col" { (locale.t("field.project")) } }
                th scope="col" { (locale.t("schedules.cron")) }
                th scope="col" { (locale.t("field.team")) }
                th scope="col" { (locale.t("schedules.next_run")) }
                th scope="col" { (locale.t("schedules.last_run")) }
                th scope="col" { (locale.t("projects.enabled")) }
                th scope="col" { span.visually-hidden { (locale.t("views.actions")) } }
            } }
            tbody { @for schedule in schedules {
                tr data-schedule=(schedule.name) {
                    td { (schedule.name) @if schedule.origin == Origin::File { " " span.muted { (locale.t("origin.file")) } } }
                    @if with_project { td data-label=(locale.t("field.project")) { a href={ "/projects/" (schedule.project) } { (schedule.project) } } }
                    td data-label=(locale.t("schedules.cron")) { code { (schedule.cron) } " " span.muted { (schedule.timezone) } }
                    td data-label=(locale.t("field.team")) { (schedule.team) }
                    td data-label=(locale.t("schedules.next_run")) { @if schedule.enabled { (when(schedule.next_run_at)) } @else { span.muted { "—" } } }
                    td data-label=(locale.t("schedules.last_run")) {
                        (when(schedule.last_fired_at))
                        @if let Some(at) = schedule.last_fired_at { " " span.muted { "(" (locale.ago(at, now)) ")" } }
                    }
                    td data-label=(locale.t("projects.enabled")) { (yes_no(locale, schedule.enabled)) }
                    td.actions { (buttons(viewer, schedule)) }
                }
            } }
        } }
    }
}

fn buttons(viewer: &Viewer, schedule: &Schedule) -> Markup {
    let locale = &viewer.locale;
    let maintain = viewer.may_post(
        "/schedules/{name}/enabled",
        On::Project(schedule.project_id),
    ) && schedule.origin == Origin::Api;
    let operate = viewer.may_post("/schedules/{name}/run", On::Project(schedule.project_id));
    html! {
        @if maintain {
            form.inline method="post" action={ "/schedules/" (schedule.name) "/enabled" } {
                input type="hidden" name="csrf" value=(viewer.csrf());
                input type="hidden" name="enabled" value=(if schedule.enabled { "false" } else { "true" });
                button.toggle type="submit" { (locale.t(if schedule.enabled { "schedules.disable" } else { "schedules.enable" })) }
            }
        }
        @if operate {
            form.inline method="post" action={ "/schedules/" (schedule.name) "/run" } {
                input type="hidden" name="csrf" value=(viewer.csrf());
                button.run-now type="submit" { (locale.t("schedules.run_now")) }
            }
        }
    }
}

/// `POST /schedules/{name}/enabled`.
#[derive(Debug, Deserialize)]
pub struct EnabledForm {
    #[serde(default)]
    csrf: Option<String>,
    enabled: bool,
}

pub async fn set_enabled(
    State(state): State<WebState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(form): Form<EnabledForm>,
) -> Response {
    let posted = Posted {
        state: &state,
        viewer: &viewer,
        headers: &headers,
        csrf: form.csrf.as_deref(),
    };
    let work = async {
        let schedule = state.store.schedule(&name).await?;
        viewer.require_form(On::Project(schedule.project_id))?;
        let patch = SchedulePatch {
            enabled: Some(form.enabled),
            ..SchedulePatch::default()
        };
        schedules::update(&state.store, &name, patch)
            .await
            .map(|_| ())
    };
    let back = format!("/schedules#{name}");
    posted
        .act(
            "POST /schedules/{name}/enabled",
            &format!("schedules/{name}"),
            &back,
            work,
        )
        .await
}

pub async fn run_now(
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
    let work = async {
        let schedule = state.store.schedule(&name).await?;
        viewer.require_form(On::Project(schedule.project_id))?;
        let by = &viewer.principal;
        schedules::run_now(&state.store, &name, &by.name, by.id)
            .await
            .map(|_| ())
    };
    posted
        .act(
            "POST /schedules/{name}/run",
            &format!("schedules/{name}"),
            "/schedules",
            work,
        )
        .await
}

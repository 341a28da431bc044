//! The sections of a project's page below its settings: members and their roles,
//! credentials (names and dates, never values), notification channels, schedules, routing
//! rules and recent tasks. Each shows only what the reader's role allows.

use chrono::Utc;
use maud::{Markup, html};

use super::WebState;
use super::components::{danger_button, empty, task_status, yes_no};
use super::i18n::Locale;
use super::overview::short;
use super::project_forms::{self, Forms};
use super::schedules::schedule_table;
use super::viewer::Viewer;
use crate::error::Result;
use crate::model::{
    Credential, NotificationChannel, Project, ProjectMember, Role, RoutingRule, TaskSearch,
};
use crate::permissions::{On, Permission, visible_projects};

/// Recent tasks shown on a project's page.
const RECENT: i64 = 10;

/// Every section below the settings, read for `viewer`; those who maintain the project also
/// get the credential and channel forms (`forms`) and delete buttons.
pub async fn sections(
    state: &WebState,
    viewer: &Viewer,
    project: &Project,
    forms: &Forms,
) -> Result<Markup> {
    let store = &state.store;
    let members = store.project_members(project.id).await?;
    let credentials = store.list_credentials(Some(project.id)).await?;
    let role = if viewer.may(Permission::Maintain, project.id) {
        Role::Operator
    } else {
        Role::Viewer
    };
    let channels: Vec<NotificationChannel> = store
        .channels(project.id)
        .await?
        .into_iter()
        .map(|channel| crate::notify::shown_to(channel, role))
        .collect();
    let schedules: Vec<_> = store
        .list_schedules()
        .await?
        .into_iter()
        .filter(|s| s.project_id == project.id)
        .collect();
    let rules: Vec<RoutingRule> = store
        .list_routing_rules()
        .await?
        .into_iter()
        .filter(|r| r.spec.project().is_none_or(|p| p == project.name))
        .collect();
    let search = TaskSearch {
        project_id: Some(project.id),
        limit: RECENT,
        ..TaskSearch::default()
    };
    let recent = store
        .search_tasks(&search, &visible_projects(&viewer.principal))
        .await?;
    let locale = &viewer.locale;
    let edits = viewer
        .may_post("/projects/{name}/credentials", On::Project(project.id))
        .then_some(project);
    Ok(html! {
        h2 #members { (locale.t("projects.members")) }
        (member_table(locale, &members))
        h2 #credentials { (locale.t("projects.credentials")) }
        (credential_table(viewer, edits, &credentials))
        @if let Some(project) = edits { (project_forms::credential_form(viewer, project, forms)) }
        h2 #channels { (locale.t("projects.channels")) }
        (channel_table(viewer, edits, &channels))
        @if let Some(project) = edits {
            (project_forms::channel_form(viewer, project, forms, &credentials))
        }
        h2 #schedules { (locale.t("nav.schedules")) }
        (schedule_table(viewer, &schedules, false))
        h2 #rules { (locale.t("projects.rules")) }
        (rule_table(locale, &rules))
        h2 #recent { (locale.t("projects.recent")) }
        (recent_tasks(locale, &recent))
        p { a href={ "/tasks?project=" (project.name) } { (locale.t("projects.all_tasks")) } }
    })
}

fn member_table(locale: &Locale, members: &[ProjectMember]) -> Markup {
    if members.is_empty() {
        return empty(&locale.t("projects.no_members"));
    }
    html! {
        div.table-wrap { table.stack-small #member-list {
            thead { tr {
                th scope="col" { (locale.t("projects.login")) }
                th scope="col" { (locale.t("projects.role")) }
            } }
            tbody { @for member in members {
                tr data-login=(member.login) {
                    td { (member.login) }
                    td data-label=(locale.t("projects.role")) {
                        (locale.t(&format!("role.{}", member.role.as_str())))
                        @if member.every_project { " " span.muted { (locale.t("projects.every_project")) } }
                    }
                }
            } }
        } }
    }
}

fn credential_table(
    viewer: &Viewer,
    edits: Option<&Project>,
    credentials: &[Credential],
) -> Markup {
    let locale = &viewer.locale;
    if credentials.is_empty() {
        return empty(&locale.t("projects.no_credentials"));
    }
    let now = Utc::now();
    html! {
        div.table-wrap { table.stack-small #credential-list {
            thead { tr {
                th scope="col" { (locale.t("projects.name")) }
                th scope="col" { (locale.t("projects.kind")) }
                th scope="col" { (locale.t("projects.env_var")) }
                th scope="col" { (locale.t("projects.updated")) }
                th scope="col" { (locale.t("projects.last_used")) }
                @if edits.is_some() { th scope="col" { span.visually-hidden { (locale.t("projects.actions")) } } }
            } }
            tbody { @for credential in credentials {
                tr data-name=(credential.name) {
                    td { (credential.name) }
                    td data-label=(locale.t("projects.kind")) { code { (credential.kind.as_str()) } }
                    td data-label=(locale.t("projects.env_var")) { code { (credential.env_var) } }
                    td data-label=(locale.t("projects.updated")) { (locale.ago(credential.updated_at, now)) }
                    td data-label=(locale.t("projects.last_used")) {
                        @match credential.last_used_at {
                            Some(at) => (locale.ago(at, now)),
                            None => span.muted { (locale.t("projects.never")) },
                        }
                    }
                    @if let Some(project) = edits {
                        td.actions { (danger_button(viewer.csrf(),
                            &format!("/projects/{}/credentials/{}/delete", project.name, credential.id),
                            &locale.t("projects.delete"))) }
                    }
                }
            } }
        } }
    }
}

fn channel_table(
    viewer: &Viewer,
    edits: Option<&Project>,
    channels: &[NotificationChannel],
) -> Markup {
    let locale = &viewer.locale;
    if channels.is_empty() {
        return empty(&locale.t("projects.no_channels"));
    }
    html! {
        div.table-wrap { table.stack-small #channel-list {
            thead { tr {
                th scope="col" { (locale.t("projects.kind")) }
                th scope="col" { (locale.t("projects.target")) }
                th scope="col" { (locale.t("projects.credential")) }
                th scope="col" { (locale.t("projects.events")) }
                th scope="col" { (locale.t("projects.enabled")) }
                @if edits.is_some() { th scope="col" { span.visually-hidden { (locale.t("projects.actions")) } } }
            } }
            tbody { @for channel in channels {
                tr data-id=(channel.id) {
                    td { (channel.kind.as_str()) }
                    td data-label=(locale.t("projects.target")) { code.wrap { (channel.target.as_deref().unwrap_or("")) } }
                    td data-label=(locale.t("projects.credential")) { (channel.credential) }
                    td data-label=(locale.t("projects.events")) {
                        @for event in &channel.events { span.tag { (event.as_str()) } " " }
                    }
                    td data-label=(locale.t("projects.enabled")) { (yes_no(locale, channel.enabled)) }
                    @if let Some(project) = edits {
                        td.actions { (danger_button(viewer.csrf(),
                            &format!("/projects/{}/channels/{}/delete", project.name, channel.id),
                            &locale.t("projects.delete"))) }
                    }
                }
            } }
        } }
    }
}

fn rule_table(locale: &Locale, rules: &[RoutingRule]) -> Markup {
    if rules.is_empty() {
        return empty(&locale.t("projects.no_rules"));
    }
    html! {
        div.table-wrap { table.stack-small #rule-list {
            thead { tr {
                th scope="col" { (locale.t("projects.name")) }
                th scope="col" { (locale.t("projects.kind")) }
                th.num scope="col" { (locale.t("projects.position")) }
                th scope="col" { (locale.t("projects.enabled")) }
                th scope="col" { (locale.t("projects.origin")) }
            } }
            tbody { @for rule in rules {
                tr data-name=(rule.spec.name()) {
                    td { (rule.spec.name()) @if rule.spec.project().is_none() { " " span.muted { (locale.t("projects.every_project")) } } }
                    td data-label=(locale.t("projects.kind")) { (rule.spec.kind()) }
                    td.num data-label=(locale.t("projects.position")) { (rule.spec.position()) }
                    td data-label=(locale.t("projects.enabled")) { (yes_no(locale, rule.spec.enabled())) }
                    td data-label=(locale.t("projects.origin")) {
                        (locale.t(&format!("origin.{}", rule.origin.as_str())))
                        @if let Some(file) = &rule.file { " " code { (file) } }
                    }
                }
            } }
        } }
    }
}

fn recent_tasks(locale: &Locale, tasks: &[crate::model::Task]) -> Markup {
    if tasks.is_empty() {
        return empty(&locale.t("tasks.none"));
    }
    let now = Utc::now();
    html! {
        ul.plain #recent-tasks { @for task in tasks {
            li {
                (task_status(locale, task.status)) " "
                a href={ "/tasks/" (task.id) } { "#" (task.id) " " (short(&task.prompt)) }
                " " span.muted { (locale.ago(task.created_at, now)) }
            }
        } }
    }
}

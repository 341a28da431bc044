//! `/audit`: the audit log (admin only, as on the API), newest first, filtered by project,
//! actor, action and days, paged by cursor; a filter that does not parse is shown at its
//! field.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, NaiveDate, Utc};
use maud::{Markup, html};
use serde::Deserialize;

use super::WebState;
use super::components::{empty, field_error, list_pager, list_url};
use super::i18n::Locale;
use super::layout::{Nav, Page, PageError};
use super::viewer::Viewer;
use crate::error::{Error, Result};
use crate::model::{AuditEntry, AuditSearch};
use crate::permissions::{On, Permission, authorize};

/// Entries on one page.
const PAGE_SIZE: i64 = 50;

#[derive(Debug, Default, Clone, Deserialize)]
pub struct AuditQuery {
    #[serde(default)]
    project: String,
    #[serde(default)]
    actor: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    before: Option<i64>,
}

pub async fn list(
    State(state): State<WebState>,
    viewer: Viewer,
    Query(query): Query<AuditQuery>,
) -> Response {
    let locale = &viewer.locale;
    if let Err(e) = authorize(&viewer.principal, Permission::Admin, On::EveryProject) {
        return PageError(e).into_page(locale);
    }
    let outcome = async {
        match search_of(&state, &query, locale).await {
            Ok(search) => Ok((state.store.search_audit(&search).await?, None)),
            Err(Error::Invalid { field, message }) => Ok((Vec::new(), Some((field, message)))),
            Err(e) => Err(e),
        }
    };
    let (entries, error) = match outcome.await {
        Ok(found) => found,
        Err(e) => return PageError(e).into_page(locale),
    };
    let status = if error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let body = html! {
        h1 { (locale.t("nav.audit")) }
        (filters(locale, &query, error.as_ref()))
        @if entries.is_empty() {
            (empty(&locale.t("audit.none")))
        } @else {
            (entry_table(locale, &entries))
        }
        (list_pager(locale, entries.len(), entries.last().map(|e| e.id), query.before, PAGE_SIZE, |before| page_url(&query, before)))
    };
    Page {
        title: locale.t("nav.audit"),
        nav: Nav::Audit,
        locale,
        viewer: Some(viewer.signed_in()),
        live: None,
    }
    .render_with(status, body)
}

/// The filters as a store search, or the field that does not parse.
async fn search_of(state: &WebState, query: &AuditQuery, locale: &Locale) -> Result<AuditSearch> {
    let day = |field: &str, text: &str| -> Result<Option<DateTime<Utc>>> {
        if text.is_empty() {
            return Ok(None);
        }
        let date = NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .map_err(|_| Error::invalid(field, locale.t("tasks.bad_date")))?;
        Ok(date
            .and_hms_opt(0, 0, 0)
            .and_then(|t| t.and_local_timezone(locale.zone).earliest())
            .map(|t| t.with_timezone(&Utc)))
    };
    let project = query.project.trim();
    let project_id = match project {
        "" => None,
        name => Some(
            state
                .store
                .find_project(name)
                .await?
                .ok_or_else(|| Error::invalid("project", locale.t("tasks.unknown_project")))?
                .id,
        ),
    };
    let text = |value: &str| (!value.trim().is_empty()).then(|| value.trim().to_string());
    Ok(AuditSearch {
        project: text(project),
        project_id,
        actor: text(&query.actor),
        action: text(&query.action),
        since: day("from", &query.from)?,
        until: day("to", &query.to)?.map(|d| d + chrono::Duration::days(1)),
        before_id: query.before,
        limit: PAGE_SIZE,
    })
}

fn page_url(query: &AuditQuery, before: Option<i64>) -> String {
    let filters = [
        ("project", query.project.as_str()),
        ("actor", &query.actor),
        ("action", &query.action),
        ("from", &query.from),
        ("to", &query.to),
    ];
    list_url("/audit", &filters, before)
}

fn filters(locale: &Locale, query: &AuditQuery, error: Option<&(String, String)>) -> Markup {
    let error_of = |field: &str| error.filter(|(f, _)| f == field).map(|(_, m)| m.as_str());
    let field = |name: &str, label: &str, kind: &str, value: &str| {
        html! {
            label for=(name) {
                (label)
                input #(name) type=(kind) name=(name) value=(value)
                    aria-invalid=[error_of(name).map(|_| "true")]
                    aria-describedby=[error_of(name).map(|_| format!("{name}-error"))];
                (field_error(name, error_of(name)))
            }
        }
    };
    html! {
        form.filters method="get" action="/audit" role="search" #audit-filters {
            (field("project", &locale.t("field.project"), "text", &query.project))
            (field("actor", &locale.t("audit.actor"), "text", &query.actor))
            (field("action", &locale.t("audit.action"), "search", &query.action))
            (field("from", &locale.t("audit.from"), "date", &query.from))
            (field("to", &locale.t("audit.to"), "date", &query.to))
            button type="submit" { (locale.t("list.filter")) }
        }
    }
}

fn entry_table(locale: &Locale, entries: &[AuditEntry]) -> Markup {
    html! {
        div.table-wrap { table.stack-small #audit-list {
            thead { tr {
                th scope="col" { (locale.t("audit.at")) }
                th scope="col" { (locale.t("audit.actor")) }
                th scope="col" { (locale.t("audit.action")) }
                th scope="col" { (locale.t("audit.target")) }
                th scope="col" { (locale.t("audit.outcome")) }
                th scope="col" { (locale.t("audit.channel")) }
            } }
            tbody { @for entry in entries {
                tr data-id=(entry.id) data-outcome=(entry.outcome) {
                    td { time datetime=(entry.at.to_rfc3339()) { (locale.time(entry.at)) } }
                    td data-label=(locale.t("audit.actor")) { (entry.principal_name) }
                    td data-label=(locale.t("audit.action")) { code.wrap { (entry.action) } }
                    td data-label=(locale.t("audit.target")) { span.wrap { (entry.target) } }
                    td data-label=(locale.t("audit.outcome")) { (entry.outcome) }
                    td data-label=(locale.t("audit.channel")) {
                        (entry.detail.get("channel").and_then(|c| c.as_str()).unwrap_or("—"))
                        " " span.muted { (entry.source) }
                    }
                }
            } }
        } }
    }
}

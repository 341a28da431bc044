//! `/account`: the reader's own settings (the language of the pages and their time zone),
//! their live sign-in sessions (each ended here, `sessions::revoke`) and their API tokens
//! (revoked here, `auth::revoke_token`; created with the API or `aiops token create`), and
//! the applications they let act as them through OAuth (Claude's connectors; revoked here,
//! `oauth::revoke_own_grant`).

use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::WebState;
use super::action::{ButtonForm, Posted};
use super::components::{badge, danger_button, field_error};
use super::layout::{Nav, Page, PageError};
use super::people::token_table;
use super::viewer::Viewer;
use crate::error::Error;
use crate::model::{Language, Preferences};
use crate::oauth;
use crate::sessions;

#[derive(Debug, Default, Deserialize)]
pub struct SettingsForm {
    #[serde(default)]
    language: String,
    #[serde(default)]
    time_zone: String,
    #[serde(default)]
    csrf: Option<String>,
}

pub async fn show(State(state): State<WebState>, viewer: Viewer) -> Response {
    let current = match viewer.principal.id {
        Some(id) => state.store.preferences(id).await.unwrap_or_default(),
        None => Preferences::default(),
    };
    match own_sections(&state, &viewer).await {
        Ok(own) => render(&viewer, &current, None, StatusCode::OK, own),
        Err(e) => PageError(e).into_page(&viewer.locale),
    }
}

/// The reader's sessions and tokens.
async fn own_sections(state: &WebState, viewer: &Viewer) -> crate::Result<Markup> {
    let locale = &viewer.locale;
    let current = Some(viewer.session.id);
    let sessions = sessions::list(&state.store, &state.config, &viewer.principal, current).await?;
    let tokens = match viewer.principal.id {
        Some(id) => state.store.list_tokens_of(Some(id)).await?,
        None => Vec::new(),
    };
    let apps = oauth::grants_of(&state.store, &viewer.principal).await?;
    let now = chrono::Utc::now();
    Ok(html! {
        h2 #sessions { (locale.t("own.sessions")) }
        div.table-wrap { table.stack-small #session-list {
            thead { tr {
                th scope="col" { (locale.t("own.signed_in")) }
                th scope="col" { (locale.t("own.from")) }
                th scope="col" { (locale.t("users.last_seen")) }
                th scope="col" { span.visually-hidden { (locale.t("views.actions")) } }
            } }
            tbody { @for session in &sessions {
                tr data-session=(session.id) {
                    td { (locale.time(session.created_at)) " " span.muted { (session.method.as_str()) } }
                    td data-label=(locale.t("own.from")) { (session.client_addr) " " span.muted.wrap { (session.user_agent) } }
                    td data-label=(locale.t("users.last_seen")) { (locale.ago(session.last_seen_at, now)) }
                    td.actions {
                        @if session.current { (badge("running", &locale.t("own.this_session"))) " " }
                        (danger_button(viewer.csrf(), &format!("/account/sessions/{}/revoke", session.id),
                            &locale.t("own.end_session")))
                    }
                }
            } }
        } }
        h2 #tokens { (locale.t("users.tokens")) }
        (token_table(viewer, &tokens, "/account"))
        h2 #apps { (locale.t("oauth.apps")) }
        @if apps.is_empty() {
            p.muted { (locale.t("oauth.no_apps")) }
        } @else {
            div.table-wrap { table.stack-small #app-list {
                thead { tr {
                    th scope="col" { (locale.t("oauth.app")) }
                    th scope="col" { (locale.t("oauth.scopes")) }
                    th scope="col" { (locale.t("users.last_seen")) }
                    th scope="col" { span.visually-hidden { (locale.t("views.actions")) } }
                } }
                tbody { @for app in &apps {
                    tr data-grant=(app.id) {
                        td { (app.client_name) " " span.muted { (locale.time(app.created_at)) } }
                        td data-label=(locale.t("oauth.scopes")) { (app.scopes) }
                        td data-label=(locale.t("users.last_seen")) { (locale.ago(app.last_used_at, now)) }
                        td.actions {
                            (danger_button(viewer.csrf(), &format!("/account/apps/{}/revoke", app.id),
                                &locale.t("oauth.revoke")))
                        }
                    }
                } }
            } }
        }
    })
}

/// `POST /account/apps/{id}/revoke`: ends an application's access (every token of the grant).
pub async fn revoke_app(
    State(state): State<WebState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Form(form): Form<ButtonForm>,
) -> Response {
    let posted = Posted {
        state: &state,
        viewer: &viewer,
        headers: &headers,
        csrf: form.csrf.as_deref(),
    };
    let work = oauth::revoke_own_grant(&state.store, &viewer.principal, id);
    let target = format!("oauth/grants/{id}");
    posted
        .act(
            "POST /account/apps/{id}/revoke",
            &target,
            "/account#apps",
            work,
        )
        .await
}

/// `POST /account/sessions/{id}/revoke`: ends one of the reader's sessions (this one too).
pub async fn end_session(
    State(state): State<WebState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Form(form): Form<ButtonForm>,
) -> Response {
    let posted = Posted {
        state: &state,
        viewer: &viewer,
        headers: &headers,
        csrf: form.csrf.as_deref(),
    };
    let work = sessions::revoke(&state.store, &viewer.principal, id);
    let target = format!("sessions/{id}");
    posted
        .act(
            "POST /account/sessions/{id}/revoke",
            &target,
            "/account#sessions",
            work,
        )
        .await
}

pub async fn save(
    State(state): State<WebState>,
    viewer: Viewer,
    headers: HeaderMap,
    Form(form): Form<SettingsForm>,
) -> Response {
    if let Err(e) = viewer.check_declared_form(&headers, form.csrf.as_deref()) {
        return PageError(e).into_page(&viewer.locale);
    }
    let wanted = Preferences {
        language: (!form.language.is_empty()).then(|| form.language.clone()),
        time_zone: (!form.time_zone.trim().is_empty()).then(|| form.time_zone.trim().to_string()),
    };
    let checked = check(&viewer, &wanted);
    let outcome = match (checked, viewer.principal.id) {
        (Err(e), _) => Err(e),
        (Ok(()), Some(id)) => state.store.set_preferences(id, &wanted).await,
        (Ok(()), None) => Err(Error::Forbidden(
            "only a signed-in user has settings".into(),
        )),
    };
    match outcome {
        Ok(()) => {
            viewer
                .audit(&state, "POST /account", "account", "200")
                .await;
            Redirect::to("/account?saved=1").into_response()
        }
        Err(Error::Invalid { field, message }) => match own_sections(&state, &viewer).await {
            Ok(own) => render(
                &viewer,
                &wanted,
                Some((field, message)),
                StatusCode::UNPROCESSABLE_ENTITY,
                own,
            ),
            Err(e) => PageError(e).into_page(&viewer.locale),
        },
        Err(e) => PageError(e).into_page(&viewer.locale),
    }
}

fn check(viewer: &Viewer, wanted: &Preferences) -> crate::Result<()> {
    if let Some(language) = &wanted.language {
        language.parse::<Language>()?;
    }
    if let Some(zone) = &wanted.time_zone
        && zone.parse::<chrono_tz::Tz>().is_err()
    {
        return Err(Error::invalid(
            "time_zone",
            viewer.locale.t("account.bad_zone"),
        ));
    }
    Ok(())
}

fn render(
    viewer: &Viewer,
    current: &Preferences,
    error: Option<(String, String)>,
    status: StatusCode,
    own: Markup,
) -> Response {
    let locale = &viewer.locale;
    let error_of = |field: &str| {
        error
            .as_ref()
            .filter(|(f, _)| f == field)
            .map(|(_, m)| m.as_str())
    };
    let language = current.language.as_deref().unwrap_or("");
    let body = html! {
        h1 { (locale.t("account.title")) }
        dl.facts {
            div { dt { (locale.t("account.login")) } dd { (viewer.principal.name) } }
            div { dt { (locale.t("account.roles")) } dd {
                @if viewer.principal.admin { (locale.t("account.admin")) }
                @for m in &viewer.principal.memberships {
                    (m.project.as_deref().unwrap_or("*")) ": " (m.role.as_str()) " "
                }
            } }
        }
        form.stack method="post" action="/account" #settings novalidate {
            input type="hidden" name="csrf" value=(viewer.csrf());
            label for="language" {
                (locale.t("account.language"))
                select #language name="language" aria-invalid=[error_of("language").map(|_| "true")] {
                    option value="" selected[language.is_empty()] { (locale.t("account.language_auto")) }
                    option value="en" selected[language == "en"] { "English" }
                    option value="ko" selected[language == "ko"] { "한국어" }
                }
                (field_error("language", error_of("language")))
            }
            label for="time_zone" {
                (locale.t("account.time_zone"))
                input #time_zone name="time_zone" value=(current.time_zone.as_deref().unwrap_or("")) placeholder="Asia/Seoul"
                    aria-invalid=[error_of("time_zone").map(|_| "true")] aria-describedby=[error_of("time_zone").map(|_| "time_zone-error")];
                (field_error("time_zone", error_of("time_zone")))
            }
            div { button.primary type="submit" { (locale.t("account.save")) } }
        }
        (own)
    };
    Page {
        title: locale.t("account.title"),
        nav: Nav::Account,
        locale,
        viewer: Some(viewer.signed_in()),
        live: None,
    }
    .render_with(status, body)
}

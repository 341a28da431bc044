//! `/users` (admin only, as on the API): every user and service account with their role and
//! status, disabled and enabled again (`users::set_status`), their sessions ended
//! (`sessions::end_all_of`); every token, revoked (`auth::revoke_token`). The token table
//! is shared with the reader's own account page.

use axum::Form;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use chrono::Utc;
use maud::{Markup, html};
use serde::Deserialize;

use super::WebState;
use super::action::{ButtonForm, Posted};
use super::components::{badge, empty};
use super::layout::{Nav, Page, PageError};
use super::viewer::Viewer;
use crate::error::Result;
use crate::model::{ApiToken, User, UserStatus};
use crate::permissions::{On, Permission, authorize};

/// Whether the reader is an admin acting for every project.
fn is_admin(viewer: &Viewer) -> bool {
    admin(viewer).is_ok()
}

fn admin(viewer: &Viewer) -> Result<()> {
    authorize(&viewer.principal, Permission::Admin, On::EveryProject)
}

pub async fn list(State(state): State<WebState>, viewer: Viewer) -> Response {
    let locale = &viewer.locale;
    let outcome = async {
        admin(&viewer)?;
        Ok::<_, crate::Error>((
            state.store.list_users().await?,
            state.store.list_tokens().await?,
        ))
    };
    let (users, tokens) = match outcome.await {
        Ok(found) => found,
        Err(e) => return PageError(e).into_page(locale),
    };
    let body = html! {
        h1 { (locale.t("nav.users")) }
        h2 #users { (locale.t("users.people")) }
        (user_table(&viewer, &users))
        h2 #tokens { (locale.t("users.tokens")) }
        (token_table(&viewer, &tokens, "/users"))
    };
    Page {
        title: locale.t("nav.users"),
        nav: Nav::Users,
        locale,
        viewer: Some(viewer.signed_in()),
        live: None,
    }
    .render(body)
}

fn user_table(viewer: &Viewer, users: &[User]) -> Markup {
    let locale = &viewer.locale;
    let now = Utc::now();
    html! {
        div.table-wrap { table.stack-small #user-list {
            thead { tr {
                th scope="col" { (locale.t("projects.login")) }
                th scope="col" { (locale.t("projects.kind")) }
                th scope="col" { (locale.t("projects.role")) }
                th scope="col" { (locale.t("field.status")) }
                th scope="col" { (locale.t("users.last_seen")) }
                th scope="col" { span.visually-hidden { (locale.t("views.actions")) } }
            } }
            tbody { @for user in users {
                tr data-login=(user.login) data-status=(user.status.as_str()) {
                    td { (user.login) @if user.display_name != user.login && !user.display_name.is_empty() { " " span.muted { (user.display_name) } } }
                    td data-label=(locale.t("projects.kind")) { (locale.t(&format!("users.kind_{}", user.kind.as_str()))) }
                    td data-label=(locale.t("projects.role")) { (user.global_role.as_str()) }
                    td data-label=(locale.t("field.status")) { (badge(user.status.as_str(), &locale.t(&format!("users.status_{}", user.status.as_str())))) }
                    td data-label=(locale.t("users.last_seen")) {
                        @match user.last_seen_at { Some(at) => (locale.ago(at, now)), None => span.muted { (locale.t("projects.never")) } }
                    }
                    td.actions {
                        @if Some(user.id) != viewer.principal.id {
                            form.inline method="post" action={ "/users/" (user.login) "/status" } {
                                input type="hidden" name="csrf" value=(viewer.csrf());
                                @if user.status == UserStatus::Active {
                                    input type="hidden" name="status" value="disabled";
                                    button.danger type="submit" { (locale.t("users.disable")) }
                                } @else {
                                    input type="hidden" name="status" value="active";
                                    button type="submit" { (locale.t("users.enable")) }
                                }
                            }
                            form.inline method="post" action={ "/users/" (user.login) "/sign-out" } {
                                input type="hidden" name="csrf" value=(viewer.csrf());
                                button type="submit" { (locale.t("users.end_sessions")) }
                            }
                        }
                    }
                }
            } }
        } }
    }
}

/// Tokens with their scopes, project, expiry and use; a revoke button on each live one
/// (`back`: the page the button returns to).
pub fn token_table(viewer: &Viewer, tokens: &[ApiToken], back: &str) -> Markup {
    let locale = &viewer.locale;
    if tokens.is_empty() {
        return empty(&locale.t("users.no_tokens"));
    }
    let now = Utc::now();
    html! {
        div.table-wrap { table.stack-small.token-list {
            thead { tr {
                th scope="col" { (locale.t("projects.name")) }
                th scope="col" { (locale.t("users.owner")) }
                th scope="col" { (locale.t("users.scopes")) }
                th scope="col" { (locale.t("field.project")) }
                th scope="col" { (locale.t("users.expires")) }
                th scope="col" { (locale.t("projects.last_used")) }
                th scope="col" { span.visually-hidden { (locale.t("views.actions")) } }
            } }
            tbody { @for token in tokens {
                tr data-token=(token.name) {
                    td { (token.name) " " code.muted { (token.prefix) "…" } }
                    td data-label=(locale.t("users.owner")) { (token.owner) }
                    td data-label=(locale.t("users.scopes")) { (token.scopes.to_string()) }
                    td data-label=(locale.t("field.project")) { (token.project.as_deref().unwrap_or("*")) }
                    td data-label=(locale.t("users.expires")) {
                        @match token.expires_at { Some(at) => (locale.time(at)), None => span.muted { "—" } }
                    }
                    td data-label=(locale.t("projects.last_used")) {
                        @match token.last_used_at { Some(at) => (locale.ago(at, now)), None => span.muted { (locale.t("projects.never")) } }
                    }
                    td.actions {
                        @if token.revoked_at.is_some() {
                            (badge("cancelled", &locale.t("users.revoked")))
                        } @else {
                            form.inline method="post" action={ "/tokens/" (token.name) "/revoke" } {
                                input type="hidden" name="csrf" value=(viewer.csrf());
                                input type="hidden" name="back" value=(back);
                                button.danger type="submit" { (locale.t("users.revoke")) }
                            }
                        }
                    }
                }
            } }
        } }
    }
}

/// `POST /users/{login}/status`.
#[derive(Debug, Deserialize)]
pub struct StatusForm {
    #[serde(default)]
    csrf: Option<String>,
    status: UserStatus,
}

pub async fn set_status(
    State(state): State<WebState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path(login): Path<String>,
    Form(form): Form<StatusForm>,
) -> Response {
    let posted = Posted {
        state: &state,
        viewer: &viewer,
        headers: &headers,
        csrf: form.csrf.as_deref(),
    };
    let work = async {
        crate::users::set_status(&state.store, &login, form.status)
            .await
            .map(|_| ())
    };
    posted
        .act(
            "POST /users/{login}/status",
            &format!("users/{login}"),
            "/users",
            work,
        )
        .await
}

pub async fn end_sessions(
    State(state): State<WebState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path(login): Path<String>,
    Form(form): Form<ButtonForm>,
) -> Response {
    let posted = Posted {
        state: &state,
        viewer: &viewer,
        headers: &headers,
        csrf: form.csrf.as_deref(),
    };
    let work = async {
        crate::sessions::end_all_of(&state.store, &login)
            .await
            .map(|_| ())
    };
    posted
        .act(
            "POST /users/{login}/sign-out",
            &format!("users/{login}"),
            "/users",
            work,
        )
        .await
}

/// `POST /tokens/{name}/revoke`: the page to return to.
#[derive(Debug, Deserialize)]
pub struct RevokeForm {
    #[serde(default)]
    csrf: Option<String>,
    #[serde(default)]
    back: String,
}

pub async fn revoke_token(
    State(state): State<WebState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(form): Form<RevokeForm>,
) -> Response {
    let back = if form.back == "/users" {
        "/users#tokens"
    } else {
        "/account#tokens"
    };
    let posted = Posted {
        state: &state,
        viewer: &viewer,
        headers: &headers,
        csrf: form.csrf.as_deref(),
    };
    let work =
        crate::auth::revoke_token(&state.store, viewer.principal.id, is_admin(&viewer), &name);
    posted
        .act(
            "POST /tokens/{name}/revoke",
            &format!("tokens/{name}"),
            back,
            work,
        )
        .await
}

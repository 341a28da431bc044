//! `/approvals/{token}`: the page a notification links to. The signed token opens one
//! approval and nothing else, until it expires or the approval is decided. What the link
//! may do is the project's `approval_links` setting: `link` (the link alone decides, as
//! "via link sent to <channel>", its form protected by a double-submit CSRF cookie) or
//! `sign_in` (the default: deciding needs a signed-in person with the decide permission on
//! the project, with their session's CSRF token). The page never asks for a name; every
//! POST must come from this site (`Origin`).

use std::net::SocketAddr;

use axum::Form;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
use maud::{Markup, html};
use serde::Deserialize;

use super::WebState;
use super::approval_view::{self, DecideForm};
use super::i18n::Locale;
use super::layout::{Nav, Page, PageError};
use super::overview::short;
use super::viewer::{MaybeViewer, Viewer, cookie, same_origin, urlencode};
use crate::approvals::{self, Decider, DecisionRequest, LinkError, LinkSigner};
use crate::error::{Error, Result};
use crate::model::{ApprovalLinks, ApprovalRecord, ApprovalStatus, Channel, Decision};
use crate::permissions::Permission;
use crate::signing::tokens_equal;

const CSRF_COOKIE: &str = "aiops_link_csrf";

pub fn router() -> axum::Router<WebState> {
    axum::Router::new().route("/approvals/{token}", axum::routing::get(show).post(decide))
}

/// The decision form as posted.
#[derive(Debug, Deserialize)]
struct DecisionForm {
    decision: String,
    #[serde(default)]
    comment: String,
    csrf: String,
}

/// How the reader of a link may decide, if at all.
enum Right {
    /// The link decides (`link` mode).
    Link,
    /// A signed-in person allowed to decide.
    Person,
    /// Signed in, without the decide permission on the project.
    NotAllowed,
    /// Not signed in, and the project wants a person.
    SignInFirst,
}

async fn right_of(state: &WebState, viewer: Option<&Viewer>, project_id: i64) -> Result<Right> {
    if state.store.approval_links(project_id).await? == ApprovalLinks::Link {
        return Ok(Right::Link);
    }
    Ok(match viewer {
        Some(viewer) if viewer.may(Permission::Decide, project_id) => Right::Person,
        Some(_) => Right::NotAllowed,
        None => Right::SignInFirst,
    })
}

async fn show(
    State(state): State<WebState>,
    MaybeViewer(viewer, locale): MaybeViewer,
    Path(token): Path<String>,
) -> Response {
    let page = async {
        let approval = open_link(&state, &token).await?;
        if approval.status != ApprovalStatus::Pending {
            return Ok(decided_page(
                &state,
                &locale,
                viewer.as_ref(),
                &approval,
                StatusCode::GONE,
            )
            .await);
        }
        let fail = |e: Error| PageError(e).into_page(&locale);
        let task = state.store.task(approval.task_id).await.map_err(fail)?;
        let project_id = state.store.project(&task.project).await.map_err(fail)?.id;
        let snapshot = state
            .store
            .approval_snapshot(approval.id)
            .await
            .map_err(fail)?;
        let right = right_of(&state, viewer.as_ref(), project_id)
            .await
            .map_err(fail)?;
        let link_csrf = hex::encode(rand::random::<[u8; 32]>());
        let form = match (&right, viewer.as_ref()) {
            (Right::Link, _) => Some(DecideForm {
                action: format!("/approvals/{token}"),
                hidden: vec![("csrf", link_csrf.clone())],
                error: None,
                comment: String::new(),
            }),
            (Right::Person, Some(viewer)) => Some(DecideForm {
                action: format!("/approvals/{token}"),
                hidden: vec![("csrf", viewer.csrf().to_string())],
                error: None,
                comment: String::new(),
            }),
            _ => None,
        };
        let body = html! {
            h1 { (locale.t("link.title")) }
            p #facts { strong { (task.project) } " · #" (task.id) " " (short(&task.prompt)) " · " (task.team) }
            (right_note(&locale, &right, &token))
            (approval_view::approval(&locale, &approval, Some(&snapshot), form))
        };
        let mut response = Page {
            title: locale.t("link.title"),
            nav: Nav::None,
            locale: &locale,
            viewer: viewer.as_ref().map(Viewer::signed_in),
            live: None,
        }
        .render(body);
        if matches!(right, Right::Link) {
            let cookie = format!(
                "{CSRF_COOKIE}={link_csrf}; Path=/approvals; HttpOnly; SameSite=Strict; Max-Age=86400"
            );
            if let Ok(value) = HeaderValue::from_str(&cookie) {
                response.headers_mut().insert(header::SET_COOKIE, value);
            }
        }
        Ok::<_, Response>(response)
    };
    page.await.unwrap_or_else(|r| r)
}

fn right_note(locale: &Locale, right: &Right, token: &str) -> Markup {
    html! {
        @match right {
            Right::Link => p.notice { (locale.t("link.decides")) },
            Right::Person => {},
            Right::NotAllowed => p.notice.error #not-allowed { (locale.t("link.not_allowed")) },
            Right::SignInFirst => p.notice #sign-in-first {
                (locale.t("link.sign_in_first")) " "
                a href={ "/sign-in?next=" (urlencode(&format!("/approvals/{token}"))) } #sign-in-link { (locale.t("link.sign_in")) }
            },
        }
    }
}

async fn decide(
    State(state): State<WebState>,
    MaybeViewer(viewer, locale): MaybeViewer,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(token): Path<String>,
    headers: HeaderMap,
    form: std::result::Result<Form<DecisionForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let outcome = async {
        same_origin(&headers).map_err(|e| PageError(e).into_page(&locale))?;
        let approval = open_link(&state, &token).await?;
        let Ok(Form(form)) = form else {
            return Err(
                PageError(Error::BadRequest(locale.t("link.incomplete"))).into_page(&locale)
            );
        };
        let decider = decider_for(
            &state,
            viewer.as_ref(),
            &locale,
            &approval,
            &headers,
            &form,
            peer,
        )
        .await?;
        let decision = form
            .decision
            .parse::<Decision>()
            .map_err(|e| PageError(e).into_page(&locale))?;
        let request = DecisionRequest {
            decision,
            comment: Some(form.comment),
        };
        match approvals::decide(&state.store, approval.id, &request, &decider).await {
            Ok(_) => Ok(Redirect::to(&format!("/approvals/{token}")).into_response()),
            Err(Error::Conflict(_)) => match state.store.approval(approval.id).await {
                Ok(current) => Ok(decided_page(
                    &state,
                    &locale,
                    viewer.as_ref(),
                    &current,
                    StatusCode::CONFLICT,
                )
                .await),
                Err(e) => Err(PageError(e).into_page(&locale)),
            },
            Err(e) => Err(PageError(e).into_page(&locale)),
        }
    };
    let response = outcome.await.unwrap_or_else(|r| r);
    super::layout::secure(response)
}

/// How a decision through the link alone is recorded: "via link sent to slack".
fn link_decider(channels: &[String]) -> String {
    if channels.is_empty() {
        "via link".into()
    } else {
        format!("via link sent to {}", channels.join(", "))
    }
}

/// The approval a token opens, or the page that explains why it opens nothing.
async fn open_link(state: &WebState, token: &str) -> std::result::Result<ApprovalRecord, Response> {
    let locale = Locale::default();
    let message = |status: StatusCode, title: &str, text: String| {
        Page {
            title: title.to_string(),
            nav: Nav::None,
            locale: &locale,
            viewer: None,
            live: None,
        }
        .render_with(
            status,
            html! { h1 #message-title { (title) } p #message { (text) } },
        )
    };
    let signer = LinkSigner::new(&state.vault);
    let id = match signer.verify(token, Utc::now()) {
        Ok(id) => id,
        Err(LinkError::Tampered) => {
            return Err(message(StatusCode::FORBIDDEN, "Link not valid", "This approval link was changed or cut short, so it opens nothing. Use the link exactly as it was sent.".into()));
        }
        Err(LinkError::Expired { approval_id, at }) => {
            return Err(match state.store.approval(approval_id).await {
                Ok(approval) if approval.status != ApprovalStatus::Pending => {
                    decided_page(state, &locale, None, &approval, StatusCode::GONE).await
                }
                _ => message(
                    StatusCode::GONE,
                    "Link expired",
                    format!(
                        "This approval link expired at {}. Ask for a new link, or decide from the dashboard's approvals inbox.",
                        locale.time(at)
                    ),
                ),
            });
        }
    };
    state.store.approval(id).await.map_err(|e| match e {
        Error::NotFound(_) => message(
            StatusCode::NOT_FOUND,
            "Approval not found",
            "The approval this link opens no longer exists (its task was deleted).".into(),
        ),
        e => PageError(e).into_page(&locale),
    })
}

/// The page of a link whose approval is already decided: who, how and when, and what for.
async fn decided_page(
    state: &WebState,
    locale: &Locale,
    viewer: Option<&Viewer>,
    approval: &ApprovalRecord,
    status: StatusCode,
) -> Response {
    let task = state.store.task(approval.task_id).await.ok();
    let body = html! {
        h1 { (locale.tf("link.decided_title", &[("id", &approval.id.to_string())])) }
        @if let Some(task) = &task {
            p { strong { (task.project) } " · #" (task.id) " " (short(&task.prompt)) " · " (task.team) }
        }
        div.notice #decided {
            p {
                strong { (approval.decision.map_or(approval.status.as_str(), Decision::as_str)) }
                " · " (approval.decided_by.as_deref().unwrap_or("?"))
                " · " (approval.channel.map_or("?", Channel::as_str))
                " · " (approval.decided_at.map_or_else(|| "?".into(), |t| locale.time(t)))
            }
            @if let Some(comment) = &approval.comment { p { (comment) } }
        }
        p { (locale.t("link.final")) }
    };
    Page {
        title: locale.t("link.title"),
        nav: Nav::None,
        locale,
        viewer: viewer.map(Viewer::signed_in),
        live: None,
    }
    .render_with(status, body)
}

/// Who decides through this link, or the page refusing it: the link itself (`link` mode,
/// with its double-submit cookie) or the signed-in person allowed to decide.
async fn decider_for(
    state: &WebState,
    viewer: Option<&Viewer>,
    locale: &Locale,
    approval: &ApprovalRecord,
    headers: &HeaderMap,
    form: &DecisionForm,
    peer: SocketAddr,
) -> std::result::Result<Decider, Response> {
    let task = state
        .store
        .task(approval.task_id)
        .await
        .map_err(|e| PageError(e).into_page(locale))?;
    let project_id = state
        .store
        .project(&task.project)
        .await
        .map_err(|e| PageError(e).into_page(locale))?
        .id;
    let right = right_of(state, viewer, project_id)
        .await
        .map_err(|e| PageError(e).into_page(locale))?;
    let decider = match (&right, viewer) {
        (Right::Link, _) => {
            let cookie = cookie(headers, CSRF_COOKIE);
            if !matches!(cookie, Some(c) if !form.csrf.is_empty() && tokens_equal(&form.csrf, &c)) {
                return Err(PageError(Error::Forbidden(locale.t("link.csrf"))).into_page(locale));
            }
            let channels = state
                .store
                .link_channels(approval.id)
                .await
                .unwrap_or_default();
            Decider {
                name: link_decider(&channels),
                principal_id: None,
                channel: Channel::Web,
                source: peer.ip().to_string(),
            }
        }
        (Right::Person, Some(viewer)) => {
            viewer
                .check_form(headers, Some(&form.csrf))
                .map_err(|e| PageError(e).into_page(locale))?;
            Decider {
                name: viewer.principal.name.clone(),
                principal_id: viewer.principal.id,
                channel: Channel::Web,
                source: peer.ip().to_string(),
            }
        }
        _ => {
            let message = locale.t(if viewer.is_some() {
                "link.not_allowed"
            } else {
                "link.sign_in_first"
            });
            if let Some(viewer) = &viewer {
                viewer
                    .audit(
                        state,
                        "POST /approvals/{token}",
                        &format!("approvals/{}", approval.id),
                        "403",
                    )
                    .await;
            }
            return Err(PageError(Error::Forbidden(message)).into_page(locale));
        }
    };
    Ok(decider)
}

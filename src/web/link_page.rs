//! `/account/link`: where a chat account's one-time link lands (an unknown Slack or
//! KakaoWork user's click is answered with it). The code travels in the URL's fragment, so
//! no server or proxy log sees it; the script puts it in the form, and without a script the
//! reader pastes it. Confirming binds the chat account to the signed-in reader, once.

use axum::Form;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use maud::html;
use serde::Deserialize;

use super::WebState;
use super::action::Posted;
use super::layout::{Nav, Page};
use super::viewer::Viewer;
use crate::approvals::LinkSigner;
use crate::identities;

#[derive(Debug, Deserialize)]
pub struct LinkForm {
    #[serde(default)]
    csrf: Option<String>,
    #[serde(default)]
    code: String,
}

/// `GET /account/link`: what the link does, and the button that does it.
pub async fn show(viewer: Viewer) -> Response {
    let locale = &viewer.locale;
    let body = html! {
        h1 { (locale.t("chat_link.title")) }
        p { (locale.t("chat_link.intro")) " " strong { (viewer.principal.name) } }
        form.stack method="post" action="/account/link" #link-form novalidate {
            input type="hidden" name="csrf" value=(viewer.csrf());
            label for="link-code" {
                (locale.t("chat_link.code"))
                input #link-code name="code" autocomplete="off" required;
            }
            div { button.primary type="submit" { (locale.t("chat_link.confirm")) } }
        }
    };
    Page {
        title: locale.t("chat_link.title"),
        nav: Nav::Account,
        locale,
        viewer: Some(viewer.signed_in()),
        live: None,
    }
    .render_with(axum::http::StatusCode::OK, body)
}

/// `POST /account/link`: binds the chat account the code was offered to to the reader.
pub async fn confirm(
    State(state): State<WebState>,
    viewer: Viewer,
    headers: HeaderMap,
    Form(form): Form<LinkForm>,
) -> Response {
    let posted = Posted {
        state: &state,
        viewer: &viewer,
        headers: &headers,
        csrf: form.csrf.as_deref(),
    };
    let signer = LinkSigner::new(&state.vault);
    let code = form.code.trim().trim_start_matches('#');
    let work = async {
        identities::confirm_link(
            &state.store,
            &signer,
            code,
            &viewer.principal,
            chrono::Utc::now(),
        )
        .await
        .map(|_| ())
    };
    // The audit entry names the reader, never the code.
    let target = format!("users/{}/chat", viewer.principal.name);
    posted
        .act("POST /account/link", &target, "/account", work)
        .await
}

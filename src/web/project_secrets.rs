//! A project's credentials and notification channels, edited on its page by those who
//! maintain it: add or replace a credential (its value is write-only: sealed at once, never
//! shown or sent back to the form), delete one, add a channel naming a credential, delete
//! one. The rules are the API's (`credentials::store_credential`, `NewChannel::into_spec`);
//! a refused field shows its error at the field on the project page (422).

use axum::Form;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;

use super::WebState;
use super::action::{ButtonForm, Posted};
use super::project_forms::{ChannelForm, CredentialForm, Forms};
use super::projects::{FormAnswer, maintained};
use super::viewer::Viewer;
use crate::credentials::{self, NewCredential};
use crate::error::{Error, Result};
use crate::model::CredentialKind;

/// `POST /projects/{name}/credentials`: adds the credential, or gives an existing one of the
/// project a new value.
pub async fn add_credential(
    State(state): State<WebState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(form): Form<CredentialForm>,
) -> Response {
    let work = async {
        viewer.check_declared_form(&headers, form.csrf.as_deref())?;
        maintained(&state, &viewer, &name).await?;
        let kind = form
            .kind
            .parse::<CredentialKind>()
            .map_err(|_| Error::invalid("kind", "choose one of the kinds listed"))?;
        let env_var = form.env_var.trim();
        let new = NewCredential {
            project: Some(name.clone()),
            name: form.name.trim().to_string(),
            kind,
            env_var: (!env_var.is_empty()).then(|| env_var.to_string()),
            value: form.value.clone(),
        };
        let (store, vault, config) = (&state.store, &state.vault, &state.config);
        credentials::store_credential(store, vault, config, &viewer.principal, new, true)
            .await
            .map(|_| ())
    };
    let outcome = work.await;
    let blank = CredentialForm {
        value: String::new(),
        csrf: None,
        ..form
    };
    let forms = Forms {
        credential: blank,
        ..Forms::default()
    };
    let answer = FormAnswer {
        action: "POST /projects/{name}/credentials",
        target: format!("projects/{name}/credentials"),
        back: format!("/projects/{name}#credentials"),
        field: |field: &str| format!("credential_{field}"),
    };
    answer
        .give(&state, &viewer, &name, outcome, None, forms)
        .await
}

/// `POST /projects/{name}/channels`: adds a notification channel.
pub async fn add_channel(
    State(state): State<WebState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(form): Form<ChannelForm>,
) -> Response {
    let work = async {
        viewer.check_declared_form(&headers, form.csrf.as_deref())?;
        let project = maintained(&state, &viewer, &name).await?;
        let spec = form.channel()?.into_spec(&state.config.inputs)?;
        state
            .store
            .insert_channel(project.id, &spec)
            .await
            .map(|_| ())
    };
    let outcome = work.await;
    let forms = Forms {
        channel: form,
        ..Forms::default()
    };
    let answer = FormAnswer {
        action: "POST /projects/{name}/channels",
        target: format!("projects/{name}/channels"),
        back: format!("/projects/{name}#channels"),
        field: |field: &str| format!("channel_{field}"),
    };
    answer
        .give(&state, &viewer, &name, outcome, None, forms)
        .await
}

/// `POST /projects/{name}/credentials/{id}/delete`.
pub async fn delete_credential(
    State(state): State<WebState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path((name, id)): Path<(String, i64)>,
    Form(form): Form<ButtonForm>,
) -> Response {
    let work = async {
        maintained(&state, &viewer, &name).await?;
        let credential = state.store.credential(id).await?;
        if credential.project.as_deref() != Some(name.as_str()) {
            return Err(Error::NotFound(format!(
                "project {name} has no credential {id}"
            )));
        }
        credentials::remove(&state.store, &state.config, &viewer.principal, id).await
    };
    let posted = Posted {
        state: &state,
        viewer: &viewer,
        headers: &headers,
        csrf: form.csrf.as_deref(),
    };
    deleted(posted, &name, "credentials", id, work).await
}

/// `POST /projects/{name}/channels/{id}/delete`.
pub async fn delete_channel(
    State(state): State<WebState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path((name, id)): Path<(String, i64)>,
    Form(form): Form<ButtonForm>,
) -> Response {
    let work = async {
        let project = maintained(&state, &viewer, &name).await?;
        state.store.delete_channel(project.id, id).await
    };
    let posted = Posted {
        state: &state,
        viewer: &viewer,
        headers: &headers,
        csrf: form.csrf.as_deref(),
    };
    deleted(posted, &name, "channels", id, work).await
}

/// A row's delete button of `section` (`credentials`, `channels`) answered: audited as
/// `POST /projects/{name}/<section>/{id}/delete`, back to the section.
async fn deleted(
    posted: Posted<'_>,
    name: &str,
    section: &str,
    id: i64,
    work: impl Future<Output = Result<()>>,
) -> Response {
    let action = format!("POST /projects/{{name}}/{section}/{{id}}/delete");
    let target = format!("projects/{name}/{section}/{id}");
    let back = format!("/projects/{name}#{section}");
    posted.act(&action, &target, &back, work).await
}

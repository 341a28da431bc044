//! A project's credentials and notification channels, edited on its page by those who
//! maintain it: add or replace a credential (its value is write-only: sealed at once, never
//! shown or sent back to the form), delete one, add a channel naming a credential, delete
//! one. The rules are the API's (`credentials::store_credential`, `NewChannel::into_spec`);
//! a refused field shows its error at the field on the project page (422).

use axum::Form;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};

use super::WebState;
use super::action::{ButtonForm, Posted};
use super::layout::PageError;
use super::project_forms::{ChannelForm, CredentialForm, FieldErrors, Forms};
use super::projects;
use super::task_list::status_of;
use super::viewer::Viewer;
use crate::credentials::{self, NewCredential};
use crate::error::{Error, Result};
use crate::model::CredentialKind;
use crate::permissions::On;

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
        let project = state.store.project(&name).await?;
        viewer.require_form(On::Project(project.id))?;
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
    answer(
        &state,
        &viewer,
        &name,
        "credentials",
        outcome,
        forms,
        "credential",
    )
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
        let project = state.store.project(&name).await?;
        viewer.require_form(On::Project(project.id))?;
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
    answer(
        &state, &viewer, &name, "channels", outcome, forms, "channel",
    )
    .await
}

/// Audits an add form's outcome; back to the section on success, the page with the error at
/// its field (`prefix`_field) when a field was refused, the error page otherwise.
async fn answer(
    state: &WebState,
    viewer: &Viewer,
    name: &str,
    section: &str,
    outcome: Result<()>,
    mut forms: Forms,
    prefix: &str,
) -> Response {
    let action = format!("POST /projects/{{name}}/{section}");
    let target = format!("projects/{name}/{section}");
    let status = outcome.as_ref().map_or_else(status_of, |()| "200".into());
    viewer.audit(state, &action, &target, &status).await;
    match outcome {
        Ok(()) => Redirect::to(&format!("/projects/{name}#{section}")).into_response(),
        Err(Error::Invalid { field, message }) => {
            forms.errors = FieldErrors::from([(format!("{prefix}_{field}"), message)]);
            let page = async {
                let project = projects::readable(state, viewer, name).await?;
                projects::render_with(state, viewer, &project, None, forms).await
            };
            let page = page.await;
            page.unwrap_or_else(|e| PageError(e).into_page(&viewer.locale))
        }
        Err(e) => PageError(e).into_page(&viewer.locale),
    }
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
        let project = state.store.project(&name).await?;
        viewer.require_form(On::Project(project.id))?;
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
    let action = "POST /projects/{name}/credentials/{id}/delete";
    let target = format!("projects/{name}/credentials/{id}");
    let back = format!("/projects/{name}#credentials");
    posted.act(action, &target, &back, work).await
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
        let project = state.store.project(&name).await?;
        viewer.require_form(On::Project(project.id))?;
        state.store.delete_channel(project.id, id).await
    };
    let posted = Posted {
        state: &state,
        viewer: &viewer,
        headers: &headers,
        csrf: form.csrf.as_deref(),
    };
    let action = "POST /projects/{name}/channels/{id}/delete";
    let target = format!("projects/{name}/channels/{id}");
    let back = format!("/projects/{name}#channels");
    posted.act(action, &target, &back, work).await
}

//! A project's credentials and notification channels, edited on its page by those who
//! maintain it: add or replace a credential (its value is write-only: sealed at once, never
//! shown or sent back to the form), delete one, add a channel naming a credential, delete
//! one. The rules are the API's (`credentials::store_credential`, `NewChannel::into_spec`);
//! a refused field shows its error at the field on the project page (422).

use axum::Form;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::WebState;
use super::action::{ButtonForm, Posted};
use super::components::field_error;
use super::i18n::Locale;
use super::layout::PageError;
use super::projects::{self, FieldErrors, Forms};
use super::task_list::status_of;
use super::viewer::Viewer;
use crate::credentials::{self, NewCredential};
use crate::error::{Error, Result};
use crate::model::{ChannelKind, Credential, CredentialKind, NoticeKind, Project};
use crate::notify::NewChannel;
use crate::permissions::On;

/// The events a channel form offers (budget notices go to every enabled channel anyway).
const EVENTS: [NoticeKind; 3] = [
    NoticeKind::ApprovalRequested,
    NoticeKind::TaskFailed,
    NoticeKind::TaskDone,
];

/// The credential form as posted. `value` is never rendered back.
#[derive(Default, Clone, Deserialize)]
pub struct CredentialForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    env_var: String,
    #[serde(default)]
    value: String,
    #[serde(default)]
    csrf: Option<String>,
}

impl std::fmt::Debug for CredentialForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialForm")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("env_var", &self.env_var)
            .finish_non_exhaustive()
    }
}

/// The channel form as posted; each event is a checkbox of its own.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct ChannelForm {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    target: String,
    #[serde(default)]
    credential: String,
    #[serde(default)]
    event_approval_requested: Option<String>,
    #[serde(default)]
    event_task_failed: Option<String>,
    #[serde(default)]
    event_task_done: Option<String>,
    #[serde(default)]
    csrf: Option<String>,
}

impl ChannelForm {
    fn checked(&self, event: NoticeKind) -> bool {
        match event {
            NoticeKind::ApprovalRequested => self.event_approval_requested.is_some(),
            NoticeKind::TaskFailed => self.event_task_failed.is_some(),
            NoticeKind::TaskDone => self.event_task_done.is_some(),
            _ => false,
        }
    }

    fn channel(&self) -> Result<NewChannel> {
        let kind = self
            .kind
            .parse::<ChannelKind>()
            .map_err(|_| Error::invalid("kind", "choose slack, kakaowork or webhook"))?;
        Ok(NewChannel {
            kind,
            target: Some(self.target.clone()),
            credential: self.credential.clone(),
            events: Some(EVENTS.into_iter().filter(|e| self.checked(*e)).collect()),
            enabled: Some(true),
        })
    }
}

/// A blank channel form with every event checked.
pub fn blank_channel() -> ChannelForm {
    let on = Some("on".to_string());
    ChannelForm {
        kind: ChannelKind::Slack.as_str().into(),
        event_approval_requested: on.clone(),
        event_task_failed: on.clone(),
        event_task_done: on,
        ..ChannelForm::default()
    }
}

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
                projects::render_with(state, viewer, &project, forms).await
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

/// A row's delete button.
pub fn delete_button(viewer: &Viewer, action: String, label: &str) -> Markup {
    html! {
        form.inline method="post" action=(action) {
            input type="hidden" name="csrf" value=(viewer.csrf());
            button.danger type="submit" { (label) }
        }
    }
}

/// The form that adds or replaces a credential of `project`.
pub fn credential_form(viewer: &Viewer, project: &Project, forms: &Forms) -> Markup {
    let locale = &viewer.locale;
    let form = &forms.credential;
    let error = |field: &str| forms.errors.get(field).map(String::as_str);
    html! {
        form.stack method="post" action={ "/projects/" (project.name) "/credentials" } #credential-form novalidate {
            h3 { (locale.t("projects.add_credential")) }
            input type="hidden" name="csrf" value=(viewer.csrf());
            (text_field(locale, "credential_name", "name", &form.name, error("credential_name")))
            label for="credential_kind" {
                (locale.t("projects.kind"))
                select #credential_kind name="kind" aria-invalid=[error("credential_kind").map(|_| "true")] {
                    @for kind in CredentialKind::ALL {
                        option value=(kind.as_str()) selected[kind.as_str() == form.kind] { (kind.as_str()) }
                    }
                }
                (field_error("credential_kind", error("credential_kind")))
            }
            (text_field(locale, "credential_env_var", "env_var", &form.env_var, error("credential_env_var")))
            label for="credential_value" {
                (locale.t("projects.value"))
                input #credential_value type="password" name="value" autocomplete="off"
                    aria-invalid=[error("credential_value").map(|_| "true")]
                    aria-describedby="credential_value-hint";
                span.muted #credential_value-hint { (locale.t("projects.value_hint")) }
                (field_error("credential_value", error("credential_value")))
            }
            div { button.primary type="submit" { (locale.t("projects.save_credential")) } }
        }
    }
}

/// The form that adds a notification channel to `project`, naming one of its credentials
/// (or a global one, typed).
pub fn channel_form(
    viewer: &Viewer,
    project: &Project,
    forms: &Forms,
    credentials: &[Credential],
) -> Markup {
    let locale = &viewer.locale;
    let form = &forms.channel;
    let error = |field: &str| forms.errors.get(field).map(String::as_str);
    html! {
        form.stack method="post" action={ "/projects/" (project.name) "/channels" } #channel-form novalidate {
            h3 { (locale.t("projects.add_channel")) }
            input type="hidden" name="csrf" value=(viewer.csrf());
            label for="channel_kind" {
                (locale.t("projects.kind"))
                select #channel_kind name="kind" aria-invalid=[error("channel_kind").map(|_| "true")] {
                    @for kind in ChannelKind::ALL {
                        option value=(kind.as_str()) selected[kind.as_str() == form.kind] { (kind.as_str()) }
                    }
                }
                (field_error("channel_kind", error("channel_kind")))
            }
            (text_field(locale, "channel_target", "target", &form.target, error("channel_target")))
            label for="channel_credential" {
                (locale.t("projects.credential"))
                input #channel_credential name="credential" value=(form.credential) list="channel_credentials"
                    aria-invalid=[error("channel_credential").map(|_| "true")];
                datalist #channel_credentials {
                    @for credential in credentials { option value=(credential.name) {} }
                }
                (field_error("channel_credential", error("channel_credential")))
            }
            fieldset #channel_events aria-invalid=[error("channel_events").map(|_| "true")] {
                legend { (locale.t("projects.events")) }
                @for event in EVENTS {
                    @let id = format!("event_{}", event.as_str());
                    label.check for=(id) {
                        input #(id) type="checkbox" name=(id) checked[form.checked(event)];
                        (locale.t(&format!("notice.{}", event.as_str())))
                    }
                }
                (field_error("channel_events", error("channel_events")))
            }
            div { button.primary type="submit" { (locale.t("projects.save_channel")) } }
        }
    }
}

/// A labelled text input whose label is `projects.<key>`.
fn text_field(locale: &Locale, id: &str, key: &str, value: &str, error: Option<&str>) -> Markup {
    html! {
        label for=(id) {
            (locale.t(&format!("projects.{key}")))
            input #(id) name=(key) value=(value)
                aria-invalid=[error.map(|_| "true")]
                aria-describedby=[error.map(|_| format!("{id}-error"))];
            (field_error(id, error))
        }
    }
}

//! The project page's credential and channel forms: what they hold as posted (the credential's
//! value is never rendered back) and their markup, with a row's delete button. The handlers
//! that take them are in `project_secrets`; the page that shows them is `projects`.

use std::collections::HashMap;

use maud::{Markup, html};
use serde::Deserialize;

use super::components::field_error;
use super::i18n::Locale;
use super::viewer::Viewer;
use crate::error::{Error, Result};
use crate::model::{ChannelKind, Credential, CredentialKind, NoticeKind, Project};
use crate::notify::NewChannel;

/// A form's errors by field name.
pub type FieldErrors = HashMap<String, String>;

/// What a project's credential and channel forms show: what was posted (else blank forms)
/// and the refused field's error (`credential_<field>`, `channel_<field>`, or a settings
/// field).
pub struct Forms {
    pub credential: CredentialForm,
    pub channel: ChannelForm,
    pub errors: FieldErrors,
}

impl Default for Forms {
    fn default() -> Self {
        Forms {
            credential: CredentialForm::default(),
            channel: blank_channel(),
            errors: FieldErrors::new(),
        }
    }
}

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
    pub(super) name: String,
    #[serde(default)]
    pub(super) kind: String,
    #[serde(default)]
    pub(super) env_var: String,
    #[serde(default)]
    pub(super) value: String,
    #[serde(default)]
    pub(super) csrf: Option<String>,
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
    pub(super) kind: String,
    #[serde(default)]
    pub(super) target: String,
    #[serde(default)]
    pub(super) credential: String,
    #[serde(default)]
    pub(super) event_approval_requested: Option<String>,
    #[serde(default)]
    pub(super) event_task_failed: Option<String>,
    #[serde(default)]
    pub(super) event_task_done: Option<String>,
    #[serde(default)]
    pub(super) csrf: Option<String>,
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

    pub(super) fn channel(&self) -> Result<NewChannel> {
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

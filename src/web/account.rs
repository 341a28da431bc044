//! `/account`: the reader's own settings: the language of the pages and their time zone.
//! (Sessions and tokens of one's own are on the sign-in pages and the API.)

use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;

use super::WebState;
use super::components::field_error;
use super::layout::{Nav, Page, PageError};
use super::viewer::Viewer;
use crate::error::Error;
use crate::model::{Language, Preferences};

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
    render(&viewer, &current, None, StatusCode::OK)
}

pub async fn save(
    State(state): State<WebState>,
    viewer: Viewer,
    headers: HeaderMap,
    Form(form): Form<SettingsForm>,
) -> Response {
    if let Err(e) = viewer.check_form(&headers, form.csrf.as_deref()) {
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
        Err(Error::Invalid { field, message }) => render(
            &viewer,
            &wanted,
            Some((field, message)),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
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

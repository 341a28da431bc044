//! `/later/{place}`: the places in the navigation whose pages are not built yet say so
//! (issue 13 lists them), instead of a dead link.

use axum::extract::Path;
use axum::response::Response;
use maud::html;

use super::layout::{Nav, Page, PageError};
use super::viewer::Viewer;
use crate::error::Error;

pub async fn show(viewer: Viewer, Path(place): Path<String>) -> Response {
    let locale = &viewer.locale;
    let Some(nav) = Nav::later(&place) else {
        return PageError(Error::NotFound(format!("page {place}"))).into_page(locale);
    };
    let body = html! {
        h1 { (nav.name(locale)) }
        p.empty #later { (locale.t("later.text")) }
    };
    Page {
        title: nav.name(locale),
        nav,
        locale,
        viewer: Some(viewer.signed_in()),
        live: None,
    }
    .render(body)
}

//! The one layout every page shares (header, navigation, the reader's name and sign-out),
//! the security headers of every page, and the page shown for an error.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};

use super::assets;
use super::i18n::Locale;
use crate::error::Error;

/// The Content-Security-Policy of every page: our own files only, no inline script or style.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'";

/// A place in the navigation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Overview,
    Projects,
    Tasks,
    Approvals,
    Teams,
    Deliveries,
    Notifications,
    Schedules,
    Audit,
    Analytics,
    Users,
    Account,
    /// A page outside the navigation (the approval link, an error).
    None,
}

impl Nav {
    /// Every place, in the order shown.
    const ALL: [Nav; 12] = [
        Nav::Overview,
        Nav::Projects,
        Nav::Tasks,
        Nav::Approvals,
        Nav::Teams,
        Nav::Deliveries,
        Nav::Notifications,
        Nav::Schedules,
        Nav::Audit,
        Nav::Analytics,
        Nav::Users,
        Nav::Account,
    ];

    /// The catalogue key of its name and its address.
    fn key_and_href(self) -> (&'static str, &'static str) {
        match self {
            Nav::Overview => ("nav.overview", "/"),
            Nav::Projects => ("nav.projects", "/projects"),
            Nav::Tasks => ("nav.tasks", "/tasks"),
            Nav::Approvals => ("nav.approvals", "/inbox"),
            Nav::Teams => ("nav.teams", "/teams"),
            Nav::Deliveries => ("nav.deliveries", "/deliveries"),
            Nav::Notifications => ("nav.notifications", "/notifications"),
            Nav::Schedules => ("nav.schedules", "/schedules"),
            Nav::Audit => ("nav.audit", "/audit"),
            Nav::Analytics => ("nav.analytics", "/analytics"),
            Nav::Users => ("nav.users", "/users"),
            Nav::Account => ("nav.account", "/account"),
            Nav::None => ("", "/"),
        }
    }

    /// Its name in the reader's language.
    pub fn name(self, locale: &Locale) -> String {
        locale.t(self.key_and_href().0)
    }
}

/// A whole page: layout around `body`; `live` names the event stream the script follows.
pub struct Page<'a> {
    pub title: String,
    pub nav: Nav,
    pub locale: &'a Locale,
    pub viewer: Option<SignedIn<'a>>,
    pub live: Option<String>,
}

impl Page<'_> {
    /// The page as a 200 response.
    pub fn render(self, body: Markup) -> Response {
        self.render_with(StatusCode::OK, body)
    }

    /// The page with `status`.
    pub fn render_with(self, status: StatusCode, body: Markup) -> Response {
        let locale = self.locale;
        let markup = html! {
            (DOCTYPE)
            html lang=(locale.language.as_str()) {
                head {
                    meta charset="utf-8";
                    meta name="viewport" content="width=device-width, initial-scale=1";
                    title { (self.title) " · aiops" }
                    link rel="stylesheet" href=(assets::stylesheet_url());
                    script src=(assets::script_url()) defer {}
                }
                body data-live-stream=[self.live.as_deref()] {
                    a.skip href="#content" { (locale.t("nav.skip")) }
                    (header(self.nav, locale, self.viewer))
                    main #content { (body) }
                }
            }
        };
        secure((status, markup).into_response())
    }
}

fn header(current: Nav, locale: &Locale, viewer: Option<SignedIn<'_>>) -> Markup {
    html! {
        header.top {
            a.brand href="/" { "aiops" }
            @if let Some(viewer) = viewer {
                nav.main aria-label=(locale.t("nav.label")) {
                    ul {
                        @for nav in Nav::ALL {
                            @if !matches!(nav, Nav::Users | Nav::Audit) || viewer.admin {
                                li {
                                    a href=(nav.key_and_href().1)
                                        aria-current=[(nav == current).then_some("page")] {
                                        (nav.name(locale))
                                    }
                                }
                            }
                        }
                    }
                }
                div.who {
                    span #who { (viewer.login) }
                    form method="post" action="/sign-out" {
                        input type="hidden" name="csrf" value=(viewer.csrf);
                        button type="submit" { (locale.t("nav.sign_out")) }
                    }
                }
            }
        }
    }
}

/// The headers every page carries: the strict CSP, no framing, no caching, no sniffing.
pub fn secure(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::CACHE_CONTROL, "no-store"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "same-origin"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// An error as a page: what happened, in the reader's language, with the right status.
#[derive(Debug)]
pub struct PageError(pub Error);

/// Who the header shows as signed in: their login, whether the admin-only places are
/// theirs, and the CSRF token of their sign-out form.
#[derive(Debug, Clone, Copy)]
pub struct SignedIn<'a> {
    pub login: &'a str,
    pub admin: bool,
    pub csrf: &'a str,
}

impl From<Error> for PageError {
    fn from(error: Error) -> Self {
        PageError(error)
    }
}

impl PageError {
    /// The status and the page explaining it.
    pub fn into_page(self, locale: &Locale) -> Response {
        let (status, title_key, detail) = match &self.0 {
            Error::Forbidden(message) => {
                (StatusCode::FORBIDDEN, "error.forbidden", message.clone())
            }
            Error::NotFound(what) => (StatusCode::NOT_FOUND, "error.not_found", what.clone()),
            Error::Conflict(message) => (StatusCode::CONFLICT, "error.conflict", message.clone()),
            Error::Invalid { field, message } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "error.invalid",
                format!("{field}: {message}"),
            ),
            Error::BadRequest(message) => {
                (StatusCode::BAD_REQUEST, "error.invalid", message.clone())
            }
            Error::TooManyRequests { message, .. } => {
                (StatusCode::TOO_MANY_REQUESTS, "error.busy", message.clone())
            }
            Error::Unauthorized(message) => {
                (StatusCode::UNAUTHORIZED, "error.forbidden", message.clone())
            }
            other => {
                tracing::error!(error = %other, "a dashboard page failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "error.internal",
                    String::new(),
                )
            }
        };
        let page = Page {
            title: locale.t(title_key),
            nav: Nav::None,
            locale,
            viewer: None,
            live: None,
        };
        page.render_with(
            status,
            html! {
                h1 #message-title { (locale.t(title_key)) }
                @if !detail.is_empty() { p #message { (detail) } }
                p { a href="/" { (locale.t("error.back")) } }
            },
        )
    }
}

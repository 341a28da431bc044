//! `/sign-in` and `/sign-out`: password sign-in to a server-side session.
//!
//! The form is protected against login CSRF by a pre-session double-submit token (an
//! HttpOnly, SameSite=Strict cookie scoped to `/sign-in` and the same value in a hidden
//! field); sign-out needs the session's own CSRF token and, when the browser names one,
//! this site's `Origin`. After sign-in the browser goes to `next` only when it is a path on
//! this site, never an absolute URL. Rendered with maud (escaped by default); no script, and
//! a CSP that allows none.

use std::net::SocketAddr;

use axum::Form;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use maud::{DOCTYPE, Markup, html};
use serde::Deserialize;

use super::WebState;
use super::i18n::Locale;
use super::viewer::same_origin;
use crate::error::Error;
use crate::sessions::{self, Client, SessionInfo};
use crate::signing::tokens_equal;
use crate::sso::Provider;

/// The pre-session CSRF cookie of the sign-in form.
const FORM_COOKIE: &str = "aiops_sign_in_csrf";

/// Only these may style the page; no inline style or script is allowed.
const CSP: &str = "default-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Longest `next` path followed after sign-in.
const MAX_NEXT_CHARS: usize = 2048;

const STYLESHEET: &str = "body{font-family:system-ui,sans-serif;background:#f5f6f8;color:#1d2330;margin:0}\
main{max-width:22rem;margin:10vh auto;background:#fff;padding:2rem;border-radius:8px;box-shadow:0 1px 4px #0002}\
h1{font-size:1.4rem;margin-top:0}label{display:block;margin:1rem 0 .3rem}\
input[type=text],input[type=password]{width:100%;box-sizing:border-box;padding:.5rem;font-size:1rem}\
button{margin-top:1.4rem;width:100%;padding:.6rem;font-size:1rem;cursor:pointer}\
.error{color:#a4161a;background:#fde8e8;padding:.5rem;border-radius:4px}\
.notice{color:#14532d;background:#e7f6ec;padding:.5rem;border-radius:4px}\
.or{text-align:center;margin:1.2rem 0 0;color:#5b6270}\
a.provider{display:block;margin-top:.8rem;padding:.6rem;text-align:center;border:1px solid #1d2330;border-radius:4px;color:#1d2330;text-decoration:none}";

pub fn router() -> axum::Router<WebState> {
    axum::Router::new()
        .route("/sign-in", get(show).post(sign_in))
        .route("/sign-out", axum::routing::post(sign_out))
        .route("/sign-in.css", get(stylesheet))
}

/// Every text of the page, in one language.
pub(super) struct Texts {
    lang: &'static str,
    title: &'static str,
    login: &'static str,
    password: &'static str,
    submit: &'static str,
    signed_in_as: &'static str,
    sign_out: &'static str,
    signed_out: &'static str,
    wrong: &'static str,
    too_many: &'static str,
    expired_form: &'static str,
    failed: &'static str,
}

const ENGLISH: Texts = Texts {
    lang: "en",
    title: "Sign in to aiops",
    login: "Login",
    password: "Password",
    submit: "Sign in",
    signed_in_as: "Signed in as",
    sign_out: "Sign out",
    signed_out: "You are signed out.",
    wrong: "The login or password is wrong.",
    too_many: "Too many attempts. Try again in this many seconds:",
    expired_form: "The form expired. Please try again.",
    failed: "Signing in failed. Please try again later.",
};

const KOREAN: Texts = Texts {
    lang: "ko",
    title: "aiops 로그인",
    login: "아이디",
    password: "비밀번호",
    submit: "로그인",
    signed_in_as: "로그인 사용자:",
    sign_out: "로그아웃",
    signed_out: "로그아웃되었습니다.",
    wrong: "아이디 또는 비밀번호가 올바르지 않습니다.",
    too_many: "시도 횟수가 너무 많습니다. 다음 시간(초) 후에 다시 시도하세요:",
    expired_form: "양식이 만료되었습니다. 다시 시도하세요.",
    failed: "로그인하지 못했습니다. 잠시 후 다시 시도하세요.",
};

/// Korean when the most preferred language of `Accept-Language` is Korean, else English.
pub(super) fn texts_for(headers: &HeaderMap) -> &'static Texts {
    let accept = headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mut best: Option<(f32, &str)> = None;
    for entry in accept.split(',') {
        let mut parts = entry.split(';');
        let tag = parts.next().unwrap_or("").trim();
        let q = parts
            .find_map(|p| p.trim().strip_prefix("q="))
            .and_then(|q| q.parse::<f32>().ok())
            .unwrap_or(1.0);
        if !tag.is_empty() && best.is_none_or(|(top, _)| q > top) {
            best = Some((q, tag));
        }
    }
    match best {
        Some((_, tag)) if tag.to_ascii_lowercase().starts_with("ko") => &KOREAN,
        _ => &ENGLISH,
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ShowQuery {
    next: String,
    signed_out: Option<String>,
}

/// What the page shows besides the form.
#[derive(Default)]
struct View<'a> {
    login: &'a str,
    next: &'a str,
    notice: Option<&'a str>,
    error: Option<String>,
    /// "Sign in with …" links of the configured providers.
    providers: Vec<Button>,
    or: String,
}

async fn show(
    State(state): State<WebState>,
    headers: HeaderMap,
    Query(query): Query<ShowQuery>,
) -> Response {
    let texts = texts_for(&headers);
    if let Some((principal, session)) = current_session(&state, &headers).await {
        let page = signed_in_page(texts, &principal.name, &session);
        return respond(StatusCode::OK, page, Vec::new());
    }
    let next = safe_next(&query.next).unwrap_or("");
    let view = View {
        next,
        notice: query.signed_out.is_some().then_some(texts.signed_out),
        providers: buttons(&state, &headers, next),
        or: or_label(&headers),
        ..View::default()
    };
    form_response(texts, StatusCode::OK, &view, Vec::new())
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct SignInForm {
    login: String,
    password: String,
    csrf: String,
    next: String,
}

async fn sign_in(
    State(state): State<WebState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<SignInForm>,
) -> Response {
    let texts = texts_for(&headers);
    let next = safe_next(&form.next).unwrap_or("");
    let mut view = View {
        login: &form.login,
        next,
        providers: buttons(&state, &headers, next),
        or: or_label(&headers),
        ..View::default()
    };
    let expected = cookie(&headers, FORM_COOKIE);
    if !expected.is_some_and(|c| !form.csrf.is_empty() && tokens_equal(&form.csrf, c)) {
        view.error = Some(texts.expired_form.into());
        return form_response(texts, StatusCode::FORBIDDEN, &view, Vec::new());
    }
    let addr = peer.ip().to_string();
    let client = Client {
        addr: &addr,
        user_agent: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok()),
    };
    let login = form.login.trim();
    match sessions::sign_in_with_password(
        &state.store,
        &state.config,
        login,
        &form.password,
        client,
    )
    .await
    {
        Ok(signed_in) => {
            let cookies = vec![
                sessions::set_cookie(&state.config, &signed_in.secret),
                form_cookie("", 0),
            ];
            let target = if next.is_empty() { "/" } else { next };
            see_other(target, cookies)
        }
        Err(e) => {
            let (status, retry_after) = refusal(texts, &e, &mut view);
            let mut response = form_response(texts, status, &view, Vec::new());
            if let Some(secs) = retry_after.and_then(|s| HeaderValue::from_str(&s).ok()) {
                response.headers_mut().insert(header::RETRY_AFTER, secs);
            }
            response
        }
    }
}

/// The status and message of a refused sign-in (and the Retry-After of a 429).
fn refusal(texts: &Texts, error: &Error, view: &mut View<'_>) -> (StatusCode, Option<String>) {
    match error {
        Error::Unauthorized(_) => {
            view.error = Some(texts.wrong.into());
            (StatusCode::UNAUTHORIZED, None)
        }
        Error::TooManyRequests {
            retry_after_secs, ..
        } => {
            view.error = Some(format!("{} {retry_after_secs}", texts.too_many));
            (
                StatusCode::TOO_MANY_REQUESTS,
                Some(retry_after_secs.to_string()),
            )
        }
        other => {
            tracing::error!(error = %other, "sign-in failed");
            view.error = Some(texts.failed.into());
            (StatusCode::INTERNAL_SERVER_ERROR, None)
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct SignOutForm {
    csrf: String,
}

async fn sign_out(
    State(state): State<WebState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<SignOutForm>,
) -> Response {
    let clear = vec![sessions::clear_cookie(&state.config)];
    let Some((principal, session)) = current_session(&state, &headers).await else {
        return see_other("/sign-in?signed_out=1", clear);
    };
    let checked =
        same_origin(&headers).and_then(|()| sessions::check_csrf(&session, Some(&form.csrf)));
    if checked.is_err() {
        let texts = texts_for(&headers);
        let page = signed_in_page(texts, &principal.name, &session);
        return respond(StatusCode::FORBIDDEN, page, Vec::new());
    }
    let addr = peer.ip().to_string();
    let client = Client {
        addr: &addr,
        user_agent: None,
    };
    if let Err(e) = sessions::sign_out(&state.store, &principal, &session, client).await {
        tracing::error!(error = %e, "sign-out failed");
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    see_other("/sign-in?signed_out=1", clear)
}

async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        STYLESHEET,
    )
        .into_response()
}

/// The session the request's cookie stands for, if it is live.
async fn current_session(
    state: &WebState,
    headers: &HeaderMap,
) -> Option<(crate::model::Principal, SessionInfo)> {
    let secret = cookie(headers, sessions::COOKIE)?;
    match sessions::resolve(&state.store, &state.config, secret).await {
        Ok(found) => found,
        Err(e) => {
            tracing::error!(error = %e, "resolving a session failed");
            None
        }
    }
}

pub(super) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    let values = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok());
    sessions::cookie_in(values, name)
}

/// `next` when it is a path on this site: one leading `/`, no scheme or host, no
/// backslash or control character; None otherwise.
pub(super) fn safe_next(next: &str) -> Option<&str> {
    let plain = next.len() <= MAX_NEXT_CHARS
        && next.starts_with('/')
        && !next.starts_with("//")
        && !next.contains('\\')
        && !next.chars().any(char::is_control);
    let base = url::Url::parse("http://aiops.invalid/").ok()?;
    let same_origin = base
        .join(next)
        .is_ok_and(|joined| joined.origin() == base.origin());
    (plain && same_origin).then_some(next)
}

fn form_cookie(value: &str, max_age: u32) -> String {
    format!("{FORM_COOKIE}={value}; Path=/sign-in; HttpOnly; SameSite=Strict; Max-Age={max_age}")
}

/// The sign-in form with a fresh pre-session CSRF token (set as its cookie as well).
fn form_response(
    texts: &Texts,
    status: StatusCode,
    view: &View<'_>,
    mut cookies: Vec<String>,
) -> Response {
    let csrf = hex::encode(rand::random::<[u8; 32]>());
    cookies.push(form_cookie(&csrf, 3600));
    respond(status, sign_in_page(texts, view, &csrf), cookies)
}

fn sign_in_page(t: &Texts, view: &View<'_>, csrf: &str) -> Markup {
    layout(
        t,
        html! {
            @if let Some(notice) = view.notice {
                p class="notice" role="status" { (notice) }
            }
            @if let Some(error) = &view.error {
                p class="error" role="alert" id="sign-in-error" { (error) }
            }
            form method="post" action="/sign-in" {
                input type="hidden" name="csrf" value=(csrf);
                input type="hidden" name="next" value=(view.next);
                label for="login" { (t.login) }
                input id="login" name="login" type="text" autocomplete="username" required
                    autofocus value=(view.login);
                label for="password" { (t.password) }
                input id="password" name="password" type="password"
                    autocomplete="current-password" required;
                button id="sign-in" type="submit" { (t.submit) }
            }
            @if !view.providers.is_empty() {
                p class="or" { (view.or) }
                @for provider in &view.providers {
                    a class="provider" id=(provider.id) href=(provider.href) { (provider.label) }
                }
            }
        },
    )
}

fn signed_in_page(t: &Texts, login: &str, session: &SessionInfo) -> Markup {
    layout(
        t,
        html! {
            p id="signed-in" { (t.signed_in_as) " " strong { (login) } }
            form method="post" action="/sign-out" {
                input type="hidden" name="csrf" value=(session.csrf_token);
                button id="sign-out" type="submit" { (t.sign_out) }
            }
        },
    )
}

pub(super) fn layout(t: &Texts, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang=(t.lang) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (t.title) }
                link rel="stylesheet" href="/sign-in.css";
            }
            body {
                main {
                    h1 { (t.title) }
                    (content)
                }
            }
        }
    }
}

pub(super) fn respond(status: StatusCode, page: Markup, cookies: Vec<String>) -> Response {
    let mut response = (status, Html(page.into_string())).into_response();
    secure_headers(response.headers_mut(), cookies);
    response
}

pub(super) fn see_other(location: &str, cookies: Vec<String>) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    secure_headers(response.headers_mut(), cookies);
    response
}

fn secure_headers(headers: &mut HeaderMap, cookies: Vec<String>) {
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // Nothing reaches another site, and the sign-out form still names this site as its
    // `Origin` (under `no-referrer` a browser sends `Origin: null`, which sign-out refuses).
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    for cookie in cookies {
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            headers.append(header::SET_COOKIE, value);
        }
    }
}

/// A "Sign in with …" link of the sign-in page.
pub(super) struct Button {
    pub id: &'static str,
    pub href: String,
    pub label: String,
}

/// The buttons of the configured providers, in the reader's language, keeping `next`.
pub(super) fn buttons(state: &WebState, headers: &HeaderMap, next: &str) -> Vec<Button> {
    let locale = Locale::choose(None, headers);
    let query = if next.is_empty() {
        String::new()
    } else {
        format!(
            "?{}",
            serde_urlencoded::to_string([("next", next)]).unwrap_or_default()
        )
    };
    let mut buttons = Vec::new();
    if Provider::Github.configured(&state.config) {
        buttons.push(Button {
            id: "sign-in-github",
            href: format!("/sign-in/github{query}"),
            label: locale.t("sign_in_providers.with_github"),
        });
    }
    if let Some(oidc) = &state.config.auth.oidc {
        buttons.push(Button {
            id: "sign-in-oidc",
            href: format!("/sign-in/oidc{query}"),
            label: locale.tf("sign_in_providers.with_provider", &[("name", &oidc.name)]),
        });
    }
    buttons
}

/// The label between the password form and the provider buttons.
pub(super) fn or_label(headers: &HeaderMap) -> String {
    Locale::choose(None, headers).t("sign_in_providers.or")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_same_origin_paths_are_followed_after_sign_in() {
        for good in ["/", "/tasks?id=3", "/approvals/abc#x"] {
            assert_eq!(safe_next(good), Some(good), "{good}");
        }
        for bad in [
            "https://evil.example/",
            "//evil.example/x",
            "/\\evil.example",
            "\\\\evil.example",
            "javascript:alert(1)",
            "evil.example",
            "/\t/evil.example",
            "",
        ] {
            assert_eq!(safe_next(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn korean_is_chosen_by_accept_language() {
        let mut headers = HeaderMap::new();
        assert_eq!(texts_for(&headers).lang, "en");
        headers.insert(
            header::ACCEPT_LANGUAGE,
            HeaderValue::from_static("ko-KR,ko;q=0.9,en;q=0.8"),
        );
        assert_eq!(texts_for(&headers).lang, "ko");
        headers.insert(
            header::ACCEPT_LANGUAGE,
            HeaderValue::from_static("en-US,ko;q=0.5"),
        );
        assert_eq!(texts_for(&headers).lang, "en");
    }
}

//! Authentication (a bearer token, or the session cookie with its CSRF token on
//! mutations) and the audit trail of every mutating API request.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, MatchedPath, OriginalUri, Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::AppState;
use crate::audit::NewAuditEntry;
use crate::auth;
use crate::error::{Error, Result};
use crate::model::{Actor, Principal, ProjectScope};
use crate::permissions::{self, On, Permission};
use crate::sessions::{self, SessionInfo};

/// Most bytes of a request path kept in an audit entry; a longer one is cut and says so.
const MAX_AUDITED_PATH_BYTES: usize = 256;

/// The authenticated principal and the permission its operation declares, for the handler
/// to check on the project the request touches.
#[derive(Debug, Clone)]
pub struct Access {
    pub principal: Principal,
    pub permission: Permission,
}

impl Access {
    /// The declared permission on project `id`.
    pub fn on_project(&self, id: i64) -> Result<()> {
        permissions::authorize(&self.principal, self.permission, On::Project(id))
    }

    /// The declared permission on project `name` (NotFound when there is none).
    pub async fn on_project_named(&self, store: &crate::store::Store, name: &str) -> Result<i64> {
        let id = store.project(name).await?.id;
        self.on_project(id)?;
        Ok(id)
    }

    /// The declared permission on the project of task `task_id`.
    pub async fn on_task(&self, store: &crate::store::Store, task_id: i64) -> Result<()> {
        let project = store.task(task_id).await?.project;
        self.on_project_named(store, &project).await.map(|_| ())
    }

    /// The declared permission on project `name`, or in every project for None.
    pub async fn on_project_or_every(
        &self,
        store: &crate::store::Store,
        name: Option<&str>,
    ) -> Result<()> {
        match name {
            Some(name) => self.on_project_named(store, name).await.map(|_| ()),
            None => self.on_every_project(),
        }
    }

    /// The declared permission in every project at once.
    pub fn on_every_project(&self) -> Result<()> {
        permissions::authorize(&self.principal, self.permission, On::EveryProject)
    }

    /// The projects the principal may read.
    pub fn visible(&self) -> ProjectScope {
        permissions::visible_projects(&self.principal)
    }
}

/// The names of the projects a principal may read (None: every project), for listings of
/// things that name their project.
pub struct VisibleNames(Option<std::collections::HashSet<String>>);

impl VisibleNames {
    /// Whether a thing of project `project` (None: of every project) may be seen.
    pub fn sees(&self, project: Option<&str>) -> bool {
        match &self.0 {
            None => true,
            Some(names) => project.is_some_and(|p| names.contains(p)),
        }
    }
}

/// The projects `access`'s principal may read, by name.
pub async fn visible_names(state: &AppState, access: &Access) -> Result<VisibleNames> {
    Ok(VisibleNames(match access.visible() {
        ProjectScope::All => None,
        ProjectScope::Only(ids) => Some(
            state
                .store
                .list_projects()
                .await?
                .into_iter()
                .filter(|p| ids.contains(&p.id))
                .map(|p| p.name)
                .collect(),
        ),
    }))
}

/// Set on a response by a handler that created something, to name it in the audit log.
#[derive(Debug, Clone)]
pub struct AuditTarget(pub String);

/// Resolves the bearer token or the session cookie to a principal (401 otherwise; a
/// cookie-authenticated mutation also needs the `X-CSRF-Token` header, 403 otherwise), runs the handler, and for
/// every request that is not a read appends an audit entry with the outcome, whether
/// the request succeeded, failed or was refused. The entry is bounded (paths cut at
/// `MAX_AUDITED_PATH_BYTES`), and refusals of requests without a valid token are written at
/// most `intake.refusals_audited_per_minute` times a minute per client address.
pub async fn authenticate_and_audit(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut request: Request,
    next: Next,
) -> Response {
    let method = request.method().clone();
    let path = request
        .extensions()
        .get::<OriginalUri>()
        .map_or_else(|| capped(request.uri().path()), |uri| capped(uri.path()));
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| path.clone(), |m| capped(m.as_str()));
    // A path carrying a one-time token (an identity link) is recorded as its route template.
    let path = if route.contains("{token}") {
        route.clone()
    } else {
        path
    };
    let authenticated = authenticate(&state, request.headers()).await;
    // HEAD is answered by the GET route, so it needs what GET needs.
    let lookup = if method == Method::HEAD {
        "GET"
    } else {
        method.as_str()
    };
    let declared = permissions::declared(lookup, route.trim_start_matches("/api/v1"));
    let (principal, response) = match authenticated {
        Ok((principal, session)) => {
            match admit(&principal, declared, &method, request.headers(), &session) {
                Ok(permission) => {
                    if let Some(session) = session {
                        request.extensions_mut().insert(session);
                    }
                    request.extensions_mut().insert(principal.clone());
                    request.extensions_mut().insert(Access {
                        principal: principal.clone(),
                        permission,
                    });
                    (Some(principal), next.run(request).await)
                }
                Err(e) => (Some(principal), e.into_response()),
            }
        }
        Err(e) => (None, e.into_response()),
    };
    let audited = || principal.is_some() || state.guards.audit_refusal(peer.ip());
    if is_mutation(&method) && audited() {
        let target = response
            .extensions()
            .get::<AuditTarget>()
            .map_or_else(|| target_of(&path), |t| t.0.clone());
        let via = principal.as_ref().map(|p| p.via.to_string());
        let entry = NewAuditEntry {
            principal: principal.map(Actor::from),
            action: format!("{method} {route}"),
            target,
            source: peer.ip().to_string(),
            outcome: response.status().as_u16().to_string(),
            detail: json!({ "path": path, "via": via }),
        };
        if let Err(e) = state.store.append_audit(&entry).await {
            tracing::error!(error = %e, action = %entry.action, "could not write the audit log");
        }
    }
    response
}

/// The bearer token's principal, or else the session cookie's (with its session); a
/// bearer token wins when a request carries both.
async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<(Principal, Option<SessionInfo>)> {
    if let Some(token) = bearer_token(headers) {
        return Ok((auth::authenticate(&state.store, token).await?, None));
    }
    let cookies = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok());
    let Some(secret) = sessions::cookie_in(cookies, sessions::COOKIE) else {
        return Err(Error::Unauthorized(
            "send Authorization: Bearer <token> (create one with `aiops token create`) or sign in at /sign-in".into(),
        ));
    };
    match sessions::resolve(&state.store, &state.config, secret).await? {
        Some((principal, session)) => Ok((principal, Some(session))),
        None => Err(Error::Unauthorized(
            "the session is unknown, expired or signed out; sign in again at /sign-in".into(),
        )),
    }
}

/// The operation's declared permission, if `principal` holds it in some project and a
/// cookie-authenticated mutation carries the session's CSRF token; an operation that
/// declares none is refused, so a new route cannot be open by omission.
fn admit(
    principal: &Principal,
    declared: Option<Permission>,
    method: &Method,
    headers: &HeaderMap,
    session: &Option<SessionInfo>,
) -> Result<Permission> {
    if let Some(session) = session.as_ref().filter(|_| is_mutation(method)) {
        let presented = headers
            .get(sessions::CSRF_HEADER)
            .and_then(|value| value.to_str().ok());
        sessions::check_csrf(session, presented)?;
    }
    let permission = declared.ok_or_else(|| {
        tracing::error!("an API route declares no permission in permissions::OPERATIONS");
        Error::Forbidden("this operation declares no permission, so it is refused".into())
    })?;
    permissions::authorize(principal, permission, On::AnyProject)?;
    Ok(permission)
}

/// `path` cut to `MAX_AUDITED_PATH_BYTES` (at a character boundary), marked when cut.
fn capped(path: &str) -> String {
    if path.len() <= MAX_AUDITED_PATH_BYTES {
        return path.to_string();
    }
    let mut end = MAX_AUDITED_PATH_BYTES;
    while !path.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…[{} bytes]", &path[..end], path.len())
}

fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

fn is_mutation(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// `/api/v1/projects/shop` → `projects/shop`.
fn target_of(path: &str) -> String {
    path.trim_start_matches("/api/v1/")
        .trim_end_matches('/')
        .to_string()
}

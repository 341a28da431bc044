//! The one permission check: what each operation needs, and whether a principal has it.
//!
//! Every API operation is declared in `OPERATIONS` with the permission it needs; the HTTP
//! middleware refuses an operation that is not declared, checks the permission for some
//! project before the handler runs, and hands the handler the declared permission, which
//! it checks again on the one project the request touches (`authorize` with
//! `On::Project`). The web pages, the CLI and the chat actions call the same `authorize`;
//! every dashboard form is declared in `FORMS` with its `FormGuard` the same way.
//! A permission needs a scope of the token (sessions and the CLI carry all of them) and a
//! role: the global admin role, or a role in the project.

use crate::error::{Error, Result};
use crate::model::{Principal, ProjectRole, ProjectScope, Scope};

/// What an operation needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    /// Any authenticated principal (its own tokens, the API description, the teams).
    SignedIn,
    /// Read a project: viewer.
    Read,
    /// Create, cancel, retry tasks; replay deliveries and notifications: operator.
    Operate,
    /// Decide approvals: approver.
    Decide,
    /// Edit a project, its channels, schedules, routing rules and credentials: maintainer.
    Maintain,
    /// Users, every token, the audit log, global secrets: a global admin.
    Admin,
}

impl Permission {
    /// The token scope the permission needs.
    pub fn scope(self) -> Scope {
        match self {
            Permission::SignedIn | Permission::Read => Scope::Read,
            Permission::Operate | Permission::Maintain => Scope::Write,
            Permission::Decide => Scope::Approve,
            Permission::Admin => Scope::Admin,
        }
    }

    /// The project role the permission needs; None for the ones no project role gives.
    pub fn project_role(self) -> Option<ProjectRole> {
        match self {
            Permission::Read => Some(ProjectRole::Viewer),
            Permission::Operate => Some(ProjectRole::Operator),
            Permission::Decide => Some(ProjectRole::Approver),
            Permission::Maintain => Some(ProjectRole::Maintainer),
            Permission::SignedIn | Permission::Admin => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Permission::SignedIn => "signed_in",
            Permission::Read => "read",
            Permission::Operate => "operate",
            Permission::Decide => "decide",
            Permission::Maintain => "maintain",
            Permission::Admin => "admin",
        }
    }
}

/// Where a permission is needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum On {
    /// In this project.
    Project(i64),
    /// In some project (a listing, filtered to `visible_projects` afterwards; the check
    /// before a handler knows the project).
    AnyProject,
    /// In every project at once: creating a project, a rule or credential for all of them.
    EveryProject,
}

/// Every API operation (method and path under `/api/v1`, as in the OpenAPI document) and
/// the permission it needs. An operation missing here is refused by the middleware.
pub const OPERATIONS: &[(&str, &str, Permission)] = &[
    ("GET", "/openapi.json", Permission::SignedIn),
    ("GET", "/teams", Permission::SignedIn),
    ("GET", "/projects", Permission::Read),
    ("POST", "/projects", Permission::Maintain),
    ("GET", "/projects/{name}", Permission::Read),
    ("PATCH", "/projects/{name}", Permission::Maintain),
    ("DELETE", "/projects/{name}", Permission::Maintain),
    ("GET", "/projects/{name}/budget", Permission::Read),
    ("PUT", "/projects/{name}/budget", Permission::Maintain),
    ("GET", "/projects/{name}/channels", Permission::Read),
    ("POST", "/projects/{name}/channels", Permission::Maintain),
    (
        "DELETE",
        "/projects/{name}/channels/{id}",
        Permission::Maintain,
    ),
    ("GET", "/notifications", Permission::Read),
    ("POST", "/notifications/{id}/retry", Permission::Operate),
    ("GET", "/credentials", Permission::Read),
    ("POST", "/credentials", Permission::Maintain),
    ("DELETE", "/credentials/{id}", Permission::Maintain),
    ("GET", "/tasks", Permission::Read),
    ("POST", "/tasks", Permission::Operate),
    ("GET", "/tasks/{id}", Permission::Read),
    ("GET", "/tasks/{id}/findings/{name}", Permission::Read),
    ("POST", "/tasks/{id}/cancel", Permission::Operate),
    ("POST", "/tasks/{id}/retry", Permission::Operate),
    ("POST", "/tasks/{id}/deliver", Permission::Operate),
    ("GET", "/tasks/{id}/runs/{run_id}/log", Permission::Read),
    ("GET", "/approvals", Permission::Read),
    ("GET", "/approvals/{id}", Permission::Read),
    ("POST", "/approvals/{id}/decision", Permission::Decide),
    ("GET", "/events/stream", Permission::Read),
    ("GET", "/deliveries", Permission::Read),
    ("POST", "/deliveries/{id}/replay", Permission::Operate),
    ("GET", "/schedules", Permission::Read),
    ("POST", "/schedules", Permission::Maintain),
    ("GET", "/schedules/{name}", Permission::Read),
    ("PATCH", "/schedules/{name}", Permission::Maintain),
    ("DELETE", "/schedules/{name}", Permission::Maintain),
    ("GET", "/routing-rules", Permission::Read),
    ("POST", "/routing-rules", Permission::Maintain),
    ("GET", "/routing-rules/{name}", Permission::Read),
    ("PATCH", "/routing-rules/{name}", Permission::Maintain),
    ("DELETE", "/routing-rules/{name}", Permission::Maintain),
    ("GET", "/analytics/tasks", Permission::Read),
    ("GET", "/analytics/approvals", Permission::Read),
    ("GET", "/analytics/expensive-tasks", Permission::Read),
    ("GET", "/analytics/agents", Permission::Read),
    ("GET", "/audit", Permission::Admin),
    ("GET", "/users", Permission::Admin),
    ("POST", "/users", Permission::Admin),
    ("GET", "/users/{login}", Permission::Admin),
    ("PATCH", "/users/{login}", Permission::Admin),
    (
        "PUT",
        "/users/{login}/projects/{project}",
        Permission::Admin,
    ),
    (
        "DELETE",
        "/users/{login}/projects/{project}",
        Permission::Admin,
    ),
    ("DELETE", "/users/{login}/sessions", Permission::Admin),
    ("GET", "/sessions", Permission::SignedIn),
    ("DELETE", "/sessions/{id}", Permission::SignedIn),
    ("GET", "/tokens", Permission::SignedIn),
    ("POST", "/tokens", Permission::SignedIn),
    ("DELETE", "/tokens/{name}", Permission::SignedIn),
    ("POST", "/me/identity-links/{token}", Permission::SignedIn),
];

/// What a dashboard form needs before its handler may act.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FormGuard {
    /// A signed-in user with this permission on the form's project (or globally, for the
    /// admin's forms and those of every project), with the session's CSRF token.
    Session(Permission),
    /// The reader's own things (settings, sessions, tokens, chat links, signing out): any
    /// signed-in user, with the session's CSRF token.
    OwnSession,
    /// A signed approval link: the signature is the right, and the project's link mode says
    /// whether a signed-in decider is needed as well.
    SignedLink,
    /// Anyone: the sign-in form itself (its own pre-session double-submit token).
    Public,
}

/// Every dashboard form (a `POST` route of the pages) and its guard. The pages refuse a
/// `POST` to a route missing here, so a new form cannot ship without a declaration.
pub const FORMS: &[(&str, FormGuard)] = &[
    ("/tasks", FormGuard::Session(Permission::Operate)),
    (
        "/tasks/{id}/cancel",
        FormGuard::Session(Permission::Operate),
    ),
    ("/tasks/{id}/retry", FormGuard::Session(Permission::Operate)),
    ("/inbox/{id}", FormGuard::Session(Permission::Decide)),
    ("/projects/{name}", FormGuard::Session(Permission::Maintain)),
    (
        "/projects/{name}/credentials",
        FormGuard::Session(Permission::Maintain),
    ),
    (
        "/projects/{name}/credentials/{id}/delete",
        FormGuard::Session(Permission::Maintain),
    ),
    (
        "/projects/{name}/channels",
        FormGuard::Session(Permission::Maintain),
    ),
    (
        "/projects/{name}/channels/{id}/delete",
        FormGuard::Session(Permission::Maintain),
    ),
    (
        "/schedules/{name}/enabled",
        FormGuard::Session(Permission::Maintain),
    ),
    (
        "/schedules/{name}/run",
        FormGuard::Session(Permission::Operate),
    ),
    (
        "/deliveries/{id}/replay",
        FormGuard::Session(Permission::Operate),
    ),
    (
        "/notifications/{id}/retry",
        FormGuard::Session(Permission::Operate),
    ),
    (
        "/users/{login}/status",
        FormGuard::Session(Permission::Admin),
    ),
    (
        "/users/{login}/sign-out",
        FormGuard::Session(Permission::Admin),
    ),
    ("/teams", FormGuard::Session(Permission::Maintain)),
    ("/teams/{name}", FormGuard::Session(Permission::Maintain)),
    (
        "/teams/{name}/copy",
        FormGuard::Session(Permission::Maintain),
    ),
    (
        "/teams/{name}/delete",
        FormGuard::Session(Permission::Maintain),
    ),
    ("/account", FormGuard::OwnSession),
    ("/account/sessions/{id}/revoke", FormGuard::OwnSession),
    ("/account/link", FormGuard::OwnSession),
    ("/account/apps/{id}/revoke", FormGuard::OwnSession),
    ("/oauth/authorize", FormGuard::OwnSession),
    ("/tokens/{name}/revoke", FormGuard::OwnSession),
    ("/sign-out", FormGuard::OwnSession),
    ("/approvals/{token}", FormGuard::SignedLink),
    ("/sign-in", FormGuard::Public),
];

/// The guard declared for the dashboard form posted to `route` (a route template).
pub fn declared_form(route: &str) -> Option<FormGuard> {
    FORMS
        .iter()
        .find(|(path, _)| *path == route)
        .map(|(_, guard)| *guard)
}

/// Ok when `principal` (None: nobody is signed in) may post a form guarded by `guard` `on`
/// the given project(s); Unauthorized without a session, Forbidden without the permission.
/// A signed link's signature and the sign-in form's token are their handlers' to check.
pub fn admit_form(guard: FormGuard, principal: Option<&Principal>, on: On) -> Result<()> {
    let permission = match guard {
        FormGuard::SignedLink | FormGuard::Public => return Ok(()),
        FormGuard::OwnSession => Permission::SignedIn,
        FormGuard::Session(permission) => permission,
    };
    let principal =
        principal.ok_or_else(|| Error::Unauthorized("sign in to send this form".into()))?;
    authorize(principal, permission, on)
}

/// The permission declared for `method` `path` (a route template under `/api/v1`).
pub fn declared(method: &str, path: &str) -> Option<Permission> {
    OPERATIONS
        .iter()
        .find(|(m, p, _)| m.eq_ignore_ascii_case(method) && *p == path)
        .map(|(_, _, permission)| *permission)
}

/// Ok when `principal` has `permission` `on` the given project(s); Forbidden naming what
/// is missing otherwise.
pub fn authorize(principal: &Principal, permission: Permission, on: On) -> Result<()> {
    let scope = permission.scope();
    if !principal.scopes.contains(scope) {
        return Err(Error::Forbidden(format!(
            "{} acts through {} without the {scope} scope this needs",
            principal.name, principal.via
        )));
    }
    let allowed = match permission.project_role() {
        None if permission == Permission::Admin => {
            principal.admin && principal.project_id.is_none()
        }
        None => true,
        Some(needed) => role_on(principal, on).is_some_and(|held| held >= needed),
    };
    if allowed {
        return Ok(());
    }
    let needs = match (permission.project_role(), on) {
        (None, _) => "the admin role".to_string(),
        (Some(role), On::Project(_)) => format!("the {role} role in this project"),
        (Some(role), On::AnyProject) => format!("the {role} role in a project"),
        (Some(role), On::EveryProject) => format!("the {role} role in every project"),
    };
    Err(Error::Forbidden(format!(
        "{} may not do this: it needs {needs}",
        principal.name
    )))
}

/// The role `principal` holds `on` the project(s), its token's project restriction applied.
fn role_on(principal: &Principal, on: On) -> Option<ProjectRole> {
    match (on, principal.project_id) {
        (On::Project(id), Some(only)) if id != only => None,
        (On::Project(id), _) => principal.role_in(Some(id)),
        (On::AnyProject, Some(only)) => principal.role_in(Some(only)),
        (On::AnyProject, None) if principal.admin => Some(ProjectRole::Maintainer),
        (On::AnyProject, None) => principal.memberships.iter().map(|m| m.role).max(),
        (On::EveryProject, Some(_)) => None,
        (On::EveryProject, None) => principal.role_in(None),
    }
}

/// The projects `principal` may read: every one (an admin, a member of every project) or
/// those it belongs to, narrowed by its token's restriction.
pub fn visible_projects(principal: &Principal) -> ProjectScope {
    if !principal.scopes.contains(Scope::Read) {
        return ProjectScope::Only(Vec::new());
    }
    let every = principal.role_in(None).is_some();
    match principal.project_id {
        Some(only) if principal.role_in(Some(only)).is_some() => ProjectScope::Only(vec![only]),
        Some(_) => ProjectScope::Only(Vec::new()),
        None if every => ProjectScope::All,
        None => ProjectScope::Only(
            principal
                .memberships
                .iter()
                .filter_map(|m| m.project_id)
                .collect(),
        ),
    }
}

/// Whether `scope` lets project `id` be seen.
pub fn sees(scope: &ProjectScope, id: i64) -> bool {
    match scope {
        ProjectScope::All => true,
        ProjectScope::Only(ids) => ids.contains(&id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Membership, Role, Scopes, Via};

    fn member(memberships: Vec<Membership>, scopes: Scopes) -> Principal {
        Principal {
            id: Some(7),
            name: "ann".into(),
            role: Role::Viewer,
            admin: false,
            memberships,
            scopes,
            project_id: None,
            service: false,
            via: Via::Session { id: 1 },
        }
    }

    fn of(project_id: Option<i64>, role: ProjectRole) -> Membership {
        Membership {
            project_id,
            project: None,
            role,
        }
    }

    #[test]
    fn a_role_counts_in_its_project_only_and_scopes_cap_it() {
        let ann = member(vec![of(Some(1), ProjectRole::Approver)], Scopes::ALL);
        assert!(authorize(&ann, Permission::Decide, On::Project(1)).is_ok());
        assert!(authorize(&ann, Permission::Decide, On::Project(2)).is_err());
        assert!(authorize(&ann, Permission::Maintain, On::Project(1)).is_err());
        assert!(authorize(&ann, Permission::Maintain, On::EveryProject).is_err());
        assert!(authorize(&ann, Permission::Admin, On::AnyProject).is_err());
        assert_eq!(visible_projects(&ann), ProjectScope::Only(vec![1]));
        let read_only = member(ann.memberships.clone(), Scopes::of(&[Scope::Read]));
        assert!(authorize(&read_only, Permission::Read, On::Project(1)).is_ok());
        assert!(authorize(&read_only, Permission::Decide, On::Project(1)).is_err());
        let every = member(vec![of(None, ProjectRole::Viewer)], Scopes::ALL);
        assert!(authorize(&every, Permission::Read, On::Project(9)).is_ok());
        assert_eq!(visible_projects(&every), ProjectScope::All);
    }

    #[test]
    fn every_form_is_declared_once_and_guarded_as_declared() {
        let mut seen = std::collections::HashSet::new();
        for (route, _) in FORMS {
            assert!(seen.insert(route), "{route} twice");
        }
        let ann = member(vec![of(Some(1), ProjectRole::Operator)], Scopes::ALL);
        let guard = declared_form("/tasks/{id}/cancel").unwrap();
        assert!(admit_form(guard, Some(&ann), On::Project(1)).is_ok());
        assert!(admit_form(guard, Some(&ann), On::Project(2)).is_err());
        assert!(admit_form(guard, None, On::Project(1)).is_err());
        assert!(admit_form(FormGuard::OwnSession, Some(&ann), On::AnyProject).is_ok());
        assert!(admit_form(FormGuard::Public, None, On::AnyProject).is_ok());
        assert_eq!(declared_form("/tasks/{id}"), None);
    }

    #[test]
    fn every_operation_is_declared_once() {
        let mut seen = std::collections::HashSet::new();
        for (method, path, _) in OPERATIONS {
            assert!(seen.insert((method, path)), "{method} {path} twice");
        }
    }
}

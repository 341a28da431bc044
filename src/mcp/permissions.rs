//! What each MCP operation needs, in the terms of the API's declarations
//! (`permissions::Permission`: read, operate, decide, …), checked twice as on the API: in
//! some project before the tool runs (`check`, in `Aiops::call_tool` and the resource
//! handlers), then on the one project the call touches (`on_project`, in the tool), so a
//! member of one project reads, runs and decides nothing of another. Listings are filtered to
//! the projects the caller may read (`permissions::visible_projects`).
//!
//! An operation missing here is refused, so a new tool is closed until it is declared.

use crate::error::{Error, Result};
use crate::model::Principal;
pub use crate::permissions::Permission;
use crate::permissions::{self, On};

/// One MCP operation (a tool's name, or `resources/…`) and the permission it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Declared {
    pub operation: &'static str,
    pub permission: Permission,
}

const fn needs(operation: &'static str, permission: Permission) -> Declared {
    Declared {
        operation,
        permission,
    }
}

/// Every MCP operation and what it needs, as the JSON API's twins declare it: reads are
/// `read`, tasks are `operate`, decisions are `decide`.
pub const PERMISSIONS: &[Declared] = &[
    needs("list_projects", Permission::Read),
    needs("create_task", Permission::Operate),
    needs("get_task", Permission::Read),
    needs("list_tasks", Permission::Read),
    needs("get_findings", Permission::Read),
    needs("list_pending_approvals", Permission::Read),
    needs("decide_approval", Permission::Decide),
    needs("cancel_task", Permission::Operate),
    needs("get_diff", Permission::Read),
    needs("resources/list", Permission::Read),
    needs("resources/read", Permission::Read),
];

/// The permission `operation` needs; None for an operation nobody declared.
pub fn declared(operation: &str) -> Option<Permission> {
    PERMISSIONS
        .iter()
        .find(|p| p.operation == operation)
        .map(|p| p.permission)
}

fn undeclared(operation: &str) -> Error {
    Error::Forbidden(format!(
        "{operation} is not declared in the MCP permission table, so nobody may call it"
    ))
}

/// Whether `principal` may call `operation` at all: its declared permission in some project
/// (and the token's scope for it).
pub fn check(principal: &Principal, operation: &str) -> Result<()> {
    let permission = declared(operation).ok_or_else(|| undeclared(operation))?;
    permissions::authorize(principal, permission, On::AnyProject)
}

/// Whether `principal` may call `operation` on project `project_id`.
pub fn on_project(principal: &Principal, operation: &str, project_id: i64) -> Result<()> {
    let permission = declared(operation).ok_or_else(|| undeclared(operation))?;
    permissions::authorize(principal, permission, On::Project(project_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_operation_is_declared_once_and_nothing_else_passes() {
        let mut names: Vec<_> = PERMISSIONS.iter().map(|p| p.operation).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), PERMISSIONS.len());
        assert!(check(&Principal::cli(), "format_disk").is_err());
        assert!(check(&Principal::cli(), "decide_approval").is_ok());
    }
}

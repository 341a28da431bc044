//! Which role each MCP operation needs: the one table, checked in one place
//! (`Aiops::call_tool` and the resource handlers) and walked by the permission-matrix test.
//!
//! An operation missing here is refused, so a new tool is closed until it is declared. When
//! the per-project permission declarations of issue 12 land, these rows become theirs.

use crate::error::{Error, Result};
use crate::model::{Principal, Role};

/// One MCP operation (a tool's name, or `resources/…`) and the least role that may call it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Permission {
    pub operation: &'static str,
    pub role: Role,
}

const fn needs(operation: &'static str, role: Role) -> Permission {
    Permission { operation, role }
}

/// Every MCP operation and the role it needs; reads are for viewers, changes for operators,
/// as on the JSON API.
pub const PERMISSIONS: &[Permission] = &[
    needs("list_projects", Role::Viewer),
    needs("create_task", Role::Operator),
    needs("get_task", Role::Viewer),
    needs("list_tasks", Role::Viewer),
    needs("get_findings", Role::Viewer),
    needs("list_pending_approvals", Role::Viewer),
    needs("decide_approval", Role::Operator),
    needs("cancel_task", Role::Operator),
    needs("get_diff", Role::Viewer),
    needs("resources/list", Role::Viewer),
    needs("resources/read", Role::Viewer),
];

/// The role `operation` needs; None for an operation nobody declared.
pub fn required_role(operation: &str) -> Option<Role> {
    PERMISSIONS
        .iter()
        .find(|p| p.operation == operation)
        .map(|p| p.role)
}

/// Whether `principal` may call `operation`: Forbidden, naming the role it needs and how to
/// get it, unless its role is at least the declared one.
pub fn check(principal: &Principal, operation: &str) -> Result<()> {
    let Some(role) = required_role(operation) else {
        return Err(Error::Forbidden(format!(
            "{operation} is not declared in the MCP permission table, so nobody may call it"
        )));
    };
    if principal.role >= role {
        return Ok(());
    }
    Err(Error::Forbidden(format!(
        "{operation} needs role {role}; {} has role {}. Ask an admin for a token with role \
         {role} (`aiops token create --role {role}`)",
        principal.name, principal.role
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(role: Role) -> Principal {
        Principal {
            id: Some(1),
            name: "t".into(),
            role,
            ..Principal::cli()
        }
    }

    #[test]
    fn roles_at_or_above_the_declared_one_pass_and_others_are_told_what_they_need() {
        for permission in PERMISSIONS {
            for role in Role::ALL {
                let outcome = check(&principal(*role), permission.operation);
                assert_eq!(outcome.is_ok(), *role >= permission.role, "{permission:?}");
                if let Err(e) = outcome {
                    assert!(e.to_string().contains("aiops token create"), "{e}");
                }
            }
        }
        assert!(check(&principal(Role::Admin), "format_disk").is_err());
    }

    #[test]
    fn each_operation_is_declared_once() {
        let mut names: Vec<_> = PERMISSIONS.iter().map(|p| p.operation).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), PERMISSIONS.len());
    }
}

//! Queries on `principals` (users and service accounts) and `memberships`.

use chrono::{DateTime, Utc};

use super::{ConstraintExt, Store, Tx};
use crate::error::{Error, Result};
use crate::model::{GlobalRole, Membership, PrincipalKind, ProjectRole, User, UserStatus};

const USER_COLUMNS: &str = "SELECT id, kind, name AS login, display_name, email, github_login,
        global_role, status, (password_hash IS NOT NULL) AS has_password, created_at, last_seen_at
    FROM principals";

/// A principal to insert.
#[derive(Debug, Clone)]
pub struct NewUser<'a> {
    pub kind: PrincipalKind,
    pub login: &'a str,
    pub display_name: &'a str,
    pub email: Option<&'a str>,
    pub github_login: Option<&'a str>,
    pub global_role: GlobalRole,
    pub password_hash: Option<&'a str>,
}

/// Inserts a principal inside `tx`; a taken login or GitHub login is a conflict.
pub async fn insert(tx: &mut Tx, user: &NewUser<'_>) -> Result<i64> {
    let conflict = format!(
        "a user or token owner named {:?} (or with that GitHub login) already exists",
        user.login
    );
    Ok(with_tx!(tx, conn => sqlx::query_scalar(
        "INSERT INTO principals (kind, name, display_name, email, github_login, global_role,
            password_hash, status, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id")
        .bind(user.kind)
        .bind(user.login)
        .bind(user.display_name)
        .bind(user.email)
        .bind(user.github_login)
        .bind(user.global_role)
        .bind(user.password_hash)
        .bind(UserStatus::Active)
        .bind(Utc::now())
        .fetch_one(&mut *conn)
        .await
        .on_conflict(conflict))?)
}

/// Gives principal `principal_id` `role` in project `project_id` (None: every project)
/// inside `tx`, replacing the role it had there; an admin's grant, which a claim never takes
/// away.
pub async fn grant(
    tx: &mut Tx,
    principal_id: i64,
    project_id: Option<i64>,
    role: ProjectRole,
) -> Result<()> {
    grant_as(tx, principal_id, project_id, role, false).await
}

/// [`grant`], saying whether a provider's claim gave it (`from_claim`: taken away again when
/// the claim no longer gives it).
pub async fn grant_as(
    tx: &mut Tx,
    principal_id: i64,
    project_id: Option<i64>,
    role: ProjectRole,
    from_claim: bool,
) -> Result<()> {
    with_tx!(tx, conn => sqlx::query(
        "DELETE FROM memberships WHERE principal_id = $1 AND COALESCE(project_id, 0) = COALESCE($2, 0)")
        .bind(principal_id)
        .bind(project_id)
        .execute(&mut *conn)
        .await
        .map(|r| r.rows_affected()))?;
    with_tx!(tx, conn => sqlx::query(
        "INSERT INTO memberships (principal_id, project_id, role, created_at, from_claim)
         VALUES ($1, $2, $3, $4, $5)")
        .bind(principal_id)
        .bind(project_id)
        .bind(role)
        .bind(Utc::now())
        .bind(from_claim)
        .execute(&mut *conn)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(())
}

/// The role principal `id` holds in project `project_id` inside `tx` (an admin maintains every
/// project); None when it holds none or is disabled.
pub async fn role_in_project(tx: &mut Tx, id: i64, project_id: i64) -> Result<Option<ProjectRole>> {
    let global: Option<(GlobalRole, UserStatus)> = with_tx!(tx, conn => sqlx::query_as(
        "SELECT global_role, status FROM principals WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await)?;
    match global {
        None | Some((_, UserStatus::Disabled)) => return Ok(None),
        Some((GlobalRole::Admin, _)) => return Ok(Some(ProjectRole::Maintainer)),
        Some(_) => {}
    }
    let roles: Vec<ProjectRole> = with_tx!(tx, conn => sqlx::query_scalar(
        "SELECT role FROM memberships
         WHERE principal_id = $1 AND (project_id IS NULL OR project_id = $2)")
        .bind(id)
        .bind(project_id)
        .fetch_all(&mut *conn)
        .await)?;
    Ok(roles.into_iter().max())
}

impl Store {
    /// The id of the user whose GitHub login is `login` (GitHub logins ignore case).
    pub async fn user_by_github_login(&self, login: &str) -> Result<Option<i64>> {
        Ok(with_pool!(self, pool => sqlx::query_scalar(
            "SELECT id FROM principals WHERE LOWER(github_login) = LOWER($1) ORDER BY id LIMIT 1")
            .bind(login)
            .fetch_optional(pool)
            .await)?)
    }

    /// The principal with this login, or NotFound.
    pub async fn user(&self, login: &str) -> Result<User> {
        let sql = sqlx::AssertSqlSafe(format!("{USER_COLUMNS} WHERE name = $1"));
        with_pool!(self, pool => sqlx::query_as(sql).bind(login).fetch_optional(pool).await)?
            .ok_or_else(|| Error::NotFound(format!("user {login:?}")))
    }

    /// The principal with this id, or NotFound.
    pub async fn user_by_id(&self, id: i64) -> Result<User> {
        let sql = sqlx::AssertSqlSafe(format!("{USER_COLUMNS} WHERE id = $1"));
        with_pool!(self, pool => sqlx::query_as(sql).bind(id).fetch_optional(pool).await)?
            .ok_or_else(|| Error::NotFound(format!("user {id}")))
    }

    /// Every principal, by login.
    pub async fn list_users(&self) -> Result<Vec<User>> {
        let sql = sqlx::AssertSqlSafe(format!("{USER_COLUMNS} ORDER BY name"));
        Ok(with_pool!(self, pool => sqlx::query_as(sql).fetch_all(pool).await)?)
    }

    /// The memberships of principal `id`, every-project ones first.
    pub async fn memberships(&self, id: i64) -> Result<Vec<Membership>> {
        Ok(with_pool!(self, pool => sqlx::query_as(
            "SELECT m.project_id, p.name AS project, m.role
             FROM memberships m LEFT JOIN projects p ON p.id = m.project_id
             WHERE m.principal_id = $1 ORDER BY COALESCE(m.project_id, 0)")
            .bind(id)
            .fetch_all(pool)
            .await)?)
    }

    /// Removes principal `id`'s membership of project `project_id` (None: every project);
    /// NotFound if there was none.
    pub async fn revoke_membership(&self, id: i64, project_id: Option<i64>) -> Result<()> {
        let removed = with_pool!(self, pool => sqlx::query(
            "DELETE FROM memberships WHERE principal_id = $1 AND COALESCE(project_id, 0) = COALESCE($2, 0)")
            .bind(id)
            .bind(project_id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        if removed == 0 {
            return Err(Error::NotFound("no such membership".into()));
        }
        Ok(())
    }

    /// Sets principal `id`'s status.
    pub async fn set_user_status(&self, id: i64, status: UserStatus) -> Result<()> {
        with_pool!(self, pool => sqlx::query("UPDATE principals SET status = $2 WHERE id = $1")
            .bind(id)
            .bind(status)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Replaces principal `id`'s password hash.
    pub async fn set_password_hash(&self, id: i64, hash: &str) -> Result<()> {
        with_pool!(self, pool => sqlx::query("UPDATE principals SET password_hash = $2 WHERE id = $1")
            .bind(id)
            .bind(hash)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Records that principal `id` was seen at `at`.
    pub async fn touch_principal(&self, id: i64, at: DateTime<Utc>) -> Result<()> {
        with_pool!(self, pool => sqlx::query("UPDATE principals SET last_seen_at = $2 WHERE id = $1")
            .bind(id)
            .bind(at)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }
}

//! Queries on `projects`.

use chrono::Utc;
use sqlx::types::Json;

use super::{ConstraintExt, Store};
use crate::error::{Error, Result};
use crate::model::{Project, ProjectSpec};

impl Store {
    /// Inserts a project; a taken name is a conflict.
    pub async fn insert_project(&self, spec: &ProjectSpec) -> Result<Project> {
        let now = Utc::now();
        with_pool!(self, pool => sqlx::query_as(
            "INSERT INTO projects (name, repo_url, local_path, default_branch, branch_strategy,
                tech_stack, conventions, github_repo, max_concurrency, timeout_secs, created_at, updated_at,
                decide_role, self_approval, required_approvals)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11, $12, $13, $14)
             RETURNING *")
            .bind(&spec.name)
            .bind(&spec.repo_url)
            .bind(&spec.local_path)
            .bind(&spec.default_branch)
            .bind(&spec.branch_strategy)
            .bind(Json(&spec.tech_stack))
            .bind(&spec.conventions)
            .bind(&spec.github_repo)
            .bind(spec.max_concurrency)
            .bind(spec.timeout_secs)
            .bind(now)
            .bind(spec.approval_policy.decide_role)
            .bind(spec.approval_policy.self_approval)
            .bind(spec.approval_policy.required_approvals)
            .fetch_one(pool)
            .await)
        .on_conflict(format!("a project named {:?} already exists", spec.name))
    }

    /// The project with this name, if any.
    pub async fn find_project(&self, name: &str) -> Result<Option<Project>> {
        Ok(
            with_pool!(self, pool => sqlx::query_as("SELECT * FROM projects WHERE name = $1")
            .bind(name)
            .fetch_optional(pool)
            .await)?,
        )
    }

    /// The project with this name, or NotFound.
    pub async fn project(&self, name: &str) -> Result<Project> {
        self.find_project(name)
            .await?
            .ok_or_else(|| Error::NotFound(format!("project {name:?}")))
    }

    /// The project with this id, or NotFound.
    pub async fn project_by_id(&self, id: i64) -> Result<Project> {
        with_pool!(self, pool => sqlx::query_as("SELECT * FROM projects WHERE id = $1")
            .bind(id)
            .fetch_optional(pool)
            .await)?
        .ok_or_else(|| Error::NotFound(format!("project {id}")))
    }

    /// Every project, by name.
    pub async fn list_projects(&self) -> Result<Vec<Project>> {
        Ok(
            with_pool!(self, pool => sqlx::query_as("SELECT * FROM projects ORDER BY name")
            .fetch_all(pool)
            .await)?,
        )
    }

    /// Replaces a project's values (its name stays).
    pub async fn update_project(&self, id: i64, spec: &ProjectSpec) -> Result<Project> {
        with_pool!(self, pool => sqlx::query_as(
            "UPDATE projects SET repo_url = $2, local_path = $3, default_branch = $4,
                branch_strategy = $5, tech_stack = $6, conventions = $7, github_repo = $8,
                max_concurrency = $9, timeout_secs = $10, updated_at = $11,
                decide_role = $12, self_approval = $13, required_approvals = $14
             WHERE id = $1 RETURNING *")
            .bind(id)
            .bind(&spec.repo_url)
            .bind(&spec.local_path)
            .bind(&spec.default_branch)
            .bind(&spec.branch_strategy)
            .bind(Json(&spec.tech_stack))
            .bind(&spec.conventions)
            .bind(&spec.github_repo)
            .bind(spec.max_concurrency)
            .bind(spec.timeout_secs)
            .bind(Utc::now())
            .bind(spec.approval_policy.decide_role)
            .bind(spec.approval_policy.self_approval)
            .bind(spec.approval_policy.required_approvals)
            .fetch_optional(pool)
            .await)?
        .ok_or_else(|| Error::NotFound(format!("project {}", spec.name)))
    }

    /// Deletes a project and its credentials; refused while it has tasks.
    pub async fn delete_project(&self, id: i64) -> Result<()> {
        let deleted = with_pool!(self, pool => sqlx::query("DELETE FROM projects WHERE id = $1")
            .bind(id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))
        .on_conflict(
            "the project still has tasks; it cannot be removed while its history refers to it",
        )?;
        if deleted == 0 {
            return Err(Error::NotFound(format!("project {id}")));
        }
        Ok(())
    }
}

//! The team presets made on the dashboard (`team_presets`).

use chrono::Utc;
use sqlx::types::Json;

use super::{ConstraintExt, Store};
use crate::error::{Error, Result};
use crate::model::{PresetDraft, StoredPreset};

const COLUMNS: &str =
    "name, description, members, trigger_keywords, created_by, created_at, updated_at";

impl Store {
    /// Every stored preset, by name.
    pub async fn team_presets(&self) -> Result<Vec<StoredPreset>> {
        let sql = sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM team_presets ORDER BY name"));
        Ok(with_pool!(self, pool => sqlx::query_as(sql).fetch_all(pool).await)?)
    }

    /// The stored preset called `name`, if there is one.
    pub async fn team_preset(&self, name: &str) -> Result<Option<StoredPreset>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM team_presets WHERE name = $1"
        ));
        Ok(with_pool!(self, pool => sqlx::query_as(sql).bind(name).fetch_optional(pool).await)?)
    }

    /// Stores a new preset made by `created_by`; a taken name is a conflict.
    pub async fn insert_team_preset(&self, draft: &PresetDraft, created_by: &str) -> Result<()> {
        let now = Utc::now();
        with_pool!(self, pool => sqlx::query(
            "INSERT INTO team_presets (name, description, members, trigger_keywords, created_by,
                created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6)")
            .bind(&draft.name)
            .bind(&draft.description)
            .bind(Json(&draft.members))
            .bind(Json(&draft.trigger_keywords))
            .bind(created_by)
            .bind(now)
            .execute(pool)
            .await
            .map(|_| ()))
        .on_conflict(format!(
            "a team preset called {:?} already exists",
            draft.name
        ))?;
        Ok(())
    }

    /// Replaces the description, members and keywords of the preset `draft.name`.
    pub async fn update_team_preset(&self, draft: &PresetDraft) -> Result<()> {
        let done = with_pool!(self, pool => sqlx::query(
            "UPDATE team_presets SET description = $2, members = $3, trigger_keywords = $4,
                updated_at = $5 WHERE name = $1")
            .bind(&draft.name)
            .bind(&draft.description)
            .bind(Json(&draft.members))
            .bind(Json(&draft.trigger_keywords))
            .bind(Utc::now())
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        if done == 0 {
            return Err(Error::NotFound(format!("team preset {:?}", draft.name)));
        }
        Ok(())
    }

    /// Deletes the preset `name`.
    /// Up to five tasks naming team `team` that are not over yet (queued, running or
    /// awaiting approval), oldest first.
    pub async fn open_tasks_of_team(&self, team: &str) -> Result<Vec<i64>> {
        Ok(with_pool!(self, pool => sqlx::query_scalar(
            "SELECT id FROM tasks WHERE team = $1
               AND status IN ('queued', 'running', 'awaiting_approval')
             ORDER BY id LIMIT 5")
            .bind(team)
            .fetch_all(pool)
            .await)?)
    }

    pub async fn delete_team_preset(&self, name: &str) -> Result<()> {
        let done = with_pool!(self, pool => sqlx::query("DELETE FROM team_presets WHERE name = $1")
            .bind(name)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        if done == 0 {
            return Err(Error::NotFound(format!("team preset {name:?}")));
        }
        Ok(())
    }
}

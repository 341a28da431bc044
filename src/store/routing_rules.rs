//! Queries on `routing_rules`.

use chrono::Utc;
use sqlx::types::Json;

use super::{ConstraintExt, Store};
use crate::error::{Error, Result};
use crate::model::{AlertRuleSpec, Origin, RoutingRule, RoutingRuleSpec};

const RULE_SELECT: &str =
    "SELECT id, definition, origin, file, created_at, updated_at FROM routing_rules";

impl Store {
    /// Inserts a rule; a taken name is a conflict.
    pub async fn insert_routing_rule(
        &self,
        spec: &RoutingRuleSpec,
        project_id: Option<i64>,
        origin: Origin,
        file: Option<&str>,
    ) -> Result<RoutingRule> {
        let id: i64 = with_pool!(self, pool => sqlx::query_scalar(
            "INSERT INTO routing_rules (name, kind, project_id, position, enabled, definition,
                origin, file, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) RETURNING id")
            .bind(spec.name())
            .bind(spec.kind())
            .bind(project_id)
            .bind(spec.position())
            .bind(spec.enabled())
            .bind(Json(spec))
            .bind(origin)
            .bind(file)
            .bind(Utc::now())
            .fetch_one(pool)
            .await)
        .on_conflict(format!(
            "a routing rule named {:?} already exists",
            spec.name()
        ))?;
        self.routing_rule_by_id(id).await
    }

    /// Replaces a rule's definition and the file declaring it; its name and origin stay.
    pub async fn update_routing_rule(
        &self,
        id: i64,
        spec: &RoutingRuleSpec,
        project_id: Option<i64>,
        file: Option<&str>,
    ) -> Result<RoutingRule> {
        let updated = with_pool!(self, pool => sqlx::query(
            "UPDATE routing_rules SET kind = $2, project_id = $3, position = $4, enabled = $5,
                definition = $6, file = $7, updated_at = $8
             WHERE id = $1")
            .bind(id)
            .bind(spec.kind())
            .bind(project_id)
            .bind(spec.position())
            .bind(spec.enabled())
            .bind(Json(spec))
            .bind(file)
            .bind(Utc::now())
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        if updated == 0 {
            return Err(Error::NotFound(format!("routing rule {:?}", spec.name())));
        }
        self.routing_rule_by_id(id).await
    }

    /// Deletes a rule.
    pub async fn delete_routing_rule(&self, id: i64) -> Result<()> {
        let deleted = with_pool!(self, pool => sqlx::query("DELETE FROM routing_rules WHERE id = $1")
            .bind(id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        if deleted == 0 {
            return Err(Error::NotFound(format!("routing rule {id}")));
        }
        Ok(())
    }

    /// The rule with this name, or NotFound.
    pub async fn routing_rule(&self, name: &str) -> Result<RoutingRule> {
        let sql = sqlx::AssertSqlSafe(format!("{RULE_SELECT} WHERE name = $1"));
        with_pool!(self, pool => sqlx::query_as(sql).bind(name).fetch_optional(pool).await)?
            .ok_or_else(|| Error::NotFound(format!("routing rule {name:?}")))
    }

    async fn routing_rule_by_id(&self, id: i64) -> Result<RoutingRule> {
        let sql = sqlx::AssertSqlSafe(format!("{RULE_SELECT} WHERE id = $1"));
        with_pool!(self, pool => sqlx::query_as(sql).bind(id).fetch_optional(pool).await)?
            .ok_or_else(|| Error::NotFound(format!("routing rule {id}")))
    }

    /// Every rule, by kind, then in the order routing tries them.
    pub async fn list_routing_rules(&self) -> Result<Vec<RoutingRule>> {
        let sql = sqlx::AssertSqlSafe(format!("{RULE_SELECT} ORDER BY kind, position, name"));
        Ok(with_pool!(self, pool => sqlx::query_as(sql).fetch_all(pool).await)?)
    }

    /// The enabled alert rules, in the order routing tries them.
    pub async fn alert_routing_rules(&self) -> Result<Vec<AlertRuleSpec>> {
        let rules: Vec<Json<RoutingRuleSpec>> = with_pool!(self, pool => sqlx::query_scalar(
            "SELECT definition FROM routing_rules WHERE kind = 'alert' AND enabled
             ORDER BY position, name")
            .fetch_all(pool)
            .await)?;
        Ok(rules
            .into_iter()
            .filter_map(|rule| match rule.0 {
                RoutingRuleSpec::Alert(rule) => Some(rule),
                RoutingRuleSpec::Github(_) => None,
            })
            .collect())
    }
}

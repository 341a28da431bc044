//! Queries on `credentials` and `vault_keys`. Values pass through here sealed only.

use chrono::Utc;

use super::{ConstraintExt, Store};
use crate::error::{Error, Result};
use crate::model::{Credential, CredentialKind, Sealed, SealedCredential, sql_list};

const CREDENTIAL_COLUMNS: &str =
    "c.id, p.name AS project, c.name, c.kind, c.env_var, c.key_version,
    c.created_at, c.updated_at, c.last_used_at
    FROM credentials c LEFT JOIN projects p ON p.id = c.project_id";

type SealedRow = (i64, Option<i64>, String, String, Vec<u8>, Vec<u8>);

fn unseal_row((id, project_id, name, env_var, ciphertext, nonce): SealedRow) -> SealedCredential {
    SealedCredential {
        id,
        project_id,
        name,
        env_var,
        sealed: Sealed { ciphertext, nonce },
    }
}

impl Store {
    /// The current key version and its check value, if the vault was ever used.
    pub async fn current_vault_key(&self) -> Result<Option<(i64, String)>, sqlx::Error> {
        with_pool!(self, pool => sqlx::query_as(
            "SELECT version, key_check FROM vault_keys WHERE retired_at IS NULL ORDER BY version DESC LIMIT 1")
            .fetch_optional(pool)
            .await)
    }

    /// Records the first key of a fresh store as version 1; false when another process did
    /// so first (the caller checks its key against that row).
    pub async fn insert_first_vault_key(&self, key_check: &str) -> Result<bool, sqlx::Error> {
        let inserted = with_pool!(self, pool => sqlx::query(
            "INSERT INTO vault_keys (version, key_check, created_at) VALUES (1, $1, $2)")
            .bind(key_check)
            .bind(Utc::now())
            .execute(pool)
            .await
            .map(|r| r.rows_affected()));
        match inserted {
            Ok(_) => Ok(true),
            Err(sqlx::Error::Database(db)) if db.is_unique_violation() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Stores a sealed credential. With `replace`, an existing one of the same scope and
    /// name is overwritten (kind, variable and value); otherwise that is a conflict.
    #[allow(clippy::too_many_arguments)]
    pub async fn put_credential(
        &self,
        project_id: Option<i64>,
        name: &str,
        kind: CredentialKind,
        env_var: &str,
        sealed: &Sealed,
        key_version: i64,
        replace: bool,
    ) -> Result<Credential> {
        let now = Utc::now();
        let mut tx = self.begin().await?;
        let id: i64 = with_tx!(tx, conn => {
            let updated: Option<i64> = if replace {
                sqlx::query_scalar(
                    "UPDATE credentials SET kind = $3, env_var = $4, ciphertext = $5, nonce = $6,
                        key_version = $7, updated_at = $8
                     WHERE COALESCE(project_id, 0) = COALESCE($1, 0) AND name = $2 RETURNING id")
                    .bind(project_id)
                    .bind(name)
                    .bind(kind)
                    .bind(env_var)
                    .bind(&sealed.ciphertext)
                    .bind(&sealed.nonce)
                    .bind(key_version)
                    .bind(now)
                    .fetch_optional(&mut *conn)
                    .await?
            } else {
                None
            };
            match updated {
                Some(id) => id,
                None => sqlx::query_scalar(
                    "INSERT INTO credentials (project_id, name, kind, env_var, ciphertext, nonce,
                        key_version, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) RETURNING id")
                    .bind(project_id)
                    .bind(name)
                    .bind(kind)
                    .bind(env_var)
                    .bind(&sealed.ciphertext)
                    .bind(&sealed.nonce)
                    .bind(key_version)
                    .bind(now)
                    .fetch_one(&mut *conn)
                    .await
                    .on_conflict(format!("a credential named {name:?} already exists in this scope"))?,
            }
        });
        tx.commit().await?;
        self.credential(id).await
    }

    /// One credential's metadata.
    pub async fn credential(&self, id: i64) -> Result<Credential> {
        let sql = sqlx::AssertSqlSafe(format!("SELECT {CREDENTIAL_COLUMNS} WHERE c.id = $1"));
        with_pool!(self, pool => sqlx::query_as(sql).bind(id).fetch_optional(pool).await)?
            .ok_or_else(|| Error::NotFound(format!("credential {id}")))
    }

    /// Metadata of every credential, or of one project's (global ones excluded).
    pub async fn list_credentials(&self, project_id: Option<i64>) -> Result<Vec<Credential>> {
        self.list_credentials_in(project_id, &crate::model::ProjectScope::All)
            .await
    }

    /// Credential metadata of the projects in `scope` (global ones only for every project).
    pub async fn list_credentials_in(
        &self,
        project_id: Option<i64>,
        scope: &crate::model::ProjectScope,
    ) -> Result<Vec<Credential>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {CREDENTIAL_COLUMNS} WHERE ($1 IS NULL OR c.project_id = $1){} ORDER BY p.name, c.name",
            super::scope_sql("c.project_id", scope)
        ));
        Ok(with_pool!(self, pool => sqlx::query_as(sql).bind(project_id).fetch_all(pool).await)?)
    }

    /// Deletes a credential.
    pub async fn delete_credential(&self, id: i64) -> Result<()> {
        let deleted = with_pool!(self, pool => sqlx::query("DELETE FROM credentials WHERE id = $1")
            .bind(id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        if deleted == 0 {
            return Err(Error::NotFound(format!("credential {id}")));
        }
        Ok(())
    }

    /// Sealed global credentials and this project's, globals first.
    pub async fn sealed_credentials_for(&self, project_id: i64) -> Result<Vec<SealedCredential>> {
        let rows: Vec<SealedRow> = with_pool!(self, pool => sqlx::query_as(
            "SELECT id, project_id, name, env_var, ciphertext, nonce FROM credentials
             WHERE project_id IS NULL OR project_id = $1
             ORDER BY project_id IS NOT NULL, name")
            .bind(project_id)
            .fetch_all(pool)
            .await)?;
        Ok(rows.into_iter().map(unseal_row).collect())
    }

    /// The credentials a project's agents get: the global ones and the project's, except
    /// those only the platform uses (webhook secrets, GitHub App keys, the secrets of
    /// notification channels).
    pub async fn sealed_agent_credentials_for(
        &self,
        project_id: i64,
    ) -> Result<Vec<SealedCredential>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT id, project_id, name, env_var, ciphertext, nonce FROM credentials
             WHERE (project_id IS NULL OR project_id = $1)
               AND kind NOT IN ({})
               AND name NOT IN (SELECT credential FROM notification_channels)
             ORDER BY project_id IS NOT NULL, name",
            sql_list(CredentialKind::PLATFORM_ONLY, CredentialKind::as_str)
        ));
        let rows: Vec<SealedRow> = with_pool!(self, pool => sqlx::query_as(sql)
            .bind(project_id)
            .fetch_all(pool)
            .await)?;
        Ok(rows.into_iter().map(unseal_row).collect())
    }

    /// Marks credentials as used now.
    pub async fn touch_credentials(&self, ids: &[i64]) -> Result<()> {
        let now = Utc::now();
        for id in ids {
            with_pool!(self, pool => sqlx::query("UPDATE credentials SET last_used_at = $2 WHERE id = $1")
                .bind(id)
                .bind(now)
                .execute(pool)
                .await
                .map(|r| r.rows_affected()))?;
        }
        Ok(())
    }

    /// In one transaction: reseals every credential with `reseal`, records the new key
    /// version and retires the old ones. Any failure leaves everything as it was.
    pub async fn reseal_all_credentials<F, E>(
        &self,
        new_version: i64,
        new_check: &str,
        reseal: F,
    ) -> Result<usize, E>
    where
        F: Fn(Option<i64>, &str, &Sealed) -> Result<Sealed, E>,
        E: From<sqlx::Error>,
    {
        let now = Utc::now();
        let mut tx = self.begin().await?;
        let count = with_tx!(tx, conn => {
            sqlx::query("INSERT INTO vault_keys (version, key_check, created_at) VALUES ($1, $2, $3)")
                .bind(new_version)
                .bind(new_check)
                .bind(now)
                .execute(&mut *conn)
                .await?;
            let rows: Vec<SealedRow> = sqlx::query_as(
                "SELECT id, project_id, name, env_var, ciphertext, nonce FROM credentials ORDER BY id")
                .fetch_all(&mut *conn)
                .await?;
            let count = rows.len();
            for row in rows.into_iter().map(unseal_row) {
                let sealed = reseal(row.project_id, &row.name, &row.sealed)?;
                sqlx::query("UPDATE credentials SET ciphertext = $2, nonce = $3, key_version = $4, updated_at = $5 WHERE id = $1")
                    .bind(row.id)
                    .bind(&sealed.ciphertext)
                    .bind(&sealed.nonce)
                    .bind(new_version)
                    .bind(now)
                    .execute(&mut *conn)
                    .await?;
            }
            sqlx::query("UPDATE vault_keys SET retired_at = $2 WHERE version < $1 AND retired_at IS NULL")
                .bind(new_version)
                .bind(now)
                .execute(&mut *conn)
                .await?;
            count
        });
        tx.commit().await?;
        Ok(count)
    }
}

impl Store {
    /// The sealed global credential with this name, if any.
    pub async fn sealed_global_credential(&self, name: &str) -> Result<Option<SealedCredential>> {
        let row: Option<SealedRow> = with_pool!(self, pool => sqlx::query_as(
            "SELECT id, project_id, name, env_var, ciphertext, nonce FROM credentials
             WHERE project_id IS NULL AND name = $1")
            .bind(name)
            .fetch_optional(pool)
            .await)?;
        Ok(row.map(unseal_row))
    }
}

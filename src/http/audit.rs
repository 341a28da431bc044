//! `/api/v1/audit`: read the audit log (admin only).

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::ErrorBody;
use super::extract::ApiQuery;
use super::page::{next_cursor, page_limit, parse_cursor};
use crate::audit::{AuditEntry, AuditFilter};
use crate::error::Result;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_audit))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    /// Only entries about this target, e.g. `projects/shop`.
    target: Option<String>,
    /// Only entries by this principal.
    principal: Option<String>,
    /// Only entries at or after this time (RFC 3339).
    since: Option<DateTime<Utc>>,
    /// Only entries at or before this time (RFC 3339).
    until: Option<DateTime<Utc>>,
    /// The `next_cursor` of the page before.
    #[param(pattern = "^[1-9][0-9]{0,18}$")]
    cursor: Option<String>,
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u32>,
}

/// A page of audit entries, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    pub items: Vec<AuditEntry>,
    pub next_cursor: Option<String>,
}

/// The audit log, newest first.
#[utoipa::path(get, path = "/audit", tag = "audit", params(AuditQuery),
    responses((status = 200, body = AuditPage), (status = 403, body = ErrorBody)))]
async fn list_audit(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> Result<Json<AuditPage>> {
    let limit = page_limit(query.limit, state.config.tasks.page_size)?;
    let filter = AuditFilter {
        target: query.target,
        principal: query.principal,
        since: query.since,
        until: query.until,
        before_id: parse_cursor(query.cursor.as_deref())?,
        limit,
    };
    let items = state.store.list_audit(&filter).await?;
    let next_cursor = next_cursor(&items, limit, |e| e.id);
    Ok(Json(AuditPage { items, next_cursor }))
}

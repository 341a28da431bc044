//! `/api/v1/credentials`: secrets, write-only.

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::Access;
use super::auth::AuditTarget;
use super::error::ErrorBody;
use super::extract::{ApiJson, ApiPath, ApiQuery};
use crate::auth::Principal;
use crate::credentials::{self, Credential, NewCredential};
use crate::error::Result;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_credential, list_credentials))
        .routes(routes!(delete_credential))
}

/// Store a secret. The value is sealed at once and never returned.
#[utoipa::path(post, path = "/credentials", tag = "credentials", request_body = NewCredential,
    responses((status = 201, body = Credential), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_credential(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    ApiJson(new): ApiJson<NewCredential>,
) -> Result<(StatusCode, Extension<AuditTarget>, Json<Credential>)> {
    // The use case checks what this scope, kind and name need (permissions::authorize).
    let (store, vault, config) = (&state.store, &state.vault, &state.config);
    let credential =
        credentials::store_credential(store, vault, config, &principal, new, false).await?;
    let target = AuditTarget(format!("credentials/{}", credential.id));
    Ok((StatusCode::CREATED, Extension(target), Json(credential)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct CredentialQuery {
    /// Only this project's credentials.
    project: Option<String>,
}

/// Credential metadata: names, kinds, variables and dates, never values.
#[utoipa::path(get, path = "/credentials", tag = "credentials", params(CredentialQuery),
    responses((status = 200, body = Vec<Credential>), (status = 404, body = ErrorBody)))]
async fn list_credentials(
    State(state): State<AppState>,
    Extension(access): Extension<Access>,
    ApiQuery(query): ApiQuery<CredentialQuery>,
) -> Result<Json<Vec<Credential>>> {
    let project_id = crate::projects::filter_id(&state.store, query.project.as_deref()).await?;
    let visible = access.visible();
    Ok(Json(
        state
            .store
            .list_credentials_in(project_id, &visible)
            .await?,
    ))
}

/// Delete a credential.
#[utoipa::path(delete, path = "/credentials/{id}", tag = "credentials",
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn delete_credential(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    ApiPath(id): ApiPath<i64>,
) -> Result<StatusCode> {
    credentials::remove(&state.store, &state.config, &principal, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

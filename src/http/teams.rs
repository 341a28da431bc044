//! `/api/v1/teams`: the team presets tasks can name.

use axum::Json;
use axum::extract::State;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use crate::teams::TeamPreset;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_teams))
}

/// Team presets (from `teams_dir`), with the keywords that route untagged work to them.
#[utoipa::path(get, path = "/teams", tag = "teams", responses((status = 200, body = Vec<TeamPreset>)))]
async fn list_teams(State(state): State<AppState>) -> Json<Vec<TeamPreset>> {
    Json(state.teams.presets().to_vec())
}

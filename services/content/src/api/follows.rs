//! Who follows whom: following and unfollowing, a user's followers and followees (the inboxes
//! fan a post out to its author's followers).

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use campus_common::auth::Caller;
use campus_common::http::{ApiError, Json, Path};
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;

use super::directory::{Named, NamedRow, Table, get_one};
use super::{AppState, ErrorBody, is_foreign_key_violation};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/users/{id}/followers", get(followers))
        .route("/users/{id}/followees", get(followees))
        .route("/follows", post(follow))
        .route("/follows/{follower_id}/{followee_id}", delete(unfollow))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FollowInput {
    /// Who follows. In bearer mode the token's user: may be omitted, another user's id is 403.
    pub follower_id: Option<u64>,
    pub followee_id: Option<u64>,
}

/// `followerId` follows `followeeId` (idempotent).
#[utoipa::path(post, path = "/follows", tag = "follows", request_body = FollowInput,
    security((), ("bearer" = [])),
    responses((status = 201, description = "following"),
              (status = 401, description = "bearer mode: no, an invalid or an expired token", body = ErrorBody),
              (status = 403, description = "bearer mode: `followerId` is not the token's user", body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn follow(
    State(s): State<AppState>,
    caller: Caller,
    Json(i): Json<FollowInput>,
) -> Result<StatusCode, ApiError> {
    let follower = caller.acting_for(i.follower_id, "followerId")?;
    let (Some(follower), Some(followee)) = (follower, i.followee_id) else {
        return Err(ApiError::validation(
            "followerId and followeeId are required",
            json!({"followerId": "is required", "followeeId": "is required"}),
        ));
    };
    if follower == followee {
        return Err(ApiError::validation(
            "a user cannot follow themselves",
            json!({}),
        ));
    }
    sqlx::query(
        "INSERT INTO follows (follower_id, followee_id) VALUES (?, ?) ON DUPLICATE KEY UPDATE follower_id = follower_id",
    )
        .bind(follower)
        .bind(followee)
        .execute(&s.pool)
        .await
        .map_err(|e| match e {
            e if is_foreign_key_violation(&e) => ApiError::validation("unknown user", json!({})),
            _ => e.into(),
        })?;
    Ok(StatusCode::CREATED)
}

/// `followerId` stops following `followeeId` (in bearer mode only the token's user).
#[utoipa::path(delete, path = "/follows/{followerId}/{followeeId}", tag = "follows",
    params(("followerId" = u64, Path), ("followeeId" = u64, Path)),
    security((), ("bearer" = [])),
    responses((status = 204),
              (status = 401, description = "bearer mode: no, an invalid or an expired token", body = ErrorBody),
              (status = 403, description = "bearer mode: `followerId` is not the token's user", body = ErrorBody),
              (status = 404, body = ErrorBody)))]
pub async fn unfollow(
    State(s): State<AppState>,
    caller: Caller,
    Path((follower, followee)): Path<(u64, u64)>,
) -> Result<StatusCode, ApiError> {
    caller.acting_for(Some(follower), "followerId")?;
    let done = sqlx::query("DELETE FROM follows WHERE follower_id = ? AND followee_id = ?")
        .bind(follower)
        .bind(followee)
        .execute(&s.pool)
        .await?;
    if done.rows_affected() == 0 {
        return Err(ApiError::not_found("no such follow"));
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn related(s: &AppState, id: u64, sql: &'static str) -> Result<Vec<Named>, ApiError> {
    get_one(s, Table::Users, id).await?;
    let rows: Vec<NamedRow> = sqlx::query_as(sql).bind(id).fetch_all(&s.pool).await?;
    Ok(rows.into_iter().map(Named::from).collect())
}

#[utoipa::path(get, path = "/users/{id}/followers", tag = "follows", params(("id" = u64, Path)),
    responses((status = 200, body = [Named]), (status = 404, body = ErrorBody)))]
pub async fn followers(
    State(s): State<AppState>,
    Path(id): Path<u64>,
) -> Result<Json<Vec<Named>>, ApiError> {
    related(&s, id, "SELECT u.id, u.name, u.created_at FROM follows f JOIN users u ON u.id = f.follower_id WHERE f.followee_id = ? ORDER BY u.id").await.map(Json)
}

#[utoipa::path(get, path = "/users/{id}/followees", tag = "follows", params(("id" = u64, Path)),
    responses((status = 200, body = [Named]), (status = 404, body = ErrorBody)))]
pub async fn followees(
    State(s): State<AppState>,
    Path(id): Path<u64>,
) -> Result<Json<Vec<Named>>, ApiError> {
    related(&s, id, "SELECT u.id, u.name, u.created_at FROM follows f JOIN users u ON u.id = f.followee_id WHERE f.follower_id = ? ORDER BY u.id").await.map(Json)
}

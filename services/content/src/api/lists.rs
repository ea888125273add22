//! Read models: search (Elasticsearch) and follower inboxes (MongoDB).

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use campus_common::auth::Caller;
use campus_common::http::{ApiError, Json, Path, Query};
use serde::Deserialize;

use super::{AppState, ErrorBody, Paging};
use crate::events::PostView;
use crate::index::IndexError;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/list/search", get(search))
        .route("/list/inbox/{user_id}", get(inbox))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct SearchQuery {
    /// Words to find in title, content, tags or category.
    pub keyword: Option<String>,
    #[serde(default)]
    pub page: u32,
    pub size: Option<u32>,
}

/// Posts matching a keyword (multi_match over title and content, plus tags and category).
#[utoipa::path(get, path = "/list/search", tag = "lists", params(SearchQuery),
    responses((status = 200, body = [PostView]), (status = 400, body = ErrorBody),
              (status = 503, description = "the search index does not exist yet, or Elasticsearch is unavailable (with Retry-After)", body = ErrorBody)))]
pub async fn search(
    State(state): State<AppState>,
    Query(q): Query<SearchQuery>,
) -> Result<Json<Vec<PostView>>, ApiError> {
    let keyword = q.keyword.as_deref().map(str::trim).unwrap_or_default();
    if keyword.is_empty() || keyword.chars().count() > 200 {
        return Err(ApiError::bad_request(
            "keyword must have 1 to 200 characters",
        ));
    }
    let size = Paging {
        page: q.page,
        size: q.size,
    }
    .size()?;
    match state.search.search(keyword, q.page, size).await {
        Ok(posts) => Ok(Json(posts)),
        Err(e @ IndexError::Missing(_)) => Err(ApiError::unavailable(e.to_string())),
        Err(e) if e.is_outage() => {
            tracing::warn!(error = %format!("{e:#}"), "search unavailable");
            Err(ApiError::unavailable(
                "search is unavailable; try again shortly",
            ))
        }
        Err(e) => Err(ApiError::internal(format!("{e:#}"))),
    }
}

/// The posts of the users `userId` follows, newest first (in bearer mode only one's own inbox).
#[utoipa::path(get, path = "/list/inbox/{userId}", tag = "lists",
    params(("userId" = u64, Path, description = "the follower"), Paging),
    security((), ("bearer" = [])),
    responses((status = 200, body = [PostView]), (status = 400, body = ErrorBody),
              (status = 401, description = "bearer mode: no, an invalid or an expired token", body = ErrorBody),
              (status = 403, description = "bearer mode: another user's inbox", body = ErrorBody),
              (status = 404, body = ErrorBody),
              (status = 503, description = "MongoDB or MySQL is unavailable (with Retry-After)", body = ErrorBody)))]
pub async fn inbox(
    State(state): State<AppState>,
    caller: Caller,
    Path(user_id): Path<u64>,
    Query(paging): Query<Paging>,
) -> Result<Json<Vec<PostView>>, ApiError> {
    caller.acting_for(Some(user_id), "userId")?;
    let size = paging.size()?;
    let exists: Option<u64> = sqlx::query_scalar("SELECT id FROM users WHERE id = ?")
        .bind(user_id)
        .fetch_optional(&state.pool)
        .await?;
    if exists.is_none() {
        return Err(ApiError::not_found(format!("user {user_id} not found")));
    }
    state
        .inbox
        .list(user_id, paging.page, size)
        .await
        .map(Json)
        .map_err(|e| {
            if e.is_outage() {
                tracing::warn!(error = %format!("{e:#}"), "inbox unavailable");
                ApiError::unavailable("inboxes are unavailable; try again shortly")
            } else {
                ApiError::internal(format!("{e:#}"))
            }
        })
}

//! Posts: create, update, soft delete (each one transaction with its outbox event), and detail.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use campus_common::auth::Caller;
use campus_common::envelope::EventType;
use campus_common::http::{ApiError, Json, Path, REQUEST_ID};
use campus_common::outbox::{self, OutboxMessage};
use chrono::{DateTime, NaiveDateTime, SubsecRound, Utc};
use serde::Deserialize;
use serde_json::json;
use sqlx::{MySql, Transaction};
use utoipa::ToSchema;

use super::{AppState, ErrorBody, is_foreign_key_violation};
use crate::cache::Cached;
use crate::events::{self, PostView};

pub const TITLE_MAX: usize = 200;
pub const CONTENT_MAX: usize = 20_000;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/posts", post(create_post))
        .route("/posts/{id}", put(update_post).delete(delete_post))
        .route("/posts/{id}/detail", get(post_detail))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatePost {
    /// 1–200 characters.
    pub title: Option<String>,
    /// Up to 20,000 characters.
    pub content: Option<String>,
    /// The author. In bearer mode the token's user: may be omitted, another user's id is 403.
    pub user_id: Option<u64>,
    pub category_id: Option<u64>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdatePost {
    pub title: Option<String>,
    pub content: Option<String>,
    pub category_id: Option<u64>,
}

fn validate(
    title: &Option<String>,
    content: &Option<String>,
    ids: &[(&str, Option<u64>)],
) -> Result<(String, String), ApiError> {
    let mut problems = serde_json::Map::new();
    let title = title.as_deref().map(str::trim).unwrap_or_default();
    if title.is_empty() {
        problems.insert("title".into(), json!("is required"));
    } else if title.chars().count() > TITLE_MAX {
        problems.insert(
            "title".into(),
            json!(format!("must be at most {TITLE_MAX} characters")),
        );
    }
    match content.as_deref() {
        None => {
            problems.insert("content".into(), json!("is required"));
        }
        Some(c) if c.chars().count() > CONTENT_MAX => {
            problems.insert(
                "content".into(),
                json!(format!("must be at most {CONTENT_MAX} characters")),
            );
        }
        Some(_) => {}
    }
    for (name, id) in ids {
        if id.is_none() {
            problems.insert((*name).into(), json!("is required"));
        }
    }
    if !problems.is_empty() {
        return Err(ApiError::validation("invalid post", problems.into()));
    }
    Ok((title.to_owned(), content.clone().unwrap_or_default()))
}

fn unknown(field: &str, id: u64) -> ApiError {
    ApiError::validation(
        format!("{field} {id} does not exist"),
        json!({ field: "does not exist" }),
    )
}

/// Now, at the DATETIME(3) precision the table stores.
fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(3)
}

async fn name_of(
    tx: &mut Transaction<'static, MySql>,
    table: &'static str,
    id: u64,
) -> Result<Option<String>, ApiError> {
    let sql = match table {
        "users" => "SELECT name FROM users WHERE id = ?",
        _ => "SELECT name FROM categories WHERE id = ?",
    };
    Ok(sqlx::query_scalar(sql)
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?)
}

async fn commit_event(
    state: &AppState,
    mut tx: Transaction<'static, MySql>,
    event_type: EventType,
    post: PostView,
    headers: &HeaderMap,
) -> Result<(), ApiError> {
    let event = events::event(event_type, post);
    let mut msg = OutboxMessage::from_envelope(&state.original_topic, &event);
    if let Some(rid) = headers.get(&REQUEST_ID).and_then(|v| v.to_str().ok()) {
        msg = msg.header(REQUEST_ID.as_str(), rid);
    }
    outbox::enqueue(&mut *tx, &msg).await?;
    tx.commit().await?;
    state.wake.notify_one();
    Ok(())
}

/// Creates a post; its `created` event is committed with it.
#[utoipa::path(post, path = "/posts", tag = "posts", request_body = CreatePost,
    security((), ("bearer" = [])),
    responses((status = 201, body = PostView), (status = 400, body = ErrorBody),
              (status = 401, description = "bearer mode: no, an invalid or an expired token", body = ErrorBody),
              (status = 403, description = "bearer mode: `userId` is not the token's user", body = ErrorBody),
              (status = 422, description = "invalid fields, unknown user or category", body = ErrorBody)))]
pub async fn create_post(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Json(input): Json<CreatePost>,
) -> Result<(StatusCode, Json<PostView>), ApiError> {
    let user_id = caller.acting_for(input.user_id, "userId")?;
    let (title, content) = validate(
        &input.title,
        &input.content,
        &[("userId", user_id), ("categoryId", input.category_id)],
    )?;
    let (user_id, category_id) = (
        user_id.unwrap_or_default(),
        input.category_id.unwrap_or_default(),
    );
    let mut tx = state.pool.begin().await?;
    let user_name = name_of(&mut tx, "users", user_id)
        .await?
        .ok_or_else(|| unknown("userId", user_id))?;
    let category_name = name_of(&mut tx, "categories", category_id)
        .await?
        .ok_or_else(|| unknown("categoryId", category_id))?;
    let at = now();
    let done = sqlx::query(
        "INSERT INTO posts (user_id, category_id, title, content, version, created_at, updated_at) VALUES (?, ?, ?, ?, 1, ?, ?)",
    )
    .bind(user_id)
    .bind(category_id)
    .bind(&title)
    .bind(&content)
    .bind(at.naive_utc())
    .bind(at.naive_utc())
    .execute(&mut *tx)
    .await
    .map_err(|e| match e {
        e if is_foreign_key_violation(&e) => ApiError::validation("unknown user or category", json!({})),
        _ => e.into(),
    })?;
    let post = PostView {
        id: done.last_insert_id(),
        title,
        content,
        user_id,
        user_name,
        category_id,
        category_name,
        tags: None,
        created_at: at,
        updated_at: at,
        version: 1,
    };
    commit_event(&state, tx, EventType::Created, post.clone(), &headers).await?;
    Ok((StatusCode::CREATED, Json(post)))
}

#[derive(sqlx::FromRow)]
struct PostRow {
    id: u64,
    title: String,
    content: String,
    user_id: u64,
    user_name: String,
    category_id: u64,
    category_name: String,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
    version: i64,
    deleted_at: Option<NaiveDateTime>,
    /// The version the inspector rejected (BAD), if any.
    rejected_version: Option<i64>,
}

impl PostRow {
    fn view(self) -> PostView {
        PostView {
            id: self.id,
            title: self.title,
            content: self.content,
            user_id: self.user_id,
            user_name: self.user_name,
            category_id: self.category_id,
            category_name: self.category_name,
            tags: None,
            created_at: self.created_at.and_utc(),
            updated_at: self.updated_at.and_utc(),
            version: self.version,
        }
    }
}

const SELECT_POST: &str = "SELECT p.id, p.title, p.content, p.user_id, u.name AS user_name, p.category_id, \
     c.name AS category_name, p.created_at, p.updated_at, p.version, p.deleted_at, p.rejected_version \
     FROM posts p JOIN users u ON u.id = p.user_id JOIN categories c ON c.id = p.category_id WHERE p.id = ?";

/// Locks a live post for a change; 404 when it is missing or deleted.
async fn lock_live(tx: &mut Transaction<'static, MySql>, id: u64) -> Result<PostRow, ApiError> {
    let sql = format!("{SELECT_POST} FOR UPDATE");
    let row: Option<PostRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?;
    match row {
        Some(r) if r.deleted_at.is_none() => Ok(r),
        _ => Err(ApiError::not_found(format!("post {id} not found"))),
    }
}

/// Changes a post (in bearer mode only its author may); its `updated` event (next version) is
/// committed with it.
#[utoipa::path(put, path = "/posts/{id}", tag = "posts", request_body = UpdatePost,
    params(("id" = u64, Path, description = "post id")),
    security((), ("bearer" = [])),
    responses((status = 200, body = PostView), (status = 400, body = ErrorBody),
              (status = 401, description = "bearer mode: no, an invalid or an expired token", body = ErrorBody),
              (status = 403, description = "bearer mode: another user's post", body = ErrorBody),
              (status = 404, description = "missing or deleted", body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update_post(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<u64>,
    headers: HeaderMap,
    Json(input): Json<UpdatePost>,
) -> Result<Json<PostView>, ApiError> {
    let (title, content) = validate(
        &input.title,
        &input.content,
        &[("categoryId", input.category_id)],
    )?;
    let category_id = input.category_id.unwrap_or_default();
    let mut tx = state.pool.begin().await?;
    let row = lock_live(&mut tx, id).await?;
    caller.ensure(row.user_id, || format!("post {id} is another user's"))?;
    let category_name = name_of(&mut tx, "categories", category_id)
        .await?
        .ok_or_else(|| unknown("categoryId", category_id))?;
    let at = now();
    sqlx::query(
        "UPDATE posts SET title = ?, content = ?, category_id = ?, updated_at = ?, version = version + 1 WHERE id = ?",
    )
    .bind(&title)
    .bind(&content)
    .bind(category_id)
    .bind(at.naive_utc())
    .bind(id)
    .execute(&mut *tx)
    .await?;
    let post = PostView {
        title,
        content,
        category_id,
        category_name,
        updated_at: at,
        version: row.version + 1,
        ..row.view()
    };
    commit_event(&state, tx, EventType::Updated, post.clone(), &headers).await?;
    Ok(Json(post))
}

/// Soft-deletes a post (in bearer mode only its author may); its `deleted` event (next version)
/// is committed with it.
#[utoipa::path(delete, path = "/posts/{id}", tag = "posts",
    params(("id" = u64, Path, description = "post id")),
    security((), ("bearer" = [])),
    responses((status = 204, description = "deleted"), (status = 400, body = ErrorBody),
              (status = 401, description = "bearer mode: no, an invalid or an expired token", body = ErrorBody),
              (status = 403, description = "bearer mode: another user's post", body = ErrorBody),
              (status = 404, description = "missing or already deleted", body = ErrorBody)))]
pub async fn delete_post(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<u64>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let mut tx = state.pool.begin().await?;
    let row = lock_live(&mut tx, id).await?;
    caller.ensure(row.user_id, || format!("post {id} is another user's"))?;
    let at = now();
    sqlx::query(
        "UPDATE posts SET deleted_at = ?, updated_at = ?, version = version + 1 WHERE id = ?",
    )
    .bind(at.naive_utc())
    .bind(at.naive_utc())
    .bind(id)
    .execute(&mut *tx)
    .await?;
    let post = PostView {
        updated_at: at,
        version: row.version + 1,
        ..row.view()
    };
    commit_event(&state, tx, EventType::Deleted, post, &headers).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A post with its author's and category's names: from Redis, or from MySQL on a miss (which then
/// fills the cache, never over a newer version). A post whose current version the inspector
/// rejected is 404 either way (a tombstone in the cache, `rejected_version` on the row); one not
/// inspected yet is served, so an author reads their post at once.
#[utoipa::path(get, path = "/posts/{id}/detail", tag = "posts",
    params(("id" = u64, Path, description = "post id")),
    responses((status = 200, body = PostView, headers(("x-cache" = String, description = "hit or miss"))),
              (status = 400, body = ErrorBody), (status = 404, description = "missing or deleted", body = ErrorBody)))]
pub async fn post_detail(
    State(state): State<AppState>,
    Path(id): Path<u64>,
) -> Result<Response, ApiError> {
    let not_found = || ApiError::not_found(format!("post {id} not found"));
    match state.cache.get(id).await {
        Ok(Some(Cached::Live(json))) => return Ok(raw_json(json, "hit")),
        Ok(Some(Cached::Deleted)) => return Err(not_found()),
        Ok(None) => {}
        // Redis trouble must not take detail down: fall back to MySQL.
        Err(e) => tracing::warn!(error = %format!("{e:#}"), "cache read failed; reading MySQL"),
    }
    let row: Option<PostRow> = sqlx::query_as(SELECT_POST)
        .bind(id)
        .fetch_optional(&state.pool)
        .await?;
    let Some(row) = row else {
        return Err(not_found());
    };
    // Deleted, or its current version rejected by the inspector (BAD): gone, and the cache says so.
    if row.deleted_at.is_some() || row.rejected_version >= Some(row.version) {
        if let Err(e) = state.cache.put_deleted(id, row.version).await {
            tracing::warn!(error = %format!("{e:#}"), "cache fill failed");
        }
        return Err(not_found());
    }
    let post = row.view();
    if let Err(e) = state.cache.put(&post).await {
        tracing::warn!(error = %format!("{e:#}"), "cache fill failed");
    }
    Ok(raw_json(
        serde_json::to_string(&post).expect("post serializes"),
        "miss",
    ))
}

fn raw_json(body: String, cache: &'static str) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (
                header::HeaderName::from_static("x-cache"),
                HeaderValue::from_static(cache),
            ),
        ],
        body,
    )
        .into_response()
}

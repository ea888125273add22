//! Users, categories and follows (the course's metadata server), with seed data in the migrations.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use campus_common::http::{ApiError, Json, Path};
use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::{AppState, ErrorBody, conflict, is_foreign_key_violation, is_unique_violation};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/users", get(list_users).post(create_user))
        .route(
            "/users/{id}",
            get(get_user).put(update_user).delete(delete_user),
        )
        .route("/users/{id}/followers", get(followers))
        .route("/users/{id}/followees", get(followees))
        .route("/categories", get(list_categories).post(create_category))
        .route(
            "/categories/{id}",
            get(get_category)
                .put(update_category)
                .delete(delete_category),
        )
        .route("/follows", post(follow))
        .route("/follows/{follower_id}/{followee_id}", delete(unfollow))
}

/// A user or a category.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Named {
    pub id: u64,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct NameInput {
    /// 1–100 characters.
    pub name: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FollowInput {
    pub follower_id: Option<u64>,
    pub followee_id: Option<u64>,
}

#[derive(sqlx::FromRow)]
struct NamedRow {
    id: u64,
    name: String,
    created_at: NaiveDateTime,
}

impl From<NamedRow> for Named {
    fn from(r: NamedRow) -> Self {
        Self {
            id: r.id,
            name: r.name,
            created_at: r.created_at.and_utc(),
        }
    }
}

fn valid_name(input: &NameInput) -> Result<String, ApiError> {
    let name = input.name.as_deref().map(str::trim).unwrap_or_default();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ApiError::validation(
            "invalid name",
            json!({"name": "must have 1 to 100 characters"}),
        ));
    }
    Ok(name.to_owned())
}

/// The two tables share one shape; `table` is one of two constants, never user input.
#[derive(Clone, Copy)]
enum Table {
    Users,
    Categories,
}

impl Table {
    fn name(self) -> &'static str {
        match self {
            Table::Users => "users",
            Table::Categories => "categories",
        }
    }
    fn noun(self) -> &'static str {
        match self {
            Table::Users => "user",
            Table::Categories => "category",
        }
    }
}

async fn list(state: &AppState, t: Table) -> Result<Vec<Named>, ApiError> {
    let sql = format!(
        "SELECT id, name, created_at FROM {} ORDER BY id LIMIT 1000",
        t.name()
    );
    let rows: Vec<NamedRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .fetch_all(&state.pool)
        .await?;
    Ok(rows.into_iter().map(Named::from).collect())
}

async fn get_one(state: &AppState, t: Table, id: u64) -> Result<Named, ApiError> {
    let sql = format!("SELECT id, name, created_at FROM {} WHERE id = ?", t.name());
    let row: Option<NamedRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(&state.pool)
        .await?;
    row.map(Named::from)
        .ok_or_else(|| ApiError::not_found(format!("{} {id} not found", t.noun())))
}

async fn create(
    state: &AppState,
    t: Table,
    input: &NameInput,
) -> Result<(StatusCode, Json<Named>), ApiError> {
    let name = valid_name(input)?;
    let sql = format!("INSERT INTO {} (name) VALUES (?)", t.name());
    let done = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(&name)
        .execute(&state.pool)
        .await
        .map_err(|e| match e {
            e if is_unique_violation(&e) => {
                conflict(format!("{} {name:?} already exists", t.noun()))
            }
            _ => e.into(),
        })?;
    Ok((
        StatusCode::CREATED,
        Json(get_one(state, t, done.last_insert_id()).await?),
    ))
}

async fn update(
    state: &AppState,
    t: Table,
    id: u64,
    input: &NameInput,
) -> Result<Json<Named>, ApiError> {
    let name = valid_name(input)?;
    get_one(state, t, id).await?;
    let sql = format!("UPDATE {} SET name = ? WHERE id = ?", t.name());
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(&name)
        .bind(id)
        .execute(&state.pool)
        .await
        .map_err(|e| match e {
            e if is_unique_violation(&e) => {
                conflict(format!("{} {name:?} already exists", t.noun()))
            }
            _ => e.into(),
        })?;
    Ok(Json(get_one(state, t, id).await?))
}

async fn remove(state: &AppState, t: Table, id: u64) -> Result<StatusCode, ApiError> {
    let sql = format!("DELETE FROM {} WHERE id = ?", t.name());
    let done = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .execute(&state.pool)
        .await
        .map_err(|e| match e {
            e if is_foreign_key_violation(&e) => {
                conflict(format!("{} {id} still has posts", t.noun()))
            }
            _ => e.into(),
        })?;
    if done.rows_affected() == 0 {
        return Err(ApiError::not_found(format!("{} {id} not found", t.noun())));
    }
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/users", tag = "users", responses((status = 200, body = [Named])))]
pub async fn list_users(State(s): State<AppState>) -> Result<Json<Vec<Named>>, ApiError> {
    list(&s, Table::Users).await.map(Json)
}

#[utoipa::path(post, path = "/users", tag = "users", request_body = NameInput,
    responses((status = 201, body = Named), (status = 422, body = ErrorBody)))]
pub async fn create_user(
    State(s): State<AppState>,
    Json(i): Json<NameInput>,
) -> Result<(StatusCode, Json<Named>), ApiError> {
    create(&s, Table::Users, &i).await
}

#[utoipa::path(get, path = "/users/{id}", tag = "users", params(("id" = u64, Path)),
    responses((status = 200, body = Named), (status = 404, body = ErrorBody)))]
pub async fn get_user(
    State(s): State<AppState>,
    Path(id): Path<u64>,
) -> Result<Json<Named>, ApiError> {
    get_one(&s, Table::Users, id).await.map(Json)
}

#[utoipa::path(put, path = "/users/{id}", tag = "users", params(("id" = u64, Path)), request_body = NameInput,
    responses((status = 200, body = Named), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update_user(
    State(s): State<AppState>,
    Path(id): Path<u64>,
    Json(i): Json<NameInput>,
) -> Result<Json<Named>, ApiError> {
    update(&s, Table::Users, id, &i).await
}

#[utoipa::path(delete, path = "/users/{id}", tag = "users", params(("id" = u64, Path)),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, description = "has posts", body = ErrorBody)))]
pub async fn delete_user(
    State(s): State<AppState>,
    Path(id): Path<u64>,
) -> Result<StatusCode, ApiError> {
    remove(&s, Table::Users, id).await
}

#[utoipa::path(get, path = "/categories", tag = "categories", responses((status = 200, body = [Named])))]
pub async fn list_categories(State(s): State<AppState>) -> Result<Json<Vec<Named>>, ApiError> {
    list(&s, Table::Categories).await.map(Json)
}

#[utoipa::path(post, path = "/categories", tag = "categories", request_body = NameInput,
    responses((status = 201, body = Named), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_category(
    State(s): State<AppState>,
    Json(i): Json<NameInput>,
) -> Result<(StatusCode, Json<Named>), ApiError> {
    create(&s, Table::Categories, &i).await
}

#[utoipa::path(get, path = "/categories/{id}", tag = "categories", params(("id" = u64, Path)),
    responses((status = 200, body = Named), (status = 404, body = ErrorBody)))]
pub async fn get_category(
    State(s): State<AppState>,
    Path(id): Path<u64>,
) -> Result<Json<Named>, ApiError> {
    get_one(&s, Table::Categories, id).await.map(Json)
}

#[utoipa::path(put, path = "/categories/{id}", tag = "categories", params(("id" = u64, Path)), request_body = NameInput,
    responses((status = 200, body = Named), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn update_category(
    State(s): State<AppState>,
    Path(id): Path<u64>,
    Json(i): Json<NameInput>,
) -> Result<Json<Named>, ApiError> {
    update(&s, Table::Categories, id, &i).await
}

#[utoipa::path(delete, path = "/categories/{id}", tag = "categories", params(("id" = u64, Path)),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, description = "has posts", body = ErrorBody)))]
pub async fn delete_category(
    State(s): State<AppState>,
    Path(id): Path<u64>,
) -> Result<StatusCode, ApiError> {
    remove(&s, Table::Categories, id).await
}

/// `followerId` follows `followeeId` (idempotent).
#[utoipa::path(post, path = "/follows", tag = "follows", request_body = FollowInput,
    responses((status = 201, description = "following"), (status = 422, body = ErrorBody)))]
pub async fn follow(
    State(s): State<AppState>,
    Json(i): Json<FollowInput>,
) -> Result<StatusCode, ApiError> {
    let (Some(follower), Some(followee)) = (i.follower_id, i.followee_id) else {
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

#[utoipa::path(delete, path = "/follows/{followerId}/{followeeId}", tag = "follows",
    params(("followerId" = u64, Path), ("followeeId" = u64, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn unfollow(
    State(s): State<AppState>,
    Path((follower, followee)): Path<(u64, u64)>,
) -> Result<StatusCode, ApiError> {
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

//! The directory posts refer to: users and categories (the course's metadata server; one table
//! shape, `id`, unique `name`, `created_at`), with seed data in the migrations. Who follows whom is
//! [`super::follows`].

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use campus_common::auth::Caller;
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
        .route("/categories", get(list_categories).post(create_category))
        .route(
            "/categories/{id}",
            get(get_category)
                .put(update_category)
                .delete(delete_category),
        )
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

#[derive(sqlx::FromRow)]
pub(super) struct NamedRow {
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
pub(super) enum Table {
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

pub(super) async fn get_one(state: &AppState, t: Table, id: u64) -> Result<Named, ApiError> {
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

/// Renames a user (in bearer mode only oneself).
#[utoipa::path(put, path = "/users/{id}", tag = "users", params(("id" = u64, Path)), request_body = NameInput,
    security((), ("bearer" = [])),
    responses((status = 200, body = Named),
              (status = 401, description = "bearer mode: no, an invalid or an expired token", body = ErrorBody),
              (status = 403, description = "bearer mode: another user", body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update_user(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<u64>,
    Json(i): Json<NameInput>,
) -> Result<Json<Named>, ApiError> {
    caller.acting_for(Some(id), "user")?;
    update(&s, Table::Users, id, &i).await
}

/// Deletes a user without posts (in bearer mode only oneself).
#[utoipa::path(delete, path = "/users/{id}", tag = "users", params(("id" = u64, Path)),
    security((), ("bearer" = [])),
    responses((status = 204),
              (status = 401, description = "bearer mode: no, an invalid or an expired token", body = ErrorBody),
              (status = 403, description = "bearer mode: another user", body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, description = "has posts", body = ErrorBody)))]
pub async fn delete_user(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<u64>,
) -> Result<StatusCode, ApiError> {
    caller.acting_for(Some(id), "user")?;
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

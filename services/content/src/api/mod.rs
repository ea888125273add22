//! The content API: posts (written through the transactional outbox), detail from Redis, search
//! from Elasticsearch, inboxes from MongoDB, and the users, categories and follows they refer to.
//! Serves its OpenAPI document at `/api-docs/openapi.json` and Swagger UI at `/swagger-ui`.
//!
//! Who acts: by default (`AUTH_MODE=none`, the course's shape) the user a request names (`userId`
//! in a post's body, the inbox's path, `followerId`, a user's own path). With `AUTH_MODE=jwt` the
//! user of the bearer token: creating a post, reading an inbox, following and unfollowing, changing
//! or deleting a user act only for the token's user, and a post is changed or deleted only by its
//! author (others: 403); public reads (post detail, search, users, categories, follower lists)
//! stay open ([`campus_common::auth`]).

mod directory;
mod follows;
mod lists;
mod posts;

use std::sync::Arc;

use anyhow::Context as _;
use axum::Router;
use axum::extract::FromRef;
use axum::http::StatusCode;
use campus_common::auth::{Auth, BearerSecurity};
use campus_common::config::{AuthArgs, ExposeSecret, HttpArgs, KafkaArgs, MysqlArgs, RedisArgs};
use campus_common::http::StandardResponses;
use campus_common::http::{ApiError, HttpMetrics, Limits};
use campus_common::kafka::Producer;
use campus_common::ops::{self, Readiness};
use campus_common::outbox::{Relay, RelayMetrics, RelayOptions};
use prometheus_client::registry::Registry;
use serde::Deserialize;
use sqlx::MySqlPool;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

use crate::cache::PostCache;
use crate::config::{CacheArgs, MongoArgs, PostsIndexArgs};
use crate::inbox::InboxStore;
use crate::index::SearchIndex;

/// The migrations under `services/content/migrations` (schema, seed data, outbox).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Everything `campus-content api` needs.
#[derive(Debug, Clone, clap::Args)]
pub struct ApiArgs {
    #[command(flatten)]
    pub kafka: KafkaArgs,
    #[command(flatten)]
    pub mysql: MysqlArgs,
    #[command(flatten)]
    pub redis: RedisArgs,
    #[command(flatten)]
    pub cache: CacheArgs,
    #[command(flatten)]
    pub mongo: MongoArgs,
    #[command(flatten)]
    pub search: PostsIndexArgs,
    #[command(flatten)]
    pub http: HttpArgs,
    #[command(flatten)]
    pub auth: AuthArgs,
}

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub pool: MySqlPool,
    pub cache: PostCache,
    pub inbox: InboxStore,
    pub search: SearchIndex,
    /// `post.original`, prefixed.
    pub original_topic: String,
    /// Wakes the outbox relay after a commit.
    pub wake: Arc<Notify>,
    pub registry: Arc<Registry>,
    pub readiness: Readiness,
    pub http_metrics: Option<HttpMetrics>,
    /// Request timeout, body size and concurrency limits.
    pub limits: Limits,
    /// Who a request acts for (the [`campus_common::auth::Caller`] extractor reads it).
    pub auth: Auth,
}

impl FromRef<AppState> for Auth {
    fn from_ref(state: &AppState) -> Auth {
        state.auth.clone()
    }
}

/// The API router: routes, OpenAPI + Swagger UI, ops endpoints, access log and metrics.
pub fn app(state: AppState) -> Router {
    let ops = ops::router(state.registry.clone(), state.readiness.clone());
    let metrics = state.http_metrics.clone();
    let limits = state.limits;
    let api = Router::new()
        .merge(posts::routes())
        .merge(lists::routes())
        .merge(directory::routes())
        .merge(follows::routes())
        .with_state(state)
        .merge(SwaggerUi::new("/swagger-ui").url("/api-docs/openapi.json", ApiDoc::openapi()))
        .merge(ops)
        .fallback(|| async { ApiError::not_found("no such route") });
    campus_common::http::observe_with(api, "campus-content", metrics, limits)
}

/// The OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Campus content API",
        description = "Posts, AI inspection, cache, inbox and search."
    ),
    paths(
        posts::create_post,
        posts::update_post,
        posts::delete_post,
        posts::post_detail,
        lists::search,
        lists::inbox,
        directory::list_users,
        directory::create_user,
        directory::get_user,
        directory::update_user,
        directory::delete_user,
        directory::list_categories,
        directory::create_category,
        directory::get_category,
        directory::update_category,
        directory::delete_category,
        follows::follow,
        follows::unfollow,
        follows::followers,
        follows::followees,
    ),
    components(schemas(ErrorBody, ErrorDetail, crate::events::PostView)),
    modifiers(&BearerSecurity, &StandardResponses)
)]
pub struct ApiDoc;

/// The error body every endpoint answers with (one schema for every Campus API).
pub use campus_common::http::{ErrorBody, ErrorDetail};

/// Paging for list endpoints: `page` from 0, `size` 1–100 (default 10), and no further than the
/// first [`MAX_RESULT_WINDOW`] results (`(page + 1) × size`).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct Paging {
    #[serde(default)]
    pub page: u32,
    pub size: Option<u32>,
}

/// How deep a list can be paged: Elasticsearch's `index.max_result_window` (10,000), which the
/// search would refuse beyond; the inbox and the MySQL lists keep the same bound (deep skips are
/// slow everywhere).
pub const MAX_RESULT_WINDOW: u64 = 10_000;

impl Paging {
    /// The page size, after checking `size` and how deep the page is (400 otherwise).
    pub fn size(&self) -> Result<u32, ApiError> {
        let size = match self.size.unwrap_or(10) {
            s @ 1..=100 => s,
            _ => return Err(ApiError::bad_request("size must be between 1 and 100")),
        };
        if (u64::from(self.page) + 1) * u64::from(size) > MAX_RESULT_WINDOW {
            return Err(ApiError::bad_request(format!(
                "page too deep: (page + 1) * size must be at most {MAX_RESULT_WINDOW}"
            )));
        }
        Ok(size)
    }
}

/// A unique key refused the write (a name taken): the API answers 409.
pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|d| d.is_unique_violation())
}

/// A foreign key refused the write: an insert naming a row that does not exist (422), or a delete
/// of a row others still reference (409); which one, the call site knows.
pub(crate) fn is_foreign_key_violation(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|d| d.is_foreign_key_violation())
}

pub(crate) fn conflict(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, "conflict", message)
}

/// The running API: state plus the outbox relay.
pub struct Api {
    pub state: AppState,
    relay: Relay,
    producer: Producer,
    drain: std::time::Duration,
}

impl Api {
    /// Connects to every dependency, runs the migrations and prepares the relay.
    pub async fn connect(args: &ApiArgs) -> anyhow::Result<Self> {
        // Settings first: a bad one fails the start before any connection is made.
        let auth = Auth::from_args(&args.auth)?;
        tracing::info!(auth = %auth.describe(), "identity");
        let pool = campus_common::mysql::connect(&args.mysql).await?;
        MIGRATOR
            .run(&pool)
            .await
            .context("failed to run the database migrations")?;
        let cache = PostCache::connect(&args.redis, args.cache.ttl()).await?;
        let inbox =
            InboxStore::connect(args.mongo.mongo_url.expose_secret(), &args.mongo.database).await?;
        let search = SearchIndex::new(&args.search)?;
        let producer = Producer::new(&args.kafka)?;
        let mut registry = campus_common::metrics::registry("campus-content");
        let http_metrics = HttpMetrics::register(&mut registry);
        let relay_metrics = RelayMetrics::register(&mut registry);
        let database: Option<String> = sqlx::query_scalar("SELECT DATABASE()")
            .fetch_one(&pool)
            .await
            .context("failed to read the database name")?;
        let relay = Relay::new(
            pool.clone(),
            producer.clone(),
            RelayOptions {
                // One active relay per database (the lock is server-wide).
                lock_name: format!("campus-content-outbox:{}", database.unwrap_or_default()),
                ..RelayOptions::default()
            },
            relay_metrics,
        );
        let readiness = {
            let (p, c, i, s, k) = (
                pool.clone(),
                cache.clone(),
                inbox.clone(),
                search.clone(),
                producer.clone(),
            );
            // Ready = MySQL answers: every write and the detail fallback need it. The rest is
            // reported (`/readyz?verbose`, `dependency_up`): writes wait in the outbox while Kafka
            // is down, detail falls back to MySQL without Redis, and search and inboxes answer 503
            // on their own while Elasticsearch or MongoDB is down.
            Readiness::new()
                .check("mysql", move || {
                    let p = p.clone();
                    async move { campus_common::mysql::ping(&p).await }
                })
                .report("redis", move || {
                    let c = c.clone();
                    async move { c.ping().await }
                })
                .report("mongodb", move || {
                    let i = i.clone();
                    async move { i.ping().await }
                })
                .report("elasticsearch", move || {
                    let s = s.clone();
                    async move { s.ping().await }
                })
                .report("kafka", move || {
                    let k = k.clone();
                    async move { k.ping().await }
                })
        };
        readiness.register(&mut registry);
        let state = AppState {
            pool,
            cache,
            inbox,
            search,
            original_topic: args.kafka.name(campus_contract::topic::POST_ORIGINAL),
            wake: relay.notifier(),
            registry: Arc::new(registry),
            readiness,
            http_metrics: Some(http_metrics),
            limits: args.http.limits(),
            auth,
        };
        Ok(Self {
            state,
            relay,
            producer,
            drain: args.http.shutdown_drain,
        })
    }

    /// Serves on `listener` and relays the outbox until `shutdown`.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        let relay_stop = CancellationToken::new();
        let relay = tokio::spawn(self.relay.run(relay_stop.clone()));
        let served =
            campus_common::http::serve_draining(listener, app(self.state), shutdown, self.drain)
                .await;
        // Requests are finished: let the relay publish what they committed, then stop it.
        relay_stop.cancel();
        let _ = relay.await;
        self.producer.flush(std::time::Duration::from_secs(5));
        served
    }
}

//! The command line: `campus-coupon api`, `campus-coupon worker issue`, `campus-coupon drift`
//! (also `reconcile`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use campus_common::auth::Auth;
use campus_common::config::{AuthArgs, HttpArgs, KafkaArgs, MysqlArgs, OpsArgs, RedisArgs};
use campus_common::kafka::admin::{Admin, TopicSpec};
use campus_common::kafka::consumer::ConsumerMetrics;
use campus_common::kafka::{ConsumerOptions, ConsumerRuntime, Producer};
use campus_common::ops::{self, Readiness};
use campus_common::{http, mysql, shutdown, telemetry};
use campus_contract::Service;
use clap::{Parser, Subcommand};
use sqlx::MySqlPool;
use tokio_util::sync::CancellationToken;

use crate::api::{AppState, admin_app, app};
use crate::config::{RateLimitArgs, RetentionArgs};
use crate::inflight::InFlight;
use crate::metrics::WorkerMetrics;
use crate::store::CouponStore;
use crate::{db, drift, worker};

#[derive(Debug, Parser)]
#[command(
    name = "campus-coupon",
    version,
    about = "First-come-first-served coupons: issue API, issue worker, drift report"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant, reason = "parsed once per process")]
pub enum Command {
    /// The HTTP API (runs the MySQL migrations at start-up).
    Api(ApiCmd),
    /// A Kafka consumer group.
    Worker {
        #[command(subcommand)]
        worker: WorkerCmd,
    },
    /// Print the drift report (Redis holders against MySQL coupons) as JSON. Also `reconcile`, its
    /// former name.
    #[command(visible_alias = "reconcile")]
    Drift(DriftCmd),
    /// Send a first-come-first-served burst to a running coupon API and print what came back
    /// (answers by status, latency, users issued twice) as JSON.
    Burst(crate::burst::BurstCmd),
    /// Dead letters of the `coupon-issue` group: list them, or re-drive them to `coupon.request`
    /// after a fix.
    #[command(subcommand)]
    Dlq(campus_common::kafka::dlq::DlqCommand),
}

#[derive(Debug, Subcommand)]
pub enum WorkerCmd {
    /// Stores the coupons of `coupon.request` (group `coupon-issue`).
    Issue(IssueWorkerCmd),
}

impl WorkerCmd {
    /// The contract entry of this sub-command: its group, topics and stores.
    pub fn contract(&self) -> &'static campus_contract::Worker {
        match self {
            WorkerCmd::Issue(_) => &campus_contract::workers::COUPON_ISSUE,
        }
    }

    fn kafka(&self) -> &KafkaArgs {
        match self {
            WorkerCmd::Issue(cmd) => &cmd.kafka,
        }
    }

    /// What the worker subscribes: the contract's group and topics with the platform prefix.
    pub fn consumer_options(&self) -> ConsumerOptions {
        let (kafka, contract) = (self.kafka(), self.contract());
        let topics = contract.consumes.iter().map(|t| kafka.name(t)).collect();
        ConsumerOptions::new(kafka.name(contract.group), topics)
    }
}

#[derive(Debug, clap::Args)]
pub struct ApiCmd {
    #[command(flatten)]
    pub kafka: KafkaArgs,
    #[command(flatten)]
    pub mysql: MysqlArgs,
    #[command(flatten)]
    pub redis: RedisArgs,
    #[command(flatten)]
    pub retention: RetentionArgs,
    #[command(flatten)]
    pub http: HttpArgs,
    #[command(flatten)]
    pub auth: AuthArgs,
    /// Address of the admin listener (`/admin/*`: coupon events, the drift report). Keep it off
    /// any public Service.
    #[arg(long = "admin-addr", env = campus_contract::env::ADMIN_ADDR, default_value_t = SocketAddr::from(([0, 0, 0, 0], campus_contract::port::ADMIN)))]
    pub admin_addr: SocketAddr,
    /// Partitions of `coupon.request` if the API has to create it (it never changes an existing topic).
    #[arg(
        long = "coupon-request-partitions",
        env = campus_contract::env::COUPON_REQUEST_PARTITIONS,
        default_value_t = 6
    )]
    pub request_partitions: i32,
    #[command(flatten)]
    pub sweep: SweepArgs,
    #[command(flatten)]
    pub rate_limits: RateLimitArgs,
}

/// The sweep of pending marks whose Kafka write never happened (the API died between decision and
/// write): given back after a bound, so their users may try again.
#[derive(Debug, Clone, clap::Args)]
pub struct SweepArgs {
    /// A pending mark older than this many seconds whose request is neither in Kafka nor in MySQL
    /// is given back. At least the produce timeout plus a second (raised to that).
    #[arg(
        long = "coupon-pending-bound-secs",
        env = "COUPON_PENDING_BOUND_SECS",
        default_value_t = 300
    )]
    pub pending_bound_secs: u64,
    /// How often the API sweeps, in seconds; 0 turns the sweep off.
    #[arg(
        long = "coupon-sweep-interval-secs",
        env = "COUPON_SWEEP_INTERVAL_SECS",
        default_value_t = 60
    )]
    pub interval_secs: u64,
    /// How often the API runs the drift report for its metrics (`campus_coupon_events_drifted`,
    /// the per-event limit, coupons and holders), in seconds; 0 turns it off.
    #[arg(
        long = "coupon-drift-interval-secs",
        env = "COUPON_DRIFT_INTERVAL_SECS",
        default_value_t = 60
    )]
    pub drift_interval_secs: u64,
}

#[derive(Debug, clap::Args)]
pub struct IssueWorkerCmd {
    #[command(flatten)]
    pub kafka: KafkaArgs,
    #[command(flatten)]
    pub mysql: MysqlArgs,
    #[command(flatten)]
    pub redis: RedisArgs,
    #[command(flatten)]
    pub ops: OpsArgs,
}

#[derive(Debug, clap::Args)]
pub struct DriftCmd {
    #[command(flatten)]
    pub mysql: MysqlArgs,
    #[command(flatten)]
    pub redis: RedisArgs,
    /// Only this coupon event (default: every event).
    #[arg(long = "coupon-event-id")]
    pub coupon_event_id: Option<i64>,
    /// Pending requests younger than this many seconds are in flight, not drift.
    #[arg(
        long = "in-flight-grace-secs",
        env = "COUPON_IN_FLIGHT_GRACE_SECS",
        default_value_t = 60
    )]
    pub in_flight_grace_secs: u64,
    /// Exit with an error when an event drifted or was over-issued.
    #[arg(long = "fail-on-drift")]
    pub fail_on_drift: bool,
}

impl Cli {
    /// Runs the chosen sub-command until it ends or SIGTERM/SIGINT.
    pub async fn run(self) -> anyhow::Result<()> {
        match self.command {
            Command::Api(cmd) => {
                telemetry::init("campus-coupon");
                run_api(cmd, shutdown::on_signal()).await
            }
            Command::Worker { worker } => {
                telemetry::init("campus-coupon");
                let opts = worker.consumer_options();
                match worker {
                    WorkerCmd::Issue(cmd) => {
                        run_issue_worker(cmd, opts, shutdown::on_signal()).await
                    }
                }
            }
            Command::Drift(cmd) => run_drift(cmd).await,
            Command::Burst(cmd) => run_burst(cmd).await,
            Command::Dlq(cmd) => cmd.run(campus_contract::Service::Coupon).await.map(drop),
        }
    }
}

async fn connect_mysql(args: &MysqlArgs) -> anyhow::Result<MySqlPool> {
    Ok(mysql::connect(args).await?)
}

pub async fn run_api(cmd: ApiCmd, shutdown: CancellationToken) -> anyhow::Result<()> {
    // Settings first: a bad one fails the start before any connection is made.
    let auth = Auth::from_args(&cmd.auth)?;
    tracing::info!(auth = %auth.describe(), "identity");
    let pool = connect_mysql(&cmd.mysql).await?;
    db::migrate(&pool).await?;
    let store = CouponStore::connect(&cmd.redis, cmd.retention.retention()).await?;
    let topic = cmd.kafka.name(
        Service::Coupon
            .api()
            .produces
            .expect("the coupon API writes its requests"),
    );
    ensure_topic(&cmd.kafka, &topic, cmd.request_partitions).await?;
    let producer = Producer::new(&cmd.kafka)?;
    let in_flight = InFlight::new(
        &cmd.kafka,
        &topic,
        cmd.kafka.name(campus_contract::workers::COUPON_ISSUE.group),
    );
    let sweeper = tokio::spawn(sweep_forever(
        pool.clone(),
        store.clone(),
        in_flight.clone(),
        cmd.sweep.clone(),
        shutdown.clone(),
    ));
    let (report_pool, report_store) = (pool.clone(), store.clone());
    let state = AppState::new(pool, store, producer.clone(), topic)
        .with_in_flight(in_flight)
        .with_rate_limits(&cmd.rate_limits)
        .with_auth(auth)
        .with_dead_letters(cmd.kafka.clone());
    let reporter = tokio::spawn(report_drift_forever(
        report_pool,
        report_store,
        state.drift_metrics(),
        Duration::from_secs(cmd.sweep.drift_interval_secs),
        shutdown.clone(),
    ));
    let admin_listener = tokio::net::TcpListener::bind(cmd.admin_addr)
        .await
        .with_context(|| {
            format!(
                "failed to listen on {} (the admin listener)",
                cmd.admin_addr
            )
        })?;
    tracing::info!(addr = %admin_listener.local_addr()?, "admin listening");
    let admin = {
        let (router, shutdown) = (admin_app(state.clone()), shutdown.clone());
        tokio::spawn(async move {
            axum::serve(
                admin_listener,
                router.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await
        })
    };
    let listener = tokio::net::TcpListener::bind(cmd.http.http_addr)
        .await
        .with_context(|| format!("failed to listen on {}", cmd.http.http_addr))?;
    let served = http::serve_draining(
        listener,
        app(state),
        shutdown.clone(),
        cmd.http.shutdown_drain,
    )
    .await;
    shutdown.cancel();
    let _ = sweeper.await;
    let _ = reporter.await;
    let _ = admin.await;
    producer.flush(Duration::from_secs(5));
    served
}

/// Sweeps stale pending marks every `args.interval_secs` until `shutdown` ([`drift::sweep`]).
async fn sweep_forever(
    pool: MySqlPool,
    store: CouponStore,
    in_flight: InFlight,
    args: SweepArgs,
    shutdown: CancellationToken,
) {
    if args.interval_secs == 0 {
        return;
    }
    let bound = Duration::from_secs(args.pending_bound_secs).max(in_flight.settle());
    let mut tick = tokio::time::interval(Duration::from_secs(args.interval_secs));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        match drift::sweep(&pool, &store, &in_flight, bound).await {
            Ok(r) if r == drift::SweepReport::default() => {}
            Ok(r) => tracing::info!(
                given_back = r.given_back,
                confirmed = r.confirmed,
                in_flight = r.in_flight,
                "swept stale pending marks"
            ),
            Err(e) => {
                tracing::warn!(error = %campus_common::error::chain(&e), "sweep failed; trying again later")
            }
        }
    }
}

/// Runs the drift report every `interval` (none when zero) into `metrics`, until `shutdown`.
async fn report_drift_forever(
    pool: MySqlPool,
    store: CouponStore,
    metrics: crate::metrics::DriftMetrics,
    interval: Duration,
    shutdown: CancellationToken,
) {
    if interval.is_zero() {
        return;
    }
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        match drift::report(&pool, &store, None, drift::DEFAULT_IN_FLIGHT_GRACE).await {
            Ok(report) => {
                if report.drifted > 0 {
                    tracing::warn!(
                        drifted = report.drifted,
                        "coupon events drifted (GET /admin/reconcile shows them)"
                    );
                }
                metrics.record(&report);
            }
            Err(e) => {
                metrics.count(false);
                tracing::warn!(error = %campus_common::error::chain(&e), "drift report failed; trying again later");
            }
        }
    }
}

/// Creates `coupon.request` when it is missing (the operator normally has); never changes it.
async fn ensure_topic(kafka: &KafkaArgs, topic: &str, partitions: i32) -> anyhow::Result<()> {
    let admin = Admin::new(kafka)?;
    let existing = admin
        .describe()
        .await
        .with_context(|| format!("failed to reach Kafka at {}", kafka.brokers))?;
    if !existing.contains_key(topic) {
        admin.ensure(&[TopicSpec::new(topic, partitions)]).await?;
        tracing::info!(topic, partitions, "created the request topic");
    }
    Ok(())
}

/// Runs the issue worker with the subscription `opts` ([`WorkerCmd::consumer_options`]).
pub async fn run_issue_worker(
    cmd: IssueWorkerCmd,
    opts: ConsumerOptions,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let pool = connect_mysql(&cmd.mysql).await?;
    let store = CouponStore::connect(&cmd.redis, Duration::ZERO).await?;
    let mut registry = campus_common::metrics::registry("campus-coupon");
    let consumer_metrics = ConsumerMetrics::register(&mut registry);
    let metrics = WorkerMetrics::register(&mut registry);
    let runtime = ConsumerRuntime::new(&cmd.kafka, opts, consumer_metrics)?;
    let readiness = {
        let (pool, store) = (pool.clone(), store.clone());
        Readiness::new()
            .check("mysql", move || {
                let pool = pool.clone();
                async move { mysql::ping(&pool).await }
            })
            .check("redis", move || {
                let store = store.clone();
                async move { store.ping().await }
            })
            .check("kafka", runtime.ping_fn())
    };
    let ops = tokio::spawn(serve_ops(
        cmd.ops.ops_addr,
        ops::router(Arc::new(registry), readiness),
        shutdown.clone(),
    ));
    let consumed = runtime
        .run(worker::handler(pool, store, metrics), shutdown.clone())
        .await;
    shutdown.cancel();
    let _ = ops.await;
    Ok(consumed?)
}

async fn serve_ops(
    addr: SocketAddr,
    router: axum::Router,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let r = http::serve(addr, router, shutdown).await;
    if let Err(e) = &r {
        tracing::error!(error = %format!("{e:#}"), "ops server failed");
    }
    r
}

/// An issue worker's consumer on another group and topic (already prefixed), for tests.
pub fn issue_consumer(
    kafka: &KafkaArgs,
    group: &str,
    topic: &str,
    metrics: ConsumerMetrics,
) -> anyhow::Result<ConsumerRuntime> {
    let opts = ConsumerOptions::new(group, vec![topic.to_owned()]);
    Ok(ConsumerRuntime::new(kafka, opts, metrics)?)
}

pub async fn run_burst(cmd: crate::burst::BurstCmd) -> anyhow::Result<()> {
    let report = crate::burst::run(&cmd).await?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    if let Some(expected) = cmd.expect_issued {
        report.check(expected).map_err(anyhow::Error::msg)?;
    }
    Ok(())
}

pub async fn run_drift(cmd: DriftCmd) -> anyhow::Result<()> {
    let pool = connect_mysql(&cmd.mysql).await?;
    let store = CouponStore::connect(&cmd.redis, Duration::ZERO).await?;
    let report = drift::report(
        &pool,
        &store,
        cmd.coupon_event_id,
        Duration::from_secs(cmd.in_flight_grace_secs),
    )
    .await?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    if cmd.fail_on_drift && report.drifted > 0 {
        anyhow::bail!("{} coupon event(s) drifted", report.drifted);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use campus_contract::Store;
    use clap::CommandFactory;

    #[test]
    fn command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    /// A value for the flag of each store (no server is contacted).
    fn store_value(store: Store) -> &'static str {
        match store {
            Store::Kafka => "127.0.0.1:9092",
            Store::Mysql => "mysql://root@127.0.0.1:3306/campus",
            Store::Redis => "redis://127.0.0.1:6379",
            other => panic!("the coupon service does not use {other:?}"),
        }
    }

    /// The contract test: every `worker` sub-command is a contract entry of this binary and back,
    /// and each, parsed from the entry's command and store flags as the binary parses it,
    /// subscribes (through the code path `run` uses) to exactly the entry's group and topics.
    #[test]
    fn every_worker_subscribes_as_the_contract_says() {
        let cli = Cli::command();
        let worker = cli.find_subcommand("worker").expect("a worker sub-command");
        Service::Coupon
            .check_worker_commands(worker.get_subcommands().map(|c| c.get_name()))
            .unwrap();
        for w in Service::Coupon.workers() {
            let args = w.command_line("blue", store_value);
            let cli = Cli::try_parse_from(&args).unwrap_or_else(|e| panic!("{}: {e}", w.name));
            let Command::Worker { worker } = cli.command else {
                panic!("{}: not a worker", w.name)
            };
            assert_eq!(worker.contract(), w, "{}", w.name);
            let opts = worker.consumer_options();
            assert_eq!(
                (opts.group, opts.topics),
                w.subscription("blue"),
                "{}",
                w.name
            );
        }
    }

    #[test]
    fn api_reads_the_documented_variables() {
        let cli = Cli::try_parse_from([
            "campus-coupon",
            "api",
            "--kafka-brokers",
            "k:9092",
            "--mysql-url",
            "mysql://u:secret@db/c",
            "--redis-url",
            "redis://:pw@r:6379",
            "--redis-key-prefix",
            "blue:",
        ])
        .unwrap();
        let Command::Api(api) = cli.command else {
            panic!("not api")
        };
        assert_eq!(api.redis.key_prefix, "blue:");
        assert_eq!(api.http.http_addr.to_string(), "0.0.0.0:8080");
        assert_eq!(api.admin_addr.to_string(), "0.0.0.0:8081");
        assert_eq!(api.retention.key_retention_secs, 86_400);
        let debug = format!("{api:?}");
        assert!(
            !debug.contains("secret") && !debug.contains(":pw@"),
            "{debug}"
        );
    }
}

//! `campus-operator`: reconciles `CampusPlatform` resources. In a cluster it uses the pod's
//! service account; elsewhere `KUBECONFIG` (or `~/.kube/config`). Serves `/healthz`, `/readyz`
//! and `/metrics` on `--ops-addr`; only the holder of the leader Lease reconciles.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use campus_common::ops::{Readiness, router};
use campus_operator::controller::{self, Context, Settings};
use campus_operator::leader::LeaderElector;
use campus_operator::metrics::Metrics;
use clap::Parser;
use k8s_openapi::api::coordination::v1::Lease;
use kube::{Api, Client};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// The Campus operator.
#[derive(Debug, Parser)]
#[command(version, about, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// The namespaces whose platforms are reconciled, comma separated, or `*` for every namespace
    /// (which needs the operator's namespaced rights cluster-wide). Default: the operator's own
    /// (`POD_NAMESPACE`).
    #[arg(
        long,
        env = "WATCH_NAMESPACES",
        value_delimiter = ',',
        conflicts_with = "namespace"
    )]
    namespaces: Vec<String>,
    /// One namespace to watch: the former form of `--namespaces`, still read.
    #[arg(long, env = "WATCH_NAMESPACE")]
    namespace: Option<String>,
    /// Address of `/healthz`, `/readyz` and `/metrics`.
    #[arg(long, env = campus_contract::env::OPS_ADDR, default_value = "0.0.0.0:8080")]
    ops_addr: SocketAddr,
    /// Elect a leader with a Lease (turn off only when a single instance runs).
    #[arg(long, env = "LEADER_ELECTION", default_value_t = true, action = clap::ArgAction::Set)]
    leader_election: bool,
    /// Name of the leader Lease.
    #[arg(long, env = "LEASE_NAME", default_value = "campus-operator")]
    lease_name: String,
    /// Namespace of the leader Lease (the operator's own).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    lease_namespace: String,
    /// This instance's identity in the Lease and in events (the pod's name).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// Seconds a Lease stays valid without renewal.
    #[arg(long, env = "LEASE_DURATION_SECONDS", default_value_t = 15)]
    lease_duration_seconds: u64,
    /// Tag of the default Campus images.
    #[arg(long, env = "IMAGE_TAG", default_value = campus_operator::VERSION)]
    image_tag: String,
    /// Registry (and path) put before the default Campus images, e.g. `ghcr.io/campus-dev`
    /// (default: none, the bare `campus-content:<tag>`). A platform's own `image` is used as it is.
    #[arg(long, env = "IMAGE_REGISTRY", default_value = "")]
    image_registry: String,
    /// Seconds between lag readings of autoscaled consumer groups.
    #[arg(long, env = "LAG_INTERVAL_SECONDS", default_value_t = 30)]
    lag_interval_seconds: u64,
    /// Seconds between re-checks of a healthy platform.
    #[arg(long, env = "RESYNC_SECONDS", default_value_t = 300)]
    resync_seconds: u64,
    /// Seconds deletion waits for an unreachable Kafka before leaving the topics behind.
    #[arg(long, env = "TOPIC_DELETION_GRACE_SECONDS", default_value_t = 120)]
    topic_deletion_grace_seconds: u64,
    /// Platforms reconciled at the same time.
    #[arg(long, env = "CONCURRENCY", default_value_t = 8)]
    concurrency: u16,
    /// A CampusPlatform manifest (YAML) to server-side apply once leading, as the field manager
    /// `campus-chart`: the chart's sample platform, so that every `helm install` and `helm upgrade`
    /// reaches it (the chart rolls the operator when it changes).
    #[arg(long, env = "APPLY_PLATFORM")]
    apply_platform: Option<std::path::PathBuf>,
    /// The ClusterRole (installed with the operator) that platforms' Filebeat accounts are bound to.
    #[arg(long, env = "FILEBEAT_CLUSTER_ROLE", default_value = campus_operator::build::DEFAULT_FILEBEAT_CLUSTER_ROLE)]
    filebeat_cluster_role: String,
    /// The ClusterRoleBinding (installed with the operator, of that ClusterRole) whose subjects
    /// the operator keeps: the platforms' Filebeat accounts.
    #[arg(long, env = "FILEBEAT_CLUSTER_ROLE_BINDING", default_value = campus_operator::build::DEFAULT_FILEBEAT_CLUSTER_ROLE_BINDING)]
    filebeat_cluster_role_binding: String,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Deletes the named CampusPlatforms and waits until the operator has finalized them (topics
    /// per their deletionPolicy) and they are gone: the chart's pre-delete hook, so that
    /// `helm uninstall` leaves no platform behind and none stuck on its finalizer once the operator
    /// itself is gone.
    Uninstall {
        /// Namespace of the platforms.
        #[arg(long, env = "POD_NAMESPACE")]
        namespace: String,
        /// A platform to delete (repeatable).
        #[arg(long = "name", required = true)]
        names: Vec<String>,
        /// How long to wait for them to be gone.
        #[arg(long, default_value_t = 180)]
        timeout_seconds: u64,
    },
}

fn main() -> ExitCode {
    let cli: Cli = campus_common::run::parse();
    campus_common::telemetry::init("campus-operator");
    match cli.command {
        Some(Command::Uninstall {
            namespace,
            names,
            timeout_seconds,
        }) => campus_common::run::block_on(uninstall(
            namespace,
            names,
            Duration::from_secs(timeout_seconds),
        )),
        None => campus_common::run::block_on(run(cli)),
    }
}

async fn uninstall(namespace: String, names: Vec<String>, timeout: Duration) -> anyhow::Result<()> {
    use campus_operator::crd::CampusPlatform;
    use kube::api::DeleteParams;
    campus_operator::install_tls_provider();
    let client = Client::try_default()
        .await
        .context("failed to configure the Kubernetes client (in-cluster or KUBECONFIG)")?;
    let api: Api<CampusPlatform> = Api::namespaced(client, &namespace);
    for name in &names {
        match api.delete(name, &DeleteParams::foreground()).await {
            Ok(_) => tracing::info!(%namespace, %name, "CampusPlatform deletion requested"),
            Err(kube::Error::Api(e)) if e.code == 404 => {
                tracing::info!(%namespace, %name, "no such CampusPlatform")
            }
            Err(e) => {
                return Err(e).with_context(|| {
                    format!("failed to delete CampusPlatform {namespace}/{name}")
                });
            }
        }
    }
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let mut left = Vec::new();
        for name in &names {
            if api
                .get_opt(name)
                .await
                .with_context(|| format!("failed to read CampusPlatform {namespace}/{name}"))?
                .is_some()
            {
                left.push(name.as_str());
            }
        }
        if left.is_empty() {
            tracing::info!(%namespace, platforms = ?names, "CampusPlatforms finalized and gone");
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            anyhow::bail!(
                "CampusPlatforms still present after {} s (is the operator running?): {}",
                timeout.as_secs(),
                left.join(", ")
            );
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Server-side applies the CampusPlatform of `file` (field manager `campus-chart`, forced: the
/// chart owns what it sets; fields set by others stay; strict: an unknown field is refused),
/// retrying until it is accepted or `shutdown`. A manifest the API server rejects (schema, CEL,
/// an unknown field) is logged with the reason at every try.
async fn apply_platform(client: Client, file: std::path::PathBuf, shutdown: CancellationToken) {
    use campus_operator::controller::apply::apply_as_chart;
    use campus_operator::crd::CampusPlatform;
    let mut backoff = Duration::from_secs(1);
    loop {
        let result: anyhow::Result<String> = async {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("failed to read {}", file.display()))?;
            let manifest: serde_json::Value = serde_yaml::from_str(&text)
                .with_context(|| format!("{} is not YAML", file.display()))?;
            let meta = &manifest["metadata"];
            let (Some(name), Some(ns)) = (meta["name"].as_str(), meta["namespace"].as_str()) else {
                anyhow::bail!(
                    "{}: metadata.name and metadata.namespace are required",
                    file.display()
                );
            };
            let api: Api<CampusPlatform> = Api::namespaced(client.clone(), ns);
            apply_as_chart(&api, name, &manifest)
                .await
                .with_context(|| format!("failed to apply CampusPlatform {ns}/{name}"))?;
            Ok(format!("{ns}/{name}"))
        }
        .await;
        match result {
            Ok(platform) => {
                tracing::info!(%platform, file = %file.display(), "CampusPlatform applied");
                return;
            }
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), retry_secs = backoff.as_secs(), "the CampusPlatform to apply was not accepted");
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let shutdown = campus_common::shutdown::on_signal();
    campus_operator::install_tls_provider();
    let client = Client::try_default()
        .await
        .context("failed to configure the Kubernetes client (in-cluster or KUBECONFIG)")?;
    let identity = cli
        .identity
        .clone()
        .unwrap_or_else(|| format!("campus-operator-{}", std::process::id()));

    let mut registry = campus_common::metrics::registry("campus-operator");
    let metrics = Metrics::register(&mut registry);
    let check_client = client.clone();
    let readiness = Readiness::new().check("kubernetes", move || {
        let c = check_client.clone();
        async move {
            c.apiserver_version()
                .await
                .map(drop)
                .map_err(|e| e.to_string())
        }
    });
    let ops = router(Arc::new(registry), readiness);
    let ops_task = tokio::spawn(campus_common::http::serve(
        cli.ops_addr,
        ops,
        shutdown.clone(),
    ));

    let namespaces = controller::watch_namespaces(
        &cli.namespaces,
        cli.namespace.as_deref(),
        &cli.lease_namespace,
    )
    .map_err(|e| anyhow::anyhow!("--namespaces/WATCH_NAMESPACES: {e}"))?;
    let settings = Settings {
        namespaces: namespaces.clone(),
        image_tag: cli.image_tag.clone(),
        image_registry: cli.image_registry.clone(),
        resync: Duration::from_secs(cli.resync_seconds),
        lag_interval: Duration::from_secs(cli.lag_interval_seconds),
        topic_deletion_grace: Duration::from_secs(cli.topic_deletion_grace_seconds),
        concurrency: cli.concurrency,
        instance: Some(identity.clone()),
        filebeat_cluster_role: cli.filebeat_cluster_role.clone(),
        filebeat_cluster_role_binding: cli.filebeat_cluster_role_binding.clone(),
        ..Settings::default()
    };
    let ctx = Context::new(client.clone(), settings, metrics.clone());

    let (leading_tx, mut leading) = watch::channel(!cli.leader_election);
    if cli.leader_election {
        let elector = LeaderElector::new(
            Api::<Lease>::namespaced(client.clone(), &cli.lease_namespace),
            cli.lease_name.clone(),
            identity.clone(),
            Duration::from_secs(cli.lease_duration_seconds.max(3)),
        );
        tokio::spawn(elector.run(leading_tx, shutdown.clone()));
        tracing::info!(%identity, lease = %cli.lease_name, "waiting for leadership");
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            r = leading.wait_for(|l| *l) => { r.context("leader election stopped")?; }
        }
    }
    metrics.leader.set(1);
    let watched = if namespaces.is_empty() {
        "*".to_owned()
    } else {
        namespaces.join(",")
    };
    tracing::info!(%identity, namespaces = %watched, "leading; reconciling platforms");
    if let Some(file) = cli.apply_platform.clone() {
        tokio::spawn(apply_platform(client.clone(), file, shutdown.clone()));
    }
    let lost = {
        let mut leading = leading.clone();
        async move {
            let _ = leading.wait_for(|l| !*l).await;
        }
    };
    let stop = shutdown.clone();
    let (lost_tx, lost_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        tokio::select! {
            _ = lost => { let _ = lost_tx.send(()); }
            _ = stop.cancelled() => {}
        }
    });
    let stop = shutdown.clone();
    let mut lost_rx = lost_rx;
    let lost_leadership = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = lost_leadership.clone();
    controller::run(ctx, async move {
        tokio::select! {
            _ = stop.cancelled() => {}
            _ = &mut lost_rx => { flag.store(true, std::sync::atomic::Ordering::SeqCst); }
        }
    })
    .await;
    metrics.leader.set(0);
    // On a shutdown signal the elector releases the Lease, which also looks like a loss: only a
    // loss without one is an error.
    if lost_leadership.load(std::sync::atomic::Ordering::SeqCst) && !shutdown.is_cancelled() {
        anyhow::bail!("lost the leader Lease; exiting so that a fresh instance campaigns again");
    }
    shutdown.cancel();
    ops_task.await.context("the ops server task failed")??;
    Ok(())
}

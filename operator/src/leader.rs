//! Leader election with a `coordination.k8s.io/v1` Lease: one instance reconciles, the others
//! wait. The rules are client-go's (`k8s.io/client-go/tools/leaderelection`):
//! - expiry is judged by local observation: a candidate takes the Lease over once the record has
//!   not changed for its duration *as measured by the candidate's own monotonic clock* since it
//!   last saw it change — never by comparing the holder's `renewTime` with its own wall clock, so
//!   a skewed clock neither steals a live Lease nor waits an hour for a dead one;
//! - the leader stops leading when it has not renewed within the renew deadline (two thirds of the
//!   duration), before any candidate can judge the Lease expired;
//! - writes carry the Lease's resourceVersion, so two candidates never both win.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, PostParams};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    #[error("failed to read or write Lease {name}")]
    Api {
        name: String,
        #[source]
        source: kube::Error,
    },
}

/// One candidate for the Lease `name`.
#[derive(Clone)]
pub struct LeaderElector {
    api: Api<Lease>,
    name: String,
    identity: String,
    lease_duration: Duration,
    /// Added to the wall clock written into `renewTime`/`acquireTime` (a skewed machine, in tests).
    clock_skew: SignedDuration,
    /// The Lease's resourceVersion as last seen, and when (this process's monotonic clock).
    observed: Arc<Mutex<Option<(String, Instant)>>>,
}

impl LeaderElector {
    pub fn new(
        api: Api<Lease>,
        name: impl Into<String>,
        identity: impl Into<String>,
        lease_duration: Duration,
    ) -> Self {
        Self {
            api,
            name: name.into(),
            identity: identity.into(),
            lease_duration,
            clock_skew: SignedDuration::ZERO,
            observed: Arc::default(),
        }
    }

    /// The same candidate on a machine whose wall clock is off by `skew` (what it writes into the
    /// Lease); its judgement of expiry does not depend on it.
    pub fn with_clock_skew(mut self, skew: SignedDuration) -> Self {
        self.clock_skew = skew;
        self
    }

    /// How long the leader may go without renewing before it stops leading: two thirds of the
    /// duration (client-go's defaults are 10 s of 15 s).
    pub fn renew_deadline(&self) -> Duration {
        self.lease_duration * 2 / 3
    }

    /// Notes the Lease's resourceVersion; returns for how long this process has seen it unchanged.
    fn unchanged_for(&self, version: Option<&str>) -> Duration {
        let mut observed = self.observed.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        match (&*observed, version) {
            (Some((seen, at)), Some(v)) if seen == v => now.duration_since(*at),
            (_, v) => {
                *observed = v.map(|v| (v.to_owned(), now));
                Duration::ZERO
            }
        }
    }

    /// A write of ours succeeded: the record seen is the one just written.
    fn wrote(&self, lease: &Lease) {
        if let Some(v) = &lease.metadata.resource_version {
            *self.observed.lock().unwrap_or_else(PoisonError::into_inner) =
                Some((v.clone(), Instant::now()));
        }
    }

    pub fn identity(&self) -> &str {
        &self.identity
    }

    fn err(&self) -> impl Fn(kube::Error) -> LeaderError + '_ {
        move |source| LeaderError::Api {
            name: self.name.clone(),
            source,
        }
    }

    fn spec(&self, now: Timestamp, acquired: Option<MicroTime>, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(self.lease_duration.as_secs().max(1) as i32),
            acquire_time: Some(acquired.unwrap_or(MicroTime(now))),
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }

    /// Takes or renews the Lease; `true` while this candidate holds it. A lost race (conflict) is
    /// `false`, not an error.
    pub async fn try_acquire_or_renew(&self) -> Result<bool, LeaderError> {
        let now = Timestamp::now() + self.clock_skew;
        let current = self.api.get_opt(&self.name).await.map_err(self.err())?;
        let Some(mut lease) = current else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(self.spec(now, None, 0)),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(written) => {
                    self.wrote(&written);
                    Ok(true)
                }
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                Err(e) => Err(self.err()(e)),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.as_deref().unwrap_or_default();
        let mine = holder == self.identity;
        // (The holder's duration, as it wrote it; ours when it wrote none.)
        let duration = spec
            .lease_duration_seconds
            .and_then(|s| u64::try_from(s).ok())
            .map_or(self.lease_duration, Duration::from_secs);
        let expired = self.unchanged_for(lease.metadata.resource_version.as_deref()) >= duration;
        if !mine && !holder.is_empty() && !expired {
            return Ok(false);
        }
        let transitions = spec.lease_transitions.unwrap_or(0) + i32::from(!mine);
        let acquired = if mine { spec.acquire_time } else { None };
        lease.spec = Some(self.spec(now, acquired, transitions));
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(written) => {
                self.wrote(&written);
                Ok(true)
            }
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(self.err()(e)),
        }
    }

    /// Gives the Lease up (if held) so another instance takes over at once.
    pub async fn release(&self) -> Result<(), LeaderError> {
        let Some(mut lease) = self.api.get_opt(&self.name).await.map_err(self.err())? else {
            return Ok(());
        };
        let Some(spec) = lease.spec.as_mut() else {
            return Ok(());
        };
        if spec.holder_identity.as_deref() != Some(&self.identity) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.renew_time = None;
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
            Err(e) => Err(self.err()(e)),
        }
    }

    /// Campaigns until `shutdown`: publishes `true` on `leading` while the Lease is held, renewing
    /// it every third of its duration (every sixth after a failed renewal); stops leading when
    /// the renew deadline passes without a renewal; releases the Lease on shutdown.
    pub async fn run(self, leading: watch::Sender<bool>, shutdown: CancellationToken) {
        let mut campaign = Campaign::new(self.renew_deadline());
        loop {
            let attempt = match self.try_acquire_or_renew().await {
                Ok(held) => Some(held),
                Err(e) => {
                    tracing::warn!(error = %e, "leader election: the Lease could not be read or written");
                    None
                }
            };
            let held = campaign.after(attempt, Instant::now());
            if *leading.borrow() != held {
                tracing::info!(identity = %self.identity, leader = held, "leadership changed");
            }
            leading.send_replace(held);
            let every = if held && attempt != Some(true) {
                self.lease_duration / 6
            } else {
                self.lease_duration / 3
            };
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(every) => {}
            }
        }
        if *leading.borrow() {
            if let Err(e) = self.release().await {
                tracing::warn!(error = %e, "failed to release the Lease");
            }
            leading.send_replace(false);
        }
    }
}

/// The leader's side of the rules: leading from a successful acquire or renewal until the renew
/// deadline has passed without another one, or until the Lease is seen in another's hands.
#[derive(Debug)]
struct Campaign {
    renew_deadline: Duration,
    renewed: Option<Instant>,
}

impl Campaign {
    fn new(renew_deadline: Duration) -> Self {
        Self {
            renew_deadline,
            renewed: None,
        }
    }

    /// Whether this candidate leads after an attempt: `Some(true)` held, `Some(false)` another
    /// holds it (or won the race), `None` the API server could not be asked.
    fn after(&mut self, attempt: Option<bool>, now: Instant) -> bool {
        match attempt {
            Some(true) => self.renewed = Some(now),
            Some(false) => self.renewed = None,
            None => {
                if self
                    .renewed
                    .is_some_and(|at| now.duration_since(at) >= self.renew_deadline)
                {
                    self.renewed = None;
                }
            }
        }
        self.renewed.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_leader_rides_out_failed_renewals_until_the_deadline_then_steps_down() {
        let mut c = Campaign::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert!(!c.after(None, t0), "an API error never makes a leader");
        assert!(c.after(Some(true), t0));
        assert!(
            c.after(None, t0 + Duration::from_secs(5)),
            "one failed renewal"
        );
        assert!(c.after(None, t0 + Duration::from_millis(9_900)));
        assert!(
            !c.after(None, t0 + Duration::from_secs(10)),
            "the deadline passed"
        );
        assert!(!c.after(None, t0 + Duration::from_secs(11)));
        assert!(
            c.after(Some(true), t0 + Duration::from_secs(12)),
            "won it back"
        );
        assert!(
            !c.after(Some(false), t0 + Duration::from_secs(13)),
            "seen in another's hands: at once"
        );
    }
}

//! The enrich service: sessions, restarted after a failure, exactly once throughout.
//!
//! Each batch is one Kafka transaction holding the enriched events, the dead letters, the
//! changelog records of every patient whose state changed, and the input offsets
//! ([`crate::transaction`]). A crash, abort or rebalance rolls all of it back together: the
//! state is reloaded from the committed changelog ([`crate::stores`]) and the input re-read from
//! the committed offsets, so no event is counted twice or lost. Readers of the output use
//! `isolation.level=read_committed`.

use std::time::{Duration, Instant};

use pv_runtime::{KafkaConfig, Shutdown};

use crate::config::EnrichConfig;
use crate::enrich::Enricher;
use crate::metrics::EnrichMetrics;
use crate::session::{Session, SessionError};

/// Fenced this many times within [`FENCED_WINDOW`]: another instance uses our transactional id.
const FENCED_LIMIT: usize = 3;
const FENCED_WINDOW: Duration = Duration::from_secs(600);

/// The enrich service.
#[derive(Debug)]
pub struct EnrichService {
    cfg: EnrichConfig,
    kafka: KafkaConfig,
    enricher: Enricher,
    metrics: EnrichMetrics,
}

impl EnrichService {
    /// A service with the given settings and enricher.
    pub fn new(cfg: EnrichConfig, kafka: KafkaConfig, enricher: Enricher) -> anyhow::Result<Self> {
        Ok(Self { cfg, kafka, enricher, metrics: EnrichMetrics::new()? })
    }

    /// The service's metrics.
    pub fn metrics(&self) -> &EnrichMetrics {
        &self.metrics
    }

    pub(crate) fn config(&self) -> &EnrichConfig {
        &self.cfg
    }

    pub(crate) fn kafka(&self) -> &KafkaConfig {
        &self.kafka
    }

    pub(crate) fn enricher(&self) -> &Enricher {
        &self.enricher
    }

    /// Consumes until `shutdown`, then commits the open transaction and returns. Blocking: run
    /// it on its own thread.
    ///
    /// A failure while running (the broker unreachable longer than a transaction can wait, a
    /// fatal transaction error) ends the session, not the service: after a backoff a new session
    /// starts with new clients, exactly as a restarted process would (the new transactional
    /// producer fences the old one and aborts its open transaction; state and positions are
    /// reloaded from what was committed). Only a failure of the very first start-up (bad
    /// configuration, missing topics), or being fenced [`FENCED_LIMIT`] times within
    /// [`FENCED_WINDOW`] (another instance with the same transactional id), is returned.
    pub fn run(&self, shutdown: &Shutdown) -> Result<(), SessionError> {
        let _lag = pv_runtime::kafka::watch_lag(
            self.kafka.clone(),
            self.cfg.group_id.clone(),
            vec![self.cfg.input_topic.clone()],
            self.metrics.consumer_lag.clone(),
            Duration::from_secs(15),
        );
        let mut started = false;
        let mut backoff = Duration::from_secs(1);
        let mut fenced: Vec<Instant> = Vec::new();
        loop {
            let session = Session::start(self);
            let ready = session.is_ok();
            let error = match session.and_then(|s| {
                if !started {
                    self.log_start();
                }
                s.run(shutdown)
            }) {
                Ok(()) => return Ok(()),
                // A first start that no retry can cure (missing topics, bad settings) is reported;
                // a broker that is down or electing a coordinator is waited for.
                Err(e) if !started && !ready && !e.is_transient() => return Err(e),
                // A repartition found at a restart: no restart can cure it.
                Err(e @ SessionError::Layout(_)) => return Err(e),
                Err(e) => e,
            };
            started = true;
            // Fenced: a transaction the coordinator aborted after an outage (the epoch moved on;
            // a new session recovers), or another live instance with our transactional id — then
            // the two would fence each other forever, so repeated fencing stops the service.
            if matches!(error, SessionError::Fenced(_)) {
                fenced.retain(|t| t.elapsed() < FENCED_WINDOW);
                fenced.push(Instant::now());
                if fenced.len() >= FENCED_LIMIT {
                    return Err(error);
                }
            }
            self.metrics.restarts.inc();
            tracing::error!(error = %error, retry_in_s = backoff.as_secs(), "enricher session failed; starting a new one");
            if !sleep_unless(shutdown, backoff) {
                return Ok(());
            }
            backoff = if ready { Duration::from_secs(1) } else { (backoff * 2).min(Duration::from_secs(30)) };
        }
    }

    fn log_start(&self) {
        tracing::info!(
            input = %self.cfg.input_topic, output = %self.cfg.output_topic, changelog = %self.cfg.changelog_topic,
            dictionary = %self.enricher.coder().dictionary.source(), "enricher running"
        );
    }
}

/// Sleeps `time` unless `shutdown` comes first; whether it slept the whole time.
fn sleep_unless(shutdown: &Shutdown, time: Duration) -> bool {
    let until = Instant::now() + time;
    while Instant::now() < until {
        if shutdown.is_triggered() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    true
}

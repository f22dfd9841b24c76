//! One signals run, and the scheduled loop.
//!
//! A run: read both windows' aggregates as of now, run every analysis, append what they counted
//! to `signal_contributions` and the results to `signal_results`, read the latest change of every signal from `signal_changes`, work out the
//! changes, produce them to the signals topic and wait for every acknowledgement, then append
//! them to `signal_changes`. A crash after producing and before recording repeats the same
//! changes with the same event ids on the next run: delivery is at least once, and consumers
//! drop repeats by `event_id`. One instance runs at a time.

use std::time::{Duration, Instant};

use pv_events::EventCodec;
use pv_runtime::kafka::{DurableProducer, Outgoing, ProduceError};
use pv_runtime::{ClickHouseConfig, KafkaConfig, Shutdown};
use pv_store::signals::{SIGNAL_CHANGES, SIGNAL_CONTRIBUTIONS, SIGNAL_EXPOSURE, SIGNAL_RESULTS};
use pv_store::{Db, StoreError};
use rdkafka::error::KafkaError;

use crate::cohort::{self, SplitSpec};
use crate::compute::Analyser;
use crate::config::SignalsConfig;
use crate::event::{PreviousState, SignalEvent};
use crate::metrics::SignalsMetrics;
use crate::model::SignalResult;
use crate::queries::{self, Bounds};
use crate::status;
use crate::status::Recent;
use crate::{artefacts, cohort_query, contributions, markers, person_time, sequential};

/// Why a run failed. Nothing is recorded as changed unless it was emitted first.
#[derive(Debug, thiserror::Error)]
pub enum SignalsError {
    /// The configuration is unusable.
    #[error("configuration: {0}")]
    Config(String),
    /// Reading aggregates or writing results failed.
    #[error("{0}")]
    Store(#[from] pv_store::StoreError),
    /// Creating the producer failed.
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    /// Delivering a signal event failed.
    #[error("kafka: {0}")]
    Produce(#[from] ProduceError),
    /// A signal event could not be encoded.
    #[error("encoding a signal event: {0}")]
    Encode(#[from] pv_events::CodecError),
}

/// What one run did.
#[derive(Debug, Clone)]
pub struct RunReport {
    /// When the run started (ms since the epoch).
    pub run_at_ms: i64,
    /// Only data received by this instant counted.
    pub as_of_ms: i64,
    /// How far the data reached (the latest administration received; follow-up ends here).
    pub data_end_ms: i64,
    /// Every result, both windows.
    pub results: Vec<SignalResult>,
    /// The changes emitted and recorded.
    pub changes: Vec<SignalEvent>,
    /// Time reading aggregates.
    pub read: Duration,
    /// Time computing.
    pub compute: Duration,
    /// Time storing and emitting.
    pub write: Duration,
}

/// What one evaluation read and computed.
#[derive(Debug, Clone)]
pub struct Evaluation {
    /// The run's time bounds.
    pub bounds: Bounds,
    /// The cumulative window's aggregates.
    pub cumulative: crate::model::Inputs,
    /// The cohort on person-time.
    pub cohort: cohort::Cohort,
    /// Every result.
    pub results: Vec<SignalResult>,
    /// Time reading.
    pub read: Duration,
    /// Time computing.
    pub compute: Duration,
}

impl RunReport {
    /// The results that are signals.
    pub fn signals(&self) -> impl Iterator<Item = &SignalResult> {
        self.results.iter().filter(|r| r.signal)
    }
}

/// The signals service.
pub struct SignalsService {
    analyser: Analyser,
    db: Db,
    producer: DurableProducer,
    codec: &'static EventCodec,
    metrics: SignalsMetrics,
}

impl std::fmt::Debug for SignalsService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignalsService").field("topic", &self.analyser.config().topic).finish_non_exhaustive()
    }
}

impl SignalsService {
    /// A service reading and writing `clickhouse` (migrated) and producing to `kafka`.
    pub fn new(
        cfg: SignalsConfig,
        clickhouse: &ClickHouseConfig,
        kafka: &KafkaConfig,
    ) -> Result<Self, SignalsError> {
        let analyser = Analyser::new(cfg).map_err(SignalsError::Config)?;
        sequential::prepare(analyser.config());
        let producer = DurableProducer::new(kafka, &analyser.config().topic, Duration::from_secs(30))?;
        let metrics = SignalsMetrics::new().map_err(|e| SignalsError::Config(format!("metrics: {e}")))?;
        Ok(Self { analyser, db: Db::new(clickhouse), producer, codec: EventCodec::global(), metrics })
    }

    /// The service's metrics (runs by outcome, the last success).
    pub fn metrics(&self) -> &SignalsMetrics {
        &self.metrics
    }

    /// The configuration in force.
    pub fn config(&self) -> &SignalsConfig {
        self.analyser.config()
    }

    /// Creates the signals topic if it does not exist.
    pub async fn ensure_topic(&self, kafka: &KafkaConfig) -> Result<(), SignalsError> {
        Ok(pv_runtime::kafka::ensure_topics(kafka, &[topic_spec(&self.config().topic)]).await?)
    }

    /// Every result over the data received by `as_of_ms`, with what each counted: the
    /// service's reads and analyses, without storing or emitting anything (what the detection
    /// benchmark measures).
    pub async fn evaluate(&self, as_of_ms: i64) -> Result<Evaluation, SignalsError> {
        let cfg = self.config();
        let started = Instant::now();
        let data_end_ms = queries::latest_administration(&self.db, as_of_ms).await?;
        let bounds = Bounds::new(as_of_ms, data_end_ms, cfg.period_days);
        let ([period, cumulative], mut patients, blocks) = tokio::try_join!(
            queries::inputs(&self.db, cfg, bounds),
            cohort_query::cohort(&self.db, cfg, as_of_ms),
            cohort_query::reporting_blocks(&self.db, cfg, as_of_ms),
        )?;
        let read = started.elapsed();
        let started = Instant::now();
        let mut results = self.analyser.run(&period);
        results.extend(self.analyser.run(&cumulative));
        let judged = artefacts::judge(&cfg.artefacts, &blocks);
        let surges: Vec<(String, i32, i32)> =
            judged.iter().filter(|r| r.surge).map(|r| (r.clinic_id.clone(), r.from_day, r.to_day)).collect();
        markers::add_to_cohort(&cfg.markers, &mut patients);
        let harms = cfg.cohort_harms();
        let spec = SplitSpec {
            harms: &harms,
            bands: &cfg.product_bands,
            on_treatment_days: &cfg.on_treatment_days,
            as_of_day: i32::try_from(bounds.data_end_ms.div_euclid(86_400_000)).unwrap_or(i32::MAX),
            artefacts: &surges,
        };
        let cohort = cohort::split(&spec, &patients);
        results.extend(person_time::analyse(cfg, &cohort));
        results.extend(sequential::analyse(cfg, &cohort));
        results.extend(artefacts::results(&judged));
        for r in &mut results {
            r.as_of_ms = as_of_ms;
        }
        Ok(Evaluation { bounds, cumulative, cohort, results, read, compute: started.elapsed() })
    }

    /// One run over the data received by `as_of_ms` (now when `None`): evaluates, stores the
    /// results with what they counted, and emits and records the signal changes.
    /// Counted in the metrics by outcome.
    pub async fn run_once(&self, as_of_ms: Option<i64>) -> Result<RunReport, SignalsError> {
        let started = Instant::now();
        let result = self.run_unmetered(as_of_ms).await;
        self.metrics.last_run_seconds.set(started.elapsed().as_secs_f64());
        let outcome = if result.is_ok() { "ok" } else { "failed" };
        self.metrics.runs.with_label_values(&[outcome]).inc();
        if result.is_ok() {
            self.metrics.last_success.set(chrono::Utc::now().timestamp_millis() as f64 / 1000.0);
        }
        result
    }

    async fn run_unmetered(&self, as_of_ms: Option<i64>) -> Result<RunReport, SignalsError> {
        let run_at_ms = chrono::Utc::now().timestamp_millis();
        let as_of_ms = as_of_ms.unwrap_or(run_at_ms);
        let cfg = self.config();
        // The earlier runs' signals are read beside this run's inputs, before its results are stored.
        let recent = async { self.recent().await.map_err(SignalsError::from) };
        let (recent, Evaluation { bounds, cumulative, cohort, mut results, read, compute }) =
            tokio::try_join!(recent, self.evaluate(as_of_ms))?;
        for r in &mut results {
            r.run_at_ms = run_at_ms;
        }
        let mut counted = contributions::of_run(cfg, run_at_ms, bounds.period_from_ms, &cumulative);
        counted.extend(contributions::of_cohort(cfg, run_at_ms, &cohort));
        let exposure = contributions::exposure_of_run(run_at_ms, &cumulative);

        let started = Instant::now();
        // What the results counted first: a result on screen can always show its cases.
        self.db.insert(&SIGNAL_CONTRIBUTIONS, &counted).await.map_err(StoreError::from)?;
        self.db.insert(&SIGNAL_EXPOSURE, &exposure).await.map_err(StoreError::from)?;
        self.db.insert(&SIGNAL_RESULTS, &results).await.map_err(StoreError::from)?;
        let previous: Vec<PreviousState> = self
            .db
            .sql(
                "SELECT signal_key, argMax(change, run_at_ms), argMax(n, run_at_ms),
                        argMax(first_signalled_at_ms, run_at_ms), argMax(event_id, run_at_ms)
                 FROM {signal_changes} GROUP BY signal_key",
            )
            .fetch_all()
            .await?;
        let changes = status::changes(&previous, &results, &recent, run_at_ms, as_of_ms);
        self.emit(&changes).await?;
        if !changes.is_empty() {
            self.db.insert(&SIGNAL_CHANGES, &changes).await.map_err(StoreError::from)?;
        }
        self.drop_expired_counts(run_at_ms).await?;
        let write = started.elapsed();
        tracing::info!(
            as_of_ms,
            results = results.len(),
            signals = results.iter().filter(|r| r.signal).count(),
            changes = changes.len(),
            read_ms = read.as_millis() as u64,
            compute_ms = compute.as_millis() as u64,
            write_ms = write.as_millis() as u64,
            "signals run done"
        );
        Ok(RunReport {
            run_at_ms,
            as_of_ms,
            data_end_ms: bounds.data_end_ms,
            results,
            changes,
            read,
            compute,
            write,
        })
    }

    /// Which results were signals in the latest `close_after_runs - 1` runs (read before this
    /// run's results are stored).
    async fn recent(&self) -> Result<Recent, StoreError> {
        let close_after_runs = self.config().close_after_runs;
        let wanted = close_after_runs.saturating_sub(1);
        if wanted == 0 {
            return Ok(Recent { close_after_runs, ..Recent::none() });
        }
        let runs: Vec<i64> = self
            .db
            .sql("SELECT DISTINCT run_at_ms FROM {signal_results} ORDER BY run_at_ms DESC LIMIT {n}")
            .bind("n", wanted)
            .fetch_all()
            .await?;
        let Some(&oldest) = runs.last() else {
            return Ok(Recent { close_after_runs, ..Recent::none() });
        };
        let signalled: Vec<SignalResult> = self
            .db
            .sql("SELECT ?fields FROM {signal_results} WHERE run_at_ms >= {oldest} AND signal = 1")
            .bind("oldest", oldest)
            .fetch_all()
            .await?;
        Ok(Recent {
            close_after_runs,
            runs: runs.len(),
            signalled: signalled.iter().map(SignalResult::key).collect(),
        })
    }

    /// Drops the days of counted cases and exposure older than `keep_counted_days` before
    /// `run_at_ms` (whole partitions: nothing is rewritten).
    async fn drop_expired_counts(&self, run_at_ms: i64) -> Result<(), SignalsError> {
        let keep_ms = i64::from(self.config().keep_counted_days) * 86_400_000;
        let first_kept = chrono::DateTime::from_timestamp_millis(run_at_ms - keep_ms)
            .map_or(0, |t| t.format("%Y%m%d").to_string().parse::<u32>().unwrap_or(0));
        for table in [&SIGNAL_CONTRIBUTIONS as &dyn pv_store::Schema, &SIGNAL_EXPOSURE] {
            let ids = self.db.partition_ids(table).await?;
            for id in pv_store::signals::expired_partitions(&ids, first_kept) {
                self.db.drop_partition(table, &id).await?;
                tracing::info!(table = self.db.name_of(table), partition = %id, "dropped counted cases of an expired day");
            }
        }
        Ok(())
    }

    /// Produces `changes` (key: the signal key) and waits until the broker has them all.
    async fn emit(&self, changes: &[SignalEvent]) -> Result<(), SignalsError> {
        let messages = changes
            .iter()
            .map(|c| {
                let payload = self.codec.encode_record(c)?;
                Ok(Outgoing {
                    key: c.signal_key.clone().into_bytes(),
                    payload,
                    timestamp_ms: None,
                    headers: Vec::new(),
                })
            })
            .collect::<Result<Vec<_>, SignalsError>>()?;
        Ok(self.producer.send_all(&messages).await?)
    }

    /// Runs every `interval_secs` until `shutdown`; a failed run is logged and retried at the
    /// next tick (its changes were not recorded, so they are worked out again).
    pub async fn run(&self, shutdown: Shutdown) {
        let interval = Duration::from_secs(self.config().interval_secs);
        loop {
            match self.run_once(None).await {
                Ok(report) => {
                    for c in &report.changes {
                        tracing::info!(change = %c.change, key = %c.signal_key, n = c.n, estimate = c.estimate, "signal change");
                    }
                }
                Err(e) => tracing::error!(error = %e, "signals run failed; retrying at the next tick"),
            }
            tokio::select! {
                () = shutdown.wait() => break,
                () = tokio::time::sleep(interval) => {}
            }
        }
    }
}

/// The signals topic: one partition (changes stay in order), kept forever.
pub fn topic_spec(name: &str) -> pv_runtime::kafka::TopicSpec {
    pv_runtime::kafka::TopicSpec {
        name: name.to_owned(),
        partitions: 1,
        configs: vec![("retention.ms".into(), "-1".into())],
    }
}

//! What a periodic report is computed from: everything received by the data-lock point, read by
//! [`crate::source`] and handed to the pure builder ([`super::build`]).

use std::collections::BTreeMap;

use chrono::NaiveDate;
use pv_events::EnrichedAdverseEvent;
use pv_store::signals::SignalResult;

const DAY_MS: i64 = 86_400_000;

/// The report asked for: its interval (whole days, UTC, both ends included) and its data-lock point.
#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    /// First day of the reporting interval.
    pub from: NaiveDate,
    /// Last day of the reporting interval.
    pub to: NaiveDate,
    /// The data-lock point: what the gateway had accepted by this instant (ms, inclusive).
    pub lock_ms: i64,
    /// Title on the cover, e.g. "Periodic benefit-risk evaluation report: ketamine and esketamine".
    pub title: String,
    /// The organisation responsible for the report.
    pub organisation: String,
}

impl Spec {
    /// Start of the interval, ms.
    pub fn from_ms(&self) -> i64 {
        day_ms(self.from)
    }

    /// End of the interval, exclusive: midnight after `to`, ms.
    pub fn end_ms(&self) -> i64 {
        day_ms(self.to) + DAY_MS
    }

    /// Whether the instant `ms` lies in the interval.
    pub fn in_interval(&self, ms: i64) -> bool {
        ms >= self.from_ms() && ms < self.end_ms()
    }
}

fn day_ms(d: NaiveDate) -> i64 {
    d.and_hms_opt(0, 0, 0).map_or(0, |t| t.and_utc().timestamp_millis())
}

/// One patient's administrations of one product, route and formulation, within the interval or
/// before it (never after its end).
#[derive(Debug, Clone, PartialEq, clickhouse::Row, serde::Deserialize)]
pub struct ExposureCell {
    /// Pseudonymous patient key.
    pub patient_key: String,
    /// Product.
    pub product: String,
    /// Route.
    pub route: String,
    /// Formulation.
    pub formulation: String,
    /// Whether these administrations were in the interval (else before it).
    pub in_interval: bool,
    /// Administrations.
    pub administrations: u64,
    /// Their total dose, mg.
    pub mg: f64,
    /// The total of mg/kg over the administrations with a recorded weight.
    pub mg_per_kg: f64,
    /// Administrations with a recorded weight.
    pub with_weight: u64,
}

/// Administrations of a product in one calendar month (the exposure-over-time chart).
#[derive(Debug, Clone, PartialEq, clickhouse::Row, serde::Deserialize)]
pub struct MonthlyDoses {
    /// The month's first day, days since 1970-01-01.
    pub month_day: i32,
    /// Product.
    pub product: String,
    /// Administrations.
    pub administrations: u64,
}

/// A patient's baseline as last enrolled by the lock.
#[derive(Debug, Clone, PartialEq, clickhouse::Row, serde::Deserialize)]
pub struct Demographics {
    /// Pseudonymous patient key.
    pub patient_key: String,
    /// Age band as written (`18-24`, ..., `75+`) or `unknown`.
    pub age_band: String,
    /// Sex (`female`, `male`, ...) or `unknown`.
    pub sex: String,
}

/// A case as known at the lock: its latest version received by then (never a nullified one).
#[derive(Debug, Clone, PartialEq)]
pub struct CaseAtLock {
    /// That version.
    pub case: EnrichedAdverseEvent,
    /// When the clinic first received the case: the earliest `reported_at` of its versions
    /// received by the lock (what places the case in the interval).
    pub first_reported_ms: i64,
}

/// A signal as known at the lock: its change log up to the lock and the workflow's decisions.
#[derive(Debug, Clone, PartialEq)]
pub struct SignalAtLock {
    /// The signal's key.
    pub key: String,
    /// Analysis that raised it.
    pub analysis: String,
    /// Product (or `*`).
    pub product: String,
    /// Route (or `*`).
    pub route: String,
    /// Event group, PT or marker.
    pub event: String,
    /// Subgroup (or `*`).
    pub subgroup: String,
    /// When it was first raised (ms).
    pub first_signalled_ms: i64,
    /// The last change recorded by the lock: `new`, `updated` or `closed`.
    pub last_change: String,
    /// When (ms).
    pub last_change_ms: i64,
    /// Cases at that change.
    pub n: i64,
    /// Its estimate and interval at that change.
    pub estimate: f64,
    /// Lower bound.
    pub lower: f64,
    /// Upper bound.
    pub upper: f64,
    /// The workflow's latest decision by the lock, when someone acted on it.
    pub workflow: Option<WorkflowAtLock>,
}

/// The signal workflow's latest state of a signal at the lock.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkflowAtLock {
    /// Workflow state (GVP IX), e.g. `validated`, `assessed`, `closed`.
    pub state: String,
    /// The rationale of the latest transition (the evaluation and action taken).
    pub rationale: String,
    /// Who decided (role).
    pub actor_role: String,
    /// When (ms).
    pub at_ms: i64,
}

/// The position in a Kafka partition up to which events had been received by the lock: every
/// message before `offset` was accepted by then.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct KafkaPosition {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// First offset after the lock (end offset when none is).
    pub offset: i64,
}

/// Everything a periodic report is computed from.
#[derive(Debug, Clone, Default)]
pub struct Input {
    /// Administrations by patient and stratum.
    pub exposure: Vec<ExposureCell>,
    /// Administrations by month and product, up to the interval's end.
    pub monthly: Vec<MonthlyDoses>,
    /// Baselines.
    pub demographics: Vec<Demographics>,
    /// Cases at the lock.
    pub cases: Vec<CaseAtLock>,
    /// The signals service's analyses at the lock (person-time, sequential tests).
    pub analyses: Vec<SignalResult>,
    /// The harms of special interest: (event group, why its risk window is what it is).
    pub harms: Vec<(String, String)>,
    /// Signals at the lock.
    pub signals: Vec<SignalAtLock>,
    /// Raw-topic positions at the lock.
    pub positions: Vec<KafkaPosition>,
    /// Rows read from each source table (what the manifest records).
    pub rows_read: BTreeMap<String, u64>,
}

//! The reads behind the reports, all as of a data-lock point: only rows the gateway had
//! accepted by the lock (`received_at_ms <= lock`), each case as its latest version received by
//! then, signals and workflow decisions recorded by then, and the raw topic's positions at the
//! lock from Kafka's time index (the gateway stamps each message with its acceptance time).
//!
//! Each stored event counts once, as its earliest acceptance: the store's `FINAL` collapses
//! copies only within a partition (a month of the event's own date), so a copy re-sent with
//! another date would survive it; the reads here collapse copies by `(clinic_id, event_id)`
//! explicitly (`argMax(.., dedup_version)`). Sums of doses are taken in integer micrograms, so
//! they do not depend on the order ClickHouse adds in.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::Datelike;
use pv_events::EnrichedAdverseEvent;
use pv_runtime::{ClickHouseConfig, KafkaConfig};
use pv_signals::{SignalsConfig, SignalsService};
use pv_store::Db;
use pv_store::events::{AE_REPORT_VERSIONS, AdverseEventRow};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use crate::ReportError;
use crate::periodic::input::{
    CaseAtLock, Demographics, ExposureCell, Input, KafkaPosition, MonthlyDoses, SignalAtLock, Spec,
    WorkflowAtLock,
};

const DAY_MS: i64 = 86_400_000;

/// Where the reports read from.
#[derive(Debug, Clone)]
pub struct Sources<'a> {
    /// ClickHouse.
    pub clickhouse: &'a ClickHouseConfig,
    /// Kafka.
    pub kafka: &'a KafkaConfig,
    /// The raw topic (the log of record).
    pub raw_topic: &'a str,
    /// The signals service's configuration (its analyses feed the harm sections).
    pub signals: &'a SignalsConfig,
    /// The enricher's consumer group (on the raw topic).
    pub enrich_group: &'a str,
    /// The enriched topic.
    pub enriched_topic: &'a str,
    /// The sink's consumer group (on the enriched topic).
    pub sink_group: &'a str,
}

/// Everything the periodic report for `spec` is computed from.
pub async fn periodic_input(src: &Sources<'_>, spec: &Spec) -> Result<Input, ReportError> {
    let positions = positions(src.kafka, src.raw_topic, spec.lock_ms)?;
    wait_stored(src, &positions, Duration::from_secs(120)).await?;
    let db = Db::new(src.clickhouse);
    let service = SignalsService::new(src.signals.clone(), src.clickhouse, src.kafka)?;
    let (exposure, monthly, demographics, versions, signals, evaluation) = tokio::try_join!(
        exposure(&db, spec),
        monthly(&db, spec),
        demographics(&db, spec.lock_ms),
        case_versions(&db, spec.lock_ms),
        signals(&db, spec.lock_ms),
        async { Ok(service.evaluate(spec.lock_ms).await?) },
    )?;
    let mut rows_read = BTreeMap::new();
    rows_read.insert(
        "administrations up to the interval's end (doses)".to_owned(),
        exposure.iter().map(|c| c.administrations).sum(),
    );
    rows_read.insert("patients with an enrolment (enrolments)".to_owned(), demographics.len() as u64);
    rows_read.insert("case versions (ae_report_versions)".to_owned(), versions.len() as u64);
    rows_read.insert("signals with a change (signal_changes)".to_owned(), signals.len() as u64);
    let cases = cases_at_lock(versions)?;
    let harms = src.signals.harms.iter().map(|(g, h)| (g.clone(), h.rationale.clone())).collect();
    Ok(Input {
        exposure,
        monthly,
        demographics,
        cases,
        analyses: evaluation.results,
        harms,
        signals,
        positions,
        rows_read,
    })
}

/// Every dose received by the lock, once per event (its earliest acceptance), with the columns
/// the exposure reads: `pk`, `pr`, `ro`, `fo`, `at`, `ug` (dose in micrograms), `ugkg` (dose
/// per kg in micrograms, 0 without a weight), `wt` (1 with a weight).
const DOSES_AT_LOCK: &str = "
    SELECT argMax(patient_key, dedup_version) AS pk, argMax(toString(product), dedup_version) AS pr,
           argMax(toString(route), dedup_version) AS ro, argMax(formulation, dedup_version) AS fo,
           argMax(administered_at_ms, dedup_version) AS at,
           argMax(toInt64(round(dose_mg * 1000)), dedup_version) AS ug,
           argMax(toInt64(round(ifNull(dose_mg_per_kg, 0.) * 1000)), dedup_version) AS ugkg,
           argMax(toUInt64(isNotNull(dose_mg_per_kg)), dedup_version) AS wt
    FROM {doses} WHERE received_at_ms <= {lock}
    GROUP BY clinic_id, event_id";

#[derive(Debug, clickhouse::Row, serde::Deserialize)]
struct ExposureSums {
    patient_key: String,
    product: String,
    route: String,
    formulation: String,
    in_interval: bool,
    administrations: u64,
    ug: i64,
    ugkg: i64,
    with_weight: u64,
}

async fn exposure(db: &Db, spec: &Spec) -> Result<Vec<ExposureCell>, ReportError> {
    let sums: Vec<ExposureSums> = db
        .sql(&format!(
            "SELECT pk, pr, ro, fo, at >= {{from}} AS in_interval, count(), sum(ug), sum(ugkg), sum(wt)
             FROM ({DOSES_AT_LOCK}) WHERE at < {{end}}
             GROUP BY pk, pr, ro, fo, in_interval
             ORDER BY pk, pr, ro, fo, in_interval"
        ))
        .bind("from", spec.from_ms())
        .bind("end", spec.end_ms())
        .bind("lock", spec.lock_ms)
        .fetch_all()
        .await?;
    let mg = |ug: i64| ug as f64 / 1000.0;
    Ok(sums
        .into_iter()
        .map(|s| ExposureCell {
            patient_key: s.patient_key,
            product: s.product,
            route: s.route,
            formulation: s.formulation,
            in_interval: s.in_interval,
            administrations: s.administrations,
            mg: mg(s.ug),
            mg_per_kg: mg(s.ugkg),
            with_weight: s.with_weight,
        })
        .collect())
}

#[derive(Debug, clickhouse::Row, serde::Deserialize)]
struct DailyDoses {
    day: i64,
    product: String,
    administrations: u64,
}

/// Administrations by calendar month (UTC) and product, up to the interval's end.
async fn monthly(db: &Db, spec: &Spec) -> Result<Vec<MonthlyDoses>, ReportError> {
    let days: Vec<DailyDoses> = db
        .sql(&format!(
            "SELECT intDiv(at, {{day_ms}}) AS d, pr, count() FROM ({DOSES_AT_LOCK})
             WHERE at < {{end}} GROUP BY d, pr ORDER BY d, pr"
        ))
        .bind("day_ms", DAY_MS)
        .bind("end", spec.end_ms())
        .bind("lock", spec.lock_ms)
        .fetch_all()
        .await?;
    let mut months: BTreeMap<(i32, String), u64> = BTreeMap::new();
    for d in days {
        let Some(date) = chrono::DateTime::from_timestamp_millis(d.day * DAY_MS) else { continue };
        let first = date.date_naive().with_day0(0).unwrap_or(date.date_naive());
        let day =
            i32::try_from(first.signed_duration_since(chrono::NaiveDate::default()).num_days()).unwrap_or(0);
        *months.entry((day, d.product)).or_default() += d.administrations;
    }
    Ok(months
        .into_iter()
        .map(|((month_day, product), administrations)| MonthlyDoses { month_day, product, administrations })
        .collect())
}

/// Each patient's latest enrolment received by the lock: age band as people write it, and sex.
pub(crate) async fn demographics(db: &Db, lock_ms: i64) -> Result<Vec<Demographics>, ReportError> {
    let rows: Vec<Demographics> = db
        .sql(
            "SELECT pk, argMax(ab, (rcv, id)), argMax(sx, (rcv, id)) FROM (
                SELECT argMax(patient_key, dedup_version) AS pk, argMax(toString(age_band), dedup_version) AS ab,
                       argMax(toString(sex), dedup_version) AS sx, max(dedup_version) AS dv,
                       toUInt64(18446744073709551615 - dv) AS rcv, toString(event_id) AS id
                FROM {enrolments} WHERE received_at_ms <= {lock}
                GROUP BY clinic_id, event_id)
             GROUP BY pk ORDER BY pk",
        )
        .bind("lock", lock_ms)
        .fetch_all()
        .await?;
    Ok(rows.into_iter().map(|d| Demographics { age_band: age_label(&d.age_band), ..d }).collect())
}

/// `age_18_24` -> `18-24`, `age_75_plus` -> `75+`.
fn age_label(wire: &str) -> String {
    serde_json::from_value::<pv_events::AgeBand>(serde_json::Value::String(wire.to_owned()))
        .map_or_else(|_| wire.to_owned(), |b| b.label().to_owned())
}

/// Every case version received by the lock, each event once (its earliest acceptance).
pub(crate) async fn case_versions(db: &Db, lock_ms: i64) -> Result<Vec<AdverseEventRow>, ReportError> {
    let rows: Vec<AdverseEventRow> = db
        .sql("SELECT ?fields FROM {ae_report_versions} WHERE received_at_ms <= {lock}")
        .table("ae_report_versions", &AE_REPORT_VERSIONS)
        .bind("lock", lock_ms)
        .fetch_all()
        .await?;
    Ok(earliest_copies(rows))
}

/// Each event once: of the copies of an event id, the earliest accepted, in (clinic, event id)
/// order.
fn earliest_copies(rows: Vec<AdverseEventRow>) -> Vec<AdverseEventRow> {
    pv_store::events::earliest_accepted(
        rows.into_iter().map(|r| ((r.clinic_id.clone(), r.event_id), r.dedup_version, r)),
    )
}

/// The version of a case that stands: the highest, and of copies of it under different event
/// ids, the earliest accepted (then the lowest event id).
fn standing(versions: &[AdverseEventRow]) -> Option<&AdverseEventRow> {
    versions.iter().max_by_key(|v| (v.version, v.dedup_version, std::cmp::Reverse(v.event_id)))
}

/// A stored version whose parallel arrays disagree cannot be read back.
fn to_event(row: &AdverseEventRow) -> Result<EnrichedAdverseEvent, ReportError> {
    row.to_event()
        .ok_or_else(|| ReportError::Corrupt(format!("{}/{} v{}", row.clinic_id, row.report_id, row.version)))
}

/// Each case's latest version among `versions`, nullified cases dropped, by clinic and case id.
pub(crate) fn cases_at_lock(versions: Vec<AdverseEventRow>) -> Result<Vec<CaseAtLock>, ReportError> {
    let mut by_case: BTreeMap<(String, String), Vec<AdverseEventRow>> = BTreeMap::new();
    for v in versions {
        by_case.entry((v.clinic_id.clone(), v.report_id.clone())).or_default().push(v);
    }
    let mut cases = Vec::new();
    for (_, versions) in by_case {
        let first_reported_ms = versions.iter().map(|v| v.reported_at_ms).min().unwrap_or(0);
        let Some(latest) = standing(&versions) else { continue };
        if !latest.nullification {
            cases.push(CaseAtLock { case: to_event(latest)?, first_reported_ms });
        }
    }
    Ok(cases)
}

#[derive(Debug, clickhouse::Row, serde::Deserialize)]
struct SignalRow {
    key: String,
    analysis: String,
    product: String,
    route: String,
    event: String,
    subgroup: String,
    first_signalled_ms: i64,
    last_change: String,
    last_change_ms: i64,
    n: i64,
    estimate: f64,
    lower: f64,
    upper: f64,
}

#[derive(Debug, clickhouse::Row, serde::Deserialize)]
struct WorkflowRow {
    key: String,
    state: String,
    rationale: String,
    actor_role: String,
    at_ms: i64,
}

/// Every signal's last change recorded by the lock, with the workflow's latest transition by then.
async fn signals(db: &Db, lock_ms: i64) -> Result<Vec<SignalAtLock>, ReportError> {
    let changes = db
        .sql(
            "SELECT signal_key, any(analysis), any(product), any(route), any(event), any(subgroup),
                    argMax(first_signalled_at_ms, (run_at_ms, event_id)), argMax(change, (run_at_ms, event_id)),
                    max(run_at_ms), argMax(n, (run_at_ms, event_id)), argMax(estimate, (run_at_ms, event_id)),
                    argMax(lower, (run_at_ms, event_id)), argMax(upper, (run_at_ms, event_id))
             FROM {signal_changes} WHERE run_at_ms <= {lock}
             GROUP BY signal_key ORDER BY signal_key",
        )
        .bind("lock", lock_ms)
        .fetch_all::<SignalRow>();
    let workflow = db
        .sql(
            "SELECT signal_key, argMax(to_state, sequence), argMax(rationale, sequence),
                    argMax(actor_role, sequence), argMax(at_ms, sequence)
             FROM {signal_workflow} FINAL WHERE at_ms <= {lock} AND action = 'transition'
             GROUP BY signal_key",
        )
        .bind("lock", lock_ms)
        .fetch_all::<WorkflowRow>();
    let (changes, workflow) = tokio::try_join!(changes, workflow)?;
    let mut workflow: BTreeMap<String, WorkflowAtLock> = workflow
        .into_iter()
        .map(|w| {
            (
                w.key,
                WorkflowAtLock {
                    state: w.state,
                    rationale: w.rationale,
                    actor_role: w.actor_role,
                    at_ms: w.at_ms,
                },
            )
        })
        .collect();
    Ok(changes
        .into_iter()
        .map(|c| SignalAtLock {
            workflow: workflow.remove(&c.key),
            key: c.key,
            analysis: c.analysis,
            product: c.product,
            route: c.route,
            event: c.event,
            subgroup: c.subgroup,
            first_signalled_ms: c.first_signalled_ms,
            last_change: c.last_change,
            last_change_ms: c.last_change_ms,
            n: c.n,
            estimate: c.estimate,
            lower: c.lower,
            upper: c.upper,
        })
        .collect())
}

/// For each partition of `topic`: the first offset whose acceptance time is after the lock (the
/// end of the partition when there is none yet), from the broker's time index.
pub fn positions(kafka: &KafkaConfig, topic: &str, lock_ms: i64) -> Result<Vec<KafkaPosition>, ReportError> {
    let timeout = Duration::from_secs(10);
    let consumer: BaseConsumer = pv_runtime::kafka::consumer_config(kafka, "pv-report").create()?;
    let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
    let mut query = TopicPartitionList::new();
    for t in metadata.topics() {
        for p in t.partitions() {
            query.add_partition_offset(topic, p.id(), Offset::Offset(lock_ms + 1))?;
        }
    }
    let found = consumer.offsets_for_times(query, timeout)?;
    let mut out = Vec::new();
    for e in found.elements() {
        let offset = match e.offset() {
            Offset::Offset(o) => o,
            _ => consumer.fetch_watermarks(topic, e.partition(), timeout)?.1,
        };
        out.push(KafkaPosition { topic: topic.to_owned(), partition: e.partition(), offset });
    }
    out.sort();
    Ok(out)
}

/// Which case versions an E2B export holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IcsrSelection {
    /// One case (`clinic/report`), at a version (its latest received by the lock when `None`).
    Case {
        /// The clinic.
        clinic_id: String,
        /// The clinic's case id.
        report_id: String,
        /// The version.
        version: Option<i32>,
    },
    /// Every version of the cases first received in the interval (both days included); with
    /// `serious`, only cases some version of which is serious (a nullification of such a case goes
    /// too).
    Interval {
        /// First day.
        from: chrono::NaiveDate,
        /// Last day.
        to: chrono::NaiveDate,
        /// Serious cases only.
        serious: bool,
    },
}

#[derive(Debug, clickhouse::Row, serde::Deserialize)]
struct DoseOf {
    patient_key: String,
    product: String,
    at_ms: i64,
    mg: f64,
}

#[derive(Debug, clickhouse::Row, serde::Deserialize)]
struct BaselineOf {
    patient_key: String,
    age_band: String,
    sex: String,
}

fn wire<T: serde::de::DeserializeOwned>(s: &str) -> Option<T> {
    serde_json::from_value(serde_json::Value::String(s.to_owned())).ok()
}

/// The case versions `selection` names, as received by `lock_ms`, in case and version order,
/// with each patient's baseline and dosing. An unknown case or version is an error naming it.
pub async fn icsr_cases(
    clickhouse: &ClickHouseConfig,
    selection: &IcsrSelection,
    lock_ms: i64,
) -> Result<Vec<crate::icsr::IcsrCase>, ReportError> {
    let db = Db::new(clickhouse);
    let (versions, first_received) = selected_versions(&db, selection, lock_ms).await?;
    if versions.is_empty() {
        return Ok(Vec::new());
    }
    let keys: Vec<String> = versions
        .iter()
        .map(|v| v.patient_key.clone())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let doses: Vec<DoseOf> = db
        .sql(
            "SELECT pk, pr, at, mg FROM (
                SELECT argMax(patient_key, dedup_version) AS pk, argMax(toString(product), dedup_version) AS pr,
                       argMax(administered_at_ms, dedup_version) AS at, argMax(dose_mg, dedup_version) AS mg,
                       toString(event_id) AS id
                FROM {doses} WHERE has({keys}, patient_key) AND received_at_ms <= {lock}
                GROUP BY clinic_id, event_id)
             WHERE has({keys}, pk)
             ORDER BY pk, at, id",
        )
        .bind("keys", keys.clone())
        .bind("lock", lock_ms)
        .fetch_all()
        .await?;
    let baselines: Vec<BaselineOf> = db
        .sql(
            "SELECT pk, argMax(ab, (rcv, id)), argMax(sx, (rcv, id)) FROM (
                SELECT argMax(patient_key, dedup_version) AS pk, argMax(toString(age_band), dedup_version) AS ab,
                       argMax(toString(sex), dedup_version) AS sx, min(received_at_ms) AS rcv,
                       toString(event_id) AS id
                FROM {enrolments} WHERE has({keys}, patient_key) AND received_at_ms <= {lock}
                GROUP BY clinic_id, event_id)
             GROUP BY pk",
        )
        .bind("keys", keys)
        .bind("lock", lock_ms)
        .fetch_all()
        .await?;
    let baselines: BTreeMap<String, BaselineOf> =
        baselines.into_iter().map(|b| (b.patient_key.clone(), b)).collect();
    let mut out = Vec::new();
    for v in &versions {
        let event = to_event(v)?;
        let first = first_received
            .get(&(v.clinic_id.clone(), v.report_id.clone()))
            .copied()
            .unwrap_or(v.reported_at_ms);
        out.push(icsr_case(event, first, baselines.get(&v.patient_key), &doses));
    }
    Ok(out)
}

/// The selected case versions in case and version order, and when each selected case was first
/// received (its earliest `reported_at` over every version received by the lock).
async fn selected_versions(
    db: &Db,
    selection: &IcsrSelection,
    lock_ms: i64,
) -> Result<(Vec<AdverseEventRow>, BTreeMap<(String, String), i64>), ReportError> {
    let all = match selection {
        IcsrSelection::Case { clinic_id, report_id, .. } => {
            let rows: Vec<AdverseEventRow> = db
                .sql(
                    "SELECT ?fields FROM {ae_report_versions}
                     WHERE clinic_id = {clinic} AND report_id = {report} AND received_at_ms <= {lock}",
                )
                .table("ae_report_versions", &AE_REPORT_VERSIONS)
                .bind("clinic", clinic_id.clone())
                .bind("report", report_id.clone())
                .bind("lock", lock_ms)
                .fetch_all()
                .await?;
            earliest_copies(rows)
        }
        IcsrSelection::Interval { .. } => case_versions(db, lock_ms).await?,
    };
    let mut by_case: BTreeMap<(String, String), Vec<AdverseEventRow>> = BTreeMap::new();
    for v in all {
        by_case.entry((v.clinic_id.clone(), v.report_id.clone())).or_default().push(v);
    }
    let mut first_received = BTreeMap::new();
    let mut selected = Vec::new();
    for (case, versions) in by_case {
        let versions = one_copy_per_version(versions);
        let first = versions.iter().map(|v| v.reported_at_ms).min().unwrap_or(i64::MIN);
        let chosen = chosen_versions(selection, versions, first, lock_ms)?;
        if !chosen.is_empty() {
            first_received.insert(case, first);
            selected.extend(chosen);
        }
    }
    match selection {
        IcsrSelection::Case { clinic_id, report_id, .. } if selected.is_empty() => {
            Err(ReportError::NoSuchCase(format!("{clinic_id}/{report_id}")))
        }
        _ => Ok((selected, first_received)),
    }
}

/// Of one case's versions (one per version, in order), those `selection` asks for.
fn chosen_versions(
    selection: &IcsrSelection,
    versions: Vec<AdverseEventRow>,
    first_received_ms: i64,
    lock_ms: i64,
) -> Result<Vec<AdverseEventRow>, ReportError> {
    match selection {
        IcsrSelection::Case { clinic_id, report_id, version } => {
            let pick = match version {
                Some(n) => versions.iter().find(|v| v.version == *n),
                None => versions.last(),
            };
            let what = version.map_or_else(String::new, |n| format!(" version {n}"));
            let pick =
                pick.ok_or_else(|| ReportError::NoSuchCase(format!("{clinic_id}/{report_id}{what}")))?;
            Ok(vec![pick.clone()])
        }
        IcsrSelection::Interval { from, to, serious } => {
            let spec =
                Spec { from: *from, to: *to, lock_ms, title: String::new(), organisation: String::new() };
            let wanted = spec.in_interval(first_received_ms) && (!serious || versions.iter().any(is_serious));
            Ok(if wanted { versions } else { Vec::new() })
        }
    }
}

fn is_serious(v: &AdverseEventRow) -> bool {
    [
        &v.reaction_death,
        &v.reaction_life_threatening,
        &v.reaction_hospitalisation,
        &v.reaction_disability,
        &v.reaction_congenital_anomaly,
        &v.reaction_other_medically_important,
    ]
    .iter()
    .any(|c| c.iter().any(|x| *x))
}

/// One row per version, in version order: of copies of a version under different event ids, the
/// one that stands ([`standing`]).
fn one_copy_per_version(versions: Vec<AdverseEventRow>) -> Vec<AdverseEventRow> {
    let mut by_version: BTreeMap<i32, Vec<AdverseEventRow>> = BTreeMap::new();
    for v in versions {
        by_version.entry(v.version).or_default().push(v);
    }
    by_version.into_values().filter_map(|copies| standing(&copies).cloned()).collect()
}

/// A dose in mg as E2B writes it: to 0.01 mg (summing doses leaves binary noise such as
/// `0.30000000000000004`, which E2B's 8- and 10-character dose fields would refuse).
fn centi(mg: f64) -> f64 {
    (mg * 100.0).round() / 100.0
}

/// The patient as D.1 carries it (60 characters at most): the first 32 hex digits (128 bits) of
/// the pseudonymous key, enough to stay unique and to find the patient's rows by prefix, never the
/// clinic's own reference.
pub fn patient_id(patient_key: &str) -> String {
    patient_key.chars().take(32).collect()
}

fn icsr_case(
    e: EnrichedAdverseEvent,
    first_received_ms: i64,
    baseline: Option<&BaselineOf>,
    doses: &[DoseOf],
) -> crate::icsr::IcsrCase {
    use crate::icsr::{Dosing, IcsrCase, IcsrDrug, IcsrReaction};
    let dosing = |product: pv_events::Product| {
        let name = serde_json::to_value(product).ok()?.as_str()?.to_owned();
        let given: Vec<&DoseOf> = doses
            .iter()
            .filter(|d| {
                d.patient_key == e.patient_key && d.product == name && d.at_ms <= e.exposure_as_of.millis()
            })
            .collect();
        let (first, last) = (given.first()?, given.last()?);
        Some(Dosing {
            last_dose_mg: centi(last.mg),
            administrations: i32::try_from(given.len()).unwrap_or(i32::MAX),
            cumulative_mg: centi(given.iter().map(|d| d.mg).sum()),
            first_dose_ms: first.at_ms,
            last_dose_ms: last.at_ms,
        })
    };
    IcsrCase {
        clinic_id: e.clinic_id.clone(),
        report_id: e.report_id.clone(),
        version: e.version,
        nullification: e.nullification,
        nullification_reason: e.nullification_reason.clone(),
        first_received_ms,
        most_recent_ms: e.reported_at.millis(),
        accepted_at_ms: e.received_at.millis(),
        reporter: e.reporter_qualification,
        patient_key: patient_id(&e.patient_key),
        age_band: baseline.and_then(|b| wire(&b.age_band)),
        sex: baseline.and_then(|b| wire(&b.sex)),
        reactions: e
            .reactions
            .iter()
            .map(|r| IcsrReaction {
                verbatim: r.verbatim.clone(),
                pt: r.pt.clone(),
                pt_code: r.pt_code,
                onset_day: r.onset_date.map(|d| d.days()),
                seriousness: r.seriousness,
                outcome: r.outcome,
            })
            .collect(),
        drugs: e
            .drugs
            .iter()
            .map(|d| IcsrDrug {
                role: d.role,
                name: d.name.clone(),
                product: d.product,
                route: d.route,
                causality: d.causality,
                dechallenge: d.dechallenge,
                rechallenge: d.rechallenge,
                dosing: d.product.and_then(dosing),
            })
            .collect(),
        narrative: e.narrative.clone(),
    }
}

/// Waits until everything the gateway accepted by the lock is stored: the enricher has committed
/// past the raw topic's positions at the lock (its output is committed in the same transaction),
/// and the sink has nothing left on the enriched topic. A report made before then could change
/// when the rest lands, so after `timeout` this is an error naming the lock.
async fn wait_stored(
    src: &Sources<'_>,
    positions: &[KafkaPosition],
    timeout: Duration,
) -> Result<(), ReportError> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let enriched = enricher_passed(src, positions)?;
        let lag = pv_runtime::kafka::group_lag(
            src.kafka,
            src.sink_group,
            &[src.enriched_topic],
            Duration::from_secs(10),
        );
        if enriched && lag? == 0 {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            let behind = if enriched { "the sink" } else { "the enricher" };
            return Err(ReportError::NotStored(format!(
                "{behind} has not stored everything accepted by the lock after {} s",
                timeout.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Whether the enricher's group has committed at least up to each raw position.
fn enricher_passed(src: &Sources<'_>, positions: &[KafkaPosition]) -> Result<bool, ReportError> {
    let consumer: BaseConsumer = pv_runtime::kafka::consumer_config(src.kafka, src.enrich_group).create()?;
    let mut tpl = TopicPartitionList::new();
    for p in positions {
        tpl.add_partition(&p.topic, p.partition);
    }
    let committed = consumer.committed_offsets(tpl, Duration::from_secs(10))?;
    let passed = |p: &KafkaPosition| match committed.find_partition(&p.topic, p.partition).map(|e| e.offset())
    {
        Some(Offset::Offset(o)) => o >= p.offset,
        _ => p.offset == 0,
    };
    Ok(positions.iter().all(passed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use pv_store::events::Provenance;

    fn row(event: u128, version: i32, received_ms: i64) -> AdverseEventRow {
        let mut e = pv_events::sample::enriched_adverse_event();
        e.event_id = pv_events::EventId(uuid::Uuid::from_u128(event));
        e.version = version;
        e.received_at = pv_events::Timestamp::from_millis(received_ms);
        AdverseEventRow::new(&e, Provenance { partition: 0, offset: 0 }).expect("row")
    }

    #[test]
    fn each_event_counts_once_as_its_earliest_acceptance_and_a_version_as_its_earliest_copy() {
        // Event 1 stored twice (re-sent later, e.g. with another date in another partition).
        let kept = earliest_copies(vec![row(1, 1, 500), row(1, 1, 100), row(2, 2, 300)]);
        assert_eq!(
            kept.iter().map(|r| (r.version, r.received_at_ms)).collect::<Vec<_>>(),
            [(1, 100), (2, 300)]
        );
        // Version 2 sent twice under different event ids: the earlier acceptance stands.
        let versions = [row(3, 2, 900), row(4, 2, 700), row(5, 1, 50)];
        let s = standing(&versions).expect("a version");
        assert_eq!((s.version, s.received_at_ms), (2, 700));
        let one = one_copy_per_version(versions.to_vec());
        assert_eq!(
            one.iter().map(|r| (r.version, r.received_at_ms)).collect::<Vec<_>>(),
            [(1, 50), (2, 700)]
        );
    }
}

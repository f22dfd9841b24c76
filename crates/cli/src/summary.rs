//! `pv summary`: what the pipeline has stored, in a few numbers a safety officer would ask for
//! first. Every count deduplicates (FINAL) and reads adverse-event reports in their latest version.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use pv_runtime::ClickHouseConfig;
use pv_store::events::{AE_CASES, AE_REPORT_VERSIONS, DOSES, ENROLMENTS, MONITORING_FORMS};
use pv_store::{Db, Schema};

use crate::PvConfig;

const TABLES: [(&dyn Schema, &str); 5] = [
    (&ENROLMENTS, "patients enrolled"),
    (&DOSES, "administrations"),
    (&MONITORING_FORMS, "session forms"),
    (&AE_REPORT_VERSIONS, "report versions"),
    (&AE_CASES, "cases"),
];

/// Waits until the enricher has committed everything on its input and the sink everything on
/// its topics, i.e. every accepted event is in ClickHouse (or `timeout`); returns the time waited.
pub(crate) async fn wait_caught_up(cfg: &PvConfig, timeout: Duration) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let stages = [
        ("enricher", cfg.enrich.group_id.clone(), vec![cfg.enrich.input_topic.clone()]),
        ("sink", cfg.sink.group_id.clone(), cfg.sink.topics.clone()),
    ];
    for (stage, group, topics) in stages {
        loop {
            let kafka = cfg.kafka.clone();
            let (g, t) = (group.clone(), topics.clone());
            let lag = tokio::task::spawn_blocking(move || {
                let topics: Vec<&str> = t.iter().map(String::as_str).collect();
                pv_runtime::kafka::group_lag(&kafka, &g, &topics, Duration::from_secs(10))
            })
            .await??;
            if lag == 0 {
                break;
            }
            if started.elapsed() > timeout {
                anyhow::bail!(
                    "the {stage} still has {lag} messages to process after {timeout:?}; see its log"
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(started.elapsed())
}

/// Prints the summary.
pub(crate) async fn print(cfg: &ClickHouseConfig) -> anyhow::Result<()> {
    let db = Db::new(cfg);
    println!("== stored in ClickHouse ({}/{}) ==", cfg.url, cfg.database);
    for (table, what) in TABLES {
        let n = db.count(table, true).await.with_context(|| table.name())?;
        println!("  {:<22} {n:>9} {what}", table.name());
    }

    println!("\n== exposure: administrations by product and route ==");
    // ifNull/assumeNotNull: on Nullable columns ClickHouse 18.16 makes aggregates Nullable.
    let rows: Vec<(String, String, u64, u64, f64, f64, f64)> = db
        .sql(
            "SELECT toString(product), toString(route), count(), uniqExact(patient_key),
                    quantile(0.5)(dose_mg),
                    quantileIf(0.5)(assumeNotNull(dose_mg_per_kg), isNotNull(dose_mg_per_kg)),
                    max(exp_cumulative_mg)
             FROM {doses} FINAL GROUP BY product, route ORDER BY count() DESC",
        )
        .fetch_all()
        .await?;
    println!(
        "  {:<11} {:<11} {:>8} {:>9} {:>10} {:>12} {:>17}",
        "product", "route", "doses", "patients", "median mg", "median mg/kg", "max cumulative mg"
    );
    for (product, route, doses, patients, mg, mg_kg, cum) in rows {
        println!("  {product:<11} {route:<11} {doses:>8} {patients:>9} {mg:>10.1} {mg_kg:>12.2} {cum:>17.1}");
    }
    let (escalated, patients): (u64, u64) = db
        .sql(
            "SELECT countIf(ratio >= 1.5), count() FROM (
                SELECT patient_key, argMax(exp_escalation_ratio, administered_at_ms) AS ratio
                FROM {doses} FINAL GROUP BY patient_key)",
        )
        .fetch_one()
        .await?;
    println!("  patients whose latest dose is >= 1.5x their first doses: {escalated} of {patients}");

    println!("\n== session monitoring ==");
    let (sessions, bp40, deep, hypox, short): (u64, u64, u64, u64, u64) = db
        .sql(
            "SELECT count(),
                    countIf(ifNull(bp_systolic_post - bp_systolic_pre >= 40, 0)),
                    countIf(ifNull(sedation_moaas <= 2, 0)),
                    countIf(ifNull(spo2_min_pct < 90, 0)),
                    countIf(observation_minutes < 120)
             FROM {monitoring_forms} FINAL",
        )
        .fetch_one()
        .await?;
    let pct = |n: u64| if sessions == 0 { 0.0 } else { 100.0 * n as f64 / sessions as f64 };
    println!("  sessions monitored                  {sessions:>7}");
    println!("  systolic rise >= 40 mmHg            {bp40:>7}  ({:.1}%)", pct(bp40));
    println!("  deep sedation (MOAA/S <= 2)         {deep:>7}  ({:.1}%)", pct(deep));
    println!("  SpO2 below 90%                      {hypox:>7}  ({:.1}%)", pct(hypox));
    println!("  observed < 120 min (REMS minimum)   {short:>7}  ({:.1}%)", pct(short));

    println!("\n== adverse-event cases (latest version of each) ==");
    const LATEST: &str = "SELECT clinic_id, report_id, max(version) AS versions,
                argMax(nullification, version) AS nullified,
                argMax(reaction_pt, version) AS pts,
                argMax(reaction_verbatim, version) AS verbatims,
                argMax(reaction_groups, version) AS groups,
                argMax(arrayMap((a, b, c, d, e, f) -> a + b + c + d + e + f > 0,
                    reaction_death, reaction_life_threatening, reaction_hospitalisation,
                    reaction_disability, reaction_congenital_anomaly, reaction_other_medically_important), version) AS serious,
                argMax(ifNull(days_since_first_dose, -1), version) AS tto_days,
                argMax(exp_cumulative_mg, version) AS cumulative_mg
         FROM {ae_report_versions} FINAL GROUP BY clinic_id, report_id";
    let (cases, followed_up, nullified): (u64, u64, u64) = db
        .sql(&format!("SELECT count(), countIf(versions > 1), countIf(nullified = 1) FROM ({LATEST})"))
        .fetch_one()
        .await?;
    println!("  cases {cases}, with follow-ups {followed_up}, nullified {nullified}");
    let top: Vec<(String, u64, u64, String)> = db
        .sql(&format!(
            "SELECT ifNull(pt, concat('(uncoded) ', verbatim)) AS term, count(), countIf(is_serious),
                    arrayStringConcat(any(term_groups), ',')
             FROM ({LATEST})
             ARRAY JOIN pts AS pt, verbatims AS verbatim, serious AS is_serious, groups AS term_groups
             WHERE nullified = 0 GROUP BY term ORDER BY count() DESC, term LIMIT 15"
        ))
        .fetch_all()
        .await?;
    println!("  {:<40} {:>7} {:>8}  groups", "preferred term", "cases", "serious");
    for (term, n, serious, groups) in top {
        println!("  {term:<40} {n:>7} {serious:>8}  {groups}");
    }

    println!("\n== event groups of interest ==");
    let groups: Vec<(String, u64, u64, f64, f64)> = db
        .sql(&format!(
            // One ARRAY JOIN per (sub)query: ClickHouse 18.16 refuses two in one.
            "SELECT grp, uniqExact(clinic_id, report_id), uniqExactIf((clinic_id, report_id), is_serious),
                    quantileIf(0.5)(tto_days, tto_days >= 0), quantile(0.5)(cumulative_mg)
             FROM (SELECT clinic_id, report_id, is_serious, tto_days, cumulative_mg, term_groups
                   FROM ({LATEST}) ARRAY JOIN groups AS term_groups, serious AS is_serious
                   WHERE nullified = 0)
             ARRAY JOIN term_groups AS grp
             GROUP BY grp ORDER BY grp"
        ))
        .fetch_all()
        .await?;
    println!(
        "  {:<12} {:>6} {:>8} {:>26} {:>22}",
        "group", "cases", "serious", "median days from 1st dose", "median cumulative mg"
    );
    for (group, n, serious, tto, cum) in groups {
        println!("  {group:<12} {n:>6} {serious:>8} {tto:>26.1} {cum:>22.1}");
    }
    Ok(())
}

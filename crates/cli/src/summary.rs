//! `pv summary`: what the pipeline has stored, in a few numbers a safety officer would ask for
//! first. Every count deduplicates (FINAL) and reads adverse-event reports in their latest version.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use pv_runtime::ClickHouseConfig;

use crate::PvConfig;

const TABLES: [&str; 3] = ["dose_administered", "session_monitoring", "adverse_event_report"];

/// Waits until the sink has committed everything on its topics, i.e. every message is in
/// ClickHouse (or `timeout`); returns the time waited.
pub(crate) async fn wait_caught_up(cfg: &PvConfig, timeout: Duration) -> anyhow::Result<Duration> {
    let started = Instant::now();
    loop {
        let (kafka, group, topics) = (cfg.kafka.clone(), cfg.sink.group_id.clone(), cfg.sink.topics.clone());
        let lag = tokio::task::spawn_blocking(move || {
            let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
            pv_runtime::kafka::group_lag(&kafka, &group, &topics, Duration::from_secs(10))
        })
        .await??;
        if lag == 0 {
            return Ok(started.elapsed());
        }
        if started.elapsed() > timeout {
            anyhow::bail!("the sink still has {lag} messages to store after {timeout:?}; see its log");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Prints the summary.
pub(crate) async fn print(cfg: &ClickHouseConfig) -> anyhow::Result<()> {
    let ch = pv_runtime::clickhouse::client(cfg);
    println!("== stored in ClickHouse ({}/{}) ==", cfg.url, cfg.database);
    for t in TABLES {
        let n: u64 = ch
            .query(&format!("SELECT count() FROM {t} FINAL"))
            .fetch_one()
            .await
            .with_context(|| t.to_string())?;
        println!("  {t:<22} {n:>9} events");
    }

    println!("\n== exposure: administrations by product and route ==");
    let rows: Vec<(String, String, u64, u64, f64, f64)> = ch
        .query(
            "SELECT toString(product), toString(route), count(), uniqExact(clinic_id, patient_ref),
                    quantile(0.5)(dose_mg), quantileIf(0.5)(dose_mg / assumeNotNull(weight_kg), isNotNull(weight_kg))
             FROM dose_administered FINAL GROUP BY product, route ORDER BY count() DESC",
        )
        .fetch_all()
        .await?;
    println!(
        "  {:<11} {:<11} {:>8} {:>9} {:>11} {:>12}",
        "product", "route", "doses", "patients", "median mg", "median mg/kg"
    );
    for (product, route, doses, patients, mg, mg_kg) in rows {
        println!("  {product:<11} {route:<11} {doses:>8} {patients:>9} {mg:>11.1} {mg_kg:>12.2}");
    }

    println!("\n== session monitoring ==");
    let (sessions, bp40, deep, hypox, short_eske): (u64, u64, u64, u64, u64) = ch
        .query(
            // ifNull: on Nullable columns ClickHouse 18.16 makes countIf Nullable(UInt64).
            "SELECT count(),
                    countIf(ifNull(bp_systolic_post - bp_systolic_pre >= 40, 0)),
                    countIf(ifNull(sedation_moaas <= 2, 0)),
                    countIf(ifNull(spo2_min_pct < 90, 0)),
                    countIf(observation_minutes < 120)
             FROM session_monitoring FINAL",
        )
        .fetch_one()
        .await?;
    let pct = |n: u64| {
        if sessions == 0 { 0.0 } else { 100.0 * n as f64 / sessions as f64 }
    };
    println!("  sessions monitored                  {sessions:>7}");
    println!("  systolic rise >= 40 mmHg            {bp40:>7}  ({:.1}%)", pct(bp40));
    println!("  deep sedation (MOAA/S <= 2)         {deep:>7}  ({:.1}%)", pct(deep));
    println!("  SpO2 below 90%                      {hypox:>7}  ({:.1}%)", pct(hypox));
    println!("  observed < 120 min (REMS minimum)   {short_eske:>7}  ({:.1}%)", pct(short_eske));

    println!("\n== adverse-event reports (latest version of each case) ==");
    const LATEST: &str = "SELECT clinic_id, report_id, max(version) AS versions,
                argMax(nullification, version) AS nullified,
                argMax(reaction_verbatim, version) AS verbatims,
                argMax(arrayMap((a, b, c, d, e, f) -> a + b + c + d + e + f > 0,
                    reaction_death, reaction_life_threatening, reaction_hospitalisation,
                    reaction_disability, reaction_congenital_anomaly, reaction_other_medically_important), version) AS serious
         FROM adverse_event_report FINAL GROUP BY clinic_id, report_id";
    let (cases, followed_up, nullified): (u64, u64, u64) = ch
        .query(&format!("SELECT count(), countIf(versions > 1), countIf(nullified = 1) FROM ({LATEST})"))
        .fetch_one()
        .await?;
    println!("  cases {cases}, with follow-ups {followed_up}, nullified {nullified}");
    let top: Vec<(String, u64, u64)> = ch
        .query(&format!(
            "SELECT verbatim, count(), countIf(is_serious) FROM ({LATEST})
             ARRAY JOIN verbatims AS verbatim, serious AS is_serious
             WHERE nullified = 0 GROUP BY verbatim ORDER BY count() DESC, verbatim LIMIT 12"
        ))
        .fetch_all()
        .await?;
    println!("  {:<42} {:>8} {:>8}", "reaction (verbatim, not yet coded)", "cases", "serious");
    for (verbatim, n, serious) in top {
        println!("  {verbatim:<42} {n:>8} {serious:>8}");
    }
    Ok(())
}

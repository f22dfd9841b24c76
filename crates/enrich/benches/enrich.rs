//! Enricher throughput and state memory, without Kafka.
//!
//! `cargo bench -p pv-enrich --bench enrich` (add `-- --quick` for a smaller run).
//!
//! 1. Throughput on one core: Avro decode + validation + HMAC key + coding + state update +
//!    exposure snapshot + Avro encode, over a simulated clinic stream, median of 5 runs.
//! 2. Memory: the resident-set growth of holding exposure state for 1,000,000 patients with
//!    25 doses each (a long maintenance course) and a report for one in ten.

use std::time::Instant;

use pv_coding::Coder;
use pv_enrich::exposure::DoseRecord;
use pv_enrich::{Enricher, PatientState, PatientStore, Pseudonymiser};
use pv_events::{EventCodec, Limits, Timestamp};
use pv_simulate::{SimConfig, event_time, generate};

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    pages * 4096
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let codec = EventCodec::global();
    let enricher = Enricher::new(
        Pseudonymiser::new(b"benchmark secret benchmark secret!!").expect("secret"),
        Coder::demo().expect("demo coder"),
        Limits::default(),
    );

    // ---------------------------------------------------------------- throughput
    let sim = SimConfig {
        clinics: 10,
        patients_per_clinic: if quick { 100 } else { 400 },
        days: 180,
        ..Default::default()
    };
    let mut events = generate(&sim).events;
    for e in &mut events {
        let t = event_time(e);
        e.set_received_at(Timestamp::from_millis(t.millis() + 3_600_000));
    }
    let messages: Vec<Vec<u8>> = events.iter().map(|e| codec.encode(e).expect("encode")).collect();
    drop(events);
    let bytes: usize = messages.iter().map(Vec::len).sum();
    println!(
        "stream: {} raw messages, {:.0} bytes mean",
        messages.len(),
        bytes as f64 / messages.len() as f64
    );
    let mut rates = Vec::new();
    for run in 1..=5 {
        let mut store = PatientStore::default();
        let mut out_bytes = 0usize;
        let started = Instant::now();
        for m in &messages {
            let event = codec.decode(m).expect("decode");
            let enriched = enricher.enrich(&mut store, &event).expect("enrich");
            out_bytes += codec.encode_enriched(&enriched.event).expect("encode").len();
        }
        let secs = started.elapsed().as_secs_f64();
        let rate = messages.len() as f64 / secs;
        println!("  run {run}: {rate:>9.0} events/s ({} patients, {out_bytes} bytes out)", store.len());
        rates.push(rate);
    }
    println!("enrich, one core: median {:.0} events/s (target >= 150,000)", median(rates));

    // ---------------------------------------------------------------- state memory
    let patients: u32 = if quick { 100_000 } else { 1_000_000 };
    let before = rss_bytes();
    let mut store = PatientStore::with_capacity_and_hasher(patients as usize, Default::default());
    let keyer = Pseudonymiser::new(b"benchmark secret benchmark secret!!").expect("secret");
    for p in 0..patients {
        let key = keyer.key("clinic-01", &p.to_string());
        let mut state = PatientState::default();
        for i in 0..25i64 {
            let at = Timestamp::from_millis(1_767_258_000_000 + i * 4 * 86_400_000 + i64::from(p));
            state.doses.insert(DoseRecord::new(at, 35.0 + i as f64 * 0.5, Some(72.5)).expect("dose"));
        }
        if p % 10 == 0 {
            state
                .report_mut(&format!("clinic-01-AE-{p:07}"))
                .observe(1, i64::from(p), false)
                .expect("report");
        }
        store.insert(key, state);
    }
    let grown = rss_bytes().saturating_sub(before);
    println!(
        "state: {patients} patients x 25 doses + 1 report per 10: {:.0} MiB resident ({:.0} bytes/patient; target < 1 GiB for 1,000,000)",
        grown as f64 / 1048576.0,
        grown as f64 / f64::from(patients)
    );
    std::hint::black_box(&store);
}

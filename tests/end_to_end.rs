//! A patient's history goes through the real gateway, broker, enricher and sink into real
//! ClickHouse, and arrives field for field: coded, pseudonymised, with exact exposure (whole on
//! the enriched topic and in a report version, what the analyses read in a dose row).

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{TestEnv, post, read_topic, token};
use pv_events::{
    ClinicEvent, CodedFrom, Date, EnrichedEvent, EventCodec, EventId, Timestamp, event_to_json, sample,
};
use pv_store::events::{AE_REPORT_VERSIONS, AnyRow, DOSES, ENROLMENTS, MONITORING_FORMS, Provenance};

const DAY: i64 = 86_400_000;

/// 2026-03-02T09:00:00Z plus `days`.
fn t(days: i64) -> Timestamp {
    Timestamp::from_millis(1_772_442_000_000 + days * DAY)
}

fn ndjson(events: &[ClinicEvent]) -> String {
    events.iter().map(|e| event_to_json(e).to_string() + "\n").collect()
}

/// The enriched event each raw event should become: the pure enricher over the raw topic, in
/// partition and offset order (what the service does, without Kafka).
fn expected(env: &TestEnv) -> HashMap<EventId, EnrichedEvent> {
    let enricher = TestEnv::enricher();
    let mut stores: HashMap<i32, pv_enrich::PatientStore> = HashMap::new();
    let mut out = HashMap::new();
    for m in read_topic(&env.kafka, &env.raw_topic) {
        let event = EventCodec::global().decode(&m.payload).expect("raw event decodes");
        let enriched = enricher.enrich(stores.entry(m.partition).or_default(), &event).expect("enriches");
        out.insert(enriched.event.event_id(), enriched.event);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patient_history_arrives_coded_pseudonymised_and_exposure_aware() {
    let env = TestEnv::new("e2e").await;
    let gateway = env.start_gateway(env.gateway_config(), &env.kafka).await;
    let enricher = env.start_enricher(env.enrich_config());
    let sink = env.start_sink(env.sink_config());

    // pt-001: enrolled at 08:00 on the day of the first session (the baseline with every optional
    // field set), then four sessions (35, 35, 35, 42 mg at 70 kg) each with a monitoring form.
    let enrolment =
        sample::enrolment("clinic-north", "pt-001", Timestamp::from_millis(t(0).millis() - 3_600_000));
    let mut history: Vec<ClinicEvent> = Vec::new();
    for (i, (day, mg)) in [(0, 35.0), (3, 35.0), (7, 35.0), (10, 42.0)].into_iter().enumerate() {
        let mut d = sample::dose("clinic-north", "pt-001", i as i32 + 1, t(day));
        d.dose_mg = mg;
        history.push(d.into());
        let m = sample::monitoring(
            "clinic-north",
            "pt-001",
            i as i32 + 1,
            Timestamp::from_millis(t(day).millis() + 300_000),
        );
        history.push(m.into());
    }
    // A case with onset on day 8: the follow-up (v2) reaches us before the initial report (v1).
    let onset = t(8).to_datetime().and_then(|x| Date::from_naive(x.date_naive()));
    let mut v1 = sample::adverse_event("clinic-north", "pt-001", "CASE-77", t(11));
    v1.reactions[0].verbatim = "Ketamine cystitis".into();
    v1.reactions[0].coded_term = None;
    v1.reactions[0].onset_date = onset;
    v1.reactions[1].verbatim = "Burning when passing URINE".into();
    v1.reactions.push(pv_events::Reaction {
        verbatim: "strange fizzing in the knees".into(),
        ..v1.reactions[1].clone()
    });
    let mut v2 = v1.clone();
    v2.event_id = EventId::new_random();
    v2.version = 2;
    v2.reported_at = t(12);
    v2.reactions[0].outcome = pv_events::Outcome::Recovered;
    // pt-002: one dose with every optional field empty.
    let mut bare = sample::dose("clinic-north", "pt-002", 1, t(1));
    bare.weight_kg = None;
    bare.protocol = None;
    bare.lot_number = None;

    let north = Some(token("clinic-north"));
    let first: Vec<ClinicEvent> =
        std::iter::once(ClinicEvent::from(enrolment.clone())).chain(history.iter().cloned()).collect();
    let (status, _, body) = post(&gateway.url, north, "application/x-ndjson", ndjson(&first)).await;
    assert_eq!(status, 202, "{body}");
    let later: Vec<ClinicEvent> = vec![v2.clone().into(), v1.clone().into(), bare.into()];
    let (status, _, body) = post(&gateway.url, north, "application/x-ndjson", ndjson(&later)).await;
    assert_eq!(status, 202, "{body}");

    env.wait_for_count("doses", true, 5, Duration::from_secs(90)).await;
    env.wait_for_count("monitoring_forms", true, 4, Duration::from_secs(60)).await;
    env.wait_for_count("ae_report_versions", true, 2, Duration::from_secs(60)).await;
    env.wait_for_count("enrolments", true, 1, Duration::from_secs(60)).await;

    // Field for field: every stored row is exactly the row of the enriched event the raw event
    // yields, read from where the row says it was read.
    let db = env.db();
    let want = expected(&env);
    let at = |partition, offset| Provenance { partition, offset };
    let doses = db.rows(&DOSES).await.expect("doses");
    for r in &doses {
        let row = AnyRow::new(&want[&EventId(r.event_id)], at(r.kafka_partition, r.kafka_offset));
        assert_eq!(row, Ok(AnyRow::Dose(r.clone())));
    }
    let forms = db.rows(&MONITORING_FORMS).await.expect("forms");
    for r in &forms {
        let row = AnyRow::new(&want[&EventId(r.event_id)], at(r.kafka_partition, r.kafka_offset));
        assert_eq!(row, Ok(AnyRow::Monitoring(r.clone())));
    }
    let reports = db.rows(&AE_REPORT_VERSIONS).await.expect("ae");
    for r in &reports {
        let event = r.to_event().expect("consistent arrays");
        assert_eq!(
            want[&EventId(r.event_id)],
            EnrichedEvent::AdverseEvent(event),
            "a report version reads back whole"
        );
    }
    let enrolments = db.rows(&ENROLMENTS).await.expect("enrolments");
    for r in &enrolments {
        assert_eq!(want[&EventId(r.event_id)], EnrichedEvent::Enrolment(r.to_event()));
    }
    let stored = doses.len() + forms.len() + reports.len() + enrolments.len();
    assert_eq!((stored, want.len()), (12, 12));
    let last_row =
        doses.iter().find(|r| EventId(r.event_id) == history[6].event_id()).expect("the last dose is stored");
    assert_eq!(
        (last_row.exp_cumulative_mg, last_row.exp_escalation_ratio),
        (147.0, 1.2),
        "what the analyses read"
    );

    // The whole exposure is on the enriched topic.
    let enriched: HashMap<EventId, EnrichedEvent> = read_topic(&env.kafka, &env.enriched_topic)
        .into_iter()
        .map(|m| {
            let e = EventCodec::global().decode_enriched(&m.payload).expect("enriched event decodes");
            (e.event_id(), e)
        })
        .collect();
    assert_eq!(enriched, want);

    // And the values are the right ones, by hand.
    let EnrichedEvent::Dose(last) = &enriched[&history[6].event_id()] else { panic!("dose") };
    assert_eq!(last.exposure.administrations, 4);
    assert_eq!(last.exposure.cumulative_mg, 147.0);
    assert!((last.exposure.cumulative_mg_per_kg - 2.1).abs() < 1e-12);
    assert_eq!(last.exposure.escalation_ratio, Some(1.2));
    assert_eq!(last.dose_mg_per_kg, Some(0.6));
    let EnrichedEvent::Monitoring(form) = &enriched[&history[3].event_id()] else { panic!("form") };
    assert_eq!(form.exposure.administrations, 2, "as of its own session");
    let EnrichedEvent::Enrolment(enrolled) = &enriched[&enrolment.event_id] else { panic!("enrolment") };
    assert_eq!(enrolled.patient_key, last.patient_key, "the same pseudonymous patient as the doses");
    assert_eq!(
        (enrolled.enrolled_at, enrolled.age_band, enrolled.sex, enrolled.baseline_urinary_score),
        (enrolment.enrolled_at, enrolment.age_band, enrolment.sex, enrolment.baseline_urinary_score)
    );
    assert_eq!(enrolled.prior_substance_use_disorder, enrolment.prior_substance_use_disorder);
    assert_eq!(enrolled.protocol, enrolment.protocol);
    let EnrichedEvent::AdverseEvent(initial) = &enriched[&v1.event_id] else { panic!("ae") };
    assert_eq!(initial.latest_version_seen, 2, "v1 arrived after v2");
    assert_eq!(initial.exposure.administrations, 3, "the day-10 dose came after the onset");
    assert_eq!(initial.exposure.cumulative_mg, 105.0);
    // End of day 8 (23:59:59.999) minus the first dose (day 0, 09:00): 8 days 15 h less 1 ms.
    let expect_days = 8.0 + 15.0 / 24.0 - 1.0 / DAY as f64;
    assert!((initial.days_since_first_dose.expect("tto") - expect_days).abs() < 1e-9);
    let coded: Vec<(Option<&str>, CodedFrom, &[String])> =
        initial.reactions.iter().map(|r| (r.pt.as_deref(), r.coded_from, r.groups.as_slice())).collect();
    let uro = ["urological".to_string()];
    assert_eq!(
        coded,
        [
            (Some("Cystitis interstitial"), CodedFrom::Verbatim, &uro[..]),
            (Some("Dysuria"), CodedFrom::Verbatim, &uro[..]),
            (None, CodedFrom::Uncoded, &[][..]),
        ]
    );
    assert_eq!(initial.reactions[2].verbatim, "strange fizzing in the knees", "uncodable terms are kept");

    // The current case is its highest version.
    let (version, reports): (i32, u64) = db
        .sql("SELECT max(version), count() FROM {ae_cases} FINAL WHERE report_id = 'CASE-77'")
        .fetch_one()
        .await
        .expect("case");
    assert_eq!((version, reports), (2, 1));

    // No clinic patient reference anywhere downstream of the enricher.
    for m in read_topic(&env.kafka, &env.enriched_topic) {
        for raw in [&b"pt-001"[..], b"pt-002"] {
            assert!(!m.payload.windows(raw.len()).any(|w| w == raw), "raw reference in the enriched topic");
            assert!(!m.key.as_deref().unwrap_or_default().windows(raw.len()).any(|w| w == raw));
        }
    }
    for table in ["doses", "monitoring_forms", "ae_report_versions", "enrolments", "ae_cases"] {
        let dump = reqwest::Client::new()
            .post(&env.clickhouse.url)
            .query(&[("database", env.clickhouse.database.as_str())])
            .body(format!("SELECT * FROM {table} FORMAT TSV"))
            .send()
            .await
            .expect("dump")
            .text()
            .await
            .expect("text");
        assert!(!dump.is_empty());
        assert!(!dump.contains("pt-001") && !dump.contains("pt-002"), "raw reference in {table}");
    }

    // `pv summary` reads the same tables with its portable SQL (typed rows: a Nullable
    // aggregate where a plain one is expected would garble the numbers or fail).
    let config = env.write_config(&env.sink_config());
    let out = std::process::Command::new(common::pv_binary())
        .args(["--config", config.to_str().expect("utf-8"), "summary", "--wait"])
        .output()
        .expect("run pv summary");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    let line = |prefix: &str| -> Vec<String> {
        let l = text.lines().find(|l| l.trim_start().starts_with(prefix)).unwrap_or_default();
        l.split_whitespace().map(str::to_owned).collect()
    };
    assert_eq!(line("doses")[1], "5");
    assert_eq!(line("enrolments")[1], "1");
    assert_eq!(line("ketamine    iv")[2..5], ["5", "2", "35.0"], "doses, patients, median mg");
    assert_eq!(line("sessions monitored")[2], "4");
    assert_eq!(line("cases")[..2], ["cases", "1,"]);
    assert_eq!(line("Cystitis interstitial")[2..], ["1", "1", "urological"], "cases, serious, groups");
    assert_eq!(line("(uncoded)")[1..], ["strange", "fizzing", "in", "the", "knees", "1", "0"]);
    assert_eq!(line("urological")[1..3], ["1", "1"], "group: cases, serious");

    sink.stop().await;
    enricher.stop().await;
    gateway.stop().await;
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_messages_go_to_the_dead_letter_topic_and_the_rest_flows() {
    use rdkafka::producer::FutureRecord;

    let env = TestEnv::new("dlq").await;
    let producer = env.producer(10);
    let codec = EventCodec::global();
    let good = || EnrichedEvent::Dose(sample::enriched_dose());
    let poison: &[u8] = b"{\"not\": \"avro\"}";
    for payload in [
        codec.encode_enriched(&good()).expect("encode"),
        poison.to_vec(),
        codec.encode_enriched(&good()).expect("encode"),
    ] {
        producer
            .send(FutureRecord::to(&env.enriched_topic).key("k").payload(&payload), Duration::from_secs(5))
            .await
            .expect("produce");
    }
    let sink = env.start_sink(env.sink_config());
    env.wait_for_count("doses", true, 2, Duration::from_secs(60)).await;
    let dead = common::wait_for_messages(&env.kafka, &env.dlq_topic, 1, Duration::from_secs(30)).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].payload, poison, "the original bytes, unchanged");
    let header =
        |name: &str| dead[0].headers.iter().find(|h| h.0 == name).map(|h| h.1.clone()).unwrap_or_default();
    assert_eq!(header("pv-error"), "not an Avro single-object message (missing C3 01 header)");
    assert_eq!(header("pv-source-topic"), env.enriched_topic);
    assert_eq!(header("pv-source-offset"), "1");
    assert_eq!(header("pv-stage"), "sink");

    sink.stop().await;
    env.cleanup().await;
}

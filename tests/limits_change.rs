//! A limit tightened after events were accepted does not dead-letter them: the gateway records
//! the limits each event passed in its raw message (`pv-accepted-under`), and the enricher judges
//! the event by those. A message without them (another producer) is judged by the enricher's own,
//! and a dead letter keeps them (so a redrive judges the event as it was accepted).

mod common;

use std::time::Duration;

use common::{TestEnv, post, produce_raw, read_topic, token};
use pv_events::{ClinicEvent, Limits, Timestamp, event_to_json, sample};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_judged_by_the_limits_they_were_accepted_under() {
    let env = TestEnv::new("limits_change").await;
    let hour_ago = Timestamp::from_millis(chrono::Utc::now().timestamp_millis() - 3_600_000);
    let heavy = |patient: &str| {
        let mut d = sample::dose("clinic-north", patient, 1, hour_ago);
        d.dose_mg = 900.0;
        ClinicEvent::from(d)
    };

    // Accepted by the gateway under the default ceiling of 1,000 mg.
    let gateway = env.start_gateway(env.gateway_config(), &env.kafka).await;
    // The second is another dose at the same instant: the enricher refuses it for a reason of
    // its own (a conflict), and its dead letter keeps the limits it was accepted under.
    let mut conflicting = heavy("via-gateway");
    conflicting.set_event_id(pv_events::EventId::new_random());
    if let ClinicEvent::DoseAdministered(d) = &mut conflicting {
        d.dose_mg = 800.0;
    }
    for event in [heavy("via-gateway"), conflicting] {
        let body = event_to_json(&event).to_string();
        let (status, _, answer) =
            post(&gateway.url, Some(token("clinic-north")), "application/json", body).await;
        assert_eq!(status, 202, "{answer}");
    }
    gateway.stop().await;
    // Written straight to the topic by a producer that validated nothing.
    let mut direct = heavy("direct");
    direct.set_received_at(Timestamp::now());
    produce_raw(&env.kafka, &env.raw_topic, &[direct]).await;

    // The ceiling is then lowered to 500 mg and the enricher restarted with it.
    let tightened = Limits { max_dose_mg: 500.0, ..Limits::default() };
    let p = pv_enrich::Pseudonymiser::new(common::TEST_SECRET.as_bytes()).expect("secret");
    let enricher = pv_enrich::Enricher::new(p, pv_coding::Coder::demo().expect("demo"), tightened);
    let running = env.start_enricher_with(env.enrich_config(), enricher);
    let sink = env.start_sink(env.sink_config());
    env.wait_for_count("doses", true, 1, Duration::from_secs(60)).await;
    let (kafka, dlq) = (env.kafka.clone(), env.raw_dlq_topic.clone());
    let mut letters = common::wait_for_messages(&kafka, &dlq, 2, Duration::from_secs(60)).await;
    running.stop().await;
    sink.stop().await;

    assert_eq!(letters.len(), 2, "the unvalidated one and the conflict are dead-lettered");
    letters.sort_by_key(|l| l.key.clone());
    let header =
        |l: &common::Read, name: &str| l.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    assert_eq!(letters[0].key.as_deref(), Some(&b"clinic-north/direct"[..]));
    let reason = header(&letters[0], "pv-error");
    assert!(reason.as_deref().is_some_and(|r| r.contains("dose_mg") && r.contains("500")), "{reason:?}");
    assert_eq!(header(&letters[0], Limits::HEADER), None);
    assert!(
        header(&letters[1], "pv-error").is_some_and(|r| !r.contains("dose_mg")),
        "a conflict, not a limit"
    );
    assert_eq!(
        header(&letters[1], Limits::HEADER),
        Some(Limits::default().to_header()),
        "kept in the letter"
    );
    let raw = read_topic(&env.kafka, &env.raw_topic);
    let recorded: Vec<Option<&str>> = raw
        .iter()
        .map(|m| m.headers.iter().find(|(k, _)| k == Limits::HEADER).map(|(_, v)| v.as_str()))
        .collect();
    assert!(
        recorded.contains(&Some(Limits::default().to_header().as_str())),
        "the gateway records its limits"
    );
    assert!(recorded.contains(&None), "the direct producer recorded none");
    env.cleanup().await;
}

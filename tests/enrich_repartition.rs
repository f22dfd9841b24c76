//! A repartition of the raw topic is refused by the enricher instead of silently resetting the
//! exposure of the patients it moves: the input positions it commits record the partition count
//! their state belongs to, and a start on another count stops with the reason; a repartition
//! while it runs stops it before it commits anything read under the new count.

mod common;

use std::time::Duration;

use common::{TestEnv, produce_raw, simulated_stream};
use pv_runtime::Shutdown;
use rdkafka::admin::{AdminClient, AdminOptions, NewPartitions};
use rdkafka::client::DefaultClientContext;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_enricher_refuses_a_repartitioned_raw_topic() {
    let env = TestEnv::new("enrich_repartition").await;
    let mut events = simulated_stream(1, 3, 20);
    let now = pv_events::Timestamp::now();
    for e in &mut events {
        e.set_received_at(now);
    }
    produce_raw(&env.kafka, &env.raw_topic, &events).await;
    let enricher = env.start_enricher(env.enrich_config());
    common::wait_for_messages(&env.kafka, &env.enriched_topic, events.len(), Duration::from_secs(60)).await;
    enricher.stop().await;

    // Restarted on the same partitions: it runs.
    let service = |env: &TestEnv| {
        pv_enrich::EnrichService::new(env.enrich_config(), env.kafka.clone(), TestEnv::enricher())
            .expect("service")
    };
    let same = service(&env);
    let shutdown = Shutdown::new();
    let stop = shutdown.clone();
    let running = std::thread::spawn(move || same.run(&shutdown));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!running.is_finished(), "the same layout starts");
    stop.trigger();
    running.join().expect("joined").expect("clean stop");

    // Both the raw topic and the changelog grow to 4 partitions: refused, with the reason.
    let admin: AdminClient<DefaultClientContext> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &env.kafka.bootstrap_servers)
        .create()
        .expect("admin");
    let grow = [NewPartitions::new(&env.raw_topic, 4), NewPartitions::new(&env.state_topic, 4)];
    for r in admin.create_partitions(&grow, &AdminOptions::new()).await.expect("grown") {
        r.expect("partitions added");
    }
    let grown = service(&env);
    let outcome = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::task::spawn_blocking(move || grown.run(&Shutdown::new())),
    )
    .await
    .expect("stops by itself instead of running on")
    .expect("joined");
    let error = outcome.expect_err("a repartitioned raw topic is refused").to_string();
    assert!(error.contains("has 4 partitions") && error.contains("were built for 3"), "{error}");
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repartition_while_running_stops_the_enricher_before_it_commits() {
    let env = TestEnv::new("enrich_repartition_live").await;
    // Enough patients that some keep to the partitions the running enricher owns.
    let mut events = simulated_stream(1, 12, 10);
    let now = pv_events::Timestamp::now();
    for e in &mut events {
        e.set_received_at(now);
    }
    let (first, second) = events.split_at(events.len() / 2);
    produce_raw(&env.kafka, &env.raw_topic, first).await;
    let service = pv_enrich::EnrichService::new(env.enrich_config(), env.kafka.clone(), TestEnv::enricher())
        .expect("service");
    let running = tokio::task::spawn_blocking(move || service.run(&Shutdown::new()));
    let enriched =
        common::wait_for_messages(&env.kafka, &env.enriched_topic, first.len(), Duration::from_secs(60))
            .await;
    assert_eq!(enriched.len(), first.len());

    // The raw topic grows under the running enricher, then more events arrive (keyed by the new count).
    let admin: AdminClient<DefaultClientContext> =
        pv_runtime::kafka::admin_config(&env.kafka).create().expect("admin");
    let grow = [NewPartitions::new(&env.raw_topic, 5), NewPartitions::new(&env.state_topic, 5)];
    for r in admin.create_partitions(&grow, &AdminOptions::new()).await.expect("grown") {
        r.expect("partitions added");
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    produce_raw(&env.kafka, &env.raw_topic, second).await;
    let outcome = tokio::time::timeout(Duration::from_secs(60), running)
        .await
        .expect("stops by itself instead of running on")
        .expect("joined");
    let error = outcome.expect_err("stopped").to_string();
    assert!(error.contains("went from 3 to 5 partitions while running"), "{error}");
    // Nothing read under the new count was committed.
    let after = common::read_topic(&env.kafka, &env.enriched_topic);
    assert_eq!(after.len(), first.len(), "no event of the second half enriched");
    env.cleanup().await;
}

/// Runs `pv --config CONFIG repartition --partitions N`; returns (success, output).
async fn pv_repartition(config: &std::path::Path, partitions: usize) -> (bool, String) {
    let out = common::run_pv(config, &["repartition", "--partitions", &partitions.to_string()]).await;
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// Each dose's exposure as stored: (event id, cumulative mg, escalation ratio). A patient whose
/// state was lost starts again from nothing: a lower cumulative dose, a ratio from a new baseline.
async fn dose_exposures(env: &TestEnv) -> Vec<(String, f64, f64)> {
    env.db()
        .sql("SELECT toString(event_id), exp_cumulative_mg, exp_escalation_ratio FROM {doses} FINAL ORDER BY event_id")
        .fetch_all()
        .await
        .expect("doses")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_pv_repartition_every_patients_exposure_continues() {
    let mut events = simulated_stream(1, 12, 20);
    let now = pv_events::Timestamp::now();
    for e in &mut events {
        e.set_received_at(now);
    }
    // The control: the whole stream on 3 partitions.
    let control = TestEnv::new("repartition_control").await;
    common::through_pipeline(&control, &mut events.clone()).await;
    let want = dose_exposures(&control).await;

    let env = TestEnv::new("repartition").await;
    let config = env.write_config(&env.sink_config());
    let (first, second) = events.split_at(events.len() / 2);
    produce_raw(&env.kafka, &env.raw_topic, first).await;
    // Refused while the raw topic holds events the enricher has not consumed.
    let (ok, out) = pv_repartition(&config, 5).await;
    assert!(!ok && out.contains("is consumed to 0 of"), "{out}");
    let enricher = env.start_enricher(env.enrich_config());
    common::wait_for_messages(&env.kafka, &env.enriched_topic, first.len(), Duration::from_secs(60)).await;
    // Refused while an enricher runs.
    let (ok, out) = pv_repartition(&config, 5).await;
    assert!(!ok && out.contains("are running"), "{out}");
    enricher.stop().await;

    let (ok, out) = pv_repartition(&config, 5).await;
    // "...: 3 -> 5 partitions; P patients with state, M moved to ...".
    let numbers = |out: &str| -> Vec<usize> {
        let summary = out.lines().find(|l| l.contains(" partitions; ")).unwrap_or_default();
        summary.split([' ', ';', ',']).filter_map(|w| w.parse().ok()).collect()
    };
    let [from, to, patients, moved] =
        <[usize; 4]>::try_from(numbers(&out)).unwrap_or_else(|_| panic!("{out}"));
    assert!(ok && (from, to) == (3, 5) && patients > 8 && moved > 0 && moved <= patients, "{out}");
    let (ok, out) = pv_repartition(&config, 5).await;
    assert_eq!(numbers(&out), [5, 5, patients, 0], "running it again moves nothing: {out}");
    assert!(ok);

    // The enricher starts on the new count; the rest arrives keyed by it.
    produce_raw(&env.kafka, &env.raw_topic, second).await;
    let enricher = env.start_enricher(env.enrich_config());
    let sink = env.start_sink(env.sink_config());
    let [doses, ..] = common::distinct(&events);
    env.wait_for_count("doses", true, doses, Duration::from_secs(120)).await;
    enricher.stop().await;
    sink.stop().await;
    assert_eq!(dose_exposures(&env).await, want, "every dose's exposure as if nothing had moved");

    // The partitions librdkafka chose are the ones `pv repartition` computed.
    let raw = common::read_topic(&env.kafka, &env.raw_topic);
    let mut by_new_count = 0;
    for m in &raw {
        let key = m.key.as_deref().expect("keyed");
        let (old, new) =
            (pv_enrich::relayout::partition_for(key, 3), pv_enrich::relayout::partition_for(key, 5));
        assert!(m.partition == old || m.partition == new, "partition {} for {key:?}", m.partition);
        by_new_count += usize::from(m.partition == new && old != new);
    }
    assert!(by_new_count > 0, "some events went by the new count");
    control.cleanup().await;
    env.cleanup().await;
}

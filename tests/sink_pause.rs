//! The sink's back-pressure pause is kept per partition across rebalances: a member that wants
//! fetching paused gets every partition it is assigned paused, and once it resumes, a partition
//! it had paused before a rebalance moved it away flows again when it comes back (librdkafka
//! would otherwise keep the old pause on it). Real broker, real consumer group.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::TestEnv;
use pv_sink::feed::{GroupFeed, Incoming};
use rdkafka::producer::FutureRecord;

/// One message `payload` to each of `partitions` of `topic`.
async fn produce_to(env: &TestEnv, topic: &str, partitions: &[i32], payload: &str) {
    let producer = env.producer(10);
    for &p in partitions {
        let record: FutureRecord<'_, [u8], str> = FutureRecord::to(topic).partition(p).payload(payload);
        producer.send(record, Duration::from_secs(10)).await.map_err(|(e, _)| e).expect("acked");
    }
}

/// What a member received: partition -> payloads, in order.
type Received = BTreeMap<i32, Vec<String>>;

/// Polls `a` and `b` (when given) for `time`; what each received.
async fn poll(a: &GroupFeed, b: Option<&GroupFeed>, time: Duration) -> (Received, Received) {
    let (mut got_a, mut got_b) = (Received::new(), Received::new());
    let until = tokio::time::Instant::now() + time;
    let text = |m: &Incoming<'_>| String::from_utf8_lossy(m.payload()).into_owned();
    loop {
        tokio::select! {
            m = a.next() => got_a.entry(m.partition()).or_default().push(text(&m)),
            m = async { b.expect("guarded").next().await }, if b.is_some() => got_b.entry(m.partition()).or_default().push(text(&m)),
            () = tokio::time::sleep_until(until) => return (got_a, got_b),
        }
    }
}

/// Polls until `done` holds (rebalances are served while polling), for at most 60 s. Nothing
/// is committed, so a partition that changes hands is read again from its start.
async fn poll_until(a: &GroupFeed, b: Option<&GroupFeed>, what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "not within 60 s: {what}");
        poll(a, b, Duration::from_millis(200)).await;
    }
}

/// The partitions from which `received` holds `payload`.
fn with(received: &Received, payload: &str) -> Vec<i32> {
    received.iter().filter(|(_, v)| v.iter().any(|p| p == payload)).map(|(p, _)| *p).collect()
}

fn partitions(set: &BTreeSet<(String, i32)>) -> Vec<i32> {
    set.iter().map(|(_, p)| *p).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_partition_moved_away_and_back_resumes_with_the_member() {
    let env = TestEnv::new("sink_pause").await;
    let topic = env.enriched_topic.clone();
    let group = format!("pvt-pause-{}", env.id);
    let all = vec![0, 1, 2];

    let a = GroupFeed::subscribe(&env.kafka, &group, std::slice::from_ref(&topic)).expect("member a");
    poll_until(&a, None, "a is assigned every partition", || partitions(&a.assigned()) == all).await;
    a.set_paused(true);
    assert_eq!(partitions(&a.context().paused()), all);

    // A second member takes some partitions: a keeps the rest, paused.
    let b = GroupFeed::subscribe(&env.kafka, &group, std::slice::from_ref(&topic)).expect("member b");
    poll_until(&a, Some(&b), "the partitions are shared", || {
        !a.assigned().is_empty() && !b.assigned().is_empty()
    })
    .await;
    let (kept, moved) = (partitions(&a.assigned()), partitions(&b.assigned()));
    assert_eq!(partitions(&a.context().paused()), kept, "re-assigned partitions are paused again");
    produce_to(&env, &topic, &all, "while paused").await;
    let (got_a, got_b) = poll(&a, Some(&b), Duration::from_secs(3)).await;
    assert!(got_a.is_empty(), "a is paused but read {got_a:?}");
    assert_eq!(with(&got_b, "while paused"), moved, "b is not paused");

    // a resumes what it holds ...
    a.set_paused(false);
    assert!(a.context().paused().is_empty());
    let (got_a, _) = poll(&a, Some(&b), Duration::from_secs(3)).await;
    assert_eq!(with(&got_a, "while paused"), kept);

    // ... and the partitions it had paused before they moved to b flow once they come back.
    drop(b);
    poll_until(&a, None, "a is assigned every partition again", || partitions(&a.assigned()) == all).await;
    assert!(a.context().paused().is_empty());
    produce_to(&env, &topic, &all, "after").await;
    let (got_a, _) = poll(&a, None, Duration::from_secs(5)).await;
    assert_eq!(with(&got_a, "after"), all, "every partition flows: {got_a:?}");
    drop(a);
    env.cleanup().await;
}

//! `pv topics check|apply` against the real broker: every topic the configuration names is
//! listed; missing ones are created by `apply` with the configured partitions, replication and
//! configs; what differs on the broker is reported as drift and fails the command.

mod common;

use std::path::Path;

use common::{TestEnv, pv_binary};

async fn topics(config: &Path, verb: &str) -> (bool, String) {
    let out = tokio::process::Command::new(pv_binary())
        .args(["--config", config.to_str().expect("utf-8"), "topics", verb])
        .output()
        .await
        .expect("pv runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

fn line<'a>(text: &'a str, topic: &str) -> &'a str {
    text.lines()
        .find(|l| l.trim_start().starts_with(&format!("{topic} ")))
        .unwrap_or_else(|| panic!("{topic} listed: {text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_are_created_as_configured_and_drift_is_reported() {
    let env = TestEnv::new("topics").await;
    let config = env.write_config(&env.sink_config());
    let (redriven, imports) = (format!("pvt.{}.redriven", env.id), format!("pvt.{}.imports", env.id));
    let extra = format!(
        "\n[gateway]\ntopic = \"{}\"\n\n[signals]\ntopic = \"{}\"\n\n[topics]\npartitions = 3\nredrive_log = \"{redriven}\"\nimport_ledger = \"{imports}\"\n",
        env.raw_topic, env.signals_topic
    );
    let mut text = std::fs::read_to_string(&config).expect("config");
    text.push_str(&extra);
    std::fs::write(&config, text).expect("config");

    // The test's topics exist (3 partitions); the ledgers and the workflow topic do not, and
    // the state topic lacks the configured min.compaction.lag.ms.
    let (ok, before) = topics(&config, "check").await;
    assert!(!ok, "{before}");
    assert_eq!(line(&before, &redriven).split_whitespace().nth(1), Some("missing"), "{before}");
    assert!(line(&before, &env.raw_topic).ends_with(" ok"), "{before}");
    assert!(line(&before, &env.state_topic).contains("drift: min.compaction.lag.ms"), "{before}");
    assert_eq!(env.topic_messages(&env.raw_topic), 0);

    let (ok, after) = topics(&config, "apply").await;
    assert!(!ok, "the drift remains: apply never changes an existing topic: {after}");
    for created in [&redriven, &imports, &env.workflow_topic()] {
        assert!(line(&after, created).ends_with(" ok"), "{created} created as configured: {after}");
    }
    let ledger =
        pv_runtime::kafka::describe_topic(&env.kafka, &imports).await.expect("describe").expect("exists");
    assert_eq!(
        (ledger.partitions, ledger.configs.get("cleanup.policy").map(String::as_str)),
        (1, Some("compact"))
    );
    assert!(after.contains("1 topics differ"), "{after}");

    let _ = pv_runtime::kafka::delete_topics(&env.kafka, &[redriven.as_str(), imports.as_str()]).await;
    env.cleanup().await;
}

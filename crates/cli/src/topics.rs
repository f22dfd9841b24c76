//! `pv topics apply|check`: every topic of the pipeline, created with the configured partitions,
//! replication factor and `min.insync.replicas`, and what differs on the broker reported as drift.

use clap::Subcommand;
use pv_runtime::kafka::{TopicSpec, describe_topic, drift, ensure_topics};
use std::time::Duration;

use crate::PvConfig;

/// `pv topics ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum TopicsCommand {
    /// Create the missing topics, then report drift (exit status 1 if any).
    Apply,
    /// Report missing topics and drift without changing anything (exit status 1 if any).
    Check,
}

/// Every topic the pipeline's services use, named by their configuration.
pub(crate) fn pipeline_topics(cfg: &PvConfig) -> Vec<TopicSpec> {
    let keyed = cfg.topics.partitions;
    let forever = |name: &str, partitions: i32| TopicSpec {
        name: name.to_owned(),
        partitions,
        configs: vec![("retention.ms".into(), "-1".into())],
    };
    vec![
        // The log of record: kept forever.
        forever(&cfg.gateway.topic, keyed),
        forever(&cfg.enrich.dlq_topic, 1),
        forever(&cfg.enrich.output_topic, keyed),
        forever(&cfg.sink.dlq_topic, 1),
        // The enricher's per-patient state: one partition per raw partition, compacted.
        TopicSpec {
            name: cfg.enrich.changelog_topic.clone(),
            partitions: keyed,
            configs: vec![
                ("cleanup.policy".into(), "compact".into()),
                ("min.compaction.lag.ms".into(), "60000".into()),
            ],
        },
        pv_signals::service::topic_spec(&cfg.signals.topic),
        pv_dashboard::workflow::topic_spec(&cfg.dashboard.workflow_topic),
        TopicSpec::ledger(&cfg.topics.redrive_log),
        TopicSpec::ledger(&cfg.topics.import_ledger),
    ]
}

impl TopicsCommand {
    pub(crate) async fn run(self, cfg: &PvConfig) -> anyhow::Result<()> {
        let specs = pipeline_topics(cfg);
        pv_runtime::kafka::check_connection(&cfg.kafka, Duration::from_secs(30))?;
        if matches!(self, TopicsCommand::Apply) {
            ensure_topics(&cfg.kafka, &specs).await?;
        }
        let k = &cfg.kafka;
        println!(
            "topics on {} (replication factor {}, min.insync.replicas {}, keyed partitions {}):",
            k.bootstrap_servers, k.replication_factor, k.min_insync_replicas, cfg.topics.partitions
        );
        let mut problems = 0;
        for spec in &specs {
            let line = match describe_topic(k, &spec.name).await? {
                None => {
                    problems += 1;
                    "missing".to_owned()
                }
                Some(state) => {
                    let differences = drift(spec, k, &state);
                    problems += usize::from(!differences.is_empty());
                    if differences.is_empty() {
                        "ok".to_owned()
                    } else {
                        format!("drift: {}", differences.join("; "))
                    }
                }
            };
            println!("  {:<24} {line}", spec.name);
        }
        anyhow::ensure!(
            problems == 0,
            "{problems} topics differ from the configuration (partitions and replicas are never changed by pv: see the README)"
        );
        Ok(())
    }
}

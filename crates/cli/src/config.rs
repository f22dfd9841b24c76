//! The pv configuration file: one table per concern.

use pv_dashboard::DashboardConfig;
use pv_enrich::EnrichConfig;
use pv_gateway::GatewayConfig;
use pv_reports::ReportsConfig;
use pv_runtime::{ClickHouseConfig, KafkaConfig};
use pv_signals::SignalsConfig;
use pv_sink::SinkConfig;
use serde::Deserialize;

/// Everything a `pv` subcommand may need; each table is optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PvConfig {
    /// `[kafka]`: the broker.
    #[serde(default)]
    pub kafka: KafkaConfig,
    /// `[clickhouse]`: the analytics store.
    #[serde(default)]
    pub clickhouse: ClickHouseConfig,
    /// `[gateway]`: HTTP ingest.
    #[serde(default)]
    pub gateway: GatewayConfig,
    /// `[enrich]`: raw -> enriched events.
    #[serde(default)]
    pub enrich: EnrichConfig,
    /// `[sink]`: Kafka -> ClickHouse.
    #[serde(default)]
    pub sink: SinkConfig,
    /// `[signals]`: the statistics run on a schedule.
    #[serde(default)]
    pub signals: SignalsConfig,
    /// `[dashboard]`: the safety officers' workbench.
    #[serde(default)]
    pub dashboard: DashboardConfig,
    /// `[reports]`: the regulators' outputs.
    #[serde(default)]
    pub reports: ReportsConfig,
    /// `[topics]`: what `pv topics apply` creates.
    #[serde(default)]
    pub topics: TopicsConfig,
}

/// The topics' layout (their names come from the services' tables; replication from `[kafka]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicsConfig {
    /// Partitions of the keyed topics (raw, enriched, enricher state): how many enrichers and
    /// sinks can work in parallel. Choose it for the expected scale: a raw topic in use cannot
    /// be repartitioned without rebuilding the enricher's state (README).
    #[serde(default = "default_partitions")]
    pub partitions: i32,
    /// The compacted log of what `pv dlq redrive` re-sent.
    #[serde(default = "default_redrive_log")]
    pub redrive_log: String,
    /// The compacted ledger of the event ids `pv import` sent.
    #[serde(default = "default_import_ledger")]
    pub import_ledger: String,
}

fn default_partitions() -> i32 {
    6
}
fn default_redrive_log() -> String {
    "pv.dlq.redriven".into()
}
fn default_import_ledger() -> String {
    "pv.imports".into()
}

impl Default for TopicsConfig {
    fn default() -> Self {
        Self {
            partitions: default_partitions(),
            redrive_log: default_redrive_log(),
            import_ledger: default_import_ledger(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_config_parses_and_matches_the_defaults() {
        let text = include_str!("../../../deploy/local/pv.toml");
        let cfg: PvConfig = pv_runtime::config::parse_toml(text).expect("deploy/local/pv.toml parses");
        assert_eq!(cfg.kafka, KafkaConfig::default());
        assert_eq!(cfg.clickhouse, ClickHouseConfig::default());
        assert_eq!(cfg.gateway, GatewayConfig::default());
        assert_eq!(cfg.sink, SinkConfig::default());
        assert_eq!(cfg.signals, SignalsConfig::default());
        assert_eq!(cfg.dashboard, DashboardConfig::default());
        assert_eq!(cfg.topics, TopicsConfig::default());
        // The local file names a demo E2B sender contact; everything else is the default.
        assert_eq!(
            cfg.reports,
            ReportsConfig { contact: cfg.reports.contact.clone(), ..ReportsConfig::default() }
        );
        assert!(cfg.reports.contact.is_some());
        // The local file names the secret file; everything else is the default.
        assert_eq!(
            cfg.enrich,
            EnrichConfig { secret_file: Some(".state/pseudonym.secret".into()), ..EnrichConfig::default() }
        );
    }

    #[test]
    fn a_typo_in_a_table_is_an_error() {
        let err =
            pv_runtime::config::parse_toml::<PvConfig>("[gateway]\nlisten_addr = \"x\"").expect_err("typo");
        assert!(err.contains("listen_addr"), "{err}");
    }
}

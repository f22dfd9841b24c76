//! Enricher configuration (the `[enrich]` table of the pv config file).

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

/// Settings of the enrich service; every field has a named default.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct EnrichConfig {
    /// Raw topic read.
    #[serde(default = "default_input_topic")]
    pub input_topic: String,
    /// Enriched topic written (key = patient key).
    #[serde(default = "default_output_topic")]
    pub output_topic: String,
    /// Compacted changelog of per-patient state; needs at least as many partitions as the input.
    #[serde(default = "default_changelog_topic")]
    pub changelog_topic: String,
    /// Dead-letter topic for events that cannot be enriched.
    #[serde(default = "default_dlq_topic")]
    pub dlq_topic: String,
    /// Consumer group; every instance of one deployment shares it.
    #[serde(default = "default_group_id")]
    pub group_id: String,
    /// Kafka transactional id; unique per running instance (default `pv-enrich-<hostname>`).
    #[serde(default)]
    pub transactional_id: Option<String>,
    /// Commit a transaction after this many input messages ...
    #[serde(default = "default_batch_max_messages")]
    pub batch_max_messages: usize,
    /// ... or this long after the transaction began, in milliseconds ...
    #[serde(default = "default_batch_max_wait_ms")]
    pub batch_max_wait_ms: u64,
    /// ... or this long when the transaction never had to wait for input (the enricher reads
    /// a backlog: latency is moot then, and each commit costs a stall and a changelog record
    /// per patient touched).
    #[serde(default = "default_backlog_max_wait_ms")]
    pub backlog_max_wait_ms: u64,
    /// File holding the pseudonymisation secret (>= 32 bytes); else the variable `secret_env`.
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    /// Environment variable holding the secret when no file is configured.
    #[serde(default = "default_secret_env")]
    pub secret_env: String,
    /// Folder of a licensed MedDRA release's ASCII files; the bundled demo dictionary otherwise.
    #[serde(default)]
    pub meddra_dir: Option<PathBuf>,
    /// Folder of event-group files (`*.toml`); the bundled groups otherwise.
    #[serde(default)]
    pub groups_dir: Option<PathBuf>,
    /// Where to serve `/metrics` (`None` = not served).
    #[serde(default = "default_metrics_listen")]
    pub metrics_listen: Option<SocketAddr>,
}

fn default_input_topic() -> String {
    "pv.raw.events".into()
}
fn default_output_topic() -> String {
    "pv.enriched.events".into()
}
fn default_changelog_topic() -> String {
    "pv.enrich.state".into()
}
fn default_dlq_topic() -> String {
    "pv.raw.dlq".into()
}
fn default_group_id() -> String {
    "pv-enrich".into()
}
fn default_batch_max_messages() -> usize {
    100_000
}
fn default_batch_max_wait_ms() -> u64 {
    200
}
fn default_backlog_max_wait_ms() -> u64 {
    1_000
}
fn default_secret_env() -> String {
    "PV_PSEUDONYM_SECRET".into()
}
fn default_metrics_listen() -> Option<SocketAddr> {
    Some(SocketAddr::from(([127, 0, 0, 1], 9465)))
}

impl Default for EnrichConfig {
    fn default() -> Self {
        Self {
            input_topic: default_input_topic(),
            output_topic: default_output_topic(),
            changelog_topic: default_changelog_topic(),
            dlq_topic: default_dlq_topic(),
            group_id: default_group_id(),
            transactional_id: None,
            batch_max_messages: default_batch_max_messages(),
            batch_max_wait_ms: default_batch_max_wait_ms(),
            backlog_max_wait_ms: default_backlog_max_wait_ms(),
            secret_file: None,
            secret_env: default_secret_env(),
            meddra_dir: None,
            groups_dir: None,
            metrics_listen: default_metrics_listen(),
        }
    }
}

impl EnrichConfig {
    /// The transactional id to use: the configured one, else `pv-enrich-<hostname>`.
    pub fn transactional_id(&self) -> String {
        self.transactional_id.clone().unwrap_or_else(|| {
            let host = std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "local".into());
            format!("pv-enrich-{host}")
        })
    }

    /// The coder these settings name: a MedDRA release or the demo dictionary, with the groups.
    pub fn coder(&self) -> anyhow::Result<pv_coding::Coder> {
        let dictionary = match &self.meddra_dir {
            Some(dir) => pv_coding::meddra::load_dir(dir)?,
            None => pv_coding::demo::dictionary().clone(),
        };
        let groups = match &self.groups_dir {
            Some(dir) => pv_coding::groups::load_dir(dir)?,
            None => pv_coding::groups::bundled(),
        };
        let groups = pv_coding::EventGroups::resolve(groups, &dictionary)?;
        Ok(pv_coding::Coder { dictionary, groups })
    }
}

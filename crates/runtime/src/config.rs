//! Connection settings shared by every service, and TOML loading.
//!
//! Every field has a named default (the local servers of `deploy/local/`), so an empty file — or
//! no file at all — runs the pipeline on one machine.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use serde::de::DeserializeOwned;

/// How to reach the Kafka cluster.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// Comma-separated `host:port` bootstrap list.
    #[serde(default = "default_bootstrap_servers")]
    pub bootstrap_servers: String,
    /// Extra librdkafka properties (e.g. `security.protocol`), applied after ours.
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
    /// Replicas of every topic the pipeline creates: 1 on one machine, 3 on a cluster.
    #[serde(default = "default_one")]
    pub replication_factor: i32,
    /// `min.insync.replicas` of every topic the pipeline creates: an `acks=all` write needs this
    /// many replicas in sync (1 on one machine; 2 with 3 replicas, so one broker may be down).
    #[serde(default = "default_one")]
    pub min_insync_replicas: i32,
}

fn default_one() -> i32 {
    1
}

fn default_bootstrap_servers() -> String {
    "127.0.0.1:9092".into()
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            bootstrap_servers: default_bootstrap_servers(),
            properties: BTreeMap::new(),
            replication_factor: default_one(),
            min_insync_replicas: default_one(),
        }
    }
}

/// How to reach ClickHouse (over HTTP).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ClickHouseConfig {
    /// HTTP endpoint.
    #[serde(default = "default_clickhouse_url")]
    pub url: String,
    /// Database holding the pipeline's tables (created by `pv migrate`).
    #[serde(default = "default_clickhouse_database")]
    pub database: String,
    /// User name.
    #[serde(default = "default_clickhouse_user")]
    pub user: String,
    /// Password (empty for the local server).
    #[serde(default)]
    pub password: String,
}

fn default_clickhouse_url() -> String {
    "http://127.0.0.1:8123".into()
}

fn default_clickhouse_database() -> String {
    "pv".into()
}

fn default_clickhouse_user() -> String {
    "default".into()
}

impl Default for ClickHouseConfig {
    fn default() -> Self {
        Self {
            url: default_clickhouse_url(),
            database: default_clickhouse_database(),
            user: default_clickhouse_user(),
            password: String::new(),
        }
    }
}

/// Error loading a configuration file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The path.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML for the expected structure.
    #[error("invalid config file {path}: {message}")]
    Parse {
        /// The path.
        path: String,
        /// What is wrong, with line and column.
        message: String,
    },
}

/// Reads a TOML configuration file; `None` gives the defaults.
pub fn load_toml<T: DeserializeOwned + Default>(path: Option<&Path>) -> Result<T, ConfigError> {
    let Some(path) = path else {
        return Ok(T::default());
    };
    let text = std::fs::read_to_string(path)
        .map_err(|source| ConfigError::Read { path: path.display().to_string(), source })?;
    parse_toml(&text).map_err(|message| ConfigError::Parse { path: path.display().to_string(), message })
}

/// Parses TOML text into `T`.
pub fn parse_toml<T: DeserializeOwned>(text: &str) -> Result<T, String> {
    toml::from_str(text).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_text_gives_local_defaults() {
        let k: KafkaConfig = parse_toml("").expect("empty");
        assert_eq!(k, KafkaConfig::default());
        assert_eq!(k.bootstrap_servers, "127.0.0.1:9092");
        let c: ClickHouseConfig = parse_toml("database = \"x\"").expect("partial");
        assert_eq!((c.database.as_str(), c.url.as_str()), ("x", "http://127.0.0.1:8123"));
    }

    #[test]
    fn unknown_keys_are_errors_naming_the_key() {
        let err = parse_toml::<KafkaConfig>("bootstrap = \"x\"").expect_err("typo");
        assert!(err.contains("unknown field `bootstrap`"), "{err}");
    }
}

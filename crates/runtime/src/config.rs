//! Connection settings shared by every service, and TOML loading.
//!
//! Every field has a named default (the local servers of `deploy/local/`), so an empty file — or
//! no file at all — runs the pipeline on one machine.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

use crate::secret::Secret;

/// How to reach the Kafka cluster.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// Comma-separated `host:port` bootstrap list.
    #[serde(default = "default_bootstrap_servers")]
    pub bootstrap_servers: String,
    /// Extra librdkafka properties, applied after ours. Secrets are refused here: they go in
    /// `[kafka.sasl]` and `[kafka.tls]`, read from files or the environment.
    #[serde(default, deserialize_with = "properties_without_secrets")]
    pub properties: BTreeMap<String, String>,
    /// TLS to the brokers (`security.protocol` SSL, or SASL_SSL with `sasl`). Absent: no TLS.
    /// `tls = {}` uses the system's certificate authorities.
    #[serde(default)]
    pub tls: Option<KafkaTls>,
    /// SASL authentication (SASL_PLAINTEXT, or SASL_SSL with `tls`). Absent: none.
    #[serde(default)]
    pub sasl: Option<KafkaSasl>,
    /// Replicas of every topic the pipeline creates: 1 on one machine, 3 on a cluster.
    #[serde(default = "default_one")]
    pub replication_factor: i32,
    /// `min.insync.replicas` of every topic the pipeline creates: an `acks=all` write needs this
    /// many replicas in sync (1 on one machine; 2 with 3 replicas, so one broker may be down).
    #[serde(default = "default_one")]
    pub min_insync_replicas: i32,
}

/// TLS settings for the brokers.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct KafkaTls {
    /// PEM file of the certificate authorities that sign the brokers' certificates (default: the
    /// system's).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate, for brokers that authenticate clients by certificate (mutual TLS).
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// PEM private key of `cert_file`.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// Password of an encrypted `key_file`.
    #[serde(default)]
    pub key_password: Secret,
}

/// SASL authentication to the brokers.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct KafkaSasl {
    /// `SCRAM-SHA-512` (default), `SCRAM-SHA-256` or `PLAIN` (only over TLS).
    #[serde(default = "default_sasl_mechanism")]
    pub mechanism: SaslMechanism,
    /// User name.
    pub username: String,
    /// Password, from a file or the environment.
    pub password: Secret,
}

/// The SASL mechanisms pv is built and tested for.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
pub enum SaslMechanism {
    /// Salted challenge-response, SHA-512 (the password never crosses the wire).
    #[serde(rename = "SCRAM-SHA-512")]
    ScramSha512,
    /// Salted challenge-response, SHA-256.
    #[serde(rename = "SCRAM-SHA-256")]
    ScramSha256,
    /// The password itself, so only over TLS.
    #[serde(rename = "PLAIN")]
    Plain,
}

impl SaslMechanism {
    /// The librdkafka name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ScramSha512 => "SCRAM-SHA-512",
            Self::ScramSha256 => "SCRAM-SHA-256",
            Self::Plain => "PLAIN",
        }
    }
}

fn default_sasl_mechanism() -> SaslMechanism {
    SaslMechanism::ScramSha512
}

impl KafkaConfig {
    /// librdkafka's `security.protocol` for the configured TLS and SASL.
    pub fn security_protocol(&self) -> &'static str {
        match (self.tls.is_some(), self.sasl.is_some()) {
            (false, false) => "plaintext",
            (true, false) => "ssl",
            (false, true) => "sasl_plaintext",
            (true, true) => "sasl_ssl",
        }
    }
}

/// librdkafka properties that hold secrets (or embed them), refused in `[kafka.properties]`.
fn is_secret_property(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    ["password", "secret", "jaas", "ssl.key.pem", "ssl.keystore"].iter().any(|s| key.contains(s))
}

fn properties_without_secrets<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    let properties = BTreeMap::<String, String>::deserialize(d)?;
    if let Some(key) = properties.keys().find(|k| is_secret_property(k)) {
        return Err(serde::de::Error::custom(format!(
            "`{key}` holds a secret: configure it in [kafka.sasl] or [kafka.tls], read from a file or the environment"
        )));
    }
    Ok(properties)
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
            tls: None,
            sasl: None,
            replication_factor: default_one(),
            min_insync_replicas: default_one(),
        }
    }
}

/// How to reach ClickHouse (over HTTP, or HTTPS with an `https://` url).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ClickHouseConfig {
    /// HTTP endpoint; `https://` for TLS. Credentials in it are refused (`user`, `password`).
    #[serde(default = "default_clickhouse_url", deserialize_with = "url_without_credentials")]
    pub url: String,
    /// Database holding the pipeline's tables (created by `pv migrate`).
    #[serde(default = "default_clickhouse_database")]
    pub database: String,
    /// User name.
    #[serde(default = "default_clickhouse_user")]
    pub user: String,
    /// Password, from a file or the environment (none for the local server).
    #[serde(default)]
    pub password: Secret,
    /// PEM file of the certificate authorities that sign the server's certificate, for an
    /// `https://` url (default: the system's).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// The cluster (a `remote_servers` entry of the servers) the database spans: migrations create
    /// replicated tables `ON CLUSTER` with Distributed tables over them, and every read and insert
    /// goes through the Distributed tables. Absent: one server (the default).
    #[serde(default)]
    pub cluster: Option<String>,
    /// ZooKeeper path of each replicated table (cluster only). `{shard}` is each server's macro;
    /// pv fills in `{database}` and `{table}`.
    #[serde(default = "default_replication_path")]
    pub replication_path: String,
    /// Replica name of each replicated table (cluster only): each server's `{replica}` macro.
    #[serde(default = "default_replica_name")]
    pub replica_name: String,
}

/// A URL as given, unless it carries `user:password@` (a secret written in the configuration).
fn url_without_credentials<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let url = String::deserialize(d)?;
    let authority = url.split_once("://").map_or(url.as_str(), |(_, rest)| rest);
    let authority = authority.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err(serde::de::Error::custom(
            "the url carries credentials: give `user` and `password = { env = 'NAME' }` instead",
        ));
    }
    Ok(url)
}

fn default_replication_path() -> String {
    "/clickhouse/tables/{shard}/{database}/{table}".into()
}

fn default_replica_name() -> String {
    "{replica}".into()
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
            password: Secret::default(),
            ca_file: None,
            cluster: None,
            replication_path: default_replication_path(),
            replica_name: default_replica_name(),
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

/// Parses TOML text into `T`. Errors name the line, column and key, but never quote the text
/// (it may hold a secret written where it does not belong).
pub fn parse_toml<T: DeserializeOwned>(text: &str) -> Result<T, String> {
    toml::from_str(text).map_err(|e| {
        let Some(span) = e.span() else { return e.message().to_owned() };
        let before = &text[..span.start.min(text.len())];
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let (line, column) = (before.matches('\n').count() + 1, before.len() - line_start + 1);
        let line_text = &text[line_start..];
        let key =
            line_text.split_once('=').map(|(k, _)| k.trim()).filter(|k| !k.is_empty() && !k.contains('\n'));
        let message = without_quoted_values(e.message());
        match key {
            Some(key) => format!("line {line}, column {column} (`{key}`): {message}"),
            None => format!("line {line}, column {column}: {message}"),
        }
    })
}

/// `message` with every double-quoted value emptied: serde quotes the value it found (`invalid
/// type: string "...", expected ...`), which may be a secret written in the wrong place.
fn without_quoted_values(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut inside = false;
    for c in message.chars() {
        if c == '"' {
            out.push_str(if inside { "\"" } else { "\"…" });
            inside = !inside;
        } else if !inside {
            out.push(c);
        }
    }
    out
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
        assert!(err.starts_with("line 1, column 1"), "{err}");
    }

    #[test]
    fn security_comes_from_tls_and_sasl_and_secrets_stay_out_of_properties() {
        let k: KafkaConfig = parse_toml("tls = {}").expect("tls");
        assert_eq!(k.security_protocol(), "ssl");
        let k: KafkaConfig =
            parse_toml("[sasl]\nusername = \"pv\"\npassword = { env = \"PATH\" }").expect("sasl");
        assert_eq!(
            (k.security_protocol(), k.sasl.map(|s| s.mechanism)),
            ("sasl_plaintext", Some(SaslMechanism::ScramSha512))
        );
        let k: KafkaConfig = parse_toml(
            "[tls]\nca_file = \"/ca.pem\"\n[sasl]\nmechanism = \"SCRAM-SHA-256\"\nusername = \"pv\"\npassword = { env = \"PATH\" }",
        )
        .expect("both");
        assert_eq!(k.security_protocol(), "sasl_ssl");
        let err =
            parse_toml::<KafkaConfig>("[properties]\n\"sasl.password\" = \"hunter2\"").expect_err("secret");
        assert!(err.contains("`sasl.password` holds a secret") && !err.contains("hunter2"), "{err}");
        let err =
            parse_toml::<ClickHouseConfig>("user = \"pv\"\npassword = \"hunter2\"").expect_err("inline");
        assert!(err.contains("line 2") && err.contains("`password`") && !err.contains("hunter2"), "{err}");
        let err =
            parse_toml::<ClickHouseConfig>("url = \"https://pv:hunter2@ch:8443/\"").expect_err("credentials");
        assert!(err.contains("the url carries credentials") && !err.contains("hunter2"), "{err}");
        let ok: ClickHouseConfig =
            parse_toml("url = \"https://ch:8443/?user=@x\"").expect("an @ after the host is no credential");
        assert_eq!(ok.url, "https://ch:8443/?user=@x");
        let err = parse_toml::<KafkaConfig>("tls = \"hunter2\"").expect_err("wrong type");
        assert!(err.contains("invalid type") && !err.contains("hunter2"), "{err}");
    }
}

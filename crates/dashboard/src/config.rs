//! Workbench configuration (the `[dashboard]` table of the pv config file).

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

/// Settings of the workbench; every field has a named default.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DashboardConfig {
    /// Address to listen on.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// TOML file of users: name, role, clinic, argon2id hash (`pv users add`).
    #[serde(default = "default_users_file")]
    pub users_file: PathBuf,
    /// Topic of signal workflow actions (Avro `pv.workflow.WorkflowAction`; one partition).
    #[serde(default = "default_workflow_topic")]
    pub workflow_topic: String,
    /// A session ends after this long without a request (seconds).
    #[serde(default = "default_session_idle_secs")]
    pub session_idle_secs: u64,
    /// A session ends this long after sign-in, however active (seconds).
    #[serde(default = "default_session_absolute_secs")]
    pub session_absolute_secs: u64,
    /// Failed sign-ins allowed per user name, and per client address, within the window ...
    #[serde(default = "default_signin_max_failures")]
    pub signin_max_failures: u32,
    /// ... of this many seconds; further attempts get 429 until the window has passed.
    #[serde(default = "default_signin_window_secs")]
    pub signin_window_secs: u64,
    /// Mark the session cookie `Secure` (set when served over HTTPS, e.g. behind a TLS proxy).
    #[serde(default)]
    pub secure_cookies: bool,
    /// Rows per page of the listings (the API's `limit` defaults to it; at most 1000).
    #[serde(default = "default_page_size")]
    pub page_size: usize,
    /// The sink's Prometheus endpoint, read for "sink paused" on the overview.
    #[serde(default = "default_sink_metrics_url")]
    pub sink_metrics_url: String,
    /// How long a workflow action may wait for the broker's acknowledgement (ms).
    #[serde(default = "default_delivery_timeout_ms")]
    pub delivery_timeout_ms: u64,
}

impl Default for DashboardConfig {
    fn default() -> Self {
        pv_runtime::config::parse_toml("").unwrap_or_else(|_| unreachable!("every field has a default"))
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8090))
}
fn default_users_file() -> PathBuf {
    ".state/users.toml".into()
}
fn default_workflow_topic() -> String {
    "pv.signal.workflow".into()
}
fn default_session_idle_secs() -> u64 {
    30 * 60
}
fn default_session_absolute_secs() -> u64 {
    12 * 3600
}
fn default_signin_max_failures() -> u32 {
    5
}
fn default_signin_window_secs() -> u64 {
    15 * 60
}
fn default_page_size() -> usize {
    50
}
fn default_sink_metrics_url() -> String {
    "http://127.0.0.1:9464/metrics".into()
}
fn default_delivery_timeout_ms() -> u64 {
    10_000
}

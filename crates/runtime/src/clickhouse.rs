//! ClickHouse client setup and server capability checks.

use std::time::Duration;

use hyper_tls::HttpsConnector;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::config::ClickHouseConfig;

/// A client for `cfg`, bound to its database.
///
/// Row-type validation is off: it asks the server for a format (RowBinaryWithNamesAndTypes)
/// that ClickHouse 18.16 lacks. The row types are checked against the live tables by
/// `tests/store_schema.rs` instead.
pub fn client(cfg: &ClickHouseConfig) -> clickhouse::Client {
    server_client(cfg).with_database(&cfg.database)
}

/// A client for `cfg` not bound to any database (for `CREATE DATABASE`).
pub fn server_client(cfg: &ClickHouseConfig) -> clickhouse::Client {
    let http =
        HyperClient::builder(TokioExecutor::new()).pool_idle_timeout(POOL_IDLE_TIMEOUT).build(connector(cfg));
    let client = clickhouse::Client::with_http_client(http)
        .with_url(&cfg.url)
        .with_user(&cfg.user)
        .with_validation(false);
    let client = if cfg.password.is_set() { client.with_password(cfg.password.expose()) } else { client };
    match cfg.cluster {
        // An insert into a Distributed table returns once every shard's rows are written (not
        // when they are queued on this server), and a subquery over a Distributed table runs on
        // each shard's local table: tables sharded by patient hold each patient whole.
        Some(_) => client
            .with_setting("insert_distributed_sync", "1")
            .with_setting("distributed_product_mode", "local"),
        None => client,
    }
}

/// Keep-alive of the connections to ClickHouse (the crate's default).
const TCP_KEEPALIVE: Duration = Duration::from_secs(60);
/// Idle connections are dropped before the server's own 3 s keep-alive timeout closes them.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(2);

/// HTTP and HTTPS (OpenSSL, as librdkafka uses), trusting `cfg.ca_file` besides the system's
/// certificate authorities. An unreadable or invalid CA file is logged and left out, so the
/// connection then fails verification and says so.
fn connector(cfg: &ClickHouseConfig) -> HttpsConnector<HttpConnector> {
    let mut http = HttpConnector::new();
    http.set_keepalive(Some(TCP_KEEPALIVE));
    http.enforce_http(false);
    let mut tls = native_tls::TlsConnector::builder();
    if let Some(path) = &cfg.ca_file {
        match std::fs::read(path)
            .map_err(|e| e.to_string())
            .and_then(|pem| native_tls::Certificate::from_pem(&pem).map_err(|e| e.to_string()))
        {
            Ok(ca) => {
                tls.add_root_certificate(ca);
            }
            Err(error) => {
                tracing::error!(ca_file = %path.display(), %error, "cannot use the ClickHouse CA file")
            }
        }
    }
    let tls = tls.build().map_err(|error| tracing::error!(%error, "cannot set up TLS for ClickHouse"));
    match tls {
        Ok(tls) => HttpsConnector::from((http, tokio_native_tls::TlsConnector::from(tls))),
        Err(()) => HttpsConnector::new_with_connector(http),
    }
}

/// The server's version as (major, minor), e.g. (18, 16) or (24, 8).
pub async fn server_version(client: &clickhouse::Client) -> Result<(u32, u32), clickhouse::error::Error> {
    let v: String = client.query("SELECT version()").fetch_one().await?;
    Ok(parse_version(&v))
}

/// Parses `major.minor[.patch...]`; unparsable parts read as 0.
pub fn parse_version(v: &str) -> (u32, u32) {
    let mut parts = v.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

/// Whether inserts may carry `insert_deduplication_token` (ClickHouse 22.2 and later).
pub fn supports_insert_dedup_token(version: (u32, u32)) -> bool {
    version >= (22, 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_and_gate_features() {
        assert_eq!(parse_version("18.16.1"), (18, 16));
        assert_eq!(parse_version("24.8.4.13"), (24, 8));
        assert!(!supports_insert_dedup_token(parse_version("18.16.1")));
        assert!(supports_insert_dedup_token(parse_version("24.8.4.13")));
    }
}

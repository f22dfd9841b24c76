//! ClickHouse client setup and server capability checks.

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
    clickhouse::Client::default()
        .with_url(&cfg.url)
        .with_user(&cfg.user)
        .with_password(&cfg.password)
        .with_validation(false)
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

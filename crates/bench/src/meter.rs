//! Where the cores and the parts went during one measured window: CPU per event of every
//! process (the pv services started for the run, the local Kafka broker and ClickHouse server),
//! and what ClickHouse did with the rows (parts written by inserts, merges, rows rewritten by
//! merges), read from its `system.part_log` for the run's database.

use std::time::{Duration, Instant};

use pv_runtime::ClickHouseConfig;

use crate::env::{Service, cpu_seconds, cpu_split, server_pids};

/// CPU counters of the measured processes at the window's start.
#[derive(Debug, Clone)]
pub struct Meter {
    /// (name, pid, CPU seconds in user space and in the kernel at the start).
    processes: Vec<(String, u32, (f64, f64))>,
    started: Instant,
    /// ClickHouse's clock at the start (part_log rows from then on count).
    since: u32,
}

/// What a window cost.
#[derive(Debug, Clone, PartialEq)]
pub struct Usage {
    /// (process, microseconds of CPU, user + system, per event).
    pub cpu_us_per_event: Vec<(String, f64)>,
    /// (process, the part of that spent in the kernel: file creation and deletion for ClickHouse).
    pub kernel_us_per_event: Vec<(String, f64)>,
    /// (process, cores kept busy on average over the window, merges settling included).
    pub cores: Vec<(String, f64)>,
    /// What ClickHouse did, if its part log is on.
    pub parts: Option<Parts>,
}

/// ClickHouse's work on the run's database, per stored row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Parts {
    /// Parts written by inserts (including materialised views) per 1,000 stored rows.
    pub new_per_1000_rows: f64,
    /// Merges per 1,000 stored rows.
    pub merges_per_1000_rows: f64,
    /// Rows read again by merges per stored row (write amplification).
    pub merged_rows_per_row: f64,
}

impl Meter {
    /// Starts measuring `services` and the local servers (start the services after
    /// [`quiet_clickhouse`]).
    pub async fn start(services: &[&Service], clickhouse: &ClickHouseConfig) -> Meter {
        let mut processes: Vec<(String, u32)> =
            services.iter().filter_map(|s| Some((s.name.to_string(), s.pid()?))).collect();
        processes.extend(server_pids().into_iter().map(|(n, p)| (n.to_string(), p)));
        let since = clickhouse_now(clickhouse).await.unwrap_or(0);
        Meter {
            processes: processes.into_iter().map(|(n, p)| (n, p, cpu_split(p))).collect(),
            started: Instant::now(),
            since,
        }
    }

    /// Ends the window once ClickHouse has no merge of the run's database running (so the
    /// merges the inserts caused count): `events` moved, each stored as one row.
    pub async fn finish(&self, events: u64, clickhouse: &ClickHouseConfig) -> Usage {
        wait_for_merges(clickhouse).await;
        let wall = self.started.elapsed().as_secs_f64();
        let used: Vec<(String, f64, f64)> = self
            .processes
            .iter()
            .map(|(n, p, (user, system))| {
                let (u, s) = cpu_split(*p);
                (n.clone(), u - user, s - system)
            })
            .collect();
        let parts = match part_log(clickhouse, self.since).await {
            Ok(counts) => Some(counts.per_row(events)),
            Err(e) => {
                tracing::warn!(error = %e, "no part counts (is ClickHouse's part_log on? deploy/local/start.sh turns it on)");
                None
            }
        };
        usage(&used, wall, events, parts)
    }
}

/// Waits (up to 30 s) until the local ClickHouse keeps under a tenth of a core busy: the merges
/// and drops of earlier runs would otherwise count in the next window. Call it before starting
/// the services a [`Meter`] measures.
pub async fn quiet_clickhouse() {
    let Some(pid) = server_pids().into_iter().find(|(n, _)| *n == "clickhouse").map(|(_, p)| p) else {
        return;
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let before = cpu_seconds(pid);
        tokio::time::sleep(Duration::from_millis(500)).await;
        if cpu_seconds(pid) - before < 0.05 || Instant::now() > deadline {
            return;
        }
    }
}

/// Waits (up to 60 s) until no merge of the run's database has run for two polls a second apart.
async fn wait_for_merges(cfg: &ClickHouseConfig) {
    let client = pv_runtime::clickhouse::server_client(cfg);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut idle = 0;
    while idle < 2 && Instant::now() < deadline {
        let running: u64 = client
            .query("SELECT count() FROM system.merges WHERE database = ?")
            .bind(&cfg.database)
            .fetch_one()
            .await
            .unwrap_or(0);
        idle = if running == 0 { idle + 1 } else { 0 };
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Per-event and per-second figures from CPU seconds (user, kernel) `used` over `wall` seconds.
fn usage(used: &[(String, f64, f64)], wall: f64, events: u64, parts: Option<Parts>) -> Usage {
    let per_event = |cpu: f64| if events == 0 { 0.0 } else { cpu * 1e6 / events as f64 };
    let mut cpu_us_per_event: Vec<(String, f64)> =
        used.iter().map(|(n, u, s)| (n.clone(), per_event(u + s))).collect();
    let total: f64 = used.iter().map(|(_, u, s)| u + s).sum();
    cpu_us_per_event.push(("total".into(), per_event(total)));
    let kernel_us_per_event = used.iter().map(|(n, _, s)| (n.clone(), per_event(*s))).collect();
    let cores =
        used.iter().map(|(n, u, s)| (n.clone(), if wall > 0.0 { (u + s) / wall } else { 0.0 })).collect();
    Usage { cpu_us_per_event, kernel_us_per_event, cores, parts }
}

impl Usage {
    /// One line for the report: CPU per event by process, then the part counts.
    pub fn line(&self) -> String {
        let cpu: Vec<String> = self
            .cpu_us_per_event
            .iter()
            .map(|(n, us)| match self.kernel_us_per_event.iter().find(|(k, _)| k == n) {
                Some((_, sys)) => format!("{n} {us:.1} (kernel {sys:.1})"),
                None => format!("{n} {us:.1}"),
            })
            .collect();
        let cores: Vec<String> = self.cores.iter().map(|(n, c)| format!("{n} {c:.2}")).collect();
        let parts = self.parts.map_or("parts: part_log off".to_string(), |p| {
            format!(
                "parts {:.2} and merges {:.2} per 1,000 rows, {:.2} rows merged per row",
                p.new_per_1000_rows, p.merges_per_1000_rows, p.merged_rows_per_row
            )
        });
        format!("CPU us/event: {}; cores busy: {}; {parts}", cpu.join(", "), cores.join(", "))
    }

    /// Microseconds of CPU per event of `process` (0 when not measured).
    pub fn us_per_event(&self, process: &str) -> f64 {
        self.cpu_us_per_event.iter().find(|(n, _)| n == process).map_or(0.0, |(_, us)| *us)
    }
}

/// Counts from `system.part_log` for one database.
#[derive(Debug, Clone, Copy, PartialEq, clickhouse::Row, serde::Deserialize)]
struct PartCounts {
    new_parts: u64,
    merges: u64,
    merged_rows: u64,
}

impl PartCounts {
    fn per_row(self, rows: u64) -> Parts {
        let rows = rows.max(1) as f64;
        Parts {
            new_per_1000_rows: self.new_parts as f64 * 1000.0 / rows,
            merges_per_1000_rows: self.merges as f64 * 1000.0 / rows,
            merged_rows_per_row: self.merged_rows as f64 / rows,
        }
    }
}

async fn clickhouse_now(cfg: &ClickHouseConfig) -> Result<u32, clickhouse::error::Error> {
    pv_runtime::clickhouse::server_client(cfg).query("SELECT toUInt32(now())").fetch_one().await
}

/// The part log's counts for the run's database since `since` (flushed first).
async fn part_log(cfg: &ClickHouseConfig, since: u32) -> Result<PartCounts, clickhouse::error::Error> {
    let client = pv_runtime::clickhouse::server_client(cfg);
    client.query("SYSTEM FLUSH LOGS").execute().await?;
    client
        .query(
            // 1 = a part written by an insert, 2 = a merge (named NEW_PART and MERGE_PARTS in
            // 18.16, NewPart and MergeParts later).
            "SELECT countIf(toInt8(event_type) = 1) AS new_parts, countIf(toInt8(event_type) = 2) AS merges, \
             sumIf(rows, toInt8(event_type) = 2) AS merged_rows \
             FROM system.part_log WHERE database = ? AND event_time >= toDateTime(?)",
        )
        .bind(&cfg.database)
        .bind(since)
        .fetch_one()
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_is_divided_by_events_and_wall_time() {
        let used = [("enrich".to_string(), 2.0, 0.0), ("clickhouse".to_string(), 4.0, 2.0)];
        let parts = PartCounts { new_parts: 20, merges: 5, merged_rows: 300_000 }.per_row(200_000);
        let u = usage(&used, 4.0, 1_000_000, Some(parts));
        assert_eq!(u.us_per_event("enrich"), 2.0);
        assert_eq!(u.us_per_event("clickhouse"), 6.0);
        assert_eq!(u.us_per_event("total"), 8.0);
        assert_eq!(u.cores, [("enrich".to_string(), 0.5), ("clickhouse".to_string(), 1.5)]);
        assert_eq!(
            parts,
            Parts { new_per_1000_rows: 0.1, merges_per_1000_rows: 0.025, merged_rows_per_row: 1.5 }
        );
        assert_eq!(u.kernel_us_per_event[1], ("clickhouse".to_string(), 2.0));
        assert!(
            u.line().contains("clickhouse 6.0 (kernel 2.0)") && u.line().contains("parts 0.10"),
            "{}",
            u.line()
        );
    }

    #[test]
    fn no_events_is_no_cost_not_a_division_by_zero() {
        let u = usage(&[("sink".to_string(), 1.0, 0.0)], 0.0, 0, None);
        assert_eq!(u.us_per_event("sink"), 0.0);
        assert_eq!(u.cores[0].1, 0.0);
        assert!(u.line().contains("part_log off"));
    }
}

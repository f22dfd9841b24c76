//! `pv replay`: rebuild the ClickHouse tables from the Kafka topics (the log of record), then
//! compare the rebuilt database with the live one.

use std::time::Instant;

use anyhow::Context as _;
use clap::Args;
use pv_runtime::Shutdown;
use pv_store::Db;
use pv_store::digest::{TableDigest, digest};

use crate::PvConfig;

/// Arguments of `pv replay`.
#[derive(Debug, Args)]
pub(crate) struct ReplayArgs {
    /// Database to rebuild into (default: the configured database's name + `_replay`). The
    /// configured database itself is allowed: after losing ClickHouse's data, that is the rebuild.
    #[arg(long)]
    into: Option<String>,
    /// Drop the target database first (otherwise replayed events merge with what it holds;
    /// the tables deduplicate, so nothing is counted twice either way).
    #[arg(long)]
    drop: bool,
    /// Fail unless the rebuilt database answers exactly like the live one (compare only while
    /// nothing new arrives: a running sink keeps adding to the live database).
    #[arg(long)]
    verify: bool,
}

impl ReplayArgs {
    /// Runs the command.
    pub(crate) async fn run(self, cfg: &PvConfig) -> anyhow::Result<()> {
        let live = cfg.clickhouse.clone();
        let mut target = cfg.clickhouse.clone();
        target.database = self.into.clone().unwrap_or_else(|| format!("{}_replay", live.database));
        anyhow::ensure!(
            !target.database.is_empty()
                && target.database.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "--into {:?}: a database name is letters, digits and underscores",
            target.database
        );
        if self.drop {
            anyhow::ensure!(
                target.database != live.database,
                "--drop with --into the live database ({}) would delete it before the rebuild; \
                 rebuild into another database and switch [clickhouse] database to it",
                live.database
            );
            pv_runtime::clickhouse::server_client(&target)
                .query(&format!(
                    "DROP DATABASE IF EXISTS {}{}",
                    target.database,
                    pv_store::table::Layout::of(&target).on_cluster()
                ))
                .execute()
                .await
                .with_context(|| format!("dropping {}", target.database))?;
        }
        let started = Instant::now();
        let sink = pv_sink::Sink::new(cfg.sink.clone(), cfg.kafka.clone(), target.clone())?;
        let shutdown = Shutdown::new();
        shutdown.on_signals();
        let report = sink.replay(shutdown).await?;
        println!(
            "replayed {} messages from {} partitions of {:?} into `{}` in {:.1} s",
            report.messages,
            report.partitions,
            cfg.sink.topics,
            target.database,
            started.elapsed().as_secs_f64()
        );
        let workflow = replay_workflow(cfg, &target).await?;
        if target.database == live.database {
            return Ok(());
        }
        let rebuilt = digest(&Db::new(&target)).await.context("reading the rebuilt tables")?;
        let current = match digest(&Db::new(&live)).await {
            Ok(d) => d,
            Err(e) => {
                println!("live database `{}` not compared: {e}", live.database);
                return Ok(());
            }
        };
        let mut differing = print_comparison(&live.database, &current, &target.database, &rebuilt);
        if let Some(rebuilt) = workflow {
            let current = pv_workflow::project(&pv_dashboard::reads::workflow(&Db::new(&live), None).await?);
            let same = current == rebuilt;
            differing += usize::from(!same);
            println!(
                "{:<20} {:>12} {:>12} signals' workflow status  {}",
                "signal_workflow",
                current.len(),
                rebuilt.len(),
                if same { "identical" } else { "DIFFERS" }
            );
        }
        if differing > 0 && self.verify {
            anyhow::bail!("{differing} tables differ from the live database");
        }
        Ok(())
    }
}

/// Lands the workflow topic's actions into `target`; the rebuilt workflow status of every
/// signal, or `None` when there is no workflow topic (the workbench never ran).
async fn replay_workflow(
    cfg: &PvConfig,
    target: &pv_runtime::ClickHouseConfig,
) -> anyhow::Result<Option<std::collections::BTreeMap<String, pv_workflow::Status>>> {
    let (kafka, topic) = (cfg.kafka.clone(), cfg.dashboard.workflow_topic.clone());
    let logged = match tokio::task::spawn_blocking(move || pv_dashboard::workflow::read_topic(&kafka, &topic))
        .await?
    {
        Ok(actions) => actions,
        Err(e) => {
            println!("workflow topic `{}` not replayed: {e}", cfg.dashboard.workflow_topic);
            return Ok(None);
        }
    };
    let db = Db::new(target);
    let landed = pv_dashboard::workflow::land_missing(&db, logged.clone()).await?;
    println!(
        "replayed {} workflow actions from `{}` ({landed} new in `{}`)",
        logged.len(),
        cfg.dashboard.workflow_topic,
        target.database
    );
    Ok(Some(pv_workflow::project(&pv_dashboard::reads::workflow(&db, None).await?)))
}

/// Prints both digests side by side; returns how many tables differ.
fn print_comparison(
    live: &str,
    current: &[TableDigest],
    rebuilt_name: &str,
    rebuilt: &[TableDigest],
) -> usize {
    println!(
        "{:<20} {:>12} {:>12} {:>12} {:>12}  content",
        "table",
        format!("rows {live}"),
        format!("rows {rebuilt_name}"),
        "events live",
        "events new"
    );
    let mut differing = 0;
    for (a, b) in current.iter().zip(rebuilt) {
        let same = a == b;
        differing += usize::from(!same);
        println!(
            "{:<20} {:>12} {:>12} {:>12} {:>12}  {}",
            a.table,
            a.rows,
            b.rows,
            a.events,
            b.events,
            if same { "identical" } else { "DIFFERS" }
        );
    }
    differing
}

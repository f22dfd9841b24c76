//! `pv repartition --partitions N`: a new partition count for the raw topic, with the enricher's
//! state moved to match (`pv_enrich::relayout`).

use anyhow::Context as _;
use clap::Args;

use crate::PvConfig;

/// Arguments of `pv repartition`.
#[derive(Debug, Args)]
pub(crate) struct RepartitionArgs {
    /// The raw topic's new partition count (at least the current one).
    #[arg(long)]
    partitions: usize,
}

impl RepartitionArgs {
    /// Runs the command.
    pub(crate) async fn run(self, cfg: &PvConfig) -> anyhow::Result<()> {
        let pseudonymiser = pv_enrich::Pseudonymiser::from_file_or_env(
            cfg.enrich.secret_file.as_deref(),
            &cfg.enrich.secret_env,
        )
        .context("the pseudonymisation key (patients' state is stored under their pseudonyms)")?;
        let report =
            pv_enrich::relayout::relayout(&cfg.enrich, &cfg.kafka, &pseudonymiser, self.partitions).await?;
        println!(
            "{}: {} -> {} partitions; {} patients with state, {} moved to their new partition; the enricher \
             may start (then the gateway and imports)",
            cfg.enrich.input_topic,
            report.partitions_before,
            report.partitions_after,
            report.patients,
            report.moved
        );
        Ok(())
    }
}

//! `pv dashboard` (the workbench) and `pv users` (its users file).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Subcommand;
use pv_dashboard::{AppState, Pipeline, Role, Stage, Users};
use pv_runtime::Shutdown;

use crate::PvConfig;

/// Manage the workbench's users file.
#[derive(Debug, Subcommand)]
pub(crate) enum UsersCommand {
    /// Add a user (or replace their role, clinic and password). The password is read from the
    /// environment variable named by `--password-env` (never from the command line).
    Add {
        /// Sign-in name.
        name: String,
        /// `safety_officer`, `regulator` or `clinic`.
        #[arg(long)]
        role: String,
        /// The clinic of a clinic user.
        #[arg(long)]
        clinic: Option<String>,
        /// Environment variable holding the password (at least 12 characters).
        #[arg(long, default_value = "PV_USER_PASSWORD")]
        password_env: String,
        /// The users file (default: `[dashboard] users_file`).
        #[arg(long)]
        file: Option<PathBuf>,
    },
    /// List the users (names, roles, clinics; never hashes).
    List {
        /// The users file (default: `[dashboard] users_file`).
        #[arg(long)]
        file: Option<PathBuf>,
    },
}

impl UsersCommand {
    /// Runs the command.
    pub(crate) fn run(self, cfg: &PvConfig) -> anyhow::Result<()> {
        match self {
            UsersCommand::Add { name, role, clinic, password_env, file } => {
                let path = file.unwrap_or_else(|| cfg.dashboard.users_file.clone());
                let role = Role::parse(&role).with_context(|| {
                    format!("--role: `{role}` is not one of safety_officer, regulator, clinic")
                })?;
                let password = std::env::var(&password_env).with_context(|| {
                    format!("the password is read from ${password_env}, which is not set")
                })?;
                let mut users = Users::load(&path)?;
                users.add(&name, role, clinic.as_deref(), &password)?;
                users.save(&path)?;
                println!("{}: user `{name}` ({}) saved", path.display(), role.name());
                Ok(())
            }
            UsersCommand::List { file } => {
                let path = file.unwrap_or_else(|| cfg.dashboard.users_file.clone());
                for u in Users::load(&path)?.users {
                    println!("{}\t{}\t{}", u.name, u.role.name(), u.clinic.unwrap_or_default());
                }
                Ok(())
            }
        }
    }
}

/// What the workbench watches, from the pipeline's own configuration.
pub(crate) fn pipeline(cfg: &PvConfig) -> Pipeline {
    Pipeline {
        kafka: cfg.kafka.clone(),
        stages: vec![
            Stage {
                name: "enrich".into(),
                group: cfg.enrich.group_id.clone(),
                topics: vec![cfg.enrich.input_topic.clone()],
            },
            Stage { name: "sink".into(), group: cfg.sink.group_id.clone(), topics: cfg.sink.topics.clone() },
        ],
        dead_letter_topics: vec![cfg.enrich.dlq_topic.clone(), cfg.sink.dlq_topic.clone()],
        sink_metrics_url: cfg.dashboard.sink_metrics_url.clone(),
    }
}

/// Runs the workbench until SIGINT/SIGTERM: migrates, creates the workflow topic, lands any
/// workflow action the table lacks, then serves.
pub(crate) async fn run(cfg: PvConfig) -> anyhow::Result<()> {
    pv_store::migrate(&cfg.clickhouse).await?;
    let db = pv_store::Db::new(&cfg.clickhouse);
    let state = Arc::new(AppState::new(cfg.dashboard.clone(), db, pipeline(&cfg))?);
    state.workflow.ensure_topic().await?;
    let landed = state.workflow.catch_up().await?;
    tracing::info!(landed, "workflow log and table agree");
    let listener = tokio::net::TcpListener::bind(cfg.dashboard.listen)
        .await
        .with_context(|| format!("binding {}", cfg.dashboard.listen))?;
    let shutdown = Shutdown::new();
    shutdown.on_signals();
    pv_dashboard::serve(state, listener, shutdown).await?;
    Ok(())
}

//! `pv import --clinic ID DIR`: loads a clinic's history from CSV files (the layout of
//! `pv_import::layout`, documented in the README) through the gateway's validation.
//!
//! Accepted events go to the raw topic exactly as the gateway would send them, in transactions
//! of `--chunk` events. Each transaction also writes the ids it sent to a compacted ledger topic,
//! so an import is all-or-nothing per chunk and running it again sends only what the ledger does
//! not hold: re-running the same files sends nothing, and re-running after fixing rejected rows
//! sends just those. Rejected rows go to a CSV naming file, line, column and reason.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::BufReader;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use pv_events::{ClinicEvent, EventId, Timestamp};
use pv_import::{Checker, FILES, Item, Reject, Stop, read_history};
use pv_runtime::kafka::{PartitionReader, TopicSpec};
use rdkafka::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};

use crate::PvConfig;

/// Arguments of `pv import`.
#[derive(Debug, Args)]
pub(crate) struct ImportArgs {
    /// The clinic whose history this is (must be in the gateway's clinics file).
    #[arg(long)]
    clinic: String,
    /// The directory holding the CSV files (any of the six; see the README).
    dir: PathBuf,
    /// Where to write the rejected rows (default: DIR/rejects.csv).
    #[arg(long)]
    rejects: Option<PathBuf>,
    /// Events per Kafka transaction.
    #[arg(long, default_value_t = 5_000)]
    chunk: usize,
    /// The compacted topic recording which event ids each clinic's imports sent (default:
    /// `[topics] import_ledger`).
    #[arg(long)]
    ledger_topic: Option<String>,
    /// Check the files and write the rejects; send nothing.
    #[arg(long)]
    dry_run: bool,
}

/// The name of the rejects file, which a scan of the directory ignores.
const REJECTS_FILE: &str = "rejects.csv";
const PATIENCE: Duration = Duration::from_secs(30);
/// The largest `--chunk`.
const MAX_CHUNK: usize = 50_000;

/// What happened to each file's rows.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    sent: u64,
    already: u64,
    rejected_rows: u64,
}

impl ImportArgs {
    pub(crate) async fn run(mut self, cfg: &PvConfig) -> anyhow::Result<()> {
        self.ledger_topic.get_or_insert_with(|| cfg.topics.import_ledger.clone());
        anyhow::ensure!(
            (1..=MAX_CHUNK).contains(&self.chunk),
            "--chunk must be 1..={MAX_CHUNK} (its ledger record of 16 bytes per id must stay under Kafka's 1 MB)"
        );
        check_clinic(&cfg.gateway.clinics_file, &self.clinic)?;
        let present = files_in(&self.dir)?;
        check_headers(&self.dir, &present)?;
        if !self.dry_run {
            pv_runtime::kafka::ensure_topics(&cfg.kafka, &[TopicSpec::ledger(self.ledger_topic())])
                .await
                .context("creating the import ledger topic")?;
        }
        let cfg = cfg.clone();
        tokio::task::spawn_blocking(move || self.import(&cfg, &present)).await?
    }

    /// The ledger topic (`--ledger-topic`, else `[topics] import_ledger`, filled in by `run`).
    fn ledger_topic(&self) -> &str {
        self.ledger_topic.as_deref().unwrap_or_default()
    }

    fn import(&self, cfg: &PvConfig, present: &[&'static str]) -> anyhow::Result<()> {
        let started = Instant::now();
        let mut sender = if self.dry_run { None } else { Some(Sender::new(cfg, self)?) };
        let rejects_path = self.rejects.clone().unwrap_or_else(|| self.dir.join(REJECTS_FILE));
        let mut rejects = csv::Writer::from_path(&rejects_path)
            .with_context(|| format!("creating {}", rejects_path.display()))?;
        rejects.write_record(["file", "row", "event_id", "field", "reason"])?;
        let bar = progress(&self.dir, present);
        let mut tally: BTreeMap<&'static str, Tally> =
            FILES.iter().map(|f| (f.file, Tally::default())).collect();
        let mut rejected_rows = HashSet::new();
        let mut chunk: Vec<ClinicEvent> = Vec::with_capacity(self.chunk);
        let mut checker = Checker::new(&self.clinic, cfg.gateway.limits(), Timestamp::now());
        let mut opened = BTreeMap::new();
        for &name in present {
            let path = self.dir.join(name);
            let file = File::open(&path).with_context(|| format!("opening {}", path.display()))?;
            opened.insert(name, bar.wrap_read(BufReader::new(file)));
        }
        let outcome = read_history(
            &mut checker,
            |layout| opened.remove(layout.file),
            |item| -> anyhow::Result<()> {
                match item {
                    Item::Accepted(event) => {
                        let file = file_of(&event);
                        let t = tally.entry(file).or_default();
                        match &sender {
                            Some(s) if s.already_sent(event.event_id()) => t.already += 1,
                            _ => {
                                t.sent += 1;
                                chunk.push(event);
                            }
                        }
                        if chunk.len() >= self.chunk {
                            if let Some(s) = &mut sender {
                                s.send(&chunk)?;
                            }
                            chunk.clear();
                        }
                    }
                    Item::Rejected(r) => {
                        if rejected_rows.insert((r.file, r.row)) {
                            tally.entry(r.file).or_default().rejected_rows += 1;
                        }
                        write_reject(&mut rejects, &r)?;
                    }
                }
                Ok(())
            },
        );
        if let Err(Stop::Sink(e)) = outcome {
            return Err(e);
        }
        // Also after a read error: what was accepted before it goes, and a re-run resumes.
        if let Some(s) = &mut sender
            && !chunk.is_empty()
        {
            s.send(&chunk)?;
        }
        if let Err(Stop::File(e)) = outcome {
            anyhow::bail!(
                "{}: {e}; the rows read before it were {}; run the same command again once the file reads",
                self.dir.display(),
                if self.dry_run { "checked" } else { "imported" }
            );
        }
        rejects.flush()?;
        bar.finish_and_clear();
        self.print_summary(&tally, started.elapsed(), &rejects_path)
    }

    fn print_summary(
        &self,
        tally: &BTreeMap<&'static str, Tally>,
        took: Duration,
        rejects: &Path,
    ) -> anyhow::Result<()> {
        let dry = if self.dry_run { " (dry run: nothing sent)" } else { "" };
        println!("pv import: clinic {} from {}{dry}", self.clinic, self.dir.display());
        let verb = if self.dry_run { "accepted" } else { "sent" };
        println!("  {:<28} {:>9} {:>17} {:>9}", "file", verb, "already imported", "rejected");
        let (mut sent, mut rejected) = (0, 0);
        for f in FILES {
            let t = tally.get(f.file).copied().unwrap_or_default();
            if matches!(f.part, pv_import::Part::Events(_)) {
                println!("  {:<28} {:>9} {:>17} {:>9}", f.file, t.sent, t.already, t.rejected_rows);
            } else {
                println!(
                    "  {:<28} {:>9} {:>17} {:>9}  (rows of the reports)",
                    f.file, "-", "-", t.rejected_rows
                );
            }
            sent += t.sent;
            rejected += t.rejected_rows;
        }
        let secs = took.as_secs_f64();
        println!(
            "  {sent} events {verb} in {secs:.2} s ({:.0} events/s); {rejected} rows rejected",
            sent as f64 / secs.max(1e-9)
        );
        if rejected > 0 {
            return Err(anyhow::Error::new(RowsRejected).context(format!(
                "{rejected} rows rejected, listed in {} (the other rows were {}); fix them and run the same command again",
                rejects.display(),
                if self.dry_run { "accepted" } else { "imported" }
            )));
        }
        Ok(())
    }
}

/// The error of an import that sent what it accepted but refused some rows (exit status 2).
#[derive(Debug, thiserror::Error)]
#[error("some rows were rejected")]
pub(crate) struct RowsRejected;

/// Opens every file's header before anything is sent: a bad header refuses the whole import.
fn check_headers(dir: &Path, present: &[&'static str]) -> anyhow::Result<()> {
    for layout in FILES.iter().filter(|f| present.contains(&f.file)) {
        let path = dir.join(layout.file);
        let file = File::open(&path).with_context(|| format!("opening {}", path.display()))?;
        pv_import::FileRows::open(*layout, BufReader::new(file))
            .map_err(|e| anyhow::anyhow!("{}: {e}; nothing was imported", dir.display()))?;
    }
    Ok(())
}

/// The file an accepted event came from.
fn file_of(event: &ClinicEvent) -> &'static str {
    FILES.iter().find(|f| f.part == pv_import::Part::Events(event.kind())).map_or("", |f| f.file)
}

fn write_reject(out: &mut csv::Writer<File>, r: &Reject) -> anyhow::Result<()> {
    let row = r.row.to_string();
    out.write_record([r.file, row.as_str(), r.event_id.as_deref().unwrap_or(""), &r.field, &r.reason])?;
    Ok(())
}

/// Refuses a clinic the gateway does not know: a typo would otherwise create a new clinic.
fn check_clinic(clinics_file: &Path, clinic: &str) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(clinics_file)
        .with_context(|| format!("reading the clinics file {}", clinics_file.display()))?;
    let file: pv_gateway::auth::ClinicsFile =
        toml::from_str(&text).with_context(|| format!("parsing {}", clinics_file.display()))?;
    anyhow::ensure!(
        file.clinics.iter().any(|c| c.id == clinic),
        "--clinic: `{clinic}` is not in the clinics file {} (add it with `pv clinics add --clinic {clinic}`)",
        clinics_file.display()
    );
    Ok(())
}

/// The layout's files found in `dir`; any other `.csv` file there is an error (a misnamed file
/// would otherwise be skipped silently).
fn files_in(dir: &Path) -> anyhow::Result<Vec<&'static str>> {
    let mut present = Vec::new();
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("reading the directory {}", dir.display()))?;
    for entry in entries {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if !name.to_ascii_lowercase().ends_with(".csv") || name == REJECTS_FILE {
            continue;
        }
        match FILES.iter().find(|f| f.file == name) {
            Some(f) => present.push(f.file),
            None => anyhow::bail!(
                "{}: `{name}` is not a file of the import layout; expected any of {}",
                dir.display(),
                FILES.map(|f| f.file).join(", ")
            ),
        }
    }
    anyhow::ensure!(
        !present.is_empty(),
        "{}: none of {} found",
        dir.display(),
        FILES.map(|f| f.file).join(", ")
    );
    Ok(present)
}

fn progress(dir: &Path, present: &[&str]) -> ProgressBar {
    let total = present.iter().filter_map(|f| std::fs::metadata(dir.join(f)).ok()).map(|m| m.len()).sum();
    let bar = if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        ProgressBar::new(total)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("  {bar:40} {bytes}/{total_bytes}  {bytes_per_sec}  eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

/// Sends chunks of events with their ledger record, one transaction each.
struct Sender {
    /// Threaded: its thread serves delivery reports as they come (see
    /// `pv_runtime::kafka::produce::commit_transaction`).
    producer: ThreadedProducer<DefaultProducerContext>,
    topic: String,
    ledger_topic: String,
    clinic: String,
    /// The limits the events were checked with, recorded with each message.
    limits: pv_events::Limits,
    sent: HashSet<EventId>,
}

impl Sender {
    fn new(cfg: &PvConfig, args: &ImportArgs) -> anyhow::Result<Self> {
        // Deliveries within 10 s, below the transaction timeout (librdkafka requires it).
        let mut pc = pv_runtime::kafka::producer_config(&cfg.kafka, Duration::from_secs(10));
        // One importer per clinic at a time: a second one fences the first. A killed import's
        // open transaction holds back read_committed readers of the raw partitions it wrote
        // until this timeout (or the next run's init) aborts it.
        pc.set("transactional.id", format!("pv-import-{}", args.clinic))
            .set("transaction.timeout.ms", "15000");
        let producer: ThreadedProducer<DefaultProducerContext> = pc.create()?;
        pv_runtime::kafka::topics::partitions(producer.client(), &cfg.gateway.topic, PATIENCE).with_context(
            || format!("the raw topic `{}` ([gateway] topic) is not there", cfg.gateway.topic),
        )?;
        producer.init_transactions(PATIENCE).context("starting the import's Kafka transactions")?;
        // Read after the fence: init_transactions has finished or aborted any transaction a
        // previous run left open, so the ledger is complete.
        let prefix = format!("{}/{}/", cfg.gateway.topic, args.clinic);
        let sent = ledger(cfg, args.ledger_topic(), &prefix)?;
        Ok(Self {
            producer,
            topic: cfg.gateway.topic.clone(),
            ledger_topic: args.ledger_topic().to_owned(),
            clinic: args.clinic.clone(),
            limits: cfg.gateway.limits(),
            sent,
        })
    }

    fn already_sent(&self, id: EventId) -> bool {
        self.sent.contains(&id)
    }

    /// Sends `events` (stamped as accepted now) and records their ids, all or nothing.
    fn send(&mut self, events: &[ClinicEvent]) -> anyhow::Result<()> {
        let now = Timestamp::now();
        let mut events = events.to_vec();
        for e in &mut events {
            e.set_received_at(now);
        }
        let messages = pv_gateway::produce::raw_messages(&events, Some(&self.limits))?;
        let ids: Vec<u8> = events.iter().flat_map(|e| *e.event_id().0.as_bytes()).collect();
        let key = format!("{}/{}/{}", self.topic, self.clinic, EventId::new_random());
        self.producer.begin_transaction()?;
        let sent = messages.iter().try_for_each(|m| {
            let mut record = BaseRecord::to(&self.topic).key(m.key.as_slice()).payload(m.payload.as_slice());
            if let Some(ts) = m.timestamp_ms {
                record = record.timestamp(ts);
            }
            if let Some(h) = m.owned_headers() {
                record = record.headers(h);
            }
            self.enqueue(record)
        });
        let logged = sent.and_then(|()| {
            self.enqueue(BaseRecord::to(&self.ledger_topic).key(key.as_bytes()).payload(ids.as_slice()))
        });
        if let Err(e) = logged {
            let _ = self.producer.abort_transaction(PATIENCE);
            return Err(e.context(
                "sending a chunk of events: it was not imported (the chunks before it were); run the same command again to go on",
            ));
        }
        self.commit()?;
        self.sent.extend(events.iter().map(ClinicEvent::event_id));
        Ok(())
    }

    /// Commits the open transaction, retrying what librdkafka says may be retried. A commit
    /// that neither succeeds nor must be aborted may still land: the error says so.
    fn commit(&self) -> anyhow::Result<()> {
        let mut tries = 0;
        loop {
            tries += 1;
            let e = match pv_runtime::kafka::produce::commit_transaction(&self.producer, PATIENCE) {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            let (retriable, abort) = match &e {
                rdkafka::error::KafkaError::Transaction(t) => (t.is_retriable(), t.txn_requires_abort()),
                _ => (false, false),
            };
            if retriable && tries < 3 {
                tracing::warn!(error = %e, "committing a chunk: retrying");
                continue;
            }
            if abort {
                let _ = self.producer.abort_transaction(PATIENCE);
                return Err(anyhow::Error::new(e).context(
                    "committing a chunk of events: it was not imported (the chunks before it were); run the same command again to go on",
                ));
            }
            return Err(anyhow::Error::new(e).context(
                "committing a chunk of events: it may or may not have been imported; running the same command again is safe (it sends only what the ledger does not hold)",
            ));
        }
    }

    #[allow(clippy::result_large_err)] // the closure returns librdkafka's own (error, record)
    fn enqueue(&self, record: BaseRecord<'_, [u8], [u8]>) -> anyhow::Result<()> {
        let deadline = Instant::now() + PATIENCE;
        pv_runtime::kafka::produce::enqueue(
            record,
            deadline,
            |r| self.producer.send(r),
            || std::thread::sleep(Duration::from_millis(2)),
        )?;
        Ok(())
    }
}

/// Every event id the ledger records under `prefix` (`{raw topic}/{clinic}/`).
fn ledger(cfg: &PvConfig, topic: &str, prefix: &str) -> anyhow::Result<HashSet<EventId>> {
    let reader = PartitionReader::new(&cfg.kafka, "pv-import-ledger")?;
    let mut ids = HashSet::new();
    reader
        .read_all(topic, PATIENCE, |m| {
            if m.key().is_some_and(|k| k.starts_with(prefix.as_bytes())) {
                for raw in m.payload().unwrap_or_default().chunks_exact(16) {
                    if let Ok(bytes) = <[u8; 16]>::try_from(raw) {
                        ids.insert(EventId(uuid::Uuid::from_bytes(bytes)));
                    }
                }
            }
            ControlFlow::Continue(())
        })
        .with_context(|| format!("reading the import ledger {topic}"))?;
    Ok(ids)
}

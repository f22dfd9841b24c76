//! `pv dlq redrive`: re-sends chosen dead letters to the topic they came from, once.
//!
//! A dead letter carries its source topic in the `pv-source-topic` header. Each re-sent message
//! keeps its key and bytes and gains `pv-redriven-from: {dead-letter topic}/{partition}/{offset}`.
//! What was redriven is recorded in a compacted log topic (key: the same coordinates) in the same
//! Kafka transaction as the re-sent messages, so a redrive is all or nothing and running it again
//! over the same range sends nothing twice.

use std::collections::BTreeSet;
use std::ops::ControlFlow;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use pv_runtime::kafka::{PartitionReader, TopicSpec};
use rdkafka::Message;
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, producer::ProducerContext};

use crate::PvConfig;

/// `pv dlq ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum DlqCommand {
    /// Re-send the dead letters of one partition's offset range to their source topic, once
    /// (a second run over the same range sends nothing).
    Redrive(RedriveArgs),
}

/// Arguments of `pv dlq redrive`.
#[derive(Debug, Args)]
pub(crate) struct RedriveArgs {
    /// The dead-letter topic, e.g. `pv.raw.dlq`.
    #[arg(long)]
    topic: String,
    /// Its partition.
    #[arg(long, default_value_t = 0)]
    partition: i32,
    /// First offset to re-send.
    #[arg(long)]
    from: i64,
    /// Last offset to re-send (included).
    #[arg(long)]
    to: i64,
    /// The compacted topic recording what was redriven (default: `[topics] redrive_log`).
    #[arg(long)]
    log_topic: Option<String>,
    /// Only say what would be re-sent.
    #[arg(long)]
    dry_run: bool,
}

/// A dead letter to re-send.
struct Letter {
    coordinates: String,
    source: String,
    key: Option<Vec<u8>>,
    payload: Vec<u8>,
    /// The limits the event was accepted under, when the dead letter kept them.
    accepted_under: Option<String>,
}

const PATIENCE: Duration = Duration::from_secs(30);

impl DlqCommand {
    /// Runs the command.
    pub(crate) async fn run(self, cfg: &PvConfig) -> anyhow::Result<()> {
        match self {
            DlqCommand::Redrive(args) => args.run(cfg).await,
        }
    }
}

impl RedriveArgs {
    async fn run(mut self, cfg: &PvConfig) -> anyhow::Result<()> {
        self.log_topic.get_or_insert_with(|| cfg.topics.redrive_log.clone());
        anyhow::ensure!(
            self.from >= 0 && self.from <= self.to,
            "--from {} must be >= 0 and <= --to {}",
            self.from,
            self.to
        );
        let spec = TopicSpec::ledger(self.log_topic());
        pv_runtime::kafka::ensure_topics(&cfg.kafka, &[spec])
            .await
            .context("creating the redrive log topic")?;
        let kafka = cfg.kafka.clone();
        tokio::task::spawn_blocking(move || self.redrive(&kafka)).await?
    }

    /// The log topic (`--log-topic`, else `[topics] redrive_log`, filled in by `run`).
    fn log_topic(&self) -> &str {
        self.log_topic.as_deref().unwrap_or_default()
    }

    fn redrive(&self, kafka: &pv_runtime::KafkaConfig) -> anyhow::Result<()> {
        let reader = PartitionReader::new(kafka, "pv-dlq-redrive")?;
        let mut done = BTreeSet::new();
        reader.read_all(self.log_topic(), PATIENCE, |m| {
            if let Some(k) = m.key() {
                done.insert(String::from_utf8_lossy(k).into_owned());
            }
            ControlFlow::Continue(())
        })?;
        let letters = self.letters(&reader)?;
        let (fresh, again): (Vec<Letter>, Vec<Letter>) =
            letters.into_iter().partition(|l| !done.contains(&l.coordinates));
        for l in &fresh {
            println!("{} -> {}{}", l.coordinates, l.source, if self.dry_run { " (dry run)" } else { "" });
        }
        if !self.dry_run && !fresh.is_empty() {
            self.send(kafka, &fresh)?;
        }
        println!(
            "pv dlq redrive: {} re-sent{}, {} already redriven before",
            fresh.len(),
            if self.dry_run { " (dry run: nothing sent)" } else { "" },
            again.len()
        );
        Ok(())
    }

    /// The dead letters of the range, each with its source topic (an error names one without).
    fn letters(&self, reader: &PartitionReader) -> anyhow::Result<Vec<Letter>> {
        let mut letters = Vec::new();
        let mut missing = None;
        let start = [(self.partition, Offset::Offset(self.from))];
        reader.read(&self.topic, &start, PATIENCE, |m| {
            if m.offset() > self.to {
                return ControlFlow::Break(());
            }
            let coordinates = format!("{}/{}/{}", self.topic, self.partition, m.offset());
            let source = header(m, "pv-source-topic");
            match source {
                Some(source) => letters.push(Letter {
                    coordinates,
                    source,
                    key: m.key().map(<[u8]>::to_vec),
                    payload: m.payload().unwrap_or_default().to_vec(),
                    accepted_under: header(m, pv_events::Limits::HEADER),
                }),
                None => missing = Some(coordinates),
            }
            if m.offset() >= self.to { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
        })?;
        if let Some(c) = missing {
            anyhow::bail!("{c} has no pv-source-topic header: not a dead letter of this pipeline");
        }
        Ok(letters)
    }

    /// Re-sends `letters` and records them, in one transaction.
    fn send(&self, kafka: &pv_runtime::KafkaConfig, letters: &[Letter]) -> anyhow::Result<()> {
        let mut pc = pv_runtime::kafka::producer_config(kafka, PATIENCE);
        pc.set("transactional.id", "pv-dlq-redrive");
        let producer: BaseProducer = pc.create()?;
        producer.init_transactions(PATIENCE)?;
        producer.begin_transaction()?;
        for l in letters {
            let mut headers = OwnedHeaders::new()
                .insert(Header { key: "pv-redriven-from", value: Some(l.coordinates.as_str()) });
            if let Some(limits) = &l.accepted_under {
                headers =
                    headers.insert(Header { key: pv_events::Limits::HEADER, value: Some(limits.as_str()) });
            }
            let mut record = BaseRecord::to(&l.source).payload(l.payload.as_slice()).headers(headers);
            if let Some(k) = &l.key {
                record = record.key(k.as_slice());
            }
            send(&producer, record)?;
            let logged =
                BaseRecord::to(self.log_topic()).key(l.coordinates.as_bytes()).payload(l.source.as_bytes());
            send(&producer, logged)?;
        }
        producer.commit_transaction(PATIENCE).context("committing the redrive (nothing was re-sent)")?;
        Ok(())
    }
}

/// Enqueues `record`, waiting while the producer's queue is full.
#[allow(clippy::result_large_err)] // the closure returns librdkafka's own (error, record)
fn send<C>(producer: &BaseProducer<C>, record: BaseRecord<'_, [u8], [u8]>) -> anyhow::Result<()>
where
    C: ProducerContext<DeliveryOpaque = ()>,
{
    let deadline = std::time::Instant::now() + PATIENCE;
    let wait = || {
        producer.poll(Duration::from_millis(100));
    };
    pv_runtime::kafka::produce::enqueue(record, deadline, |r| producer.send(r), wait)?;
    Ok(())
}

/// The value of a message's header `name`, as text.
fn header(m: &rdkafka::message::BorrowedMessage<'_>, name: &str) -> Option<String> {
    let value = m.headers().and_then(|h| h.iter().find(|x| x.key == name).and_then(|x| x.value))?;
    Some(String::from_utf8_lossy(value).into_owned())
}

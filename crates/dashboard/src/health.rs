//! Pipeline health for the overview: consumer lag per stage, dead letters by reason, whether
//! the sink is paused, the latest event from every clinic. Read from the broker, the sink's
//! metrics and the event tables; cached for a few seconds, as reading dead-letter topics and
//! scanning every clinic's latest event is not free.

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use pv_runtime::KafkaConfig;
use pv_runtime::kafka::PartitionReader;
use rdkafka::message::Headers;
use serde::Serialize;

/// A consuming stage of the pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    /// Its name on screen (`enrich`, `sink`).
    pub name: String,
    /// Its consumer group.
    pub group: String,
    /// The topics it reads.
    pub topics: Vec<String>,
}

/// What the workbench watches.
#[derive(Debug, Clone, PartialEq)]
pub struct Pipeline {
    /// The broker.
    pub kafka: KafkaConfig,
    /// The stages, in pipeline order.
    pub stages: Vec<Stage>,
    /// Dead-letter topics.
    pub dead_letter_topics: Vec<String>,
    /// The sink's Prometheus endpoint.
    pub sink_metrics_url: String,
}

/// Lag of one stage.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StageLag {
    /// The stage.
    pub stage: String,
    /// Messages not yet processed (`None`: could not be read, see `error`).
    pub lag: Option<i64>,
    /// Why the lag could not be read.
    pub error: Option<String>,
}

/// Dead letters of one topic and reason.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DeadLetters {
    /// The dead-letter topic.
    pub topic: String,
    /// The reason, digits masked (`#`) so that like reasons group.
    pub reason: String,
    /// Messages.
    pub count: u64,
}

/// The pipeline's health.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Health {
    /// Lag per stage.
    pub stages: Vec<StageLag>,
    /// Dead letters by topic and reason.
    pub dead_letters: Vec<DeadLetters>,
    /// Why dead letters could not be read, if they could not.
    pub dead_letters_error: Option<String>,
    /// Whether the sink is paused waiting for ClickHouse (`None`: its metrics did not answer).
    pub sink_paused: Option<bool>,
    /// The latest event received from every clinic.
    pub last_events: Vec<crate::reads::LastEvent>,
    /// Why the latest events could not be read, if they could not.
    pub last_events_error: Option<String>,
}

/// Reads health, at most once per `ttl`.
#[derive(Debug)]
pub struct HealthCache {
    pipeline: Pipeline,
    db: pv_store::Db,
    ttl: Duration,
    last: Mutex<Option<(Instant, Health)>>,
}

impl HealthCache {
    /// A cache over `pipeline` and the event tables of `db`.
    pub fn new(pipeline: Pipeline, db: pv_store::Db, ttl: Duration) -> Self {
        Self { pipeline, db, ttl, last: Mutex::new(None) }
    }

    /// The health, read again when older than the ttl.
    pub async fn get(&self) -> Health {
        if let Some((at, h)) = crate::locked(&self.last).as_ref() {
            if at.elapsed() < self.ttl {
                return h.clone();
            }
        }
        let pipeline = self.pipeline.clone();
        let kafka_part = tokio::task::spawn_blocking(move || (lags(&pipeline), dead_letters(&pipeline)));
        let paused = sink_paused(&self.pipeline.sink_metrics_url);
        let last = crate::reads::last_event_per_clinic(&self.db, None);
        let (kafka_part, sink_paused, last) = tokio::join!(kafka_part, paused, last);
        let (last_events, last_events_error) = match last {
            Ok(l) => (l, None),
            Err(e) => (vec![], Some(e.to_string())),
        };
        let (stages, dead) = kafka_part.unwrap_or_else(|e| (vec![], Err(e.to_string())));
        let (dead_letters, dead_letters_error) = match dead {
            Ok(d) => (d, None),
            Err(e) => (vec![], Some(e)),
        };
        let health =
            Health { stages, dead_letters, dead_letters_error, sink_paused, last_events, last_events_error };
        *crate::locked(&self.last) = Some((Instant::now(), health.clone()));
        health
    }
}

fn lags(p: &Pipeline) -> Vec<StageLag> {
    p.stages
        .iter()
        .map(|s| {
            let topics: Vec<&str> = s.topics.iter().map(String::as_str).collect();
            match pv_runtime::kafka::group_lag(&p.kafka, &s.group, &topics, Duration::from_secs(5)) {
                Ok(lag) => StageLag { stage: s.name.clone(), lag: Some(lag), error: None },
                Err(e) => StageLag { stage: s.name.clone(), lag: None, error: Some(e.to_string()) },
            }
        })
        .collect()
}

/// The reason with its digits masked.
fn reason_class(reason: &str) -> String {
    let masked: String = reason.chars().map(|c| if c.is_ascii_digit() { '#' } else { c }).collect();
    let mut out = String::new();
    for c in masked.chars() {
        if !(c == '#' && out.ends_with('#')) {
            out.push(c);
        }
    }
    out.chars().take(160).collect()
}

fn dead_letters(p: &Pipeline) -> Result<Vec<DeadLetters>, String> {
    let reader = PartitionReader::new(&p.kafka, "pv-dashboard-health").map_err(|e| e.to_string())?;
    let mut counts: BTreeMap<(String, String), u64> = BTreeMap::new();
    for topic in &p.dead_letter_topics {
        let read = reader.read_all(topic, Duration::from_secs(5), |m| {
            let reason = rdkafka::Message::headers(m)
                .and_then(|h| h.iter().find(|h| h.key == "pv-error").and_then(|h| h.value))
                .map_or_else(
                    || "(no reason header)".to_string(),
                    |v| String::from_utf8_lossy(v).into_owned(),
                );
            *counts.entry((topic.clone(), reason_class(&reason))).or_default() += 1;
            ControlFlow::Continue(())
        });
        match read {
            Ok(_) => {}
            // Not created yet (or not known to the broker now): no dead letters to count.
            Err(rdkafka::error::KafkaError::MetadataFetch(_)) => continue,
            Err(e) => return Err(format!("{topic}: {e}")),
        }
    }
    Ok(counts.into_iter().map(|((topic, reason), count)| DeadLetters { topic, reason, count }).collect())
}

async fn sink_paused(url: &str) -> Option<bool> {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(2)).build().ok()?;
    let text = client.get(url).send().await.ok()?.text().await.ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("pv_sink_paused "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|v| v > 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_reasons_group() {
        assert_eq!(reason_class("dose_mg: 5000 above 1000"), "dose_mg: # above #");
        assert_eq!(reason_class("offset 12 of partition 3"), "offset # of partition #");
    }
}

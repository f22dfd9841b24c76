//! What a consumer group has yet to commit.

use std::ops::ControlFlow;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{Offset, TopicPartitionList};

use super::read::PartitionReader;
use crate::config::KafkaConfig;

/// Messages on `topics` not yet committed by consumer group `group`.
///
/// On transactional topics the high watermark also counts commit markers, so a gap of up to
/// 10,000 offsets is verified by reading it (committed records only); a larger gap is returned
/// as is (an upper bound). A partition the group never committed counts from its start.
pub fn group_lag(
    kafka: &KafkaConfig,
    group: &str,
    topics: &[&str],
    timeout: Duration,
) -> Result<i64, KafkaError> {
    let consumer: BaseConsumer = super::consumer_config(kafka, group).create()?;
    let mut lag = 0;
    for topic in topics {
        let mut tpl = TopicPartitionList::new();
        let mut highs = Vec::new();
        // A topic the broker does not know has no partitions, hence no lag.
        let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
        for partition in metadata.topics().iter().flat_map(|t| t.partitions()).map(|p| p.id()) {
            let (low, high) = consumer.fetch_watermarks(topic, partition, timeout)?;
            tpl.add_partition(topic, partition);
            highs.push((partition, low, high));
        }
        let committed = consumer.committed_offsets(tpl, timeout)?;
        let mut probe = Vec::new();
        for (partition, low, high) in highs {
            let done = match committed.find_partition(topic, partition).map(|e| e.offset()) {
                Some(Offset::Offset(o)) => o.max(low),
                _ => low,
            };
            let gap = (high - done).max(0);
            if gap == 0 || gap > 10_000 {
                lag += gap;
            } else {
                probe.push((partition, Offset::Offset(done)));
            }
        }
        if !probe.is_empty() {
            let reader = PartitionReader::new(kafka, "pv-lag-probe")?;
            lag += reader.read(topic, &probe, timeout, |_| ControlFlow::Continue(()))? as i64;
        }
    }
    Ok(lag)
}

/// Keeps a consumer-lag gauge up to date while it lives ([`watch_lag`]).
#[derive(Debug)]
pub struct LagWatch {
    stop: crate::Shutdown,
}

impl Drop for LagWatch {
    fn drop(&mut self) {
        self.stop.trigger();
    }
}

/// Sets `gauge` to [`group_lag`] every `every`, on a thread of its own, until the returned guard
/// is dropped; a failed probe is logged and leaves the last value.
pub fn watch_lag(
    kafka: KafkaConfig,
    group: String,
    topics: Vec<String>,
    gauge: prometheus::IntGauge,
    every: Duration,
) -> LagWatch {
    let stop = crate::Shutdown::new();
    let done = stop.clone();
    std::thread::spawn(move || {
        let names: Vec<&str> = topics.iter().map(String::as_str).collect();
        while !done.is_triggered() {
            match group_lag(&kafka, &group, &names, Duration::from_secs(10)) {
                Ok(lag) => gauge.set(lag),
                Err(e) => tracing::warn!(%group, error = %e, "consumer lag probe failed"),
            }
            let until = std::time::Instant::now() + every;
            while std::time::Instant::now() < until && !done.is_triggered() {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    });
    LagWatch { stop }
}

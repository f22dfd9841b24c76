//! Sending a stream as the clinics would: each clinic concurrently and in its own order, in
//! batches, at a target rate or as fast as possible, with a progress bar.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use indicatif::{ProgressBar, ProgressStyle};
use pv_events::{ClinicEvent, event_to_json};
use serde::Deserialize;

/// How fast and in what portions to send.
#[derive(Debug, Clone, Copy)]
pub struct Pacing {
    /// Events per request (or per produce batch).
    pub batch_size: usize,
    /// Target events per second over all clinics; `None` = as fast as possible.
    pub rate: Option<f64>,
    /// Show a progress bar on stderr.
    pub progress: bool,
}

/// What happened.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SendReport {
    /// Events accepted and durable.
    pub accepted: u64,
    /// Batches retried after a transient refusal (503, 429).
    pub retries: u64,
    /// Wall time.
    pub elapsed: Duration,
    /// Seconds from each batch's send to its acknowledgement (one entry per batch).
    pub batch_latencies: Vec<f64>,
}

/// Sends every event through `send_batch` (clinic id, batch) -> retries needed; each clinic's
/// events go in order, clinics in parallel; batches are paced to `pacing.rate`.
pub async fn send_by_clinic<S, F>(
    events: Vec<ClinicEvent>,
    pacing: Pacing,
    send_batch: S,
) -> anyhow::Result<SendReport>
where
    S: Fn(String, Vec<ClinicEvent>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = anyhow::Result<u64>> + Send,
{
    let total = events.len() as u64;
    let mut by_clinic: BTreeMap<String, Vec<ClinicEvent>> = BTreeMap::new();
    for e in events {
        by_clinic.entry(e.clinic_id().to_owned()).or_default().push(e);
    }
    let bar = if pacing.progress { ProgressBar::new(total) } else { ProgressBar::hidden() };
    bar.set_style(
        ProgressStyle::with_template("  {bar:40} {pos}/{len} events  {per_sec}  eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let reserved = Arc::new(AtomicU64::new(0));
    let retries = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (clinic, events) in by_clinic {
        let (send_batch, reserved, retries, bar) =
            (send_batch.clone(), reserved.clone(), retries.clone(), bar.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            for chunk in batches(&events, pacing.batch_size) {
                if let Some(rate) = pacing.rate.filter(|r| *r > 0.0) {
                    // A shared schedule: this batch may leave once the events before it have had
                    // their time at the target rate.
                    let before = reserved.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                    let due = started + Duration::from_secs_f64(before as f64 / rate);
                    tokio::time::sleep_until(due.into()).await;
                }
                let sent = Instant::now();
                let r = send_batch(clinic.clone(), chunk.to_vec()).await?;
                latencies.push(sent.elapsed().as_secs_f64());
                retries.fetch_add(r, Ordering::Relaxed);
                bar.inc(chunk.len() as u64);
            }
            Ok::<Vec<f64>, anyhow::Error>(latencies)
        }));
    }
    let mut batch_latencies = Vec::new();
    let mut first_error = None;
    for t in tasks {
        match t.await.context("sender task")? {
            Ok(l) => batch_latencies.extend(l),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    bar.finish_and_clear();
    if let Some(e) = first_error {
        return Err(e);
    }
    Ok(SendReport {
        accepted: total,
        retries: retries.load(Ordering::Relaxed),
        elapsed: started.elapsed(),
        batch_latencies,
    })
}

/// Splits a clinic's events into batches of at most `size`, starting a new batch where an event
/// repeats one already in the batch: a re-submission is a new request, as a client retry is.
fn batches(events: &[ClinicEvent], size: usize) -> Vec<&[ClinicEvent]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut ids = std::collections::HashSet::new();
    for (i, e) in events.iter().enumerate() {
        if i - start >= size.max(1) || !ids.insert(e.event_id()) {
            out.push(&events[start..i]);
            start = i;
            ids.clear();
            ids.insert(e.event_id());
        }
    }
    if start < events.len() {
        out.push(&events[start..]);
    }
    out
}

#[derive(Deserialize)]
struct TokensFile {
    clinic: Vec<TokenEntry>,
}

#[derive(Deserialize)]
struct TokenEntry {
    id: String,
    token: String,
}

/// Reads the plaintext tokens file written by `pv clinics init`.
pub fn load_tokens(path: &Path) -> anyhow::Result<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let file: TokensFile = toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    Ok(file.clinic.into_iter().map(|e| (e.id, e.token)).collect())
}

/// The future a batch sender returns: retries needed, or why the batch was refused.
pub type BatchFuture = std::pin::Pin<Box<dyn Future<Output = anyhow::Result<u64>> + Send>>;

/// A batch sender that POSTs NDJSON to the gateway with each clinic's token, retrying after
/// 503 and 429 as `Retry-After` says; any other refusal is an error.
pub fn gateway_sender(
    gateway_url: &str,
    tokens: BTreeMap<String, String>,
) -> anyhow::Result<impl Fn(String, Vec<ClinicEvent>) -> BatchFuture + Clone + Send + Sync + 'static> {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(60)).build()?;
    let url = format!("{}/v1/events", gateway_url.trim_end_matches('/'));
    let tokens = Arc::new(tokens);
    Ok(move |clinic: String, chunk: Vec<ClinicEvent>| {
        let (client, url, tokens) = (client.clone(), url.clone(), tokens.clone());
        Box::pin(async move {
            let token = tokens.get(&clinic).with_context(|| format!("no token for {clinic}"))?;
            let body: String = chunk.iter().map(|e| event_to_json(e).to_string() + "\n").collect();
            let mut retries: u64 = 0;
            loop {
                let resp = client
                    .post(&url)
                    .bearer_auth(token)
                    .header("content-type", "application/x-ndjson")
                    .body(body.clone())
                    .send()
                    .await
                    .with_context(|| format!("POST {url}"))?;
                match resp.status().as_u16() {
                    202 => return Ok(retries),
                    // The broker unavailable, or the clinic over its request rate: wait as told.
                    503 | 429 => {
                        let wait = resp
                            .headers()
                            .get("retry-after")
                            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
                            .unwrap_or(1);
                        retries += 1;
                        tokio::time::sleep(Duration::from_secs(wait)).await;
                    }
                    status => {
                        let text = resp.text().await.unwrap_or_default();
                        bail!("{clinic}: gateway answered {status}: {text}");
                    }
                }
            }
        }) as BatchFuture
    })
}

#[cfg(test)]
mod tests {
    use pv_events::{Timestamp, sample};

    use super::*;

    #[test]
    fn a_repeated_event_starts_a_new_batch() {
        let e = |i: i32| ClinicEvent::from(sample::dose("c", "p", i, Timestamp::from_millis(0)));
        let (a, b, c) = (e(1), e(2), e(3));
        let events = vec![a.clone(), b.clone(), a.clone(), c.clone(), b.clone()];
        let sizes: Vec<usize> = batches(&events, 10).iter().map(|b| b.len()).collect();
        assert_eq!(sizes, [2, 3], "a b | a c b");
        let sizes: Vec<usize> = batches(&events, 2).iter().map(|b| b.len()).collect();
        assert_eq!(sizes, [2, 2, 1]);
        assert!(batches(&[], 5).is_empty());
    }
}

//! Sending a stream through the gateway, as the clinics would: each clinic concurrently, with
//! its own token, in NDJSON batches, retrying when the gateway answers 503.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use pv_events::{ClinicEvent, event_to_json};
use serde::Deserialize;

/// How to send.
#[derive(Debug, Clone)]
pub struct SendConfig {
    /// Gateway base URL, e.g. `http://127.0.0.1:8080`.
    pub gateway_url: String,
    /// Clinic id -> bearer token.
    pub tokens: BTreeMap<String, String>,
    /// Events per request.
    pub batch_size: usize,
}

/// What happened.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SendReport {
    /// Events the gateway accepted (202).
    pub accepted: u64,
    /// Requests retried after a 503.
    pub retries: u64,
    /// Wall time.
    pub elapsed: Duration,
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

/// Sends every event; each clinic's events go in order, clinics in parallel.
pub async fn send_through_gateway(cfg: &SendConfig, events: Vec<ClinicEvent>) -> anyhow::Result<SendReport> {
    let total = events.len() as u64;
    let mut by_clinic: BTreeMap<String, Vec<ClinicEvent>> = BTreeMap::new();
    for e in events {
        by_clinic.entry(e.clinic_id().to_owned()).or_default().push(e);
    }
    let client = reqwest::Client::builder().timeout(Duration::from_secs(60)).build()?;
    let accepted = Arc::new(AtomicU64::new(0));
    let retries = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let progress = {
        let accepted = accepted.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(2)).await;
                let n = accepted.load(Ordering::Relaxed);
                let rate = n as f64 / started.elapsed().as_secs_f64();
                eprintln!("  sent {n}/{total} events ({rate:.0} events/s)");
            }
        })
    };
    let mut tasks = Vec::new();
    for (clinic, events) in by_clinic {
        let token = cfg.tokens.get(&clinic).cloned().with_context(|| format!("no token for {clinic}"))?;
        let url = format!("{}/v1/events", cfg.gateway_url.trim_end_matches('/'));
        let (client, accepted, retries, batch) =
            (client.clone(), accepted.clone(), retries.clone(), cfg.batch_size.max(1));
        tasks.push(tokio::spawn(async move {
            for chunk in events.chunks(batch) {
                let body: String = chunk.iter().map(|e| event_to_json(e).to_string() + "\n").collect();
                loop {
                    let resp = client
                        .post(&url)
                        .bearer_auth(&token)
                        .header("content-type", "application/x-ndjson")
                        .body(body.clone())
                        .send()
                        .await
                        .with_context(|| format!("POST {url}"))?;
                    match resp.status().as_u16() {
                        202 => {
                            accepted.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                            break;
                        }
                        503 => {
                            let wait = resp
                                .headers()
                                .get("retry-after")
                                .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
                                .unwrap_or(1);
                            retries.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_secs(wait)).await;
                        }
                        status => {
                            let text = resp.text().await.unwrap_or_default();
                            bail!("{clinic}: gateway answered {status}: {text}");
                        }
                    }
                }
            }
            Ok::<(), anyhow::Error>(())
        }));
    }
    let mut result = Ok(());
    for t in tasks {
        let outcome = t.await.context("sender task")?;
        if result.is_ok() {
            result = outcome;
        }
    }
    progress.abort();
    result?;
    Ok(SendReport {
        accepted: accepted.load(Ordering::Relaxed),
        retries: retries.load(Ordering::Relaxed),
        elapsed: started.elapsed(),
    })
}

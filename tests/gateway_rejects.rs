//! Bad requests get the exact status and a field-level error, and nothing of a rejected request
//! reaches Kafka. Runs against the real broker.

mod common;

use std::time::Duration;

use common::{TestEnv, post, token};
use pv_events::{ClinicEvent, Timestamp, event_to_json, sample};
use serde_json::json;

fn dose(clinic: &str, session: i32) -> serde_json::Value {
    let at = Timestamp::from_millis(Timestamp::now().millis() - 3_600_000);
    event_to_json(&ClinicEvent::from(sample::dose(clinic, "pt-1", session, at)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_requests_answer_exactly_and_write_nothing() {
    let env = TestEnv::new("rejects").await;
    let gw = env.start_gateway(env.gateway_config(), &env.kafka).await;
    let north = Some(token("clinic-north"));
    let ndjson = "application/x-ndjson";

    // Malformed JSON: 400, with the line of the broken event.
    let body = format!("{}\n{{\"type\": \"dose_administered\",\n", dose("clinic-north", 1));
    let (status, _, b) = post(&gw.url, north, ndjson, body).await;
    assert_eq!(status, 400, "{b}");
    assert_eq!(b["error"], "malformed_json");
    assert_eq!((b["errors"][0]["index"].clone(), b["errors"][0]["line"].clone()), (json!(1), json!(2)));

    // Wrong type: 422 naming the field and what was expected.
    let mut wrong = dose("clinic-north", 1);
    wrong["dose_mg"] = json!("35mg");
    let (status, _, b) = post(&gw.url, north, "application/json", wrong.to_string()).await;
    assert_eq!(status, 422, "{b}");
    assert_eq!(b["error"], "validation_failed");
    assert_eq!(b["errors"][0]["field"], "dose_mg");
    assert_eq!(b["errors"][0]["reason"], "invalid type: string \"35mg\", expected f64");

    // A valid event and an invalid one in one batch: 422 for index 1 only, and neither is written.
    let mut negative = dose("clinic-north", 2);
    negative["dose_mg"] = json!(-5.0);
    let body = format!("{}\n{}\n", dose("clinic-north", 1), negative);
    let (status, _, b) = post(&gw.url, north, ndjson, body).await;
    assert_eq!(status, 422, "{b}");
    assert_eq!(b["errors"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        (b["errors"][0]["index"].clone(), b["errors"][0]["field"].clone()),
        (json!(1), json!("dose_mg"))
    );

    // Unknown clinic token and missing token: 401 with a Bearer challenge.
    let (status, headers, b) =
        post(&gw.url, Some("not-a-known-token"), "application/json", dose("clinic-north", 1).to_string())
            .await;
    assert_eq!(status, 401, "{b}");
    assert_eq!(b["error"], "unauthorized");
    assert_eq!(b["message"], "unknown or revoked token");
    assert_eq!(headers.get("www-authenticate").map(|v| v.as_bytes()), Some(&b"Bearer"[..]));
    let (status, _, b) = post(&gw.url, None, "application/json", dose("clinic-north", 1).to_string()).await;
    assert_eq!(status, 401, "{b}");

    // A clinic writing as another: 403 naming the event and clinic_id.
    let body = format!("{}\n{}\n", dose("clinic-north", 1), dose("clinic-south", 1));
    let (status, _, b) = post(&gw.url, north, ndjson, body).await;
    assert_eq!(status, 403, "{b}");
    assert_eq!(b["error"], "forbidden");
    assert_eq!(
        (b["errors"][0]["index"].clone(), b["errors"][0]["field"].clone()),
        (json!(1), json!("clinic_id"))
    );

    // Oversize body (limit 256 KiB in tests): 413.
    let big = format!("{}\n", dose("clinic-north", 1)).repeat(1200);
    assert!(big.len() > 256 * 1024);
    let (status, _, b) = post(&gw.url, north, ndjson, big).await;
    assert_eq!(status, 413, "{b}");
    assert_eq!(b["error"], "payload_too_large");

    // The same without Content-Length (chunked upload): the limit still holds while reading.
    let (status, body) = post_chunked(&gw.url, token("clinic-north"), 300 * 1024).await;
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("payload_too_large"), "{body}");

    // More events than allowed per request (limit 50 in tests): 413.
    let many: String = (1..=51).map(|i| format!("{}\n", dose("clinic-north", i))).collect();
    let (status, _, b) = post(&gw.url, north, ndjson, many).await;
    assert_eq!(status, 413, "{b}");
    assert_eq!(b["error"], "too_many_events");

    // Unsupported content type: 415.
    let (status, _, b) = post(&gw.url, north, "text/csv", "a,b\n").await;
    assert_eq!(status, 415, "{b}");

    // Nothing of any rejected request reached the topic ...
    assert_eq!(env.topic_messages(&env.raw_topic), 0);
    // ... and the check would have seen it: one accepted event is one message.
    let (status, _, b) = post(&gw.url, north, "application/json", dose("clinic-north", 3).to_string()).await;
    assert_eq!(status, 202, "{b}");
    assert_eq!(env.topic_messages(&env.raw_topic), 1);

    gw.stop().await;
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_broker_gives_503_with_retry_after() {
    let env = TestEnv::new("nobroker").await;
    // Nothing listens on port 1: the producer cannot deliver within the deadline.
    let dead = pv_runtime::KafkaConfig { bootstrap_servers: "127.0.0.1:1".into(), ..Default::default() };
    let cfg =
        pv_gateway::GatewayConfig { delivery_timeout_ms: 1500, retry_after_secs: 7, ..env.gateway_config() };
    let gw = env.start_gateway(cfg, &dead).await;
    let started = std::time::Instant::now();
    let (status, headers, b) =
        post(&gw.url, Some(token("clinic-north")), "application/json", dose("clinic-north", 1).to_string())
            .await;
    assert_eq!(status, 503, "{b}");
    assert_eq!(b["error"], "broker_unavailable");
    assert_eq!(headers.get("retry-after").map(|v| v.as_bytes()), Some(&b"7"[..]));
    assert!(started.elapsed() < Duration::from_secs(30), "the answer is bounded by the delivery timeout");
    gw.stop().await;
    env.cleanup().await;
}

/// POSTs `len` bytes of NDJSON-ish filler with `Transfer-Encoding: chunked` over a raw socket
/// (HTTP clients add Content-Length when they can); returns the status and body.
async fn post_chunked(base: &str, token: &str, len: usize) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "POST /v1/events HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.expect("head");
    let chunk = vec![b' '; 16 * 1024];
    let mut sent = 0;
    while sent < len {
        let frame = format!("{:x}\r\n", chunk.len());
        // The server may answer and close before the whole body is sent.
        if s.write_all(frame.as_bytes()).await.is_err()
            || s.write_all(&chunk).await.is_err()
            || s.write_all(b"\r\n").await.is_err()
        {
            break;
        }
        sent += chunk.len();
    }
    let _ = s.write_all(b"0\r\n\r\n").await;
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out).await;
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, text)
}

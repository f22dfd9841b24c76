//! The gateway's OpenAPI description against the running gateway (real broker): it serves the
//! committed document, every route it describes answers with a documented status, every example
//! in it is accepted, and every refusal the gateway can be made to give here (all but the broker's
//! 503 and the 500) has a documented status and the documented error shape: the rate, time and
//! concurrency limits included.

mod common;

use common::{TestEnv, token};
use serde_json::{Value, json};

const COMMITTED: &str = include_str!("../openapi/gateway.json");

async fn send(url: &str, auth: Option<&str>, content_type: &str, body: String) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .post(format!("{url}/v1/events"))
        .header("content-type", content_type)
        .body(body);
    if let Some(t) = auth {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// `body` is an `Error` of the document, `code` is one of its codes, documented under `status`.
fn assert_documented_error(spec: &Value, status: u16, body: &Value, code: &str) {
    let answer = &spec["paths"]["/v1/events"]["post"]["responses"][status.to_string()];
    assert!(answer.is_object(), "{status} is documented");
    assert!(answer["description"].as_str().is_some_and(|d| d.contains(code)), "{code} listed under {status}");
    let error = &spec["components"]["schemas"]["Error"];
    for key in error["required"].as_array().expect("required") {
        assert!(body.get(key.as_str().expect("key")).is_some(), "{status} body has {key}: {body}");
    }
    assert_eq!(body["error"], code, "{body}");
    assert!(error["properties"]["error"]["enum"].as_array().expect("enum").contains(&json!(code)));
    let item_keys = spec["components"]["schemas"]["EventError"]["required"].as_array().expect("required");
    for item in body["errors"].as_array().expect("errors") {
        for key in item_keys {
            assert!(item.get(key.as_str().expect("key")).is_some(), "error item has {key}: {item}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_is_what_its_openapi_document_says() {
    let env = TestEnv::new("gateway_openapi").await;
    let cfg = pv_gateway::GatewayConfig {
        max_events_per_request: 3,
        max_body_bytes: 64 * 1024,
        ..env.gateway_config()
    };
    let gateway = env.start_gateway(cfg, &env.kafka).await;
    let url = gateway.url.clone();
    let spec: Value = serde_json::from_str(COMMITTED).expect("openapi/gateway.json parses");
    assert_eq!(spec["openapi"], "3.1.0");

    let served: Value =
        reqwest::get(format!("{url}/openapi.json")).await.expect("get").json().await.expect("json");
    assert_eq!(served, spec, "GET /openapi.json is the committed document");
    let metrics = reqwest::get(format!("{url}/metrics")).await.expect("get").status().as_u16();
    assert_eq!(metrics, 404, "metrics are not on the clinic-facing listener");
    for (path, item) in spec["paths"].as_object().expect("paths") {
        if item.get("get").is_some() {
            let status = reqwest::get(format!("{url}{path}")).await.expect("get").status().as_u16();
            assert!(
                item["get"]["responses"][status.to_string()].is_object(),
                "GET {path}: {status} documented"
            );
        }
    }

    // Every example is accepted (sent for the test token's clinic).
    let north = token("clinic-north");
    let examples =
        spec["paths"]["/v1/events"]["post"]["requestBody"]["content"]["application/json"]["examples"]
            .as_object()
            .expect("examples");
    assert_eq!(examples.len(), 4, "one example per event kind");
    for (kind, example) in examples {
        let mut event = example["value"].clone();
        event["clinic_id"] = json!("clinic-north");
        let (status, body) = send(&url, Some(north), "application/json", event.to_string()).await;
        assert_eq!(status, 202, "example {kind}: {body}");
        assert_eq!(body["event_ids"][0], event["event_id"]);
        assert!(spec["paths"]["/v1/events"]["post"]["responses"]["202"].is_object());
    }

    // Every refusal reachable here: documented status, documented shape.
    let dose = examples["dose_administered"]["value"].clone();
    let with = |f: &dyn Fn(&mut Value)| {
        let mut e = dose.clone();
        e["clinic_id"] = json!("clinic-north");
        f(&mut e);
        e.to_string()
    };
    let cases: Vec<(Option<&str>, &str, String, u16, &str)> = vec![
        (None, "application/json", with(&|_| {}), 401, "unauthorized"),
        (Some(north), "text/plain", with(&|_| {}), 415, "unsupported_media_type"),
        (Some(north), "application/json", "{".into(), 400, "malformed_json"),
        (Some(north), "application/x-ndjson", "\n".into(), 400, "empty"),
        (
            Some(north),
            "application/x-ndjson",
            [with(&|_| {}), with(&|_| {}), with(&|_| {}), with(&|_| {})].join("\n"),
            413,
            "too_many_events",
        ),
        (Some(north), "application/json", "x".repeat(70 * 1024), 413, "payload_too_large"),
        (
            Some(north),
            "application/json",
            with(&|e| e["clinic_id"] = json!("clinic-south")),
            403,
            "forbidden",
        ),
        (Some(north), "application/json", with(&|e| e["dose_mg"] = json!(-1)), 422, "validation_failed"),
    ];
    for (auth, content_type, body, status, code) in cases {
        let (got, answer) = send(&url, auth, content_type, body).await;
        assert_eq!(got, status, "{code}: {answer}");
        assert_documented_error(&spec, status, &answer, code);
    }
    gateway.stop().await;

    // Over the per-clinic rate: 429 with Retry-After, documented.
    // One token per 20 s: the second request is let in 20 s after the first, less the time between them.
    let cfg =
        pv_gateway::GatewayConfig { rate_per_clinic: 0.05, burst_per_clinic: 1, ..env.gateway_config() };
    let limited = env.start_gateway(cfg, &env.kafka).await;
    let body = with(&|_| {});
    let first = std::time::Instant::now();
    assert_eq!(send(&limited.url, Some(north), "application/json", body.clone()).await.0, 202);
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/events", limited.url))
        .header("content-type", "application/json")
        .bearer_auth(north)
        .body(body)
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status().as_u16(), 429);
    let retry = resp.headers().get("retry-after").and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    let earliest = (20.0 - first.elapsed().as_secs_f64()).ceil() as u64;
    assert!(
        retry.is_some_and(|r| (earliest..=20).contains(&r)),
        "Retry-After {retry:?}: when the next request is let in ({earliest}..=20 s)"
    );
    let answer: Value = resp.json().await.expect("json");
    assert_documented_error(&spec, 429, &answer, "rate_limited");
    let (status, _) = send(&limited.url, Some(token("clinic-south")), "application/json", {
        let mut e = dose.clone();
        e["clinic_id"] = json!("clinic-south");
        e.to_string()
    })
    .await;
    assert_eq!(status, 202, "another clinic has its own rate");
    limited.stop().await;

    // A body that stalls: 408 after request_timeout_ms. While it stalls it holds the only
    // request slot, so a second request is shed with 503 overloaded and Retry-After.
    let cfg = pv_gateway::GatewayConfig {
        request_timeout_ms: 1_500,
        max_concurrent_requests: 1,
        ..env.gateway_config()
    };
    let bounded = env.start_gateway(cfg, &env.kafka).await;
    let addr = bounded.url.trim_start_matches("http://").to_owned();
    let body = with(&|_| {});
    let stalled = tokio::spawn(stalled_request(addr, north.to_owned(), body.clone()));
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/events", bounded.url))
        .header("content-type", "application/json")
        .bearer_auth(north)
        .body(body.clone())
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status().as_u16(), 503);
    assert_eq!(resp.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("1"));
    assert_documented_error(&spec, 503, &resp.json().await.expect("json"), "overloaded");
    let (status, answer) = stalled.await.expect("joined");
    assert_eq!(status, 408, "{answer}");
    assert_documented_error(&spec, 408, &answer, "request_timeout");
    assert_eq!(
        send(&bounded.url, Some(north), "application/json", body).await.0,
        202,
        "the slot is free again"
    );
    bounded.stop().await;
    env.cleanup().await;
}

/// Sends half of a request's body over a raw connection and stops; returns the answer.
async fn stalled_request(addr: String, token: String, body: String) -> (u16, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(&addr).await.expect("connect");
    let head = format!(
        "POST /v1/events HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.expect("head");
    stream.write_all(&body.as_bytes()[..body.len() / 2]).await.expect("half the body");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.expect("answer");
    let text = String::from_utf8_lossy(&answer);
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let json =
        text.split("\r\n\r\n").nth(1).and_then(|b| serde_json::from_str(b).ok()).unwrap_or(Value::Null);
    (status, json)
}

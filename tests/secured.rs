//! Secured connections: the pipeline runs against a broker that lets clients in only over TLS
//! with SASL/SCRAM-SHA-512, and a ClickHouse reached over HTTPS as a user with a password
//! (private servers; `deploy/local/start.sh` generates their CA, certificate and passwords).
//! The `pv` binary reads the passwords from files, never prints them, and refuses wrong ones
//! or an untrusted certificate with a message that names the cause.

mod common;

use std::path::Path;
use std::time::Instant;

use common::{TestEnv, distinct, post, simulated_stream, through_pipeline, token};
use pv_bench::servers::{Kind, OwnServer};
use pv_runtime::config::{KafkaSasl, KafkaTls, SaslMechanism};
use pv_runtime::{ClickHouseConfig, KafkaConfig, Secret};

/// A private broker and ClickHouse with their secured listeners.
async fn secured_servers() -> (OwnServer, OwnServer) {
    tokio::task::spawn_blocking(|| {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
        let start =
            |kind, name| OwnServer::start_secured(kind, name, repo).expect("a secured private server");
        (start(Kind::Kafka, "secured-kafka"), start(Kind::ClickHouse, "secured-ch"))
    })
    .await
    .expect("started")
}

fn kafka_config(server: &OwnServer, password_file: &Path) -> KafkaConfig {
    KafkaConfig {
        bootstrap_servers: server.secure_address().expect("secured"),
        tls: Some(KafkaTls { ca_file: Some(server.tls_file("ca.pem")), ..KafkaTls::default() }),
        sasl: Some(KafkaSasl {
            mechanism: SaslMechanism::ScramSha512,
            username: "pv".into(),
            password: Secret::from_file(password_file).expect("password file"),
        }),
        ..KafkaConfig::default()
    }
}

fn clickhouse_config(server: &OwnServer, password_file: &Path) -> ClickHouseConfig {
    ClickHouseConfig {
        url: server.secure_address().expect("secured"),
        user: "pv".into(),
        password: Secret::from_file(password_file).expect("password file"),
        ca_file: Some(server.tls_file("ca.pem")),
        ..ClickHouseConfig::default()
    }
}

/// A pv config file for the secured servers, with the passwords' files given.
fn config_file(
    dir: &Path,
    name: &str,
    kafka: &OwnServer,
    ch: &OwnServer,
    passwords: [&Path; 2],
    ca: bool,
) -> std::path::PathBuf {
    let ca_line = if ca { format!("ca_file = {:?}\n", ch.tls_file("ca.pem")) } else { String::new() };
    let text = format!(
        "[kafka]\nbootstrap_servers = {:?}\n[kafka.tls]\nca_file = {:?}\n[kafka.sasl]\nmechanism = \"SCRAM-SHA-512\"\nusername = \"pv\"\npassword = {{ file = {:?} }}\n\n[clickhouse]\nurl = {:?}\nuser = \"pv\"\npassword = {{ file = {:?} }}\ndatabase = \"pv_secured\"\n{ca_line}",
        kafka.secure_address().expect("secured"),
        kafka.tls_file("ca.pem"),
        passwords[0],
        ch.secure_address().expect("secured"),
        passwords[1],
    );
    let path = dir.join(name);
    std::fs::write(&path, text).expect("config file");
    path
}

/// Runs `pv --config CONFIG ARGS...`; returns (success, stdout + stderr, seconds taken).
async fn pv(config: &Path, args: &[&str]) -> (bool, String, f64) {
    let started = Instant::now();
    let out = common::run_pv(config, args).await;
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text, started.elapsed().as_secs_f64())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pipeline_runs_over_tls_with_passwords_that_are_never_printed() {
    let (kafka_server, ch_server) = secured_servers().await;
    let kafka_password = kafka_server.tls_file("kafka-pv.password");
    let ch_password = ch_server.tls_file("clickhouse-pv.password");

    // In process: the gateway, the enricher (transactions) and the sink, all over the secured
    // listeners; the test's topics and database are created over them too.
    let env = TestEnv::with_configs(
        "secured",
        kafka_config(&kafka_server, &kafka_password),
        clickhouse_config(&ch_server, &ch_password),
    )
    .await;
    let gateway = env.start_gateway(env.gateway_config(), &env.kafka).await;
    let at = pv_events::Timestamp::from_millis(chrono::Utc::now().timestamp_millis() - 3_600_000);
    let dose = pv_events::sample::dose("clinic-north", "p-secured", 1, at);
    let body = pv_events::event_to_json(&dose.clone().into()).to_string();
    let (status, _, text) = post(&gateway.url, Some(token("clinic-north")), "application/json", body).await;
    assert_eq!(status, 202, "{text}");
    gateway.stop().await;
    let mut events = simulated_stream(1, 4, 20);
    events.push(dose.into());
    through_pipeline(&env, &mut events).await;
    let [doses, ..] = distinct(&events);
    let per_id = env.number("SELECT count() FROM (SELECT event_id, count() AS n FROM {doses} FINAL GROUP BY event_id HAVING n = 1)").await;
    assert_eq!(per_id, doses, "every dose once, the one through the gateway among them");

    // The `pv` binary with the passwords in files: it creates the topics and the database over
    // TLS, and `pv config` shows where each secret comes from, never its value.
    let config =
        config_file(&env.dir, "pv.toml", &kafka_server, &ch_server, [&kafka_password, &ch_password], true);
    let (ok, out, _) = pv(&config, &["topics", "apply"]).await;
    assert!(ok && out.contains("pv.raw.events") && !out.contains("missing"), "{out}");
    let (ok, out, _) = pv(&config, &["migrate"]).await;
    assert!(ok && out.contains("database `pv_secured`: applied migrations"), "{out}");
    let (ok, shown, _) = pv(&config, &["config"]).await;
    assert!(ok, "{shown}");
    for file in [&kafka_password, &ch_password] {
        let secret = std::fs::read_to_string(file).expect("password").trim().to_owned();
        assert!(secret.len() >= 16 && !shown.contains(&secret), "`pv config` printed a secret:\n{shown}");
    }
    assert!(shown.contains("Secret(redacted, from file"), "{shown}");

    // Refusals name their cause, and a refused password fails at once, not at a timeout.
    let wrong = env.dir.join("wrong.password");
    std::fs::write(&wrong, "not-the-password\n").expect("write");
    let config =
        config_file(&env.dir, "wrong-kafka.toml", &kafka_server, &ch_server, [&wrong, &ch_password], true);
    let (ok, out, secs) = pv(&config, &["topics", "check"]).await;
    assert!(!ok && out.contains("SASL authentication error") && out.contains("(sasl_ssl)"), "{out}");
    assert!(secs < 20.0, "a wrong password is reported in {secs:.1} s");
    let mut refusals = vec![out];
    let config =
        config_file(&env.dir, "wrong-ch.toml", &kafka_server, &ch_server, [&kafka_password, &wrong], true);
    let (ok, out, _) = pv(&config, &["migrate"]).await;
    assert!(!ok && out.contains("Wrong password for user pv"), "{out}");
    refusals.push(out);
    let config = config_file(
        &env.dir,
        "no-ca.toml",
        &kafka_server,
        &ch_server,
        [&kafka_password, &ch_password],
        false,
    );
    let (ok, out, _) = pv(&config, &["migrate"]).await;
    assert!(!ok && out.to_lowercase().contains("certificate"), "an unknown CA is refused: {out}");
    refusals.push(out);
    let inline = env.dir.join("inline.toml");
    std::fs::write(&inline, "[clickhouse]\nuser = \"pv\"\npassword = \"written-in-the-file\"\n")
        .expect("write");
    let (ok, out, _) = pv(&inline, &["config"]).await;
    assert!(!ok && out.contains("`password`") && !out.contains("written-in-the-file"), "{out}");
    refusals.push(out);
    // No refusal shows a password, right or wrong.
    let secrets: Vec<String> = [&kafka_password, &ch_password, &wrong]
        .iter()
        .map(|f| std::fs::read_to_string(f).expect("password").trim().to_owned())
        .collect();
    for out in &refusals {
        for secret in &secrets {
            assert!(!out.contains(secret.as_str()), "a refusal shows a password:\n{out}");
        }
    }

    env.cleanup().await;
    drop((kafka_server, ch_server));
}

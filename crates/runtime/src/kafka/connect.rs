//! A connection check that fails fast and says why: a wrong password, an untrusted certificate
//! or a plaintext client on a TLS listener otherwise shows only as a metadata timeout.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use crate::config::KafkaConfig;

/// Why the brokers could not be reached.
#[derive(Debug, thiserror::Error)]
#[error("cannot reach Kafka at {servers} ({protocol}): {reason}")]
pub struct ConnectError {
    /// The bootstrap servers.
    pub servers: String,
    /// The security protocol in use.
    pub protocol: &'static str,
    /// librdkafka's own words (e.g. "SASL authentication error: ...", "SSL handshake failed").
    pub reason: String,
}

/// Keeps librdkafka's last error, which names the cause a metadata timeout hides, and whether
/// it is one that retrying cannot cure.
#[derive(Default)]
struct LastError(Mutex<Option<(String, bool)>>);

impl ClientContext for LastError {
    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(%error, reason, "kafka connection");
        let fatal = matches!(
            error.rdkafka_error_code(),
            Some(
                RDKafkaErrorCode::Authentication
                    | RDKafkaErrorCode::SSL
                    | RDKafkaErrorCode::SaslAuthenticationFailed
            )
        );
        self.keep(reason, fatal);
    }

    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        // Connection failures (facility FAIL) arrive only as log lines.
        if facility == "FAIL" {
            tracing::info!(target: "librdkafka", "{facility} {message}");
            self.keep(message, false);
        } else if (level as i32) <= (RDKafkaLogLevel::Warning as i32) {
            tracing::warn!(target: "librdkafka", "{facility} {message}");
        }
    }
}

impl LastError {
    fn keep(&self, reason: &str, fatal: bool) {
        if let Ok(mut last) = self.0.lock() {
            // A fatal reason is not overwritten by the disconnection that follows it.
            if !matches!(*last, Some((_, true))) {
                *last = Some((reason.to_owned(), fatal));
            }
        }
    }
}

impl ConsumerContext for LastError {}

/// Asks the brokers for their metadata within `timeout`; an error names librdkafka's reason.
/// A refused password or certificate fails at once rather than at the deadline.
pub fn check_connection(kafka: &KafkaConfig, timeout: Duration) -> Result<(), ConnectError> {
    let fail = |reason: String| ConnectError {
        servers: kafka.bootstrap_servers.clone(),
        protocol: kafka.security_protocol(),
        reason,
    };
    let consumer: BaseConsumer<LastError> = super::admin_config(kafka)
        .create_with_context(LastError::default())
        .map_err(|e| fail(e.to_string()))?;
    let deadline = Instant::now() + timeout;
    loop {
        let error = match consumer.fetch_metadata(None, ATTEMPT) {
            Ok(_) => return Ok(()),
            Err(e) => e,
        };
        // librdkafka hands its errors to the context only while the client is polled.
        let _ = consumer.poll(Duration::ZERO);
        let last = consumer.context().0.lock().ok().and_then(|l| l.clone());
        match last {
            Some((reason, true)) => return Err(fail(reason)),
            last if Instant::now() >= deadline => {
                return Err(fail(last.map_or_else(|| error.to_string(), |(reason, _)| reason)));
            }
            _ => {}
        }
    }
}

/// One metadata request's wait within [`check_connection`].
const ATTEMPT: Duration = Duration::from_secs(1);

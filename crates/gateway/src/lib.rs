//! The clinic-facing HTTP gateway.
//!
//! `POST /v1/events` takes one event (JSON) or a batch (NDJSON), authenticates the clinic by
//! bearer token, validates every event, encodes them as Avro single-object messages and produces
//! them to the raw topic with an idempotent `acks=all` producer. It answers 202 only after the
//! broker acknowledged every event of the request; a rejected request puts nothing on Kafka.

pub mod auth;
pub mod config;
pub mod ingest;
pub mod metrics;
pub mod openapi;
pub mod produce;
pub mod rate;
pub mod server;

pub use config::GatewayConfig;
pub use server::{Gateway, serve};

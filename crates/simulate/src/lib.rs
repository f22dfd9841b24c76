//! A deterministic clinic simulator: ketamine and esketamine treatment courses as clinics run
//! them, with the dosing, monitoring and adverse-event events they would send.
//!
//! The same [`SimConfig`] (seed included) always gives the same events, byte for byte.

pub mod generate;
pub mod send;

pub use generate::{SimConfig, event_time, generate};
pub use send::{SendConfig, SendReport, load_tokens, send_through_gateway};

//! A deterministic clinic simulator: ketamine and esketamine treatment courses as clinics run
//! them, with the enrolment, dosing, monitoring and adverse-event events they would send.
//!
//! The same [`SimConfig`] (seed included) always gives the same events, byte for byte.

pub mod generate;
pub mod send;
pub mod truth;

pub use generate::{Harms, SimConfig, Simulation, Surge, clinic_id, event_time, generate, patient_ref};
pub use send::{BatchFuture, Pacing, SendReport, gateway_sender, load_tokens, send_by_clinic};
pub use truth::GroundTruth;

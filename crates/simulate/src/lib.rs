//! A deterministic clinic simulator: ketamine and esketamine treatment courses as clinics run
//! them, with the enrolment, dosing, monitoring and adverse-event events they would send.
//!
//! The same [`SimConfig`] (seed included) always gives the same events, byte for byte.
//! [`Scenario`]s are named presets of what is planted, for measuring detection.

pub mod generate;
pub mod scenario;
pub mod send;
pub mod truth;

pub use generate::{Harms, SimConfig, Simulation, Surge, clinic_id, event_time, generate, patient_ref};
pub use scenario::{Scenario, UnknownScenario};
pub use send::{BatchFuture, Pacing, SendReport, gateway_sender, load_tokens, send_by_clinic};
pub use truth::{AffectedPatient, EffectKind, GroundTruth, PlantedEffect};

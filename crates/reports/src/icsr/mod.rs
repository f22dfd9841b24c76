//! ICH E2B(R3) case exports (placeholder until the writer lands).
pub mod model;
pub use model::*;

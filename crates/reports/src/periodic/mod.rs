//! The periodic safety report (ICH E2C(R2) sections the data supports) for a reporting interval
//! and a data-lock point: built purely from its [`input::Input`], typeset to PDF, its tables
//! written as CSV, and a manifest of what went in and came out.

pub mod build;
mod exposure;
pub mod input;
mod listing;
pub mod markup;
pub mod output;
pub mod report;

pub use build::build;
pub use input::{Input, Spec};
pub use output::{Outputs, render};
pub use report::Report;

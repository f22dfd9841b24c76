//! A clinic's history as CSV files, for `pv import`: the documented columns ([`layout`]), rows
//! read into events through the gateway's validation with row-level rejects ([`read`],
//! [`check`]), ids for rows that bring none ([`ids`]), and events written back out ([`write`]).
//!
//! Nothing here talks to Kafka: the command sends what the [`check::Checker`] accepts.

mod cell;
pub mod check;
pub mod history;
pub mod ids;
pub mod layout;
pub mod read;
pub mod write;

pub use check::{Checker, Origin, ReportParts};
pub use history::{Item, Stop, read_history};
pub use layout::{FILES, FileLayout, Part};
pub use read::{FileError, FileRows, Reject, Row};
pub use write::write_history;

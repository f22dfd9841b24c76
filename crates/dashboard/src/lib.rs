//! The safety officers' workbench (`pv dashboard`): server-rendered pages and a JSON API under
//! `/api/v1` over signals, cases and the signal workflow.
//!
//! - [`users`], [`sessions`], [`scope`]: who may sign in, their sessions, what their role sees.
//! - [`reads`]: the ClickHouse reads, scoped to the viewer.
//! - [`views`]: what each screen shows, shared by [`api`] (JSON, CSV via [`export`]) and
//!   [`pages`] (HTML, charts from `pv-charts`).
//! - [`workflow`]: the signal workflow log (Kafka, then ClickHouse) and its projection.
//! - [`health`]: pipeline health for the overview.
//! - [`app`]: state, router, sign-in, CSRF and security headers.

pub mod api;
pub mod app;
pub mod config;
pub mod error;
pub mod export;
pub mod health;
pub mod pages;
pub mod reads;
pub mod scope;
pub mod sessions;
pub mod users;
pub mod views;
pub mod workflow;

pub use app::{AppState, router, serve};

/// The data behind `m`, also after a panic elsewhere while it was held: every value kept under
/// these locks is replaced or edited in one step, so none is ever left half-written.
pub(crate) fn locked<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
pub use config::DashboardConfig;
pub use health::{Pipeline, Stage};
pub use users::{Role, Users};

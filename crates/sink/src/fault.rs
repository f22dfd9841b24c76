//! Fault injection for the tests (feature `fault-injection`, which only the tests' dev-dependencies
//! enable: the shipped binary is built without it).

use std::sync::OnceLock;

/// Environment variable: abort the process right after the N-th successful flush's inserts,
/// before its offsets are stored (a crash between insert and commit).
pub const FAULT_ABORT_AFTER_INSERTS: &str = "PV_SINK_FAULT_ABORT_AFTER_INSERTS";

/// Aborts the process if [`FAULT_ABORT_AFTER_INSERTS`] says so for the `flushes`-th flush.
pub(crate) fn abort_after_inserts(flushes: u64) {
    static AT: OnceLock<Option<u64>> = OnceLock::new();
    let at = AT.get_or_init(|| std::env::var(FAULT_ABORT_AFTER_INSERTS).ok().and_then(|v| v.parse().ok()));
    if at.is_some_and(|n| flushes >= n) {
        tracing::error!("fault injection: aborting after insert, before commit");
        std::process::abort();
    }
}

/// Inserts into partition `month` (`YYYYMM`) of any table wait this long before they start
/// (inserts of other months complete first: out-of-order completion, on demand).
pub fn hold_inserts(month: u32, time: std::time::Duration) {
    if let Ok(mut held) = held().lock() {
        held.insert(month, time);
    }
}

fn held() -> &'static std::sync::Mutex<std::collections::BTreeMap<u32, std::time::Duration>> {
    static HELD: OnceLock<std::sync::Mutex<std::collections::BTreeMap<u32, std::time::Duration>>> =
        OnceLock::new();
    HELD.get_or_init(Default::default)
}

/// How long an insert into `month` is held ([`hold_inserts`]).
pub(crate) fn hold_for(month: u32) -> Option<std::time::Duration> {
    held().lock().ok().and_then(|h| h.get(&month).copied())
}

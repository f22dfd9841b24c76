//! Fault injection for the tests (feature `fault-injection`, which only the tests' dev-dependencies
//! enable: the shipped binary is built without it).

use std::sync::OnceLock;

/// Environment variable: abort the process once the N-th transaction of a session has begun and
/// half its messages are produced (a crash mid-transaction).
pub const FAULT_ABORT_MID_TRANSACTION: &str = "PV_ENRICH_FAULT_ABORT_MID_TRANSACTION";

/// Aborts the process if [`FAULT_ABORT_MID_TRANSACTION`] says so for a session that committed
/// `committed` transactions and holds `messages` of at most `batch_max`.
pub(crate) fn abort_mid_transaction(committed: u64, messages: usize, batch_max: usize) {
    static AT: OnceLock<Option<u64>> = OnceLock::new();
    let at = AT.get_or_init(|| std::env::var(FAULT_ABORT_MID_TRANSACTION).ok().and_then(|v| v.parse().ok()));
    if at.is_some_and(|n| committed + 1 >= n) && messages * 2 >= batch_max {
        tracing::error!("fault injection: aborting mid-transaction");
        std::process::abort();
    }
}

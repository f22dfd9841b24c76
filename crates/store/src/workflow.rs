//! The workbench's tables: `signal_workflow` (every action a person took on a signal, as
//! produced to the workflow topic: the workflow state is a projection of this log) and
//! `user_visits` (when each workbench user signed in, for "new since your last visit").

use pv_events::AvroRecord;

use crate::table::Table;
use crate::table_row;

table_row! {
    /// One action on one signal (GVP Module IX): a state transition, an assignment, a priority,
    /// a due date or a comment, always with its rationale, its actor and the evidence on screen.
    /// Field for field the Avro record (`schemas/signal_workflow.v1.avsc`) and the row.
    pub struct WorkflowAction {
        /// Random id (UUID v4): a re-delivered action collapses onto its first copy.
        event_id: String,
        /// The signal ([`crate::signals::SignalResult::key`]).
        signal_key: String,
        /// 1 for a signal's first action, then one more per action: an action is accepted only
        /// as the successor of the state its actor saw.
        sequence: i32,
        /// `transition`, `assign`, `prioritise`, `schedule` or `comment`.
        action: String,
        /// Workflow state before the action.
        from_state: String,
        /// Workflow state after it (equal to `from_state` unless a transition).
        to_state: String,
        /// Assignee after the action (user name; empty: nobody).
        assignee: String,
        /// Priority after the action (`high`, `medium`, `low`; empty: not set).
        priority: String,
        /// Due date after the action (`YYYY-MM-DD`).
        due_date: Option<String>,
        /// Why (required, never empty).
        rationale: String,
        /// Who (user name).
        actor: String,
        /// Their role when they acted.
        actor_role: String,
        /// When the action was recorded (ms since the epoch).
        at_ms: i64,
        /// The signals run whose result the actor had on screen (ms since the epoch; 0: none).
        evidence_run_at_ms: i64,
        /// That result's case count.
        evidence_n: i64,
        /// That result's estimate.
        evidence_estimate: f64,
        /// Its lower bound.
        evidence_lower: f64,
        /// Its upper bound.
        evidence_upper: f64,
        /// The cases that result counted (`clinic/report/vN`; markers: `clinic/patient/KEY`).
        evidence_cases: Vec<String>,
    }
}

impl AvroRecord for WorkflowAction {
    const AVRO_NAME: &'static str = "pv.workflow.WorkflowAction";
}

/// `signal_workflow`: the workflow log. Re-delivered copies of an action (same `event_id`)
/// collapse; readers use `FINAL`.
pub const SIGNAL_WORKFLOW: Table<WorkflowAction> =
    Table::new("signal_workflow", "ReplacingMergeTree", "(signal_key, sequence, event_id)")
        .with_datetimes(&["at_ms"]);

table_row! {
    /// A sign-in to the workbench.
    pub struct UserVisit {
        /// User name.
        user: String,
        /// When (ms since the epoch).
        visited_at_ms: i64,
    }
}

/// `user_visits`: one row per sign-in.
pub const USER_VISITS: Table<UserVisit> = Table::new("user_visits", "MergeTree", "(user, visited_at_ms)");

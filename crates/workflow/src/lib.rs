//! Signal management (EU GVP Module IX) as an append-only log of actions.
//!
//! A signal's workflow status is never edited: every action a person takes (a transition, an
//! assignment, a priority, a due date, a comment) is a [`WorkflowAction`] appended to the
//! workflow topic, and the status is the fold of its actions ([`project`]). [`decide`] turns a
//! request into the next action or refuses it: a transition the workflow does not allow, a
//! missing rationale, or a request made against a status that changed since its author saw it
//! (`expected_sequence`), so nobody silently overwrites anybody.
//!
//! A statistic falling below its threshold does not move a signal: only a person does.

use std::collections::BTreeMap;

use serde::Serialize;

pub use pv_store::workflow::WorkflowAction;

/// The states of a signal, in the order of GVP Module IX.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Raised by the signals service; nobody has looked yet.
    Detected,
    /// Being validated: is there evidence enough to justify further analysis?
    Validation,
    /// Not validated (the rationale says why); to be closed.
    NotValidated,
    /// Validated.
    Validated,
    /// Analysis and prioritisation.
    Analysis,
    /// Assessment of the evidence.
    Assessment,
    /// Outcome: refuted.
    Refuted,
    /// Outcome: a new or changed potential risk.
    PotentialRisk,
    /// Outcome: a new or changed identified risk.
    IdentifiedRisk,
    /// Outcome: further analysis needed.
    FurtherAnalysis,
    /// Recommendation and action (label change, communication, risk minimisation).
    Action,
    /// Closed.
    Closed,
}

impl State {
    /// Every state.
    pub const ALL: [State; 12] = [
        State::Detected,
        State::Validation,
        State::NotValidated,
        State::Validated,
        State::Analysis,
        State::Assessment,
        State::Refuted,
        State::PotentialRisk,
        State::IdentifiedRisk,
        State::FurtherAnalysis,
        State::Action,
        State::Closed,
    ];

    /// The name stored and sent (`snake_case`).
    pub fn name(self) -> &'static str {
        match self {
            State::Detected => "detected",
            State::Validation => "validation",
            State::NotValidated => "not_validated",
            State::Validated => "validated",
            State::Analysis => "analysis",
            State::Assessment => "assessment",
            State::Refuted => "refuted",
            State::PotentialRisk => "potential_risk",
            State::IdentifiedRisk => "identified_risk",
            State::FurtherAnalysis => "further_analysis",
            State::Action => "action",
            State::Closed => "closed",
        }
    }

    /// The label people read.
    pub fn label(self) -> &'static str {
        match self {
            State::Detected => "Detected (new)",
            State::Validation => "Validation",
            State::NotValidated => "Not validated",
            State::Validated => "Validated",
            State::Analysis => "Analysis and prioritisation",
            State::Assessment => "Assessment",
            State::Refuted => "Outcome: refuted",
            State::PotentialRisk => "Outcome: potential risk",
            State::IdentifiedRisk => "Outcome: identified risk",
            State::FurtherAnalysis => "Outcome: further analysis needed",
            State::Action => "Recommendation and action",
            State::Closed => "Closed",
        }
    }

    /// The state named `name`.
    pub fn parse(name: &str) -> Option<State> {
        State::ALL.into_iter().find(|s| s.name() == name)
    }

    /// The states a person may move a signal to from this one.
    pub fn next(self) -> &'static [State] {
        use State::*;
        match self {
            Detected => &[Validation],
            Validation => &[Validated, NotValidated],
            NotValidated => &[Closed],
            Validated => &[Analysis],
            Analysis => &[Assessment],
            Assessment => &[Refuted, PotentialRisk, IdentifiedRisk, FurtherAnalysis],
            FurtherAnalysis => &[Analysis, Assessment],
            PotentialRisk | IdentifiedRisk => &[Action],
            Refuted | Action => &[Closed],
            // Re-opened when new evidence arrives.
            Closed => &[Validation],
        }
    }

    /// Whether the signal is still being worked on.
    pub fn is_open(self) -> bool {
        self != State::Closed
    }
}

/// A priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    #[allow(missing_docs)]
    High,
    #[allow(missing_docs)]
    Medium,
    #[allow(missing_docs)]
    Low,
}

impl Priority {
    /// Every priority, highest first.
    pub const ALL: [Priority; 3] = [Priority::High, Priority::Medium, Priority::Low];

    /// The name stored and sent.
    pub fn name(self) -> &'static str {
        match self {
            Priority::High => "high",
            Priority::Medium => "medium",
            Priority::Low => "low",
        }
    }

    /// The priority named `name`.
    pub fn parse(name: &str) -> Option<Priority> {
        Priority::ALL.into_iter().find(|p| p.name() == name)
    }
}

/// What a person asks to do to a signal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Move it to another state.
    Transition(State),
    /// Assign it to a user (empty: nobody).
    Assign(String),
    /// Set its priority.
    Prioritise(Priority),
    /// Set its due date (`YYYY-MM-DD`).
    Schedule(String),
    /// Add a comment (the rationale is the comment).
    Comment,
}

impl Change {
    /// The `action` name stored.
    pub fn action(&self) -> &'static str {
        match self {
            Change::Transition(_) => "transition",
            Change::Assign(_) => "assign",
            Change::Prioritise(_) => "prioritise",
            Change::Schedule(_) => "schedule",
            Change::Comment => "comment",
        }
    }
}

/// A request to act on a signal, as its author made it.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// The signal.
    pub signal_key: String,
    /// The sequence of the status the author saw (0: no action yet).
    pub expected_sequence: i32,
    /// What to do.
    pub change: Change,
    /// Why. Required.
    pub rationale: String,
}

/// Who acts, when, and on what evidence.
#[derive(Debug, Clone, PartialEq)]
pub struct Context {
    /// Id of the new action (UUID v4 text).
    pub event_id: String,
    /// User name.
    pub actor: String,
    /// Their role.
    pub actor_role: String,
    /// Now (ms since the epoch).
    pub at_ms: i64,
    /// The result on screen: (run_at_ms, n, estimate, lower, upper).
    pub evidence: (i64, i64, f64, f64, f64),
    /// The cases it counted (identifiers).
    pub evidence_cases: Vec<String>,
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Refusal {
    /// The status changed since the author loaded it.
    #[error(
        "the signal changed since you loaded it: it is now at action {current} ({state}, by {by}); \
         your request was made on action {expected}. Reload, review the change, and decide again"
    )]
    Stale {
        /// What the author saw.
        expected: i32,
        /// What it is now.
        current: i32,
        /// Its state now.
        state: &'static str,
        /// Who made the latest action.
        by: String,
    },
    /// The workflow does not go from `from` to `to`.
    #[error("{field}: a signal in state `{from}` cannot move to `{to}` (allowed: {allowed})")]
    Transition {
        /// Always `to_state`.
        field: &'static str,
        /// The current state.
        from: &'static str,
        /// The requested state.
        to: String,
        /// The allowed next states.
        allowed: String,
    },
    /// A field is missing or malformed.
    #[error("{field}: {reason}")]
    Field {
        /// The field.
        field: &'static str,
        /// Why.
        reason: String,
    },
}

/// The workflow status of one signal: the fold of its actions.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Status {
    /// The signal.
    pub signal_key: String,
    /// Its state.
    pub state: State,
    /// Assignee (empty: nobody).
    pub assignee: String,
    /// Priority (`None`: not set).
    pub priority: Option<Priority>,
    /// Due date (`YYYY-MM-DD`).
    pub due_date: Option<String>,
    /// The sequence of its latest action (0: none yet).
    pub sequence: i32,
    /// Who made the latest action.
    pub last_actor: String,
    /// When (ms since the epoch; 0: never).
    pub last_at_ms: i64,
    /// The latest rationale.
    pub last_rationale: String,
}

impl Status {
    /// The status of a signal nobody has acted on.
    pub fn detected(signal_key: &str) -> Self {
        Status {
            signal_key: signal_key.into(),
            state: State::Detected,
            assignee: String::new(),
            priority: None,
            due_date: None,
            sequence: 0,
            last_actor: String::new(),
            last_at_ms: 0,
            last_rationale: String::new(),
        }
    }

    /// The status after `a` (the next action of this signal).
    pub fn apply(&mut self, a: &WorkflowAction) {
        self.state = State::parse(&a.to_state).unwrap_or(self.state);
        self.assignee.clone_from(&a.assignee);
        self.priority = Priority::parse(&a.priority);
        self.due_date.clone_from(&a.due_date);
        self.sequence = a.sequence;
        self.last_actor.clone_from(&a.actor);
        self.last_at_ms = a.at_ms;
        self.last_rationale.clone_from(&a.rationale);
    }
}

/// Every signal's status from the log (any order; re-delivered copies, same `event_id`, count
/// once; within a signal, actions apply in sequence order).
pub fn project(actions: &[WorkflowAction]) -> BTreeMap<String, Status> {
    let mut ordered: Vec<&WorkflowAction> = actions.iter().collect();
    ordered.sort_by(|a, b| {
        (&a.signal_key, a.sequence, &a.event_id).cmp(&(&b.signal_key, b.sequence, &b.event_id))
    });
    ordered.dedup_by(|a, b| a.event_id == b.event_id);
    let mut out: BTreeMap<String, Status> = BTreeMap::new();
    for a in ordered {
        out.entry(a.signal_key.clone()).or_insert_with(|| Status::detected(&a.signal_key)).apply(a);
    }
    out
}

/// The action that carries out `req` on a signal whose status is `current`, or why not.
pub fn decide(current: &Status, req: &Request, ctx: &Context) -> Result<WorkflowAction, Refusal> {
    if req.expected_sequence != current.sequence {
        return Err(Refusal::Stale {
            expected: req.expected_sequence,
            current: current.sequence,
            state: current.state.name(),
            by: current.last_actor.clone(),
        });
    }
    let rationale = req.rationale.trim();
    if rationale.is_empty() {
        return Err(Refusal::Field { field: "rationale", reason: "required: say why".into() });
    }
    if rationale.chars().count() > 4000 {
        return Err(Refusal::Field { field: "rationale", reason: "longer than 4000 characters".into() });
    }
    let mut next = current.clone();
    match &req.change {
        Change::Transition(to) => {
            if !current.state.next().contains(to) {
                let allowed: Vec<&str> = current.state.next().iter().map(|s| s.name()).collect();
                return Err(Refusal::Transition {
                    field: "to_state",
                    from: current.state.name(),
                    to: to.name().into(),
                    allowed: allowed.join(", "),
                });
            }
            next.state = *to;
        }
        Change::Assign(user) => next.assignee.clone_from(user),
        Change::Prioritise(p) => next.priority = Some(*p),
        Change::Schedule(date) => {
            if chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").is_err() {
                return Err(Refusal::Field {
                    field: "due_date",
                    reason: format!("`{date}` is not a date (YYYY-MM-DD)"),
                });
            }
            next.due_date = Some(date.clone());
        }
        Change::Comment => {}
    }
    let (run_at_ms, n, estimate, lower, upper) = ctx.evidence;
    Ok(WorkflowAction {
        event_id: ctx.event_id.clone(),
        signal_key: req.signal_key.clone(),
        sequence: current.sequence + 1,
        action: req.change.action().into(),
        from_state: current.state.name().into(),
        to_state: next.state.name().into(),
        assignee: next.assignee,
        priority: next.priority.map_or("", Priority::name).into(),
        due_date: next.due_date,
        rationale: rationale.into(),
        actor: ctx.actor.clone(),
        actor_role: ctx.actor_role.clone(),
        at_ms: ctx.at_ms,
        evidence_run_at_ms: run_at_ms,
        evidence_n: n,
        evidence_estimate: estimate,
        evidence_lower: lower,
        evidence_upper: upper,
        evidence_cases: ctx.evidence_cases.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(id: &str, at_ms: i64) -> Context {
        Context {
            event_id: id.into(),
            actor: "alice".into(),
            actor_role: "safety_officer".into(),
            at_ms,
            evidence: (5, 9, 2.5, 1.1, 4.0),
            evidence_cases: vec!["c1/r1/v2".into()],
        }
    }

    fn request(seq: i32, change: Change) -> Request {
        Request { signal_key: "k".into(), expected_sequence: seq, change, rationale: " because ".into() }
    }

    #[test]
    fn a_signal_walks_the_gvp_path_and_the_log_folds_back_to_its_status() {
        let mut status = Status::detected("k");
        let mut log = Vec::new();
        let steps = [
            Change::Transition(State::Validation),
            Change::Assign("bob".into()),
            Change::Prioritise(Priority::High),
            Change::Schedule("2027-01-15".into()),
            Change::Transition(State::Validated),
            Change::Transition(State::Analysis),
            Change::Transition(State::Assessment),
            Change::Comment,
            Change::Transition(State::PotentialRisk),
            Change::Transition(State::Action),
            Change::Transition(State::Closed),
        ];
        for (i, change) in steps.into_iter().enumerate() {
            let a = decide(&status, &request(status.sequence, change), &ctx(&format!("e{i}"), i as i64))
                .expect("allowed");
            assert_eq!((a.sequence, a.rationale.as_str()), (i as i32 + 1, "because"));
            status.apply(&a);
            log.push(a);
        }
        assert_eq!(status.state, State::Closed);
        assert_eq!((status.assignee.as_str(), status.priority), ("bob", Some(Priority::High)));
        assert_eq!(status.due_date.as_deref(), Some("2027-01-15"));
        assert_eq!(log[7].action, "comment");
        assert_eq!((log[7].from_state.as_str(), log[7].to_state.as_str()), ("assessment", "assessment"));
        assert_eq!((log[0].evidence_n, log[0].evidence_cases.as_slice()), (9, &["c1/r1/v2".to_string()][..]));
        // Shuffled and re-delivered, the log folds to the same status.
        let mut shuffled: Vec<WorkflowAction> = log.iter().rev().cloned().collect();
        shuffled.push(log[3].clone());
        assert_eq!(project(&shuffled)["k"], status);
    }

    #[test]
    fn stale_invalid_and_unexplained_requests_are_refused() {
        let mut status = Status::detected("k");
        let first =
            decide(&status, &request(0, Change::Transition(State::Validation)), &ctx("a", 1)).expect("ok");
        status.apply(&first);
        // Someone else loaded the page before `first` and asks the same: refused, with who and what.
        let stale = decide(&status, &request(0, Change::Transition(State::Validation)), &ctx("b", 2));
        let Err(Refusal::Stale { expected: 0, current: 1, state: "validation", by }) = &stale else {
            panic!("{stale:?}")
        };
        assert_eq!(by, "alice");
        assert!(stale.expect_err("stale").to_string().contains("changed since you loaded it"));
        let skip = decide(&status, &request(1, Change::Transition(State::Closed)), &ctx("c", 3));
        let msg = skip.expect_err("not allowed").to_string();
        assert_eq!(
            msg,
            "to_state: a signal in state `validation` cannot move to `closed` (allowed: validated, not_validated)"
        );
        let mut silent = request(1, Change::Comment);
        silent.rationale = "   ".into();
        assert_eq!(
            decide(&status, &silent, &ctx("d", 4)).expect_err("no rationale").to_string(),
            "rationale: required: say why"
        );
        let bad_date = decide(&status, &request(1, Change::Schedule("15/01/2027".into())), &ctx("e", 5));
        assert!(bad_date.expect_err("date").to_string().starts_with("due_date: "));
    }

    #[test]
    fn every_state_is_reachable_and_closed_can_reopen() {
        let mut seen = vec![State::Detected];
        let mut i = 0;
        while i < seen.len() {
            for s in seen[i].next() {
                if !seen.contains(s) {
                    seen.push(*s);
                }
            }
            i += 1;
        }
        assert_eq!(seen.len(), State::ALL.len());
        assert_eq!(State::Closed.next(), [State::Validation]);
        assert!(State::ALL.iter().all(|s| State::parse(s.name()) == Some(*s)));
    }
}

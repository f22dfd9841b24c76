//! Who is asking, and what that lets them see. Every reader takes a [`Viewer`]; the rules are
//! here, in one place, and enforced by the server on every route, filter and export.

use crate::users::Role;

/// The signed-in user a request is made for.
#[derive(Debug, Clone, PartialEq)]
pub struct Viewer {
    /// User name.
    pub user: String,
    /// Role.
    pub role: Role,
    /// The clinic of a clinic user.
    pub clinic: Option<String>,
    /// Their previous visit (ms since the epoch; 0: first).
    pub previous_visit_ms: i64,
}

impl Viewer {
    /// The clinic every case and count is restricted to (clinic users), or `None` for all.
    pub fn clinic_scope(&self) -> Option<&str> {
        match self.role {
            Role::Clinic => Some(self.clinic.as_deref().unwrap_or("\u{0}no clinic")),
            Role::SafetyOfficer | Role::Regulator => None,
        }
    }

    /// Network-wide signals and their statistics (computed from every clinic's data): not for
    /// clinic users, who see their own clinic's data only.
    pub fn sees_signals(&self) -> bool {
        self.role != Role::Clinic
    }

    /// Case narratives (free text): safety officers, and clinic users for their own cases.
    pub fn sees_narratives(&self) -> bool {
        self.role != Role::Regulator
    }

    /// Workflow actions (transitions, assignment, comments).
    pub fn acts(&self) -> bool {
        self.role == Role::SafetyOfficer
    }

    /// Pipeline health across clinics (lag, dead letters).
    pub fn sees_pipeline(&self) -> bool {
        self.role != Role::Clinic
    }

    /// Whether `clinic`'s data is visible.
    pub fn sees_clinic(&self, clinic: &str) -> bool {
        self.clinic_scope().is_none_or(|c| c == clinic)
    }
}

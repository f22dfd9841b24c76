//! Case versions: follow-ups supersede earlier versions of a report, a nullification withdraws
//! it, and versions may arrive in any order.
//!
//! Every version is kept as an event (so "what did we know on date D" can be answered); the
//! current state of a case is its highest version. This module checks a version against the
//! versions already seen of the same report.

/// What the enricher remembers of one report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReportState {
    /// The clinic's case id.
    pub report_id: String,
    /// (version, hash of the event id) of every version seen.
    pub versions: Vec<(i32, i64)>,
    /// The nullifying version, if any.
    pub nullified_at: Option<i32>,
}

/// Why a version is refused (it goes to the dead-letter topic).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CaseError {
    /// Another event already carried this version of the report.
    #[error("version {version} of report {report_id} was already received as another event")]
    VersionConflict {
        /// The report.
        report_id: String,
        /// The version.
        version: i32,
    },
    /// The report was withdrawn; later versions cannot revive it.
    #[error("report {report_id} was nullified at version {nullified_at}; version {version} comes after it")]
    AfterNullification {
        /// The report.
        report_id: String,
        /// The nullifying version.
        nullified_at: i32,
        /// The refused version.
        version: i32,
    },
}

/// The result of observing a version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observed {
    /// Highest version seen, this one included.
    pub latest_version_seen: i32,
    /// The same event was seen before (a re-sent event): nothing changed.
    pub duplicate: bool,
}

impl ReportState {
    /// A report not seen before.
    pub fn new(report_id: &str) -> Self {
        Self { report_id: report_id.to_owned(), ..Self::default() }
    }

    /// Highest version seen.
    pub fn latest(&self) -> i32 {
        self.versions.iter().map(|v| v.0).max().unwrap_or(0)
    }

    /// Checks and records a version; leaves the state unchanged when refusing it.
    pub fn observe(
        &mut self,
        version: i32,
        event_hash: i64,
        nullification: bool,
    ) -> Result<Observed, CaseError> {
        if let Some(&(_, hash)) = self.versions.iter().find(|v| v.0 == version) {
            if hash == event_hash {
                return Ok(Observed { latest_version_seen: self.latest(), duplicate: true });
            }
            return Err(CaseError::VersionConflict { report_id: self.report_id.clone(), version });
        }
        if let Some(n) = self.nullified_at
            && version > n
        {
            return Err(CaseError::AfterNullification {
                report_id: self.report_id.clone(),
                nullified_at: n,
                version,
            });
        }
        self.versions.push((version, event_hash));
        if nullification {
            self.nullified_at = Some(self.nullified_at.map_or(version, |n| n.min(version)));
        }
        Ok(Observed { latest_version_seen: self.latest(), duplicate: false })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follow_ups_supersede_and_late_versions_know_they_are_superseded() {
        let mut r = ReportState::new("R1");
        assert_eq!(
            r.observe(2, 22, false),
            Ok(Observed { latest_version_seen: 2, duplicate: false }),
            "follow-up first"
        );
        assert_eq!(
            r.observe(1, 11, false),
            Ok(Observed { latest_version_seen: 2, duplicate: false }),
            "initial late"
        );
        assert_eq!(r.observe(3, 33, false).map(|o| o.latest_version_seen), Ok(3));
    }

    #[test]
    fn resent_versions_are_duplicates_and_conflicting_ones_are_refused() {
        let mut r = ReportState::new("R1");
        r.observe(1, 11, false).expect("initial");
        assert_eq!(r.observe(1, 11, false), Ok(Observed { latest_version_seen: 1, duplicate: true }));
        assert_eq!(
            r.observe(1, 99, false),
            Err(CaseError::VersionConflict { report_id: "R1".into(), version: 1 })
        );
        assert_eq!(r.versions.len(), 1, "a refusal changes nothing");
    }

    #[test]
    fn a_nullification_withdraws_the_report_for_good() {
        let mut r = ReportState::new("R1");
        r.observe(1, 11, false).expect("initial");
        r.observe(3, 33, true).expect("nullification");
        assert_eq!(r.nullified_at, Some(3));
        assert_eq!(
            r.observe(2, 22, false).map(|o| o.latest_version_seen),
            Ok(3),
            "an earlier version may still arrive"
        );
        let err = r.observe(4, 44, false).expect_err("after nullification");
        assert_eq!(err.to_string(), "report R1 was nullified at version 3; version 4 comes after it");
    }
}

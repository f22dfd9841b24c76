//! `[reports]`: who the reports come from and where the human-written sections are.

use serde::Deserialize;

use crate::icsr::{MeddraRelease, Sender, SenderContact};

/// Configuration of the regulators' outputs. Every field has a documented default.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReportsConfig {
    /// Title on the periodic report's cover. Default: "Ketamine and esketamine for depression".
    pub title: String,
    /// The organisation responsible for the reports (cover, E2B C.3.2). Default: "pv demo safety database".
    pub organisation: String,
    /// The Markdown file with the sections people write (ICH E2C(R2) 1-4, 7-14, 16-19).
    /// Default: `deploy/local/report-sections.md`.
    pub sections_file: String,
    /// E2B batch and message sender id (N.1.3, N.2.r.2). Default: "PVDEMO".
    pub sender_id: String,
    /// E2B receiver id (N.1.4, N.2.r.3). Default: "ZZFDA" (FDA's test receiver in its examples).
    pub receiver_id: String,
    /// ISO 3166-1 alpha-2 country of the reporters and the sender (C.2.r.3, C.3.4.5). Default: "US".
    pub country: String,
    /// The MedDRA version the enricher's licensed release is (E.i.2.1a), e.g. "27.1"; absent with
    /// the demo dictionary, whose terms have no codes. Default: none.
    pub meddra_version: Option<String>,
    /// The person responsible for sending E2B reports and the sender's address (C.3.3, C.3.4),
    /// which FDA requires on every postmarket report. Default: none (exports then fail that rule).
    pub contact: Option<SenderContact>,
}

impl ReportsConfig {
    /// The E2B sender these settings describe; case ids are `{country}-{sender_id}-{clinic}-{report}`.
    pub fn sender(&self) -> Sender {
        Sender {
            sender_id: self.sender_id.clone(),
            receiver_id: self.receiver_id.clone(),
            organisation: self.organisation.clone(),
            country: self.country.clone(),
            case_id_prefix: format!("{}-{}-", self.country, self.sender_id),
            contact: self.contact.clone(),
        }
    }

    /// The licensed MedDRA release, when one is configured.
    pub fn meddra(&self) -> Option<MeddraRelease> {
        self.meddra_version.clone().map(|version| MeddraRelease { version })
    }
}

impl Default for ReportsConfig {
    fn default() -> Self {
        Self {
            title: "Ketamine and esketamine for depression".into(),
            organisation: "pv demo safety database".into(),
            sections_file: "deploy/local/report-sections.md".into(),
            sender_id: "PVDEMO".into(),
            receiver_id: "ZZFDA".into(),
            country: "US".into(),
            meddra_version: None,
            contact: None,
        }
    }
}

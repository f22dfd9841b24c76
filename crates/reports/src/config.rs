//! `[reports]`: who the reports come from and where the human-written sections are.

use serde::Deserialize;

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
        }
    }
}

//! What an ICSR export is made of: one case version as it was known, with the patient's
//! baseline and the dosing the product stream recorded. Built from ClickHouse rows by
//! [`crate::source::icsr_cases`]; written to E2B(R3) XML by [`super::write`] and read back by [`super::read`].

use pv_events::{
    AgeBand, Causality, ChallengeResult, DrugRole, Outcome, Product, ReporterQualification, Route,
    Seriousness, Sex,
};

/// Who sends the batch (N.1.3, N.2.r.2, C.3) and to whom (N.1.4, N.2.r.3). From configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Sender {
    /// Batch and message sender identifier (N.1.3 / N.2.r.2), e.g. the company's id.
    pub sender_id: String,
    /// Batch and message receiver identifier (N.1.4 / N.2.r.3), e.g. `ZZFDA`.
    pub receiver_id: String,
    /// Sender organisation name (C.3.2).
    pub organisation: String,
    /// ISO 3166-1 alpha-2 country of the primary source and the sender (C.2.r.3, C.3.4.5), e.g. `US`.
    pub country: String,
    /// Prefix of the worldwide unique case id (C.1.8.1): `{country}-{organisation code}-`.
    pub case_id_prefix: String,
    /// The person responsible for sending and the sender's address (C.3.3, C.3.4), which FDA requires
    /// on every postmarket report ("Regionally required for all reports" in its data-element table).
    /// `None` writes none of them: the batch is still well-formed and reads back, but
    /// [`super::rules::check`] reports each missing element (`GEN-REQUIRED`) and FDA would reject it.
    pub contact: Option<SenderContact>,
}

/// The person responsible for sending the reports and the sender's address (C.3.3, C.3.4).
/// From configuration (`[reports.contact]`); every field is written as given (a value longer than
/// its data element allows is an error, never truncated).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SenderContact {
    /// Sender's department (C.3.3.1), e.g. `Drug Safety`.
    pub department: String,
    /// Title of the person responsible for sending (C.3.3.2), e.g. `Dr`.
    pub title: String,
    /// Given name (C.3.3.3).
    pub given_name: String,
    /// Family name (C.3.3.5).
    pub family_name: String,
    /// Street address (C.3.4.1).
    pub street: String,
    /// City (C.3.4.2).
    pub city: String,
    /// State or province (C.3.4.3).
    pub state: String,
    /// Postcode (C.3.4.4).
    pub postcode: String,
    /// Telephone number without the `tel:` scheme (C.3.4.6).
    pub telephone: String,
    /// Fax number without the `fax:` scheme (C.3.4.7).
    pub fax: String,
    /// E-mail address without the `mailto:` scheme (C.3.4.8).
    pub email: String,
}

/// The MedDRA release the reactions were coded with, when a licensed one was loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeddraRelease {
    /// Version as E2B writes it, e.g. `27.1`.
    pub version: String,
}

/// One batch: its number (N.1.2), its creation time (N.1.5, also C.1.2 of each message) and its cases.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// Batch number (N.1.2), unique per sender.
    pub batch_id: String,
    /// Creation instant, milliseconds since the epoch (UTC). Fixed by the caller (the data-lock
    /// point or the latest receipt in the batch) so that an export is reproducible.
    pub created_at_ms: i64,
    /// The case versions, in the order written.
    pub cases: Vec<IcsrCase>,
}

/// One version of one case.
#[derive(Debug, Clone, PartialEq)]
pub struct IcsrCase {
    /// The clinic that reported it.
    pub clinic_id: String,
    /// The clinic's case id, stable across versions; with the clinic, the sender's safety report
    /// id (C.1.1) and the worldwide unique id (C.1.8.1).
    pub report_id: String,
    /// 1 for the initial report, then 2, 3, ...
    pub version: i32,
    /// This version nullifies the case (C.1.11.1 = 1).
    pub nullification: bool,
    /// Why (C.1.11.2).
    pub nullification_reason: Option<String>,
    /// When the clinic first received the case: version 1's `reported_at` (C.1.4), ms.
    pub first_received_ms: i64,
    /// When the clinic received this version's information (C.1.5), ms.
    pub most_recent_ms: i64,
    /// When the gateway accepted this version, ms (not an E2B element; provenance in the narrative
    /// is not needed, keep it for the caller).
    pub accepted_at_ms: i64,
    /// Primary reporter (C.2.r.4).
    pub reporter: ReporterQualification,
    /// The patient as D.1 carries it: the first 32 hex digits of the pseudonymous key
    /// ([`crate::source::patient_id`]), never the clinic's reference.
    pub patient_key: String,
    /// Age band from the enrolment, when known (D.2.3 age group: every band here is adult or elderly).
    pub age_band: Option<AgeBand>,
    /// Sex from the enrolment, when known (D.5).
    pub sex: Option<Sex>,
    /// The reactions (E.i).
    pub reactions: Vec<IcsrReaction>,
    /// The drugs (G.k).
    pub drugs: Vec<IcsrDrug>,
    /// Case narrative (H.1).
    pub narrative: Option<String>,
}

/// One reaction (E.i).
#[derive(Debug, Clone, PartialEq)]
pub struct IcsrReaction {
    /// As reported (E.i.1.1a).
    pub verbatim: String,
    /// Preferred term name from the coding (the demo dictionary's or MedDRA's).
    pub pt: Option<String>,
    /// MedDRA PT code (E.i.2.1b), only with a licensed release.
    pub pt_code: Option<i64>,
    /// Onset date (E.i.4), `YYYY-MM-DD` days since the epoch.
    pub onset_day: Option<i32>,
    /// Seriousness criteria (E.i.3.2a-f).
    pub seriousness: Seriousness,
    /// Outcome (E.i.7).
    pub outcome: Outcome,
}

/// One drug (G.k), with the dosing the product stream recorded for a monitored product.
#[derive(Debug, Clone, PartialEq)]
pub struct IcsrDrug {
    /// Suspect, concomitant or interacting (G.k.1).
    pub role: DrugRole,
    /// Name as reported (G.k.2.2).
    pub name: String,
    /// The monitored product, when it is one.
    pub product: Option<Product>,
    /// Route (G.k.4.r.10.1), when known.
    pub route: Option<Route>,
    /// Reporter's causality (G.k.9.i.2.r: source "reporter", method "WHO-UMC").
    pub causality: Option<Causality>,
    /// Dechallenge: E2B(R3) has no element for its result (G.k.8 is the action taken with the drug,
    /// which we do not know), so the writer states it in the narrative (H.1); see [`super::write`].
    pub dechallenge: Option<ChallengeResult>,
    /// Rechallenge (G.k.9.i.4: did the reaction recur on re-administration).
    pub rechallenge: Option<ChallengeResult>,
    /// The patient's recorded dosing of this product up to the case, when it is a monitored one.
    pub dosing: Option<Dosing>,
}

/// A monitored product's dosing from the dose stream, up to the case's exposure instant.
#[derive(Debug, Clone, PartialEq)]
pub struct Dosing {
    /// The most recent dose (G.k.4.r.1a, unit `mg` in G.k.4.r.1b).
    pub last_dose_mg: f64,
    /// Administrations so far (G.k.4.r.2 number of separate dosages is per interval; here the count).
    pub administrations: i32,
    /// Cumulative dose (G.k.5a, unit `mg` in G.k.5b).
    pub cumulative_mg: f64,
    /// First administration (G.k.4.r.4), ms.
    pub first_dose_ms: i64,
    /// Last administration before the case (G.k.4.r.5), ms.
    pub last_dose_ms: i64,
}

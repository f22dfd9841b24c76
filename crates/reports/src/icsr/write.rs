//! Writes case versions as one ICH E2B(R3) batch: an HL7 v3 `MCCI_IN200100UV01` holding one
//! `PORR_IN049016UV` message per [`IcsrCase`], shaped element for element like FDA's example messages
//! (`FAERS2022Scenario1.xml`, `FAERS2022Scenario6.xml`) with the OIDs and code lists of FDA's
//! data-element table.
//!
//! The output is deterministic: the same input gives the same bytes. Nothing reads a clock or a random
//! source; every identifier is derived from the input (C.1.1/C.1.8.1 from the sender's prefix, the clinic
//! and the clinic's case id; N.2.r.1 from C.1.1 and the version; the reaction and drug UUIDs that tie
//! the drug-reaction assessments together from a SHA-256 of C.1.1, the kind and the position). All XML
//! escaping is quick-xml's; free text keeps its content exactly, except that line ends are written as LF
//! (XML parsers turn CR and CRLF into LF anyway, so this is what any receiver reads). A value longer than
//! its data element allows is an error ([`IcsrError::TooLong`]), never truncated.
//!
//! Choices made where our data and E2B differ (each justified in FDA's files; see the comments at the
//! code):
//! - C.1.3 is 1 (spontaneous report): the clinics report what they see in post-marketing treatment.
//! - C.1.7 (local criteria for an expedited report) is true when any reaction is serious, false
//!   otherwise: the export cannot judge expectedness against the label, so it errs towards expedited;
//!   FDA.C.1.7.1 follows (1 = 15-day when C.1.7 is true, 2 = non-expedited otherwise).
//! - Dechallenge: E2B(R3) has no element for a dechallenge result (G.k.8 is the action taken with the
//!   drug, which the clinics do not report), so each drug's dechallenge is stated at the end of the
//!   narrative (H.1) as `Dechallenge: positive (drug X)`.
//! - H.1 is required: a case without a narrative gets one generated from its reactions.
//! - The causality of a drug (one per drug in our data) is written for each reaction of the case, with
//!   source "PRIMARY SOURCE REPORTER" and method "WHO-UMC"; the rechallenge result likewise
//!   (G.k.9.i.4 for each reaction).
//! - Drugs are written suspect and interacting first (stable otherwise): FDA warns (W0005) when the
//!   first product is not suspect or interacting.

use chrono::{DateTime, Datelike, Utc};
use pv_events::{AgeBand, Causality, ChallengeResult, DrugRole, Outcome, ReporterQualification, Route, Sex};
use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};
use sha2::{Digest, Sha256};

use super::model::{Batch, Dosing, IcsrCase, IcsrDrug, IcsrReaction, MeddraRelease, Sender, SenderContact};
use super::{FDA_POSTMARKET, HL7_NS, IcsrError, SCHEMA_LOCATION, XSI_NS, max_len, oid};

/// E.i.1.1b: the reactions are reported in English (ISO 639-2 alpha-3, as the data-element table asks
/// and FDA's Scenario 6 writes `language="por"`).
pub(crate) const REACTION_LANGUAGE: &str = "eng";
/// G.k.9.i.2.r.1: who assessed causality, in the wording of FDA's Scenario 1.
pub(crate) const ASSESSMENT_SOURCE: &str = "PRIMARY SOURCE REPORTER";
/// G.k.9.i.2.r.2: how.
pub(crate) const ASSESSMENT_METHOD: &str = "WHO-UMC";
/// G.k.4.r.1b and G.k.5b: doses are in milligrams (UCUM `mg`).
pub(crate) const DOSE_UNIT: &str = "mg";

type Xml = Writer<Vec<u8>>;
type Res = Result<(), IcsrError>;
type Attrs = &'static [(&'static str, &'static str)];

const NO_ATTRS: Attrs = &[];
const TYPE_SUBJ: Attrs = &[("typeCode", "SUBJ")];
const TYPE_SBJ: Attrs = &[("typeCode", "SBJ")];
const TYPE_AUT: Attrs = &[("typeCode", "AUT")];
const TYPE_COMP: Attrs = &[("typeCode", "COMP")];
const TYPE_PERT: Attrs = &[("typeCode", "PERT")];
const TYPE_SPRT: Attrs = &[("typeCode", "SPRT")];
const TYPE_SUMM: Attrs = &[("typeCode", "SUMM")];
const TYPE_REFR: Attrs = &[("typeCode", "REFR")];
const TYPE_CSM: Attrs = &[("typeCode", "CSM")];
const ASSIGNED: Attrs = &[("classCode", "ASSIGNED")];
const QUAL: Attrs = &[("classCode", "QUAL")];
const LOCE: Attrs = &[("classCode", "LOCE")];
const INST: Attrs = &[("classCode", "INST")];
const INVSBJ: Attrs = &[("classCode", "INVSBJ")];
const CACT_EVN: Attrs = &[("classCode", "CACT"), ("moodCode", "EVN")];
const INVSTG_EVN: Attrs = &[("classCode", "INVSTG"), ("moodCode", "EVN")];
const OBS_EVN: Attrs = &[("classCode", "OBS"), ("moodCode", "EVN")];
const SBADM_EVN: Attrs = &[("classCode", "SBADM"), ("moodCode", "EVN")];
const CATEGORY_EVN: Attrs = &[("classCode", "CATEGORY"), ("moodCode", "EVN")];
const DEV_INSTANCE: Attrs = &[("classCode", "DEV"), ("determinerCode", "INSTANCE")];
const PSN_INSTANCE: Attrs = &[("classCode", "PSN"), ("determinerCode", "INSTANCE")];
const ORG_INSTANCE: Attrs = &[("classCode", "ORG"), ("determinerCode", "INSTANCE")];
const COUNTRY_INSTANCE: Attrs = &[("classCode", "COUNTRY"), ("determinerCode", "INSTANCE")];
const MMAT_KIND: Attrs = &[("classCode", "MMAT"), ("determinerCode", "KIND")];
/// A seriousness criterion that is met, and one that is not: FDA's examples write `nullFlavor="NI"`
/// for a criterion not met (the data-element table allows only "true, nullFlavor: NI").
const BL_TRUE: Attrs = &[("xsi:type", "BL"), ("value", "true")];
const BL_NI: Attrs = &[("xsi:type", "BL"), ("nullFlavor", "NI")];

/// E.i.3.2a-f: observation code and display name of each criterion, in E2B order.
const SERIOUSNESS: [(&str, &str); 6] = [
    ("34", "resultsInDeath"),
    ("21", "isLifeThreatening"),
    ("33", "requiresInpatientHospitalization"),
    ("35", "resultsInPersistentOrSignificantDisability"),
    ("12", "congenitalAnomalyBirthDefect"),
    ("26", "otherMedicallyImportantCondition"),
];

/// Writes `batch` as one E2B(R3) batch (UTF-8, with an XML declaration, indented by 2 spaces), one
/// message per case version in the batch's order. `meddra` is the licensed MedDRA release the reactions'
/// PT codes come from; without it no reaction carries E.i.2.1a/b (see the module documentation of
/// [`super`]: such a batch is not submittable).
pub fn batch_xml(
    batch: &Batch,
    sender: &Sender,
    meddra: Option<&MeddraRelease>,
) -> Result<String, IcsrError> {
    let version = meddra.map(|m| meddra_version(&m.version)).transpose()?;
    let created = timestamp("N.1.5", batch.created_at_ms)?;
    let routing = Routing::new(sender)?;
    let mut w = Writer::new_with_indent(Vec::new(), b' ', 2);
    w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
    let root = [
        ("xmlns", HL7_NS),
        ("xmlns:xsi", XSI_NS),
        ("ITSVersion", "XML_1.0"),
        ("xsi:schemaLocation", SCHEMA_LOCATION),
    ];
    open(&mut w, "MCCI_IN200100UV01", &root)?;
    write_batch_header(&mut w, batch, &created)?;
    for case in &batch.cases {
        let message = Message::new(case, &routing, version, &created)?;
        write_message(&mut w, &message)?;
    }
    device(&mut w, "receiver", "RCV", routing.receiver_id, oid::BATCH_RECEIVER)?; // N.1.4
    device(&mut w, "sender", "SND", routing.sender_id, oid::BATCH_SENDER)?; // N.1.3
    close(&mut w, "MCCI_IN200100UV01")?;
    let mut bytes = w.into_inner();
    bytes.push(b'\n');
    Ok(String::from_utf8(bytes)?)
}

// ---------------------------------------------------------------------------------------------------
// What is written, derived and checked before any byte is.

/// The sender's side of every message, checked once.
#[derive(Debug)]
struct Routing<'a> {
    sender_id: &'a str,
    receiver_id: &'a str,
    message_receiver: &'a str,
    case_id_prefix: &'a str,
    country: &'a str,
    organisation: String,
    contact: Option<Contact>,
}

impl<'a> Routing<'a> {
    fn new(sender: &'a Sender) -> Result<Self, IcsrError> {
        attr_value("N.2.r.2", &sender.sender_id)?;
        Ok(Self {
            sender_id: attr_value("N.1.3", &sender.sender_id)?,
            receiver_id: attr_value("N.1.4", &sender.receiver_id)?,
            message_receiver: attr_value("N.2.r.3", message_receiver(&sender.receiver_id))?,
            case_id_prefix: &sender.case_id_prefix,
            country: attr_value("C.2.r.3", &sender.country)?,
            organisation: free_text("C.3.2", &sender.organisation)?,
            contact: sender.contact.as_ref().map(Contact::new).transpose()?,
        })
    }
}

/// C.3.3 and C.3.4, checked, the telecoms with their URL scheme.
#[derive(Debug)]
struct Contact {
    department: String,
    title: String,
    given_name: String,
    family_name: String,
    street: String,
    city: String,
    state: String,
    postcode: String,
    telephone: String,
    fax: String,
    email: String,
}

impl Contact {
    fn new(c: &SenderContact) -> Result<Self, IcsrError> {
        Ok(Self {
            department: free_text("C.3.3.1", &c.department)?,
            title: free_text("C.3.3.2", &c.title)?,
            given_name: free_text("C.3.3.3", &c.given_name)?,
            family_name: free_text("C.3.3.5", &c.family_name)?,
            street: free_text("C.3.4.1", &c.street)?,
            city: free_text("C.3.4.2", &c.city)?,
            state: free_text("C.3.4.3", &c.state)?,
            postcode: free_text("C.3.4.4", &c.postcode)?,
            telephone: format!("tel:{}", attr_value("C.3.4.6", &c.telephone)?),
            fax: format!("fax:{}", attr_value("C.3.4.7", &c.fax)?),
            email: format!("mailto:{}", attr_value("C.3.4.8", &c.email)?),
        })
    }
}

/// One message, every value checked and formatted.
#[derive(Debug)]
struct Message<'a> {
    case: &'a IcsrCase,
    routing: &'a Routing<'a>,
    created: &'a str,
    report_id: String,
    message_id: String,
    first_received: String,
    most_recent: String,
    narrative: String,
    patient: Option<String>,
    nullification_reason: Option<String>,
    reactions: Vec<ReactionOut>,
    drugs: Vec<DrugOut<'a>>,
}

#[derive(Debug)]
struct ReactionOut {
    id: String,
    verbatim: String,
    onset: Option<String>,
    /// MedDRA code and version, when both are known.
    term: Option<(String, String)>,
}

#[derive(Debug)]
struct DrugOut<'a> {
    drug: &'a IcsrDrug,
    id: String,
    name: String,
    dosing: Option<DosingOut>,
}

#[derive(Debug)]
struct DosingOut {
    first: String,
    last: String,
    dose: String,
    cumulative: String,
}

impl<'a> Message<'a> {
    fn new(
        case: &'a IcsrCase,
        routing: &'a Routing<'a>,
        meddra_version: Option<&str>,
        created: &'a str,
    ) -> Result<Self, IcsrError> {
        if case.version < 1 {
            return Err(invalid("N.2.r.1", format!("version {} is not 1, 2, 3, ...", case.version)));
        }
        let report_id = attr_value("C.1.1", &safety_report_id(case, routing.case_id_prefix))?.to_owned();
        attr_value("C.1.8.1", &report_id)?;
        let message = attr_value("N.2.r.1", &message_id(&report_id, case.version))?.to_owned();
        Ok(Self {
            case,
            routing,
            created,
            first_received: timestamp("C.1.4", case.first_received_ms)?,
            most_recent: timestamp("C.1.5", case.most_recent_ms)?,
            narrative: free_text("H.1", &narrative(case))?,
            patient: patient_initials(case)?,
            nullification_reason: nullification_reason(case)?,
            reactions: reactions_out(case, meddra_version, &report_id)?,
            drugs: drugs_out(case, &report_id)?,
            report_id,
            message_id: message,
        })
    }
}

/// D.1: the pseudonymous patient key, `None` (written as nullFlavor MSK) when there is none.
fn patient_initials(case: &IcsrCase) -> Result<Option<String>, IcsrError> {
    if case.patient_key.is_empty() { Ok(None) } else { free_text("D.1", &case.patient_key).map(Some) }
}

/// C.1.11.2 of a nullification. An initial report cannot be nullified (FDA R0101), and C.1.11.2 is
/// required when C.1.11.1 is present: both are errors rather than messages FDA rejects.
fn nullification_reason(case: &IcsrCase) -> Result<Option<String>, IcsrError> {
    if !case.nullification {
        return Ok(None);
    }
    if case.version == 1 {
        return Err(invalid(
            "C.1.11.1",
            "an initial report (version 1) cannot be a nullification (FDA R0101)".into(),
        ));
    }
    match case.nullification_reason.as_deref() {
        Some(reason) if !reason.trim().is_empty() => free_text("C.1.11.2", reason).map(Some),
        _ => Err(invalid(
            "C.1.11.2",
            "a nullification needs its reason (required when C.1.11.1 is present)".into(),
        )),
    }
}

fn reactions_out(
    case: &IcsrCase,
    meddra_version: Option<&str>,
    report_id: &str,
) -> Result<Vec<ReactionOut>, IcsrError> {
    let mut out = Vec::with_capacity(case.reactions.len());
    for (i, r) in case.reactions.iter().enumerate() {
        let term = match (meddra_version, r.pt_code) {
            (Some(version), Some(code)) => Some((meddra_code(code)?, version.to_owned())),
            _ => None,
        };
        let index = i.to_string();
        out.push(ReactionOut {
            id: derived_uuid(&[report_id, "reaction", index.as_str()]),
            verbatim: free_text("E.i.1.1a", &r.verbatim)?,
            onset: r.onset_day.map(|d| date("E.i.4", d)).transpose()?,
            term,
        });
    }
    Ok(out)
}

fn drugs_out<'a>(case: &'a IcsrCase, report_id: &str) -> Result<Vec<DrugOut<'a>>, IcsrError> {
    let mut out = Vec::with_capacity(case.drugs.len());
    for (k, drug) in drugs_in_order(case).into_iter().enumerate() {
        let index = k.to_string();
        out.push(DrugOut {
            drug,
            id: derived_uuid(&[report_id, "drug", index.as_str()]),
            name: free_text("G.k.2.2", &drug.name)?,
            dosing: drug.dosing.as_ref().map(dosing_out).transpose()?,
        });
    }
    Ok(out)
}

fn dosing_out(d: &Dosing) -> Result<DosingOut, IcsrError> {
    Ok(DosingOut {
        first: timestamp("G.k.4.r.4", d.first_dose_ms)?,
        last: timestamp("G.k.4.r.5", d.last_dose_ms)?,
        dose: quantity("G.k.4.r.1a", d.last_dose_mg)?,
        cumulative: quantity("G.k.5a", d.cumulative_mg)?,
    })
}

// ---------------------------------------------------------------------------------------------------
// Derivations shared with the reader's expectations (`ReadCase::expected`).

/// C.1.1 and C.1.8.1: `{case_id_prefix}{clinic_id}-{report_id}`, e.g. `US-PVDEMO-clinic-01-R-0042`: the
/// data-element table's "country code-company or regulator name-report number", the same for every
/// version of the case (FDA: "Use the same ... C.1.1 for all previously submitted reports").
pub(crate) fn safety_report_id(case: &IcsrCase, case_id_prefix: &str) -> String {
    format!("{case_id_prefix}{}-{}", case.clinic_id, case.report_id)
}

/// N.2.r.1: `{C.1.1}-v{version}`, so that the version can be read back (E2B has no version element).
pub(crate) fn message_id(report_id: &str, version: i32) -> String {
    format!("{report_id}-v{version}")
}

/// N.2.r.3 for a batch receiver N.1.4: FDA's postmarket batches (`ZZFDA`) go to `CDER` (data-element
/// table, N.2.r.3: "If Batch Receiver Identifier (N.1.4) = "ZZFDA", then ... N.2.r.3 must be 'CDER'";
/// Scenario 1 writes exactly that); any other receiver is addressed as itself.
pub(crate) fn message_receiver(batch_receiver: &str) -> &str {
    if batch_receiver == FDA_POSTMARKET { "CDER" } else { batch_receiver }
}

/// C.1.7: true when any reaction is serious. Whether a serious reaction is also unexpected (FDA's
/// 15-day criterion) depends on the label, which the export does not know: it errs towards expedited.
pub(crate) fn expedited(case: &IcsrCase) -> bool {
    case.reactions.iter().any(|r| r.seriousness.is_serious())
}

/// FDA.C.1.7.1 for a C.1.7: 1 (15-Day) when expedited, 2 (Non-Expedited AE) otherwise, as FDA's rules
/// R0014/R0015 require with FDA.C.1.12 (combination product) false.
pub(crate) fn local_criteria(expedited: bool) -> (&'static str, &'static str) {
    if expedited { ("1", "15-Day") } else { ("2", "Non-Expedited AE") }
}

/// The drugs in message order: suspect and interacting first, otherwise as given.
pub(crate) fn drugs_in_order(case: &IcsrCase) -> Vec<&IcsrDrug> {
    let mut drugs: Vec<&IcsrDrug> = case.drugs.iter().collect();
    drugs.sort_by_key(|d| d.role == DrugRole::Concomitant);
    drugs
}

/// H.1: the reported narrative, or one generated from the reactions when there is none, then each
/// drug's dechallenge result (E2B(R3) has no element for it), e.g. `Dechallenge: positive (drug X)`.
pub(crate) fn narrative(case: &IcsrCase) -> String {
    let base = match case.narrative.as_deref() {
        Some(text) if !text.trim().is_empty() => normalise_line_ends(text),
        _ => generated_narrative(case),
    };
    let dechallenges: Vec<String> = drugs_in_order(case)
        .into_iter()
        .filter_map(|d| {
            d.dechallenge.map(|c| {
                format!("Dechallenge: {} (drug {})", challenge_word(c), normalise_line_ends(&d.name))
            })
        })
        .collect();
    if dechallenges.is_empty() { base } else { format!("{base}\n\n{}", dechallenges.join("\n")) }
}

fn generated_narrative(case: &IcsrCase) -> String {
    let reactions: Vec<String> = case.reactions.iter().map(|r| normalise_line_ends(&r.verbatim)).collect();
    let listed = if reactions.is_empty() { "none".to_owned() } else { reactions.join("; ") };
    format!(
        "No narrative was reported; generated by the sender from the structured data. \
         Reactions as reported: {listed}."
    )
}

/// Free text as every XML parser reads it: CR and CRLF become LF.
pub(crate) fn normalise_line_ends(text: &str) -> String {
    text.replace("\r\n", "\n").replace('\r', "\n")
}

/// A coded value or the null flavour standing for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Coding {
    /// Code and display name.
    Code(&'static str, &'static str),
    /// Null flavour.
    Null(&'static str),
}

/// D.5 (ISO 5218 as E2B restricts it: 1 male, 2 female). "Other" has no code: it is written as
/// nullFlavor MSK (known to the sender, not transmitted); unknown or not recorded as UNK.
pub(crate) fn sex_code(sex: Option<Sex>) -> Coding {
    match sex {
        Some(Sex::Male) => Coding::Code("1", "Male"),
        Some(Sex::Female) => Coding::Code("2", "Female"),
        Some(Sex::Other) => Coding::Null("MSK"),
        Some(Sex::Unknown) | None => Coding::Null("UNK"),
    }
}

/// D.2.3: 5 adult (18-64), 6 elderly (65 and over); every enrolment band is one of the two.
pub(crate) fn age_group(band: AgeBand) -> (&'static str, &'static str) {
    match band {
        AgeBand::Age65To74 | AgeBand::Age75Plus => ("6", "Elderly"),
        AgeBand::Age18To24
        | AgeBand::Age25To34
        | AgeBand::Age35To44
        | AgeBand::Age45To54
        | AgeBand::Age55To64 => ("5", "Adult"),
    }
}

/// C.2.r.4 (OID 2.16.840.1.113883.3.989.2.1.1.6).
pub(crate) fn qualification(q: ReporterQualification) -> (&'static str, &'static str) {
    match q {
        ReporterQualification::Physician => ("1", "Physician"),
        ReporterQualification::Pharmacist => ("2", "Pharmacist"),
        ReporterQualification::OtherHealthProfessional => ("3", "Other health professional"),
        ReporterQualification::Lawyer => ("4", "Lawyer"),
        ReporterQualification::Consumer => ("5", "Consumer or other non health professional"),
    }
}

/// E.i.7 (OID 2.16.840.1.113883.3.989.2.1.1.11).
pub(crate) fn outcome(o: Outcome) -> (&'static str, &'static str) {
    match o {
        Outcome::Recovered => ("1", "recovered/resolved"),
        Outcome::Recovering => ("2", "recovering/resolving"),
        Outcome::NotRecovered => ("3", "not recovered/not resolved/ongoing"),
        Outcome::RecoveredWithSequelae => ("4", "recovered/resolved with sequelae"),
        Outcome::Fatal => ("5", "fatal"),
        Outcome::Unknown => ("0", "unknown"),
    }
}

/// G.k.1 (OID 2.16.840.1.113883.3.989.2.1.1.13).
pub(crate) fn role(r: DrugRole) -> (&'static str, &'static str) {
    match r {
        DrugRole::Suspect => ("1", "Suspect"),
        DrugRole::Concomitant => ("2", "Concomitant"),
        DrugRole::Interacting => ("3", "Interacting"),
    }
}

/// G.k.9.i.2.r.3: the WHO-UMC category as text.
pub(crate) fn causality_text(c: Causality) -> &'static str {
    match c {
        Causality::Certain => "Certain",
        Causality::Probable => "Probable/Likely",
        Causality::Possible => "Possible",
        Causality::Unlikely => "Unlikely",
        Causality::Conditional => "Conditional/Unclassified",
        Causality::Unassessable => "Unassessable/Unclassifiable",
    }
}

/// G.k.9.i.4 (OID 2.16.840.1.113883.3.989.2.1.1.16) from a rechallenge result: 1 yes-yes, 2 yes-no,
/// 3 yes-unknown, 4 no rechallenge (display names as in FDA's Scenario 6).
pub(crate) fn recurrence(c: ChallengeResult) -> (&'static str, &'static str) {
    match c {
        ChallengeResult::Positive => ("1", "rechallenge was done, reaction recurred"),
        ChallengeResult::Negative => ("2", "rechallenge was done, reaction did not recur"),
        ChallengeResult::Unknown => ("3", "rechallenge was done, outcome unknown"),
        ChallengeResult::NotApplicable => ("4", "no rechallenge was done, recurrence is not applicable"),
    }
}

fn challenge_word(c: ChallengeResult) -> &'static str {
    match c {
        ChallengeResult::Positive => "positive",
        ChallengeResult::Negative => "negative",
        ChallengeResult::NotApplicable => "not applicable",
        ChallengeResult::Unknown => "unknown",
    }
}

/// G.k.4.r.10: a route as FDA's SPL route of administration term (NCI Thesaurus code, OID
/// 2.16.840.1.113883.3.26.1.1: the data-element table's G.k.4.r.10.2b allows "EDQM or FDA SPL" and
/// names that OID; FDA's Scenario 6 writes the SPL code C38288 for oral) and as free text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RouteTerm {
    /// G.k.4.r.10.2b, e.g. `C38276`.
    pub(crate) code: &'static str,
    /// The SPL term, e.g. `INTRAVENOUS`.
    pub(crate) display: &'static str,
    /// G.k.4.r.10.1, e.g. `Intravenous`.
    pub(crate) text: &'static str,
}

/// The SPL term of each route.
pub(crate) fn route_term(route: Route) -> RouteTerm {
    let (code, display, text) = match route {
        Route::Iv => ("C38276", "INTRAVENOUS", "Intravenous"),
        Route::Im => ("C28161", "INTRAMUSCULAR", "Intramuscular"),
        Route::Intranasal => ("C38284", "NASAL", "Intranasal"),
        Route::Oral => ("C38288", "ORAL", "Oral"),
        Route::Sublingual => ("C38300", "SUBLINGUAL", "Sublingual"),
        Route::Sc => ("C38299", "SUBCUTANEOUS", "Subcutaneous"),
    };
    RouteTerm { code, display, text }
}

// ---------------------------------------------------------------------------------------------------
// Values: formatting and checks.

/// A timestamp in UTC, `CCYYMMDDhhmmss+0000` (as FDA's examples, with the zone always stated).
pub(crate) fn timestamp(element: &'static str, ms: i64) -> Result<String, IcsrError> {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .filter(|t| (1..=9999).contains(&t.year()))
        .map(|t| t.format("%Y%m%d%H%M%S+0000").to_string())
        .ok_or_else(|| {
            invalid(element, format!("{ms} ms since the epoch is not an instant in years 1 to 9999"))
        })
}

/// A date, `CCYYMMDD`, from days since the epoch.
pub(crate) fn date(element: &'static str, days: i32) -> Result<String, IcsrError> {
    DateTime::<Utc>::from_timestamp(i64::from(days) * 86_400, 0)
        .filter(|t| (1..=9999).contains(&t.year()))
        .map(|t| t.format("%Y%m%d").to_string())
        .ok_or_else(|| invalid(element, format!("day {days} since the epoch is not in years 1 to 9999")))
}

/// A quantity in mg as the shortest decimal that reads back as the same number (never in exponent
/// form), within the element's length.
pub(crate) fn quantity(element: &'static str, value: f64) -> Result<String, IcsrError> {
    if !value.is_finite() || value < 0.0 {
        return Err(invalid(element, format!("{value} is not a dose in mg")));
    }
    let text = if value == 0.0 { "0".to_owned() } else { value.to_string() };
    within_max(element, &text)?;
    Ok(text)
}

/// E.i.2.1b: a MedDRA code has 8 digits.
pub(crate) fn meddra_code(code: i64) -> Result<String, IcsrError> {
    if (10_000_000..=99_999_999).contains(&code) {
        Ok(code.to_string())
    } else {
        Err(invalid("E.i.2.1b", format!("{code} is not an 8-digit MedDRA code")))
    }
}

/// E.i.2.1a: `N.N`, e.g. `27.1`, at most 4 characters.
fn meddra_version(version: &str) -> Result<&str, IcsrError> {
    within_max("E.i.2.1a", version)?;
    if is_meddra_version(version) {
        Ok(version)
    } else {
        Err(invalid("E.i.2.1a", format!("{version:?} is not a MedDRA version N.N")))
    }
}

/// `N.N` with one or two digits before the point and one after.
pub(crate) fn is_meddra_version(version: &str) -> bool {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    version
        .split_once('.')
        .is_some_and(|(major, minor)| major.len() <= 2 && digits(major) && minor.len() == 1 && digits(minor))
}

/// Element text: line ends as LF, characters XML 1.0 can carry, within the element's length.
fn free_text(element: &'static str, value: &str) -> Result<String, IcsrError> {
    let text = normalise_line_ends(value);
    xml_chars(element, &text, false)?;
    within_max(element, &text)?;
    Ok(text)
}

/// An attribute value (identifiers, codes): no tab or line break either, since attribute-value
/// normalisation would turn them into spaces.
fn attr_value<'a>(element: &'static str, value: &'a str) -> Result<&'a str, IcsrError> {
    xml_chars(element, value, true)?;
    within_max(element, value)?;
    Ok(value)
}

fn xml_chars(element: &'static str, value: &str, attribute: bool) -> Res {
    let allowed = |c: char| match c {
        '\t' | '\n' | '\r' => !attribute,
        '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}' => true,
        _ => false,
    };
    match value.chars().find(|&c| !allowed(c)) {
        Some(c) => Err(invalid(element, format!("character U+{:04X} cannot be written here", u32::from(c)))),
        None => Ok(()),
    }
}

fn within_max(element: &'static str, value: &str) -> Res {
    if let Some(max) = max_len(element) {
        let len = value.chars().count();
        if len > max {
            return Err(IcsrError::TooLong { element, max, len });
        }
    }
    Ok(())
}

fn invalid(element: &'static str, reason: String) -> IcsrError {
    IcsrError::Invalid { element, reason }
}

/// A UUID (RFC 9562 version 8) from a SHA-256 of `parts`: stable for the same input.
fn derived_uuid(parts: &[&str]) -> String {
    let mut hash = Sha256::new();
    for part in parts {
        hash.update(part.as_bytes());
        hash.update([0u8]);
    }
    let digest = hash.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    bytes[6] = (bytes[6] & 0x0f) | 0x80;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex = hex::encode(bytes);
    format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..])
}

// ---------------------------------------------------------------------------------------------------
// XML primitives (quick-xml does every escape).

fn start(name: &str, attrs: &[(&str, &str)]) -> BytesStart<'static> {
    let mut element = BytesStart::new(name.to_owned());
    for &(key, value) in attrs {
        element.push_attribute((key, value));
    }
    element
}

fn open(w: &mut Xml, name: &str, attrs: &[(&str, &str)]) -> Res {
    w.write_event(Event::Start(start(name, attrs)))?;
    Ok(())
}

fn close(w: &mut Xml, name: &str) -> Res {
    w.write_event(Event::End(BytesEnd::new(name)))?;
    Ok(())
}

fn empty(w: &mut Xml, name: &str, attrs: &[(&str, &str)]) -> Res {
    w.write_event(Event::Empty(start(name, attrs)))?;
    Ok(())
}

fn text(w: &mut Xml, name: &str, attrs: &[(&str, &str)], content: &str) -> Res {
    open(w, name, attrs)?;
    w.write_event(Event::Text(BytesText::new(content)))?;
    close(w, name)
}

fn nest(w: &mut Xml, name: &str, attrs: &[(&str, &str)], body: impl FnOnce(&mut Xml) -> Res) -> Res {
    open(w, name, attrs)?;
    body(w)?;
    close(w, name)
}

/// Opens each element of `path` in turn, writes `body` in the innermost and closes them all.
fn nest_path(w: &mut Xml, path: &[(&str, Attrs)], body: impl FnOnce(&mut Xml) -> Res) -> Res {
    for &(name, attrs) in path {
        open(w, name, attrs)?;
    }
    body(w)?;
    for &(name, _) in path.iter().rev() {
        close(w, name)?;
    }
    Ok(())
}

/// `wrapper/device/id` of the batch and message routing (N.1.3, N.1.4, N.2.r.2, N.2.r.3).
fn device(w: &mut Xml, wrapper: &str, type_code: &str, id: &str, root: &str) -> Res {
    nest(w, wrapper, &[("typeCode", type_code)], |w| {
        nest(w, "device", DEV_INSTANCE, |w| empty(w, "id", &[("extension", id), ("root", root)]))
    })
}

/// `wrapper/inner` holding a `code` and a `value`, the shape of most E2B observations.
fn observation(w: &mut Xml, path: &[(&str, Attrs)], code: &[(&str, &str)], value: &[(&str, &str)]) -> Res {
    nest_path(w, path, |w| {
        empty(w, "code", code)?;
        empty(w, "value", value)
    })
}

fn country(w: &mut Xml, code: &str) -> Res {
    nest_path(w, &[("asLocatedEntity", LOCE), ("location", COUNTRY_INSTANCE)], |w| {
        empty(w, "code", &[("code", code), ("codeSystem", oid::COUNTRY)])
    })
}

// ---------------------------------------------------------------------------------------------------
// The batch and message wrappers (N.1, N.2.r).

/// N.1.2, N.1.5 and N.1.1, in FDA's order.
fn write_batch_header(w: &mut Xml, batch: &Batch, created: &str) -> Res {
    empty(w, "id", &[("extension", attr_value("N.1.2", &batch.batch_id)?), ("root", oid::BATCH_NUMBER)])?;
    empty(w, "creationTime", &[("value", created)])?;
    empty(w, "responseModeCode", &[("code", "D")])?;
    empty(w, "interactionId", &[("extension", "MCCI_IN200100UV01"), ("root", oid::INTERACTION)])?;
    empty(w, "name", &[("code", "1"), ("displayName", "ichicsr"), ("codeSystem", oid::BATCH_TYPE)])
}

fn write_message(w: &mut Xml, m: &Message<'_>) -> Res {
    nest(w, "PORR_IN049016UV", NO_ATTRS, |w| {
        empty(w, "id", &[("extension", m.message_id.as_str()), ("root", oid::REPORT_ID)])?; // N.2.r.1
        empty(w, "creationTime", &[("value", m.created)])?; // N.2.r.4, the same as C.1.2
        empty(w, "interactionId", &[("extension", "PORR_IN049016UV"), ("root", oid::INTERACTION)])?;
        empty(w, "processingCode", &[("code", "P")])?;
        empty(w, "processingModeCode", &[("code", "I")])?;
        empty(w, "acceptAckCode", &[("code", "AL")])?;
        device(w, "receiver", "RCV", m.routing.message_receiver, oid::MESSAGE_RECEIVER)?; // N.2.r.3
        device(w, "sender", "SND", m.routing.sender_id, oid::MESSAGE_SENDER)?; // N.2.r.2
        nest(w, "controlActProcess", CACT_EVN, |w| {
            empty(w, "code", &[("code", "PORR_TE049016UV"), ("codeSystem", oid::TRIGGER_EVENT)])?;
            empty(w, "effectiveTime", &[("value", m.created)])?; // C.1.2
            nest_path(w, &[("subject", TYPE_SUBJ), ("investigationEvent", INVSTG_EVN)], |w| write_case(w, m))
        })
    })
}

// ---------------------------------------------------------------------------------------------------
// C: identification of the case, primary source, sender.

fn write_case(w: &mut Xml, m: &Message<'_>) -> Res {
    empty(w, "id", &[("extension", m.report_id.as_str()), ("root", oid::REPORT_ID)])?; // C.1.1
    empty(w, "id", &[("extension", m.report_id.as_str()), ("root", oid::WORLDWIDE_ID)])?; // C.1.8.1
    empty(w, "code", &[("code", "PAT_ADV_EVNT"), ("codeSystem", oid::ACT_CODE)])?;
    text(w, "text", NO_ATTRS, &m.narrative)?; // H.1
    empty(w, "statusCode", &[("code", "active")])?;
    // C.1.4
    nest(w, "effectiveTime", NO_ATTRS, |w| empty(w, "low", &[("value", m.first_received.as_str())]))?;
    empty(w, "availabilityTime", &[("value", m.most_recent.as_str())])?; // C.1.5
    nest_path(w, &[("component", TYPE_COMP), ("adverseEventAssessment", INVSTG_EVN)], |w| {
        write_assessment(w, m)
    })?;
    write_case_flags(w, m)?;
    write_first_sender(w)?;
    write_primary_source(w, m)?;
    write_sender(w, m.routing)?;
    write_characteristics(w, m)
}

/// C.1.6.1 (no additional documents), C.1.7, FDA.C.1.7.1 and FDA.C.1.12, as in FDA's Scenario 1.
fn write_case_flags(w: &mut Xml, m: &Message<'_>) -> Res {
    let path: &[(&str, Attrs)] = &[("component", TYPE_COMP), ("observationEvent", OBS_EVN)];
    let expedited = expedited(m.case);
    let documents =
        [("code", "1"), ("codeSystem", oid::OBSERVATION), ("displayName", "additionalDocumentsAvailable")];
    observation(w, path, &documents, &[("xsi:type", "BL"), ("value", "false")])?;
    let criteria =
        [("code", "23"), ("codeSystem", oid::OBSERVATION), ("displayName", "localCriteriaForExpedited")];
    observation(
        w,
        path,
        &criteria,
        &[("xsi:type", "BL"), ("value", if expedited { "true" } else { "false" })],
    )?;
    let (code, name) = local_criteria(expedited);
    let report_type =
        [("code", "C54588"), ("codeSystem", oid::NCI), ("displayName", "localCriteriaReportType")];
    let value =
        [("xsi:type", "CE"), ("code", code), ("codeSystem", oid::FDA_LOCAL_CRITERIA), ("displayName", name)];
    observation(w, path, &report_type, &value)?;
    // FDA.C.1.12: the export carries no device information, so it never reports on a combination
    // product as one (FDA.G.k.12 would then be required).
    let combination = [
        ("code", "C156384"),
        ("codeSystem", oid::NCI),
        ("displayName", "Combination Product Report Indicator"),
    ];
    observation(w, path, &combination, &[("xsi:type", "BL"), ("value", "false")])
}

/// C.1.8.2: 2 (other): the sender is a marketing-authorisation holder, not a regulator.
fn write_first_sender(w: &mut Xml) -> Res {
    nest_path(w, &[("outboundRelationship", TYPE_SPRT), ("relatedInvestigation", INVSTG_EVN)], |w| {
        empty(
            w,
            "code",
            &[("code", "1"), ("codeSystem", oid::REPORT_RELATION), ("displayName", "initialReport")],
        )?;
        let author: &[(&str, Attrs)] = &[
            ("subjectOf2", TYPE_SUBJ),
            ("controlActEvent", CACT_EVN),
            ("author", TYPE_AUT),
            ("assignedEntity", ASSIGNED),
        ];
        nest_path(w, author, |w| {
            empty(w, "code", &[("code", "2"), ("displayName", "other"), ("codeSystem", oid::FIRST_SENDER)])
        })
    })
}

/// C.2.r: the one primary source (C.2.r.5 = 1) with its qualification (C.2.r.4) and country (C.2.r.3).
/// FDA requires the reporter's e-mail (FDA.C.2.r.2.8); the clinics do not send it, so it is written as
/// nullFlavor NASK in the form the data-element table prescribes (`value="mailto"`).
fn write_primary_source(w: &mut Xml, m: &Message<'_>) -> Res {
    nest(w, "outboundRelationship", TYPE_SPRT, |w| {
        empty(w, "priorityNumber", &[("value", "1")])?;
        nest(w, "relatedInvestigation", INVSTG_EVN, |w| {
            empty(
                w,
                "code",
                &[("code", "2"), ("codeSystem", oid::REPORT_RELATION), ("displayName", "sourceReport")],
            )?;
            let author: &[(&str, Attrs)] = &[
                ("subjectOf2", TYPE_SUBJ),
                ("controlActEvent", CACT_EVN),
                ("author", TYPE_AUT),
                ("assignedEntity", ASSIGNED),
            ];
            nest_path(w, author, |w| {
                empty(w, "telecom", &[("nullFlavor", "NASK"), ("value", "mailto")])?;
                nest(w, "assignedPerson", PSN_INSTANCE, |w| {
                    let (code, name) = qualification(m.case.reporter);
                    nest(w, "asQualifiedEntity", QUAL, |w| {
                        empty(
                            w,
                            "code",
                            &[("code", code), ("displayName", name), ("codeSystem", oid::QUALIFICATION)],
                        )
                    })?;
                    country(w, m.routing.country)
                })
            })
        })
    })
}

/// C.3: sender type 1 (pharmaceutical company: the safety database of a marketing-authorisation
/// holder; code list of C.3.1 in the data-element table, and FDA's Scenario 1 writes 1 for a
/// manufacturer), the organisation (C.3.2), and the contact FDA requires (C.3.3, C.3.4) when configured.
fn write_sender(w: &mut Xml, r: &Routing<'_>) -> Res {
    let author: &[(&str, Attrs)] = &[
        ("subjectOf1", TYPE_SUBJ),
        ("controlActEvent", CACT_EVN),
        ("author", TYPE_AUT),
        ("assignedEntity", ASSIGNED),
    ];
    nest_path(w, author, |w| {
        empty(w, "code", &[("code", "1"), ("codeSystem", oid::SENDER_TYPE)])?;
        if let Some(c) = &r.contact {
            nest(w, "addr", NO_ATTRS, |w| {
                text(w, "streetAddressLine", NO_ATTRS, &c.street)?;
                text(w, "city", NO_ATTRS, &c.city)?;
                text(w, "state", NO_ATTRS, &c.state)?;
                text(w, "postalCode", NO_ATTRS, &c.postcode)
            })?;
            empty(w, "telecom", &[("value", c.telephone.as_str())])?;
            empty(w, "telecom", &[("value", c.fax.as_str())])?;
            empty(w, "telecom", &[("value", c.email.as_str())])?;
        }
        nest(w, "assignedPerson", PSN_INSTANCE, |w| {
            if let Some(c) = &r.contact {
                nest(w, "name", NO_ATTRS, |w| {
                    text(w, "prefix", NO_ATTRS, &c.title)?;
                    text(w, "given", NO_ATTRS, &c.given_name)?;
                    text(w, "family", NO_ATTRS, &c.family_name)
                })?;
            }
            country(w, r.country) // C.3.4.5
        })?;
        nest(w, "representedOrganization", ORG_INSTANCE, |w| {
            if let Some(c) = &r.contact {
                text(w, "name", NO_ATTRS, &c.department)?;
            }
            nest_path(w, &[("assignedEntity", ASSIGNED), ("representedOrganization", ORG_INSTANCE)], |w| {
                text(w, "name", NO_ATTRS, &r.organisation)
            })
        })
    })
}

/// C.1.3, C.1.9.1 and, for a nullification, C.1.11.1 and C.1.11.2.
fn write_characteristics(w: &mut Xml, m: &Message<'_>) -> Res {
    let path: &[(&str, Attrs)] = &[("subjectOf2", TYPE_SUBJ), ("investigationCharacteristic", OBS_EVN)];
    let characteristic = |code: &'static str, name: &'static str| {
        [("code", code), ("codeSystem", oid::CHARACTERISTIC), ("displayName", name)]
    };
    // C.1.3 = 1: the clinics report reactions seen in post-marketing treatment, unsolicited.
    let spontaneous = [
        ("xsi:type", "CE"),
        ("code", "1"),
        ("displayName", "Spontaneous report"),
        ("codeSystem", oid::REPORT_TYPE),
    ];
    observation(w, path, &characteristic("1", "ICH ReportType"), &spontaneous)?;
    // C.1.9.1: "false" is not allowed (data-element table); no other identifiers is nullFlavor NI.
    observation(w, path, &characteristic("2", "otherCaseIds"), BL_NI)?;
    if let Some(reason) = &m.nullification_reason {
        let nullified = [
            ("xsi:type", "CE"),
            ("code", "1"),
            ("codeSystem", oid::NULLIFICATION),
            ("displayName", "Nullification"),
        ];
        observation(w, path, &characteristic("3", "nullificationAmendmentCode"), &nullified)?;
        nest_path(w, path, |w| {
            empty(w, "code", &characteristic("4", "nullificationAmendmentReason"))?;
            nest(w, "value", &[("xsi:type", "CE")], |w| text(w, "originalText", NO_ATTRS, reason))
        })?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------------
// D, E, G: the patient, the reactions, the drugs, and the assessments tying them together.

fn write_assessment(w: &mut Xml, m: &Message<'_>) -> Res {
    nest_path(w, &[("subject1", TYPE_SBJ), ("primaryRole", INVSBJ)], |w| {
        write_patient(w, m)?;
        for (reaction, out) in m.case.reactions.iter().zip(&m.reactions) {
            write_reaction(w, reaction, out)?;
        }
        write_drugs(w, m)
    })?;
    write_roles(w, m)?;
    write_causality(w, m)
}

/// D.1, D.5, D.2.3, and FDA's race (FDA.D.11.r) and ethnicity (FDA.D.12), which the clinics do not
/// record: nullFlavor UNK, one of the null flavours FDA allows for both.
fn write_patient(w: &mut Xml, m: &Message<'_>) -> Res {
    nest(w, "player1", PSN_INSTANCE, |w| {
        match &m.patient {
            Some(key) => text(w, "name", NO_ATTRS, key)?,
            None => empty(w, "name", &[("nullFlavor", "MSK")])?,
        }
        match sex_code(m.case.sex) {
            Coding::Code(code, name) => empty(
                w,
                "administrativeGenderCode",
                &[("code", code), ("displayName", name), ("codeSystem", oid::SEX)],
            ),
            Coding::Null(flavour) => empty(w, "administrativeGenderCode", &[("nullFlavor", flavour)]),
        }
    })?;
    let path: &[(&str, Attrs)] = &[("subjectOf2", TYPE_SBJ), ("observation", OBS_EVN)];
    if let Some(band) = m.case.age_band {
        let (code, name) = age_group(band);
        let group = [("code", "4"), ("displayName", "Age Group"), ("codeSystem", oid::OBSERVATION)];
        let value =
            [("xsi:type", "CE"), ("code", code), ("displayName", name), ("codeSystem", oid::AGE_GROUP)];
        observation(w, path, &group, &value)?;
    }
    let unknown = [("xsi:type", "CE"), ("nullFlavor", "UNK")];
    observation(w, path, &[("code", "C17049"), ("displayName", "Race"), ("codeSystem", oid::NCI)], &unknown)?;
    observation(
        w,
        path,
        &[("code", "C16564"), ("displayName", "Ethnic Group"), ("codeSystem", oid::NCI)],
        &unknown,
    )
}

/// E.i: the reaction as reported (E.i.1.1a/b), its MedDRA term when known (E.i.2.1a/b), onset (E.i.4),
/// the six seriousness criteria (E.i.3.2a-f, `true` or nullFlavor NI as FDA's examples write them),
/// FDA's required intervention (FDA.E.i.3.2h, not recorded: NI) and the outcome (E.i.7).
fn write_reaction(w: &mut Xml, reaction: &IcsrReaction, r: &ReactionOut) -> Res {
    nest_path(w, &[("subjectOf2", TYPE_SBJ), ("observation", OBS_EVN)], |w| {
        empty(w, "id", &[("root", r.id.as_str())])?;
        empty(w, "code", &[("code", "29"), ("codeSystem", oid::OBSERVATION), ("displayName", "reaction")])?;
        if let Some(onset) = &r.onset {
            nest(w, "effectiveTime", &[("xsi:type", "IVL_TS")], |w| {
                empty(w, "low", &[("value", onset.as_str())])
            })?;
        }
        let mut term = vec![("xsi:type", "CE")];
        if let Some((code, _)) = &r.term {
            term.push(("code", code.as_str()));
        }
        term.push(("codeSystem", oid::MEDDRA));
        if let Some((_, version)) = &r.term {
            term.push(("codeSystemVersion", version.as_str()));
        }
        nest(w, "value", &term, |w| {
            text(w, "originalText", &[("language", REACTION_LANGUAGE)], &r.verbatim)
        })?;
        let pert: &[(&str, Attrs)] = &[("outboundRelationship2", TYPE_PERT), ("observation", OBS_EVN)];
        let s = &reaction.seriousness;
        let met = [
            s.death,
            s.life_threatening,
            s.hospitalisation,
            s.disability,
            s.congenital_anomaly,
            s.other_medically_important,
        ];
        for (&(code, name), met) in SERIOUSNESS.iter().zip(met) {
            let criterion = [("code", code), ("codeSystem", oid::OBSERVATION), ("displayName", name)];
            observation(w, pert, &criterion, if met { BL_TRUE } else { BL_NI })?;
        }
        let intervention =
            [("code", "7"), ("codeSystem", oid::FDA_OBSERVATION), ("displayName", "requiredIntervention")];
        observation(w, pert, &intervention, BL_NI)?;
        let (code, name) = outcome(reaction.outcome);
        let value = [("xsi:type", "CE"), ("code", code), ("displayName", name), ("codeSystem", oid::OUTCOME)];
        observation(
            w,
            pert,
            &[("code", "27"), ("codeSystem", oid::OBSERVATION), ("displayName", "outcome")],
            &value,
        )
    })
}

/// G.k: the drug information organizer, one substance administration per drug.
fn write_drugs(w: &mut Xml, m: &Message<'_>) -> Res {
    if m.drugs.is_empty() {
        return Ok(());
    }
    nest_path(w, &[("subjectOf2", TYPE_SBJ), ("organizer", CATEGORY_EVN)], |w| {
        empty(
            w,
            "code",
            &[("code", "4"), ("codeSystem", oid::ORGANIZER), ("displayName", "drugInformation")],
        )?;
        for drug in &m.drugs {
            let path: &[(&str, Attrs)] = &[("component", TYPE_COMP), ("substanceAdministration", SBADM_EVN)];
            nest_path(w, path, |w| write_drug(w, m, drug))?;
        }
        Ok(())
    })
}

/// G.k.2.2, the dosage (G.k.4.r), the cumulative dose (G.k.5) and the recurrence on re-administration
/// for each reaction (G.k.9.i.4).
fn write_drug(w: &mut Xml, m: &Message<'_>, d: &DrugOut<'_>) -> Res {
    empty(w, "id", &[("root", d.id.as_str())])?;
    let product: &[(&str, Attrs)] =
        &[("consumable", TYPE_CSM), ("instanceOfKind", INST), ("kindOfProduct", MMAT_KIND)];
    nest_path(w, product, |w| text(w, "name", NO_ATTRS, &d.name))?;
    write_dosage(w, d)?;
    if let Some(dosing) = &d.dosing {
        let code =
            [("code", "14"), ("codeSystem", oid::OBSERVATION), ("displayName", "cumulativeDoseToReaction")];
        let value = [("xsi:type", "PQ"), ("value", dosing.cumulative.as_str()), ("unit", DOSE_UNIT)];
        observation(w, &[("outboundRelationship2", TYPE_SUMM), ("observation", OBS_EVN)], &code, &value)?;
    }
    if let Some(rechallenge) = d.drug.rechallenge {
        let (code, name) = recurrence(rechallenge);
        for reaction in &m.reactions {
            nest_path(w, &[("outboundRelationship2", TYPE_PERT), ("observation", OBS_EVN)], |w| {
                // "recurranceOfReaction" (sic) is FDA's Scenario 6 display name.
                let observed = [
                    ("code", "31"),
                    ("codeSystem", oid::OBSERVATION),
                    ("displayName", "recurranceOfReaction"),
                ];
                empty(w, "code", &observed)?;
                let value = [
                    ("xsi:type", "CE"),
                    ("code", code),
                    ("displayName", name),
                    ("codeSystem", oid::RECURRENCE),
                ];
                empty(w, "value", &value)?;
                nest_path(w, &[("outboundRelationship1", TYPE_REFR), ("actReference", OBS_EVN)], |w| {
                    empty(w, "id", &[("root", reaction.id.as_str())])
                })
            })?;
        }
    }
    Ok(())
}

/// G.k.4.r: one dosage from the first (G.k.4.r.4) to the last administration (G.k.4.r.5), the last dose
/// (G.k.4.r.1a/b) and the route (G.k.4.r.10.1, G.k.4.r.10.2b). The interval is a plain IVL_TS: FDA's
/// Scenario 6 wraps it in an SXPR_TS because it also has a frequency, and an SXPR_TS needs two parts.
fn write_dosage(w: &mut Xml, d: &DrugOut<'_>) -> Res {
    let route = d.drug.route.map(route_term);
    if d.dosing.is_none() && route.is_none() {
        return Ok(());
    }
    nest_path(w, &[("outboundRelationship2", TYPE_COMP), ("substanceAdministration", SBADM_EVN)], |w| {
        if let Some(dosing) = &d.dosing {
            nest(w, "effectiveTime", &[("xsi:type", "IVL_TS")], |w| {
                empty(w, "low", &[("value", dosing.first.as_str())])?;
                empty(w, "high", &[("value", dosing.last.as_str())])
            })?;
        }
        if let Some(route) = route {
            let code = [("code", route.code), ("displayName", route.display), ("codeSystem", oid::NCI)];
            nest(w, "routeCode", &code, |w| text(w, "originalText", NO_ATTRS, route.text))?;
        }
        if let Some(dosing) = &d.dosing {
            empty(w, "doseQuantity", &[("value", dosing.dose.as_str()), ("unit", DOSE_UNIT)])?;
        }
        Ok(())
    })
}

/// A reference to a drug by its UUID.
fn product_reference(w: &mut Xml, id: &str) -> Res {
    nest_path(w, &[("subject2", TYPE_SUBJ), ("productUseReference", SBADM_EVN)], |w| {
        empty(w, "id", &[("root", id)])
    })
}

/// G.k.1 of each drug.
fn write_roles(w: &mut Xml, m: &Message<'_>) -> Res {
    for d in &m.drugs {
        let (code, name) = role(d.drug.role);
        nest_path(w, &[("component", TYPE_COMP), ("causalityAssessment", OBS_EVN)], |w| {
            let observed = [
                ("code", "20"),
                ("codeSystem", oid::OBSERVATION),
                ("displayName", "interventionCharacterization"),
            ];
            empty(w, "code", &observed)?;
            let value =
                [("xsi:type", "CE"), ("code", code), ("displayName", name), ("codeSystem", oid::DRUG_ROLE)];
            empty(w, "value", &value)?;
            product_reference(w, &d.id)
        })?;
    }
    Ok(())
}

/// G.k.9.i.2.r: the reporter's causality of each drug that has one, for each reaction.
fn write_causality(w: &mut Xml, m: &Message<'_>) -> Res {
    for d in &m.drugs {
        let Some(causality) = d.drug.causality else { continue };
        for reaction in &m.reactions {
            nest_path(w, &[("component", TYPE_COMP), ("causalityAssessment", OBS_EVN)], |w| {
                empty(
                    w,
                    "code",
                    &[("code", "39"), ("codeSystem", oid::OBSERVATION), ("displayName", "causality")],
                )?;
                text(w, "value", &[("xsi:type", "ST")], causality_text(causality))?;
                nest(w, "methodCode", NO_ATTRS, |w| text(w, "originalText", NO_ATTRS, ASSESSMENT_METHOD))?;
                nest_path(
                    w,
                    &[("author", TYPE_AUT), ("assignedEntity", ASSIGNED), ("code", NO_ATTRS)],
                    |w| text(w, "originalText", NO_ATTRS, ASSESSMENT_SOURCE),
                )?;
                nest_path(w, &[("subject1", TYPE_SUBJ), ("adverseEffectReference", OBS_EVN)], |w| {
                    empty(w, "id", &[("root", reaction.id.as_str())])
                })?;
                product_reference(w, &d.id)
            })?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::super::sample;
    use super::*;

    /// The dosage block of a drug, where the paths FDA shows only in Scenario 6 live.
    const DOSAGE: &str = "/MCCI_IN200100UV01/PORR_IN049016UV/controlActProcess/subject/\
        investigationEvent/component/adverseEventAssessment/subject1/primaryRole/subjectOf2/organizer/\
        component/substanceAdministration/outboundRelationship2/substanceAdministration";

    /// Paths neither Scenario 1 nor the data-element table's XPath column spells out (the table says
    /// "See X-Path Reference" for G.k.4.r.1a/b, G.k.4.r.4 and G.k.4.r.5) but FDA's Scenario 6 does
    /// (`FAERS2022Scenario6.xml`, not copied into the repository: 2 MB): `doseQuantity` at line 25202,
    /// and the IVL_TS `low`/`high` of G.k.4.r.4/5, which Scenario 6 writes as the IVL_TS part of an
    /// SXPR_TS (lines 25184-25188) because it also has a frequency.
    const FROM_SCENARIO_6: [&str; 3] = ["doseQuantity", "effectiveTime/low", "effectiveTime/high"];

    /// A batch using every element the writer can write: the sample (version 2) and a nullification
    /// (version 3), with MedDRA codes.
    fn full_xml() -> String {
        let mut nullified = sample::case();
        nullified.version = 3;
        nullified.nullification = true;
        nullified.nullification_reason = Some("Duplicate report".into());
        let batch = sample::batch(vec![sample::case(), nullified]);
        batch_xml(&batch, &sample::sender(), Some(&sample::meddra())).expect("writes")
    }

    /// Every element's path from the root, without positions.
    fn element_paths(xml: &str) -> BTreeSet<String> {
        let doc = roxmltree::Document::parse(xml).expect("parses");
        doc.descendants()
            .filter(|n| n.is_element())
            .map(|n| {
                let mut names: Vec<&str> =
                    n.ancestors().filter(|a| a.is_element()).map(|a| a.tag_name().name()).collect();
                names.reverse();
                format!("/{}", names.join("/"))
            })
            .collect()
    }

    /// `expr` split at `separator` outside predicates and quotes; `None` when they do not balance.
    fn split_top(expr: &str, separator: char) -> Option<Vec<&str>> {
        let (mut depth, mut quoted, mut start, mut parts) = (0i32, false, 0, Vec::new());
        for (i, c) in expr.char_indices() {
            match c {
                '\'' => quoted = !quoted,
                '[' if !quoted => depth += 1,
                ']' if !quoted => depth -= 1,
                c if c == separator && !quoted && depth == 0 => {
                    parts.push(&expr[start..i]);
                    start = i + c.len_utf8();
                }
                _ => {}
            }
            if depth < 0 {
                return None;
            }
        }
        if depth != 0 || quoted {
            return None;
        }
        parts.push(&expr[start..]);
        Some(parts)
    }

    /// A location step's element name and its predicates.
    fn step(step: &str) -> (&str, Vec<&str>) {
        let step = step.trim();
        let name_end = step.find('[').unwrap_or(step.len());
        let (mut depth, mut quoted, mut start, mut predicates) = (0, false, 0, Vec::new());
        for (i, c) in step.char_indices().skip_while(|&(i, _)| i < name_end) {
            match c {
                '\'' => quoted = !quoted,
                '[' if !quoted => {
                    if depth == 0 {
                        start = i + 1;
                    }
                    depth += 1;
                }
                ']' if !quoted => {
                    depth -= 1;
                    if depth == 0 {
                        predicates.push(&step[start..i]);
                    }
                }
                _ => {}
            }
        }
        (step[..name_end].trim(), predicates)
    }

    /// The element paths an XPath names: its steps, and the child paths its predicates test for
    /// (`observation[code[@code='29']]` names `observation/code`); positions (`[1]`, `[r]`, `[k]`)
    /// and attribute tests are not paths.
    fn walk(expr: &str, base: &str, out: &mut BTreeSet<String>) {
        let Some(steps) = split_top(expr, '/') else { return };
        let mut path = base.to_owned();
        for raw in steps.into_iter().map(str::trim).filter(|s| !s.is_empty()) {
            let (name, predicates) = step(raw);
            if !name.starts_with(|c: char| c.is_ascii_alphabetic()) || name.contains(['(', ':']) {
                return;
            }
            path = format!("{path}/{name}");
            out.insert(path.clone());
            for predicate in predicates.into_iter().map(str::trim) {
                let head = predicate.split(['/', '[']).next().unwrap_or_default();
                let position = predicate.len() == 1 || predicate.bytes().all(|b| b.is_ascii_digit());
                if predicate.starts_with(|c: char| c.is_ascii_alphabetic())
                    && !head.contains('(')
                    && !position
                {
                    walk(predicate, &path, out);
                }
            }
        }
    }

    /// The element paths of one XPath cell of the data-element table.
    fn xpath_paths(cell: &str, out: &mut BTreeSet<String>) {
        let cell = cell.trim();
        let cell = cell.strip_prefix("substring(").unwrap_or(cell);
        if cell.starts_with('/') {
            walk(cell, "", out);
        }
    }

    /// (d) Every element we write is one FDA shows: in Scenario 1, or in the XPath column of the
    /// data-element table (which spans the "Xpath" header's columns: Value and Null), or, for three
    /// dosage paths, in Scenario 6 (see [`FROM_SCENARIO_6`]).
    #[test]
    fn every_element_written_is_one_fda_shows() {
        let rows = sample::csv_rows("icsr_data_elements.csv");
        let from = rows[0].iter().position(|c| c.trim() == "Xpath").expect("an Xpath column");
        let mut known = element_paths(&sample::scenario1());
        for row in rows.iter().skip(2) {
            for cell in row.iter().skip(from) {
                xpath_paths(cell, &mut known);
            }
        }
        assert!(known.contains(&format!("{DOSAGE}/routeCode/originalText")), "the table's paths were read");
        for path in FROM_SCENARIO_6 {
            assert!(
                !known.contains(&format!("{DOSAGE}/{path}")),
                "{path} now has a reference in the repository"
            );
            known.insert(format!("{DOSAGE}/{path}"));
        }
        let written = element_paths(&full_xml());
        let unknown: Vec<&String> = written.difference(&known).collect();
        assert!(unknown.is_empty(), "elements FDA does not show: {unknown:#?}");
    }

    /// (d) Every `codeSystem` we write is an OID of the data-element table: in its "Code system OID"
    /// column, or named in its XPath column (D.2.3's age group list 2.16.840.1.113883.3.989.2.1.1.9 is
    /// only there), except the HL7 trigger-event code system of the fixed message wrapper, which every
    /// FDA example carries (checked in Scenario 1).
    #[test]
    fn every_code_system_written_is_in_the_data_element_table() {
        let rows = sample::csv_rows("icsr_data_elements.csv");
        let oid_column = rows[1].iter().position(|c| c.trim() == "Code system OID").expect("an OID column");
        let from = rows[0].iter().position(|c| c.trim() == "Xpath").expect("an Xpath column");
        let mut known: BTreeSet<String> = BTreeSet::new();
        for row in rows.iter().skip(2) {
            let oids = row.get(oid_column).unwrap_or_default();
            known.extend(oids.split(|c: char| c.is_whitespace() || c == ';' || c == ',').map(str::to_owned));
            for cell in row.iter().skip(from) {
                for quoted in cell.split("codeSystem='").skip(1) {
                    known.extend(quoted.split('\'').next().map(str::to_owned));
                }
            }
        }
        let systems = |xml: &str| -> BTreeSet<String> {
            let doc = roxmltree::Document::parse(xml).expect("parses");
            doc.descendants().filter_map(|n| n.attribute("codeSystem")).map(str::to_owned).collect()
        };
        assert!(systems(&sample::scenario1()).contains(oid::TRIGGER_EVENT));
        known.insert(oid::TRIGGER_EVENT.to_owned());
        let written = systems(&full_xml());
        let unknown: Vec<&String> = written.difference(&known).collect();
        assert!(unknown.is_empty(), "code systems the table does not name: {unknown:#?}");
        assert!(written.contains(oid::MEDDRA) && written.contains(oid::NCI), "{written:?}");
    }

    /// (e) The same input gives the same bytes, and no identifier depends on anything but the input.
    #[test]
    fn writing_is_deterministic() {
        let first = full_xml();
        assert_eq!(first, full_xml());
        assert!(first.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<MCCI_IN200100UV01 "));
        assert!(first.contains("\n  <PORR_IN049016UV>\n    <id extension=\"US-PVDEMO-clinic-01-R-0042-v2\""));
        let other = batch_xml(
            &sample::batch(vec![IcsrCase { report_id: "R-0043".into(), ..sample::case() }]),
            &sample::sender(),
            Some(&sample::meddra()),
        )
        .expect("writes");
        let uuids = |xml: &str| -> BTreeSet<String> {
            let doc = roxmltree::Document::parse(xml).expect("parses");
            let roots = doc.descendants().filter_map(|n| n.attribute("root"));
            roots.filter(|r| r.contains('-')).map(str::to_owned).collect()
        };
        assert_eq!(uuids(&full_xml()).len(), 4, "two reactions and two drugs, the same in both versions");
        assert!(uuids(&first).is_disjoint(&uuids(&other)), "another case has other ids");
    }

    /// Nothing is truncated: a value longer than its element is an error naming the element.
    #[test]
    fn values_too_long_are_errors_naming_the_element() {
        let sender = sample::sender();
        let mut case = sample::case();
        case.clinic_id = "c".repeat(90);
        let err = batch_xml(&sample::batch(vec![case]), &sender, None).expect_err("too long");
        assert!(matches!(err, IcsrError::TooLong { element: "C.1.1", max: 100, len: 107 }), "{err}");
        // The enricher's pseudonymous keys are 64 hex digits, longer than D.1's 60.
        let mut case = sample::case();
        case.patient_key = "9617ad615997c4d2ccee44927204d48998d7c44fa22edaeeb0a94dbaa0cabd18".into();
        let err = batch_xml(&sample::batch(vec![case]), &sender, None).expect_err("too long");
        assert!(matches!(err, IcsrError::TooLong { element: "D.1", max: 60, len: 64 }), "{err}");
        let mut case = sample::case();
        case.reactions[0].verbatim = "é".repeat(251);
        let err = batch_xml(&sample::batch(vec![case]), &sender, None).expect_err("too long");
        assert!(matches!(err, IcsrError::TooLong { element: "E.i.1.1a", max: 250, len: 251 }), "{err}");
        let mut case = sample::case();
        if let Some(d) = case.drugs[0].dosing.as_mut() {
            d.last_dose_mg = 0.1 + 0.2;
        }
        let err = batch_xml(&sample::batch(vec![case]), &sender, None).expect_err("too long");
        assert!(matches!(err, IcsrError::TooLong { element: "G.k.4.r.1a", max: 8, .. }), "{err}");
    }

    #[test]
    fn values_that_cannot_be_written_are_errors() {
        let sender = sample::sender();
        let mut case = sample::case();
        case.narrative = Some("bell \u{7}".into());
        let err = batch_xml(&sample::batch(vec![case]), &sender, None).expect_err("control character");
        assert!(matches!(err, IcsrError::Invalid { element: "H.1", .. }), "{err}");
        let mut case = sample::case();
        case.report_id = "R\n1".into();
        let err = batch_xml(&sample::batch(vec![case]), &sender, None).expect_err("line break in an id");
        assert!(matches!(err, IcsrError::Invalid { element: "C.1.1", .. }), "{err}");
        let mut case = sample::case();
        case.reactions[0].pt_code = Some(1_234);
        let err = batch_xml(&sample::batch(vec![case]), &sender, Some(&sample::meddra())).expect_err("code");
        assert!(matches!(err, IcsrError::Invalid { element: "E.i.2.1b", .. }), "{err}");
        let bad_release = MeddraRelease { version: "27".into() };
        let err =
            batch_xml(&sample::batch(vec![sample::case()]), &sender, Some(&bad_release)).expect_err("N.N");
        assert!(matches!(err, IcsrError::Invalid { element: "E.i.2.1a", .. }), "{err}");
        let mut case = sample::case();
        case.version = 0;
        assert!(batch_xml(&sample::batch(vec![case]), &sender, None).is_err());
    }

    #[test]
    fn values_are_formatted_as_e2b_writes_them() {
        assert_eq!(timestamp("C.1.2", sample::CREATED_MS).expect("an instant"), "20260110120000+0000");
        assert_eq!(timestamp("C.1.2", sample::CREATED_MS + 999).expect("an instant"), "20260110120000+0000");
        assert_eq!(date("E.i.4", sample::ONSET_DAY).expect("a day"), "20260102");
        assert_eq!(date("E.i.4", -1).expect("a day"), "19691231");
        assert!(timestamp("C.1.2", i64::MAX).is_err());
        assert_eq!(quantity("G.k.5a", 210.0).expect("a dose"), "210");
        assert_eq!(quantity("G.k.5a", 0.25).expect("a dose"), "0.25");
        assert_eq!(quantity("G.k.5a", -0.0).expect("a dose"), "0");
        assert!(quantity("G.k.5a", f64::NAN).is_err());
        assert!(quantity("G.k.5a", -1.0).is_err());
        assert!(is_meddra_version("27.1") && is_meddra_version("9.0"));
        assert!(!is_meddra_version("27") && !is_meddra_version("127.1") && !is_meddra_version("27.10"));
        let codes: BTreeSet<&str> =
            [Route::Iv, Route::Im, Route::Intranasal, Route::Oral, Route::Sublingual, Route::Sc]
                .into_iter()
                .map(|r| route_term(r).code)
                .collect();
        assert_eq!(codes.len(), 6, "each route its own SPL code");
        assert_eq!(message_receiver("ZZFDA"), "CDER");
        assert_eq!(message_receiver("EVHUMAN"), "EVHUMAN");
    }

    /// Suspect and interacting drugs come first (FDA W0005), otherwise in the reported order.
    #[test]
    fn suspect_drugs_are_written_first() {
        let mut case = sample::case();
        case.drugs.reverse();
        let names: Vec<&str> = drugs_in_order(&case).iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["Ketamine hydrochloride", "Sertraline"]);
    }
}

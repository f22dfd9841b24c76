//! FDA's business rules for E2B(R3) submissions (`rejection_warning_rules.csv`), those that apply to the
//! elements we write, evaluated on the parsed XML (roxmltree, through [`super::read`]; never a text
//! search), plus the generic rules at the head of that file (required data, code-list values, maximum
//! length, future dates, date precision) applied to every element we write and to the elements FDA's
//! data-element table marks as Required for a postmarket report.
//!
//! Rule ids are the CSV's ERROR ID (`R0069`, `W0005`, ...). The generic rules and the one row without an
//! id have ids of the form `GEN-...` and `NOID-...`; rules taken from the ICH business-rule column of
//! the data-element table are `ICH-...`; see [`RULES_COVERED`]. A violation whose id starts with `W` is
//! a warning, every other one a rejection.
//!
//! Not covered, because a single message cannot show them: R0011 (C.1.7 nullFlavor NI on an initial
//! submission) and R0101 (C.1.11.1 on an initial report) need FDA's record of earlier submissions (the
//! writer refuses to nullify a version 1, which is what R0101 rejects); the premarket rules (IND and
//! pre-ANDA numbers, study types), the device rules (FDA.G.k.12) and the rules on elements we never
//! write (C.1.6.1.r, C.1.9.1.r, C.4, C.5, D.2.2, D.7-D.10, E.i.6, F, G.k.2.3, G.k.3, G.k.4.r.2-3,
//! G.k.4.r.6, G.k.6, G.k.7, G.k.9.i.3, H.3, H.5). "The date specified cannot refer to a future date" is
//! checked against the batch's transmission date N.1.5 (the checker reads no clock), at day precision.

use std::collections::BTreeSet;
use std::fmt::Display;

use chrono::NaiveDate;

use super::read::{self, Coded, ReadBatch, ReadCase, ReadDrug, ReadPatient, ReadReaction, ReadSender};
use super::{FDA_POSTMARKET, FDA_PREMARKET, max_len, write};

/// One rule a message breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleViolation {
    /// The rule's id: the ERROR ID of FDA's CSV (`R0069`), or one of the ids of [`RULES_COVERED`].
    pub rule: &'static str,
    /// The data element, e.g. `G.k.1`.
    pub element: &'static str,
    /// Where (batch, message, reaction or drug) and what.
    pub message: String,
}

impl RuleViolation {
    /// Whether FDA only warns (ids `W...`) rather than rejects.
    pub fn is_warning(&self) -> bool {
        self.rule.starts_with('W')
    }
}

/// Every rule [`check`] implements: its id and what it checks.
pub const RULES_COVERED: &[(&str, &str)] = &[
    ("XML", "The batch is well-formed XML whose root is the HL7 v3 MCCI_IN200100UV01"),
    (
        "GEN-REQUIRED",
        "Data value required: ICH Required elements, and FDA's postmarket Required ones (N.1.4 = ZZFDA)",
    ),
    ("GEN-CODE", "A coded element holds a value (or null flavour) of its code list or format"),
    ("GEN-MAXLEN", "A value is within its data element's maximum length"),
    ("GEN-FUTURE", "No date is later than the batch transmission date N.1.5"),
    ("GEN-PRECISION-DAY", "C.1.4 and C.1.5 carry at least CCYYMMDD"),
    ("GEN-PRECISION-FULL", "N.1.5, N.2.r.4 and C.1.2 carry the full CCYYMMDDhhmmss"),
    ("HL7-TS", "Every date is CCYY[MM[DD[hh[mm[ss]]]]][+/-ZZzz] and names a real calendar date and time"),
    (
        "R0004",
        "A postmarket batch (N.2.r.3 CDER or CBER) has N.1.4 = ZZFDA; any batch has ZZFDA or ZZFDA_PREMKT",
    ),
    (
        "R0005",
        "A premarket batch (N.2.r.3 CDER_IND, CBER_IND or CDER_IND_EXEMPT_BA_BE) has N.1.4 = ZZFDA_PREMKT",
    ),
    ("R0006", "N.1.4 = ZZFDA requires N.2.r.3 = CDER"),
    ("R0007", "N.1.4 = ZZFDA_PREMKT requires N.2.r.3 = CDER_IND, CBER_IND or CDER_IND_EXEMPT_BA_BE"),
    ("R0100", "N.2.r.2 is the same in every message and equals N.1.3"),
    ("R0012", "Postmarket: FDA.C.1.12 true and C.1.7 true require FDA.C.1.7.1 = 1 or 4"),
    ("R0013", "Postmarket: FDA.C.1.12 true and C.1.7 false or NI require FDA.C.1.7.1 = 2 or 5"),
    ("R0014", "Postmarket: FDA.C.1.12 false or NI and C.1.7 true require FDA.C.1.7.1 = 1"),
    ("R0015", "Postmarket: FDA.C.1.12 false or NI and C.1.7 false or NI require FDA.C.1.7.1 = 2"),
    ("NOID-C.1.11.2", "C.1.11.2 is provided when C.1.11.1 is (the CSV row has no error id)"),
    ("R0019", "C.2.r.3 is provided when C.2.r.5 = 1"),
    ("R0020", "C.2.r.4 is provided when C.2.r.5 = 1"),
    ("R0021", "At least one reporter has C.2.r.5 = 1"),
    ("R0022", "C.3.2 is provided when C.3.1 is 1 to 6"),
    ("R0058", "E.i.1.1b is provided when E.i.1.1a is"),
    (
        "R0069",
        "At least one drug has G.k.1 = 1, 3 or 4 (ICH too: a suspect, interacting or not administered drug)",
    ),
    ("W0005", "Postmarket: the first drug has G.k.1 = 1 or 3 (warning)"),
    ("R0075", "G.k.4.r.1b is provided when G.k.4.r.1a is"),
    ("R0079", "G.k.5a is provided when G.k.5b is"),
    ("R0080", "G.k.5b is provided when G.k.5a is"),
    ("ICH-N.2.r.4", "N.2.r.4 equals C.1.2 (ICH business rule of N.2.r.4)"),
    ("ICH-C.1.1", "C.1.1 and C.1.8.1 read country code-sender-report number (ICH business rule of C.1.1)"),
    ("ICH-C.2.r.5", "Only one primary source for regulatory purposes (ICH business rule of C.2.r.5)"),
    ("ICH-MEDDRA-VERSION", "Only one MedDRA version per ICSR (ICH business rule of E.i.2.1a)"),
    ("ICH-G.k.9.i.1", "Every drug-reaction assessment and recurrence refers to a reaction of the message"),
];

/// The rules `xml` breaks, in document order; empty when it passes every rule of [`RULES_COVERED`].
pub fn check(xml: &str) -> Vec<RuleViolation> {
    let doc = match roxmltree::Document::parse(xml) {
        Ok(doc) => doc,
        Err(e) => return vec![violation("XML", "N.1", "batch", format!("not well-formed XML: {e}"))],
    };
    let batch = match read::batch_of(&doc) {
        Ok(batch) => batch,
        Err(e) => return vec![violation("XML", "N.1", "batch", e)],
    };
    let mut checker = Checker {
        found: Vec::new(),
        postmarket: batch.batch_receiver.as_deref() == Some(FDA_POSTMARKET),
        batch_date: batch.batch_date.as_deref().and_then(ts_digits).map(str::to_owned),
    };
    checker.batch(&batch);
    for (n, case) in batch.cases.iter().enumerate() {
        let at = format!("message {} ({})", n + 1, case.safety_report_id.as_deref().unwrap_or("no C.1.1"));
        checker.header(&at, &batch, case);
        checker.identification(&at, case);
        checker.reporters(&at, case);
        checker.sender(&at, case.sender.as_ref());
        checker.patient(&at, &case.patient);
        checker.reactions(&at, &case.reactions);
        checker.drugs(&at, &case.drugs);
        if checker.required(&at, "H.1", case.narrative.as_deref()) {
            checker.max_len(&at, "H.1", case.narrative.as_deref());
        }
    }
    checker.found
}

fn violation(rule: &'static str, element: &'static str, at: &str, what: impl Display) -> RuleViolation {
    RuleViolation { rule, element, message: format!("{at}: {what}") }
}

const TRUE_FALSE: &[&str] = &["true", "false"];
const TRUE_ONLY: &[&str] = &["true"];
const NI_ONLY: &[&str] = &["NI"];
const NO_NULLS: &[&str] = &[];
const POSTMARKET_CENTRES: &[&str] = &["CDER", "CBER"];
const PREMARKET_CENTRES: &[&str] = &["CDER_IND", "CBER_IND", "CDER_IND_EXEMPT_BA_BE"];
const R0012_CODES: &[&str] = &["1", "4"];
const R0013_CODES: &[&str] = &["2", "5"];
const R0014_CODES: &[&str] = &["1"];
const R0015_CODES: &[&str] = &["2"];
/// FDA.D.11.r.1 race codes (NCI): African American, American Indian or Alaska Native, Asian, Native
/// Hawaiian or Other Pacific Islander, White.
const RACES: &[&str] = &["C16352", "C41259", "C41260", "C41219", "C41261"];
/// FDA.D.12 ethnicity codes (NCI): Hispanic or Latino, not Hispanic or Latino.
const ETHNICITIES: &[&str] = &["C17459", "C41222"];

/// Digits a date must carry for each precision.
const YEAR: usize = 4;
const DAY: usize = 8;
const FULL: usize = 14;

struct Checker {
    found: Vec<RuleViolation>,
    /// N.1.4 = ZZFDA: FDA's postmarket regional requirements apply.
    postmarket: bool,
    /// N.1.5's digits, the reference for "no future date".
    batch_date: Option<String>,
}

impl Checker {
    fn flag(&mut self, rule: &'static str, element: &'static str, at: &str, what: impl Display) {
        self.found.push(violation(rule, element, at, what));
    }

    /// GEN-REQUIRED unless `value` has text; whether it has.
    fn required(&mut self, at: &str, element: &'static str, value: Option<&str>) -> bool {
        let present = value.is_some_and(|v| !v.trim().is_empty());
        if !present {
            self.flag("GEN-REQUIRED", element, at, "data value required");
        }
        present
    }

    /// GEN-REQUIRED unless `value` is a value with text or a null flavour; whether it is.
    fn required_coded(&mut self, at: &str, element: &'static str, value: Option<&Coded>) -> bool {
        match value {
            Some(Coded::NullFlavor(_)) => true,
            Some(Coded::Value(v)) => self.required(at, element, Some(v)),
            None => self.required(at, element, None),
        }
    }

    fn max_len(&mut self, at: &str, element: &'static str, value: Option<&str>) {
        if let (Some(value), Some(max)) = (value, max_len(element)) {
            let len = value.chars().count();
            if len > max {
                let what = format!("maximum length exceeded: {len} characters, {max} allowed");
                self.flag("GEN-MAXLEN", element, at, what);
            }
        }
    }

    fn code(&mut self, at: &str, element: &'static str, value: Option<&str>, allowed: &[&str]) {
        if let Some(v) = value.filter(|v| !allowed.contains(v)) {
            self.flag("GEN-CODE", element, at, format!("contains invalid value {v:?}"));
        }
    }

    fn coded(
        &mut self,
        at: &str,
        element: &'static str,
        value: Option<&Coded>,
        values: &[&str],
        nulls: &[&str],
    ) {
        match value {
            Some(Coded::Value(v)) => self.code(at, element, Some(v), values),
            Some(Coded::NullFlavor(f)) => self.null_flavour(at, element, f, nulls),
            None => {}
        }
    }

    fn null_flavour(&mut self, at: &str, element: &'static str, flavour: &str, nulls: &[&str]) {
        if !nulls.contains(&flavour) {
            self.flag("GEN-CODE", element, at, format!("nullFlavor {flavour:?} is not allowed"));
        }
    }

    fn format(
        &mut self,
        at: &str,
        element: &'static str,
        value: Option<&str>,
        ok: fn(&str) -> bool,
        what: &str,
    ) {
        if let Some(v) = value.filter(|v| !ok(v)) {
            self.flag("GEN-CODE", element, at, format!("{v:?} is not {what}"));
        }
    }

    /// HL7-TS, the precision the element needs, and GEN-FUTURE against N.1.5 (at day precision).
    fn date(&mut self, at: &str, element: &'static str, value: Option<&str>, precision: usize) {
        let Some(value) = value else { return };
        let Some(digits) = ts_digits(value) else {
            self.flag(
                "HL7-TS",
                element,
                at,
                format!("{value:?} is not a date/time CCYY[MM[DD[hh[mm[ss]]]]][+/-ZZzz]"),
            );
            return;
        };
        if digits.len() < precision {
            let (rule, needed) = if precision == FULL {
                ("GEN-PRECISION-FULL", "full precision date and time")
            } else {
                ("GEN-PRECISION-DAY", "minimum precision of CCYYMMDD")
            };
            self.flag(rule, element, at, format!("{value:?} does not contain {needed}"));
        }
        if let Some(batch) = self.batch_date.as_deref() {
            let k = digits.len().min(batch.len()).min(DAY);
            if digits[..k] > batch[..k] {
                self.flag(
                    "GEN-FUTURE",
                    element,
                    at,
                    format!("{value:?} is after the batch transmission (N.1.5)"),
                );
            }
        }
    }

    fn required_date(&mut self, at: &str, element: &'static str, value: Option<&str>, precision: usize) {
        if self.required(at, element, value) {
            self.date(at, element, value, precision);
        }
    }

    /// N.1.
    fn batch(&mut self, b: &ReadBatch) {
        let at = "batch";
        if self.required(at, "N.1.1", b.batch_type.as_deref()) {
            self.code(at, "N.1.1", b.batch_type.as_deref(), &["1"]);
        }
        for (element, value) in
            [("N.1.2", &b.batch_id), ("N.1.3", &b.batch_sender), ("N.1.4", &b.batch_receiver)]
        {
            if self.required(at, element, value.as_deref()) {
                self.max_len(at, element, value.as_deref());
            }
        }
        self.required_date(at, "N.1.5", b.batch_date.as_deref(), FULL);
        if let Some(receiver) =
            b.batch_receiver.as_deref().filter(|r| *r != FDA_POSTMARKET && *r != FDA_PREMARKET)
        {
            self.flag(
                "R0004",
                "N.1.4",
                at,
                format!("{receiver:?} is neither ZZFDA (postmarket) nor ZZFDA_PREMKT"),
            );
        }
    }

    /// N.2.r, and its consistency with N.1.
    fn header(&mut self, at: &str, b: &ReadBatch, c: &ReadCase) {
        let ids =
            [("N.2.r.1", &c.message_id), ("N.2.r.2", &c.message_sender), ("N.2.r.3", &c.message_receiver)];
        for (element, value) in ids {
            if self.required(at, element, value.as_deref()) {
                self.max_len(at, element, value.as_deref());
            }
        }
        self.required_date(at, "N.2.r.4", c.message_date.as_deref(), FULL);
        if c.message_date.is_some() && c.creation_date.is_some() && c.message_date != c.creation_date {
            self.flag("ICH-N.2.r.4", "N.2.r.4", at, "the date of message creation is not C.1.2");
        }
        if let (Some(message), Some(batch)) = (c.message_sender.as_deref(), b.batch_sender.as_deref()) {
            if message != batch {
                self.flag("R0100", "N.2.r.2", at, format!("{message:?} does not match N.1.3 {batch:?}"));
            }
        }
        let Some(centre) = c.message_receiver.as_deref() else { return };
        match b.batch_receiver.as_deref() {
            Some(FDA_POSTMARKET) if centre != "CDER" => {
                self.flag(
                    "R0006",
                    "N.2.r.3",
                    at,
                    format!("N.1.4 = ZZFDA but N.2.r.3 is {centre:?}, not CDER"),
                );
            }
            Some(FDA_PREMARKET) if !PREMARKET_CENTRES.contains(&centre) => {
                self.flag("R0007", "N.2.r.3", at, format!("N.1.4 = ZZFDA_PREMKT but N.2.r.3 is {centre:?}"));
            }
            _ => {}
        }
        if POSTMARKET_CENTRES.contains(&centre) && b.batch_receiver.as_deref() == Some(FDA_PREMARKET) {
            self.flag(
                "R0004",
                "N.1.4",
                at,
                format!("a postmarket report to {centre} does not have N.1.4 = ZZFDA"),
            );
        }
        if PREMARKET_CENTRES.contains(&centre) && b.batch_receiver.as_deref() == Some(FDA_POSTMARKET) {
            let what = format!("a premarket report to {centre} does not have N.1.4 = ZZFDA_PREMKT");
            self.flag("R0005", "N.1.4", at, what);
        }
    }

    /// C.1.
    fn identification(&mut self, at: &str, c: &ReadCase) {
        for (element, value) in [("C.1.1", &c.safety_report_id), ("C.1.8.1", &c.worldwide_id)] {
            if self.required(at, element, value.as_deref()) {
                self.max_len(at, element, value.as_deref());
                if !value.as_deref().is_some_and(is_case_id) {
                    self.flag("ICH-C.1.1", element, at, "is not country code-sender-report number");
                }
            }
        }
        self.required_date(at, "C.1.2", c.creation_date.as_deref(), FULL);
        if self.required(at, "C.1.3", c.report_type.as_deref()) {
            self.code(at, "C.1.3", c.report_type.as_deref(), &["1", "2", "3", "4"]);
        }
        self.required_date(at, "C.1.4", c.first_received.as_deref(), DAY);
        self.required_date(at, "C.1.5", c.most_recent.as_deref(), DAY);
        if self.required_coded(at, "C.1.6.1", c.additional_documents.as_ref()) {
            self.coded(at, "C.1.6.1", c.additional_documents.as_ref(), TRUE_FALSE, NO_NULLS);
        }
        if self.required_coded(at, "C.1.7", c.expedited.as_ref()) {
            self.coded(at, "C.1.7", c.expedited.as_ref(), TRUE_FALSE, NI_ONLY);
        }
        if self.required(at, "C.1.8.2", c.first_sender.as_deref()) {
            self.code(at, "C.1.8.2", c.first_sender.as_deref(), &["1", "2"]);
        }
        if self.required_coded(at, "C.1.9.1", c.other_case_ids.as_ref()) {
            self.coded(at, "C.1.9.1", c.other_case_ids.as_ref(), TRUE_ONLY, NI_ONLY);
        }
        self.code(at, "C.1.11.1", c.nullification.as_deref(), &["1", "2"]);
        if c.nullification.is_some() && c.nullification_reason.as_deref().is_none_or(|r| r.trim().is_empty())
        {
            self.flag("NOID-C.1.11.2", "C.1.11.2", at, "C.1.11.2 must be provided when C.1.11.1 is provided");
        }
        self.max_len(at, "C.1.11.2", c.nullification_reason.as_deref());
        if self.postmarket {
            self.local_criteria(at, c);
        }
    }

    /// FDA.C.1.7.1 and FDA.C.1.12 (postmarket), R0012 to R0015.
    fn local_criteria(&mut self, at: &str, c: &ReadCase) {
        let report_type = c.local_criteria_report_type.as_deref();
        if self.required(at, "FDA.C.1.7.1", report_type) {
            self.code(at, "FDA.C.1.7.1", report_type, &["1", "2", "4", "5", "6"]);
        }
        if self.required_coded(at, "FDA.C.1.12", c.combination_product.as_ref()) {
            self.coded(at, "FDA.C.1.12", c.combination_product.as_ref(), TRUE_FALSE, NI_ONLY);
        }
        let (Some(report_type), Some(expedited), Some(combination)) =
            (report_type, c.expedited.as_ref(), c.combination_product.as_ref())
        else {
            return;
        };
        let expedited = expedited.value() == Some("true");
        let combination = combination.value() == Some("true");
        let (rule, allowed) = match (combination, expedited) {
            (true, true) => ("R0012", R0012_CODES),
            (true, false) => ("R0013", R0013_CODES),
            (false, true) => ("R0014", R0014_CODES),
            (false, false) => ("R0015", R0015_CODES),
        };
        if !allowed.contains(&report_type) {
            let what = format!(
                "FDA.C.1.7.1 is {report_type:?}; with C.1.7 and FDA.C.1.12 as given it must be {allowed:?}"
            );
            self.flag(rule, "FDA.C.1.7.1", at, what);
        }
    }

    /// C.2.r.
    fn reporters(&mut self, at: &str, c: &ReadCase) {
        let primaries = c.reporters.iter().filter(|r| r.primary.as_deref() == Some("1")).count();
        if primaries == 0 {
            self.flag("R0021", "C.2.r.5", at, "at least one reporter must be provided with C.2.r.5 = 1");
        }
        if primaries > 1 {
            self.flag("ICH-C.2.r.5", "C.2.r.5", at, format!("{primaries} reporters have C.2.r.5 = 1"));
        }
        for r in &c.reporters {
            if r.primary.as_deref() == Some("1") {
                if r.country.is_none() {
                    self.flag("R0019", "C.2.r.3", at, "C.2.r.3 must be provided when C.2.r.5 = 1");
                }
                if r.qualification.is_none() {
                    self.flag("R0020", "C.2.r.4", at, "C.2.r.4 must be provided when C.2.r.5 = 1");
                }
            }
            self.coded(at, "C.2.r.4", r.qualification.as_ref(), &["1", "2", "3", "4", "5"], &["UNK"]);
            if let Some(Coded::NullFlavor(f)) = &r.country {
                self.null_flavour(at, "C.2.r.3", f, &["MSK", "UNK", "ASKU", "NASK"]);
            }
            let country = r.country.as_ref().and_then(Coded::value);
            self.format(at, "C.2.r.3", country, is_country, "an ISO 3166-1 alpha-2 country code");
            if self.postmarket {
                self.required_coded(at, "FDA.C.2.r.2.8", r.email.as_ref());
            }
            self.max_len(at, "FDA.C.2.r.2.8", r.email.as_ref().and_then(Coded::value));
        }
    }

    /// C.3.
    fn sender(&mut self, at: &str, sender: Option<&ReadSender>) {
        let Some(s) = sender else {
            self.flag("GEN-REQUIRED", "C.3.1", at, "data value required");
            return;
        };
        if self.required(at, "C.3.1", s.sender_type.as_deref()) {
            self.code(at, "C.3.1", s.sender_type.as_deref(), &["1", "2", "3", "4", "5", "6", "7"]);
        }
        let organised = matches!(s.sender_type.as_deref(), Some("1" | "2" | "3" | "4" | "5" | "6"));
        if organised && s.organisation.as_deref().is_none_or(|o| o.trim().is_empty()) {
            self.flag("R0022", "C.3.2", at, "C.3.2 must be provided when C.3.1 = 1, 2, 3, 4, 5 or 6");
        }
        self.max_len(at, "C.3.2", s.organisation.as_deref());
        let regional = [
            ("C.3.3.1", &s.department),
            ("C.3.3.2", &s.title),
            ("C.3.3.3", &s.given_name),
            ("C.3.3.5", &s.family_name),
            ("C.3.4.1", &s.street),
            ("C.3.4.2", &s.city),
            ("C.3.4.3", &s.state),
            ("C.3.4.4", &s.postcode),
            ("C.3.4.5", &s.country),
            ("C.3.4.6", &s.telephone),
            ("C.3.4.7", &s.fax),
            ("C.3.4.8", &s.email),
        ];
        for (element, value) in regional {
            if self.postmarket {
                self.required(at, element, value.as_deref());
            }
            self.max_len(at, element, value.as_deref());
        }
        self.format(at, "C.3.4.5", s.country.as_deref(), is_country, "an ISO 3166-1 alpha-2 country code");
    }

    /// D.
    fn patient(&mut self, at: &str, p: &ReadPatient) {
        if self.required_coded(at, "D.1", p.name.as_ref()) {
            if let Some(Coded::NullFlavor(f)) = &p.name {
                self.null_flavour(at, "D.1", f, &["MSK", "ASKU", "NASK", "UNK", "NA"]);
            }
            self.max_len(at, "D.1", p.name.as_ref().and_then(Coded::value));
        }
        self.coded(at, "D.5", p.sex.as_ref(), &["1", "2"], &["MSK", "UNK", "ASKU", "NASK"]);
        let groups = &["0", "1", "2", "3", "4", "5", "6"];
        self.coded(at, "D.2.3", p.age_group.as_ref(), groups, &["MSK", "UNK", "ASKU", "NI"]);
        if self.postmarket {
            if p.race.is_empty() {
                self.flag("GEN-REQUIRED", "FDA.D.11.r.1", at, "data value required");
            }
            for race in &p.race {
                self.coded(at, "FDA.D.11.r.1", Some(race), RACES, &["UNK", "MSK", "OTH", "NA"]);
            }
            if self.required_coded(at, "FDA.D.12", p.ethnicity.as_ref()) {
                self.coded(at, "FDA.D.12", p.ethnicity.as_ref(), ETHNICITIES, &["UNK", "MSK", "NI", "NA"]);
            }
        }
    }

    /// E.i.
    fn reactions(&mut self, at: &str, reactions: &[ReadReaction]) {
        if reactions.is_empty() {
            self.flag("GEN-REQUIRED", "E.i.2.1b", at, "the message has no reaction (E.i is required)");
        }
        let versions: BTreeSet<&str> = reactions.iter().filter_map(|r| r.meddra_version.as_deref()).collect();
        if versions.len() > 1 {
            self.flag(
                "ICH-MEDDRA-VERSION",
                "E.i.2.1a",
                at,
                format!("more than one MedDRA version: {versions:?}"),
            );
        }
        for (i, r) in reactions.iter().enumerate() {
            self.reaction(&format!("{at}, reaction {}", i + 1), r);
        }
    }

    fn reaction(&mut self, at: &str, r: &ReadReaction) {
        self.max_len(at, "E.i.1.1a", r.verbatim.as_deref());
        if r.verbatim.is_some() && r.language.is_none() {
            self.flag("R0058", "E.i.1.1b", at, "E.i.1.1b must be provided when E.i.1.1a is provided");
        }
        self.format(at, "E.i.1.1b", r.language.as_deref(), is_language, "an ISO 639-2 alpha-3 language code");
        if self.required(at, "E.i.2.1a", r.meddra_version.as_deref()) {
            self.format(
                at,
                "E.i.2.1a",
                r.meddra_version.as_deref(),
                write::is_meddra_version,
                "a MedDRA version N.N",
            );
        }
        if self.required(at, "E.i.2.1b", r.meddra_code.as_deref()) {
            self.format(at, "E.i.2.1b", r.meddra_code.as_deref(), is_meddra_code, "an 8-digit MedDRA code");
        }
        let s = &r.seriousness;
        let criteria = [
            ("E.i.3.2a", &s.death),
            ("E.i.3.2b", &s.life_threatening),
            ("E.i.3.2c", &s.hospitalisation),
            ("E.i.3.2d", &s.disability),
            ("E.i.3.2e", &s.congenital_anomaly),
            ("E.i.3.2f", &s.other_medically_important),
        ];
        for (element, value) in criteria {
            if self.required_coded(at, element, value.as_ref()) {
                self.coded(at, element, value.as_ref(), TRUE_ONLY, NI_ONLY);
            }
        }
        if self.postmarket && self.required_coded(at, "FDA.E.i.3.2h", s.required_intervention.as_ref()) {
            self.coded(at, "FDA.E.i.3.2h", s.required_intervention.as_ref(), TRUE_ONLY, NI_ONLY);
        }
        self.date(at, "E.i.4", r.onset.as_deref(), YEAR);
        if self.required(at, "E.i.7", r.outcome.as_deref()) {
            self.code(at, "E.i.7", r.outcome.as_deref(), &["0", "1", "2", "3", "4", "5"]);
        }
    }

    /// G.k.
    fn drugs(&mut self, at: &str, drugs: &[ReadDrug]) {
        if !drugs.iter().any(|d| matches!(d.role.as_deref(), Some("1" | "3" | "4"))) {
            self.flag(
                "R0069",
                "G.k.1",
                at,
                "no drug is suspect, interacting or not administered (G.k.1 = 1, 3 or 4)",
            );
        }
        if self.postmarket {
            if let Some(first) = drugs.first().filter(|d| !matches!(d.role.as_deref(), Some("1" | "3"))) {
                let role = first.role.as_deref().unwrap_or("none");
                self.flag(
                    "W0005",
                    "G.k.1",
                    at,
                    format!("the first product reported has G.k.1 {role:?}, not 1 or 3"),
                );
            }
        }
        for (k, d) in drugs.iter().enumerate() {
            self.drug(&format!("{at}, drug {}", k + 1), d);
        }
    }

    fn drug(&mut self, at: &str, d: &ReadDrug) {
        if self.required(at, "G.k.1", d.role.as_deref()) {
            self.code(at, "G.k.1", d.role.as_deref(), &["1", "2", "3", "4"]);
        }
        if self.required(at, "G.k.2.2", d.name.as_deref()) {
            self.max_len(at, "G.k.2.2", d.name.as_deref());
        }
        self.max_len(at, "G.k.4.r.1a", d.dose.as_deref());
        if d.dose.is_some() && d.dose_unit.is_none() {
            self.flag("R0075", "G.k.4.r.1b", at, "G.k.4.r.1b must be provided when G.k.4.r.1a is provided");
        }
        self.max_len(at, "G.k.4.r.1b", d.dose_unit.as_deref());
        self.date(at, "G.k.4.r.4", d.start.as_deref(), YEAR);
        self.date(at, "G.k.4.r.5", d.end.as_deref(), YEAR);
        self.max_len(at, "G.k.4.r.10.1", d.route_text.as_deref());
        self.max_len(at, "G.k.4.r.10.2b", d.route_code.as_deref());
        if d.cumulative_unit.is_some() && d.cumulative_dose.is_none() {
            self.flag("R0079", "G.k.5a", at, "G.k.5a must be provided when G.k.5b is provided");
        }
        if d.cumulative_dose.is_some() && d.cumulative_unit.is_none() {
            self.flag("R0080", "G.k.5b", at, "G.k.5b must be provided when G.k.5a is provided");
        }
        self.max_len(at, "G.k.5a", d.cumulative_dose.as_deref());
        self.max_len(at, "G.k.5b", d.cumulative_unit.as_deref());
        for a in &d.assessments {
            self.max_len(at, "G.k.9.i.2.r.1", a.source.as_deref());
            self.max_len(at, "G.k.9.i.2.r.2", a.method.as_deref());
            self.max_len(at, "G.k.9.i.2.r.3", a.result.as_deref());
            if a.reaction.is_none() {
                self.flag(
                    "ICH-G.k.9.i.1",
                    "G.k.9.i.1",
                    at,
                    "an assessment refers to no reaction of the message",
                );
            }
        }
        for r in &d.recurrences {
            self.code(at, "G.k.9.i.4", r.code.as_deref(), &["1", "2", "3", "4"]);
            if r.reaction.is_none() {
                self.flag(
                    "ICH-G.k.9.i.1",
                    "G.k.9.i.1",
                    at,
                    "a recurrence refers to no reaction of the message",
                );
            }
        }
    }
}

/// The digits of an HL7 TS (`CCYY[MM[DD[hh[mm[ss[.s+]]]]]][+/-ZZzz]`), without fraction or zone, when
/// the value is one and names a real calendar date and time.
fn ts_digits(value: &str) -> Option<&str> {
    let (body, zone) = match value.find(['+', '-']) {
        Some(i) => (&value[..i], Some(&value[i + 1..])),
        None => (value, None),
    };
    let (digits, fraction) = match body.split_once('.') {
        Some((digits, fraction)) => (digits, Some(fraction)),
        None => (body, None),
    };
    if !all_digits(digits) || ![4, 6, 8, 10, 12, 14].contains(&digits.len()) {
        return None;
    }
    if fraction.is_some_and(|f| digits.len() != 14 || !all_digits(f)) {
        return None;
    }
    if let Some(zone) = zone {
        if zone.len() != 4 || !all_digits(zone) || number(&zone[..2]) > 14 || number(&zone[2..]) > 59 {
            return None;
        }
    }
    let part = |from: usize, default: u32| {
        if digits.len() > from { number(&digits[from..from + 2]) } else { default }
    };
    let year = i32::try_from(number(&digits[..4])).ok()?;
    NaiveDate::from_ymd_opt(year, part(4, 1), part(6, 1))?;
    if part(8, 0) > 23 || part(10, 0) > 59 || part(12, 0) > 59 {
        return None;
    }
    Some(digits)
}

fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// The value of ASCII digits (checked by the caller).
fn number(digits: &str) -> u32 {
    digits.bytes().fold(0, |n, b| n * 10 + u32::from(b - b'0'))
}

/// `CC-sender-number`: a two-letter country code, a sender without `-`, a report number.
fn is_case_id(id: &str) -> bool {
    let mut parts = id.splitn(3, '-');
    let country = parts.next().unwrap_or_default();
    let sender = parts.next().unwrap_or_default();
    let number = parts.next().unwrap_or_default();
    country.len() == 2
        && country.bytes().all(|b| b.is_ascii_uppercase())
        && !sender.is_empty()
        && !number.is_empty()
}

fn is_country(code: &str) -> bool {
    code.len() == 2 && code.bytes().all(|b| b.is_ascii_alphabetic())
}

fn is_language(code: &str) -> bool {
    code.len() == 3 && code.bytes().all(|b| b.is_ascii_lowercase())
}

fn is_meddra_code(code: &str) -> bool {
    code.len() == 8 && all_digits(code)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use pv_events::DrugRole;

    use super::super::sample;
    use super::super::write::batch_xml;
    use super::*;

    fn sample_xml() -> String {
        batch_xml(&sample::batch(vec![sample::case()]), &sample::sender(), Some(&sample::meddra()))
            .expect("writes")
    }

    fn rules(violations: &[RuleViolation]) -> BTreeSet<(&'static str, &'static str)> {
        violations.iter().map(|v| (v.rule, v.element)).collect()
    }

    /// Replaces exactly one occurrence of `from` (the broken variants are made on our own output).
    fn replace_once(xml: &str, from: &str, to: &str) -> String {
        assert_eq!(xml.matches(from).count(), 1, "{from:?} occurs once");
        xml.replacen(from, to, 1)
    }

    /// Removes the `<tag ...>...</tag>` element enclosing the one occurrence of `marker`.
    fn remove_enclosing(xml: &str, marker: &str, tag: &str) -> String {
        assert_eq!(xml.matches(marker).count(), 1, "{marker:?} occurs once");
        let at = xml.find(marker).expect("marker");
        let start = xml[..at].rfind(&format!("<{tag} ")).expect("opening tag");
        let close = format!("</{tag}>");
        let end = at + xml[at..].find(&close).expect("closing tag") + close.len();
        format!("{}{}", &xml[..start], &xml[end..])
    }

    #[test]
    fn our_sample_passes_every_rule() {
        let violations = check(&sample_xml());
        assert!(violations.is_empty(), "{violations:#?}");
    }

    /// FDA's own Scenario 1 passes: the checker accepts the regulator's example as it stands.
    #[test]
    fn fda_scenario_1_passes_every_rule() {
        let violations = check(&sample::scenario1());
        assert!(violations.is_empty(), "{violations:#?}");
    }

    /// Without a licensed MedDRA release the batch is written but not submittable: E.i.2.1a and E.i.2.1b
    /// are missing from every reaction, and nothing else is wrong.
    #[test]
    fn without_meddra_every_reaction_lacks_its_code() {
        let xml = batch_xml(&sample::batch(vec![sample::case()]), &sample::sender(), None).expect("writes");
        let violations = check(&xml);
        assert_eq!(violations.len(), 4, "{violations:#?}");
        let expected = BTreeSet::from([("GEN-REQUIRED", "E.i.2.1a"), ("GEN-REQUIRED", "E.i.2.1b")]);
        assert_eq!(rules(&violations), expected);
    }

    /// Without the sender's contact, each of FDA's regionally required C.3.3/C.3.4 elements is reported.
    #[test]
    fn without_the_sender_contact_fda_requirements_are_reported() {
        let mut sender = sample::sender();
        sender.contact = None;
        let xml = batch_xml(&sample::batch(vec![sample::case()]), &sender, Some(&sample::meddra()))
            .expect("writes");
        let found = rules(&check(&xml));
        let missing =
            ["C.3.3.1", "C.3.3.2", "C.3.3.3", "C.3.3.5", "C.3.4.1", "C.3.4.2", "C.3.4.3", "C.3.4.4"];
        let telecoms = ["C.3.4.6", "C.3.4.7", "C.3.4.8"];
        let expected: BTreeSet<_> = missing.iter().chain(&telecoms).map(|e| ("GEN-REQUIRED", *e)).collect();
        assert_eq!(found, expected, "C.3.4.5 (the country) is written without a contact");
    }

    #[test]
    fn a_case_without_a_suspect_drug_is_rejected() {
        let mut case = sample::case();
        for drug in &mut case.drugs {
            drug.role = DrugRole::Concomitant;
        }
        let xml = batch_xml(&sample::batch(vec![case]), &sample::sender(), Some(&sample::meddra()))
            .expect("writes");
        let violations = check(&xml);
        assert!(rules(&violations).contains(&("R0069", "G.k.1")), "{violations:#?}");
        assert!(violations.iter().any(|v| v.rule == "W0005" && v.is_warning()), "{violations:#?}");
    }

    #[test]
    fn a_bad_outcome_code_is_rejected() {
        let outcome = r#"code="1" displayName="recovered/resolved""#;
        let xml = replace_once(&sample_xml(), outcome, r#"code="9" displayName="x""#);
        let violations = check(&xml);
        assert_eq!(rules(&violations), BTreeSet::from([("GEN-CODE", "E.i.7")]), "{violations:#?}");
    }

    #[test]
    fn a_nullification_without_its_reason_is_rejected() {
        let mut case = sample::case();
        case.nullification = true;
        case.nullification_reason = Some("Duplicate report".into());
        let xml = batch_xml(&sample::batch(vec![case]), &sample::sender(), Some(&sample::meddra()))
            .expect("writes");
        assert!(check(&xml).is_empty(), "{:#?}", check(&xml));
        let broken = remove_enclosing(&xml, "nullificationAmendmentReason", "subjectOf2");
        let violations = check(&broken);
        assert_eq!(rules(&violations), BTreeSet::from([("NOID-C.1.11.2", "C.1.11.2")]), "{violations:#?}");
    }

    #[test]
    fn bad_dates_are_rejected() {
        let xml = sample_xml();
        let year_only = replace_once(&xml, r#"<low value="20260103140000+0000"/>"#, r#"<low value="2026"/>"#);
        assert_eq!(rules(&check(&year_only)), BTreeSet::from([("GEN-PRECISION-DAY", "C.1.4")]));
        let not_a_date =
            replace_once(&xml, r#"<low value="20260103140000+0000"/>"#, r#"<low value="2026-01-03"/>"#);
        assert_eq!(rules(&check(&not_a_date)), BTreeSet::from([("HL7-TS", "C.1.4")]));
        let no_such_day = replace_once(&xml, r#"<low value="20260102"/>"#, r#"<low value="20260230"/>"#);
        assert_eq!(rules(&check(&no_such_day)), BTreeSet::from([("HL7-TS", "E.i.4")]));
        let most_recent = r#"<availabilityTime value="20260108081500+0000"/>"#;
        let future = replace_once(&xml, most_recent, r#"<availabilityTime value="20300101"/>"#);
        assert_eq!(rules(&check(&future)), BTreeSet::from([("GEN-FUTURE", "C.1.5")]));
        let created = r#"<creationTime value="20260110120000+0000"/>"#;
        let to_the_day = xml.replacen(created, r#"<creationTime value="20260110"/>"#, 1);
        assert!(rules(&check(&to_the_day)).contains(&("GEN-PRECISION-FULL", "N.1.5")));
    }

    #[test]
    fn header_rules_hold_the_batch_together() {
        let xml = sample_xml();
        let other_sender = replace_once(
            &xml,
            r#"<id extension="PVDEMO" root="2.16.840.1.113883.3.989.2.1.3.13"/>"#,
            r#"<id extension="OTHER" root="2.16.840.1.113883.3.989.2.1.3.13"/>"#,
        );
        assert_eq!(rules(&check(&other_sender)), BTreeSet::from([("R0100", "N.2.r.2")]));
        let other_centre = replace_once(
            &xml,
            r#"<id extension="CDER" root="2.16.840.1.113883.3.989.2.1.3.12"/>"#,
            r#"<id extension="CBER" root="2.16.840.1.113883.3.989.2.1.3.12"/>"#,
        );
        assert_eq!(rules(&check(&other_centre)), BTreeSet::from([("R0006", "N.2.r.3")]));
        let mut sender = sample::sender();
        sender.receiver_id = "EVHUMAN".into();
        let elsewhere = batch_xml(&sample::batch(vec![sample::case()]), &sender, Some(&sample::meddra()))
            .expect("writes");
        assert_eq!(rules(&check(&elsewhere)), BTreeSet::from([("R0004", "N.1.4")]), "not a batch for FDA");
    }

    #[test]
    fn a_malformed_meddra_code_is_rejected() {
        let xml = replace_once(&sample_xml(), r#"code="10013457""#, r#"code="1001345""#);
        assert_eq!(rules(&check(&xml)), BTreeSet::from([("GEN-CODE", "E.i.2.1b")]));
    }

    #[test]
    fn text_that_is_not_a_batch_is_one_violation() {
        assert_eq!(rules(&check("<a>")), BTreeSet::from([("XML", "N.1")]));
        assert_eq!(rules(&check("<a/>")), BTreeSet::from([("XML", "N.1")]));
    }

    /// Every FDA rule id we claim is one of FDA's (rejection_warning_rules.csv, ERROR ID column), and
    /// every id a check can produce is listed.
    #[test]
    fn the_rules_covered_are_fdas() {
        let rows = sample::csv_rows("rejection_warning_rules.csv");
        let header =
            rows.iter().position(|r| r.iter().any(|c| c.trim() == "ERROR ID")).expect("a header row");
        let column = rows[header].iter().position(|c| c.trim() == "ERROR ID").expect("an ERROR ID column");
        let fda: BTreeSet<&str> =
            rows[header + 1..].iter().filter_map(|r| r.get(column)).map(str::trim).collect();
        for (id, description) in RULES_COVERED {
            assert!(!description.is_empty());
            if id.starts_with('R') || id.starts_with('W') {
                assert!(fda.contains(id), "{id} is an ERROR ID of FDA's rules");
            }
        }
        let listed: BTreeSet<&str> = RULES_COVERED.iter().map(|(id, _)| *id).collect();
        let generic =
            rows[..header].iter().filter_map(|r| r.get(0)).filter(|c| c.starts_with("Generic")).count();
        assert_eq!(generic, 6, "the six generic rules head the CSV");
        let produced = [check("<a/>"), check(&sample::scenario1())].concat();
        assert!(produced.iter().all(|v| listed.contains(v.rule)));
    }
}

//! Reads an E2B(R3) batch back (roxmltree, namespace-aware: every element is matched in the HL7 v3
//! namespace by its name and, where E2B distinguishes siblings by a code, by that code and its code
//! system, never by position or by searching the text).
//!
//! Each message becomes a [`ReadCase`] holding every value the writer writes, as written (codes, dates
//! and quantities are the strings in the XML). [`ReadCase::expected`] computes, from the case it came
//! from, the `ReadCase` an export must read back as, so a test says "the export parses back to the case
//! it came from, field by field" with one `assert_eq!`. The reader is lenient: what a message lacks is
//! `None` (or empty), which is what [`super::rules`] checks; it also reads FDA's example messages.

use roxmltree::{Document, Node};

use super::model::{IcsrCase, MeddraRelease, Sender};
use super::{HL7_NS, IcsrError, oid, write};

/// A batch as read: its header (N.1) and its messages.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ReadBatch {
    /// N.1.1 type of messages in batch (`1` = ichicsr).
    pub batch_type: Option<String>,
    /// N.1.2 batch number.
    pub batch_id: Option<String>,
    /// N.1.3 batch sender identifier.
    pub batch_sender: Option<String>,
    /// N.1.4 batch receiver identifier.
    pub batch_receiver: Option<String>,
    /// N.1.5 date of batch transmission, as written.
    pub batch_date: Option<String>,
    /// One per `PORR_IN049016UV` message, in document order.
    pub cases: Vec<ReadCase>,
}

/// A value that is either given or replaced by an HL7 null flavour (`NI`, `UNK`, `MSK`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Coded {
    /// The value as written: a code, a boolean (`true`/`false`) or a text.
    Value(String),
    /// The null flavour written instead.
    NullFlavor(String),
}

impl Coded {
    /// The value, when not a null flavour.
    pub fn value(&self) -> Option<&str> {
        match self {
            Coded::Value(v) => Some(v),
            Coded::NullFlavor(_) => None,
        }
    }

    /// The null flavour, when it is one.
    pub fn null_flavor(&self) -> Option<&str> {
        match self {
            Coded::Value(_) => None,
            Coded::NullFlavor(f) => Some(f),
        }
    }

    fn value_of(text: &str) -> Self {
        Coded::Value(text.to_owned())
    }

    fn null(flavour: &str) -> Self {
        Coded::NullFlavor(flavour.to_owned())
    }
}

/// One message (one case version) as read.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ReadCase {
    /// N.2.r.1 message identifier.
    pub message_id: Option<String>,
    /// The version, from N.2.r.1 when it is `{C.1.1}-v{version}` (our writer's convention); `None` for
    /// messages written otherwise (E2B has no version element).
    pub version: Option<i32>,
    /// N.2.r.2 message sender identifier.
    pub message_sender: Option<String>,
    /// N.2.r.3 message receiver identifier.
    pub message_receiver: Option<String>,
    /// N.2.r.4 date of message creation.
    pub message_date: Option<String>,
    /// C.1.2 date of creation.
    pub creation_date: Option<String>,
    /// C.1.1 sender's (case) safety report unique identifier.
    pub safety_report_id: Option<String>,
    /// C.1.8.1 worldwide unique case identification.
    pub worldwide_id: Option<String>,
    /// C.1.3 type of report.
    pub report_type: Option<String>,
    /// C.1.4 date report was first received from source.
    pub first_received: Option<String>,
    /// C.1.5 date of most recent information for this report.
    pub most_recent: Option<String>,
    /// C.1.6.1 are additional documents available.
    pub additional_documents: Option<Coded>,
    /// C.1.7 does this case fulfil the local criteria for an expedited report.
    pub expedited: Option<Coded>,
    /// FDA.C.1.7.1 local criteria report type.
    pub local_criteria_report_type: Option<String>,
    /// FDA.C.1.12 combination product report indicator.
    pub combination_product: Option<Coded>,
    /// C.1.8.2 first sender of this case.
    pub first_sender: Option<String>,
    /// C.1.9.1 other case identifiers in previous transmissions.
    pub other_case_ids: Option<Coded>,
    /// C.1.11.1 report nullification / amendment (`1` = nullification).
    pub nullification: Option<String>,
    /// C.1.11.2 reason for nullification / amendment.
    pub nullification_reason: Option<String>,
    /// C.2.r primary sources.
    pub reporters: Vec<ReadReporter>,
    /// C.3 sender.
    pub sender: Option<ReadSender>,
    /// D patient.
    pub patient: ReadPatient,
    /// E.i reactions, in document order.
    pub reactions: Vec<ReadReaction>,
    /// G.k drugs, in document order.
    pub drugs: Vec<ReadDrug>,
    /// H.1 case narrative.
    pub narrative: Option<String>,
}

/// One primary source of information (C.2.r).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ReadReporter {
    /// C.2.r.5 primary source for regulatory purposes (`1`).
    pub primary: Option<String>,
    /// C.2.r.4 qualification.
    pub qualification: Option<Coded>,
    /// C.2.r.3 reporter's country code.
    pub country: Option<Coded>,
    /// FDA.C.2.r.2.8 reporter's e-mail (without `mailto:`).
    pub email: Option<Coded>,
}

/// The sender of the case safety report (C.3).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ReadSender {
    /// C.3.1 sender type.
    pub sender_type: Option<String>,
    /// C.3.2 sender's organisation.
    pub organisation: Option<String>,
    /// C.3.3.1 sender's department.
    pub department: Option<String>,
    /// C.3.3.2 sender's title.
    pub title: Option<String>,
    /// C.3.3.3 sender's given name.
    pub given_name: Option<String>,
    /// C.3.3.5 sender's family name.
    pub family_name: Option<String>,
    /// C.3.4.1 sender's street address.
    pub street: Option<String>,
    /// C.3.4.2 sender's city.
    pub city: Option<String>,
    /// C.3.4.3 sender's state or province.
    pub state: Option<String>,
    /// C.3.4.4 sender's postcode.
    pub postcode: Option<String>,
    /// C.3.4.5 sender's country code.
    pub country: Option<String>,
    /// C.3.4.6 sender's telephone (without `tel:`).
    pub telephone: Option<String>,
    /// C.3.4.7 sender's fax (without `fax:`).
    pub fax: Option<String>,
    /// C.3.4.8 sender's e-mail address (without `mailto:`).
    pub email: Option<String>,
}

/// The patient (D).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ReadPatient {
    /// D.1 patient (name or initials).
    pub name: Option<Coded>,
    /// D.5 sex.
    pub sex: Option<Coded>,
    /// D.2.3 patient age group.
    pub age_group: Option<Coded>,
    /// FDA.D.11.r patient race codes.
    pub race: Vec<Coded>,
    /// FDA.D.12 patient ethnicity code.
    pub ethnicity: Option<Coded>,
}

/// One reaction (E.i).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ReadReaction {
    /// E.i.1.1a reaction as reported by the primary source in native language.
    pub verbatim: Option<String>,
    /// E.i.1.1b its language.
    pub language: Option<String>,
    /// The code system of the reaction's term (MedDRA's OID when written by us).
    pub meddra_code_system: Option<String>,
    /// E.i.2.1a MedDRA version.
    pub meddra_version: Option<String>,
    /// E.i.2.1b MedDRA code.
    pub meddra_code: Option<String>,
    /// E.i.3.2a-f and FDA.E.i.3.2h.
    pub seriousness: ReadSeriousness,
    /// E.i.4 date of start of reaction.
    pub onset: Option<String>,
    /// E.i.7 outcome.
    pub outcome: Option<String>,
}

/// The seriousness criteria of a reaction: `true` or a null flavour each.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ReadSeriousness {
    /// E.i.3.2a results in death.
    pub death: Option<Coded>,
    /// E.i.3.2b life threatening.
    pub life_threatening: Option<Coded>,
    /// E.i.3.2c caused / prolonged hospitalisation.
    pub hospitalisation: Option<Coded>,
    /// E.i.3.2d disabling / incapacitating.
    pub disability: Option<Coded>,
    /// E.i.3.2e congenital anomaly / birth defect.
    pub congenital_anomaly: Option<Coded>,
    /// E.i.3.2f other medically important condition.
    pub other_medically_important: Option<Coded>,
    /// FDA.E.i.3.2h required intervention.
    pub required_intervention: Option<Coded>,
}

/// One drug (G.k).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ReadDrug {
    /// G.k.1 characterisation of drug role.
    pub role: Option<String>,
    /// G.k.2.2 medicinal product name as reported.
    pub name: Option<String>,
    /// G.k.4.r.1a dose (number), as written.
    pub dose: Option<String>,
    /// G.k.4.r.1b dose (unit).
    pub dose_unit: Option<String>,
    /// G.k.4.r.4 date and time of start of drug.
    pub start: Option<String>,
    /// G.k.4.r.5 date and time of last administration.
    pub end: Option<String>,
    /// G.k.4.r.10.1 route of administration (free text).
    pub route_text: Option<String>,
    /// G.k.4.r.10.2b route of administration term id.
    pub route_code: Option<String>,
    /// G.k.5a cumulative dose to first reaction (number), as written.
    pub cumulative_dose: Option<String>,
    /// G.k.5b cumulative dose to first reaction (unit).
    pub cumulative_unit: Option<String>,
    /// G.k.9.i.2.r assessments of relatedness to the reactions.
    pub assessments: Vec<ReadAssessment>,
    /// G.k.9.i.4 recurrence on re-administration, per reaction.
    pub recurrences: Vec<ReadRecurrence>,
}

/// One assessment of relatedness of a drug to a reaction (G.k.9.i.2.r).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ReadAssessment {
    /// The reaction assessed (G.k.9.i.1), as its index in [`ReadCase::reactions`]; `None` when the
    /// reference names no reaction of the message.
    pub reaction: Option<usize>,
    /// G.k.9.i.2.r.1 source of assessment.
    pub source: Option<String>,
    /// G.k.9.i.2.r.2 method of assessment.
    pub method: Option<String>,
    /// G.k.9.i.2.r.3 result of assessment.
    pub result: Option<String>,
}

/// Did a reaction recur on re-administration of a drug (G.k.9.i.4).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ReadRecurrence {
    /// The reaction, as its index in [`ReadCase::reactions`]; `None` when the reference names none.
    pub reaction: Option<usize>,
    /// The code (1-4).
    pub code: Option<String>,
}

/// The messages of a batch, one [`ReadCase`] each.
pub fn read_batch(xml: &str) -> Result<Vec<ReadCase>, IcsrError> {
    Ok(read(xml)?.cases)
}

/// The whole batch: header and messages.
pub fn read(xml: &str) -> Result<ReadBatch, IcsrError> {
    let doc = Document::parse(xml)?;
    batch_of(&doc)
}

/// The batch of a parsed document (shared with the rules, which parse once).
pub(crate) fn batch_of(doc: &Document<'_>) -> Result<ReadBatch, IcsrError> {
    let root = doc.root_element();
    if !is(root, "MCCI_IN200100UV01") {
        let name = root.tag_name();
        return Err(IcsrError::NotABatch(format!(
            "the root element is {{{}}}{}, not {{{HL7_NS}}}MCCI_IN200100UV01",
            name.namespace().unwrap_or_default(),
            name.name()
        )));
    }
    Ok(ReadBatch {
        batch_type: kids(root, "name")
            .find(|n| n.attribute("codeSystem") == Some(oid::BATCH_TYPE))
            .and_then(|n| attr(n, "code")),
        batch_id: id_with_root(root, oid::BATCH_NUMBER),
        batch_sender: device_id(root, "sender"),
        batch_receiver: device_id(root, "receiver"),
        batch_date: value_of(kid(root, "creationTime")),
        cases: kids(root, "PORR_IN049016UV").map(read_message).collect(),
    })
}

impl ReadCase {
    /// What an export of `case` in a batch created at `created_at_ms` by `sender` (with the MedDRA
    /// release `meddra`) reads back as: every field of the case, mapped to E2B as the writer maps it.
    pub fn expected(
        case: &IcsrCase,
        created_at_ms: i64,
        sender: &Sender,
        meddra: Option<&MeddraRelease>,
    ) -> Result<ReadCase, IcsrError> {
        let created = write::timestamp("C.1.2", created_at_ms)?;
        let report_id = write::safety_report_id(case, &sender.case_id_prefix);
        let expedited = write::expedited(case);
        Ok(ReadCase {
            message_id: Some(write::message_id(&report_id, case.version)),
            version: Some(case.version),
            message_sender: Some(sender.sender_id.clone()),
            message_receiver: Some(write::message_receiver(&sender.receiver_id).to_owned()),
            message_date: Some(created.clone()),
            creation_date: Some(created),
            safety_report_id: Some(report_id.clone()),
            worldwide_id: Some(report_id),
            report_type: Some("1".to_owned()),
            first_received: Some(write::timestamp("C.1.4", case.first_received_ms)?),
            most_recent: Some(write::timestamp("C.1.5", case.most_recent_ms)?),
            additional_documents: Some(Coded::value_of("false")),
            expedited: Some(Coded::value_of(if expedited { "true" } else { "false" })),
            local_criteria_report_type: Some(write::local_criteria(expedited).0.to_owned()),
            combination_product: Some(Coded::value_of("false")),
            first_sender: Some("2".to_owned()),
            other_case_ids: Some(Coded::null("NI")),
            nullification: case.nullification.then(|| "1".to_owned()),
            nullification_reason: case
                .nullification_reason
                .as_deref()
                .filter(|_| case.nullification)
                .map(write::normalise_line_ends),
            reporters: vec![expected_reporter(case, sender)],
            sender: Some(expected_sender(sender)),
            patient: expected_patient(case),
            reactions: expected_reactions(case, meddra)?,
            drugs: expected_drugs(case)?,
            narrative: Some(write::narrative(case)),
        })
    }
}

fn expected_reporter(case: &IcsrCase, sender: &Sender) -> ReadReporter {
    ReadReporter {
        primary: Some("1".to_owned()),
        qualification: Some(Coded::value_of(write::qualification(case.reporter).0)),
        country: Some(Coded::value_of(&sender.country)),
        email: Some(Coded::null("NASK")),
    }
}

fn expected_sender(sender: &Sender) -> ReadSender {
    let contact = sender.contact.as_ref();
    let text = |value: &str| Some(write::normalise_line_ends(value));
    ReadSender {
        sender_type: Some("1".to_owned()),
        organisation: text(&sender.organisation),
        department: contact.and_then(|c| text(&c.department)),
        title: contact.and_then(|c| text(&c.title)),
        given_name: contact.and_then(|c| text(&c.given_name)),
        family_name: contact.and_then(|c| text(&c.family_name)),
        street: contact.and_then(|c| text(&c.street)),
        city: contact.and_then(|c| text(&c.city)),
        state: contact.and_then(|c| text(&c.state)),
        postcode: contact.and_then(|c| text(&c.postcode)),
        country: Some(sender.country.clone()),
        telephone: contact.map(|c| c.telephone.clone()),
        fax: contact.map(|c| c.fax.clone()),
        email: contact.map(|c| c.email.clone()),
    }
}

fn expected_patient(case: &IcsrCase) -> ReadPatient {
    let name = if case.patient_key.is_empty() {
        Coded::null("MSK")
    } else {
        Coded::Value(write::normalise_line_ends(&case.patient_key))
    };
    let sex = match write::sex_code(case.sex) {
        write::Coding::Code(code, _) => Coded::value_of(code),
        write::Coding::Null(flavour) => Coded::null(flavour),
    };
    ReadPatient {
        name: Some(name),
        sex: Some(sex),
        age_group: case.age_band.map(|b| Coded::value_of(write::age_group(b).0)),
        race: vec![Coded::null("UNK")],
        ethnicity: Some(Coded::null("UNK")),
    }
}

fn expected_reactions(
    case: &IcsrCase,
    meddra: Option<&MeddraRelease>,
) -> Result<Vec<ReadReaction>, IcsrError> {
    let criterion = |met: bool| Some(if met { Coded::value_of("true") } else { Coded::null("NI") });
    let mut out = Vec::with_capacity(case.reactions.len());
    for r in &case.reactions {
        let term = match (meddra, r.pt_code) {
            (Some(m), Some(code)) => Some((write::meddra_code(code)?, m.version.clone())),
            _ => None,
        };
        let s = &r.seriousness;
        out.push(ReadReaction {
            verbatim: Some(write::normalise_line_ends(&r.verbatim)),
            language: Some(write::REACTION_LANGUAGE.to_owned()),
            meddra_code_system: Some(oid::MEDDRA.to_owned()),
            meddra_version: term.as_ref().map(|(_, v)| v.clone()),
            meddra_code: term.map(|(c, _)| c),
            seriousness: ReadSeriousness {
                death: criterion(s.death),
                life_threatening: criterion(s.life_threatening),
                hospitalisation: criterion(s.hospitalisation),
                disability: criterion(s.disability),
                congenital_anomaly: criterion(s.congenital_anomaly),
                other_medically_important: criterion(s.other_medically_important),
                required_intervention: Some(Coded::null("NI")),
            },
            onset: r.onset_day.map(|d| write::date("E.i.4", d)).transpose()?,
            outcome: Some(write::outcome(r.outcome).0.to_owned()),
        });
    }
    Ok(out)
}

fn expected_drugs(case: &IcsrCase) -> Result<Vec<ReadDrug>, IcsrError> {
    let reactions = case.reactions.len();
    let mut out = Vec::with_capacity(case.drugs.len());
    for d in write::drugs_in_order(case) {
        let dosing = d.dosing.as_ref();
        let route = d.route.map(write::route_term);
        out.push(ReadDrug {
            role: Some(write::role(d.role).0.to_owned()),
            name: Some(write::normalise_line_ends(&d.name)),
            dose: dosing.map(|x| write::quantity("G.k.4.r.1a", x.last_dose_mg)).transpose()?,
            dose_unit: dosing.map(|_| write::DOSE_UNIT.to_owned()),
            start: dosing.map(|x| write::timestamp("G.k.4.r.4", x.first_dose_ms)).transpose()?,
            end: dosing.map(|x| write::timestamp("G.k.4.r.5", x.last_dose_ms)).transpose()?,
            route_text: route.map(|r| r.text.to_owned()),
            route_code: route.map(|r| r.code.to_owned()),
            cumulative_dose: dosing.map(|x| write::quantity("G.k.5a", x.cumulative_mg)).transpose()?,
            cumulative_unit: dosing.map(|_| write::DOSE_UNIT.to_owned()),
            assessments: d
                .causality
                .map(|c| {
                    (0..reactions)
                        .map(|i| ReadAssessment {
                            reaction: Some(i),
                            source: Some(write::ASSESSMENT_SOURCE.to_owned()),
                            method: Some(write::ASSESSMENT_METHOD.to_owned()),
                            result: Some(write::causality_text(c).to_owned()),
                        })
                        .collect()
                })
                .unwrap_or_default(),
            recurrences: d
                .rechallenge
                .map(|c| {
                    let code = write::recurrence(c).0;
                    (0..reactions)
                        .map(|i| ReadRecurrence { reaction: Some(i), code: Some(code.to_owned()) })
                        .collect()
                })
                .unwrap_or_default(),
        });
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------------
// Reading a message.

fn read_message(m: Node<'_, '_>) -> ReadCase {
    let control = kid(m, "controlActProcess");
    let mut case = ReadCase {
        message_id: id_with_root(m, oid::REPORT_ID),
        message_sender: device_id(m, "sender"),
        message_receiver: device_id(m, "receiver"),
        message_date: value_of(kid(m, "creationTime")),
        creation_date: value_of(control.and_then(|c| kid(c, "effectiveTime"))),
        ..ReadCase::default()
    };
    if let Some(event) = control.and_then(|c| at(c, &["subject", "investigationEvent"])) {
        read_identification(&mut case, event);
        read_flags(&mut case, event);
        read_relations(&mut case, event);
        case.sender = read_sender(event);
        read_characteristics(&mut case, event);
        if let Some(assessment) = kids(event, "component").find_map(|c| kid(c, "adverseEventAssessment")) {
            read_assessment(&mut case, assessment);
        }
    }
    case.version = version_of(case.message_id.as_deref(), case.safety_report_id.as_deref());
    case
}

/// The version in an N.2.r.1 of the form `{C.1.1}-v{version}`.
fn version_of(message_id: Option<&str>, report_id: Option<&str>) -> Option<i32> {
    message_id?.strip_prefix(report_id?)?.strip_prefix("-v")?.parse().ok()
}

/// C.1.1, C.1.8.1, H.1, C.1.4, C.1.5.
fn read_identification(case: &mut ReadCase, event: Node<'_, '_>) {
    case.safety_report_id = id_with_root(event, oid::REPORT_ID);
    case.worldwide_id = id_with_root(event, oid::WORLDWIDE_ID);
    case.narrative = text_of(kid(event, "text"));
    case.first_received = value_of(at(event, &["effectiveTime", "low"]));
    case.most_recent = value_of(kid(event, "availabilityTime"));
}

/// C.1.6.1, C.1.7, FDA.C.1.7.1, FDA.C.1.12: `component/observationEvent`s told apart by their code.
fn read_flags(case: &mut ReadCase, event: Node<'_, '_>) {
    for observed in kids(event, "component").filter_map(|c| kid(c, "observationEvent")) {
        let value = kid(observed, "value");
        match code_of(observed) {
            Some(("1", oid::OBSERVATION)) => case.additional_documents = coded(value, "value"),
            Some(("23", oid::OBSERVATION)) => case.expedited = coded(value, "value"),
            Some(("C54588", oid::NCI)) => case.local_criteria_report_type = attr_of(value, "code"),
            Some(("C156384", oid::NCI)) => case.combination_product = coded(value, "value"),
            _ => {}
        }
    }
}

/// C.1.8.2 and the primary sources (C.2.r): `outboundRelationship/relatedInvestigation`s by code.
fn read_relations(case: &mut ReadCase, event: Node<'_, '_>) {
    for relation in kids(event, "outboundRelationship") {
        let Some(related) = kid(relation, "relatedInvestigation") else { continue };
        let entity = at(related, &["subjectOf2", "controlActEvent", "author", "assignedEntity"]);
        match code_of(related) {
            Some(("1", oid::REPORT_RELATION)) => {
                case.first_sender = attr_of(entity.and_then(|e| kid(e, "code")), "code");
            }
            Some(("2", oid::REPORT_RELATION)) => {
                let person = entity.and_then(|e| kid(e, "assignedPerson"));
                case.reporters.push(ReadReporter {
                    primary: value_of(kid(relation, "priorityNumber")),
                    qualification: coded(person.and_then(|p| at(p, &["asQualifiedEntity", "code"])), "code"),
                    country: coded(
                        person.and_then(|p| at(p, &["asLocatedEntity", "location", "code"])),
                        "code",
                    ),
                    email: entity.and_then(|e| telecom(e, "mailto")),
                });
            }
            _ => {}
        }
    }
}

/// C.3: the `subjectOf1/controlActEvent/author/assignedEntity` whose code is a sender type.
fn read_sender(event: Node<'_, '_>) -> Option<ReadSender> {
    let entity = kids(event, "subjectOf1")
        .filter_map(|s| at(s, &["controlActEvent", "author", "assignedEntity"]))
        .find(|e| kid(*e, "code").is_some_and(|c| c.attribute("codeSystem") == Some(oid::SENDER_TYPE)))?;
    let person = kid(entity, "assignedPerson");
    let name = person.and_then(|p| kid(p, "name"));
    let addr = kid(entity, "addr");
    let organisation = kid(entity, "representedOrganization");
    let in_name = |part: &str| text_of(name.and_then(|n| kid(n, part)));
    let in_addr = |part: &str| text_of(addr.and_then(|a| kid(a, part)));
    let telecom_value = |scheme: &str| telecom(entity, scheme).and_then(|t| t.value().map(str::to_owned));
    Some(ReadSender {
        sender_type: attr_of(kid(entity, "code"), "code"),
        organisation: text_of(
            organisation.and_then(|o| at(o, &["assignedEntity", "representedOrganization", "name"])),
        ),
        department: text_of(organisation.and_then(|o| kid(o, "name"))),
        title: in_name("prefix"),
        given_name: in_name("given"),
        family_name: in_name("family"),
        street: in_addr("streetAddressLine"),
        city: in_addr("city"),
        state: in_addr("state"),
        postcode: in_addr("postalCode"),
        country: attr_of(person.and_then(|p| at(p, &["asLocatedEntity", "location", "code"])), "code"),
        telephone: telecom_value("tel"),
        fax: telecom_value("fax"),
        email: telecom_value("mailto"),
    })
}

/// C.1.3, C.1.9.1, C.1.11.1, C.1.11.2: `subjectOf2/investigationCharacteristic`s by code.
fn read_characteristics(case: &mut ReadCase, event: Node<'_, '_>) {
    for characteristic in kids(event, "subjectOf2").filter_map(|s| kid(s, "investigationCharacteristic")) {
        let value = kid(characteristic, "value");
        match code_of(characteristic) {
            Some(("1", oid::CHARACTERISTIC)) => case.report_type = attr_of(value, "code"),
            Some(("2", oid::CHARACTERISTIC)) => case.other_case_ids = coded(value, "value"),
            Some(("3", oid::CHARACTERISTIC)) => case.nullification = attr_of(value, "code"),
            Some(("4", oid::CHARACTERISTIC)) => {
                case.nullification_reason = text_of(value.and_then(|v| kid(v, "originalText")));
            }
            _ => {}
        }
    }
}

/// The reactions' UUIDs in document order, to resolve the assessments' references.
struct ReactionIds<'a>(Vec<Option<&'a str>>);

impl ReactionIds<'_> {
    fn index(&self, id: Option<&str>) -> Option<usize> {
        let id = id?;
        self.0.iter().position(|r| *r == Some(id))
    }
}

/// D, E and G, and the drug roles and causality assessments that refer to them by UUID.
fn read_assessment(case: &mut ReadCase, assessment: Node<'_, '_>) {
    let Some(role) = at(assessment, &["subject1", "primaryRole"]) else { return };
    case.patient = read_patient(role);
    let reactions: Vec<Node<'_, '_>> = kids(role, "subjectOf2")
        .filter_map(|s| kid(s, "observation"))
        .filter(|o| code_of(*o) == Some(("29", oid::OBSERVATION)))
        .collect();
    let reaction_ids = ReactionIds(reactions.iter().map(|r| root_of(kid(*r, "id"))).collect());
    case.reactions = reactions.into_iter().map(read_reaction).collect();
    let drugs: Vec<Node<'_, '_>> = kids(role, "subjectOf2")
        .filter_map(|s| kid(s, "organizer"))
        .filter(|o| code_of(*o) == Some(("4", oid::ORGANIZER)))
        .flat_map(|o| kids(o, "component"))
        .filter_map(|c| kid(c, "substanceAdministration"))
        .collect();
    let drug_ids: Vec<Option<&str>> = drugs.iter().map(|d| root_of(kid(*d, "id"))).collect();
    case.drugs = drugs.into_iter().map(|d| read_drug(d, &reaction_ids)).collect();
    for judged in kids(assessment, "component").filter_map(|c| kid(c, "causalityAssessment")) {
        let product = root_of(at(judged, &["subject2", "productUseReference", "id"]));
        let Some(drug) = product.and_then(|p| drug_ids.iter().position(|d| *d == Some(p))) else { continue };
        let Some(drug) = case.drugs.get_mut(drug) else { continue };
        match code_of(judged) {
            Some(("20", oid::OBSERVATION)) => drug.role = attr_of(kid(judged, "value"), "code"),
            Some(("39", oid::OBSERVATION)) => drug.assessments.push(ReadAssessment {
                reaction: reaction_ids
                    .index(root_of(at(judged, &["subject1", "adverseEffectReference", "id"]))),
                source: text_of(at(judged, &["author", "assignedEntity", "code", "originalText"])),
                method: text_of(at(judged, &["methodCode", "originalText"])),
                result: text_of(kid(judged, "value")),
            }),
            _ => {}
        }
    }
}

/// D.1, D.5, and the `subjectOf2/observation`s of D.2.3, FDA.D.11.r and FDA.D.12.
fn read_patient(role: Node<'_, '_>) -> ReadPatient {
    let player = kid(role, "player1");
    let mut patient = ReadPatient {
        name: player.and_then(|p| kid(p, "name")).map(coded_text),
        sex: coded(player.and_then(|p| kid(p, "administrativeGenderCode")), "code"),
        ..ReadPatient::default()
    };
    for observed in kids(role, "subjectOf2").filter_map(|s| kid(s, "observation")) {
        let value = kid(observed, "value");
        match code_of(observed) {
            Some(("4", oid::OBSERVATION)) => patient.age_group = coded(value, "code"),
            Some(("C17049", oid::NCI)) => patient.race.extend(coded(value, "code")),
            Some(("C16564", oid::NCI)) => patient.ethnicity = coded(value, "code"),
            _ => {}
        }
    }
    patient
}

/// E.i: the term (E.i.1.1a/b, E.i.2.1a/b), onset (E.i.4), and the `outboundRelationship2/observation`s
/// of the seriousness criteria and the outcome, by code.
fn read_reaction(observed: Node<'_, '_>) -> ReadReaction {
    let term = kid(observed, "value");
    let original = term.and_then(|t| kid(t, "originalText"));
    let mut reaction = ReadReaction {
        verbatim: text_of(original),
        language: attr_of(original, "language"),
        meddra_code_system: attr_of(term, "codeSystem"),
        meddra_version: attr_of(term, "codeSystemVersion"),
        meddra_code: attr_of(term, "code"),
        onset: value_of(at(observed, &["effectiveTime", "low"])),
        ..ReadReaction::default()
    };
    for criterion in kids(observed, "outboundRelationship2").filter_map(|r| kid(r, "observation")) {
        let value = coded(kid(criterion, "value"), "value");
        let s = &mut reaction.seriousness;
        match code_of(criterion) {
            Some(("34", oid::OBSERVATION)) => s.death = value,
            Some(("21", oid::OBSERVATION)) => s.life_threatening = value,
            Some(("33", oid::OBSERVATION)) => s.hospitalisation = value,
            Some(("35", oid::OBSERVATION)) => s.disability = value,
            Some(("12", oid::OBSERVATION)) => s.congenital_anomaly = value,
            Some(("26", oid::OBSERVATION)) => s.other_medically_important = value,
            Some(("7", oid::FDA_OBSERVATION)) => s.required_intervention = value,
            Some(("27", oid::OBSERVATION)) => reaction.outcome = attr_of(kid(criterion, "value"), "code"),
            _ => {}
        }
    }
    reaction
}

/// G.k.2.2, the first dosage (G.k.4.r), the cumulative dose (G.k.5) and the recurrences (G.k.9.i.4).
fn read_drug(drug: Node<'_, '_>, reactions: &ReactionIds<'_>) -> ReadDrug {
    let related = |type_code: &'static str| {
        kids(drug, "outboundRelationship2").filter(move |r| r.attribute("typeCode") == Some(type_code))
    };
    let dosage = related("COMP").find_map(|r| kid(r, "substanceAdministration"));
    let (start, end) = dosage.map(interval).unwrap_or_default();
    let route = dosage.and_then(|d| kid(d, "routeCode"));
    let dose = dosage.and_then(|d| kid(d, "doseQuantity"));
    let cumulative = related("SUMM")
        .filter_map(|r| kid(r, "observation"))
        .find(|o| code_of(*o) == Some(("14", oid::OBSERVATION)))
        .and_then(|o| kid(o, "value"));
    let recurrences = related("PERT")
        .filter_map(|r| kid(r, "observation"))
        .filter(|o| code_of(*o) == Some(("31", oid::OBSERVATION)))
        .map(|o| ReadRecurrence {
            reaction: reactions.index(root_of(at(o, &["outboundRelationship1", "actReference", "id"]))),
            code: attr_of(kid(o, "value"), "code"),
        })
        .collect();
    ReadDrug {
        role: None,
        name: text_of(at(drug, &["consumable", "instanceOfKind", "kindOfProduct", "name"])),
        dose: attr_of(dose, "value"),
        dose_unit: attr_of(dose, "unit"),
        start,
        end,
        route_text: text_of(route.and_then(|r| kid(r, "originalText"))),
        route_code: attr_of(route, "code"),
        cumulative_dose: attr_of(cumulative, "value"),
        cumulative_unit: attr_of(cumulative, "unit"),
        assessments: Vec::new(),
        recurrences,
    }
}

/// G.k.4.r.4 and G.k.4.r.5: the `low` and `high` of the dosage's IVL_TS, or of the IVL_TS part of an
/// SXPR_TS (as FDA's Scenario 6 writes it).
fn interval(dosage: Node<'_, '_>) -> (Option<String>, Option<String>) {
    let Some(time) = kid(dosage, "effectiveTime") else { return (None, None) };
    let bounded = |n: &Node<'_, '_>| kid(*n, "low").is_some() || kid(*n, "high").is_some();
    let ivl = if bounded(&time) { Some(time) } else { kids(time, "comp").find(bounded) };
    (value_of(ivl.and_then(|i| kid(i, "low"))), value_of(ivl.and_then(|i| kid(i, "high"))))
}

// ---------------------------------------------------------------------------------------------------
// Navigation, in the HL7 namespace only.

/// Whether `node` is the HL7 element `name`.
pub(crate) fn is(node: Node<'_, '_>, name: &str) -> bool {
    node.is_element() && node.tag_name().name() == name && node.tag_name().namespace() == Some(HL7_NS)
}

/// The HL7 child elements called `name`.
fn kids<'a, 'i>(node: Node<'a, 'i>, name: &str) -> impl Iterator<Item = Node<'a, 'i>> {
    node.children().filter(move |c| is(*c, name))
}

/// The first HL7 child element called `name`.
fn kid<'a, 'i>(node: Node<'a, 'i>, name: &str) -> Option<Node<'a, 'i>> {
    kids(node, name).next()
}

/// The first element down a path of child names.
fn at<'a, 'i>(node: Node<'a, 'i>, path: &[&str]) -> Option<Node<'a, 'i>> {
    path.iter().try_fold(node, |n, name| kid(n, name))
}

/// An element's `code` child's code and code system.
fn code_of<'a>(node: Node<'a, '_>) -> Option<(&'a str, &'a str)> {
    let code = kid(node, "code")?;
    Some((code.attribute("code")?, code.attribute("codeSystem")?))
}

fn attr(node: Node<'_, '_>, name: &str) -> Option<String> {
    node.attribute(name).map(str::to_owned)
}

fn attr_of(node: Option<Node<'_, '_>>, name: &str) -> Option<String> {
    node.and_then(|n| attr(n, name))
}

fn value_of(node: Option<Node<'_, '_>>) -> Option<String> {
    attr_of(node, "value")
}

fn root_of<'a>(node: Option<Node<'a, '_>>) -> Option<&'a str> {
    node.and_then(|n| n.attribute("root"))
}

/// The text content of an element (its text children, entities resolved).
fn text_of(node: Option<Node<'_, '_>>) -> Option<String> {
    node.map(|n| n.children().filter(Node::is_text).filter_map(|t| t.text()).collect())
}

/// The `extension` of the first `id` child with the given `root`.
fn id_with_root(node: Node<'_, '_>, root: &str) -> Option<String> {
    kids(node, "id").find(|i| i.attribute("root") == Some(root)).and_then(|i| attr(i, "extension"))
}

/// `wrapper/device/id/@extension` of the batch or message routing.
fn device_id(node: Node<'_, '_>, wrapper: &str) -> Option<String> {
    attr_of(at(node, &[wrapper, "device", "id"]), "extension")
}

/// A coded attribute or the element's null flavour.
fn coded(node: Option<Node<'_, '_>>, name: &str) -> Option<Coded> {
    let node = node?;
    match node.attribute("nullFlavor") {
        Some(flavour) => Some(Coded::null(flavour)),
        None => node.attribute(name).map(Coded::value_of),
    }
}

/// An element's text or its null flavour.
fn coded_text(node: Node<'_, '_>) -> Coded {
    match node.attribute("nullFlavor") {
        Some(flavour) => Coded::null(flavour),
        None => Coded::Value(text_of(Some(node)).unwrap_or_default()),
    }
}

/// The `telecom` child with a URL scheme (`tel`, `fax`, `mailto`): its address without the scheme, or its
/// null flavour (FDA writes a null e-mail as `nullFlavor="NASK" value="mailto"`).
fn telecom(entity: Node<'_, '_>, scheme: &str) -> Option<Coded> {
    let t = kids(entity, "telecom").find(|t| t.attribute("value").is_some_and(|v| v.starts_with(scheme)))?;
    if let Some(flavour) = t.attribute("nullFlavor") {
        return Some(Coded::null(flavour));
    }
    let value = t.attribute("value")?;
    let address = value.strip_prefix(scheme).and_then(|v| v.strip_prefix(':')).unwrap_or(value);
    Some(Coded::value_of(address))
}

#[cfg(test)]
mod tests {
    use pv_events::{AgeBand, ChallengeResult, Sex};

    use super::super::sample;
    use super::super::write::batch_xml;
    use super::*;

    fn round_trip(meddra: Option<&MeddraRelease>) -> (ReadCase, ReadCase) {
        let case = sample::case();
        let sender = sample::sender();
        let xml = batch_xml(&sample::batch(vec![case.clone()]), &sender, meddra).expect("writes");
        let mut read = read_batch(&xml).expect("reads");
        assert_eq!(read.len(), 1, "one message per case");
        let expected = ReadCase::expected(&case, sample::CREATED_MS, &sender, meddra).expect("expected");
        (read.remove(0), expected)
    }

    /// The sample (two reactions, two drugs, no MedDRA release) reads back field by field; the values
    /// that matter are also checked literally, independently of the writer's mapping functions.
    #[test]
    fn the_export_reads_back_as_the_case_it_came_from() {
        let (read, expected) = round_trip(None);
        assert_eq!(read, expected);
        assert_eq!(read.version, Some(2));
        assert_eq!(read.safety_report_id.as_deref(), Some("US-PVDEMO-clinic-01-R-0042"));
        assert_eq!(read.worldwide_id, read.safety_report_id);
        assert_eq!(read.message_id.as_deref(), Some("US-PVDEMO-clinic-01-R-0042-v2"));
        assert_eq!(read.message_receiver.as_deref(), Some("CDER"));
        assert_eq!(read.creation_date.as_deref(), Some("20260110120000+0000"));
        assert_eq!(read.first_received.as_deref(), Some("20260103140000+0000"));
        assert_eq!(read.most_recent.as_deref(), Some("20260108081500+0000"));
        assert_eq!(read.expedited, Some(Coded::Value("true".into())), "the first reaction is serious");
        assert_eq!(read.local_criteria_report_type.as_deref(), Some("1"));
        assert_eq!(read.nullification, None, "a follow-up is not an amendment");
        let reporter = &read.reporters[0];
        assert_eq!(reporter.qualification, Some(Coded::Value("1".into())));
        assert_eq!(reporter.country, Some(Coded::Value("US".into())));
        assert_eq!(read.patient.name, Some(Coded::Value("PK-3f9a1c".into())));
        assert_eq!(read.patient.sex, Some(Coded::Value("2".into())));
        assert_eq!(read.patient.age_group, Some(Coded::Value("5".into())));
        let [serious, other] = &read.reactions[..] else { panic!("two reactions") };
        assert_eq!(serious.verbatim.as_deref(), Some("Severe hypertension after the infusion"));
        assert_eq!(serious.language.as_deref(), Some("eng"));
        assert_eq!((serious.meddra_code.as_deref(), serious.meddra_version.as_deref()), (None, None));
        assert_eq!(serious.seriousness.hospitalisation, Some(Coded::Value("true".into())));
        assert_eq!(serious.seriousness.death, Some(Coded::NullFlavor("NI".into())));
        assert_eq!(serious.onset.as_deref(), Some("20260102"));
        assert_eq!(serious.outcome.as_deref(), Some("1"));
        assert_eq!(other.onset, None);
        assert_eq!(other.outcome.as_deref(), Some("2"));
        assert_eq!(other.seriousness.hospitalisation, Some(Coded::NullFlavor("NI".into())));
        let [ketamine, concomitant] = &read.drugs[..] else { panic!("two drugs") };
        assert_eq!((ketamine.role.as_deref(), concomitant.role.as_deref()), (Some("1"), Some("2")));
        assert_eq!(ketamine.name.as_deref(), Some("Ketamine hydrochloride"));
        assert_eq!((ketamine.dose.as_deref(), ketamine.dose_unit.as_deref()), (Some("35.5"), Some("mg")));
        assert_eq!(ketamine.start.as_deref(), Some("20251201100000+0000"));
        assert_eq!(ketamine.end.as_deref(), Some("20260102093000+0000"));
        assert_eq!(ketamine.route_text.as_deref(), Some("Intravenous"));
        assert_eq!(ketamine.route_code.as_deref(), Some("C38276"));
        assert_eq!(ketamine.cumulative_dose.as_deref(), Some("210"));
        let assessed: Vec<_> =
            ketamine.assessments.iter().map(|a| (a.reaction, a.result.as_deref())).collect();
        assert_eq!(assessed, [(Some(0), Some("Probable/Likely")), (Some(1), Some("Probable/Likely"))]);
        assert_eq!(ketamine.assessments[0].method.as_deref(), Some("WHO-UMC"));
        let recurred: Vec<_> = ketamine.recurrences.iter().map(|r| (r.reaction, r.code.as_deref())).collect();
        assert_eq!(recurred, [(Some(0), Some("2")), (Some(1), Some("2"))]);
        let bare =
            ReadDrug { role: Some("2".into()), name: Some("Sertraline".into()), ..ReadDrug::default() };
        assert_eq!(concomitant, &bare, "a concomitant drug with nothing else recorded");
        let narrative = read.narrative.as_deref().unwrap_or_default();
        assert!(narrative.starts_with("Blood pressure rose"), "{narrative}");
        assert!(
            narrative.ends_with("\n\nDechallenge: positive (drug Ketamine hydrochloride)"),
            "{narrative}"
        );
    }

    /// With a licensed release and PT codes, E.i.2.1a/b are written with MedDRA's OID.
    #[test]
    fn meddra_codes_are_written_with_a_licensed_release() {
        let (read, expected) = round_trip(Some(&sample::meddra()));
        assert_eq!(read, expected);
        let codes: Vec<_> = read.reactions.iter().map(|r| r.meddra_code.as_deref()).collect();
        assert_eq!(codes, [Some("10020772"), Some("10013457")]);
        for r in &read.reactions {
            assert_eq!(r.meddra_version.as_deref(), Some("27.1"));
            assert_eq!(r.meddra_code_system.as_deref(), Some("2.16.840.1.113883.6.163"));
        }
    }

    /// A nullification writes C.1.11.1 = 1 and its reason; without a reason, or for version 1, it is
    /// not written at all.
    #[test]
    fn a_nullification_carries_code_and_reason() {
        let sender = sample::sender();
        let mut case = sample::case();
        case.version = 3;
        case.nullification = true;
        case.nullification_reason = Some("Duplicate of US-PVDEMO-clinic-02-R-7".into());
        let xml = batch_xml(&sample::batch(vec![case.clone()]), &sender, None).expect("writes");
        let read = read_batch(&xml).expect("reads").remove(0);
        assert_eq!(read, ReadCase::expected(&case, sample::CREATED_MS, &sender, None).expect("expected"));
        assert_eq!(read.nullification.as_deref(), Some("1"));
        assert_eq!(read.nullification_reason.as_deref(), Some("Duplicate of US-PVDEMO-clinic-02-R-7"));
        assert_eq!(read.version, Some(3));

        case.nullification_reason = Some("  ".into());
        let err = batch_xml(&sample::batch(vec![case.clone()]), &sender, None).expect_err("no reason");
        assert!(matches!(err, IcsrError::Invalid { element: "C.1.11.2", .. }), "{err}");
        case.nullification_reason = Some("Entered in error".into());
        case.version = 1;
        let err = batch_xml(&sample::batch(vec![case]), &sender, None).expect_err("initial nullification");
        assert!(matches!(err, IcsrError::Invalid { element: "C.1.11.1", .. }), "{err}");
    }

    /// XML's special characters and non-ASCII text survive; line ends arrive as LF, as any parser reads them.
    #[test]
    fn special_characters_survive_the_round_trip() {
        let sender = sample::sender();
        let mut case = sample::case();
        let said = "She said: <\"I'm floating\"> & 'unreal' \u{2014} naïve café, 日本語.";
        case.narrative = Some(format!("{said}\r\nNext line\rlast"));
        case.reactions[1].verbatim = "Feeling <detached> & \"unreal\"".into();
        case.drugs[1].name = "Sertraline \"Zoloft\" & co".into();
        case.patient_key = "K&<'>".into();
        let xml = batch_xml(&sample::batch(vec![case.clone()]), &sender, None).expect("writes");
        assert!(
            xml.contains("She said: &lt;&quot;I&apos;m floating&quot;&gt; &amp; &apos;unreal&apos;"),
            "{xml}"
        );
        let read = read_batch(&xml).expect("reads").remove(0);
        assert_eq!(read, ReadCase::expected(&case, sample::CREATED_MS, &sender, None).expect("expected"));
        let narrative = read.narrative.unwrap_or_default();
        assert!(
            narrative.starts_with(&format!("{said}\nNext line\nlast\n\nDechallenge: positive")),
            "{narrative}"
        );
        assert_eq!(read.reactions[1].verbatim.as_deref(), Some("Feeling <detached> & \"unreal\""));
        assert_eq!(read.patient.name, Some(Coded::Value("K&<'>".into())));
    }

    /// The other mappings: elderly, male, "other" sex masked, no sex recorded unknown, no narrative
    /// generated, an empty patient key masked, a rechallenge not done.
    #[test]
    fn the_remaining_codes_map_as_documented() {
        let sender = sample::sender();
        let mut male = sample::case();
        male.age_band = Some(AgeBand::Age75Plus);
        male.sex = Some(Sex::Male);
        male.narrative = None;
        male.patient_key = String::new();
        male.drugs[0].rechallenge = Some(ChallengeResult::NotApplicable);
        let mut other = sample::case();
        other.report_id = "R-0043".into();
        other.sex = Some(Sex::Other);
        other.age_band = None;
        let mut unknown = sample::case();
        unknown.report_id = "R-0044".into();
        unknown.sex = None;
        let cases = vec![male, other, unknown];
        let xml = batch_xml(&sample::batch(cases.clone()), &sender, None).expect("writes");
        let read = read_batch(&xml).expect("reads");
        for (case, read) in cases.iter().zip(&read) {
            assert_eq!(read, &ReadCase::expected(case, sample::CREATED_MS, &sender, None).expect("expected"));
        }
        assert_eq!(read[0].patient.age_group, Some(Coded::Value("6".into())));
        assert_eq!(read[0].patient.sex, Some(Coded::Value("1".into())));
        assert_eq!(read[0].patient.name, Some(Coded::NullFlavor("MSK".into())));
        assert_eq!(read[0].drugs[0].recurrences[0].code.as_deref(), Some("4"));
        let generated = read[0].narrative.as_deref().unwrap_or_default();
        assert!(generated.contains("Severe hypertension after the infusion; Dissociation"), "{generated}");
        assert_eq!(read[1].patient.sex, Some(Coded::NullFlavor("MSK".into())));
        assert_eq!(read[1].patient.age_group, None, "an unknown age band is left out");
        assert_eq!(read[2].patient.sex, Some(Coded::NullFlavor("UNK".into())));
    }

    /// FDA's own Scenario 1 reads: the reader is not tied to our writer.
    #[test]
    fn fda_scenario_1_reads() {
        let batch = read(&sample::scenario1()).expect("reads");
        assert_eq!(batch.batch_receiver.as_deref(), Some("ZZFDA"));
        assert_eq!(batch.batch_date.as_deref(), Some("20220614101010-0500"));
        let [case] = &batch.cases[..] else { panic!("one message") };
        assert_eq!(case.safety_report_id.as_deref(), Some("US-APHARMA-8744554B"));
        assert_eq!(case.version, None, "FDA's message id does not follow our convention");
        assert_eq!(case.patient.name, Some(Coded::Value("JD".into())));
        assert_eq!(case.reactions.len(), 2);
        assert_eq!(case.reactions[0].meddra_code.as_deref(), Some("10027940"));
        assert_eq!(case.reactions[0].seriousness.disability, Some(Coded::Value("true".into())));
        let roles: Vec<_> = case.drugs.iter().map(|d| d.role.as_deref()).collect();
        assert_eq!(roles, [Some("1"), Some("1"), Some("2")]);
        assert_eq!(case.drugs[0].route_text.as_deref(), Some("Oral"));
        assert_eq!(case.drugs[0].assessments.len(), 2);
        assert!(case.drugs.iter().flat_map(|d| &d.assessments).all(|a| a.reaction.is_some()));
        assert_eq!(case.sender.as_ref().and_then(|s| s.organisation.as_deref()), Some("Big Pharma Drug"));
    }

    #[test]
    fn a_document_that_is_not_a_batch_is_refused() {
        assert!(matches!(read("<a/>"), Err(IcsrError::NotABatch(_))));
        assert!(matches!(read("<MCCI_IN200100UV01>"), Err(IcsrError::Parse(_))));
    }
}

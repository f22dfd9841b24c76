//! What the signals service reads (aggregates) and writes (results).

use std::collections::BTreeSet;

pub use pv_store::signals::SignalResult;

/// An enum whose variants have fixed lower-case names: what results store and signal events
/// carry. Each name is written beside its variant.
macro_rules! named_enum {
    ($(#[$doc:meta])* pub enum $name:ident { $($(#[$vdoc:meta])* $variant:ident = $n:literal => $text:literal,)+ }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vdoc])* $variant = $n,)+
        }

        impl $name {
            /// Lower-case name (as stored and in signal events).
            pub fn name(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }
    };
}

named_enum! {
    /// The analyses.
    pub enum Analysis {
        /// PRR, ROR, IC, EBGM of a product/route/dose-band stratum against the other strata.
        Disproportionality = 1 => "disproportionality",
        /// Cases per 1,000 administrations, per stratum and dose band.
        IncidenceAdministrations = 2 => "incidence_per_1000_administrations",
        /// Trend of incidence across cumulative-dose bands.
        DoseResponse = 3 => "dose_response",
        /// Days from first dose to onset (median and quartiles).
        TimeToOnset = 4 => "time_to_onset",
        /// Dependence markers as shares of patients (earlier releases; kept for their stored
        /// results: markers are now person-time analyses of protocol deviations).
        DependenceMarker = 5 => "dependence_marker",
        /// Poisson MaxSPRT per 1,000 administrations (earlier releases; kept for their stored
        /// results, no longer computed: see `SequentialTest`).
        MaxSprt = 6 => "maxsprt",
        /// Incident cases per 100 patient-years at risk (person-time analyses).
        IncidencePatientYears = 7 => "incidence_per_100_patient_years",
        /// Adjusted rate ratios from Poisson regression on person-time: dose bands, trend,
        /// products and routes.
        RateRatio = 8 => "rate_ratio",
        /// Sequential test (MaxSPRT or CMaxSPRT) of a monitored harm per product, on
        /// person-time against its background.
        SequentialTest = 9 => "sequential_test",
        /// A clinic's reporting rate against its history and the other clinics (artefacts).
        ReportingRate = 10 => "reporting_rate",
    }
}

named_enum! {
    /// The time window of a result.
    pub enum Window {
        /// The last `period_days`.
        Period = 1 => "period",
        /// Everything so far.
        Cumulative = 2 => "cumulative",
    }
}

/// Product, route and formulation: the unit most analyses are stratified by.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Stratum {
    #[allow(missing_docs)]
    pub product: String,
    #[allow(missing_docs)]
    pub route: String,
    #[allow(missing_docs)]
    pub formulation: String,
}

impl Stratum {
    /// A stratum from its three parts.
    pub fn new(product: &str, route: &str, formulation: &str) -> Self {
        Self { product: product.into(), route: route.into(), formulation: formulation.into() }
    }

    /// The whole product (any route and formulation).
    pub fn product_only(&self) -> Self {
        Self { product: self.product.clone(), route: "*".into(), formulation: "*".into() }
    }
}

/// Administrations in one stratum and cumulative-dose band.
#[derive(Debug, Clone, PartialEq)]
pub struct DoseCell {
    #[allow(missing_docs)]
    pub stratum: Stratum,
    /// Band index (see [`crate::SignalsConfig::band_of`]).
    pub band: usize,
    /// Administrations.
    pub administrations: u64,
}

/// Who a case is: what the contributions record of it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CaseRef {
    /// The clinic.
    pub clinic_id: String,
    /// The clinic's report id.
    pub report_id: String,
    /// The version counted (the latest).
    pub version: i32,
    /// The patient's pseudonymous key.
    pub patient_key: String,
    /// Onset: the instant the patient's exposure was taken as of (ms since the epoch).
    pub onset_ms: i64,
}

/// One case: the latest version of a report, not nullified.
#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    /// Who it is.
    pub who: CaseRef,
    /// Product and route of the first suspect drug; the patient's formulation.
    pub stratum: Stratum,
    /// Cumulative-dose band at onset.
    pub band: usize,
    /// Event groups of its reactions.
    pub groups: BTreeSet<String>,
    /// Coded preferred terms of its reactions.
    pub pts: BTreeSet<String>,
    /// Days from the first dose to onset.
    pub days_from_first_dose: Option<f64>,
}

/// Everything one window's analyses need.
#[derive(Debug, Clone, PartialEq)]
pub struct Inputs {
    /// The window.
    pub window: Window,
    /// Administrations per stratum and band.
    pub doses: Vec<DoseCell>,
    /// Cases.
    pub cases: Vec<Case>,
    /// Preferred terms coded to a monitored harm's event group (in any case of the window).
    pub harm_pts: BTreeSet<String>,
    /// Administrations per stratum, clinic and month (cumulative window only; empty otherwise):
    /// the breakdown the workbench draws, counted as the analyses count.
    pub exposure: Vec<MonthExposure>,
}

/// Administrations of one stratum at one clinic in one month.
#[derive(Debug, Clone, PartialEq)]
pub struct MonthExposure {
    #[allow(missing_docs)]
    pub stratum: Stratum,
    /// The clinic.
    pub clinic_id: String,
    /// The month's first day (days since 1970-01-01).
    pub month: u16,
    /// Administrations.
    pub administrations: u64,
}

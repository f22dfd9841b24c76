//! Time values shared by the JSON API and the Avro wire format.
//!
//! The same Rust types serve both formats: in human-readable formats (JSON) a [`Timestamp`] is an
//! RFC 3339 string and a [`Date`] is `YYYY-MM-DD`; in Avro (not human-readable) they are the
//! `timestamp-millis` long and the `date` int the schemas declare.

use std::fmt;

use chrono::{DateTime, NaiveDate, SecondsFormat, TimeZone, Utc};
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An instant in UTC with millisecond precision (Avro `timestamp-millis`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The instant `millis` milliseconds after the Unix epoch.
    pub const fn from_millis(millis: i64) -> Self {
        Self(millis)
    }

    /// Milliseconds since the Unix epoch.
    pub const fn millis(self) -> i64 {
        self.0
    }

    /// The current time.
    pub fn now() -> Self {
        Self(Utc::now().timestamp_millis())
    }

    /// As a chrono UTC date-time (`None` only outside chrono's range, about ±262,000 years).
    pub fn to_datetime(self) -> Option<DateTime<Utc>> {
        Utc.timestamp_millis_opt(self.0).single()
    }

    /// Parses an RFC 3339 timestamp with an explicit offset (`Z` or `+hh:mm`), converting it to UTC.
    pub fn parse_rfc3339(s: &str) -> Result<Self, String> {
        DateTime::parse_from_rfc3339(s).map(|t| Self(t.timestamp_millis())).map_err(|e| {
            format!("`{s}` is not an RFC 3339 timestamp with offset, e.g. 2026-01-31T14:05:00Z ({e})")
        })
    }
}

impl From<DateTime<Utc>> for Timestamp {
    fn from(t: DateTime<Utc>) -> Self {
        Self(t.timestamp_millis())
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.to_datetime() {
            Some(t) => f.write_str(&t.to_rfc3339_opts(SecondsFormat::Millis, true)),
            None => write!(f, "{}ms", self.0),
        }
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.collect_str(self)
        } else {
            serializer.serialize_i64(self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Timestamp;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an RFC 3339 timestamp string such as \"2026-01-31T14:05:00Z\"")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Timestamp, E> {
                Timestamp::parse_rfc3339(s).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Timestamp, E> {
                Ok(Timestamp(v))
            }
        }
        if deserializer.is_human_readable() {
            deserializer.deserialize_str(V)
        } else {
            deserializer.deserialize_i64(V)
        }
    }
}

/// A calendar date without time zone (Avro `date`: days since 1970-01-01).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date(i32);

impl Date {
    const EPOCH: NaiveDate = NaiveDate::from_ymd_opt(1970, 1, 1).expect("1970-01-01 is a valid date");

    /// The date `days` days after 1970-01-01.
    pub const fn from_days(days: i32) -> Self {
        Self(days)
    }

    /// Days since 1970-01-01.
    pub const fn days(self) -> i32 {
        self.0
    }

    /// From a chrono date (`None` when it is too far from 1970 for an `i32` of days).
    pub fn from_naive(d: NaiveDate) -> Option<Self> {
        i32::try_from(d.signed_duration_since(Self::EPOCH).num_days()).ok().map(Self)
    }

    /// As a chrono date (`None` outside chrono's range).
    pub fn to_naive(self) -> Option<NaiveDate> {
        Self::EPOCH.checked_add_signed(chrono::Duration::days(i64::from(self.0)))
    }

    /// Parses `YYYY-MM-DD`.
    pub fn parse_iso(s: &str) -> Result<Self, String> {
        NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .ok()
            .and_then(Self::from_naive)
            .ok_or_else(|| format!("`{s}` is not a date in the form YYYY-MM-DD"))
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.to_naive() {
            Some(d) => write!(f, "{}", d.format("%Y-%m-%d")),
            None => write!(f, "{}d", self.0),
        }
    }
}

impl Serialize for Date {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.collect_str(self)
        } else {
            serializer.serialize_i32(self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Date {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Date;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a date string in the form YYYY-MM-DD")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Date, E> {
                Date::parse_iso(s).map_err(E::custom)
            }
            fn visit_i32<E: de::Error>(self, v: i32) -> Result<Date, E> {
                Ok(Date(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Date, E> {
                i32::try_from(v).map(Date).map_err(|_| E::custom("date out of range"))
            }
        }
        if deserializer.is_human_readable() {
            deserializer.deserialize_str(V)
        } else {
            deserializer.deserialize_i32(V)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_parses_offsets_to_utc_and_prints_rfc3339() {
        let t = Timestamp::parse_rfc3339("2026-03-01T10:00:00.250+02:00").expect("valid");
        assert_eq!(t.to_string(), "2026-03-01T08:00:00.250Z");
        assert_eq!(t.millis(), 1_772_352_000_250);
    }

    #[test]
    fn timestamp_without_offset_is_rejected_with_an_example() {
        let err = Timestamp::parse_rfc3339("2026-03-01 10:00").expect_err("no offset");
        assert!(err.contains("RFC 3339"), "{err}");
    }

    #[test]
    fn date_round_trips_through_days() {
        let d = Date::parse_iso("2024-02-29").expect("leap day");
        assert_eq!(d.days(), 19_782);
        assert_eq!(d.to_string(), "2024-02-29");
        assert!(Date::parse_iso("2023-02-29").is_err());
    }

    #[test]
    fn json_forms_are_strings() {
        let t = Timestamp::from_millis(0);
        assert_eq!(serde_json::to_string(&t).expect("ser"), "\"1970-01-01T00:00:00.000Z\"");
        let d: Date = serde_json::from_str("\"1970-01-02\"").expect("de");
        assert_eq!(d, Date::from_days(1));
    }
}

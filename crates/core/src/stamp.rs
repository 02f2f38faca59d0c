//! How a stored time is written: RFC 3339 text for a human-readable format
//! (JSON: the API, `admind export`, PostgreSQL's `jsonb`, and version-1
//! stored values), two integers (seconds and nanoseconds since 1970) for a
//! binary one (the store's version-2 values), which need no date parsing.
//! Use as `#[serde(with = "crate::stamp")]` (`crate::stamp::option` for an
//! `Option`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub fn serialize<S: Serializer>(at: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    if s.is_human_readable() {
        at.serialize(s)
    } else {
        (at.timestamp(), at.timestamp_subsec_nanos()).serialize(s)
    }
}

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
    if d.is_human_readable() {
        DateTime::<Utc>::deserialize(d)
    } else {
        let (secs, nanos) = <(i64, u32)>::deserialize(d)?;
        DateTime::from_timestamp(secs, nanos)
            .ok_or_else(|| serde::de::Error::custom("a stored time out of range"))
    }
}

pub mod option {
    use super::*;

    /// Lets `Option<DateTime>` go through [`super`].
    #[derive(Serialize, Deserialize)]
    struct Stamp(#[serde(with = "super")] DateTime<Utc>);

    pub fn serialize<S: Serializer>(at: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        at.map(Stamp).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        Ok(Option::<Stamp>::deserialize(d)?.map(|s| s.0))
    }
}

//! Stored values: one format-version byte, then the value.
//!
//! - Version 1: JSON. Still written for values the store keeps opaque
//!   (queue items, worker records: the store cannot know their type, and
//!   exports them as JSON values), and read wherever it was written before.
//! - Version 2: MessagePack with structs as arrays (no field names) and
//!   times as two integers (`admind_core::stamp`): the domain's records
//!   (accounts, members, sessions, tokens, integrations, invoices,
//!   licence requests, audit entries...), whose type the store knows. A
//!   version-1 record is read as before and written as version 2 the next
//!   time it is written.
//!
//! A reader refuses a version it does not know instead of guessing.

use serde::{de::DeserializeOwned, Serialize};

/// JSON.
pub const FORMAT_JSON: u8 = 1;
/// MessagePack, structs as arrays.
pub const FORMAT_BINARY: u8 = 2;

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("stored value is empty")]
    Empty,
    #[error(
        "stored value has format version {0}, this build reads {FORMAT_JSON} and {FORMAT_BINARY}"
    )]
    Version(u8),
    #[error("stored value does not decode: {0}")]
    Json(#[from] serde_json::Error),
    #[error("stored value does not decode: {0}")]
    Binary(#[from] rmp_serde::decode::Error),
}

/// Version 1 (JSON), for values kept opaque by the store.
#[allow(
    clippy::expect_used,
    reason = "serializing the daemon's own plain structs into memory cannot fail"
)]
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    out.push(FORMAT_JSON);
    // Serializing our own plain structs to a Vec cannot fail.
    serde_json::to_writer(&mut out, value).expect("in-memory JSON serialization");
    out
}

/// Version 2 (binary), for the domain's records.
#[allow(
    clippy::expect_used,
    reason = "serializing the daemon's own plain structs into memory cannot fail"
)]
pub fn encode_record<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    out.push(FORMAT_BINARY);
    // Our own plain structs into a Vec: nothing can fail.
    rmp_serde::encode::write(&mut out, value).expect("in-memory MessagePack serialization");
    out
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    match bytes.split_first() {
        None => Err(CodecError::Empty),
        Some((&FORMAT_BINARY, rest)) => Ok(rmp_serde::from_slice(rest)?),
        Some((&FORMAT_JSON, rest)) => Ok(serde_json::from_slice(rest)?),
        Some((&v, _)) => Err(CodecError::Version(v)),
    }
}

/// The format version of a stored value (None: empty).
pub fn version(bytes: &[u8]) -> Option<u8> {
    bytes.first().copied()
}

/// `a \0 b`: ids never contain NUL, so prefixes cannot collide.
pub fn key2(a: &str, b: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(a.len() + b.len() + 1);
    k.extend_from_slice(a.as_bytes());
    k.push(0);
    k.extend_from_slice(b.as_bytes());
    k
}

pub fn key_seq(a: &str, seq: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(a.len() + 9);
    k.extend_from_slice(a.as_bytes());
    k.push(0);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

pub fn prefix(a: &str) -> Vec<u8> {
    let mut k = a.as_bytes().to_vec();
    k.push(0);
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::domain::*;
    use chrono::{TimeZone, Utc};

    /// One of each record the store writes as version 2, with every
    /// optional part both present and absent, nanoseconds in the times.
    #[allow(clippy::type_complexity)]
    fn records() -> (
        Vec<Account>,
        Vec<User>,
        Vec<Session>,
        Vec<LicenceRequest>,
        Vec<AuditEntry>,
    ) {
        let at = Utc.timestamp_opt(1_790_000_000, 123_456_789).unwrap();
        let account = Account {
            id: "acc_1".into(),
            name: "Acme \"quoted\" ünïcode".into(),
            owner_id: "usr_1".into(),
            created_at: at,
            support_seats_bought: 5,
            support_seats_used: 2,
            sell: SellState {
                status: SellStatus::Trial,
                seats_bought: 1,
                seats_used: 1,
                admin_count: 1,
            },
            grants: vec![SeatGrant {
                product: Product::Sell,
                seats: 3,
                expires_at: at,
            }],
            payment_method: Some(PaymentMethod {
                kind: "card".into(),
                last4: "4242".into(),
                updated_at: at,
            }),
            member_count: 2,
            scim_tokens: vec![ScimToken {
                id: "sct_1".into(),
                name: "Okta".into(),
                hash: "ab".into(),
                created_by: "usr_1".into(),
                created_at: at,
                last_used_at: Some(at),
            }],
            language: Some("fr".into()),
            billing_contacts: vec!["ap@acme.test".into()],
        };
        let bare = Account {
            grants: vec![],
            payment_method: None,
            scim_tokens: vec![],
            language: None,
            billing_contacts: vec![],
            ..account.clone()
        };
        let user = User {
            id: "usr_1".into(),
            account_id: "acc_1".into(),
            name: "O".into(),
            emails: vec![EmailAddress {
                address: "o@acme.test".into(),
                verified: true,
                primary: true,
                added_at: at,
            }],
            password_hash: Some("$argon2id$v=19$...".into()),
            support_role: SupportRole::Admin,
            sell_role: SellRole::User,
            signed_in_before: true,
            created_at: at,
            deactivated_at: Some(at),
            external_id: Some("00u1".into()),
            user_name: Some("o".into()),
            primary_requested: Some("p@acme.test".into()),
            modified_at: Some(at),
            last_signed_in_at: Some(at),
        };
        let session = Session {
            hash: "h".into(),
            account_id: "acc_1".into(),
            user_id: "usr_1".into(),
            email: "o@acme.test".into(),
            created_at: at,
            expires_at: at,
        };
        let request = LicenceRequest {
            id: "lic_1".into(),
            account_id: "acc_1".into(),
            product: Product::Support,
            seats: 2,
            reason: "r".into(),
            status: LicenceStatus::Granted,
            requested_by: "usr_1".into(),
            created_at: at,
            decided_at: Some(at),
            granted_seats: Some(2),
            expires_at: None,
            deny_reason: None,
        };
        let entry = AuditEntry {
            seq: 7,
            account_id: "acc_1".into(),
            at,
            actor: "usr_1".into(),
            action: "owner.transfer".into(),
            target: "usr_2".into(),
            outcome: "ok".into(),
            detail: String::new(),
            cause: Some(3),
        };
        let uncaused = AuditEntry {
            cause: None,
            ..entry.clone()
        };
        (
            vec![account, bare],
            vec![
                user.clone(),
                User {
                    password_hash: None,
                    ..user
                },
            ],
            vec![session],
            vec![request],
            vec![entry, uncaused],
        )
    }

    fn both_ways<T>(values: Vec<T>)
    where
        T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
    {
        for v in values {
            let binary = encode_record(&v);
            assert_eq!(version(&binary), Some(FORMAT_BINARY));
            assert_eq!(decode::<T>(&binary).unwrap(), v);
            let json = encode(&v);
            assert_eq!(decode::<T>(&json).unwrap(), v, "version 1 still reads");
            assert!(
                binary.len() < json.len(),
                "{} ≥ {}",
                binary.len(),
                json.len()
            );
            // No field names, and no time as text, in version 2.
            let text = String::from_utf8_lossy(&binary);
            assert!(
                !text.contains("account_id") && !text.contains("2026-"),
                "{text}"
            );
        }
    }

    #[test]
    fn every_record_round_trips_in_both_versions() {
        let (accounts, users, sessions, requests, entries) = records();
        both_ways(accounts);
        both_ways(users);
        both_ways(sessions);
        both_ways(requests);
        both_ways(entries);
    }

    /// Members and accounts written before deactivation and directory
    /// tokens existed (no trailing fields) read as active, without tokens.
    #[test]
    fn records_written_before_the_directory_fields_still_decode() {
        let (accounts, users, ..) = records();
        // Version 2 keeps a struct as an array: a member of before is
        // today's without its two last elements (both nil here).
        let user = User {
            deactivated_at: None,
            external_id: None,
            user_name: None,
            primary_requested: None,
            modified_at: None,
            last_signed_in_at: None,
            ..users[0].clone()
        };
        let mut bytes = encode_record(&user);
        assert_eq!(bytes[1], 0x90 | 15, "a fixarray of the 15 fields");
        assert_eq!(bytes[bytes.len() - 6..], [0xc0; 6]);
        bytes.truncate(bytes.len() - 6);
        bytes[1] = 0x90 | 9;
        assert_eq!(decode::<User>(&bytes).unwrap(), user);
        let mut old_account = serde_json::to_value(&accounts[0]).unwrap();
        old_account.as_object_mut().unwrap().remove("scim_tokens");
        old_account.as_object_mut().unwrap().remove("language");
        old_account
            .as_object_mut()
            .unwrap()
            .remove("billing_contacts");
        let mut json = vec![FORMAT_JSON];
        json.extend(serde_json::to_vec(&old_account).unwrap());
        let account: Account = decode(&json).unwrap();
        assert!(account.scim_tokens.is_empty());
        assert_eq!(account.language, None);
        assert_eq!(account.member_count, accounts[0].member_count);
    }

    #[test]
    fn version_1_times_read_as_rfc3339_text() {
        let mut json = vec![FORMAT_JSON];
        json.extend_from_slice(br#"{"hash":"h","account_id":"a","user_id":"u","email":"e","created_at":"2026-08-01T10:00:00.5Z","expires_at":"2026-08-02T10:00:00Z"}"#);
        let s: Session = decode(&json).unwrap();
        assert_eq!(s.created_at.timestamp_subsec_millis(), 500);
        // And JSON written today is still that text (the API and exports).
        assert!(serde_json::to_string(&s)
            .unwrap()
            .contains("2026-08-01T10:00:00.500Z"));
    }

    #[test]
    fn round_trips_and_refuses_unknown_versions() {
        let bytes = encode(&vec![1u32, 2]);
        assert_eq!(decode::<Vec<u32>>(&bytes).unwrap(), vec![1, 2]);
        let mut future = bytes.clone();
        future[0] = 9;
        assert!(matches!(
            decode::<Vec<u32>>(&future),
            Err(CodecError::Version(9))
        ));
        assert!(matches!(decode::<Vec<u32>>(&[]), Err(CodecError::Empty)));
    }
}

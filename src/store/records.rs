//! Every kind of record the store keeps, described once: its name (the
//! sled tree, the memory map, the PostgreSQL table it maps to), its key
//! layout, how its value is encoded, which kinds are indexes of another,
//! and how a record becomes a [`Record`] of `admind export` and back.
//!
//! The key-value backends (sled, memory) keep each kind as one ordered map
//! of bytes and share everything above that through [`super::kv`]: the
//! rows a domain change writes ([`rows_for`]), the reads of the core's
//! `StateView`, export, restore and the format census. PostgreSQL maps
//! each kind to its table ([`Spec::table`]) and reads and scans through the
//! same kinds and keys (`Backend::get`, `Backend::scan`).
//!
//! Adding a kind: a [`Kind`] variant, its line in [`SPECS`], its rows in
//! [`rows_for`] (if a `Change` writes it), its record in [`record_of`] (if
//! it is exported), and its table on PostgreSQL.

use chrono::{DateTime, Utc};

use serde::{Deserialize, Serialize};

use super::codec::{decode, encode, encode_record, key2, key_seq};
use super::error::StoreError;
use crate::domain::*;

/// A durable queue, the dead or finished items of one, or a kept list
/// (hook call records, policy versions). Items are keyed by a `u64` (an id
/// from [`super::Backend::next_id`] for queues) and read in key order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueueName {
    /// Rendered mail waiting to be written or sent.
    Outbox,
    /// Mail given up on.
    OutboxDead,
    /// After-hook events waiting for their handlers.
    Hooks,
    /// Outbound deliveries pending.
    Deliveries,
    /// Outbound deliveries delivered or failed (kept for a while).
    DeliveriesDone,
    /// The record of hook calls (what each policy saw and decided), for
    /// replay; kept by age and count, not drained by a worker.
    HookCalls,
    /// Every policy version ever loaded, keyed by a hash of its name and
    /// version (so a version is kept once); not drained.
    PolicyVersions,
}

impl QueueName {
    /// Whether its items are keyed by ids from [`super::Backend::next_id`] (so a
    /// restore moves the id counter past them); policy versions are keyed
    /// by a hash instead.
    pub fn keyed_by_id(self) -> bool {
        self != QueueName::PolicyVersions
    }
}

/// A write that is not a domain change: the queues' bookkeeping, worker
/// records, and what retention forgets.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    QueuePut {
        queue: QueueName,
        id: u64,
        value: Vec<u8>,
    },
    QueueRemove {
        queue: QueueName,
        id: u64,
    },
    /// An outbound subscriber's state (enabled, or disabled and why).
    PutSubscriberState {
        name: String,
        value: Vec<u8>,
    },
    /// An outbound subscriber's state saying it is disabled, written only
    /// if it is not disabled already: the first reason and time stay, and
    /// two replicas disabling it at once leave the first one's record.
    DisableSubscriber {
        name: String,
        value: Vec<u8>,
    },
    /// An audit entry past retention.
    ForgetAudit {
        scope: String,
        seq: u64,
    },
    /// A received webhook id kept long enough.
    ForgetWebhook {
        source: String,
        webhook_id: String,
    },
    /// A record restored as it was (`admind import`, `store copy`); boxed,
    /// as records are large and the other writes small.
    Restore(Box<Record>),
}

/// Read order of a scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    OldestFirst,
    NewestFirst,
}

/// One stored record, whole, in the store's neutral terms: what `admind
/// export` writes (one JSON line each) and `admind import` restores. Ids,
/// sequence numbers and queue ids are kept, so causal links and
/// `webhook-id`s survive a move between backends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Record {
    Account {
        value: Account,
    },
    User {
        value: User,
    },
    EmailIndex {
        account_id: String,
        email: String,
        user_id: String,
    },
    Integration {
        value: Integration,
    },
    Token {
        value: Token,
    },
    Session {
        value: Session,
    },
    Invoice {
        value: Invoice,
    },
    Investigation {
        value: SecurityInvestigation,
    },
    LicenceRequest {
        value: LicenceRequest,
    },
    PolicySwitch {
        value: PolicySwitch,
    },
    WebhookSeen {
        source: String,
        webhook_id: String,
        at: DateTime<Utc>,
    },
    Audit {
        value: AuditEntry,
    },
    QueueItem {
        queue: QueueName,
        id: u64,
        value: serde_json::Value,
    },
    SubscriberState {
        name: String,
        value: serde_json::Value,
    },
}

/// What restoring a record writes: a domain change (so each backend keeps
/// its own indexes the way it does for a command), or one of the records
/// only the store keeps, as it was.
pub enum Restore {
    Change(Change),
    Audit(AuditEntry),
    QueueItem {
        queue: QueueName,
        id: u64,
        value: serde_json::Value,
    },
    SubscriberState {
        name: String,
        value: serde_json::Value,
    },
}

impl Record {
    /// The record's `kind` tag.
    pub fn kind(&self) -> &'static str {
        match self {
            Record::Account { .. } => "account",
            Record::User { .. } => "user",
            Record::EmailIndex { .. } => "email_index",
            Record::Integration { .. } => "integration",
            Record::Token { .. } => "token",
            Record::Session { .. } => "session",
            Record::Invoice { .. } => "invoice",
            Record::Investigation { .. } => "investigation",
            Record::LicenceRequest { .. } => "licence_request",
            Record::PolicySwitch { .. } => "policy_switch",
            Record::WebhookSeen { .. } => "webhook_seen",
            Record::Audit { .. } => "audit",
            Record::QueueItem { .. } => "queue_item",
            Record::SubscriberState { .. } => "subscriber_state",
        }
    }

    /// What a backend writes to restore the record.
    pub fn into_restore(self) -> Restore {
        match self {
            Record::Account { value } => Restore::Change(Change::PutAccount(value)),
            Record::User { value } => Restore::Change(Change::PutUser(value)),
            Record::EmailIndex {
                account_id,
                email,
                user_id,
            } => Restore::Change(Change::PutEmailIndex {
                account_id,
                email,
                user_id,
            }),
            Record::Integration { value } => Restore::Change(Change::PutIntegration(value)),
            Record::Token { value } => Restore::Change(Change::PutToken(value)),
            Record::Session { value } => Restore::Change(Change::PutSession(value)),
            Record::Invoice { value } => Restore::Change(Change::PutInvoice(value)),
            Record::Investigation { value } => Restore::Change(Change::PutInvestigation(value)),
            Record::LicenceRequest { value } => Restore::Change(Change::PutLicenceRequest(value)),
            Record::PolicySwitch { value } => Restore::Change(Change::PutPolicySwitch(value)),
            Record::WebhookSeen {
                source,
                webhook_id,
                at,
            } => Restore::Change(Change::PutWebhookSeen {
                source,
                webhook_id,
                at,
            }),
            Record::Audit { value } => Restore::Audit(value),
            Record::QueueItem { queue, id, value } => Restore::QueueItem { queue, id, value },
            Record::SubscriberState { name, value } => Restore::SubscriberState { name, value },
        }
    }
}

/// Called with each record by [`super::Store::export`]; returns whether to go on.
pub type RecordVisit<'a> = dyn FnMut(Record) -> Result<bool, StoreError> + 'a;

/// Called with each row's key and value by a scan; returns whether to go on.
pub type RowVisit<'a> = dyn FnMut(&[u8], &[u8]) -> Result<bool, StoreError> + 'a;

/// A kind of record. The discriminant indexes [`SPECS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(usize)]
pub enum Kind {
    Accounts = 0,
    Users,
    EmailIndex,
    Integrations,
    Tokens,
    Sessions,
    UserSessions,
    Invoices,
    Investigations,
    Audit,
    Outbox,
    HookQueue,
    OutboxDead,
    LicenceRequests,
    AccountLicences,
    WebhooksSeen,
    Deliveries,
    DeliveriesDone,
    Subscribers,
    PolicySwitches,
    HookCalls,
    PolicyVersions,
}

/// How a kind's keys are laid out (see `codec::key2`, `codec::key_seq`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyLayout {
    /// One text id.
    Id,
    /// `scope \0 id` (account and member, source and webhook id, ...).
    ScopeId,
    /// `scope \0 big-endian u64` (the audit log, invoices).
    ScopeSeq,
    /// `account \0 user \0 session hash` (the sessions of a member).
    ScopeIdId,
    /// A big-endian `u64` (queue items).
    Number,
}

/// How a kind's values are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueFormat {
    /// A domain record, in the codec's binary form (`encode_record`).
    Record,
    /// A value the store keeps opaque (queue items, worker records), in the
    /// codec's JSON form (`encode`).
    Opaque,
    /// An index entry: the id it points to, or nothing.
    Index,
}

/// One kind, described.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    pub kind: Kind,
    /// The sled tree and memory map; stable on disk.
    pub name: &'static str,
    pub key: KeyLayout,
    pub value: ValueFormat,
    /// The kind this one indexes (written with it, never exported).
    pub index_of: Option<Kind>,
    /// The PostgreSQL table holding it (indexes live in their table's
    /// columns; queues share `queue_items`).
    pub table: &'static str,
}

const fn spec(
    kind: Kind,
    name: &'static str,
    key: KeyLayout,
    value: ValueFormat,
    index_of: Option<Kind>,
    table: &'static str,
) -> Spec {
    Spec {
        kind,
        name,
        key,
        value,
        index_of,
        table,
    }
}

use KeyLayout as K;
use ValueFormat as V;

/// Every kind, in [`Kind`] order (which is also the export order).
pub const SPECS: [Spec; 22] = [
    spec(
        Kind::Accounts,
        "accounts",
        K::Id,
        V::Record,
        None,
        "accounts",
    ),
    spec(Kind::Users, "users", K::ScopeId, V::Record, None, "members"),
    spec(
        Kind::EmailIndex,
        "email_index",
        K::ScopeId,
        V::Index,
        None,
        "email_index",
    ),
    spec(
        Kind::Integrations,
        "integrations",
        K::ScopeId,
        V::Record,
        None,
        "integrations",
    ),
    spec(Kind::Tokens, "tokens", K::Id, V::Record, None, "tokens"),
    spec(
        Kind::Sessions,
        "sessions",
        K::Id,
        V::Record,
        None,
        "sessions",
    ),
    spec(
        Kind::UserSessions,
        "user_sessions",
        K::ScopeIdId,
        V::Index,
        Some(Kind::Sessions),
        "sessions",
    ),
    spec(
        Kind::Invoices,
        "invoices",
        K::ScopeSeq,
        V::Record,
        None,
        "invoices",
    ),
    spec(
        Kind::Investigations,
        "investigations",
        K::ScopeId,
        V::Record,
        None,
        "investigations",
    ),
    spec(Kind::Audit, "audit", K::ScopeSeq, V::Record, None, "audit"),
    spec(
        Kind::Outbox,
        "outbox",
        K::Number,
        V::Opaque,
        None,
        "queue_items",
    ),
    spec(
        Kind::HookQueue,
        "hook_queue",
        K::Number,
        V::Opaque,
        None,
        "queue_items",
    ),
    spec(
        Kind::OutboxDead,
        "outbox_dead",
        K::Number,
        V::Opaque,
        None,
        "queue_items",
    ),
    spec(
        Kind::LicenceRequests,
        "licence_requests",
        K::Id,
        V::Record,
        None,
        "licence_requests",
    ),
    spec(
        Kind::AccountLicences,
        "account_licences",
        K::ScopeId,
        V::Index,
        Some(Kind::LicenceRequests),
        "licence_requests",
    ),
    spec(
        Kind::WebhooksSeen,
        "webhooks_seen",
        K::ScopeId,
        V::Record,
        None,
        "webhooks_seen",
    ),
    spec(
        Kind::Deliveries,
        "deliveries",
        K::Number,
        V::Opaque,
        None,
        "queue_items",
    ),
    spec(
        Kind::DeliveriesDone,
        "deliveries_done",
        K::Number,
        V::Opaque,
        None,
        "queue_items",
    ),
    spec(
        Kind::Subscribers,
        "subscribers",
        K::Id,
        V::Opaque,
        None,
        "subscribers",
    ),
    spec(
        Kind::PolicySwitches,
        "policy_switches",
        K::Id,
        V::Record,
        None,
        "policy_switches",
    ),
    spec(
        Kind::HookCalls,
        "hook_calls",
        K::Number,
        V::Opaque,
        None,
        "queue_items",
    ),
    spec(
        Kind::PolicyVersions,
        "policy_versions",
        K::Number,
        V::Opaque,
        None,
        "queue_items",
    ),
];

impl Kind {
    pub const ALL: [Kind; 22] = {
        let mut all = [Kind::Accounts; 22];
        let mut i = 0;
        while i < 22 {
            all[i] = SPECS[i].kind;
            i += 1;
        }
        all
    };

    pub fn spec(self) -> &'static Spec {
        &SPECS[self as usize]
    }

    pub fn name(self) -> &'static str {
        self.spec().name
    }

    /// The kind holding a queue's items.
    pub fn of_queue(queue: QueueName) -> Kind {
        match queue {
            QueueName::Outbox => Kind::Outbox,
            QueueName::OutboxDead => Kind::OutboxDead,
            QueueName::Hooks => Kind::HookQueue,
            QueueName::Deliveries => Kind::Deliveries,
            QueueName::DeliveriesDone => Kind::DeliveriesDone,
            QueueName::HookCalls => Kind::HookCalls,
            QueueName::PolicyVersions => Kind::PolicyVersions,
        }
    }

    /// The queue a kind holds, if it is one.
    pub fn queue(self) -> Option<QueueName> {
        Some(match self {
            Kind::Outbox => QueueName::Outbox,
            Kind::OutboxDead => QueueName::OutboxDead,
            Kind::HookQueue => QueueName::Hooks,
            Kind::Deliveries => QueueName::Deliveries,
            Kind::DeliveriesDone => QueueName::DeliveriesDone,
            Kind::HookCalls => QueueName::HookCalls,
            Kind::PolicyVersions => QueueName::PolicyVersions,
            _ => return None,
        })
    }

    /// Whether `admind export` writes its records (indexes are rebuilt).
    pub fn exported(self) -> bool {
        self.spec().index_of.is_none()
    }
}

/// One write of a key-value backend: kind, key, value (`None` removes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub kind: Kind,
    pub key: Vec<u8>,
    pub value: Option<Vec<u8>>,
}

impl Row {
    pub fn put(kind: Kind, key: Vec<u8>, value: Vec<u8>) -> Row {
        Row {
            kind,
            key,
            value: Some(value),
        }
    }
    pub fn remove(kind: Kind, key: Vec<u8>) -> Row {
        Row {
            kind,
            key,
            value: None,
        }
    }
}

/// The key of a queue item.
pub fn number_key(id: u64) -> Vec<u8> {
    id.to_be_bytes().to_vec()
}

/// The id of a queue item's key (`u64::MAX` for a key of another shape).
pub fn number_of(key: &[u8]) -> u64 {
    key.try_into().map(u64::from_be_bytes).unwrap_or(u64::MAX)
}

/// The first key after every key starting with `prefix` (`None`: no such
/// key, the prefix is empty or all `0xff`).
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// Whether a range with these bounds is not empty by construction (a
/// `BTreeMap` range panics on bounds out of order).
pub fn bounds_ordered(lower: &std::ops::Bound<Vec<u8>>, upper: &std::ops::Bound<Vec<u8>>) -> bool {
    use std::ops::Bound::*;
    match (lower, upper) {
        (_, Unbounded) | (Unbounded, _) => true,
        (Included(l), Included(u)) => l <= u,
        (Included(l), Excluded(u)) | (Excluded(l), Included(u)) => l <= u,
        (Excluded(l), Excluded(u)) => l < u,
    }
}

/// The two parts of a `scope \0 id` key.
pub fn split_key(key: &[u8]) -> (String, String) {
    let text = String::from_utf8_lossy(key);
    let (a, b) = text.split_once('\0').unwrap_or((&text, ""));
    (a.to_string(), b.to_string())
}

/// The key of a member's session in [`Kind::UserSessions`].
fn user_session_key(account_id: &str, user_id: &str, hash: &str) -> Vec<u8> {
    let mut k = key2(account_id, user_id);
    k.push(0);
    k.extend_from_slice(hash.as_bytes());
    k
}

/// A stored key and its value.
pub type KeyValue = (Vec<u8>, Vec<u8>);

/// What [`rows_for`] reads: the rows a change removes depend on what is
/// stored (a member's sessions).
pub trait RowLookup {
    fn get_row(&self, kind: Kind, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    /// Keys (and values) starting with `prefix`, in key order.
    fn rows_with_prefix(&self, kind: Kind, prefix: &[u8]) -> Result<Vec<KeyValue>, StoreError>;
}

/// The rows domain changes write, indexes included. Runs on the writer
/// thread, so the reads it does see exactly the state the command saw.
pub fn rows_for(
    lookup: &dyn RowLookup,
    next_id: &mut dyn FnMut() -> Result<u64, StoreError>,
    changes: &[Change],
) -> Result<Vec<Row>, StoreError> {
    let mut rows = Vec::with_capacity(changes.len() + 4);
    for change in changes {
        match change {
            Change::PutAccount(a) => rows.push(Row::put(
                Kind::Accounts,
                a.id.as_bytes().to_vec(),
                encode_record(a),
            )),
            Change::PutUser(u) => rows.push(Row::put(
                Kind::Users,
                key2(&u.account_id, &u.id),
                encode_record(u),
            )),
            Change::DeleteUser {
                account_id,
                user_id,
            } => rows.push(Row::remove(Kind::Users, key2(account_id, user_id))),
            Change::PutEmailIndex {
                account_id,
                email,
                user_id,
            } => rows.push(Row::put(
                Kind::EmailIndex,
                key2(account_id, &normalize_email(email)),
                user_id.as_bytes().to_vec(),
            )),
            Change::DeleteEmailIndex { account_id, email } => rows.push(Row::remove(
                Kind::EmailIndex,
                key2(account_id, &normalize_email(email)),
            )),
            Change::PutIntegration(i) => rows.push(Row::put(
                Kind::Integrations,
                key2(&i.account_id, &i.id),
                encode_record(i),
            )),
            Change::PutToken(t) => rows.push(Row::put(
                Kind::Tokens,
                t.hash.as_bytes().to_vec(),
                encode_record(t),
            )),
            Change::DeleteToken { hash } => {
                rows.push(Row::remove(Kind::Tokens, hash.as_bytes().to_vec()))
            }
            Change::PutSession(s) => {
                rows.push(Row::put(
                    Kind::Sessions,
                    s.hash.as_bytes().to_vec(),
                    encode_record(s),
                ));
                rows.push(Row::put(
                    Kind::UserSessions,
                    user_session_key(&s.account_id, &s.user_id, &s.hash),
                    Vec::new(),
                ));
            }
            Change::DeleteSession { hash } => {
                if let Some(v) = lookup.get_row(Kind::Sessions, hash.as_bytes())? {
                    let s: Session = decode(&v)?;
                    rows.push(Row::remove(
                        Kind::UserSessions,
                        user_session_key(&s.account_id, &s.user_id, &s.hash),
                    ));
                }
                rows.push(Row::remove(Kind::Sessions, hash.as_bytes().to_vec()));
            }
            Change::DeleteUserSessions {
                account_id,
                user_id,
            } => {
                let p = user_session_key(account_id, user_id, "");
                for (k, _) in lookup.rows_with_prefix(Kind::UserSessions, &p)? {
                    rows.push(Row::remove(Kind::Sessions, k[p.len()..].to_vec()));
                    rows.push(Row::remove(Kind::UserSessions, k));
                }
            }
            Change::DeleteSessionsSignedInWith {
                account_id,
                user_id,
                email,
            } => {
                let p = user_session_key(account_id, user_id, "");
                for (k, _) in lookup.rows_with_prefix(Kind::UserSessions, &p)? {
                    let hash = &k[p.len()..];
                    let signed_in_with = match lookup.get_row(Kind::Sessions, hash)? {
                        Some(v) => {
                            let s: Session = decode(&v)?;
                            normalize_email(&s.email) == normalize_email(email)
                        }
                        None => false,
                    };
                    if signed_in_with {
                        rows.push(Row::remove(Kind::Sessions, hash.to_vec()));
                        rows.push(Row::remove(Kind::UserSessions, k));
                    }
                }
            }
            Change::PutLicenceRequest(r) => {
                rows.push(Row::put(
                    Kind::LicenceRequests,
                    r.id.as_bytes().to_vec(),
                    encode_record(r),
                ));
                rows.push(Row::put(
                    Kind::AccountLicences,
                    key2(&r.account_id, &r.id),
                    Vec::new(),
                ));
            }
            Change::PutWebhookSeen {
                source,
                webhook_id,
                at,
            } => rows.push(Row::put(
                Kind::WebhooksSeen,
                key2(source, webhook_id),
                encode_record(at),
            )),
            Change::PutPolicySwitch(p) => rows.push(Row::put(
                Kind::PolicySwitches,
                p.name.as_bytes().to_vec(),
                encode_record(p),
            )),
            Change::PutInvoice(i) => rows.push(Row::put(
                Kind::Invoices,
                key_seq(&i.account_id, next_id()?),
                encode_record(i),
            )),
            Change::PutInvestigation(i) => rows.push(Row::put(
                Kind::Investigations,
                key2(&i.account_id, &i.id),
                encode_record(i),
            )),
        }
    }
    Ok(rows)
}

/// A store write ([`Write`]) as a row (`None` for a restored record,
/// which [`raw_rows_of`] and [`rows_for`] write).
pub fn row_of_write(write: Write) -> Option<Row> {
    Some(match write {
        Write::QueuePut { queue, id, value } => {
            Row::put(Kind::of_queue(queue), number_key(id), value)
        }
        Write::QueueRemove { queue, id } => Row::remove(Kind::of_queue(queue), number_key(id)),
        Write::PutSubscriberState { name, value } | Write::DisableSubscriber { name, value } => {
            Row::put(Kind::Subscribers, name.into_bytes(), value)
        }
        Write::ForgetAudit { scope, seq } => Row::remove(Kind::Audit, key_seq(&scope, seq)),
        Write::ForgetWebhook { source, webhook_id } => {
            Row::remove(Kind::WebhooksSeen, key2(&source, &webhook_id))
        }
        Write::Restore(_) => return None,
    })
}

/// The audit entry's row.
pub fn audit_row(entry: &AuditEntry) -> Row {
    Row::put(
        Kind::Audit,
        key_seq(&entry.account_id, entry.seq),
        encode_record(entry),
    )
}

/// A stored row as the record `admind export` writes; `None` for the
/// kinds that are not exported (indexes rebuilt on restore).
pub fn record_of(kind: Kind, key: &[u8], value: &[u8]) -> Result<Option<Record>, StoreError> {
    Ok(Some(match kind {
        Kind::Accounts => Record::Account {
            value: decode(value)?,
        },
        Kind::Users => Record::User {
            value: decode(value)?,
        },
        Kind::EmailIndex => {
            let (account_id, email) = split_key(key);
            Record::EmailIndex {
                account_id,
                email,
                user_id: String::from_utf8_lossy(value).into_owned(),
            }
        }
        Kind::Integrations => Record::Integration {
            value: decode(value)?,
        },
        Kind::Tokens => Record::Token {
            value: decode(value)?,
        },
        Kind::Sessions => Record::Session {
            value: decode(value)?,
        },
        Kind::Invoices => Record::Invoice {
            value: decode(value)?,
        },
        Kind::Investigations => Record::Investigation {
            value: decode(value)?,
        },
        Kind::LicenceRequests => Record::LicenceRequest {
            value: decode(value)?,
        },
        Kind::PolicySwitches => Record::PolicySwitch {
            value: decode(value)?,
        },
        Kind::WebhooksSeen => {
            let (source, webhook_id) = split_key(key);
            let at: DateTime<Utc> = decode(value)?;
            Record::WebhookSeen {
                source,
                webhook_id,
                at,
            }
        }
        Kind::Audit => Record::Audit {
            value: decode(value)?,
        },
        Kind::Subscribers => Record::SubscriberState {
            name: String::from_utf8_lossy(key).into_owned(),
            value: decode(value)?,
        },
        Kind::UserSessions | Kind::AccountLicences => return Ok(None),
        queue => match queue.queue() {
            Some(queue) => Record::QueueItem {
                queue,
                id: number_of(key),
                value: decode(value)?,
            },
            None => return Ok(None),
        },
    }))
}

/// The rows a record restores that are not a domain change (those go
/// through [`rows_for`], indexes and all), with the largest id it holds.
pub fn raw_rows_of(restore: Restore) -> Result<(Option<Change>, Option<Row>, u64), StoreError> {
    Ok(match restore {
        Restore::Change(change) => (Some(change), None, 0),
        Restore::Audit(entry) => (None, Some(audit_row(&entry)), entry.seq),
        Restore::QueueItem { queue, id, value } => (
            None,
            Some(Row::put(
                Kind::of_queue(queue),
                number_key(id),
                encode(&value),
            )),
            if queue.keyed_by_id() { id } else { 0 },
        ),
        Restore::SubscriberState { name, value } => (
            None,
            Some(Row::put(
                Kind::Subscribers,
                name.into_bytes(),
                encode(&value),
            )),
            0,
        ),
    })
}

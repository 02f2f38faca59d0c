//! The audit log's upkeep: retention (an hourly pass deleting entries older
//! than `[audit] retention_days`) and export as JSON lines
//! (`admind audit export`).

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::metrics::Metrics;
use crate::store::Store;

/// How often the retention pass runs.
pub const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Deletes entries past retention every [`PRUNE_EVERY`] (and once at start).
pub async fn retention_loop(
    store: Store,
    writer: crate::store::writer::Writer,
    retention_days: u32,
    metrics: Arc<Metrics>,
) {
    if retention_days == 0 {
        return;
    }
    let days = chrono::Duration::days(i64::from(retention_days));
    crate::store::writer::prune_every(
        PRUNE_EVERY,
        "audit entries past retention",
        store,
        writer,
        move |store: &Store, max| store.expired_audit(Utc::now() - days, max),
        move |n| {
            metrics.audit_entries_pruned.inc_by(n as u64);
        },
    )
    .await;
}

/// A `--since` value: an RFC 3339 time, a date (`2026-11-01`, midnight
/// UTC), or an age (`90m`, `36h`, `7d`).
pub fn parse_since(text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc());
    }
    let split = text.len().saturating_sub(1);
    let (number, unit) = text.split_at(split);
    let n: i64 = number.parse().map_err(|_| {
        format!(
            "--since {text:?}: give a time (2026-11-01T00:00:00Z), a date or an age (90m, 36h, 7d)"
        )
    })?;
    let age = match unit {
        "m" => chrono::Duration::try_minutes(n),
        "h" => chrono::Duration::try_hours(n),
        "d" => chrono::Duration::try_days(n),
        _ => None,
    }
    .ok_or_else(|| format!("--since {text:?}: the unit is m, h or d"))?;
    now.checked_sub_signed(age)
        .ok_or_else(|| format!("--since {text:?} is before any date this can represent"))
}

/// `admind audit export`: JSON lines of the entries since `since` on
/// `out`, one object per entry (`account_id` is `platform` for the
/// platform's own log). The daemon must not hold the data directory.
pub fn export(
    config: &crate::config::Config,
    since: DateTime<Utc>,
    scope: Option<&str>,
    out: &mut impl Write,
) -> anyhow::Result<u64> {
    let store = crate::export::open_offline(config, false)?;
    let written = store.audit_since(since, scope, &mut |entry| {
        serde_json::to_writer(&mut *out, entry).map_err(std::io::Error::from)?;
        out.write_all(b"\n")?;
        Ok(())
    })?;
    out.flush()?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::AuditDraft;
    use crate::store::Transaction;

    fn entry(store: &Store, scope: &str, at: DateTime<Utc>) {
        store
            .commit(Transaction {
                audit: Some(AuditDraft {
                    account_id: scope.into(),
                    actor: "operator".into(),
                    action: "x".into(),
                    target: "t".into(),
                    outcome: "ok".into(),
                    detail: String::new(),
                    at,
                    cause: None,
                }),
                ..Transaction::default()
            })
            .unwrap();
    }

    #[test]
    fn retention_deletes_old_entries_of_every_scope_and_keeps_young_ones() {
        for (_dir, store) in crate::store::tests::every_backend() {
            retention_on(&store);
        }
    }

    fn retention_on(store: &Store) {
        let now = Utc::now();
        let old = now - chrono::Duration::days(500);
        for scope in ["acc_a", "acc_b", "platform"] {
            for _ in 0..3 {
                entry(store, scope, old);
            }
            entry(store, scope, now);
        }
        let cutoff = now - chrono::Duration::days(400);
        let prune = |max| {
            let writes = store.expired_audit(cutoff, max).unwrap();
            let n = writes.len();
            store.commit(Transaction::of_writes(writes)).unwrap();
            n
        };
        assert_eq!(prune(usize::MAX), 9);
        assert_eq!(prune(usize::MAX), 0);
        let mut left = Vec::new();
        store
            .audit_since(old, None, &mut |e| {
                left.push(e.account_id.clone());
                Ok(())
            })
            .unwrap();
        assert_eq!(left, ["acc_a", "acc_b", "platform"], "on {}", store.kind());
        // A pass stops at its budget; the next one goes on.
        for _ in 0..5 {
            entry(store, "acc_c", old);
        }
        assert_eq!(prune(2), 2);
        assert_eq!(prune(10), 3);
    }

    #[test]
    fn since_takes_times_dates_and_ages() {
        let now = DateTime::parse_from_rfc3339("2026-11-25T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            parse_since("7d", now).unwrap(),
            now - chrono::Duration::days(7)
        );
        assert_eq!(
            parse_since("36h", now).unwrap(),
            now - chrono::Duration::hours(36)
        );
        assert_eq!(
            parse_since("2026-11-01", now).unwrap().to_rfc3339(),
            "2026-11-01T00:00:00+00:00"
        );
        assert!(parse_since("2026-11-01T10:00:00Z", now).is_ok());
        assert!(parse_since("yesterday", now).is_err());
        assert!(parse_since("7w", now).is_err());
        assert!(parse_since("", now).is_err());
        assert!(
            parse_since("100000000000d", now).is_err(),
            "no overflow panic"
        );
        assert!(
            parse_since("100000000d", now).is_err(),
            "past the representable range"
        );
    }
}

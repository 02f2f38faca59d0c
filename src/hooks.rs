//! After-hooks: events the core emitted, committed in the same transaction
//! as their change, dispatched from the durable queue once flushed — at
//! least once: an event leaves the queue only after its handlers ran and
//! their actions were submitted, so a crash in between runs it again. A
//! failing handler is logged and recorded; the change stands (docs/rules.md
//! "Hooks").

use crate::domain::cmd;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use admind_plugin_api::{Action, Event, Hook};

use crate::domain::{Command, PolicyCallRecord, Principal, Product, PLATFORM_AUDIT_SCOPE};
use crate::metrics::Metrics;
use crate::policy::{describe, hook_event, CallRecord, PolicyHost};
use crate::queue::{Attempt, Queue, Settled};
use crate::store::writer::Writer;
use crate::store::{QueueName, QueuedEvent, Store, StoreError, Write};

/// Accounts whose after-hooks run at once: each runs its policies on a
/// thread of the blocking pool.
pub const HOOK_LANES: usize = 8;

/// The after-hook queue: each event runs the handlers of its hook once
/// committed, their actions go through the core as the policy, and every
/// call that acted, failed or could not act is audited. At least once: an
/// event whose removal a crash lost runs again. Drained by
/// `queue::QueueWorker`.
pub struct HookQueue {
    pub host: Arc<PolicyHost>,
    pub writer: Writer,
    pub metrics: Arc<Metrics>,
}

/// The core command an action asks for, on the event's account.
pub fn action_command(account_id: &str, action: &Action) -> Result<Command, String> {
    let account_id = account_id.to_string();
    Ok(match action.clone() {
        Action::Notify {
            address,
            subject,
            body,
        } => Command::PolicyNotify(cmd::PolicyNotify {
            account_id,
            address,
            subject,
            body,
        }),
        Action::RequestLicence {
            product,
            seats,
            reason,
        } => Command::RequestLicence(cmd::RequestLicence {
            account_id,
            product: match product.as_str() {
                "support" => Product::Support,
                "sell" => Product::Sell,
                other => return Err(format!("unknown product {other:?}; use support or sell")),
            },
            seats,
            reason,
        }),
        Action::FlagIntegration { integration_id } => {
            Command::FlagIntegration(cmd::FlagIntegration {
                account_id,
                integration_id,
            })
        }
        Action::SendPasswordReset { address } => {
            Command::RequestPasswordReset(cmd::RequestPasswordReset {
                account_id,
                email: address,
            })
        }
    })
}

impl Queue for HookQueue {
    type Item = QueuedEvent;
    const NAME: &'static str = "hooks";
    const QUEUE: QueueName = QueueName::Hooks;
    /// One lane per account: its events (and the actions their policies
    /// take) in commit order; other accounts' beside it.
    const LANES: usize = HOOK_LANES;

    fn lane(item: &QueuedEvent) -> String {
        item.event.account_id().unwrap_or_default().to_string()
    }

    fn id(item: &QueuedEvent) -> u64 {
        item.id
    }
    /// Events are due once committed.
    fn due_at(_: &QueuedEvent) -> DateTime<Utc> {
        DateTime::<Utc>::MIN_UTC
    }
    fn set_due_at(_: &mut QueuedEvent, _: DateTime<Utc>) {}
    fn record_failure(item: &mut QueuedEvent, _: &str) {
        item.attempts += 1;
    }

    async fn attempt(&self, item: &mut QueuedEvent) -> Attempt {
        let mut results = self.attempt_batch(std::slice::from_mut(item)).await;
        results.pop().unwrap_or(Attempt::Done)
    }

    /// A lane's run of events: their handlers run in order on the blocking
    /// pool, never on the async workers, as many as can in one hand-over
    /// (one blocking task per event was a thread wake-up per event). A run
    /// stops after an event whose calls asked for something or failed:
    /// that is carried out first, so the next event's handlers run after
    /// it, as they would one by one.
    async fn attempt_batch(&self, items: &mut [QueuedEvent]) -> Vec<Attempt> {
        let mut results = Vec::with_capacity(items.len());
        // Each event converted once; a run hands back those it did not reach.
        let mut events: std::collections::VecDeque<(Hook, Event)> =
            items.iter().map(|item| hook_event(&item.event)).collect();
        while !events.is_empty() {
            let host = self.host.clone();
            let ran = tokio::task::spawn_blocking(move || run_until_acting(&host, events)).await;
            let Ok((ran, rest)) = ran else {
                // Every event's handlers run under catch_unwind: only a
                // runtime shutting down gets here.
                results.resize_with(items.len(), || Attempt::GiveUp {
                    error: "the handlers' task did not run".into(),
                });
                break;
            };
            for (event, outcome) in ran {
                let cause_seq = items[results.len()].cause_seq;
                results.push(match outcome {
                    Ok(records) => {
                        for record in records {
                            self.carry_out(&event, record, cause_seq).await;
                        }
                        Attempt::Done
                    }
                    // A handler that panicked is recorded by the host;
                    // the event is done.
                    Err(error) => Attempt::GiveUp { error },
                });
            }
            events = rest;
        }
        results
    }

    /// Handler failures are recorded per call, not retried.
    fn retry_in(&self, _: &QueuedEvent, _: Option<Duration>) -> Option<Duration> {
        None
    }

    fn settle(&self, _: &Store, item: QueuedEvent, _: Settled) -> Result<Vec<Write>, StoreError> {
        Ok(vec![Store::queue_remove(QueueName::Hooks, item.id)])
    }
}

/// What each event's handlers came to (a panic's message for one that
/// panicked).
type Ran = Vec<(Event, Result<Vec<CallRecord>, String>)>;

/// Runs each event's handlers in order, up to and including the first
/// whose calls ask for an action or failed (what [`HookQueue::carry_out`]
/// acts on); a panic fails that event alone. Returns the events run and
/// those left for the next run.
fn run_until_acting(
    host: &PolicyHost,
    mut events: std::collections::VecDeque<(Hook, Event)>,
) -> (Ran, std::collections::VecDeque<(Hook, Event)>) {
    let mut ran = Vec::with_capacity(events.len());
    while let Some((hook, event)) = events.pop_front() {
        let outcome =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| host.run(hook, &event)))
                .map_err(|_| "the handlers panicked".to_string());
        let acts = outcome.as_ref().map_or(true, |records| {
            records
                .iter()
                .any(|r| !r.actions.is_empty() || r.error.is_some())
        });
        ran.push((event, outcome));
        if acts {
            break;
        }
    }
    (ran, events)
}

impl HookQueue {
    /// Submits a call's actions as the policy and records the call when it
    /// acted or failed (causal audit, linked to the operation's entry).
    async fn carry_out(&self, event: &Event, record: CallRecord, cause_seq: Option<u64>) {
        let actor = Principal::Policy {
            name: record.policy.clone(),
        };
        let Some(account_id) = event.account_id() else {
            // Nothing to act on: say so instead of dropping the actions.
            let reason = "the event names no account (a webhook without data.account_id)";
            let dropped: Vec<String> = record
                .actions
                .iter()
                .map(|a| {
                    self.count_dropped("no_account");
                    tracing::warn!(policy = %record.policy, action = %crate::logsafe::Clean(&describe(a)), reason, "a policy action was not carried out");
                    format!("{} (not carried out: {reason})", describe(a))
                })
                .collect();
            if dropped.is_empty() && record.error.is_none() {
                return;
            }
            self.record(
                &actor,
                PLATFORM_AUDIT_SCOPE,
                &record,
                "dropped",
                dropped,
                cause_seq,
            )
            .await;
            return;
        };
        let mut done = Vec::new();
        for action in &record.actions {
            let outcome = match action_command(account_id, action) {
                Ok(command) => self
                    .writer
                    .submit(actor.clone(), command)
                    .await
                    .map(|_| ())
                    .map_err(|r| r.to_string()),
                Err(e) => Err(e),
            };
            match outcome {
                Ok(()) => done.push(describe(action)),
                Err(e) => {
                    self.count_dropped("refused");
                    tracing::warn!(policy = %record.policy, action = %crate::logsafe::Clean(&describe(action)), error = %crate::logsafe::Clean(&e), "a policy action was refused");
                    done.push(format!("{} (refused: {e})", describe(action)));
                }
            }
        }
        if done.is_empty() && record.error.is_none() {
            return;
        }
        let decision = if record.error.is_some() {
            "failed"
        } else {
            "acted"
        };
        self.record(&actor, account_id, &record, decision, done, cause_seq)
            .await;
    }

    fn count_dropped(&self, reason: &'static str) {
        self.metrics
            .policy_actions_dropped
            .get_or_create(&crate::metrics::ReasonLabels { reason })
            .inc();
    }

    /// Audits one policy call under `scope` (an account, or the platform's
    /// log when the account is unknown), linked to its cause.
    async fn record(
        &self,
        actor: &Principal,
        scope: &str,
        record: &CallRecord,
        decision: &str,
        actions: Vec<String>,
        cause_seq: Option<u64>,
    ) {
        let call = PolicyCallRecord {
            hook: record.hook.to_string(),
            version: record.version.clone(),
            decision: decision.into(),
            actions,
            duration_us: record.duration_us,
            error: record.error.clone(),
            cause_seq,
        };
        let submitted = self
            .writer
            .submit(
                actor.clone(),
                Command::RecordPolicyCall(cmd::RecordPolicyCall {
                    account_id: scope.to_string(),
                    call: call.clone(),
                }),
            )
            .await;
        match submitted {
            Ok(_) => {}
            // An account named by a webhook that does not exist: the
            // platform's log keeps the record.
            Err(r)
                if r.kind == crate::domain::RefusalKind::NotFound
                    && scope != PLATFORM_AUDIT_SCOPE =>
            {
                let mut call = call;
                call.actions = call
                    .actions
                    .into_iter()
                    .map(|a| format!("{a} [account {} not found]", crate::logsafe::Clean(scope)))
                    .collect();
                if let Err(e) = self
                    .writer
                    .submit(
                        actor.clone(),
                        Command::RecordPolicyCall(cmd::RecordPolicyCall {
                            account_id: PLATFORM_AUDIT_SCOPE.to_string(),
                            call,
                        }),
                    )
                    .await
                {
                    tracing::warn!(policy = %record.policy, error = %e, "recording a policy call failed");
                }
            }
            Err(e) => {
                tracing::warn!(policy = %record.policy, error = %e, "recording a policy call failed");
            }
        }
    }
}

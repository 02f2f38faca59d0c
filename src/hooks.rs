//! After-hooks: events the core emitted, committed in the same transaction
//! as their change, dispatched from the durable queue once flushed. At least
//! once: an event leaves the queue only after every handler ran, so a crash
//! in between runs it again. A failing handler is logged and the change
//! stands (DOMAIN.md "Hooks").

use std::sync::Arc;
use std::time::Duration;

use crate::domain::DomainEvent;
use crate::metrics::Metrics;
use crate::store::writer::Wakers;
use crate::store::{QueuedEvent, Store, T};

/// A handler of after-hooks (compiled plugins and scripts implement it).
pub trait AfterHook: Send + Sync {
    fn name(&self) -> &str;
    fn handle(&self, event: &DomainEvent, cause_seq: Option<u64>) -> Result<(), String>;
}

pub struct HookWorker {
    pub store: Store,
    pub handlers: Vec<Arc<dyn AfterHook>>,
    pub metrics: Arc<Metrics>,
    pub wakers: Arc<Wakers>,
}

const HOOK_SCAN_MAX: usize = 256;

impl HookWorker {
    pub async fn run(self) {
        loop {
            match self.pass().await {
                Ok(true) => continue,
                Ok(false) => {}
                Err(e) => tracing::error!(error = %e, "hook queue pass failed"),
            }
            let _ =
                tokio::time::timeout(Duration::from_secs(1), self.wakers.hooks.notified()).await;
        }
    }

    async fn pass(&self) -> anyhow::Result<bool> {
        let items: Vec<QueuedEvent> = self.store.queue_items(T::HookQueue, HOOK_SCAN_MAX)?;
        self.metrics.hook_queue_depth.set(items.len() as i64);
        if items.is_empty() {
            return Ok(false);
        }
        for item in items {
            tracing::info!(hook = item.event.hook_name(), event_id = item.id, cause_seq = ?item.cause_seq, "after-hook event");
            for handler in &self.handlers {
                let handler = handler.clone();
                let event = item.event.clone();
                let cause = item.cause_seq;
                let result =
                    tokio::task::spawn_blocking(move || handler.handle(&event, cause)).await;
                match result {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        tracing::warn!(hook = item.event.hook_name(), error = %e, "after-hook handler failed; the change stands")
                    }
                    Err(e) => {
                        tracing::warn!(hook = item.event.hook_name(), error = %e, "after-hook handler panicked; the change stands")
                    }
                }
            }
            self.store.queue_remove(T::HookQueue, item.id)?;
            self.metrics.hook_events_dispatched.inc();
        }
        self.store.db.flush_async().await?;
        Ok(true)
    }
}

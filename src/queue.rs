//! What the durable queues share: the writer's wake-ups. The writer commits
//! a queue item (a mail, an after-hook event, an outbound delivery) in the
//! transaction of its change and, once the batch is flushed, wakes the
//! worker that drains that queue; workers also poll, so a lost wake-up only
//! delays.

use tokio::sync::Notify;

/// Wakes the background workers after a flush made new items durable.
#[derive(Default)]
pub struct Wakers {
    pub outbox: Notify,
    pub hooks: Notify,
    pub outbound: Notify,
}

//! The single-validator engine: one node proposes, verifies and finalizes a
//! block `block_interval_busy_ms` after the previous one when transactions
//! wait (or as soon as one arrives), and `block_interval_ms` after it
//! otherwise, empty blocks included, so that chain time advances even when
//! nobody transacts.
//!
//! It drives the same [`Application`] steps as a BFT engine does, so
//! replacing it changes who decides finality, not what a block is.
//!
//! - `mod.rs`: configuration and start.
//! - `actor.rs`: the loop.
//! - `ingress.rs`: the messages it accepts and the mailbox to send them.

mod actor;
mod ingress;

use std::sync::Arc;

pub(crate) use ingress::Mailbox;

use crate::application::Application;

/// Messages the mailbox buffers; senders wait when it is full.
const MAILBOX_CAPACITY: usize = 8;
/// Shortest interval between blocks, ms.
pub(crate) const BLOCK_INTERVAL_MS_MIN: u64 = 1;

/// How the engine runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Config {
    /// Interval between blocks while no transaction waits, ms (at least
    /// [`BLOCK_INTERVAL_MS_MIN`]).
    pub(crate) block_interval_ms: u64,
    /// Shortest interval between blocks when transactions wait, ms (at
    /// least [`BLOCK_INTERVAL_MS_MIN`], at most `block_interval_ms`).
    pub(crate) block_interval_busy_ms: u64,
}

/// Spawns the engine on the current tokio runtime and returns its mailbox.
pub(crate) fn start<A: Application>(config: Config, application: Arc<A>) -> Mailbox {
    let (sender, receiver) = tokio::sync::mpsc::channel(MAILBOX_CAPACITY);
    let actor = actor::Actor::new(config, application, receiver);
    tokio::spawn(actor.run());
    Mailbox::new(sender)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::application::tests::Recorder;

    async fn until(what: &str, condition: impl Fn() -> bool) {
        tokio::time::timeout(Duration::from_secs(10), async {
            while !condition() {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"));
    }

    #[tokio::test]
    async fn each_tick_proposes_verifies_and_finalizes_in_order() {
        let application = Arc::new(Recorder::default());
        let mailbox = start(
            Config {
                block_interval_ms: 1,
                block_interval_busy_ms: 1,
            },
            application.clone(),
        );
        until("three blocks", || application.last_finalized().0 >= 3).await;
        mailbox.stop().await;
        let calls = application.calls.lock().unwrap().clone();
        let expected: Vec<String> = (1..=3)
            .flat_map(|h| {
                [
                    format!("propose {h}"),
                    format!("verify {h}"),
                    format!("finalized {h}"),
                ]
            })
            .collect();
        assert_eq!(calls[..9], expected[..]);
        // Stopped means stopped: no step runs after `stop` returns.
        let count = calls.len();
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(application.calls.lock().unwrap().len(), count);
        // Stopping twice is harmless.
        mailbox.stop().await;
    }

    #[tokio::test]
    async fn waiting_transactions_bring_the_next_block_forward() {
        let application = Arc::new(Recorder::default());
        application
            .work
            .store(true, std::sync::atomic::Ordering::SeqCst);
        // A minute between idle blocks: only the busy interval can make three in time.
        let mailbox = start(
            Config {
                block_interval_ms: 60_000,
                block_interval_busy_ms: 1,
            },
            application.clone(),
        );
        until("three blocks", || application.last_finalized().0 >= 3).await;
        mailbox.stop().await;
    }

    #[tokio::test]
    async fn an_arrival_ends_the_idle_wait() {
        let application = Arc::new(Recorder::default());
        let mailbox = start(
            Config {
                block_interval_ms: 60_000,
                block_interval_busy_ms: 1,
            },
            application.clone(),
        );
        until("the first block", || application.last_finalized().0 >= 1).await;
        application
            .work
            .store(true, std::sync::atomic::Ordering::SeqCst);
        application.arrivals.notify_waiters();
        until("the second block", || application.last_finalized().0 >= 2).await;
        mailbox.stop().await;
    }

    #[tokio::test]
    async fn a_failed_step_halts_production_but_not_the_mailbox() {
        let application = Arc::new(Recorder {
            fail_at: Some(2),
            ..Recorder::default()
        });
        let mailbox = start(
            Config {
                block_interval_ms: 1,
                block_interval_busy_ms: 1,
            },
            application.clone(),
        );
        until("the failure", || {
            application
                .calls
                .lock()
                .unwrap()
                .iter()
                .any(|c| c == "finalized 2")
        })
        .await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        let calls = application.calls.lock().unwrap().clone();
        assert_eq!(
            calls.last().map(String::as_str),
            Some("finalized 2"),
            "{calls:?}"
        );
        assert_eq!(application.last_finalized().0, 1);
        mailbox.stop().await;
    }
}

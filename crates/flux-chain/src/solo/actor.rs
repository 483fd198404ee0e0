//! The engine's loop.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;

use super::ingress::Message;
use super::{BLOCK_INTERVAL_MS_MIN, Config};
use crate::application::{Application, ApplicationError};

/// The engine.
pub(super) struct Actor<A> {
    config: Config,
    application: Arc<A>,
    mailbox: mpsc::Receiver<Message>,
    /// Set when a step failed: producing on top of a failed store or a
    /// block the node itself refuses would only make things worse.
    halted: bool,
}

impl<A: Application> Actor<A> {
    pub(super) fn new(
        config: Config,
        application: Arc<A>,
        mailbox: mpsc::Receiver<Message>,
    ) -> Actor<A> {
        Actor {
            config,
            application,
            mailbox,
            halted: false,
        }
    }

    pub(super) async fn run(mut self) {
        let interval_ms = self.config.block_interval_ms.max(BLOCK_INTERVAL_MS_MIN);
        let mut ticker = tokio::time::interval(Duration::from_millis(interval_ms));
        // After a slow block, wait a full interval rather than bursting to catch up.
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        tracing::info!(
            block_interval_ms = interval_ms,
            "single-validator block production started"
        );
        loop {
            tokio::select! {
                biased;
                message = self.mailbox.recv() => match message {
                    Some(Message::Stop { done }) => {
                        tracing::info!("block production stopped");
                        let _ = done.send(());
                        return;
                    }
                    None => return,
                },
                _ = ticker.tick(), if !self.halted => self.step().await,
            }
        }
    }

    /// One block: propose on the finalized tip, verify, finalize. The work is
    /// synchronous (execution and an fsync), so it runs on the blocking pool.
    async fn step(&mut self) {
        let application = self.application.clone();
        let result = tokio::task::spawn_blocking(move || -> Result<(), ApplicationError> {
            let (_, parent) = application.last_finalized();
            let now = now_ms();
            let block = application.propose(parent, now)?;
            application.verify(&block, now)?;
            application.finalized(block)
        })
        .await;
        let error = match result {
            Ok(Ok(())) => return,
            Ok(Err(error)) => error.to_string(),
            Err(join) => format!("the block step panicked: {join}"),
        };
        self.halted = true;
        tracing::error!(%error, "block production halted; fix the cause and restart the node");
    }
}

/// The wall clock in ms since the Unix epoch: block times come from here,
/// never from inside the ledger.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
        })
}

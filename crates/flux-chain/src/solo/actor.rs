//! The engine's loop.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;

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
    /// Time of the last block this engine made (none yet: the first goes out at once).
    last_block_ms: Option<u64>,
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
            last_block_ms: None,
        }
    }

    pub(super) async fn run(mut self) {
        let idle_ms = self.config.block_interval_ms.max(BLOCK_INTERVAL_MS_MIN);
        let busy_ms = self
            .config
            .block_interval_busy_ms
            .clamp(BLOCK_INTERVAL_MS_MIN, idle_ms);
        tracing::info!(
            block_interval_ms = idle_ms,
            block_interval_busy_ms = busy_ms,
            "single-validator block production started"
        );
        loop {
            let turn = next_turn(
                self.application.clone(),
                self.last_block_ms,
                busy_ms,
                idle_ms,
            );
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
                () = turn, if !self.halted => self.step().await,
            }
        }
    }

    /// One block: propose on the finalized tip, verify, finalize. The work is
    /// synchronous (execution and an fsync), so it runs on the blocking pool.
    async fn step(&mut self) {
        let application = self.application.clone();
        let result = tokio::task::spawn_blocking(move || -> Result<u64, ApplicationError> {
            let (_, parent) = application.last_finalized();
            let now = now_ms();
            let block = application.propose(parent, now)?;
            let timestamp_ms = block.header.timestamp_ms;
            application.verify(&block, now)?;
            application.finalized(block)?;
            Ok(timestamp_ms)
        })
        .await;
        let error = match result {
            Ok(Ok(timestamp_ms)) => {
                self.last_block_ms = Some(timestamp_ms);
                return;
            }
            Ok(Err(error)) => error.to_string(),
            Err(join) => format!("the block step panicked: {join}"),
        };
        self.halted = true;
        tracing::error!(%error, "block production halted; fix the cause and restart the node");
    }
}

/// Resolves when the next block is due: `busy_ms` after the last one if a
/// transaction waits by then, else as soon as one arrives, and `idle_ms`
/// after it at the latest; at once before the first block.
async fn next_turn<A: Application>(
    application: Arc<A>,
    last_block_ms: Option<u64>,
    busy_ms: u64,
    idle_ms: u64,
) {
    let Some(last_block_ms) = last_block_ms else {
        return;
    };
    sleep_until_ms(last_block_ms.saturating_add(busy_ms)).await;
    let idle_at = last_block_ms.saturating_add(idle_ms);
    loop {
        // Registered before the check, so an arrival in between is not missed.
        let arrived = application.arrivals().notified();
        let mut arrived = std::pin::pin!(arrived);
        arrived.as_mut().enable();
        let (_, parent) = application.last_finalized();
        if application.has_work(parent) {
            return;
        }
        tokio::select! {
            () = arrived => {}
            () = sleep_until_ms(idle_at) => return,
        }
    }
}

/// Sleeps until the wall clock reads `ms`.
async fn sleep_until_ms(ms: u64) {
    let wait = ms.saturating_sub(now_ms());
    if wait > 0 {
        tokio::time::sleep(Duration::from_millis(wait)).await;
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

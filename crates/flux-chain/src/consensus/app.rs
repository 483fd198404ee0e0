//! What simplex (through marshal) asks of Flux: build a block when this
//! node leads a view, and judge a block another validator proposed.
//!
//! Both run on the ledger-backed [`Ledger`]: a proposal is built from the
//! mempool on the parent's state, and a block gets a vote only if the ledger
//! re-executes it to the same state root. A block the ledger refuses never
//! gathers the votes of honest validators, so it is never finalized.
//!
//! The parent's state is found among the blocks this node executed but has
//! not finalized yet, or is the finalized tip. After a restart, or on a node
//! that lagged, it may be neither: the missing ancestors are fetched through
//! marshal's ancestry stream and executed first, oldest first.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use commonware_consensus::Application;
use commonware_consensus::marshal::ancestry::Ancestry;
use commonware_consensus::simplex::scheme::ed25519::Scheme;
use commonware_consensus::simplex::types::Context;
use commonware_cryptography::{Digested, ed25519};
use commonware_runtime::{Clock, Metrics, Spawner};
use flux_types::Hash;
use futures::StreamExt as _;
use futures::future::Either;

use super::block::{ChainBlock, Digest, digest_of};
use super::epochs::flux_key;
use crate::application::{Application as _, ApplicationError, Ledger, UNFINALIZED_BLOCKS_MAX};

/// The consensus context of a proposal.
pub(crate) type ConsensusContext = Context<Digest, ed25519::PublicKey>;

/// How often a node too far behind checks whether it caught up.
const CATCH_UP_POLL_MS: u64 = 50;

/// The application handed to marshal's `Inline` wrapper.
#[derive(Clone)]
pub(crate) struct FluxApp {
    ledger: Arc<Ledger>,
    /// Time between a block and its child while no transaction waits.
    block_interval: Duration,
    /// Shortest time between a block and its child when transactions wait.
    block_interval_busy: Duration,
}

/// Why the state of a block's parent is not available.
enum Missing {
    /// The chain conflicts with finalized history or fails the ledger.
    Invalid,
    /// Not decidable now (the ancestry could not be fetched).
    Unknown,
}

impl FluxApp {
    pub(crate) fn new(
        ledger: Arc<Ledger>,
        block_interval: Duration,
        block_interval_busy: Duration,
    ) -> FluxApp {
        FluxApp {
            ledger,
            block_interval,
            block_interval_busy: block_interval_busy.min(block_interval),
        }
    }

    /// Waits until a block on `parent` (timed `parent_ms`) is due:
    /// `block_interval_busy` after the parent if the mempool holds a
    /// transaction it can include by then, else as soon as one arrives, and
    /// `block_interval` after the parent at the latest.
    async fn wait_for_turn(&self, context: &impl Clock, parent: Hash, parent_ms: u64) {
        let busy_at = parent_ms.saturating_add(duration_ms(self.block_interval_busy));
        let idle_at = parent_ms.saturating_add(duration_ms(self.block_interval));
        context.sleep_until(system_time(busy_at)).await;
        let arrivals = self.ledger.shared().arrivals();
        loop {
            // Registered before the check, so an arrival in between is not missed.
            let mut arrived = std::pin::pin!(arrivals.notified());
            arrived.as_mut().enable();
            if self.ledger.has_work(parent) {
                return;
            }
            let idle = std::pin::pin!(context.sleep_until(system_time(idle_at)));
            if let Either::Right(_) = futures::future::select(arrived, idle).await {
                return;
            }
        }
    }

    /// Waits until `height` is within reach of the kept unfinalized blocks:
    /// a node far behind catches up through finalized blocks instead of
    /// executing a long unfinalized chain.
    async fn wait_within_reach(&self, context: &impl Clock, height: u64) {
        loop {
            let (finalized, _) = self.ledger.last_finalized();
            if height <= finalized + UNFINALIZED_BLOCKS_MAX as u64 / 2 {
                return;
            }
            context.sleep(Duration::from_millis(CATCH_UP_POLL_MS)).await;
        }
    }

    /// Makes sure the head of `ancestry` has been executed, executing the
    /// ancestors this node has not seen, oldest first.
    async fn execute_ancestry(
        &self,
        context: &(impl Clock + Spawner),
        mut ancestry: impl Ancestry<ChainBlock>,
    ) -> Result<(), Missing> {
        let mut missing: Vec<Digested<ChainBlock>> = Vec::new();
        loop {
            let Some(block) = ancestry.next().await else {
                return Err(Missing::Unknown);
            };
            let hash = block.inner().hash();
            if self.ledger.state_of(hash).is_some() {
                break;
            }
            let (finalized, _) = self.ledger.last_finalized();
            if block.inner().block().height() <= finalized {
                // Not the finalized block at its height, nor above it.
                tracing::debug!(
                    height = block.inner().block().height(),
                    finalized,
                    "a proposal's ancestry conflicts with the finalized chain"
                );
                return Err(Missing::Invalid);
            }
            if missing.len() >= UNFINALIZED_BLOCKS_MAX / 2 {
                return Err(Missing::Unknown);
            }
            missing.push(block);
        }
        for block in missing.into_iter().rev() {
            let ledger = self.ledger.clone();
            let verdict = blocking(context, move || {
                ledger.verify(block.inner().block(), u64::MAX)
            })
            .await;
            match verdict {
                Some(Ok(())) => {}
                Some(Err(ApplicationError::Invalid(error))) => {
                    tracing::warn!(%error, "a certified ancestor fails the ledger");
                    return Err(Missing::Invalid);
                }
                Some(Err(_)) | None => return Err(Missing::Unknown),
            }
        }
        Ok(())
    }
}

/// Runs synchronous work (execution, signature checks) where it does not
/// hold up the runtime's other tasks; `None` if the task was aborted.
pub(crate) async fn blocking<T: Send + 'static>(
    context: &impl Spawner,
    work: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    context
        .child("ledger")
        .shared(true)
        .spawn(move |_| async move { work() })
        .await
        .ok()
}

fn system_time(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

fn duration_ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

fn millis(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl<E> Application<E> for FluxApp
where
    E: Clock + Spawner + Metrics,
{
    type SigningScheme = Scheme;
    type Context = ConsensusContext;
    type Block = ChainBlock;
    type Input = ();

    async fn propose(
        &mut self,
        (context, _consensus): (E, ConsensusContext),
        ancestry: impl Ancestry<ChainBlock>,
        _input: (),
    ) -> Option<Digested<ChainBlock>> {
        let parent = ancestry.peek()?.clone();
        let parent_block = parent.inner().block();
        self.wait_within_reach(&context, parent_block.height() + 1)
            .await;
        if self.execute_ancestry(&context, ancestry).await.is_err() {
            tracing::debug!(parent = %parent.inner().hash(), "cannot build on this parent; skipping the view");
            return None;
        }
        // Simplex starts the next view as soon as the previous one is
        // certified: pacing here keeps an idle network at one block per
        // interval, and a busy one at one per busy interval, instead of as
        // many as the links allow.
        let parent_hash = parent.inner().hash();
        self.wait_for_turn(&context, parent_hash, parent_block.header.timestamp_ms)
            .await;
        let now = millis(context.current());
        let ledger = self.ledger.clone();
        let built = blocking(&context, move || ledger.propose(parent_hash, now)).await?;
        match built {
            Ok(block) => {
                let block = ChainBlock::new(block);
                let digest = digest_of(block.hash());
                tracing::debug!(
                    height = block.block().height(),
                    txs = block.block().txs.len(),
                    "proposing"
                );
                Some(Digested::precomputed(block, digest))
            }
            Err(error) => {
                tracing::warn!(%error, "building a proposal failed");
                None
            }
        }
    }

    async fn verify(
        &mut self,
        (context, consensus): (E, ConsensusContext),
        mut ancestry: impl Ancestry<ChainBlock>,
    ) -> bool {
        let Some(block) = ancestry.next().await else {
            return futures::future::pending().await;
        };
        let header = block.inner().block().header.clone();
        if header.proposer != flux_key(&consensus.leader) {
            tracing::warn!(
                height = header.height,
                "a block names a proposer other than the view's leader"
            );
            return false;
        }
        self.wait_within_reach(&context, header.height).await;
        // A block is not voted for before its time: a proposer with a fast
        // clock waits for the others rather than dragging chain time ahead.
        context.sleep_until(system_time(header.timestamp_ms)).await;
        match self.execute_ancestry(&context, ancestry).await {
            Ok(()) => {}
            Err(Missing::Invalid) => return false,
            // Abstain: the engine cancels the request when the view ends.
            Err(Missing::Unknown) => return futures::future::pending().await,
        }
        let ledger = self.ledger.clone();
        let now = millis(context.current());
        let verdict = blocking(&context, move || ledger.verify(block.inner().block(), now)).await;
        match verdict {
            Some(Ok(())) => true,
            Some(Err(ApplicationError::Invalid(error))) => {
                tracing::warn!(height = header.height, %error, "refusing a proposal the ledger rejects");
                false
            }
            Some(Err(error)) => {
                tracing::debug!(height = header.height, %error, "cannot judge a proposal now");
                futures::future::pending().await
            }
            None => futures::future::pending().await,
        }
    }
}

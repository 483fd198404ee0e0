//! Finalized blocks, from marshal to the store: commit, then (at an epoch's
//! last block) fix the next committee, then acknowledge.
//!
//! Marshal delivers finalized blocks in height order, at least once: after
//! a restart it delivers again from the last acknowledged height, which the
//! store may already hold. Committing is therefore idempotent by height, and
//! the acknowledgement is sent only after the store's commit is durable, so
//! an acknowledged block is never lost.

use std::sync::{Arc, Mutex, PoisonError};

use commonware_actor::Feedback;
use commonware_consensus::marshal::Update;
use commonware_consensus::types::{Epoch, Epocher as _, FixedEpocher, Height};
use commonware_consensus::{Heightable as _, Reporter};
use commonware_utils::Acknowledgement as _;
use commonware_utils::channel::mpsc;
use flux_types::Genesis;

use super::app::blocking;
use super::block::{ChainBlock, Digest, digest_of};
use super::epochs::Committees;
use crate::application::{Application as _, Ledger};
use crate::committee::{Eligibility, committee};

/// Marshal's reporter: hands updates to the committer task, never blocks.
#[derive(Clone)]
pub(crate) struct Finalizer {
    sender: mpsc::UnboundedSender<Update<ChainBlock>>,
}

impl Finalizer {
    pub(crate) fn new() -> (Finalizer, mpsc::UnboundedReceiver<Update<ChainBlock>>) {
        // Unbounded here, bounded by marshal: it holds at most
        // `max_pending_acks` unacknowledged blocks.
        let (sender, receiver) = mpsc::unbounded_channel();
        (Finalizer { sender }, receiver)
    }
}

impl Reporter for Finalizer {
    type Activity = Update<ChainBlock>;

    fn report(&mut self, activity: Self::Activity) -> Feedback {
        match self.sender.send(activity) {
            Ok(()) => Feedback::Ok,
            Err(_) => Feedback::Closed,
        }
    }
}

/// A request to the epoch orchestrator: the boundary block of the epoch
/// before `epoch` is committed, and the committee of `epoch` is recorded.
#[derive(Clone, Debug)]
pub(crate) struct EnterEpoch {
    pub(crate) epoch: Epoch,
    /// The last block of the previous epoch: the new engine's starting point.
    pub(crate) floor: Digest,
}

/// What the committer needs.
pub(crate) struct Committer {
    pub(crate) ledger: Arc<Ledger>,
    pub(crate) genesis: Arc<Genesis>,
    pub(crate) committees: Arc<Mutex<Committees>>,
    pub(crate) eligibility: Eligibility,
    pub(crate) p2p_port: u16,
    pub(crate) epocher: FixedEpocher,
    pub(crate) orchestrator: mpsc::UnboundedSender<EnterEpoch>,
}

impl Committer {
    /// Commits every delivered block in order until marshal goes away or a
    /// commit fails; a failure leaves the block unacknowledged, which stops
    /// finalization on this node rather than skipping the block, and is
    /// reported through [`crate::Node::failure`].
    pub(crate) async fn run(
        self,
        context: impl commonware_runtime::Spawner,
        mut updates: mpsc::UnboundedReceiver<Update<ChainBlock>>,
    ) {
        while let Some(update) = updates.recv().await {
            let (block, acknowledgement) = match update {
                Update::Tip(_, height, _) => {
                    self.ledger.shared().observe_network_height(height.get());
                    continue;
                }
                Update::Block(block, acknowledgement) => (block, acknowledgement),
            };
            let height = block.height();
            if height.get() > 0 {
                let ledger = self.ledger.clone();
                let inner = block.inner().block().clone();
                match blocking(&context, move || ledger.finalized(inner)).await {
                    Some(Ok(())) => {}
                    Some(Err(error)) => {
                        self.ledger.shared().fail(format!(
                            "committing finalized block {} failed: {error}",
                            height.get()
                        ));
                        // Keep the acknowledgement: dropping it would stop marshal too.
                        std::future::pending::<()>().await;
                    }
                    None => return,
                }
            }
            if let Err(error) = self.at_epoch_end(height, block.inner()) {
                self.ledger
                    .shared()
                    .fail(format!("recording the next committee failed: {error}"));
                std::future::pending::<()>().await;
            }
            acknowledgement.acknowledge();
        }
    }

    /// At the last block of an epoch: records the next epoch's committee and
    /// tells the orchestrator to enter that epoch.
    fn at_epoch_end(
        &self,
        height: Height,
        block: &ChainBlock,
    ) -> Result<(), super::epochs::EpochsError> {
        let Some(bounds) = self.epocher.containing(height) else {
            return Ok(());
        };
        if bounds.last() != height {
            return Ok(());
        }
        let next = bounds.epoch().next();
        let state = self.ledger.finalized_state();
        if state.height() != height.get() {
            // Delivered again after the store moved on: recorded back then.
            return Ok(());
        }
        let members = committee(&self.genesis, &state, self.eligibility, self.p2p_port);
        self.committees
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .record(next.get(), &members)?;
        tracing::info!(
            epoch = next.get(),
            validators = members.len(),
            "next committee fixed"
        );
        let _ = self.orchestrator.send(EnterEpoch {
            epoch: next,
            floor: digest_of(block.hash()),
        });
        Ok(())
    }
}

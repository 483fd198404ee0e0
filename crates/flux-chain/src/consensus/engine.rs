//! One node's consensus wiring, on any commonware runtime and transport:
//! marshal (block dissemination, backfill, finalized delivery), the epoch
//! orchestrator (one simplex engine per epoch), the committer and gossip.
//!
//! ```text
//!  p2p ch 0,1,2 ──mux by epoch──► simplex engine of epoch e ──► Inline(FluxApp)
//!  p2p ch 3 ◄──► buffered broadcast ─┐                              │
//!  p2p ch 4 ◄──► backfill resolver ──┴──► marshal ──Update::Block──► committer ──► store
//!  p2p ch 5 ◄──► mempool gossip                                    └─EnterEpoch─► orchestrator
//! ```

use std::num::NonZeroU64;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use commonware_broadcast::buffered;
use commonware_consensus::marshal::core::{Actor as MarshalActor, Mailbox as MarshalMailbox};
use commonware_consensus::marshal::resolver::p2p as marshal_resolver;
use commonware_consensus::marshal::standard::{Inline, Standard};
use commonware_consensus::marshal::{self, Start};
use commonware_consensus::simplex::config::{Floor, ForwardPolicy, SkipBudget, SkipPolicy};
use commonware_consensus::simplex::elector::RoundRobin;
use commonware_consensus::simplex::scheme::ed25519::Scheme;
use commonware_consensus::simplex::{self, Engine};
use commonware_consensus::types::{Epoch, Epocher as _, FixedEpocher, Height, ViewDelta};
use commonware_cryptography::certificate::Verifier as _;
use commonware_cryptography::{Digested, Digestible as _, Sha256, Signer as _, ed25519};
use commonware_p2p::utils::mux::{Builder as _, Muxer};
use commonware_p2p::{Blocker, Provider, Receiver, Sender};
use commonware_parallel::Sequential;
use commonware_runtime::buffer::paged::CacheRef;
use commonware_runtime::{Clock, Handle, Metrics, Spawner, Storage};
use commonware_storage::archive::immutable;
use commonware_utils::channel::mpsc;
use commonware_utils::vec::NonEmptyVec;
use commonware_utils::{NZDuration, NZU16, NZU64, NZUsize};
use flux_types::{Genesis, SignedTransaction};
use rand_core_010::CryptoRng;

use super::app::FluxApp;
use super::block::{ChainBlock, Digest, digest_of};
use super::epochs::{Committees, EpochSchemes, participants};
use super::finalizer::{Committer, EnterEpoch, Finalizer};
use super::gossip;
use crate::ChainError;
use crate::application::{Application as _, Ledger};
use crate::committee::{Eligibility, Member, committee, registered_endpoints};

/// p2p channel ids; every node registers the same ones.
pub mod channel {
    /// Simplex votes, muxed by epoch.
    pub const VOTES: u64 = 0;
    /// Simplex certificates, muxed by epoch.
    pub const CERTIFICATES: u64 = 1;
    /// Simplex certificate requests, muxed by epoch.
    pub const RESOLVER: u64 = 2;
    /// Full blocks, broadcast by their proposer (marshal's buffer).
    pub const BLOCKS: u64 = 3;
    /// Blocks and finalizations fetched by height or digest (marshal backfill).
    pub const BACKFILL: u64 = 4;
    /// Mempool gossip and heartbeats.
    pub const MEMPOOL: u64 = 5;
}

/// A sender and receiver per channel.
pub struct Channels<S, R> {
    /// [`channel::VOTES`].
    pub votes: (S, R),
    /// [`channel::CERTIFICATES`].
    pub certificates: (S, R),
    /// [`channel::RESOLVER`].
    pub resolver: (S, R),
    /// [`channel::BLOCKS`].
    pub blocks: (S, R),
    /// [`channel::BACKFILL`].
    pub backfill: (S, R),
    /// [`channel::MEMPOOL`].
    pub mempool: (S, R),
}

/// Tells the transport which peers to keep connections with.
pub trait PeerTracker: Send + 'static {
    /// Called on entering `epoch`: the committee (dialled) and the other
    /// registered nodes (accepted when they connect, not dialled).
    fn track(&mut self, epoch: Epoch, committee: &[Member], registered: &[Member]);
}

/// Consensus timing, the same on every node of a network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// How long a view waits for its leader's proposal.
    pub leader: Duration,
    /// How long a view waits for certification once it has a proposal.
    pub certification: Duration,
    /// How often a timed-out view re-broadcasts its nullify vote.
    pub retry: Duration,
}

impl Timeouts {
    /// Timeouts for a block interval: a leader waits out the interval after
    /// its parent before it proposes, so its timeout must exceed it.
    pub fn for_block_interval(block_interval: Duration) -> Timeouts {
        let leader = block_interval + Duration::from_secs(1);
        Timeouts {
            leader,
            certification: leader + Duration::from_secs(1),
            retry: Duration::from_secs(5).max(leader),
        }
    }
}

/// Everything one node's consensus needs besides its transport.
pub(crate) struct Settings {
    pub(crate) ledger: Arc<Ledger>,
    pub(crate) genesis: Arc<Genesis>,
    pub(crate) signer: ed25519::PrivateKey,
    pub(crate) committees_dir: std::path::PathBuf,
    /// Prefix of the runtime's storage partitions (distinct per node when
    /// several nodes share one runtime, as in simulations).
    pub(crate) partition_prefix: String,
    pub(crate) eligibility: Eligibility,
    pub(crate) p2p_port: u16,
    pub(crate) timeouts: Timeouts,
    /// Interval between blocks while no transaction waits.
    pub(crate) block_interval: Duration,
    /// Shortest interval between blocks when transactions wait.
    pub(crate) block_interval_busy: Duration,
    pub(crate) gossip: futures::channel::mpsc::Receiver<SignedTransaction>,
}

/// The namespace of consensus signatures: votes of one chain never count on another.
pub(crate) fn consensus_namespace(genesis: &Genesis) -> Vec<u8> {
    format!("FLUX/consensus/v1/{}/{}", genesis.chain_id, genesis.hash()).into_bytes()
}

/// The epoch arithmetic: epoch `e` holds heights `[eE, (e+1)E - 1]`, so
/// epoch 0 holds the genesis anchor and `E - 1` blocks.
pub(crate) fn epocher(genesis: &Genesis) -> Result<FixedEpocher, ChainError> {
    let length = genesis.params.epoch_length_blocks;
    if length < 2 {
        return Err(ChainError::Genesis(format!(
            "params.epoch_length_blocks is {length}; consensus needs at least 2"
        )));
    }
    Ok(FixedEpocher::new(
        NonZeroU64::new(length).expect("checked above"),
    ))
}

/// Runs one node until the runtime stops it.
pub(crate) async fn run<E, S, R, B, P, T>(
    context: E,
    settings: Settings,
    channels: Channels<S, R>,
    blocker: B,
    peer_provider: P,
    mut tracker: T,
) -> Result<(), ChainError>
where
    E: Spawner + Clock + Metrics + Storage + CryptoRng,
    S: Sender<PublicKey = ed25519::PublicKey>,
    R: Receiver<PublicKey = ed25519::PublicKey>,
    B: Blocker<PublicKey = ed25519::PublicKey>,
    P: Provider<PublicKey = ed25519::PublicKey>,
    T: PeerTracker,
{
    let Settings {
        ledger,
        genesis,
        signer,
        committees_dir,
        partition_prefix,
        eligibility,
        p2p_port,
        timeouts,
        block_interval,
        block_interval_busy,
        gossip: gossip_queue,
    } = settings;
    let me = signer.public_key();
    let epocher = epocher(&genesis)?;
    let page_cache = CacheRef::new(NZU16!(4096), NZUsize!(1024));
    let anchor = ChainBlock::anchor(
        genesis.genesis_time_ms,
        genesis_state_root(&ledger, &genesis)?,
    );
    let anchor_digest = anchor.digest();

    // The committees up to the epoch this node resumes in.
    let mut committees = Committees::load(&committees_dir).map_err(store_error)?;
    let (tip_height, _) = ledger.last_finalized();
    let start_epoch = epocher
        .containing(Height::new(tip_height + 1))
        .expect("every height has an epoch")
        .epoch();
    if committees
        .highest_epoch()
        .is_none_or(|h| h < start_epoch.get())
    {
        let previous = committees.highest_epoch();
        let expected = start_epoch.get().checked_sub(1);
        if previous != expected {
            return Err(ChainError::Store(format!(
                "{} knows committees up to epoch {previous:?} but the chain is in epoch {}; restore the file or resync the node from an empty data directory",
                committees_dir
                    .join(super::epochs::COMMITTEES_FILE)
                    .display(),
                start_epoch.get()
            )));
        }
        let state = ledger.finalized_state();
        let members = committee(&genesis, &state, eligibility, p2p_port);
        committees
            .record(start_epoch.get(), &members)
            .map_err(store_error)?;
    }
    let namespace = consensus_namespace(&genesis);
    let schemes = EpochSchemes::new(namespace, signer.clone());
    for epoch in 0..=start_epoch.get() {
        let members = committees.get(epoch).expect("recorded above");
        schemes.register(Epoch::new(epoch), &members);
    }
    let start_floor = match start_epoch.previous() {
        None => anchor_digest,
        Some(previous) => {
            let last = epocher.last(previous).expect("epoch has bounds");
            let block = ledger
                .shared()
                .store
                .block(last.get())
                .map_err(|e| ChainError::Store(e.to_string()))?
                .ok_or_else(|| {
                    ChainError::Store(format!(
                        "the last block of epoch {} (height {}) is missing from the store",
                        previous.get(),
                        last.get()
                    ))
                })?;
            digest_of(block.hash())
        }
    };
    let committees = Arc::new(Mutex::new(committees));

    // Full blocks broadcast by their proposer.
    let (broadcast, buffer) = buffered::Engine::<_, ed25519::PublicKey, _, _, _>::new(
        context.child("buffer"),
        buffered::Config {
            public_key: me.clone(),
            mailbox_size: NZUsize!(1024),
            deque_size: 16,
            priority: false,
            codec_config: (),
            peer_provider: peer_provider.clone(),
            strategy: Sequential,
        },
    );
    broadcast.start(channels.blocks);

    // Blocks and finalizations fetched from peers.
    let resolver = marshal_resolver::init(
        context.child("marshal_resolver"),
        marshal_resolver::Config {
            public_key: me.clone(),
            peer_provider: peer_provider.clone(),
            blocker: blocker.clone(),
            mailbox_size: NZUsize!(1024),
            fetch_timeout: NZDuration!(Duration::from_secs(2)),
            fetch_retry_delay: Duration::from_millis(100),
            priority_requests: false,
            priority_responses: false,
        },
        channels.backfill,
    );

    let prefix = partition_prefix.as_str();
    let finalizations = immutable::Archive::init(
        context.child("finalizations"),
        archive_config(
            prefix,
            "finalizations",
            &page_cache,
            Scheme::certificate_codec_config_unbounded(),
        ),
    )
    .await
    .map_err(|e| ChainError::Store(format!("finalizations archive: {e}")))?;
    let blocks = immutable::Archive::init(
        context.child("blocks"),
        archive_config(prefix, "blocks", &page_cache, ()),
    )
    .await
    .map_err(|e| ChainError::Store(format!("blocks archive: {e}")))?;

    let (marshal_actor, marshal, _floor): (
        MarshalActor<_, Standard<ChainBlock>, _, _, _, _, _>,
        MarshalMailbox<Scheme, Standard<ChainBlock>>,
        _,
    ) = MarshalActor::init(
        context.child("marshal"),
        finalizations,
        blocks,
        marshal::Config {
            provider: schemes.clone(),
            epocher: epocher.clone(),
            start: Start::Genesis(Digested::precomputed(anchor.clone(), anchor_digest)),
            partition_prefix: format!("{prefix}-marshal"),
            mailbox_size: NZUsize!(1024),
            view_retention: ViewDelta::new(1024),
            prunable_items_per_section: NZU64!(256),
            page_cache: page_cache.clone(),
            replay_buffer: NZUsize!(1024 * 1024),
            key_write_buffer: NZUsize!(1024 * 1024),
            value_write_buffer: NZUsize!(1024 * 1024),
            block_codec_config: (),
            max_repair: NZUsize!(16),
            max_pending_acks: NZUsize!(8),
            strategy: Sequential,
        },
    )
    .await;

    let (finalizer, finalized) = Finalizer::new();
    let (epoch_sender, mut epoch_receiver) = mpsc::unbounded_channel::<EnterEpoch>();
    marshal_actor.start(finalizer, buffer, resolver);
    let committer = Committer {
        ledger: ledger.clone(),
        genesis: genesis.clone(),
        committees: committees.clone(),
        eligibility,
        p2p_port,
        epocher: epocher.clone(),
        orchestrator: epoch_sender,
    };
    context
        .child("committer")
        .spawn(move |context| committer.run(context, finalized));

    let application = FluxApp::new(ledger.clone(), block_interval, block_interval_busy);
    let wrapper = Inline::new(
        context.child("inline"),
        application,
        marshal.clone(),
        epocher.clone(),
    );

    let validators: gossip::Validators = Arc::new(RwLock::new(Vec::new()));
    context.child("gossip").spawn({
        let shared = ledger.shared().clone();
        let me = me.clone();
        let validators = validators.clone();
        let blocker = blocker.clone();
        move |context| {
            gossip::run(
                context,
                shared,
                me,
                validators,
                gossip_queue,
                channels.mempool,
                blocker,
            )
        }
    });

    // One simplex engine per epoch, each on its own subchannels.
    let (vote_mux, mut votes, mut vote_backup) = Muxer::builder(
        context.child("vote_mux"),
        channels.votes.0,
        channels.votes.1,
    )
    .with_backup()
    .build();
    vote_mux.start();
    let (certificate_mux, mut certificates) = Muxer::new(
        context.child("certificate_mux"),
        channels.certificates.0,
        channels.certificates.1,
    );
    certificate_mux.start();
    let (resolver_mux, mut resolvers) = Muxer::new(
        context.child("resolver_mux"),
        channels.resolver.0,
        channels.resolver.1,
    );
    resolver_mux.start();

    let mut enter = |epoch: Epoch, floor: Digest| {
        let members = committees
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(epoch.get())
            .expect("a committee is recorded before its epoch is entered");
        let registered = registered_endpoints(&ledger.finalized_state(), p2p_port);
        tracker.track(epoch, &members, &registered);
        *validators.write().unwrap_or_else(PoisonError::into_inner) =
            participants(&members).into_iter().collect();
        let scheme = schemes.register(epoch, &members);
        tracing::info!(
            epoch = epoch.get(),
            validators = members.len(),
            validating = schemes.is_member(epoch),
            "entering epoch"
        );
        Engine::new(
            context.child("simplex").with_attribute("epoch", epoch),
            simplex::Config {
                scheme: scheme.as_ref().clone(),
                elector: RoundRobin::<Sha256>::default(),
                blocker: blocker.clone(),
                automaton: wrapper.clone(),
                relay: wrapper.clone(),
                reporter: wrapper.clone(),
                strategy: Sequential,
                partition: format!("{prefix}-simplex-{epoch}"),
                mailbox_size: NZUsize!(1024),
                epoch,
                floor: Floor::Genesis(floor),
                replay_buffer: NZUsize!(1024 * 1024),
                write_buffer: NZUsize!(1024 * 1024),
                page_cache: page_cache.clone(),
                leader_timeout: timeouts.leader,
                certification_timeout: timeouts.certification,
                timeout_retry: timeouts.retry,
                view_retention: ViewDelta::new(256),
                skip: SkipPolicy::Enabled {
                    timeout: (timeouts.certification + timeouts.retry) * 2,
                    budget: SkipBudget::Participants,
                },
                fetch_timeout: NZDuration!(Duration::from_secs(1)),
                fetch_retry_delay: Duration::from_millis(100),
                forward: ForwardPolicy::SilentLeader,
                track_historical_votes: false,
            },
        )
    };

    let engine = enter(start_epoch, start_floor);
    let register = |error| ChainError::Store(format!("consensus channel: {error:?}"));
    let mut current: (Epoch, Handle<()>) = (
        start_epoch,
        engine.start(
            votes.register(start_epoch.get()).await.map_err(register)?,
            certificates
                .register(start_epoch.get())
                .await
                .map_err(register)?,
            resolvers
                .register(start_epoch.get())
                .await
                .map_err(register)?,
        ),
    );
    loop {
        commonware_macros::select! {
            request = epoch_receiver.recv() => {
                let Some(EnterEpoch { epoch, floor }) = request else { break };
                if epoch <= current.0 {
                    continue;
                }
                let engine = enter(epoch, floor);
                let handle = engine.start(
                    votes.register(epoch.get()).await.map_err(register)?,
                    certificates.register(epoch.get()).await.map_err(register)?,
                    resolvers.register(epoch.get()).await.map_err(register)?,
                );
                let (_, old) = std::mem::replace(&mut current, (epoch, handle));
                // Its subchannels close with it.
                old.abort();
            },
            backup = vote_backup.recv() => {
                // Votes of an epoch without an engine here. From a later
                // epoch, they mean this node is behind a boundary: fetch
                // the boundary's finalization from the sender.
                let Some((their_epoch, (from, _))) = backup else { break };
                if their_epoch > current.0.get() {
                    let boundary = epocher.last(current.0).expect("epoch has bounds");
                    marshal.hint_finalized(boundary, NonEmptyVec::new(from));
                }
            },
        }
    }
    Ok(())
}

/// The genesis state root, which the anchor commits to.
fn genesis_state_root(ledger: &Ledger, genesis: &Genesis) -> Result<flux_types::Hash, ChainError> {
    let state = ledger.finalized_state();
    if state.height() == 0 {
        return Ok(state.state_root());
    }
    let (state, _) = flux_ledger::State::from_genesis(genesis)
        .map_err(|e| ChainError::Genesis(e.to_string()))?;
    Ok(state.state_root())
}

fn store_error(error: super::epochs::EpochsError) -> ChainError {
    ChainError::Store(error.to_string())
}

/// The configuration of one marshal archive.
fn archive_config<C>(
    prefix: &str,
    name: &str,
    page_cache: &CacheRef,
    codec_config: C,
) -> immutable::Config<C> {
    immutable::Config {
        metadata_partition: format!("{prefix}-{name}-metadata"),
        freezer_table_partition: format!("{prefix}-{name}-freezer-table"),
        freezer_table_initial_size: 1024,
        freezer_table_resize_frequency: 10,
        freezer_table_resize_chunk_size: 1024,
        freezer_key_partition: format!("{prefix}-{name}-freezer-key"),
        freezer_key_page_cache: page_cache.clone(),
        freezer_value_partition: format!("{prefix}-{name}-freezer-value"),
        freezer_value_target_size: 64 * 1024 * 1024,
        freezer_value_compression: None,
        ordinal_partition: format!("{prefix}-{name}-ordinal"),
        items_per_section: NZU64!(4096),
        codec_config,
        replay_buffer: NZUsize!(1024 * 1024),
        freezer_key_write_buffer: NZUsize!(1024 * 1024),
        freezer_value_write_buffer: NZUsize!(1024 * 1024),
        ordinal_write_buffer: NZUsize!(1024 * 1024),
    }
}

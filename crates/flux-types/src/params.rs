//! Every economic and policy number of the network, in one structure that
//! lives in genesis (and, later, changes only by governance).

use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};

use crate::amount::Amount;
use crate::gov::GovParams;
use crate::node::Tier;

/// Per-tier requirements and weights.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, BorshSerialize, BorshDeserialize)]
pub struct TierParams {
    /// Collateral locked while the node is registered.
    pub collateral: Amount,
    /// Minimum logical CPU cores.
    pub cores_min: u32,
    /// Minimum memory in MB.
    pub ram_mb_min: u64,
    /// Minimum disk in GB.
    pub disk_gb_min: u64,
    /// Minimum CPU benchmark score (events per second).
    pub cpu_score_min: u64,
    /// Minimum sequential disk write speed with fsync, MB/s.
    pub disk_write_mb_per_s_min: u64,
    /// Reward weight in thousandths (Cumulus 1000, Nimbus 3500, Stratus 9000).
    pub reward_weight_milli: u64,
}

/// Monthly app prices (the Flux table).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, BorshSerialize, BorshDeserialize)]
pub struct AppPrices {
    /// Per 0.1 CPU core per instance.
    pub cpu_per_tenth: Amount,
    /// Per 100 MB of RAM per instance.
    pub ram_per_100_mb: Amount,
    /// Per GB of disk per instance.
    pub hdd_per_gb: Amount,
    /// Per published port outside the standard range (an "enterprise" port), per app.
    pub enterprise_port: Amount,
    /// When the app is pinned to named nodes, per app.
    pub pinned_nodes: Amount,
    /// When the app asks for nodes with a static IP, per app.
    pub static_ip: Amount,
    /// The least an app pays per month.
    pub minimum: Amount,
}

/// An inclusive range of ports.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, BorshSerialize, BorshDeserialize,
)]
pub struct PortRange {
    /// First port of the range.
    pub first: u16,
    /// Last port of the range.
    pub last: u16,
}

impl PortRange {
    /// Whether `port` lies in the range.
    pub fn contains(&self, port: u16) -> bool {
        self.first <= port && port <= self.last
    }
}

/// Limits an app specification must respect (Flux v8 rules).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, BorshSerialize, BorshDeserialize)]
pub struct AppLimits {
    /// Shortest app name.
    pub name_len_min: u32,
    /// Longest app or component name.
    pub name_len_max: u32,
    /// Longest description.
    pub description_len_max: u32,
    /// Most components in one app.
    pub components_max: u32,
    /// Most published ports per component.
    pub ports_per_component_max: u32,
    /// Ports that no app may publish (the node's own services and well-known system ports).
    pub banned_ports: Vec<PortRange>,
    /// Ports in this range are standard; others are enterprise ports and cost extra.
    pub standard_ports: PortRange,
    /// Most CPU per component, and for the whole app, in tenths of a core.
    pub cpu_tenths_max: u32,
    /// Most RAM per component and per app, in MB (a multiple of 100).
    pub ram_mb_max: u32,
    /// Most disk per component and per app, in GB.
    pub hdd_gb_max: u32,
    /// Fewest instances.
    pub instances_min: u32,
    /// Most instances.
    pub instances_max: u32,
    /// Most environment entries per component.
    pub env_entries_max: u32,
    /// Most command arguments per component.
    pub commands_max: u32,
    /// Longest single environment entry or command argument.
    pub arg_len_max: u32,
    /// Longest image reference.
    pub repotag_len_max: u32,
    /// Longest container data path specification.
    pub container_data_len_max: u32,
    /// Most contacts.
    pub contacts_max: u32,
    /// Most geolocation rules.
    pub geolocation_max: u32,
    /// Most pinned nodes.
    pub pinned_nodes_max: u32,
    /// Shortest payment period, months.
    pub months_min: u32,
    /// Longest payment period, months.
    pub months_max: u32,
}

/// How instances are placed on nodes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, BorshSerialize, BorshDeserialize)]
pub struct SchedulerParams {
    /// CPU kept free on every node for its system and the node itself, in tenths of a core.
    pub reserve_cpu_tenths: u64,
    /// Memory kept free on every node, in MB.
    pub reserve_ram_mb: u64,
    /// Disk kept free on every node, in GB.
    pub reserve_disk_gb: u64,
    /// Feasible nodes the scheduler weighs per instance it places (at least 1):
    /// more spreads load better and costs more time per placement.
    pub candidates_per_instance: u32,
    /// Chain time between the switches of two consecutive instances when an
    /// update changes what an app runs, in milliseconds: long enough for a
    /// new instance to start and answer before the next old one stops.
    pub update_roll_interval_ms: u64,
}

/// Useful work: who verifies what, how reports are bounded, and what the
/// results decide.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, BorshSerialize, BorshDeserialize)]
pub struct WorkParams {
    /// Verifiers per target (each placed instance and each active node),
    /// fewer only when fewer other active nodes exist.
    pub verifiers_per_target: u32,
    /// Length of a probe window of chain time, ms. Window `w` covers
    /// `[w * window_ms, (w + 1) * window_ms)`.
    pub window_ms: u64,
    /// How many windows after its own a window may still be reported; after
    /// that the window is settled and reports of it are late.
    pub report_late_windows: u64,
    /// Most windows one report may cover.
    pub report_windows_max: u32,
    /// Most targets one report may name.
    pub report_targets_max: u32,
    /// Consecutive windows a majority of a node's verifiers must report it
    /// down before it is failed over.
    pub failover_down_windows: u64,
    /// Verified share of its assigned instance-windows, in thousandths, that
    /// a node must reach in an epoch to count as working.
    pub verified_permille_min: u32,
    /// Epochs whose per-node work the ledger keeps, the current one included.
    pub history_epochs: u64,
    /// Most validator seats drawn among working nodes each epoch, at most
    /// [`COMMITTEE_SEATS_HARD_MAX`].
    pub committee_seats_max: u32,
}

/// Most validators of one epoch, whatever the params: it bounds the size of
/// consensus certificates and so the peer-to-peer message limit.
pub const COMMITTEE_SEATS_HARD_MAX: u32 = 64;

impl WorkParams {
    /// Production values: 30 s windows, reports late after two minutes.
    pub fn mainnet() -> WorkParams {
        WorkParams {
            verifiers_per_target: 3,
            window_ms: 30_000,
            report_late_windows: 4,
            report_windows_max: 64,
            report_targets_max: 256,
            failover_down_windows: 4,
            verified_permille_min: 900,
            history_epochs: 8,
            committee_seats_max: 64,
        }
    }

    /// Development values: a devnet fails over within seconds. A node that
    /// dies is unreachable once a majority of its verifiers reported 3 down
    /// windows of 1 s, which counts without waiting for those windows to
    /// settle (3 windows late). The lateness bound outlasts a round
    /// led by the dead node (2 s leader timeout at 1 s blocks), so that the
    /// reports sent meanwhile still count.
    pub fn devnet() -> WorkParams {
        WorkParams {
            window_ms: 1_000,
            report_late_windows: 3,
            failover_down_windows: 3,
            verified_permille_min: 800,
            committee_seats_max: 7,
            ..WorkParams::mainnet()
        }
    }

    fn validate(&self) -> Result<(), String> {
        if self.verifiers_per_target == 0 || self.verifiers_per_target > 32 {
            return Err("work.verifiers_per_target must be between 1 and 32".into());
        }
        if self.window_ms == 0 {
            return Err("work.window_ms must be positive".into());
        }
        if self.report_windows_max == 0
            || self.report_windows_max > crate::work::REPORT_WINDOWS_HARD_MAX
        {
            return Err(format!(
                "work.report_windows_max must be between 1 and {}",
                crate::work::REPORT_WINDOWS_HARD_MAX
            ));
        }
        if self.report_targets_max == 0
            || self.report_targets_max as usize > crate::work::REPORT_TARGETS_HARD_MAX
        {
            return Err(format!(
                "work.report_targets_max must be between 1 and {}",
                crate::work::REPORT_TARGETS_HARD_MAX
            ));
        }
        if self.verified_permille_min > 1_000 {
            return Err("work.verified_permille_min must be at most 1000".into());
        }
        if self.history_epochs == 0 {
            return Err("work.history_epochs must be at least 1".into());
        }
        if self.committee_seats_max == 0 || self.committee_seats_max > COMMITTEE_SEATS_HARD_MAX {
            return Err(format!(
                "work.committee_seats_max must be between 1 and {COMMITTEE_SEATS_HARD_MAX}"
            ));
        }
        Ok(())
    }
}

/// Issuance of new FLUX and its payment to the nodes that did useful work.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, BorshSerialize, BorshDeserialize)]
pub struct RewardsParams {
    /// FLUX issued per `issuance_period_ms` of chain time in the first year.
    pub issuance_per_period: Amount,
    /// The chain time `issuance_per_period` is issued over, ms; a block
    /// issues in proportion to the chain time since its parent.
    pub issuance_period_ms: u64,
    /// Length of a year of chain time, ms: issuance drops once per year.
    pub year_ms: u64,
    /// Reduction of the issuance rate each year, in thousandths, compounded.
    pub yearly_reduction_permille: u32,
    /// Share of each epoch's reward pool paid to the treasury, in millionths.
    pub treasury_share_ppm: u32,
}

impl RewardsParams {
    /// DESIGN values: 14 FLUX per 30 s, 10 % less each year, 0.5/14 to the treasury.
    pub fn mainnet() -> RewardsParams {
        RewardsParams {
            issuance_per_period: Amount::flux(14),
            issuance_period_ms: 30_000,
            year_ms: 365 * 24 * 3_600 * 1_000,
            yearly_reduction_permille: 100,
            treasury_share_ppm: 35_714,
        }
    }

    fn validate(&self) -> Result<(), String> {
        if self.issuance_period_ms == 0 {
            return Err("rewards.issuance_period_ms must be positive".into());
        }
        if self.year_ms < 86_400_000 {
            return Err("rewards.year_ms must be at least a day (86400000)".into());
        }
        if self.yearly_reduction_permille > 1_000 {
            return Err("rewards.yearly_reduction_permille must be at most 1000".into());
        }
        if self.treasury_share_ppm > 1_000_000 {
            return Err("rewards.treasury_share_ppm must be at most 1000000".into());
        }
        Ok(())
    }
}

/// All parameters of a network.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, BorshSerialize, BorshDeserialize)]
pub struct Params {
    /// Target interval between blocks, in milliseconds, while no
    /// transaction waits: an idle chain makes one (empty) block per interval.
    pub block_interval_ms: u64,
    /// Shortest interval between blocks, in milliseconds, when transactions
    /// wait: the leader proposes this long after the parent if the mempool
    /// holds an includable transaction by then, or as soon as one arrives
    /// before `block_interval_ms` ends. At most `block_interval_ms`.
    pub block_interval_busy_ms: u64,
    /// Blocks per epoch.
    pub epoch_length_blocks: u64,
    /// Smallest fee a transaction may pay.
    pub tx_fee_min: Amount,
    /// Additional fee per encoded byte of a transaction.
    pub tx_fee_per_byte: Amount,
    /// Most transactions in one block.
    pub block_txs_max: u32,
    /// Requirements per tier, indexed by [`Tier::index`].
    pub tiers: Vec<TierParams>,
    /// App prices per month.
    pub app_prices: AppPrices,
    /// App specification limits.
    pub app_limits: AppLimits,
    /// Length of a paid month of chain time, in milliseconds.
    pub month_ms: u64,
    /// Governance: deposit, voting period, quorum, activation delay, vote weights.
    pub gov: GovParams,
    /// Placement of instances on nodes.
    pub scheduler: SchedulerParams,
    /// Fewest blocks between two benchmarks of the same node.
    pub benchmark_interval_blocks_min: u64,
    /// The domain under which every node's gateway serves apps by name:
    /// `<app>.<network_domain>` reaches the app `<app>`.
    pub network_domain: String,
    /// Useful work: verifier assignment, work reports and their accounting.
    pub work: WorkParams,
    /// Issuance and node rewards.
    pub rewards: RewardsParams,
}

impl Params {
    /// The parameters of a production network (DESIGN tiers and Flux prices).
    pub fn mainnet() -> Params {
        Params {
            block_interval_ms: 1_000,
            // A transfer waits at most this long for its block instead of up
            // to a full interval; 100 ms keeps a loaded network at no more
            // than ten blocks a second, so a block's fixed costs (an fsync,
            // the votes) stay a small part of each block's work.
            block_interval_busy_ms: 100,
            epoch_length_blocks: 600,
            tx_fee_min: Amount::units(10_000),
            tx_fee_per_byte: Amount::ZERO,
            block_txs_max: 20_000,
            tiers: vec![
                TierParams {
                    collateral: Amount::flux(1_000),
                    cores_min: 2,
                    ram_mb_min: 8_000,
                    disk_gb_min: 220,
                    cpu_score_min: 240,
                    disk_write_mb_per_s_min: 180,
                    reward_weight_milli: 1_000,
                },
                TierParams {
                    collateral: Amount::flux(12_500),
                    cores_min: 4,
                    ram_mb_min: 32_000,
                    disk_gb_min: 440,
                    cpu_score_min: 640,
                    disk_write_mb_per_s_min: 180,
                    reward_weight_milli: 3_500,
                },
                TierParams {
                    collateral: Amount::flux(40_000),
                    cores_min: 8,
                    ram_mb_min: 64_000,
                    disk_gb_min: 880,
                    cpu_score_min: 1_520,
                    disk_write_mb_per_s_min: 400,
                    reward_weight_milli: 9_000,
                },
            ],
            app_prices: AppPrices {
                cpu_per_tenth: Amount::units(3_000_000),
                ram_per_100_mb: Amount::units(1_000_000),
                hdd_per_gb: Amount::units(400_000),
                enterprise_port: Amount::flux(2),
                pinned_nodes: Amount::flux(6),
                static_ip: Amount::flux(3),
                minimum: Amount::units(10_000_000),
            },
            app_limits: AppLimits {
                name_len_min: 3,
                name_len_max: 32,
                description_len_max: 256,
                components_max: 10,
                ports_per_component_max: 5,
                banned_ports: vec![
                    PortRange { first: 0, last: 79 },
                    PortRange {
                        first: 81,
                        last: 442,
                    },
                    PortRange {
                        first: 444,
                        last: 1023,
                    },
                    PortRange {
                        first: 16_100,
                        last: 16_299,
                    },
                    PortRange {
                        first: 26_656,
                        last: 26_659,
                    },
                    PortRange {
                        first: 30_000,
                        last: 30_099,
                    },
                ],
                standard_ports: PortRange {
                    first: 31_000,
                    last: 39_999,
                },
                cpu_tenths_max: 150,
                ram_mb_max: 59_000,
                hdd_gb_max: 820,
                instances_min: 1,
                instances_max: 100,
                env_entries_max: 50,
                commands_max: 50,
                arg_len_max: 4_096,
                repotag_len_max: 200,
                container_data_len_max: 200,
                contacts_max: 5,
                geolocation_max: 10,
                pinned_nodes_max: 100,
                months_min: 1,
                months_max: 12,
            },
            month_ms: 30 * 24 * 3_600 * 1_000,
            scheduler: SchedulerParams {
                reserve_cpu_tenths: 5,
                reserve_ram_mb: 1_000,
                reserve_disk_gb: 20,
                candidates_per_instance: 2,
                update_roll_interval_ms: 60_000,
            },
            benchmark_interval_blocks_min: 600,
            network_domain: "app.runonflux.io".to_string(),
            gov: GovParams::mainnet(),
            work: WorkParams::mainnet(),
            rewards: RewardsParams::mainnet(),
        }
    }

    /// The parameters of a local development network: the production prices
    /// and limits with tiny hardware thresholds and collateral, so a laptop
    /// can run several nodes, and short epochs.
    pub fn devnet() -> Params {
        let mut params = Params::mainnet();
        params.epoch_length_blocks = 20;
        for (tier, collateral) in params.tiers.iter_mut().zip([10, 125, 400]) {
            tier.collateral = Amount::flux(collateral);
            tier.cores_min = 1;
            tier.ram_mb_min = 256;
            tier.disk_gb_min = 1;
            tier.cpu_score_min = 1;
            tier.disk_write_mb_per_s_min = 1;
        }
        params.gov = GovParams::devnet();
        params.scheduler.reserve_cpu_tenths = 1;
        params.scheduler.reserve_ram_mb = 100;
        params.scheduler.reserve_disk_gb = 1;
        params.scheduler.update_roll_interval_ms = 6_000;
        params.benchmark_interval_blocks_min = 5;
        params.network_domain = "flux.localhost".to_string();
        params.work = WorkParams::devnet();
        params
    }

    /// The parameters of `tier`.
    pub fn tier(&self, tier: Tier) -> &TierParams {
        &self.tiers[tier.index()]
    }

    /// Checks internal consistency (used when loading a genesis file).
    pub fn validate(&self) -> Result<(), String> {
        if self.tiers.len() != Tier::ALL.len() {
            return Err(format!(
                "params.tiers has {} entries, expected {}",
                self.tiers.len(),
                Tier::ALL.len()
            ));
        }
        if self.block_interval_ms == 0 || self.epoch_length_blocks == 0 || self.month_ms == 0 {
            return Err(
                "block_interval_ms, epoch_length_blocks and month_ms must be positive".into(),
            );
        }
        if self.block_interval_busy_ms == 0 || self.block_interval_busy_ms > self.block_interval_ms
        {
            return Err(format!(
                "block_interval_busy_ms ({}) must be between 1 and block_interval_ms ({})",
                self.block_interval_busy_ms, self.block_interval_ms
            ));
        }
        if self.scheduler.candidates_per_instance == 0 {
            return Err("scheduler.candidates_per_instance must be at least 1".into());
        }
        let limits = &self.app_limits;
        if limits.instances_min == 0 || limits.instances_min > limits.instances_max {
            return Err("app_limits.instances_min must be between 1 and instances_max".into());
        }
        if limits.months_min == 0 || limits.months_min > limits.months_max {
            return Err("app_limits.months_min must be between 1 and months_max".into());
        }
        if limits.standard_ports.first > limits.standard_ports.last {
            return Err("app_limits.standard_ports is empty".into());
        }
        if limits.name_len_min > limits.name_len_max {
            return Err("app_limits.name_len_min must be at most name_len_max".into());
        }
        validate_domain(&self.network_domain)?;
        self.work.validate()?;
        self.rewards.validate()?;
        self.gov.validate()
    }
}

/// Longest DNS name (RFC 1035).
const DOMAIN_LEN_MAX: usize = 253;

/// Checks that the network domain is a DNS name: dot-separated labels of
/// letters, digits and inner hyphens, 1 to 63 characters each.
fn validate_domain(domain: &str) -> Result<(), String> {
    let label_ok = |label: &str| {
        (1..=63).contains(&label.len())
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    if domain.is_empty() || domain.len() > DOMAIN_LEN_MAX || !domain.split('.').all(label_ok) {
        return Err(format!(
            "network_domain '{domain}' is not a domain name (e.g. flux.localhost)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_busy_block_interval_is_positive_and_at_most_the_idle_one() {
        let mut params = Params::devnet();
        params.block_interval_busy_ms = params.block_interval_ms;
        params.validate().unwrap();
        params.block_interval_busy_ms = params.block_interval_ms + 1;
        let error = params.validate().unwrap_err();
        assert!(error.contains("block_interval_busy_ms (1001)"), "{error}");
        params.block_interval_busy_ms = 0;
        assert!(params.validate().is_err());
    }

    #[test]
    fn presets_are_consistent() {
        Params::mainnet().validate().unwrap();
        Params::devnet().validate().unwrap();
        assert_eq!(
            Params::mainnet().tier(Tier::Stratus).collateral,
            Amount::flux(40_000)
        );
    }

    #[test]
    fn the_network_domain_must_be_a_domain_name() {
        for bad in [
            "",
            ".",
            "flux..localhost",
            "-a.b",
            "a_b.c",
            "a b",
            "flux.localhost.",
        ] {
            let mut params = Params::devnet();
            params.network_domain = bad.to_string();
            let error = params.validate().unwrap_err();
            assert!(error.contains("network_domain"), "{bad:?}: {error}");
        }
    }
}

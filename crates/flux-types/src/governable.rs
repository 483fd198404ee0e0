//! The registry of governable params: every key that a parameter-change
//! proposal may set, its allowed range, and how it is read and written.
//!
//! Keys are the dotted paths of [`Params`] fields (`app_prices.cpu_per_tenth`,
//! `tiers.nimbus.collateral`, `gov.quorum_percent`). FLUX amounts are written
//! as decimals (`0.02`), everything else as whole numbers. A new param gets a
//! line here; the test `every_param_is_governable_or_named_as_fixed` fails
//! until it does.

use crate::amount::Amount;
use crate::gov::ParamChange;
use crate::params::Params;

/// How a param's value is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamKind {
    /// FLUX, stored in base units, written as a decimal.
    Amount,
    /// A whole number.
    Integer,
}

/// One governable param.
#[derive(Clone, Copy)]
pub struct ParamSpec {
    /// The key, e.g. `app_prices.cpu_per_tenth`.
    pub key: &'static str,
    /// How its value is written.
    pub kind: ParamKind,
    /// Smallest allowed value (base units for amounts).
    pub min: u64,
    /// Largest allowed value (base units for amounts).
    pub max: u64,
    /// What it is, with its unit.
    pub description: &'static str,
    get: fn(&Params) -> u64,
    set: fn(&mut Params, u64),
}

impl std::fmt::Debug for ParamSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParamSpec")
            .field("key", &self.key)
            .field("kind", &self.kind)
            .field("min", &self.min)
            .field("max", &self.max)
            .finish()
    }
}

/// Why a param change is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    /// No such governable key.
    #[error(
        "'{key}' is not a governable param; `flux chain params` lists the keys (e.g. app_prices.cpu_per_tenth)"
    )]
    Unknown {
        /// The key given.
        key: String,
    },
    /// The value is not written as the key's kind.
    #[error("param {key}: '{value}' is not {expected}")]
    Malformed {
        /// The key.
        key: String,
        /// The value given.
        value: String,
        /// What was expected.
        expected: &'static str,
    },
    /// Outside the key's allowed range.
    #[error("param {key}: {value} is outside the allowed range {min} to {max}")]
    OutOfRange {
        /// The key.
        key: String,
        /// The value given.
        value: String,
        /// Smallest allowed, as text.
        min: String,
        /// Largest allowed, as text.
        max: String,
    },
    /// The same key twice in one proposal.
    #[error("param {key} is changed twice; name each key once")]
    Duplicate {
        /// The key.
        key: String,
    },
    /// No change at all.
    #[error("a param change names no params; name at least one KEY=VALUE")]
    Empty,
    /// Each value is in range but together they contradict each other.
    #[error("the new params are inconsistent: {0}")]
    Inconsistent(String),
}

impl ParamError {
    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            ParamError::Unknown { .. } => "unknown_param",
            ParamError::Malformed { .. } => "malformed_param_value",
            ParamError::OutOfRange { .. } => "param_out_of_range",
            ParamError::Duplicate { .. } => "duplicate_param",
            ParamError::Empty => "empty_param_change",
            ParamError::Inconsistent(_) => "inconsistent_params",
        }
    }
}

impl ParamSpec {
    /// The value in `params`, as stored (base units for amounts).
    pub fn get(&self, params: &Params) -> u64 {
        (self.get)(params)
    }

    /// A value as text.
    pub fn format(&self, value: u64) -> String {
        match self.kind {
            ParamKind::Amount => Amount::units(value).to_string(),
            ParamKind::Integer => value.to_string(),
        }
    }

    /// Reads a value written as text and checks its range.
    pub fn parse(&self, text: &str) -> Result<u64, ParamError> {
        let text = text.trim();
        let malformed = |expected| ParamError::Malformed {
            key: self.key.to_string(),
            value: text.to_string(),
            expected,
        };
        let value = match self.kind {
            ParamKind::Amount => text
                .parse::<Amount>()
                .map_err(|_| malformed("an amount of FLUX with at most 8 decimals, e.g. 0.02"))?
                .as_units(),
            ParamKind::Integer => text
                .replace('_', "")
                .parse::<u64>()
                .map_err(|_| malformed("a whole number"))?,
        };
        if value < self.min || value > self.max {
            return Err(ParamError::OutOfRange {
                key: self.key.to_string(),
                value: text.to_string(),
                min: self.format(self.min),
                max: self.format(self.max),
            });
        }
        Ok(value)
    }
}

/// Whole FLUX in base units, for the ranges below.
const fn flux(whole: u64) -> u64 {
    Amount::flux(whole).as_units()
}

const SECOND_MS: u64 = 1_000;
const DAY_MS: u64 = 24 * 3_600 * SECOND_MS;

macro_rules! amount {
    ($key:expr, $min:expr, $max:expr, $description:literal, $($field:tt)+) => {
        ParamSpec {
            key: $key,
            kind: ParamKind::Amount,
            min: $min,
            max: $max,
            description: $description,
            get: |p| p.$($field)+.as_units(),
            set: |p, v| p.$($field)+ = Amount::units(v),
        }
    };
}

macro_rules! integer {
    ($key:expr, $min:expr, $max:expr, $description:literal, $($field:tt)+) => {
        ParamSpec {
            key: $key,
            kind: ParamKind::Integer,
            min: $min,
            max: $max,
            description: $description,
            get: |p| p.$($field)+ as u64,
            // The range check keeps every value within the field's type.
            set: |p, v| p.$($field)+ = v as _,
        }
    };
}

macro_rules! tier {
    ($name:literal, $index:literal) => {
        [
            amount!(
                concat!("tiers.", $name, ".collateral"),
                flux(1),
                flux(10_000_000),
                "FLUX locked while a node of this tier is registered",
                tiers[$index].collateral
            ),
            integer!(
                concat!("tiers.", $name, ".cores_min"),
                1,
                1_024,
                "fewest logical CPU cores",
                tiers[$index].cores_min
            ),
            integer!(
                concat!("tiers.", $name, ".ram_mb_min"),
                1,
                16_000_000,
                "least memory, MB",
                tiers[$index].ram_mb_min
            ),
            integer!(
                concat!("tiers.", $name, ".disk_gb_min"),
                1,
                1_000_000,
                "least disk, GB",
                tiers[$index].disk_gb_min
            ),
            integer!(
                concat!("tiers.", $name, ".cpu_score_min"),
                1,
                10_000_000,
                "least CPU benchmark score, events per second",
                tiers[$index].cpu_score_min
            ),
            integer!(
                concat!("tiers.", $name, ".disk_write_mb_per_s_min"),
                1,
                1_000_000,
                "least sequential disk write speed with fsync, MB/s",
                tiers[$index].disk_write_mb_per_s_min
            ),
            integer!(
                concat!("tiers.", $name, ".reward_weight_milli"),
                0,
                1_000_000,
                "reward weight, thousandths",
                tiers[$index].reward_weight_milli
            ),
        ]
    };
}

const CUMULUS: [ParamSpec; 7] = tier!("cumulus", 0);
const NIMBUS: [ParamSpec; 7] = tier!("nimbus", 1);
const STRATUS: [ParamSpec; 7] = tier!("stratus", 2);

const GENERAL: &[ParamSpec] = &[
    amount!(
        "tx_fee_min",
        1,
        flux(100),
        "smallest fee of a transaction, FLUX",
        tx_fee_min
    ),
    amount!(
        "tx_fee_per_byte",
        0,
        flux(1) / 100,
        "additional fee per encoded byte, FLUX",
        tx_fee_per_byte
    ),
    integer!(
        "block_txs_max",
        1,
        crate::codec::BLOCK_TXS_MAX as u64,
        "most transactions in one block",
        block_txs_max
    ),
    integer!(
        "month_ms",
        DAY_MS,
        366 * DAY_MS,
        "length of a paid month of chain time, ms",
        month_ms
    ),
    amount!(
        "app_prices.cpu_per_tenth",
        0,
        flux(1_000),
        "per 0.1 CPU per instance per month, FLUX",
        app_prices.cpu_per_tenth
    ),
    amount!(
        "app_prices.ram_per_100_mb",
        0,
        flux(1_000),
        "per 100 MB RAM per instance per month, FLUX",
        app_prices.ram_per_100_mb
    ),
    amount!(
        "app_prices.hdd_per_gb",
        0,
        flux(1_000),
        "per GB disk per instance per month, FLUX",
        app_prices.hdd_per_gb
    ),
    amount!(
        "app_prices.enterprise_port",
        0,
        flux(1_000),
        "per port outside the standard range per app per month, FLUX",
        app_prices.enterprise_port
    ),
    amount!(
        "app_prices.pinned_nodes",
        0,
        flux(1_000),
        "for an app pinned to named nodes, per month, FLUX",
        app_prices.pinned_nodes
    ),
    amount!(
        "app_prices.static_ip",
        0,
        flux(1_000),
        "for an app asking for static IPs, per month, FLUX",
        app_prices.static_ip
    ),
    amount!(
        "app_prices.minimum",
        0,
        flux(1_000),
        "the least an app pays per month, FLUX",
        app_prices.minimum
    ),
    integer!(
        "app_limits.name_len_min",
        1,
        63,
        "shortest app name",
        app_limits.name_len_min
    ),
    integer!(
        "app_limits.name_len_max",
        1,
        63,
        "longest app or component name",
        app_limits.name_len_max
    ),
    integer!(
        "app_limits.description_len_max",
        0,
        8_192,
        "longest app description",
        app_limits.description_len_max
    ),
    integer!(
        "app_limits.components_max",
        1,
        256,
        "most components in one app",
        app_limits.components_max
    ),
    integer!(
        "app_limits.ports_per_component_max",
        0,
        256,
        "most published ports per component",
        app_limits.ports_per_component_max
    ),
    integer!(
        "app_limits.standard_ports.first",
        1,
        65_535,
        "first port of the standard range",
        app_limits.standard_ports.first
    ),
    integer!(
        "app_limits.standard_ports.last",
        1,
        65_535,
        "last port of the standard range",
        app_limits.standard_ports.last
    ),
    integer!(
        "app_limits.cpu_tenths_max",
        1,
        10_000,
        "most CPU per component and per app, tenths of a core",
        app_limits.cpu_tenths_max
    ),
    integer!(
        "app_limits.ram_mb_max",
        100,
        16_000_000,
        "most RAM per component and per app, MB",
        app_limits.ram_mb_max
    ),
    integer!(
        "app_limits.hdd_gb_max",
        1,
        1_000_000,
        "most disk per component and per app, GB",
        app_limits.hdd_gb_max
    ),
    integer!(
        "app_limits.instances_min",
        1,
        1_000,
        "fewest instances of an app",
        app_limits.instances_min
    ),
    integer!(
        "app_limits.instances_max",
        1,
        1_000,
        "most instances of an app",
        app_limits.instances_max
    ),
    integer!(
        "app_limits.env_entries_max",
        0,
        256,
        "most environment entries per component",
        app_limits.env_entries_max
    ),
    integer!(
        "app_limits.commands_max",
        0,
        256,
        "most command arguments per component",
        app_limits.commands_max
    ),
    integer!(
        "app_limits.arg_len_max",
        1,
        8_192,
        "longest environment entry or command argument",
        app_limits.arg_len_max
    ),
    integer!(
        "app_limits.repotag_len_max",
        1,
        255,
        "longest image reference",
        app_limits.repotag_len_max
    ),
    integer!(
        "app_limits.container_data_len_max",
        1,
        8_192,
        "longest container data specification",
        app_limits.container_data_len_max
    ),
    integer!(
        "app_limits.contacts_max",
        0,
        256,
        "most contacts",
        app_limits.contacts_max
    ),
    integer!(
        "app_limits.geolocation_max",
        0,
        256,
        "most geolocation rules",
        app_limits.geolocation_max
    ),
    integer!(
        "app_limits.pinned_nodes_max",
        0,
        256,
        "most pinned nodes",
        app_limits.pinned_nodes_max
    ),
    integer!(
        "app_limits.months_min",
        1,
        120,
        "shortest payment period, months",
        app_limits.months_min
    ),
    integer!(
        "app_limits.months_max",
        1,
        120,
        "longest payment period, months",
        app_limits.months_max
    ),
    amount!(
        "gov.proposal_deposit",
        flux(1),
        flux(1_000_000),
        "least deposit of a proposal, FLUX",
        gov.proposal_deposit
    ),
    integer!(
        "gov.voting_period_ms",
        10 * SECOND_MS,
        90 * DAY_MS,
        "how long a proposal is open for votes, ms of chain time",
        gov.voting_period_ms
    ),
    integer!(
        "gov.quorum_percent",
        1,
        100,
        "share of the voting power that must vote, percent",
        gov.quorum_percent
    ),
    integer!(
        "gov.activation_delay_blocks",
        1,
        1_000_000,
        "blocks from the end of a passed vote to its effect",
        gov.activation_delay_blocks
    ),
    integer!(
        "gov.collateral_weight_milli",
        0,
        10_000,
        "voting power per unit of locked collateral, thousandths",
        gov.collateral_weight_milli
    ),
    integer!(
        "gov.balance_weight_milli",
        0,
        10_000,
        "voting power per unit of liquid balance, thousandths",
        gov.balance_weight_milli
    ),
    integer!(
        "gov.open_proposals_max",
        1,
        10_000,
        "most proposals open for votes at once",
        gov.open_proposals_max
    ),
    integer!(
        "scheduler.reserve_cpu_tenths",
        0,
        10_000,
        "CPU every node keeps for itself, out of reach of instances, tenths of a core",
        scheduler.reserve_cpu_tenths
    ),
    integer!(
        "scheduler.reserve_ram_mb",
        0,
        1_000_000,
        "memory every node keeps for itself, MB",
        scheduler.reserve_ram_mb
    ),
    integer!(
        "scheduler.reserve_disk_gb",
        0,
        100_000,
        "disk every node keeps for itself, GB",
        scheduler.reserve_disk_gb
    ),
    integer!(
        "scheduler.candidates_per_instance",
        1,
        64,
        "feasible nodes the scheduler weighs per instance it places",
        scheduler.candidates_per_instance
    ),
    integer!(
        "scheduler.update_roll_interval_ms",
        1_000,
        3_600_000,
        "chain time between the switches of two instances of an updated app, ms",
        scheduler.update_roll_interval_ms
    ),
    integer!(
        "benchmark_interval_blocks_min",
        1,
        1_000_000,
        "fewest blocks between two benchmarks of one node",
        benchmark_interval_blocks_min
    ),
    integer!(
        "work.verifiers_per_target",
        1,
        32,
        "verifiers of each placed instance and each active node, from the next epoch",
        work.verifiers_per_target
    ),
    integer!(
        "work.report_late_windows",
        1,
        1_000,
        "windows after its own that a probe window may still be reported",
        work.report_late_windows
    ),
    integer!(
        "work.report_windows_max",
        1,
        256,
        "most windows one work report covers",
        work.report_windows_max
    ),
    integer!(
        "work.report_targets_max",
        1,
        512,
        "most targets one work report names",
        work.report_targets_max
    ),
    integer!(
        "work.failover_down_windows",
        1,
        10_000,
        "consecutive windows reported down by a majority before a node is failed over",
        work.failover_down_windows
    ),
    integer!(
        "work.verified_permille_min",
        0,
        1_000,
        "verified share of its assigned instance-windows a working node reaches in an epoch, thousandths",
        work.verified_permille_min
    ),
    integer!(
        "work.history_epochs",
        1,
        10_000,
        "epochs of per-node work the ledger keeps",
        work.history_epochs
    ),
    integer!(
        "work.committee_seats_max",
        1,
        64,
        "most validator seats drawn among working nodes each epoch",
        work.committee_seats_max
    ),
    amount!(
        "rewards.issuance_per_period",
        0,
        flux(1_000),
        "FLUX issued per rewards.issuance_period_ms of chain time in the first year",
        rewards.issuance_per_period
    ),
    integer!(
        "rewards.issuance_period_ms",
        1_000,
        86_400_000,
        "chain time over which rewards.issuance_per_period is issued, ms",
        rewards.issuance_period_ms
    ),
    integer!(
        "rewards.year_ms",
        86_400_000,
        10 * 366 * 86_400_000,
        "a year of chain time, after each of which issuance drops, ms",
        rewards.year_ms
    ),
    integer!(
        "rewards.yearly_reduction_permille",
        0,
        1_000,
        "reduction of the issuance rate each year, compounded, thousandths",
        rewards.yearly_reduction_permille
    ),
    integer!(
        "rewards.treasury_share_ppm",
        0,
        500_000,
        "share of each epoch's reward pool paid to the treasury, millionths",
        rewards.treasury_share_ppm
    ),
];

/// Every governable param, in the order `flux chain params` lists them.
pub fn governable_params() -> impl Iterator<Item = &'static ParamSpec> {
    GENERAL
        .iter()
        .chain(CUMULUS.iter())
        .chain(NIMBUS.iter())
        .chain(STRATUS.iter())
}

/// The governable param named `key`.
pub fn param_spec(key: &str) -> Option<&'static ParamSpec> {
    governable_params().find(|spec| spec.key == key)
}

impl Params {
    /// The value of a governable param as text, e.g. `0.03` for `app_prices.cpu_per_tenth`.
    pub fn value_of(&self, key: &str) -> Option<String> {
        param_spec(key).map(|spec| spec.format(spec.get(self)))
    }

    /// Applies `changes` to a copy of these params: each key must be
    /// governable and named once, each value in its range, and the result
    /// consistent ([`Params::validate`]). Returns the new params and the
    /// changes with their values written canonically.
    pub fn with_changes(
        &self,
        changes: &[ParamChange],
    ) -> Result<(Params, Vec<ParamChange>), ParamError> {
        if changes.is_empty() {
            return Err(ParamError::Empty);
        }
        let mut next = self.clone();
        let mut canonical = Vec::with_capacity(changes.len());
        for (index, change) in changes.iter().enumerate() {
            if changes[..index].iter().any(|c| c.key == change.key) {
                return Err(ParamError::Duplicate {
                    key: change.key.clone(),
                });
            }
            let spec = param_spec(&change.key).ok_or_else(|| ParamError::Unknown {
                key: change.key.clone(),
            })?;
            let value = spec.parse(&change.value)?;
            (spec.set)(&mut next, value);
            canonical.push(ParamChange {
                key: change.key.clone(),
                value: spec.format(value),
            });
        }
        next.validate().map_err(ParamError::Inconsistent)?;
        Ok((next, canonical))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Params that are deliberately not governable, with the reason.
    const FIXED: [&str; 6] = [
        // The block interval is the consensus engine's timing, set in genesis.
        "block_interval_ms",
        // The busy block interval too: nodes pace their proposals by it.
        "block_interval_busy_ms",
        // Consensus numbers its epochs from the genesis value; a new length
        // needs a switch at an epoch boundary that every node makes together.
        "epoch_length_blocks",
        // A list of ranges; change it with a network upgrade.
        "app_limits.banned_ports",
        // Text, which the registry cannot set; and every app's address is
        // under it, so it is chosen once, in genesis.
        "network_domain",
        // Windows are numbered by chain time divided by their length: a new
        // length would renumber the windows that are still open for reports.
        "work.window_ms",
    ];

    fn leaves(prefix: &str, value: &serde_json::Value, out: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(map) => {
                for (key, inner) in map {
                    let path = if prefix.is_empty() {
                        key.clone()
                    } else {
                        format!("{prefix}.{key}")
                    };
                    if FIXED.contains(&path.as_str()) {
                        continue;
                    }
                    leaves(&path, inner, out);
                }
            }
            serde_json::Value::Array(items) if prefix == "tiers" => {
                for (tier, item) in crate::node::Tier::ALL.iter().zip(items) {
                    leaves(&format!("tiers.{tier}"), item, out);
                }
            }
            _ => out.push(prefix.to_string()),
        }
    }

    #[test]
    fn every_param_is_governable_or_named_as_fixed() {
        let mut paths = Vec::new();
        leaves(
            "",
            &serde_json::to_value(Params::mainnet()).unwrap(),
            &mut paths,
        );
        for path in &paths {
            assert!(
                param_spec(path).is_some(),
                "param {path} has no line in the registry of governable params \
                 (crates/flux-types/src/governable.rs); add one with its range, or list it in FIXED with the reason"
            );
        }
        let keys: Vec<&str> = governable_params().map(|s| s.key).collect();
        assert_eq!(keys.len(), paths.len(), "keys without a param: {keys:?}");
    }

    #[test]
    fn presets_lie_within_every_range_and_read_back() {
        for params in [Params::mainnet(), Params::devnet()] {
            for spec in governable_params() {
                let value = spec.get(&params);
                let text = spec.format(value);
                assert_eq!(spec.parse(&text), Ok(value), "{}", spec.key);
                let (next, canonical) = params
                    .with_changes(&[ParamChange {
                        key: spec.key.into(),
                        value: text.clone(),
                    }])
                    .unwrap_or_else(|e| panic!("{}: {e}", spec.key));
                assert_eq!(next, params, "{}", spec.key);
                assert_eq!(canonical[0].value, text);
            }
        }
    }

    #[test]
    fn changes_are_checked() {
        let params = Params::mainnet();
        let change = |key: &str, value: &str| ParamChange {
            key: key.into(),
            value: value.into(),
        };
        let (next, canonical) = params
            .with_changes(&[change("app_prices.cpu_per_tenth", "0.02")])
            .unwrap();
        assert_eq!(next.app_prices.cpu_per_tenth, Amount::units(2_000_000));
        assert_eq!(canonical[0].value, "0.02");
        assert_eq!(next.value_of("app_prices.cpu_per_tenth").unwrap(), "0.02");
        let (next, _) = params
            .with_changes(&[change("tiers.nimbus.collateral", "15000")])
            .unwrap();
        assert_eq!(next.tiers[1].collateral, Amount::flux(15_000));

        let code = |changes: &[ParamChange]| params.with_changes(changes).unwrap_err().code();
        assert_eq!(code(&[]), "empty_param_change");
        assert_eq!(code(&[change("app_prices.gpu", "1")]), "unknown_param");
        assert_eq!(
            code(&[change("block_txs_max", "ten")]),
            "malformed_param_value"
        );
        assert_eq!(code(&[change("block_txs_max", "0")]), "param_out_of_range");
        assert_eq!(
            code(&[change("app_prices.minimum", "0.000000001")]),
            "malformed_param_value"
        );
        assert_eq!(
            code(&[change("gov.quorum_percent", "101")]),
            "param_out_of_range"
        );
        assert_eq!(
            code(&[change("tx_fee_min", "1"), change("tx_fee_min", "2")]),
            "duplicate_param"
        );
        assert_eq!(
            code(&[change("app_limits.instances_min", "200")]),
            "inconsistent_params"
        );
        let text = params
            .with_changes(&[change("gov.quorum_percent", "0")])
            .unwrap_err()
            .to_string();
        assert!(
            text.contains("gov.quorum_percent") && text.contains("1 to 100"),
            "{text}"
        );
    }
}

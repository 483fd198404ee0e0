//! Useful work: what a verifier probes and the results it reports.
//!
//! Chain time is cut into probe windows of `work.window_ms`: window `w`
//! covers `[w * window_ms, (w + 1) * window_ms)` ms since the Unix epoch.
//! Each epoch, every placed instance and every active node is a [`Target`]
//! with a few verifiers; a verifier reports, in a `WorkReport` transaction,
//! one bit per window and target (up = 1) for a run of consecutive windows.

use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};

use crate::crypto::Address;

/// Most targets one report may name, whatever the params say.
pub const REPORT_TARGETS_HARD_MAX: usize = 512;
/// Most windows one report may cover, whatever the params say.
pub const REPORT_WINDOWS_HARD_MAX: u32 = 256;

/// What a verifier probes.
#[derive(
    Clone,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    BorshSerialize,
    BorshDeserialize,
)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Target {
    /// A node itself: its API answers (node-level health).
    Node {
        /// The node.
        node: Address,
    },
    /// One instance of an app on the node that hosts it.
    Instance {
        /// The hosting node, credited when the instance is seen up.
        host: Address,
        /// The app's name, as registered.
        app: String,
        /// The instance's index.
        instance: u32,
    },
}

impl Target {
    /// The node that answers for this target: the node itself, or the instance's host.
    pub fn host(&self) -> &Address {
        match self {
            Target::Node { node } => node,
            Target::Instance { host, .. } => host,
        }
    }

    /// The bytes that identify the target, in keys and seeds.
    pub fn id_bytes(&self) -> Vec<u8> {
        match self {
            Target::Node { node } => [&[0u8][..], &node.0].concat(),
            Target::Instance {
                host,
                app,
                instance,
            } => [&[1u8][..], &host.0, &instance.to_be_bytes(), app.as_bytes()].concat(),
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Node { node } => write!(f, "node {node}"),
            Target::Instance {
                host,
                app,
                instance,
            } => write!(f, "instance {instance} of app {app} on node {host}"),
        }
    }
}

/// One target's results in a report: one bit per window, window
/// `first_window + i` in bit `i % 8` of byte `i / 8`; 1 = up.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, BorshSerialize, BorshDeserialize)]
pub struct TargetResults {
    /// What was probed.
    pub target: Target,
    /// The bitmap: exactly `windows.div_ceil(8)` bytes, unused high bits zero.
    pub up: Vec<u8>,
}

impl TargetResults {
    /// Results of `windows` windows from a list of booleans (up = true).
    pub fn from_bits(target: Target, bits: &[bool]) -> TargetResults {
        let mut up = vec![0u8; bits.len().div_ceil(8)];
        for (index, bit) in bits.iter().enumerate() {
            if *bit {
                up[index / 8] |= 1 << (index % 8);
            }
        }
        TargetResults { target, up }
    }

    /// Whether the window at `index` (from the report's first window) was seen up.
    pub fn is_up(&self, index: u32) -> bool {
        let index = index as usize;
        self.up
            .get(index / 8)
            .is_some_and(|byte| byte & (1 << (index % 8)) != 0)
    }

    /// Checks that the bitmap holds exactly `windows` bits.
    pub fn check_shape(&self, windows: u32) -> Result<(), String> {
        let bytes = (windows as usize).div_ceil(8);
        if self.up.len() != bytes {
            return Err(format!(
                "the results of {} hold {} bytes; {windows} windows take {bytes}",
                self.target,
                self.up.len()
            ));
        }
        let used = windows % 8;
        if used != 0 && self.up.last().is_some_and(|last| last >> used != 0) {
            return Err(format!(
                "the results of {} set bits beyond window {windows}",
                self.target
            ));
        }
        Ok(())
    }
}

/// Checks the decode limits of a report's parts.
pub fn check_report_limits(windows: u32, results: &[TargetResults]) -> Result<(), String> {
    if windows > REPORT_WINDOWS_HARD_MAX {
        return Err(format!(
            "a work report covers at most {REPORT_WINDOWS_HARD_MAX} windows, got {windows}"
        ));
    }
    crate::codec::check_count("results", results, REPORT_TARGETS_HARD_MAX)?;
    let bytes = (windows as usize).div_ceil(8);
    for result in results {
        if result.up.len() > bytes {
            return Err(format!(
                "the results of {} hold {} bytes, more than {windows} windows take",
                result.target,
                result.up.len()
            ));
        }
        if let Target::Instance { app, .. } = &result.target {
            crate::codec::check_len("app", app, crate::app::NAME_LEN_HARD_MAX)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_round_trip_and_shape_is_exact() {
        let target = Target::Node {
            node: Address([7; 20]),
        };
        let bits = [true, false, true, true, false, false, false, false, true];
        let results = TargetResults::from_bits(target, &bits);
        assert_eq!(results.up, vec![0b0000_1101, 0b0000_0001]);
        for (index, bit) in bits.iter().enumerate() {
            assert_eq!(results.is_up(index as u32), *bit);
        }
        results.check_shape(9).unwrap();
        assert!(results.check_shape(8).is_err());
        assert!(results.check_shape(17).is_err());
        let mut stray = results.clone();
        stray.up[1] = 0b10;
        assert!(stray.check_shape(9).is_err());
    }
}

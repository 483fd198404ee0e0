//! Node benchmark reports and how they compare with a tier's thresholds.

use std::fmt;

use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};

use crate::params::TierParams;

/// What a node measured of its own hardware, signed by its node key in a
/// `NodeBenchmark` transaction.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    BorshSerialize,
    BorshDeserialize,
)]
pub struct BenchmarkReport {
    /// Logical CPU cores.
    pub cores: u32,
    /// Memory, MB.
    pub ram_mb: u64,
    /// Size of the disk holding the node's data, GB.
    pub disk_gb: u64,
    /// Events per second of the fixed prime-sieve workload, all cores together.
    pub cpu_score: u64,
    /// Sequential write speed with fsync, MB/s.
    pub disk_write_mb_per_s: u64,
}

/// One measured figure of a benchmark.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    BorshSerialize,
    BorshDeserialize,
)]
#[serde(rename_all = "snake_case")]
#[borsh(use_discriminant = true)]
#[repr(u8)]
pub enum Figure {
    /// Logical CPU cores.
    Cores = 0,
    /// Memory, MB.
    RamMb = 1,
    /// Disk, GB.
    DiskGb = 2,
    /// CPU score, events per second.
    CpuScore = 3,
    /// Disk write speed with fsync, MB/s.
    DiskWriteMbPerS = 4,
}

impl Figure {
    /// Every figure, in report order.
    pub const ALL: [Figure; 5] = [
        Figure::Cores,
        Figure::RamMb,
        Figure::DiskGb,
        Figure::CpuScore,
        Figure::DiskWriteMbPerS,
    ];

    /// The figure's unit, for display.
    pub fn unit(self) -> &'static str {
        match self {
            Figure::Cores => "cores",
            Figure::RamMb => "MB",
            Figure::DiskGb => "GB",
            Figure::CpuScore => "events/s",
            Figure::DiskWriteMbPerS => "MB/s",
        }
    }
}

impl fmt::Display for Figure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Figure::Cores => "cores",
            Figure::RamMb => "ram",
            Figure::DiskGb => "disk",
            Figure::CpuScore => "cpu score",
            Figure::DiskWriteMbPerS => "disk write",
        })
    }
}

/// One figure against its threshold.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, BorshSerialize, BorshDeserialize,
)]
pub struct FigureCheck {
    /// Which figure.
    pub figure: Figure,
    /// What the node measured.
    pub measured: u64,
    /// The least its tier requires.
    pub required: u64,
}

impl FigureCheck {
    /// Whether the measured figure meets the threshold.
    pub fn passed(&self) -> bool {
        self.measured >= self.required
    }
}

impl fmt::Display for FigureCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = self.figure.unit();
        write!(
            f,
            "{} {} {unit} (needs {} {unit})",
            self.figure, self.measured, self.required
        )
    }
}

impl BenchmarkReport {
    /// The value of one figure.
    pub fn figure(&self, figure: Figure) -> u64 {
        match figure {
            Figure::Cores => u64::from(self.cores),
            Figure::RamMb => self.ram_mb,
            Figure::DiskGb => self.disk_gb,
            Figure::CpuScore => self.cpu_score,
            Figure::DiskWriteMbPerS => self.disk_write_mb_per_s,
        }
    }

    /// Every figure against a tier's thresholds, in report order.
    pub fn check(&self, tier: &TierParams) -> Vec<FigureCheck> {
        Figure::ALL
            .into_iter()
            .map(|figure| FigureCheck {
                figure,
                measured: self.figure(figure),
                required: match figure {
                    Figure::Cores => u64::from(tier.cores_min),
                    Figure::RamMb => tier.ram_mb_min,
                    Figure::DiskGb => tier.disk_gb_min,
                    Figure::CpuScore => tier.cpu_score_min,
                    Figure::DiskWriteMbPerS => tier.disk_write_mb_per_s_min,
                },
            })
            .collect()
    }

    /// The figures below a tier's thresholds (empty: the report passes).
    pub fn shortfalls(&self, tier: &TierParams) -> Vec<FigureCheck> {
        self.check(tier)
            .into_iter()
            .filter(|c| !c.passed())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Params, Tier};

    #[test]
    fn figures_are_checked_against_the_tier() {
        let params = Params::mainnet();
        let report = BenchmarkReport {
            cores: 4,
            ram_mb: 16_000,
            disk_gb: 500,
            cpu_score: 700,
            disk_write_mb_per_s: 150,
        };
        assert_eq!(
            report.shortfalls(params.tier(Tier::Cumulus)),
            vec![FigureCheck {
                figure: Figure::DiskWriteMbPerS,
                measured: 150,
                required: 180
            }]
        );
        let nimbus = report.shortfalls(params.tier(Tier::Nimbus));
        let failing: Vec<Figure> = nimbus.iter().map(|c| c.figure).collect();
        assert_eq!(
            failing,
            vec![Figure::RamMb, Figure::DiskWriteMbPerS],
            "{nimbus:?}"
        );
        assert_eq!(
            nimbus[0].to_string(),
            "ram 16000 MB (needs 32000 MB)",
            "a shortfall reads as the figure against its threshold"
        );
        assert_eq!(report.check(params.tier(Tier::Stratus)).len(), 5);
    }
}

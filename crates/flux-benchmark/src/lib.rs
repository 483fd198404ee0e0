//! Measure this machine for a node benchmark: CPU score, disk write speed with fsync, memory, cores and disk size.
//!
//! [`measure`] returns a [`BenchmarkReport`], which the node signs with its
//! own key in a `NodeBenchmark` transaction; the ledger compares each figure
//! with the thresholds of the node's tier. `flux node benchmark` runs it on
//! demand, and a node runs it when it starts and periodically after.
//!
//! - **CPU score**: events per second, all cores together, of a fixed
//!   workload: one event counts the primes below [`MAX_PRIME`] by trial
//!   division, the test `sysbench cpu` runs (with its default limit), so the
//!   figures compare with sysbench's events per second.
//! - **Disk write**: a file of [`Options::disk_write_bytes`] written in 4 MiB
//!   blocks to the node's data directory and flushed with `fsync`; the figure
//!   is bytes over the time of the writes and the flush, in MB/s. The file is
//!   removed afterwards.
//! - **Memory**: physical memory, or the cgroup's memory limit when lower, in MB.
//! - **Cores**: the cores this process may use (affinity and cgroup quota).
//! - **Disk**: size of the file system holding the data directory, in GB.
//!
//! Units are decimal: 1 MB = 10^6 bytes, 1 GB = 10^9 bytes.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use flux_types::BenchmarkReport;

/// Primes are counted below this number in one CPU event (sysbench's default).
pub const MAX_PRIME: u64 = 10_000;
/// Size of one write of the disk test.
const DISK_BLOCK_BYTES: usize = 4 << 20;
/// Name of the disk test's scratch file inside the data directory.
const SCRATCH_FILE: &str = ".flux-benchmark.tmp";

/// What to measure and for how long.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// Directory whose disk is measured (the node's data directory).
    pub dir: PathBuf,
    /// How long the CPU test runs.
    pub cpu_duration: Duration,
    /// How many bytes the disk test writes (at least one block of 4 MiB).
    pub disk_write_bytes: u64,
}

impl Options {
    /// The defaults for `dir`: 5 s of CPU test and 256 MiB written.
    pub fn new(dir: impl Into<PathBuf>) -> Options {
        Options {
            dir: dir.into(),
            cpu_duration: Duration::from_secs(5),
            disk_write_bytes: 256 << 20,
        }
    }

    /// A quick measurement for `dir`, well under a second on an idle
    /// machine: 200 ms of CPU test and 8 MiB written. Its figures are
    /// coarser (a short write is mostly the flush); it suits a devnet, whose
    /// thresholds are small.
    pub fn quick(dir: impl Into<PathBuf>) -> Options {
        Options {
            dir: dir.into(),
            cpu_duration: Duration::from_millis(200),
            disk_write_bytes: 8 << 20,
        }
    }
}

/// Why a measurement failed.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A file operation of the disk test or a file system query failed.
    #[error("{what} {}: {source}; check that the directory exists and is writable", path.display())]
    Io {
        /// What was being done.
        what: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The system did not say how much memory it has.
    #[error("cannot read the amount of physical memory from the system")]
    Memory,
}

/// Runs every test and returns the report.
pub fn measure(options: &Options) -> Result<BenchmarkReport, BenchError> {
    let cores = cores();
    Ok(BenchmarkReport {
        cores,
        ram_mb: memory_mb()?,
        disk_gb: disk_gb(&options.dir)?,
        cpu_score: cpu_score(options.cpu_duration, cores),
        disk_write_mb_per_s: disk_write_mb_per_s(&options.dir, options.disk_write_bytes)?,
    })
}

/// The cores this process may run on.
pub fn cores() -> u32 {
    std::thread::available_parallelism()
        .map(|n| u32::try_from(n.get()).unwrap_or(u32::MAX))
        .unwrap_or(1)
}

/// One CPU event: the number of primes below [`MAX_PRIME`], by trial division.
pub fn prime_event(max_prime: u64) -> u64 {
    let mut primes = 0;
    for candidate in 3..max_prime {
        let root = (candidate as f64).sqrt() as u64;
        let mut divisor = 2;
        while divisor <= root {
            if candidate % divisor == 0 {
                break;
            }
            divisor += 1;
        }
        if divisor > root {
            primes += 1;
        }
    }
    primes
}

/// Events per second of [`prime_event`] on `threads` threads for `duration`.
/// Every thread completes at least one event, so that a busy machine scores
/// low rather than zero.
pub fn cpu_score(duration: Duration, threads: u32) -> u64 {
    let stop = AtomicBool::new(false);
    let events = AtomicU64::new(0);
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(|| {
                let mut done = 0u64;
                loop {
                    std::hint::black_box(prime_event(std::hint::black_box(MAX_PRIME)));
                    done += 1;
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                }
                events.fetch_add(done, Ordering::Relaxed);
            });
        }
        std::thread::sleep(duration);
        stop.store(true, Ordering::Relaxed);
    });
    let elapsed = started.elapsed().as_secs_f64();
    (events.load(Ordering::Relaxed) as f64 / elapsed).round() as u64
}

/// Sequential write speed with `fsync`, in MB/s, of `bytes` written into `dir`.
pub fn disk_write_mb_per_s(dir: &Path, bytes: u64) -> Result<u64, BenchError> {
    let path = dir.join(SCRATCH_FILE);
    let io = |what: &'static str| {
        let path = path.clone();
        move |source| BenchError::Io { what, path, source }
    };
    let block: Vec<u8> = (0..DISK_BLOCK_BYTES)
        .map(|i| (i as u8).wrapping_mul(31))
        .collect();
    let blocks = bytes.div_ceil(DISK_BLOCK_BYTES as u64).max(1);
    let result = (|| {
        let mut file: File = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .map_err(io("cannot create"))?;
        let started = Instant::now();
        for _ in 0..blocks {
            file.write_all(&block).map_err(io("cannot write"))?;
        }
        file.sync_all().map_err(io("cannot fsync"))?;
        let seconds = started.elapsed().as_secs_f64().max(1e-6);
        let written = blocks * DISK_BLOCK_BYTES as u64;
        Ok((written as f64 / 1e6 / seconds).round() as u64)
    })();
    let removed = fs::remove_file(&path);
    let speed = result?;
    removed.map_err(io("cannot remove"))?;
    Ok(speed)
}

/// Physical memory, or the cgroup's limit when lower, in MB.
pub fn memory_mb() -> Result<u64, BenchError> {
    // SAFETY: sysconf only reads system configuration values.
    let (pages, page_size) = unsafe {
        (
            libc::sysconf(libc::_SC_PHYS_PAGES),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    if pages <= 0 || page_size <= 0 {
        return Err(BenchError::Memory);
    }
    let physical = (pages as u64).saturating_mul(page_size as u64);
    let limited = cgroup_memory_limit().map_or(physical, |limit| limit.min(physical));
    Ok(limited / 1_000_000)
}

/// The memory limit of this process's cgroup (v2 `memory.max`, or v1
/// `memory.limit_in_bytes`), if it has one.
fn cgroup_memory_limit() -> Option<u64> {
    [
        "/sys/fs/cgroup/memory.max",
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
    ]
    .iter()
    .find_map(|path| fs::read_to_string(path).ok())
    .and_then(|text| text.trim().parse::<u64>().ok())
}

/// Size of the file system holding `dir`, in GB.
pub fn disk_gb(dir: &Path) -> Result<u64, BenchError> {
    use std::os::unix::ffi::OsStrExt;
    let io = |source| BenchError::Io {
        what: "cannot query the file system of",
        path: dir.to_path_buf(),
        source,
    };
    let mut bytes = dir.as_os_str().as_bytes().to_vec();
    bytes.push(0);
    let path = std::ffi::CStr::from_bytes_with_nul(&bytes)
        .map_err(|_| io(std::io::Error::from(std::io::ErrorKind::InvalidInput)))?;
    // SAFETY: an all-zero statvfs is a valid value for the call to overwrite.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is NUL-terminated and `stat` is a valid statvfs to write into.
    let status = unsafe { libc::statvfs(path.as_ptr(), &mut stat) };
    if status != 0 {
        return Err(io(std::io::Error::last_os_error()));
    }
    #[allow(
        clippy::useless_conversion,
        clippy::unnecessary_cast,
        reason = "the field types of statvfs differ between platforms"
    )]
    let total = u64::from(stat.f_blocks).saturating_mul(stat.f_frsize as u64);
    Ok(total / 1_000_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_event_counts_the_primes_below_the_limit() {
        // 2 is left out, as sysbench does: 1,229 primes below 10,000, minus one.
        assert_eq!(prime_event(MAX_PRIME), 1_228);
        assert_eq!(prime_event(20), 7, "3 5 7 11 13 17 19");
    }

    #[test]
    fn every_figure_is_measured() {
        let dir = tempfile::tempdir().unwrap();
        let started = Instant::now();
        let report = measure(&Options::quick(dir.path())).unwrap();
        // A quick measurement (what a devnet node runs) stays short.
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
        assert!(report.cores >= 1);
        assert!(report.ram_mb >= 64, "{report:?}");
        assert!(report.cpu_score > 0, "{report:?}");
        assert!(report.disk_write_mb_per_s > 0, "{report:?}");
        assert!(
            !dir.path().join(SCRATCH_FILE).exists(),
            "the scratch file is removed"
        );
    }

    #[test]
    fn a_missing_directory_is_a_clear_error() {
        let error = disk_write_mb_per_s(Path::new("/nonexistent/flux"), 1 << 20).unwrap_err();
        let text = error.to_string();
        assert!(text.contains("cannot create /nonexistent/flux"), "{text}");
    }
}

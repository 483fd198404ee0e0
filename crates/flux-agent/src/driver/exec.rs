//! Instances as child processes, for machines without Docker.
//!
//! An instance runs its spec's command (the image is not used) as the
//! node's own user, in its own process group, with a clean environment: `PATH`, `HOME` and
//! `FLUX_DATA_DIR` (its data directory, also its working directory), the
//! `FLUX_*` names of [`InstanceSpec::flux_env`], `HOST` (the node's host
//! address) and `PORT` (its first published port), then the spec's own
//! entries. Processes share the host's network: an instance listens on
//! `HOST:PORT` itself, and components reach each other at the node's host
//! address and their published ports. CPU and memory limits are not
//! enforced.
//!
//! The driver keeps one JSON record per instance under its state
//! directory, so a node that restarts finds its processes again (by pid and
//! start time, which rules out a reused pid) and adopts them. Processes
//! outlive the node on purpose, as containers outlive a Docker client.
//!
//! State directory layout:
//! - `instances/<id>.json`: the record (spec, pid, start time, exit code);
//! - `logs/<id>.log` (and `.log.1`): standard output and error, interleaved;
//! - `data/<app>/<component>-<index>/`: the instance's data directory.

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::driver::{
    Driver, DriverKind, Instance, InstanceState, Inventory, LOG_CHUNK_BYTES_MAX,
    LOG_TAIL_LINES_MAX, LogChunk, LogChunks, LogOptions, LogStream, Stats,
};
use crate::error::AgentError;
use crate::spec::{InstanceKey, InstanceSpec};

/// How often a followed log file is checked for new output.
const LOG_FOLLOW_POLL_MS: u64 = 200;
/// How often a stopping process is checked for having ended.
const STOP_POLL_MS: u64 = 20;
/// Interval between the two samples of a CPU reading.
const STATS_SAMPLE_MS: u64 = 200;
/// Largest instance record read back from disk, in bytes.
const RECORD_BYTES_MAX: u64 = 256 * 1024;

/// Where the exec driver keeps its state and the limits it applies.
#[derive(Clone, Debug)]
pub struct ExecConfig {
    /// Directory of records, logs and data directories; one per node.
    pub state_dir: PathBuf,
    /// Time a process group gets between SIGTERM and SIGKILL.
    pub stop_grace_ms: u64,
    /// Size at which an instance's log file is rotated, in bytes; one
    /// rotated file is kept, so logs use at most twice this much disk.
    pub log_file_bytes_max: u64,
    /// Most instances the driver runs at once; a start beyond it fails.
    pub instances_max: usize,
}

impl ExecConfig {
    /// The defaults, keeping state under `state_dir`.
    pub fn new(state_dir: impl Into<PathBuf>) -> ExecConfig {
        ExecConfig {
            state_dir: state_dir.into(),
            stop_grace_ms: 5_000,
            log_file_bytes_max: 10 * 1024 * 1024,
            instances_max: 256,
        }
    }
}

/// What the driver remembers about one instance, on disk and in memory.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Record {
    id: String,
    node: String,
    spec: InstanceSpec,
    spec_hash: String,
    /// Pid of the process (also its process group id); `None` before the
    /// first successful spawn.
    pid: Option<u32>,
    /// Start time of that pid in clock ticks since boot (`/proc/<pid>/stat`).
    start_ticks: Option<u64>,
    /// Exit code, once the process has ended and this driver saw it end.
    exit_code: Option<i64>,
    /// Why the last spawn failed, if it did.
    spawn_error: Option<String>,
    /// Incremented by every spawn, so the waiter of an older process does
    /// not record its exit against a newer one.
    generation: u64,
}

#[derive(Debug, Default)]
struct Records {
    by_id: BTreeMap<String, Record>,
}

/// The exec driver.
#[derive(Debug, Clone)]
pub struct ExecDriver {
    node: String,
    config: Arc<ExecConfig>,
    records: Arc<Mutex<Records>>,
}

impl ExecDriver {
    /// Opens (creating if needed) the state directory and reads back the
    /// records of earlier runs, so running processes are adopted.
    pub fn new(node: &str, config: ExecConfig) -> Result<ExecDriver, AgentError> {
        for dir in ["instances", "logs", "data"] {
            let path = config.state_dir.join(dir);
            std::fs::create_dir_all(&path)
                .map_err(|e| AgentError::io(format!("create {}", path.display()), e))?;
        }
        let mut records = Records::default();
        let dir = config.state_dir.join("instances");
        let entries = std::fs::read_dir(&dir)
            .map_err(|e| AgentError::io(format!("read {}", dir.display()), e))?;
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            match read_record(&path) {
                Ok(record) if record.node == node => {
                    records.by_id.insert(record.id.clone(), record);
                }
                Ok(_) => {}
                Err(reason) => {
                    warn!(path = %path.display(), %reason, "ignoring unreadable instance record")
                }
            }
        }
        info!(node, dir = %config.state_dir.display(), recovered = records.by_id.len(), "exec driver ready");
        Ok(ExecDriver {
            node: node.to_string(),
            config: Arc::new(config),
            records: Arc::new(Mutex::new(records)),
        })
    }

    /// The pid of an instance's running process (also its process group).
    pub fn pid(&self, id: &str) -> Option<u32> {
        let record = self.own_record(id).ok()?;
        Self::state_of(&record)
            .is_up()
            .then_some(record.pid)
            .flatten()
    }

    fn records(&self) -> MutexGuard<'_, Records> {
        self.records.lock().expect("exec records lock")
    }

    fn record_path(&self, id: &str) -> PathBuf {
        self.config
            .state_dir
            .join("instances")
            .join(format!("{id}.json"))
    }

    fn log_path(&self, id: &str) -> PathBuf {
        self.config.state_dir.join("logs").join(format!("{id}.log"))
    }

    fn data_dir(&self, key: &InstanceKey) -> PathBuf {
        self.config
            .state_dir
            .join("data")
            .join(&key.app)
            .join(format!("{}-{}", key.component, key.instance))
    }

    fn save(&self, record: &Record) -> Result<(), AgentError> {
        let path = self.record_path(&record.id);
        let tmp = path.with_extension("json.tmp");
        let bytes = serde_json::to_vec_pretty(record).expect("a record always encodes as JSON");
        std::fs::write(&tmp, bytes)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|e| AgentError::io(format!("write {}", path.display()), e))
    }

    fn own_record(&self, id: &str) -> Result<Record, AgentError> {
        self.records()
            .by_id
            .get(id)
            .filter(|r| r.node == self.node)
            .cloned()
            .ok_or_else(|| AgentError::NotFound { id: id.into() })
    }

    fn state_of(record: &Record) -> InstanceState {
        if let Some(code) = record.exit_code {
            return InstanceState::Exited { code };
        }
        match (record.pid, record.start_ticks) {
            (Some(pid), Some(ticks)) => match process_start_ticks(pid) {
                Some((found, zombie)) if found == ticks && !zombie => InstanceState::Running,
                // Our own child that has ended: its waiter records the exit
                // code in a moment; until then it is simply not running.
                Some((found, true)) if found == ticks => InstanceState::Exited { code: -1 },
                _ => InstanceState::Failed {
                    reason: "the process ended while the node was not its parent; its exit code is unknown".into(),
                },
            },
            _ => match &record.spawn_error {
                Some(error) => InstanceState::Failed {
                    reason: error.clone(),
                },
                None => InstanceState::Created,
            },
        }
    }

    fn instance_of(record: &Record) -> Instance {
        Instance {
            id: record.id.clone(),
            key: record.spec.key(),
            spec_hash: record.spec_hash.clone(),
            state: Self::state_of(record),
        }
    }

    /// Spawns the record's command, updates and saves the record, and
    /// starts a waiter that records the exit code.
    fn spawn(&self, id: &str) -> Result<Instance, AgentError> {
        let mut record = self.own_record(id)?;
        let spec = record.spec.clone();
        let data_dir = self.data_dir(&spec.key());
        std::fs::create_dir_all(&data_dir)
            .map_err(|e| AgentError::io(format!("create {}", data_dir.display()), e))?;
        let log_path = self.log_path(id);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| AgentError::io(format!("open {}", log_path.display()), e))?;
        let log_err = log
            .try_clone()
            .map_err(|e| AgentError::io(format!("open {}", log_path.display()), e))?;
        let mut command = tokio::process::Command::new(&spec.command[0]);
        command
            .args(&spec.command[1..])
            .current_dir(&data_dir)
            .env_clear()
            .env(
                "PATH",
                std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into()),
            )
            .env("HOME", &data_dir)
            .env("FLUX_DATA_DIR", &data_dir)
            .env("HOST", spec.host_ip.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err))
            // Its own process group: stop signals reach everything it
            // started, and a Ctrl-C aimed at the node does not.
            .process_group(0)
            .kill_on_drop(false);
        if let Some(port) = spec.ports.first() {
            command.env("PORT", port.host_port.to_string());
        }
        for entry in spec.flux_env().iter().chain(&spec.env) {
            if let Some((name, value)) = entry.split_once('=') {
                command.env(name, value);
            }
        }
        record.generation += 1;
        record.exit_code = None;
        let spawned = command.spawn();
        let mut child = match spawned {
            Ok(child) => child,
            Err(e) => {
                let reason = format!("cannot run {:?}: {e}", spec.command[0]);
                record.pid = None;
                record.start_ticks = None;
                record.spawn_error = Some(reason.clone());
                self.records().by_id.insert(id.into(), record.clone());
                self.save(&record)?;
                return Err(AgentError::io(
                    format!("run {:?} for {}", spec.command[0], spec.key()),
                    e,
                ));
            }
        };
        let pid = child.id().expect("a just-spawned child has a pid");
        record.pid = Some(pid);
        record.start_ticks = process_start_ticks(pid).map(|(ticks, _)| ticks);
        record.spawn_error = None;
        let generation = record.generation;
        {
            let mut records = self.records();
            records.by_id.insert(id.into(), record.clone());
        }
        self.save(&record)?;
        info!(key = %spec.key(), id, pid, "process started");
        let driver = self.clone();
        let id = id.to_string();
        tokio::spawn(async move {
            let code = match child.wait().await {
                Ok(status) => status
                    .code()
                    .map(i64::from)
                    .or_else(|| status.signal().map(|s| 128 + i64::from(s)))
                    .unwrap_or(-1),
                Err(_) => -1,
            };
            let updated = {
                let mut records = driver.records();
                match records.by_id.get_mut(&id) {
                    Some(record) if record.generation == generation => {
                        record.exit_code = Some(code);
                        Some(record.clone())
                    }
                    _ => None,
                }
            };
            if let Some(record) = updated {
                info!(key = %record.spec.key(), id, code, "process ended");
                if let Err(e) = driver.save(&record) {
                    warn!(error = %e, "cannot save instance record");
                }
            }
        });
        Ok(Self::instance_of(&record))
    }

    /// Signals the process group and waits for the process to end, up to
    /// the grace period, then kills the group.
    async fn terminate(&self, record: &Record) {
        let (Some(pid), Some(ticks)) = (record.pid, record.start_ticks) else {
            return;
        };
        let alive = || matches!(process_start_ticks(pid), Some((t, false)) if t == ticks);
        if !alive() {
            return;
        }
        signal_group(pid, libc::SIGTERM);
        let deadline =
            tokio::time::Instant::now() + Duration::from_millis(self.config.stop_grace_ms);
        while alive() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(STOP_POLL_MS)).await;
        }
        // Whatever is left of the group goes too, including children that
        // outlived the main process.
        signal_group(pid, libc::SIGKILL);
    }

    /// Rotates a log file that passed its limit: the current file becomes
    /// `.log.1` and the live file restarts empty. Output written between the
    /// copy and the truncation is lost; a process keeps writing to the same
    /// open file, so the file cannot simply be renamed.
    fn rotate_log(&self, id: &str) {
        let path = self.log_path(id);
        let Ok(meta) = std::fs::metadata(&path) else {
            return;
        };
        if meta.len() <= self.config.log_file_bytes_max {
            return;
        }
        let rotated = path.with_extension("log.1");
        let result = std::fs::copy(&path, &rotated).and_then(|_| {
            std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .and_then(|f| f.set_len(0))
        });
        if let Err(e) = result {
            warn!(id, error = %e, "cannot rotate log file");
        }
    }
}

#[async_trait]
impl Driver for ExecDriver {
    fn kind(&self) -> DriverKind {
        DriverKind::Exec
    }

    fn node(&self) -> &str {
        &self.node
    }

    async fn start(&self, spec: &InstanceSpec) -> Result<Instance, AgentError> {
        spec.validate()?;
        if spec.node != self.node {
            return Err(AgentError::InvalidSpec {
                key: spec.key().to_string(),
                reason: format!("it is placed on node {}, not on {}", spec.node, self.node),
            });
        }
        if spec.command.is_empty() {
            return Err(AgentError::NoCommand {
                key: spec.key().to_string(),
            });
        }
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let id = format!(
            "{}-{}-{}-{nanos:x}",
            spec.app, spec.component, spec.instance
        );
        {
            let mut records = self.records();
            if records.by_id.len() >= self.config.instances_max {
                return Err(AgentError::InvalidSpec {
                    key: spec.key().to_string(),
                    reason: format!(
                        "the exec driver already runs its limit of {} instances",
                        self.config.instances_max
                    ),
                });
            }
            records.by_id.insert(
                id.clone(),
                Record {
                    id: id.clone(),
                    node: self.node.clone(),
                    spec: spec.clone(),
                    spec_hash: spec.spec_hash(),
                    pid: None,
                    start_ticks: None,
                    exit_code: None,
                    spawn_error: None,
                    generation: 0,
                },
            );
        }
        self.spawn(&id)
    }

    async fn restart(&self, id: &str) -> Result<Instance, AgentError> {
        let record = self.own_record(id)?;
        if Self::state_of(&record).is_up() {
            return Ok(Self::instance_of(&record));
        }
        self.spawn(id)
    }

    async fn inspect(&self, id: &str) -> Result<Instance, AgentError> {
        Ok(Self::instance_of(&self.own_record(id)?))
    }

    async fn stop(&self, id: &str) -> Result<(), AgentError> {
        let record = self.own_record(id)?;
        self.terminate(&record).await;
        Ok(())
    }

    async fn destroy(&self, id: &str) -> Result<(), AgentError> {
        let Ok(record) = self.own_record(id) else {
            return Ok(());
        };
        self.terminate(&record).await;
        self.records().by_id.remove(id);
        let log = self.log_path(id);
        for path in [self.record_path(id), log.with_extension("log.1"), log] {
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(AgentError::io(format!("remove {}", path.display()), e)),
            }
        }
        info!(key = %record.spec.key(), id, "instance removed");
        Ok(())
    }

    async fn list(&self) -> Result<Inventory, AgentError> {
        let records: Vec<Record> = self
            .records()
            .by_id
            .values()
            .filter(|r| r.node == self.node)
            .cloned()
            .collect();
        let mut inventory = Inventory::default();
        for record in &records {
            self.rotate_log(&record.id);
            inventory.instances.push(Self::instance_of(record));
        }
        let data = self.config.state_dir.join("data");
        for app in read_dir_names(&data) {
            for entry in read_dir_names(&data.join(&app)) {
                if let Some((component, index)) = entry.rsplit_once('-')
                    && let Ok(instance) = index.parse()
                {
                    inventory.volumes.insert(InstanceKey {
                        app: app.clone(),
                        component: component.to_string(),
                        instance,
                    });
                }
            }
        }
        Ok(inventory)
    }

    async fn logs(&self, id: &str, options: LogOptions) -> Result<LogChunks, AgentError> {
        self.own_record(id)?;
        let path = self.log_path(id);
        let mut text = std::fs::read(path.with_extension("log.1")).unwrap_or_default();
        let current = std::fs::read(&path).unwrap_or_default();
        let offset = current.len() as u64;
        text.extend_from_slice(&current);
        let tail = tail_lines(&text, options.tail_lines.min(LOG_TAIL_LINES_MAX) as usize);
        let first: Vec<Result<LogChunk, AgentError>> = tail
            .chunks(LOG_CHUNK_BYTES_MAX)
            .map(|piece| {
                Ok(LogChunk {
                    stream: LogStream::Output,
                    data: piece.to_vec(),
                })
            })
            .collect();
        let initial = futures_util::stream::iter(first);
        if !options.follow {
            return Ok(Box::pin(initial));
        }
        let driver = self.clone();
        let id = id.to_string();
        let follow = futures_util::stream::unfold(
            (driver, id, path, offset),
            |(driver, id, path, mut offset)| async move {
                loop {
                    let data = std::fs::read(&path).unwrap_or_default();
                    if (data.len() as u64) < offset {
                        // Rotated: the live file restarted.
                        offset = 0;
                    }
                    if (data.len() as u64) > offset {
                        let start = usize::try_from(offset).unwrap_or(usize::MAX);
                        let end = data.len().min(start + LOG_CHUNK_BYTES_MAX);
                        offset = end as u64;
                        let chunk = LogChunk {
                            stream: LogStream::Output,
                            data: data[start..end].to_vec(),
                        };
                        return Some((Ok(chunk), (driver, id, path, offset)));
                    }
                    let up = driver
                        .own_record(&id)
                        .map(|r| Self::state_of(&r).is_up())
                        .unwrap_or(false);
                    if !up {
                        return None;
                    }
                    tokio::time::sleep(Duration::from_millis(LOG_FOLLOW_POLL_MS)).await;
                }
            },
        );
        Ok(Box::pin(futures_util::StreamExt::chain(initial, follow)))
    }

    async fn stats(&self, id: &str) -> Result<Stats, AgentError> {
        let record = self.own_record(id)?;
        let Some(pid) = record.pid.filter(|_| Self::state_of(&record).is_up()) else {
            return Err(AgentError::NotFound { id: id.into() });
        };
        let before = process_cpu_ticks(pid).unwrap_or(0);
        tokio::time::sleep(Duration::from_millis(STATS_SAMPLE_MS)).await;
        let after = process_cpu_ticks(pid).unwrap_or(before);
        // SAFETY: sysconf only reads a system constant.
        let ticks_per_s = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        let cpu_percent =
            (after.saturating_sub(before)) as f64 / ticks_per_s / (STATS_SAMPLE_MS as f64 / 1000.0)
                * 100.0;
        Ok(Stats {
            cpu_percent,
            memory_bytes: process_rss_bytes(pid).unwrap_or(0),
            memory_limit_bytes: 0,
            network_rx_bytes: 0,
            network_tx_bytes: 0,
        })
    }

    async fn remove_volume(&self, key: &InstanceKey) -> Result<(), AgentError> {
        let dir = self.data_dir(key);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => info!(dir = %dir.display(), "data directory removed"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(AgentError::io(format!("remove {}", dir.display()), e)),
        }
        let app_dir = self.config.state_dir.join("data").join(&key.app);
        if read_dir_names(&app_dir).is_empty() {
            let _ = std::fs::remove_dir(&app_dir);
        }
        Ok(())
    }

    async fn remove_network(&self, _app: &str) -> Result<(), AgentError> {
        // Processes share the host's network; there is nothing to remove.
        Ok(())
    }
}

fn read_record(path: &Path) -> Result<Record, String> {
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    if meta.len() > RECORD_BYTES_MAX {
        return Err(format!("larger than {RECORD_BYTES_MAX} bytes"));
    }
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    serde_json::from_slice(&bytes).map_err(|e| e.to_string())
}

fn read_dir_names(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// The last `lines` lines of `text`.
fn tail_lines(text: &[u8], lines: usize) -> &[u8] {
    if lines == 0 {
        return &[];
    }
    let body = text.strip_suffix(b"\n").unwrap_or(text);
    let mut seen = 0;
    for (i, byte) in body.iter().enumerate().rev() {
        if *byte == b'\n' {
            seen += 1;
            if seen == lines {
                return &text[i + 1..];
            }
        }
    }
    text
}

/// The fields of `/proc/<pid>/stat` after the command name (which may
/// contain spaces and parentheses).
fn proc_stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    Some(after.split_whitespace().map(str::to_string).collect())
}

/// Start time in ticks since boot and whether the process is a zombie.
fn process_start_ticks(pid: u32) -> Option<(u64, bool)> {
    let fields = proc_stat_fields(pid)?;
    // Fields after the name start at field 3 (state); starttime is field 22.
    let zombie = fields.first().map(String::as_str) == Some("Z");
    Some((fields.get(19)?.parse().ok()?, zombie))
}

/// User plus system CPU time in ticks.
fn process_cpu_ticks(pid: u32) -> Option<u64> {
    let fields = proc_stat_fields(pid)?;
    // utime and stime are fields 14 and 15.
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

fn process_rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn signal_group(pid: u32, signal: libc::c_int) {
    let Ok(pgid) = libc::pid_t::try_from(pid) else {
        return;
    };
    // SAFETY: kill has no memory effects; a negative pid addresses the
    // process group the driver created for this instance.
    unsafe {
        libc::kill(-pgid, signal);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(tail_lines(b"a\nb\nc\n", 2), b"b\nc\n");
        assert_eq!(tail_lines(b"a\nb\nc", 2), b"b\nc");
        assert_eq!(tail_lines(b"a\nb\n", 5), b"a\nb\n");
        assert_eq!(tail_lines(b"a\nb\n", 0), b"");
    }

    #[test]
    fn own_process_has_a_start_time() {
        let (ticks, zombie) = process_start_ticks(std::process::id()).unwrap();
        assert!(ticks > 0);
        assert!(!zombie);
        assert!(process_cpu_ticks(std::process::id()).is_some());
        assert!(process_rss_bytes(std::process::id()).unwrap() > 0);
    }
}

//! A four-node network of containers on a private Docker network, one node
//! cut off with `docker network disconnect` and reconnected: the other three
//! keep finalizing, no two nodes ever hold different blocks at one height,
//! and the cut node catches up to the same state root.
//!
//! The image holds only the `flux` binary and the libraries it loads
//! (`scripts/container-image`, FROM scratch), so no registry is needed. The
//! image, the network and the containers are named after this run and
//! removed when the test ends, failed or not. Without a Docker engine the
//! test says SKIPPED and passes.

use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use super::{FLUX, Flux, NETWORK_TIMEOUT, repo_root, wait_for};

/// API port of every node (the devnet default).
const API_PORT: u16 = 16127;
/// Nodes of the network.
const NODES: usize = 4;
/// Blocks the three connected nodes must finalize while the fourth is cut off.
const PARTITION_BLOCKS: u64 = 15;
/// How long one API request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// Runs `docker ARGS`; the output whatever the status.
fn docker(args: &[&str]) -> Output {
    Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run docker")
}

/// Runs `docker ARGS`, which must succeed; its stdout.
fn docker_ok(args: &[&str]) -> String {
    let output = docker(args);
    assert!(
        output.status.success(),
        "`docker {}` failed: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// Why no Docker engine can be used, if none answers.
fn engine_missing() -> Option<String> {
    match Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .stdin(Stdio::null())
        .output()
    {
        Err(error) => Some(format!("no docker command ({error})")),
        Ok(output) if !output.status.success() => Some(format!(
            "no Docker engine answers: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )),
        Ok(_) => None,
    }
}

/// `GET path` on `address`; the JSON body of a 200 answer.
fn get(address: SocketAddrV4, path: &str) -> Option<Value> {
    let mut stream = TcpStream::connect_timeout(&SocketAddr::V4(address), REQUEST_TIMEOUT).ok()?;
    stream.set_read_timeout(Some(REQUEST_TIMEOUT)).ok()?;
    stream.set_write_timeout(Some(REQUEST_TIMEOUT)).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).ok()?;
    let text = String::from_utf8(response).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    if !head.starts_with("HTTP/1.1 200") {
        return None;
    }
    serde_json::from_str(body).ok()
}

/// What one run creates in Docker; removed on drop.
struct Containers {
    image: String,
    network: String,
    names: Vec<String>,
    addresses: Vec<SocketAddrV4>,
}

impl Containers {
    fn status(&self, i: usize) -> Option<Value> {
        get(self.addresses[i], "/api/v1/status")
    }

    fn height(&self, i: usize) -> Option<u64> {
        self.status(i).and_then(|s| s["height"].as_u64())
    }

    fn block(&self, i: usize, height: u64) -> Value {
        get(self.addresses[i], &format!("/api/v1/blocks/{height}"))
            .unwrap_or_else(|| panic!("node {i} did not serve block {height}"))
    }

    /// The last lines each container wrote.
    fn logs(&self) -> String {
        let mut text = String::new();
        for name in &self.names {
            let output = docker(&["logs", "--tail", "30", name]);
            text.push_str(&format!("--- {name} ---\n"));
            text.push_str(&String::from_utf8_lossy(&output.stdout));
            text.push_str(&String::from_utf8_lossy(&output.stderr));
        }
        text
    }

    fn wait_height(&self, nodes: &[usize], height: u64) {
        wait_for(
            &format!("nodes {nodes:?} at height {height}"),
            NETWORK_TIMEOUT,
            || self.logs(),
            || {
                nodes
                    .iter()
                    .all(|&i| self.height(i).is_some_and(|h| h >= height))
            },
        );
    }

    fn max_height(&self, nodes: &[usize]) -> u64 {
        nodes
            .iter()
            .filter_map(|&i| self.height(i))
            .max()
            .unwrap_or(0)
    }

    fn running(&self, i: usize) -> bool {
        docker_ok(&["inspect", "--format", "{{.State.Running}}", &self.names[i]]) == "true"
    }

    /// Asserts that `nodes` hold the same block (hash and header) at every
    /// height from 1 to the highest they all have; that height.
    fn assert_no_conflict(&self, nodes: &[usize]) -> u64 {
        let common = nodes
            .iter()
            .map(|&i| self.height(i).expect("node answers"))
            .min()
            .unwrap();
        for height in 1..=common {
            let blocks: Vec<Value> = nodes.iter().map(|&i| self.block(i, height)).collect();
            for (block, i) in blocks.iter().zip(nodes) {
                assert!(block["hash"].is_string(), "node {i}: {block}");
                assert_eq!(
                    block["hash"], blocks[0]["hash"],
                    "conflicting finalization: node {i} and node {} hold different blocks at height {height}",
                    nodes[0]
                );
                assert_eq!(
                    block["header"], blocks[0]["header"],
                    "node {i} at height {height}"
                );
            }
        }
        common
    }
}

impl Drop for Containers {
    // A failing test shows what the containers wrote: the test harness
    // captures stderr and prints it only for failures.
    #[allow(clippy::print_stderr)]
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
        for name in &self.names {
            let _ = docker(&["rm", "--force", "--volumes", name]);
        }
        let _ = docker(&["network", "rm", &self.network]);
        let _ = docker(&["rmi", "--force", &self.image]);
    }
}

/// Creates a bridge network named `name` on the first free /24 among the
/// private subnets this run tries; the subnet's first three octets.
fn create_network(name: &str, seed: u32) -> [u8; 3] {
    let mut last = String::new();
    for attempt in 0..32u32 {
        let pick = seed.wrapping_add(attempt.wrapping_mul(7919));
        // 172.24.0.0/13 and up: clear of the nodes' app networks (172.23.N.0/24).
        let octets = [172, 24 + (pick % 8) as u8, (pick / 8 % 250) as u8 + 1];
        let subnet = format!("{}.{}.{}.0/24", octets[0], octets[1], octets[2]);
        let output = docker(&["network", "create", "--subnet", &subnet, name]);
        if output.status.success() {
            return octets;
        }
        last = String::from_utf8_lossy(&output.stderr).trim().to_string();
        // The name is this run's own: only an overlapping subnet is worth another try.
        if !last.contains("overlap") {
            break;
        }
    }
    panic!("cannot create the Docker network {name}: {last}");
}

#[test]
#[allow(clippy::print_stderr)]
fn partitioned_container_node_causes_no_conflict_and_heals() {
    if let Some(reason) = engine_missing() {
        eprintln!("SKIPPED partitioned_container_node_causes_no_conflict_and_heals: {reason}");
        return;
    }
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let run = format!("flux-partition-{}-{nanos}", std::process::id());
    let temp = tempfile::tempdir().expect("temp dir");
    let devnet = temp.path().join("devnet");

    let image = format!("{run}:test");
    let built = Command::new(repo_root().join("scripts").join("container-image"))
        .arg(FLUX)
        .arg(&image)
        .stdin(Stdio::null())
        .output()
        .expect("run scripts/container-image");
    let mut containers = Containers {
        image,
        network: run.clone(),
        names: Vec::new(),
        addresses: Vec::new(),
    };
    assert!(
        built.status.success(),
        "scripts/container-image failed: {}",
        String::from_utf8_lossy(&built.stderr)
    );
    let [a, b, c] = create_network(&run, std::process::id() ^ nanos);
    let ips: Vec<Ipv4Addr> = (0..NODES as u8)
        .map(|i| Ipv4Addr::new(a, b, c, i + 2))
        .collect();
    containers.addresses = ips
        .iter()
        .map(|ip| SocketAddrV4::new(*ip, API_PORT))
        .collect();

    let flux = Flux::new(&temp.path().join("home"), "http://127.0.0.1:9");
    flux.ok(&[
        "devnet",
        "init",
        "--nodes",
        &NODES.to_string(),
        "--dir",
        &devnet.display().to_string(),
        "--api-host",
        &ips[0].to_string(),
        "--block-interval-ms",
        "200",
    ]);
    let volume = format!("{}:/devnet", devnet.display());
    for (i, ip) in ips.iter().enumerate() {
        let name = format!("{run}-node-{i}");
        containers.names.push(name.clone());
        docker_ok(&[
            "run",
            "--detach",
            "--name",
            &name,
            "--network",
            &run,
            "--ip",
            &ip.to_string(),
            "--volume",
            &volume,
            &containers.image,
            "node",
            "run",
            "--config",
            &format!("/devnet/node-{i}/config.toml"),
        ]);
    }
    let all = [0, 1, 2, 3];
    containers.wait_height(&all, 3);
    wait_for(
        "every node to hear its three peers",
        NETWORK_TIMEOUT,
        || containers.logs(),
        || {
            all.iter().all(|&i| {
                containers
                    .status(i)
                    .is_some_and(|s| s["peers"].as_u64() == Some(3))
            })
        },
    );
    containers.assert_no_conflict(&all);

    // Cut node 3 off: the other three are a quorum and keep finalizing.
    docker_ok(&["network", "disconnect", &run, &containers.names[3]]);
    let connected = [0, 1, 2];
    let cut_at = Instant::now();
    let before = containers.max_height(&connected);
    containers.wait_height(&connected, before + PARTITION_BLOCKS);
    assert!(
        containers.running(3),
        "the cut node stopped:\n{}",
        containers.logs()
    );
    let during = containers.assert_no_conflict(&connected);
    assert!(during >= before + PARTITION_BLOCKS);
    let partition = cut_at.elapsed();

    // Reconnect it at its address: it catches up and agrees on every block.
    docker_ok(&[
        "network",
        "connect",
        "--ip",
        &ips[3].to_string(),
        &run,
        &containers.names[3],
    ]);
    let target = containers.max_height(&connected);
    containers.wait_height(&[3], target);
    let common = containers.assert_no_conflict(&all);
    assert!(common >= target);
    let roots: Vec<Value> = all
        .iter()
        .map(|&i| containers.block(i, common)["header"]["state_root"].clone())
        .collect();
    assert!(
        roots
            .iter()
            .all(|root| root == &roots[0] && root.is_string()),
        "state roots at height {common}: {roots:?}"
    );
    // The healed network goes on finalizing with all four.
    containers.wait_height(&all, common + 3);
    eprintln!(
        "partition of {partition:?}: {} blocks finalized without node 3; agreement on {common} blocks after healing",
        during - before
    );
}

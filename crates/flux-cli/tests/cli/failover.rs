//! Failover for real: a 3-instance app runs in Docker on a five-node
//! devnet, each node its own `flux node run` process. The node hosting
//! instance 0 is killed with SIGKILL; its verifiers see it down, the ledger
//! marks it unreachable and places the instance on another node, whose agent
//! starts it. The test prints the time from the SIGKILL to the replacement
//! answering HTTP. The dead node earns nothing while it is down, a node that
//! runs no instance earns nothing at all, and once the node is started again
//! its own reconciler removes the container it left behind (only its process
//! died: the container kept running on the shared Docker engine) and the
//! ledger confirms it again.
//! Without a Docker engine the test says SKIPPED and passes.
//!
//! A work report sent again is refused with its typed error
//! (`work_duplicate`); forged, late and self-serving reports are refused
//! likewise by the ledger's work tests (crates/flux-ledger/tests/ledger/work.rs).
//!
//! The devnet lives on 127.0.44.x; the image is the example image built by
//! `images/build.sh` (no registry needed).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use flux_types::{SecretKey, SignedTransaction, TxBody};
use serde_json::Value;

use super::apps::http_get;
use super::{AppLeftovers, Flux, Process, Setup, docker, wait_confirmed, wait_for, whoami};

/// Nodes of the devnet.
const NODES: u8 = 5;
/// Published port of the app.
const PORT: u16 = 31440;
/// How long the app gets to come up, fail over, and the node to come back.
const APP_TIMEOUT: Duration = Duration::from_secs(120);

fn node_ip(index: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 44, 1 + index)
}

/// The app's containers on `node` (its id), running or not.
fn containers_of(app: &str, node: &str) -> BTreeSet<String> {
    docker(&[
        "ps",
        "-aq",
        "--filter",
        &format!("label=flux.app={app}"),
        "--filter",
        &format!("label=flux.node={node}"),
    ])
    .unwrap_or_default()
    .split_whitespace()
    .map(str::to_string)
    .collect()
}

/// What answers `/whoami` on the app's port at the nodes `from`: instance
/// slot to the node running it (`app/component#instance@node`).
fn answering(from: &[u8]) -> BTreeMap<String, String> {
    from.iter()
        .filter_map(|i| {
            let body = http_get(SocketAddr::from((node_ip(*i), PORT)), "/whoami")?;
            let who = whoami(&body)?;
            Some((who.instance, who.node))
        })
        .collect()
}

fn spec(app: &str, owner: &str) -> Value {
    serde_json::json!({
        "version": 8,
        "name": app,
        "description": "one component, three instances",
        "owner": owner,
        "instances": 3,
        "contacts": [],
        "geolocation": [],
        "expire": 86400,
        "nodes": [],
        "staticip": false,
        "enterprise": "",
        "compose": [{
            "name": "web",
            "description": "the example web server",
            "repotag": "flux-hello:latest",
            "ports": [PORT],
            "containerPorts": [8080],
            "domains": [""],
            "environmentParameters": [],
            "commands": [],
            "containerData": "",
            "cpu": 0.1,
            "ram": 100,
            "hdd": 1,
            "tiered": false,
            "secrets": "",
            "repoauth": ""
        }]
    })
}

/// The devnet's nodes, each its own `flux node run` process.
struct Nodes {
    setup_root: std::path::PathBuf,
    flux: Flux,
    port: u16,
    processes: Vec<Option<Process>>,
}

impl Nodes {
    fn url(&self, index: u8) -> String {
        format!("http://{}:{}", node_ip(index), self.port)
    }

    /// Starts node `index` and waits until its API answers.
    fn start(&mut self, index: u8) {
        let config = self
            .setup_root
            .join("devnet")
            .join(format!("node-{index}"))
            .join("config.toml");
        let log = self.setup_root.join(format!("node-{index}.log"));
        let local = Flux::new(&self.flux.home, &self.url(index));
        let mut process = Process::spawn(
            &format!("node-{index}"),
            &local,
            &["node", "run", "--config", &config.display().to_string()],
            log,
            Vec::new(),
        );
        local.wait_for_node(&mut process);
        self.processes[usize::from(index)] = Some(process);
    }

    fn kill(&mut self, index: u8) {
        if let Some(mut process) = self.processes[usize::from(index)].take() {
            process.kill();
        }
    }

    fn logs(&self) -> String {
        self.processes
            .iter()
            .flatten()
            .map(Process::logs)
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// `GET /api/v1/nodes/{id}` at node `via`.
    fn node(&self, via: u8, id: &str) -> Value {
        http_get(
            SocketAddr::from((node_ip(via), self.port)),
            &format!("/api/v1/nodes/{id}"),
        )
        .and_then(|body| serde_json::from_str(&body).ok())
        .unwrap_or(Value::Null)
    }
}

/// `POST path` on `addr` with a JSON body; the whole answer, head included.
fn http_post(addr: SocketAddr, path: &str, body: &str) -> String {
    let timeout = Duration::from_secs(5);
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, timeout) else {
        return String::new();
    };
    let _ = stream.set_read_timeout(Some(timeout));
    let _ = write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
}

/// A work report the node `index` sent lately, signed again by its node key
/// with its next nonce and submitted to its API: refused as a duplicate.
/// Returns the refusal.
fn resubmitted_report_is_refused(nodes: &Nodes, index: u8) -> String {
    let key_file = nodes
        .setup_root
        .join("devnet")
        .join(format!("node-{index}"))
        .join("node_key.json");
    let file: Value =
        serde_json::from_str(&std::fs::read_to_string(key_file).expect("node key file"))
            .expect("node key file is JSON");
    let seed: [u8; 32] = hex::decode(file["seed"].as_str().expect("seed"))
        .expect("seed is hex")
        .try_into()
        .expect("seed is 32 bytes");
    let key = SecretKey::from_seed(seed);
    let api = SocketAddr::from((node_ip(index), nodes.port));
    let get = |path: &str| -> Value {
        http_get(api, path)
            .and_then(|body| serde_json::from_str(&body).ok())
            .unwrap_or(Value::Null)
    };
    let mut other = Vec::new();
    let deadline = Instant::now() + APP_TIMEOUT;
    while Instant::now() < deadline {
        let height = get("/api/v1/status")["height"].as_u64().unwrap_or(0);
        let sent = (height.saturating_sub(2)..=height).rev().find_map(|h| {
            get(&format!("/api/v1/blocks/{h}"))["txs"]
                .as_array()?
                .iter()
                .find_map(|entry| {
                    let signed: SignedTransaction =
                        serde_json::from_value(entry["tx"].clone()).ok()?;
                    (signed.tx.signer == key.public_key()
                        && matches!(signed.tx.body, TxBody::WorkReport { .. }))
                    .then_some(signed.tx)
                })
        });
        if let Some(mut tx) = sent {
            tx.nonce = get(&format!("/api/v1/accounts/{}", key.address()))["next_nonce"]
                .as_u64()
                .unwrap_or(0);
            let hex = hex::encode(flux_types::codec::encode(&tx.sign(&key)));
            let body = serde_json::json!({ "tx": hex }).to_string();
            let answer = http_post(api, "/api/v1/transactions", &body);
            if answer.contains("work_duplicate") {
                return answer;
            }
            // A race with the node's own next report, or a window settled
            // meanwhile: try a newer report.
            other.push(answer);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("no resubmitted report was refused as a duplicate: {other:#?}");
}

/// A FLUX amount as shown by the API, in units of 10^-8.
fn units(amount: &Value) -> u64 {
    let text = amount.as_str().unwrap_or("0");
    let (whole, fraction) = text.split_once('.').unwrap_or((text, "0"));
    let fraction = format!("{fraction:0<8}");
    whole.parse::<u64>().unwrap_or(0) * 100_000_000 + fraction[..8].parse::<u64>().unwrap_or(0)
}

#[test]
// The test says on its output that it was skipped, and what it measured.
#[allow(clippy::print_stdout)]
fn a_killed_node_fails_over_earns_nothing_while_down_and_cleans_up_when_back() {
    if !super::docker_with_example_image() {
        return;
    }

    let app = format!("fail{}", std::process::id());
    // Dropped after the nodes, which would otherwise start them again.
    let _leftovers = AppLeftovers::on_failure(&app);
    let setup = Setup::new(node_ip(0));
    let flux = setup.flux.clone();

    // `flux devnet up` creates the devnet and registers and confirms its
    // nodes; the nodes then run as processes of their own, which the test
    // kills and starts one by one.
    {
        let dir = setup.devnet_dir().display().to_string();
        let (ip, port) = (setup.ip.to_string(), setup.port.to_string());
        let mut devnet = Process::spawn(
            "flux devnet up",
            &flux,
            &[
                "devnet",
                "up",
                "--nodes",
                &NODES.to_string(),
                "--dir",
                &dir,
                "--api-host",
                &ip,
                "--api-port",
                &port,
            ],
            setup.root.join("devnet-up.log"),
            vec![setup.devnet_dir().join("node-0").join("node.log")],
        );
        flux.wait_for_node(&mut devnet);
        wait_confirmed(&flux, usize::from(NODES), || devnet.logs());
        assert!(devnet.stop(), "the devnet did not stop cleanly");
    }
    let mut nodes = Nodes {
        setup_root: setup.root.clone(),
        flux: flux.clone(),
        port: setup.port,
        processes: (0..NODES).map(|_| None).collect(),
    };
    for index in 0..NODES {
        nodes.start(index);
    }
    wait_confirmed(&flux, usize::from(NODES), || nodes.logs());

    let owner = flux.json(&["keys", "show", "dev0"])["address"]
        .as_str()
        .expect("dev0's address")
        .to_string();
    let spec_path = setup.root.join("app.json");
    std::fs::write(&spec_path, spec(&app, &owner).to_string()).unwrap();
    flux.ok(&[
        "app",
        "deploy",
        &spec_path.display().to_string(),
        "--from",
        "dev0",
    ]);
    let all: Vec<u8> = (0..NODES).collect();
    wait_for(
        "three instances to answer, each on its own node",
        APP_TIMEOUT,
        || nodes.logs(),
        || {
            let answers = answering(&all);
            answers.len() == 3 && answers.values().collect::<BTreeSet<_>>().len() == 3
        },
    );

    // A report sent again is refused with its typed error and counts once
    // (forged, self-serving and late reports: the ledger's work tests).
    let refusal = resubmitted_report_is_refused(&nodes, 0);
    assert!(refusal.starts_with("HTTP/1.1 4"), "{refusal}");

    // The host of instance 0, by its registered endpoint.
    let status = flux.json(&["app", "status", &app]);
    let placements = status["placements"].as_array().expect("placements");
    let hosts: BTreeSet<String> = placements
        .iter()
        .filter_map(|p| Some(p["node"].as_str()?.to_string()))
        .collect();
    let zero = placements
        .iter()
        .find(|p| p["instance"] == 0)
        .expect("instance 0 is placed");
    let victim_id = zero["node"]
        .as_str()
        .expect("host of instance 0")
        .to_string();
    let victim_ip: Ipv4Addr = zero["node_endpoint"]
        .as_str()
        .and_then(|e| e.split_once(':'))
        .and_then(|(ip, _)| ip.parse().ok())
        .expect("host endpoint");
    let victim = (0..NODES)
        .find(|i| node_ip(*i) == victim_ip)
        .expect("the host is a devnet node");
    let alive: Vec<u8> = all.iter().copied().filter(|i| *i != victim).collect();
    let via = alive[0];
    // The CLI talks to a node that stays up.
    let flux = Flux::new(&flux.home, &nodes.url(via));
    assert_eq!(containers_of(&app, &victim_id).len(), 1, "{status:#}");

    // The host is verified once its instance is a target of the epoch (an
    // instance placed during an epoch is verified from the next one).
    wait_for(
        "the host of instance 0 to be verified",
        APP_TIMEOUT,
        || nodes.logs(),
        || {
            nodes.node(via, &victim_id)["work"]["this_epoch"]["assigned_windows"]
                .as_u64()
                .is_some_and(|windows| windows > 0)
        },
    );

    // Kill the host's process without warning; its container keeps running.
    nodes.kill(victim);
    let killed = Instant::now();
    let mut replacement = String::new();
    wait_for(
        "instance 0 to answer on another node",
        APP_TIMEOUT,
        || nodes.logs(),
        || {
            answering(&alive).get("0").is_some_and(|node| {
                replacement = node.clone();
                *node != victim_id
            })
        },
    );
    let failover = killed.elapsed();
    println!("failover: instance 0 answered on another node {failover:?} after the SIGKILL");

    // The ledger says why: the node is unreachable and hosts nothing.
    let record = nodes.node(via, &victim_id);
    assert_eq!(record["status"], "unreachable", "{record:#}");
    assert_eq!(record["instances"], serde_json::json!([]), "{record:#}");
    let moved = flux.json(&["app", "status", &app]);
    let zero_now = moved["placements"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["instance"] == 0))
        .expect("instance 0 is placed");
    assert_eq!(zero_now["node"], replacement.as_str(), "{moved:#}");
    assert_ne!(replacement, victim_id);
    // The stale container is still there: nobody removes it but its node.
    assert_eq!(containers_of(&app, &victim_id).len(), 1);

    // The dead node earns nothing while down: it is assigned no work from
    // the epoch after the failover on, and is paid nothing for it, while a
    // host of a running instance is.
    let down_epoch = nodes.node(via, &victim_id)["work"]["epoch"]
        .as_u64()
        .expect("work epoch");
    let paid_through = |id: &str| {
        nodes.node(via, id)["work"]["rewards_last_paid_epoch"]
            .as_u64()
            .unwrap_or(0)
    };
    wait_for(
        "two epochs after the failover to be paid",
        APP_TIMEOUT,
        || nodes.logs(),
        || paid_through(&replacement) >= down_epoch + 2,
    );
    let dead = nodes.node(via, &victim_id)["work"].clone();
    assert!(
        dead["rewards_last_paid_epoch"]
            .as_u64()
            .is_none_or(|epoch| epoch <= down_epoch),
        "the dead node was paid for an epoch it was down in: {dead:#}"
    );
    for epoch in ["this_epoch", "last_epoch"] {
        assert_eq!(dead[epoch]["assigned_windows"], 0, "{dead:#}");
        assert_eq!(dead[epoch]["verified_windows"], 0, "{dead:#}");
        assert_eq!(units(&dead[epoch]["reward"]), 0, "{dead:#}");
    }
    let working = nodes.node(via, &replacement)["work"].clone();
    assert!(units(&working["rewards_total"]) > 0, "{working:#}");

    // A node that never ran an instance has earned nothing.
    let idle: Vec<String> = flux
        .json(&["node", "list"])
        .as_array()
        .expect("node list")
        .iter()
        .filter_map(|n| Some(n["id"].as_str()?.to_string()))
        .filter(|id| !hosts.contains(id) && *id != replacement)
        .collect();
    assert!(!idle.is_empty(), "every node hosted an instance");
    for id in &idle {
        let work = nodes.node(via, id)["work"].clone();
        assert_eq!(units(&work["rewards_total"]), 0, "{id}: {work:#}");
        assert_eq!(work["this_epoch"]["assigned_windows"], 0, "{id}: {work:#}");
    }

    // The node comes back: its reconciler removes the stale container and
    // the ledger confirms it again.
    let restarted = Instant::now();
    nodes.start(victim);
    wait_for(
        "the restarted node to remove its stale container",
        APP_TIMEOUT,
        || nodes.logs(),
        || containers_of(&app, &victim_id).is_empty(),
    );
    wait_for(
        "the restarted node to be confirmed again",
        APP_TIMEOUT,
        || nodes.logs(),
        || nodes.node(via, &victim_id)["status"] == "confirmed",
    );
    println!(
        "the restarted node removed its stale container and was confirmed again {:?} after it started",
        restarted.elapsed()
    );
    let answers = answering(&all);
    assert_eq!(answers.len(), 3, "{answers:?}");
    assert!(!answers.values().any(|n| *n == victim_id), "{answers:?}");

    flux.ok(&["app", "remove", &app, "--from", "dev0"]);
    wait_for(
        "the app's containers to go",
        APP_TIMEOUT,
        || nodes.logs(),
        || {
            docker(&["ps", "-aq", "--filter", &format!("label=flux.app={app}")])
                .is_some_and(|ids| ids.trim().is_empty())
        },
    );
    drop(nodes);
}

//! The gateway of every node, with real containers on a four-node devnet:
//! a two-instance app answers by name through every node's gateway,
//! including nodes that host no instance; requests spread over both
//! instances; a custom domain routes; an unknown app gets a clear 404; a
//! WebSocket echoes through the gateway; a 100 MB response streams through
//! while the node's memory barely moves; and killing an instance's container
//! while a client keeps asking costs a bounded window of errors, measured.
//! Without a Docker engine the test says SKIPPED and passes.
//!
//! The devnet lives on 127.0.42.x (gateways on port 16180, with TCP
//! forwarding of published ports, as a devnet has by default, checked
//! once); the image is
//! the example image built by `images/build.sh`, whose `/cgi-bin/bytes?N`
//! streams N bytes and whose `ws.sh` echoes WebSocket messages.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{Setup, docker, wait_for, whoami};

/// Nodes of the devnet (the default of `flux devnet up`).
const NODES: u8 = 4;
/// The gateway's port on every node.
const GATEWAY_PORT: u16 = 16180;
/// The devnet's network domain.
const DOMAIN: &str = "flux.localhost";
/// Published port of the web server.
const WEB_PORT: u16 = 31200;
/// Published port of the WebSocket echo server.
const WS_PORT: u16 = 31201;
/// How long the app gets to come up or come back.
const APP_TIMEOUT: Duration = Duration::from_secs(120);
/// Size of the large response.
const LARGE_BYTES: u64 = 100 * 1024 * 1024;
/// Most the serving node's resident memory may grow while it streams it.
const LARGE_RSS_GROWTH_MAX_KB: u64 = 8 * 1024;
/// Longest stretch of failed requests allowed while an instance dies.
const ERROR_WINDOW_MAX: Duration = Duration::from_secs(2);

fn node_ip(index: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 42, 1 + index)
}

fn gateway(index: u8) -> SocketAddr {
    SocketAddr::from((node_ip(index), GATEWAY_PORT))
}

/// An HTTP answer: status and body.
#[derive(Debug)]
struct Answer {
    status: u16,
    body: String,
}

/// `GET path` with `Host: host` on `addr`, on a new connection.
fn get(addr: SocketAddr, host: &str, path: &str) -> Option<Answer> {
    let timeout = Duration::from_secs(3);
    let mut stream = TcpStream::connect_timeout(&addr, timeout).ok()?;
    stream.set_read_timeout(Some(timeout)).ok()?;
    stream.set_write_timeout(Some(timeout)).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).ok()?;
    let response = String::from_utf8_lossy(&response);
    let (head, body) = response.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some(Answer {
        status,
        body: body.to_string(),
    })
}

/// The body of a 200 answer.
fn ok_body(addr: SocketAddr, host: &str, path: &str) -> Option<String> {
    get(addr, host, path)
        .filter(|a| a.status == 200)
        .map(|a| a.body)
}

/// The app's containers, by id.
fn containers(app: &str) -> BTreeSet<String> {
    docker(&["ps", "-aq", "--filter", &format!("label=flux.app={app}")])
        .unwrap_or_default()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// Removes the app's containers when the test ends, passed or failed.
struct Containers(String);

impl Drop for Containers {
    fn drop(&mut self) {
        for id in containers(&self.0) {
            let _ = docker(&["rm", "-f", &id]);
        }
    }
}

/// The pid of the node process whose configuration is `config`.
fn node_pid(config: &Path) -> Option<u32> {
    let config = config.display().to_string();
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            let args: Vec<String> = cmdline
                .split(|b| *b == 0)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            (args.iter().any(|a| a == "run") && args.contains(&config)).then_some(pid)
        })
}

/// Resident memory of a process, kB.
fn rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Streams `GET path` through `addr` and counts the body's bytes without
/// keeping them.
fn stream_count(addr: SocketAddr, host: &str, path: &str) -> (u16, u64) {
    let mut stream = TcpStream::connect(addr).expect("connect to the gateway");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut reader = BufReader::with_capacity(1 << 20, stream);
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    let status = line
        .split_whitespace()
        .nth(1)
        .unwrap_or("0")
        .parse()
        .unwrap_or(0);
    let mut chunked = false;
    loop {
        line.clear();
        reader.read_line(&mut line).unwrap();
        if line == "\r\n" || line.is_empty() {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
            chunked = true;
        }
    }
    let mut total = 0u64;
    let mut buffer = vec![0u8; 1 << 20];
    if chunked {
        loop {
            line.clear();
            reader.read_line(&mut line).unwrap();
            let size = u64::from_str_radix(line.trim(), 16).expect("a chunk size");
            if size == 0 {
                break;
            }
            let mut left = size;
            while left > 0 {
                let want = left.min(buffer.len() as u64) as usize;
                let n = reader.read(&mut buffer[..want]).unwrap();
                assert!(n > 0, "the body ended inside a chunk");
                left -= n as u64;
            }
            total += size;
            line.clear();
            reader.read_line(&mut line).unwrap();
        }
    } else {
        loop {
            let n = reader.read(&mut buffer).unwrap();
            if n == 0 {
                break;
            }
            total += n as u64;
        }
    }
    (status, total)
}

/// Client side of a WebSocket: a masked text frame of `text`.
fn ws_frame(text: &str) -> Vec<u8> {
    let payload = text.as_bytes();
    assert!(payload.len() < 126);
    let mask = [0x5a, 0x13, 0xc7, 0x08];
    let mut frame = vec![0x81, 0x80 | payload.len() as u8];
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}

/// Opens a WebSocket through `addr` for `host`, sends `text` and returns
/// what comes back.
fn ws_echo(addr: SocketAddr, host: &str, text: &str) -> Result<String, String> {
    let mut stream = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET /echo HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).map_err(|e| e.to_string())? == 0 {
            return Err(format!("closed during the handshake: {head}"));
        }
        if line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    if !head.starts_with("HTTP/1.1 101") || !head.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") {
        return Err(format!("no WebSocket handshake: {head}"));
    }
    stream
        .write_all(&ws_frame(text))
        .map_err(|e| e.to_string())?;
    let mut header = [0u8; 2];
    reader.read_exact(&mut header).map_err(|e| e.to_string())?;
    if header[0] != 0x81 || header[1] & 0x80 != 0 {
        return Err(format!("not an unmasked text frame: {header:?}"));
    }
    let mut payload = vec![0u8; usize::from(header[1] & 0x7f)];
    reader.read_exact(&mut payload).map_err(|e| e.to_string())?;
    // Close politely.
    let _ = stream.write_all(&[0x88, 0x80, 0, 0, 0, 0]);
    String::from_utf8(payload).map_err(|e| e.to_string())
}

fn spec(app: &str, owner: &str) -> Value {
    serde_json::json!({
        "version": 8,
        "name": app,
        "description": "two instances behind the gateway",
        "owner": owner,
        "instances": 2,
        "contacts": [],
        "geolocation": [],
        "expire": 86400,
        "nodes": [],
        "staticip": false,
        "enterprise": "",
        "compose": [{
            "name": "web",
            "description": "the example web server and a WebSocket echo",
            "repotag": "flux-hello:latest",
            "ports": [WEB_PORT, WS_PORT],
            "containerPorts": [8080, 8081],
            "domains": [format!("{app}.example"), ""],
            "environmentParameters": ["WS_PORT=8081"],
            "commands": [],
            "containerData": "/data",
            "cpu": 0.1,
            "ram": 100,
            "hdd": 1,
            "tiered": false,
            "secrets": "",
            "repoauth": ""
        }]
    })
}

#[test]
// The test says on its output that it was skipped, and what it measured.
#[allow(clippy::print_stdout)]
fn apps_answer_by_name_through_every_nodes_gateway() {
    if !super::docker_with_example_image() {
        return;
    }

    // A default devnet: its gateways forward published ports over TCP, so
    // every node's address reaches every app's published ports.
    let setup = Setup::new(node_ip(0));
    let devnet = setup.devnet_up();
    let flux = setup.flux.clone();
    let mut nodes = Value::Null;
    wait_for(
        "the four nodes to register and confirm themselves",
        APP_TIMEOUT,
        || devnet.logs(),
        || {
            let run = flux.run(&["--json", "node", "list"]);
            nodes = serde_json::from_str(&run.stdout).unwrap_or(Value::Null);
            nodes.as_array().is_some_and(|list| {
                list.len() == usize::from(NODES) && list.iter().all(|n| n["status"] == "confirmed")
            })
        },
    );
    // Node id -> index of the node (from its endpoint's address).
    let index_of: BTreeMap<String, u8> = nodes
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            let endpoint: SocketAddr = n["endpoint"].as_str().unwrap().parse().unwrap();
            let index = (0..NODES)
                .find(|i| endpoint.ip() == node_ip(*i))
                .expect("a devnet node's endpoint");
            (n["id"].as_str().unwrap().to_string(), index)
        })
        .collect();

    let app = format!("gw{}", std::process::id());
    let _cleanup = Containers(app.clone());
    let host = format!("{app}.{DOMAIN}");
    let owner = flux.json(&["keys", "show", "dev0"])["address"]
        .as_str()
        .expect("dev0's address")
        .to_string();
    let spec_path = setup.root.join("gateway-app.json");
    std::fs::write(&spec_path, spec(&app, &owner).to_string()).unwrap();
    let deployed = Instant::now();
    flux.ok(&[
        "app",
        "deploy",
        &spec_path.display().to_string(),
        "--from",
        "dev0",
    ]);

    // The app answers by name through every node's gateway; each answer
    // names the instance that gave it: app/web#INSTANCE@NODE.
    let mut seen: BTreeMap<u8, String> = BTreeMap::new();
    wait_for(
        "the app to answer through all four gateways",
        APP_TIMEOUT,
        || format!("{}\n{:?}", devnet.logs(), containers(&app)),
        || {
            for i in 0..NODES {
                match ok_body(gateway(i), &host, "/whoami") {
                    Some(body) => {
                        seen.insert(i, body);
                    }
                    None => return false,
                }
            }
            true
        },
    );
    println!(
        "deploy to an answer through every gateway: {:?}",
        deployed.elapsed()
    );
    assert_eq!(containers(&app).len(), 2, "one container per instance");
    for body in seen.values() {
        assert!(body.starts_with(&format!("{app}/web#")), "{seen:?}");
    }

    // Wait for both instances to run, then find a node that hosts none.
    let hosts = |bodies: &[String]| -> BTreeMap<String, u8> {
        bodies
            .iter()
            .filter_map(|b| {
                let who = whoami(b)?;
                Some((who.instance, *index_of.get(&who.node)?))
            })
            .collect()
    };
    let mut instances = BTreeMap::new();
    wait_for(
        "both instances to answer through the gateway",
        APP_TIMEOUT,
        || devnet.logs(),
        || {
            let mut bodies = Vec::new();
            for i in 0..NODES {
                for _ in 0..4 {
                    bodies.extend(ok_body(gateway(i), &host, "/whoami"));
                }
            }
            instances = hosts(&bodies);
            instances.len() == 2
        },
    );
    let hosting: BTreeSet<u8> = instances.values().copied().collect();
    let idle = (0..NODES)
        .find(|i| !hosting.contains(i))
        .expect("two instances leave two of four nodes idle");
    println!("instances on nodes {hosting:?}; node {idle} hosts none");

    // A hosting node's gateway prefers its own instance.
    let own = *hosting.iter().next().unwrap();
    for _ in 0..5 {
        let body = ok_body(gateway(own), &host, "/whoami").expect("an answer");
        assert_eq!(
            hosts(std::slice::from_ref(&body)).values().next(),
            Some(&own),
            "{body}"
        );
    }

    // Load spreads over both instances through a node that hosts none.
    let mut per_instance: BTreeMap<String, usize> = BTreeMap::new();
    for _ in 0..20 {
        let body = ok_body(gateway(idle), &host, "/whoami").expect("an answer");
        for instance in hosts(&[body]).into_keys() {
            *per_instance.entry(instance).or_default() += 1;
        }
    }
    assert_eq!(per_instance.len(), 2, "{per_instance:?}");
    assert!(
        per_instance.values().all(|n| *n >= 5),
        "round-robin gives each instance its share: {per_instance:?}"
    );

    // The app's published port answers on the address of a node that hosts
    // none (a default devnet), forwarded over TCP to an instance elsewhere.
    let forwarded = ok_body(
        SocketAddr::from((node_ip(idle), WEB_PORT)),
        "any",
        "/whoami",
    );
    let forwarded_to = forwarded.as_deref().map(|b| hosts(&[b.to_string()]));
    assert!(
        forwarded_to
            .as_ref()
            .is_some_and(|h| h.len() == 1 && h.values().all(|n| hosting.contains(n))),
        "{forwarded:?}"
    );

    // A custom domain from the spec routes; an unknown app gets a clear 404.
    let custom = ok_body(gateway(idle), &format!("{app}.example"), "/whoami");
    assert!(
        custom
            .as_deref()
            .is_some_and(|b| b.starts_with(&format!("{app}/web#"))),
        "{custom:?}"
    );
    let unknown = get(gateway(idle), &format!("nope{app}.{DOMAIN}"), "/").expect("an answer");
    assert_eq!(unknown.status, 404, "{unknown:?}");
    assert!(
        unknown.body.contains("app_not_found") && unknown.body.contains(&format!("nope{app}")),
        "{unknown:?}"
    );

    // A WebSocket echoes through the gateway, on the app's second port.
    let ws_host = format!("{app}_{WS_PORT}.{DOMAIN}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let echoed = loop {
        let echoed = ws_echo(gateway(idle), &ws_host, "hello through the gateway");
        if echoed.is_ok() || Instant::now() > deadline {
            break echoed;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(echoed.as_deref(), Ok("hello through the gateway"));

    // 100 MB stream through the gateway of a node that hosts none, while
    // that node's resident memory is sampled.
    let config = setup.devnet_dir().join(format!("node-{idle}/config.toml"));
    let pid = node_pid(&config).expect("the idle node's process");
    let (status, _) = stream_count(gateway(idle), &host, "/cgi-bin/bytes?1048576");
    assert_eq!(status, 200);
    let before = rss_kb(pid).expect("VmRSS");
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let sampling = Arc::clone(&sampling);
        std::thread::spawn(move || {
            let mut peak = 0;
            while sampling.load(Ordering::Relaxed) {
                peak = peak.max(rss_kb(pid).unwrap_or(0));
                std::thread::sleep(Duration::from_millis(20));
            }
            peak
        })
    };
    let started = Instant::now();
    let (status, bytes) = stream_count(
        gateway(idle),
        &host,
        &format!("/cgi-bin/bytes?{LARGE_BYTES}"),
    );
    let elapsed = started.elapsed();
    sampling.store(false, Ordering::Relaxed);
    let peak = sampler.join().unwrap();
    assert_eq!((status, bytes), (200, LARGE_BYTES));
    let growth = peak.saturating_sub(before);
    println!(
        "100 MB through the gateway in {elapsed:?} ({:.0} MB/s); node RSS {before} kB before, peak {peak} kB (+{growth} kB)",
        LARGE_BYTES as f64 / 1e6 / elapsed.as_secs_f64()
    );
    assert!(
        growth <= LARGE_RSS_GROWTH_MAX_KB,
        "the node's RSS grew by {growth} kB while streaming 100 MB"
    );

    // Kill one instance's container while a client keeps asking through a
    // node that hosts none: requests keep succeeding, and the failures that
    // do happen fit in a short window.
    let running = Arc::new(AtomicBool::new(true));
    let client = {
        let running = Arc::clone(&running);
        let host = host.clone();
        let addr = gateway(idle);
        std::thread::spawn(move || {
            let start = Instant::now();
            let mut log: Vec<(Duration, bool)> = Vec::new();
            while running.load(Ordering::Relaxed) {
                let ok = ok_body(addr, &host, "/whoami").is_some();
                log.push((start.elapsed(), ok));
                std::thread::sleep(Duration::from_millis(10));
            }
            (start, log)
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    let victim = docker(&["ps", "-q", "--filter", &format!("label=flux.app={app}")])
        .unwrap_or_default()
        .lines()
        .next()
        .expect("a running container")
        .trim()
        .to_string();
    docker(&["kill", &victim]).expect("docker kill");
    let killed = Instant::now();
    // Keep asking until the container runs again and both instances answer.
    wait_for(
        "the killed instance to come back",
        APP_TIMEOUT,
        || devnet.logs(),
        || {
            docker(&["inspect", "-f", "{{.State.Running}}", &victim])
                .is_some_and(|s| s.trim() == "true")
                && killed.elapsed() > Duration::from_secs(3)
        },
    );
    running.store(false, Ordering::Relaxed);
    let (start, log) = client.join().unwrap();
    let kill_at = killed.duration_since(start);
    let after: Vec<&(Duration, bool)> = log.iter().filter(|(t, _)| *t >= kill_at).collect();
    let failures: Vec<Duration> = after
        .iter()
        .filter(|(_, ok)| !ok)
        .map(|(t, _)| *t)
        .collect();
    let window = match (failures.first(), failures.last()) {
        (Some(first), Some(last)) => *last - *first,
        _ => Duration::ZERO,
    };
    println!(
        "instance killed: {} requests after the kill, {} failed, error window {window:?}",
        after.len(),
        failures.len()
    );
    assert!(after.len() >= 20, "the client kept asking: {}", after.len());
    assert!(
        failures.len() * 10 <= after.len(),
        "most requests kept succeeding: {} of {} failed",
        failures.len(),
        after.len()
    );
    assert!(window <= ERROR_WINDOW_MAX, "errors for {window:?}");

    // Removing the app removes its routes.
    flux.ok(&["app", "remove", &app, "--from", "dev0"]);
    wait_for(
        "the app's routes to go",
        APP_TIMEOUT,
        || devnet.logs(),
        || (0..NODES).all(|i| get(gateway(i), &host, "/").is_some_and(|a| a.status == 404)),
    );
}

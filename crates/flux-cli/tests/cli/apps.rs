//! Apps run for real on a four-node devnet with the Docker driver: a
//! 3-instance, 2-component app is deployed and every instance answers on
//! its node's own address, while the node that hosts none answers on the
//! app's ports through its gateway's TCP forwarding; `flux app status`
//! shows where each runs; the
//! owner reads every instance's logs (past and followed) and stats, another
//! key is refused, and a signed request is not accepted twice; the
//! components reach each other by name; a
//! container killed by hand is restarted; a devnet stopped and started
//! again adopts its containers (same container ids); removing the app
//! leaves no container, network or volume. Without a Docker engine the test
//! says SKIPPED and passes.
//!
//! The devnet lives on 127.0.41.x; the image is the example image built by
//! `images/build.sh` (no registry needed).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;

use flux_types::SecretKey;
use flux_types::request_auth::{RequestAuth, RequestTarget, random_nonce};

use super::{Flux, Process, Setup, Whoami, docker, wait_for, whoami};

/// Nodes of the devnet (the default of `flux devnet up`).
const NODES: u8 = 4;
/// Published port of the `web` component.
const WEB_PORT: u16 = 31100;
/// Published port of the `api` component.
const API_PORT: u16 = 31101;
/// How long the app gets to come up, be restarted or go away.
const APP_TIMEOUT: Duration = Duration::from_secs(90);

fn docker_lines(args: &[&str]) -> BTreeSet<String> {
    docker(args)
        .unwrap_or_default()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// `GET path` on `addr`; the body when the answer is 200.
pub(super) fn http_get(addr: SocketAddr, path: &str) -> Option<String> {
    let timeout = Duration::from_secs(2);
    let mut stream = TcpStream::connect_timeout(&addr, timeout).ok()?;
    stream.set_read_timeout(Some(timeout)).ok()?;
    stream.set_write_timeout(Some(timeout)).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    (head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200")).then(|| body.to_string())
}

fn node_ip(index: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 41, 1 + index)
}

/// The app's containers: `id name`, one per line.
fn containers(app: &str) -> BTreeSet<String> {
    docker_lines(&[
        "ps",
        "-a",
        "--filter",
        &format!("label=flux.app={app}"),
        "--format",
        "{{.ID}} {{.Names}}",
    ])
}

/// What answers on `port` at each node's address: an instance of that node,
/// or one elsewhere through the node's TCP forwarding.
fn answering(port: u16) -> BTreeMap<Ipv4Addr, Whoami> {
    (0..NODES)
        .map(node_ip)
        .filter_map(|ip| {
            let body = http_get(SocketAddr::from((ip, port)), "/whoami")?;
            Some((ip, whoami(&body)?))
        })
        .collect()
}

/// The instances that answer on `port` at some node's address, each with
/// the node it runs on.
fn instances(port: u16) -> BTreeMap<String, String> {
    answering(port)
        .into_values()
        .map(|w| (w.instance, w.node))
        .collect()
}

/// Three instances answer on `port`, each on its own node.
fn three_on_their_own_nodes(port: u16) -> bool {
    let instances = instances(port);
    let nodes: BTreeSet<&String> = instances.values().collect();
    instances.len() == 3 && nodes.len() == 3
}

/// dev0 (the owner) reads the logs of all six component instances (past
/// and followed) and their stats; dev1 is refused, with both addresses in
/// the message.
fn owner_reads_logs_and_stats(flux: &Flux, app: &str, owner: &str) {
    let logs = flux.ok(&["app", "logs", app]);
    for instance in 0..3 {
        for component in ["web", "api"] {
            let line = format!("#{instance}/{component} | serving {app}/{component}#{instance} on");
            assert!(logs.contains(&line), "no `{line}` in:\n{logs}");
        }
    }
    let lines = flux.json(&["app", "logs", app, "--component", "api", "--tail", "5"]);
    let lines = lines.as_array().expect("log lines");
    assert!(lines.len() >= 3, "{lines:?}");
    assert!(lines.iter().all(|l| l["component"] == "api"), "{lines:?}");

    // --follow streams from the three nodes at once and stays open.
    let mut follow = flux
        .command(&["app", "logs", app, "--follow", "--component", "web"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn flux app logs --follow");
    let stdout = follow.stdout.take().expect("piped stdout");
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead as _;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if sender.send(line).is_err() {
                return;
            }
        }
    });
    let mut seen = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.len() < 3 && Instant::now() < deadline {
        if let Ok(line) = receiver.recv_timeout(Duration::from_millis(200)) {
            for instance in 0..3 {
                if line.contains(&format!("serving {app}/web#{instance} on")) {
                    seen.insert(instance);
                }
            }
        }
    }
    let still_following = follow.try_wait().expect("poll the follower").is_none();
    let _ = follow.kill();
    let _ = follow.wait();
    assert_eq!(seen.len(), 3, "followed lines from instances {seen:?} only");
    assert!(still_following, "`flux app logs --follow` ended by itself");

    let stats = flux.json(&["app", "stats", app]);
    let instances = stats["instances"].as_array().expect("stats instances");
    assert_eq!(instances.len(), 6, "{stats:#}");
    for instance in instances {
        let reading = &instance["stats"];
        assert!(reading["memory_bytes"].as_u64() > Some(0), "{stats:#}");
        assert_eq!(
            reading["memory_limit_bytes"].as_u64(),
            Some(100 * 1024 * 1024),
            "{stats:#}"
        );
        assert!(reading["cpu_percent"].as_f64().is_some(), "{stats:#}");
    }
    let table = flux.ok(&["app", "stats", app]);
    assert!(table.contains("MEMORY (USED / LIMIT)"), "{table}");

    let dev1 = flux.json(&["keys", "show", "dev1"])["address"]
        .as_str()
        .expect("dev1's address")
        .to_string();
    let refused = flux.fails(&["app", "logs", app, "--from", "dev1"]);
    assert!(
        refused.contains(&format!(
            "the node refused: only the owner of {app} ({owner}) may read its logs; you signed with {dev1}"
        )),
        "{refused}"
    );
    let refused = flux.fails(&["app", "stats", app, "--from", "dev1"]);
    assert!(refused.contains("may read its stats"), "{refused}");
}

/// A request signed by the owner, sent twice as it is to a hosting node:
/// answered the first time, refused the second.
fn signed_requests_are_not_replayed(status: &Value) {
    let endpoint: SocketAddr = status["placements"][0]["node_endpoint"]
        .as_str()
        .expect("a hosting node's endpoint")
        .parse()
        .expect("endpoint is HOST:PORT");
    let chain_id = http_get(endpoint, "/api/v1/status")
        .and_then(|body| serde_json::from_str::<Value>(&body).ok())
        .and_then(|v| v["chain_id"].as_str().map(str::to_string))
        .expect("the node's chain id");
    let app = status["spec"]["name"]
        .as_str()
        .or(status["name"].as_str())
        .expect("app name")
        .to_string();
    let path = format!("/api/v1/apps/{app}/stats");
    let target = RequestTarget {
        chain_id: &chain_id,
        method: "GET",
        path_and_query: &path,
        body: b"",
    };
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let auth = RequestAuth::sign(
        &SecretKey::development("dev0"),
        &target,
        now_ms,
        random_nonce(),
    );
    let send = || {
        let mut stream =
            TcpStream::connect_timeout(&endpoint, Duration::from_secs(2)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(15)))
            .unwrap();
        let mut request =
            format!("GET {path} HTTP/1.1\r\nHost: {endpoint}\r\nConnection: close\r\n");
        for (name, value) in auth.headers() {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes()).expect("send");
        let mut response = String::new();
        stream.read_to_string(&mut response).expect("read");
        response
    };
    let first = send();
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    let second = send();
    assert!(second.starts_with("HTTP/1.1 401"), "{second}");
    assert!(second.contains("nonce_replayed"), "{second}");
}

fn spec(app: &str, owner: &str, greeting: &str) -> Value {
    let component = |name: &str, port: u16| {
        serde_json::json!({
            "name": name,
            "description": "the example web server",
            "repotag": "flux-hello:latest",
            "ports": [port],
            "containerPorts": [8080],
            "domains": [""],
            "environmentParameters": [format!("GREETING={greeting}")],
            "commands": [],
            "containerData": "/data",
            "cpu": 0.1,
            "ram": 100,
            "hdd": 1,
            "tiered": false,
            "secrets": "",
            "repoauth": ""
        })
    };
    serde_json::json!({
        "version": 8,
        "name": app,
        "description": "two components, three instances",
        "owner": owner,
        "instances": 3,
        "contacts": [],
        "geolocation": [],
        "expire": 86400,
        "nodes": [],
        "staticip": false,
        "enterprise": "",
        "compose": [component("web", WEB_PORT), component("api", API_PORT)]
    })
}

#[test]
// The test says on its output that it was skipped, and how long a deploy took.
#[allow(clippy::print_stdout)]
fn apps_run_in_containers_on_a_four_node_devnet() {
    if !super::docker_with_example_image() {
        return;
    }

    let setup = Setup::new(node_ip(0));
    let mut devnet = setup.devnet_up();
    let flux = setup.flux.clone();
    // The nodes register themselves and confirm themselves by benchmark;
    // only confirmed nodes get instances.
    let nodes = super::wait_confirmed(&flux, usize::from(NODES), || devnet.logs());
    // Node address -> node id, from its endpoint.
    let node_at: BTreeMap<Ipv4Addr, String> = nodes
        .as_array()
        .expect("node list")
        .iter()
        .filter_map(|n| {
            let endpoint: SocketAddr = n["endpoint"].as_str()?.parse().ok()?;
            let std::net::IpAddr::V4(ip) = endpoint.ip() else {
                return None;
            };
            Some((ip, n["id"].as_str()?.to_string()))
        })
        .collect();
    assert_eq!(node_at.len(), usize::from(NODES), "{nodes:#}");

    let app = format!("apps{}", std::process::id());
    let owner = flux.json(&["keys", "show", "dev0"])["address"]
        .as_str()
        .expect("dev0's address")
        .to_string();
    let spec_path = setup.root.join("app.json");
    std::fs::write(&spec_path, spec(&app, &owner, "hello").to_string()).unwrap();
    let spec_text = spec_path.display().to_string();
    let deployed = Instant::now();
    flux.ok(&["app", "deploy", &spec_text, "--from", "dev0"]);

    // Every instance answers, each on its own node, in both components, and
    // every node's address answers on both ports.
    wait_for(
        "three instances of both components to answer, on every node's address",
        APP_TIMEOUT,
        || format!("{}\n{:?}", devnet.logs(), containers(&app)),
        || {
            three_on_their_own_nodes(WEB_PORT)
                && three_on_their_own_nodes(API_PORT)
                && answering(WEB_PORT).len() == usize::from(NODES)
                && answering(API_PORT).len() == usize::from(NODES)
        },
    );
    println!(
        "deploy to three answering instances: {:?}",
        deployed.elapsed()
    );
    let web = instances(WEB_PORT);
    let ids: BTreeSet<&str> = web.keys().map(String::as_str).collect();
    assert_eq!(ids, BTreeSet::from(["0", "1", "2"]), "{web:?}");
    assert_eq!(containers(&app).len(), 6, "{:?}", containers(&app));
    // A hosting node's address reaches its own instance; the node that hosts
    // none forwards both ports to an instance elsewhere.
    let hosting: BTreeSet<&String> = web.values().collect();
    for port in [WEB_PORT, API_PORT] {
        let answers = answering(port);
        for (ip, node) in &node_at {
            let Some(answer) = answers.get(ip) else {
                panic!("nothing answers on {ip}:{port}: {answers:?}");
            };
            if hosting.contains(node) {
                assert_eq!(&answer.node, node, "{ip}:{port}: {answers:?}");
            } else {
                assert!(
                    answer.node != *node && hosting.contains(&answer.node),
                    "{ip}:{port} hosts none, forwarded to {answer:?}"
                );
            }
        }
    }

    // `flux app status` asks the hosting nodes: six component instances
    // running, on three nodes, each with its published port.
    let status = flux.json(&["app", "status", &app]);
    let live = status["instances"].as_array().expect("instances");
    assert_eq!(live.len(), 6, "{status:#}");
    assert!(live.iter().all(|i| i["phase"] == "running"), "{status:#}");
    let hosts: BTreeSet<&str> = live.iter().filter_map(|i| i["node"].as_str()).collect();
    assert_eq!(hosts.len(), 3, "{status:#}");
    let text = flux.ok(&["app", "status", &app]);
    assert!(text.contains(&format!(":{WEB_PORT}->8080")), "{text}");

    // Logs and stats are the owner's alone.
    owner_reads_logs_and_stats(&flux, &app, &owner);
    signed_requests_are_not_replayed(&status);

    // Components reach each other by name on the app's network.
    let web_containers = docker_lines(&[
        "ps",
        "-q",
        "--filter",
        &format!("label=flux.app={app}"),
        "--filter",
        "label=flux.component=web",
    ]);
    for id in &web_containers {
        let reply =
            docker(&["exec", id, "wget", "-qO-", "http://api:8080/whoami"]).unwrap_or_default();
        assert!(
            reply.starts_with(&format!("{app}/api#")),
            "web container {id} could not reach api by name: {reply:?}"
        );
    }

    // A container killed by hand is restarted.
    let victim = web_containers.first().expect("a web container").clone();
    docker(&["kill", &victim]).expect("docker kill");
    wait_for(
        "the killed container to run again",
        APP_TIMEOUT,
        || devnet.logs(),
        || {
            docker(&["inspect", "-f", "{{.State.Running}}", &victim])
                .is_some_and(|s| s.trim() == "true")
                && three_on_their_own_nodes(WEB_PORT)
        },
    );

    // A devnet stopped and started again adopts its containers.
    let before = containers(&app);
    assert!(devnet.stop(), "the devnet did not stop cleanly");
    drop(devnet);
    let restarted: Process = setup.devnet_up();
    devnet = restarted;
    wait_for(
        "the app to answer after the restart",
        APP_TIMEOUT,
        || devnet.logs(),
        || three_on_their_own_nodes(WEB_PORT) && three_on_their_own_nodes(API_PORT),
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        containers(&app),
        before,
        "a restarted node recreated containers instead of adopting them"
    );

    // Removing the app leaves no container, network or volume.
    flux.ok(&["app", "remove", &app, "--from", "dev0"]);
    wait_for(
        "the app's containers, networks and volumes to go",
        APP_TIMEOUT,
        || devnet.logs(),
        || {
            containers(&app).is_empty()
                && docker_lines(&["network", "ls", "--format", "{{.Name}}"])
                    .iter()
                    .all(|n| !n.contains(&app))
                && docker_lines(&["volume", "ls", "--format", "{{.Name}}"])
                    .iter()
                    .all(|n| !n.contains(&app))
        },
    );
    assert!(answering(WEB_PORT).is_empty());
}

//! Apps run for real on a four-node devnet with the Docker driver: a
//! 3-instance, 2-component app is deployed and every instance answers on
//! its node's own address; `flux app status` shows where each runs; the
//! components reach each other by name; a
//! container killed by hand is restarted; a devnet stopped and started
//! again adopts its containers (same container ids); removing the app
//! leaves no container, network or volume. Without a Docker engine the test
//! says SKIPPED and passes.
//!
//! The devnet lives on 127.0.41.x; the image is the example image built by
//! `images/build.sh` (no registry needed).

use std::collections::BTreeSet;
use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{Process, Setup, repo_root, wait_for};

/// Nodes of the devnet (the default of `flux devnet up`).
const NODES: u8 = 4;
/// Published port of the `web` component.
const WEB_PORT: u16 = 31100;
/// Published port of the `api` component.
const API_PORT: u16 = 31101;
/// How long the app gets to come up, be restarted or go away.
const APP_TIMEOUT: Duration = Duration::from_secs(90);

fn docker(args: &[&str]) -> Option<String> {
    let output = Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}

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
fn http_get(addr: SocketAddr, path: &str) -> Option<String> {
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

/// The node addresses where `web` answers, with what it says.
fn answering(port: u16) -> Vec<(Ipv4Addr, String)> {
    (0..NODES)
        .map(node_ip)
        .filter_map(|ip| http_get(SocketAddr::from((ip, port)), "/whoami").map(|body| (ip, body)))
        .collect()
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
    if docker(&["info", "--format", "{{.ServerVersion}}"]).is_none() {
        println!("SKIPPED: no Docker engine answers");
        return;
    }
    let built = Command::new(repo_root().join("images/build.sh"))
        .stdin(Stdio::null())
        .output()
        .expect("run images/build.sh");
    assert!(
        built.status.success(),
        "images/build.sh failed:\n{}",
        String::from_utf8_lossy(&built.stderr)
    );

    let setup = Setup::new(node_ip(0));
    let mut devnet = setup.devnet_up();
    let flux = setup.flux.clone();
    wait_for(
        "the four nodes to register",
        APP_TIMEOUT,
        || devnet.logs(),
        || {
            let run = flux.run(&["--json", "node", "list"]);
            run.success
                && serde_json::from_str::<Value>(&run.stdout)
                    .ok()
                    .and_then(|v| v.as_array().map(Vec::len))
                    == Some(usize::from(NODES))
        },
    );

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

    // Every instance answers, each on its own node, in both components.
    wait_for(
        "three instances of both components to answer",
        APP_TIMEOUT,
        || format!("{}\n{:?}", devnet.logs(), containers(&app)),
        || answering(WEB_PORT).len() == 3 && answering(API_PORT).len() == 3,
    );
    println!(
        "deploy to three answering instances: {:?}",
        deployed.elapsed()
    );
    let web = answering(WEB_PORT);
    let instances: BTreeSet<&str> = web
        .iter()
        .map(|(_, body)| {
            body.split_once('#')
                .and_then(|(_, rest)| rest.split_once('@'))
                .map(|(instance, _)| instance)
                .unwrap_or("")
        })
        .collect();
    assert_eq!(instances, BTreeSet::from(["0", "1", "2"]), "{web:?}");
    assert_eq!(containers(&app).len(), 6, "{:?}", containers(&app));

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
                && answering(WEB_PORT).len() == 3
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
        || answering(WEB_PORT).len() == 3 && answering(API_PORT).len() == 3,
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

//! A rolling update for real: a 3-instance app runs in Docker on a
//! four-node devnet, `flux app update` changes its greeting, and a client
//! polling the published port on every node's address every 100 ms (the
//! hosting nodes' own instances, and the node that hosts none through its
//! gateway's TCP forwarding) never finds the app without an answering
//! instance. The instances switch one at a time, in slot order, and finally
//! all three answer with the new greeting.
//! Without a Docker engine the test says SKIPPED and passes.
//!
//! The devnet lives on 127.0.43.x; the image is the example image built by
//! `images/build.sh` (no registry needed).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{AppLeftovers, Setup, wait_confirmed, wait_for};

/// Nodes of the devnet (the default of `flux devnet up`).
const NODES: u8 = 4;
/// Published port of the app.
const PORT: u16 = 31300;
/// Time between two polls of the client.
const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// How long the app gets to come up, and the update to reach every instance.
const APP_TIMEOUT: Duration = Duration::from_secs(120);

fn node_ip(index: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 43, 1 + index)
}

/// What one instance said: its slot and its greeting.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Answer {
    instance: u32,
    greeting: String,
}

/// `GET /` on `addr` with short timeouts; the instance and greeting its
/// page names when it answers 200.
fn ask(addr: SocketAddr) -> Option<Answer> {
    let timeout = Duration::from_millis(800);
    let mut stream = TcpStream::connect_timeout(&addr, timeout).ok()?;
    stream.set_read_timeout(Some(timeout)).ok()?;
    stream.set_write_timeout(Some(timeout)).ok()?;
    write!(
        stream,
        "GET / HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
        return None;
    }
    // The example page: `<h1>GREETING from APP</h1>` and `instance <b>K</b>`.
    let greeting = body.split_once("<h1>")?.1.split_once(" from ")?.0;
    let instance = body.split_once("instance <b>")?.1.split_once("</b>")?.0;
    Some(Answer {
        instance: instance.parse().ok()?,
        greeting: greeting.to_string(),
    })
}

/// One poll of the published port on every node's address: what answered,
/// by node address. A node that hosts no instance forwards to one elsewhere,
/// so one instance may answer twice.
fn poll() -> BTreeMap<Ipv4Addr, Answer> {
    (0..NODES)
        .map(node_ip)
        .filter_map(|ip| Some((ip, ask(SocketAddr::from((ip, PORT)))?)))
        .collect()
}

/// Whether all three instances answered in one poll, all with `greeting`.
fn all_three_on(answers: &BTreeMap<Ipv4Addr, Answer>, greeting: &str) -> bool {
    let instances: BTreeSet<u32> = answers.values().map(|a| a.instance).collect();
    instances.len() == 3 && answers.values().all(|a| a.greeting == greeting)
}

fn spec(app: &str, owner: &str, greeting: &str) -> Value {
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
            "environmentParameters": [format!("GREETING={greeting}")],
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

#[test]
// The test says on its output that it was skipped, and what it measured.
#[allow(clippy::print_stdout)]
fn an_update_rolls_one_instance_at_a_time_and_the_app_always_answers() {
    if !super::docker_with_example_image() {
        return;
    }

    let app = format!("roll{}", std::process::id());
    // Dropped after the devnet, whose nodes would otherwise start them again.
    let _leftovers = AppLeftovers::always(&app);
    let setup = Setup::new(node_ip(0));
    let devnet = setup.devnet_up();
    let flux = setup.flux.clone();
    // The nodes register and confirm themselves by benchmark; only
    // confirmed nodes get instances.
    wait_confirmed(&flux, usize::from(NODES), || devnet.logs());

    let owner = flux.json(&["keys", "show", "dev0"])["address"]
        .as_str()
        .expect("dev0's address")
        .to_string();
    let spec_path = setup.root.join("app.json");
    std::fs::write(&spec_path, spec(&app, &owner, "v1").to_string()).unwrap();
    let spec_text = spec_path.display().to_string();
    flux.ok(&["app", "deploy", &spec_text, "--from", "dev0"]);
    wait_for(
        "three instances to answer with v1",
        APP_TIMEOUT,
        || devnet.logs(),
        || all_three_on(&poll(), "v1"),
    );

    // The client: every node's address, every 100 ms, until it finds
    // all three instances on v2 (or is stopped).
    let stop = Arc::new(AtomicBool::new(false));
    let client = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut rounds = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                let started = Instant::now();
                let answers = poll();
                let done = all_three_on(&answers, "v2");
                rounds.push((started, answers));
                if done {
                    break;
                }
                std::thread::sleep(POLL_INTERVAL.saturating_sub(started.elapsed()));
            }
            rounds
        })
    };

    std::fs::write(&spec_path, spec(&app, &owner, "v2").to_string()).unwrap();
    let updated = Instant::now();
    flux.ok(&["app", "update", &spec_text, "--from", "dev0"]);
    // While it rolls, the app shows how far it has come.
    let shown = flux.json(&["app", "status", &app]);
    let interval_ms = shown["rollout"]["interval_ms"].as_u64();
    assert!(interval_ms.is_some(), "no rollout in progress: {shown:#}");
    wait_for(
        "three instances to answer with v2",
        APP_TIMEOUT,
        || devnet.logs(),
        || all_three_on(&poll(), "v2"),
    );
    let rolled = updated.elapsed();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !client.is_finished() && Instant::now() < deadline {
        std::thread::sleep(POLL_INTERVAL);
    }
    stop.store(true, Ordering::SeqCst);
    let rounds = client.join().expect("the polling client");

    // The app as a whole never failed: every round found an instance.
    let failed: Vec<_> = rounds
        .iter()
        .filter(|(_, answers)| answers.is_empty())
        .map(|(at, _)| at.duration_since(updated))
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} polls found no instance answering, at {failed:?} after the update",
        failed.len(),
        rounds.len()
    );

    // Each instance switched once, in slot order, and never went back.
    let mut switched: BTreeMap<u32, usize> = BTreeMap::new();
    for (round, (_, answers)) in rounds.iter().enumerate() {
        for answer in answers.values() {
            match (answer.greeting.as_str(), switched.get(&answer.instance)) {
                ("v2", None) => {
                    switched.insert(answer.instance, round);
                }
                ("v1", Some(at)) => panic!(
                    "instance {} answered v1 in round {round} after v2 in round {at}",
                    answer.instance
                ),
                _ => {}
            }
        }
    }
    let order: Vec<u32> = {
        let mut by_round: Vec<(usize, u32)> = switched.iter().map(|(i, r)| (*r, *i)).collect();
        by_round.sort();
        by_round.into_iter().map(|(_, instance)| instance).collect()
    };
    assert_eq!(order, [0, 1, 2], "switch rounds by instance: {switched:?}");
    let rounds_at = |instance: u32| switched[&instance];
    assert!(
        rounds_at(0) < rounds_at(1) && rounds_at(1) < rounds_at(2),
        "two instances switched in the same poll: {switched:?}"
    );
    // Old and new answered side by side: the update was rolled, not swapped.
    assert!(
        rounds.iter().any(|(_, answers)| {
            answers.values().any(|a| a.greeting == "v1")
                && answers.values().any(|a| a.greeting == "v2")
        }),
        "no poll saw v1 and v2 together"
    );
    let finished = flux.json(&["app", "status", &app]);
    assert!(finished["rollout"].is_null(), "{finished:#}");
    println!(
        "rolled 3 instances ({} ms apart) in {rolled:?}; {} polls, none failed",
        interval_ms.unwrap_or_default(),
        rounds.len()
    );

    flux.ok(&["app", "remove", &app, "--from", "dev0"]);
    wait_for(
        "the app to stop answering",
        APP_TIMEOUT,
        || devnet.logs(),
        || poll().is_empty(),
    );
}

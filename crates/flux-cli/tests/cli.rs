//! Runs the real `flux` binary with a temporary home: the keystore, a devnet
//! end to end (nodes that confirm themselves by benchmark, an app run as
//! processes by the exec driver), the errors a user can cause, a node killed
//! with SIGKILL under load, and four-node networks of node processes:
//! agreement, a transfer visible everywhere, a crashed validator that catches
//! up, and a halt with two of four down that resumes when one returns.
//!
//! Each test that starts nodes uses its own range of loopback addresses
//! (127.0.N.x, N distinct per test) and a free API port, so tests run in
//! parallel without meeting. Every process a test starts is owned by a guard
//! that stops it when the test ends, failed or not.

use std::net::{Ipv4Addr, SocketAddrV4, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

#[path = "cli/apps.rs"]
mod apps;
#[path = "cli/containers.rs"]
mod containers;
#[path = "cli/failover.rs"]
mod failover;
#[path = "cli/gateway.rs"]
mod gateway;
#[path = "cli/rolling.rs"]
mod rolling;

const FLUX: &str = env!("CARGO_BIN_EXE_flux");
/// How long a node gets to answer after it was started.
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// Whether the Docker tests can run: a Docker engine answers, and then the
/// example image is built (`images/build.sh`). Without an engine a test says
/// so on its output and passes; a failed build fails it.
#[allow(clippy::print_stdout)]
fn docker_with_example_image() -> bool {
    let engine = Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .stdin(Stdio::null())
        .output()
        .is_ok_and(|output| output.status.success());
    if !engine {
        println!("SKIPPED: no Docker engine answers");
        return false;
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
    true
}

/// `docker ARGS`: its standard output, when it succeeds.
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

/// Removes an app's containers, networks and volumes when dropped: always,
/// or only when the test failed (one that passed removed the app itself).
struct AppLeftovers {
    app: String,
    always: bool,
}

impl AppLeftovers {
    /// Cleans up when the test ends, passed or failed.
    fn always(app: &str) -> AppLeftovers {
        AppLeftovers {
            app: app.to_string(),
            always: true,
        }
    }

    /// Cleans up only after a failure, so that it leaves nothing holding a
    /// port or a subnet.
    fn on_failure(app: &str) -> AppLeftovers {
        AppLeftovers {
            app: app.to_string(),
            always: false,
        }
    }
}

impl Drop for AppLeftovers {
    fn drop(&mut self) {
        if !self.always && !std::thread::panicking() {
            return;
        }
        let label = format!("label=flux.app={}", self.app);
        let ids = docker(&["ps", "-aq", "--filter", &label]).unwrap_or_default();
        for id in ids.split_whitespace() {
            docker(&["rm", "-f", "-v", id]);
        }
        for kind in ["network", "volume"] {
            let names = docker(&[kind, "ls", "--format", "{{.Name}}"]).unwrap_or_default();
            for name in names.lines().filter(|n| n.contains(&self.app)) {
                docker(&[kind, "rm", name]);
            }
        }
    }
}

/// Who answered the example app's `/whoami`
/// (`app/component#INSTANCE@NODE`): the instance and its node.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Whoami {
    instance: String,
    node: String,
}

fn whoami(body: &str) -> Option<Whoami> {
    let (rest, node) = body.trim().split_once('@')?;
    let instance = rest.split_once('#')?.1;
    Some(Whoami {
        instance: instance.to_string(),
        node: node.to_string(),
    })
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn example(name: &str) -> String {
    repo_root()
        .join("examples")
        .join(name)
        .display()
        .to_string()
}

/// A port that was free a moment ago on `ip`.
fn free_port(ip: Ipv4Addr) -> u16 {
    let listener = TcpListener::bind(SocketAddrV4::new(ip, 0)).expect("bind a free port");
    listener.local_addr().unwrap().port()
}

/// The result of one run of the binary.
struct Run {
    success: bool,
    stdout: String,
    stderr: String,
}

/// The `flux` binary with a home and a node.
#[derive(Clone)]
struct Flux {
    home: PathBuf,
    node: String,
}

impl Flux {
    fn new(home: &Path, node: &str) -> Flux {
        Flux {
            home: home.to_path_buf(),
            node: node.to_string(),
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(FLUX);
        command
            .env_remove("FLUX_HOME")
            .env_remove("FLUX_NODE")
            .env_remove("RUST_LOG")
            .arg("--home")
            .arg(&self.home)
            .arg("--node")
            .arg(&self.node)
            .args(args)
            .stdin(Stdio::null());
        command
    }

    fn run(&self, args: &[&str]) -> Run {
        let output = self.command(args).output().expect("run flux");
        Run {
            success: output.status.success(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Runs a command that must succeed; returns its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let run = self.run(args);
        assert!(
            run.success,
            "`flux {}` failed:\n{}{}",
            args.join(" "),
            run.stdout,
            run.stderr
        );
        run.stdout
    }

    /// Runs a command with `--json` that must succeed; returns its parsed output.
    fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let stdout = self.ok(&all);
        serde_json::from_str(&stdout).unwrap_or_else(|e| {
            panic!(
                "`flux {}` printed invalid JSON ({e}):\n{stdout}",
                all.join(" ")
            )
        })
    }

    /// Runs a command that must fail; returns its stderr.
    fn fails(&self, args: &[&str]) -> String {
        let run = self.run(args);
        assert!(
            !run.success,
            "`flux {}` should have failed:\n{}",
            args.join(" "),
            run.stdout
        );
        run.stderr
    }

    fn balance(&self, who: &str) -> String {
        self.json(&["wallet", "balance", who])["balance"]
            .as_str()
            .expect("balance is a string")
            .to_string()
    }

    /// Polls `flux chain status` until the node answers; returns the status.
    fn wait_for_node(&self, process: &mut Process) -> Value {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let run = self.run(&["--json", "chain", "status"]);
            if run.success {
                return serde_json::from_str(&run.stdout).expect("status is JSON");
            }
            if let Ok(Some(status)) = process.child.try_wait() {
                panic!(
                    "{} exited ({status}) before its node answered:\n{}",
                    process.name,
                    process.logs()
                );
            }
            assert!(
                Instant::now() < deadline,
                "no node answered at {} within {START_TIMEOUT:?}: {}\n{}",
                self.node,
                run.stderr,
                process.logs()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// A process started by a test; stopped (SIGTERM, then SIGKILL) when dropped.
struct Process {
    name: String,
    child: Child,
    log: PathBuf,
    /// Extra logs shown when a test fails.
    node_logs: Vec<PathBuf>,
}

impl Process {
    fn spawn(
        name: &str,
        flux: &Flux,
        args: &[&str],
        log: PathBuf,
        node_logs: Vec<PathBuf>,
    ) -> Process {
        Process::spawn_with(name, flux, args, &[], log, node_logs)
    }

    /// [`Process::spawn`] with extra environment variables.
    fn spawn_with(
        name: &str,
        flux: &Flux,
        args: &[&str],
        env: &[(&str, &str)],
        log: PathBuf,
        node_logs: Vec<PathBuf>,
    ) -> Process {
        let file = std::fs::File::create(&log).expect("create log");
        let child = flux
            .command(args)
            .envs(env.iter().copied())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .expect("spawn flux");
        Process {
            name: name.to_string(),
            child,
            log,
            node_logs,
        }
    }

    fn logs(&self) -> String {
        let mut text = String::new();
        for path in std::iter::once(&self.log).chain(&self.node_logs) {
            let content = std::fs::read_to_string(path).unwrap_or_default();
            let tail: Vec<&str> = content.lines().rev().take(40).collect();
            text.push_str(&format!("--- {} ---\n", path.display()));
            for line in tail.into_iter().rev() {
                text.push_str(line);
                text.push('\n');
            }
        }
        text
    }

    /// Sends SIGTERM and waits for a clean exit; true if it exited successfully.
    fn stop(&mut self) -> bool {
        if let Ok(Some(status)) = self.child.try_wait() {
            return status.success();
        }
        // SAFETY: kill(2) on the id of our own child, not yet reaped.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(40);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        false
    }

    /// SIGKILL: no chance to clean up.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    // A failing test shows the logs of the processes it started: the test
    // harness captures stderr and prints it only for failures.
    #[allow(clippy::print_stderr)]
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("logs of {}:\n{}", self.name, self.logs());
        }
        self.stop();
    }
}

/// A home directory with a devnet on its own loopback address.
struct Setup {
    _temp: tempfile::TempDir,
    root: PathBuf,
    flux: Flux,
    ip: Ipv4Addr,
    port: u16,
}

impl Setup {
    fn new(ip: Ipv4Addr) -> Setup {
        let temp = tempfile::tempdir().expect("temp dir");
        let root = temp.path().to_path_buf();
        let port = free_port(ip);
        let flux = Flux::new(&root.join("home"), &format!("http://{ip}:{port}"));
        Setup {
            _temp: temp,
            root,
            flux,
            ip,
            port,
        }
    }

    fn devnet_dir(&self) -> PathBuf {
        self.root.join("devnet")
    }

    fn devnet_up(&self) -> Process {
        self.devnet_up_with(&[])
    }

    /// `flux devnet up` with extra environment variables (`FLUX_DRIVER`).
    fn devnet_up_with(&self, env: &[(&str, &str)]) -> Process {
        let dir = self.devnet_dir();
        let (dir_text, ip, port) = (
            dir.display().to_string(),
            self.ip.to_string(),
            self.port.to_string(),
        );
        let mut process = Process::spawn_with(
            "flux devnet up",
            &self.flux,
            &[
                "devnet",
                "up",
                "--dir",
                &dir_text,
                "--api-host",
                &ip,
                "--api-port",
                &port,
            ],
            env,
            self.root
                .join(format!("devnet-up-{}.log", std::process::id())),
            vec![dir.join("node-0").join("node.log")],
        );
        self.flux.wait_for_node(&mut process);
        process
    }
}

#[test]
fn keystore_keeps_keys_private_and_refuses_mistakes() {
    let temp = tempfile::tempdir().unwrap();
    let flux = Flux::new(&temp.path().join("home"), "http://127.0.0.1:9");

    let created = flux.json(&["keys", "new", "alice"]);
    let address = created["address"].as_str().unwrap().to_string();
    assert!(address.starts_with("flux1"), "{created}");
    assert!(
        created.get("seed").is_none(),
        "keys new must not print the seed"
    );

    let human = flux.ok(&["keys", "list"]);
    assert!(
        human.contains("alice") && human.contains(&address),
        "{human}"
    );
    let listed = flux.json(&["keys", "list"]);
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["address"], address.as_str());

    let shown = flux.json(&["keys", "show", "alice"]);
    assert_eq!(shown["address"], address.as_str());
    assert!(
        shown.get("seed").is_none(),
        "keys show printed the seed without --secret"
    );
    assert!(!flux.ok(&["keys", "show", "alice"]).contains("seed"));
    let secret = flux.json(&["keys", "show", "alice", "--secret"]);
    assert_eq!(secret["seed"].as_str().unwrap().len(), 64);

    use std::os::unix::fs::PermissionsExt;
    let keys = temp.path().join("home").join("keys");
    let file_mode = std::fs::metadata(keys.join("alice.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(file_mode & 0o777, 0o600, "key file mode");
    let dir_mode = std::fs::metadata(&keys).unwrap().permissions().mode();
    assert_eq!(dir_mode & 0o777, 0o700, "keystore mode");

    let error = flux.fails(&["keys", "new", "alice"]);
    assert!(error.contains("already exists"), "{error}");
    assert_eq!(
        flux.json(&["keys", "show", "alice"])["address"],
        address.as_str(),
        "overwritten"
    );

    for bad in ["a/b", "_x", "flux1abc", "with space"] {
        let error = flux.fails(&["keys", "new", bad]);
        assert!(
            error.contains("key name") || error.contains("looks like an address"),
            "{bad}: {error}"
        );
    }
    let error = flux.fails(&["keys", "show", "bob"]);
    assert!(
        error.contains("no key named 'bob'") && error.contains("alice"),
        "{error}"
    );

    // Machine-readable errors too.
    let run = flux.run(&["--json", "keys", "show", "bob"]);
    assert!(!run.success);
    let error: Value = serde_json::from_str(run.stderr.trim()).expect("error is JSON");
    assert!(error["error"].as_str().unwrap().contains("bob"));
}

#[test]
fn errors_without_a_node_are_clear() {
    let temp = tempfile::tempdir().unwrap();
    let flux = Flux::new(&temp.path().join("home"), "http://127.0.0.1:9");

    let error = flux.fails(&["chain", "status"]);
    assert!(
        error.contains("http://127.0.0.1:9") && error.contains("flux devnet up"),
        "{error}"
    );
    flux.ok(&["keys", "new", "alice"]);
    let error = flux.fails(&["wallet", "balance", "alice"]);
    assert!(
        error.contains("cannot reach the node at http://127.0.0.1:9"),
        "{error}"
    );

    let error = flux.fails(&["wallet", "balance"]);
    assert!(
        error.contains("name a key or an address") && error.contains("alice"),
        "{error}"
    );

    // A typo in an address is caught by its checksum.
    let address = flux.json(&["keys", "show", "alice"])["address"]
        .as_str()
        .unwrap()
        .to_string();
    let mut typo: Vec<char> = address.chars().collect();
    let i = typo.len() - 2;
    typo[i] = if typo[i] == 'q' { 'p' } else { 'q' };
    let typo: String = typo.into_iter().collect();
    let error = flux.fails(&["wallet", "balance", &typo]);
    assert!(
        error.contains("not a valid address") && error.contains("checksum"),
        "{error}"
    );

    // Validation and pricing work offline, against the devnet defaults, and say so.
    let run = flux.run(&["app", "validate", &example("hello.json")]);
    assert!(run.success, "{}", run.stderr);
    assert!(run.stderr.contains("devnet defaults"), "{}", run.stderr);
    let quote = flux.json(&["app", "price", &example("hello.toml"), "--months", "2"]);
    assert_eq!(quote["total"], "1.10400000", "{quote}");

    // Both example forms describe the same app.
    let json_spec = flux.json(&["app", "validate", &example("hello.json")])["spec"].clone();
    let toml_spec = flux.json(&["app", "validate", &example("hello.toml")])["spec"].clone();
    assert_eq!(json_spec, toml_spec);
    assert_eq!(json_spec["name"], "hello");
    assert_eq!(json_spec["instances"], 3);

    let bad = temp.path().join("bad.json");
    let text = std::fs::read_to_string(example("hello.json")).unwrap();
    std::fs::write(&bad, text.replace("\"cpu\": 0.5", "\"cpu\": 0.55")).unwrap();
    let error = flux.fails(&["app", "validate", bad.to_str().unwrap()]);
    assert!(
        error.contains("compose[0].cpu") && error.contains("steps of 0.1"),
        "{error}"
    );
    std::fs::write(&bad, text.replace("[31000]", "[22]")).unwrap();
    let error = flux.fails(&["app", "validate", bad.to_str().unwrap()]);
    assert!(
        error.contains("compose[0].ports") && error.contains("banned"),
        "{error}"
    );
    let error = flux.fails(&["app", "validate", "/nonexistent/spec.json"]);
    assert!(error.contains("/nonexistent/spec.json"), "{error}");

    let error = Flux::new(&flux.home, "localhost:16127").fails(&["chain", "status"]);
    assert!(error.contains("http://"), "{error}");
    let error = flux.fails(&[
        "wallet",
        "send",
        "--from",
        "alice",
        "--to",
        "alice",
        "1.123456789",
    ]);
    assert!(error.contains("8 decimals"), "{error}");
}

#[test]
fn node_benchmark_measures_and_compares_without_a_node() {
    let temp = tempfile::tempdir().unwrap();
    let flux = Flux::new(&temp.path().join("home"), "http://127.0.0.1:1");
    let dir = temp.path().display().to_string();
    let args = [
        "node",
        "benchmark",
        "--dir",
        &dir,
        "--cpu-seconds",
        "1",
        "--disk-mb",
        "8",
    ];
    let mut json = vec!["--json"];
    json.extend_from_slice(&args);
    let run = flux.run(&json);
    assert!(run.success, "{}", run.stderr);
    let report: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(
        report["checks"].as_array().map(Vec::len),
        Some(5),
        "{report}"
    );
    assert!(
        report["report"]["cpu_score"].as_u64().unwrap() > 0,
        "{report}"
    );
    assert!(report["report"]["cores"].as_u64().unwrap() >= 1, "{report}");
    assert_eq!(
        report["passed"], true,
        "the devnet thresholds are tiny: {report}"
    );
    let human = flux.ok(&args);
    assert!(
        human.contains("cpu score") && human.contains("REQUIRED") && human.contains("not sent"),
        "{human}"
    );
    let error = flux.fails(&["node", "benchmark", "--submit"]);
    assert!(error.contains("--from"), "{error}");
    let error = flux.fails(&[
        "node",
        "benchmark",
        "--submit",
        "--from",
        "nobody",
        "--dir",
        &dir,
    ]);
    assert!(error.contains("no key named 'nobody'"), "{error}");
}

#[test]
fn devnet_refuses_what_it_cannot_do() {
    let temp = tempfile::tempdir().unwrap();
    let flux = Flux::new(&temp.path().join("home"), "http://127.0.0.1:9");
    let dir = temp.path().join("devnet");
    let dir_text = dir.display().to_string();

    for nodes in ["0", "65"] {
        let error = flux.fails(&["devnet", "init", "--dir", &dir_text, "--nodes", nodes]);
        assert!(error.contains("1 to 64 nodes"), "{error}");
    }

    // A key named dev0 that is not the development key is never overwritten.
    flux.ok(&["keys", "new", "dev0"]);
    let mine = flux.json(&["keys", "show", "dev0"])["address"].clone();
    let error = flux.fails(&["devnet", "init", "--dir", &dir_text]);
    assert!(
        error.contains("dev0") && error.contains("already exists"),
        "{error}"
    );
    assert!(
        !dir.join("genesis.json").exists(),
        "a refused init wrote a genesis"
    );
    assert_eq!(flux.json(&["keys", "show", "dev0"])["address"], mine);

    let error = flux.fails(&["devnet", "status", "--dir", &dir_text]);
    assert!(
        error.contains("no devnet") && error.contains("devnet up --dir"),
        "{error}"
    );
}

/// Waits until `count` nodes are registered and every one is confirmed
/// (each benchmarks itself once registered); returns `flux node list`.
fn wait_confirmed(flux: &Flux, count: usize, logs: impl Fn() -> String) -> Value {
    let mut nodes = Value::Null;
    wait_for(
        &format!("{count} nodes to confirm themselves by benchmark"),
        START_TIMEOUT,
        logs,
        || {
            let run = flux.run(&["--json", "node", "list"]);
            nodes = serde_json::from_str(&run.stdout).unwrap_or(Value::Null);
            nodes.as_array().is_some_and(|list| {
                list.len() == count && list.iter().all(|n| n["status"] == "confirmed")
            })
        },
    );
    nodes
}

/// The busybox binary the exec driver's example app runs with.
fn busybox() -> PathBuf {
    ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("busybox is needed for the exec driver tests: apt-get install busybox-static")
}

/// Kills the processes the exec driver of a devnet's nodes left running
/// (they outlive their node on purpose), also when the test fails.
struct ExecLeftovers(PathBuf);

impl Drop for ExecLeftovers {
    fn drop(&mut self) {
        let Ok(nodes) = std::fs::read_dir(&self.0) else {
            return;
        };
        for node in nodes.flatten() {
            let records = node.path().join("data/exec/instances");
            for record in std::fs::read_dir(records).into_iter().flatten().flatten() {
                let Some(pid) = std::fs::read_to_string(record.path())
                    .ok()
                    .and_then(|text| serde_json::from_str::<Value>(&text).ok())
                    .and_then(|record| record["pid"].as_i64())
                else {
                    continue;
                };
                // Only a process of this devnet (its data directory is in
                // the environment): the pid may have been reused.
                let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
                if String::from_utf8_lossy(&environ).contains(&*self.0.to_string_lossy()) {
                    // SAFETY: kill(2) of a process group this test's nodes started.
                    unsafe {
                        libc::kill(-(pid as libc::pid_t), libc::SIGKILL);
                    }
                }
            }
        }
    }
}

#[test]
fn devnet_end_to_end() {
    let setup = Setup::new(Ipv4Addr::new(127, 0, 1, 1));
    let flux = &setup.flux;
    // Apps run as processes with the exec driver here (the Docker driver
    // has its own devnet test in cli/apps.rs).
    let exec = [("FLUX_DRIVER", "exec")];
    let mut devnet = setup.devnet_up_with(&exec);
    let _leftovers = ExecLeftovers(setup.devnet_dir());
    let node_ips: Vec<Ipv4Addr> = (1..=4).map(|i| Ipv4Addr::new(127, 0, 1, i)).collect();

    // The development keys are in the keystore and funded.
    let keys = flux.json(&["keys", "list"]);
    let names: Vec<&str> = keys
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["dev0", "dev1", "dev2", "dev3"]);
    assert_eq!(flux.balance("dev0"), "1000000.00000000");

    // The four nodes register themselves as hosts and confirm themselves
    // by benchmark, with no manual step.
    let nodes = wait_confirmed(flux, 4, || devnet.logs());
    let devnet_ids: Vec<&str> = nodes
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap())
        .collect();

    let status = flux.json(&["chain", "status"]);
    assert_eq!(status["chain_id"], "flux-devnet");
    assert!(flux.ok(&["chain", "status"]).contains("flux-devnet"));

    // A new key receives FLUX from dev0, by name and by address.
    let alice = flux.json(&["keys", "new", "alice"])["address"]
        .as_str()
        .unwrap()
        .to_string();
    let sent = flux.json(&["wallet", "send", "--from", "dev0", "--to", "alice", "250.5"]);
    assert_eq!(sent["status"], "committed", "{sent}");
    assert!(sent["height"].as_u64().unwrap() >= 1, "{sent}");
    assert_eq!(sent["receipt"]["detail"]["type"], "transfer", "{sent}");
    assert_eq!(flux.balance("alice"), "250.50000000");
    let human = flux.ok(&["wallet", "send", "--from", "dev0", "--to", &alice, "1"]);
    assert!(human.contains("committed at height"), "{human}");
    assert_eq!(flux.balance(&alice), "251.50000000");
    assert!(
        flux.ok(&["wallet", "balance", "alice"])
            .contains("251.50 FLUX")
    );

    // The block holds the transfer.
    let height = sent["height"].as_u64().unwrap().to_string();
    let block = flux.json(&["chain", "block", &height]);
    let hashes: Vec<&str> = block["txs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["hash"].as_str().unwrap())
        .collect();
    assert!(hashes.contains(&sent["hash"].as_str().unwrap()), "{block}");
    assert!(flux.ok(&["chain", "block", &height]).contains("transfer"));
    let tx = flux.json(&["chain", "tx", sent["hash"].as_str().unwrap()]);
    assert_eq!(tx["status"], "committed");
    let error = flux.fails(&["chain", "block", "999999"]);
    assert!(error.contains("999999"), "{error}");

    // Mistakes are refused with a reason and change nothing.
    let error = flux.fails(&["wallet", "send", "--from", "alice", "--to", "dev0", "1000"]);
    assert!(error.contains("insufficient funds"), "{error}");
    let mut typo: Vec<char> = alice.chars().collect();
    let i = typo.len() - 3;
    typo[i] = if typo[i] == 'q' { 'p' } else { 'q' };
    let typo: String = typo.into_iter().collect();
    let error = flux.fails(&["wallet", "send", "--from", "dev0", "--to", &typo, "1"]);
    assert!(error.contains("checksum"), "{error}");
    let error = flux.fails(&["wallet", "send", "--from", "nobody", "--to", "alice", "1"]);
    assert!(
        error.contains("no key named 'nobody'") && error.contains("dev0"),
        "{error}"
    );
    assert_eq!(flux.balance("alice"), "251.50000000");

    // Apps: price, an invalid spec, an underpaid deploy, then a real one.
    let hello = example("hello.json");
    let quote = flux.json(&["app", "price", &hello]);
    assert_eq!(quote["total"], "0.55200000", "{quote}");
    assert!(flux.ok(&["app", "price", &hello]).contains("0.552 FLUX"));

    let bad = setup.root.join("bad.json");
    let text = std::fs::read_to_string(&hello).unwrap();
    std::fs::write(&bad, text.replace("\"ram\": 300", "\"ram\": 350")).unwrap();
    let error = flux.fails(&["app", "deploy", bad.to_str().unwrap(), "--from", "alice"]);
    assert!(
        error.contains("compose[0].ram") && error.contains("steps of 100"),
        "{error}"
    );

    let error = flux.fails(&[
        "app",
        "deploy",
        &hello,
        "--from",
        "alice",
        "--max-payment",
        "0.5",
    ]);
    assert!(
        error.contains("price is 0.552 FLUX for 1 month") && error.contains("you paid 0.50"),
        "{error}"
    );
    assert_eq!(
        flux.balance("alice"),
        "251.50000000",
        "a refused deploy changed the balance"
    );
    assert_eq!(flux.json(&["app", "list"]).as_array().unwrap().len(), 0);

    // The example app as processes: busybox runs its script (the exec
    // driver ignores the image), serving its pages from the data directory.
    let mut exec_spec: Value = serde_json::from_str(&text).unwrap();
    exec_spec["compose"][0]["commands"] = serde_json::json!([
        busybox().display().to_string(),
        "sh",
        repo_root()
            .join("images/hello/hello.sh")
            .display()
            .to_string(),
    ]);
    exec_spec["compose"][0]["environmentParameters"] =
        serde_json::json!(["GREETING=hello", "WWW_DIR=www"]);
    let hello_exec = setup.root.join("hello-exec.json");
    std::fs::write(&hello_exec, exec_spec.to_string()).unwrap();
    let deployed = flux.json(&[
        "app",
        "deploy",
        hello_exec.to_str().unwrap(),
        "--from",
        "alice",
    ]);
    assert_eq!(deployed["status"], "committed", "{deployed}");
    let detail = &deployed["receipt"]["detail"];
    assert_eq!(detail["type"], "app_registered", "{deployed}");
    assert_eq!(detail["price"], "0.55200000", "{deployed}");
    let expires_at_ms = detail["expires_at_ms"].as_u64().unwrap();

    let apps = flux.json(&["app", "list"]);
    let apps = apps.as_array().unwrap();
    assert_eq!(apps.len(), 1);
    assert_eq!(apps[0]["spec"]["name"], "hello");
    assert_eq!(apps[0]["spec"]["owner"], alice.as_str());
    assert_eq!(apps[0]["expires_at_ms"].as_u64().unwrap(), expires_at_ms);
    let chain_time = flux.json(&["chain", "status"])["time_ms"].as_u64().unwrap();
    assert!(
        expires_at_ms > chain_time + 29 * 24 * 3_600_000,
        "paid for a month"
    );
    let listed = flux.ok(&["app", "list"]);
    assert!(
        listed.contains("hello") && listed.contains("UTC"),
        "{listed}"
    );
    assert!(
        flux.ok(&["app", "status", "hello"])
            .contains("flux-hello:latest")
    );
    let error = flux.fails(&["app", "status", "nosuchapp"]);
    assert!(error.contains("no app named 'nosuchapp'"), "{error}");
    let error = flux.fails(&["app", "deploy", &hello, "--from", "dev2"]);
    assert!(error.contains("already exists"), "{error}");

    // The ledger places the three instances on three of the devnet's
    // confirmed nodes, and each answers there on the app's port (the fourth
    // node forwards the port to one of them): the instances that answer on
    // some node's address, as INSTANCE@NODE.
    let answering = || -> std::collections::BTreeSet<String> {
        node_ips
            .iter()
            .filter_map(|ip| apps::http_get((*ip, 31_000).into(), "/whoami"))
            .filter_map(|body| Some(body.trim().split_once('#')?.1.to_string()))
            .collect()
    };
    wait_for(
        "hello's three instances to answer",
        NETWORK_TIMEOUT,
        || {
            let status = flux.run(&["app", "status", "hello"]);
            format!("{}\n{}{}", devnet.logs(), status.stdout, status.stderr)
        },
        || answering().len() == 3,
    );
    let mut instances: Vec<String> = answering()
        .iter()
        .map(|who| who.split('@').next().unwrap_or("").to_string())
        .collect();
    instances.sort();
    assert_eq!(instances, ["0", "1", "2"], "{:?}", answering());
    let status = flux.json(&["app", "status", "hello"]);
    assert_eq!(status["placed"], 3, "{status}");
    for placement in status["placements"].as_array().unwrap() {
        let node = placement["node"].as_str().unwrap_or("");
        assert!(devnet_ids.contains(&node), "{status}");
    }
    let human = flux.ok(&["app", "status", "hello"]);
    assert!(human.contains("placed: 3 of 3"), "{human}");

    // Nodes: register locks the collateral, deregister unlocks it.
    let endpoint = format!("{}:{}", setup.ip, setup.port);
    let registered = flux.json(&[
        "node",
        "register",
        "--from",
        "alice",
        "--tier",
        "cumulus",
        "--endpoint",
        &endpoint,
        "--region",
        "EU_CZ",
    ]);
    assert_eq!(
        registered["receipt"]["detail"]["type"], "node_registered",
        "{registered}"
    );
    let account = flux.json(&["wallet", "balance", "alice"]);
    assert_eq!(account["locked"], "10.00000000", "{account}");
    // The devnet's four nodes registered themselves as hosts; this is the fifth.
    let nodes = flux.json(&["node", "list"]);
    assert_eq!(nodes.as_array().unwrap().len(), 5, "{nodes}");
    let mine: Vec<_> = nodes
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["owner"] == alice.as_str())
        .collect();
    assert_eq!(mine.len(), 1, "{nodes}");
    assert_eq!(mine[0]["tier"], "cumulus");
    assert!(flux.ok(&["node", "list"]).contains("EU_CZ"));

    // No process runs that node (its key is alice's): `flux node benchmark
    // --submit` measures here and confirms it.
    let scratch = setup.root.join("benchmark");
    std::fs::create_dir_all(&scratch).unwrap();
    let scratch = scratch.display().to_string();
    let benchmark = flux.json(&[
        "node",
        "benchmark",
        "--submit",
        "--from",
        "alice",
        "--dir",
        &scratch,
        "--cpu-seconds",
        "1",
        "--disk-mb",
        "8",
    ]);
    assert_eq!(benchmark["passed"], true, "{benchmark}");
    assert_eq!(benchmark["tier"], "cumulus", "{benchmark}");
    let receipt = &benchmark["submitted"]["receipt"];
    assert_eq!(receipt["detail"]["type"], "node_benchmarked", "{benchmark}");
    assert_eq!(receipt["detail"]["status"], "confirmed", "{benchmark}");
    let nodes = flux.json(&["node", "list"]);
    let mine = nodes
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["owner"] == alice.as_str())
        .expect("alice's node");
    assert_eq!(mine["status"], "confirmed", "{nodes}");
    let error = flux.fails(&[
        "node",
        "register",
        "--from",
        "dev2",
        "--tier",
        "cumulus",
        "--endpoint",
        "nowhere",
        "--region",
        "EU_CZ",
    ]);
    assert!(
        error.contains("--endpoint") && error.contains("HOST:PORT"),
        "{error}"
    );
    flux.json(&["node", "deregister", "--from", "alice"]);
    assert_eq!(
        flux.json(&["wallet", "balance", "alice"])["locked"],
        "0.00000000"
    );

    // The nodes verify each other's work: the hosts of hello's instances
    // are credited with instance-windows their verifiers saw up, and no
    // devnet node counts as down.
    let hosts: Vec<String> = flux.json(&["app", "status", "hello"])["placements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["node"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(hosts.len(), 3, "{hosts:?}");
    let work_of = |id: &str| -> Value {
        apps::http_get(
            (setup.ip, setup.port).into(),
            &format!("/api/v1/nodes/{id}"),
        )
        .and_then(|body| serde_json::from_str::<Value>(&body).ok())
        .map(|node| node["work"].clone())
        .unwrap_or(Value::Null)
    };
    let verified = |work: &Value| {
        ["this_epoch", "last_epoch"]
            .iter()
            .map(|epoch| work[epoch]["verified_windows"].as_u64().unwrap_or(0))
            .sum::<u64>()
    };
    wait_for(
        "verified work on hello's hosts",
        NETWORK_TIMEOUT,
        || {
            let works: Vec<String> = devnet_ids
                .iter()
                .map(|id| format!("{id}: {}", work_of(id)))
                .collect();
            format!("{}\n{}", devnet.logs(), works.join("\n"))
        },
        || {
            hosts.iter().all(|id| verified(&work_of(id)) > 0)
                && devnet_ids.iter().all(|id| work_of(id)["down_windows"] == 0)
        },
    );

    // Rewards and supply add up over several epochs, through one node's
    // API. Wait until the pool has paid the nodes for two epochs.
    let api = |path: &str| -> Value {
        apps::http_get((setup.ip, setup.port).into(), &format!("/api/v1{path}"))
            .and_then(|body| serde_json::from_str::<Value>(&body).ok())
            .unwrap_or(Value::Null)
    };
    let units = |value: &Value| -> u128 {
        let amount: flux_types::Amount = value
            .as_str()
            .and_then(|text| text.parse().ok())
            .unwrap_or_else(|| panic!("not an amount: {value}"));
        u128::from(amount.as_units())
    };
    let mut first_payment: Option<(u64, u128)> = None;
    wait_for(
        "the nodes to be paid for two epochs",
        NETWORK_TIMEOUT,
        || format!("{}\n{}", devnet.logs(), api("/supply")),
        || {
            let supply = api("/supply");
            if !supply["paid_to_nodes"].is_string() {
                return false;
            }
            let paid = units(&supply["paid_to_nodes"]);
            let unpaid = supply["unpaid_epoch"].as_u64().unwrap_or(0);
            match first_payment {
                _ if paid == 0 => false,
                None => {
                    first_payment = Some((unpaid, paid));
                    false
                }
                Some((epoch, before)) => unpaid > epoch && paid > before,
            }
        },
    );
    // Every account that can hold coins here: the dev keys, alice, each
    // node's owner and key (fees go to proposers' keys), the validators and
    // the module accounts, read at one height (the supply's, the same
    // before and after the reads).
    let deadline = Instant::now() + NETWORK_TIMEOUT;
    let (supply, details, accounts) = loop {
        let before = api("/supply");
        let nodes = api("/nodes");
        let details: Vec<Value> = nodes
            .as_array()
            .into_iter()
            .flatten()
            .map(|node| api(&format!("/nodes/{}", node["id"].as_str().unwrap_or(""))))
            .collect();
        let mut addresses: std::collections::BTreeSet<String> = keys
            .as_array()
            .unwrap()
            .iter()
            .map(|key| key["address"].as_str().unwrap().to_string())
            .chain([alice.clone()])
            .chain(flux_ledger::module_accounts().iter().map(|a| a.to_string()))
            .collect();
        for node in nodes.as_array().into_iter().flatten() {
            for field in ["id", "owner"] {
                addresses.extend(node[field].as_str().map(str::to_string));
            }
        }
        for member in api("/committee")["members"]
            .as_array()
            .into_iter()
            .flatten()
        {
            addresses.extend(member["id"].as_str().map(str::to_string));
        }
        let accounts: Vec<Value> = addresses
            .iter()
            .map(|address| api(&format!("/accounts/{address}")))
            .collect();
        let after = api("/supply");
        if before["height"].is_u64() && before["height"] == after["height"] {
            break (after, details, accounts);
        }
        assert!(
            Instant::now() < deadline,
            "no two supply reads at one height: {before} {after}"
        );
    };
    let total = units(&supply["total"]);
    assert_eq!(
        total,
        units(&supply["genesis"]) + units(&supply["issued"]) - units(&supply["burned"]),
        "{supply}"
    );
    assert_eq!(supply["genesis"], "4000000.00000000", "{supply}");
    let held: u128 = accounts
        .iter()
        .map(|account| units(&account["balance"]) + units(&account["locked"]))
        .sum();
    assert_eq!(
        held,
        total,
        "the accounts do not hold the supply: {supply}\n{}",
        Value::Array(accounts.clone())
    );
    let rewards: u128 = details
        .iter()
        .map(|node| units(&node["work"]["rewards_total"]))
        .sum();
    assert_eq!(rewards, units(&supply["paid_to_nodes"]), "{supply}");
    assert!(
        details
            .iter()
            .filter(|node| units(&node["work"]["rewards_total"]) > 0)
            .all(|node| hosts.contains(&node["id"].as_str().unwrap_or("").to_string())),
        "a node that hosts nothing was paid"
    );
    // Into the pool: the issuance and hello's 0.552 FLUX; out: what it paid.
    assert_eq!(
        units(&supply["reward_pool"])
            + units(&supply["paid_to_nodes"])
            + units(&supply["paid_to_treasury"]),
        units(&supply["issued"]) + 55_200_000,
        "{supply}"
    );
    assert_eq!(supply["treasury"], supply["paid_to_treasury"], "{supply}");
    assert!(units(&supply["paid_to_treasury"]) > 0, "{supply}");
    let cli = flux.json(&["chain", "supply"]);
    assert_eq!(
        units(&cli["total"]),
        units(&cli["genesis"]) + units(&cli["issued"]) - units(&cli["burned"]),
        "{cli}"
    );
    assert!(flux.ok(&["chain", "supply"]).contains("paid to nodes"));

    // Only the owner removes an app.
    let error = flux.fails(&["app", "remove", "hello", "--from", "dev0"]);
    assert!(error.contains("owned by"), "{error}");
    let removed = flux.json(&["app", "remove", "hello", "--from", "alice"]);
    assert_eq!(
        removed["receipt"]["detail"]["type"], "app_removed",
        "{removed}"
    );
    assert_eq!(flux.json(&["app", "list"]).as_array().unwrap().len(), 0);
    wait_for(
        "hello's processes to stop",
        NETWORK_TIMEOUT,
        || devnet.logs(),
        || answering().is_empty(),
    );

    // `devnet status` sees the four nodes and their peers; a second `up` on
    // the same directory is refused while it runs.
    let dir = setup.devnet_dir().display().to_string();
    let statuses = flux.json(&["devnet", "status", "--dir", &dir]);
    assert_eq!(statuses.as_array().unwrap().len(), 4, "{statuses}");
    for node in statuses.as_array().unwrap() {
        assert_eq!(node["up"], true, "{statuses}");
        assert!(node["height"].as_u64().unwrap() >= 1, "{statuses}");
    }
    assert!(
        flux.ok(&["devnet", "status", "--dir", &dir])
            .contains("PEERS")
    );
    let error = flux.fails(&["devnet", "up", "--dir", &dir]);
    assert!(error.contains("already answers"), "{error}");

    // Stop cleanly and resume: nothing is lost.
    let balance = flux.balance("alice");
    let height = flux.json(&["chain", "status"])["height"].as_u64().unwrap();
    assert!(
        devnet.stop(),
        "devnet up did not exit cleanly:\n{}",
        devnet.logs()
    );
    drop(devnet);
    let error = flux.fails(&["chain", "status"]);
    assert!(error.contains("cannot reach"), "{error}");
    let error = flux.fails(&["devnet", "up", "--dir", &dir, "--api-port", "1"]);
    assert!(error.contains("not on port 1"), "{error}");

    let _devnet = setup.devnet_up_with(&exec);
    assert_eq!(flux.balance("alice"), balance);
    assert!(flux.json(&["chain", "status"])["height"].as_u64().unwrap() >= height);
    let after = flux.json(&["wallet", "send", "--from", "dev0", "--to", "alice", "1"]);
    assert_eq!(after["status"], "committed", "{after}");
}

/// Kills a node with SIGKILL while transfers are being committed, restarts
/// it with the same configuration, and checks that every transfer reported
/// committed is still there and that the balances add up.
#[test]
fn node_killed_under_load_loses_nothing_committed() {
    let setup = Setup::new(Ipv4Addr::new(127, 0, 2, 1));
    let flux = setup.flux.clone();
    let dir = setup.devnet_dir();
    let (dir_text, ip, port) = (
        dir.display().to_string(),
        setup.ip.to_string(),
        setup.port.to_string(),
    );
    flux.ok(&[
        "devnet",
        "init",
        "--dir",
        &dir_text,
        "--api-host",
        &ip,
        "--api-port",
        &port,
        "--block-interval-ms",
        "100",
        "--nodes",
        "1",
    ]);
    let config = dir.join("node-0").join("config.toml").display().to_string();
    let node_log = dir.join("node-0").join("node.log");
    let start = |round: usize| {
        let mut node = Process::spawn(
            "flux node run",
            &flux,
            &["node", "run", "--config", &config],
            setup.root.join(format!("node-run-{round}.log")),
            vec![],
        );
        node.node_logs = vec![node.log.clone(), node_log.clone()];
        flux.wait_for_node(&mut node);
        node
    };
    let mut node = start(0);
    let bob = flux.json(&["keys", "new", "bob"])["address"]
        .as_str()
        .unwrap()
        .to_string();
    flux.ok(&["keys", "new", "carol"]);

    // Load: dev0 pays bob 1 FLUX at a time and waits for each commit; dev1
    // floods carol without waiting.
    let stop = Arc::new(AtomicBool::new(false));
    let attempted = Arc::new(AtomicUsize::new(0));
    let payer = {
        let (flux, stop, attempted) = (flux.clone(), stop.clone(), attempted.clone());
        std::thread::spawn(move || {
            let mut committed = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                attempted.fetch_add(1, Ordering::SeqCst);
                let run = flux.run(&[
                    "--json",
                    "wallet",
                    "send",
                    "--from",
                    "dev0",
                    "--to",
                    "bob",
                    "1",
                    "--wait-timeout-secs",
                    "20",
                ]);
                if run.success {
                    let value: Value = serde_json::from_str(&run.stdout).expect("send JSON");
                    assert_eq!(value["status"], "committed");
                    committed.push(value);
                }
            }
            committed
        })
    };
    let flooder = {
        let (flux, stop) = (flux.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let _ = flux.run(&[
                    "wallet",
                    "send",
                    "--from",
                    "dev1",
                    "--to",
                    "carol",
                    "0.5",
                    "--no-wait",
                ]);
            }
        })
    };

    // Let some transfers commit, then kill the node without warning.
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut last_height = 0;
    while attempted.load(Ordering::SeqCst) < 25 {
        assert!(
            Instant::now() < deadline,
            "transfers do not get through:\n{}",
            node.logs()
        );
        if let Ok(status) =
            serde_json::from_str::<Value>(&flux.run(&["--json", "chain", "status"]).stdout)
        {
            last_height = last_height.max(status["height"].as_u64().unwrap_or(0));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    node.kill();
    stop.store(true, Ordering::SeqCst);
    let committed = payer.join().expect("payer thread");
    flooder.join().expect("flooder thread");
    let attempted = attempted.load(Ordering::SeqCst) as u64;
    assert!(
        committed.len() >= 5,
        "only {} transfers committed before the kill",
        committed.len()
    );
    for value in &committed {
        last_height = last_height.max(value["height"].as_u64().unwrap());
    }

    // Restart with the same configuration.
    let _node = start(1);
    let status = flux.json(&["chain", "status"]);
    assert!(
        status["height"].as_u64().unwrap() >= last_height,
        "height went back from {last_height} to {}",
        status["height"]
    );
    for value in &committed {
        let hash = value["hash"].as_str().unwrap();
        let tx = flux.json(&["chain", "tx", hash]);
        assert_eq!(tx["status"], "committed", "transfer {hash} was lost: {tx}");
        let height = value["height"].as_u64().unwrap().to_string();
        let block = flux.json(&["chain", "block", &height]);
        assert!(
            block.to_string().contains(hash),
            "block {height} lost transfer {hash}"
        );
    }
    // Every transfer of dev0 went to bob, 1 FLUX each: the nonce counts them.
    let dev0 = flux.json(&["wallet", "balance", "dev0"]);
    let sent = dev0["nonce"].as_u64().unwrap();
    assert!(
        sent >= committed.len() as u64 && sent <= attempted,
        "dev0 sent {sent} transfers; {} were reported committed, {attempted} attempted",
        committed.len()
    );
    let bob_balance = flux.json(&["wallet", "balance", &bob])["balance"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        bob_balance,
        format!("{sent}.00000000"),
        "bob's balance does not match dev0's transfers"
    );
    let fee: f64 = committed[0]["receipt"]["fee"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let expected = 1_000_000.0 - sent as f64 * (1.0 + fee);
    let dev0_balance: f64 = dev0["balance"].as_str().unwrap().parse().unwrap();
    assert!(
        (dev0_balance - expected).abs() < 1e-6,
        "dev0 has {dev0_balance}, expected {expected} after {sent} transfers with fee {fee}"
    );
    // The restarted node keeps producing blocks and accepting transfers.
    let after = flux.json(&["wallet", "send", "--from", "dev0", "--to", "bob", "1"]);
    assert_eq!(after["status"], "committed", "{after}");
}

/// How long a network gets to reach a condition.
const NETWORK_TIMEOUT: Duration = Duration::from_secs(120);

/// Polls `condition` until it holds; panics with `what` and the logs after `timeout`.
fn wait_for(
    what: &str,
    timeout: Duration,
    logs: impl Fn() -> String,
    mut condition: impl FnMut() -> bool,
) {
    let deadline = Instant::now() + timeout;
    while !condition() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}\n{}",
            logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A devnet of several nodes on 127.0.`subnet`.1 and up, each node its own
/// `flux node run` process (or all of them under one `flux devnet up`).
struct Cluster {
    setup: Setup,
    urls: Vec<String>,
    nodes: Vec<Option<Process>>,
    devnet: Option<Process>,
    starts: usize,
}

impl Cluster {
    /// Writes a devnet of `count` nodes making a block every `block_interval_ms`.
    fn init(subnet: u8, count: usize, block_interval_ms: u64) -> Cluster {
        let setup = Setup::new(Ipv4Addr::new(127, 0, subnet, 1));
        let dir = setup.devnet_dir().display().to_string();
        setup.flux.ok(&[
            "devnet",
            "init",
            "--dir",
            &dir,
            "--nodes",
            &count.to_string(),
            "--api-host",
            &setup.ip.to_string(),
            "--api-port",
            &setup.port.to_string(),
            "--block-interval-ms",
            &block_interval_ms.to_string(),
        ]);
        let urls = (0..count)
            .map(|i| format!("http://127.0.{subnet}.{}:{}", i + 1, setup.port))
            .collect();
        Cluster {
            setup,
            urls,
            nodes: (0..count).map(|_| None).collect(),
            devnet: None,
            starts: 0,
        }
    }

    fn node_log(&self, i: usize) -> PathBuf {
        self.setup
            .devnet_dir()
            .join(format!("node-{i}"))
            .join("node.log")
    }

    /// The last lines of every node's log.
    fn logs(&self) -> String {
        let mut text = String::new();
        for (i, node) in self.nodes.iter().enumerate() {
            match node {
                Some(process) => text.push_str(&process.logs()),
                None => {
                    let path = self.node_log(i);
                    let content = std::fs::read_to_string(&path).unwrap_or_default();
                    let tail: Vec<&str> = content.lines().rev().take(20).collect();
                    text.push_str(&format!("--- {} (stopped) ---\n", path.display()));
                    for line in tail.into_iter().rev() {
                        text.push_str(line);
                        text.push('\n');
                    }
                }
            }
        }
        if let Some(devnet) = &self.devnet {
            text.push_str(&devnet.logs());
        }
        text
    }

    /// `flux` talking to node `i`.
    fn flux(&self, i: usize) -> Flux {
        Flux::new(&self.setup.flux.home, &self.urls[i])
    }

    /// Starts node `i` as its own process and waits for its API.
    fn start(&mut self, i: usize) {
        let config = self
            .setup
            .devnet_dir()
            .join(format!("node-{i}"))
            .join("config.toml")
            .display()
            .to_string();
        self.starts += 1;
        let log = self
            .setup
            .root
            .join(format!("node-{i}-run-{}.log", self.starts));
        let mut process = Process::spawn(
            &format!("node {i}"),
            &self.flux(i),
            &["node", "run", "--config", &config],
            log.clone(),
            vec![],
        );
        process.node_logs = vec![log];
        self.flux(i).wait_for_node(&mut process);
        self.nodes[i] = Some(process);
    }

    /// Starts the whole devnet with `flux devnet up`.
    fn up(&mut self) {
        let mut process = self.setup.devnet_up();
        process.node_logs = (0..self.urls.len()).map(|i| self.node_log(i)).collect();
        self.devnet = Some(process);
    }

    /// SIGKILL: no chance to clean up.
    fn kill(&mut self, i: usize) {
        let mut process = self.nodes[i].take().expect("node is running");
        process.kill();
    }

    fn status(&self, i: usize) -> Option<Value> {
        let run = self.flux(i).run(&["--json", "chain", "status"]);
        run.success
            .then(|| serde_json::from_str(&run.stdout).expect("status is JSON"))
    }

    fn height(&self, i: usize) -> Option<u64> {
        self.status(i).and_then(|s| s["height"].as_u64())
    }

    /// Header fields of block `height` as node `i` stores it.
    fn header(&self, i: usize, height: u64) -> Value {
        self.flux(i).json(&["chain", "block", &height.to_string()])["header"].clone()
    }

    /// Waits until `nodes` all reach `height`.
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

    /// The highest height among `nodes`.
    fn max_height(&self, nodes: &[usize]) -> u64 {
        nodes
            .iter()
            .filter_map(|&i| self.height(i))
            .max()
            .unwrap_or(0)
    }

    /// Asserts that `nodes` hold the same block and state root at the
    /// highest height they all have.
    fn assert_agree(&self, nodes: &[usize]) -> u64 {
        let common = nodes
            .iter()
            .map(|&i| self.height(i).expect("node answers"))
            .min()
            .unwrap();
        let headers: Vec<Value> = nodes.iter().map(|&i| self.header(i, common)).collect();
        for (header, i) in headers.iter().zip(nodes) {
            assert_eq!(
                header["state_root"], headers[0]["state_root"],
                "node {i} has another state root at height {common}"
            );
            assert_eq!(header, &headers[0], "node {i} has another block {common}");
        }
        common
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Each process's own guard stops it; the devnet process stops its nodes.
        self.devnet.take();
        for node in &mut self.nodes {
            node.take();
        }
    }
}

/// `flux devnet up` starts four node processes that agree on one chain; a
/// transfer sent to any node is finalized and visible on all four. A node
/// killed under it is reported down while the others go on, `devnet
/// restart` brings it back to catch up, and Ctrl-C stops all four.
#[test]
fn four_nodes_agree_and_transfers_reach_every_node() {
    let mut cluster = Cluster::init(3, 4, 200);
    cluster.up();
    let all = [0, 1, 2, 3];
    cluster.wait_height(&all, 3);
    let dir = cluster.setup.devnet_dir().display().to_string();
    wait_for(
        "every node to hear its three peers",
        NETWORK_TIMEOUT,
        || cluster.logs(),
        || {
            let statuses = cluster
                .setup
                .flux
                .json(&["devnet", "status", "--dir", &dir]);
            statuses
                .as_array()
                .unwrap()
                .iter()
                .all(|s| s["peers"].as_u64() == Some(3))
        },
    );
    let bob = cluster.setup.flux.json(&["keys", "new", "bob"])["address"]
        .as_str()
        .unwrap()
        .to_string();
    for (sent, via) in all.iter().enumerate() {
        let receipt = cluster
            .flux(*via)
            .json(&["wallet", "send", "--from", "dev0", "--to", &bob, "1"]);
        assert_eq!(receipt["status"], "committed", "via node {via}: {receipt}");
        let expected = format!("{}.00000000", sent + 1);
        wait_for(
            &format!("bob's balance {expected} on every node"),
            NETWORK_TIMEOUT,
            || cluster.logs(),
            || {
                all.iter()
                    .all(|&i| cluster.flux(i).balance(&bob) == expected)
            },
        );
        let height = receipt["height"].as_u64().unwrap().to_string();
        for i in all {
            let tx = cluster
                .flux(i)
                .json(&["chain", "tx", receipt["hash"].as_str().unwrap()]);
            assert_eq!(tx["status"], "committed", "node {i}: {tx}");
            assert_eq!(
                tx["receipt"]["height"].to_string(),
                height,
                "node {i}: {tx}"
            );
        }
    }
    let agreed = cluster.assert_agree(&all);
    assert!(agreed >= 3);

    // SIGKILL node-3 under `devnet up`: the devnet carries on with the
    // other three, shows it down, and `devnet restart` brings it back.
    let devnet_dir = cluster.setup.devnet_dir();
    let pid_of = |i: usize| -> i32 {
        let path = devnet_dir.join(format!("node-{i}")).join("pid");
        std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .trim()
            .parse()
            .unwrap()
    };
    let killed = pid_of(3);
    // SAFETY: kill(2) on a node process this test's devnet started.
    unsafe {
        libc::kill(killed, libc::SIGKILL);
    }
    wait_for(
        "devnet status to show node-3 down",
        NETWORK_TIMEOUT,
        || cluster.logs(),
        || {
            let statuses = cluster
                .setup
                .flux
                .json(&["devnet", "status", "--dir", &dir]);
            statuses[3]["up"] == false && statuses[3]["name"] == "node-3"
        },
    );
    let before = cluster.max_height(&[0, 1, 2]);
    cluster.wait_height(&[0, 1, 2], before + 5);
    let devnet = cluster.devnet.as_mut().unwrap();
    assert!(
        matches!(devnet.child.try_wait(), Ok(None)),
        "devnet up exited when one node died:\n{}",
        devnet.logs()
    );
    assert!(
        devnet.logs().contains("node-3 at") && devnet.logs().contains("devnet restart node-3"),
        "{}",
        devnet.logs()
    );
    let restarted = cluster
        .setup
        .flux
        .json(&["devnet", "restart", "node-3", "--dir", &dir]);
    assert_eq!(restarted["name"], "node-3", "{restarted}");
    let error = cluster
        .setup
        .flux
        .fails(&["devnet", "restart", "3", "--dir", &dir]);
    assert!(error.contains("node-3 is running"), "{error}");
    let target = cluster.max_height(&[0, 1, 2]);
    cluster.wait_height(&[3], target);
    cluster.assert_agree(&all);

    // Ctrl-C stops every node, the restarted one included.
    let pids: Vec<i32> = (0..4).map(pid_of).collect();
    assert_ne!(pids[3], killed);
    let devnet = cluster.devnet.as_mut().unwrap();
    // SAFETY: kill(2) on the devnet process this test started.
    unsafe {
        libc::kill(devnet.child.id() as libc::pid_t, libc::SIGINT);
    }
    let deadline = Instant::now() + NETWORK_TIMEOUT;
    let status = loop {
        if let Some(status) = devnet.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "devnet up did not stop on SIGINT:\n{}",
            devnet.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "{status}\n{}", devnet.logs());
    for pid in pids {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "node process {pid} outlived the devnet"
        );
    }
}

/// SIGKILL one validator of four: the others keep finalizing; restarted, it
/// catches up to the same state root. With two of four down no block is
/// finalized; when one returns the chain resumes, and a transfer sent during
/// the halt is finalized.
#[test]
fn crashed_validator_catches_up_and_two_down_halt_the_chain() {
    let mut cluster = Cluster::init(4, 4, 200);
    let all = [0, 1, 2, 3];
    for i in all {
        cluster.start(i);
    }
    cluster.wait_height(&all, 3);

    // One down: the other three keep finalizing, transfers included.
    cluster.kill(3);
    let before = cluster.max_height(&[0, 1, 2]);
    cluster.wait_height(&[0, 1, 2], before + 10);
    let sent = cluster
        .flux(1)
        .json(&["wallet", "send", "--from", "dev1", "--to", "dev2", "5"]);
    assert_eq!(sent["status"], "committed", "{sent}");

    // Back up: it catches up and agrees.
    cluster.start(3);
    let target = cluster.max_height(&[0, 1, 2]);
    cluster.wait_height(&[3], target);
    cluster.assert_agree(&all);
    let tx = cluster
        .flux(3)
        .json(&["chain", "tx", sent["hash"].as_str().unwrap()]);
    assert_eq!(tx["status"], "committed", "{tx}");

    // Two down: no quorum. Blocks already certified may still land; after
    // that, the height holds still.
    cluster.kill(2);
    cluster.kill(3);
    let mut halted = cluster.max_height(&[0, 1]);
    let mut still_since = Instant::now();
    wait_for(
        "the height to stop moving",
        NETWORK_TIMEOUT,
        || cluster.logs(),
        || {
            let now = cluster.max_height(&[0, 1]);
            if now != halted {
                halted = now;
                still_since = Instant::now();
            }
            still_since.elapsed() >= Duration::from_secs(3)
        },
    );
    // Twenty block intervals and several view timeouts without a block.
    let observed = Instant::now();
    while observed.elapsed() < Duration::from_secs(6) {
        assert_eq!(
            cluster.max_height(&[0, 1]),
            halted,
            "a block was finalized with two of four validators down"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let pending = cluster.flux(0).json(&[
        "wallet",
        "send",
        "--from",
        "dev2",
        "--to",
        "dev3",
        "7",
        "--no-wait",
    ]);
    let hash = pending["hash"].as_str().unwrap().to_string();

    // One returns: three of four, the chain resumes and takes the transfer.
    cluster.start(2);
    cluster.wait_height(&[0, 1, 2], halted + 3);
    wait_for(
        "the transfer sent during the halt",
        NETWORK_TIMEOUT,
        || cluster.logs(),
        || cluster.flux(2).json(&["chain", "tx", &hash])["status"] == "committed",
    );
    cluster.start(3);
    let target = cluster.max_height(&[0, 1, 2]);
    cluster.wait_height(&[3], target);
    cluster.assert_agree(&all);
}

#[path = "cli/gov.rs"]
mod gov;

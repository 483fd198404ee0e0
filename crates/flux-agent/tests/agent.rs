//! The agent against real containers (Docker) and real processes (exec):
//! two nodes share one machine (one Docker engine), each publishing on its
//! own loopback address, and each reconciler runs a two-component app.
//!
//! The Docker tests skip, saying so, when no Docker engine answers. They
//! build `flux-hello:latest` with `images/build.sh` first. Everything they
//! create carries a `flux.test` label with this run's id and is removed on
//! exit, failed or not.

#![allow(clippy::print_stderr)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bollard::Docker;
use bollard::exec::{CreateExecOptions, StartExecResults};
use bollard::query_parameters::{
    KillContainerOptionsBuilder, ListContainersOptionsBuilder, ListNetworksOptionsBuilder,
    ListVolumesOptionsBuilder, RemoveContainerOptionsBuilder,
};
use flux_agent::spec::{LABEL_NODE, LABEL_TEST, network_name};
use flux_agent::{
    AgentError, DockerConfig, DockerDriver, Driver, ExecConfig, ExecDriver, Health, InstanceSpec,
    InstanceStatus, Mailbox, Phase, PortMapping, ReconcilerConfig,
};
use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::OnceCell;

/// Longest wait for any condition (an image build or first start included).
const DEADLINE: Duration = Duration::from_secs(90);
const WEB_PORT: u16 = 31000;
const API_PORT: u16 = 31001;

fn run_id() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{}{:x}", std::process::id(), nanos & 0xffff)
}

/// A loopback address for this run: concurrent runs on one machine use
/// different ones, so fixed ports never collide.
fn host_ip(last: u8) -> IpAddr {
    let pid = std::process::id();
    IpAddr::from([
        127,
        100 + (pid % 100) as u8,
        ((pid / 100) % 250) as u8,
        last,
    ])
}

fn fast_config() -> ReconcilerConfig {
    ReconcilerConfig {
        interval_ms: 200,
        backoff_base_ms: 200,
        backoff_max_ms: 2_000,
        probe_interval_ms: 300,
        probe_timeout_ms: 1_000,
        ..ReconcilerConfig::default()
    }
}

/// Polls `check` until it returns `Some`, failing the test at `DEADLINE`.
async fn wait_for<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {DEADLINE:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `GET path` over HTTP/1.0; the body when the status is 200.
async fn http_get(ip: IpAddr, port: u16, path: &str) -> Option<String> {
    let connect = tokio::net::TcpStream::connect((ip, port));
    let mut stream = tokio::time::timeout(Duration::from_secs(2), connect)
        .await
        .ok()?
        .ok()?;
    let request = format!("GET {path} HTTP/1.0\r\nHost: {ip}:{port}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(2), stream.read_to_end(&mut response))
        .await
        .ok()?
        .ok()?;
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.0 200")
        .then(|| body.to_string())
        .or_else(|| head.starts_with("HTTP/1.1 200").then(|| body.to_string()))
}

/// One node of the test: its id, address, reconciler and desired set.
struct TestNode {
    id: String,
    ip: IpAddr,
    mailbox: Mailbox,
    desired: Vec<InstanceSpec>,
}

impl TestNode {
    fn statuses(&self) -> Vec<InstanceStatus> {
        self.mailbox.status().snapshot()
    }

    /// Waits until every desired instance runs and answers on its port.
    async fn wait_running(&self) -> BTreeMap<String, String> {
        let what = format!("every instance of {} running and answering", self.id);
        wait_for(&what, || async {
            let statuses = self.statuses();
            if statuses.len() != self.desired.len()
                || statuses.iter().any(|s| s.phase != Phase::Running)
            {
                return None;
            }
            let mut ids = BTreeMap::new();
            for status in &statuses {
                let body = http_get(self.ip, status.ports[0].host_port, "/whoami").await?;
                let expected = format!(
                    "{}/{}#{}@{}",
                    status.key.app, status.key.component, status.key.instance, self.id
                );
                assert_eq!(body.trim(), expected, "the page names its own instance");
                ids.insert(status.key.component.clone(), status.instance_id.clone()?);
            }
            Some(ids)
        })
        .await
    }
}

/// The two-component app of the tests, as placed on one node.
fn app_specs(
    node: &str,
    ip: IpAddr,
    instance: u32,
    image_or_command: &Launch,
    run: &str,
) -> Vec<InstanceSpec> {
    ["web", "api"]
        .into_iter()
        .zip([WEB_PORT, API_PORT])
        .map(|(component, port)| {
            let (image, command, mut env) = match image_or_command {
                Launch::Image => ("flux-hello:latest".to_string(), vec![], vec![]),
                Launch::Command(command) => (
                    String::new(),
                    command.clone(),
                    vec!["WWW_DIR=www".to_string()],
                ),
            };
            env.push(format!("GREETING=hello from {component}"));
            InstanceSpec {
                node: node.into(),
                app: "hello".into(),
                component: component.into(),
                instance,
                image,
                env,
                command,
                ports: vec![PortMapping {
                    host_port: port,
                    container_port: 8080,
                }],
                host_ip: ip,
                cpu_tenths: 5,
                ram_mb: 100,
                data_path: Some("/data".into()),
                health_path: "/health".into(),
                network: network_name(node, "hello"),
                labels: BTreeMap::from([(LABEL_TEST.to_string(), run.to_string())]),
            }
        })
        .collect()
}

enum Launch {
    Image,
    Command(Vec<String>),
}

/// Reads a followed log stream to its end, which must come before `DEADLINE`.
async fn followed_until_end(mut stream: flux_agent::driver::LogChunks) -> String {
    let mut text = Vec::new();
    let read = async {
        while let Some(chunk) = stream.next().await {
            text.extend(chunk.unwrap().data);
        }
    };
    tokio::time::timeout(DEADLINE, read)
        .await
        .expect("a followed log stream ends when its instance goes");
    String::from_utf8_lossy(&text).into_owned()
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

// ---------------------------------------------------------------- Docker

/// Connects to the engine, or says why the Docker tests are skipped.
async fn docker_or_skip(test: &str) -> Option<Docker> {
    match DockerDriver::connect("probe", DockerConfig::default()).await {
        Ok(_) => Some(
            Docker::connect_with_defaults()
                .unwrap()
                .negotiate_version()
                .await
                .unwrap(),
        ),
        Err(e @ AgentError::NoDockerEngine { .. }) => {
            eprintln!("SKIPPED {test}: {e}");
            None
        }
        Err(e) => panic!("connecting to Docker: {e}"),
    }
}

static IMAGE: OnceCell<()> = OnceCell::const_new();

async fn build_image() {
    IMAGE
        .get_or_init(|| async {
            let script = repo_root().join("images/build.sh");
            let output = tokio::process::Command::new(&script)
                .output()
                .await
                .unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
            assert!(
                output.status.success(),
                "{} failed: {}",
                script.display(),
                String::from_utf8_lossy(&output.stderr)
            );
        })
        .await;
}

/// Removes every container, network and volume labelled with this run's
/// id when dropped, also when the test fails.
struct DockerCleanup {
    run: String,
}

impl Drop for DockerCleanup {
    fn drop(&mut self) {
        let run = self.run.clone();
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let Ok(docker) = Docker::connect_with_defaults() else {
                    return;
                };
                let Ok(docker) = docker.negotiate_version().await else {
                    return;
                };
                let filters = label_filter(LABEL_TEST, &run);
                let containers = docker
                    .list_containers(Some(
                        ListContainersOptionsBuilder::default()
                            .all(true)
                            .filters(&filters)
                            .build(),
                    ))
                    .await
                    .unwrap_or_default();
                for container in containers {
                    if let Some(id) = container.id {
                        let options = RemoveContainerOptionsBuilder::default().force(true).build();
                        let _ = docker.remove_container(&id, Some(options)).await;
                    }
                }
                let networks = docker
                    .list_networks(Some(
                        ListNetworksOptionsBuilder::default()
                            .filters(&filters)
                            .build(),
                    ))
                    .await
                    .unwrap_or_default();
                for network in networks {
                    if let Some(id) = network.id {
                        let _ = docker.remove_network(&id).await;
                    }
                }
                let volumes = docker
                    .list_volumes(Some(
                        ListVolumesOptionsBuilder::default()
                            .filters(&filters)
                            .build(),
                    ))
                    .await
                    .map(|v| v.volumes.unwrap_or_default())
                    .unwrap_or_default();
                for volume in volumes {
                    let _ = docker
                        .remove_volume(
                            &volume.name,
                            None::<bollard::query_parameters::RemoveVolumeOptions>,
                        )
                        .await;
                }
            });
        });
        let _ = cleanup.join();
    }
}

fn label_filter(label: &str, value: &str) -> HashMap<String, Vec<String>> {
    HashMap::from([("label".to_string(), vec![format!("{label}={value}")])])
}

/// Containers, networks and volumes on the engine carrying `flux.node=node`.
async fn docker_leftovers(docker: &Docker, node: &str) -> (usize, usize, usize) {
    let filters = label_filter(LABEL_NODE, node);
    let containers = docker
        .list_containers(Some(
            ListContainersOptionsBuilder::default()
                .all(true)
                .filters(&filters)
                .build(),
        ))
        .await
        .unwrap();
    let networks = docker
        .list_networks(Some(
            ListNetworksOptionsBuilder::default()
                .filters(&filters)
                .build(),
        ))
        .await
        .unwrap();
    let volumes = docker
        .list_volumes(Some(
            ListVolumesOptionsBuilder::default()
                .filters(&filters)
                .build(),
        ))
        .await
        .unwrap()
        .volumes
        .unwrap_or_default();
    (containers.len(), networks.len(), volumes.len())
}

/// Runs a command inside a container and returns its output.
async fn docker_exec(docker: &Docker, container: &str, cmd: &[&str]) -> String {
    let exec = docker
        .create_exec(
            container,
            CreateExecOptions {
                cmd: Some(cmd.to_vec()),
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let mut text = String::new();
    if let StartExecResults::Attached { mut output, .. } =
        docker.start_exec(&exec.id, None).await.unwrap()
    {
        while let Some(Ok(chunk)) = output.next().await {
            text.push_str(&chunk.to_string());
        }
    }
    text
}

async fn docker_node(id: &str, ip: IpAddr, instance: u32, run: &str) -> TestNode {
    let driver = DockerDriver::connect(id, DockerConfig::default())
        .await
        .unwrap();
    let mailbox = flux_agent::reconciler::spawn(Arc::new(driver), fast_config());
    let desired = app_specs(id, ip, instance, &Launch::Image, run);
    mailbox.set_desired(desired.clone()).unwrap();
    TestNode {
        id: id.to_string(),
        ip,
        mailbox,
        desired,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_two_nodes_run_restart_adopt_and_remove() {
    let Some(docker) = docker_or_skip("docker_two_nodes_run_restart_adopt_and_remove").await else {
        return;
    };
    build_image().await;
    let run = run_id();
    let _cleanup = DockerCleanup { run: run.clone() };
    let a_id = format!("node-a-{run}");
    let b_id = format!("node-b-{run}");

    // Two nodes on one engine, each publishing the same ports on its own address.
    let a = docker_node(&a_id, host_ip(2), 0, &run).await;
    let b = docker_node(&b_id, host_ip(3), 1, &run).await;
    let a_ids = a.wait_running().await;
    let b_ids = b.wait_running().await;

    // Components reach each other by name, each on its own node's network.
    let from_web = docker_exec(
        &docker,
        &a_ids["web"],
        &["wget", "-qO-", "http://api:8080/whoami"],
    )
    .await;
    assert_eq!(from_web.trim(), format!("hello/api#0@{a_id}"));
    let from_web = docker_exec(
        &docker,
        &b_ids["web"],
        &["wget", "-qO-", "http://api:8080/whoami"],
    )
    .await;
    assert_eq!(from_web.trim(), format!("hello/api#1@{b_id}"));

    // The prober sees them healthy.
    wait_for("web healthy on node a", || async {
        a.statuses()
            .iter()
            .all(|s| s.health == Health::Healthy)
            .then_some(())
    })
    .await;

    // Logs and stats come through the driver.
    let driver = a.mailbox.driver().clone();
    let mut logs = driver
        .logs(&a_ids["web"], flux_agent::LogOptions::default())
        .await
        .unwrap();
    let mut text = Vec::new();
    while let Some(chunk) = logs.next().await {
        text.extend(chunk.unwrap().data);
    }
    assert!(String::from_utf8_lossy(&text).contains("serving hello/web#0"));
    let stats = driver.stats(&a_ids["web"]).await.unwrap();
    assert!(stats.memory_bytes > 0);
    assert_eq!(stats.memory_limit_bytes, 100 * 1024 * 1024);

    // A container killed by hand is restarted (same container, same volume).
    let options = KillContainerOptionsBuilder::default()
        .signal("KILL")
        .build();
    docker
        .kill_container(&a_ids["web"], Some(options))
        .await
        .unwrap();
    wait_for("the killed container to be restarted", || async {
        let web = a
            .statuses()
            .into_iter()
            .find(|s| s.key.component == "web")?;
        (web.phase == Phase::Running && web.restarts >= 1).then_some(())
    })
    .await;
    assert_eq!(a.wait_running().await, a_ids);
    assert_eq!(b.wait_running().await, b_ids, "node b was not touched");

    // A new reconciler for node a adopts the running containers.
    a.mailbox.shutdown();
    let a = docker_node(&a_id, host_ip(2), 0, &run).await;
    a.mailbox.reconciled().await.unwrap();
    assert_eq!(a.wait_running().await, a_ids, "adopted, not recreated");
    let statuses = a.statuses();
    assert!(statuses.iter().all(|s| s.restarts == 0));

    // A changed spec is recreated.
    let mut changed = a.desired.clone();
    changed[1].env.push("VERSION=2".into());
    a.mailbox.set_desired(changed.clone()).unwrap();
    let a = TestNode {
        desired: changed,
        ..a
    };
    let new_ids = wait_for("the changed api instance to be replaced", || async {
        let ids = a.wait_running().await;
        (ids["api"] != a_ids["api"]).then_some(ids)
    })
    .await;
    assert_eq!(
        new_ids["web"], a_ids["web"],
        "the unchanged component stays"
    );

    // A followed log stream ends when its container goes.
    let follow = flux_agent::LogOptions {
        follow: true,
        tail_lines: 10,
    };
    let followed = a
        .mailbox
        .driver()
        .logs(&new_ids["web"], follow)
        .await
        .unwrap();

    // Removing node a's desired set leaves nothing of node a behind, and node b runs on.
    a.mailbox.set_desired(vec![]).unwrap();
    let logged = followed_until_end(followed).await;
    assert!(logged.contains("serving hello/web#0"), "{logged}");
    wait_for(
        "node a's containers, networks and volumes to be removed",
        || async { (docker_leftovers(&docker, &a_id).await == (0, 0, 0)).then_some(()) },
    )
    .await;
    assert_eq!(b.wait_running().await, b_ids, "node b was not touched");
    assert_eq!(docker_leftovers(&docker, &b_id).await, (2, 1, 2));

    b.mailbox.set_desired(vec![]).unwrap();
    wait_for(
        "node b's containers, networks and volumes to be removed",
        || async { (docker_leftovers(&docker, &b_id).await == (0, 0, 0)).then_some(()) },
    )
    .await;
    a.mailbox.reconciled().await.unwrap();
    b.mailbox.reconciled().await.unwrap();
    assert!(a.statuses().is_empty() && b.statuses().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_missing_image_is_reported_with_the_reason() {
    if docker_or_skip("docker_missing_image_is_reported_with_the_reason")
        .await
        .is_none()
    {
        return;
    }
    let run = run_id();
    let _cleanup = DockerCleanup { run: run.clone() };
    let node = format!("node-c-{run}");
    let config = DockerConfig {
        pull_timeout_ms: 30_000,
        ..DockerConfig::default()
    };
    let driver = DockerDriver::connect(&node, config).await.unwrap();
    let mailbox = flux_agent::reconciler::spawn(Arc::new(driver), fast_config());
    let mut specs = app_specs(&node, host_ip(6), 0, &Launch::Image, &run);
    specs.truncate(1);
    specs[0].image = format!("flux-absent-{run}:never");
    mailbox.set_desired(specs).unwrap();
    let status = wait_for("the missing image to be reported", || async {
        mailbox
            .status()
            .snapshot()
            .into_iter()
            .find(|s| s.phase == Phase::Failed)
    })
    .await;
    let reason = status.reason.unwrap();
    assert!(reason.contains("is not present on this node"), "{reason}");
    mailbox.set_desired(vec![]).unwrap();
    mailbox.reconciled().await.unwrap();
}

// ---------------------------------------------------------------- exec

fn busybox() -> Option<PathBuf> {
    ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// Kills what the exec drivers left running when dropped, also when the test fails.
struct ExecCleanup {
    drivers: Vec<ExecDriver>,
}

impl Drop for ExecCleanup {
    fn drop(&mut self) {
        for driver in &self.drivers {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let driver = driver.clone();
            let _ = std::thread::spawn(move || {
                runtime.block_on(async {
                    if let Ok(inventory) = driver.list().await {
                        for instance in inventory.instances {
                            let _ = driver.destroy(&instance.id).await;
                        }
                    }
                })
            })
            .join();
        }
    }
}

fn exec_node(
    id: &str,
    ip: IpAddr,
    instance: u32,
    state_dir: &Path,
    command: &[String],
) -> (TestNode, ExecDriver) {
    let driver = ExecDriver::new(id, ExecConfig::new(state_dir)).unwrap();
    let mailbox = flux_agent::reconciler::spawn(Arc::new(driver.clone()), fast_config());
    let desired = app_specs(id, ip, instance, &Launch::Command(command.to_vec()), "exec");
    mailbox.set_desired(desired.clone()).unwrap();
    (
        TestNode {
            id: id.to_string(),
            ip,
            mailbox,
            desired,
        },
        driver,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_two_nodes_run_restart_adopt_and_remove() {
    let Some(busybox) = busybox() else {
        panic!(
            "busybox is needed for the exec tests: apt-get install busybox-static (scripts/test does)"
        );
    };
    let script = repo_root().join("images/hello/hello.sh");
    let command = vec![
        busybox.display().to_string(),
        "sh".to_string(),
        script.display().to_string(),
    ];
    let run = run_id();
    let a_id = format!("node-a-{run}");
    let b_id = format!("node-b-{run}");
    let a_dir = tempfile::tempdir().unwrap();
    let b_dir = tempfile::tempdir().unwrap();

    // The two nodes publish the same ports, each on its own address.
    let (a, a_driver) = exec_node(&a_id, host_ip(4), 0, a_dir.path(), &command);
    let (b, b_driver) = exec_node(&b_id, host_ip(5), 1, b_dir.path(), &command);
    let mut cleanup = ExecCleanup {
        drivers: vec![a_driver.clone(), b_driver.clone()],
    };
    let a_ids = a.wait_running().await;
    let b_ids = b.wait_running().await;
    let b_pids: BTreeSet<u32> = b_ids.values().filter_map(|id| b_driver.pid(id)).collect();
    assert_eq!(b_pids.len(), 2);

    // Each instance runs with its own data directory as working directory.
    let www = a_dir.path().join("data/hello/web-0/www/whoami");
    assert!(www.exists(), "{} exists", www.display());

    // A process killed by hand is restarted.
    let pid = a_driver.pid(&a_ids["web"]).unwrap();
    // SAFETY: kill has no memory effects; the pid is the test's own child.
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGKILL);
    }
    wait_for("the killed process to be restarted", || async {
        let web = a
            .statuses()
            .into_iter()
            .find(|s| s.key.component == "web")?;
        (web.phase == Phase::Running && web.restarts >= 1).then_some(())
    })
    .await;
    assert_eq!(a.wait_running().await, a_ids, "restarted under the same id");
    assert_ne!(a_driver.pid(&a_ids["web"]), Some(pid));

    // A new driver and reconciler for node a (same state directory) adopt
    // the running processes.
    let pids: Vec<Option<u32>> = a_ids.values().map(|id| a_driver.pid(id)).collect();
    a.mailbox.shutdown();
    let (a, a_driver) = exec_node(&a_id, host_ip(4), 0, a_dir.path(), &command);
    cleanup.drivers.push(a_driver.clone());
    a.mailbox.reconciled().await.unwrap();
    assert_eq!(a.wait_running().await, a_ids, "adopted, not recreated");
    let adopted: Vec<Option<u32>> = a_ids.values().map(|id| a_driver.pid(id)).collect();
    assert_eq!(adopted, pids, "the same processes");

    // Logs and stats.
    let mut logs = a_driver
        .logs(&a_ids["api"], flux_agent::LogOptions::default())
        .await
        .unwrap();
    let mut text = Vec::new();
    while let Some(chunk) = logs.next().await {
        text.extend(chunk.unwrap().data);
    }
    assert!(String::from_utf8_lossy(&text).contains("serving hello/api#0"));
    assert!(a_driver.stats(&a_ids["api"]).await.unwrap().memory_bytes > 0);

    // A followed log stream ends when its process goes.
    let follow = flux_agent::LogOptions {
        follow: true,
        tail_lines: 10,
    };
    let followed = a_driver.logs(&a_ids["web"], follow).await.unwrap();

    // Removing node a's desired set ends its processes and removes its data;
    // node b runs on untouched.
    a.mailbox.set_desired(vec![]).unwrap();
    let logged = followed_until_end(followed).await;
    assert!(logged.contains("serving hello/web#0"), "{logged}");
    wait_for("node a's instances and data to be removed", || async {
        let inventory = a_driver.list().await.unwrap();
        (inventory.instances.is_empty() && inventory.volumes.is_empty()).then_some(())
    })
    .await;
    for pid in pids.into_iter().flatten() {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists()
                || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .is_ok_and(|s| s.contains(") Z")),
            "process {pid} was ended"
        );
    }
    assert!(http_get(a.ip, WEB_PORT, "/whoami").await.is_none());
    assert_eq!(b.wait_running().await, b_ids, "node b was not touched");
    let still: BTreeSet<u32> = b_ids.values().filter_map(|id| b_driver.pid(id)).collect();
    assert_eq!(still, b_pids);

    b.mailbox.set_desired(vec![]).unwrap();
    wait_for("node b's instances to be removed", || async {
        b_driver
            .list()
            .await
            .unwrap()
            .instances
            .is_empty()
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn exec_without_a_command_is_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let driver = ExecDriver::new("node-x", ExecConfig::new(dir.path())).unwrap();
    let mut spec = app_specs("node-x", host_ip(7), 0, &Launch::Image, "exec").remove(0);
    spec.command.clear();
    let error = driver.start(&spec).await.unwrap_err();
    assert!(matches!(error, AgentError::NoCommand { .. }), "{error}");
}

#[tokio::test]
async fn a_missing_engine_is_a_typed_error_and_auto_falls_back_to_exec() {
    let missing = DockerConfig {
        endpoint: Some("unix:///nonexistent/flux-test/docker.sock".into()),
        ..DockerConfig::default()
    };
    let error = DockerDriver::connect("node-x", missing.clone())
        .await
        .unwrap_err();
    assert!(
        matches!(error, AgentError::NoDockerEngine { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("exec driver"), "{error}");

    let dir = tempfile::tempdir().unwrap();
    let driver = flux_agent::open_driver(
        "node-x",
        flux_agent::DriverChoice::Auto,
        missing.clone(),
        dir.path().to_path_buf(),
    )
    .await
    .unwrap();
    assert_eq!(driver.kind(), flux_agent::DriverKind::Exec);
    let refused = flux_agent::open_driver(
        "node-x",
        flux_agent::DriverChoice::Docker,
        missing,
        dir.path().to_path_buf(),
    )
    .await;
    assert!(matches!(refused, Err(AgentError::NoDockerEngine { .. })));
}

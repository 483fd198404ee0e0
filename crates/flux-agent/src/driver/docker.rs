//! Instances as containers on a Docker engine, through bollard.
//!
//! Each app gets a private bridge network per node, on which every
//! container has its component name as an alias, so components reach each
//! other by name. Everything the driver creates carries the labels of
//! [`crate::spec`], and everything it lists, changes or removes is found
//! through the `flux.node` label, so nodes sharing an engine never touch
//! each other's containers.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use async_trait::async_trait;
use bollard::Docker;
use bollard::errors::Error as BollardError;
use bollard::models::{
    ContainerCreateBody, ContainerStateStatusEnum, ContainerStatsResponse,
    ContainerSummaryStateEnum, EndpointSettings, HostConfig, HostConfigLogConfig, Ipam, IpamConfig,
    Mount, MountType, NetworkCreateRequest, NetworkingConfig, PortBinding, RestartPolicy,
    RestartPolicyNameEnum, VolumeCreateRequest,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptionsBuilder, ListContainersOptionsBuilder,
    ListNetworksOptionsBuilder, ListVolumesOptionsBuilder, LogsOptionsBuilder,
    RemoveContainerOptionsBuilder, RemoveVolumeOptionsBuilder, StatsOptionsBuilder,
    StopContainerOptionsBuilder,
};
use futures_util::{StreamExt, TryStreamExt};
use tokio::sync::Mutex;
use tracing::{debug, info, warn};

use crate::driver::{
    Driver, DriverKind, Instance, InstanceState, Inventory, LOG_CHUNK_BYTES_MAX,
    LOG_TAIL_LINES_MAX, LogChunk, LogChunks, LogOptions, LogStream, Stats,
};
use crate::error::AgentError;
use crate::spec::{
    InstanceKey, InstanceSpec, LABEL_APP, LABEL_COMPONENT, LABEL_INSTANCE, LABEL_NODE,
    instance_name, key_from_labels,
};

/// Where the engine is looked for when neither the config nor `DOCKER_HOST` says.
pub const DEFAULT_ENDPOINT: &str = "unix:///var/run/docker.sock";

/// How the Docker driver connects and the limits it puts on containers.
#[derive(Clone, Debug)]
pub struct DockerConfig {
    /// `unix:///path/to/docker.sock` or `tcp://host:port`; `None` reads
    /// `DOCKER_HOST`, then falls back to [`DEFAULT_ENDPOINT`].
    pub endpoint: Option<String>,
    /// Longest wait for the engine to answer when connecting.
    pub connect_timeout_ms: u64,
    /// Longest wait for any single request to the engine.
    pub request_timeout_ms: u64,
    /// Longest wait for an image pull.
    pub pull_timeout_ms: u64,
    /// Time a container gets between SIGTERM and SIGKILL when stopped.
    pub stop_grace_s: u32,
    /// Size at which a container's log file is rotated, in bytes.
    pub log_file_bytes_max: u64,
    /// Rotated log files kept per container; a container's logs use at
    /// most `log_file_bytes_max × log_files_max` bytes of disk.
    pub log_files_max: u32,
    /// Most processes one container may run.
    pub pids_max: i64,
}

impl Default for DockerConfig {
    fn default() -> Self {
        DockerConfig {
            endpoint: None,
            connect_timeout_ms: 5_000,
            request_timeout_ms: 120_000,
            pull_timeout_ms: 600_000,
            stop_grace_s: 10,
            log_file_bytes_max: 10 * 1024 * 1024,
            log_files_max: 3,
            pids_max: 4_096,
        }
    }
}

/// The Docker driver.
#[derive(Debug)]
pub struct DockerDriver {
    node: String,
    docker: Docker,
    config: DockerConfig,
    /// Serialises network creation: the engine accepts two networks with
    /// the same name, so "create if missing" must not race with itself.
    network_lock: Mutex<()>,
}

impl DockerDriver {
    /// Connects to the engine and checks that it answers; a missing socket,
    /// a refused connection or a silent engine is
    /// [`AgentError::NoDockerEngine`], on which a node falls back to exec.
    pub async fn connect(node: &str, config: DockerConfig) -> Result<DockerDriver, AgentError> {
        let endpoint = config
            .endpoint
            .clone()
            .or_else(|| std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty()))
            .unwrap_or_else(|| DEFAULT_ENDPOINT.to_string());
        let no_engine = |reason: String| AgentError::NoDockerEngine {
            endpoint: endpoint.clone(),
            reason,
        };
        let timeout_s = config.request_timeout_ms.div_ceil(1000).max(1);
        let docker = if let Some(path) = endpoint.strip_prefix("unix://") {
            Docker::connect_with_socket(path, timeout_s, bollard::API_DEFAULT_VERSION)
        } else if endpoint.starts_with("tcp://") || endpoint.starts_with("http://") {
            Docker::connect_with_http(&endpoint, timeout_s, bollard::API_DEFAULT_VERSION)
        } else {
            return Err(no_engine(
                "only unix:// and tcp:// endpoints are supported".into(),
            ));
        }
        .map_err(|e| no_engine(e.to_string()))?;
        let connect_timeout = Duration::from_millis(config.connect_timeout_ms);
        // The engine may be older than the client's API version; negotiate
        // down to what it speaks.
        let docker = tokio::time::timeout(connect_timeout, docker.negotiate_version())
            .await
            .map_err(|_| no_engine(format!("no answer within {} ms", config.connect_timeout_ms)))?
            .map_err(|e| no_engine(e.to_string()))?;
        tokio::time::timeout(connect_timeout, docker.ping())
            .await
            .map_err(|_| no_engine(format!("no answer within {} ms", config.connect_timeout_ms)))?
            .map_err(|e| no_engine(e.to_string()))?;
        info!(node, %endpoint, api = %docker.client_version(), "docker driver connected");
        Ok(DockerDriver {
            node: node.to_string(),
            docker,
            config,
            network_lock: Mutex::new(()),
        })
    }

    fn own_filter(&self, extra: &[(&str, &str)]) -> HashMap<String, Vec<String>> {
        let mut labels = vec![format!("{LABEL_NODE}={}", self.node)];
        labels.extend(extra.iter().map(|(k, v)| format!("{k}={v}")));
        HashMap::from([("label".to_string(), labels)])
    }

    /// Uses the image when present; pulls it when missing.
    async fn ensure_image(&self, image: &str) -> Result<(), AgentError> {
        match self.docker.inspect_image(image).await {
            Ok(_) => return Ok(()),
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(docker_error(format!("inspect image {image}"), e)),
        }
        info!(image, "image not present locally, pulling");
        let (from_image, tag) = split_reference(image);
        let mut options = CreateImageOptionsBuilder::default().from_image(from_image);
        if let Some(tag) = tag {
            options = options.tag(tag);
        }
        let pull = self
            .docker
            .create_image(Some(options.build()), None, None)
            .try_for_each(|_| async { Ok(()) });
        match tokio::time::timeout(Duration::from_millis(self.config.pull_timeout_ms), pull).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(AgentError::ImageUnavailable {
                image: image.to_string(),
                reason: error_message(&e),
            }),
            Err(_) => Err(AgentError::ImageUnavailable {
                image: image.to_string(),
                reason: format!(
                    "the pull took longer than {} ms",
                    self.config.pull_timeout_ms
                ),
            }),
        }
    }

    async fn ensure_network(&self, spec: &InstanceSpec) -> Result<(), AgentError> {
        let _guard = self.network_lock.lock().await;
        let filters = self.own_filter(&[(LABEL_APP, &spec.app)]);
        let existing = self
            .docker
            .list_networks(Some(
                ListNetworksOptionsBuilder::default()
                    .filters(&filters)
                    .build(),
            ))
            .await
            .map_err(|e| docker_error("list networks", e))?;
        if existing
            .iter()
            .any(|n| n.name.as_deref() == Some(spec.network.as_str()))
        {
            return Ok(());
        }
        let mut labels: HashMap<String, String> = spec.labels.clone().into_iter().collect();
        labels.insert(LABEL_NODE.into(), self.node.clone());
        labels.insert(LABEL_APP.into(), spec.app.clone());
        // Each app network is a /24 of APP_SUBNETS (Docker's default pools
        // hold about 30 networks, fewer than a node's apps): the first free
        // one from a slot derived from the name, so nodes sharing an engine
        // rarely try the same one twice.
        let start = subnet_slot(&spec.network);
        let mut last = None;
        for step in 0..=u8::MAX {
            let subnet = app_subnet(start.wrapping_add(step));
            let created = self
                .docker
                .create_network(NetworkCreateRequest {
                    name: spec.network.clone(),
                    driver: Some("bridge".into()),
                    labels: Some(labels.clone()),
                    ipam: Some(Ipam {
                        config: Some(vec![IpamConfig {
                            subnet: Some(subnet.clone()),
                            ..Default::default()
                        }]),
                        ..Default::default()
                    }),
                    ..Default::default()
                })
                .await;
            match created {
                Ok(_) => {
                    debug!(network = %spec.network, %subnet, "network created");
                    return Ok(());
                }
                Err(e) if error_message(&e).contains("overlap") => last = Some(e),
                Err(e) => return Err(docker_error(format!("create network {}", spec.network), e)),
            }
        }
        Err(match last {
            Some(e) => docker_error(
                format!(
                    "create network {}: every /24 of {}.{}.0.0/16 is taken",
                    spec.network, APP_SUBNETS[0], APP_SUBNETS[1]
                ),
                e,
            ),
            None => AgentError::Docker {
                operation: format!("create network {}", spec.network),
                reason: "no subnet tried".into(),
            },
        })
    }

    async fn ensure_volume(&self, spec: &InstanceSpec, name: &str) -> Result<(), AgentError> {
        let mut labels: HashMap<String, String> = spec.labels.clone().into_iter().collect();
        labels.insert(LABEL_NODE.into(), self.node.clone());
        labels.insert(LABEL_APP.into(), spec.app.clone());
        labels.insert(LABEL_COMPONENT.into(), spec.component.clone());
        labels.insert(LABEL_INSTANCE.into(), spec.instance.to_string());
        // Creating a named volume that exists returns the existing one.
        self.docker
            .create_volume(VolumeCreateRequest {
                name: Some(name.to_string()),
                labels: Some(labels),
                ..Default::default()
            })
            .await
            .map_err(|e| docker_error(format!("create volume {name}"), e))?;
        Ok(())
    }

    fn container_body(&self, spec: &InstanceSpec, volume: Option<&str>) -> ContainerCreateBody {
        let mut env = spec.flux_env();
        env.extend(spec.env.iter().cloned());
        let port_key = |p: u16| format!("{p}/tcp");
        let mut bindings: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
        for port in &spec.ports {
            bindings
                .entry(port_key(port.container_port))
                .or_default()
                .get_or_insert_with(Vec::new)
                .push(PortBinding {
                    host_ip: Some(spec.host_ip.to_string()),
                    host_port: Some(port.host_port.to_string()),
                });
        }
        let mounts = match (&spec.data_path, volume) {
            (Some(path), Some(volume)) => Some(vec![Mount {
                target: Some(path.clone()),
                source: Some(volume.to_string()),
                typ: Some(MountType::VOLUME),
                ..Default::default()
            }]),
            _ => None,
        };
        let bytes_per_mb: i64 = 1024 * 1024;
        let host_config = HostConfig {
            nano_cpus: (spec.cpu_tenths > 0).then(|| i64::from(spec.cpu_tenths) * 100_000_000),
            memory: (spec.ram_mb > 0).then(|| i64::from(spec.ram_mb) * bytes_per_mb),
            pids_limit: Some(self.config.pids_max),
            port_bindings: Some(bindings),
            mounts,
            network_mode: Some(spec.network.clone()),
            // The reconciler restarts with its own backoff and reports it;
            // an engine restart policy would hide crashes from it.
            restart_policy: Some(RestartPolicy {
                name: Some(RestartPolicyNameEnum::NO),
                maximum_retry_count: None,
            }),
            log_config: Some(HostConfigLogConfig {
                typ: Some("json-file".into()),
                config: Some(HashMap::from([
                    (
                        "max-size".into(),
                        self.config.log_file_bytes_max.to_string(),
                    ),
                    ("max-file".into(), self.config.log_files_max.to_string()),
                ])),
            }),
            security_opt: Some(vec!["no-new-privileges".into()]),
            ..Default::default()
        };
        let endpoint = EndpointSettings {
            aliases: Some(vec![spec.component.clone()]),
            ..Default::default()
        };
        ContainerCreateBody {
            image: Some(spec.image.clone()),
            env: Some(env),
            cmd: (!spec.command.is_empty()).then(|| spec.command.clone()),
            labels: Some(spec.all_labels().into_iter().collect()),
            exposed_ports: Some(
                spec.ports
                    .iter()
                    .map(|p| port_key(p.container_port))
                    .collect(),
            ),
            host_config: Some(host_config),
            networking_config: Some(NetworkingConfig {
                endpoints_config: Some(HashMap::from([(spec.network.clone(), endpoint)])),
            }),
            ..Default::default()
        }
    }

    /// Inspects a container and checks it belongs to this node.
    async fn own_instance(&self, id: &str) -> Result<Instance, AgentError> {
        let found = match self.docker.inspect_container(id, None).await {
            Ok(found) => found,
            Err(e) if is_not_found(&e) => return Err(AgentError::NotFound { id: id.into() }),
            Err(e) => return Err(docker_error(format!("inspect container {id}"), e)),
        };
        let labels: BTreeMap<String, String> = found
            .config
            .as_ref()
            .and_then(|c| c.labels.clone())
            .unwrap_or_default()
            .into_iter()
            .collect();
        let Some((node, key, spec_hash)) = key_from_labels(&labels) else {
            return Err(AgentError::NotFound { id: id.into() });
        };
        if node != self.node {
            return Err(AgentError::NotFound { id: id.into() });
        }
        let state = found.state.unwrap_or_default();
        let instance_state = match state.status {
            Some(ContainerStateStatusEnum::RUNNING) if state.restarting == Some(true) => {
                InstanceState::Restarting
            }
            Some(ContainerStateStatusEnum::RUNNING) => InstanceState::Running,
            Some(ContainerStateStatusEnum::RESTARTING) => InstanceState::Restarting,
            Some(ContainerStateStatusEnum::CREATED) => InstanceState::Created,
            Some(ContainerStateStatusEnum::EXITED | ContainerStateStatusEnum::STOPPING)
                if state.oom_killed == Some(true) =>
            {
                InstanceState::Failed {
                    reason: "killed for using more memory than its limit".into(),
                }
            }
            Some(ContainerStateStatusEnum::EXITED | ContainerStateStatusEnum::STOPPING) => {
                InstanceState::Exited {
                    code: state.exit_code.unwrap_or(-1),
                }
            }
            other => InstanceState::Failed {
                reason: match state.error.filter(|e| !e.is_empty()) {
                    Some(error) => error,
                    None => format!(
                        "container is {}",
                        other.map(|s| s.to_string()).unwrap_or_default()
                    ),
                },
            },
        };
        Ok(Instance {
            id: found.id.unwrap_or_else(|| id.to_string()),
            key,
            spec_hash,
            state: instance_state,
        })
    }

    async fn create(&self, spec: &InstanceSpec, name: &str) -> Result<String, BollardError> {
        let volume = spec.data_path.as_ref().map(|_| name);
        let options = CreateContainerOptionsBuilder::default().name(name).build();
        let created = self
            .docker
            .create_container(Some(options), self.container_body(spec, volume))
            .await?;
        Ok(created.id)
    }
}

#[async_trait]
impl Driver for DockerDriver {
    fn kind(&self) -> DriverKind {
        DriverKind::Docker
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
        if spec.image.is_empty() {
            return Err(AgentError::InvalidSpec {
                key: spec.key().to_string(),
                reason: "the Docker driver runs an image, and this spec names none".into(),
            });
        }
        let name = instance_name(&self.node, &spec.key());
        self.ensure_image(&spec.image).await?;
        self.ensure_network(spec).await?;
        if spec.data_path.is_some() {
            self.ensure_volume(spec, &name).await?;
        }
        let id = match self.create(spec, &name).await {
            Ok(id) => id,
            Err(e) if status_code(&e) == Some(409) => {
                // A container of ours with this name is left from an earlier
                // spec or an interrupted start: replace it. Someone else's is
                // an error the operator must resolve.
                match self.own_instance(&name).await {
                    Ok(old) => {
                        warn!(key = %spec.key(), old = %old.id, "replacing a leftover container with the same name");
                        self.destroy(&old.id).await?;
                        self.create(spec, &name)
                            .await
                            .map_err(|e| docker_error(format!("create container {name}"), e))?
                    }
                    Err(_) => {
                        return Err(AgentError::Docker {
                            operation: format!("create container {name}"),
                            reason: "a container with this name exists and does not belong to this node; remove it".into(),
                        });
                    }
                }
            }
            Err(e) => return Err(docker_error(format!("create container {name}"), e)),
        };
        self.docker
            .start_container(&id, None)
            .await
            .map_err(|e| docker_error(format!("start container {name}"), e))?;
        info!(key = %spec.key(), id = %short(&id), "container started");
        self.own_instance(&id).await
    }

    async fn restart(&self, id: &str) -> Result<Instance, AgentError> {
        let instance = self.own_instance(id).await?;
        self.docker
            .start_container(id, None)
            .await
            .map_err(|e| docker_error(format!("start container {}", short(id)), e))?;
        info!(key = %instance.key, id = %short(id), "container restarted");
        self.own_instance(id).await
    }

    async fn inspect(&self, id: &str) -> Result<Instance, AgentError> {
        self.own_instance(id).await
    }

    async fn stop(&self, id: &str) -> Result<(), AgentError> {
        self.own_instance(id).await?;
        let grace = i32::try_from(self.config.stop_grace_s).unwrap_or(i32::MAX);
        let options = StopContainerOptionsBuilder::default().t(grace).build();
        match self.docker.stop_container(id, Some(options)).await {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Err(AgentError::NotFound { id: id.into() }),
            Err(e) => Err(docker_error(format!("stop container {}", short(id)), e)),
        }
    }

    async fn destroy(&self, id: &str) -> Result<(), AgentError> {
        let instance = match self.own_instance(id).await {
            Ok(instance) => instance,
            Err(AgentError::NotFound { .. }) => return Ok(()),
            Err(e) => return Err(e),
        };
        let options = RemoveContainerOptionsBuilder::default().force(true).build();
        match self.docker.remove_container(id, Some(options)).await {
            Ok(()) => {}
            Err(e) if is_not_found(&e) => {}
            // 409: removal already in progress.
            Err(e) if status_code(&e) == Some(409) => {}
            Err(e) => return Err(docker_error(format!("remove container {}", short(id)), e)),
        }
        info!(key = %instance.key, id = %short(id), "container removed");
        Ok(())
    }

    async fn list(&self) -> Result<Inventory, AgentError> {
        let filters = self.own_filter(&[]);
        let containers = self
            .docker
            .list_containers(Some(
                ListContainersOptionsBuilder::default()
                    .all(true)
                    .filters(&filters)
                    .build(),
            ))
            .await
            .map_err(|e| docker_error("list containers", e))?;
        let mut inventory = Inventory::default();
        for container in containers {
            let labels: BTreeMap<String, String> =
                container.labels.unwrap_or_default().into_iter().collect();
            let Some((node, key, spec_hash)) = key_from_labels(&labels) else {
                continue;
            };
            if node != self.node {
                continue;
            }
            let status = container.status.unwrap_or_default();
            let state = match container.state {
                Some(ContainerSummaryStateEnum::RUNNING) => InstanceState::Running,
                Some(ContainerSummaryStateEnum::RESTARTING) => InstanceState::Restarting,
                Some(ContainerSummaryStateEnum::CREATED) => InstanceState::Created,
                Some(ContainerSummaryStateEnum::EXITED | ContainerSummaryStateEnum::STOPPING) => {
                    InstanceState::Exited {
                        code: exit_code_from_status(&status).unwrap_or(-1),
                    }
                }
                _ => InstanceState::Failed {
                    reason: format!("container is {status}"),
                },
            };
            let Some(id) = container.id else { continue };
            inventory.instances.push(Instance {
                id,
                key,
                spec_hash,
                state,
            });
        }
        let volumes = self
            .docker
            .list_volumes(Some(
                ListVolumesOptionsBuilder::default()
                    .filters(&filters)
                    .build(),
            ))
            .await
            .map_err(|e| docker_error("list volumes", e))?;
        for volume in volumes.volumes.unwrap_or_default() {
            let labels: BTreeMap<String, String> = volume.labels.into_iter().collect();
            if let Some((node, key, _)) = key_from_labels(&labels)
                && node == self.node
            {
                inventory.volumes.insert(key);
            }
        }
        let networks = self
            .docker
            .list_networks(Some(
                ListNetworksOptionsBuilder::default()
                    .filters(&filters)
                    .build(),
            ))
            .await
            .map_err(|e| docker_error("list networks", e))?;
        for network in networks {
            let labels = network.labels.unwrap_or_default();
            if labels.get(LABEL_NODE) == Some(&self.node)
                && let Some(app) = labels.get(LABEL_APP)
            {
                inventory.networks.insert(app.clone());
            }
        }
        Ok(inventory)
    }

    async fn logs(&self, id: &str, options: LogOptions) -> Result<LogChunks, AgentError> {
        self.own_instance(id).await?;
        let tail = options.tail_lines.min(LOG_TAIL_LINES_MAX).to_string();
        let request = LogsOptionsBuilder::default()
            .follow(options.follow)
            .stdout(true)
            .stderr(true)
            .tail(&tail)
            .build();
        let operation = format!("logs of {}", short(id));
        let stream = self
            .docker
            .logs(id, Some(request))
            // A container removed while its logs are read ends the stream;
            // that is the end of its output, not a failure.
            .take_while(|item| {
                let gone = matches!(item, Err(e) if container_gone(e));
                futures_util::future::ready(!gone)
            })
            .map(move |item| match item {
                Ok(output) => {
                    let stream = match output {
                        bollard::container::LogOutput::StdErr { .. } => LogStream::Stderr,
                        _ => LogStream::Stdout,
                    };
                    let data = output.into_bytes();
                    Ok(data
                        .chunks(LOG_CHUNK_BYTES_MAX)
                        .map(|piece| {
                            Ok(LogChunk {
                                stream,
                                data: piece.to_vec(),
                            })
                        })
                        .collect::<Vec<_>>())
                }
                Err(e) => Err(docker_error(operation.clone(), e)),
            })
            .flat_map(|item| match item {
                Ok(chunks) => futures_util::stream::iter(chunks),
                Err(e) => futures_util::stream::iter(vec![Err(e)]),
            });
        Ok(Box::pin(stream))
    }

    async fn stats(&self, id: &str) -> Result<Stats, AgentError> {
        self.own_instance(id).await?;
        // stream=false makes the engine take two samples, so the reading
        // carries a CPU delta.
        let options = StatsOptionsBuilder::default().stream(false).build();
        let reading = self
            .docker
            .stats(id, Some(options))
            .next()
            .await
            .ok_or_else(|| AgentError::Docker {
                operation: format!("stats of {}", short(id)),
                reason: "the engine sent no reading".into(),
            })?
            .map_err(|e| docker_error(format!("stats of {}", short(id)), e))?;
        Ok(stats_from(&reading))
    }

    async fn remove_volume(&self, key: &InstanceKey) -> Result<(), AgentError> {
        let instance = key.instance.to_string();
        let filters = self.own_filter(&[
            (LABEL_APP, &key.app),
            (LABEL_COMPONENT, &key.component),
            (LABEL_INSTANCE, &instance),
        ]);
        let volumes = self
            .docker
            .list_volumes(Some(
                ListVolumesOptionsBuilder::default()
                    .filters(&filters)
                    .build(),
            ))
            .await
            .map_err(|e| docker_error("list volumes", e))?;
        for volume in volumes.volumes.unwrap_or_default() {
            let options = RemoveVolumeOptionsBuilder::default().force(false).build();
            match self.docker.remove_volume(&volume.name, Some(options)).await {
                Ok(()) => info!(volume = %volume.name, "volume removed"),
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(docker_error(format!("remove volume {}", volume.name), e)),
            }
        }
        Ok(())
    }

    async fn remove_network(&self, app: &str) -> Result<(), AgentError> {
        let filters = self.own_filter(&[(LABEL_APP, app)]);
        let networks = self
            .docker
            .list_networks(Some(
                ListNetworksOptionsBuilder::default()
                    .filters(&filters)
                    .build(),
            ))
            .await
            .map_err(|e| docker_error("list networks", e))?;
        let _guard = self.network_lock.lock().await;
        for network in networks {
            let Some(id) = network.id else { continue };
            match self.docker.remove_network(&id).await {
                Ok(()) => info!(network = ?network.name, "network removed"),
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(docker_error(format!("remove network {id}"), e)),
            }
        }
        Ok(())
    }
}

fn stats_from(reading: &ContainerStatsResponse) -> Stats {
    let cpu = reading.cpu_stats.clone().unwrap_or_default();
    let pre = reading.precpu_stats.clone().unwrap_or_default();
    let total = |s: &bollard::models::ContainerCpuStats| {
        s.cpu_usage
            .as_ref()
            .and_then(|u| u.total_usage)
            .unwrap_or(0)
    };
    let cpu_delta = total(&cpu).saturating_sub(total(&pre));
    let system_delta = cpu
        .system_cpu_usage
        .unwrap_or(0)
        .saturating_sub(pre.system_cpu_usage.unwrap_or(0));
    let online = cpu.online_cpus.unwrap_or(1).max(1);
    let cpu_percent = if system_delta > 0 {
        cpu_delta as f64 / system_delta as f64 * f64::from(online) * 100.0
    } else {
        0.0
    };
    let memory = reading.memory_stats.clone().unwrap_or_default();
    // Page cache that can be reclaimed is not the container's own use
    // (the same correction `docker stats` makes).
    let inactive = memory
        .stats
        .as_ref()
        .and_then(|s| {
            s.get("inactive_file")
                .or_else(|| s.get("total_inactive_file"))
                .copied()
        })
        .unwrap_or(0);
    let (rx, tx) = reading
        .networks
        .as_ref()
        .map(|networks| {
            networks.values().fold((0, 0), |(rx, tx), n| {
                (rx + n.rx_bytes.unwrap_or(0), tx + n.tx_bytes.unwrap_or(0))
            })
        })
        .unwrap_or((0, 0));
    Stats {
        cpu_percent,
        memory_bytes: memory.usage.unwrap_or(0).saturating_sub(inactive),
        memory_limit_bytes: memory.limit.unwrap_or(0),
        network_rx_bytes: rx,
        network_tx_bytes: tx,
    }
}

/// Splits `repo:tag` for a pull; a reference without a tag pulls `latest`
/// (never every tag), one with a digest is passed whole.
fn split_reference(image: &str) -> (&str, Option<&str>) {
    if image.contains('@') {
        return (image, None);
    }
    let last_slash = image.rfind('/').map_or(0, |i| i + 1);
    match image[last_slash..].rfind(':') {
        Some(colon) => {
            let at = last_slash + colon;
            (&image[..at], Some(&image[at + 1..]))
        }
        None => (image, Some("latest")),
    }
}

/// Reads `137` out of a summary status such as `Exited (137) 5 seconds ago`.
fn exit_code_from_status(status: &str) -> Option<i64> {
    let open = status.find('(')?;
    let close = status[open..].find(')')? + open;
    status[open + 1..close].trim().parse().ok()
}

fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

fn status_code(e: &BollardError) -> Option<u16> {
    match e {
        BollardError::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

/// Whether an error says the container is gone or going (removed, dead).
fn container_gone(e: &BollardError) -> bool {
    is_not_found(e)
        || matches!(e, BollardError::DockerResponseServerError { message, .. }
            if message.contains("marked for removal") || message.contains("is dead"))
}

fn is_not_found(e: &BollardError) -> bool {
    status_code(e) == Some(404)
}

fn error_message(e: &BollardError) -> String {
    match e {
        BollardError::DockerResponseServerError { message, .. } => message.clone(),
        BollardError::DockerStreamError { error } => error.clone(),
        other => other.to_string(),
    }
}

/// The /16 whose /24s app networks use (as Flux does: 172.23.N.0/24).
const APP_SUBNETS: [u8; 2] = [172, 23];

/// The /24 number a network's name starts its search at (FNV-1a).
fn subnet_slot(name: &str) -> u8 {
    let hash = name.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    hash.to_le_bytes()[0]
}

/// The app subnet with third octet `n`.
fn app_subnet(n: u8) -> String {
    format!("{}.{}.{n}.0/24", APP_SUBNETS[0], APP_SUBNETS[1])
}

fn docker_error(operation: impl Into<String>, e: BollardError) -> AgentError {
    AgentError::Docker {
        operation: operation.into(),
        reason: error_message(&e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_split_into_repository_and_tag() {
        assert_eq!(
            split_reference("flux-hello:latest"),
            ("flux-hello", Some("latest"))
        );
        assert_eq!(split_reference("nginx"), ("nginx", Some("latest")));
        assert_eq!(
            split_reference("registry.local:5000/team/app:1.2"),
            ("registry.local:5000/team/app", Some("1.2"))
        );
        assert_eq!(
            split_reference("registry.local:5000/team/app"),
            ("registry.local:5000/team/app", Some("latest"))
        );
        assert_eq!(
            split_reference("app@sha256:abcd"),
            ("app@sha256:abcd", None)
        );
    }

    #[test]
    fn exit_codes_are_read_from_summaries() {
        assert_eq!(
            exit_code_from_status("Exited (137) 5 seconds ago"),
            Some(137)
        );
        assert_eq!(
            exit_code_from_status("Exited (0) About a minute ago"),
            Some(0)
        );
        assert_eq!(exit_code_from_status("Created"), None);
    }
}

//! What one instance of a component should look like on this node.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use flux_types::{AppSpec, Component};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::AgentError;

/// Label naming the node that owns a container, network or volume.
pub const LABEL_NODE: &str = "flux.node";
/// Label naming the app.
pub const LABEL_APP: &str = "flux.app";
/// Label naming the component within the app.
pub const LABEL_COMPONENT: &str = "flux.component";
/// Label holding the instance index.
pub const LABEL_INSTANCE: &str = "flux.instance";
/// Label holding [`InstanceSpec::spec_hash`], so a changed spec is recreated
/// and an unchanged one is adopted.
pub const LABEL_SPEC_HASH: &str = "flux.spec";
/// Prefix every label the agent itself sets starts with; extra labels in a
/// spec may not use it except `flux.test`, which tests use to find and
/// clean up what they created.
pub const LABEL_PREFIX: &str = "flux.";
/// The one extra label allowed under [`LABEL_PREFIX`].
pub const LABEL_TEST: &str = "flux.test";

/// Longest name (node id, app, component) accepted in a spec, in bytes.
pub const NAME_LEN_MAX: usize = 96;
/// Most environment entries in one spec.
pub const ENV_COUNT_MAX: usize = 256;
/// Most command arguments in one spec.
pub const COMMAND_COUNT_MAX: usize = 256;
/// Most published ports in one spec.
pub const PORT_COUNT_MAX: usize = 16;
/// Most extra labels in one spec.
pub const LABEL_COUNT_MAX: usize = 32;
/// Longest single environment entry, argument, label or path, in bytes.
pub const TEXT_LEN_MAX: usize = 8_192;

/// Identifies one instance within this node: app, component and index.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct InstanceKey {
    /// App name.
    pub app: String,
    /// Component name within the app.
    pub component: String,
    /// Instance index of the app (0-based).
    pub instance: u32,
}

impl fmt::Display for InstanceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}#{}", self.app, self.component, self.instance)
    }
}

/// One published port: `host_ip:host_port` on the node forwards to
/// `container_port` inside the instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PortMapping {
    /// Port on the node's host address.
    pub host_port: u16,
    /// Port the component listens on inside its container.
    pub container_port: u16,
}

/// Everything a driver needs to run one instance of one component.
///
/// Built by the node from a finalized placement and the app's spec
/// ([`InstanceSpec::from_component`]); drivers never read chain state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceSpec {
    /// Id of the node that runs the instance (its address as text).
    pub node: String,
    /// App name.
    pub app: String,
    /// Component name; other components of the app reach it by this name.
    pub component: String,
    /// Instance index of the app (0-based).
    pub instance: u32,
    /// Image reference `[registry/]repository:tag`.
    pub image: String,
    /// Environment entries `KEY=VALUE`.
    pub env: Vec<String>,
    /// Command arguments; empty keeps the image's default command.
    pub command: Vec<String>,
    /// Published ports.
    pub ports: Vec<PortMapping>,
    /// Host address the ports are published on (a devnet node uses its own
    /// loopback address, so several nodes on one machine can publish the
    /// same port).
    pub host_ip: IpAddr,
    /// CPU limit in tenths of a core; 0 means no limit.
    pub cpu_tenths: u32,
    /// Memory limit in MB; 0 means no limit.
    pub ram_mb: u32,
    /// Path inside the instance where its persistent volume is mounted;
    /// `None` for no volume.
    pub data_path: Option<String>,
    /// HTTP path the prober requests; empty means a TCP connect.
    pub health_path: String,
    /// Name of the app's private network on this node.
    pub network: String,
    /// Extra labels (only `flux.test` may use the `flux.` prefix).
    pub labels: BTreeMap<String, String>,
}

impl InstanceSpec {
    /// The spec of instance `instance` of `component` of `app`, placed on `node`.
    ///
    /// `containerData` with a sync mode prefix (`r:/data`, `g:/data`) mounts
    /// the same path; syncing between instances is not the driver's job.
    pub fn from_component(
        node: &str,
        app: &AppSpec,
        component: &Component,
        instance: u32,
        host_ip: IpAddr,
    ) -> InstanceSpec {
        let data = component.container_data.trim();
        let data = data.rsplit_once(':').map_or(data, |(_, path)| path);
        InstanceSpec {
            node: node.to_string(),
            app: app.name.clone(),
            component: component.name.clone(),
            instance,
            image: component.repotag.clone(),
            env: component.environment.clone(),
            command: component.commands.clone(),
            ports: component
                .ports
                .iter()
                .zip(&component.container_ports)
                .map(|(&host_port, &container_port)| PortMapping {
                    host_port,
                    container_port,
                })
                .collect(),
            host_ip,
            cpu_tenths: component.cpu_tenths,
            ram_mb: component.ram_mb,
            data_path: (!data.is_empty()).then(|| data.to_string()),
            health_path: component.health_path.clone(),
            network: network_name(node, &app.name),
            labels: BTreeMap::new(),
        }
    }

    /// The specs of every component of instance `instance` of `app`: in
    /// Flux all components of one app instance run together on one node,
    /// so they can reach each other by component name.
    pub fn for_app_instance(
        node: &str,
        app: &AppSpec,
        instance: u32,
        host_ip: IpAddr,
    ) -> Vec<InstanceSpec> {
        app.components
            .iter()
            .map(|component| InstanceSpec::from_component(node, app, component, instance, host_ip))
            .collect()
    }

    /// The key of this instance.
    pub fn key(&self) -> InstanceKey {
        InstanceKey {
            app: self.app.clone(),
            component: self.component.clone(),
            instance: self.instance,
        }
    }

    /// A hash of everything that shapes the running instance. Two specs with
    /// the same hash give the same container, so an instance found with this
    /// hash in its labels is adopted as is; any other hash is recreated.
    pub fn spec_hash(&self) -> String {
        let encoded = serde_json::to_vec(self).expect("an InstanceSpec always encodes as JSON");
        let digest = Sha256::new()
            .chain_update(b"FLUX/instance-spec/v1")
            .chain_update(encoded)
            .finalize();
        hex::encode(&digest[..16])
    }

    /// The labels a driver puts on the instance: the extra labels, then
    /// node, app, component, instance and spec hash.
    pub fn all_labels(&self) -> BTreeMap<String, String> {
        let mut labels = self.labels.clone();
        labels.insert(LABEL_NODE.into(), self.node.clone());
        labels.insert(LABEL_APP.into(), self.app.clone());
        labels.insert(LABEL_COMPONENT.into(), self.component.clone());
        labels.insert(LABEL_INSTANCE.into(), self.instance.to_string());
        labels.insert(LABEL_SPEC_HASH.into(), self.spec_hash());
        labels
    }

    /// Environment the agent adds to every instance, before the spec's own.
    pub fn flux_env(&self) -> Vec<String> {
        vec![
            format!("FLUX_NODE={}", self.node),
            format!("FLUX_APP={}", self.app),
            format!("FLUX_COMPONENT={}", self.component),
            format!("FLUX_INSTANCE={}", self.instance),
        ]
    }

    /// Checks the limits and the characters of names; a spec comes from
    /// chain state, which is validated already, but a driver turns these
    /// strings into container names, paths and process arguments.
    pub fn validate(&self) -> Result<(), AgentError> {
        let invalid = |reason: String| AgentError::InvalidSpec {
            key: self.key().to_string(),
            reason,
        };
        for (what, name) in [
            ("node id", &self.node),
            ("app name", &self.app),
            ("component name", &self.component),
            ("network name", &self.network),
        ] {
            if name.is_empty() || name.len() > NAME_LEN_MAX {
                return Err(invalid(format!(
                    "the {what} must be 1 to {NAME_LEN_MAX} bytes long"
                )));
            }
            if !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
                || name.starts_with(['-', '.'])
            {
                return Err(invalid(format!(
                    "the {what} {name:?} may contain only letters, digits, '-', '_' and '.', and must start with a letter or digit"
                )));
            }
        }
        if self.image.is_empty() && self.command.is_empty() {
            return Err(invalid(
                "the spec names neither an image nor a command".into(),
            ));
        }
        if self.env.len() > ENV_COUNT_MAX {
            return Err(invalid(format!(
                "more than {ENV_COUNT_MAX} environment entries"
            )));
        }
        if self.command.len() > COMMAND_COUNT_MAX {
            return Err(invalid(format!(
                "more than {COMMAND_COUNT_MAX} command arguments"
            )));
        }
        if self.ports.len() > PORT_COUNT_MAX {
            return Err(invalid(format!(
                "more than {PORT_COUNT_MAX} published ports"
            )));
        }
        if self.labels.len() > LABEL_COUNT_MAX {
            return Err(invalid(format!("more than {LABEL_COUNT_MAX} labels")));
        }
        for entry in &self.env {
            if !entry.contains('=') || entry.starts_with('=') {
                return Err(invalid(format!(
                    "environment entry {entry:?} is not of the form KEY=VALUE"
                )));
            }
        }
        let texts = self
            .env
            .iter()
            .chain(&self.command)
            .chain(self.labels.keys())
            .chain(self.labels.values())
            .chain(self.data_path.iter())
            .chain([&self.image, &self.health_path]);
        for text in texts {
            if text.len() > TEXT_LEN_MAX || text.contains('\0') {
                return Err(invalid(format!(
                    "a value is longer than {TEXT_LEN_MAX} bytes or contains a NUL byte"
                )));
            }
        }
        for key in self.labels.keys() {
            if key.starts_with(LABEL_PREFIX) && key != LABEL_TEST {
                return Err(invalid(format!(
                    "label {key:?} uses the reserved prefix {LABEL_PREFIX:?}"
                )));
            }
        }
        if !self.health_path.is_empty()
            && (!self.health_path.starts_with('/')
                || self
                    .health_path
                    .bytes()
                    .any(|b| b.is_ascii_whitespace() || b.is_ascii_control()))
        {
            return Err(invalid(format!(
                "health path {:?} must start with '/' and contain no spaces or control characters",
                self.health_path
            )));
        }
        if let Some(path) = &self.data_path
            && (!path.starts_with('/') || path == "/")
        {
            return Err(invalid(format!(
                "data path {path:?} must be an absolute path below /"
            )));
        }
        Ok(())
    }
}

/// The name of an app's private network on a node. It names the node too,
/// because several devnet nodes share one Docker engine and each must be
/// free to remove its own network.
pub fn network_name(node: &str, app: &str) -> String {
    format!("flux-{app}-{node}")
}

/// The name of an instance's container (and of its volume).
pub fn instance_name(node: &str, key: &InstanceKey) -> String {
    format!("flux-{}-{}-{}-{node}", key.app, key.component, key.instance)
}

/// Reads the key, node and spec hash back from an instance's labels;
/// `None` when a label is missing or malformed, which marks something the
/// agent did not create.
pub(crate) fn key_from_labels(
    labels: &BTreeMap<String, String>,
) -> Option<(String, InstanceKey, String)> {
    let node = labels.get(LABEL_NODE)?.clone();
    let key = InstanceKey {
        app: labels.get(LABEL_APP)?.clone(),
        component: labels.get(LABEL_COMPONENT)?.clone(),
        instance: labels.get(LABEL_INSTANCE)?.parse().ok()?,
    };
    let hash = labels.get(LABEL_SPEC_HASH).cloned().unwrap_or_default();
    Some((node, key, hash))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn spec(node: &str, app: &str, component: &str, instance: u32) -> InstanceSpec {
        InstanceSpec {
            node: node.into(),
            app: app.into(),
            component: component.into(),
            instance,
            image: "flux-hello:latest".into(),
            env: vec!["GREETING=hello".into()],
            command: vec![],
            ports: vec![PortMapping {
                host_port: 31000,
                container_port: 8080,
            }],
            host_ip: "127.0.0.2".parse().unwrap(),
            cpu_tenths: 5,
            ram_mb: 300,
            data_path: Some("/data".into()),
            health_path: "/health".into(),
            network: network_name(node, app),
            labels: BTreeMap::new(),
        }
    }

    #[test]
    fn spec_hash_changes_with_the_spec() {
        let a = spec("n1", "hello", "web", 0);
        let mut b = a.clone();
        assert_eq!(a.spec_hash(), b.spec_hash());
        b.env.push("X=1".into());
        assert_ne!(a.spec_hash(), b.spec_hash());
    }

    #[test]
    fn labels_round_trip() {
        let a = spec("n1", "hello", "web", 2);
        let (node, key, hash) = key_from_labels(&a.all_labels()).unwrap();
        assert_eq!(node, "n1");
        assert_eq!(key, a.key());
        assert_eq!(hash, a.spec_hash());
    }

    #[test]
    fn validation_refuses_what_a_driver_cannot_name() {
        let check = |edit: fn(&mut InstanceSpec), fragment: &str| {
            let mut s = spec("n1", "hello", "web", 0);
            edit(&mut s);
            let error = s.validate().unwrap_err().to_string();
            assert!(error.contains(fragment), "{error}");
        };
        assert!(spec("n1", "hello", "web", 0).validate().is_ok());
        check(|s| s.app = "a/b".into(), "may contain only");
        check(|s| s.component = String::new(), "1 to");
        check(|s| s.env = vec!["NOEQUALS".into()], "KEY=VALUE");
        check(
            |s| {
                s.labels.insert("flux.node".into(), "other".into());
            },
            "reserved prefix",
        );
        check(|s| s.data_path = Some("data".into()), "absolute");
        check(
            |s| {
                s.image.clear();
                s.command.clear();
            },
            "neither",
        );
    }

    #[test]
    fn from_component_maps_ports_and_strips_the_sync_mode() {
        let app: AppSpec = AppSpec {
            name: "hello".into(),
            description: String::new(),
            owner: flux_types::Address([0; 20]),
            instances: 1,
            contacts: vec![],
            geolocation: vec![],
            nodes: vec![],
            static_ip: false,
            components: vec![],
        };
        let component = Component {
            name: "web".into(),
            description: String::new(),
            repotag: "flux-hello:latest".into(),
            ports: vec![31000, 31001],
            container_ports: vec![8080, 9090],
            domains: vec![],
            environment: vec!["A=1".into()],
            commands: vec![],
            container_data: "r:/data".into(),
            cpu_tenths: 5,
            ram_mb: 300,
            hdd_gb: 1,
            health_path: "/health".into(),
        };
        let s =
            InstanceSpec::from_component("n1", &app, &component, 1, "127.0.0.3".parse().unwrap());
        assert_eq!(s.data_path.as_deref(), Some("/data"));
        assert_eq!(s.ports[1].container_port, 9090);
        assert_eq!(s.network, "flux-hello-n1");
        s.validate().unwrap();
        let app = AppSpec {
            components: vec![
                component.clone(),
                Component {
                    name: "api".into(),
                    ..component
                },
            ],
            ..app
        };
        let all = InstanceSpec::for_app_instance("n1", &app, 2, "127.0.0.3".parse().unwrap());
        let keys: Vec<String> = all.iter().map(|s| s.key().to_string()).collect();
        assert_eq!(keys, ["hello/web#2", "hello/api#2"]);
    }
}

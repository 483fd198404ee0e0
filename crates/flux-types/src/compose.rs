//! A docker-compose file read as an app specification.
//!
//! Each service becomes a component of the same name: `image` → repotag,
//! `ports` (`"HOST:CONTAINER"`, or `"PORT"` for both) → ports and container
//! ports, `environment` (list or map) → environment, `command` (list, or a
//! string split on whitespace) → commands, `deploy.resources.limits`
//! (`cpus`, `memory`; or the service-level `cpus` and `mem_limit`) → CPU
//! and RAM, and at most one volume (`NAME:/path` or `/path`) →
//! containerData. `depends_on` in its list form is accepted: components
//! start together and reach each other by name, which is all ordering
//! gives. The app's name is the file's top-level `name`, its instance count
//! and description come from an optional top-level `x-flux` map
//! (`instances`, `description`).
//!
//! Whatever cannot be mapped (`build`, `networks`, bind mounts, a second
//! volume, `depends_on` conditions, ...) is refused, and the error names
//! every such key at once, so a file can be fixed in one pass.

use serde_yaml_ng::Value;

use crate::app::{AppSpec, Component, ParsedSpec, SpecError};
use crate::crypto::Address;

/// Instances of an app whose file does not say (`x-flux.instances`).
pub const INSTANCES_DEFAULT: u32 = 3;
/// CPU of a service without limits, tenths of a core.
pub const CPU_TENTHS_DEFAULT: u32 = 5;
/// Memory of a service without limits, MB.
pub const RAM_MB_DEFAULT: u32 = 500;
/// Disk of every service, GB.
pub const HDD_GB_DEFAULT: u32 = 1;

/// Service keys that are read.
const SERVICE_KEYS: &[&str] = &[
    "image",
    "ports",
    "environment",
    "command",
    "deploy",
    "cpus",
    "mem_limit",
    "volumes",
    "depends_on",
    "restart",
    "expose",
];

/// Top-level keys that are read.
const TOP_KEYS: &[&str] = &["name", "services", "volumes", "version", "x-flux"];

/// Whether `text` looks like a compose file: YAML with a top-level
/// `services` map.
pub fn is_compose(text: &str) -> bool {
    let trimmed = text.trim_start();
    !trimmed.starts_with('{')
        && serde_yaml_ng::from_str::<Value>(text)
            .ok()
            .is_some_and(|v| v.get("services").is_some_and(Value::is_mapping))
}

/// Reads a compose file as an app owned by `owner`. Every key that cannot be
/// mapped is named in one error.
pub fn parse_compose(text: &str, owner: Address) -> Result<ParsedSpec, SpecError> {
    let root: Value = serde_yaml_ng::from_str(text)
        .map_err(|e| SpecError::new("file", format!("not a valid compose file: {e}")))?;
    let Some(top) = root.as_mapping() else {
        return Err(SpecError::new("file", "a compose file is a YAML map"));
    };
    let mut problems = Vec::new();
    for key in top.keys() {
        let key = key_text(key);
        if !TOP_KEYS.contains(&key.as_str()) {
            problems.push(format!("{key}: {}", unmapped_reason(&key)));
        }
    }
    let name = match top.get("name").and_then(Value::as_str) {
        Some(name) => name.to_string(),
        None => {
            problems.push("name: the app needs a name (a top-level `name:`)".into());
            String::new()
        }
    };
    let flux = top.get("x-flux");
    let instances = match flux.and_then(|f| f.get("instances")) {
        None => INSTANCES_DEFAULT,
        Some(v) => match v.as_u64().and_then(|n| u32::try_from(n).ok()) {
            Some(n) => n,
            None => {
                problems.push("x-flux.instances: a whole number is expected".into());
                INSTANCES_DEFAULT
            }
        },
    };
    let description = flux
        .and_then(|f| f.get("description"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let mut components = Vec::new();
    match top.get("services").and_then(Value::as_mapping) {
        None => problems.push("services: a map of services is required".into()),
        Some(services) => {
            for (service, body) in services {
                let service = key_text(service);
                components.push(component(&service, body, &mut problems));
            }
        }
    }
    if !problems.is_empty() {
        return Err(SpecError::new(
            "compose",
            format!("cannot be mapped to a Flux app: {}", problems.join("; ")),
        ));
    }
    Ok(ParsedSpec {
        spec: AppSpec {
            name,
            description,
            owner,
            instances,
            contacts: Vec::new(),
            geolocation: Vec::new(),
            nodes: Vec::new(),
            static_ip: false,
            components,
        },
        months_hint: None,
    })
}

fn key_text(key: &Value) -> String {
    match key {
        Value::String(s) => s.clone(),
        other => serde_yaml_ng::to_string(other)
            .unwrap_or_default()
            .trim()
            .to_string(),
    }
}

fn unmapped_reason(key: &str) -> &'static str {
    match key {
        "build" => {
            "images are not built by the network; build and tag the image, then name it in `image`"
        }
        "networks" | "network_mode" => {
            "every app gets one network of its own, on which components reach each other by name"
        }
        "secrets" | "configs" => "not supported; pass values in `environment`",
        "healthcheck" => "not supported; the network probes each published port",
        _ => "not supported by Flux",
    }
}

fn component(service: &str, body: &Value, problems: &mut Vec<String>) -> Component {
    let at = |key: &str| format!("services.{service}.{key}");
    let mut component = Component {
        name: service.to_string(),
        description: String::new(),
        repotag: String::new(),
        ports: Vec::new(),
        container_ports: Vec::new(),
        domains: Vec::new(),
        environment: Vec::new(),
        commands: Vec::new(),
        container_data: String::new(),
        cpu_tenths: CPU_TENTHS_DEFAULT,
        ram_mb: RAM_MB_DEFAULT,
        hdd_gb: HDD_GB_DEFAULT,
        health_path: String::new(),
    };
    let Some(map) = body.as_mapping() else {
        problems.push(format!("services.{service}: a map is expected"));
        return component;
    };
    for key in map.keys() {
        let key = key_text(key);
        if !SERVICE_KEYS.contains(&key.as_str()) {
            problems.push(format!("{}: {}", at(&key), unmapped_reason(&key)));
        }
    }
    match map.get("image").and_then(Value::as_str) {
        Some(image) => component.repotag = image.to_string(),
        None => problems.push(format!("{}: every service needs an image", at("image"))),
    }
    if let Some(ports) = map.get("ports") {
        for port in ports.as_sequence().map(Vec::as_slice).unwrap_or_default() {
            let text = match port {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                _ => {
                    problems.push(format!(
                        "{}: only \"HOST:CONTAINER\" or \"PORT\" is supported",
                        at("ports")
                    ));
                    continue;
                }
            };
            match parse_port(&text) {
                Some((host, container)) => {
                    component.ports.push(host);
                    component.container_ports.push(container);
                    component.domains.push(String::new());
                }
                None => problems.push(format!(
                    "{}: '{text}' is not \"HOST:CONTAINER\" or \"PORT\" (no address, no range)",
                    at("ports")
                )),
            }
        }
    }
    match map.get("environment") {
        None => {}
        Some(Value::Sequence(items)) => {
            for item in items {
                match item.as_str() {
                    Some(entry) if entry.contains('=') => component.environment.push(entry.into()),
                    _ => problems.push(format!("{}: entries are KEY=VALUE", at("environment"))),
                }
            }
        }
        Some(Value::Mapping(entries)) => {
            for (key, value) in entries {
                let value = match value {
                    Value::Null => String::new(),
                    Value::String(s) => s.clone(),
                    other => key_text(other),
                };
                component
                    .environment
                    .push(format!("{}={value}", key_text(key)));
            }
        }
        Some(_) => problems.push(format!(
            "{}: a list or a map is expected",
            at("environment")
        )),
    }
    match map.get("command") {
        None => {}
        Some(Value::String(command)) => {
            if command.contains(['"', '\'', '\\']) {
                problems.push(format!(
                    "{}: a quoted command string cannot be split safely; write it as a list",
                    at("command")
                ));
            } else {
                component.commands = command.split_whitespace().map(str::to_string).collect();
            }
        }
        Some(Value::Sequence(items)) => {
            component.commands = items.iter().map(key_text).collect();
        }
        Some(_) => problems.push(format!("{}: a string or a list is expected", at("command"))),
    }
    let limits = map
        .get("deploy")
        .and_then(|d| d.get("resources"))
        .and_then(|r| r.get("limits"));
    if let Some(deploy) = map.get("deploy").and_then(Value::as_mapping) {
        for key in deploy.keys() {
            let key = key_text(key);
            if key != "resources" && key != "replicas" {
                problems.push(format!(
                    "{}: {}",
                    at(&format!("deploy.{key}")),
                    "not supported by Flux"
                ));
            }
        }
        if deploy.get("replicas").is_some() {
            problems.push(format!(
                "{}: instances are set for the whole app, in `x-flux.instances`",
                at("deploy.replicas")
            ));
        }
    }
    if let Some(cpus) = limits
        .and_then(|l| l.get("cpus"))
        .or_else(|| map.get("cpus"))
    {
        match number(cpus) {
            Some(cpus) if cpus > 0.0 => component.cpu_tenths = (cpus * 10.0).ceil() as u32,
            _ => problems.push(format!(
                "{}: a positive number of cores is expected",
                at("cpus")
            )),
        }
    }
    if let Some(memory) = limits
        .and_then(|l| l.get("memory"))
        .or_else(|| map.get("mem_limit"))
    {
        match memory_mb(memory) {
            // Flux counts memory in steps of 100 MB.
            Some(mb) if mb > 0 => component.ram_mb = mb.div_ceil(100).saturating_mul(100),
            _ => problems.push(format!(
                "{}: a size such as 256M or 1G is expected",
                at("memory")
            )),
        }
    }
    if let Some(volumes) = map.get("volumes") {
        let volumes = volumes.as_sequence().map(Vec::as_slice).unwrap_or_default();
        if volumes.len() > 1 {
            problems.push(format!(
                "{}: a component has at most one data volume",
                at("volumes")
            ));
        }
        if let Some(volume) = volumes.first() {
            match volume.as_str().and_then(volume_path) {
                Some(path) => component.container_data = path,
                None => problems.push(format!(
                    "{}: only a named volume (NAME:/path) or a path is supported, not a bind mount or long syntax",
                    at("volumes")
                )),
            }
        }
    }
    if let Some(depends) = map.get("depends_on")
        && !depends.is_sequence()
    {
        let plain = depends.as_mapping().is_some_and(|m| {
            m.values().all(|v| {
                v.get("condition")
                    .and_then(Value::as_str)
                    .is_none_or(|c| c == "service_started")
            })
        });
        if !plain {
            problems.push(format!(
                "{}: conditions are not supported; components start together and reach each other by name",
                at("depends_on")
            ));
        }
    }
    component
}

fn parse_port(text: &str) -> Option<(u16, u16)> {
    let text = text.strip_suffix("/tcp").unwrap_or(text);
    let parts: Vec<&str> = text.split(':').collect();
    match parts.as_slice() {
        [port] => {
            let port = port.parse().ok()?;
            Some((port, port))
        }
        [host, container] => Some((host.parse().ok()?, container.parse().ok()?)),
        _ => None,
    }
}

fn number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// A compose memory size in MB, rounded up: `256M`, `1G`, `512m`, `1gb`,
/// or a number of bytes.
fn memory_mb(value: &Value) -> Option<u32> {
    let text = match value {
        Value::Number(n) => return u32::try_from(n.as_u64()?.div_ceil(1 << 20)).ok(),
        Value::String(s) => s.trim().to_ascii_lowercase(),
        _ => return None,
    };
    let text = text.strip_suffix('b').unwrap_or(&text);
    let (digits, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit() && c != '.')?);
    let amount: f64 = digits.parse().ok()?;
    let mb = match unit {
        "k" => amount / 1024.0,
        "m" => amount,
        "g" => amount * 1024.0,
        _ => return None,
    };
    u32::try_from(mb.ceil() as u64).ok()
}

/// The container path of `NAME:/path` or `/path`; `None` for a bind mount.
fn volume_path(text: &str) -> Option<String> {
    let text = text.strip_suffix(":rw").unwrap_or(text);
    match text.split_once(':') {
        None if text.starts_with('/') => Some(text.to_string()),
        Some((source, path))
            if !source.starts_with(['.', '/', '~'])
                && path.starts_with('/')
                && !path.contains(':') =>
        {
            Some(path.to_string())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner() -> Address {
        crate::crypto::SecretKey::development("dev0").address()
    }

    #[test]
    fn services_become_components() {
        let text = r#"
name: shop
x-flux:
  instances: 2
  description: a shop
services:
  web:
    image: flux-hello:latest
    ports: ["31000:8080", "31001"]
    environment:
      GREETING: hi
      EMPTY:
    command: /bin/sh /hello.sh
    deploy:
      resources:
        limits: { cpus: "0.25", memory: 250M }
    volumes: ["data:/data"]
    depends_on: [api]
  api:
    image: flux-hello:latest
    environment: ["MODE=api"]
    command: ["httpd", "-f"]
    cpus: 1
    mem_limit: 1g
volumes:
  data: {}
"#;
        assert!(is_compose(text));
        let spec = parse_compose(text, owner()).unwrap().spec;
        assert_eq!(spec.name, "shop");
        assert_eq!(spec.instances, 2);
        assert_eq!(spec.description, "a shop");
        let web = &spec.components[0];
        assert_eq!(web.name, "web");
        assert_eq!(web.ports, vec![31000, 31001]);
        assert_eq!(web.container_ports, vec![8080, 31001]);
        assert_eq!(web.environment, vec!["GREETING=hi", "EMPTY="]);
        assert_eq!(web.commands, vec!["/bin/sh", "/hello.sh"]);
        assert_eq!((web.cpu_tenths, web.ram_mb), (3, 300));
        assert_eq!(web.container_data, "/data");
        let api = &spec.components[1];
        assert_eq!(api.commands, vec!["httpd", "-f"]);
        assert_eq!((api.cpu_tenths, api.ram_mb), (10, 1100));
        assert_eq!(api.hdd_gb, HDD_GB_DEFAULT);
    }

    #[test]
    fn every_unmappable_key_is_named() {
        let text = r#"
name: bad
networks: { back: {} }
services:
  web:
    build: .
    networks: [back]
    ports: ["127.0.0.1:80:80"]
    volumes: ["./site:/site", "logs:/logs"]
    depends_on:
      db: { condition: service_healthy }
    privileged: true
"#;
        let error = parse_compose(text, owner()).unwrap_err().to_string();
        for key in [
            "networks:",
            "services.web.build",
            "services.web.networks",
            "services.web.ports",
            "services.web.volumes",
            "services.web.depends_on",
            "services.web.privileged",
            "services.web.image",
        ] {
            assert!(error.contains(key), "{key} missing from: {error}");
        }
    }

    #[test]
    fn json_and_toml_are_not_compose() {
        assert!(!is_compose("{\"services\": {}}"));
        assert!(!is_compose("name = \"x\"\n"));
        assert!(parse_compose("services: [", owner()).is_err());
    }

    #[test]
    fn sizes_and_ports() {
        assert_eq!(memory_mb(&Value::String("512m".into())), Some(512));
        assert_eq!(memory_mb(&Value::String("1.5G".into())), Some(1536));
        assert_eq!(memory_mb(&Value::String("64kb".into())), Some(1));
        assert_eq!(memory_mb(&Value::String("lots".into())), None);
        assert_eq!(parse_port("80:8080/tcp"), Some((80, 8080)));
        assert_eq!(parse_port("80-90:80-90"), None);
        assert_eq!(volume_path("/data"), Some("/data".into()));
        assert_eq!(volume_path("./x:/data"), None);
    }
}

//! App specifications: the canonical form, its Flux v8 validation rules, and
//! the two file formats it is read from (Flux v8 JSON and the TOML form).

use std::collections::BTreeSet;

use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};

use crate::codec::{check_count, check_len};
use crate::crypto::Address;
use crate::node::CONTINENTS;
use crate::params::AppLimits;

/// Hard cap on names while decoding, before the params' own rules apply.
pub const NAME_LEN_HARD_MAX: usize = 64;
const TEXT_LEN_HARD_MAX: usize = 8_192;
const LIST_LEN_HARD_MAX: usize = 256;
const DOMAIN_LEN_MAX: usize = 253;
const HEALTH_PATH_LEN_MAX: usize = 256;

/// One container of an app.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, BorshSerialize, BorshDeserialize)]
pub struct Component {
    /// Name, unique within the app; other components reach it by this name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// Image reference `[registry/]repository:tag`.
    pub repotag: String,
    /// Ports published on the host.
    pub ports: Vec<u16>,
    /// Ports inside the container, one per published port.
    pub container_ports: Vec<u16>,
    /// Domains routed to each published port (empty string for none).
    pub domains: Vec<String>,
    /// Environment entries `KEY=VALUE`.
    pub environment: Vec<String>,
    /// Command arguments replacing the image's default command.
    pub commands: Vec<String>,
    /// Persistent data mount, e.g. `/data`, or with a sync mode `r:/data`, `g:/data`.
    pub container_data: String,
    /// CPU in tenths of a core.
    pub cpu_tenths: u32,
    /// Memory in MB.
    pub ram_mb: u32,
    /// Disk in GB.
    pub hdd_gb: u32,
    /// HTTP path probed for health; empty means a TCP connect to the first port.
    pub health_path: String,
}

/// An app: what its owner asks the network to run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, BorshSerialize, BorshDeserialize)]
pub struct AppSpec {
    /// Unique name of the app in the network; also its host name under the network domain.
    pub name: String,
    /// Free text.
    pub description: String,
    /// The account that owns (pays for, updates and removes) the app.
    pub owner: Address,
    /// How many instances run, each on a different node.
    pub instances: u32,
    /// Contact addresses of the owner.
    pub contacts: Vec<String>,
    /// Placement rules: `acEU`, `acEU_CZ` allow; `a!cNA_US` deny.
    pub geolocation: Vec<String>,
    /// Nodes the app is pinned to (empty: any node).
    pub nodes: Vec<Address>,
    /// Whether only nodes with a static IP may host it.
    pub static_ip: bool,
    /// The containers.
    pub components: Vec<Component>,
}

/// Why an app specification is invalid: which field, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct SpecError {
    /// Path of the offending field, e.g. `compose[0].cpu`.
    pub field: String,
    /// What is wrong and what to do.
    pub message: String,
}

impl SpecError {
    pub(crate) fn new(field: impl Into<String>, message: impl Into<String>) -> SpecError {
        SpecError {
            field: field.into(),
            message: message.into(),
        }
    }
}

fn is_alnum(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric())
}

impl AppSpec {
    /// Total CPU per instance in tenths of a core.
    pub fn cpu_tenths(&self) -> u32 {
        self.components.iter().map(|c| c.cpu_tenths).sum()
    }

    /// Total RAM per instance in MB.
    pub fn ram_mb(&self) -> u32 {
        self.components.iter().map(|c| c.ram_mb).sum()
    }

    /// Total disk per instance in GB.
    pub fn hdd_gb(&self) -> u32 {
        self.components.iter().map(|c| c.hdd_gb).sum()
    }

    /// Published ports of all components.
    pub fn ports(&self) -> impl Iterator<Item = u16> + '_ {
        self.components.iter().flat_map(|c| c.ports.iter().copied())
    }

    /// Hard limits checked while decoding untrusted bytes, before the
    /// network's own (governed) limits are applied by [`AppSpec::validate`].
    pub fn check_decode_limits(&self) -> Result<(), String> {
        check_len("name", &self.name, NAME_LEN_HARD_MAX)?;
        check_len("description", &self.description, TEXT_LEN_HARD_MAX)?;
        check_count("contacts", &self.contacts, LIST_LEN_HARD_MAX)?;
        check_count("geolocation", &self.geolocation, LIST_LEN_HARD_MAX)?;
        check_count("nodes", &self.nodes, LIST_LEN_HARD_MAX)?;
        check_count("compose", &self.components, 32)?;
        for text in self.contacts.iter().chain(&self.geolocation) {
            check_len("contact or geolocation entry", text, TEXT_LEN_HARD_MAX)?;
        }
        for c in &self.components {
            check_len("component name", &c.name, NAME_LEN_HARD_MAX)?;
            for text in [
                &c.description,
                &c.repotag,
                &c.container_data,
                &c.health_path,
            ] {
                check_len("component text", text, TEXT_LEN_HARD_MAX)?;
            }
            check_count("ports", &c.ports, LIST_LEN_HARD_MAX)?;
            check_count("containerPorts", &c.container_ports, LIST_LEN_HARD_MAX)?;
            check_count("domains", &c.domains, LIST_LEN_HARD_MAX)?;
            check_count("environmentParameters", &c.environment, LIST_LEN_HARD_MAX)?;
            check_count("commands", &c.commands, LIST_LEN_HARD_MAX)?;
            for text in c.domains.iter().chain(&c.environment).chain(&c.commands) {
                check_len("component entry", text, TEXT_LEN_HARD_MAX)?;
            }
        }
        Ok(())
    }

    /// Checks the specification against the network's limits (the Flux v8
    /// rules). Field paths in errors use the Flux v8 names (`compose[1].ram`).
    pub fn validate(&self, limits: &AppLimits) -> Result<(), SpecError> {
        let name_len = self.name.len() as u32;
        if !is_alnum(&self.name) {
            return Err(SpecError::new(
                "name",
                format!(
                    "'{}' must contain only letters and digits (a-z, A-Z, 0-9)",
                    self.name
                ),
            ));
        }
        if name_len < limits.name_len_min || name_len > limits.name_len_max {
            return Err(SpecError::new(
                "name",
                format!(
                    "must be {} to {} characters, '{}' has {name_len}",
                    limits.name_len_min, limits.name_len_max, self.name
                ),
            ));
        }
        let lowered = self.name.to_ascii_lowercase();
        if lowered.starts_with("zel") || lowered.starts_with("flux") {
            return Err(SpecError::new(
                "name",
                "names starting with 'zel' or 'flux' are reserved",
            ));
        }
        if self.description.len() > limits.description_len_max as usize {
            return Err(SpecError::new(
                "description",
                format!(
                    "is {} characters, at most {} allowed",
                    self.description.len(),
                    limits.description_len_max
                ),
            ));
        }
        if self.instances < limits.instances_min || self.instances > limits.instances_max {
            return Err(SpecError::new(
                "instances",
                format!(
                    "must be between {} and {}, got {}",
                    limits.instances_min, limits.instances_max, self.instances
                ),
            ));
        }
        if self.contacts.len() > limits.contacts_max as usize {
            return Err(SpecError::new(
                "contacts",
                format!("at most {} contacts allowed", limits.contacts_max),
            ));
        }
        for (i, contact) in self.contacts.iter().enumerate() {
            if contact.is_empty() || contact.len() > 254 || contact.chars().any(char::is_whitespace)
            {
                return Err(SpecError::new(
                    format!("contacts[{i}]"),
                    "must be a non-empty address without spaces",
                ));
            }
        }
        if self.geolocation.len() > limits.geolocation_max as usize {
            return Err(SpecError::new(
                "geolocation",
                format!("at most {} rules allowed", limits.geolocation_max),
            ));
        }
        for (i, rule) in self.geolocation.iter().enumerate() {
            validate_geolocation(rule)
                .map_err(|m| SpecError::new(format!("geolocation[{i}]"), m))?;
        }
        if self.nodes.len() > limits.pinned_nodes_max as usize {
            return Err(SpecError::new(
                "nodes",
                format!("at most {} pinned nodes allowed", limits.pinned_nodes_max),
            ));
        }
        if self.nodes.iter().collect::<BTreeSet<_>>().len() != self.nodes.len() {
            return Err(SpecError::new("nodes", "lists a node twice"));
        }
        if !self.nodes.is_empty() && (self.nodes.len() as u32) < self.instances {
            return Err(SpecError::new(
                "nodes",
                format!(
                    "pins {} nodes but asks for {} instances; each instance needs its own node",
                    self.nodes.len(),
                    self.instances
                ),
            ));
        }
        if self.components.is_empty() {
            return Err(SpecError::new(
                "compose",
                "an app needs at least one component",
            ));
        }
        if self.components.len() > limits.components_max as usize {
            return Err(SpecError::new(
                "compose",
                format!(
                    "has {} components, at most {} allowed",
                    self.components.len(),
                    limits.components_max
                ),
            ));
        }
        let mut names = BTreeSet::new();
        let mut ports = BTreeSet::new();
        for (i, component) in self.components.iter().enumerate() {
            validate_component(component, limits, &format!("compose[{i}]"))?;
            if !names.insert(component.name.to_ascii_lowercase()) {
                return Err(SpecError::new(
                    format!("compose[{i}].name"),
                    format!("'{}' is used by two components", component.name),
                ));
            }
            for port in &component.ports {
                if !ports.insert(*port) {
                    return Err(SpecError::new(
                        format!("compose[{i}].ports"),
                        format!("port {port} is published twice in this app"),
                    ));
                }
            }
        }
        let totals = [
            (
                "cpu",
                self.cpu_tenths(),
                limits.cpu_tenths_max,
                "tenths of a core",
            ),
            ("ram", self.ram_mb(), limits.ram_mb_max, "MB"),
            ("hdd", self.hdd_gb(), limits.hdd_gb_max, "GB"),
        ];
        for (field, total, max, unit) in totals {
            if total > max {
                return Err(SpecError::new(
                    field,
                    format!(
                        "the components together ask for {total} {unit}, at most {max} per instance"
                    ),
                ));
            }
        }
        Ok(())
    }
}

fn validate_component(c: &Component, limits: &AppLimits, at: &str) -> Result<(), SpecError> {
    let field = |name: &str| format!("{at}.{name}");
    if !is_alnum(&c.name) || c.name.len() > limits.name_len_max as usize {
        return Err(SpecError::new(
            field("name"),
            format!(
                "'{}' must be 1 to {} letters and digits",
                c.name, limits.name_len_max
            ),
        ));
    }
    if c.description.len() > limits.description_len_max as usize {
        return Err(SpecError::new(
            field("description"),
            format!("at most {} characters", limits.description_len_max),
        ));
    }
    if c.repotag.len() > limits.repotag_len_max as usize {
        return Err(SpecError::new(
            field("repotag"),
            format!("at most {} characters", limits.repotag_len_max),
        ));
    }
    validate_repotag(&c.repotag).map_err(|m| SpecError::new(field("repotag"), m))?;
    if c.ports.len() > limits.ports_per_component_max as usize {
        return Err(SpecError::new(
            field("ports"),
            format!(
                "has {} ports, at most {} allowed",
                c.ports.len(),
                limits.ports_per_component_max
            ),
        ));
    }
    for port in &c.ports {
        if let Some(range) = limits.banned_ports.iter().find(|r| r.contains(*port)) {
            return Err(SpecError::new(
                field("ports"),
                format!(
                    "port {port} is banned (range {}-{} is reserved); use a port in {}-{}",
                    range.first,
                    range.last,
                    limits.standard_ports.first,
                    limits.standard_ports.last
                ),
            ));
        }
    }
    if c.container_ports.len() != c.ports.len() {
        return Err(SpecError::new(
            field("containerPorts"),
            format!(
                "has {} entries but ports has {}; give one container port per published port",
                c.container_ports.len(),
                c.ports.len()
            ),
        ));
    }
    if c.container_ports.contains(&0) {
        return Err(SpecError::new(
            field("containerPorts"),
            "port 0 is not a port",
        ));
    }
    if !c.domains.is_empty() && c.domains.len() != c.ports.len() {
        return Err(SpecError::new(
            field("domains"),
            format!(
                "has {} entries but ports has {}; give one domain (or \"\") per port",
                c.domains.len(),
                c.ports.len()
            ),
        ));
    }
    for (i, domain) in c.domains.iter().enumerate() {
        validate_domain(domain).map_err(|m| SpecError::new(format!("{at}.domains[{i}]"), m))?;
    }
    if c.environment.len() > limits.env_entries_max as usize {
        return Err(SpecError::new(
            field("environmentParameters"),
            format!("at most {} entries allowed", limits.env_entries_max),
        ));
    }
    for (i, entry) in c.environment.iter().enumerate() {
        let at_entry = format!("{at}.environmentParameters[{i}]");
        if entry.len() > limits.arg_len_max as usize {
            return Err(SpecError::new(
                at_entry,
                format!("at most {} characters", limits.arg_len_max),
            ));
        }
        let Some((key, _)) = entry.split_once('=') else {
            return Err(SpecError::new(
                at_entry,
                format!("'{entry}' must be KEY=VALUE"),
            ));
        };
        let key_ok = key
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
            && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !key_ok {
            return Err(SpecError::new(
                at_entry,
                format!("'{key}' is not a valid variable name (letters, digits, _)"),
            ));
        }
    }
    if c.commands.len() > limits.commands_max as usize {
        return Err(SpecError::new(
            field("commands"),
            format!("at most {} arguments allowed", limits.commands_max),
        ));
    }
    if let Some(i) = c
        .commands
        .iter()
        .position(|a| a.len() > limits.arg_len_max as usize)
    {
        return Err(SpecError::new(
            format!("{at}.commands[{i}]"),
            format!("at most {} characters", limits.arg_len_max),
        ));
    }
    if c.container_data.len() > limits.container_data_len_max as usize {
        return Err(SpecError::new(
            field("containerData"),
            format!("at most {} characters", limits.container_data_len_max),
        ));
    }
    validate_container_data(&c.container_data)
        .map_err(|m| SpecError::new(field("containerData"), m))?;
    if c.cpu_tenths == 0 || c.cpu_tenths > limits.cpu_tenths_max {
        return Err(SpecError::new(
            field("cpu"),
            format!(
                "must be between 0.1 and {}.{} cores in steps of 0.1",
                limits.cpu_tenths_max / 10,
                limits.cpu_tenths_max % 10
            ),
        ));
    }
    if c.ram_mb < 100 || c.ram_mb > limits.ram_mb_max || !c.ram_mb.is_multiple_of(100) {
        return Err(SpecError::new(
            field("ram"),
            format!(
                "must be between 100 and {} MB in steps of 100, got {}",
                limits.ram_mb_max, c.ram_mb
            ),
        ));
    }
    if c.hdd_gb == 0 || c.hdd_gb > limits.hdd_gb_max {
        return Err(SpecError::new(
            field("hdd"),
            format!(
                "must be between 1 and {} GB, got {}",
                limits.hdd_gb_max, c.hdd_gb
            ),
        ));
    }
    if !c.health_path.is_empty()
        && (!c.health_path.starts_with('/')
            || c.health_path.len() > HEALTH_PATH_LEN_MAX
            || c.health_path.contains(char::is_whitespace))
    {
        return Err(SpecError::new(
            field("healthPath"),
            "must be an HTTP path starting with '/', without spaces",
        ));
    }
    if !c.health_path.is_empty() && c.ports.is_empty() {
        return Err(SpecError::new(
            field("healthPath"),
            "needs a published port to probe",
        ));
    }
    Ok(())
}

/// Checks an image reference `[host[:port]/]path[:tag][@sha256:digest]`.
fn validate_repotag(repotag: &str) -> Result<(), String> {
    if repotag.is_empty() {
        return Err("is empty; name an image such as 'nginx:1.25'".into());
    }
    let (name, digest) = match repotag.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (repotag, None),
    };
    if let Some(digest) = digest {
        let ok = digest
            .strip_prefix("sha256:")
            .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()));
        if !ok {
            return Err(format!(
                "'{repotag}' has a malformed digest; expected @sha256:<64 hex>"
            ));
        }
    }
    // The tag is after the last ':' that follows the last '/'.
    let last_slash = name.rfind('/').map_or(0, |i| i + 1);
    let (path, tag) = match name[last_slash..].rfind(':') {
        Some(i) => (&name[..last_slash + i], Some(&name[last_slash + i + 1..])),
        None => (name, None),
    };
    match tag {
        Some(tag) => {
            let ok = !tag.is_empty()
                && tag.len() <= 128
                && tag
                    .bytes()
                    .next()
                    .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
                && tag
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-');
            if !ok {
                return Err(format!("'{repotag}' has a malformed tag"));
            }
        }
        None if digest.is_none() => {
            return Err(format!(
                "'{repotag}' has no tag; name one explicitly, e.g. '{repotag}:latest'"
            ));
        }
        None => {}
    }
    let mut segments: Vec<&str> = path.split('/').collect();
    // A first segment with a dot, a colon or 'localhost' is a registry host.
    if segments.len() > 1
        && (segments[0].contains('.') || segments[0].contains(':') || segments[0] == "localhost")
    {
        let host = segments.remove(0);
        let ok = host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b':');
        if !ok {
            return Err(format!(
                "'{repotag}' has a malformed registry host '{host}'"
            ));
        }
    }
    for segment in segments {
        let ok = !segment.is_empty()
            && segment.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'_' || b == b'-'
            })
            && segment
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_alphanumeric())
            && segment
                .bytes()
                .last()
                .is_some_and(|b| b.is_ascii_alphanumeric());
        if !ok {
            return Err(format!(
                "'{repotag}' has a malformed repository part '{segment}' (lowercase letters, digits and . _ - only)"
            ));
        }
    }
    Ok(())
}

fn validate_domain(domain: &str) -> Result<(), String> {
    if domain.is_empty() {
        return Ok(());
    }
    if domain.len() > DOMAIN_LEN_MAX {
        return Err(format!("at most {DOMAIN_LEN_MAX} characters"));
    }
    for label in domain.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return Err(format!("'{domain}' is not a valid lowercase domain name"));
        }
    }
    Ok(())
}

fn validate_container_data(data: &str) -> Result<(), String> {
    if data.is_empty() {
        return Ok(());
    }
    let path = ["r:", "g:", "s:"]
        .iter()
        .find_map(|p| data.strip_prefix(p))
        .unwrap_or(data);
    let ok = path.starts_with('/')
        && path.len() > 1
        && !path.split('/').any(|part| part == "..")
        && path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-".contains(&b));
    if !ok {
        return Err(format!(
            "'{data}' must be an absolute path inside the container such as '/data', optionally with a sync mode 'r:' or 'g:'"
        ));
    }
    Ok(())
}

/// Checks one geolocation rule: `ac` (allow) or `a!c` (deny), then a continent
/// code, optionally `_COUNTRY` and `_REGION`: `acEU`, `acEU_CZ`, `a!cNA_US_CA`.
pub fn validate_geolocation(rule: &str) -> Result<(), String> {
    let body = rule
        .strip_prefix("a!c")
        .or_else(|| rule.strip_prefix("ac"))
        .ok_or_else(|| {
            format!("'{rule}' must start with 'ac' (allow) or 'a!c' (deny), e.g. acEU_CZ")
        })?;
    let parts: Vec<&str> = body.split('_').collect();
    if !CONTINENTS.contains(&parts[0]) {
        return Err(format!(
            "'{rule}' names unknown continent '{}'; use one of {}",
            parts[0],
            CONTINENTS.join(", ")
        ));
    }
    if parts.len() > 3 {
        return Err(format!(
            "'{rule}' has too many parts; at most CONTINENT_COUNTRY_REGION"
        ));
    }
    if let Some(country) = parts.get(1)
        && !(country.len() == 2 && country.bytes().all(|b| b.is_ascii_uppercase()))
    {
        return Err(format!(
            "'{rule}' has country '{country}', expected a two-letter ISO code"
        ));
    }
    if let Some(region) = parts.get(2)
        && (region.is_empty() || !region.bytes().all(|b| b.is_ascii_alphanumeric()))
    {
        return Err(format!("'{rule}' has a malformed region '{region}'"));
    }
    Ok(())
}

/// Converts a decimal CPU figure (`0.5`) to tenths, refusing anything that is
/// not a whole number of tenths.
fn cpu_to_tenths(cpu: f64, field: &str) -> Result<u32, SpecError> {
    let tenths = cpu * 10.0;
    if !tenths.is_finite()
        || !(0.0..=10_000.0).contains(&tenths)
        || (tenths - tenths.round()).abs() > 1e-6
    {
        return Err(SpecError::new(
            field,
            format!("{cpu} is not a number of cores in steps of 0.1"),
        ));
    }
    Ok(tenths.round() as u32)
}

fn whole_number(value: f64, field: &str, unit: &str) -> Result<u32, SpecError> {
    if !value.is_finite() || value < 0.0 || value > f64::from(u32::MAX) || value.fract() != 0.0 {
        return Err(SpecError::new(
            field,
            format!("{value} is not a whole number of {unit}"),
        ));
    }
    Ok(value as u32)
}

fn parse_owner(owner: Option<&str>, default_owner: Address) -> Result<Address, SpecError> {
    match owner {
        None | Some("") => Ok(default_owner),
        Some(text) => text
            .parse()
            .map_err(|e: crate::crypto::KeyParseError| SpecError::new("owner", e.to_string())),
    }
}

fn parse_nodes(nodes: &[String]) -> Result<Vec<Address>, SpecError> {
    nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            n.parse().map_err(|_| {
                SpecError::new(format!("nodes[{i}]"), format!("'{n}' is not a Flux node id (flux1…); pin nodes by their id, as `flux node list` shows it"))
            })
        })
        .collect()
}

/// A Flux v8 app specification as JSON (the format of the real Flux network).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FluxV8Spec {
    /// Must be 7 or 8.
    pub version: u32,
    /// App name.
    pub name: String,
    /// Description.
    #[serde(default)]
    pub description: String,
    /// Owner address; defaults to the deployer.
    #[serde(default)]
    pub owner: Option<String>,
    /// Components.
    pub compose: Vec<FluxV8Component>,
    /// Instance count.
    #[serde(default = "default_instances")]
    pub instances: u32,
    /// Contacts.
    #[serde(default)]
    pub contacts: Vec<String>,
    /// Geolocation rules.
    #[serde(default)]
    pub geolocation: Vec<String>,
    /// Lifetime in blocks of the real Flux (30 s each); used only to derive a
    /// period when none is given on the command line.
    #[serde(default)]
    pub expire: Option<u64>,
    /// Pinned node ids.
    #[serde(default)]
    pub nodes: Vec<String>,
    /// Static IP requirement.
    #[serde(default)]
    pub staticip: bool,
    /// Enterprise (encrypted) specification; not supported.
    #[serde(default)]
    pub enterprise: String,
}

fn default_instances() -> u32 {
    3
}

/// A Flux v8 component.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FluxV8Component {
    /// Name.
    pub name: String,
    /// Description.
    #[serde(default)]
    pub description: String,
    /// Image.
    pub repotag: String,
    /// Published ports.
    #[serde(default)]
    pub ports: Vec<u16>,
    /// Container ports.
    #[serde(default)]
    pub container_ports: Vec<u16>,
    /// Domains.
    #[serde(default)]
    pub domains: Vec<String>,
    /// Environment.
    #[serde(default)]
    pub environment_parameters: Vec<String>,
    /// Command.
    #[serde(default)]
    pub commands: Vec<String>,
    /// Data mount.
    #[serde(default)]
    pub container_data: String,
    /// Cores.
    pub cpu: f64,
    /// MB.
    pub ram: f64,
    /// GB.
    pub hdd: f64,
    /// Tiered resources (ignored when false; refused when true).
    #[serde(default)]
    pub tiered: bool,
    /// Enterprise secrets; not supported.
    #[serde(default)]
    pub secrets: String,
    /// Private registry credentials; not supported.
    #[serde(default)]
    pub repoauth: String,
    /// HTTP health path (an extension of this network).
    #[serde(default)]
    pub health_path: String,
}

/// Blocks of the real Flux chain per month (30 s blocks, 30 days).
const FLUX_BLOCKS_PER_MONTH: u64 = 86_400;

impl FluxV8Spec {
    /// Converts to the canonical form; `default_owner` fills a missing owner.
    pub fn into_spec(self, default_owner: Address) -> Result<AppSpec, SpecError> {
        if self.version != 7 && self.version != 8 {
            return Err(SpecError::new(
                "version",
                format!("{} is not supported; use 8", self.version),
            ));
        }
        if !self.enterprise.is_empty() {
            return Err(SpecError::new(
                "enterprise",
                "encrypted enterprise specifications are not supported; leave it empty",
            ));
        }
        let owner = parse_owner(self.owner.as_deref(), default_owner)?;
        let nodes = parse_nodes(&self.nodes)?;
        let mut components = Vec::with_capacity(self.compose.len());
        for (i, c) in self.compose.into_iter().enumerate() {
            let at = |f: &str| format!("compose[{i}].{f}");
            if c.tiered {
                return Err(SpecError::new(
                    at("tiered"),
                    "tiered specifications are not supported; give one cpu/ram/hdd",
                ));
            }
            if !c.secrets.is_empty() || !c.repoauth.is_empty() {
                return Err(SpecError::new(
                    at("secrets"),
                    "secrets and repoauth (enterprise features) are not supported",
                ));
            }
            components.push(Component {
                cpu_tenths: cpu_to_tenths(c.cpu, &at("cpu"))?,
                ram_mb: whole_number(c.ram, &at("ram"), "MB")?,
                hdd_gb: whole_number(c.hdd, &at("hdd"), "GB")?,
                name: c.name,
                description: c.description,
                repotag: c.repotag,
                ports: c.ports,
                container_ports: c.container_ports,
                domains: c.domains,
                environment: c.environment_parameters,
                commands: c.commands,
                container_data: c.container_data,
                health_path: c.health_path,
            });
        }
        Ok(AppSpec {
            name: self.name,
            description: self.description,
            owner,
            instances: self.instances,
            contacts: self.contacts,
            geolocation: self.geolocation,
            nodes,
            static_ip: self.staticip,
            components,
        })
    }

    /// The period in months implied by `expire`, rounded up, if given.
    pub fn months_from_expire(&self) -> Option<u32> {
        self.expire
            .map(|blocks| blocks.div_ceil(FLUX_BLOCKS_PER_MONTH).max(1) as u32)
    }
}

/// The TOML form of an app specification.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TomlSpec {
    /// App name.
    pub name: String,
    /// Description.
    #[serde(default)]
    pub description: String,
    /// Owner; defaults to the deployer.
    #[serde(default)]
    pub owner: Option<String>,
    /// Instances.
    #[serde(default = "default_instances")]
    pub instances: u32,
    /// Contacts.
    #[serde(default)]
    pub contacts: Vec<String>,
    /// Geolocation rules.
    #[serde(default)]
    pub geolocation: Vec<String>,
    /// Pinned nodes.
    #[serde(default)]
    pub nodes: Vec<String>,
    /// Static IP requirement.
    #[serde(default)]
    pub static_ip: bool,
    /// Components, as `[[component]]` tables.
    pub component: Vec<TomlComponent>,
}

/// A component in the TOML form.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TomlComponent {
    /// Name.
    pub name: String,
    /// Description.
    #[serde(default)]
    pub description: String,
    /// Image.
    pub image: String,
    /// Published ports.
    #[serde(default)]
    pub ports: Vec<u16>,
    /// Container ports.
    #[serde(default)]
    pub container_ports: Vec<u16>,
    /// Domains.
    #[serde(default)]
    pub domains: Vec<String>,
    /// Environment `KEY=VALUE`.
    #[serde(default)]
    pub environment: Vec<String>,
    /// Command.
    #[serde(default)]
    pub commands: Vec<String>,
    /// Data mount.
    #[serde(default)]
    pub container_data: String,
    /// Cores (0.1 steps).
    pub cpu: f64,
    /// MB (100 steps).
    pub ram_mb: u32,
    /// GB.
    pub hdd_gb: u32,
    /// HTTP health path.
    #[serde(default)]
    pub health_path: String,
}

impl TomlSpec {
    /// Converts to the canonical form.
    pub fn into_spec(self, default_owner: Address) -> Result<AppSpec, SpecError> {
        let owner = parse_owner(self.owner.as_deref(), default_owner)?;
        let nodes = parse_nodes(&self.nodes)?;
        let mut components = Vec::with_capacity(self.component.len());
        for (i, c) in self.component.into_iter().enumerate() {
            components.push(Component {
                cpu_tenths: cpu_to_tenths(c.cpu, &format!("component[{i}].cpu"))?,
                ram_mb: c.ram_mb,
                hdd_gb: c.hdd_gb,
                name: c.name,
                description: c.description,
                repotag: c.image,
                ports: c.ports,
                container_ports: c.container_ports,
                domains: c.domains,
                environment: c.environment,
                commands: c.commands,
                container_data: c.container_data,
                health_path: c.health_path,
            });
        }
        Ok(AppSpec {
            name: self.name,
            description: self.description,
            owner,
            instances: self.instances,
            contacts: self.contacts,
            geolocation: self.geolocation,
            nodes,
            static_ip: self.static_ip,
            components,
        })
    }
}

/// A specification read from a file, with the period it suggests.
#[derive(Debug, Clone)]
pub struct ParsedSpec {
    /// The canonical specification.
    pub spec: AppSpec,
    /// A period derived from the file (Flux v8 `expire`), if any.
    pub months_hint: Option<u32>,
}

/// Reads a Flux v8 JSON or TOML specification. JSON is recognised by its
/// leading `{`. Syntax errors name the line and column.
pub fn parse_spec(text: &str, default_owner: Address) -> Result<ParsedSpec, SpecError> {
    if text.trim_start().starts_with('{') {
        let v8: FluxV8Spec = serde_json::from_str(text)
            .map_err(|e| SpecError::new("file", format!("not a valid Flux v8 JSON spec: {e}")))?;
        let months_hint = v8.months_from_expire();
        Ok(ParsedSpec {
            spec: v8.into_spec(default_owner)?,
            months_hint,
        })
    } else {
        let t: TomlSpec = toml::from_str(text)
            .map_err(|e| SpecError::new("file", format!("not a valid TOML spec: {e}")))?;
        Ok(ParsedSpec {
            spec: t.into_spec(default_owner)?,
            months_hint: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::SecretKey;
    use crate::params::Params;

    fn owner() -> Address {
        SecretKey::development("owner").address()
    }

    fn v8(component: &str) -> String {
        format!(
            r#"{{"version":8,"name":"hello","description":"d","instances":3,"compose":[{component}]}}"#
        )
    }

    const GOOD: &str = r#"{"name":"web","repotag":"flux-hello:latest","ports":[31000],"containerPorts":[8080],"domains":[""],"environmentParameters":["GREETING=hi"],"commands":[],"containerData":"/data","cpu":0.5,"ram":300,"hdd":1}"#;

    /// Parses and validates; returns the field of the first error.
    fn check(text: &str) -> Result<AppSpec, String> {
        let parsed = parse_spec(text, owner()).map_err(|e| e.field.clone())?;
        parsed
            .spec
            .validate(&Params::mainnet().app_limits)
            .map_err(|e| e.field)?;
        Ok(parsed.spec)
    }

    #[test]
    fn accepts_a_good_v8_spec() {
        let spec = check(&v8(GOOD)).unwrap();
        assert_eq!(spec.components[0].cpu_tenths, 5);
        assert_eq!(spec.owner, owner());
        assert_eq!(spec.instances, 3);
    }

    #[test]
    fn rejects_each_rule_by_field() {
        let cases: Vec<(String, &str)> = vec![
            (
                GOOD.replace("\"cpu\":0.5", "\"cpu\":0.55"),
                "compose[0].cpu",
            ),
            (GOOD.replace("\"cpu\":0.5", "\"cpu\":16"), "compose[0].cpu"),
            (GOOD.replace("\"ram\":300", "\"ram\":350"), "compose[0].ram"),
            (GOOD.replace("\"hdd\":1", "\"hdd\":0"), "compose[0].hdd"),
            (GOOD.replace("[31000]", "[16127]"), "compose[0].ports"),
            (
                GOOD.replace("[8080]", "[8080,8081]"),
                "compose[0].containerPorts",
            ),
            (
                GOOD.replace("flux-hello:latest", "flux-hello"),
                "compose[0].repotag",
            ),
            (
                GOOD.replace("flux-hello:latest", "Flux_Hello:latest"),
                "compose[0].repotag",
            ),
            (
                GOOD.replace("GREETING=hi", "GREETING"),
                "compose[0].environmentParameters[0]",
            ),
            (
                GOOD.replace("\"/data\"", "\"data\""),
                "compose[0].containerData",
            ),
            (GOOD.replace("\"web\"", "\"web-1\""), "compose[0].name"),
        ];
        for (component, field) in cases {
            assert_eq!(check(&v8(&component)).unwrap_err(), field, "{component}");
        }
        let whole = v8(GOOD);
        assert_eq!(
            check(&whole.replace("\"hello\"", "\"hi\"")).unwrap_err(),
            "name"
        );
        assert_eq!(
            check(&whole.replace("\"hello\"", "\"fluxapp\"")).unwrap_err(),
            "name"
        );
        assert_eq!(
            check(&whole.replace("\"instances\":3", "\"instances\":101")).unwrap_err(),
            "instances"
        );
        assert_eq!(
            check(&whole.replace("\"version\":8", "\"version\":3")).unwrap_err(),
            "version"
        );
        assert_eq!(
            check(&whole.replace(
                "\"instances\":3",
                "\"instances\":3,\"geolocation\":[\"acXX\"]"
            ))
            .unwrap_err(),
            "geolocation[0]"
        );
        assert_eq!(
            check(&whole.replace("\"instances\":3", "\"instances\":3,\"bogus\":1")).unwrap_err(),
            "file"
        );
        let two = v8(&format!("{GOOD},{GOOD}"));
        assert_eq!(check(&two).unwrap_err(), "compose[1].name");
        let eleven = v8(&(0..11)
            .map(|i| {
                GOOD.replace("\"web\"", &format!("\"c{i}\""))
                    .replace("31000", &format!("{}", 31000 + i))
            })
            .collect::<Vec<_>>()
            .join(","));
        assert_eq!(check(&eleven).unwrap_err(), "compose");
    }

    #[test]
    fn geolocation_rules() {
        for ok in ["acEU", "acEU_CZ", "a!cNA_US", "acNA_US_CA"] {
            assert!(validate_geolocation(ok).is_ok(), "{ok}");
        }
        for bad in ["EU", "acXX", "acEU_cz", "ac", "acEU_CZ_A_B"] {
            assert!(validate_geolocation(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn toml_form_matches_json_form() {
        let toml = r#"
name = "hello"
description = "d"
instances = 3
[[component]]
name = "web"
image = "flux-hello:latest"
ports = [31000]
container_ports = [8080]
domains = [""]
environment = ["GREETING=hi"]
container_data = "/data"
cpu = 0.5
ram_mb = 300
hdd_gb = 1
"#;
        assert_eq!(check(toml).unwrap(), check(&v8(GOOD)).unwrap());
    }

    #[test]
    fn repotags() {
        for ok in [
            "nginx:1.25",
            "library/nginx:latest",
            "localhost:5000/a/b:v1",
            "ghcr.io/x/y:1.0-rc",
            "a@sha256:0000000000000000000000000000000000000000000000000000000000000000",
        ] {
            assert!(validate_repotag(ok).is_ok(), "{ok}");
        }
        for bad in ["", "nginx", "nginx:", "NGINX:1", "a//b:1", "a:b:c:d"] {
            assert!(validate_repotag(bad).is_err(), "{bad}");
        }
    }
}

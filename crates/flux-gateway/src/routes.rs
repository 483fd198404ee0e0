//! The route table: which backends serve which host name.
//!
//! A [`RouteTable`] is an immutable snapshot built from finalized state (apps
//! and where their instances run). The gateway swaps the whole table at once
//! when that state changes; a request sees either the old table or the new
//! one, never a mix.
//!
//! Host names map to ports of apps like this, case-insensitively and ignoring
//! a port in the `Host` header:
//! - `<app>.<domain>`: the first published port of the app's first component;
//! - `<app>_<port>.<domain>`: that published port of the app;
//! - a custom domain from the app's spec: the port it is given for.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};

use flux_types::{Address, AppSpec};

use crate::error::GatewayError;

/// Longest host name (RFC 1035).
const HOST_LEN_MAX: usize = 253;

/// One running instance of an app: the node that hosts it and the IP on which
/// that node publishes the app's ports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Instance {
    /// The hosting node.
    pub node: Address,
    /// The IP on which the node publishes the app's ports.
    pub ip: IpAddr,
    /// Whether the hosting node is the node this gateway runs in.
    pub local: bool,
}

/// Where one instance serves one published port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backend {
    /// The published port on the hosting node's IP.
    pub addr: SocketAddr,
    /// The hosting node.
    pub node: Address,
    /// Whether the hosting node is this gateway's own node; local backends
    /// are preferred while any is healthy.
    pub local: bool,
}

/// One published port of an app and the backends serving it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortRoute {
    /// The published port.
    pub port: u16,
    /// The component that publishes it.
    pub component: String,
    /// Its backends, local ones first.
    pub backends: Vec<Backend>,
    /// Index of this port among all ports of the table.
    pub(crate) slot: usize,
}

/// An app's published ports, in spec order (the first is the app's default).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppRoute {
    /// The app's name as registered.
    pub name: String,
    /// Its ports, in component order, then port order within a component.
    pub ports: Vec<PortRoute>,
}

impl AppRoute {
    /// The port that `<app>.<domain>` reaches.
    pub fn default_port(&self) -> Option<&PortRoute> {
        self.ports.first()
    }

    /// The route of a published port.
    pub fn port(&self, port: u16) -> Option<&PortRoute> {
        self.ports.iter().find(|p| p.port == port)
    }
}

/// A host name resolved to one port of one app.
#[derive(Clone, Copy, Debug)]
pub struct Route<'a> {
    /// The app.
    pub app: &'a AppRoute,
    /// The port.
    pub port: &'a PortRoute,
}

/// Why a host name reaches no app port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Miss {
    /// The request names no host.
    NoHost,
    /// The host is neither under the network domain nor a custom domain.
    UnknownHost(String),
    /// No app of that name.
    UnknownApp(String),
    /// The app publishes no such port.
    UnknownPort {
        /// The app.
        app: String,
        /// The port asked for.
        port: u16,
    },
    /// The app publishes no port at all.
    NoPorts(String),
}

/// Routes of every app, swapped as a whole when finalized state changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteTable {
    domain: String,
    /// Apps by lowercase name.
    apps: HashMap<String, AppRoute>,
    /// Custom domains (lowercase) to (lowercase app name, port).
    custom: HashMap<String, (String, u16)>,
    /// Published ports forwarded over TCP to (lowercase app name, port).
    tcp: BTreeMap<u16, String>,
    slots: usize,
}

impl RouteTable {
    /// A builder of a table for the network domain `domain` (e.g.
    /// `flux.localhost`; it comes from the genesis params).
    pub fn builder(domain: &str) -> Result<RouteTableBuilder, GatewayError> {
        Ok(RouteTableBuilder {
            domain: normalize_domain(domain)?,
            apps: BTreeMap::new(),
        })
    }

    /// A table without apps.
    pub fn empty(domain: &str) -> Result<RouteTable, GatewayError> {
        Ok(RouteTable::builder(domain)?.build())
    }

    /// The table of a network's apps, each with the instances its placements
    /// give it. This is how a node turns finalized state into routes: pass
    /// every app with a placement, and for each placement the hosting node,
    /// the IP that node publishes ports on, and whether it is this node.
    pub fn from_apps<'a, I>(domain: &str, apps: I) -> Result<RouteTable, GatewayError>
    where
        I: IntoIterator<Item = (&'a AppSpec, &'a [Instance])>,
    {
        let mut builder = RouteTable::builder(domain)?;
        for (spec, instances) in apps {
            builder.app(spec, instances);
        }
        Ok(builder.build())
    }

    /// The network domain, lowercase.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// Every app, in no particular order.
    pub fn apps(&self) -> impl Iterator<Item = &AppRoute> {
        self.apps.values()
    }

    /// The app of this name, whatever its case.
    pub fn app(&self, name: &str) -> Option<&AppRoute> {
        self.apps.get(&name.to_ascii_lowercase())
    }

    /// Ports forwarded over TCP, with the app and port route each reaches.
    pub fn tcp_routes(&self) -> impl Iterator<Item = Route<'_>> {
        self.tcp
            .iter()
            .filter_map(|(port, app)| self.route(app, *port))
    }

    /// The route of a TCP-forwarded port.
    pub(crate) fn tcp_route(&self, port: u16) -> Option<Route<'_>> {
        self.tcp.get(&port).and_then(|app| self.route(app, port))
    }

    pub(crate) fn slots(&self) -> usize {
        self.slots
    }

    pub(crate) fn ports(&self) -> impl Iterator<Item = &PortRoute> {
        self.apps.values().flat_map(|app| app.ports.iter())
    }

    fn route(&self, app: &str, port: u16) -> Option<Route<'_>> {
        let app = self.apps.get(app)?;
        Some(Route {
            port: app.port(port)?,
            app,
        })
    }

    /// The app port a `Host` header value reaches.
    pub fn resolve(&self, host: &str) -> Result<Route<'_>, Miss> {
        let mut buffer = [0u8; HOST_LEN_MAX];
        let Some(host) = normalize_host(host, &mut buffer) else {
            return if host.is_empty() {
                Err(Miss::NoHost)
            } else {
                Err(Miss::UnknownHost(host.to_string()))
            };
        };
        if let Some(label) = host
            .strip_suffix(self.domain.as_str())
            .and_then(|rest| rest.strip_suffix('.'))
            .filter(|label| !label.is_empty() && !label.contains('.'))
        {
            return self.resolve_label(label);
        }
        if let Some((app, port)) = self.custom.get(host)
            && let Some(route) = self.route(app, *port)
        {
            return Ok(route);
        }
        Err(Miss::UnknownHost(host.to_string()))
    }

    fn resolve_label(&self, label: &str) -> Result<Route<'_>, Miss> {
        // App names are letters and digits only, so '_' can only separate a port.
        let (name, port) = match label.rsplit_once('_') {
            Some((name, port)) => match port.parse::<u16>() {
                Ok(port) => (name, Some(port)),
                Err(_) => return Err(Miss::UnknownApp(label.to_string())),
            },
            None => (label, None),
        };
        let Some(app) = self.apps.get(name) else {
            return Err(Miss::UnknownApp(name.to_string()));
        };
        let port = match port {
            None => app
                .default_port()
                .ok_or_else(|| Miss::NoPorts(app.name.clone()))?,
            Some(port) => app.port(port).ok_or_else(|| Miss::UnknownPort {
                app: app.name.clone(),
                port,
            })?,
        };
        Ok(Route { app, port })
    }
}

/// Builds a [`RouteTable`]. Conflicts are settled deterministically, whatever
/// the order apps are added in: a custom domain or a TCP port claimed by two
/// apps goes to the app whose name sorts first, and the other claim is
/// logged and left out.
#[derive(Debug)]
pub struct RouteTableBuilder {
    domain: String,
    apps: BTreeMap<String, BuilderApp>,
}

#[derive(Debug)]
struct BuilderApp {
    name: String,
    ports: Vec<BuilderPort>,
}

#[derive(Debug)]
struct BuilderPort {
    port: u16,
    component: String,
    backends: Vec<Backend>,
    domain: Option<String>,
}

impl RouteTableBuilder {
    /// Adds an app from its spec: every published port of every component,
    /// each served by every instance at `(instance.ip, port)`, and the
    /// spec's custom domains. An app whose name is already in the table
    /// (whatever the case) is left out.
    pub fn app(&mut self, spec: &AppSpec, instances: &[Instance]) -> &mut Self {
        let key = spec.name.to_ascii_lowercase();
        if self.apps.contains_key(&key) {
            tracing::warn!(app = %spec.name, "app listed twice; the second is left out of the routes");
            return self;
        }
        for component in &spec.components {
            for (i, port) in component.ports.iter().enumerate() {
                let backends = instances
                    .iter()
                    .map(|instance| Backend {
                        addr: SocketAddr::new(instance.ip, *port),
                        node: instance.node,
                        local: instance.local,
                    })
                    .collect();
                let domain = component.domains.get(i).map(String::as_str);
                self.port(&spec.name, &component.name, *port, backends, domain);
            }
        }
        self
    }

    /// Adds one published port of an app (created on first use, keeping the
    /// case of `app`), with its backends and an optional custom domain (an
    /// empty domain is none). A port already added to the app is left out.
    pub fn port(
        &mut self,
        app: &str,
        component: &str,
        port: u16,
        backends: Vec<Backend>,
        domain: Option<&str>,
    ) -> &mut Self {
        let entry = self
            .apps
            .entry(app.to_ascii_lowercase())
            .or_insert_with(|| BuilderApp {
                name: app.to_string(),
                ports: Vec::new(),
            });
        if entry.ports.iter().any(|p| p.port == port) {
            tracing::warn!(
                app,
                port,
                "port listed twice; the second is left out of the routes"
            );
            return self;
        }
        entry.ports.push(BuilderPort {
            port,
            component: component.to_string(),
            backends,
            domain: domain.filter(|d| !d.is_empty()).map(str::to_string),
        });
        self
    }

    /// The table.
    pub fn build(self) -> RouteTable {
        let mut apps = HashMap::with_capacity(self.apps.len());
        let mut custom = HashMap::new();
        let mut tcp = BTreeMap::new();
        let mut slots = 0;
        // BTreeMap order: apps by lowercase name, so conflicts resolve the same way everywhere.
        for (key, app) in self.apps {
            let mut ports = Vec::with_capacity(app.ports.len());
            for port in app.ports {
                if let Some(domain) = &port.domain {
                    match custom_domain(domain, &self.domain) {
                        Ok(domain) => {
                            if let Some((owner, _)) = custom.get(&domain) {
                                tracing::warn!(app = %app.name, %domain, %owner, "custom domain already routed to another app; left out");
                            } else {
                                custom.insert(domain, (key.clone(), port.port));
                            }
                        }
                        Err(reason) => {
                            tracing::warn!(app = %app.name, %domain, reason, "custom domain left out");
                        }
                    }
                }
                if let Some(owner) = tcp.get(&port.port) {
                    tracing::warn!(app = %app.name, port = port.port, %owner, "TCP port already forwarded to another app; left out");
                } else {
                    tcp.insert(port.port, key.clone());
                }
                let mut backends = port.backends;
                let mut seen = HashSet::new();
                backends.retain(|b| seen.insert(b.addr));
                // Stable: local first, otherwise as given.
                backends.sort_by_key(|b| !b.local);
                ports.push(PortRoute {
                    port: port.port,
                    component: port.component,
                    backends,
                    slot: slots,
                });
                slots += 1;
            }
            apps.insert(
                key,
                AppRoute {
                    name: app.name,
                    ports,
                },
            );
        }
        RouteTable {
            domain: self.domain,
            apps,
            custom,
            tcp,
            slots,
        }
    }
}

/// A custom domain, normalized, unless it is invalid or inside the network domain.
fn custom_domain(domain: &str, network: &str) -> Result<String, &'static str> {
    let domain = normalize_domain(domain).map_err(|error| match error {
        GatewayError::InvalidDomain { reason, .. } => reason,
        _ => "not a domain name",
    })?;
    let inside = domain
        .strip_suffix(network)
        .is_some_and(|rest| rest.is_empty() || rest.ends_with('.'));
    if inside {
        return Err("a custom domain may not be under the network domain");
    }
    Ok(domain)
}

/// Lowercases a domain name, drops one trailing dot and checks its syntax.
fn normalize_domain(domain: &str) -> Result<String, GatewayError> {
    let invalid = |reason| GatewayError::InvalidDomain {
        domain: domain.to_string(),
        reason,
    };
    let name = domain
        .strip_suffix('.')
        .unwrap_or(domain)
        .to_ascii_lowercase();
    if name.is_empty() {
        return Err(invalid("it is empty"));
    }
    if name.len() > HOST_LEN_MAX {
        return Err(invalid("it is longer than 253 characters"));
    }
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(invalid("a label is empty or longer than 63 characters"));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(invalid(
                "a label has a character other than a-z, 0-9 and '-'",
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(invalid("a label starts or ends with '-'"));
        }
    }
    Ok(name)
}

/// The host of a `Host` header value, lowercase, without a port or trailing
/// dot, written into `buffer`; `None` when it cannot be an app's host.
fn normalize_host<'b>(raw: &str, buffer: &'b mut [u8; HOST_LEN_MAX]) -> Option<&'b str> {
    if raw.starts_with('[') {
        // An IPv6 literal: never an app.
        return None;
    }
    let host = match raw.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        Some(_) => return None,
        None => raw,
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.is_empty() || host.len() > HOST_LEN_MAX {
        return None;
    }
    let out = &mut buffer[..host.len()];
    for (slot, byte) in out.iter_mut().zip(host.bytes()) {
        if !(byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'.' || byte == b'_') {
            return None;
        }
        *slot = byte.to_ascii_lowercase();
    }
    std::str::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use flux_types::Component;

    use super::*;

    fn node(n: u8) -> Address {
        Address([n; 20])
    }

    fn backend(ip: u8, port: u16, local: bool) -> Backend {
        Backend {
            addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, ip)), port),
            node: node(ip),
            local,
        }
    }

    fn table() -> RouteTable {
        let mut builder = RouteTable::builder("Flux.Localhost.").unwrap();
        builder
            .port(
                "Hello",
                "web",
                30000,
                vec![backend(2, 30000, false)],
                Some("Example.COM"),
            )
            .port("Hello", "web", 30001, vec![backend(2, 30001, false)], None)
            .port(
                "other",
                "db",
                31000,
                vec![backend(3, 31000, true)],
                Some(""),
            );
        builder.build()
    }

    /// What a host resolves to: (app, port), or the miss.
    type Resolved<'a> = Result<(&'a str, u16), Miss>;

    /// One row: a `Host` header value and what it must resolve to.
    fn check(table: &RouteTable, host: &str, expected: Resolved<'_>) {
        let got = table
            .resolve(host)
            .map(|route| (route.app.name.as_str(), route.port.port));
        assert_eq!(got, expected, "Host: {host}");
    }

    #[test]
    fn hosts_resolve() {
        let table = table();
        let rows: Vec<(&str, Resolved<'_>)> = vec![
            ("hello.flux.localhost", Ok(("Hello", 30000))),
            ("HELLO.Flux.LocalHost", Ok(("Hello", 30000))),
            ("hello.flux.localhost:16180", Ok(("Hello", 30000))),
            ("hello.flux.localhost.", Ok(("Hello", 30000))),
            ("hello_30001.flux.localhost", Ok(("Hello", 30001))),
            ("hello_30000.flux.localhost", Ok(("Hello", 30000))),
            ("example.com", Ok(("Hello", 30000))),
            ("EXAMPLE.com:80", Ok(("Hello", 30000))),
            ("other.flux.localhost", Ok(("other", 31000))),
            ("nope.flux.localhost", Err(Miss::UnknownApp("nope".into()))),
            (
                "hello_1.flux.localhost",
                Err(Miss::UnknownPort {
                    app: "Hello".into(),
                    port: 1,
                }),
            ),
            (
                "hello_x.flux.localhost",
                Err(Miss::UnknownApp("hello_x".into())),
            ),
            (
                "a.hello.flux.localhost",
                Err(Miss::UnknownHost("a.hello.flux.localhost".into())),
            ),
            (
                "flux.localhost",
                Err(Miss::UnknownHost("flux.localhost".into())),
            ),
            ("example.org", Err(Miss::UnknownHost("example.org".into()))),
            ("[::1]:16180", Err(Miss::UnknownHost("[::1]:16180".into()))),
            ("", Err(Miss::NoHost)),
        ];
        for (host, expected) in rows {
            check(&table, host, expected);
        }
    }

    #[test]
    fn local_backends_come_first() {
        let mut builder = RouteTable::builder("flux.localhost").unwrap();
        builder.port(
            "a",
            "web",
            1,
            vec![
                backend(2, 1, false),
                backend(3, 1, true),
                backend(4, 1, false),
                backend(3, 1, true),
            ],
            None,
        );
        let table = builder.build();
        let backends = &table.app("A").unwrap().ports[0].backends;
        let order: Vec<u16> = backends.iter().map(|b| b.node.0[0] as u16).collect();
        assert_eq!(order, vec![3, 2, 4]);
    }

    #[test]
    fn conflicts_go_to_the_app_that_sorts_first() {
        let mut builder = RouteTable::builder("flux.localhost").unwrap();
        builder
            .port("zeta", "web", 5000, vec![], Some("shop.example"))
            .port("alpha", "web", 5000, vec![], Some("shop.example"))
            .port("beta", "web", 6000, vec![], Some("x.flux.localhost"));
        let table = builder.build();
        check(&table, "shop.example", Ok(("alpha", 5000)));
        assert_eq!(table.tcp_route(5000).unwrap().app.name, "alpha");
        // Custom domains under the network domain are refused: the name is an app name.
        check(
            &table,
            "x.flux.localhost",
            Err(Miss::UnknownApp("x".into())),
        );
        // Slots are unique and dense.
        let mut slots: Vec<usize> = table.ports().map(|p| p.slot).collect();
        slots.sort();
        assert_eq!(slots, (0..table.slots()).collect::<Vec<_>>());
    }

    #[test]
    fn bad_domains_are_refused() {
        for domain in ["", ".", "a..b", "-a.b", "a_b.c", "a b"] {
            assert!(RouteTable::builder(domain).is_err(), "{domain:?}");
        }
        assert_eq!(
            RouteTable::empty("Flux.LOCALHOST.").unwrap().domain(),
            "flux.localhost"
        );
    }

    #[test]
    fn specs_become_routes() {
        let component = |name: &str, ports: Vec<u16>, domains: Vec<&str>| Component {
            name: name.into(),
            description: String::new(),
            repotag: "hello:1".into(),
            container_ports: ports.clone(),
            ports,
            domains: domains.into_iter().map(String::from).collect(),
            environment: vec![],
            commands: vec![],
            container_data: String::new(),
            cpu_tenths: 1,
            ram_mb: 100,
            hdd_gb: 1,
            health_path: String::new(),
        };
        let spec = AppSpec {
            name: "Shop".into(),
            description: String::new(),
            owner: node(9),
            instances: 2,
            contacts: vec![],
            geolocation: vec![],
            nodes: vec![],
            static_ip: false,
            components: vec![
                component("web", vec![31000, 31001], vec!["shop.example", ""]),
                component("db", vec![31002], vec![]),
            ],
        };
        let instances = [
            Instance {
                node: node(2),
                ip: IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)),
                local: false,
            },
            Instance {
                node: node(3),
                ip: IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3)),
                local: true,
            },
        ];
        let table = RouteTable::from_apps("flux.localhost", [(&spec, &instances[..])]).unwrap();
        check(&table, "shop.flux.localhost", Ok(("Shop", 31000)));
        check(&table, "shop_31002.flux.localhost", Ok(("Shop", 31002)));
        check(&table, "shop.example", Ok(("Shop", 31000)));
        let route = table.resolve("shop_31002.flux.localhost").unwrap();
        assert_eq!(route.port.component, "db");
        assert_eq!(
            route.port.backends,
            vec![backend(3, 31002, true), backend(2, 31002, false)]
        );
        let tcp: Vec<u16> = table.tcp_routes().map(|r| r.port.port).collect();
        assert_eq!(tcp, vec![31000, 31001, 31002]);
    }
}

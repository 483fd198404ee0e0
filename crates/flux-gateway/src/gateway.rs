//! The running gateway: its listeners, its route table, and its prober.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{Semaphore, oneshot};
use tokio::task::{JoinHandle, JoinSet};

use crate::backend::{BackendState, BackendStatus, Clock, Group, Registry, set_worker};
use crate::config::GatewayConfig;
use crate::conn::{ConnectionLimits, IdleIo};
use crate::error::GatewayError;
use crate::proxy::{self, Peer};
use crate::routes::RouteTable;
use crate::tcp::Forwarders;

/// How often the prober looks for backends due a probe, ms.
const PROBE_TICK_MS: u64 = 50;

/// Kernel backlog of the HTTP listener.
const HTTP_LISTEN_BACKLOG: u32 = 4096;

/// Hyper's own default number of header fields; any other value makes hyper
/// allocate the header array on the heap for every request.
const HYPER_DEFAULT_HEADERS_COUNT: usize = 100;

/// A route table with the live state of its backends.
pub(crate) struct Installed {
    pub(crate) table: RouteTable,
    /// One group per port route, indexed by its slot.
    pub(crate) groups: Vec<Group>,
}

/// Counts of events worth watching; every counter only grows.
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) not_found: AtomicU64,
    pub(crate) no_backend: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) timeouts: AtomicU64,
    pub(crate) retries: AtomicU64,
}

/// What every task of the gateway shares.
pub(crate) struct Shared {
    pub(crate) config: GatewayConfig,
    pub(crate) http_addr: SocketAddr,
    pub(crate) clock: Clock,
    pub(crate) limits: Arc<ConnectionLimits>,
    pub(crate) client: hyper::client::conn::http1::Builder,
    pub(crate) counters: Counters,
    server: http1::Builder,
    installed: RwLock<Arc<Installed>>,
    registry: Mutex<Registry>,
}

impl Shared {
    /// The route table now in force.
    pub(crate) fn installed(&self) -> Arc<Installed> {
        Arc::clone(&self.installed.read().expect("routes lock"))
    }

    fn install(&self, table: RouteTable) -> Arc<Installed> {
        let groups = self
            .registry
            .lock()
            .expect("registry lock")
            .groups(&table, &self.config);
        let installed = Arc::new(Installed { table, groups });
        *self.installed.write().expect("routes lock") = Arc::clone(&installed);
        installed
    }
}

/// A snapshot of the gateway's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GatewayStats {
    /// Client connections open now, HTTP and TCP.
    pub connections_open: usize,
    /// Connections closed at once because their IP was at its cap.
    pub connections_refused_per_ip: u64,
    /// Requests for a host that reaches no app (404, or 400 without a host).
    pub not_found: u64,
    /// Requests answered 503: no healthy backend.
    pub no_backend: u64,
    /// Requests answered 502: every backend tried failed.
    pub failed: u64,
    /// Requests answered 504: no answer within the request timeout.
    pub timeouts: u64,
    /// Attempts beyond the first.
    pub retries: u64,
}

/// The gateway of one node: HTTP workers that route by host name, TCP
/// forwarders for published ports, and a prober. Dropping it stops all of
/// them and closes every connection.
pub struct Gateway {
    shared: Arc<Shared>,
    /// Its lock also serialises route table swaps with the forwarders they
    /// open and close.
    forwarders: Mutex<Forwarders>,
    runtime: tokio::runtime::Handle,
    workers: Vec<Worker>,
    probe_task: JoinHandle<()>,
}

impl Gateway {
    /// Opens the listeners, starts the worker threads and starts routing
    /// with `routes`. Must be called inside a tokio runtime: the prober and
    /// the TCP forwarders run on it.
    pub async fn start(config: GatewayConfig, routes: RouteTable) -> Result<Gateway, GatewayError> {
        config.validate()?;
        let mut config = config;
        config.workers = config.worker_count();
        let listen_error = |source| GatewayError::Listen {
            addr: config.http_listen,
            source,
        };
        let sockets =
            reuseport_sockets(config.http_listen, config.workers).map_err(listen_error)?;
        let http_addr = sockets[0].local_addr().map_err(listen_error)?;
        let mut server = http1::Builder::new();
        server
            .timer(TokioTimer::new())
            .header_read_timeout(Duration::from_millis(config.header_read_timeout_ms))
            .max_header_size(config.request_header_size_bytes_max)
            .keep_alive(true);
        let mut client = hyper::client::conn::http1::Builder::new();
        client.max_header_size(config.response_header_size_bytes_max);
        if config.headers_count_max != HYPER_DEFAULT_HEADERS_COUNT {
            server.max_headers(config.headers_count_max);
            client.max_headers(config.headers_count_max);
        }
        warn_if_file_descriptors_are_short(config.connections_max);
        let limits = ConnectionLimits::new(config.connections_max, config.connections_per_ip_max);
        let shared = Arc::new(Shared {
            config,
            http_addr,
            clock: Clock::new(),
            limits,
            client,
            counters: Counters::default(),
            server,
            installed: RwLock::new(Arc::new(Installed {
                table: RouteTable::empty("flux.localhost").expect("a valid domain"),
                groups: Vec::new(),
            })),
            registry: Mutex::new(Registry::default()),
        });
        let mut workers = Vec::with_capacity(sockets.len());
        for (index, socket) in sockets.into_iter().enumerate() {
            workers.push(Worker::start(index, Arc::clone(&shared), socket)?);
        }
        let gateway = Gateway {
            workers,
            probe_task: tokio::spawn(probe(Arc::clone(&shared))),
            forwarders: Mutex::new(Forwarders::default()),
            runtime: tokio::runtime::Handle::current(),
            shared,
        };
        gateway.update(routes);
        tracing::info!(addr = %http_addr, workers = gateway.workers.len(), "gateway listening");
        Ok(gateway)
    }

    /// The address the HTTP gateway listens on.
    pub fn http_addr(&self) -> SocketAddr {
        self.shared.http_addr
    }

    /// Replaces the route table. Requests that arrive after this returns use
    /// the new table (requests in flight finish with the old one), and the
    /// TCP forwarders match it. Backends in both tables keep their health
    /// and pooled connections.
    ///
    /// A TCP listener it closes lets go of its port an instant later, as its
    /// task ends; [`Gateway::update_and_release`] waits for that.
    pub fn update(&self, routes: RouteTable) {
        // The aborted listener tasks end on their own.
        drop(self.swap(routes));
    }

    /// Replaces the route table like [`Gateway::update`], and returns once
    /// every TCP listener the new table closes has let go of its port: a
    /// local instance can publish that port on the gateway's address as
    /// soon as this returns.
    pub async fn update_and_release(&self, routes: RouteTable) {
        for closed in self.swap(routes) {
            // The task was aborted: awaiting it returns once it is dropped,
            // listener included.
            let _ = closed.await;
        }
    }

    /// Installs `routes` and reconciles the forwarders with them; the tasks
    /// of the listeners closed.
    fn swap(&self, routes: RouteTable) -> Vec<JoinHandle<()>> {
        let _runtime = self.runtime.enter();
        let mut forwarders = self.forwarders.lock().expect("forwarders lock");
        let installed = self.shared.install(routes);
        forwarders.reconcile(&self.shared, &installed)
    }

    /// Opens the TCP forwarders of the table in force that are not open yet:
    /// a port that could not be opened when the table came (a local
    /// instance that was leaving still held it) is tried again. Nothing
    /// happens when every one is open.
    pub fn retry_forwarding(&self) {
        let _runtime = self.runtime.enter();
        let mut forwarders = self.forwarders.lock().expect("forwarders lock");
        let installed = self.shared.installed();
        // The table is the one in force: no listener closes.
        drop(forwarders.reconcile(&self.shared, &installed));
    }

    /// The route table in force.
    pub fn routes(&self) -> RouteTable {
        self.shared.installed().table.clone()
    }

    /// Published ports forwarded over TCP now.
    pub fn tcp_ports(&self) -> Vec<u16> {
        self.forwarders.lock().expect("forwarders lock").ports()
    }

    /// The health of every backend of the route table in force.
    pub fn backends(&self) -> Vec<BackendStatus> {
        let registry = self.shared.registry.lock().expect("registry lock");
        let mut backends: Vec<BackendStatus> = registry.all().map(|b| b.status()).collect();
        backends.sort_by_key(|b| b.addr);
        backends
    }

    /// The gateway's counters.
    pub fn stats(&self) -> GatewayStats {
        let counters = &self.shared.counters;
        GatewayStats {
            connections_open: self.shared.limits.open(self.shared.config.connections_max),
            connections_refused_per_ip: self.shared.limits.refused_per_ip.load(Ordering::Relaxed),
            not_found: counters.not_found.load(Ordering::Relaxed),
            no_backend: counters.no_backend.load(Ordering::Relaxed),
            failed: counters.failed.load(Ordering::Relaxed),
            timeouts: counters.timeouts.load(Ordering::Relaxed),
            retries: counters.retries.load(Ordering::Relaxed),
        }
    }

    /// Stops the gateway and waits until its worker threads have closed
    /// their listeners and connections.
    pub async fn shutdown(mut self) {
        self.stop();
        let threads: Vec<std::thread::JoinHandle<()>> = self
            .workers
            .iter_mut()
            .filter_map(|w| w.thread.take())
            .collect();
        let _ = tokio::task::spawn_blocking(move || {
            for thread in threads {
                let _ = thread.join();
            }
        })
        .await;
        let _ = (&mut self.probe_task).await;
    }

    fn stop(&mut self) {
        for worker in &mut self.workers {
            worker.stop.take();
        }
        self.probe_task.abort();
        self.forwarders.lock().expect("forwarders lock").close_all();
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.stop();
    }
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("http_addr", &self.shared.http_addr)
            .finish_non_exhaustive()
    }
}

/// Each client connection can hold two file descriptors (its own and one to
/// a backend); a process allowed fewer than that fails to accept connections
/// well before `connections_max`. Only Linux says how many it allows.
fn warn_if_file_descriptors_are_short(connections_max: usize) {
    let Ok(limits) = std::fs::read_to_string("/proc/self/limits") else {
        return;
    };
    let allowed = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .and_then(|line| line.split_whitespace().nth(3))
        .and_then(|soft| soft.parse::<usize>().ok());
    if let Some(allowed) = allowed
        && allowed < connections_max.saturating_mul(2)
    {
        tracing::warn!(
            allowed,
            connections_max,
            "the process may open fewer files than the gateway's connections need; \
             raise the limit (ulimit -n) or lower connections_max"
        );
    }
}

/// One HTTP worker: a thread with a single-threaded runtime and its own
/// listener. Dropping `stop` ends it; its runtime goes with it, closing every
/// connection it served.
struct Worker {
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Worker {
    fn start(index: usize, shared: Arc<Shared>, socket: TcpSocket) -> Result<Worker, GatewayError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(GatewayError::Start)?;
        let listener = {
            let _runtime = runtime.enter();
            socket
                .listen(HTTP_LISTEN_BACKLOG)
                .map_err(|source| GatewayError::Listen {
                    addr: shared.http_addr,
                    source,
                })?
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(format!("flux-gateway-{index}"))
            .spawn(move || {
                set_worker(index);
                runtime.block_on(async move {
                    tokio::select! {
                        () = serve_http(shared, listener) => {}
                        _ = stopped => {}
                    }
                });
            })
            .map_err(GatewayError::Start)?;
        Ok(Worker {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

/// `count` sockets bound to `addr` with SO_REUSEPORT, so that the kernel
/// spreads connections over the workers. A plain bind first makes sure no
/// one else listens there: with SO_REUSEPORT alone, a stray process of the
/// same user on the same port would silently share the traffic.
fn reuseport_sockets(addr: SocketAddr, count: usize) -> std::io::Result<Vec<TcpSocket>> {
    let new_socket = || {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        Ok::<_, std::io::Error>(socket)
    };
    let probe = new_socket()?;
    probe.bind(addr)?;
    let addr = probe.local_addr()?;
    drop(probe);
    (0..count.max(1))
        .map(|_| {
            let socket = new_socket()?;
            socket.set_reuseport(true)?;
            socket.bind(addr)?;
            Ok(socket)
        })
        .collect()
}

/// Accepts HTTP connections; dropping the task closes the listener and every
/// connection it accepted.
async fn serve_http(shared: Arc<Shared>, listener: TcpListener) {
    let mut connections = JoinSet::new();
    loop {
        let (stream, peer, guard) = shared.limits.accept(&listener).await;
        while connections.try_join_next().is_some() {}
        let io = IdleIo::new(stream, shared.config.idle_timeout(), guard);
        let peer = Arc::new(Peer::new(peer));
        let shared = Arc::clone(&shared);
        connections.spawn(async move {
            let service = {
                let shared = Arc::clone(&shared);
                service_fn(move |request| {
                    let shared = Arc::clone(&shared);
                    let peer = Arc::clone(&peer);
                    async move { Ok::<_, Infallible>(proxy::handle(shared, peer, request).await) }
                })
            };
            let connection = shared
                .server
                .serve_connection(TokioIo::new(io), service)
                .with_upgrades();
            if let Err(error) = connection.await {
                tracing::debug!(%error, "client connection ended");
            }
        });
    }
}

/// Probes backends with a TCP connect: ejected ones when their back-off
/// ends (success brings them back), the others every probe interval
/// (failure ejects them before traffic finds out).
async fn probe(shared: Arc<Shared>) {
    let permits = Arc::new(Semaphore::new(shared.config.probes_in_flight_max));
    let mut probes = JoinSet::new();
    let mut tick = tokio::time::interval(Duration::from_millis(PROBE_TICK_MS));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        while probes.try_join_next().is_some() {}
        let now = shared.clock.now_ms();
        let due: Vec<Arc<BackendState>> = {
            let registry = shared.registry.lock().expect("registry lock");
            registry
                .all()
                .filter(|backend| backend.start_probe_if_due(now, &shared.config))
                .cloned()
                .collect()
        };
        for backend in due {
            let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
                backend.cancel_probe();
                continue;
            };
            let shared = Arc::clone(&shared);
            probes.spawn(async move {
                let connected = tokio::time::timeout(
                    shared.config.connect_timeout(),
                    TcpStream::connect(backend.addr),
                )
                .await;
                let ok = matches!(connected, Ok(Ok(_)));
                backend.record_probe(ok, &shared.clock, &shared.config);
                backend.reap_idle(&shared.config);
                drop(permit);
            });
        }
    }
}

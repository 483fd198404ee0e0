//! TCP forwarding: every published port of every app is reachable on the
//! gateway's TCP address, whatever protocol it speaks.
//!
//! A listener per port is opened and closed as route tables come and go.
//! A port with an instance on this node is left alone: that instance
//! publishes it on this node already, and a listener would take the port
//! from it. Each accepted connection goes to one healthy backend (local
//! first, retrying others when a connect fails) and bytes are copied both
//! ways until either end closes or the connection idles out.

use std::collections::{BTreeSet, HashMap};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

use crate::backend::{Outstanding, Tried};
use crate::conn::IdleIo;
use crate::gateway::{Installed, Shared};

/// Kernel backlog of each forwarding listener.
const LISTEN_BACKLOG: u32 = 1024;

/// The open forwarding listeners, by port.
#[derive(Default)]
pub(crate) struct Forwarders {
    listeners: HashMap<u16, JoinHandle<()>>,
}

impl Forwarders {
    /// Opens and closes listeners so that exactly the table's forwardable
    /// ports are served. A port that cannot be opened is logged and tried
    /// again at the next table. Must run inside the runtime. Returns the
    /// tasks of the listeners it closed: each has been aborted, and its
    /// port is free once the task has ended.
    #[must_use = "a closed listener's port is free only once its task has ended"]
    pub(crate) fn reconcile(
        &mut self,
        shared: &Arc<Shared>,
        installed: &Installed,
    ) -> Vec<JoinHandle<()>> {
        let desired: BTreeSet<u16> = if shared.config.tcp_forwarding {
            installed
                .table
                .tcp_routes()
                .filter(|route| !route.port.backends.iter().any(|b| b.local))
                .map(|route| route.port.port)
                .filter(|port| *port != shared.http_addr.port() && *port != 0)
                .collect()
        } else {
            BTreeSet::new()
        };
        let closing: Vec<u16> = self
            .listeners
            .keys()
            .filter(|port| !desired.contains(port))
            .copied()
            .collect();
        let mut closed = Vec::with_capacity(closing.len());
        for port in closing {
            if let Some(task) = self.listeners.remove(&port) {
                task.abort();
                tracing::info!(port, "TCP forwarding closed");
                closed.push(task);
            }
        }
        for port in desired {
            if self.listeners.contains_key(&port) {
                continue;
            }
            let addr = SocketAddr::new(shared.config.tcp_ip(), port);
            match listen(addr) {
                Ok(listener) => {
                    tracing::info!(%addr, "TCP forwarding open");
                    let task = tokio::spawn(serve(Arc::clone(shared), port, listener));
                    self.listeners.insert(port, task);
                }
                Err(error) => {
                    tracing::warn!(%addr, %error, "cannot open TCP forwarding; trying again with the next routes");
                }
            }
        }
        closed
    }

    /// Ports forwarded now.
    pub(crate) fn ports(&self) -> Vec<u16> {
        let mut ports: Vec<u16> = self.listeners.keys().copied().collect();
        ports.sort_unstable();
        ports
    }

    pub(crate) fn close_all(&mut self) {
        for (_, task) in self.listeners.drain() {
            task.abort();
        }
    }
}

impl Drop for Forwarders {
    fn drop(&mut self) {
        self.close_all();
    }
}

fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Accepts connections on one forwarded port; dropping the task closes the
/// listener and every connection it accepted.
async fn serve(shared: Arc<Shared>, port: u16, listener: TcpListener) {
    let mut connections = JoinSet::new();
    loop {
        let (stream, _peer, guard) = shared.limits.accept(&listener).await;
        while connections.try_join_next().is_some() {}
        let client = IdleIo::new(stream, shared.config.idle_timeout(), guard);
        connections.spawn(forward(Arc::clone(&shared), port, client));
    }
}

async fn forward(shared: Arc<Shared>, port: u16, mut client: IdleIo) {
    let Some((mut backend, _outstanding)) = connect(&shared, port).await else {
        tracing::debug!(port, "no backend for a TCP connection; closed");
        return;
    };
    if let Err(error) = tokio::io::copy_bidirectional(&mut client, &mut backend).await {
        tracing::debug!(port, %error, "forwarded connection ended");
    }
}

/// A connection to a healthy backend of the port, trying others while connects fail.
async fn connect(shared: &Shared, port: u16) -> Option<(TcpStream, Outstanding)> {
    let installed = shared.installed();
    let route = installed.table.tcp_route(port)?;
    let group = &installed.groups[route.port.slot];
    let mut tried = Tried::default();
    for _ in 0..=shared.config.retries_max {
        let (index, backend) = group.pick(shared.config.balance, &tried)?;
        tried.push(index);
        let outstanding = Outstanding::new(Arc::clone(backend));
        let connected = tokio::time::timeout(
            shared.config.connect_timeout(),
            TcpStream::connect(backend.addr),
        )
        .await;
        match connected {
            Ok(Ok(stream)) => {
                if let Err(error) = stream.set_nodelay(true) {
                    tracing::trace!(%error, "cannot set TCP_NODELAY");
                }
                return Some((stream, outstanding));
            }
            Ok(Err(error)) => {
                tracing::debug!(backend = %backend.addr, %error, "cannot connect to backend");
                backend.record_failure(&shared.clock, &shared.config);
            }
            Err(_) => {
                tracing::debug!(backend = %backend.addr, "connect to backend timed out");
                backend.record_failure(&shared.clock, &shared.config);
            }
        }
    }
    None
}

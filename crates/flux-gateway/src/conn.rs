//! Client connections: the caps on how many are open, and the idle timeout.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

/// Pause after an accept error that is not the peer's doing (most likely the
/// process is out of file descriptors), so that the loop does not spin, ms.
const ACCEPT_ERROR_PAUSE_MS: u64 = 100;

/// The caps on client connections, shared by the HTTP listener and every TCP
/// forwarder.
pub(crate) struct ConnectionLimits {
    permits: Arc<Semaphore>,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    per_ip_max: usize,
    pub(crate) refused_per_ip: AtomicU64,
}

/// Holds one connection's place under both caps until dropped.
pub(crate) struct ConnectionGuard {
    _permit: OwnedSemaphorePermit,
    limits: Arc<ConnectionLimits>,
    ip: IpAddr,
}

impl ConnectionLimits {
    pub(crate) fn new(connections_max: usize, per_ip_max: usize) -> Arc<ConnectionLimits> {
        Arc::new(ConnectionLimits {
            permits: Arc::new(Semaphore::new(connections_max)),
            per_ip: Mutex::new(HashMap::new()),
            per_ip_max,
            refused_per_ip: AtomicU64::new(0),
        })
    }

    /// Connections open now.
    pub(crate) fn open(&self, connections_max: usize) -> usize {
        connections_max - self.permits.available_permits()
    }

    /// Accepts the next connection that fits under the caps. Waits for a
    /// free place while the global cap is reached (the next connection waits
    /// in the kernel's backlog meanwhile); closes at once a connection from
    /// an IP that is at its own cap.
    pub(crate) async fn accept(
        self: &Arc<Self>,
        listener: &TcpListener,
    ) -> (TcpStream, SocketAddr, ConnectionGuard) {
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(error) if is_transient(&error) => continue,
                Err(error) => {
                    tracing::error!(%error, pause_ms = ACCEPT_ERROR_PAUSE_MS, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(ACCEPT_ERROR_PAUSE_MS)).await;
                    continue;
                }
            };
            let permit = Arc::clone(&self.permits)
                .acquire_owned()
                .await
                .expect("the connection semaphore is never closed");
            let ip = peer.ip();
            {
                let mut per_ip = self.per_ip.lock().expect("per-ip lock");
                let count = per_ip.entry(ip).or_insert(0);
                if *count >= self.per_ip_max {
                    drop(per_ip);
                    self.refused_per_ip.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(%peer, "connection refused: too many from this IP");
                    continue;
                }
                *count += 1;
            }
            if let Err(error) = stream.set_nodelay(true) {
                tracing::trace!(%error, "cannot set TCP_NODELAY");
            }
            let guard = ConnectionGuard {
                _permit: permit,
                limits: Arc::clone(self),
                ip,
            };
            return (stream, peer, guard);
        }
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        let mut per_ip = self.limits.per_ip.lock().expect("per-ip lock");
        if let Some(count) = per_ip.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                per_ip.remove(&self.ip);
            }
        }
    }
}

fn is_transient(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
    )
}

/// A client stream that fails with `TimedOut` once no byte has moved in
/// either direction for the idle timeout, and that holds the connection's
/// place under the caps while it lives.
///
/// The timer is not reset on every read or write: the time of the last
/// activity is noted, and when the timer fires it is pushed to that time
/// plus the timeout if there was activity since.
pub(crate) struct IdleIo {
    inner: TcpStream,
    sleep: Pin<Box<Sleep>>,
    timeout: Duration,
    /// Milliseconds since `origin` of the last activity.
    last_ms: u64,
    origin: Instant,
    _guard: ConnectionGuard,
}

impl IdleIo {
    pub(crate) fn new(inner: TcpStream, timeout: Duration, guard: ConnectionGuard) -> IdleIo {
        let origin = Instant::now();
        IdleIo {
            inner,
            sleep: Box::pin(tokio::time::sleep_until(origin + timeout)),
            timeout,
            last_ms: 0,
            origin,
            _guard: guard,
        }
    }

    fn touch(&mut self) {
        self.last_ms = self.origin.elapsed().as_millis() as u64;
    }

    fn check(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        while self.sleep.as_mut().poll(cx).is_ready() {
            let deadline = self.origin + Duration::from_millis(self.last_ms) + self.timeout;
            if Instant::now() >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "connection idle for too long",
                ));
            }
            self.sleep.as_mut().reset(deadline);
        }
        Ok(())
    }
}

impl AsyncRead for IdleIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.check(cx)?;
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.touch();
        }
        polled
    }
}

impl AsyncWrite for IdleIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.check(cx)?;
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            this.touch();
        }
        polled
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.check(cx)?;
        let polled = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            this.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.check(cx)?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

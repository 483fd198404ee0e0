//! Health probes of running instances: an HTTP GET of the component's
//! health path on its first published port, or a TCP connect when it has
//! no health path.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::status::{Health, InstanceStatus, Phase, StatusBoard};

/// Most bytes of a probe's response that are read (the status line fits).
pub const PROBE_RESPONSE_BYTES_MAX: usize = 1024;

/// Probes `host_ip:port`: a TCP connect, then, when `health_path` is set,
/// an HTTP/1.0 GET whose status must be 2xx or 3xx.
pub async fn probe(host_ip: IpAddr, port: u16, health_path: &str, timeout: Duration) -> Health {
    match tokio::time::timeout(timeout, probe_inner(host_ip, port, health_path)).await {
        Ok(Ok(())) => Health::Healthy,
        Ok(Err(reason)) => Health::Unhealthy { reason },
        Err(_) => Health::Unhealthy {
            reason: format!("no answer within {} ms", timeout.as_millis()),
        },
    }
}

async fn probe_inner(host_ip: IpAddr, port: u16, health_path: &str) -> Result<(), String> {
    let address = SocketAddr::new(host_ip, port);
    let mut stream = TcpStream::connect(address)
        .await
        .map_err(|e| format!("cannot connect to {address}: {e}"))?;
    if health_path.is_empty() {
        return Ok(());
    }
    let request = format!(
        "GET {health_path} HTTP/1.0\r\nHost: {address}\r\nUser-Agent: flux-agent\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("cannot send the probe to {address}: {e}"))?;
    let mut response = Vec::with_capacity(PROBE_RESPONSE_BYTES_MAX);
    let mut buffer = [0u8; 256];
    while response.len() < PROBE_RESPONSE_BYTES_MAX && !response.windows(2).any(|w| w == b"\r\n") {
        let read = stream
            .read(&mut buffer)
            .await
            .map_err(|e| format!("cannot read the answer of {address}: {e}"))?;
        if read == 0 {
            break;
        }
        response.extend_from_slice(&buffer[..read]);
    }
    let line = String::from_utf8_lossy(&response);
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("{address} did not answer with HTTP"))?;
    if (200..400).contains(&status) {
        Ok(())
    } else {
        Err(format!("GET {health_path} answered HTTP {status}"))
    }
}

/// Probes every running instance on the board that publishes a port, at
/// most `concurrency_max` at a time, and records the verdicts.
pub async fn probe_board(board: &StatusBoard, timeout: Duration, concurrency_max: usize) {
    let targets: Vec<InstanceStatus> = board
        .snapshot()
        .into_iter()
        .filter(|s| s.phase == Phase::Running && !s.ports.is_empty())
        .collect();
    futures_util::stream::iter(targets)
        .map(|status| async move {
            let port = status.ports[0].host_port;
            let health = probe(status.host_ip, port, &status.health_path, timeout).await;
            (status.key, health)
        })
        .buffer_unordered(concurrency_max.max(1))
        .for_each(|(key, health)| async move { board.set_health(&key, health) })
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    async fn serve_once(answer: &'static str) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buffer = [0u8; 512];
            let _ = socket.read(&mut buffer).await;
            let _ = socket.write_all(answer.as_bytes()).await;
        });
        port
    }

    #[tokio::test]
    async fn http_status_decides_health() {
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let timeout = Duration::from_secs(2);
        let ok = serve_once("HTTP/1.0 200 OK\r\n\r\nok").await;
        assert_eq!(probe(ip, ok, "/health", timeout).await, Health::Healthy);
        let bad = serve_once("HTTP/1.0 503 Unavailable\r\n\r\n").await;
        let Health::Unhealthy { reason } = probe(ip, bad, "/health", timeout).await else {
            panic!("a 503 is unhealthy");
        };
        assert!(reason.contains("503"), "{reason}");
        let tcp = serve_once("").await;
        assert_eq!(probe(ip, tcp, "", timeout).await, Health::Healthy);
    }

    #[tokio::test]
    async fn a_closed_port_is_unhealthy() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let health = probe(
            "127.0.0.1".parse().unwrap(),
            port,
            "",
            Duration::from_secs(2),
        )
        .await;
        assert!(matches!(health, Health::Unhealthy { .. }));
    }
}

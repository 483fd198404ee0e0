//! The gateway alone, for the benchmark: routes `bench.flux.localhost` to
//! one backend.
//!
//! `bench_gateway LISTEN BACKEND [WORKERS]`, e.g.
//! `bench_gateway 127.0.0.1:38081 127.0.0.1:38080 2`.

use std::net::SocketAddr;

use flux_gateway::{Backend, Gateway, GatewayConfig, RouteTable};
use flux_types::Address;

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: bench_gateway LISTEN BACKEND [WORKERS]";
    let listen: SocketAddr = args.next().and_then(|a| a.parse().ok()).expect(usage);
    let backend: SocketAddr = args.next().and_then(|a| a.parse().ok()).expect(usage);
    let workers: usize = args.next().and_then(|w| w.parse().ok()).unwrap_or(1);
    // The gateway serves HTTP on worker threads of its own; this runtime
    // only runs its prober.
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(async move {
            let mut routes = RouteTable::builder("flux.localhost").expect("a valid domain");
            let backends = vec![Backend {
                addr: backend,
                node: Address([1; 20]),
                local: true,
            }];
            routes.port("bench", "web", backend.port(), backends, None);
            let config = GatewayConfig {
                http_listen: listen,
                workers,
                tcp_forwarding: false,
                ..GatewayConfig::default()
            };
            let _gateway = Gateway::start(config, routes.build())
                .await
                .map_err(std::io::Error::other)?;
            tokio::signal::ctrl_c().await
        })
}

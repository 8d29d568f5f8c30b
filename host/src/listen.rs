//! Accepting TCP connections for the daemon's HTTP endpoints (metrics,
//! the bouncers' API): at most so many served at once, the rest closed
//! at once, and an accept error waited out rather than spun on.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

/// How many connections are served at once, and whether one turned away
/// is worth a warning.
#[derive(Debug, Clone, Copy)]
pub struct Bound {
    /// Connections served at once.
    pub max: usize,
    /// Warn of each connection turned away.
    pub warn: bool,
}

/// Serve each connection on `listener` with `serve` on a task of its own,
/// within `bound`, until the task running this is dropped. `what` names
/// the endpoint in the log.
pub async fn accept_bounded<F, Fut>(listener: TcpListener, bound: Bound, what: &'static str, serve: F)
where
    F: Fn(TcpStream, SocketAddr) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(bound.max));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of descriptors, say: wait rather than spin.
                tracing::warn!("{what}: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            if bound.warn {
                tracing::warn!("{what}: {} connections open already: {peer} turned away", bound.max);
            }
            drop(stream);
            continue;
        };
        let served = serve(stream, peer);
        tokio::spawn(async move {
            served.await;
            drop(slot);
        });
    }
}

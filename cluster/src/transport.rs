//! How this node reaches its peers' gRPC servers. Production dials the operating
//! system's TCP stack; the simulator supplies a dialer over its simulated network.
//! Either way connections are made lazily and re-made by tonic after a failure.

use std::sync::Arc;
use std::time::Duration;

use tonic::transport::{Channel, Endpoint};

const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(1);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(2);

/// Turns an endpoint into a (lazily connected) channel.
pub trait Dial: Send + Sync + 'static {
    fn channel(&self, endpoint: Endpoint) -> Channel;
}

/// The operating system's TCP stack (tonic sets TCP_NODELAY).
pub struct Tcp;

impl Dial for Tcp {
    fn channel(&self, endpoint: Endpoint) -> Channel {
        endpoint.connect_lazy()
    }
}

#[derive(Clone)]
pub struct Channels(Arc<dyn Dial>);

/// A peer address no channel can be made to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad peer address {addr}: {reason}")]
pub struct BadPeerAddress {
    pub addr: String,
    pub reason: String,
}

impl Channels {
    pub fn tcp() -> Self {
        Self(Arc::new(Tcp))
    }

    pub fn new(dial: impl Dial) -> Self {
        Self(Arc::new(dial))
    }

    /// A channel to `host:port`.
    pub fn to(&self, addr: &str, connect_timeout: Duration) -> Result<Channel, BadPeerAddress> {
        let endpoint = Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| BadPeerAddress {
                addr: addr.to_string(),
                reason: e.to_string(),
            })?
            .connect_timeout(connect_timeout)
            // A connection whose peer went silent (partitioned, or a machine that
            // died without a reset) is dropped within seconds and re-made, rather
            // than holding every later call until TCP gives up minutes later.
            .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
            .keep_alive_timeout(KEEPALIVE_TIMEOUT)
            .keep_alive_while_idle(true);
        Ok(self.0.channel(endpoint))
    }
}

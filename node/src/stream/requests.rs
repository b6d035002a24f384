//! What the listeners ask of the node supervisor (`crate::node`), which starts and
//! stops the node's streams. Declared here, below both, so the listeners and the
//! supervisor import it without importing each other.

use std::sync::Arc;

use ractor::RpcReplyPort;

use super::directory::StreamHandle;
use super::registry::{PublishDenied, StreamId};
use super::supervisor::{PublisherBinding, PublisherConn};
#[cfg(feature = "test-hooks")]
use crate::supervision::StreamChild;

pub enum NodeMsg {
    /// Attach a publisher to a stream, creating the stream if it is new.
    Publish {
        id: StreamId,
        conn: PublisherConn,
        reply: RpcReplyPort<Result<PublisherBinding, PublishDenied>>,
    },
    /// Serve a stream whose origin is another node (an HTTP request asked for it).
    Relay {
        id: StreamId,
        reply: RpcReplyPort<Option<Arc<StreamHandle>>>,
    },
    /// Fault injection: make one of a stream's actors panic.
    #[cfg(feature = "test-hooks")]
    Crash {
        id: StreamId,
        child: StreamChild,
        reply: RpcReplyPort<bool>,
    },
}

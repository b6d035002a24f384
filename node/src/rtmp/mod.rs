//! RTMP in both directions: ingest (an accept loop and one task per connection
//! driving rml_rtmp's sans-IO handshake and server session) and `push`, the client
//! that restreams to other servers.

mod amf_check;
pub mod connection;
pub mod guard;
pub mod listener;
pub mod push;
mod read_ticks;

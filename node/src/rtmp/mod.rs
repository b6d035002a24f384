//! RTMP ingest: an accept loop and one task per connection driving rml_rtmp's
//! sans-IO handshake and server session.

mod amf_check;
pub mod connection;
pub mod guard;
pub mod listener;

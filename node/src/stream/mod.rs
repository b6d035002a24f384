//! The per-stream actor tree and the node's view of its streams.
//!
//! ```text
//! origin: stream supervisor ── ingest (bound to the publishing connection)
//!                           ├─ segmenter (frames → CMAF parts → live window)
//!                           └─ viewer-counter
//! edge:   edge supervisor ──── relay (mesh subscription → live window)
//!                           └─ viewer-counter
//! ```

pub mod context;
pub mod directory;
pub mod edge;
pub mod hooks;
pub mod ingest;
pub mod lifecycle;
pub mod mesh_source;
pub mod publish;
pub mod registry;
pub mod relay;
pub mod relay_policy;
pub mod requests;
pub mod restream;
pub mod segmenter;
pub mod stats;
pub mod supervisor;
pub mod takeover;
pub mod viewer_counter;
pub mod viewer_sessions;

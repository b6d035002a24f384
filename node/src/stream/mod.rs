//! The per-stream actor tree and the node's view of its streams.
//!
//! ```text
//! stream supervisor ── ingest (bound to the publishing connection)
//!                   ├─ segmenter (frames → CMAF parts → live window)
//!                   └─ viewer-counter
//! ```

pub mod directory;
pub mod ingest;
pub mod registry;
pub mod segmenter;
pub mod stats;
pub mod supervisor;
pub mod viewer_counter;

//! Where a node keeps its cluster state: the Raft store (RocksDB under the data
//! directory, or the simulator's in-memory disk) and the admin token.

use std::fmt;
use std::sync::Arc;

use castmesh_cluster::raft::store::Store;

use crate::seams::Seams;

#[cfg(feature = "rocksdb")]
mod disk;

pub struct Storage {
    pub raft: Arc<dyn Store>,
    pub admin_token: String,
    /// The data directory (none in the simulator).
    pub data_dir: Option<std::path::PathBuf>,
    /// Where it lives, for the log line.
    location: String,
    /// Keeps a `--dev` node's temporary data directory until shutdown.
    _scratch: Option<tempfile::TempDir>,
}

impl Storage {
    /// A store the caller keeps (the simulator's disk, which outlives a crash).
    pub fn in_memory(raft: Arc<dyn Store>, admin_token: String) -> Storage {
        Storage {
            raft,
            admin_token,
            data_dir: None,
            location: "memory".into(),
            _scratch: None,
        }
    }
}

impl fmt::Display for Storage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.location)
    }
}

pub fn random_token(seams: &Seams) -> String {
    (0..4)
        .map(|_| format!("{:016x}", seams.entropy.next_u64()))
        .collect()
}

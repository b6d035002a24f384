//! One RocksDB per node, with a column family per concern.

use std::path::Path;
use std::sync::Arc;

use rocksdb::{ColumnFamilyDescriptor, DB, Options};

/// Raft log entries, keyed by big-endian index (byte order = numeric order).
pub const LOGS: &str = "logs";
/// Vote, committed log id, last purged log id.
pub const META: &str = "meta";
/// The current state machine snapshot.
pub const SNAPSHOT: &str = "snapshot";

pub fn open(path: &Path) -> Result<Arc<DB>, rocksdb::Error> {
    let mut opts = Options::default();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    let families = [LOGS, META, SNAPSHOT]
        .into_iter()
        .map(|name| ColumnFamilyDescriptor::new(name, Options::default()));
    DB::open_cf_descriptors(&opts, path, families).map(Arc::new)
}

/// Write options for anything Raft relies on after a crash: fsync before returning.
pub fn durable() -> rocksdb::WriteOptions {
    let mut wo = rocksdb::WriteOptions::default();
    wo.set_sync(true);
    wo
}

//! What the Raft stores need from a disk: a few ordered key/value tables, atomic
//! batches, and a say in when a write must be durable. RocksDB provides it in
//! production ([`super::rocks`]); the simulator uses [`super::memory`], which loses
//! unsynced writes on a simulated crash as a power cut would.

use std::io;

/// The tables a node keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Family {
    /// Raft log entries, keyed by big-endian index (byte order = numeric order).
    Logs,
    /// Vote, committed log id, last purged log id.
    Meta,
    /// The current state machine snapshot.
    Snapshot,
}

impl Family {
    pub const ALL: [Family; 3] = [Family::Logs, Family::Meta, Family::Snapshot];

    pub fn name(self) -> &'static str {
        match self {
            Family::Logs => "logs",
            Family::Meta => "meta",
            Family::Snapshot => "snapshot",
        }
    }
}

#[derive(Debug, Clone)]
pub enum Op {
    Put {
        family: Family,
        key: Vec<u8>,
        value: Vec<u8>,
    },
    /// Deletes keys in `from..to`.
    DeleteRange {
        family: Family,
        from: Vec<u8>,
        to: Vec<u8>,
    },
}

/// Writes applied all together or not at all.
#[derive(Debug, Clone, Default)]
pub struct Batch(pub Vec<Op>);

impl Batch {
    pub fn put(&mut self, family: Family, key: impl Into<Vec<u8>>, value: Vec<u8>) {
        self.0.push(Op::Put {
            family,
            key: key.into(),
            value,
        });
    }

    pub fn delete_range(
        &mut self,
        family: Family,
        from: impl Into<Vec<u8>>,
        to: impl Into<Vec<u8>>,
    ) {
        self.0.push(Op::DeleteRange {
            family,
            from: from.into(),
            to: to.into(),
        });
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// On stable storage before `write` returns (fsync), with every earlier write.
    Synced,
    /// May be lost if the machine stops before a later synced write.
    Buffered,
}

pub trait Store: Send + Sync + 'static {
    fn get(&self, family: Family, key: &[u8]) -> io::Result<Option<Vec<u8>>>;

    fn write(&self, batch: Batch, durability: Durability) -> io::Result<()>;

    /// Visits entries with keys from `start` on, in key order, until `visit` returns false.
    fn scan(
        &self,
        family: Family,
        start: &[u8],
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> io::Result<()>;

    /// The value under the greatest key.
    fn last(&self, family: Family) -> io::Result<Option<Vec<u8>>>;
}

//! The Raft log on a [`Store`]. An append is acknowledged only once fsynced.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{Entry, LogState, RaftLogReader, StorageIOError, Vote};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::store::{Batch, Durability, Family, Store};
use super::{LogId, StorageError, TypeConfig, codec};
use crate::sabotage::{self, Bug};

const VOTE: &str = "vote";
const COMMITTED: &str = "committed";
const LAST_PURGED: &str = "last_purged";

/// Cheap to clone: clones share the store (openraft reads through clones while the
/// core appends).
#[derive(Clone)]
pub struct LogStore {
    db: Arc<dyn Store>,
}

impl LogStore {
    pub fn new(db: Arc<dyn Store>) -> Self {
        Self { db }
    }

    fn read_meta<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StorageError> {
        let bytes = self
            .db
            .get(Family::Meta, key.as_bytes())
            .map_err(|e| StorageIOError::read(&e))?;
        bytes
            .map(|b| codec::decode(&b).map_err(|e| StorageIOError::read(&e).into()))
            .transpose()
    }

    fn write_meta<T: Serialize>(
        &self,
        key: &str,
        value: &T,
        durability: Durability,
    ) -> Result<(), StorageError> {
        let mut batch = Batch::default();
        batch.put(Family::Meta, key.as_bytes(), codec::encode(value));
        self.db
            .write(batch, durability)
            .map_err(|e| StorageIOError::write(&e).into())
    }

    fn last_entry(&self) -> Result<Option<Entry<TypeConfig>>, StorageError> {
        let last = self
            .db
            .last(Family::Logs)
            .map_err(|e| StorageIOError::read_logs(&e))?;
        last.map(|value| codec::decode(&value).map_err(|e| StorageIOError::read_logs(&e).into()))
            .transpose()
    }
}

/// Appends and the committed index are fsynced, unless a test switched on the bug
/// of acknowledging them before they are durable.
fn log_durability() -> Durability {
    if sabotage::active(Bug::AckBeforeDurable) {
        Durability::Buffered
    } else {
        Durability::Synced
    }
}

fn index_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError> {
        let start = match range.start_bound() {
            Bound::Included(i) => *i,
            Bound::Excluded(i) => i + 1,
            Bound::Unbounded => 0,
        };
        let mut entries = Vec::new();
        let mut failure = None;
        self.db
            .scan(Family::Logs, &index_key(start), &mut |key, value| {
                let Ok(key) = <[u8; 8]>::try_from(key) else {
                    failure = Some(openraft::AnyError::error("log key is not 8 bytes"));
                    return false;
                };
                if !range.contains(&u64::from_be_bytes(key)) {
                    return false;
                }
                match codec::decode(value) {
                    Ok(entry) => entries.push(entry),
                    Err(e) => failure = Some(openraft::AnyError::new(&e)),
                }
                failure.is_none()
            })
            .map_err(|e| StorageIOError::read_logs(&e))?;
        match failure {
            Some(e) => Err(StorageIOError::read_logs(&e).into()),
            None => Ok(entries),
        }
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged: Option<LogId> = self.read_meta(LAST_PURGED)?;
        let last = self.last_entry()?.map(|e| e.log_id);
        Ok(LogState {
            last_purged_log_id: last_purged,
            last_log_id: last.or(last_purged),
        })
    }

    async fn get_log_reader(&mut self) -> Self {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> Result<(), StorageError> {
        if sabotage::active(Bug::ForgetVote) {
            return Ok(());
        }
        self.write_meta(VOTE, vote, Durability::Synced)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<u64>>, StorageError> {
        self.read_meta(VOTE)
    }

    /// Lets a restarted node re-apply committed entries at once. Fsynced: a leader
    /// that restarts resumes its term and answers read-index requests from this value,
    /// so a stale one would serve reads that miss acknowledged writes (the simulation
    /// found exactly that; openraft documents the trap under `save_committed`).
    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        self.write_meta(COMMITTED, &committed, log_durability())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.read_meta::<Option<LogId>>(COMMITTED)?.flatten())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let mut batch = Batch::default();
        for entry in entries {
            batch.put(
                Family::Logs,
                index_key(entry.log_id.index),
                codec::encode(&entry),
            );
        }
        self.db
            .write(batch, log_durability())
            .map_err(|e| StorageIOError::write_logs(&e))?;
        // The batch is fsynced: only now may Raft count these entries as stored.
        callback.log_io_completed(Ok(()));
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let mut batch = Batch::default();
        batch.delete_range(Family::Logs, index_key(log_id.index), index_key(u64::MAX));
        self.db
            .write(batch, Durability::Synced)
            .map_err(|e| StorageIOError::write_logs(&e).into())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        // The purge point is recorded in the same batch: with no entries left,
        // get_log_state must still know where the log ends.
        let mut batch = Batch::default();
        batch.put(
            Family::Meta,
            LAST_PURGED.as_bytes(),
            codec::encode(&Some(log_id)),
        );
        batch.delete_range(Family::Logs, index_key(0), index_key(log_id.index + 1));
        self.db
            .write(batch, Durability::Synced)
            .map_err(|e| StorageIOError::write_logs(&e).into())
    }
}

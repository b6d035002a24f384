//! The Raft log on RocksDB. An append is acknowledged only once fsynced.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{Entry, LogState, RaftLogReader, StorageIOError, Vote};
use rocksdb::{ColumnFamily, DB, Direction, IteratorMode, WriteBatch};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::db::{self, LOGS, META};
use super::{LogId, StorageError, TypeConfig, codec};

const VOTE: &str = "vote";
const COMMITTED: &str = "committed";
const LAST_PURGED: &str = "last_purged";

/// Cheap to clone: clones share the database (openraft reads through clones while
/// the core appends).
#[derive(Clone)]
pub struct LogStore {
    db: Arc<DB>,
}

impl LogStore {
    pub fn new(db: Arc<DB>) -> Self {
        Self { db }
    }

    fn cf(&self, name: &str) -> &ColumnFamily {
        self.db
            .cf_handle(name)
            .expect("the database is opened with every family")
    }

    fn read_meta<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StorageError> {
        let bytes = self
            .db
            .get_cf(self.cf(META), key)
            .map_err(|e| StorageIOError::read(&e))?;
        bytes
            .map(|b| codec::decode(&b).map_err(|e| StorageIOError::read(&e).into()))
            .transpose()
    }

    fn write_meta<T: Serialize>(
        &self,
        key: &str,
        value: &T,
        sync: bool,
    ) -> Result<(), StorageError> {
        let mut batch = WriteBatch::default();
        batch.put_cf(self.cf(META), key, codec::encode(value));
        let opts = if sync {
            db::durable()
        } else {
            Default::default()
        };
        self.db
            .write_opt(batch, &opts)
            .map_err(|e| StorageIOError::write(&e).into())
    }

    fn last_entry(&self) -> Result<Option<Entry<TypeConfig>>, StorageError> {
        match self.db.iterator_cf(self.cf(LOGS), IteratorMode::End).next() {
            None => Ok(None),
            Some(item) => {
                let (_, value) = item.map_err(|e| StorageIOError::read_logs(&e))?;
                Ok(Some(
                    codec::decode(&value).map_err(|e| StorageIOError::read_logs(&e))?,
                ))
            }
        }
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
        let mode = IteratorMode::From(&index_key(start), Direction::Forward);
        for item in self.db.iterator_cf(self.cf(LOGS), mode) {
            let (key, value) = item.map_err(|e| StorageIOError::read_logs(&e))?;
            let index = u64::from_be_bytes(key.as_ref().try_into().map_err(|_| {
                StorageIOError::read_logs(openraft::AnyError::error("log key is not 8 bytes"))
            })?);
            if !range.contains(&index) {
                break;
            }
            entries.push(codec::decode(&value).map_err(|e| StorageIOError::read_logs(&e))?);
        }
        Ok(entries)
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
        self.write_meta(VOTE, vote, true)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<u64>>, StorageError> {
        self.read_meta(VOTE)
    }

    /// Lets a restarted node re-apply committed entries at once. Not fsynced: if the
    /// last value is lost, the node re-applies a little less and learns the rest from
    /// the leader.
    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        self.write_meta(COMMITTED, &committed, false)
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
        let mut batch = WriteBatch::default();
        for entry in entries {
            batch.put_cf(
                self.cf(LOGS),
                index_key(entry.log_id.index),
                codec::encode(&entry),
            );
        }
        self.db
            .write_opt(batch, &db::durable())
            .map_err(|e| StorageIOError::write_logs(&e))?;
        // The batch is fsynced: only now may Raft count these entries as stored.
        callback.log_io_completed(Ok(()));
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(self.cf(LOGS), index_key(log_id.index), index_key(u64::MAX));
        self.db
            .write_opt(batch, &db::durable())
            .map_err(|e| StorageIOError::write_logs(&e).into())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        // The purge point is recorded in the same batch: with no entries left,
        // get_log_state must still know where the log ends.
        let mut batch = WriteBatch::default();
        batch.put_cf(self.cf(META), LAST_PURGED, codec::encode(&Some(log_id)));
        batch.delete_range_cf(self.cf(LOGS), index_key(0), index_key(log_id.index + 1));
        self.db
            .write_opt(batch, &db::durable())
            .map_err(|e| StorageIOError::write_logs(&e).into())
    }
}

//! The state machine store: [`ClusterState`] in memory, snapshots in the [`Store`].
//!
//! The state is not written on every apply. It is rebuilt at startup from the last
//! snapshot plus the committed log entries after it (openraft re-applies them,
//! since the log store records the committed index), so only snapshots need disk.

use std::io::Cursor;
use std::sync::{Arc, RwLock};

use openraft::storage::RaftStateMachine;
use openraft::{
    BasicNode, Entry, EntryPayload, RaftSnapshotBuilder, Snapshot, SnapshotMeta, StorageIOError,
    StoredMembership,
};
use serde::{Deserialize, Serialize};

use super::store::{Batch, Durability, Family, Store};
use super::{LogId, StorageError, TypeConfig, codec};
use crate::command::Response;
use crate::state::ClusterState;

const CURRENT: &str = "current";

/// The applied state, shared with readers (the node's registry reads streams and
/// leases from it after a linearizable barrier).
#[derive(Debug, Clone, Default)]
pub struct Applied {
    pub last_applied: Option<LogId>,
    pub membership: StoredMembership<u64, BasicNode>,
    pub state: ClusterState,
}

pub type SharedState = Arc<RwLock<Applied>>;

#[derive(Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta<u64, BasicNode>,
    data: Vec<u8>,
}

pub struct StateMachineStore {
    db: Arc<dyn Store>,
    applied: SharedState,
}

fn load_snapshot(db: &dyn Store) -> Result<Option<StoredSnapshot>, StorageError> {
    let Some(bytes) = db
        .get(Family::Snapshot, CURRENT.as_bytes())
        .map_err(|e| StorageIOError::read_snapshot(None, &e))?
    else {
        return Ok(None);
    };
    Ok(Some(
        codec::decode(&bytes).map_err(|e| StorageIOError::read_snapshot(None, &e))?,
    ))
}

fn save_snapshot(db: &dyn Store, snapshot: &StoredSnapshot) -> Result<(), StorageError> {
    let mut batch = Batch::default();
    batch.put(
        Family::Snapshot,
        CURRENT.as_bytes(),
        codec::encode(snapshot),
    );
    db.write(batch, Durability::Synced)
        .map_err(|e| StorageIOError::write_snapshot(Some(snapshot.meta.signature()), &e).into())
}

fn applied_from(snapshot: &StoredSnapshot) -> Result<Applied, StorageError> {
    let state = codec::decode(&snapshot.data)
        .map_err(|e| StorageIOError::read_snapshot(Some(snapshot.meta.signature()), &e))?;
    Ok(Applied {
        last_applied: snapshot.meta.last_log_id,
        membership: snapshot.meta.last_membership.clone(),
        state,
    })
}

impl StateMachineStore {
    /// Opens the store, starting from the last snapshot if there is one.
    pub fn open(db: Arc<dyn Store>) -> Result<Self, StorageError> {
        let applied = match load_snapshot(db.as_ref())? {
            Some(s) => applied_from(&s)?,
            None => Applied::default(),
        };
        Ok(Self {
            db,
            applied: Arc::new(RwLock::new(applied)),
        })
    }

    pub fn shared(&self) -> SharedState {
        self.applied.clone()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Applied> {
        self.applied.read().unwrap_or_else(|e| e.into_inner())
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId>, StoredMembership<u64, BasicNode>), StorageError> {
        let a = self.read();
        Ok((a.last_applied, a.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Response>, StorageError>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let mut a = self.applied.write().unwrap_or_else(|e| e.into_inner());
        let mut responses = Vec::new();
        for entry in entries {
            a.last_applied = Some(entry.log_id);
            // One response per entry, blank and membership entries included.
            responses.push(match entry.payload {
                EntryPayload::Blank => Response::Done,
                EntryPayload::Normal(command) => a.state.apply(command),
                EntryPayload::Membership(m) => {
                    a.membership = StoredMembership::new(Some(entry.log_id), m);
                    Response::Done
                }
            });
        }
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        // A copy taken now: the build runs concurrently with later applies.
        SnapshotBuilder {
            db: self.db.clone(),
            applied: self.read().clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data: snapshot.into_inner(),
        };
        let applied = applied_from(&stored)?;
        save_snapshot(self.db.as_ref(), &stored)?;
        *self.applied.write().unwrap_or_else(|e| e.into_inner()) = applied;
        tracing::info!(snapshot = %meta.snapshot_id, "installed a snapshot from the leader");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        Ok(load_snapshot(self.db.as_ref())?.map(|s| Snapshot {
            meta: s.meta,
            snapshot: Box::new(Cursor::new(s.data)),
        }))
    }
}

pub struct SnapshotBuilder {
    db: Arc<dyn Store>,
    applied: Applied,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let data = codec::encode(&self.applied.state);
        // Deterministic id: the same state on two nodes gives the same snapshot id.
        let snapshot_id = match self.applied.last_applied {
            Some(id) => format!("{}-{}", id.leader_id.term, id.index),
            None => "empty".to_string(),
        };
        let meta = SnapshotMeta {
            last_log_id: self.applied.last_applied,
            last_membership: self.applied.membership.clone(),
            snapshot_id,
        };
        // Persisted before it is handed out: openraft re-reads it to send to followers.
        let stored = StoredSnapshot { meta, data };
        save_snapshot(self.db.as_ref(), &stored)?;
        Ok(Snapshot {
            meta: stored.meta,
            snapshot: Box::new(Cursor::new(stored.data)),
        })
    }
}

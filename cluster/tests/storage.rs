//! The Raft stores, on RocksDB and on the simulator's in-memory disk, against
//! openraft's own storage conformance suite, and across a restart (RocksDB) or a
//! simulated power cut (memory).

use openraft::storage::{RaftLogStorage, RaftStateMachine};
use openraft::testing::{StoreBuilder, Suite};
use openraft::{
    CommittedLeaderId, Entry, EntryPayload, LogId, RaftLogReader, RaftSnapshotBuilder, Vote,
};
use std::sync::Arc;

use tempfile::TempDir;

use castmesh_cluster::raft::log_store::LogStore;
use castmesh_cluster::raft::memory::MemoryStore;
use castmesh_cluster::raft::rocks::RocksStore;
use castmesh_cluster::raft::state_machine::StateMachineStore;
use castmesh_cluster::raft::store::Store;
use castmesh_cluster::raft::{StorageError, TypeConfig};
use castmesh_cluster::{Command, StreamId, keys};

struct RocksBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, TempDir> for RocksBuilder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachineStore), StorageError> {
        let dir = tempfile::tempdir().expect("temp dir");
        let db: Arc<dyn Store> = Arc::new(RocksStore::open(dir.path()).expect("open rocksdb"));
        Ok((dir, LogStore::new(db.clone()), StateMachineStore::open(db)?))
    }
}

struct MemoryBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, ()> for MemoryBuilder {
    async fn build(&self) -> Result<((), LogStore, StateMachineStore), StorageError> {
        let db: Arc<dyn Store> = Arc::new(MemoryStore::default());
        Ok(((), LogStore::new(db.clone()), StateMachineStore::open(db)?))
    }
}

#[test]
fn rocksdb_passes_the_openraft_storage_suite() {
    Suite::test_all(RocksBuilder).expect("storage suite");
}

#[test]
fn memory_passes_the_openraft_storage_suite() {
    Suite::test_all(MemoryBuilder).expect("storage suite");
}

fn entry(index: u64, command: Command) -> Entry<TypeConfig> {
    Entry {
        log_id: LogId::new(CommittedLeaderId::new(1, 0), index),
        payload: EntryPayload::Normal(command),
    }
}

fn create(name: &str, seed: u8) -> Command {
    Command::CreateStream {
        id: StreamId::parse(name).unwrap(),
        title: String::new(),
        owner: String::new(),
        key_hash: keys::hash(&keys::generate([seed; keys::KEY_BYTES])),
        scheduled_at: None,
        now: 0,
        owner_id: None,
        description: String::new(),
    }
}

/// Writes a vote, three entries, a snapshot of two and a purge of one through fresh
/// stores on `open()`, calls `restart`, and checks that all of it is still there.
async fn acknowledged_writes_survive(open: impl Fn() -> Arc<dyn Store>, restart: impl FnOnce()) {
    {
        let db = open();
        let mut log = LogStore::new(db.clone());
        let mut sm = StateMachineStore::open(db).unwrap();
        log.save_vote(&Vote::new_committed(1, 0)).await.unwrap();
        let entries: Vec<_> = (1..=3)
            .map(|i| entry(i, create(&format!("s{i}"), i as u8)))
            .collect();
        openraft::storage::RaftLogStorageExt::blocking_append(&mut log, entries.clone())
            .await
            .unwrap();
        sm.apply(entries[..2].to_vec()).await.unwrap();
        let mut builder = sm.get_snapshot_builder().await;
        builder.build_snapshot().await.unwrap();
        log.save_committed(Some(entries[2].log_id)).await.unwrap();
        log.purge(entries[0].log_id).await.unwrap();
    }
    restart();
    let db = open();
    let mut log = LogStore::new(db.clone());
    let mut sm = StateMachineStore::open(db).unwrap();
    assert_eq!(
        log.read_vote().await.unwrap(),
        Some(Vote::new_committed(1, 0))
    );
    let state = log.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id.map(|l| l.index), Some(1));
    assert_eq!(state.last_log_id.map(|l| l.index), Some(3));
    assert_eq!(log.try_get_log_entries(2..=3).await.unwrap().len(), 2);
    assert_eq!(
        log.read_committed().await.unwrap().map(|l| l.index),
        Some(3)
    );
    // The state machine restarts from the snapshot (two streams applied).
    let (applied, _) = sm.applied_state().await.unwrap();
    assert_eq!(applied.map(|l| l.index), Some(2));
    assert_eq!(sm.shared().read().unwrap().state.streams.len(), 2);
}

#[tokio::test]
async fn rocksdb_keeps_acknowledged_writes_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let open = || -> Arc<dyn Store> { Arc::new(RocksStore::open(dir.path()).unwrap()) };
    acknowledged_writes_survive(open, || ()).await;
}

#[tokio::test]
async fn memory_keeps_acknowledged_writes_across_a_power_cut() {
    let disk = Arc::new(MemoryStore::default());
    let open = || -> Arc<dyn Store> { disk.clone() };
    acknowledged_writes_survive(open, || disk.crash()).await;
}

//! Raft plumbing for the cluster state: openraft type configuration, and the log and
//! state machine stores behind openraft's storage traits, on a [`store::Store`]
//! (RocksDB in production, an in-memory disk model under simulation).

// openraft's storage traits fix the error type (`StorageError`, ~224 bytes); helpers
// here return the same type rather than boxing and unboxing at every trait boundary.
#![allow(clippy::result_large_err)]

pub mod codec;
pub mod log_store;
pub mod memory;
pub mod network;
#[cfg(feature = "rocksdb")]
pub mod rocks;
pub mod runtime;
pub mod service;
pub mod state_machine;
pub mod store;

use crate::command::{Command, Response};

openraft::declare_raft_types!(
    /// castmesh's openraft types: commands in, responses out, u64 node ids.
    pub TypeConfig:
        D = Command,
        R = Response,
        NodeId = u64,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = std::io::Cursor<Vec<u8>>,
        AsyncRuntime = runtime::Runtime,
        Responder = openraft::impls::OneshotResponder<TypeConfig>,
);

pub type Raft = openraft::Raft<TypeConfig>;

/// Snapshot chunk size. Records are JSON, where bytes are number arrays (up to 4
/// characters per byte), so a chunk costs up to ~4× this on the wire.
pub const SNAPSHOT_CHUNK_BYTES: u64 = 1024 * 1024;

/// Largest Raft RPC accepted (tonic's default is 4 MiB): a snapshot chunk with its JSON
/// overhead, or a batch of appended entries.
pub const MAX_RPC_BYTES: usize = 32 * 1024 * 1024;
pub type LogId = openraft::LogId<u64>;
pub type StorageError = openraft::StorageError<u64>;

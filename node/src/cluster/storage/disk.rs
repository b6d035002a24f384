//! A node's storage on disk: RocksDB under the data directory, and the admin token.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use castmesh_cluster::raft::rocks::RocksStore;

use super::{Storage, random_token};
use crate::config::Config;
use crate::private_file::{self, Existing};
use crate::seams::Seams;

impl Storage {
    /// The configured data directory (a temporary one when none is configured).
    pub fn on_disk(config: &Config, seams: &Seams) -> anyhow::Result<Storage> {
        let (data_dir, scratch) = data_dir(&config.cluster.data_dir)?;
        let admin_token = admin_token(config, &data_dir, seams)?;
        let raft_dir = data_dir.join("raft");
        let raft = RocksStore::open(&raft_dir)
            .with_context(|| format!("cannot open cluster storage {}", raft_dir.display()))?;
        Ok(Storage {
            raft: Arc::new(raft),
            admin_token,
            location: data_dir.display().to_string(),
            data_dir: Some(data_dir.clone()),
            _scratch: scratch,
        })
    }
}

/// The configured data directory, or a scratch one for a throwaway dev node.
fn data_dir(configured: &Path) -> anyhow::Result<(PathBuf, Option<tempfile::TempDir>)> {
    if configured.as_os_str().is_empty() {
        let scratch = tempfile::Builder::new()
            .prefix("castmesh-dev-")
            .tempdir()
            .context("cannot create a temporary data directory")?;
        return Ok((scratch.path().to_path_buf(), Some(scratch)));
    }
    std::fs::create_dir_all(configured)
        .with_context(|| format!("cannot create data directory {}", configured.display()))?;
    Ok((configured.to_path_buf(), None))
}

/// The configured admin token, or the one generated into DATA_DIR/admin-token (kept
/// across restarts so scripts keep working).
fn admin_token(config: &Config, data_dir: &Path, seams: &Seams) -> anyhow::Result<String> {
    if !config.cluster.admin_token.0.is_empty() {
        return Ok(config.cluster.admin_token.0.clone());
    }
    let path = data_dir.join("admin-token");
    if let Ok(existing) = std::fs::read_to_string(&path) {
        // An empty file (a crash between create and write) is not a token.
        if !existing.trim().is_empty() {
            return Ok(existing.trim().to_string());
        }
    }
    let token = random_token(seams);
    private_file::write(&path, &token, Existing::Replace)?;
    tracing::info!(path = %path.display(), "generated the admin token (castctl --token-file)");
    Ok(token)
}

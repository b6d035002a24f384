//! Password hashing: argon2id (PHC strings), off the async runtime and a few at a
//! time, so sign-ins cannot starve the media path of CPU or the node of memory (each
//! hash holds `accounts.password_memory_kib` while it runs).

use std::sync::Arc;

use argon2::{Algorithm, Argon2, Params, PasswordHasher, PasswordVerifier, Version};
use castmesh_cluster::accounts::PasswordHash;
use tokio::runtime::RuntimeFlavor;
use tokio::sync::Semaphore;

use crate::config::AccountsConfig;
use crate::seams::Entropy;

/// Bytes of salt per hash (argon2's recommendation).
const SALT_BYTES: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("too many sign-ins are being checked right now; try again in a moment")]
    Busy,
    #[error("password hashing failed: {0}")]
    Failed(String),
}

pub struct Hasher {
    params: Params,
    /// Hashes running at once (`accounts.max_concurrent_hashes`).
    running: Arc<Semaphore>,
    /// Hashes running or waiting; beyond it a request is refused at once.
    admitted: Arc<Semaphore>,
    entropy: Arc<Entropy>,
    /// Checked when an email has no account, so that answering takes as long as for
    /// an account with a wrong password (no user enumeration by timing).
    decoy: PasswordHash,
}

impl Hasher {
    pub fn new(config: &AccountsConfig, entropy: Arc<Entropy>) -> Result<Self, HashError> {
        let params = Params::new(
            config.password_memory_kib,
            config.password_iterations,
            1,
            None,
        )
        .map_err(|e| HashError::Failed(e.to_string()))?;
        let mut decoy_password = [0u8; 16];
        entropy.fill(&mut decoy_password);
        let mut hasher = Self {
            params,
            running: Arc::new(Semaphore::new(config.max_concurrent_hashes)),
            admitted: Arc::new(Semaphore::new(
                config.max_concurrent_hashes + config.max_queued_hashes,
            )),
            entropy,
            decoy: PasswordHash(String::new()),
        };
        hasher.decoy = hasher.hash_now(&decoy_password)?;
        Ok(hasher)
    }

    /// A new PHC string for `password`, with a fresh salt.
    pub async fn hash(&self, password: &str) -> Result<PasswordHash, HashError> {
        let mut salt = [0u8; SALT_BYTES];
        self.entropy.fill(&mut salt);
        let params = self.params.clone();
        let password = password.as_bytes().to_vec();
        self.run(move || hash_with(&params, &password, &salt))
            .await?
    }

    /// Whether `password` matches `hash`; with no hash (no such account), a decoy is
    /// checked and the answer is no.
    pub async fn verify(
        &self,
        password: &str,
        hash: Option<&PasswordHash>,
    ) -> Result<bool, HashError> {
        let known = hash.is_some();
        let phc = hash.unwrap_or(&self.decoy).0.clone();
        let password = password.as_bytes().to_vec();
        let matches = self
            .run(move || {
                Argon2::default()
                    .verify_password(&password, phc.as_str())
                    .is_ok()
            })
            .await?;
        Ok(known && matches)
    }

    fn hash_now(&self, password: &[u8]) -> Result<PasswordHash, HashError> {
        let mut salt = [0u8; SALT_BYTES];
        self.entropy.fill(&mut salt);
        hash_with(&self.params, password, &salt)
    }

    /// Runs `work` within the limits. On a multi-threaded runtime it moves to the
    /// blocking pool, and its permits go with it: a client that goes away while its
    /// hash runs frees nothing until the hash is done, so dropped requests cannot pile
    /// up hashes beyond the limits. On a current-thread runtime (the simulation, whose
    /// scheduler must stay deterministic, with cheap settings) it runs in place.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let admitted = self
            .admitted
            .clone()
            .try_acquire_owned()
            .map_err(|_| HashError::Busy)?;
        let running = self
            .running
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| HashError::Busy)?;
        if tokio::runtime::Handle::current().runtime_flavor() == RuntimeFlavor::CurrentThread {
            return Ok(work());
        }
        tokio::task::spawn_blocking(move || {
            let done = work();
            drop((running, admitted));
            done
        })
        .await
        .map_err(|e| HashError::Failed(e.to_string()))
    }
}

fn hash_with(params: &Params, password: &[u8], salt: &[u8]) -> Result<PasswordHash, HashError> {
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    argon
        .hash_password_with_salt(password, salt)
        .map(|h| PasswordHash(h.to_string()))
        .map_err(|e| HashError::Failed(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> AccountsConfig {
        AccountsConfig {
            password_memory_kib: 1024,
            password_iterations: 1,
            max_concurrent_hashes: 1,
            max_queued_hashes: 1,
            ..AccountsConfig::default()
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_hash_verifies_its_password_only_and_salts_differ() {
        let hasher = Hasher::new(&cheap(), Arc::new(Entropy::seeded(1))).unwrap();
        let a = hasher.hash("correct horse").await.unwrap();
        let b = hasher.hash("correct horse").await.unwrap();
        assert!(a.0.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"), "{}", a.0);
        assert_ne!(a, b, "each hash has its own salt");
        assert!(hasher.verify("correct horse", Some(&a)).await.unwrap());
        assert!(!hasher.verify("correct hors", Some(&a)).await.unwrap());
        assert!(!hasher.verify("anything", None).await.unwrap());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn hashes_beyond_the_running_and_queued_ones_are_refused_at_once() {
        let hasher = Arc::new(Hasher::new(&cheap(), Arc::new(Entropy::seeded(2))).unwrap());
        // Hold the one running slot, then fill the one queued slot.
        let running = hasher.running.clone().acquire_owned().await.unwrap();
        let queued = {
            let h = hasher.clone();
            tokio::spawn(async move { h.hash("one").await })
        };
        while hasher.admitted.available_permits() > 1 {
            tokio::task::yield_now().await;
        }
        let admitted_one = hasher.admitted.try_acquire().unwrap();
        assert!(matches!(hasher.hash("two").await, Err(HashError::Busy)));
        drop(admitted_one);
        drop(running);
        assert!(queued.await.unwrap().is_ok());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn under_the_simulation_the_same_seed_gives_the_same_hash() {
        let one = Hasher::new(&cheap(), Arc::new(Entropy::seeded(3))).unwrap();
        let two = Hasher::new(&cheap(), Arc::new(Entropy::seeded(3))).unwrap();
        assert_eq!(one.hash("pw").await.unwrap(), two.hash("pw").await.unwrap());
    }
}

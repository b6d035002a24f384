//! Stream keys: generated from 192 random bits, stored only as SHA-256 hashes.
//!
//! A fast hash is enough because keys are random, not chosen by people: there is
//! nothing to guess from a hash of 192 random bits, so a slow password KDF would only
//! cost CPU on every publish.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::ids::StreamKey;

/// SHA-256 of a secret made of random bits: a stream key, or a session token
/// (`crate::accounts`). Serialized as 64 hex digits, so it can be a JSON map key.
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(into = "String", try_from = "String")]
pub struct KeyHash(pub [u8; 32]);

impl From<KeyHash> for String {
    fn from(h: KeyHash) -> String {
        h.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Text that is not a key hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a key hash is 64 hex digits, got {len} characters")]
pub struct InvalidKeyHash {
    len: usize,
}

impl TryFrom<String> for KeyHash {
    type Error = InvalidKeyHash;

    fn try_from(s: String) -> Result<Self, InvalidKeyHash> {
        let bad = || InvalidKeyHash { len: s.len() };
        if s.len() != 64 || !s.is_ascii() {
            return Err(bad());
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        Ok(KeyHash(out))
    }
}

impl std::fmt::Debug for KeyHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A prefix is enough to tell hashes apart in a debugger.
        write!(
            f,
            "KeyHash({:02x}{:02x}{:02x}{:02x}…)",
            self.0[0], self.0[1], self.0[2], self.0[3]
        )
    }
}

/// Random bytes of entropy in a key.
pub const KEY_BYTES: usize = 24;

/// A new key from caller-supplied randomness (the node's entropy seam).
pub fn generate(random: [u8; KEY_BYTES]) -> StreamKey {
    let mut key = String::from("live_");
    for b in random {
        key.push_str(&format!("{b:02x}"));
    }
    StreamKey::new(key)
}

pub fn hash(key: &StreamKey) -> KeyHash {
    hash_secret(key.expose())
}

/// The hash of any secret made of random bits (session tokens, invitation codes).
pub fn hash_secret(secret: &str) -> KeyHash {
    KeyHash(Sha256::digest(secret.as_bytes()).into())
}

/// Whether `key` hashes to `expected`, in constant time.
pub fn verify(key: &StreamKey, expected: &KeyHash) -> bool {
    hash(key).0.ct_eq(&expected.0).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_verify_and_differ() {
        let a = generate([1; KEY_BYTES]);
        let b = generate([2; KEY_BYTES]);
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), 5 + 2 * KEY_BYTES);
        assert!(verify(&a, &hash(&a)));
        assert!(!verify(&b, &hash(&a)));
        assert!(!format!("{:?}", hash(&a)).contains(&a.expose()[5..]));
    }
}

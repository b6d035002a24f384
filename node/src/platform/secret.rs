//! Secrets handed to people: session tokens, invitation codes, generated passwords.
//! Tokens and codes are 256 random bits with a prefix saying what they are (so a
//! leaked one is recognisable, as GitHub's are); only their SHA-256 is replicated.

use castmesh_cluster::keys::{self, KeyHash};

use crate::seams::Entropy;

/// What a secret is for; its prefix tells them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Session,
    Invite,
}

impl Kind {
    fn prefix(self) -> &'static str {
        match self {
            Kind::Session => "cms_",
            Kind::Invite => "cmi_",
        }
    }
}

const RANDOM_BYTES: usize = 32;

/// A secret as given to its holder. Not `Debug`: it must not reach a log by accident.
pub struct Secret(String);

impl Secret {
    pub fn generate(kind: Kind, entropy: &Entropy) -> Self {
        let mut random = [0u8; RANDOM_BYTES];
        entropy.fill(&mut random);
        Self(format!("{}{}", kind.prefix(), hex(&random)))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn hash(&self) -> KeyHash {
        keys::hash_secret(&self.0)
    }
}

/// The hash of `text` if it has the form of a `kind` secret (prefix and 64 lowercase
/// hex digits); anything else cannot be one, and is refused without a lookup.
pub fn parse(kind: Kind, text: &str) -> Option<KeyHash> {
    let digits = text.strip_prefix(kind.prefix())?;
    let well_formed = digits.len() == 2 * RANDOM_BYTES
        && digits
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    well_formed.then(|| keys::hash_secret(text))
}

/// A password for an account made by an operator (or `--dev`): 128 random bits in
/// 32 hex digits, to be changed by its owner.
pub fn password(entropy: &Entropy) -> String {
    let mut random = [0u8; 16];
    entropy.fill(&mut random);
    hex(&random)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_parses_as_its_own_kind_only() {
        let entropy = Entropy::seeded(7);
        let token = Secret::generate(Kind::Session, &entropy);
        assert_eq!(token.expose().len(), 4 + 64);
        assert_eq!(parse(Kind::Session, token.expose()), Some(token.hash()));
        assert_eq!(parse(Kind::Invite, token.expose()), None);
        let upper = token.expose().to_uppercase().replace("CMS_", "cms_");
        for bad in ["", "cms_", "cms_00", upper.as_str(), &token.expose()[1..]] {
            assert_eq!(parse(Kind::Session, bad), None, "{bad}");
        }
        let other = Secret::generate(Kind::Session, &entropy);
        assert_ne!(token.expose(), other.expose());
    }
}

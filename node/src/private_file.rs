//! Files only the node's user may read (mode 0600): generated tokens, passwords and
//! private keys.

use std::path::Path;

use anyhow::Context as _;

/// What to do when the file exists already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    Replace,
    Refuse,
}

pub fn write(path: &Path, text: &str, existing: Existing) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    match existing {
        Existing::Replace => options.create(true).truncate(true),
        Existing::Refuse => options.create_new(true),
    };
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).with_context(|| match existing {
        Existing::Replace => format!("cannot write {}", path.display()),
        Existing::Refuse => format!("cannot create {} (does it exist already?)", path.display()),
    })?;
    std::io::Write::write_all(&mut file, text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

//! The platform around the media: user accounts and their sessions, and the stream
//! catalog (owned streams and their lifecycle). Served to people by the REST API in `http/` and to operators
//! by the gRPC admin API in `admin/`; replicated through the cluster member.

pub mod accounts;
pub mod catalog;
pub mod password;
pub mod read_barrier;
pub mod secret;

use std::sync::Arc;

pub use accounts::{AccountError, Accounts};
pub use catalog::Catalog;

/// What the platform's users and operators reach: accounts, the stream catalog and
/// the streams' chat.
#[derive(Clone)]
pub struct Platform {
    pub accounts: Arc<Accounts>,
    pub catalog: Arc<Catalog>,
    pub chat: Arc<crate::chat::Hub>,
}

//! Bearer-token checks for gRPC services (Raft between nodes, the admin API).

use subtle::ConstantTimeEq;
use tonic::metadata::MetadataMap;
use tonic::{Request, Status};

/// A secret expected in `authorization: Bearer <secret>`.
#[derive(Clone)]
pub struct BearerToken(std::sync::Arc<str>);

impl BearerToken {
    pub fn new(secret: impl Into<std::sync::Arc<str>>) -> Self {
        Self(secret.into())
    }

    /// Adds the token to an outgoing request.
    pub fn attach<T>(&self, request: &mut Request<T>) {
        let value = format!("Bearer {}", self.0)
            .parse()
            .expect("secrets are validated as header-safe when configured");
        request.metadata_mut().insert("authorization", value);
    }

    /// Accepts a request carrying this token; compares in constant time.
    pub fn check(&self, metadata: &MetadataMap) -> Result<(), Status> {
        let presented = metadata
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| Status::unauthenticated("missing bearer token"))?;
        if presented.as_bytes().ct_eq(self.0.as_bytes()).into() {
            Ok(())
        } else {
            Err(Status::unauthenticated("invalid bearer token"))
        }
    }
}

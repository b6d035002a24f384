//! Bearer-token checks for gRPC services (Raft between nodes, the admin API).

use subtle::ConstantTimeEq;
use tonic::metadata::MetadataMap;
use tonic::service::Interceptor;
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
        // An empty configured secret must not accept an empty presented one.
        if !self.0.is_empty() && bool::from(presented.as_bytes().ct_eq(self.0.as_bytes())) {
            Ok(())
        } else {
            Err(Status::unauthenticated("invalid bearer token"))
        }
    }
}

/// As an interceptor the token is checked on the request's headers, before tonic
/// reads the body: a caller without it cannot make the server buffer or decode up
/// to the message size limit (32 MiB for Raft).
impl Interceptor for BearerToken {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        if let Err(refused) = self.check(request.metadata()) {
            // Debug, not warn: anyone who reaches the port can cause one per call.
            tracing::debug!(
                remote = ?request.remote_addr(),
                reason = refused.message(),
                "gRPC call refused"
            );
            return Err(refused);
        }
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn presenting(value: &str) -> MetadataMap {
        let mut m = MetadataMap::new();
        m.insert("authorization", value.parse().unwrap());
        m
    }

    #[test]
    fn only_the_exact_token_passes_and_an_empty_secret_never_does() {
        let token = BearerToken::new("s3cret-token-0123");
        assert!(token.check(&presenting("Bearer s3cret-token-0123")).is_ok());
        assert!(token.check(&presenting("Bearer s3cret-token-012")).is_err());
        assert!(token.check(&MetadataMap::new()).is_err());
        assert!(BearerToken::new("").check(&presenting("Bearer ")).is_err());
    }
}

//! Who is calling: the bearer token of a gRPC call checked against the callers file
//! ([`crate::credentials`]) before `Classify` or `Route` runs. A call without a token, with a
//! malformed `authorization` value or with a token no caller has is `UNAUTHENTICATED`, counted
//! in `/metrics` and logged with its reason and peer, never with the token. An authenticated
//! call carries its caller's name to the handler as a request extension ([`Caller`]).
//!
//! A tonic interceptor rather than a tower layer: it wraps only the `Escalator` service, so
//! `grpc.health.v1` (probes) and reflection stay open, and it runs before the request body is
//! read.

use std::sync::Arc;

use tonic::{Request, Status, metadata::MetadataMap};

use crate::{credentials::CredentialsFile, telemetry::metrics::metrics};

/// The authenticated caller of a gRPC request: a name from the callers file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller(pub String);

/// Why a call was refused: the `reason` label of `escalator_grpc_unauthenticated_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// No `authorization` metadata.
    Missing,
    /// Not `Bearer <token>`.
    Malformed,
    /// A token no caller has.
    Unknown,
}

impl Refusal {
    fn as_str(self) -> &'static str {
        match self {
            Refusal::Missing => "missing",
            Refusal::Malformed => "malformed",
            Refusal::Unknown => "unknown",
        }
    }
}

/// The token of `authorization: Bearer <token>` (the scheme in any case, as RFC 6750 allows).
fn bearer(metadata: &MetadataMap) -> Result<&str, Refusal> {
    let value = metadata.get("authorization").ok_or(Refusal::Missing)?;
    let value = value.to_str().map_err(|_| Refusal::Malformed)?;
    let (scheme, token) = value.trim().split_once(' ').ok_or(Refusal::Malformed)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(Refusal::Malformed);
    }
    Ok(token)
}

/// The interceptor of the `Escalator` service: with callers configured every call must carry
/// one's token; without, every call passes (a loopback address, or
/// `allow_unauthenticated`).
#[derive(Clone)]
pub struct CallerCheck {
    callers: Option<Arc<CredentialsFile>>,
}

impl CallerCheck {
    /// A check against `callers`, or none.
    pub fn new(callers: Option<Arc<CredentialsFile>>) -> Self {
        Self { callers }
    }
}

impl tonic::service::Interceptor for CallerCheck {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let Some(file) = &self.callers else {
            return Ok(request);
        };
        let caller = bearer(request.metadata()).and_then(|token| {
            file.current()
                .verify(token)
                .map(str::to_owned)
                .ok_or(Refusal::Unknown)
        });
        match caller {
            Ok(name) => {
                request.extensions_mut().insert(Caller(name));
                Ok(request)
            }
            Err(refusal) => {
                metrics()
                    .auth
                    .grpc_refused
                    .with_label_values(&[refusal.as_str()])
                    .inc();
                tracing::warn!(
                    reason = refusal.as_str(),
                    peer = ?request.remote_addr(),
                    "gRPC call refused: UNAUTHENTICATED"
                );
                Err(Status::unauthenticated(
                    "a caller's token is required: metadata `authorization: Bearer <token>` \
                     with a token from the callers file",
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn md(v: &str) -> MetadataMap {
        let mut m = MetadataMap::new();
        m.insert("authorization", v.parse().unwrap());
        m
    }

    #[test]
    fn the_bearer_scheme_in_any_case_and_nothing_else() {
        assert_eq!(bearer(&md("Bearer abc")), Ok("abc"));
        assert_eq!(bearer(&md("bearer  abc ")), Ok("abc"));
        assert_eq!(bearer(&MetadataMap::new()), Err(Refusal::Missing));
        for bad in ["Basic abc", "Bearer", "Bearer ", "abc", "Token abc"] {
            assert_eq!(bearer(&md(bad)), Err(Refusal::Malformed), "{bad}");
        }
    }
}

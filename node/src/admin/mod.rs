//! The operator gRPC API (`castmesh.admin.v1`): cluster membership, streams, users.
//! Every call needs the admin token (checked by `BearerToken` as the services'
//! interceptor, before the body is read); cluster errors map to gRPC codes here.

pub mod cluster;
pub mod destinations;
pub mod streams;
pub mod users;

use castmesh_cluster::Rejection;
use castmesh_cluster::member::ClusterError;
use castmesh_cluster::restream::RestreamRejection;
use tonic::Status;

pub fn cluster_status(e: ClusterError) -> Status {
    match e {
        ClusterError::Unavailable(_) | ClusterError::Stopped(_) => {
            Status::unavailable(e.to_string())
        }
        ClusterError::Refused(m) => Status::failed_precondition(m),
        ClusterError::Storage(_) | ClusterError::Config(_) => Status::internal(e.to_string()),
    }
}

pub fn rejection_status(r: Rejection) -> Status {
    let message = r.to_string();
    match r {
        Rejection::StreamExists(_) | Rejection::KeyInUse | Rejection::EmailTaken => {
            Status::already_exists(message)
        }
        Rejection::NoSuchStream(_) | Rejection::NoSuchNode(_) | Rejection::NoSuchUser(_) => {
            Status::not_found(message)
        }
        Rejection::TooManyInvites => Status::resource_exhausted(message),
        Rejection::Restream(RestreamRejection::NoSuchDestination(_)) => Status::not_found(message),
        Rejection::Restream(RestreamRejection::TooMany(_)) => Status::resource_exhausted(message),
        Rejection::Restream(RestreamRejection::Invalid(_)) => Status::invalid_argument(message),
        Rejection::UserDisabled(_)
        | Rejection::PasswordChanged(_)
        | Rejection::StreamStopped(_)
        | Rejection::InvalidInvite
        | Rejection::BadTransition { .. }
        | Rejection::NoLease(_)
        | Rejection::StaleEpoch { .. }
        | Rejection::LeaseLost(_)
        | Rejection::OriginAlive(_)
        | Rejection::NotForgettable(_) => Status::failed_precondition(message),
    }
}

//! `UserAdmin`: operators make accounts, list them, change roles, disable them, reset
//! passwords and invite people. The work is `platform::Accounts`', shared with the
//! REST API; this file only translates.

use std::sync::Arc;

use castmesh_cluster::accounts::{Role, UserRecord};
use castmesh_cluster::member::ClusterMember;
use castmesh_proto::admin::v1 as pb;
use castmesh_proto::admin::v1::user_admin_server::UserAdmin;
use tonic::{Request, Response, Status};

use crate::platform::{AccountError, Accounts};

pub struct UserService {
    pub accounts: Arc<Accounts>,
    /// For session counts, read from this node's state.
    pub member: ClusterMember,
}

pub fn account_status(e: AccountError) -> Status {
    let message = e.to_string();
    match e {
        AccountError::Invalid(_) => Status::invalid_argument(message),
        AccountError::EmailTaken => Status::already_exists(message),
        AccountError::NoSuchUser(_) => Status::not_found(message),
        AccountError::Full
        | AccountError::TooManyInvites
        | AccountError::TooManyAttempts { .. } => Status::resource_exhausted(message),
        AccountError::Hash(crate::platform::password::HashError::Busy)
        | AccountError::Unavailable(_) => Status::unavailable(message),
        AccountError::SignupClosed
        | AccountError::InviteRequired
        | AccountError::InvalidInvite
        | AccountError::Disabled => Status::failed_precondition(message),
        AccountError::BadCredentials | AccountError::Unauthenticated => {
            Status::unauthenticated(message)
        }
        AccountError::Hash(_) | AccountError::Internal(_) => Status::internal(message),
    }
}

fn role_to_pb(role: Role) -> pb::UserRole {
    match role {
        Role::Admin => pb::UserRole::Admin,
        Role::Streamer => pb::UserRole::Streamer,
        Role::Viewer => pb::UserRole::Viewer,
    }
}

fn role_from_pb(role: i32) -> Result<Role, Status> {
    match pb::UserRole::try_from(role) {
        Ok(pb::UserRole::Admin) => Ok(Role::Admin),
        Ok(pb::UserRole::Streamer) => Ok(Role::Streamer),
        Ok(pb::UserRole::Viewer) => Ok(Role::Viewer),
        _ => Err(Status::invalid_argument(
            "role must be admin, streamer or viewer",
        )),
    }
}

impl UserService {
    fn to_pb(&self, u: &UserRecord) -> pb::User {
        let sessions = self.member.read_local(|s| s.accounts.session_count(u.id));
        pb::User {
            id: u.id,
            email: u.email.clone(),
            display_name: u.display_name.clone(),
            role: role_to_pb(u.role).into(),
            disabled: u.disabled,
            created_at_ms: u.created_at,
            sessions: sessions.try_into().unwrap_or(u32::MAX),
        }
    }
}

#[tonic::async_trait]
impl UserAdmin for UserService {
    async fn create_user(
        &self,
        request: Request<pb::CreateUserRequest>,
    ) -> Result<Response<pb::CreatedUser>, Status> {
        let r = request.into_inner();
        let role = role_from_pb(r.role)?;
        let name = (!r.display_name.is_empty()).then_some(r.display_name);
        let (user, password) = self
            .accounts
            .create(&r.email, name, role, r.password)
            .await
            .map_err(account_status)?;
        Ok(Response::new(pb::CreatedUser {
            user: Some(self.to_pb(&user)),
            password,
        }))
    }

    async fn list_users(
        &self,
        _: Request<pb::ListUsersRequest>,
    ) -> Result<Response<pb::ListUsersReply>, Status> {
        let users = self.accounts.users().await.map_err(account_status)?;
        Ok(Response::new(pb::ListUsersReply {
            users: users.iter().map(|u| self.to_pb(u)).collect(),
        }))
    }

    async fn set_role(
        &self,
        request: Request<pb::SetRoleRequest>,
    ) -> Result<Response<pb::User>, Status> {
        let r = request.into_inner();
        let user = self
            .accounts
            .set_role(r.id, role_from_pb(r.role)?)
            .await
            .map_err(account_status)?;
        Ok(Response::new(self.to_pb(&user)))
    }

    async fn set_disabled(
        &self,
        request: Request<pb::SetDisabledRequest>,
    ) -> Result<Response<pb::User>, Status> {
        let r = request.into_inner();
        let user = self
            .accounts
            .set_disabled(r.id, r.disabled)
            .await
            .map_err(account_status)?;
        Ok(Response::new(self.to_pb(&user)))
    }

    async fn reset_password(
        &self,
        request: Request<pb::ResetPasswordRequest>,
    ) -> Result<Response<pb::ResetPasswordReply>, Status> {
        let r = request.into_inner();
        let password = self
            .accounts
            .reset_password(r.id, r.password)
            .await
            .map_err(account_status)?;
        Ok(Response::new(pb::ResetPasswordReply { password }))
    }

    async fn create_invite(
        &self,
        request: Request<pb::CreateInviteRequest>,
    ) -> Result<Response<pb::Invite>, Status> {
        let role = role_from_pb(request.into_inner().role)?;
        let (code, expires_at) = self.accounts.invite(role).await.map_err(account_status)?;
        Ok(Response::new(pb::Invite {
            code: code.expose().to_string(),
            expires_at_ms: expires_at,
        }))
    }
}

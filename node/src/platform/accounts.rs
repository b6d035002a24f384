//! Accounts as a node serves them: sign-up, sign-in, sessions, password changes, and
//! the operators' user management. The REST API (people) and the gRPC admin API
//! (operators) both call this; the replicated records are in
//! `castmesh_cluster::accounts`.
//!
//! Every session check reads the cluster state after a shared read of the leader's
//! commit index ([`ReadBarrier`]), so a sign-out or a disabled account acknowledged on
//! any node holds on this one from then on. Strangers cannot turn that into load: a
//! token that is not well formed is refused without a lookup, and an address whose
//! tokens keep failing is answered 429 for a while.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use castmesh_cluster::accounts::{AccountCommand, PasswordHash, Role, UserId, UserRecord};
use castmesh_cluster::command::{Command, Rejection, Response};
use castmesh_cluster::keys::KeyHash;
use castmesh_cluster::member::ClusterMember;
use castmesh_cluster::model::Millis;
use castmesh_cluster::sabotage::{self, Bug};

use super::password::{HashError, Hasher};
use super::read_barrier::{BarrierError, ReadBarrier};
use super::secret::{self, Kind, Secret};
use crate::admission::{AddressBudget, Budget};
use crate::config::{AccountsConfig, SignupPolicy};
use crate::metrics::{Metrics, ReasonLabel};
use crate::private_file::{self, Existing};
use crate::seams::{Clock, Entropy, Seams};

/// Keys (addresses, address and email) whose failures are remembered at once.
const REMEMBERED_CLIENTS: usize = 10_000;
/// Session checks waiting for the leader's commit index at once.
const WAITING_CHECKS: usize = 4096;

pub const MAX_EMAIL: usize = 254;
pub const MIN_PASSWORD: usize = 8;
pub const MAX_PASSWORD: usize = 128;
pub const MAX_DISPLAY_NAME: usize = 64;

/// Why an account operation did not happen, in words for the person who asked.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("{0}")]
    Invalid(String),
    #[error("signing up is closed on this server; ask an administrator for an account")]
    SignupClosed,
    #[error("signing up on this server needs an invitation")]
    InviteRequired,
    #[error("the invitation is unknown, used or expired")]
    InvalidInvite,
    #[error("an account with this email already exists")]
    EmailTaken,
    #[error("wrong email or password")]
    BadCredentials,
    #[error("this account is disabled")]
    Disabled,
    #[error("not signed in, or the session has ended")]
    Unauthenticated,
    #[error("too many attempts; try again in {wait_s} s")]
    TooManyAttempts { wait_s: u64 },
    #[error("no user {0}")]
    NoSuchUser(UserId),
    #[error("this server holds as many accounts as it may (accounts.max_users)")]
    Full,
    #[error("too many unused invitations; wait for some to be used or expire")]
    TooManyInvites,
    #[error(transparent)]
    Hash(#[from] HashError),
    #[error("the cluster is unavailable, try again: {0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<BarrierError> for AccountError {
    fn from(e: BarrierError) -> Self {
        AccountError::Unavailable(e.to_string())
    }
}

impl From<castmesh_cluster::member::ClusterError> for AccountError {
    fn from(e: castmesh_cluster::member::ClusterError) -> Self {
        AccountError::Unavailable(e.to_string())
    }
}

/// A session just made: the token is shown to its holder once and kept nowhere.
pub struct NewSession {
    pub token: Secret,
    pub expires_at: Millis,
    pub user: UserRecord,
}

/// A request's session, checked.
#[derive(Debug, Clone)]
pub struct Signed {
    pub user: UserRecord,
    /// The session's token hash (to sign this session out).
    pub session: KeyHash,
}

pub struct Signup {
    pub email: String,
    pub password: String,
    pub display_name: Option<String>,
    pub invite: Option<String>,
}

pub struct Accounts {
    member: ClusterMember,
    config: AccountsConfig,
    hasher: Hasher,
    barrier: ReadBarrier,
    clock: Arc<dyn Clock>,
    entropy: Arc<Entropy>,
    metrics: Arc<Metrics>,
    failed_logins: Budget<(IpAddr, String)>,
    signups: AddressBudget,
    unknown_tokens: AddressBudget,
}

impl Accounts {
    pub fn new(
        member: ClusterMember,
        config: &AccountsConfig,
        seams: &Seams,
        metrics: Arc<Metrics>,
    ) -> Result<Self, HashError> {
        let window = config.login_window;
        Ok(Self {
            hasher: Hasher::new(config, seams.entropy.clone())?,
            barrier: ReadBarrier::spawn(member.clone(), WAITING_CHECKS),
            member,
            clock: seams.clock.clone(),
            entropy: seams.entropy.clone(),
            metrics,
            failed_logins: Budget::new(config.max_failed_logins, window, REMEMBERED_CLIENTS),
            // Each sign-up costs a hash and a replicated record: as many per address
            // as failed sign-ins are allowed.
            signups: AddressBudget::new(config.max_failed_logins, window, REMEMBERED_CLIENTS),
            unknown_tokens: AddressBudget::new(
                config.max_unknown_tokens,
                window,
                REMEMBERED_CLIENTS,
            ),
            config: config.clone(),
        })
    }

    pub fn config(&self) -> &AccountsConfig {
        &self.config
    }

    fn count(&self, event: &'static str) {
        self.metrics
            .account_events
            .get_or_create(&ReasonLabel { reason: event })
            .inc();
    }

    async fn hash(&self, password: &str) -> Result<PasswordHash, AccountError> {
        let started = Instant::now();
        let hashed = self.hasher.hash(password).await;
        self.hashed(started, hashed.is_err());
        Ok(hashed?)
    }

    async fn verify(
        &self,
        password: &str,
        hash: Option<&PasswordHash>,
    ) -> Result<bool, AccountError> {
        let started = Instant::now();
        let verified = self.hasher.verify(password, hash).await;
        self.hashed(started, verified.is_err());
        Ok(verified?)
    }

    fn hashed(&self, started: Instant, failed: bool) {
        if failed {
            self.count("hash_busy");
        } else {
            self.metrics
                .password_hash_seconds
                .observe(started.elapsed().as_secs_f64());
        }
    }

    async fn write(&self, command: AccountCommand) -> Result<Response, AccountError> {
        match self.member.write(Command::Account(command)).await? {
            Response::Rejected(r) => Err(match r {
                Rejection::EmailTaken => AccountError::EmailTaken,
                Rejection::NoSuchUser(id) => AccountError::NoSuchUser(id),
                Rejection::UserDisabled(_) => AccountError::Disabled,
                Rejection::PasswordChanged(_) => AccountError::BadCredentials,
                Rejection::InvalidInvite => AccountError::InvalidInvite,
                Rejection::TooManyInvites => AccountError::TooManyInvites,
                other => AccountError::Internal(other.to_string()),
            }),
            answer => Ok(answer),
        }
    }

    async fn create_user(
        &self,
        email: &str,
        display_name: Option<String>,
        role: Role,
        password: &str,
        invite: Option<KeyHash>,
        claim_streams: bool,
    ) -> Result<UserRecord, AccountError> {
        let email = valid_email(email)?;
        let display_name = valid_display_name(display_name, &email)?;
        valid_password(password)?;
        let full = self
            .member
            .read_local(|s| s.accounts.users.len() >= self.config.max_users);
        if full {
            return Err(AccountError::Full);
        }
        let password_hash = self.hash(password).await?;
        let command = AccountCommand::CreateUser {
            email,
            display_name,
            role,
            password_hash,
            now: self.clock.now_ms(),
            invite,
            claim_streams,
        };
        match self.write(command).await? {
            Response::User(user) => Ok(user),
            other => Err(AccountError::Internal(format!("{other:?}"))),
        }
    }

    /// A session for `user`, whose password was just checked against its
    /// `password_hash`: refused by the cluster if that changed meanwhile.
    async fn new_session(&self, user: UserRecord) -> Result<NewSession, AccountError> {
        let token = Secret::generate(Kind::Session, &self.entropy);
        let now = self.clock.now_ms();
        let expires_at = now.saturating_add(self.config.session_ttl.as_millis() as u64);
        self.write(AccountCommand::CreateSession {
            token: token.hash(),
            user: user.id,
            now,
            expires_at,
            password: Some(user.password_hash.clone()),
        })
        .await?;
        Ok(NewSession {
            token,
            expires_at,
            user,
        })
    }

    /// Makes an account as the signup policy allows, and signs it in.
    pub async fn signup(&self, form: Signup, client: IpAddr) -> Result<NewSession, AccountError> {
        let invite = match (self.config.signup, &form.invite) {
            (SignupPolicy::Closed, _) => return Err(AccountError::SignupClosed),
            (SignupPolicy::Invite, None) => return Err(AccountError::InviteRequired),
            (_, Some(code)) => {
                Some(secret::parse(Kind::Invite, code.trim()).ok_or(AccountError::InvalidInvite)?)
            }
            (SignupPolicy::Open, None) => None,
        };
        if let Some(wait) = self.signups.exhausted(&client) {
            return Err(AccountError::TooManyAttempts {
                wait_s: wait.as_secs().max(1),
            });
        }
        self.signups.record(&client);
        let user = self
            .create_user(
                &form.email,
                form.display_name,
                self.config.signup_role,
                &form.password,
                invite,
                false,
            )
            .await?;
        self.count("signup");
        tracing::info!(user = user.id, role = %user.role, "account created by signing up");
        self.new_session(user).await
    }

    /// Checks a password and opens a session. Failures are counted per address and
    /// email; over `accounts.max_failed_logins` the answer is 429 without a hash.
    pub async fn login(
        &self,
        email: &str,
        password: &str,
        client: IpAddr,
    ) -> Result<NewSession, AccountError> {
        let attempt = (client, email.trim().to_ascii_lowercase());
        if let Some(wait) = self.failed_logins.exhausted(&attempt) {
            self.count("login_limited");
            return Err(AccountError::TooManyAttempts {
                wait_s: wait.as_secs().max(1),
            });
        }
        if email.len() > MAX_EMAIL || password.len() > 4 * MAX_PASSWORD {
            return Err(AccountError::BadCredentials);
        }
        let user = self
            .member
            .read(|s| s.accounts.user_by_email(email).cloned())
            .await?;
        let matches = self
            .verify(password, user.as_ref().map(|u| &u.password_hash))
            .await?;
        match user {
            Some(user) if matches => {
                if user.disabled {
                    return Err(AccountError::Disabled);
                }
                self.count("login");
                tracing::info!(user = user.id, "signed in");
                self.new_session(user).await
            }
            _ => {
                self.failed_logins.record(&attempt);
                self.count("login_failed");
                Err(AccountError::BadCredentials)
            }
        }
    }

    /// The user a session token belongs to, as the cluster knows it now.
    pub async fn authenticate(&self, token: &str, client: IpAddr) -> Result<Signed, AccountError> {
        let session = secret::parse(Kind::Session, token).ok_or(AccountError::Unauthenticated)?;
        if let Some(wait) = self.unknown_tokens.exhausted(&client) {
            self.count("session_limited");
            return Err(AccountError::TooManyAttempts {
                wait_s: wait.as_secs().max(1),
            });
        }
        if !sabotage::active(Bug::LocalSessionCheck) {
            self.barrier.wait().await?;
        }
        let now = self.clock.now_ms();
        let user = self
            .member
            .read_local(|s| s.accounts.session_user(&session, now).cloned());
        match user {
            Some(user) => Ok(Signed { user, session }),
            None => {
                self.unknown_tokens.record(&client);
                self.count("session_unknown");
                Err(AccountError::Unauthenticated)
            }
        }
    }

    pub async fn logout(&self, session: KeyHash) -> Result<(), AccountError> {
        self.write(AccountCommand::EndSession { token: session })
            .await
            .map(drop)
    }

    pub async fn logout_everywhere(&self, user: UserId) -> Result<(), AccountError> {
        self.write(AccountCommand::EndUserSessions { user })
            .await
            .map(drop)
    }

    /// A new password ends every session (the caller's too); the caller gets a new one.
    /// Wrong current passwords count as failed sign-ins (a stolen session cannot
    /// guess the password at hashing speed).
    pub async fn change_password(
        &self,
        user: &UserRecord,
        current: &str,
        new: &str,
        client: IpAddr,
    ) -> Result<NewSession, AccountError> {
        valid_password(new)?;
        let attempt = (client, user.email.to_ascii_lowercase());
        if let Some(wait) = self.failed_logins.exhausted(&attempt) {
            return Err(AccountError::TooManyAttempts {
                wait_s: wait.as_secs().max(1),
            });
        }
        if !self.verify(current, Some(&user.password_hash)).await? {
            self.failed_logins.record(&attempt);
            return Err(AccountError::BadCredentials);
        }
        let password_hash = self.hash(new).await?;
        self.write(AccountCommand::SetPassword {
            user: user.id,
            password_hash: password_hash.clone(),
        })
        .await?;
        tracing::info!(user = user.id, "password changed; every session ended");
        let changed = UserRecord {
            password_hash,
            ..user.clone()
        };
        self.new_session(changed).await
    }

    /// An operator makes an account. Without a password one is generated and returned.
    pub async fn create(
        &self,
        email: &str,
        display_name: Option<String>,
        role: Role,
        password: Option<String>,
    ) -> Result<(UserRecord, Option<String>), AccountError> {
        let generated = password.is_none().then(|| secret::password(&self.entropy));
        let password = password.or_else(|| generated.clone()).unwrap_or_default();
        let user = self
            .create_user(email, display_name, role, &password, None, true)
            .await?;
        tracing::info!(user = user.id, role = %user.role, "account created by an operator");
        Ok((user, generated))
    }

    pub async fn users(&self) -> Result<Vec<UserRecord>, AccountError> {
        Ok(self
            .member
            .read(|s| s.accounts.users.values().cloned().collect())
            .await?)
    }

    pub async fn user(&self, id: UserId) -> Result<UserRecord, AccountError> {
        self.member
            .read(|s| s.accounts.users.get(&id).cloned())
            .await?
            .ok_or(AccountError::NoSuchUser(id))
    }

    pub async fn set_role(&self, id: UserId, role: Role) -> Result<UserRecord, AccountError> {
        self.write(AccountCommand::SetRole { user: id, role })
            .await?;
        tracing::info!(user = id, %role, "role changed");
        self.user(id).await
    }

    /// The user's own change of the name shown for them (empty: the email's local part).
    pub async fn set_display_name(
        &self,
        user: &UserRecord,
        name: Option<String>,
    ) -> Result<UserRecord, AccountError> {
        let display_name = valid_display_name(name, &user.email)?;
        self.write(AccountCommand::SetDisplayName {
            user: user.id,
            display_name,
        })
        .await?;
        self.user(user.id).await
    }

    /// Disabling ends every session of the user at once.
    pub async fn set_disabled(
        &self,
        id: UserId,
        disabled: bool,
    ) -> Result<UserRecord, AccountError> {
        self.write(AccountCommand::SetDisabled { user: id, disabled })
            .await?;
        tracing::info!(user = id, disabled, "account disabled state changed");
        self.user(id).await
    }

    /// Sets a new password (generated when none is given, and returned) and ends
    /// every session of the user.
    pub async fn reset_password(
        &self,
        id: UserId,
        password: Option<String>,
    ) -> Result<Option<String>, AccountError> {
        let generated = password.is_none().then(|| secret::password(&self.entropy));
        let password = password.or_else(|| generated.clone()).unwrap_or_default();
        valid_password(&password)?;
        let password_hash = self.hash(&password).await?;
        self.write(AccountCommand::SetPassword {
            user: id,
            password_hash,
        })
        .await?;
        tracing::info!(
            user = id,
            "password reset by an operator; every session ended"
        );
        Ok(generated)
    }

    /// An invitation to sign up with `role` (signup policy `invite`), and when it
    /// expires.
    pub async fn invite(&self, role: Role) -> Result<(Secret, Millis), AccountError> {
        let code = Secret::generate(Kind::Invite, &self.entropy);
        let now = self.clock.now_ms();
        let expires_at = now.saturating_add(self.config.invite_ttl.as_millis() as u64);
        self.write(AccountCommand::CreateInvite {
            code: code.hash(),
            role,
            now,
            expires_at,
        })
        .await?;
        Ok((code, expires_at))
    }

    /// `--dev`: when the cluster has no account yet, makes an administrator with a
    /// generated password and writes its email and password to `file` (mode 0600),
    /// as the admin token is. Waits until the cluster can write.
    pub async fn first_admin(&self, file: &Path) {
        const EMAIL: &str = "admin@castmesh.local";
        loop {
            match self.member.read(|s| s.accounts.users.is_empty()).await {
                Ok(false) => return,
                Ok(true) => match self
                    .create(EMAIL, Some("Admin".into()), Role::Admin, None)
                    .await
                {
                    Ok((_, Some(password))) => {
                        let text = format!("email: {EMAIL}\npassword: {password}\n");
                        match private_file::write(file, &text, Existing::Replace) {
                            Ok(()) => tracing::info!(
                                path = %file.display(),
                                email = EMAIL,
                                "created the first administrator; its password is in the file"
                            ),
                            Err(e) => {
                                tracing::error!(error = %e, "could not write the first administrator's password")
                            }
                        }
                        return;
                    }
                    Ok(_) => return,
                    Err(AccountError::EmailTaken) => return,
                    Err(e) => {
                        tracing::debug!(error = %e, "first administrator waits for the cluster")
                    }
                },
                Err(e) => tracing::debug!(error = %e, "first administrator waits for the cluster"),
            }
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
    }
}

fn valid_email(email: &str) -> Result<String, AccountError> {
    let email = email.trim();
    let bad = || {
        AccountError::Invalid(format!(
            "email must look like name@example.com (at most {MAX_EMAIL} characters)"
        ))
    };
    if email.len() > MAX_EMAIL || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad());
    }
    // Exactly one '@' with something on both sides: enough to catch typos; whether
    // the address exists is not ours to know.
    match email.split_once('@') {
        Some((local, domain))
            if !local.is_empty() && !domain.is_empty() && !domain.contains('@') =>
        {
            Ok(email.to_string())
        }
        _ => Err(bad()),
    }
}

fn valid_password(password: &str) -> Result<(), AccountError> {
    let n = password.chars().count();
    if !(MIN_PASSWORD..=MAX_PASSWORD).contains(&n) {
        return Err(AccountError::Invalid(format!(
            "password must be {MIN_PASSWORD} to {MAX_PASSWORD} characters long"
        )));
    }
    Ok(())
}

/// The display name as given (trimmed), or the email's part before the `@`.
fn valid_display_name(name: Option<String>, email: &str) -> Result<String, AccountError> {
    let name = name.map(|n| n.trim().to_string()).unwrap_or_default();
    if name.chars().count() > MAX_DISPLAY_NAME || name.chars().any(char::is_control) {
        return Err(AccountError::Invalid(format!(
            "display name must be at most {MAX_DISPLAY_NAME} characters without control characters"
        )));
    }
    if !name.is_empty() {
        return Ok(name);
    }
    let local = email.split('@').next().unwrap_or_default();
    Ok(local.chars().take(MAX_DISPLAY_NAME).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_passwords_and_names_are_checked_in_words() {
        assert_eq!(valid_email(" ann@example.com ").unwrap(), "ann@example.com");
        for bad in [
            "",
            "ann",
            "@example.com",
            "ann@",
            "a b@example.com",
            "a@b@c",
        ] {
            assert!(valid_email(bad).is_err(), "{bad:?}");
        }
        assert!(valid_email(&format!("{}@example.com", "a".repeat(250))).is_err());
        assert!(valid_password("1234567").is_err());
        assert!(valid_password("12345678").is_ok());
        assert!(valid_password(&"é".repeat(MAX_PASSWORD)).is_ok());
        assert!(valid_password(&"x".repeat(MAX_PASSWORD + 1)).is_err());
        assert_eq!(valid_display_name(None, "ann@example.com").unwrap(), "ann");
        assert_eq!(
            valid_display_name(Some(" Ann B ".into()), "x@y").unwrap(),
            "Ann B"
        );
        assert!(valid_display_name(Some("a\u{7}".into()), "x@y").is_err());
    }
}

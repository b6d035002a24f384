//! Users and their sessions, as every node must agree on them: who may sign in, with
//! which role, and which session tokens are still good.
//!
//! Passwords arrive already hashed (argon2id PHC strings, made by the receiving node
//! outside the state machine: hashing is slow on purpose, and applying a command must
//! not be). Session tokens arrive as SHA-256 hashes: a token is 256 random bits, so a
//! fast hash hides it as well as a slow one would, and every request checks one.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::command::{Rejection, Response};
use crate::keys::KeyHash;
use crate::model::Millis;

pub type UserId = u64;

/// Sessions one user may hold at once; signing in beyond it ends the oldest, so logins
/// cannot grow the replicated state without bound.
pub const MAX_SESSIONS_PER_USER: usize = 32;

/// Unused invitations kept at once (signup policy `invite`); more are refused until
/// some are used or expire, so invitations cannot grow the replicated state either.
pub const MAX_INVITES: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Manages every stream and user.
    Admin,
    /// Creates and runs their own streams.
    Streamer,
    /// Watches and chats.
    Viewer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Streamer => "streamer",
            Role::Viewer => "viewer",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    pub id: UserId,
    /// As given (trimmed); unique regardless of case.
    pub email: String,
    pub display_name: String,
    pub role: Role,
    pub disabled: bool,
    pub created_at: Millis,
    pub password_hash: PasswordHash,
}

/// argon2id in PHC form (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`); never printed by
/// `Debug`, so no log of a command or record shows it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PasswordHash(pub String);

impl std::fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordHash(<redacted>)")
    }
}

/// An invitation to sign up (signup policy `invite`): its code is random, like a
/// session token, and stored as a hash; using it gives the new user its role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct InviteRecord {
    pub role: Role,
    pub created_at: Millis,
    pub expires_at: Millis,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    pub user: UserId,
    pub created_at: Millis,
    pub expires_at: Millis,
}

/// Account changes; each is one Raft entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AccountCommand {
    /// Answers `Response::User` with the id the state assigned. With `invite`, the
    /// invitation must be live at `now`; it is used up and its role replaces `role`.
    CreateUser {
        email: String,
        display_name: String,
        role: Role,
        password_hash: PasswordHash,
        now: Millis,
        #[serde(default)]
        invite: Option<KeyHash>,
        /// Made by an operator, who vouches for the email: the account then owns the
        /// streams whose free-text owner is that email. Never for sign-ups, whose
        /// emails nobody has verified.
        #[serde(default)]
        claim_streams: bool,
    },
    /// Refused beyond [`MAX_INVITES`] unused ones.
    CreateInvite {
        code: KeyHash,
        role: Role,
        now: Millis,
        expires_at: Millis,
    },
    SetRole {
        user: UserId,
        role: Role,
    },
    /// The name shown beside the user's streams and chat messages.
    SetDisplayName {
        user: UserId,
        display_name: String,
    },
    /// Disabling also ends every session of the user, on every node at once.
    SetDisabled {
        user: UserId,
        disabled: bool,
    },
    /// A new password ends every session of the user (a stolen one included).
    SetPassword {
        user: UserId,
        password_hash: PasswordHash,
    },
    /// Refused for a disabled user, and when `password` (the hash the sign-in was
    /// checked against) is no longer the user's: a reset between the check and this
    /// command must not leave a session behind.
    CreateSession {
        token: KeyHash,
        user: UserId,
        now: Millis,
        expires_at: Millis,
        #[serde(default)]
        password: Option<PasswordHash>,
    },
    /// Logout. Ending a session that is already gone is not an error.
    EndSession {
        token: KeyHash,
    },
    /// "Sign out everywhere".
    EndUserSessions {
        user: UserId,
    },
    /// Drops sessions and invitations expired at `now` (proposed by the leader's
    /// sweeper).
    PurgeSessions {
        now: Millis,
    },
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accounts {
    pub users: BTreeMap<UserId, UserRecord>,
    /// Lower-cased email → user.
    emails: BTreeMap<String, UserId>,
    pub sessions: BTreeMap<KeyHash, SessionRecord>,
    /// Sessions of each user, for ending them together.
    by_user: BTreeMap<UserId, BTreeSet<KeyHash>>,
    next_user: UserId,
    /// Unused invitations by code hash; absent in states older than invitations.
    #[serde(default)]
    pub invites: BTreeMap<KeyHash, InviteRecord>,
}

/// The form two emails are compared in. ASCII case only: Unicode case tables change
/// between Rust releases, and replicas built by different ones must agree.
fn email_key(email: &str) -> String {
    email.trim().to_ascii_lowercase()
}

impl Accounts {
    pub fn user_by_email(&self, email: &str) -> Option<&UserRecord> {
        self.users.get(self.emails.get(&email_key(email))?)
    }

    /// Sessions `user` holds now (expired ones count until purged).
    pub fn session_count(&self, user: UserId) -> usize {
        self.by_user.get(&user).map_or(0, BTreeSet::len)
    }

    /// The user a session token hash belongs to, if the session is live at `now` and
    /// the user may sign in.
    pub fn session_user(&self, token: &KeyHash, now: Millis) -> Option<&UserRecord> {
        let session = self.sessions.get(token).filter(|s| s.expires_at > now)?;
        self.users.get(&session.user).filter(|u| !u.disabled)
    }

    pub(crate) fn apply(&mut self, command: AccountCommand) -> Result<Response, Rejection> {
        match command {
            AccountCommand::CreateUser {
                email,
                display_name,
                mut role,
                password_hash,
                now,
                invite,
                claim_streams: _,
            } => {
                // The invitation first: without one, an invite-only server does not
                // tell which emails have accounts.
                if let Some(code) = &invite {
                    let live = self.invites.get(code).filter(|i| i.expires_at > now);
                    role = live.ok_or(Rejection::InvalidInvite)?.role;
                }
                let key = email_key(&email);
                if self.emails.contains_key(&key) {
                    return Err(Rejection::EmailTaken);
                }
                if let Some(code) = invite {
                    self.invites.remove(&code);
                }
                self.next_user += 1;
                let user = UserRecord {
                    id: self.next_user,
                    email: email.trim().to_string(),
                    display_name,
                    role,
                    disabled: false,
                    created_at: now,
                    password_hash,
                };
                self.emails.insert(key, user.id);
                self.users.insert(user.id, user.clone());
                Ok(Response::User(user))
            }
            AccountCommand::CreateInvite {
                code,
                role,
                now,
                expires_at,
            } => {
                if self.invites.len() >= MAX_INVITES && !self.invites.contains_key(&code) {
                    return Err(Rejection::TooManyInvites);
                }
                let invite = InviteRecord {
                    role,
                    created_at: now,
                    expires_at,
                };
                self.invites.insert(code, invite);
                Ok(Response::Done)
            }
            AccountCommand::SetRole { user, role } => {
                self.user_mut(user)?.role = role;
                Ok(Response::Done)
            }
            AccountCommand::SetDisplayName { user, display_name } => {
                self.user_mut(user)?.display_name = display_name;
                Ok(Response::Done)
            }
            AccountCommand::SetDisabled { user, disabled } => {
                self.user_mut(user)?.disabled = disabled;
                if disabled {
                    self.end_user_sessions(user);
                }
                Ok(Response::Done)
            }
            AccountCommand::SetPassword {
                user,
                password_hash,
            } => {
                self.user_mut(user)?.password_hash = password_hash;
                self.end_user_sessions(user);
                Ok(Response::Done)
            }
            AccountCommand::CreateSession {
                token,
                user,
                now,
                expires_at,
                password,
            } => {
                let record = self.user_mut(user)?;
                if record.disabled {
                    return Err(Rejection::UserDisabled(user));
                }
                if password.is_some_and(|p| p != record.password_hash) {
                    return Err(Rejection::PasswordChanged(user));
                }
                // A token hash seen before (never, with 256 random bits) starts afresh.
                if let Some(old) = self.sessions.remove(&token) {
                    self.forget_session(old.user, &token);
                }
                let held = self.by_user.entry(user).or_default();
                if held.len() >= MAX_SESSIONS_PER_USER {
                    let sessions = &self.sessions;
                    let oldest = held
                        .iter()
                        .min_by_key(|t| sessions.get(*t).map_or(0, |s| s.created_at))
                        .copied();
                    if let Some(oldest) = oldest {
                        held.remove(&oldest);
                        self.sessions.remove(&oldest);
                    }
                }
                held.insert(token);
                let session = SessionRecord {
                    user,
                    created_at: now,
                    expires_at,
                };
                self.sessions.insert(token, session);
                Ok(Response::Done)
            }
            AccountCommand::EndSession { token } => {
                if let Some(session) = self.sessions.remove(&token) {
                    self.forget_session(session.user, &token);
                }
                Ok(Response::Done)
            }
            AccountCommand::EndUserSessions { user } => {
                self.user_mut(user)?;
                self.end_user_sessions(user);
                Ok(Response::Done)
            }
            AccountCommand::PurgeSessions { now } => {
                let expired: Vec<(KeyHash, UserId)> = self
                    .sessions
                    .iter()
                    .filter(|(_, s)| s.expires_at <= now)
                    .map(|(t, s)| (*t, s.user))
                    .collect();
                for (token, user) in expired {
                    self.sessions.remove(&token);
                    self.forget_session(user, &token);
                }
                self.invites.retain(|_, i| i.expires_at > now);
                Ok(Response::Done)
            }
        }
    }

    fn user_mut(&mut self, user: UserId) -> Result<&mut UserRecord, Rejection> {
        self.users.get_mut(&user).ok_or(Rejection::NoSuchUser(user))
    }

    fn end_user_sessions(&mut self, user: UserId) {
        for token in self.by_user.remove(&user).unwrap_or_default() {
            self.sessions.remove(&token);
        }
    }

    fn forget_session(&mut self, user: UserId, token: &KeyHash) {
        if let Some(held) = self.by_user.get_mut(&user) {
            held.remove(token);
            if held.is_empty() {
                self.by_user.remove(&user);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create(a: &mut Accounts, email: &str) -> Result<UserId, Rejection> {
        let r = a.apply(AccountCommand::CreateUser {
            email: email.into(),
            display_name: "Ann".into(),
            role: Role::Streamer,
            password_hash: PasswordHash("$argon2id$v=19$m=8,t=1,p=1$c2FsdA$aGFzaA".into()),
            now: 5,
            invite: None,
            claim_streams: false,
        })?;
        match r {
            Response::User(u) => Ok(u.id),
            other => panic!("{other:?}"),
        }
    }

    fn token(n: u8) -> KeyHash {
        KeyHash([n; 32])
    }

    fn sign_in(a: &mut Accounts, user: UserId, n: u8, now: Millis) -> Result<Response, Rejection> {
        a.apply(AccountCommand::CreateSession {
            token: token(n),
            user,
            now,
            expires_at: now + 1000,
            password: None,
        })
    }

    #[test]
    fn emails_are_unique_whatever_their_case_and_ids_are_assigned_in_order() {
        let mut a = Accounts::default();
        assert_eq!(create(&mut a, " Ann@Example.com "), Ok(1));
        assert_eq!(
            create(&mut a, "ann@example.COM"),
            Err(Rejection::EmailTaken)
        );
        assert_eq!(create(&mut a, "bob@example.com"), Ok(2));
        let ann = a.user_by_email("ANN@example.com").unwrap();
        assert_eq!((ann.id, ann.email.as_str()), (1, "Ann@Example.com"));
        assert!(
            !format!("{ann:?}").contains("argon2id"),
            "the hash is not printed"
        );
    }

    #[test]
    fn a_session_is_good_until_it_expires_or_ends() {
        let mut a = Accounts::default();
        let ann = create(&mut a, "ann@example.com").unwrap();
        sign_in(&mut a, ann, 1, 100).unwrap();
        assert_eq!(a.session_user(&token(1), 1099).map(|u| u.id), Some(ann));
        assert!(a.session_user(&token(1), 1100).is_none(), "expired");
        assert!(a.session_user(&token(9), 100).is_none(), "unknown");
        a.apply(AccountCommand::EndSession { token: token(1) })
            .unwrap();
        assert!(a.session_user(&token(1), 100).is_none(), "logged out");
        // Logging out twice is not an error.
        assert_eq!(
            a.apply(AccountCommand::EndSession { token: token(1) }),
            Ok(Response::Done)
        );
    }

    #[test]
    fn disabling_a_user_or_changing_the_password_ends_all_their_sessions() {
        let mut a = Accounts::default();
        let ann = create(&mut a, "ann@example.com").unwrap();
        let bob = create(&mut a, "bob@example.com").unwrap();
        sign_in(&mut a, ann, 1, 0).unwrap();
        sign_in(&mut a, ann, 2, 0).unwrap();
        sign_in(&mut a, bob, 3, 0).unwrap();
        a.apply(AccountCommand::SetDisabled {
            user: ann,
            disabled: true,
        })
        .unwrap();
        assert!(a.session_user(&token(1), 1).is_none());
        assert!(a.session_user(&token(2), 1).is_none());
        assert_eq!(
            sign_in(&mut a, ann, 4, 1),
            Err(Rejection::UserDisabled(ann))
        );
        assert!(a.session_user(&token(3), 1).is_some(), "others keep theirs");
        a.apply(AccountCommand::SetPassword {
            user: bob,
            password_hash: PasswordHash("new".into()),
        })
        .unwrap();
        assert!(a.session_user(&token(3), 1).is_none());
        assert!(a.sessions.is_empty() && a.by_user.is_empty());
    }

    #[test]
    fn a_token_hash_seen_again_belongs_to_its_new_session_only() {
        let mut a = Accounts::default();
        let ann = create(&mut a, "ann@example.com").unwrap();
        let bob = create(&mut a, "bob@example.com").unwrap();
        sign_in(&mut a, ann, 1, 0).unwrap();
        sign_in(&mut a, bob, 1, 0).unwrap();
        a.apply(AccountCommand::EndUserSessions { user: ann })
            .unwrap();
        assert_eq!(a.session_user(&token(1), 1).map(|u| u.id), Some(bob));
        assert!(!a.by_user.contains_key(&ann));
    }

    #[test]
    fn sign_out_everywhere_purge_and_the_per_user_bound() {
        let mut a = Accounts::default();
        let ann = create(&mut a, "ann@example.com").unwrap();
        for n in 0..MAX_SESSIONS_PER_USER as u8 + 3 {
            sign_in(&mut a, ann, n, u64::from(n)).unwrap();
        }
        assert_eq!(a.sessions.len(), MAX_SESSIONS_PER_USER);
        assert!(
            a.session_user(&token(0), 5).is_none(),
            "the oldest went first"
        );
        let newest = MAX_SESSIONS_PER_USER as u8 + 2;
        assert!(a.session_user(&token(newest), 5).is_some());
        a.apply(AccountCommand::PurgeSessions { now: 1010 })
            .unwrap();
        assert_eq!(
            a.sessions.len(),
            MAX_SESSIONS_PER_USER - 8,
            "expired at 1010"
        );
        a.apply(AccountCommand::EndUserSessions { user: ann })
            .unwrap();
        assert!(a.sessions.is_empty() && a.by_user.is_empty());
        assert_eq!(
            a.apply(AccountCommand::EndUserSessions { user: 99 }),
            Err(Rejection::NoSuchUser(99))
        );
    }

    #[test]
    fn an_invitation_is_used_once_gives_its_role_and_expires() {
        let mut a = Accounts::default();
        let invite = |a: &mut Accounts, n: u8, expires_at| {
            a.apply(AccountCommand::CreateInvite {
                code: token(n),
                role: Role::Viewer,
                now: 0,
                expires_at,
            })
        };
        let join = |a: &mut Accounts, email: &str, n: u8, now| {
            a.apply(AccountCommand::CreateUser {
                email: email.into(),
                display_name: String::new(),
                role: Role::Streamer,
                password_hash: PasswordHash("h".into()),
                now,
                invite: Some(token(n)),
                claim_streams: false,
            })
        };
        invite(&mut a, 1, 100).unwrap();
        invite(&mut a, 2, 100).unwrap();
        match join(&mut a, "ann@example.com", 1, 50) {
            Ok(Response::User(u)) => assert_eq!(u.role, Role::Viewer, "the invitation's role"),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            join(&mut a, "bob@example.com", 1, 50),
            Err(Rejection::InvalidInvite),
            "used up"
        );
        assert_eq!(
            join(&mut a, "bob@example.com", 2, 100),
            Err(Rejection::InvalidInvite),
            "expired"
        );
        assert_eq!(
            join(&mut a, "bob@example.com", 7, 1),
            Err(Rejection::InvalidInvite),
            "unknown"
        );
        a.apply(AccountCommand::PurgeSessions { now: 100 }).unwrap();
        assert!(a.invites.is_empty());
        for n in 0..MAX_INVITES as u64 {
            let mut code = [0; 32];
            code[..8].copy_from_slice(&n.to_le_bytes());
            a.apply(AccountCommand::CreateInvite {
                code: KeyHash(code),
                role: Role::Viewer,
                now: 0,
                expires_at: 10,
            })
            .unwrap();
        }
        assert_eq!(invite(&mut a, 200, 10), Err(Rejection::TooManyInvites));
    }

    #[test]
    fn a_session_for_a_password_that_changed_meanwhile_is_refused() {
        let mut a = Accounts::default();
        let ann = create(&mut a, "ann@example.com").unwrap();
        let checked = a.users[&ann].password_hash.clone();
        a.apply(AccountCommand::SetPassword {
            user: ann,
            password_hash: PasswordHash("reset".into()),
        })
        .unwrap();
        let session = |a: &mut Accounts, password: PasswordHash| {
            a.apply(AccountCommand::CreateSession {
                token: token(1),
                user: ann,
                now: 0,
                expires_at: 10,
                password: Some(password),
            })
        };
        assert_eq!(
            session(&mut a, checked),
            Err(Rejection::PasswordChanged(ann))
        );
        assert!(a.sessions.is_empty());
        assert!(session(&mut a, PasswordHash("reset".into())).is_ok());
    }

    #[test]
    fn without_a_valid_invitation_sign_up_does_not_tell_which_emails_exist() {
        let mut a = Accounts::default();
        create(&mut a, "ann@example.com").unwrap();
        let r = a.apply(AccountCommand::CreateUser {
            email: "ann@example.com".into(),
            display_name: String::new(),
            role: Role::Viewer,
            password_hash: PasswordHash("h".into()),
            now: 0,
            invite: Some(token(9)),
            claim_streams: false,
        });
        assert_eq!(r, Err(Rejection::InvalidInvite));
    }

    #[test]
    fn roles_change_and_show_as_their_serde_words() {
        let mut a = Accounts::default();
        let ann = create(&mut a, "ann@example.com").unwrap();
        a.apply(AccountCommand::SetRole {
            user: ann,
            role: Role::Admin,
        })
        .unwrap();
        assert_eq!(a.users[&ann].role, Role::Admin);
        for role in [Role::Admin, Role::Streamer, Role::Viewer] {
            let json = serde_json::to_string(&role).unwrap();
            assert_eq!(json, format!("\"{role}\""));
        }
    }
}

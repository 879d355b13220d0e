//! User-interactive authentication (client-server API §"User-interactive authentication API").
//!
//! An endpoint that needs UIA calls [`Uiaa::authenticate`] with the `auth` the client sent and
//! the flows it accepts. Without `auth`, the client gets a 401 with the flows and a new session.
//! Each stage it completes is recorded in the session (stored, so any Roost node can continue
//! it); once a whole flow is complete the call returns the finished session, which is then
//! deleted so it can't be replayed.

use std::sync::Arc;

use ruma::UserId;
use ruma::api::client::uiaa::{AuthData, UserIdentifier};
use serde_json::{Value, json};

use super::accounts::Accounts;
use super::registration_tokens::RegistrationTokens;
use super::tables::{UIA_SESSIONS, UiaSession};
use crate::error::{Error, Result};
use crate::storage::{Batch, KvEngine};
use crate::util::{now_ms, random_alphanumeric};

pub const DUMMY: &str = "m.login.dummy";
pub const PASSWORD: &str = "m.login.password";
pub const REGISTRATION_TOKEN: &str = "m.login.registration_token";

/// What a UIA session is for; a session can't be carried over to another operation or user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Register,
    DeleteDevices,
    ChangePassword,
    Deactivate,
    GetLoginToken,
}

impl Purpose {
    fn as_str(self) -> &'static str {
        match self {
            Self::Register => "register",
            Self::DeleteDevices => "delete_devices",
            Self::ChangePassword => "change_password",
            Self::Deactivate => "deactivate",
            Self::GetLoginToken => "get_login_token",
        }
    }
}

pub struct Uiaa {
    db: Arc<dyn KvEngine>,
    accounts: Arc<Accounts>,
    registration_tokens: Arc<RegistrationTokens>,
    session_lifetime_ms: u64,
}

impl Uiaa {
    pub fn new(
        db: Arc<dyn KvEngine>,
        accounts: Arc<Accounts>,
        registration_tokens: Arc<RegistrationTokens>,
        session_lifetime_secs: u64,
    ) -> Self {
        Self {
            db,
            accounts,
            registration_tokens,
            session_lifetime_ms: session_lifetime_secs * 1000,
        }
    }

    /// Run one round of UIA. `Ok` means a flow is complete; `Err` carries the 401 to send (or
    /// another error). `user` is who must authenticate: the access token's owner, or none
    /// (registration; or an account endpoint called without a token, where the password stage
    /// identifies the user and the finished session's `user_id` says who it was).
    pub async fn authenticate(
        &self,
        auth: Option<&AuthData>,
        flows: &[&[&str]],
        purpose: Purpose,
        user: Option<&UserId>,
    ) -> Result<UiaSession> {
        let Some(auth) = auth else {
            let (id, session) = self.start(purpose, user)?;
            return Err(self.challenge(flows, &id, &session, None));
        };
        let (id, mut session) = match auth.session() {
            Some(id) => match self.load(id)? {
                Some(s)
                    if s.purpose == purpose.as_str()
                        && user.is_none_or(|u| s.user_id.as_deref() == Some(u.as_str())) =>
                {
                    (id.to_owned(), s)
                }
                _ => {
                    return Err(Error::bad_json("Unknown or expired UIA session")
                        .with_status(axum::http::StatusCode::BAD_REQUEST));
                }
            },
            None => self.start(purpose, user)?,
        };

        let stage = auth.auth_type().map(|t| t.as_str().to_owned());
        let allowed = |s: &str| flows.iter().any(|f| f.contains(&s));
        match stage.as_deref() {
            Some(s) if allowed(s) => {
                if let Err(failure) = self.run_stage(auth, user, &mut session).await {
                    return Err(self.challenge(flows, &id, &session, Some(failure)));
                }
                if !session.completed.iter().any(|c| c == s) {
                    session.completed.push(s.to_owned());
                }
            }
            // `auth` with only a session asks for the current state.
            None => {}
            Some(_) => {
                let failure = (
                    crate::error::ErrorKind::Unrecognized,
                    "Unsupported authentication stage".to_owned(),
                );
                return Err(self.challenge(flows, &id, &session, Some(failure)));
            }
        }

        let done = flows.iter().any(|flow| {
            flow.iter()
                .all(|s| session.completed.iter().any(|c| c == s))
        });
        let mut batch = Batch::new();
        if done {
            UIA_SESSIONS.delete(&mut batch, id.as_bytes());
            self.db.write(batch)?;
            Ok(session)
        } else {
            UIA_SESSIONS.put(&mut batch, id.as_bytes(), &session);
            self.db.write(batch)?;
            Err(self.challenge(flows, &id, &session, None))
        }
    }

    fn start(&self, purpose: Purpose, user: Option<&UserId>) -> Result<(String, UiaSession)> {
        let id = random_alphanumeric(24);
        let session = UiaSession {
            created_ms: now_ms(),
            user_id: user.map(|u| u.to_string()),
            purpose: purpose.as_str().to_owned(),
            completed: Vec::new(),
            registration_token: None,
        };
        let mut batch = Batch::new();
        UIA_SESSIONS.put(&mut batch, id.as_bytes(), &session);
        self.db.write(batch)?;
        Ok((id, session))
    }

    fn load(&self, id: &str) -> Result<Option<UiaSession>> {
        let session = UIA_SESSIONS.get(&*self.db, id.as_bytes())?;
        Ok(session.filter(|s| now_ms() < s.created_ms + self.session_lifetime_ms))
    }

    /// Check one stage. On failure, the error code and message for the 401 body.
    async fn run_stage(
        &self,
        auth: &AuthData,
        user: Option<&UserId>,
        session: &mut UiaSession,
    ) -> std::result::Result<(), (crate::error::ErrorKind, String)> {
        use crate::error::ErrorKind::*;
        match auth {
            AuthData::Dummy(_) => Ok(()),
            AuthData::Password(p) => {
                let claimed = match &p.identifier {
                    UserIdentifier::Matrix(m) => self.accounts.resolve_local(&m.user),
                    _ => None,
                };
                let Some(claimed) = claimed else {
                    return Err((Forbidden, "Invalid user identifier".into()));
                };
                // With a token, the stage must name the token's owner; a session already bound
                // to a user by an earlier stage stays bound to it.
                let bound = user
                    .map(|u| u.to_string())
                    .or_else(|| session.user_id.clone());
                if bound.is_some_and(|b| b != claimed.as_str()) {
                    return Err((Forbidden, "Invalid user identifier".into()));
                }
                match self.accounts.check_password(&claimed, &p.password).await {
                    Ok(true) => {
                        session.user_id = Some(claimed.to_string());
                        Ok(())
                    }
                    Ok(false) => Err((Forbidden, "Invalid password".into())),
                    Err(e) => Err((Unknown, e.to_string())),
                }
            }
            AuthData::RegistrationToken(t) => match self.registration_tokens.reserve(&t.token) {
                Ok(true) => {
                    session.registration_token = Some(t.token.clone());
                    Ok(())
                }
                Ok(false) => Err((Unauthorized, "Invalid registration token".into())),
                Err(e) => Err((Unknown, e.to_string())),
            },
            _ => Err((Unrecognized, "Unsupported authentication stage".into())),
        }
    }

    fn challenge(
        &self,
        flows: &[&[&str]],
        session_id: &str,
        session: &UiaSession,
        failure: Option<(crate::error::ErrorKind, String)>,
    ) -> Error {
        let flows: Vec<Value> = flows
            .iter()
            .map(|stages| json!({ "stages": stages }))
            .collect();
        let mut body = json!({
            "flows": flows,
            "params": {},
            "session": session_id,
        });
        if !session.completed.is_empty() {
            body["completed"] = json!(session.completed);
        }
        if let Some((kind, message)) = failure {
            body["errcode"] = kind.errcode().into();
            body["error"] = message.into();
        }
        Error::Uiaa(Box::new(body))
    }
}

//! API tokens as the API shows and creates them.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// An API token as the API shows it (never its secret).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Token {
    pub id: i64,
    pub user: String,
    pub name: String,
    pub created: i64,
    pub expires: Option<i64>,
    pub last_used: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct NewToken {
    pub name: String,
    /// Days until it expires; without it, it does not.
    pub expires_in_days: Option<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CreatedToken {
    pub token: Token,
    /// The secret, shown this once: only its hash is kept.
    pub secret: String,
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
pub struct NewUser {
    pub name: String,
    pub password: String,
    #[serde(default)]
    pub is_admin: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
pub struct NewPassword {
    pub password: String,
    /// The caller's current password: required to change one's own, so a
    /// session left open cannot be turned into the account.
    #[serde(default)]
    pub current_password: Option<String>,
}

/// A user as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct User {
    pub id: i64,
    pub name: String,
    pub is_admin: bool,
    pub created: i64,
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
pub struct LoginRequest {
    pub name: String,
    pub password: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LoginResponse {
    /// The session itself is only in the `coffer_session` cookie (HttpOnly),
    /// never in a body a script could read.
    pub user: User,
}

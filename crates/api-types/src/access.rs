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

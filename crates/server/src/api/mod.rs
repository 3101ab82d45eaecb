//! The REST API, versioned under `/api/v1`, JSON in and out.
//!
//! Every handler names the [`Action`] it performs on a vault and asks the
//! caller's [`Principal`] first; the OpenAPI document at
//! `/api/v1/openapi.json` is generated from the same handler annotations
//! that build the router, so it cannot list a route that does not exist or
//! miss one that does. Handler bodies run on blocking threads: they touch
//! SQLite and, through the engine, storage with its own runtime.
//!
//! Errors are `{"error": {"code", "message", "field"?, "hint"?}}` with 400
//! for a field that is wrong (the field is named), 401, 403, 404, 409, 429,
//! 502 when the storage location fails (with the classified cause), and 500.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{FromRequest, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::alerts::{self, Alert};
use crate::auth::{self, Action, Login, Principal, Role, RoleAssignment, Token, User};
use crate::db::now;
use crate::error::Error;
use crate::jobs::{Job, JobFilter, JobKind, JobState, Jobs, LogLine, NewJob, RestoreParams};
use crate::notify::{Delivery, NewTarget, Target};
use crate::recovery::SetPointInfo;
use crate::scheduler::{ItemSchedule, Scheduler};
use crate::service::{Item, Maintenance, PolicySpec, PolicyView, Service, VaultInfo};
use crate::sets::InfraSet;

mod locations;
mod points;

type AppState = Arc<Service>;

/// The cookie that carries a console session.
pub const SESSION_COOKIE: &str = "coffer_session";

/// An error as the API returns it.
pub struct ApiError(Error);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError(e)
    }
}

impl From<coffer_engine::Error> for ApiError {
    fn from(e: coffer_engine::Error) -> Self {
        ApiError(Error::Engine(e))
    }
}

#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// A stable code: invalid, unauthenticated, forbidden, not_found,
    /// conflict, immutable, too_many_requests, storage, wrong_key, internal.
    pub code: String,
    pub message: String,
    /// The request field that is wrong.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// What to do about it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        use coffer_engine::Error as E;
        let message = self.0.to_string();
        let (status, code, field, hint) = match &self.0 {
            Error::Invalid { field, .. } => (StatusCode::BAD_REQUEST, "invalid", Some(field.clone()), None),
            Error::Unauthenticated(_) => (
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                None,
                Some("send `Authorization: Bearer <token>` or log in at POST /api/v1/auth/login".to_string()),
            ),
            Error::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden", None, Some("ask an owner of the vault or an administrator for a role that allows it".to_string())),
            Error::TooManyRequests(_) => (StatusCode::TOO_MANY_REQUESTS, "too_many_requests", None, None),
            Error::NotFound(_) => (StatusCode::NOT_FOUND, "not_found", None, None),
            Error::Conflict(_) => (StatusCode::CONFLICT, "conflict", None, None),
            Error::Engine(E::Invalid(_)) => (StatusCode::BAD_REQUEST, "invalid", None, None),
            Error::Engine(E::Immutable { .. }) => (
                StatusCode::CONFLICT,
                "immutable",
                None,
                Some("immutability protects points until their retention ends: wait for them to expire, or (if it is not locked) have an owner disable immutability".to_string()),
            ),
            Error::Engine(E::NeedsUpgrade { .. }) => (StatusCode::CONFLICT, "conflict", None, None),
            Error::Engine(E::PointNotFound(_)) => (StatusCode::NOT_FOUND, "not_found", None, None),
            Error::Engine(E::Storage { failure, .. }) => (
                StatusCode::BAD_GATEWAY,
                "storage",
                None,
                Some(failure.remedy().to_string()),
            ),
            Error::Engine(E::WrongKey { .. }) => (
                StatusCode::BAD_GATEWAY,
                "wrong_key",
                None,
                Some("the key the service holds does not open the vault: give it the current key (PUT /api/v1/vaults/{name}/key)".to_string()),
            ),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal", None, None),
        };
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!("{message}");
        }
        let body = ErrorBody {
            error: ErrorDetail {
                code: code.to_string(),
                message,
                field,
                hint,
            },
        };
        (status, Json(body)).into_response()
    }
}

type ApiResult<T> = Result<T, ApiError>;

// Request bodies, queries and paths that do not parse are answered like every
// other error: JSON, 400, and the part of the request that is wrong.

/// A JSON request body.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct Body<T>(pub T);

/// Query parameters.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Q<T>(pub T);

/// Path parameters.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct P<T>(pub T);

impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(r: axum::extract::rejection::JsonRejection) -> Self {
        ApiError(Error::invalid("body", r.body_text()))
    }
}

impl From<axum::extract::rejection::QueryRejection> for ApiError {
    fn from(r: axum::extract::rejection::QueryRejection) -> Self {
        ApiError(Error::invalid("query", r.body_text()))
    }
}

impl From<axum::extract::rejection::PathRejection> for ApiError {
    fn from(r: axum::extract::rejection::PathRejection) -> Self {
        ApiError(Error::invalid("path", r.body_text()))
    }
}

/// Runs blocking work (SQLite, the engine) off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError(Error::Internal(format!("request task failed: {e}"))))?
        .map_err(ApiError)
}

/// The authenticated caller, from a bearer token or the session cookie.
pub struct Caller(pub Principal);

fn bearer_or_cookie(headers: &HeaderMap) -> Option<String> {
    if let Some(v) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        return v.strip_prefix("Bearer ").map(|s| s.trim().to_string());
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == SESSION_COOKIE)
        .map(|(_, v)| v.to_string())
}

/// Refuses a request that changes something and comes from a page of
/// another origin. Browsers send `Origin` with every such request, and
/// SameSite cookies do not cover other ports of the same host; a request
/// that rides on the session cookie must name this service as its origin.
/// Callers with a bearer token (the command line, scripts) send none and
/// cannot be forged by a page.
fn check_origin(method: &axum::http::Method, headers: &HeaderMap) -> Result<(), ApiError> {
    use axum::http::Method;
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(());
    }
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    let uses_cookie =
        !headers.contains_key(header::AUTHORIZATION) && headers.contains_key(header::COOKIE);
    let same = |origin: &str| {
        let authority = origin
            .strip_prefix("https://")
            .or_else(|| origin.strip_prefix("http://"));
        matches!((authority, host), (Some(a), Some(h)) if a.eq_ignore_ascii_case(h))
    };
    match origin {
        Some(o) if same(o) => Ok(()),
        Some(o) => Err(ApiError(Error::Forbidden(format!(
            "this request comes from a page of {o}, not from this service: it was refused"
        )))),
        None if uses_cookie => Err(ApiError(Error::Forbidden(
            "a request that changes something with the session cookie must carry the Origin header (browsers send it; scripts should use a token)".into(),
        ))),
        None => Ok(()),
    }
}

/// The address a request came from (for counting failed logins).
pub struct ClientAddress(pub String);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddress {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let addr = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip().to_string())
            .unwrap_or_else(|| "unknown".into());
        Ok(ClientAddress(addr))
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        check_origin(&parts.method, &parts.headers)?;
        let secret = bearer_or_cookie(&parts.headers).ok_or_else(|| {
            ApiError(Error::Unauthenticated(
                "this endpoint needs a token or a session".into(),
            ))
        })?;
        let service = state.clone();
        let principal = blocking(move || auth::authenticate(&service.db, &secret)).await?;
        principal.map(Caller).ok_or_else(|| {
            ApiError(Error::Unauthenticated(
                "the token or session is not valid (expired, revoked or mistyped)".into(),
            ))
        })
    }
}

// ---- authentication -------------------------------------------------------

#[derive(Deserialize, ToSchema)]
pub struct LoginRequest {
    pub name: String,
    pub password: String,
}

#[derive(Serialize, ToSchema)]
pub struct LoginResponse {
    /// The session itself is only in the `coffer_session` cookie (HttpOnly),
    /// never in a body a script could read.
    pub user: User,
}

/// Logs in with a password and starts a console session (the cookie).
#[utoipa::path(post, path = "/auth/login", tag = "auth", security(()), request_body = LoginRequest,
    responses((status = 200, body = LoginResponse), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 429, body = ErrorBody), (status = 400, body = ErrorBody)))]
async fn login(
    State(s): State<AppState>,
    ClientAddress(address): ClientAddress,
    headers: HeaderMap,
    Body(req): Body<LoginRequest>,
) -> ApiResult<Response> {
    check_origin(&axum::http::Method::POST, &headers)?;
    let service = s.clone();
    let (user, session) = blocking(move || {
        let c = &service.config;
        let limits = auth::LoginLimits {
            max_failures: c.login_max_failures,
            window_secs: c.login_window_secs,
        };
        match auth::check_password(&service.db, &req.name, &req.password, &address, limits)? {
            Login::Ok(user) => {
                let session = auth::create_session(&service.db, user.id, c.session_hours)?;
                Ok((user, session))
            }
            Login::Locked { retry_after_secs } => Err(Error::TooManyRequests(format!(
                "too many failed logins from this address: try again in {retry_after_secs} s"
            ))),
            Login::Failed => {
                let recent = auth::recent_failures(&service.db, c.login_window_secs)?;
                if recent == c.login_alert_threshold {
                    service.raise_alert(
                        alerts::Cause::LoginFailures,
                        None,
                        None,
                        &format!(
                            "{recent} failed logins within {} s, the latest for user name {:?} from {address}",
                            c.login_window_secs, req.name
                        ),
                        None,
                    )?;
                }
                Err(Error::Unauthenticated("wrong user name or password".into()))
            }
        }
    })
    .await?;
    let cookie = format!(
        "{SESSION_COOKIE}={session}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}{}",
        s.config.session_hours * 3600,
        secure_flag(&s)
    );
    Ok(([(header::SET_COOKIE, cookie)], Json(LoginResponse { user })).into_response())
}

/// `; Secure` whenever the service speaks TLS, so the cookie never goes
/// out in clear text.
fn secure_flag(s: &Service) -> &'static str {
    if s.config.tls_cert.is_some() {
        "; Secure"
    } else {
        ""
    }
}

/// Ends the current session.
#[utoipa::path(post, path = "/auth/logout", tag = "auth", responses((status = 204), (status = 401, body = ErrorBody)))]
async fn logout(State(s): State<AppState>, headers: HeaderMap) -> ApiResult<Response> {
    if let Some(secret) = bearer_or_cookie(&headers).filter(|t| t.starts_with("cfs_")) {
        let service = s.clone();
        blocking(move || auth::end_session(&service.db, &secret)).await?;
    }
    let clear = format!(
        "{SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0{}",
        secure_flag(&s)
    );
    Ok(([(header::SET_COOKIE, clear)], StatusCode::NO_CONTENT).into_response())
}

#[derive(Serialize, ToSchema)]
pub struct VaultRole {
    /// A vault name, or `*` for every vault.
    pub vault: String,
    pub role: Role,
}

#[derive(Serialize, ToSchema)]
pub struct Me {
    pub name: String,
    pub is_admin: bool,
    pub roles: Vec<VaultRole>,
}

/// Who the caller is.
#[utoipa::path(get, path = "/me", tag = "auth", responses((status = 200, body = Me), (status = 401, body = ErrorBody)))]
async fn me(Caller(p): Caller) -> Json<Me> {
    Json(Me {
        name: p.name,
        is_admin: p.is_admin,
        roles: p
            .roles
            .into_iter()
            .map(|(vault, role)| VaultRole { vault, role })
            .collect(),
    })
}

// ---- users, tokens, roles -------------------------------------------------

#[derive(Deserialize, ToSchema)]
pub struct NewUser {
    pub name: String,
    pub password: String,
    #[serde(default)]
    pub is_admin: bool,
}

/// Lists users (administrators only).
#[utoipa::path(get, path = "/users", tag = "access", responses((status = 200, body = [User]), (status = 401, body = ErrorBody)))]
async fn list_users(State(s): State<AppState>, Caller(p): Caller) -> ApiResult<Json<Vec<User>>> {
    p.require_admin()?;
    Ok(Json(blocking(move || auth::list_users(&s.db)).await?))
}

/// Creates a user (administrators only).
#[utoipa::path(post, path = "/users", tag = "access", request_body = NewUser,
    responses((status = 201, body = User), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn create_user(
    State(s): State<AppState>,
    Caller(p): Caller,
    Body(req): Body<NewUser>,
) -> ApiResult<(StatusCode, Json<User>)> {
    p.require_admin()?;
    let user =
        blocking(move || auth::create_user(&s.db, &req.name, &req.password, req.is_admin)).await?;
    Ok((StatusCode::CREATED, Json(user)))
}

/// Deletes a user (administrators only); the last administrator stays.
#[utoipa::path(delete, path = "/users/{name}", tag = "access", params(("name" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn delete_user(
    State(s): State<AppState>,
    Caller(p): Caller,
    P(name): P<String>,
) -> ApiResult<StatusCode> {
    p.require_admin()?;
    blocking(move || auth::delete_user(&s.db, &name)).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
pub struct NewPassword {
    pub password: String,
    /// The caller's current password: required to change one's own, so a
    /// session left open cannot be turned into the account.
    #[serde(default)]
    pub current_password: Option<String>,
}

/// Sets a password: one's own (with the current one), or anyone's for an
/// administrator. Ends the user's sessions and revokes their API tokens.
#[utoipa::path(put, path = "/users/{name}/password", tag = "access", params(("name" = String, Path)), request_body = NewPassword,
    responses((status = 204), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn set_password(
    State(s): State<AppState>,
    Caller(p): Caller,
    P(name): P<String>,
    Body(req): Body<NewPassword>,
) -> ApiResult<StatusCode> {
    if p.name != name {
        p.require_admin()?;
    }
    let own = p.name == name;
    blocking(move || {
        if own {
            let current = req.current_password.as_deref().unwrap_or_default();
            if !auth::is_current_password(&s.db, &name, current)? {
                return Err(Error::invalid(
                    "current_password",
                    "give your current password to change it",
                ));
            }
        }
        auth::set_password(&s.db, &name, &req.password)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
pub struct NewToken {
    pub name: String,
    /// Days until it expires; without it, it does not.
    pub expires_in_days: Option<u32>,
}

#[derive(Serialize, ToSchema)]
pub struct CreatedToken {
    pub token: Token,
    /// The secret, shown this once: only its hash is kept.
    pub secret: String,
}

/// The caller's tokens (every token for an administrator).
#[utoipa::path(get, path = "/tokens", tag = "access", responses((status = 200, body = [Token]), (status = 401, body = ErrorBody)))]
async fn list_tokens(State(s): State<AppState>, Caller(p): Caller) -> ApiResult<Json<Vec<Token>>> {
    let owner = (!p.is_admin).then_some(p.user_id);
    Ok(Json(
        blocking(move || auth::list_tokens(&s.db, owner)).await?,
    ))
}

/// Creates an API token for the caller.
#[utoipa::path(post, path = "/tokens", tag = "access", request_body = NewToken,
    responses((status = 201, body = CreatedToken), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn create_token(
    State(s): State<AppState>,
    Caller(p): Caller,
    Body(req): Body<NewToken>,
) -> ApiResult<(StatusCode, Json<CreatedToken>)> {
    let expires = req.expires_in_days.map(|d| now() + i64::from(d) * 86_400);
    let (token, secret) =
        blocking(move || auth::create_token(&s.db, p.user_id, &req.name, expires)).await?;
    Ok((StatusCode::CREATED, Json(CreatedToken { token, secret })))
}

/// Revokes a token (one's own, or any for an administrator).
#[utoipa::path(delete, path = "/tokens/{id}", tag = "access", params(("id" = i64, Path)),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn delete_token(
    State(s): State<AppState>,
    Caller(p): Caller,
    P(id): P<i64>,
) -> ApiResult<StatusCode> {
    let owner = (!p.is_admin).then_some(p.user_id);
    blocking(move || auth::delete_token(&s.db, id, owner)).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
pub struct NewRoleAssignment {
    pub user: String,
    /// A vault name, or `*` for every vault (administrators only).
    pub vault: String,
    pub role: Role,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RoleQuery {
    pub vault: Option<String>,
}

/// Role assignments on the vaults the caller may manage access of.
#[utoipa::path(get, path = "/roles", tag = "access", params(RoleQuery), responses((status = 200, body = [RoleAssignment]), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn list_roles(
    State(s): State<AppState>,
    Caller(p): Caller,
    Q(q): Q<RoleQuery>,
) -> ApiResult<Json<Vec<RoleAssignment>>> {
    let all = blocking(move || auth::list_role_assignments(&s.db, q.vault.as_deref())).await?;
    Ok(Json(
        all.into_iter()
            .filter(|a| {
                p.is_admin || (a.vault != "*" && p.require(&a.vault, Action::AccessControl).is_ok())
            })
            .collect(),
    ))
}

/// Gives a user a role on a vault (owners of the vault and administrators).
#[utoipa::path(post, path = "/roles", tag = "access", request_body = NewRoleAssignment,
    responses((status = 201, body = RoleAssignment), (status = 403, body = ErrorBody), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn assign_role(
    State(s): State<AppState>,
    Caller(p): Caller,
    Body(req): Body<NewRoleAssignment>,
) -> ApiResult<(StatusCode, Json<RoleAssignment>)> {
    if req.vault == "*" {
        p.require_admin()?;
    } else {
        p.require(&req.vault, Action::AccessControl)?;
    }
    let a = blocking(move || {
        if req.vault != "*" {
            s.vault_info(&req.vault)?;
        }
        auth::assign_role(&s.db, &req.user, &req.vault, req.role)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(a)))
}

/// Removes a role assignment.
#[utoipa::path(delete, path = "/roles/{id}", tag = "access", params(("id" = i64, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn remove_role(
    State(s): State<AppState>,
    Caller(p): Caller,
    P(id): P<i64>,
) -> ApiResult<StatusCode> {
    blocking(move || {
        let a = auth::role_assignment(&s.db, id)?;
        if a.vault == "*" {
            p.require_admin()?;
        } else {
            p.require(&a.vault, Action::AccessControl)?;
        }
        auth::remove_role_assignment(&s.db, id)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- vaults ---------------------------------------------------------------

#[derive(Deserialize, ToSchema)]
pub struct NewVault {
    pub name: String,
    /// A directory path or a storage URL (s3://, azblob://, gcs://, sftp://, webdav://).
    pub location: String,
    /// Storage secrets by name (for example AWS_SECRET_ACCESS_KEY). Write-only.
    #[serde(default)]
    pub credentials: BTreeMap<String, String>,
    /// The vault key. Write-only. Without it, `create` generates one.
    pub key: Option<String>,
    /// Create a new vault at the location (true) or attach an existing one.
    #[serde(default = "yes")]
    pub create: bool,
}

fn yes() -> bool {
    true
}

#[derive(Serialize, ToSchema)]
pub struct VaultWithKey {
    pub vault: VaultInfo,
    /// A key the service generated, shown this once. Store it apart from
    /// the service: it is needed to recover on another machine.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generated_key: Option<String>,
}

/// Vaults the caller has a role on.
#[utoipa::path(get, path = "/vaults", tag = "vaults", responses((status = 200, body = [VaultInfo]), (status = 401, body = ErrorBody)))]
async fn list_vaults(
    State(s): State<AppState>,
    Caller(p): Caller,
) -> ApiResult<Json<Vec<VaultInfo>>> {
    let all = blocking(move || s.list_vaults()).await?;
    Ok(Json(all.into_iter().filter(|v| p.sees(&v.name)).collect()))
}

/// Creates or attaches a vault (administrators only: a location may be a
/// path on the service's machine or any host it reaches).
#[utoipa::path(post, path = "/vaults", tag = "vaults", request_body = NewVault,
    responses((status = 201, body = VaultWithKey), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody), (status = 502, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn create_vault(
    State(s): State<AppState>,
    Caller(p): Caller,
    Body(req): Body<NewVault>,
) -> ApiResult<(StatusCode, Json<VaultWithKey>)> {
    // A location may be a path on this machine or any host it reaches.
    p.require_server_access()?;
    let (vault, key) = blocking(move || {
        s.add_vault(
            &req.name,
            &req.location,
            req.credentials,
            req.key.as_deref(),
            req.create,
        )
    })
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(VaultWithKey {
            vault,
            generated_key: key.map(|k| k.to_string()),
        }),
    ))
}

/// One vault.
#[utoipa::path(get, path = "/vaults/{name}", tag = "vaults", params(("name" = String, Path)),
    responses((status = 200, body = VaultInfo), (status = 404, body = ErrorBody), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn get_vault(
    State(s): State<AppState>,
    Caller(p): Caller,
    P(name): P<String>,
) -> ApiResult<Json<VaultInfo>> {
    p.require(&name, Action::View)?;
    Ok(Json(blocking(move || s.vault_info(&name)).await?))
}

/// Forgets a vault; its data stays at the location.
#[utoipa::path(delete, path = "/vaults/{name}", tag = "vaults", params(("name" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn delete_vault(
    State(s): State<AppState>,
    Caller(p): Caller,
    P(name): P<String>,
) -> ApiResult<StatusCode> {
    p.require(&name, Action::DeleteData)?;
    blocking(move || s.remove_vault(&name)).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
pub struct NewCredentials {
    pub credentials: BTreeMap<String, String>,
}

/// Replaces the vault's storage credentials (tried before they are kept).
#[utoipa::path(put, path = "/vaults/{name}/credentials", tag = "vaults", params(("name" = String, Path)), request_body = NewCredentials,
    responses((status = 204), (status = 400, body = ErrorBody), (status = 502, body = ErrorBody), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn set_credentials(
    State(s): State<AppState>,
    Caller(p): Caller,
    P(name): P<String>,
    Body(req): Body<NewCredentials>,
) -> ApiResult<StatusCode> {
    p.require(&name, Action::ManageVault)?;
    blocking(move || s.set_credentials(&name, req.credentials)).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
pub struct KeyRequest {
    /// The key; for a rotation without it, one is generated and shown once.
    pub key: Option<String>,
}

/// Rotates the vault's key: a new key slot, the old one removed. Raises a
/// security alert.
#[utoipa::path(post, path = "/vaults/{name}/key/rotate", tag = "vaults", params(("name" = String, Path)), request_body = KeyRequest,
    responses((status = 200, body = VaultWithKey), (status = 403, body = ErrorBody), (status = 502, body = ErrorBody), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn rotate_key(
    State(s): State<AppState>,
    Caller(p): Caller,
    P(name): P<String>,
    Body(req): Body<KeyRequest>,
) -> ApiResult<Json<VaultWithKey>> {
    p.require(&name, Action::ManageVault)?;
    let by = p.name.clone();
    let (vault, key) = blocking(move || s.rotate_key(&name, req.key.as_deref(), &by)).await?;
    Ok(Json(VaultWithKey {
        vault,
        generated_key: key.map(|k| k.to_string()),
    }))
}

/// Gives the service the vault's current key (after a rotation elsewhere).
#[utoipa::path(put, path = "/vaults/{name}/key", tag = "vaults", params(("name" = String, Path)), request_body = KeyRequest,
    responses((status = 200, body = VaultInfo), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody), (status = 502, body = ErrorBody)))]
async fn set_key(
    State(s): State<AppState>,
    Caller(p): Caller,
    P(name): P<String>,
    Body(req): Body<KeyRequest>,
) -> ApiResult<Json<VaultInfo>> {
    p.require(&name, Action::ManageVault)?;
    let key = req
        .key
        .ok_or_else(|| ApiError(Error::invalid("key", "required")))?;
    Ok(Json(blocking(move || s.set_key(&name, &key)).await?))
}

/// Accepts the vault's storage location as it is now: journal records and
/// points the service saw before and that are gone from it stop being
/// reported by checks and stop blocking prune. Only administrators, and
/// only once the loss is understood (an object deleted or a location
/// rolled back by whoever controls the storage).
#[utoipa::path(post, path = "/vaults/{name}/accept-location", tag = "vaults", params(("name" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody), (status = 502, body = ErrorBody)))]
async fn accept_location(
    State(s): State<AppState>,
    Caller(p): Caller,
    P(name): P<String>,
) -> ApiResult<StatusCode> {
    p.require(&name, Action::ManageVault)?;
    p.require_admin()?;
    blocking(move || {
        let vault = s.open_vault(&name)?;
        crate::sightings::accept(&s.db, &name, &vault)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A recovery point as listed.
#[derive(Serialize, ToSchema)]
pub struct PointSummary {
    pub id: String,
    pub item: String,
    pub time: i64,
    pub host: String,
    pub files: u64,
    pub bytes_total: u64,
    /// Entries that could not be read when it was taken.
    pub errors: u64,
    /// `crash-consistent`, `file-system-consistent` or `application-consistent`.
    pub consistency: String,
    /// Labels, among them the item's kind and, for points of an
    /// infrastructure set, the set and the set point's id.
    pub tags: Vec<String>,
    /// `active`, or `soft-deleted` (restorable, and recoverable with
    /// undelete until `purge_at`).
    pub state: String,
    /// Soft-deleted points: when, and why.
    pub deleted_at: Option<i64>,
    pub deleted_reason: Option<String>,
    pub purge_at: Option<i64>,
    /// On hold: no retention rule expires it.
    pub hold: bool,
}

/// The recovery points in a vault, newest first.
#[utoipa::path(get, path = "/vaults/{name}/points", tag = "vaults", params(("name" = String, Path)),
    responses((status = 200, body = [PointSummary]), (status = 502, body = ErrorBody), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn list_points(
    State(s): State<AppState>,
    Caller(p): Caller,
    P(name): P<String>,
) -> ApiResult<Json<Vec<PointSummary>>> {
    p.require(&name, Action::View)?;
    let (points, state) = blocking(move || {
        let vault = s.open_vault(&name)?;
        Ok((vault.points()?, vault.state()?))
    })
    .await?;
    let purge_after = i64::from(state.soft_delete_days) * 86_400;
    let mut list: Vec<PointSummary> = points
        .into_iter()
        .map(|pt| PointSummary {
            id: pt.id.to_hex(),
            item: pt.manifest.item.clone(),
            time: pt.manifest.time.secs,
            host: pt.manifest.host.clone(),
            files: pt.manifest.stats.files,
            bytes_total: pt.manifest.stats.bytes_total,
            errors: pt.manifest.stats.errors,
            consistency: pt.manifest.consistency.as_str().to_string(),
            tags: pt.manifest.tags.clone(),
            state: if state.soft_deleted.contains_key(&pt.id) {
                "soft-deleted"
            } else {
                "active"
            }
            .to_string(),
            deleted_at: state.soft_deleted.get(&pt.id).map(|d| d.at),
            deleted_reason: state.soft_deleted.get(&pt.id).map(|d| d.reason.clone()),
            purge_at: state.soft_deleted.get(&pt.id).map(|d| d.at + purge_after),
            hold: state.holds.contains(&pt.id),
        })
        .filter(|pt| !state.purged.iter().any(|id| id.to_hex() == pt.id))
        .collect();
    list.sort_by(|a, b| b.time.cmp(&a.time).then_with(|| a.id.cmp(&b.id)));
    Ok(Json(list))
}

/// Sets when the vault's prune and check run on their own.
#[utoipa::path(put, path = "/vaults/{name}/maintenance", tag = "vaults", params(("name" = String, Path)), request_body = Maintenance,
    responses((status = 200, body = VaultInfo), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn set_maintenance(
    State(s): State<AppState>,
    Caller(p): Caller,
    P(name): P<String>,
    Body(m): Body<Maintenance>,
) -> ApiResult<Json<VaultInfo>> {
    p.require(&name, Action::DeleteData)?;
    Ok(Json(blocking(move || s.set_maintenance(&name, &m)).await?))
}

/// Queues one of a vault's own jobs (prune, check) on request.
fn queue_vault_job(
    s: &Service,
    vault: &str,
    kind: JobKind,
    params: Option<serde_json::Value>,
    by: &str,
) -> Result<Job, Error> {
    s.vault_info(vault)?;
    s.jobs.enqueue(
        s,
        NewJob {
            kind,
            vault,
            item: None,
            params,
            trigger: "on_demand",
            requested_by: Some(by),
            attempt: 1,
            not_before: 0,
        },
    )
}

/// Prunes the vault now (retention, then garbage collection). Returns the job.
#[utoipa::path(post, path = "/vaults/{name}/prune", tag = "vaults", params(("name" = String, Path)),
    responses((status = 202, body = Job), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn prune_now(
    State(s): State<AppState>,
    Caller(p): Caller,
    P(name): P<String>,
) -> ApiResult<(StatusCode, Json<Job>)> {
    p.require(&name, Action::DeleteData)?;
    let job = blocking(move || queue_vault_job(&s, &name, JobKind::Prune, None, &p.name)).await?;
    Ok((StatusCode::ACCEPTED, Json(job)))
}

/// Brings the vault's replicas up to date now. Returns the job.
#[utoipa::path(post, path = "/vaults/{name}/replicate", tag = "vaults", params(("name" = String, Path)),
    responses((status = 202, body = Job), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn replicate_now(
    State(s): State<AppState>,
    Caller(p): Caller,
    P(name): P<String>,
) -> ApiResult<(StatusCode, Json<Job>)> {
    p.require(&name, Action::Backup)?;
    let job =
        blocking(move || queue_vault_job(&s, &name, JobKind::Replicate, None, &p.name)).await?;
    Ok((StatusCode::ACCEPTED, Json(job)))
}

#[derive(Deserialize, ToSchema)]
pub struct CheckRequest {
    /// Share of pack data to read and verify, in percent (0: structure
    /// only; 100: everything).
    #[serde(default)]
    pub read_data_percent: f64,
}

/// Checks the vault now. Returns the job.
#[utoipa::path(post, path = "/vaults/{name}/check", tag = "vaults", params(("name" = String, Path)), request_body = CheckRequest,
    responses((status = 202, body = Job), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn check_now(
    State(s): State<AppState>,
    Caller(p): Caller,
    P(name): P<String>,
    Body(req): Body<CheckRequest>,
) -> ApiResult<(StatusCode, Json<Job>)> {
    p.require(&name, Action::Backup)?;
    if !(0.0..=100.0).contains(&req.read_data_percent) {
        return Err(ApiError(Error::invalid("read_data_percent", "0 to 100")));
    }
    let params = serde_json::json!({"read_data_percent": req.read_data_percent});
    let job =
        blocking(move || queue_vault_job(&s, &name, JobKind::Check, Some(params), &p.name)).await?;
    Ok((StatusCode::ACCEPTED, Json(job)))
}

/// Restores a recovery point (or paths in it) on the service's machine.
/// Returns the job.
#[utoipa::path(post, path = "/vaults/{name}/restore", tag = "vaults", params(("name" = String, Path)), request_body = RestoreParams,
    responses((status = 202, body = Job), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody), (status = 502, body = ErrorBody)))]
async fn restore(
    State(s): State<AppState>,
    Caller(p): Caller,
    P(name): P<String>,
    Body(req): Body<RestoreParams>,
) -> ApiResult<(StatusCode, Json<Job>)> {
    p.require(&name, Action::Restore)?;
    if !req.target.is_empty() && !std::path::Path::new(&req.target).is_absolute() {
        return Err(ApiError(Error::invalid(
            "target",
            "an absolute directory path",
        )));
    }
    if let Some(bad) = req.includes.iter().find(|i| !i.starts_with('/')) {
        return Err(ApiError(Error::invalid(
            "includes",
            format!("{bad:?} is not an absolute path as backed up"),
        )));
    }
    let job = blocking(move || {
        let vault = s.open_vault(&name)?;
        let point = crate::points::resolve_point(&vault, &req.point, "point")?;
        let item = point.manifest.item.clone();
        let in_place = matches!(
            coffer_sources::kind_of(&point),
            Some(k) if k != coffer_sources::Kind::Directory
        );
        if req.target.is_empty() && !in_place {
            return Err(Error::invalid(
                "target",
                "an absolute directory path (a file tree goes back over its original place only with target / and overwrite)",
            ));
        }
        let mut params = RestoreParams {
            point: point.id.to_hex(),
            ..req
        };
        let own_item = s.item_in_vault(&name, &item)?;
        crate::targets::check_restore_target(
            &p,
            &s.config.restore_roots(),
            own_item.as_ref(),
            &mut params,
        )?;
        s.jobs.enqueue(
            &s,
            NewJob {
                kind: JobKind::Restore,
                vault: &name,
                item: Some(&item),
                params: serde_json::to_value(&params).ok(),
                trigger: "on_demand",
                requested_by: Some(&p.name),
                attempt: 1,
                not_before: 0,
            },
        )
    })
    .await?;
    Ok((StatusCode::ACCEPTED, Json(job)))
}

/// The vault's policies.
#[utoipa::path(get, path = "/vaults/{name}/policies", tag = "policies", params(("name" = String, Path)),
    responses((status = 200, body = [PolicyView]), (status = 404, body = ErrorBody), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 502, body = ErrorBody)))]
async fn list_policies(
    State(s): State<AppState>,
    Caller(p): Caller,
    P(name): P<String>,
) -> ApiResult<Json<Vec<PolicyView>>> {
    p.require(&name, Action::View)?;
    Ok(Json(blocking(move || s.policies(&name)).await?))
}

/// Creates or replaces a policy. Shortening a retention raises a security
/// alert (and is refused on an immutable vault).
#[utoipa::path(put, path = "/vaults/{name}/policies/{policy}", tag = "policies",
    params(("name" = String, Path), ("policy" = String, Path)), request_body = PolicySpec,
    responses((status = 200, body = PolicyView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody), (status = 502, body = ErrorBody)))]
async fn set_policy(
    State(s): State<AppState>,
    Caller(p): Caller,
    P((name, policy)): P<(String, String)>,
    Body(spec): Body<PolicySpec>,
) -> ApiResult<Json<PolicyView>> {
    p.require(&name, Action::ManagePolicies)?;
    let by = p.name.clone();
    Ok(Json(
        blocking(move || s.set_policy(&name, &policy, &spec, &by)).await?,
    ))
}

/// Deletes a policy no item uses.
#[utoipa::path(delete, path = "/vaults/{name}/policies/{policy}", tag = "policies",
    params(("name" = String, Path), ("policy" = String, Path)),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody), (status = 502, body = ErrorBody)))]
async fn delete_policy(
    State(s): State<AppState>,
    Caller(p): Caller,
    P((name, policy)): P<(String, String)>,
) -> ApiResult<StatusCode> {
    p.require(&name, Action::ManagePolicies)?;
    blocking(move || s.delete_policy(&name, &policy)).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct ImmutabilitySetting {
    /// disabled, enabled or locked (locked cannot be undone).
    pub immutability: String,
}

/// Changes the vault's immutability (owners only); raises a security alert.
#[utoipa::path(put, path = "/vaults/{name}/immutability", tag = "vaults", params(("name" = String, Path)), request_body = ImmutabilitySetting,
    responses((status = 200, body = ImmutabilitySetting), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody), (status = 502, body = ErrorBody)))]
async fn set_immutability(
    State(s): State<AppState>,
    Caller(p): Caller,
    P(name): P<String>,
    Body(req): Body<ImmutabilitySetting>,
) -> ApiResult<Json<ImmutabilitySetting>> {
    p.require(&name, Action::Immutability)?;
    let by = p.name.clone();
    let immutability = blocking(move || s.set_immutability(&name, &req.immutability, &by)).await?;
    Ok(Json(ImmutabilitySetting { immutability }))
}

#[derive(Deserialize, ToSchema)]
pub struct DeletePoints {
    /// Point ids (or unique prefixes).
    pub points: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct Deleted {
    pub deleted: usize,
}

/// Soft-deletes recovery points (they can be undeleted while soft-deleted);
/// raises a security alert.
#[utoipa::path(post, path = "/vaults/{name}/points/delete", tag = "vaults", params(("name" = String, Path)), request_body = DeletePoints,
    responses((status = 200, body = Deleted), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody), (status = 502, body = ErrorBody)))]
async fn delete_points(
    State(s): State<AppState>,
    Caller(p): Caller,
    P(name): P<String>,
    Body(req): Body<DeletePoints>,
) -> ApiResult<Json<Deleted>> {
    p.require(&name, Action::DeleteData)?;
    let by = p.name.clone();
    let deleted = blocking(move || s.delete_points(&name, &req.points, &by)).await?;
    Ok(Json(Deleted { deleted }))
}

// ---- items ----------------------------------------------------------------

#[derive(Deserialize, ToSchema)]
pub struct NewItem {
    pub name: String,
    pub vault: String,
    /// `directory` (the default), `sqlite`, `postgresql` or `command`.
    #[serde(default = "directory")]
    pub kind: String,
    /// `directory`: the trees; `sqlite`: the one database file.
    #[serde(default)]
    pub paths: Vec<String>,
    #[serde(default)]
    pub excludes: Vec<String>,
    /// `postgresql`: how to reach the server.
    #[serde(default)]
    pub postgresql: Option<coffer_sources::PostgresSpec>,
    /// `command`: the backup and restore commands.
    #[serde(default)]
    pub command: Option<coffer_sources::CommandSpec>,
    /// Script run before each backup.
    #[serde(default)]
    pub pre: Option<coffer_sources::Hook>,
    /// Script run after each backup.
    #[serde(default)]
    pub post: Option<coffer_sources::Hook>,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default = "two")]
    pub retry_attempts: u32,
    #[serde(default = "five_minutes")]
    pub retry_delay_secs: u64,
    /// A policy of the vault to follow (default: DefaultPolicy).
    pub policy: Option<String>,
}

fn directory() -> String {
    "directory".into()
}
fn two() -> u32 {
    2
}
fn five_minutes() -> u64 {
    300
}

#[derive(Deserialize, ToSchema)]
pub struct ItemChanges {
    pub paths: Option<Vec<String>>,
    pub excludes: Option<Vec<String>>,
    pub postgresql: Option<coffer_sources::PostgresSpec>,
    pub command: Option<coffer_sources::CommandSpec>,
    pub pre: Option<coffer_sources::Hook>,
    pub post: Option<coffer_sources::Hook>,
    pub enabled: Option<bool>,
    pub retry_attempts: Option<u32>,
    pub retry_delay_secs: Option<u64>,
}

/// Protected items on the vaults the caller can see.
#[utoipa::path(get, path = "/items", tag = "items", responses((status = 200, body = [Item]), (status = 401, body = ErrorBody)))]
async fn list_items(State(s): State<AppState>, Caller(p): Caller) -> ApiResult<Json<Vec<Item>>> {
    let all = blocking(move || s.items(None)).await?;
    Ok(Json(all.into_iter().filter(|i| p.sees(&i.vault)).collect()))
}

/// Adds a protected item (administrators only: every kind names paths on
/// the service's machine or runs a program there).
#[utoipa::path(post, path = "/items", tag = "items", request_body = NewItem,
    responses((status = 201, body = Item), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 401, body = ErrorBody), (status = 502, body = ErrorBody)))]
async fn create_item(
    State(s): State<AppState>,
    Caller(p): Caller,
    Body(req): Body<NewItem>,
) -> ApiResult<(StatusCode, Json<Item>)> {
    if !p.sees(&req.vault) {
        return Err(ApiError(Error::invalid(
            "vault",
            format!("no vault named {}", req.vault),
        )));
    }
    p.require(&req.vault, Action::ManageItems)?;
    // Every kind names a path on this machine or runs a program there.
    p.require(&req.vault, Action::ServerAccess)?;
    let item = Item {
        name: req.name,
        vault: req.vault,
        kind: req.kind,
        paths: req.paths,
        excludes: req.excludes,
        postgresql: req.postgresql,
        command: req.command,
        pre: req.pre,
        post: req.post,
        enabled: req.enabled,
        retry_attempts: req.retry_attempts,
        retry_delay_secs: req.retry_delay_secs,
        created: 0,
    };
    let policy = req.policy;
    let by = p.name.clone();
    let item = blocking(move || {
        if policy.is_some()
            && !p
                .role_on(&item.vault)
                .is_some_and(|r| r.allows(Action::ManagePolicies))
        {
            return Err(Error::Forbidden(
                "assigning a policy needs a role that manages policies".into(),
            ));
        }
        let added = s.add_item(&item)?;
        if let Some(policy) = policy {
            if let Err(e) = s.assign_policy(&added.name, &policy, &by) {
                // The item is not kept half-made.
                let _ = s.remove_item(&added.name);
                return Err(e);
            }
        }
        Ok(added)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(item)))
}

/// The item, if the caller may see its vault.
fn visible_item(s: &Service, p: &Principal, name: &str, action: Action) -> Result<Item, Error> {
    let item = s.item(name)?;
    if !p.sees(&item.vault) {
        return Err(Error::NotFound(format!("item {name}")));
    }
    p.require(&item.vault, action)?;
    Ok(item)
}

/// One item.
#[utoipa::path(get, path = "/items/{name}", tag = "items", params(("name" = String, Path)),
    responses((status = 200, body = Item), (status = 404, body = ErrorBody), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn get_item(
    State(s): State<AppState>,
    Caller(p): Caller,
    P(name): P<String>,
) -> ApiResult<Json<Item>> {
    Ok(Json(
        blocking(move || visible_item(&s, &p, &name, Action::View)).await?,
    ))
}

/// Changes an item's excludes, enabled flag or retries; its paths,
/// commands, scripts and PostgreSQL settings (administrators only).
#[utoipa::path(patch, path = "/items/{name}", tag = "items", params(("name" = String, Path)), request_body = ItemChanges,
    responses((status = 200, body = Item), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn update_item(
    State(s): State<AppState>,
    Caller(p): Caller,
    P(name): P<String>,
    Body(req): Body<ItemChanges>,
) -> ApiResult<Json<Item>> {
    Ok(Json(
        blocking(move || {
            let mut item = visible_item(&s, &p, &name, Action::ManageItems)?;
            let defines_sources = req.paths.is_some()
                || req.postgresql.is_some()
                || req.command.is_some()
                || req.pre.is_some()
                || req.post.is_some();
            if defines_sources {
                p.require(&item.vault, Action::ServerAccess)?;
            }
            if let Some(v) = req.paths {
                item.paths = v;
            }
            if let Some(v) = req.excludes {
                item.excludes = v;
            }
            if req.postgresql.is_some() {
                item.postgresql = req.postgresql;
            }
            if req.command.is_some() {
                item.command = req.command;
            }
            if req.pre.is_some() {
                item.pre = req.pre;
            }
            if req.post.is_some() {
                item.post = req.post;
            }
            if let Some(v) = req.enabled {
                item.enabled = v;
            }
            if let Some(v) = req.retry_attempts {
                item.retry_attempts = v;
            }
            if let Some(v) = req.retry_delay_secs {
                item.retry_delay_secs = v;
            }
            s.update_item(&item)
        })
        .await?,
    ))
}

/// Stops managing an item; its recovery points stay in the vault.
#[utoipa::path(delete, path = "/items/{name}", tag = "items", params(("name" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn delete_item(
    State(s): State<AppState>,
    Caller(p): Caller,
    P(name): P<String>,
) -> ApiResult<StatusCode> {
    blocking(move || {
        visible_item(&s, &p, &name, Action::DeleteData)?;
        s.remove_item(&name)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
pub struct PolicyAssignment {
    pub policy: String,
}

/// Assigns a policy to an item; a shorter retention raises a security alert.
#[utoipa::path(put, path = "/items/{name}/policy", tag = "items", params(("name" = String, Path)), request_body = PolicyAssignment,
    responses((status = 204), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody), (status = 502, body = ErrorBody)))]
async fn assign_policy(
    State(s): State<AppState>,
    Caller(p): Caller,
    P(name): P<String>,
    Body(req): Body<PolicyAssignment>,
) -> ApiResult<StatusCode> {
    blocking(move || {
        visible_item(&s, &p, &name, Action::ManagePolicies)?;
        s.assign_policy(&name, &req.policy, &p.name)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Backs an item up now. The schedule is not moved. Returns the job.
#[utoipa::path(post, path = "/items/{name}/backup", tag = "items", params(("name" = String, Path)),
    responses((status = 202, body = Job), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn backup_now(
    State(s): State<AppState>,
    Caller(p): Caller,
    P(name): P<String>,
) -> ApiResult<(StatusCode, Json<Job>)> {
    let job = blocking(move || {
        visible_item(&s, &p, &name, Action::Backup)?;
        s.jobs
            .enqueue_backup(&s, &name, "on_demand", Some(&p.name), 1, 0)
    })
    .await?;
    Ok((StatusCode::ACCEPTED, Json(job)))
}

/// An item's schedule: its policy, whether it runs, the next and last runs.
#[utoipa::path(get, path = "/items/{name}/schedule", tag = "items", params(("name" = String, Path)),
    responses((status = 200, body = ItemSchedule), (status = 404, body = ErrorBody), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 502, body = ErrorBody)))]
async fn item_schedule(
    State(s): State<AppState>,
    Caller(p): Caller,
    P(name): P<String>,
) -> ApiResult<Json<ItemSchedule>> {
    Ok(Json(
        blocking(move || {
            visible_item(&s, &p, &name, Action::View)?;
            s.scheduler.item_schedule(&s, &name)
        })
        .await?,
    ))
}

// ---- infrastructure sets ------------------------------------------------

#[derive(Deserialize, ToSchema)]
pub struct NewSet {
    pub name: String,
    pub vault: String,
    /// Items of the vault, backed up in this order.
    pub items: Vec<String>,
    /// Default `every 12 h from 00:00`.
    #[serde(default = "set_schedule")]
    pub schedule: String,
    #[serde(default = "utc_zone")]
    pub time_zone: String,
    /// Default 7.
    #[serde(default = "seven")]
    pub retention_days: u32,
    #[serde(default = "yes")]
    pub enabled: bool,
    /// When a recovery drill runs on its own (absent: only on request).
    #[serde(default)]
    pub drill_schedule: Option<String>,
}

fn set_schedule() -> String {
    crate::sets::DEFAULT_SCHEDULE.into()
}
fn utc_zone() -> String {
    "UTC".into()
}
fn seven() -> u32 {
    crate::sets::DEFAULT_RETENTION_DAYS
}

#[derive(Deserialize, ToSchema)]
pub struct SetChanges {
    pub items: Option<Vec<String>>,
    pub schedule: Option<String>,
    pub time_zone: Option<String>,
    pub retention_days: Option<u32>,
    pub enabled: Option<bool>,
    /// An empty string switches scheduled drills off.
    pub drill_schedule: Option<String>,
}

fn visible_set(s: &Service, p: &Principal, name: &str, action: Action) -> Result<InfraSet, Error> {
    let set = s.set(name)?;
    if !p.sees(&set.vault) {
        return Err(Error::NotFound(format!("set {name}")));
    }
    p.require(&set.vault, action)?;
    Ok(set)
}

/// Infrastructure sets on the vaults the caller can see.
#[utoipa::path(get, path = "/sets", tag = "sets", responses((status = 200, body = [InfraSet]), (status = 401, body = ErrorBody)))]
async fn list_sets(State(s): State<AppState>, Caller(p): Caller) -> ApiResult<Json<Vec<InfraSet>>> {
    let all = blocking(move || s.sets(None)).await?;
    Ok(Json(all.into_iter().filter(|x| p.sees(&x.vault)).collect()))
}

/// Creates an infrastructure set: its items get the set's policy (its
/// schedule and retention) and are backed up together from now on.
#[utoipa::path(post, path = "/sets", tag = "sets", request_body = NewSet,
    responses((status = 201, body = InfraSet), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 401, body = ErrorBody), (status = 502, body = ErrorBody)))]
async fn create_set(
    State(s): State<AppState>,
    Caller(p): Caller,
    Body(req): Body<NewSet>,
) -> ApiResult<(StatusCode, Json<InfraSet>)> {
    if !p.sees(&req.vault) {
        return Err(ApiError(Error::invalid(
            "vault",
            format!("no vault named {}", req.vault),
        )));
    }
    p.require(&req.vault, Action::ManageItems)?;
    p.require(&req.vault, Action::ManagePolicies)?;
    let set = InfraSet {
        name: req.name,
        vault: req.vault,
        items: req.items,
        schedule: req.schedule,
        time_zone: req.time_zone,
        retention_days: req.retention_days,
        enabled: req.enabled,
        drill_schedule: req.drill_schedule.filter(|d| !d.is_empty()),
        created: 0,
    };
    let by = p.name.clone();
    let set = blocking(move || s.add_set(&set, &by)).await?;
    Ok((StatusCode::CREATED, Json(set)))
}

/// One set.
#[utoipa::path(get, path = "/sets/{name}", tag = "sets", params(("name" = String, Path)),
    responses((status = 200, body = InfraSet), (status = 404, body = ErrorBody), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn get_set(
    State(s): State<AppState>,
    Caller(p): Caller,
    P(name): P<String>,
) -> ApiResult<Json<InfraSet>> {
    Ok(Json(
        blocking(move || visible_set(&s, &p, &name, Action::View)).await?,
    ))
}

/// Changes a set's items, schedule, retention or switches.
#[utoipa::path(patch, path = "/sets/{name}", tag = "sets", params(("name" = String, Path)), request_body = SetChanges,
    responses((status = 200, body = InfraSet), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody), (status = 502, body = ErrorBody)))]
async fn update_set(
    State(s): State<AppState>,
    Caller(p): Caller,
    P(name): P<String>,
    Body(req): Body<SetChanges>,
) -> ApiResult<Json<InfraSet>> {
    Ok(Json(
        blocking(move || {
            let mut set = visible_set(&s, &p, &name, Action::ManageItems)?;
            p.require(&set.vault, Action::ManagePolicies)?;
            if let Some(v) = req.items {
                set.items = v;
            }
            if let Some(v) = req.schedule {
                set.schedule = v;
            }
            if let Some(v) = req.time_zone {
                set.time_zone = v;
            }
            if let Some(v) = req.retention_days {
                set.retention_days = v;
            }
            if let Some(v) = req.enabled {
                set.enabled = v;
            }
            if let Some(v) = req.drill_schedule {
                set.drill_schedule = (!v.is_empty()).then_some(v);
            }
            s.update_set(&set, &p.name)
        })
        .await?,
    ))
}

/// Removes a set; its points stay in the vault.
#[utoipa::path(delete, path = "/sets/{name}", tag = "sets", params(("name" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn delete_set(
    State(s): State<AppState>,
    Caller(p): Caller,
    P(name): P<String>,
) -> ApiResult<StatusCode> {
    blocking(move || {
        visible_set(&s, &p, &name, Action::ManageItems)?;
        s.remove_set(&name)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Backs the set up now: every item, then the service's configuration,
/// into one set point. The schedule is not moved. Returns the job.
#[utoipa::path(post, path = "/sets/{name}/backup", tag = "sets", params(("name" = String, Path)),
    responses((status = 202, body = Job), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn backup_set_now(
    State(s): State<AppState>,
    Caller(p): Caller,
    P(name): P<String>,
) -> ApiResult<(StatusCode, Json<Job>)> {
    let job = blocking(move || {
        let set = visible_set(&s, &p, &name, Action::Backup)?;
        s.jobs.enqueue(
            &s,
            NewJob {
                kind: JobKind::SetBackup,
                vault: &set.vault,
                item: Some(&set.name),
                params: None,
                trigger: "on_demand",
                requested_by: Some(&p.name),
                attempt: 1,
                not_before: 0,
            },
        )
    })
    .await?;
    Ok((StatusCode::ACCEPTED, Json(job)))
}

#[derive(Deserialize, ToSchema, Default)]
pub struct DrillRequest {
    /// A set point id or a unique prefix (default: the set's newest).
    #[serde(default)]
    pub point: Option<String>,
}

/// Runs a recovery drill now: the set point restored into a scratch area,
/// checked, timed and removed. Returns the job; its result holds the
/// measured recovery time.
#[utoipa::path(post, path = "/sets/{name}/drill", tag = "sets", params(("name" = String, Path)), request_body = DrillRequest,
    responses((status = 202, body = Job), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn drill_now(
    State(s): State<AppState>,
    Caller(p): Caller,
    P(name): P<String>,
    Body(req): Body<DrillRequest>,
) -> ApiResult<(StatusCode, Json<Job>)> {
    let job = blocking(move || {
        let set = visible_set(&s, &p, &name, Action::Restore)?;
        s.jobs.enqueue(
            &s,
            NewJob {
                kind: JobKind::Drill,
                vault: &set.vault,
                item: Some(&set.name),
                params: req.point.map(|pt| serde_json::json!({ "point": pt })),
                trigger: "on_demand",
                requested_by: Some(&p.name),
                attempt: 1,
                not_before: 0,
            },
        )
    })
    .await?;
    Ok((StatusCode::ACCEPTED, Json(job)))
}

/// The set points in a vault, newest first, with every item's status and
/// whether the point is ready for cloud recovery.
#[utoipa::path(get, path = "/vaults/{name}/set-points", tag = "sets", params(("name" = String, Path)),
    responses((status = 200, body = [SetPointInfo]), (status = 404, body = ErrorBody), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 502, body = ErrorBody)))]
async fn list_set_points(
    State(s): State<AppState>,
    Caller(p): Caller,
    P(name): P<String>,
) -> ApiResult<Json<Vec<SetPointInfo>>> {
    p.require(&name, Action::View)?;
    Ok(Json(
        blocking(move || {
            let vault = s.open_vault(&name)?;
            crate::recovery::set_points(&vault)
        })
        .await?,
    ))
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct SchedulerSwitch {
    /// Whether scheduled runs start. Off keeps every schedule.
    pub enabled: bool,
}

/// Whether the scheduler runs.
#[utoipa::path(get, path = "/scheduler", tag = "service", responses((status = 200, body = SchedulerSwitch), (status = 401, body = ErrorBody)))]
async fn get_scheduler(
    State(s): State<AppState>,
    Caller(_p): Caller,
) -> ApiResult<Json<SchedulerSwitch>> {
    let enabled = blocking(move || s.scheduler.enabled(&s)).await?;
    Ok(Json(SchedulerSwitch { enabled }))
}

/// Switches scheduled runs on or off (administrators only).
#[utoipa::path(put, path = "/scheduler", tag = "service", request_body = SchedulerSwitch,
    responses((status = 200, body = SchedulerSwitch), (status = 403, body = ErrorBody), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn set_scheduler(
    State(s): State<AppState>,
    Caller(p): Caller,
    Body(req): Body<SchedulerSwitch>,
) -> ApiResult<Json<SchedulerSwitch>> {
    p.require_admin()?;
    let on = req.enabled;
    blocking(move || s.scheduler.set_enabled(&s, on)).await?;
    Ok(Json(SchedulerSwitch { enabled: on }))
}

// ---- jobs -----------------------------------------------------------------

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct JobQuery {
    pub item: Option<String>,
    pub vault: Option<String>,
    pub state: Option<JobState>,
    /// At most this many (default 100).
    #[param(minimum = 1, maximum = 10000)]
    pub limit: Option<u32>,
}

fn visible_job(s: &Service, p: &Principal, id: i64, action: Action) -> Result<Job, Error> {
    let job = s.jobs.get(&s.db, id)?;
    let vault = job.vault.clone().unwrap_or_default();
    if !p.sees(&vault) {
        return Err(Error::NotFound(format!("job {id}")));
    }
    p.require(&vault, action)?;
    Ok(job)
}

/// Jobs on the vaults the caller can see, newest first.
#[utoipa::path(get, path = "/jobs", tag = "jobs", params(JobQuery), responses((status = 200, body = [Job]), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn list_jobs(
    State(s): State<AppState>,
    Caller(p): Caller,
    Q(q): Q<JobQuery>,
) -> ApiResult<Json<Vec<Job>>> {
    let state = q.state;
    if q.limit.is_some_and(|l| !(1..=10_000).contains(&l)) {
        return Err(ApiError(Error::invalid("limit", "1 to 10000")));
    }
    let filter = JobFilter {
        item: q.item,
        vault: q.vault,
        state,
        limit: q.limit,
    };
    let jobs = blocking(move || s.jobs.list(&s.db, &filter)).await?;
    Ok(Json(
        jobs.into_iter()
            .filter(|j| p.sees(j.vault.as_deref().unwrap_or_default()))
            .collect(),
    ))
}

/// One job with its live progress.
#[utoipa::path(get, path = "/jobs/{id}", tag = "jobs", params(("id" = i64, Path)),
    responses((status = 200, body = Job), (status = 404, body = ErrorBody), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn get_job(
    State(s): State<AppState>,
    Caller(p): Caller,
    P(id): P<i64>,
) -> ApiResult<Json<Job>> {
    Ok(Json(
        blocking(move || visible_job(&s, &p, id, Action::View)).await?,
    ))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogQuery {
    /// Only lines after this sequence number (to follow a running job).
    pub after: Option<i64>,
}

/// A job's log lines.
#[utoipa::path(get, path = "/jobs/{id}/logs", tag = "jobs", params(("id" = i64, Path), LogQuery),
    responses((status = 200, body = [LogLine]), (status = 404, body = ErrorBody), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn job_logs(
    State(s): State<AppState>,
    Caller(p): Caller,
    P(id): P<i64>,
    Q(q): Q<LogQuery>,
) -> ApiResult<Json<Vec<LogLine>>> {
    Ok(Json(
        blocking(move || {
            visible_job(&s, &p, id, Action::View)?;
            s.jobs.logs(&s.db, id, q.after.unwrap_or(0))
        })
        .await?,
    ))
}

/// Cancels a queued or running job.
#[utoipa::path(post, path = "/jobs/{id}/cancel", tag = "jobs", params(("id" = i64, Path)),
    responses((status = 202, body = Job), (status = 409, body = ErrorBody), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn cancel_job(
    State(s): State<AppState>,
    Caller(p): Caller,
    P(id): P<i64>,
) -> ApiResult<(StatusCode, Json<Job>)> {
    let job = blocking(move || {
        visible_job(&s, &p, id, Action::CancelJob)?;
        s.jobs.cancel(&s.db, id, &p.name)
    })
    .await?;
    Ok((StatusCode::ACCEPTED, Json(job)))
}

// ---- alerts ---------------------------------------------------------------

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AlertQuery {
    /// Only open alerts (default true).
    pub open: Option<bool>,
}

fn alert_visible(p: &Principal, a: &Alert) -> bool {
    match &a.vault {
        Some(v) => p.sees(v),
        None => p.is_admin,
    }
}

/// Alerts on the vaults the caller can see (service-wide ones for
/// administrators), newest first.
#[utoipa::path(get, path = "/alerts", tag = "alerts", params(AlertQuery), responses((status = 200, body = [Alert]), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn list_alerts(
    State(s): State<AppState>,
    Caller(p): Caller,
    Q(q): Q<AlertQuery>,
) -> ApiResult<Json<Vec<Alert>>> {
    let open = q.open.unwrap_or(true);
    let all = blocking(move || alerts::list(&s.db, open, 1000)).await?;
    Ok(Json(
        all.into_iter().filter(|a| alert_visible(&p, a)).collect(),
    ))
}

/// Resolves an alert by hand.
#[utoipa::path(post, path = "/alerts/{id}/resolve", tag = "alerts", params(("id" = i64, Path)),
    responses((status = 200, body = Alert), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn resolve_alert(
    State(s): State<AppState>,
    Caller(p): Caller,
    P(id): P<i64>,
) -> ApiResult<Json<Alert>> {
    Ok(Json(
        blocking(move || {
            let a = alerts::get(&s.db, id)?;
            if !alert_visible(&p, &a) {
                return Err(Error::NotFound(format!("alert {id}")));
            }
            match &a.vault {
                Some(v) => p.require(v, Action::ManageVault)?,
                None => p.require_admin()?,
            }
            alerts::resolve(&s.db, id, &p.name)
        })
        .await?,
    ))
}

// ---- notifications ---------------------------------------------------------

/// Notification targets (administrators only).
#[utoipa::path(get, path = "/notifications/targets", tag = "notifications", responses((status = 200, body = [Target]), (status = 401, body = ErrorBody)))]
async fn list_targets(
    State(s): State<AppState>,
    Caller(p): Caller,
) -> ApiResult<Json<Vec<Target>>> {
    p.require_admin()?;
    Ok(Json(blocking(move || s.targets()).await?))
}

/// Adds a webhook or e-mail target with its rules.
#[utoipa::path(post, path = "/notifications/targets", tag = "notifications", request_body = NewTarget,
    responses((status = 201, body = Target), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn create_target(
    State(s): State<AppState>,
    Caller(p): Caller,
    Body(req): Body<NewTarget>,
) -> ApiResult<(StatusCode, Json<Target>)> {
    p.require_admin()?;
    Ok((
        StatusCode::CREATED,
        Json(blocking(move || s.add_target(&req)).await?),
    ))
}

/// Removes a target.
#[utoipa::path(delete, path = "/notifications/targets/{id}", tag = "notifications", params(("id" = i64, Path)),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn delete_target(
    State(s): State<AppState>,
    Caller(p): Caller,
    P(id): P<i64>,
) -> ApiResult<StatusCode> {
    p.require_admin()?;
    blocking(move || s.remove_target(id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The latest deliveries to a target, with their errors.
#[utoipa::path(get, path = "/notifications/targets/{id}/deliveries", tag = "notifications", params(("id" = i64, Path)),
    responses((status = 200, body = [Delivery]), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn target_deliveries(
    State(s): State<AppState>,
    Caller(p): Caller,
    P(id): P<i64>,
) -> ApiResult<Json<Vec<Delivery>>> {
    p.require_admin()?;
    Ok(Json(blocking(move || s.deliveries(id)).await?))
}

// ---- the router -----------------------------------------------------------

#[derive(Serialize, ToSchema)]
pub struct Health {
    pub status: String,
    pub version: String,
}

/// Whether the service is up (no authentication).
#[utoipa::path(get, path = "/health", tag = "service", security(()), responses((status = 200, body = Health)))]
async fn health() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
    })
}

/// Prometheus metrics (any authenticated caller; Prometheus sends a token
/// with `authorization: {credentials: …}`).
async fn metrics(State(s): State<AppState>, headers: HeaderMap) -> ApiResult<Response> {
    // Every vault's items and failures are in the text: administrators, or
    // a scraper holding the configured metrics token.
    let bearer = bearer_or_cookie(&headers).unwrap_or_default();
    let by_token = s.config.metrics_token.as_deref().is_some_and(|t| {
        !t.is_empty() && blake3::hash(t.as_bytes()) == blake3::hash(bearer.as_bytes())
    });
    if !by_token {
        let service = s.clone();
        let principal = blocking(move || auth::authenticate(&service.db, &bearer)).await?;
        match principal {
            Some(p) => p.require_admin()?,
            None => {
                return Err(ApiError(Error::Unauthenticated(
                    "the metrics need an administrator's token or the metrics token".into(),
                )))
            }
        }
    }
    let text = blocking(move || crate::metrics::render(&s.db)).await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

/// The API's routes and their OpenAPI description, from the same list.
pub fn routes() -> (axum::Router<AppState>, utoipa::openapi::OpenApi) {
    let (router, mut api) = OpenApiRouter::<AppState>::new()
        .routes(routes!(health))
        .routes(routes!(login))
        .routes(routes!(logout))
        .routes(routes!(me))
        .routes(routes!(list_users, create_user))
        .routes(routes!(delete_user))
        .routes(routes!(set_password))
        .routes(routes!(list_tokens, create_token))
        .routes(routes!(delete_token))
        .routes(routes!(list_roles, assign_role))
        .routes(routes!(remove_role))
        .routes(routes!(list_vaults, create_vault))
        .routes(routes!(get_vault, delete_vault))
        .routes(routes!(set_credentials))
        .routes(routes!(rotate_key))
        .routes(routes!(set_key))
        .routes(routes!(list_points))
        .routes(routes!(points::point_entries))
        .routes(routes!(points::point_file))
        .routes(routes!(points::undelete_points))
        .routes(routes!(points::preview_policy))
        .routes(routes!(points::vault_status))
        .routes(routes!(points::test_location))
        .routes(routes!(points::stop_protection))
        .routes(routes!(points::resume_protection))
        .routes(routes!(delete_points))
        .routes(routes!(set_maintenance))
        .routes(routes!(prune_now))
        .routes(routes!(check_now))
        .routes(routes!(replicate_now))
        .routes(routes!(accept_location))
        .routes(routes!(locations::list_locations, locations::set_location))
        .routes(routes!(locations::remove_location))
        .routes(routes!(restore))
        .routes(routes!(list_policies))
        .routes(routes!(set_policy, delete_policy))
        .routes(routes!(set_immutability))
        .routes(routes!(assign_policy))
        .routes(routes!(list_items, create_item))
        .routes(routes!(get_item, update_item, delete_item))
        .routes(routes!(backup_now))
        .routes(routes!(item_schedule))
        .routes(routes!(get_scheduler, set_scheduler))
        .routes(routes!(list_sets, create_set))
        .routes(routes!(get_set, update_set, delete_set))
        .routes(routes!(backup_set_now))
        .routes(routes!(drill_now))
        .routes(routes!(list_set_points))
        .routes(routes!(list_jobs))
        .routes(routes!(get_job))
        .routes(routes!(job_logs))
        .routes(routes!(cancel_job))
        .routes(routes!(list_alerts))
        .routes(routes!(resolve_alert))
        .routes(routes!(list_targets, create_target))
        .routes(routes!(delete_target))
        .routes(routes!(target_deliveries))
        .split_for_parts();
    api.info.title = "Coffer".into();
    api.info.version = "v1".into();
    api.info.description = Some("The Coffer backup service. Send `Authorization: Bearer <token>` (POST /tokens) or the session cookie from POST /auth/login.".into());
    api.servers = Some(vec![utoipa::openapi::Server::new("/api/v1")]);
    let components = api.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
    );
    components.add_security_scheme(
        "session",
        SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(SESSION_COOKIE))),
    );
    api.security = Some(vec![
        utoipa::openapi::security::SecurityRequirement::new("bearer", Vec::<String>::new()),
        utoipa::openapi::security::SecurityRequirement::new("session", Vec::<String>::new()),
    ]);
    (router, api)
}

/// The whole HTTP application: the API under `/api/v1` and its document.
pub fn app(service: AppState) -> axum::Router {
    let (api_routes, api) = routes();
    let doc = Arc::new(api);
    let api_routes = api_routes.route(
        "/openapi.json",
        axum::routing::get(move || {
            let doc = doc.clone();
            async move { Json((*doc).clone()) }
        }),
    );
    axum::Router::new()
        .nest("/api/v1", api_routes)
        .route("/metrics", axum::routing::get(metrics))
        .merge(crate::console::routes())
        .fallback(|| async {
            ApiError(Error::NotFound("no such endpoint (the API is under /api/v1; its description is /api/v1/openapi.json)".into()))
        })
        .with_state(service)
}

/// Serves until Ctrl-C or SIGTERM; jobs still running are left to be
/// marked interrupted at the next start.
pub async fn run(service: AppState) -> crate::Result<()> {
    let addr = service.config.listen;
    tokio::spawn(Jobs::dispatch(service.clone()));
    tokio::spawn(Scheduler::run(service.clone()));
    tokio::spawn(Service::run_notifier(service.clone()));
    let app = app(service.clone());
    let handle = axum_server::Handle::new();
    let shutdown = handle.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        shutdown.graceful_shutdown(Some(std::time::Duration::from_secs(10)));
    });
    let scheme = if service.config.tls_cert.is_some() {
        "https"
    } else {
        "http"
    };
    let served = match (&service.config.tls_cert, &service.config.tls_key) {
        (Some(cert), Some(key)) => {
            let tls = axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key)
                .await
                .map_err(|e| {
                    Error::Config(format!("cannot load the TLS certificate or key: {e}"))
                })?;
            let server = axum_server::bind_rustls(addr, tls).handle(handle.clone());
            announce(&handle, scheme).await;
            server
                .serve(app.into_make_service_with_connect_info::<std::net::SocketAddr>())
                .await
        }
        _ => {
            let server = axum_server::bind(addr).handle(handle.clone());
            announce(&handle, scheme).await;
            server
                .serve(app.into_make_service_with_connect_info::<std::net::SocketAddr>())
                .await
        }
    };
    served.map_err(|e| Error::Config(format!("cannot serve on {addr}: {e} (is another service using the port? set listen in coffer.toml or COFFER_LISTEN)")))
}

async fn announce(handle: &axum_server::Handle, scheme: &'static str) {
    let handle = handle.clone();
    tokio::spawn(async move {
        if let Some(addr) = handle.listening().await {
            // Tests and scripts read this line to find the port.
            println!("listening on {scheme}://{addr}");
            tracing::info!(%addr, "listening");
        }
    });
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(t) => t,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

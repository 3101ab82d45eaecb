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
//!
//! This file holds what every resource shares (errors, extractors,
//! authentication and the router); each resource's handlers live in a file
//! of its own: `users`, `vaults`, `points`, `locations`, `items`, `sets`,
//! `jobs`, `alerts`, `notifications`.

pub use coffer_api_types::access::{LoginRequest, LoginResponse};
pub use coffer_api_types::error::{ErrorBody, ErrorDetail};
pub use coffer_api_types::service::Health;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{FromRequest, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use coffer_api_types::{Audience, PointSummary};
use serde::{Deserialize, Serialize};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::alerts::Alert;
use crate::auth::{self, Action, Login, Principal, Role, RoleAssignment, Token, User};
use crate::db::now;
use crate::error::Error;
use crate::jobs::{Job, JobFilter, JobKind, JobState, LogLine, NewJob};
use crate::notify::{Delivery, NewTarget, Target};
use crate::policies::{PolicySpec, PolicyView};
use crate::recovery::SetPointInfo;
use crate::scheduler::ItemSchedule;
use crate::service::Service;
use crate::sets::InfraSet;
use crate::state::{Item, Maintenance, VaultInfo};
use coffer_api_types::RestoreParams;

mod agent_protocol;
mod agents;
mod alerts;
mod items;
mod jobs;
mod locations;
mod notifications;
mod points;
mod sets;
mod users;
mod vaults;

use agents::*;
use alerts::*;
use items::*;
use jobs::*;
use notifications::*;
use sets::*;
use users::*;
use vaults::*;

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

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = self.0.code();
        let message = self.0.to_string();
        let status =
            StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!("{message}");
        }
        let field = match &self.0 {
            Error::Invalid { field, .. } => Some(field.clone()),
            _ => None,
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code: code.api_code().to_string(),
                message,
                field,
                hint: code.hint(Audience::Service).to_string(),
                retryable: code.retryable(),
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
///
/// Over HTTP/2 (what browsers speak to a TLS service) the host travels as
/// the request's `:authority`, not as a `Host` header.
fn check_origin(
    method: &axum::http::Method,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
) -> Result<(), ApiError> {
    use axum::http::Method;
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(());
    }
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| uri.authority().map(|a| a.as_str()));
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
        check_origin(&parts.method, &parts.uri, &parts.headers)?;
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

/// Logs in with a password and starts a console session (the cookie).
#[utoipa::path(post, path = "/auth/login", tag = "auth", security(()), request_body = LoginRequest,
    responses((status = 200, body = LoginResponse), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 429, body = ErrorBody), (status = 400, body = ErrorBody)))]
async fn login(
    State(s): State<AppState>,
    ClientAddress(address): ClientAddress,
    uri: axum::http::Uri,
    headers: HeaderMap,
    Body(req): Body<LoginRequest>,
) -> ApiResult<Response> {
    check_origin(&axum::http::Method::POST, &uri, &headers)?;
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
                        crate::alerts::Cause::LoginFailures,
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

// ---- the router -----------------------------------------------------------

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
        .routes(routes!(list_agent_tokens, create_agent_token))
        .routes(routes!(delete_agent_token))
        .routes(routes!(list_agents))
        .routes(routes!(get_bandwidth, set_bandwidth))
        .routes(routes!(get_agent, change_agent, delete_agent))
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
        .nest("/api/v1", api_routes.merge(agent_protocol::routes()))
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
    service.start_background();
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

#[cfg(test)]
mod tests {
    use super::*;
    use coffer_api_types::ErrorCode;

    async fn answer(e: Error) -> (StatusCode, serde_json::Value) {
        let response = ApiError(e).into_response();
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .map(|b| serde_json::from_slice(&b))
            .ok()
            .and_then(|v| v.ok())
            .unwrap_or_default();
        (status, body)
    }

    /// The answer to an engine error is its code's status, wire code and
    /// service hint: the same code the command line takes its exit code from.
    #[tokio::test]
    async fn an_engine_error_answers_with_its_codes_status_and_hint() {
        let cases = [
            coffer_engine::Error::WrongKey { slots: 1 },
            coffer_engine::Error::PointNotFound("abc".into()),
            coffer_engine::Error::Invalid("bad pattern".into()),
            coffer_engine::Error::Immutable {
                setting: "locked".into(),
                what: "the point has not expired".into(),
            },
            coffer_engine::Error::Storage {
                path: "packs/00".into(),
                failure: coffer_api_types::StorageFailure::Unreachable,
                message: "connection refused".into(),
            },
        ];
        for e in cases {
            let code = e.code();
            let message = e.to_string();
            let (status, body) = answer(Error::Engine(e)).await;
            assert_eq!(status.as_u16(), code.http_status(), "{code:?}");
            assert_eq!(body["error"]["code"], code.api_code(), "{body}");
            assert_eq!(body["error"]["message"], message, "{body}");
            assert_eq!(
                body["error"]["hint"],
                code.hint(Audience::Service),
                "{body}"
            );
            assert_eq!(body["error"]["retryable"], code.retryable(), "{body}");
        }
    }

    #[tokio::test]
    async fn a_service_error_names_its_field_and_code() {
        let (status, body) = answer(Error::invalid("name", "must not be empty")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"]["field"], "name");
        assert_eq!(body["error"]["code"], ErrorCode::Invalid.api_code());
        let (status, body) = answer(Error::Unauthenticated("no token".into())).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(body["error"].get("field").is_none(), "{body}");
        assert_eq!(body["error"]["retryable"], false);
    }
}

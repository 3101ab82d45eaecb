//! Endpoints for the replica and tier locations a vault's journal may use
//! through the service (see [`crate::locations`]). Naming a location makes
//! the service reach a host or write a local path, so only administrators
//! add or remove one; whoever may read the vault sees which are allowed.

pub use coffer_api_types::location::{LocationName, NewLocation};

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;

use super::{blocking, ApiResult, AppState, Body, Caller, ErrorBody, P};
use crate::auth::Action;
use crate::locations::VaultLocation;

/// The replica and tier locations the service opens for this vault.
#[utoipa::path(get, path = "/vaults/{name}/locations", tag = "vaults", params(("name" = String, Path)),
    responses((status = 200, body = [VaultLocation]), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn list_locations(
    State(s): State<AppState>,
    Caller(p): Caller,
    P(name): P<String>,
) -> ApiResult<Json<Vec<VaultLocation>>> {
    p.require(&name, Action::View)?;
    Ok(Json(blocking(move || s.vault_locations(&name)).await?))
}

/// Lets the vault's journal use a location (a replica, the local tier),
/// opened with the credentials given here and never with the vault's.
#[utoipa::path(put, path = "/vaults/{name}/locations", tag = "vaults", params(("name" = String, Path)), request_body = NewLocation,
    responses((status = 200, body = VaultLocation), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn set_location(
    State(s): State<AppState>,
    Caller(p): Caller,
    P(name): P<String>,
    Body(req): Body<NewLocation>,
) -> ApiResult<Json<VaultLocation>> {
    p.require(&name, Action::ManageVault)?;
    p.require_server_access()?;
    Ok(Json(
        blocking(move || s.set_vault_location(&name, &req.location, &req.credentials)).await?,
    ))
}

/// Stops the service from opening a location for this vault.
#[utoipa::path(post, path = "/vaults/{name}/locations/remove", tag = "vaults", params(("name" = String, Path)), request_body = LocationName,
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn remove_location(
    State(s): State<AppState>,
    Caller(p): Caller,
    P(name): P<String>,
    Body(req): Body<LocationName>,
) -> ApiResult<StatusCode> {
    p.require(&name, Action::ManageVault)?;
    p.require_server_access()?;
    blocking(move || s.remove_vault_location(&name, &req.location)).await?;
    Ok(StatusCode::NO_CONTENT)
}

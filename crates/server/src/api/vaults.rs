//! Vaults: adding and removing them, their keys, credentials, maintenance
//! schedules, points and the jobs of a vault (prune, check, replicate,
//! restore).

use super::*;
pub use coffer_api_types::vault::{CheckRequest, KeyRequest, NewVault, VaultWithKey};
pub use coffer_api_types::vault::{DeletePoints, Deleted, ImmutabilitySetting, NewCredentials};

/// Vaults the caller has a role on.
#[utoipa::path(get, path = "/vaults", tag = "vaults", responses((status = 200, body = [VaultInfo]), (status = 401, body = ErrorBody)))]
pub(super) async fn list_vaults(
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
pub(super) async fn create_vault(
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
pub(super) async fn get_vault(
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
pub(super) async fn delete_vault(
    State(s): State<AppState>,
    Caller(p): Caller,
    P(name): P<String>,
) -> ApiResult<StatusCode> {
    p.require(&name, Action::DeleteData)?;
    blocking(move || s.remove_vault(&name)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Replaces the vault's storage credentials (tried before they are kept).
#[utoipa::path(put, path = "/vaults/{name}/credentials", tag = "vaults", params(("name" = String, Path)), request_body = NewCredentials,
    responses((status = 204), (status = 400, body = ErrorBody), (status = 502, body = ErrorBody), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub(super) async fn set_credentials(
    State(s): State<AppState>,
    Caller(p): Caller,
    P(name): P<String>,
    Body(req): Body<NewCredentials>,
) -> ApiResult<StatusCode> {
    p.require(&name, Action::ManageVault)?;
    blocking(move || s.set_credentials(&name, req.credentials)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Rotates the vault's key: a new key slot, the old one removed. Raises a
/// security alert.
#[utoipa::path(post, path = "/vaults/{name}/key/rotate", tag = "vaults", params(("name" = String, Path)), request_body = KeyRequest,
    responses((status = 200, body = VaultWithKey), (status = 403, body = ErrorBody), (status = 502, body = ErrorBody), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub(super) async fn rotate_key(
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
pub(super) async fn set_key(
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
pub(super) async fn accept_location(
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

/// The recovery points in a vault, newest first.
#[utoipa::path(get, path = "/vaults/{name}/points", tag = "vaults", params(("name" = String, Path)),
    responses((status = 200, body = [PointSummary]), (status = 502, body = ErrorBody), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub(super) async fn list_points(
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
    let mut list = coffer_engine::views::point_summaries(&points, &state);
    list.sort_by(|a, b| b.time.cmp(&a.time).then_with(|| a.id.cmp(&b.id)));
    Ok(Json(list))
}

/// Sets when the vault's prune and check run on their own.
#[utoipa::path(put, path = "/vaults/{name}/maintenance", tag = "vaults", params(("name" = String, Path)), request_body = Maintenance,
    responses((status = 200, body = VaultInfo), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub(super) async fn set_maintenance(
    State(s): State<AppState>,
    Caller(p): Caller,
    P(name): P<String>,
    Body(m): Body<Maintenance>,
) -> ApiResult<Json<VaultInfo>> {
    p.require(&name, Action::DeleteData)?;
    Ok(Json(blocking(move || s.set_maintenance(&name, &m)).await?))
}

/// Queues one of a vault's own jobs (prune, check) on request.
pub(super) fn queue_vault_job(
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
pub(super) async fn prune_now(
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
pub(super) async fn replicate_now(
    State(s): State<AppState>,
    Caller(p): Caller,
    P(name): P<String>,
) -> ApiResult<(StatusCode, Json<Job>)> {
    p.require(&name, Action::Backup)?;
    let job =
        blocking(move || queue_vault_job(&s, &name, JobKind::Replicate, None, &p.name)).await?;
    Ok((StatusCode::ACCEPTED, Json(job)))
}

/// Checks the vault now. Returns the job.
#[utoipa::path(post, path = "/vaults/{name}/check", tag = "vaults", params(("name" = String, Path)), request_body = CheckRequest,
    responses((status = 202, body = Job), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub(super) async fn check_now(
    State(s): State<AppState>,
    Caller(p): Caller,
    P(name): P<String>,
    Body(req): Body<CheckRequest>,
) -> ApiResult<(StatusCode, Json<Job>)> {
    p.require(&name, Action::Backup)?;
    if !(0.0..=100.0).contains(&req.read_data_percent) {
        return Err(ApiError(Error::invalid("read_data_percent", "0 to 100")));
    }
    let params = serde_json::to_value(&req).map_err(|e| Error::Internal(e.to_string()))?;
    let job =
        blocking(move || queue_vault_job(&s, &name, JobKind::Check, Some(params), &p.name)).await?;
    Ok((StatusCode::ACCEPTED, Json(job)))
}

/// Restores a recovery point (or paths in it) on the service's machine.
/// Returns the job.
#[utoipa::path(post, path = "/vaults/{name}/restore", tag = "vaults", params(("name" = String, Path)), request_body = RestoreParams,
    responses((status = 202, body = Job), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody), (status = 502, body = ErrorBody)))]
pub(super) async fn restore(
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
        // A database or command goes back where it came from: an agent's
        // item onto its host, never into this machine's database or
        // command by accident.
        if in_place && params.host.is_none() {
            params.host = own_item.as_ref().and_then(|i| i.agent.clone());
        }
        match params.host.clone() {
            Some(host) => {
                let agent = crate::agents::get(&s, &host, s.config.agent_unreachable_secs as i64)
                    .map_err(|_| Error::invalid("host", format!("no agent named {host} is registered")))?;
                if agent.vault != name && !p.is_admin {
                    return Err(Error::Forbidden(format!(
                        "agent {host} belongs to vault {}: restoring another vault's data onto it needs an administrator",
                        agent.vault
                    )));
                }
                if in_place && params.target.is_empty() {
                    crate::targets::check_host_in_place(&p, own_item.as_ref(), &host)?
                } else {
                    crate::targets::check_host_restore(&p, own_item.as_ref(), &host, &mut params)?
                }
            }
            None => crate::targets::check_restore_target(
                &p,
                &s.config.restore_roots(),
                own_item.as_ref(),
                &mut params,
            )?,
        }
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
pub(super) async fn list_policies(
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
pub(super) async fn set_policy(
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
pub(super) async fn delete_policy(
    State(s): State<AppState>,
    Caller(p): Caller,
    P((name, policy)): P<(String, String)>,
) -> ApiResult<StatusCode> {
    p.require(&name, Action::ManagePolicies)?;
    blocking(move || s.delete_policy(&name, &policy)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Changes the vault's immutability (owners only); raises a security alert.
#[utoipa::path(put, path = "/vaults/{name}/immutability", tag = "vaults", params(("name" = String, Path)), request_body = ImmutabilitySetting,
    responses((status = 200, body = ImmutabilitySetting), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody), (status = 502, body = ErrorBody)))]
pub(super) async fn set_immutability(
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

/// Soft-deletes recovery points (they can be undeleted while soft-deleted);
/// raises a security alert.
#[utoipa::path(post, path = "/vaults/{name}/points/delete", tag = "vaults", params(("name" = String, Path)), request_body = DeletePoints,
    responses((status = 200, body = Deleted), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody), (status = 502, body = ErrorBody)))]
pub(super) async fn delete_points(
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

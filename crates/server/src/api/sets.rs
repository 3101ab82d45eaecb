//! Infrastructure sets: items protected together, their set points, backups
//! and recovery drills.

use super::*;
pub use coffer_api_types::set::NewSet;
pub use coffer_api_types::set::{DrillRequest, SchedulerSwitch, SetChanges};

pub(super) fn visible_set(
    s: &Service,
    p: &Principal,
    name: &str,
    action: Action,
) -> Result<InfraSet, Error> {
    let set = s.set(name)?;
    if !p.sees(&set.vault) {
        return Err(Error::NotFound(format!("set {name}")));
    }
    p.require(&set.vault, action)?;
    Ok(set)
}

/// Infrastructure sets on the vaults the caller can see.
#[utoipa::path(get, path = "/sets", tag = "sets", responses((status = 200, body = [InfraSet]), (status = 401, body = ErrorBody)))]
pub(super) async fn list_sets(
    State(s): State<AppState>,
    Caller(p): Caller,
) -> ApiResult<Json<Vec<InfraSet>>> {
    let all = blocking(move || s.sets(None)).await?;
    Ok(Json(all.into_iter().filter(|x| p.sees(&x.vault)).collect()))
}

/// Creates an infrastructure set: its items get the set's policy (its
/// schedule and retention) and are backed up together from now on.
#[utoipa::path(post, path = "/sets", tag = "sets", request_body = NewSet,
    responses((status = 201, body = InfraSet), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 401, body = ErrorBody), (status = 502, body = ErrorBody)))]
pub(super) async fn create_set(
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
pub(super) async fn get_set(
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
pub(super) async fn update_set(
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
pub(super) async fn delete_set(
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
pub(super) async fn backup_set_now(
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

/// Runs a recovery drill now: the set point restored into a scratch area,
/// checked, timed and removed. Returns the job; its result holds the
/// measured recovery time.
#[utoipa::path(post, path = "/sets/{name}/drill", tag = "sets", params(("name" = String, Path)), request_body = DrillRequest,
    responses((status = 202, body = Job), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub(super) async fn drill_now(
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
                params: req
                    .point
                    .map(|point| {
                        serde_json::to_value(coffer_api_types::outcome::DrillParams {
                            point: Some(point),
                        })
                    })
                    .transpose()
                    .map_err(|e| Error::Internal(e.to_string()))?,
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
pub(super) async fn list_set_points(
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

/// Whether the scheduler runs.
#[utoipa::path(get, path = "/scheduler", tag = "service", responses((status = 200, body = SchedulerSwitch), (status = 401, body = ErrorBody)))]
pub(super) async fn get_scheduler(
    State(s): State<AppState>,
    Caller(_p): Caller,
) -> ApiResult<Json<SchedulerSwitch>> {
    let enabled = blocking(move || s.scheduler_enabled()).await?;
    Ok(Json(SchedulerSwitch { enabled }))
}

/// Switches scheduled runs on or off (administrators only).
#[utoipa::path(put, path = "/scheduler", tag = "service", request_body = SchedulerSwitch,
    responses((status = 200, body = SchedulerSwitch), (status = 403, body = ErrorBody), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub(super) async fn set_scheduler(
    State(s): State<AppState>,
    Caller(p): Caller,
    Body(req): Body<SchedulerSwitch>,
) -> ApiResult<Json<SchedulerSwitch>> {
    p.require_admin()?;
    let on = req.enabled;
    blocking(move || s.set_scheduler_enabled(on)).await?;
    Ok(Json(SchedulerSwitch { enabled: on }))
}

//! Protected items: their definitions, schedules, policies and on-demand
//! backups.

use super::*;
pub use coffer_api_types::item::{ItemChanges, NewItem, PolicyAssignment};

/// Protected items on the vaults the caller can see.
#[utoipa::path(get, path = "/items", tag = "items", responses((status = 200, body = [Item]), (status = 401, body = ErrorBody)))]
pub(super) async fn list_items(
    State(s): State<AppState>,
    Caller(p): Caller,
) -> ApiResult<Json<Vec<Item>>> {
    let all = blocking(move || s.items(None)).await?;
    Ok(Json(all.into_iter().filter(|i| p.sees(&i.vault)).collect()))
}

/// Adds a protected item (administrators only: every kind names paths on
/// the service's machine or runs a program there).
#[utoipa::path(post, path = "/items", tag = "items", request_body = NewItem,
    responses((status = 201, body = Item), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 401, body = ErrorBody), (status = 502, body = ErrorBody)))]
pub(super) async fn create_item(
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
        disk: req.disk,
        pre: req.pre,
        post: req.post,
        agent: req.agent,
        enabled: req.enabled,
        retry_attempts: req.retry_attempts,
        retry_delay_secs: req.retry_delay_secs,
        created: 0,
    };
    let policy = req.policy;
    let by = p.name.clone();
    let item = blocking(move || {
        if let Some(agent) = &item.agent {
            crate::agents::check_item_agent(&s, agent, &item.vault)?;
        }
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
pub(super) fn visible_item(
    s: &Service,
    p: &Principal,
    name: &str,
    action: Action,
) -> Result<Item, Error> {
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
pub(super) async fn get_item(
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
pub(super) async fn update_item(
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
                || req.disk.is_some()
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
            if req.disk.is_some() {
                item.disk = req.disk;
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
pub(super) async fn delete_item(
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

/// Assigns a policy to an item; a shorter retention raises a security alert.
#[utoipa::path(put, path = "/items/{name}/policy", tag = "items", params(("name" = String, Path)), request_body = PolicyAssignment,
    responses((status = 204), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody), (status = 502, body = ErrorBody)))]
pub(super) async fn assign_policy(
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
pub(super) async fn backup_now(
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
pub(super) async fn item_schedule(
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

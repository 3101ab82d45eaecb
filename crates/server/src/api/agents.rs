//! Agents, as administrators manage them: registration tokens, the list of
//! registered hosts, disabling, re-keying and removing them. Registering
//! an agent puts a host's writes into a vault, so it is an administrator's
//! action; others see the agents of the vaults they have a role on.
//!
//! The agents' own protocol (registration, polls, reports and the
//! append-only store) is in `agent_protocol`.

use super::*;
use coffer_api_types::agent::{
    Agent, BandwidthLimits, CreatedRegistrationToken, NewRegistrationToken, RegistrationToken,
};

/// Creates a one-time registration token for a vault; its text is shown once.
#[utoipa::path(post, path = "/agents/tokens", tag = "agents", request_body = NewRegistrationToken,
    responses((status = 201, body = CreatedRegistrationToken), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub(super) async fn create_agent_token(
    State(s): State<AppState>,
    Caller(p): Caller,
    Body(req): Body<NewRegistrationToken>,
) -> ApiResult<(StatusCode, Json<CreatedRegistrationToken>)> {
    p.require_admin()?;
    let created = blocking(move || {
        crate::agents::create_token(
            &s,
            &req.vault,
            req.expires_in_secs,
            &p.name,
            &s.public_url(),
            s.tls_fingerprint.clone(),
        )
    })
    .await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// The registration tokens (never their secrets).
#[utoipa::path(get, path = "/agents/tokens", tag = "agents",
    responses((status = 200, body = [RegistrationToken]), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub(super) async fn list_agent_tokens(
    State(s): State<AppState>,
    Caller(p): Caller,
) -> ApiResult<Json<Vec<RegistrationToken>>> {
    p.require_admin()?;
    Ok(Json(
        blocking(move || crate::agents::list_tokens(&s)).await?,
    ))
}

/// Withdraws a registration token.
#[utoipa::path(delete, path = "/agents/tokens/{id}", tag = "agents", params(("id" = i64, Path)),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn delete_agent_token(
    State(s): State<AppState>,
    Caller(p): Caller,
    P(id): P<i64>,
) -> ApiResult<StatusCode> {
    p.require_admin()?;
    blocking(move || crate::agents::delete_token(&s, id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The registered agents of the vaults the caller can see.
#[utoipa::path(get, path = "/agents", tag = "agents",
    responses((status = 200, body = [Agent]), (status = 401, body = ErrorBody)))]
pub(super) async fn list_agents(
    State(s): State<AppState>,
    Caller(p): Caller,
) -> ApiResult<Json<Vec<Agent>>> {
    let after = s.config.agent_unreachable_secs as i64;
    let all = blocking(move || crate::agents::list(&s, None, after)).await?;
    Ok(Json(all.into_iter().filter(|a| p.sees(&a.vault)).collect()))
}

/// One agent.
#[utoipa::path(get, path = "/agents/{name}", tag = "agents", params(("name" = String, Path)),
    responses((status = 200, body = Agent), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn get_agent(
    State(s): State<AppState>,
    Caller(p): Caller,
    P(name): P<String>,
) -> ApiResult<Json<Agent>> {
    let after = s.config.agent_unreachable_secs as i64;
    let agent = blocking(move || crate::agents::get(&s, &name, after)).await?;
    if !p.sees(&agent.vault) {
        return Err(ApiError(Error::NotFound(format!("agent {}", agent.name))));
    }
    Ok(Json(agent))
}

#[derive(Deserialize, ToSchema)]
pub struct AgentChange {
    /// `enable`, `disable` or `rekey` (a new secret at its next contact).
    pub action: String,
}

/// Enables, disables or re-keys an agent.
#[utoipa::path(post, path = "/agents/{name}", tag = "agents", params(("name" = String, Path)), request_body = AgentChange,
    responses((status = 200, body = Agent), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn change_agent(
    State(s): State<AppState>,
    Caller(p): Caller,
    P(name): P<String>,
    Body(req): Body<AgentChange>,
) -> ApiResult<Json<Agent>> {
    p.require_admin()?;
    let after = s.config.agent_unreachable_secs as i64;
    let agent = blocking(move || {
        match req.action.as_str() {
            "enable" => crate::agents::set_enabled(&s, &name, true)?,
            "disable" => crate::agents::set_enabled(&s, &name, false)?,
            "rekey" => crate::agents::rekey(&s, &name)?,
            other => {
                return Err(Error::invalid(
                    "action",
                    format!("{other:?}: one of enable, disable, rekey"),
                ))
            }
        }
        crate::agents::get(&s, &name, after)
    })
    .await?;
    Ok(Json(agent))
}

/// Removes an agent and revokes its credential in the vault.
#[utoipa::path(delete, path = "/agents/{name}", tag = "agents", params(("name" = String, Path)),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(super) async fn delete_agent(
    State(s): State<AppState>,
    Caller(p): Caller,
    P(name): P<String>,
) -> ApiResult<StatusCode> {
    p.require_admin()?;
    blocking(move || crate::agents::remove(&s, &name)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The bandwidth limits on agents' uploads.
#[utoipa::path(get, path = "/agents/bandwidth", tag = "agents",
    responses((status = 200, body = BandwidthLimits), (status = 401, body = ErrorBody)))]
pub(super) async fn get_bandwidth(
    State(s): State<AppState>,
    Caller(_caller): Caller,
) -> ApiResult<Json<BandwidthLimits>> {
    Ok(Json(s.bandwidth.limits()))
}

/// Sets the bandwidth limits on agents' uploads; they apply at once, to
/// uploads already under way too.
#[utoipa::path(put, path = "/agents/bandwidth", tag = "agents", request_body = BandwidthLimits,
    responses((status = 200, body = BandwidthLimits), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub(super) async fn set_bandwidth(
    State(s): State<AppState>,
    Caller(p): Caller,
    Body(limits): Body<BandwidthLimits>,
) -> ApiResult<Json<BandwidthLimits>> {
    p.require_admin()?;
    let set = blocking(move || s.bandwidth.set(&s.db, limits)).await?;
    Ok(Json(set))
}

//! Users, their API tokens and their roles on vaults: who may call the API
//! and what each may do there.

use super::*;
pub use coffer_api_types::access::{CreatedToken, NewToken};
pub use coffer_api_types::access::{NewPassword, NewUser};

/// Lists users (administrators only).
#[utoipa::path(get, path = "/users", tag = "access", responses((status = 200, body = [User]), (status = 401, body = ErrorBody)))]
pub(super) async fn list_users(
    State(s): State<AppState>,
    Caller(p): Caller,
) -> ApiResult<Json<Vec<User>>> {
    p.require_admin()?;
    Ok(Json(blocking(move || auth::list_users(&s.db)).await?))
}

/// Creates a user (administrators only).
#[utoipa::path(post, path = "/users", tag = "access", request_body = NewUser,
    responses((status = 201, body = User), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub(super) async fn create_user(
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
pub(super) async fn delete_user(
    State(s): State<AppState>,
    Caller(p): Caller,
    P(name): P<String>,
) -> ApiResult<StatusCode> {
    p.require_admin()?;
    blocking(move || auth::delete_user(&s.db, &name)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sets a password: one's own (with the current one), or anyone's for an
/// administrator. Ends the user's sessions and revokes their API tokens.
#[utoipa::path(put, path = "/users/{name}/password", tag = "access", params(("name" = String, Path)), request_body = NewPassword,
    responses((status = 204), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub(super) async fn set_password(
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

/// The caller's tokens (every token for an administrator).
#[utoipa::path(get, path = "/tokens", tag = "access", responses((status = 200, body = [Token]), (status = 401, body = ErrorBody)))]
pub(super) async fn list_tokens(
    State(s): State<AppState>,
    Caller(p): Caller,
) -> ApiResult<Json<Vec<Token>>> {
    let owner = (!p.is_admin).then_some(p.user_id);
    Ok(Json(
        blocking(move || auth::list_tokens(&s.db, owner)).await?,
    ))
}

/// Creates an API token for the caller.
#[utoipa::path(post, path = "/tokens", tag = "access", request_body = NewToken,
    responses((status = 201, body = CreatedToken), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub(super) async fn create_token(
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
pub(super) async fn delete_token(
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
pub(super) async fn list_roles(
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
pub(super) async fn assign_role(
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
pub(super) async fn remove_role(
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

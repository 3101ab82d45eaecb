//! Notification targets (webhook, email) and their deliveries.

use super::*;

/// Notification targets (administrators only).
#[utoipa::path(get, path = "/notifications/targets", tag = "notifications", responses((status = 200, body = [Target]), (status = 401, body = ErrorBody)))]
pub(super) async fn list_targets(
    State(s): State<AppState>,
    Caller(p): Caller,
) -> ApiResult<Json<Vec<Target>>> {
    p.require_admin()?;
    Ok(Json(blocking(move || s.targets()).await?))
}

/// Adds a webhook or e-mail target with its rules.
#[utoipa::path(post, path = "/notifications/targets", tag = "notifications", request_body = NewTarget,
    responses((status = 201, body = Target), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub(super) async fn create_target(
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
pub(super) async fn delete_target(
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
pub(super) async fn target_deliveries(
    State(s): State<AppState>,
    Caller(p): Caller,
    P(id): P<i64>,
) -> ApiResult<Json<Vec<Delivery>>> {
    p.require_admin()?;
    Ok(Json(blocking(move || s.deliveries(id)).await?))
}

//! Alerts: the open and past alerts, acknowledging and resolving them.

use super::*;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AlertQuery {
    /// Only open alerts (default true).
    pub open: Option<bool>,
}

pub(super) fn alert_visible(p: &Principal, a: &Alert) -> bool {
    match &a.vault {
        Some(v) => p.sees(v),
        None => p.is_admin,
    }
}

/// Alerts on the vaults the caller can see (service-wide ones for
/// administrators), newest first.
#[utoipa::path(get, path = "/alerts", tag = "alerts", params(AlertQuery), responses((status = 200, body = [Alert]), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub(super) async fn list_alerts(
    State(s): State<AppState>,
    Caller(p): Caller,
    Q(q): Q<AlertQuery>,
) -> ApiResult<Json<Vec<Alert>>> {
    let open = q.open.unwrap_or(true);
    let all = blocking(move || crate::alerts::list(&s.db, open, 1000)).await?;
    Ok(Json(
        all.into_iter().filter(|a| alert_visible(&p, a)).collect(),
    ))
}

/// Resolves an alert by hand.
#[utoipa::path(post, path = "/alerts/{id}/resolve", tag = "alerts", params(("id" = i64, Path)),
    responses((status = 200, body = Alert), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub(super) async fn resolve_alert(
    State(s): State<AppState>,
    Caller(p): Caller,
    P(id): P<i64>,
) -> ApiResult<Json<Alert>> {
    Ok(Json(
        blocking(move || {
            let a = crate::alerts::get(&s.db, id)?;
            if !alert_visible(&p, &a) {
                return Err(Error::NotFound(format!("alert {id}")));
            }
            match &a.vault {
                Some(v) => p.require(v, Action::ManageVault)?,
                None => p.require_admin()?,
            }
            crate::alerts::resolve(&s.db, id, &p.name)
        })
        .await?,
    ))
}

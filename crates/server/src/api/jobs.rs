//! Jobs: listing, one job with its progress, its log, and cancelling.

use super::*;

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

pub(super) fn visible_job(
    s: &Service,
    p: &Principal,
    id: i64,
    action: Action,
) -> Result<Job, Error> {
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
pub(super) async fn list_jobs(
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
pub(super) async fn get_job(
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
pub(super) async fn job_logs(
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
pub(super) async fn cancel_job(
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

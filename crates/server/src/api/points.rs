//! Endpoints over the inside of a vault (see [`crate::points`]): browse a
//! point, download one of its files, undelete points, preview a policy,
//! list replicas; and the location test and protection switches the
//! console's pages need.
//!
//! A download streams: a blocking thread reads the file chunk by chunk
//! (each verified by the engine) into a small bounded channel that the
//! response body drains, so memory stays at a few chunks whatever the size.
//! Every check that can fail runs before the status line is sent; a chunk
//! that fails to verify afterwards aborts the response, so a client never
//! takes a truncated file for a whole one.

pub use coffer_api_types::location::LocationToTest;
pub use coffer_api_types::vault::{StopProtection, UndeletePoints, Undeleted};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use utoipa::IntoParams;

use super::{blocking, visible_item, ApiResult, AppState, Body, Caller, ErrorBody, P, Q};
use crate::auth::Action;
use crate::points::{Listing, LocationTest, PolicyPreview, VaultStatus};
use crate::policies::PolicySpec;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PathQuery {
    /// An absolute path as backed up; the point's root when absent.
    #[param(pattern = "^/")]
    pub path: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FileQuery {
    /// The file's absolute path as backed up.
    #[param(pattern = "^/.")]
    pub path: String,
}

/// One directory of a recovery point.
#[utoipa::path(get, path = "/vaults/{name}/points/{point}/entries", tag = "points",
    params(("name" = String, Path), ("point" = String, Path, pattern = "^[0-9a-f]+$", description = "A point id or a unique prefix of one (or latest)"), PathQuery),
    responses((status = 200, body = Listing), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody), (status = 502, body = ErrorBody)))]
pub(super) async fn point_entries(
    State(s): State<AppState>,
    Caller(p): Caller,
    P((name, point)): P<(String, String)>,
    Q(q): Q<PathQuery>,
) -> ApiResult<Json<Listing>> {
    p.require(&name, Action::Restore)?;
    Ok(Json(
        blocking(move || s.point_entries(&name, &point, q.path.as_deref().unwrap_or("/"))).await?,
    ))
}

/// A writer that hands what it is given to the response body.
struct ToBody(tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>);

impl std::io::Write for ToBody {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .blocking_send(Ok(Bytes::copy_from_slice(buf)))
            .map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::BrokenPipe, "download cancelled")
            })?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `filename*` of RFC 6266: UTF-8, percent-encoded outside the unreserved set.
fn disposition(name: &str) -> String {
    let mut encoded = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!("attachment; filename*=UTF-8''{encoded}")
}

/// Downloads one regular file of a recovery point.
#[utoipa::path(get, path = "/vaults/{name}/points/{point}/file", tag = "points",
    params(("name" = String, Path), ("point" = String, Path, pattern = "^[0-9a-f]+$", description = "A point id or a unique prefix of one (or latest)"), FileQuery),
    responses((status = 200, content_type = "application/octet-stream", body = Vec<u8>), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody), (status = 502, body = ErrorBody)))]
pub(super) async fn point_file(
    State(s): State<AppState>,
    Caller(p): Caller,
    P((name, point)): P<(String, String)>,
    Q(q): Q<FileQuery>,
) -> ApiResult<Response> {
    p.require(&name, Action::Restore)?;
    let who = p.name.clone();
    let file = blocking(move || s.file_to_send(&name, &point, &q.path)).await?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let headers = [
        (header::CONTENT_TYPE, "application/octet-stream".to_string()),
        (header::CONTENT_LENGTH, file.size.to_string()),
        (header::CONTENT_DISPOSITION, disposition(&file.name)),
        (header::CACHE_CONTROL, "no-store".to_string()),
        // A browser must save it, never render it (it may be HTML).
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_string()),
    ];
    tracing::info!(user = %who, path = %file.path, point = %file.point.id.to_hex(), "file downloaded");
    tokio::task::spawn_blocking(move || {
        let mut out = ToBody(tx.clone());
        let read = coffer_engine::restore::read_node(
            &file.vault,
            &file.index,
            &file.node,
            std::path::Path::new(&file.path),
            &mut out,
        );
        if let Err(e) = read {
            tracing::error!(path = %file.path, "download failed: {e}");
            let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
        }
    });
    let stream = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
    Ok((
        StatusCode::OK,
        headers,
        axum::body::Body::from_stream(stream),
    )
        .into_response())
}

/// Brings soft-deleted points back (they come back on hold).
#[utoipa::path(post, path = "/vaults/{name}/points/undelete", tag = "points", params(("name" = String, Path)), request_body = UndeletePoints,
    responses((status = 200, body = Undeleted), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody), (status = 502, body = ErrorBody)))]
pub(super) async fn undelete_points(
    State(s): State<AppState>,
    Caller(p): Caller,
    P(name): P<String>,
    Body(req): Body<UndeletePoints>,
) -> ApiResult<Json<Undeleted>> {
    p.require(&name, Action::DeleteData)?;
    let by = p.name.clone();
    let undeleted = blocking(move || s.undelete_points(&name, &req.points, &by)).await?;
    Ok(Json(Undeleted { undeleted }))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PreviewQuery {
    /// Preview as if this item followed the policy too.
    pub item: Option<String>,
}

/// What a policy would keep and expire, before it is saved.
#[utoipa::path(post, path = "/vaults/{name}/policies/{policy}/preview", tag = "policies",
    params(("name" = String, Path), ("policy" = String, Path), PreviewQuery), request_body = PolicySpec,
    responses((status = 200, body = PolicyPreview), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody), (status = 502, body = ErrorBody)))]
pub(super) async fn preview_policy(
    State(s): State<AppState>,
    Caller(p): Caller,
    P((name, policy)): P<(String, String)>,
    Q(q): Q<PreviewQuery>,
    Body(spec): Body<PolicySpec>,
) -> ApiResult<Json<PolicyPreview>> {
    p.require(&name, Action::View)?;
    Ok(Json(
        blocking(move || s.preview_policy(&name, &policy, &spec, q.item.as_deref())).await?,
    ))
}

/// The vault's immutability, soft-delete period, points, and replicas
/// with their lag.
#[utoipa::path(get, path = "/vaults/{name}/status", tag = "vaults", params(("name" = String, Path)),
    responses((status = 200, body = VaultStatus), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody), (status = 502, body = ErrorBody)))]
pub(super) async fn vault_status(
    State(s): State<AppState>,
    Caller(p): Caller,
    P(name): P<String>,
) -> ApiResult<Json<VaultStatus>> {
    p.require(&name, Action::View)?;
    Ok(Json(blocking(move || s.vault_status(&name)).await?))
}

/// The location test: list, write, read back, delete a probe object, and
/// report free space and whether a vault is already there. Nothing is kept.
#[utoipa::path(post, path = "/locations/test", tag = "vaults", request_body = LocationToTest,
    responses((status = 200, body = LocationTest), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub(super) async fn test_location(
    Caller(p): Caller,
    Body(req): Body<LocationToTest>,
) -> ApiResult<Json<LocationTest>> {
    // The probe writes at a path of this machine or reaches any host.
    p.require_server_access()?;
    Ok(Json(
        blocking(move || crate::points::test_location(&req.location, &req.credentials)).await?,
    ))
}

/// Stops protecting an item: no more scheduled backups; its points are
/// retained forever or soft-deleted.
#[utoipa::path(post, path = "/items/{name}/stop-protection", tag = "items", params(("name" = String, Path)), request_body = StopProtection,
    responses((status = 204), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 401, body = ErrorBody), (status = 502, body = ErrorBody)))]
pub(super) async fn stop_protection(
    State(s): State<AppState>,
    Caller(p): Caller,
    P(name): P<String>,
    Body(req): Body<StopProtection>,
) -> ApiResult<StatusCode> {
    let action = if req.delete_data {
        Action::DeleteData
    } else {
        Action::ManageItems
    };
    blocking(move || {
        visible_item(&s, &p, &name, action)?;
        s.stop_protection(&name, req.delete_data, &p.name)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Resumes an item's protection: its policy and schedule apply again.
#[utoipa::path(post, path = "/items/{name}/resume-protection", tag = "items", params(("name" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody), (status = 502, body = ErrorBody)))]
pub(super) async fn resume_protection(
    State(s): State<AppState>,
    Caller(p): Caller,
    P(name): P<String>,
) -> ApiResult<StatusCode> {
    blocking(move || {
        visible_item(&s, &p, &name, Action::ManageItems)?;
        s.resume_protection(&name)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

//! The agents' own protocol, under `/api/v1/agent/`: registration with a
//! one-time token, polls for work (held open up to 30 s, so an agent
//! behind NAT learns of a job at once without the service ever connecting
//! to it), progress reports and the end of a job, and the append-only
//! store its backups write through. Every call but registration carries
//! the agent's secret; these routes are for agents only and are left out
//! of the OpenAPI document that users' clients are built from.

use axum::body::Body as RawBody;
use axum::routing::{get, post};
use coffer_api_types::agent::{
    PollAnswer, PollRequest, ProgressAnswer, RegisterRequest, Registered, WorkDone, WorkProgress,
};
use coffer_engine::storage::ObjectInfo;
use futures_util::StreamExt;

use super::*;
use crate::agents::AgentIdentity;

/// The agent a call comes from.
pub struct AgentCaller(pub AgentIdentity);

impl FromRequestParts<AppState> for AgentCaller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let secret = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(|s| s.trim().to_string())
            .ok_or_else(|| {
                ApiError(Error::Unauthenticated(
                    "an agent's call needs its secret (Authorization: Bearer …)".into(),
                ))
            })?;
        let service = state.clone();
        let who = blocking(move || crate::agents::authenticate(&service, &secret)).await?;
        Ok(AgentCaller(who))
    }
}

pub fn routes() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/agent/register", post(register))
        .route("/agent/poll", post(poll))
        .route("/agent/jobs/{id}/progress", post(progress))
        .route("/agent/jobs/{id}/done", post(done))
        .route(
            "/agent/objects/{*path}",
            get(read_object).put(put_object).delete(refuse_delete),
        )
        .route("/agent/size/{*path}", get(object_size))
        .route("/agent/list/{*path}", get(list_objects))
        .route("/agent/restore/{id}/tree/{tree}", get(restore_tree))
        .route("/agent/restore/{id}/chunks", post(restore_chunks))
}

async fn register(
    State(s): State<AppState>,
    ClientAddress(address): ClientAddress,
    Body(req): Body<RegisterRequest>,
) -> ApiResult<(StatusCode, Json<Registered>)> {
    let registered = blocking(move || crate::agents::register(&s, &req, &address)).await?;
    Ok((StatusCode::CREATED, Json(registered)))
}

async fn poll(
    State(s): State<AppState>,
    AgentCaller(agent): AgentCaller,
    ClientAddress(address): ClientAddress,
    Body(req): Body<PollRequest>,
) -> ApiResult<Json<PollAnswer>> {
    let (service, who, host) = (s.clone(), agent.clone(), req.host.clone());
    let new_secret = blocking(move || {
        crate::agents::record_contact(&service, &who.name, &host, &address)?;
        crate::agents::issue_next_secret(&service, &who)
    })
    .await?;
    let _open = s.agent_hub.polling(&agent.name);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(req.wait_secs.min(30));
    loop {
        if let Some(work) = s.agent_hub.take(&agent.name) {
            return Ok(Json(PollAnswer {
                work: Some(work),
                new_secret,
            }));
        }
        let now = tokio::time::Instant::now();
        if now >= deadline || new_secret.is_some() {
            return Ok(Json(PollAnswer {
                work: None,
                new_secret,
            }));
        }
        s.agent_hub.offered(deadline - now).await;
    }
}

async fn progress(
    State(s): State<AppState>,
    AgentCaller(agent): AgentCaller,
    P(id): P<i64>,
    Body(report): Body<WorkProgress>,
) -> ApiResult<Json<ProgressAnswer>> {
    let cancel = blocking(move || {
        let (cancel, lines) = s.agent_hub.report(&agent.name, id, report)?;
        for (level, message) in lines {
            s.jobs.log(&s.db, id, &level, &message)?;
        }
        crate::agents::touch(&s, &agent.name)?;
        Ok(cancel)
    })
    .await?;
    Ok(Json(ProgressAnswer { cancel }))
}

async fn done(
    State(s): State<AppState>,
    AgentCaller(agent): AgentCaller,
    P(id): P<i64>,
    Body(done): Body<WorkDone>,
) -> ApiResult<StatusCode> {
    blocking(move || s.agent_hub.finish(&agent.name, id, done)).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn read_object(
    State(s): State<AppState>,
    AgentCaller(agent): AgentCaller,
    P(path): P<String>,
) -> ApiResult<Response> {
    let bytes = blocking(move || crate::agent_store::read(&s, &agent, &path)).await?;
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response())
}

#[derive(Serialize, Deserialize)]
pub struct SizeAnswer {
    pub size: Option<u64>,
}

async fn object_size(
    State(s): State<AppState>,
    AgentCaller(agent): AgentCaller,
    P(path): P<String>,
) -> ApiResult<Json<SizeAnswer>> {
    let size = blocking(move || crate::agent_store::size(&s, &agent, &path)).await?;
    Ok(Json(SizeAnswer { size }))
}

#[derive(Serialize, Deserialize)]
pub struct Listed {
    pub path: String,
    pub size: u64,
}

async fn list_objects(
    State(s): State<AppState>,
    AgentCaller(agent): AgentCaller,
    P(path): P<String>,
) -> ApiResult<Json<Vec<Listed>>> {
    let prefix = if path.ends_with('/') {
        path
    } else {
        format!("{path}/")
    };
    let listed: Vec<ObjectInfo> =
        blocking(move || crate::agent_store::list(&s, &agent, &prefix)).await?;
    Ok(Json(
        listed
            .into_iter()
            .map(|o| Listed {
                path: o.path,
                size: o.size,
            })
            .collect(),
    ))
}

/// The most chunks one request may ask for (each at most 4 MiB).
const CHUNKS_PER_REQUEST: usize = 16;

/// A tree of the point a restore job of this agent restores.
async fn restore_tree(
    State(s): State<AppState>,
    AgentCaller(agent): AgentCaller,
    P((id, tree)): P<(i64, String)>,
) -> ApiResult<Response> {
    let bytes = blocking(move || {
        let grant = s.agent_hub.grant(&agent.name, id)?;
        let tree = coffer_engine::ChunkId::parse(&tree)
            .filter(|t| grant.trees.contains(t))
            .ok_or_else(|| {
                Error::Forbidden(format!(
                    "{tree}: not a directory of the point this job restores"
                ))
            })?;
        Ok(grant.vault.read_tree(&grant.index, &tree)?.encode())
    })
    .await?;
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response())
}

/// Chunks of the point a restore job of this agent restores, as frames:
/// per chunk asked for, in order, a status byte (0 the plaintext follows,
/// 1 why it could not be read), a 32-bit little-endian length, the bytes.
async fn restore_chunks(
    State(s): State<AppState>,
    AgentCaller(agent): AgentCaller,
    P(id): P<i64>,
    Body(wanted): Body<Vec<String>>,
) -> ApiResult<Response> {
    if wanted.len() > CHUNKS_PER_REQUEST {
        return Err(ApiError(Error::invalid(
            "body",
            format!("at most {CHUNKS_PER_REQUEST} chunks per request"),
        )));
    }
    let bytes = blocking(move || {
        let grant = s.agent_hub.grant(&agent.name, id)?;
        let mut asked = Vec::with_capacity(wanted.len());
        for (n, hex) in wanted.iter().enumerate() {
            let chunk = coffer_engine::ChunkId::parse(hex)
                .filter(|c| grant.chunks.contains(c))
                .ok_or_else(|| {
                    Error::Forbidden(format!("{hex}: not a chunk of the point this job restores"))
                })?;
            asked.push((chunk, vec![(n, 0)]));
        }
        Ok(chunk_frames(&grant, asked))
    })
    .await?;
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response())
}

/// A frame's status (0 the plaintext, 1 why not) and body.
type Frame = (u8, Vec<u8>);

/// Reads the chunks asked for as the engine's restore does (grouped by
/// pack, neighbours in one ranged read) and frames them in the order asked.
fn chunk_frames(
    grant: &crate::agent_hub::RestoreGrant,
    asked: Vec<(coffer_engine::ChunkId, coffer_engine::restore::Targets)>,
) -> Vec<u8> {
    static POOL: std::sync::OnceLock<Option<rayon::ThreadPool>> = std::sync::OnceLock::new();
    let pool = POOL.get_or_init(|| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .thread_name(|n| format!("coffer-agent-restore-{n}"))
            .build()
            .ok()
    });
    let count = asked.len();
    let parts: std::sync::Mutex<Vec<Option<Frame>>> = std::sync::Mutex::new(vec![None; count]);
    let deliver = |targets: &coffer_engine::restore::Targets,
                   read: coffer_engine::Result<&[u8]>| {
        let part = match read {
            Ok(plain) => (0u8, plain.to_vec()),
            Err(e) => (1u8, e.to_string().into_bytes()),
        };
        // Each chunk asked for has one place: its position in the answer.
        if let Some((n, _)) = targets.first() {
            parts.lock().unwrap_or_else(|p| p.into_inner())[*n] = Some(part);
        }
    };
    let source = coffer_engine::restore::VaultSource {
        vault: &grant.vault,
        index: &grant.index,
    };
    match pool {
        Some(pool) => coffer_engine::restore::Source::deliver(&source, asked, pool, &deliver),
        // No thread for a pool: one chunk at a time, on this one.
        None => {
            for (id, targets) in asked {
                match grant.vault.read_blob(&grant.index, &id) {
                    Ok(plain) => deliver(&targets, Ok(&plain)),
                    Err(e) => deliver(&targets, Err(e)),
                }
            }
        }
    }
    let mut out = Vec::new();
    for part in parts.into_inner().unwrap_or_else(|p| p.into_inner()) {
        let (status, body) =
            part.unwrap_or_else(|| (1, b"the service did not read this chunk".to_vec()));
        out.push(status);
        out.extend_from_slice(&(body.len() as u32).to_le_bytes());
        out.extend_from_slice(&body);
    }
    out
}

async fn refuse_delete(AgentCaller(agent): AgentCaller, P(path): P<String>) -> ApiError {
    ApiError(Error::Forbidden(format!(
        "agent {} may not delete {path}: agents only add to a vault",
        agent.name
    )))
}

/// Takes an object: a pack as a stream (checked as it comes, visible only
/// once whole), anything else whole.
async fn put_object(
    State(s): State<AppState>,
    AgentCaller(agent): AgentCaller,
    P(path): P<String>,
    body: RawBody,
) -> ApiResult<StatusCode> {
    let mut stream = body.into_data_stream();
    if !path.starts_with("packs/") {
        let mut bytes = Vec::new();
        while let Some(piece) = stream.next().await {
            let piece = piece.map_err(|e| Error::invalid("body", e.to_string()))?;
            if bytes.len() + piece.len() > crate::agent_store::MAX_SMALL_OBJECT {
                return Err(ApiError(Error::invalid(
                    "body",
                    "too large for an object other than a pack",
                )));
            }
            s.bandwidth.pass(&agent.name, piece.len()).await;
            bytes.extend_from_slice(&piece);
        }
        blocking(move || crate::agent_store::put_small(&s, &agent, &path, bytes)).await?;
        return Ok(StatusCode::NO_CONTENT);
    }
    // The upload runs on a blocking thread (storage is synchronous); the
    // body's pieces reach it through a channel of two, so a slow location
    // slows the agent down instead of filling memory.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(2);
    let (service, name) = (s.clone(), agent.name.clone());
    let upload = tokio::task::spawn_blocking(move || {
        let mut upload = crate::agent_store::PackUpload::begin(&service, &agent, &path)?;
        while let Some(piece) = rx.blocking_recv() {
            upload.write(piece)?;
        }
        upload.finish()
    });
    while let Some(piece) = stream.next().await {
        let piece = piece.map_err(|e| Error::invalid("body", e.to_string()))?;
        // The next piece is read only once the limits allow this one.
        s.bandwidth.pass(&name, piece.len()).await;
        if tx.send(piece).await.is_err() {
            // The upload stopped: its error is the answer.
            break;
        }
    }
    drop(tx);
    upload
        .await
        .map_err(|e| Error::Internal(format!("upload task failed: {e}")))??;
    Ok(StatusCode::NO_CONTENT)
}

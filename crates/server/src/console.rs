//! The administration console: three static files compiled into the
//! binary, so `coffer serve` serves it on the API's port with no build step
//! and no files to install. It is a client of the public REST API only (see
//! `console/app.js`); the strict content security policy keeps the page to
//! its own script and the API, whatever a stored name or message contains.

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

const INDEX: &str = include_str!("../console/index.html");
const APP: &str = include_str!("../console/app.js");
const STYLE: &str = include_str!("../console/style.css");

const POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

fn file(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
}

/// The console's routes: the page at `/` and its script and style.
pub fn routes<S: Clone + Send + Sync + 'static>() -> axum::Router<S> {
    axum::Router::new()
        .route(
            "/",
            get(|| async { file("text/html; charset=utf-8", INDEX) }),
        )
        .route(
            "/console/app.js",
            get(|| async { file("text/javascript; charset=utf-8", APP) }),
        )
        .route(
            "/console/style.css",
            get(|| async { file("text/css; charset=utf-8", STYLE) }),
        )
}

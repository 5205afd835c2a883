//! The CloudWatch Logs JSON API (awsJson1_1, `X-Amz-Target: Logs_20140328.<Op>`) over HTTP,
//! backed by logwell-storage.

pub mod config;
pub mod lookup_tables;
mod ops;
pub mod queries;
pub mod tokens;

pub use config::ServerConfig;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use logwell_model::{ApiError, ErrorKind};
use logwell_storage::Engine;
use std::future::Future;
use std::sync::Arc;

/// What every request handler can reach.
pub struct App {
    pub engine: Engine,
    pub region: String,
    pub account_id: String,
    pub queries: Arc<queries::Queries>,
}

pub type SharedApp = Arc<App>;

impl App {
    /// Opens the storage a config describes (replaying its WAL) and builds the app around it.
    pub async fn open(config: &ServerConfig) -> Result<SharedApp, logwell_storage::OpenError> {
        let engine = Engine::open(config.storage.clone()).await?;
        let querier = logwell_query::Querier::new(
            engine.clone(),
            logwell_query::QueryConfig {
                memory_limit: config.query.memory_limit,
                spill_dir: config.query.spill_dir.clone(),
                account_id: config.account_id.clone(),
                ..Default::default()
            },
        )
        .map_err(|e| logwell_storage::OpenError::Catalog(format!("query engine: {e}")))?;
        let queries = Arc::new(
            queries::Queries::open(
                querier,
                config.storage.data_dir.clone(),
                std::time::Duration::from_secs(config.query.timeout_secs),
                &format!("arn:aws:logs:{}:{}:", config.region, config.account_id),
            )
            .await
            .map_err(|e| logwell_storage::OpenError::Catalog(format!("settings: {e}")))?,
        );
        Ok(Arc::new(App {
            engine,
            region: config.region.clone(),
            account_id: config.account_id.clone(),
            queries,
        }))
    }
}

const TARGET_PREFIX: &str = "Logs_20140328.";
const JSON_CT: &str = "application/x-amz-json-1.1";

/// The HTTP routes: `POST /` carries every operation.
pub fn router(app: SharedApp) -> Router {
    Router::new()
        .route("/", any(handle))
        .route("/health", get(|| async { "ok" }))
        // JSON escaping can make a 1 MiB batch several times larger on the wire.
        .layer(DefaultBodyLimit::max(16 << 20))
        .with_state(app)
}

fn error_response(e: &ApiError) -> Response {
    let status = StatusCode::from_u16(e.kind.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
    let mut body = serde_json::json!({"__type": e.kind.type_name(), "message": e.message});
    if let Some((start, end)) = e.location {
        body["queryCompileError"] = serde_json::json!({
            "location": {"startCharOffset": start, "endCharOffset": end},
            "message": e.message,
        });
    }
    let mut r = (status, body.to_string()).into_response();
    let h = r.headers_mut();
    h.insert("content-type", HeaderValue::from_static(JSON_CT));
    if let Ok(v) = HeaderValue::from_str(e.kind.type_name()) {
        h.insert("x-amzn-errortype", v);
    }
    r
}

fn request_id() -> HeaderValue {
    HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()).expect("uuid is a valid header")
}

async fn handle(State(app): State<SharedApp>, headers: HeaderMap, body: Bytes) -> Response {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let result = match target.strip_prefix(TARGET_PREFIX) {
        Some(op) => ops::dispatch(&app, op, &body).await,
        None if target.is_empty() => Err(ApiError::new(
            ErrorKind::UnknownOperation,
            "Missing X-Amz-Target header: expected Logs_20140328.<Operation>",
        )),
        None => Err(ApiError::new(
            ErrorKind::UnknownOperation,
            format!("Unknown X-Amz-Target '{target}'"),
        )),
    };
    let mut response = match result {
        Ok(json) => {
            let mut r = (StatusCode::OK, json).into_response();
            r.headers_mut()
                .insert("content-type", HeaderValue::from_static(JSON_CT));
            r
        }
        Err(e) => {
            if e.kind == ErrorKind::ServiceUnavailable {
                tracing::warn!(op = target, error = %e, "request failed");
            }
            error_response(&e)
        }
    };
    response
        .headers_mut()
        .insert("x-amzn-requestid", request_id());
    response
}

/// Runs the API on `listener` until `shutdown` resolves, then flushes the store.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: SharedApp,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let engine = app.engine.clone();
    axum::serve(listener, router(app))
        .with_graceful_shutdown(shutdown)
        .await?;
    engine
        .shutdown()
        .await
        .map_err(|e| anyhow::anyhow!("final flush failed: {e}"))?;
    Ok(())
}

//! The CloudWatch Logs JSON API (awsJson1_1, `X-Amz-Target: Logs_20140328.<Op>`) over HTTP,
//! backed by logwell-storage.

mod audit;
mod authorize;
mod background;
pub mod config;
mod data_protection;
mod kms_keys;
mod live_tail;
pub mod lookup_tables;
pub mod operations;
mod ops;
pub mod queries;
pub mod resource_policies;
mod settings;
mod subscriptions;
pub mod telemetry;
mod tenants;
pub mod tls;
pub mod tokens;
mod transport;

pub use config::{Limits, ServerConfig};
pub use logwell_storage::OpenOptions;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use logwell_model::{ApiError, ErrorKind};
use logwell_storage::Engine;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use transport::{error_response, json_response, throttled, with_request_id, TARGET_PREFIX};

/// Largest request body (JSON escaping can make a 1 MiB batch several times larger on the wire).
const MAX_BODY_BYTES: usize = 16 << 20;

/// What requests may hold at once (see [`Limits`]).
pub struct RequestLimits {
    requests: Arc<Semaphore>,
    bytes: Arc<Semaphore>,
    max_bytes: usize,
    body_timeout: Duration,
    header_timeout: Duration,
}

impl RequestLimits {
    fn new(l: &Limits) -> Self {
        let max_bytes = l
            .max_request_bytes_in_flight
            .clamp(MAX_BODY_BYTES, u32::MAX as usize);
        RequestLimits {
            requests: Arc::new(Semaphore::new(l.max_concurrent_requests.max(1))),
            bytes: Arc::new(Semaphore::new(max_bytes)),
            max_bytes,
            body_timeout: Duration::from_secs_f64(l.body_read_timeout_secs.max(0.001)),
            header_timeout: Duration::from_secs_f64(l.header_read_timeout_secs.max(0.001)),
        }
    }
}

/// What every request handler can reach.
pub struct App {
    pub engine: Engine,
    pub region: String,
    pub account_id: String,
    pub queries: Arc<queries::Queries>,
    pub tails: logwell_tail::Tails,
    pub delivery: Arc<logwell_delivery::Delivery>,
    pub exports: Arc<logwell_delivery::Exports>,
    pub metric_filters: Arc<logwell_metrics::MetricFilters>,
    pub destinations: Arc<logwell_delivery::Destinations>,
    pub telemetry: Arc<telemetry::Telemetry>,
    pub limits: RequestLimits,
    /// Who sends each request (SigV4, when credentials are configured).
    pub auth: logwell_auth::Authenticator,
    pub resource_policies: Arc<resource_policies::ResourcePolicies>,
    /// The audit trail (written only when signatures are verified).
    pub audit: audit::Audit,
    /// The other accounts this server hosts (set on the server's own account's app).
    pub tenants: tenants::Tenants,
}

pub type SharedApp = Arc<App>;

impl App {
    /// Opens the storage a config describes (replaying its WAL) and builds the app around it.
    pub async fn open(config: &ServerConfig) -> Result<SharedApp, logwell_storage::OpenError> {
        App::open_with(config, logwell_storage::OpenOptions::default()).await
    }

    /// [`App::open`] with storage options (`--recover`).
    pub async fn open_with(
        config: &ServerConfig,
        options: logwell_storage::OpenOptions,
    ) -> Result<SharedApp, logwell_storage::OpenError> {
        config
            .check_hosted_accounts()
            .map_err(logwell_storage::OpenError::Catalog)?;
        let home = App::open_account(config, options.clone()).await?;
        let mut tenants = std::collections::BTreeMap::new();
        for id in &config.hosted_accounts {
            let app = App::open_account(&config.for_account(id), options.clone()).await?;
            tenants.insert(id.clone(), app);
        }
        let _ = home.tenants.set(tenants);
        // Each account's subscriptions reach the other hosted accounts' destinations in-process.
        let all = home.all_accounts();
        for app in &all {
            app.delivery.set_local_destinations(
                all.iter()
                    .filter(|o| o.account_id != app.account_id)
                    .map(|o| (o.account_id.clone(), o.destinations.clone()))
                    .collect(),
            );
        }
        Ok(home)
    }

    /// One account's app.
    async fn open_account(
        config: &ServerConfig,
        options: logwell_storage::OpenOptions,
    ) -> Result<SharedApp, logwell_storage::OpenError> {
        let mut options = options;
        if options.key_service.is_none() {
            options.key_service = logwell_kms::service(&config.kms, &config.region)
                .map_err(logwell_storage::OpenError::Catalog)?;
        }
        let engine = Engine::open_with(config.storage.clone(), options).await?;
        let telemetry = Arc::new(telemetry::Telemetry::default());
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
                queries::KeepLimits {
                    queries: config.limits.max_kept_queries,
                    bytes: config.limits.max_kept_result_bytes,
                },
                telemetry.clone(),
            )
            .await
            .map_err(|e| logwell_storage::OpenError::Catalog(format!("settings: {e}")))?,
        );
        let tails = logwell_tail::Tails::new(
            engine.clone(),
            config.account_id.clone(),
            logwell_tail::TailConfig {
                max_sessions: config.limits.max_live_tail_sessions,
                ..Default::default()
            },
        );
        let background = background::runtime(config.limits.background_nice);
        let delivery = logwell_delivery::Delivery::start(
            engine.clone(),
            config.account_id.clone(),
            config.delivery.clone(),
            config.storage.clone(),
            background.clone(),
        );
        let exports = logwell_delivery::Exports::start(
            engine.clone(),
            delivery.buckets(),
            config.delivery.export_file_bytes,
            background.clone(),
        )
        .await
        .map_err(|e| logwell_storage::OpenError::Catalog(format!("export tasks: {e}")))?;
        let destinations = delivery
            .destinations(config.region.clone())
            .await
            .map_err(|e| logwell_storage::OpenError::Catalog(format!("destinations: {e}")))?;
        let metric_filters =
            logwell_metrics::MetricFilters::start(engine.clone(), background.clone())
                .await
                .map_err(|e| logwell_storage::OpenError::Catalog(format!("metric filters: {e}")))?;
        let auth =
            logwell_auth::Authenticator::new(&config.auth, &config.region, &config.account_id)
                .map_err(logwell_storage::OpenError::Catalog)?;
        let resource_policies = Arc::new(
            resource_policies::ResourcePolicies::open(engine.clone(), &config.storage.data_dir)
                .await
                .map_err(|e| {
                    logwell_storage::OpenError::Catalog(format!("resource policies: {e}"))
                })?,
        );
        let audit = audit::Audit::start(engine.clone(), &background);
        Ok(Arc::new(App {
            audit,
            auth,
            resource_policies,
            destinations,
            metric_filters,
            telemetry,
            tails,
            delivery,
            exports,
            engine,
            region: config.region.clone(),
            account_id: config.account_id.clone(),
            queries,
            limits: RequestLimits::new(&config.limits),
            tenants: Default::default(),
        }))
    }
}

/// The HTTP routes: `POST /` carries every operation.
pub fn router(app: SharedApp) -> Router {
    Router::new()
        .route("/", any(handle))
        .route("/health", get(|| async { "ok" }))
        .route("/live-tail", get(live_tail_sse))
        .route("/metrics", get(metrics))
        .merge(logwell_console::routes())
        .with_state(app)
}

/// A GET request's parts that authentication and authorization read.
struct GetRequest {
    method: axum::http::Method,
    uri: axum::http::Uri,
    extensions: axum::http::Extensions,
    headers: HeaderMap,
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for GetRequest {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(GetRequest {
            method: parts.method.clone(),
            uri: parts.uri.clone(),
            extensions: parts.extensions.clone(),
            headers: parts.headers.clone(),
        })
    }
}

impl GetRequest {
    /// The app of the (signed, when credentials are configured) caller's account, if the
    /// caller may do `operation` there.
    fn admit(&self, app: &SharedApp, operation: &str) -> Result<SharedApp, ApiError> {
        let caller = authenticate(app, &self.method, &self.uri, &self.headers, b"")?;
        let app = tenants::route(app, &caller, operation, b"")?;
        admit(&app, &caller, operation, b"", source_ip(&self.extensions))?;
        Ok(app)
    }
}

/// `GET /live-tail`: a live tail as Server-Sent Events (see `live_tail::server_sent_events`).
async fn live_tail_sse(State(app): State<SharedApp>, request: GetRequest) -> Response {
    let response = match request
        .admit(&app, "StartLiveTail")
        .and_then(|app| live_tail::server_sent_events(&app, request.uri.query().unwrap_or("")))
    {
        Ok(r) => r,
        Err(e) => error_response(&e),
    };
    with_request_id(response)
}

/// `GET /metrics`, for callers of this server's account (any caller without credentials); its
/// action is logwell's own `logs:GetMetrics` (no AWS operation reads it).
async fn metrics(State(app): State<SharedApp>, request: GetRequest) -> Response {
    match request.admit(&app, "GetMetrics") {
        Ok(app) => telemetry::metrics(State(app)).await,
        Err(e) => with_request_id(error_response(&e)),
    }
}

/// Reads a request body within the limits: a permit for its bytes first (ThrottlingException when
/// the server already holds its budget), then the bytes, within the body timeout.
async fn read_body(
    limits: &RequestLimits,
    headers: &HeaderMap,
    body: Body,
) -> Result<(Bytes, tokio::sync::OwnedSemaphorePermit), Response> {
    use http_body_util::BodyExt;
    let declared = headers
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES) {
        return Err((StatusCode::PAYLOAD_TOO_LARGE, "request body too large").into_response());
    }
    // A request holds its body and, while it is written, a WAL record about as large.
    let want = (declared.unwrap_or(MAX_BODY_BYTES) * 2).clamp(1, limits.max_bytes) as u32;
    let permit = limits
        .bytes
        .clone()
        .try_acquire_many_owned(want)
        .map_err(|_| error_response(&throttled()))?;
    let limited = http_body_util::Limited::new(body, MAX_BODY_BYTES);
    match tokio::time::timeout(limits.body_timeout, limited.collect()).await {
        Ok(Ok(collected)) => Ok((collected.to_bytes(), permit)),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            Err((StatusCode::PAYLOAD_TOO_LARGE, "request body too large").into_response())
        }
        Ok(Err(_)) => {
            Err((StatusCode::BAD_REQUEST, "request body could not be read").into_response())
        }
        Err(_) => Err((
            StatusCode::REQUEST_TIMEOUT,
            "request body not received in time",
        )
            .into_response()),
    }
}

async fn handle(
    State(app): State<SharedApp>,
    method: axum::http::Method,
    uri: axum::http::Uri,
    extensions: axum::http::Extensions,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Ok(_request) = app.limits.requests.clone().try_acquire_owned() else {
        return with_request_id(error_response(&throttled()));
    };
    let (body, _bytes) = match read_body(&app.limits, &headers, body).await {
        Ok(b) => b,
        Err(r) => return with_request_id(r),
    };
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let started = std::time::Instant::now();
    let operation = target
        .strip_prefix(TARGET_PREFIX)
        .and_then(operations::find)
        .map_or("unknown", |op| op.name);
    let caller = authenticate(&app, &method, &uri, &headers, &body);
    // The app of the account the request acts in (this one, or a hosted account's).
    let served = caller
        .as_ref()
        .map_err(Clone::clone)
        .and_then(|caller| tenants::route(&app, caller, operation, &body));
    let app = served.as_ref().map_or_else(|_| app.clone(), Clone::clone);
    let allowed = served
        .and(caller.clone())
        .and_then(|caller| admit(&app, &caller, operation, &body, source_ip(&extensions)));
    let result = match (allowed, target.strip_prefix(TARGET_PREFIX)) {
        (Err(e), _) => Err(e),
        (Ok(()), Some(op)) => operations::call(app.clone(), op, body).await,
        (Ok(()), None) if target.is_empty() => Err(ApiError::new(
            ErrorKind::UnknownOperation,
            "Missing X-Amz-Target header: expected Logs_20140328.<Operation>",
        )),
        (Ok(()), None) => Err(ApiError::new(
            ErrorKind::UnknownOperation,
            format!("Unknown X-Amz-Target '{target}'"),
        )),
    };
    app.telemetry.request(
        operation,
        result
            .as_ref()
            .map_or_else(|e| e.kind.type_name(), |_| "ok"),
        started.elapsed().as_secs_f64(),
    );
    let response = match result {
        Ok(operations::Output::Json(json)) => json_response(json),
        Ok(operations::Output::Stream(stream)) => stream,
        Err(e) => {
            if e.kind == ErrorKind::ServiceUnavailable {
                tracing::warn!(op = target, error = %e, "request failed");
            }
            error_response(&e)
        }
    };
    let response = with_request_id(response);
    if app.auth.verifies() {
        let caller = caller.ok();
        let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok());
        app.audit.record(audit::Entry {
            account_id: caller.as_ref().map(|c| c.account_id.as_str()),
            principal: caller.as_ref().map(|c| c.principal_arn.as_str()),
            access_key_id: caller.as_ref().and_then(|c| c.access_key_id.as_deref()),
            action: &format!("logs:{operation}"),
            source_ip: source_ip(&extensions),
            error: header("x-amzn-errortype"),
            request_id: header("x-amzn-requestid").unwrap_or_default(),
        });
    }
    response
}

/// The verified caller of a request (with credentials configured, its SigV4 signature must
/// verify; without, every request is the server's account).
fn authenticate(
    app: &App,
    method: &axum::http::Method,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<logwell_auth::Caller, ApiError> {
    let request = logwell_auth::Request {
        method: method.as_str(),
        path: uri.path(),
        query: uri.query().unwrap_or(""),
        // Copied only when they are read: without credentials nothing is verified.
        headers: if app.auth.verifies() {
            headers
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect()
        } else {
            Vec::new()
        },
        body,
    };
    app.auth.authenticate(&request, logwell_model::now_millis())
}

/// The address a request came from (set per connection by `serve`).
fn source_ip(extensions: &axum::http::Extensions) -> Option<std::net::IpAddr> {
    extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip())
}

/// What a caller may call. This server holds one account's resources: a principal of this
/// account may do what its identity policy (none: everything) or a resource policy allows; a
/// principal of another account, what a resource policy allows, and deliver to this account's
/// destinations (whose own policies decide) as itself. An explicit deny anywhere wins.
fn admit(
    app: &App,
    caller: &logwell_auth::Caller,
    operation: &str,
    body: &[u8],
    source_ip: Option<std::net::IpAddr>,
) -> Result<(), ApiError> {
    let home = caller.account_id == app.account_id;
    if home && caller.policy.is_none() && app.resource_policies.is_empty() {
        return Ok(());
    }
    if !home && operation == "LogwellDeliverToDestination" {
        let source = serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v["sourceAccount"].as_str().map(String::from));
        if source.as_deref() == Some(caller.account_id.as_str()) {
            return Ok(());
        }
    }
    authorize::check(app, caller, home, operation, body, source_ip)?;
    // Seeing what a data protection policy masks is an action of its own.
    if let Some(resources) = data_protection::unmask_resources(app, operation, body) {
        authorize::check_action(app, caller, home, "Unmask", resources, source_ip)?;
    }
    Ok(())
}

/// Runs the API on `listener` until `shutdown` resolves, then flushes the store.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: SharedApp,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    serve_with(listener, app, None, shutdown).await
}

/// [`serve`], speaking TLS on every connection when given an acceptor ([`tls::acceptor`]).
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    app: SharedApp,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let engine = app.engine.clone();
    let stopping = app.clone();
    let header_timeout = app.limits.header_timeout;
    let service = hyper_util::service::TowerToHyperService::new(router(app));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    // A connection's read buffer stays small (bodies stream through it), so many connections
    // cannot hold much between them.
    http.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(header_timeout)
        .max_buf_size(64 << 10);
    tokio::pin!(shutdown);
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        // Each request carries the address it came from (aws:SourceIp in policies).
        let per_connection = {
            let service = service.clone();
            hyper::service::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
                request
                    .extensions_mut()
                    .insert(axum::extract::ConnectInfo(remote));
                hyper::service::Service::call(&service, request)
            })
        };
        let http = http.clone();
        let watcher = graceful.watcher();
        match tls.clone() {
            None => {
                let conn =
                    http.serve_connection(hyper_util::rt::TokioIo::new(stream), per_connection);
                let conn = watcher.watch(conn);
                tokio::spawn(async move {
                    let _ = conn.await;
                });
            }
            Some(acceptor) => {
                tokio::spawn(async move {
                    // The handshake gets the time a request's headers get: a peer that opens a
                    // connection and says nothing cannot hold it.
                    let stream =
                        match tokio::time::timeout(header_timeout, acceptor.accept(stream)).await {
                            Ok(Ok(s)) => s,
                            Ok(Err(e)) => {
                                tracing::debug!(%remote, error = %e, "TLS handshake failed");
                                return;
                            }
                            Err(_) => return,
                        };
                    let conn =
                        http.serve_connection(hyper_util::rt::TokioIo::new(stream), per_connection);
                    let _ = watcher.watch(conn).await;
                });
            }
        }
    }
    // Live tails end; in-flight requests finish (bounded by the body timeout); idle
    // connections close.
    let accounts = stopping.all_accounts();
    for app in &accounts {
        app.tails.close();
        app.delivery.close();
    }
    let drain = header_timeout.max(Duration::from_secs(5)) * 2;
    if tokio::time::timeout(drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after {drain:?}; closing them");
    }
    drop(engine);
    // Every account is flushed, whatever became of the others.
    let mut failed = Vec::new();
    for app in accounts {
        if let Err(e) = app.engine.shutdown().await {
            failed.push(format!("account {}: {e}", app.account_id));
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(anyhow::anyhow!("final flush failed: {}", failed.join("; ")))
    }
}

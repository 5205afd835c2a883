//! Destinations: what each kind of destination ARN is delivered to, as configured, and how a
//! message reaches it.

use crate::buckets::{BucketConfig, Buckets};
use crate::firehose::{FirehoseBuffer, FirehoseConfig};
use base64::Engine as _;
use bytes::Bytes;
use flate2::write::GzEncoder;
use logwell_model::api_subscriptions::SubscriptionMessage;
use logwell_model::ApiError;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

/// `[delivery]`: where destination ARNs lead, and how delivery paces itself.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DeliveryConfig {
    /// Lambda function ARN -> the URL of an HTTP endpoint that receives what the function would:
    /// `{"awslogs": {"data": "<base64 of gzip of the JSON message>"}}`, POSTed.
    pub lambda: BTreeMap<String, String>,
    /// Kinesis stream ARN -> `nats://HOST:PORT/SUBJECT`: each record is published with
    /// JetStream to SUBJECT (which a JetStream stream must capture), its data the gzip-compressed
    /// JSON message, its partition key in the `Kinesis-Partition-Key` header.
    pub kinesis: BTreeMap<String, String>,
    /// Firehose delivery stream ARN -> where and how it writes objects, as Firehose's S3
    /// delivery does.
    pub firehose: BTreeMap<String, FirehoseConfig>,
    /// Account id -> the URL of the logwell server holding that account's destinations: a
    /// subscription to `arn:aws:logs:REGION:ACCOUNT:destination:NAME` delivers there, subject to
    /// the destination's access policy.
    pub accounts: BTreeMap<String, AccountServer>,
    /// Bucket name -> where it is. A bucket not listed here is, with an S3 store, the bucket of
    /// that name on the same S3 service; with the local store, the directory
    /// `<data_dir>/buckets/NAME`, which must exist.
    pub buckets: BTreeMap<String, BucketConfig>,
    /// Events read per delivery round.
    pub batch_events: usize,
    /// Export tasks start a new gzip file of a stream after this many bytes of text.
    pub export_file_bytes: usize,
    /// Largest message, in bytes of event messages (CloudWatch's are up to about 1 MB).
    pub message_bytes: usize,
    /// A destination must answer within this many seconds.
    pub request_timeout_secs: f64,
    /// Retry waits start here and double up to the maximum (milliseconds).
    pub backoff_min_ms: u64,
    pub backoff_max_ms: u64,
    /// PEM certificates trusted besides the system's for HTTPS targets (Lambda URLs, other
    /// accounts' servers with self-signed certificates).
    pub ca_bundle: Option<std::path::PathBuf>,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            lambda: BTreeMap::new(),
            kinesis: BTreeMap::new(),
            firehose: BTreeMap::new(),
            accounts: BTreeMap::new(),
            buckets: BTreeMap::new(),
            batch_events: 100_000,
            export_file_bytes: 64 << 20,
            message_bytes: 1 << 20,
            request_timeout_secs: 30.0,
            backoff_min_ms: 100,
            backoff_max_ms: 30_000,
            ca_bundle: None,
        }
    }
}

impl DeliveryConfig {
    /// Fails when `ca_bundle` names a file that holds no usable certificate.
    pub fn check(&self) -> Result<(), String> {
        logwell_client::http_builder(self.ca_bundle.as_deref())
            .map(|_| ())
            .map_err(|e| format!("[delivery] {e}"))
    }

    pub(crate) fn request_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.request_timeout_secs.max(0.001))
    }
    pub(crate) fn backoff_min(&self) -> Duration {
        Duration::from_millis(self.backoff_min_ms.max(1))
    }
    pub(crate) fn backoff_max(&self) -> Duration {
        Duration::from_millis(self.backoff_max_ms.max(self.backoff_min_ms).max(1))
    }

    /// The destination `arn` leads to, or CloudWatch's error for that kind of destination.
    pub fn target(&self, arn: &str) -> Result<Target, ApiError> {
        let kind = Kind::of(arn);
        let found = match kind {
            Kind::Lambda => self
                .lambda
                .get(arn)
                .map(|url| Target::Lambda { url: url.clone() }),
            Kind::Kinesis => match self.kinesis.get(arn) {
                Some(url) => {
                    let (server, subject) = nats_url(url).ok_or_else(|| {
                        ApiError::invalid(format!("delivery.kinesis: bad URL {url}"))
                    })?;
                    Some(Target::Kinesis { server, subject })
                }
                None => None,
            },
            Kind::Firehose => self.firehose.get(arn).map(|f| Target::Firehose {
                name: arn.rsplit('/').next().unwrap_or(arn).to_string(),
                config: f.clone(),
            }),
            Kind::Destination => {
                let mut parts = arn.splitn(6, ':');
                let account = parts.nth(4).unwrap_or("");
                let name = arn.rsplit_once(":destination:").map(|(_, n)| n);
                let region = arn.split(':').nth(3).unwrap_or_default();
                match (self.accounts.get(account), name) {
                    (Some(server), Some(name)) if !name.is_empty() => Some(Target::Destination {
                        server: server.settings(region),
                        account: account.to_string(),
                        name: name.to_string(),
                    }),
                    _ => None,
                }
            }
            Kind::Other => None,
        };
        found.ok_or_else(|| kind.unreachable())
    }
}

/// `[delivery.accounts]`: the logwell server holding an account's destinations, as its URL or,
/// when that server verifies signatures, with the access key this server signs deliveries with
/// (a key of the sending account, which the recipient's credentials list).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum AccountServer {
    Url(String),
    Signed {
        url: String,
        access_key_id: String,
        secret_access_key: String,
    },
}

impl AccountServer {
    /// Client settings for a destination in `region`.
    fn settings(&self, region: &str) -> logwell_client::Settings {
        let (endpoint, credentials) = match self {
            AccountServer::Url(url) => (url.clone(), None),
            AccountServer::Signed {
                url,
                access_key_id,
                secret_access_key,
            } => (
                url.clone(),
                Some(logwell_client::Credentials {
                    access_key_id: access_key_id.clone(),
                    secret_access_key: secret_access_key.clone(),
                    session_token: None,
                }),
            ),
        };
        logwell_client::Settings {
            endpoint,
            region: region.to_string(),
            credentials,
            // The shared HTTP client carries `[delivery] ca_bundle`.
            ca_bundle: None,
        }
    }
}

/// The HTTP client deliveries share. A CA bundle that cannot be read is reported (start-up
/// checks it first with [`DeliveryConfig::check`]) and the system's roots are used alone.
fn http_client(config: &DeliveryConfig) -> reqwest::Client {
    let builder = logwell_client::http_builder(config.ca_bundle.as_deref()).unwrap_or_else(|e| {
        tracing::error!(error = %e, "[delivery] ca_bundle");
        reqwest::Client::builder()
    });
    builder
        .timeout(config.request_timeout())
        .build()
        .expect("an HTTP client builds")
}

/// `nats://HOST:PORT/SUBJECT` -> (`nats://HOST:PORT`, SUBJECT).
fn nats_url(url: &str) -> Option<(String, String)> {
    let rest = url.strip_prefix("nats://")?;
    let (host, subject) = rest.split_once('/')?;
    (!host.is_empty() && !subject.is_empty())
        .then(|| (format!("nats://{host}"), subject.to_string()))
}

/// The kind of destination an ARN names.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Kind {
    Lambda,
    Kinesis,
    Firehose,
    /// A CloudWatch Logs destination (cross-account).
    Destination,
    Other,
}

impl Kind {
    pub(crate) fn of(arn: &str) -> Kind {
        let service = arn.split(':').nth(2).unwrap_or("");
        match service {
            "lambda" => Kind::Lambda,
            "kinesis" => Kind::Kinesis,
            "firehose" => Kind::Firehose,
            "logs" if arn.contains(":destination:") => Kind::Destination,
            _ => Kind::Other,
        }
    }

    /// CloudWatch's error when the test message cannot be delivered.
    pub(crate) fn unreachable(self) -> ApiError {
        ApiError::invalid(match self {
            Kind::Lambda => "Could not execute the lambda function. Make sure you have given CloudWatch Logs permission to execute your function.",
            Kind::Kinesis => "Could not deliver test message to specified Kinesis stream. Verify the stream exists ",
            Kind::Firehose => "Could not deliver test message to specified Firehose stream. Check if the given Firehose stream is in ACTIVE state.",
            Kind::Destination | Kind::Other => "Could not deliver test message to specified destination. Check if the destination is valid.",
        })
    }

    /// What the test message's text names.
    pub(crate) fn health_check_text(self) -> &'static str {
        match self {
            Kind::Kinesis => "CWL CONTROL MESSAGE: Checking health of destination Kinesis stream.",
            Kind::Firehose => "CWL CONTROL MESSAGE: Checking health of destination Firehose.",
            _ => "CWL CONTROL MESSAGE: Checking health of destination.",
        }
    }
}

/// Where a subscription's messages go.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// An HTTP endpoint standing in for a Lambda function.
    Lambda { url: String },
    /// A NATS JetStream subject standing in for a Kinesis data stream.
    Kinesis { server: String, subject: String },
    /// Objects in a bucket, as Firehose's S3 delivery writes them.
    Firehose {
        name: String,
        config: FirehoseConfig,
    },
    /// A destination of the logwell server at `url` (another account's).
    Destination {
        server: logwell_client::Settings,
        account: String,
        name: String,
    },
    /// A destination of another account this server hosts, delivered to in-process.
    LocalDestination { at: LocalDestinations, name: String },
}

/// Another hosted account's destinations.
#[derive(Clone)]
pub struct LocalDestinations(pub Arc<crate::Destinations>);

impl std::fmt::Debug for LocalDestinations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LocalDestinations")
    }
}

impl PartialEq for LocalDestinations {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// Connections shared by every worker: one HTTP client, one NATS connection per server, one
/// store per bucket.
pub(crate) struct Clients {
    pub http: reqwest::Client,
    nats: std::sync::Mutex<HashMap<String, async_nats::jetstream::Context>>,
    pub buckets: Arc<Buckets>,
    timeout: Duration,
    /// This server's account: the sender named to destinations.
    pub account: String,
    /// The destinations of the other accounts this server hosts, by account.
    pub local: std::sync::RwLock<HashMap<String, Arc<crate::Destinations>>>,
}

impl Clients {
    pub fn new(config: &DeliveryConfig, buckets: Arc<Buckets>, account: String) -> Clients {
        Clients {
            http: http_client(config),
            nats: Default::default(),
            buckets,
            timeout: config.request_timeout(),
            account,
            local: Default::default(),
        }
    }

    async fn jetstream(&self, server: &str) -> Result<async_nats::jetstream::Context, String> {
        if let Some(c) = self.nats.lock().unwrap().get(server) {
            return Ok(c.clone());
        }
        // Connected once (outside the lock: a server that is down must not hold up the others);
        // the client reconnects by itself when the server comes back.
        let client = async_nats::ConnectOptions::new()
            .connection_timeout(self.timeout)
            .request_timeout(Some(self.timeout))
            .connect(server)
            .await
            .map_err(|e| format!("{server}: {e}"))?;
        let js = async_nats::jetstream::new(client);
        Ok(self
            .nats
            .lock()
            .unwrap()
            .entry(server.to_string())
            .or_insert(js)
            .clone())
    }
}

/// One worker's way of handing messages to its target. Lambda and Kinesis take each message at
/// once; Firehose buffers records and writes them as one object when the buffer is full or old
/// enough, so its worker records its cursor only after that write.
pub(crate) struct Sender {
    target: Target,
    distribution_random: bool,
    clients: Arc<Clients>,
    buffer: Option<FirehoseBuffer>,
    /// The destination said it no longer exists (DeleteDestination): retrying cannot help.
    gone: bool,
}

impl Sender {
    pub fn new(target: Target, distribution: &str, clients: Arc<Clients>) -> Sender {
        let buffer = match &target {
            Target::Firehose { config, .. } => Some(FirehoseBuffer::new(config)),
            _ => None,
        };
        Sender {
            target,
            distribution_random: distribution == "Random",
            clients,
            buffer,
            gone: false,
        }
    }

    /// Whether the last failure was the destination answering that it no longer exists.
    pub fn destination_gone(&self) -> bool {
        self.gone
    }

    /// Delivers (or, for Firehose, buffers) one message; Err (retried by the caller) unless the
    /// destination took it.
    pub async fn deliver(&mut self, m: &SubscriptionMessage) -> Result<(), String> {
        match &self.target {
            Target::Lambda { url } => {
                let body = serde_json::json!({"awslogs": {"data": encode(m)}});
                let r = self
                    .clients
                    .http
                    .post(url)
                    .header("content-type", "application/json")
                    .body(body.to_string())
                    .send()
                    .await
                    .map_err(|e| e.to_string())?;
                if r.status().is_success() {
                    Ok(())
                } else {
                    Err(format!("{url} answered {}", r.status()))
                }
            }
            Target::Kinesis { server, subject } => {
                let js = self.clients.jetstream(server).await?;
                let key = if self.distribution_random || m.log_stream.is_empty() {
                    uuid::Uuid::new_v4().simple().to_string()
                } else {
                    m.log_stream.clone()
                };
                let mut headers = async_nats::HeaderMap::new();
                headers.insert("Kinesis-Partition-Key", key.as_str());
                if m.log_events.first().is_some_and(|e| !e.id.is_empty()) {
                    // A batch sent again after a crash is the same message to JetStream's
                    // duplicate window, which drops it; any other message has another id (its
                    // events' ids are all in it).
                    use std::hash::{Hash, Hasher};
                    let mut h = std::collections::hash_map::DefaultHasher::new();
                    m.log_events.iter().for_each(|e| e.id.hash(&mut h));
                    let id = format!(
                        "{}:{}:{}:{}:{:016x}",
                        m.log_group,
                        m.subscription_filters.join(","),
                        m.log_events[0].id,
                        m.log_events.len(),
                        h.finish()
                    );
                    headers.insert("Nats-Msg-Id", id.as_str());
                }
                let ack = js
                    .publish_with_headers(subject.clone(), headers, Bytes::from(gzip(m, 1)))
                    .await
                    .map_err(|e| format!("{server}/{subject}: {e}"))?;
                ack.await.map_err(|e| format!("{server}/{subject}: {e}"))?;
                Ok(())
            }
            Target::Destination {
                server,
                account,
                name,
            } => deliver_to_destination(&self.clients, server, account, name, m)
                .await
                .map_err(|e| {
                    self.gone = e.kind == logwell_model::ErrorKind::ResourceNotFound;
                    format!("{} destination {name}: {e}", server.endpoint)
                }),
            Target::LocalDestination { at, name } => deliver_locally(&self.clients, at, name, m)
                .await
                .map_err(|e| {
                    self.gone = e.kind == logwell_model::ErrorKind::ResourceNotFound;
                    format!("destination {name} of a hosted account: {e}")
                }),
            Target::Firehose { .. } => {
                let buffer = self
                    .buffer
                    .as_mut()
                    .expect("a Firehose sender has a buffer");
                buffer.push(gzip(m, 6));
                Ok(())
            }
        }
    }

    /// Whether messages are held that the target has not written yet.
    pub fn holds(&self) -> bool {
        self.buffer.as_ref().is_some_and(|b| !b.is_empty())
    }

    /// When the held messages must be written (None when nothing is held).
    pub fn due(&self) -> Option<tokio::time::Instant> {
        self.buffer.as_ref().and_then(|b| b.due())
    }

    /// Whether the held messages should be written now (buffer full or old enough).
    pub fn should_flush(&self) -> bool {
        self.buffer
            .as_ref()
            .is_some_and(|b| b.should_flush(tokio::time::Instant::now()))
    }

    /// Writes what is held; Err (retried by the caller, the buffer kept) unless it was written.
    pub async fn flush(&mut self) -> Result<(), String> {
        let (Target::Firehose { name, config }, Some(buffer)) = (&self.target, &mut self.buffer)
        else {
            return Ok(());
        };
        let body = buffer.contents();
        if body.is_empty() {
            return Ok(());
        }
        let store = self.clients.buckets.open(&config.bucket).await?;
        let key = crate::firehose::object_key(&config.prefix, name, chrono::Utc::now());
        store
            .put_durable(&object_store::path::Path::from(key.as_str()), body)
            .await
            .map_err(|e| format!("{}/{key}: {e}", config.bucket))?;
        buffer.clear();
        Ok(())
    }
}

/// A message gzip-compressed at `level`, as a Kinesis record or Firehose record carries it.
pub fn gzip(message: &SubscriptionMessage, level: u32) -> Vec<u8> {
    let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::new(level));
    serde_json::to_writer(&mut gz, message).expect("messages serialise");
    let _ = gz.flush();
    gz.finish().expect("gzip into memory")
}

/// A message as a Lambda function receives it: gzip-compressed JSON, base64-encoded.
pub fn encode(message: &SubscriptionMessage) -> String {
    base64::engine::general_purpose::STANDARD.encode(gzip(message, 1))
}

/// Hands a message to a destination of another account this server hosts, as its sender: that
/// destination's policy decides, as it does for deliveries from other servers.
pub(crate) fn deliver_locally(
    clients: &Clients,
    at: &LocalDestinations,
    name: &str,
    m: &SubscriptionMessage,
) -> futures::future::BoxFuture<'static, Result<(), ApiError>> {
    let request = logwell_model::api_destinations::DeliverToDestinationRequest {
        destination_name: name.to_string(),
        source_account: clients.account.clone(),
        data: encode(m),
        destination_account: None,
    };
    let destinations = at.0.clone();
    // Boxed with a named type: a destination's own target may be another hosted destination,
    // and the futures would otherwise contain themselves.
    Box::pin(async move { destinations.receive(request).await.map(|_| ()) })
}

/// Posts a message to another logwell server's destination; its error as that server gave it
/// (AccessDeniedException when the destination's policy does not allow this account).
pub(crate) async fn deliver_to_destination(
    clients: &Clients,
    server: &logwell_client::Settings,
    account: &str,
    name: &str,
    m: &SubscriptionMessage,
) -> Result<(), ApiError> {
    let body = serde_json::json!({
        "destinationName": name,
        "destinationAccount": account,
        "sourceAccount": clients.account,
        "data": encode(m),
    });
    let client = logwell_client::Client::with_http(server.clone(), clients.http.clone());
    match client
        .call::<_, serde_json::Value>("LogwellDeliverToDestination", &body)
        .await
    {
        Ok(_) => Ok(()),
        Err(logwell_client::ClientError::Api {
            type_name,
            message,
            status,
        }) => {
            let kind = logwell_model::ErrorKind::from_type_name(&type_name)
                .unwrap_or(logwell_model::ErrorKind::ServiceUnavailable);
            let message = if message.is_empty() {
                format!("answered {status}")
            } else {
                message
            };
            Err(ApiError::new(kind, message))
        }
        Err(e) => Err(ApiError::unavailable(e.to_string())),
    }
}

//! A client of the CloudWatch Logs API (logwell's or AWS's): typed requests and responses from
//! `logwell-model`, SigV4-signed with the `aws-sigv4` crate, endpoint, region and credentials
//! resolved as the AWS tools resolve them ([`Settings`]). The `logwell` CLI uses it; so will
//! `logwell tail`, the agent and delivery to another server.

mod config;
mod live_tail;

pub use config::{Credentials, Settings, DEFAULT_ENDPOINT, DEFAULT_REGION};
pub use live_tail::{LiveTail, TailMessage};

use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use logwell_model::api::{
    CreateLogGroupRequest, Empty, InputLogEvent, LogStreamRequest, PutLogEventsRequest,
    PutLogEventsResponse,
};
use logwell_model::{EVENT_OVERHEAD_BYTES, MAX_BATCH_BYTES, MAX_BATCH_EVENTS};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::time::SystemTime;

/// The service name in SigV4 credential scopes.
const SERVICE: &str = "logs";
const TARGET_PREFIX: &str = "Logs_20140328.";
const JSON_CT: &str = "application/x-amz-json-1.1";
/// Signs requests when nothing configures credentials (a local logwell accepts it).
const PLACEHOLDER_KEY: &str = "logwell-local";

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach {endpoint}: {source}")]
    Unreachable {
        endpoint: String,
        source: reqwest::Error,
    },
    /// The service refused the request: its `__type` and message.
    #[error("{type_name}: {message}")]
    Api {
        type_name: String,
        message: String,
        status: u16,
    },
    #[error("unexpected answer: {0}")]
    Decode(String),
    #[error("cannot sign the request: {0}")]
    Sign(String),
    #[error("cannot use the CA bundle {path}: {reason}")]
    CaBundle { path: String, reason: String },
}

impl ClientError {
    /// The service's error type (`ResourceAlreadyExistsException`...), if it answered with one.
    pub fn type_name(&self) -> Option<&str> {
        match self {
            ClientError::Api { type_name, .. } => Some(type_name),
            _ => None,
        }
    }
}

/// An HTTP client builder that trusts the system's certificates and, when given, the PEM
/// certificates in `ca_bundle` (a self-signed logwell, say).
pub fn http_builder(
    ca_bundle: Option<&std::path::Path>,
) -> Result<reqwest::ClientBuilder, ClientError> {
    let builder = reqwest::Client::builder();
    let Some(path) = ca_bundle else {
        return Ok(builder);
    };
    let fail = |reason: String| ClientError::CaBundle {
        path: path.display().to_string(),
        reason,
    };
    let pem = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
    let certificates =
        reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| fail(e.to_string()))?;
    if certificates.is_empty() {
        return Err(fail("no PEM certificate in it".into()));
    }
    Ok(certificates
        .into_iter()
        .fold(builder, |b, c| b.add_root_certificate(c)))
}

/// A CloudWatch Logs client.
#[derive(Clone)]
pub struct Client {
    settings: Settings,
    http: reqwest::Client,
}

impl Client {
    /// A client for `settings`; fails only when its CA bundle cannot be read.
    pub fn new(settings: Settings) -> Result<Client, ClientError> {
        let http = http_builder(settings.ca_bundle.as_deref())?
            .build()
            .map_err(|e| ClientError::CaBundle {
                path: format!("{:?}", settings.ca_bundle),
                reason: e.to_string(),
            })?;
        Ok(Client::with_http(settings, http))
    }

    /// A client sending through `http` (its timeouts and connection pool).
    pub fn with_http(settings: Settings, http: reqwest::Client) -> Client {
        Client { settings, http }
    }

    /// A client configured from the environment and AWS profile files; `endpoint` (a flag)
    /// wins over them.
    pub fn from_env(endpoint: Option<&str>) -> Result<Client, ClientError> {
        Client::new(Settings::from_env(endpoint))
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Calls operation `op` with a typed request.
    pub async fn call<Req: Serialize + ?Sized, Resp: DeserializeOwned>(
        &self,
        op: &str,
        request: &Req,
    ) -> Result<Resp, ClientError> {
        let body = serde_json::to_vec(request).expect("requests serialise");
        let answer = self.send(op, body).await?;
        serde_json::from_slice(&answer).map_err(|e| ClientError::Decode(e.to_string()))
    }

    /// Sends one signed request and returns the body of a successful answer.
    async fn send(&self, op: &str, body: Vec<u8>) -> Result<Vec<u8>, ClientError> {
        let response = self.post(op, body).await?;
        let bytes = response
            .bytes()
            .await
            .map_err(|e| ClientError::Decode(e.to_string()))?;
        Ok(bytes.to_vec())
    }

    /// Sends one signed request; a refusal becomes [`ClientError::Api`].
    async fn post(&self, op: &str, body: Vec<u8>) -> Result<reqwest::Response, ClientError> {
        let endpoint = &self.settings.endpoint;
        let target = format!("{TARGET_PREFIX}{op}");
        let mut headers = vec![
            ("content-type".to_string(), JSON_CT.to_string()),
            ("x-amz-target".to_string(), target),
        ];
        headers.extend(self.signature(endpoint, &headers, &body)?);
        let mut request = self.http.post(endpoint);
        for (k, v) in &headers {
            request = request.header(k, v);
        }
        let response =
            request
                .body(body)
                .send()
                .await
                .map_err(|source| ClientError::Unreachable {
                    endpoint: endpoint.clone(),
                    source,
                })?;
        let status = response.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(response);
        }
        let bytes = response
            .bytes()
            .await
            .map_err(|e| ClientError::Decode(e.to_string()))?;
        let error: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        let type_name = error["__type"]
            .as_str()
            .map(|t| t.rsplit('#').next().unwrap_or(t).to_string())
            .unwrap_or_else(|| format!("HTTP {status}"));
        let message = error["message"]
            .as_str()
            .or(error["Message"].as_str())
            .unwrap_or_default()
            .to_string();
        Err(ClientError::Api {
            type_name,
            message,
            status,
        })
    }

    /// The SigV4 headers (`authorization`, `x-amz-date`, and `x-amz-security-token` with a
    /// session token) for a POST of `body` with `headers` to `url`.
    fn signature(
        &self,
        url: &str,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Result<Vec<(String, String)>, ClientError> {
        let placeholder = Credentials {
            access_key_id: PLACEHOLDER_KEY.into(),
            secret_access_key: PLACEHOLDER_KEY.into(),
            session_token: None,
        };
        let c = self.settings.credentials.as_ref().unwrap_or(&placeholder);
        let identity = aws_credential_types::Credentials::new(
            &c.access_key_id,
            &c.secret_access_key,
            c.session_token.clone(),
            None,
            "logwell",
        )
        .into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.settings.region)
            .name(SERVICE)
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| ClientError::Sign(e.to_string()))?
            .into();
        let signable = SignableRequest::new(
            "POST",
            url,
            headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            SignableBody::Bytes(body),
        )
        .map_err(|e| ClientError::Sign(e.to_string()))?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| ClientError::Sign(e.to_string()))?
            .into_parts();
        Ok(instructions
            .headers()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect())
    }

    /// CreateLogGroup and CreateLogStream, each accepted when it already exists.
    pub async fn ensure_stream(&self, group: &str, stream: &str) -> Result<(), ClientError> {
        let exists_is_fine = |r: Result<Empty, ClientError>| match r {
            Err(e) if e.type_name() == Some("ResourceAlreadyExistsException") => Ok(()),
            other => other.map(drop),
        };
        let group_request = CreateLogGroupRequest {
            log_group_name: group.to_string(),
            ..Default::default()
        };
        exists_is_fine(self.call("CreateLogGroup", &group_request).await)?;
        let stream_request = LogStreamRequest {
            log_group_name: Some(group.to_string()),
            log_group_identifier: None,
            log_stream_name: stream.to_string(),
        };
        exists_is_fine(self.call("CreateLogStream", &stream_request).await)
    }

    /// PutLogEvents of one batch (see [`batches`] for splitting within the limits).
    pub async fn put_log_events(
        &self,
        group: &str,
        stream: &str,
        events: &[InputLogEvent<'_>],
    ) -> Result<PutLogEventsResponse, ClientError> {
        let request = PutLogEventsRequest {
            log_group_name: group.to_string(),
            log_stream_name: stream.to_string(),
            log_events: events
                .iter()
                .map(|e| InputLogEvent {
                    timestamp: e.timestamp,
                    message: std::borrow::Cow::Borrowed(e.message.as_ref()),
                })
                .collect(),
            sequence_token: None,
        };
        self.call("PutLogEvents", &request).await
    }
}

/// Collects events into PutLogEvents batches within AWS's limits (10,000 events, 1 MiB counting
/// 26 bytes per event).
#[derive(Default)]
pub struct Batcher {
    events: Vec<InputLogEvent<'static>>,
    bytes: usize,
}

impl Batcher {
    /// Adds an event; returns the full batch it completes, if adding it would break a limit.
    pub fn push(&mut self, timestamp: i64, message: String) -> Option<Vec<InputLogEvent<'static>>> {
        let size = message.len() + EVENT_OVERHEAD_BYTES;
        let full = !self.events.is_empty()
            && (self.events.len() == MAX_BATCH_EVENTS || self.bytes + size > MAX_BATCH_BYTES);
        let done = full.then(|| self.take());
        self.events.push(InputLogEvent {
            timestamp,
            message: message.into(),
        });
        self.bytes += size;
        done
    }

    /// The events collected so far (possibly none).
    pub fn take(&mut self) -> Vec<InputLogEvent<'static>> {
        self.bytes = 0;
        std::mem::take(&mut self.events)
    }
}

/// Splits time-ordered events into batches within PutLogEvents' limits.
pub fn batches(
    events: impl IntoIterator<Item = (i64, String)>,
) -> impl Iterator<Item = Vec<InputLogEvent<'static>>> {
    let mut batcher = Batcher::default();
    let mut events = events.into_iter();
    let mut finished = false;
    std::iter::from_fn(move || loop {
        if finished {
            return None;
        }
        match events.next() {
            Some((t, m)) => {
                if let Some(batch) = batcher.push(t, m) {
                    return Some(batch);
                }
            }
            None => {
                finished = true;
                let rest = batcher.take();
                return (!rest.is_empty()).then_some(rest);
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_stay_within_the_put_log_events_limits() {
        let small = batches((0..25_000).map(|i| (i, "x".to_string()))).collect::<Vec<_>>();
        assert_eq!(
            small.iter().map(Vec::len).collect::<Vec<_>>(),
            [10_000, 10_000, 5_000]
        );
        let big = "y".repeat(300_000);
        let sized = batches((0..7).map(|i| (i, big.clone()))).collect::<Vec<_>>();
        assert_eq!(sized.iter().map(Vec::len).collect::<Vec<_>>(), [3, 3, 1]);
        for b in &sized {
            let bytes: usize = b
                .iter()
                .map(|e| e.message.len() + EVENT_OVERHEAD_BYTES)
                .sum();
            assert!(bytes <= MAX_BATCH_BYTES);
        }
        assert_eq!(batches(std::iter::empty()).count(), 0);
    }

    #[test]
    fn requests_carry_a_sigv4_signature_for_the_logs_service() {
        let client = Client::new(Settings {
            endpoint: "http://127.0.0.1:4566".into(),
            region: "eu-west-1".into(),
            credentials: Some(Credentials {
                access_key_id: "AKIDEXAMPLE".into(),
                secret_access_key: "secret".into(),
                session_token: Some("token".into()),
            }),
            ca_bundle: None,
        })
        .unwrap();
        let headers = vec![("x-amz-target".to_string(), "Logs_20140328.X".to_string())];
        let signed = client
            .signature("http://127.0.0.1:4566", &headers, b"{}")
            .unwrap();
        let get = |name: &str| {
            signed
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        };
        let auth = get("authorization").unwrap();
        assert!(
            auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"),
            "{auth}"
        );
        assert!(auth.contains("/eu-west-1/logs/aws4_request"), "{auth}");
        assert!(auth.contains("x-amz-target"), "{auth}");
        assert_eq!(get("x-amz-security-token").as_deref(), Some("token"));
        assert!(get("x-amz-date").is_some());
    }
}

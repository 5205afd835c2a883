//! Destinations: what each kind of destination ARN is delivered to, as configured.

use base64::Engine as _;
use flate2::write::GzEncoder;
use logwell_model::api_subscriptions::SubscriptionMessage;
use logwell_model::ApiError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

/// `[delivery]`: where destination ARNs lead, and how delivery paces itself.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DeliveryConfig {
    /// Lambda function ARN -> the URL of an HTTP endpoint that receives what the function would:
    /// `{"awslogs": {"data": "<base64 of gzip of the JSON message>"}}`, POSTed.
    pub lambda: BTreeMap<String, String>,
    /// Events read per delivery round.
    pub batch_events: usize,
    /// Largest message, in bytes of event messages (CloudWatch's are up to about 1 MB).
    pub message_bytes: usize,
    /// A destination must answer within this many seconds.
    pub request_timeout_secs: f64,
    /// Retry waits start here and double up to the maximum (milliseconds).
    pub backoff_min_ms: u64,
    pub backoff_max_ms: u64,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            lambda: BTreeMap::new(),
            batch_events: 100_000,
            message_bytes: 1 << 20,
            request_timeout_secs: 30.0,
            backoff_min_ms: 100,
            backoff_max_ms: 30_000,
        }
    }
}

impl DeliveryConfig {
    pub(crate) fn request_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.request_timeout_secs.max(0.001))
    }
    pub(crate) fn backoff_min(&self) -> Duration {
        Duration::from_millis(self.backoff_min_ms.max(1))
    }
    pub(crate) fn backoff_max(&self) -> Duration {
        Duration::from_millis(self.backoff_max_ms.max(self.backoff_min_ms).max(1))
    }

    /// The destination `arn` leads to.
    pub fn target(&self, arn: &str) -> Result<Target, ApiError> {
        if let Some(url) = self.lambda.get(arn) {
            return Ok(Target::Lambda { url: url.clone() });
        }
        Err(ApiError::invalid(
            "Could not deliver test message to specified destination. Check if the destination is valid.",
        ))
    }
}

/// Where a subscription's messages go.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// An HTTP endpoint standing in for a Lambda function.
    Lambda { url: String },
}

impl Target {
    /// Delivers one message; Err (retried by the caller) unless the destination took it.
    pub async fn send(
        &self,
        http: &reqwest::Client,
        message: &SubscriptionMessage,
    ) -> Result<(), String> {
        match self {
            Target::Lambda { url } => {
                let body = serde_json::json!({"awslogs": {"data": encode(message)}});
                let r = http
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
        }
    }
}

/// A message as CloudWatch hands it over: gzip-compressed JSON, base64 for JSON transports.
pub fn encode(message: &SubscriptionMessage) -> String {
    let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::fast());
    serde_json::to_writer(&mut gz, message).expect("messages serialise");
    let _ = gz.flush();
    let bytes = gz.finish().expect("gzip into memory");
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

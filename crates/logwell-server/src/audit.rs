//! The audit trail: with credentials configured, every call (its time, account, principal, access
//! key, action, resources, source address, result and error code) becomes a JSON event in the log
//! group `/logwell/audit`, queryable with Insights like any other. Events go through a bounded
//! queue and are written once a second, so auditing never blocks a request; what a full queue
//! drops is counted and logged.

use logwell_model::api::InputLogEvent;
use logwell_model::now_millis;
use logwell_storage::{Engine, NewGroup};
use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

pub const GROUP: &str = "/logwell/audit";
/// Events waiting to be written at most (then new ones are dropped and counted).
const QUEUE: usize = 100_000;
/// Events per PutLogEvents-sized write.
const BATCH: usize = 2_000;

pub struct Audit {
    tx: mpsc::Sender<String>,
    pub dropped: Arc<AtomicU64>,
}

/// One audited call.
pub struct Entry<'a> {
    pub account_id: Option<&'a str>,
    pub principal: Option<&'a str>,
    pub access_key_id: Option<&'a str>,
    pub action: &'a str,
    pub source_ip: Option<std::net::IpAddr>,
    /// None when the call succeeded; else its `__type`.
    pub error: Option<&'a str>,
    pub request_id: &'a str,
}

impl Audit {
    /// Starts the writer on `runtime` (the background one).
    pub fn start(engine: Engine, runtime: &tokio::runtime::Handle) -> Audit {
        let (tx, mut rx) = mpsc::channel::<String>(QUEUE);
        runtime.spawn(async move {
            let mut batch = Vec::new();
            loop {
                let Some(first) = rx.recv().await else { break };
                batch.push(first);
                tokio::time::sleep(Duration::from_secs(1)).await;
                while batch.len() < BATCH {
                    match rx.try_recv() {
                        Ok(e) => batch.push(e),
                        Err(_) => break,
                    }
                }
                write(&engine, &mut batch).await;
            }
        });
        Audit {
            tx,
            dropped: Arc::new(AtomicU64::new(0)),
        }
    }

    pub fn record(&self, e: Entry<'_>) {
        let event = serde_json::json!({
            "eventTime": now_millis(),
            "accountId": e.account_id,
            "principal": e.principal,
            "accessKeyId": e.access_key_id,
            "action": e.action,
            "sourceIp": e.source_ip.map(|ip| ip.to_string()),
            "result": if e.error.is_some() { "denied_or_failed" } else { "ok" },
            "errorCode": e.error,
            "requestId": e.request_id,
        });
        if self.tx.try_send(event.to_string()).is_err()
            && self.dropped.fetch_add(1, Ordering::Relaxed) % 10_000 == 0
        {
            tracing::warn!("audit queue full: audit events dropped (counted on /metrics)");
        }
    }
}

/// Writes `batch` into the audit group's stream of the day, creating them when missing; on
/// failure the events are kept for the next second (up to the queue's bound).
async fn write(engine: &Engine, batch: &mut Vec<String>) {
    let stream = chrono::Utc::now().format("%Y/%m/%d").to_string();
    let now = now_millis();
    let events: Vec<InputLogEvent<'_>> = batch
        .iter()
        .map(|m| InputLogEvent {
            timestamp: now,
            message: Cow::Borrowed(m.as_str()),
        })
        .collect();
    let mut result = engine.put_events(GROUP, &stream, &events).await;
    if result.is_err() {
        let _ = engine
            .create_group(NewGroup {
                name: GROUP.into(),
                ..Default::default()
            })
            .await;
        let _ = engine.create_stream(GROUP, &stream).await;
        result = engine.put_events(GROUP, &stream, &events).await;
    }
    match result {
        Ok(_) => batch.clear(),
        Err(e) => {
            tracing::warn!(error = %e, "audit events not written yet; retrying");
            if batch.len() > QUEUE {
                batch.drain(..batch.len() - QUEUE);
            }
        }
    }
}

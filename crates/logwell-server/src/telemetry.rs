//! logwell's own metrics and `GET /metrics`: what the request path and queries count here, what
//! storage, live tail and delivery report, and the metric filters' series, in Prometheus' text
//! format. Every metric is declared once, in `metrics` below; the names are listed in the README.

use crate::SharedApp;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use logwell_metrics::exposition::{Exposition, Kind};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

#[derive(Debug, Default, Clone, Copy)]
struct Timed {
    count: u64,
    seconds: f64,
}

impl Timed {
    fn add(&mut self, seconds: f64) {
        self.count += 1;
        self.seconds += seconds;
    }
}

/// Counters the server updates as it works.
#[derive(Default)]
pub struct Telemetry {
    /// (operation, outcome: `ok` or the error's `__type`) -> calls and their time.
    requests: Mutex<BTreeMap<(&'static str, &'static str), Timed>>,
    /// Query status (`Complete`, `Failed`, `Timeout`, `Cancelled`) -> queries and their time.
    queries: Mutex<BTreeMap<&'static str, Timed>>,
    ingested_events: AtomicU64,
    ingested_bytes: AtomicU64,
    /// (log group, data identifier) -> events in which a data protection policy found it.
    findings: Mutex<BTreeMap<(String, String), u64>>,
}

impl Telemetry {
    pub fn request(&self, operation: &'static str, outcome: &'static str, seconds: f64) {
        self.requests
            .lock()
            .unwrap()
            .entry((operation, outcome))
            .or_default()
            .add(seconds);
    }

    pub fn query(&self, status: &'static str, seconds: f64) {
        self.queries
            .lock()
            .unwrap()
            .entry(status)
            .or_default()
            .add(seconds);
    }

    /// Events accepted by PutLogEvents, and their bytes as CloudWatch counts them (message
    /// bytes plus 26 per event).
    pub fn ingested(&self, events: u64, bytes: u64) {
        self.ingested_events.fetch_add(events, Relaxed);
        self.ingested_bytes.fetch_add(bytes, Relaxed);
    }

    /// `events` put to `group` held text its data protection policy's `identifier` names.
    pub fn findings(&self, group: &str, identifier: &str, events: u64) {
        *self
            .findings
            .lock()
            .unwrap()
            .entry((group.to_string(), identifier.to_string()))
            .or_default() += events;
    }
}

/// `GET /metrics`.
pub async fn metrics(State(app): State<SharedApp>) -> Response {
    let text = render(&app);
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        text,
    )
        .into_response()
}

fn render(app: &SharedApp) -> String {
    let mut e = Exposition::default();
    let t = &app.telemetry;
    e.family(
        "logwell_ingested_events_total",
        Kind::Counter,
        "Log events accepted by PutLogEvents.",
    )
    .sample(
        "logwell_ingested_events_total",
        &[],
        t.ingested_events.load(Relaxed) as f64,
    );
    e.family(
        "logwell_ingested_bytes_total",
        Kind::Counter,
        "Bytes of log events accepted, as CloudWatch counts them (message bytes plus 26 per event).",
    )
    .sample(
        "logwell_ingested_bytes_total",
        &[],
        t.ingested_bytes.load(Relaxed) as f64,
    );
    e.family(
        "logwell_data_protection_findings_total",
        Kind::Counter,
        "Events put to a group with a data protection policy that held text of a data identifier (the policy's Audit statement).",
    );
    for ((group, identifier), n) in t.findings.lock().unwrap().iter() {
        e.sample(
            "logwell_data_protection_findings_total",
            &[("log_group", group), ("data_identifier", identifier)],
            *n as f64,
        );
    }
    e.family(
        "logwell_request_duration_seconds",
        Kind::Summary,
        "API requests by operation and outcome (ok, or the error's __type), and their time.",
    );
    for ((op, outcome), timed) in t.requests.lock().unwrap().iter() {
        let labels = [("operation", *op), ("outcome", *outcome)];
        e.sample(
            "logwell_request_duration_seconds_sum",
            &labels,
            timed.seconds,
        );
        e.sample(
            "logwell_request_duration_seconds_count",
            &labels,
            timed.count as f64,
        );
    }
    e.family(
        "logwell_query_duration_seconds",
        Kind::Summary,
        "Finished Logs Insights and SQL queries by status, and their time from start to end.",
    );
    for (status, timed) in t.queries.lock().unwrap().iter() {
        let labels = [("status", *status)];
        e.sample("logwell_query_duration_seconds_sum", &labels, timed.seconds);
        e.sample(
            "logwell_query_duration_seconds_count",
            &labels,
            timed.count as f64,
        );
    }

    let s = app.engine.stats();
    let groups = app.engine.list_groups();
    for (name, kind, help, value) in [
        (
            "logwell_log_groups",
            Kind::Gauge,
            "Log groups.",
            groups.len() as f64,
        ),
        (
            "logwell_segments",
            Kind::Gauge,
            "Parquet segments stored.",
            s.segments as f64,
        ),
        (
            "logwell_segment_bytes",
            Kind::Gauge,
            "Bytes of segments stored.",
            s.segment_bytes as f64,
        ),
        (
            "logwell_segment_events",
            Kind::Gauge,
            "Events in stored segments.",
            s.segment_rows as f64,
        ),
        (
            "logwell_buffered_bytes",
            Kind::Gauge,
            "Bytes of events buffered in memory, not yet in segments.",
            s.buffered_bytes as f64,
        ),
        (
            "logwell_buffered_field_bytes",
            Kind::Gauge,
            "Bytes of JSON fields extracted from buffered events by queries, kept for the next query.",
            s.buffered_field_bytes as f64,
        ),
        (
            "logwell_wal_bytes",
            Kind::Gauge,
            "Bytes of write-ahead log on disk.",
            s.wal_bytes as f64,
        ),
        (
            "logwell_wal_written_bytes_total",
            Kind::Counter,
            "Bytes written to the write-ahead log.",
            s.wal_written_bytes as f64,
        ),
        (
            "logwell_subscription_expired_events_total",
            Kind::Counter,
            "Events retention removed before a subscription filter lagging beyond storage.subscription_hold delivered them.",
            s.undelivered_expired as f64,
        ),
        (
            "logwell_audit_dropped_events_total",
            Kind::Counter,
            "Audit events dropped because the audit queue was full.",
            app.audit.dropped.load(std::sync::atomic::Ordering::Relaxed) as f64,
        ),
        (
            "logwell_live_tail_sessions",
            Kind::Gauge,
            "Live Tail sessions open.",
            app.tails.active() as f64,
        ),
    ] {
        e.family(name, kind, help).sample(name, &[], value);
    }
    e.family(
        "logwell_wal_commit_seconds",
        Kind::Summary,
        "Write-ahead log group commits (one write and one fsync each) and their time.",
    )
    .sample("logwell_wal_commit_seconds_sum", &[], s.wal_commit_seconds)
    .sample(
        "logwell_wal_commit_seconds_count",
        &[],
        s.wal_commits as f64,
    );
    e.family(
        "logwell_flush_seconds",
        Kind::Summary,
        "Flushes of buffered events to segments and their time.",
    )
    .sample("logwell_flush_seconds_sum", &[], s.flush_seconds)
    .sample("logwell_flush_seconds_count", &[], s.flushes as f64);

    subscriptions(app, &mut e);
    app.metric_filters.expose(&mut e);
    e.finish()
}

/// Per subscription filter: what was delivered, delivery errors, and how far behind it is.
fn subscriptions(app: &SharedApp, e: &mut Exposition) {
    let progress = app.delivery.progress();
    let filters = app.engine.all_subscription_filters();
    let newest_ingestion = |group: &str| -> Option<i64> {
        app.engine
            .list_streams(group)
            .ok()?
            .iter()
            .filter_map(|(_, s)| s.last_ingestion_time)
            .max()
    };
    type Row = (String, String, f64);
    let mut events: Vec<Row> = Vec::new();
    let mut messages: Vec<Row> = Vec::new();
    let mut errors: Vec<Row> = Vec::new();
    let mut lag: Vec<Row> = Vec::new();
    let mut lag_events: Vec<Row> = Vec::new();
    let mut disabled: Vec<Row> = Vec::new();
    for (group, name, f) in filters {
        let p = progress
            .get(&(group.clone(), name.clone()))
            .cloned()
            .unwrap_or_default();
        // Behind by the ingestion time between the newest event delivered (or the filter's
        // creation) and the newest event of the group.
        let delivered_up_to = p.last_ingestion_time.unwrap_or(f.creation_time);
        let behind = if p.caught_up {
            0.0
        } else {
            newest_ingestion(&group).map_or(0, |n| (n - delivered_up_to).max(0)) as f64 / 1000.0
        };
        events.push((group.clone(), name.clone(), p.events_delivered as f64));
        messages.push((group.clone(), name.clone(), p.messages_delivered as f64));
        errors.push((group.clone(), name.clone(), p.delivery_errors as f64));
        // Events after the durable cursor, matching or not: what a restart would read again.
        let pending = app
            .engine
            .events_pending(&group, f.delivered_seq)
            .unwrap_or(0);
        lag_events.push((group.clone(), name.clone(), pending as f64));
        disabled.push((group.clone(), name.clone(), f64::from(u8::from(p.disabled))));
        lag.push((group, name, behind));
    }
    for (family, kind, help, rows) in [
        ("logwell_subscription_delivered_events_total", Kind::Counter, "Events delivered by each subscription filter since start.", events),
        ("logwell_subscription_delivered_messages_total", Kind::Counter, "Messages (DATA_MESSAGEs) delivered by each subscription filter since start.", messages),
        ("logwell_subscription_delivery_errors_total", Kind::Counter, "Failed delivery attempts (each retried) by each subscription filter since start.", errors),
        ("logwell_subscription_lag_seconds", Kind::Gauge, "Ingestion time between the newest event a subscription filter delivered and the newest event of its group.", lag),
        ("logwell_subscription_lag_events", Kind::Gauge, "Events of the group after a subscription filter's recorded position (matching or not; estimated within a partly delivered segment).", lag_events),
        ("logwell_subscription_disabled", Kind::Gauge, "1 when a subscription filter's destination was deleted and its delivery stopped (put the filter again to restart it).", disabled),
    ] {
        e.family(family, kind, help);
        for (group, filter, v) in rows {
            e.sample(family, &[("log_group", &group), ("filter", &filter)], v);
        }
    }
}

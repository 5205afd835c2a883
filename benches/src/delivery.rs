//! Subscription delivery benchmark: starts a `logwell serve` process (default config plus a
//! `[delivery.lambda]` mapping to a receiver in this process), keeps it under sustained ingest,
//! and prints:
//!
//! - the ingest rate with no subscription and with one that matches every event;
//! - delivery throughput (events per second reaching the receiver) and the lag from a probe
//!   event's acknowledgement to its arrival at the receiver (p50, p99, max);
//! - the catch-up rate: the receiver refuses deliveries for a while during ingest, then the time
//!   to drain the backlog (read back from storage) is reported;
//! - delivery throughput to a Firehose destination (objects in a local bucket) and, when
//!   `nats-server` is on the PATH, to a Kinesis destination (a JetStream subject), each over the
//!   same sustained ingest, read from the server's `/metrics`;
//! - export tasks: MB/s of text (CloudWatch's gzip layout) and of Parquet over the whole group.
//!
//! Run: `cargo build --release -p logwell-benches -p logwell-cli && target/release/delivery-bench`.

#[path = "common.rs"]
mod common;

use anyhow::{bail, Result};
use axum::routing::post;
use base64::Engine as _;
use clap::Parser;
use common::{
    app_events, create, flood, fresh_data_dir, latency_summary, logwell_bin, machine, now_ms,
    put_body, ServerProc,
};
use serde_json::json;
use std::collections::HashMap;
use std::io::Read;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Parser)]
struct Args {
    /// Seconds of ingest per measurement.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Concurrent PutLogEvents clients.
    #[arg(long, default_value_t = 4)]
    clients: usize,
    /// Events per PutLogEvents call.
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// Events per second of the steady ingest the lag is also measured under.
    #[arg(long, default_value_t = 50_000.0)]
    paced_rate: f64,
    /// Seconds the receiver refuses deliveries, to build a backlog.
    #[arg(long, default_value_t = 5.0)]
    outage: f64,
    #[arg(long)]
    logwell: Option<PathBuf>,
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

const GROUP: &str = "/bench/delivery";
const ARN: &str = "arn:aws:lambda:us-east-1:000000000000:function:bench";
const FIREHOSE: &str = "arn:aws:firehose:us-east-1:000000000000:deliverystream/bench";
const KINESIS: &str = "arn:aws:kinesis:us-east-1:000000000000:stream/bench";

/// A nats-server with JetStream, when one is installed.
struct NatsServer {
    url: String,
    child: std::process::Child,
    _dir: PathBuf,
}

impl NatsServer {
    fn start() -> Option<NatsServer> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        let dir = std::env::temp_dir().join(format!("logwell-bench-nats-{}", std::process::id()));
        let child = ["nats-server", "/usr/sbin/nats-server"]
            .iter()
            .find_map(|exe| {
                std::process::Command::new(exe)
                    .args([
                        "-js",
                        "-sd",
                        dir.to_str()?,
                        "-a",
                        "127.0.0.1",
                        "-p",
                        &port.to_string(),
                    ])
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .spawn()
                    .ok()
            })?;
        Some(NatsServer {
            url: format!("nats://127.0.0.1:{port}"),
            child,
            _dir: dir,
        })
    }

    async fn add_stream(&self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let client = loop {
            match async_nats::connect(&self.url).await {
                Ok(c) => break c,
                Err(e) if Instant::now() > deadline => bail!("nats-server: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        async_nats::jetstream::new(client)
            .get_or_create_stream(async_nats::jetstream::stream::Config {
                name: "BENCH".into(),
                subjects: vec!["bench.logs".into()],
                ..Default::default()
            })
            .await?;
        Ok(())
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self._dir);
    }
}

/// `logwell_subscription_delivered_events_total` of filter `name`, from `/metrics`.
/// Puts one probe event every 20 ms until `until`: (probe number, when it was acknowledged).
async fn probes(server: &ServerProc, until: Instant) -> Result<Vec<(usize, Instant)>> {
    let mut sent = Vec::new();
    let mut n = 0usize;
    while Instant::now() < until {
        server
            .call(
                "PutLogEvents",
                put_body(GROUP, "probe", &[(now_ms(), format!("probe {n}"))]),
            )
            .await?;
        sent.push((n, Instant::now()));
        n += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(sent)
}

/// Milliseconds from each probe's acknowledgement to its arrival at the receiver.
fn lags(received: &Received, sent: &[(usize, Instant)]) -> Vec<f64> {
    let probes = received.probes.lock().unwrap();
    sent.iter()
        .filter_map(|(n, acked)| {
            probes
                .get(n)
                .map(|at| at.saturating_duration_since(*acked).as_secs_f64() * 1e3)
        })
        .collect()
}

/// Puts `rate` events per second in batches of `batch` from one client until `until`.
async fn paced(
    server: &ServerProc,
    group: &str,
    rate: f64,
    batch: usize,
    until: Instant,
) -> Result<usize> {
    let every = Duration::from_secs_f64(batch as f64 / rate);
    let mut next = Instant::now();
    let mut n = 0usize;
    while Instant::now() < until {
        let events = app_events(9, n, batch);
        server
            .call("PutLogEvents", put_body(group, "flood-0", &events))
            .await?;
        n += batch;
        next += every;
        tokio::time::sleep_until(next.into()).await;
    }
    Ok(n)
}

async fn delivered_events(server: &ServerProc, name: &str) -> Result<u64> {
    let text = server.metrics().await?;
    let needle = format!("filter=\"{name}\"}} ");
    Ok(text
        .lines()
        .filter(|l| l.starts_with("logwell_subscription_delivered_events_total{"))
        .find_map(|l| {
            l.split_once(&needle)
                .and_then(|(_, v)| v.trim().parse::<f64>().ok())
        })
        .unwrap_or(0.0) as u64)
}

/// What the receiver saw.
#[derive(Default)]
struct Received {
    events: AtomicU64,
    failing: AtomicBool,
    /// Probe number -> arrival.
    probes: Mutex<HashMap<usize, Instant>>,
}

async fn receive(received: Arc<Received>, body: String) -> axum::http::StatusCode {
    if received.failing.load(Ordering::Relaxed) {
        return axum::http::StatusCode::INTERNAL_SERVER_ERROR;
    }
    let now = Instant::now();
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    let data = v["awslogs"]["data"].as_str().unwrap_or_default();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data)
        .unwrap_or_default();
    let mut text = String::new();
    let _ = flate2::read::GzDecoder::new(&bytes[..]).read_to_string(&mut text);
    let m: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    let events = m["logEvents"].as_array().cloned().unwrap_or_default();
    received
        .events
        .fetch_add(events.len() as u64, Ordering::Relaxed);
    let mut probes = received.probes.lock().unwrap();
    for e in events {
        if let Some(n) = e["message"].as_str().and_then(|m| m.strip_prefix("probe ")) {
            if let Ok(n) = n.parse() {
                probes.entry(n).or_insert(now);
            }
        }
    }
    axum::http::StatusCode::OK
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let bin = logwell_bin(&args.logwell)?;
    let received = Arc::new(Received::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/", listener.local_addr()?);
    let app = axum::Router::new().route(
        "/",
        post({
            let received = received.clone();
            move |body: String| receive(received.clone(), body)
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    let nats = NatsServer::start();
    let mut extra = format!(
        "[delivery.lambda]\n\"{ARN}\" = \"{url}\"\n\n[delivery.firehose.\"{FIREHOSE}\"]\nbucket = \"bench\"\nprefix = \"firehose/\"\nbuffer_secs = 1\n"
    );
    if let Some(n) = &nats {
        extra += &format!(
            "\n[delivery.kinesis]\n\"{KINESIS}\" = \"{}/bench.logs\"\n",
            n.url
        );
        n.add_stream().await?;
    }
    let (data_dir, config) = fresh_data_dir(&args.data_dir, "logwell-delivery-bench", &extra)?;
    std::fs::create_dir_all(data_dir.join("buckets").join("bench"))?;
    println!("logwell subscription delivery benchmark");
    println!("machine: {}", machine());
    let server = ServerProc::start(&bin, &data_dir, &config)?;
    let mut streams: Vec<String> = (0..args.clients).map(|c| format!("flood-{c}")).collect();
    streams.push("probe".into());
    create(&server, GROUP, &streams).await?;
    let run = Duration::from_secs_f64(args.seconds);

    flood(
        &server,
        GROUP,
        args.clients,
        args.batch,
        Instant::now() + run,
    )
    .await?; // warm-up
    let base = flood(
        &server,
        GROUP,
        args.clients,
        args.batch,
        Instant::now() + run,
    )
    .await? as f64
        / args.seconds;
    println!(
        "\nsustained ingest, no subscription: {base:.0} events/s ({} clients, {}-event batches)",
        args.clients, args.batch
    );

    server
        .call(
            "PutSubscriptionFilter",
            json!({"logGroupName": GROUP, "filterName": "all", "filterPattern": "", "destinationArn": ARN}).to_string(),
        )
        .await?;
    let before = received.events.load(Ordering::Relaxed);
    let until = Instant::now() + run;
    let (put, sent) = tokio::join!(
        flood(&server, GROUP, args.clients, args.batch, until),
        probes(&server, until)
    );
    let (put, sent) = (put? as f64 / args.seconds, sent?);
    // Wait for the deliveries to catch up with what was put.
    let target = put as u64 * args.seconds as u64 + sent.len() as u64;
    let drain_start = Instant::now();
    while received.events.load(Ordering::Relaxed) - before < target {
        if drain_start.elapsed() > Duration::from_secs(120) {
            bail!("delivery did not catch up within 2 minutes");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let delivered = received.events.load(Ordering::Relaxed) - before;
    let wall = args.seconds + drain_start.elapsed().as_secs_f64();
    let flood_lags = lags(&received, &sent);
    println!("\n| measure | figure |\n|---|---|");
    println!(
        "| ingest with a subscription matching every event | {put:.0} events/s ({:+.1}% vs none) |",
        (put / base - 1.0) * 100.0
    );
    println!("| delivered to the Lambda-style HTTP receiver | {delivered} events in {wall:.1} s: {:.0} events/s |", delivered as f64 / wall);
    println!(
        "| lag, acknowledgement to receipt, during ingest | {} ({} probes) |",
        latency_summary(flood_lags),
        sent.len()
    );

    // Lag when ingest leaves the machine room: a steady rate well under the flood's.
    received.probes.lock().unwrap().clear();
    let until = Instant::now() + run;
    let (paced_put, sent) = tokio::join!(
        paced(&server, GROUP, args.paced_rate, args.batch, until),
        probes(&server, until)
    );
    let (paced_put, sent) = (paced_put?, sent?);
    let deadline = Instant::now() + Duration::from_secs(60);
    while received.probes.lock().unwrap().len() < sent.len() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!(
        "| lag, acknowledgement to receipt, at a steady {:.0} events/s | {} ({} probes) |",
        paced_put as f64 / args.seconds,
        latency_summary(lags(&received, &sent)),
        sent.len()
    );

    // An outage: the receiver refuses everything while events are put, then comes back.
    received.failing.store(true, Ordering::Relaxed);
    let before = received.events.load(Ordering::Relaxed);
    let backlog = flood(
        &server,
        GROUP,
        args.clients,
        args.batch,
        Instant::now() + Duration::from_secs_f64(args.outage),
    )
    .await? as u64;
    received.failing.store(false, Ordering::Relaxed);
    let t0 = Instant::now();
    while received.events.load(Ordering::Relaxed) - before < backlog {
        if t0.elapsed() > Duration::from_secs(300) {
            bail!("the backlog did not drain within 5 minutes");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let drain = t0.elapsed().as_secs_f64();
    println!("| backlog after a {:.0} s outage | {backlog} events drained in {drain:.1} s: {:.0} events/s |", args.outage, backlog as f64 / drain);

    // The other destination kinds, one at a time, over the same sustained ingest.
    server
        .call(
            "DeleteSubscriptionFilter",
            json!({"logGroupName": GROUP, "filterName": "all"}).to_string(),
        )
        .await?;
    let mut targets = vec![(
        "Firehose (local bucket, objects of 5 MiB or 1 s)",
        "firehose",
        FIREHOSE,
    )];
    if nats.is_some() {
        targets.push(("Kinesis (NATS JetStream)", "kinesis", KINESIS));
    } else {
        println!("| Kinesis (NATS JetStream) | skipped: no nats-server on the PATH |");
    }
    for (label, name, arn) in targets {
        server
            .call(
                "PutSubscriptionFilter",
                json!({"logGroupName": GROUP, "filterName": name, "filterPattern": "", "destinationArn": arn}).to_string(),
            )
            .await?;
        let start = Instant::now();
        let put = flood(&server, GROUP, args.clients, args.batch, start + run).await? as u64;
        let before_drain = Instant::now();
        loop {
            let delivered = delivered_events(&server, name).await?;
            if delivered >= put {
                let wall = start.elapsed().as_secs_f64();
                println!("| delivered to {label} during {:.0} s of ingest at {:.0} events/s | {delivered} events in {wall:.1} s: {:.0} events/s |", args.seconds, put as f64 / args.seconds, delivered as f64 / wall);
                break;
            }
            if before_drain.elapsed() > Duration::from_secs(300) {
                bail!("{label}: delivery did not catch up within 5 minutes");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        server
            .call(
                "DeleteSubscriptionFilter",
                json!({"logGroupName": GROUP, "filterName": name}).to_string(),
            )
            .await?;
    }

    // Metric filters are evaluated beside ingest: its rate with two of them (a term count, and
    // a JSON value with a dimension) on the flooded group, against a run just before without
    // them on the same (by now large) store.
    let without_filters = flood(
        &server,
        GROUP,
        args.clients,
        args.batch,
        Instant::now() + run,
    )
    .await? as f64
        / args.seconds;
    for (name, pattern, value, dims) in [
        ("count", "orders", "1", json!(null)),
        (
            "n",
            "{ $.level = \"INFO\" }",
            "$.n",
            json!({"Client": "$.client"}),
        ),
    ] {
        let mut t = json!({"metricName": name, "metricNamespace": "Bench", "metricValue": value});
        if !dims.is_null() {
            t["dimensions"] = dims;
        }
        server
            .call(
                "PutMetricFilter",
                json!({"logGroupName": GROUP, "filterName": name, "filterPattern": pattern,
                       "metricTransformations": [t]})
                .to_string(),
            )
            .await?;
    }
    let with_filters = flood(
        &server,
        GROUP,
        args.clients,
        args.batch,
        Instant::now() + run,
    )
    .await? as f64
        / args.seconds;
    println!(
        "| ingest with two metric filters | {with_filters:.0} events/s ({:+.1}% vs {without_filters:.0} without, just before) |",
        (with_filters / without_filters - 1.0) * 100.0
    );

    // Export tasks over everything the group holds.
    for (label, format) in [
        ("text (gzip, CloudWatch's layout)", "text"),
        ("Parquet (segments copied)", "parquet"),
    ] {
        let start = Instant::now();
        let created = server
            .call(
                "CreateExportTask",
                json!({"logGroupName": GROUP, "from": 0, "to": now_ms(), "destination": "bench",
                       "destinationPrefix": format, "logwellFormat": format})
                .to_string(),
            )
            .await?;
        let id = created["taskId"].as_str().unwrap_or_default().to_string();
        let task = loop {
            let t = server
                .call("DescribeExportTasks", json!({"taskId": id}).to_string())
                .await?;
            let t = t["exportTasks"][0].clone();
            match t["status"]["code"].as_str() {
                Some("COMPLETED") => break t,
                Some("FAILED") | Some("CANCELLED") => bail!("export {format}: {}", t["status"]),
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        };
        let secs = start.elapsed().as_secs_f64();
        let mb = task["logwellProgress"]["bytes"].as_f64().unwrap_or(0.0) / 1e6;
        let events = task["logwellProgress"]["events"].as_u64().unwrap_or(0);
        println!(
            "| export, {label} | {events} events, {mb:.0} MB in {secs:.1} s: {:.0} MB/s |",
            mb / secs
        );
    }
    server.stop()?;
    let _ = std::fs::remove_dir_all(&data_dir);
    Ok(())
}

//! Live tail benchmark: starts a `logwell serve` process (default config), keeps it under
//! sustained ingest, and prints, for 1, 10 and 100 concurrent StartLiveTail sessions:
//!
//! - the latency from a probe event's PutLogEvents to its arrival in every session (p50, p99,
//!   max), measured from the acknowledgement (an event usually arrives before its put is
//!   answered: those count as 0) and from the request being sent;
//! - the ingest rate meanwhile, against the rate with no session.
//!
//! The sessions tail the probe stream of the group the flood goes to (`logStreamNamePrefixes`),
//! so every flood batch reaches every session and is turned away there.
//!
//! Run: `cargo build --release -p logwell-benches -p logwell-cli && target/release/tail-bench`.

#[path = "common.rs"]
mod common;

use anyhow::{bail, Result};
use clap::Parser;
use common::{
    create, flood, fresh_data_dir, latency_summary, logwell_bin, machine, now_ms, put_body,
    ServerProc,
};
use logwell_client::{Client, TailMessage};
use logwell_model::api_tail::StartLiveTailRequest;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Parser)]
struct Args {
    /// Seconds of ingest per measurement.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Concurrent PutLogEvents clients of the flood.
    #[arg(long, default_value_t = 4)]
    clients: usize,
    /// Events per flood PutLogEvents call.
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// Session counts to measure, comma-separated.
    #[arg(long, default_value = "1,10,100")]
    sessions: String,
    /// Milliseconds between probe events.
    #[arg(long, default_value_t = 10)]
    probe_ms: u64,
    /// The logwell binary (default: next to this one).
    #[arg(long)]
    logwell: Option<PathBuf>,
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

const GROUP: &str = "/bench/tail";

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let bin = logwell_bin(&args.logwell)?;
    let (data_dir, config) = fresh_data_dir(
        &args.data_dir,
        "logwell-tail-bench",
        "[limits]\nmax_live_tail_sessions = 1000\n",
    )?;
    println!("logwell live tail benchmark");
    println!("machine: {}", machine());
    let server = ServerProc::start(&bin, &data_dir, &config)?;
    let mut streams: Vec<String> = (0..args.clients).map(|c| format!("flood-{c}")).collect();
    streams.push("probe".into());
    create(&server, GROUP, &streams).await?;
    let client = Client::from_env(Some(&server.endpoint))?;

    let run = Duration::from_secs_f64(args.seconds);
    // The rate without sessions, measured first (after a warm-up as long as a measurement).
    flood(
        &server,
        GROUP,
        args.clients,
        args.batch,
        Instant::now() + run,
    )
    .await?;
    let base = flood(
        &server,
        GROUP,
        args.clients,
        args.batch,
        Instant::now() + run,
    )
    .await?;
    let base_rate = base as f64 / args.seconds;
    println!(
        "\nsustained ingest, no session: {base_rate:.0} events/s ({} clients, {}-event batches)",
        args.clients, args.batch
    );
    println!("\n| sessions | ack to arrival | put sent to arrival | probes seen | ingest events/s | vs no session |");
    println!("|---|---|---|---|---|---|");
    for count in args.sessions.split(',').map(|s| s.trim().parse::<usize>()) {
        let count = count?;
        // Arrival times per probe number, per session.
        let arrivals: Arc<Mutex<Vec<HashMap<usize, Instant>>>> =
            Arc::new(Mutex::new(vec![HashMap::new(); count]));
        let mut readers = Vec::new();
        for k in 0..count {
            let mut tail = client
                .start_live_tail(&StartLiveTailRequest {
                    log_group_identifiers: vec![GROUP.into()],
                    log_stream_name_prefixes: Some(vec!["probe".into()]),
                    ..Default::default()
                })
                .await?;
            let arrivals = arrivals.clone();
            readers.push(tokio::spawn(async move {
                while let Ok(Some(m)) = tail.next().await {
                    if let TailMessage::Update(u) = m {
                        let now = Instant::now();
                        let mut a = arrivals.lock().unwrap();
                        for e in u.session_results {
                            if let Some(n) = e.message.strip_prefix("probe ") {
                                a[k].insert(n.parse().unwrap_or(usize::MAX), now);
                            }
                        }
                    }
                }
            }));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let until = Instant::now() + run;
        let probes = async {
            let mut sent = Vec::new();
            let mut n = 0usize;
            while Instant::now() < until {
                let t0 = Instant::now();
                server
                    .call(
                        "PutLogEvents",
                        put_body(GROUP, "probe", &[(now_ms(), format!("probe {n}"))]),
                    )
                    .await?;
                sent.push((n, t0, Instant::now()));
                n += 1;
                tokio::time::sleep(Duration::from_millis(args.probe_ms)).await;
            }
            Ok::<_, anyhow::Error>(sent)
        };
        let (put, sent) = tokio::join!(
            flood(&server, GROUP, args.clients, args.batch, until),
            probes
        );
        let (put, sent) = (put?, sent?);
        // Let the last probes arrive, then close the sessions.
        tokio::time::sleep(Duration::from_millis(500)).await;
        for r in &readers {
            r.abort();
        }
        let arrivals = arrivals.lock().unwrap();
        let (mut from_ack, mut from_send) = (Vec::new(), Vec::new());
        let mut seen = 0usize;
        for session in arrivals.iter() {
            for (n, sent_at, acked_at) in &sent {
                if let Some(at) = session.get(n) {
                    seen += 1;
                    from_ack.push(at.saturating_duration_since(*acked_at).as_secs_f64() * 1e3);
                    from_send.push(at.saturating_duration_since(*sent_at).as_secs_f64() * 1e3);
                }
            }
        }
        let expected = sent.len() * count;
        let rate = put as f64 / args.seconds;
        println!(
            "| {count} | {} | {} | {seen} of {expected} | {rate:.0} | {:+.1}% |",
            latency_summary(from_ack),
            latency_summary(from_send),
            (rate / base_rate - 1.0) * 100.0
        );
        if seen == 0 {
            bail!("no probe reached any session");
        }
        drop(arrivals);
        // The sessions' connections close with their readers; give the server a moment.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    server.stop()?;
    let _ = std::fs::remove_dir_all(&data_dir);
    Ok(())
}

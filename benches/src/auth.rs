//! Authentication benchmark: what verifying SigV4 (and evaluating an identity policy) costs
//! ingest. Starts `logwell serve` three times (default config without credentials; with a
//! credential; with a credential carrying an identity policy), floods each with PutLogEvents
//! signed by the same client code (`logwell-client`, so the client's cost is equal), and prints
//! events/s and the server's CPU time per event.
//!
//! Run: `cargo build --release -p logwell-benches -p logwell-cli && target/release/auth-bench`.

#[path = "common.rs"]
mod common;

use anyhow::Result;
use clap::Parser;
use common::{app_events, fresh_data_dir, logwell_bin, machine, ServerProc};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Parser)]
struct Args {
    /// Seconds of ingest per measurement (after a warm-up of a third of it).
    #[arg(long, default_value_t = 8.0)]
    seconds: f64,
    /// Concurrent PutLogEvents clients.
    #[arg(long, default_value_t = 4)]
    clients: usize,
    /// Events per PutLogEvents call.
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    #[arg(long)]
    logwell: Option<PathBuf>,
}

const KEY: &str = "AKIABENCH0000000000";
const SECRET: &str = "bench-secret";
const GROUP: &str = "/bench/auth";

async fn flood(
    client: &logwell_client::Client,
    clients: usize,
    batch: usize,
    until: Instant,
) -> Result<usize> {
    let tasks = (0..clients).map(|c| {
        let client = client.clone();
        async move {
            let mut n = 0usize;
            while Instant::now() < until {
                let events: Vec<Value> = app_events(c, n, batch)
                    .into_iter()
                    .map(|(t, m)| json!({"timestamp": t, "message": m}))
                    .collect();
                let body = json!({"logGroupName": GROUP, "logStreamName": format!("s-{c}"), "logEvents": events});
                client.call::<_, Value>("PutLogEvents", &body).await?;
                n += batch;
            }
            Ok::<_, anyhow::Error>(n)
        }
    });
    let mut total = 0;
    for r in futures::future::join_all(tasks).await {
        total += r?;
    }
    Ok(total)
}

/// (events/s, server CPU µs per event) with `config`.
async fn measure(args: &Args, label: &str, config: &str) -> Result<(f64, f64)> {
    let bin = logwell_bin(&args.logwell)?;
    let (data_dir, config_path) =
        fresh_data_dir(&None, &format!("logwell-auth-bench-{label}"), config)?;
    let server = ServerProc::start(&bin, &data_dir, &config_path)?;
    let client = logwell_client::Client::new(logwell_client::Settings {
        endpoint: server.endpoint.clone(),
        region: "us-east-1".into(),
        credentials: Some(logwell_client::Credentials {
            access_key_id: KEY.into(),
            secret_access_key: SECRET.into(),
            session_token: None,
        }),
        ca_bundle: None,
    })?;
    client
        .call::<_, Value>("CreateLogGroup", &json!({"logGroupName": GROUP}))
        .await?;
    for c in 0..args.clients {
        client
            .call::<_, Value>(
                "CreateLogStream",
                &json!({"logGroupName": GROUP, "logStreamName": format!("s-{c}")}),
            )
            .await?;
    }
    let warm = Duration::from_secs_f64(args.seconds / 3.0);
    flood(&client, args.clients, args.batch, Instant::now() + warm).await?;
    let cpu0 = server.cpu_seconds();
    let n = flood(
        &client,
        args.clients,
        args.batch,
        Instant::now() + Duration::from_secs_f64(args.seconds),
    )
    .await?;
    let cpu = server.cpu_seconds() - cpu0;
    let _ = std::fs::remove_dir_all(&data_dir);
    Ok((n as f64 / args.seconds, cpu / n as f64 * 1e6))
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    println!("logwell authentication benchmark");
    println!("machine: {}", machine());
    println!(
        "{} clients, {}-event batches, {:.0} s per measurement; every request signed by logwell-client\n",
        args.clients, args.batch, args.seconds
    );
    let credential = format!(
        "[[auth.credentials]]\naccess_key_id = \"{KEY}\"\nsecret_access_key = \"{SECRET}\"\naccount_id = \"000000000000\"\nuser = \"bench\"\n"
    );
    let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["logs:CreateLogGroup","logs:CreateLogStream","logs:PutLogEvents"],"Resource":"arn:aws:logs:*:*:log-group:/bench/*"}]}"#;
    let with_policy = format!("{credential}policy = '''{policy}'''\n");
    let (open_rate, open_us) = measure(&args, "open", "").await?;
    println!("| server | ingest | server CPU per event |\n|---|---|---|");
    println!(
        "| no credentials (signatures not checked) | {open_rate:.0} events/s | {open_us:.2} µs |"
    );
    for (label, config, what) in [
        ("verify", credential.as_str(), "SigV4 verified"),
        (
            "policy",
            with_policy.as_str(),
            "SigV4 verified + identity policy",
        ),
    ] {
        let (rate, us) = measure(&args, label, config).await?;
        println!(
            "| {what} | {rate:.0} events/s ({:+.1}%) | {us:.2} µs ({:+.1}%) |",
            (rate / open_rate - 1.0) * 100.0,
            (us / open_us - 1.0) * 100.0
        );
    }
    Ok(())
}

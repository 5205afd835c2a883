//! End-to-end benchmark: starts a `logwell serve` process, drives it through the HTTP API, and
//! prints what a user pays and gets:
//!
//! - ingest events/s through PutLogEvents (concurrent clients, 10,000-event batches, fsync on),
//!   and events per server CPU-second (from /proc, so client work is not counted);
//! - bytes per event on disk after flush and after compaction, for generated JSON application
//!   logs; and for the Loghub 2k samples, per file and all-in (a store of their own), against
//!   `zstd -19` and `xz -9e` of the raw files;
//! - objects per GB stored;
//! - the time to read a whole stream back with GetLogEvents.
//!
//! Run: `cargo run --release -p logwell-benches --bin e2e` (add `-- --help` for sizes).

#[path = "common.rs"]
mod common;

use anyhow::{bail, Result};
use clap::Parser;
use common::{
    create, dir_bytes, flood, fresh_data_dir, logwell_bin, machine, manifest, now_ms, put_body,
    segment_files, settled, ServerProc,
};
use futures::StreamExt;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Parser)]
struct Args {
    /// Generated JSON events to ingest.
    #[arg(long, default_value_t = 2_000_000)]
    events: usize,
    /// Concurrent PutLogEvents clients.
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// Events per PutLogEvents call.
    #[arg(long, default_value_t = 10_000)]
    batch: usize,
    /// The Loghub 2k samples directory.
    #[arg(long, default_value = "../shared/datasets/loghub-2k")]
    loghub: PathBuf,
    /// The logwell binary (default: next to this one).
    #[arg(long)]
    logwell: Option<PathBuf>,
    /// Where to keep the server's data (default: a new temporary directory).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Store plain Parquet and WAL (`[storage] encrypt = false`), to measure what encryption
    /// at rest costs against the default.
    #[arg(long)]
    no_encrypt: bool,
    /// Extra `[storage]` settings, `key = value` each (`--storage 'field_columns_at_flush =
    /// false'`), to measure what one costs against the default.
    #[arg(long)]
    storage: Vec<String>,
    /// Seconds clients put events while compaction rewrites a store of `--events` flushed
    /// events, and again once it is done (0 skips it).
    #[arg(long, default_value_t = 3)]
    while_compacting_s: u64,
}

/// A ~130-byte JSON application log line.
fn json_line(i: usize) -> String {
    const LEVELS: [&str; 4] = ["INFO", "INFO", "WARN", "ERROR"];
    const PATHS: [&str; 5] = ["/orders", "/orders/{id}", "/cart", "/login", "/search"];
    let status = if i % 97 == 0 {
        500
    } else if i % 13 == 0 {
        404
    } else {
        200
    };
    format!(
        r#"{{"level":"{}","svc":"orders-api","msg":"GET {} {}","latency_ms":{},"user":"u-{:05}","trace":"{:016x}"}}"#,
        LEVELS[i % 4],
        PATHS[i % 5],
        status,
        (i * 7919) % 900 + 3,
        (i * 31) % 50_000,
        (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
    )
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let bin = logwell_bin(&args.logwell)?;
    // A size-triggered flush during ingest, as in production; compaction every second.
    let (data_dir, config) = fresh_data_dir(
        &args.data_dir,
        "logwell-bench",
        &format!(
            "[storage]\nflush_age = 3600\nmaintenance_interval = 1\nencrypt = {}\n{}\n",
            !args.no_encrypt,
            args.storage.join("\n")
        ),
    )?;
    let store = data_dir.join("store");

    println!("logwell end-to-end benchmark");
    println!("machine: {}", machine());
    if !args.storage.is_empty() {
        println!("storage settings: {}", args.storage.join(", "));
    }

    // ---------------------------------------------------------------- ingest
    let server = ServerProc::start(&bin, &data_dir, &config)?;
    let streams: Vec<String> = (0..args.clients).map(|i| format!("client-{i}")).collect();
    create(&server, "/bench/json", &streams).await?;
    let per_client = args.events / args.clients;
    let base = now_ms() - 60_000;
    let (bodies, raw_bytes, calls) =
        json_bodies("/bench/json", &streams, per_client, base, args.batch);
    let total_events = per_client * args.clients;
    let cpu0 = server.cpu_seconds();
    let t0 = Instant::now();
    put_all(&server, bodies, args.clients).await?;
    let wall = t0.elapsed().as_secs_f64();
    let cpu = server.cpu_seconds() - cpu0;
    println!("\n## Ingest through the HTTP API (fsync on every acknowledged batch)");
    println!(
        "events: {total_events}, average size {:.0} bytes, {} clients, {calls} PutLogEvents calls of up to {} events and 1 MiB each",
        raw_bytes as f64 / total_events as f64 - 1.0,
        args.clients,
        args.batch
    );
    println!("ingest: {:.0} events/s wall ({wall:.2} s), {:.0} events per server CPU-second ({cpu:.2} CPU-s)", total_events as f64 / wall, total_events as f64 / cpu.max(1e-9));

    // ---------------------------------------------------------------- read back
    let t0 = Instant::now();
    let mut token: Option<String> = None;
    let mut read = 0usize;
    loop {
        let mut body = json!({"logGroupName": "/bench/json", "logStreamName": &streams[0], "startFromHead": true});
        if let Some(t) = &token {
            body["nextToken"] = json!(t);
        }
        let page = server.call("GetLogEvents", body.to_string()).await?;
        read += page["events"].as_array().map_or(0, |a| a.len());
        let next = page["nextForwardToken"].as_str().map(str::to_string);
        if next == token {
            break;
        }
        token = next;
    }
    let read_s = t0.elapsed().as_secs_f64();
    println!("\n## Read a whole stream back (GetLogEvents, forward paging)");
    println!(
        "stream of {read} events: {read_s:.2} s, {:.0} events/s",
        read as f64 / read_s
    );
    if read != per_client {
        bail!("read back {read} events, expected {per_client}");
    }

    // Clean stop flushes; restart lets compaction merge what flushes left.
    server.stop()?;
    let (flushed, flushed_files) = dir_bytes(&store, ".parquet");
    // Second run: compaction may now rewrite every segment, as it does to cold data in production.
    let level: i32 = std::env::var("LOGWELL_BENCH_ZSTD")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(15);
    std::fs::write(
        &config,
        format!("[storage]\nflush_age = 3600\nmaintenance_interval = 1\nrecompress_after = 0\ncompaction_zstd_level = {level}\n"),
    )?;
    let server = ServerProc::start(&bin, &data_dir, &config)?;
    let t0 = Instant::now();
    settled(&store).await?;
    // The server did nothing else since it started: its CPU is the rewrite's (and start-up's).
    let (compaction_cpu, compaction_wall) = (server.cpu_seconds(), t0.elapsed().as_secs_f64());
    let (compacted, compacted_files) = dir_bytes(&store, ".parquet");
    let (json_bytes, _) = dir_bytes(&store.join("segments"), ".parquet");
    println!("\n## Storage");
    println!("after flush: {flushed_files} segment files, {flushed} bytes; after compaction: {compacted_files} files, {compacted} bytes");
    println!(
        "compaction (zstd {level}, split messages where smaller): {:.0} MB of raw text rewritten in {compaction_cpu:.2} server CPU-s, {:.1} MB/s per core ({compaction_wall:.1} s wall, polled every 0.5 s)",
        raw_bytes as f64 / 1e6,
        raw_bytes as f64 / 1e6 / compaction_cpu.max(1e-9)
    );
    let per_gb = compacted_files as f64 / (compacted as f64 / 1e9);
    println!("objects per GB stored: {per_gb:.1}");
    let _ = json_bytes;
    // Per-group sizes come from the catalog's segments: JSON group vs Loghub groups.
    let groups = server
        .call(
            "DescribeLogGroups",
            json!({"logGroupNamePrefix": "/"}).to_string(),
        )
        .await?;
    let mut json_stored = 0f64;
    for g in groups["logGroups"].as_array().into_iter().flatten() {
        json_stored += g["storedBytes"].as_f64().unwrap_or(0.0);
    }
    println!(
        "generated JSON logs: {:.2} bytes/event ({:.1}x smaller than the raw text)",
        json_stored / total_events as f64,
        raw_bytes as f64 / json_stored
    );

    server.stop()?;
    if args.data_dir.is_none() {
        let _ = std::fs::remove_dir_all(&data_dir);
        let _ = std::fs::remove_file(&config);
    }
    ingest_while_compacting(&args, &bin).await?;
    loghub_storage(&args, &bin).await
}

/// Ingest while compaction runs: a store holding `--events` flushed events restarts with
/// compaction due at once, and clients put events for `--while-compacting-s` while it rewrites
/// them, then as long again once it is done, so the two rates compare.
async fn ingest_while_compacting(args: &Args, bin: &Path) -> Result<()> {
    if args.while_compacting_s == 0 {
        return Ok(());
    }
    let settings = |extra: &str| {
        format!(
            "[storage]\nflush_age = 3600\n{extra}encrypt = {}\n{}\n",
            !args.no_encrypt,
            args.storage.join("\n")
        )
    };
    let (data_dir, config) = fresh_data_dir(
        &args
            .data_dir
            .as_ref()
            .map(|d| d.with_extension("compacting")),
        "logwell-bench-compacting",
        &settings(""),
    )?;
    let store = data_dir.join("store");
    let server = ServerProc::start(bin, &data_dir, &config)?;
    let streams: Vec<String> = (0..args.clients).map(|i| format!("client-{i}")).collect();
    let flooded = (0..args.clients).map(|c| format!("flood-{c}"));
    create(
        &server,
        "/bench/json",
        &[streams.clone(), flooded.collect()].concat(),
    )
    .await?;
    let per_client = args.events / args.clients;
    let (bodies, _, _) = json_bodies(
        "/bench/json",
        &streams,
        per_client,
        now_ms() - 60_000,
        args.batch,
    );
    put_all(&server, bodies, args.clients).await?;
    server.stop()?;
    std::fs::write(
        &config,
        settings("maintenance_interval = 1\nrecompress_after = 0\n"),
    )?;
    let server = ServerProc::start(bin, &data_dir, &config)?;
    let window = Duration::from_secs(args.while_compacting_s);
    println!(
        "\n## Ingest while compaction runs ({} flushed events rewritten at once)",
        args.events
    );
    let (rate, per_cpu, cpu) = flood_for(&server, args.clients, window).await?;
    println!("while compacting: {rate:.0} events/s wall, {per_cpu:.0} events per server CPU-second ({cpu:.2} CPU-s in {} s, compaction's included)", window.as_secs());
    let m = manifest(&store)?;
    let waiting = m["segments"].as_array().into_iter().flatten();
    if waiting.filter(|s| s["level"].as_u64() == Some(0)).count() == 0 {
        println!("(compaction finished within the window: the figure is partly idle)");
    }
    settled(&store).await?;
    server.stop()?;
    // The same clients on the same store with compaction not due (as during the first load).
    std::fs::write(&config, settings(""))?;
    let server = ServerProc::start(bin, &data_dir, &config)?;
    let (rate, per_cpu, cpu) = flood_for(&server, args.clients, window).await?;
    println!("with compaction idle: {rate:.0} events/s wall, {per_cpu:.0} events per server CPU-second ({cpu:.2} CPU-s in {} s)", window.as_secs());
    server.stop()?;
    if args.data_dir.is_none() {
        let _ = std::fs::remove_dir_all(&data_dir);
        let _ = std::fs::remove_file(&config);
    }
    Ok(())
}

/// PutLogEvents bodies for `group`, one list per stream (client), built before any clock starts:
/// the benchmark measures the server. Batches hold up to `batch` events and never more than
/// PutLogEvents' 1 MiB (26 bytes per event counted), so ~130-byte events go ~6,700 to a call.
/// Event `i` of client `c` is `json_line(c * per_client + i)`. Returns the bodies, the raw bytes
/// (a newline per event) and the number of calls.
fn json_bodies(
    group: &str,
    streams: &[String],
    per_client: usize,
    base: i64,
    batch: usize,
) -> (Vec<Vec<String>>, u64, usize) {
    let mut bodies: Vec<Vec<String>> = Vec::new();
    let mut raw_bytes = 0u64;
    let mut calls = 0usize;
    for (c, stream) in streams.iter().enumerate() {
        let mut v = Vec::new();
        let mut evs: Vec<(i64, String)> = Vec::new();
        let mut size = 0usize;
        for i in 0..per_client {
            let m = json_line(c * per_client + i);
            raw_bytes += m.len() as u64 + 1;
            if evs.len() == batch || size + m.len() + 26 > 1_048_576 {
                v.push(put_body(group, stream, &evs));
                evs.clear();
                size = 0;
            }
            size += m.len() + 26;
            evs.push((base + (i as i64 * 60_000 / per_client as i64), m));
        }
        if !evs.is_empty() {
            v.push(put_body(group, stream, &evs));
        }
        calls += v.len();
        bodies.push(v);
    }
    (bodies, raw_bytes, calls)
}

/// Sends each stream's bodies in order, `clients` streams at once.
async fn put_all(server: &ServerProc, bodies: Vec<Vec<String>>, clients: usize) -> Result<()> {
    let results = futures::stream::iter(bodies.into_iter().map(|bs| async move {
        for b in bs {
            server.call("PutLogEvents", b).await?;
        }
        Ok::<_, anyhow::Error>(())
    }))
    .buffer_unordered(clients)
    .collect::<Vec<_>>()
    .await;
    results.into_iter().collect()
}

/// Events put by `clients` flooding `/bench/json` for `window`: per second of wall time, per
/// server CPU-second, and the server CPU-seconds spent.
async fn flood_for(
    server: &ServerProc,
    clients: usize,
    window: Duration,
) -> Result<(f64, f64, f64)> {
    let cpu0 = server.cpu_seconds();
    let n = flood(
        server,
        "/bench/json",
        clients,
        5_000,
        Instant::now() + window,
    )
    .await? as f64;
    let cpu = server.cpu_seconds() - cpu0;
    Ok((n / window.as_secs_f64(), n / cpu.max(1e-9), cpu))
}

/// The Loghub 2k samples, one log group per file, in a store of their own so that every byte of
/// it counts (segments and catalog): bytes per line per file and in total, right after the
/// flush and once compaction has rewritten every segment, next to `zstd -19` and `xz -9e` of
/// the same raw files, computed here.
async fn loghub_storage(args: &Args, bin: &Path) -> Result<()> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(&args.loghub)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.to_string_lossy().ends_with("_2k.log"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    if files.is_empty() {
        println!("\nloghub 2k: no samples in {}", args.loghub.display());
        return Ok(());
    }
    let settings = format!(
        "[storage]\nflush_age = 3600\nencrypt = {}\n{}\n",
        !args.no_encrypt,
        args.storage.join("\n")
    );
    let (data_dir, config) = fresh_data_dir(
        &args.data_dir.as_ref().map(|d| d.with_extension("loghub")),
        "logwell-bench-loghub",
        &settings,
    )?;
    let store = data_dir.join("store");
    let server = ServerProc::start(bin, &data_dir, &config)?;
    struct Sample {
        name: String,
        lines: usize,
        raw: u64,
        zstd: u64,
        xz: Option<u64>,
    }
    let mut samples = Vec::new();
    for f in &files {
        let name = f
            .file_name()
            .unwrap()
            .to_string_lossy()
            .trim_end_matches("_2k.log")
            .to_string();
        let bytes = std::fs::read(f)?;
        let text = String::from_utf8_lossy(&bytes).into_owned();
        // An event cannot be empty: empty lines are not put (Loghub 2k has none).
        let lines: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
        let group = format!("/loghub/{name}");
        create(&server, &group, &["main".to_string()]).await?;
        let now = now_ms() - 10_000;
        let evs: Vec<(i64, String)> = lines
            .iter()
            .enumerate()
            .map(|(i, l)| (now + i as i64, l.to_string()))
            .collect();
        server
            .call("PutLogEvents", put_body(&group, "main", &evs))
            .await?;
        samples.push(Sample {
            name,
            lines: lines.len(),
            raw: bytes.len() as u64,
            zstd: zstd::bulk::compress(&bytes, 19)?.len() as u64,
            xz: xz_9e(f),
        });
    }
    // A clean stop flushes: the fresh state. A restart with compaction due at once rewrites
    // every segment, as it does to cold data: the settled state.
    server.stop()?;
    let fresh = group_bytes(&store)?;
    let (fresh_all, _) = dir_bytes(&store, "");
    let compaction =
        std::fs::read_to_string(&config)? + "maintenance_interval = 1\nrecompress_after = 0\n";
    std::fs::write(&config, compaction)?;
    let server = ServerProc::start(bin, &data_dir, &config)?;
    settled(&store).await?;
    server.stop()?;
    let compacted = group_bytes(&store)?;
    let (compacted_all, compacted_files) = dir_bytes(&store, "");

    println!("\n## Loghub 2k: bytes per line (one log group per file)");
    println!(
        "| file | lines | raw | fresh | compacted | zstd -19 | xz -9e | compacted / zstd -19 |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let per = |b: u64, n: usize| format!("{:.2}", b as f64 / n as f64);
    for s in &samples {
        let group = format!("/loghub/{}", s.name);
        let (f, c) = (fresh[&group], compacted[&group]);
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {:.2}x |",
            s.name,
            s.lines,
            per(s.raw, s.lines),
            per(f, s.lines),
            per(c, s.lines),
            per(s.zstd, s.lines),
            s.xz.map_or("-".into(), |x| per(x, s.lines)),
            c as f64 / s.zstd as f64
        );
    }
    let lines: usize = samples.iter().map(|s| s.lines).sum();
    let raw: u64 = samples.iter().map(|s| s.raw).sum();
    let zstd: u64 = samples.iter().map(|s| s.zstd).sum();
    let xz: Option<u64> = samples.iter().map(|s| s.xz).sum();
    println!(
        "| all-in (every byte of the store) | {lines} | {} | {} | {} | {} | {} | {:.2}x |",
        per(raw, lines),
        per(fresh_all, lines),
        per(compacted_all, lines),
        per(zstd, lines),
        xz.map_or("-".into(), |x| per(x, lines)),
        compacted_all as f64 / zstd as f64
    );
    println!(
        "loghub 2k ({} files, {lines} lines, {raw} raw bytes): {compacted_all} bytes stored all-in after compaction ({compacted_files} objects, {:.0} per GB), {:.2} bytes/line; zstd -19 of the raw text {zstd} bytes ({:.2} bytes/line), xz -9e {}",
        samples.len(),
        compacted_files as f64 / (compacted_all as f64 / 1e9),
        compacted_all as f64 / lines as f64,
        zstd as f64 / lines as f64,
        xz.map_or("not measured (no xz)".into(), |x| format!("{x} bytes ({:.2} bytes/line)", x as f64 / lines as f64)),
    );
    if args.data_dir.is_none() {
        let _ = std::fs::remove_dir_all(&data_dir);
        let _ = std::fs::remove_file(&config);
    }
    Ok(())
}

/// Segment bytes of each log group, from the newest manifest.
fn group_bytes(store: &Path) -> Result<std::collections::BTreeMap<String, u64>> {
    Ok(segment_files(store)?
        .into_iter()
        .map(|(g, files)| {
            let bytes = files
                .iter()
                .map(|f| std::fs::metadata(f).map_or(0, |m| m.len()))
                .sum();
            (g, bytes)
        })
        .collect())
}

/// `xz -9e` of a file, by Debian's xz (None where it is not installed).
fn xz_9e(file: &Path) -> Option<u64> {
    let out = std::process::Command::new("xz")
        .args(["-9e", "-c", "-T1"])
        .arg(file)
        .output()
        .ok()?;
    out.status.success().then_some(out.stdout.len() as u64)
}

//! Query benchmark: ingests generated JSON application logs, Lambda-style lines and VPC flow logs
//! through the API, flushes them to Parquet, then runs a fixed set of typical Logs Insights
//! queries through StartQuery/GetQueryResults and the same questions in SQL on DuckDB (from PyPI)
//! over the very same Parquet files. Prints latency, raw-log bytes scanned per second, the ratio
//! to DuckDB, and whether both engines gave the same answer. DuckDB answers JSON questions with
//! `json_extract_string` on the message, as SQL users of raw logs do; where logwell stored the
//! field as a segment column, DuckDB is also timed reading that column. `--field-columns 0`
//! stores none, to measure what the columns buy and cost (stored bytes per event are printed).
//!
//! Run: `cargo build --release -p logwell-benches -p logwell-cli && target/release/query-bench`
//! (DuckDB must be importable by `--python`; `-- --help` for sizes).

#[path = "common.rs"]
mod common;

use anyhow::{bail, Context, Result};
use clap::Parser;
use common::{batches, create, fresh_data_dir, logwell_bin, machine, now_ms, ServerProc};
use futures::StreamExt;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Parser)]
struct Args {
    /// Events in all (60% JSON application logs, 20% Lambda, 20% VPC flow logs).
    #[arg(long, default_value_t = 10_000_000)]
    events: usize,
    /// Concurrent PutLogEvents clients while loading.
    #[arg(long, default_value_t = 4)]
    clients: usize,
    /// Runs per query; the best is reported for both engines.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Python with duckdb importable.
    #[arg(long, default_value = "python3")]
    python: String,
    /// The logwell binary (default: next to this one).
    #[arg(long)]
    logwell: Option<PathBuf>,
    /// Where to keep the server's data (default: a new temporary directory).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// `[storage] field_columns`: frequent JSON fields stored as segment columns (0: none).
    #[arg(long, default_value_t = 32)]
    field_columns: usize,
    /// Run only the queries whose name contains this text (for profiling one of them).
    #[arg(long)]
    only: Option<String>,
}

const LEVELS: [&str; 4] = ["INFO", "INFO", "WARN", "ERROR"];
const PATHS: [&str; 5] = ["/orders", "/orders/{id}", "/cart", "/login", "/search"];

fn app_line(i: usize) -> String {
    let status = if i % 97 == 0 {
        500
    } else if i % 13 == 0 {
        404
    } else {
        200
    };
    format!(
        r#"{{"level":"{}","svc":"orders-api","path":"{}","status":{},"latency_ms":{},"user":"u-{:05}","trace":"{:016x}"}}"#,
        LEVELS[i % 4],
        PATHS[i % 5],
        status,
        (i * 7919) % 900 + 3,
        (i * 31) % 50_000,
        (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
    )
}

fn lambda_line(i: usize) -> String {
    let inv = i / 4;
    let id = format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        inv * 2_654_435_761 % 0xffff_ffff,
        inv % 0xffff,
        inv % 0xfff,
        (inv * 7) % 0xfff,
        inv * 97
    );
    match i % 4 {
        0 => format!("START RequestId: {id} Version: $LATEST"),
        1 => format!("{id}\tINFO\tprocessed order {} for customer c-{:04}", inv * 3, inv % 9000),
        2 => format!("END RequestId: {id}"),
        _ => format!(
            "REPORT RequestId: {id}\tDuration: {}.{:02} ms\tBilled Duration: {} ms\tMemory Size: 256 MB\tMax Memory Used: {} MB",
            (inv * 37) % 900 + 2,
            inv % 100,
            (inv * 37) % 900 + 3,
            60 + inv % 120
        ),
    }
}

fn vpc_line(i: usize) -> String {
    let action = if i % 11 == 0 { "REJECT" } else { "ACCEPT" };
    format!(
        "2 123456789012 eni-{:08x} 10.0.{}.{} 172.31.{}.{} {} {} 6 {} {} 1716100000 1716100060 {action} OK",
        i % 64,
        (i / 7) % 32,
        i % 250,
        (i / 3) % 16,
        (i * 7) % 250,
        [443, 80, 22, 5432][i % 4],
        1024 + (i * 131) % 60_000,
        1 + i % 40,
        40 + (i * 53) % 15_000,
    )
}

struct Query {
    name: &'static str,
    group: &'static str,
    /// An Insights query, or with `filter_events` a FilterLogEvents pattern (one page of 1,000
    /// events, oldest first; the answer is the page's size in events and message bytes).
    insights: &'static str,
    filter_events: bool,
    /// The same question in DuckDB SQL over the group's Parquet files (view `<group>_logs`).
    sql: &'static str,
    /// ... and reading the stored field columns instead of the message, for JSON questions.
    sql_columns: Option<&'static str>,
}

const QUERIES: &[Query] = &[
    Query {
        name: "count by bin(5m)",
        group: "app",
        filter_events: false,
        insights: "stats count(*) as n by bin(5m)",
        sql: "SELECT count(*) AS n FROM app_logs GROUP BY \"timestamp\" // 300000",
        sql_columns: None,
    },
    Query {
        name: "filter by regex",
        group: "app",
        filter_events: false,
        insights: "filter @message like /u-0012[0-9]/ | stats count(*) as n",
        sql: "SELECT count(*) AS n FROM app_logs WHERE regexp_matches(message, 'u-0012[0-9]')",
        sql_columns: None,
    },
    Query {
        name: "stats by JSON field",
        group: "app",
        filter_events: false,
        insights: "stats avg(latency_ms) as avg_ms, count(*) as n by level",
        sql: "SELECT avg(TRY_CAST(json_extract_string(message, '$.latency_ms') AS DOUBLE)) AS avg_ms, count(*) AS n FROM app_logs GROUP BY json_extract_string(message, '$.level')",
        sql_columns: Some("SELECT avg(TRY_CAST(\"field:latency_ms\" AS DOUBLE)) AS avg_ms, count(*) AS n FROM app_logs GROUP BY \"field:level\""),
    },
    Query {
        name: "top-N users",
        group: "app",
        filter_events: false,
        insights: "filter status >= 400 | stats count(*) as n by user | sort n desc | limit 10",
        sql: "SELECT count(*) AS n FROM app_logs WHERE TRY_CAST(json_extract_string(message, '$.status') AS DOUBLE) >= 400 GROUP BY json_extract_string(message, '$.user') ORDER BY n DESC LIMIT 10",
        sql_columns: Some("SELECT count(*) AS n FROM app_logs WHERE TRY_CAST(\"field:status\" AS DOUBLE) >= 400 GROUP BY \"field:user\" ORDER BY n DESC LIMIT 10"),
    },
    Query {
        name: "parse + stats (Lambda)",
        group: "lambda",
        filter_events: false,
        insights: "filter @message like 'REPORT' | parse @message 'Duration: * ms' as d | stats avg(d) as avg_d, max(d) as max_d, count(*) as n",
        sql: "SELECT avg(CAST(regexp_extract(message, 'Duration: (.*?) ms', 1) AS DOUBLE)) AS avg_d, max(CAST(regexp_extract(message, 'Duration: (.*?) ms', 1) AS DOUBLE)) AS max_d, count(*) AS n FROM lambda_logs WHERE contains(message, 'REPORT')",
        sql_columns: None,
    },
    Query {
        name: "parse + top-N (VPC)",
        group: "vpc",
        filter_events: false,
        insights: "parse @message '* * * * * * * * * * * * * *' as v, acct, eni, src, dst, sport, dport, proto, pkts, bytes, t0, t1, action, status | filter action = 'REJECT' | stats sum(bytes) as b by src | sort b desc | limit 10",
        sql: "SELECT sum(CAST(string_split(message, ' ')[10] AS DOUBLE)) AS b FROM vpc_logs WHERE string_split(message, ' ')[13] = 'REJECT' GROUP BY string_split(message, ' ')[4] ORDER BY b DESC LIMIT 10",
        sql_columns: None,
    },
    Query {
        name: "FilterLogEvents JSON pattern",
        group: "app",
        filter_events: true,
        insights: "{ $.level = \"ERROR\" && $.status = 500 }",
        sql: "SELECT count(*) AS n, sum(length(message)) AS bytes FROM (SELECT \"timestamp\", message FROM app_logs WHERE json_extract_string(message, '$.level') = 'ERROR' AND TRY_CAST(json_extract_string(message, '$.status') AS DOUBLE) = 500 ORDER BY \"timestamp\" LIMIT 1000)",
        sql_columns: Some("SELECT count(*) AS n, sum(length(message)) AS bytes FROM (SELECT \"timestamp\", message FROM app_logs WHERE \"field:level\" = 'ERROR' AND TRY_CAST(\"field:status\" AS DOUBLE) = 500 ORDER BY \"timestamp\" LIMIT 1000)"),
    },
];

/// Whether two results hold the same rows of numbers, in any order, up to float rounding
/// (the engines sum in different orders).
fn same_numbers(a: &[Vec<f64>], b: &[Vec<f64>]) -> bool {
    let sorted = |rows: &[Vec<f64>]| {
        let mut r = rows.to_vec();
        r.sort_by(|x, y| x.partial_cmp(y).unwrap_or(std::cmp::Ordering::Equal));
        r
    };
    let (a, b) = (sorted(a), sorted(b));
    a.len() == b.len()
        && a.iter().zip(&b).all(|(x, y)| {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|(p, q)| (p - q).abs() <= 1e-9 * p.abs().max(q.abs()).max(1.0))
        })
}

const DUCKDB_SCRIPT: &str = r#"
import json, sys, time
import duckdb
spec = json.load(sys.stdin)
con = duckdb.connect()
con.execute("SET threads TO %d" % spec["threads"])
for name, files in spec["tables"].items():
    con.execute("CREATE VIEW %s AS SELECT * FROM read_parquet(%s, union_by_name = true)" % (name, json.dumps(files).replace('"', "'")))
out = {}
for q in spec["queries"]:
    if q["sql"] is None:
        continue
    best = None
    rows = None
    for _ in range(spec["runs"]):
        t = time.perf_counter()
        rows = con.execute(q["sql"]).fetchall()
        dt = time.perf_counter() - t
        best = dt if best is None else min(best, dt)
    out[q["name"]] = {"seconds": best, "rows": [[float(v) if v is not None else 0.0 for v in r] for r in rows]}
print(json.dumps(out))
"#;

async fn run_insights(
    server: &ServerProc,
    group: &str,
    query: &str,
    range: (i64, i64),
) -> Result<(f64, Vec<Vec<f64>>, Value)> {
    let t0 = Instant::now();
    let start = server
        .call(
            "StartQuery",
            json!({"logGroupName": group, "startTime": range.0 / 1000, "endTime": range.1 / 1000 + 1, "queryString": query}).to_string(),
        )
        .await?;
    let id = start["queryId"].as_str().unwrap_or_default().to_string();
    loop {
        let r = server
            .call("GetQueryResults", json!({"queryId": id}).to_string())
            .await?;
        match r["status"].as_str() {
            Some("Complete") => {
                let secs = t0.elapsed().as_secs_f64();
                let rows = r["results"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|row| {
                        row.as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(|c| c["value"].as_str()?.parse::<f64>().ok())
                            .collect()
                    })
                    .collect();
                return Ok((secs, rows, r["statistics"].clone()));
            }
            Some("Running") | Some("Scheduled") => {
                tokio::time::sleep(Duration::from_millis(5)).await
            }
            other => bail!("query {query:?} ended {other:?}: {r}"),
        }
    }
}

/// One FilterLogEvents page: its latency and its size (events, message bytes).
async fn run_filter(
    server: &ServerProc,
    group: &str,
    pattern: &str,
    range: (i64, i64),
) -> Result<(f64, Vec<Vec<f64>>)> {
    let t0 = Instant::now();
    let r = server
        .call(
            "FilterLogEvents",
            json!({"logGroupName": group, "startTime": range.0, "endTime": range.1, "filterPattern": pattern, "limit": 1000}).to_string(),
        )
        .await?;
    let events = r["events"].as_array().cloned().unwrap_or_default();
    let bytes: usize = events
        .iter()
        .map(|e| e["message"].as_str().map_or(0, str::len))
        .sum();
    Ok((
        t0.elapsed().as_secs_f64(),
        vec![vec![events.len() as f64, bytes as f64]],
    ))
}

/// Segment files of each group, from the newest manifest.
fn segment_files(store: &Path) -> Result<BTreeMap<String, Vec<String>>> {
    let mut manifests: Vec<PathBuf> = std::fs::read_dir(store.join("catalog"))?
        .flatten()
        .map(|e| e.path())
        .collect();
    manifests.sort();
    let newest = manifests.last().context("no manifest")?;
    let m: Value = serde_json::from_str(&std::fs::read_to_string(newest)?)?;
    let mut ids = BTreeMap::new();
    for (name, g) in m["metadata"]["groups"].as_object().context("groups")? {
        ids.insert(g["group_id"].as_u64().unwrap_or(u64::MAX), name.clone());
    }
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for s in m["segments"].as_array().context("segments")? {
        let gid = s["group_id"].as_u64().unwrap_or(0);
        if let Some(name) = ids.get(&gid) {
            let path = store.join(s["path"].as_str().unwrap_or_default());
            out.entry(name.clone())
                .or_default()
                .push(path.to_string_lossy().into_owned());
        }
    }
    Ok(out)
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let bin = logwell_bin(&args.logwell)?;
    let (data_dir, config) = fresh_data_dir(
        &args.data_dir,
        "logwell-query-bench",
        &format!(
            // Plain segments: DuckDB reads the very files logwell wrote.
            "[storage]\nflush_age = 3600\nmaintenance_interval = 3600\nfield_columns = {}\nfield_columns_at_flush = true\nencrypt = false\n",
            args.field_columns
        ),
    )?;
    let store = data_dir.join("store");

    println!("logwell query benchmark");
    println!("machine: {}", machine());

    // ---------------------------------------------------------------- load
    let server = ServerProc::start(&bin, &data_dir, &config)?;
    let n_app = args.events * 6 / 10;
    let n_lambda = args.events * 2 / 10;
    let n_vpc = args.events - n_app - n_lambda;
    let span_ms: i64 = 3_600_000;
    let base = now_ms() - span_ms - 60_000;
    let mut raw: BTreeMap<&str, u64> = BTreeMap::new();
    let mut bodies: Vec<String> = Vec::new();
    let gens: [(&str, usize, fn(usize) -> String); 3] = [
        ("app", n_app, app_line),
        ("lambda", n_lambda, lambda_line),
        ("vpc", n_vpc, vpc_line),
    ];
    for (name, n, gen) in gens {
        let group = format!("/bench/{name}");
        let streams: Vec<String> = (0..args.clients).map(|c| format!("s{c}")).collect();
        create(&server, &group, &streams).await?;
        let per = n / args.clients;
        for (c, stream) in streams.iter().enumerate() {
            let events: Vec<(i64, String)> = (0..per)
                .map(|k| {
                    let i = c * per + k;
                    (base + k as i64 * span_ms / per as i64, gen(i))
                })
                .collect();
            *raw.entry(name).or_default() +=
                events.iter().map(|(_, m)| m.len() as u64).sum::<u64>();
            bodies.extend(batches(&group, stream, &events, 10_000));
        }
    }
    let total: usize =
        (n_app / args.clients + n_lambda / args.clients + n_vpc / args.clients) * args.clients;
    let t0 = Instant::now();
    let results = futures::stream::iter(bodies.into_iter().map(|b| {
        let s = &server;
        async move {
            // Back off while the server sheds load, as the AWS SDKs do.
            loop {
                match s.call("PutLogEvents", b.clone()).await {
                    Err(e) if e.to_string().contains("ThrottlingException") => {
                        tokio::time::sleep(Duration::from_millis(50)).await
                    }
                    other => return other.map(|_| ()),
                }
            }
        }
    }))
    .buffer_unordered(args.clients)
    .collect::<Vec<_>>()
    .await;
    for r in results {
        r?;
    }
    println!(
        "loaded {total} events ({:.1} MB raw) in {:.1} s",
        raw.values().sum::<u64>() as f64 / 1e6,
        t0.elapsed().as_secs_f64()
    );
    // A clean stop flushes everything: both engines then read the same Parquet files.
    server.stop()?;
    let server = ServerProc::start(&bin, &data_dir, &config)?;
    let files = segment_files(&store)?;
    for (group, fs) in &files {
        let bytes: u64 = fs
            .iter()
            .map(|f| std::fs::metadata(f).map_or(0, |m| m.len()))
            .sum();
        let name = group.trim_start_matches("/bench/");
        let events = match name {
            "app" => n_app,
            "lambda" => n_lambda,
            _ => n_vpc,
        };
        println!(
            "stored {group}: {:.1} MB in {} segments, {:.1} bytes/event ({:.1} raw)",
            bytes as f64 / 1e6,
            fs.len(),
            bytes as f64 / events.max(1) as f64,
            raw.get(name).copied().unwrap_or(0) as f64 / events.max(1) as f64
        );
    }
    let range = (base - 1000, base + span_ms + 1000);
    let queries: Vec<&Query> = QUERIES
        .iter()
        .filter(|q| args.only.as_deref().is_none_or(|o| q.name.contains(o)))
        .collect();

    // ---------------------------------------------------------------- DuckDB
    let mut tables = serde_json::Map::new();
    for name in ["app", "lambda", "vpc"] {
        let f = files
            .get(&format!("/bench/{name}"))
            .cloned()
            .unwrap_or_default();
        tables.insert(format!("{name}_logs"), json!(f));
    }
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let spec = json!({
        "tables": tables,
        "runs": args.runs,
        "threads": threads,
        "queries": queries
            .iter()
            .flat_map(|q| {
                [
                    json!({"name": q.name, "sql": q.sql}),
                    json!({
                        "name": format!("{} (columns)", q.name),
                        "sql": q.sql_columns.filter(|_| args.field_columns > 0),
                    }),
                ]
            })
            .collect::<Vec<_>>(),
    });
    let script = data_dir.with_extension("duckdb.py");
    std::fs::write(&script, DUCKDB_SCRIPT)?;
    let mut child = std::process::Command::new(&args.python)
        .arg(&script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("running {} (needs duckdb)", args.python))?;
    {
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(spec.to_string().as_bytes())?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!("DuckDB run failed");
    }
    let duck: Value = serde_json::from_slice(&out.stdout)?;

    // ---------------------------------------------------------------- logwell
    println!(
        "\n| query | logwell | DuckDB | logwell / DuckDB | DuckDB on field columns | raw MB/s (logwell) | same answer |"
    );
    println!("|---|---|---|---|---|---|---|");
    let mut all_same = true;
    for q in &queries {
        let group = format!("/bench/{}", q.group);
        let mut best = f64::MAX;
        let mut rows = Vec::new();
        for _ in 0..args.runs {
            let (secs, r) = if q.filter_events {
                run_filter(&server, &group, q.insights, range).await?
            } else {
                let (secs, r, _) = run_insights(&server, &group, q.insights, range).await?;
                (secs, r)
            };
            best = best.min(secs);
            rows = r;
        }
        let d = &duck[q.name];
        let dsecs = d["seconds"].as_f64().unwrap_or(f64::NAN);
        let drows: Vec<Vec<f64>> = d["rows"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| {
                r.as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_f64)
                    .collect()
            })
            .collect();
        // bin() values are timestamps, not numbers: compare the numeric columns both print.
        let ours: Vec<Vec<f64>> = rows
            .iter()
            .map(|r| r[r.len().saturating_sub(drows.first().map_or(0, |d| d.len()))..].to_vec())
            .collect();
        let same = same_numbers(&ours, &drows);
        if !same {
            eprintln!("{}: logwell {ours:?} vs DuckDB {drows:?}", q.name);
        }
        all_same &= same;
        let mb = raw[q.group] as f64 / 1e6;
        let on_columns = duck[format!("{} (columns)", q.name)]["seconds"]
            .as_f64()
            .map_or("-".to_string(), |s| format!("{:.0} ms", s * 1000.0));
        println!(
            "| {} | {:.0} ms | {:.0} ms | {:.2}x | {} | {:.0} | {} |",
            q.name,
            best * 1000.0,
            dsecs * 1000.0,
            best / dsecs,
            on_columns,
            mb / best,
            if same { "yes" } else { "NO" }
        );
    }
    server.stop()?;
    let _ = std::fs::remove_dir_all(&data_dir);
    if !all_same {
        bail!("logwell and DuckDB disagreed on at least one query");
    }
    Ok(())
}

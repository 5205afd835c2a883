//! Query benchmark: ingests generated JSON application logs, Lambda-style lines and VPC flow logs
//! through the API into a server with a new install's configuration, then runs typical Logs
//! Insights queries (newest and oldest N, JSON fields, percentiles, distinct counts, regex,
//! parse) through StartQuery/GetQueryResults twice: fresh, right after ingest, and settled, once
//! compaction has rewritten every segment. DuckDB (from PyPI) answers the same questions in SQL
//! over the same events in Parquet: the files of a twin server given the same events with
//! `encrypt = false`, since DuckDB cannot read encrypted segments. JSON questions use
//! `json_extract_string` on the message, as SQL users of raw logs do, and once settled also the
//! field columns logwell wrote. Prints each latency, its ratio to DuckDB and their geometric
//! mean, whether both engines gave the same answer, and what encryption costs the settled
//! queries (the twin timed by logwell too).
//!
//! Run: `cargo build --release -p logwell-benches -p logwell-cli && target/release/query-bench`
//! (DuckDB must be importable by `--python`; `-- --help` for sizes).

#[path = "common.rs"]
mod common;

use anyhow::{bail, Context, Result};
use clap::Parser;
use common::{
    app_line, create, fresh_data_dir, logwell_bin, machine, manifest, now_ms, put_body,
    segment_files, settled, vpc_line, ServerProc,
};
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
    /// Seconds after the fresh runs before the same queries run again ("a minute in"): the
    /// time an investigation has queried the data for, 0 to skip.
    #[arg(long, default_value_t = 45)]
    later_s: u64,
    /// Pause between two runs of a query on fresh data, as between an analyst's queries:
    /// buffered batches keep the fields a query extracted once it has run, in the background.
    #[arg(long, default_value_t = 500)]
    pause_ms: u64,
    /// Python with duckdb importable.
    #[arg(long, default_value = "python3")]
    python: String,
    /// The logwell binary (default: next to this one).
    #[arg(long)]
    logwell: Option<PathBuf>,
    /// Where to keep the server's data (default: a new temporary directory).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Run only the queries whose name contains this text (for profiling one of them).
    #[arg(long)]
    only: Option<String>,
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

/// Which columns of the two engines' rows are compared.
#[derive(Clone, Copy)]
enum Check {
    /// The last columns, as many as DuckDB prints (logwell may print a bin() first).
    Trailing,
    /// The first n columns only: a newest-N page compares its timestamps, since which of
    /// several events with the same timestamp fill the last places is up to each engine.
    Leading(usize),
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
    check: Check,
}

/// DuckDB's rendering of an epoch-ms column as Insights prints @timestamp.
macro_rules! ts {
    () => {
        "strftime(make_timestamp(\"timestamp\" * 1000), '%Y-%m-%d %H:%M:%S.%g')"
    };
}

const QUERIES: &[Query] = &[
    Query {
        name: "newest 25",
        group: "app",
        filter_events: false,
        insights: "fields @timestamp, @message | sort @timestamp desc | limit 25",
        sql: concat!("SELECT ", ts!(), " AS t, message FROM app_logs ORDER BY \"timestamp\" DESC LIMIT 25"),
        sql_columns: None,
        check: Check::Leading(1),
    },
    Query {
        name: "newest 25 ERROR",
        group: "app",
        filter_events: false,
        insights: "fields @timestamp, @message | filter level = 'ERROR' | sort @timestamp desc | limit 25",
        sql: concat!("SELECT ", ts!(), " AS t, message FROM app_logs WHERE json_extract_string(message, '$.level') = 'ERROR' ORDER BY \"timestamp\" DESC LIMIT 25"),
        sql_columns: Some(concat!("SELECT ", ts!(), " AS t, message FROM app_logs WHERE \"field:level\" = 'ERROR' ORDER BY \"timestamp\" DESC LIMIT 25")),
        check: Check::Leading(1),
    },
    Query {
        name: "oldest 25 (Lambda)",
        group: "lambda",
        filter_events: false,
        insights: "fields @timestamp, @message | sort @timestamp asc | limit 25",
        sql: concat!("SELECT ", ts!(), " AS t, message FROM lambda_logs ORDER BY \"timestamp\" ASC LIMIT 25"),
        sql_columns: None,
        check: Check::Leading(1),
    },
    Query {
        name: "count by bin(5m)",
        group: "app",
        filter_events: false,
        insights: "stats count(*) as n by bin(5m)",
        sql: "SELECT count(*) AS n FROM app_logs GROUP BY \"timestamp\" // 300000",
        sql_columns: None,
        check: Check::Trailing,
    },
    Query {
        name: "filter by regex",
        group: "app",
        filter_events: false,
        insights: "filter @message like /u-0012[0-9]/ | stats count(*) as n",
        sql: "SELECT count(*) AS n FROM app_logs WHERE regexp_matches(message, 'u-0012[0-9]')",
        sql_columns: None,
        check: Check::Trailing,
    },
    Query {
        name: "field + regex filter",
        group: "app",
        filter_events: false,
        insights: "filter status >= 400 and @message like /u-00[0-4]/ | stats count(*) as n",
        sql: "SELECT count(*) AS n FROM app_logs WHERE TRY_CAST(json_extract_string(message, '$.status') AS DOUBLE) >= 400 AND regexp_matches(message, 'u-00[0-4]')",
        sql_columns: Some("SELECT count(*) AS n FROM app_logs WHERE TRY_CAST(\"field:status\" AS DOUBLE) >= 400 AND regexp_matches(message, 'u-00[0-4]')"),
        check: Check::Trailing,
    },
    Query {
        name: "stats by JSON field",
        group: "app",
        filter_events: false,
        insights: "stats avg(latency_ms) as avg_ms, count(*) as n by level",
        sql: "SELECT avg(TRY_CAST(json_extract_string(message, '$.latency_ms') AS DOUBLE)) AS avg_ms, count(*) AS n FROM app_logs GROUP BY json_extract_string(message, '$.level')",
        sql_columns: Some("SELECT avg(TRY_CAST(\"field:latency_ms\" AS DOUBLE)) AS avg_ms, count(*) AS n FROM app_logs GROUP BY \"field:level\""),
        check: Check::Trailing,
    },
    Query {
        name: "percentiles",
        group: "app",
        filter_events: false,
        insights: "stats pct(latency_ms, 50) as p50, pct(latency_ms, 99) as p99 by path",
        sql: "SELECT quantile_cont(TRY_CAST(json_extract_string(message, '$.latency_ms') AS DOUBLE), 0.5) AS p50, quantile_cont(TRY_CAST(json_extract_string(message, '$.latency_ms') AS DOUBLE), 0.99) AS p99 FROM app_logs GROUP BY json_extract_string(message, '$.path')",
        sql_columns: Some("SELECT quantile_cont(TRY_CAST(\"field:latency_ms\" AS DOUBLE), 0.5) AS p50, quantile_cont(TRY_CAST(\"field:latency_ms\" AS DOUBLE), 0.99) AS p99 FROM app_logs GROUP BY \"field:path\""),
        check: Check::Trailing,
    },
    Query {
        name: "distinct users",
        group: "app",
        filter_events: false,
        insights: "stats count_distinct(user) as users",
        sql: "SELECT count(DISTINCT json_extract_string(message, '$.user')) AS users FROM app_logs",
        sql_columns: Some("SELECT count(DISTINCT \"field:user\") AS users FROM app_logs"),
        check: Check::Trailing,
    },
    Query {
        name: "top-N users",
        group: "app",
        filter_events: false,
        insights: "filter status >= 400 | stats count(*) as n by user | sort n desc | limit 10",
        sql: "SELECT count(*) AS n FROM app_logs WHERE TRY_CAST(json_extract_string(message, '$.status') AS DOUBLE) >= 400 GROUP BY json_extract_string(message, '$.user') ORDER BY n DESC LIMIT 10",
        sql_columns: Some("SELECT count(*) AS n FROM app_logs WHERE TRY_CAST(\"field:status\" AS DOUBLE) >= 400 GROUP BY \"field:user\" ORDER BY n DESC LIMIT 10"),
        check: Check::Trailing,
    },
    Query {
        name: "parse + stats (Lambda)",
        group: "lambda",
        filter_events: false,
        insights: "filter @message like 'REPORT' | parse @message 'Duration: * ms' as d | stats avg(d) as avg_d, max(d) as max_d, count(*) as n",
        sql: "SELECT avg(CAST(regexp_extract(message, 'Duration: (.*?) ms', 1) AS DOUBLE)) AS avg_d, max(CAST(regexp_extract(message, 'Duration: (.*?) ms', 1) AS DOUBLE)) AS max_d, count(*) AS n FROM lambda_logs WHERE contains(message, 'REPORT')",
        sql_columns: None,
        check: Check::Trailing,
    },
    Query {
        name: "parse + top-N (VPC)",
        group: "vpc",
        filter_events: false,
        insights: "parse @message '* * * * * * * * * * * * * *' as v, acct, eni, src, dst, sport, dport, proto, pkts, bytes, t0, t1, action, status | filter action = 'REJECT' | stats sum(bytes) as b by src | sort b desc | limit 10",
        sql: "SELECT sum(CAST(string_split(message, ' ')[10] AS DOUBLE)) AS b FROM vpc_logs WHERE string_split(message, ' ')[13] = 'REJECT' GROUP BY string_split(message, ' ')[4] ORDER BY b DESC LIMIT 10",
        sql_columns: None,
        check: Check::Trailing,
    },
    Query {
        name: "FilterLogEvents JSON pattern",
        group: "app",
        filter_events: true,
        insights: "{ $.level = \"ERROR\" && $.status = 500 }",
        sql: "SELECT count(*) AS n, sum(length(message)) AS bytes FROM (SELECT \"timestamp\", message FROM app_logs WHERE json_extract_string(message, '$.level') = 'ERROR' AND TRY_CAST(json_extract_string(message, '$.status') AS DOUBLE) = 500 ORDER BY \"timestamp\" LIMIT 1000)",
        sql_columns: Some("SELECT count(*) AS n, sum(length(message)) AS bytes FROM (SELECT \"timestamp\", message FROM app_logs WHERE \"field:level\" = 'ERROR' AND TRY_CAST(\"field:status\" AS DOUBLE) = 500 ORDER BY \"timestamp\" LIMIT 1000)"),
        check: Check::Trailing,
    },
];

/// Whether two results hold the same rows, in any order: cells that both read as numbers are
/// equal up to float rounding (the engines sum in different orders), others as text.
fn same_rows(a: &[Vec<String>], b: &[Vec<String>]) -> bool {
    let sorted = |rows: &[Vec<String>]| {
        let mut r = rows.to_vec();
        r.sort();
        r
    };
    let cell = |p: &String, q: &String| match (p.parse::<f64>(), q.parse::<f64>()) {
        (Ok(p), Ok(q)) => (p - q).abs() <= 1e-9 * p.abs().max(q.abs()).max(1.0),
        _ => p == q,
    };
    let (a, b) = (sorted(a), sorted(b));
    a.len() == b.len()
        && a.iter()
            .zip(&b)
            .all(|(x, y)| x.len() == y.len() && x.iter().zip(y).all(|(p, q)| cell(p, q)))
}

/// The columns of each engine's rows that `check` compares.
fn checked(
    check: Check,
    ours: &[Vec<String>],
    duck: &[Vec<String>],
) -> (Vec<Vec<String>>, Vec<Vec<String>>) {
    let width = duck.first().map_or(0, Vec::len);
    match check {
        Check::Trailing => (
            ours.iter()
                .map(|r| r[r.len().saturating_sub(width)..].to_vec())
                .collect(),
            duck.to_vec(),
        ),
        Check::Leading(n) => (
            ours.iter().map(|r| r[..n.min(r.len())].to_vec()).collect(),
            duck.iter().map(|r| r[..n.min(r.len())].to_vec()).collect(),
        ),
    }
}

const DUCKDB_SCRIPT: &str = r#"
import json, sys, time
import duckdb
spec = json.load(sys.stdin)
con = duckdb.connect()
con.execute("SET threads TO %d" % spec["threads"])
for name, files in spec["tables"].items():
    con.execute("CREATE VIEW %s AS SELECT * FROM read_parquet(%s, union_by_name = true)" % (name, json.dumps(files).replace('"', "'")))
def text(v):
    if v is None:
        return "0"
    return v if isinstance(v, str) else repr(float(v))
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
    out[q["name"]] = {"seconds": best, "rows": [[text(v) for v in r] for r in rows]}
print(json.dumps(out))
"#;

/// One run's answer: latency and the rows (cells as text, `@ptr` left out).
type Answer = (f64, Vec<Vec<String>>);

async fn run_insights(
    server: &ServerProc,
    group: &str,
    query: &str,
    range: (i64, i64),
) -> Result<Answer> {
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
                            .filter(|c| c["field"] != "@ptr")
                            .filter_map(|c| Some(c["value"].as_str()?.to_string()))
                            .collect()
                    })
                    .collect();
                return Ok((secs, rows));
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
) -> Result<Answer> {
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
        vec![vec![events.len().to_string(), bytes.to_string()]],
    ))
}

/// Every generated event, as PutLogEvents bodies, and the raw bytes of each group.
struct Load {
    bodies: Vec<String>,
    raw: BTreeMap<&'static str, u64>,
    events: BTreeMap<&'static str, usize>,
    range: (i64, i64),
}

fn generate(args: &Args) -> Load {
    let n_app = args.events * 6 / 10;
    let n_lambda = args.events * 2 / 10;
    let n_vpc = args.events - n_app - n_lambda;
    let span_ms: i64 = 3_600_000;
    let base = now_ms() - span_ms - 60_000;
    let mut raw = BTreeMap::new();
    let mut counts = BTreeMap::new();
    // (first timestamp, body): sorted by time below, so that events arrive in time order
    // across streams and groups, as a live system's do, and flushes cut time slices.
    let mut bodies: Vec<(i64, String)> = Vec::new();
    let gens: [(&'static str, usize, fn(usize) -> String); 3] = [
        ("app", n_app, app_line),
        ("lambda", n_lambda, lambda_line),
        ("vpc", n_vpc, vpc_line),
    ];
    for (name, n, gen) in gens {
        let group = format!("/bench/{name}");
        let per = n / args.clients;
        *counts.entry(name).or_default() += per * args.clients;
        for c in 0..args.clients {
            let events: Vec<(i64, String)> = (0..per)
                .map(|k| {
                    let i = c * per + k;
                    (base + k as i64 * span_ms / per as i64, gen(i))
                })
                .collect();
            *raw.entry(name).or_default() +=
                events.iter().map(|(_, m)| m.len() as u64).sum::<u64>();
            for chunk in events.chunks(5_000) {
                bodies.push((chunk[0].0, put_body(&group, &format!("s{c}"), chunk)));
            }
        }
    }
    bodies.sort_by_key(|(t, _)| *t);
    Load {
        bodies: bodies.into_iter().map(|(_, b)| b).collect(),
        raw,
        events: counts,
        range: (base - 1000, base + span_ms + 1000),
    }
}

/// Creates the groups and puts every body, `clients` at a time; returns the seconds taken.
async fn load(server: &ServerProc, data: &Load, clients: usize) -> Result<f64> {
    for name in ["app", "lambda", "vpc"] {
        let streams: Vec<String> = (0..clients).map(|c| format!("s{c}")).collect();
        create(server, &format!("/bench/{name}"), &streams).await?;
    }
    let t0 = Instant::now();
    let results = futures::stream::iter(data.bodies.iter().map(|b| async move {
        // Back off while the server sheds load, as the AWS SDKs do.
        loop {
            match server.call("PutLogEvents", b.clone()).await {
                Err(e) if e.to_string().contains("ThrottlingException") => {
                    tokio::time::sleep(Duration::from_millis(50)).await
                }
                other => return other.map(|_| ()),
            }
        }
    }))
    .buffer_unordered(clients)
    .collect::<Vec<_>>()
    .await;
    for r in results {
        r?;
    }
    Ok(t0.elapsed().as_secs_f64())
}

/// One query's times on logwell: the first run's, the best of all runs, and the last answer.
struct Timed {
    first: f64,
    best: f64,
    rows: Vec<Vec<String>>,
}

/// Times every query on `server`: `runs` runs each.
async fn time_logwell(
    server: &ServerProc,
    queries: &[&Query],
    range: (i64, i64),
    runs: usize,
    pause: Duration,
) -> Result<Vec<Timed>> {
    let mut out = Vec::new();
    for q in queries {
        let group = format!("/bench/{}", q.group);
        let mut best = f64::MAX;
        let mut first = None;
        let mut rows = Vec::new();
        for run in 0..runs {
            if run > 0 {
                tokio::time::sleep(pause).await;
            }
            let (secs, r) = if q.filter_events {
                run_filter(server, &group, q.insights, range).await?
            } else {
                run_insights(server, &group, q.insights, range).await?
            };
            best = best.min(secs);
            first.get_or_insert(secs);
            rows = r;
        }
        out.push(Timed {
            first: first.unwrap_or(best),
            best,
            rows,
        });
    }
    Ok(out)
}

/// Times every query's SQL (and, with `columns`, its field-column SQL) in DuckDB over `store`'s
/// segments. Keys: the query's name, and `<name> (columns)`.
fn time_duckdb(
    args: &Args,
    store: &Path,
    queries: &[&Query],
    columns: bool,
    script: &Path,
) -> Result<Value> {
    let files = segment_files(store)?;
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
                    json!({"name": format!("{} (columns)", q.name), "sql": q.sql_columns.filter(|_| columns)}),
                ]
            })
            .collect::<Vec<_>>(),
    });
    std::fs::write(script, DUCKDB_SCRIPT)?;
    let mut child = std::process::Command::new(&args.python)
        .arg(script)
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
    Ok(serde_json::from_slice(&out.stdout)?)
}

fn duck_rows(d: &Value) -> Vec<Vec<String>> {
    d["rows"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            r.as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .collect()
}

fn ms(secs: f64) -> String {
    format!("{:.0} ms", secs * 1000.0)
}

fn geomean(ratios: &[f64]) -> f64 {
    (ratios.iter().map(|r| r.ln()).sum::<f64>() / ratios.len().max(1) as f64).exp()
}

/// Bytes and segments of each group in a store, and how many store their messages split.
fn print_stored(label: &str, store: &Path, data: &Load) -> Result<()> {
    let m = manifest(store)?;
    let split = |path: &str| {
        m["segments"].as_array().into_iter().flatten().any(|s| {
            s["templated"].as_bool() == Some(true)
                && path.ends_with(s["path"].as_str().unwrap_or("-"))
        })
    };
    for (group, fs) in &segment_files(store)? {
        let bytes: u64 = fs
            .iter()
            .map(|f| std::fs::metadata(f).map_or(0, |m| m.len()))
            .sum();
        let name = group.trim_start_matches("/bench/");
        let events = data.events.get(name).copied().unwrap_or(0).max(1);
        println!(
            "{label} {group}: {:.1} MB in {} segments ({} with split messages), {:.1} bytes/event ({:.1} raw)",
            bytes as f64 / 1e6,
            fs.len(),
            fs.iter().filter(|f| split(f)).count(),
            bytes as f64 / events as f64,
            data.raw.get(name).copied().unwrap_or(0) as f64 / events as f64
        );
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let bin = logwell_bin(&args.logwell)?;
    // The server timed runs a new install's configuration (encrypted segments, field columns
    // written by compaction, messages split where that is smaller). Its plain twin gets the
    // same events with `encrypt = false` and whole messages, so that DuckDB reads them as
    // plain Parquet (it cannot join split messages) and the cost of both shows on the same data.
    let (data_dir, config) = fresh_data_dir(&args.data_dir, "logwell-query-bench", "")?;
    let (plain_dir, plain_config) = fresh_data_dir(
        // Beside the given one, under a name whose configuration files do not collide with it.
        &args.data_dir.as_ref().map(|d| {
            let name = d.file_name().unwrap_or_default().to_string_lossy();
            d.with_file_name(format!("{name}-plain"))
        }),
        "logwell-query-bench-plain",
        "[storage]\nencrypt = false\nmessage_templates = \"off\"\n",
    )?;
    // Settled: the same settings, with compaction due at once instead of ten minutes on.
    let settle = "[storage]\nrecompress_after = 1\nmaintenance_interval = 1\n";
    let settle_config = data_dir.with_extension("settle.toml");
    std::fs::write(&settle_config, settle)?;
    let plain_settle_config = plain_dir.with_extension("settle.toml");
    std::fs::write(
        &plain_settle_config,
        format!("{settle}encrypt = false\nmessage_templates = \"off\"\n"),
    )?;
    let script = data_dir.with_extension("duckdb.py");

    println!("logwell query benchmark");
    println!("machine: {}", machine());
    let data = generate(&args);
    let total: usize = data.events.values().sum();
    let queries: Vec<&Query> = QUERIES
        .iter()
        .filter(|q| args.only.as_deref().is_none_or(|o| q.name.contains(o)))
        .collect();

    // ---------------------------------------------------------------- fresh
    let server = ServerProc::start(&bin, &data_dir, &config)?;
    let secs = load(&server, &data, args.clients).await?;
    println!(
        "loaded {total} events ({:.1} MB raw) in {secs:.1} s, default configuration",
        data.raw.values().sum::<u64>() as f64 / 1e6
    );
    let pause = Duration::from_millis(args.pause_ms);
    let gauges = |when: &'static str| {
        let server = &server;
        async move {
            let text = server.metrics().await?;
            let gauge = |name: &str| {
                text.lines()
                    .find_map(|l| l.strip_prefix(name)?.trim().parse::<f64>().ok())
                    .unwrap_or(f64::NAN)
            };
            println!(
                "{when}: {:.0} events in segments, {:.0} MB buffered, {:.1} MB of fields kept",
                gauge("logwell_segment_events "),
                gauge("logwell_buffered_bytes ") / 1e6,
                gauge("logwell_buffered_field_bytes ") / 1e6,
            );
            anyhow::Ok(())
        }
    };
    gauges("fresh queries start").await?;
    let fresh = time_logwell(&server, &queries, data.range, args.runs, pause).await?;
    gauges("fresh queries end").await?;
    let later = if args.later_s > 0 {
        tokio::time::sleep(Duration::from_secs(args.later_s)).await;
        gauges("a minute in").await?;
        Some(time_logwell(&server, &queries, data.range, args.runs, pause).await?)
    } else {
        None
    };
    server.stop()?;
    let plain = ServerProc::start(&bin, &plain_dir, &plain_config)?;
    load(&plain, &data, args.clients).await?;
    // A clean stop flushes everything: DuckDB reads every event from Parquet.
    plain.stop()?;
    let duck_fresh = time_duckdb(&args, &plain_dir.join("store"), &queries, false, &script)?;

    // ---------------------------------------------------------------- settled
    let t0 = Instant::now();
    let server = ServerProc::start(&bin, &data_dir, &settle_config)?;
    let plain = ServerProc::start(&bin, &plain_dir, &plain_settle_config)?;
    settled(&data_dir.join("store")).await?;
    settled(&plain_dir.join("store")).await?;
    println!(
        "compaction settled both stores in {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    print_stored("stored", &data_dir.join("store"), &data)?;
    let compacted = time_logwell(&server, &queries, data.range, args.runs, Duration::ZERO).await?;
    let compacted_plain =
        time_logwell(&plain, &queries, data.range, args.runs, Duration::ZERO).await?;
    server.stop()?;
    plain.stop()?;
    let duck_settled = time_duckdb(&args, &plain_dir.join("store"), &queries, true, &script)?;

    // ---------------------------------------------------------------- report
    let mut all_same = true;
    let mut same = |name: &str, check: Check, ours: &[Vec<String>], duck: &Value| {
        let (a, b) = checked(check, ours, &duck_rows(duck));
        let ok = same_rows(&a, &b);
        if !ok {
            eprintln!("{name}: logwell {a:?} vs DuckDB {b:?}");
        }
        all_same &= ok;
        if ok {
            "yes"
        } else {
            "NO"
        }
    };
    println!("\nFresh (right after ingest: memtable and flushed segments, no field columns yet)\n");
    // The first run extracts the fields it reads from buffered messages; the batches then
    // keep them, and later runs (after `--pause-ms`) read them. "A minute in": the same
    // queries once an investigation has queried the data for `--later-s` seconds (more of it
    // flushed, fields kept, the files it queried given field columns).
    println!("| query | logwell | first run | a minute in | DuckDB | logwell / DuckDB | a minute in / DuckDB | raw MB/s (logwell) | same answer |");
    println!("|---|---|---|---|---|---|---|---|---|");
    let mut fresh_ratios = Vec::new();
    let mut later_ratios = Vec::new();
    for (i, (q, timed)) in queries.iter().zip(&fresh).enumerate() {
        let (secs, first, rows) = (timed.best, timed.first, &timed.rows);
        let later_secs = later.as_ref().map(|l| l[i].best);
        let d = &duck_fresh[q.name];
        let dsecs = d["seconds"].as_f64().unwrap_or(f64::NAN);
        fresh_ratios.push(secs / dsecs);
        if let Some(l) = later_secs {
            later_ratios.push(l / dsecs);
        }
        let mb = data.raw[q.group] as f64 / 1e6;
        let ok = same(q.name, q.check, rows, d);
        println!(
            "| {} | {} | {} | {} | {} | {:.2}x | {} | {:.0} | {ok} |",
            q.name,
            ms(secs),
            ms(first),
            later_secs.map_or("-".into(), ms),
            ms(dsecs),
            secs / dsecs,
            later_secs.map_or("-".into(), |l| format!("{:.2}x", l / dsecs)),
            mb / secs
        );
    }
    let later_mean = match later_ratios.is_empty() {
        true => "-".to_string(),
        false => format!("{:.2}x", geomean(&later_ratios)),
    };
    println!(
        "| geometric mean | | | | | {:.2}x | {later_mean} | | |",
        geomean(&fresh_ratios)
    );

    println!("\nSettled (after compaction: field columns written)\n");
    println!("| query | logwell | logwell, unencrypted | DuckDB | DuckDB on field columns | logwell / best DuckDB | same answer |");
    println!("|---|---|---|---|---|---|---|");
    let mut settled_ratios = Vec::new();
    let mut encryption = Vec::new();
    for (
        (
            q,
            Timed {
                best: secs, rows, ..
            },
        ),
        plain,
    ) in queries.iter().zip(&compacted).zip(&compacted_plain)
    {
        let plain_secs = &plain.best;
        let d = &duck_settled[q.name];
        let dsecs = d["seconds"].as_f64().unwrap_or(f64::NAN);
        let on_columns = duck_settled[format!("{} (columns)", q.name)]["seconds"].as_f64();
        let best = on_columns.map_or(dsecs, |c| c.min(dsecs));
        settled_ratios.push(secs / best);
        encryption.push(secs / plain_secs);
        let ok = same(q.name, q.check, rows, d);
        println!(
            "| {} | {} | {} | {} | {} | {:.2}x | {ok} |",
            q.name,
            ms(*secs),
            ms(*plain_secs),
            ms(dsecs),
            on_columns.map_or("-".into(), ms),
            secs / best
        );
    }
    println!(
        "| geometric mean | | | | | {:.2}x | |",
        geomean(&settled_ratios)
    );
    println!(
        "\nencryption at rest: settled queries take {:.2}x their unencrypted time (geometric mean)",
        geomean(&encryption)
    );
    // Data in a directory given with `--data-dir` is kept, to be profiled or queried again.
    if args.data_dir.is_none() {
        for dir in [&data_dir, &plain_dir] {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
    if !all_same {
        bail!("logwell and DuckDB disagreed on at least one query");
    }
    Ok(())
}

//! What both benchmark harnesses need: a `logwell serve` child process and API calls to it.

// Each harness uses a different part of this module.
#![allow(dead_code)]

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct ServerProc {
    pub child: Child,
    pub endpoint: String,
    pub http: reqwest::Client,
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        // A benchmark that fails half-way must not leave a server behind.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ServerProc {
    pub fn start(bin: &Path, data_dir: &Path, config: &Path) -> Result<ServerProc> {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0")?;
            l.local_addr()?.port()
        };
        let child = Command::new(bin)
            .args(["serve", "--data-dir"])
            .arg(data_dir)
            .args(["--listen", &format!("127.0.0.1:{port}"), "--config"])
            .arg(config)
            // LOGWELL_BENCH_LOG: the server's log filter, e.g. `logwell_query::plan=debug`.
            .env(
                "LOGWELL_LOG",
                std::env::var("LOGWELL_BENCH_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                bail!("logwell did not start");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .build()?;
        Ok(ServerProc {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            http,
        })
    }

    /// The server's `/metrics` text.
    pub async fn metrics(&self) -> Result<String> {
        let url = format!("{}/metrics", self.endpoint);
        Ok(self.http.get(url).send().await?.text().await?)
    }

    pub async fn call(&self, op: &str, body: String) -> Result<Value> {
        let r = self
            .http
            .post(&self.endpoint)
            .header("x-amz-target", format!("Logs_20140328.{op}"))
            .header("content-type", "application/x-amz-json-1.1")
            .body(body)
            .send()
            .await?;
        let ok = r.status().is_success();
        let v: Value = r.json().await?;
        if !ok {
            bail!("{op} failed: {v}");
        }
        Ok(v)
    }

    /// Server CPU seconds so far (user + system), from /proc.
    pub fn cpu_seconds(&self) -> f64 {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        let after = stat.rsplit(')').next().unwrap_or("");
        let f: Vec<&str> = after.split_whitespace().collect();
        let ticks: f64 = f.get(11).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0)
            + f.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        ticks / 100.0
    }

    pub fn stop(mut self) -> Result<()> {
        if self.child.try_wait()?.is_some() {
            bail!("logwell exited early");
        }
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status()?;
        let status = self.child.wait()?;
        if !status.success() {
            bail!("logwell exited with {status}");
        }
        Ok(())
    }
}

pub async fn create(s: &ServerProc, group: &str, streams: &[String]) -> Result<()> {
    s.call("CreateLogGroup", json!({"logGroupName": group}).to_string())
        .await?;
    for st in streams {
        s.call(
            "CreateLogStream",
            json!({"logGroupName": group, "logStreamName": st}).to_string(),
        )
        .await?;
    }
    Ok(())
}

pub fn put_body(group: &str, stream: &str, events: &[(i64, String)]) -> String {
    let evs: Vec<Value> = events
        .iter()
        .map(|(t, m)| json!({"timestamp": t, "message": m}))
        .collect();
    json!({"logGroupName": group, "logStreamName": stream, "logEvents": evs}).to_string()
}

/// Request bodies for `events`, each at most `batch` events and PutLogEvents' 1 MiB (26 bytes
/// counted per event).
pub fn batches(group: &str, stream: &str, events: &[(i64, String)], batch: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut size = 0usize;
    for (i, (_, m)) in events.iter().enumerate() {
        if i - start == batch || size + m.len() + 26 > 1_048_576 {
            out.push(put_body(group, stream, &events[start..i]));
            start = i;
            size = 0;
        }
        size += m.len() + 26;
    }
    if start < events.len() {
        out.push(put_body(group, stream, &events[start..]));
    }
    out
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Total bytes and count of files under `dir` whose names end with `suffix`.
pub fn dir_bytes(dir: &Path, suffix: &str) -> (u64, u64) {
    let mut bytes = 0;
    let mut files = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.to_string_lossy().ends_with(suffix) {
                bytes += e.metadata().map(|m| m.len()).unwrap_or(0);
                files += 1;
            }
        }
    }
    (bytes, files)
}

/// One line naming the machine: cores and CPU model.
pub fn machine() -> String {
    format!(
        "{} cores, {}",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(
                |c| c.lines().find(|l| l.starts_with("model name")).map(|l| l
                    .split(':')
                    .nth(1)
                    .unwrap_or("")
                    .trim()
                    .to_string())
            )
            .unwrap_or_default()
    )
}

/// The logwell binary to run: the one given, else the one next to this harness.
pub fn logwell_bin(given: &Option<PathBuf>) -> Result<PathBuf> {
    Ok(match given {
        Some(b) => b.clone(),
        None => std::env::current_exe()?.with_file_name("logwell"),
    })
}

/// A fresh data directory (the one given, else a new one under the temp dir named after `name`)
/// and, beside it, a config file holding `config`. Returns (data dir, config path).
pub fn fresh_data_dir(
    given: &Option<PathBuf>,
    name: &str,
    config: &str,
) -> Result<(PathBuf, PathBuf)> {
    let data_dir = given
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join(format!("{name}-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&data_dir);
    std::fs::create_dir_all(&data_dir)?;
    let config_path = data_dir.with_extension("toml");
    std::fs::write(&config_path, config)?;
    Ok((data_dir, config_path))
}

/// Puts JSON events from `clients` concurrent tasks (stream `flood-<client>` of `group`), `batch`
/// events a call, as fast as they are answered until `until`; returns the events put.
pub async fn flood(
    server: &ServerProc,
    group: &str,
    clients: usize,
    batch: usize,
    until: Instant,
) -> Result<usize> {
    let tasks = (0..clients).map(|c| {
        let stream = format!("flood-{c}");
        async move {
            let mut n = 0usize;
            while Instant::now() < until {
                let events = app_events(c, n, batch);
                server
                    .call("PutLogEvents", put_body(group, &stream, &events))
                    .await?;
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

/// `batch` generated JSON application events of client `c`, numbered from `n`, stamped now.
pub fn app_events(c: usize, n: usize, batch: usize) -> Vec<(i64, String)> {
    let t = now_ms();
    (0..batch)
        .map(|i| {
            (
                t,
                format!(
                    r#"{{"level":"INFO","client":{c},"n":{},"msg":"GET /orders 200"}}"#,
                    n + i
                ),
            )
        })
        .collect()
}

/// Latencies in milliseconds as `p50 .. ms, p99 .. ms, max .. ms`.
pub fn latency_summary(mut v: Vec<f64>) -> String {
    if v.is_empty() {
        return "no samples".into();
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    format!(
        "p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        at(0.5),
        at(0.99),
        v[v.len() - 1]
    )
}

const LEVELS: [&str; 4] = ["INFO", "INFO", "WARN", "ERROR"];
const PATHS: [&str; 5] = ["/orders", "/orders/{id}", "/cart", "/login", "/search"];

/// A ~140-byte JSON application log line (the query benchmark's, with a level, a path, a status,
/// a latency, a user and a trace id).
pub fn app_line(i: usize) -> String {
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

/// The newest catalog manifest of `store`.
pub fn manifest(store: &Path) -> Result<Value> {
    let mut manifests: Vec<PathBuf> = std::fs::read_dir(store.join("catalog"))?
        .flatten()
        .map(|e| e.path())
        .collect();
    manifests.sort();
    let newest = manifests.last().context("no manifest")?;
    // Stored zstd-compressed (plain JSON by earlier versions).
    let bytes = std::fs::read(newest)?;
    let json = match bytes.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        true => zstd::stream::decode_all(bytes.as_slice())?,
        false => bytes,
    };
    Ok(serde_json::from_slice(&json)?)
}

/// Segment files of each group, from the newest manifest.
pub fn segment_files(store: &Path) -> Result<BTreeMap<String, Vec<String>>> {
    let m = manifest(store)?;
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

/// Waits until compaction has rewritten every segment of a store (all at level 1 or more).
pub async fn settled(store: &Path) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(3600);
    loop {
        let m = manifest(store)?;
        let segs = m["segments"].as_array().cloned().unwrap_or_default();
        if !segs.is_empty() && segs.iter().all(|s| s["level"].as_u64().unwrap_or(0) >= 1) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("compaction did not finish within an hour");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// A VPC flow log line (version 2, default format), `i`-th of the generated ones.
pub fn vpc_line(i: usize) -> String {
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

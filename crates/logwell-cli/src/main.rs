//! The `logwell` binary: `logwell serve` runs the server; the other commands talk to a running
//! server over the CloudWatch Logs API, for people at a terminal.

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use logwell_server::{App, ServerConfig};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;

mod export;
mod tail;

#[derive(Parser)]
#[command(
    name = "logwell",
    version,
    about = "A self-hostable log service that speaks the CloudWatch Logs API"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args)]
struct ClientArgs {
    /// Endpoint of a running logwell server [default: AWS_ENDPOINT_URL_CLOUDWATCH_LOGS,
    /// AWS_ENDPOINT_URL, the profile's endpoint_url, else http://127.0.0.1:4566]. Region and
    /// credentials come from the usual AWS variables and profile files.
    #[arg(long, env = "LOGWELL_ENDPOINT", global = true)]
    endpoint: Option<String>,
    /// PEM certificates to trust besides the system's, for an HTTPS endpoint with a
    /// self-signed certificate [default: AWS_CA_BUNDLE, the profile's ca_bundle].
    #[arg(long, global = true)]
    ca_bundle: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve {
        /// Directory for the write-ahead log and the local object store.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Address to listen on.
        #[arg(long)]
        listen: Option<String>,
        /// TOML configuration file (see testdata/config/ for examples).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Region shown in ARNs.
        #[arg(long)]
        region: Option<String>,
        /// Account id shown in ARNs.
        #[arg(long)]
        account_id: Option<String>,
        /// Start from a damaged write-ahead log: keep every readable record, report what is
        /// dropped, and checkpoint so the damage is gone (start-up refuses without this).
        #[arg(long)]
        recover: bool,
        /// Serve a non-loopback address without credentials: anyone who reaches the port can
        /// read and delete every log group. Without this, start-up refuses.
        #[arg(long)]
        insecure_no_auth: bool,
        /// Serve HTTPS with this certificate chain (PEM); needs --tls-key. Same as [tls]
        /// cert_file.
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// The certificate's private key (PEM). Same as [tls] key_file.
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<PathBuf>,
    },
    /// Add a new master key to the data directory's keyring and wrap every log group's data
    /// key with it (data is not rewritten). Run with the server stopped.
    RotateKeys {
        /// The data directory (its keyring and catalog).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// The server's TOML configuration (for an S3 store).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// List log groups.
    Groups {
        #[command(flatten)]
        client: ClientArgs,
        /// Only groups whose name starts with this.
        #[arg(long)]
        prefix: Option<String>,
    },
    /// List the streams of a log group.
    Streams {
        #[command(flatten)]
        client: ClientArgs,
        group: String,
    },
    /// Send lines (from stdin or a file) as log events, one event per line.
    Put {
        #[command(flatten)]
        client: ClientArgs,
        group: String,
        stream: String,
        /// Read lines from this file instead of stdin.
        #[arg(long, short)]
        file: Option<PathBuf>,
        /// Create the group and stream if they do not exist.
        #[arg(long)]
        create: bool,
    },
    /// Run a Logs Insights query (or SQL with --sql) and print the results.
    Query {
        #[command(flatten)]
        client: ClientArgs,
        /// Log group to query (repeatable).
        #[arg(short = 'g', long = "group")]
        groups: Vec<String>,
        /// How far back to look: 90s, 15m, 1h, 7d ...
        #[arg(long, default_value = "1h")]
        since: String,
        /// End of the range (RFC 3339); default now.
        #[arg(long)]
        until: Option<String>,
        /// The query is SQL (tables are log group names).
        #[arg(long)]
        sql: bool,
        /// Output format.
        #[arg(long, short, value_enum, default_value = "table")]
        output: Output,
        /// At most this many rows.
        #[arg(long)]
        limit: Option<u32>,
        query: String,
    },
    /// Print the events of log groups since a moment, then (with --follow) as they arrive.
    Tail {
        #[command(flatten)]
        client: ClientArgs,
        /// Log groups (names or ARNs), up to 10.
        #[arg(required = true)]
        groups: Vec<String>,
        /// Keep printing new events as they arrive, until Ctrl-C.
        #[arg(long, short)]
        follow: bool,
        /// How far back to start: 90s, 10m, 1h, 7d ...
        #[arg(long, default_value = "10m")]
        since: String,
        /// Only events matching this filter pattern (terms, %regex%, { $.json }, [delimited]).
        #[arg(long)]
        filter: Option<String>,
        /// Only streams whose name starts with this.
        #[arg(long = "stream")]
        stream_prefix: Option<String>,
        #[arg(long, value_enum, default_value = "short")]
        format: tail::Format,
        /// Colour lines by level.
        #[arg(long, value_enum, default_value = "auto")]
        color: tail::Color,
    },
    /// Export a time range of a log group to a bucket (CreateExportTask), with a progress bar.
    Export {
        #[command(flatten)]
        client: ClientArgs,
        group: String,
        /// Bucket name (see `[delivery.buckets]` in the server's config).
        #[arg(long)]
        bucket: String,
        /// Key prefix in the bucket [default: exportedlogs].
        #[arg(long)]
        prefix: Option<String>,
        /// How far back the range starts: 90s, 15m, 1h, 7d ...
        #[arg(long, default_value = "1d")]
        since: String,
        /// End of the range (RFC 3339); default now.
        #[arg(long)]
        until: Option<String>,
        /// Only streams whose name starts with this.
        #[arg(long = "stream")]
        stream_prefix: Option<String>,
        /// Write Parquet files (whole segments copied where they fit the range) instead of
        /// CloudWatch's gzip text.
        #[arg(long)]
        parquet: bool,
        /// Start the task and return without waiting for it.
        #[arg(long)]
        no_wait: bool,
    },
    /// Print the events of a stream, oldest first.
    Get {
        #[command(flatten)]
        client: ClientArgs,
        group: String,
        stream: String,
        /// Stop after this many events.
        #[arg(long)]
        limit: Option<usize>,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Output {
    Table,
    Json,
    Csv,
}

/// `90s`, `15m`, `1h`, `7d`, `2w` as seconds.
fn parse_duration(s: &str) -> Result<i64> {
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: i64 = n.parse().with_context(|| format!("bad duration {s:?}"))?;
    let mult = match unit {
        "s" | "" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => bail!("bad duration unit in {s:?} (use s, m, h, d or w)"),
    };
    Ok(n * mult)
}

async fn query(
    client: &Client,
    groups: Vec<String>,
    since: &str,
    until: Option<String>,
    sql: bool,
    output: Output,
    limit: Option<u32>,
    text: &str,
) -> Result<()> {
    let end = match until {
        Some(t) => chrono::DateTime::parse_from_rfc3339(&t)
            .with_context(|| format!("bad --until {t:?}"))?
            .timestamp(),
        None => chrono::Utc::now().timestamp(),
    };
    let start = end - parse_duration(since)?;
    let mut body = json!({"startTime": start, "endTime": end, "queryString": text});
    if sql {
        body["queryLanguage"] = json!("SQL");
    } else if groups.is_empty() {
        bail!("name at least one log group with -g");
    }
    if !groups.is_empty() {
        body["logGroupNames"] = json!(groups);
    }
    if let Some(l) = limit {
        body["limit"] = json!(l);
    }
    let id = client.call("StartQuery", &body).await?["queryId"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let spinner = indicatif::ProgressBar::new_spinner();
    spinner.enable_steady_tick(std::time::Duration::from_millis(120));
    let mut rows: Vec<Value> = Vec::new();
    let mut token: Option<String> = None;
    let final_page = loop {
        let mut req = json!({"queryId": id});
        if let Some(t) = &token {
            req["nextToken"] = json!(t);
        }
        let page = client.call("GetQueryResults", &req).await?;
        let status = page["status"].as_str().unwrap_or("").to_string();
        let st = &page["statistics"];
        spinner.set_message(format!(
            "{status}: {} records scanned, {} matched",
            st["recordsScanned"].as_f64().unwrap_or(0.0),
            st["recordsMatched"].as_f64().unwrap_or(0.0)
        ));
        match status.as_str() {
            "Scheduled" | "Running" => {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            "Complete" => {
                rows.extend(page["results"].as_array().cloned().unwrap_or_default());
                match page["nextToken"].as_str() {
                    Some(t) => token = Some(t.to_string()),
                    None => break page,
                }
            }
            other => {
                spinner.finish_and_clear();
                bail!("query {id} ended with status {other}");
            }
        }
    };
    spinner.finish_and_clear();
    // Columns in order of first appearance; @ptr is for machines.
    let mut columns: Vec<String> = Vec::new();
    let table: Vec<Vec<(String, String)>> = rows
        .iter()
        .map(|r| {
            r.as_array()
                .into_iter()
                .flatten()
                .map(|c| {
                    let f = c["field"].as_str().unwrap_or("").to_string();
                    (f, c["value"].as_str().unwrap_or("").to_string())
                })
                .collect()
        })
        .collect();
    for row in &table {
        for (f, _) in row {
            if f != "@ptr" && !columns.contains(f) {
                columns.push(f.clone());
            }
        }
    }
    let cell = |row: &[(String, String)], c: &str| {
        row.iter()
            .find(|(f, _)| f == c)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    match output {
        Output::Json => {
            let out: Vec<Value> = table
                .iter()
                .map(|row| Value::Object(row.iter().map(|(f, v)| (f.clone(), json!(v))).collect()))
                .collect();
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        Output::Csv => {
            let quote = |v: &str| {
                if v.contains([',', '"', '\n', '\r']) {
                    format!("\"{}\"", v.replace('"', "\"\""))
                } else {
                    v.to_string()
                }
            };
            println!(
                "{}",
                columns
                    .iter()
                    .map(|c| quote(c))
                    .collect::<Vec<_>>()
                    .join(",")
            );
            for row in &table {
                let line: Vec<String> = columns.iter().map(|c| quote(&cell(row, c))).collect();
                println!("{}", line.join(","));
            }
        }
        Output::Table => {
            let mut widths: Vec<usize> = columns.iter().map(|c| c.chars().count()).collect();
            for row in &table {
                for (i, c) in columns.iter().enumerate() {
                    widths[i] = widths[i].max(cell(row, c).chars().count().min(120));
                }
            }
            let line = |vals: Vec<String>| {
                let cells: Vec<String> = vals
                    .into_iter()
                    .zip(&widths)
                    .map(|(v, w)| {
                        let v: String = v.chars().take(120).collect();
                        format!("{v:<w$}")
                    })
                    .collect();
                println!("{}", cells.join(" | ").trim_end());
            };
            line(columns.clone());
            println!(
                "{}",
                widths
                    .iter()
                    .map(|w| "-".repeat(*w))
                    .collect::<Vec<_>>()
                    .join("-+-")
            );
            for row in &table {
                line(columns.iter().map(|c| cell(row, c)).collect());
            }
            let st = &final_page["statistics"];
            eprintln!(
                "{} rows; {} records matched, {} scanned, {} bytes scanned",
                table.len(),
                st["recordsMatched"].as_f64().unwrap_or(0.0),
                st["recordsScanned"].as_f64().unwrap_or(0.0),
                st["bytesScanned"].as_f64().unwrap_or(0.0)
            );
        }
    }
    Ok(())
}

/// The CLI's client: logwell-client with untyped (JSON) requests and answers.
struct Client(logwell_client::Client);

impl Client {
    fn new(args: &ClientArgs) -> Result<Client> {
        let mut settings = logwell_client::Settings::from_env(args.endpoint.as_deref());
        if let Some(ca) = &args.ca_bundle {
            settings.ca_bundle = Some(ca.clone());
        }
        Ok(Client(logwell_client::Client::new(settings)?))
    }

    async fn call(&self, op: &str, body: &Value) -> Result<Value> {
        Ok(self.0.call(op, body).await?)
    }

    /// Calls an operation once per page and hands each page to `f`.
    async fn paginate(&self, op: &str, mut body: Value, mut f: impl FnMut(&Value)) -> Result<()> {
        loop {
            let page = self.call(op, &body).await?;
            f(&page);
            match page.get("nextToken").and_then(|t| t.as_str()) {
                Some(t) => body["nextToken"] = json!(t),
                None => return Ok(()),
            }
        }
    }
}

fn format_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|d| d.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_else(|| ms.to_string())
}

async fn serve(
    data_dir: Option<PathBuf>,
    listen: Option<String>,
    config: Option<PathBuf>,
    region: Option<String>,
    account_id: Option<String>,
    recover: bool,
    insecure_no_auth: bool,
    tls: logwell_server::tls::TlsConfig,
) -> Result<()> {
    let mut cfg = match &config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            ServerConfig::from_toml(&text).with_context(|| format!("parsing {}", path.display()))?
        }
        None => ServerConfig::default(),
    };
    if let Some(d) = data_dir {
        cfg.storage.data_dir = d;
    }
    if let Some(l) = listen {
        cfg.listen = l;
    }
    if let Some(r) = region {
        cfg.region = r;
    }
    if let Some(a) = account_id {
        cfg.account_id = a;
    }
    if tls.cert_file.is_some() {
        cfg.tls = tls;
    }
    let tls = logwell_server::tls::acceptor(&cfg.tls)?;
    cfg.delivery.check().map_err(anyhow::Error::msg)?;
    let app = App::open_with(
        &cfg,
        logwell_server::OpenOptions {
            recover,
            ..Default::default()
        },
    )
    .await
    .context("opening storage")?;
    if recover {
        let dropped = app.engine.recovery_report();
        if dropped.is_empty() {
            tracing::info!("recover: the write-ahead log was intact; nothing dropped");
        }
        for d in dropped {
            tracing::warn!("recover: dropped {d}");
        }
    }
    let listener = tokio::net::TcpListener::bind(&cfg.listen)
        .await
        .with_context(|| format!("listening on {}", cfg.listen))?;
    let local = listener.local_addr()?;
    if app.auth.verifies() {
        tracing::info!("requests must be signed (SigV4) with a configured credential");
    } else if local.ip().is_loopback() {
        tracing::warn!(
            listen = %local,
            "no credentials configured: requests are not authenticated (loopback only); configure [auth] to require SigV4 signatures"
        );
    } else if insecure_no_auth {
        tracing::warn!(
            listen = %local,
            "--insecure-no-auth: requests are NOT authenticated on a non-loopback address; anyone who reaches it can read and delete every log group"
        );
    } else {
        anyhow::bail!(
            "refusing to serve {local} without credentials: configure [auth] credentials_file (or [[auth.credentials]]) so requests are verified, listen on a loopback address, or pass --insecure-no-auth"
        );
    }
    tracing::info!(
        listen = %listener.local_addr()?,
        scheme = if tls.is_some() { "https" } else { "http" },
        data_dir = %cfg.storage.data_dir.display(),
        store = app.engine.store_description(),
        "logwell is serving the CloudWatch Logs API"
    );
    logwell_server::serve_with(listener, app, tls, shutdown_signal()).await?;
    tracing::info!("stopped cleanly");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down: flushing buffered events");
}

/// Sends lines in batches that respect PutLogEvents' limits.
async fn put(
    client: &Client,
    group: &str,
    stream: &str,
    file: Option<PathBuf>,
    create: bool,
) -> Result<()> {
    if create {
        client.0.ensure_stream(group, stream).await?;
    }
    let (reader, total): (Box<dyn Read>, Option<u64>) = match &file {
        Some(p) => {
            let f = std::fs::File::open(p).with_context(|| format!("opening {}", p.display()))?;
            let len = f.metadata().ok().map(|m| m.len());
            (Box::new(f), len)
        }
        None => (Box::new(std::io::stdin()), None),
    };
    let bar = match total {
        Some(n) if n > 1 << 20 => {
            let b = indicatif::ProgressBar::new(n);
            b.set_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                )
                .expect("valid template"),
            );
            b
        }
        _ => indicatif::ProgressBar::hidden(),
    };
    let mut lines = BufReader::new(reader);
    let mut batcher = logwell_client::Batcher::default();
    let mut sent = 0u64;
    let mut rejected = 0u64;
    let mut buf = String::new();
    loop {
        buf.clear();
        let n = lines.read_line(&mut buf)?;
        let line = buf.trim_end_matches(['\n', '\r']);
        let full = if n == 0 {
            Some(batcher.take())
        } else if line.is_empty() {
            None
        } else {
            let now = chrono::Utc::now().timestamp_millis();
            batcher.push(now, line.to_string())
        };
        if let Some(batch) = full.filter(|b| !b.is_empty()) {
            let resp = client.0.put_log_events(group, stream, &batch).await?;
            if let Some(info) = resp.rejected_log_events_info {
                rejected += 1;
                eprintln!(
                    "some events were rejected: {}",
                    serde_json::to_string(&info)?
                );
            }
            sent += batch.len() as u64;
        }
        if n == 0 {
            break;
        }
        bar.inc(n as u64);
    }
    bar.finish_and_clear();
    eprintln!(
        "sent {sent} events{}",
        if rejected > 0 {
            " (some rejected, see above)"
        } else {
            ""
        }
    );
    Ok(())
}

async fn get(client: &Client, group: &str, stream: &str, limit: Option<usize>) -> Result<()> {
    let mut token: Option<String> = None;
    let mut printed = 0usize;
    loop {
        let mut body =
            json!({"logGroupName": group, "logStreamName": stream, "startFromHead": true});
        if let Some(t) = &token {
            body["nextToken"] = json!(t);
        }
        let page = client.call("GetLogEvents", &body).await?;
        for e in page["events"].as_array().into_iter().flatten() {
            if limit.is_some_and(|l| printed >= l) {
                return Ok(());
            }
            println!(
                "{} {}",
                format_ms(e["timestamp"].as_i64().unwrap_or(0)),
                e["message"].as_str().unwrap_or("")
            );
            printed += 1;
        }
        let next = page["nextForwardToken"].as_str().map(str::to_string);
        if next.is_none() || next == token {
            return Ok(());
        }
        token = next;
    }
}

/// Keeps the memory a query frees for the next one. glibc's defaults hand large buffers (decoded
/// Parquet pages, batches) back to the kernel as they are freed (unmapped, or trimmed off an
/// arena's top), so every query faulted in and zeroed fresh pages: a quarter of the server's CPU
/// in FilterLogEvents went to the kernel. Buffers under 32 MiB now come from the arenas, and an
/// arena keeps up to 128 MiB free at its top. Measured (2-core VM, 1 M events): FilterLogEvents'
/// CPU per page 115 -> 95 ms, percentiles 45 -> 37 ms. mimalloc did as much for queries but
/// halved ingest; this leaves ingest as it was (README, session 22).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn keep_freed_memory() {
    // SAFETY: mallopt only sets allocator parameters; any value is accepted or refused (0).
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 128 << 20);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn keep_freed_memory() {}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LOGWELL_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Serve {
            data_dir,
            listen,
            config,
            region,
            account_id,
            recover,
            insecure_no_auth,
            tls_cert,
            tls_key,
        } => {
            keep_freed_memory();
            serve(
                data_dir,
                listen,
                config,
                region,
                account_id,
                recover,
                insecure_no_auth,
                logwell_server::tls::TlsConfig {
                    cert_file: tls_cert,
                    key_file: tls_key,
                },
            )
            .await
        }
        Command::RotateKeys { data_dir, config } => {
            let mut cfg = match &config {
                Some(path) => ServerConfig::from_toml(
                    &std::fs::read_to_string(path)
                        .with_context(|| format!("reading {}", path.display()))?,
                )
                .with_context(|| format!("parsing {}", path.display()))?,
                None => ServerConfig::default(),
            };
            if let Some(d) = data_dir {
                cfg.storage.data_dir = d;
            }
            // The server's own store, then each hosted account's (each has its keyring).
            let stores = std::iter::once((cfg.account_id.clone(), cfg.storage.clone())).chain(
                cfg.hosted_accounts
                    .iter()
                    .map(|id| (id.clone(), cfg.for_account(id).storage)),
            );
            for (account, storage) in stores {
                let engine = logwell_storage::Engine::open(storage)
                    .await
                    .with_context(|| {
                        format!(
                            "opening account {account}'s storage (is the server still running?)"
                        )
                    })?;
                let n = engine.rotate_master_key().await?;
                engine
                    .shutdown()
                    .await
                    .map_err(|e| anyhow::anyhow!("final flush failed: {e}"))?;
                if cfg.hosted_accounts.is_empty() {
                    println!("rotated the master key; {n} data keys wrapped again");
                } else {
                    println!(
                        "account {account}: rotated the master key; {n} data keys wrapped again"
                    );
                }
            }
            Ok(())
        }
        Command::Groups { client, prefix } => {
            let c = Client::new(&client)?;
            let mut body = json!({});
            if let Some(p) = prefix {
                body["logGroupNamePrefix"] = json!(p);
            }
            c.paginate("DescribeLogGroups", body, |page| {
                for g in page["logGroups"].as_array().into_iter().flatten() {
                    let retention = g["retentionInDays"]
                        .as_i64()
                        .map_or("never expire".to_string(), |d| format!("{d} days"));
                    println!(
                        "{}\t{}\t{} bytes",
                        g["logGroupName"].as_str().unwrap_or(""),
                        retention,
                        g["storedBytes"].as_i64().unwrap_or(0)
                    );
                }
            })
            .await
        }
        Command::Streams { client, group } => {
            let c = Client::new(&client)?;
            c.paginate(
                "DescribeLogStreams",
                json!({"logGroupName": group}),
                |page| {
                    for s in page["logStreams"].as_array().into_iter().flatten() {
                        let last = s["lastEventTimestamp"]
                            .as_i64()
                            .map_or("-".to_string(), format_ms);
                        println!("{}\t{}", s["logStreamName"].as_str().unwrap_or(""), last);
                    }
                },
            )
            .await
        }
        Command::Put {
            client,
            group,
            stream,
            file,
            create,
        } => put(&Client::new(&client)?, &group, &stream, file, create).await,
        Command::Get {
            client,
            group,
            stream,
            limit,
        } => get(&Client::new(&client)?, &group, &stream, limit).await,
        Command::Tail {
            client,
            groups,
            follow,
            since,
            filter,
            stream_prefix,
            format,
            color,
        } => {
            let since_ms = logwell_model::now_millis() - parse_duration(&since)? * 1000;
            tail::tail(
                &Client::new(&client)?.0,
                tail::TailOptions {
                    groups,
                    since_ms,
                    follow,
                    filter,
                    stream_prefix,
                    format,
                    color,
                },
            )
            .await
        }
        Command::Export {
            client,
            group,
            bucket,
            prefix,
            since,
            until,
            stream_prefix,
            parquet,
            no_wait,
        } => {
            let to_ms = match until {
                Some(t) => chrono::DateTime::parse_from_rfc3339(&t)
                    .with_context(|| format!("bad --until {t:?}"))?
                    .timestamp_millis(),
                None => logwell_model::now_millis(),
            };
            let request = export::Request {
                group,
                from_ms: to_ms - parse_duration(&since)? * 1000,
                to_ms,
                bucket,
                prefix,
                stream_prefix,
                parquet,
                wait: !no_wait,
            };
            export::export(&Client::new(&client)?.0, request).await
        }
        Command::Query {
            client,
            groups,
            since,
            until,
            sql,
            output,
            limit,
            query: text,
        } => {
            query(
                &Client::new(&client)?,
                groups,
                &since,
                until,
                sql,
                output,
                limit,
                &text,
            )
            .await
        }
    }
}

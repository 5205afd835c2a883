//! `logwell export`: CreateExportTask, then a progress bar fed by DescribeExportTasks until the
//! task ends, and the rate it ran at.

use anyhow::{bail, Result};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// What to export and where.
pub struct Request {
    pub group: String,
    pub from_ms: i64,
    pub to_ms: i64,
    pub bucket: String,
    pub prefix: Option<String>,
    pub stream_prefix: Option<String>,
    pub parquet: bool,
    pub wait: bool,
}

pub async fn export(client: &logwell_client::Client, r: Request) -> Result<()> {
    let mut body = json!({
        "logGroupName": r.group,
        "from": r.from_ms,
        "to": r.to_ms,
        "destination": r.bucket,
    });
    if let Some(p) = &r.prefix {
        body["destinationPrefix"] = json!(p);
    }
    if let Some(p) = &r.stream_prefix {
        body["logStreamNamePrefix"] = json!(p);
    }
    if r.parquet {
        body["logwellFormat"] = json!("parquet");
    }
    let created: Value = client.call("CreateExportTask", &body).await?;
    let id = created["taskId"].as_str().unwrap_or_default().to_string();
    println!("export task {id}");
    if !r.wait {
        return Ok(());
    }
    let bar = indicatif::ProgressBar::new(1000);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {percent:>3}% {msg}")
            .expect("valid template"),
    );
    let started = Instant::now();
    loop {
        let page: Value = client
            .call("DescribeExportTasks", &json!({"taskId": id}))
            .await?;
        let task = &page["exportTasks"][0];
        let code = task["status"]["code"].as_str().unwrap_or("").to_string();
        let progress = &task["logwellProgress"];
        let events = progress["events"].as_u64().unwrap_or(0);
        let mb = progress["bytes"].as_u64().unwrap_or(0) as f64 / 1e6;
        bar.set_position((progress["fraction"].as_f64().unwrap_or(0.0) * 1000.0) as u64);
        bar.set_message(format!("{events} events, {mb:.1} MB, {code}"));
        match code.as_str() {
            "COMPLETED" => {
                bar.finish();
                let secs = started.elapsed().as_secs_f64();
                let objects = progress["objects"].as_u64().unwrap_or(0);
                println!(
                    "exported {events} events ({mb:.1} MB) in {objects} objects to {}/{}/{id} in {secs:.1} s ({:.1} MB/s)",
                    task["destination"].as_str().unwrap_or(""),
                    task["destinationPrefix"].as_str().unwrap_or(""),
                    mb / secs.max(1e-3)
                );
                return Ok(());
            }
            "FAILED" | "CANCELLED" => {
                bar.abandon();
                bail!(
                    "export task {id} {code}: {}",
                    task["status"]["message"].as_str().unwrap_or("")
                );
            }
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

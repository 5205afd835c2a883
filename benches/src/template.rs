//! Split-message benchmark: how fast lines are cut into templates and variables (what
//! compaction pays per line where messages are split) and joined back (what a query that reads
//! every message of a split segment pays per line), in process, on three kinds of line: sshd's
//! (`logwell_template::sample_sshd_lines`), VPC flow logs (nearly every token a variable) and the
//! Loghub 2k samples when they are beside the repository. Prints nanoseconds per line.
//!
//! Run: `cargo build --release -p logwell-benches && target/release/template-bench`

#[path = "common.rs"]
mod common;

use arrow::array::{Array, StringArray};
use clap::Parser;
use common::vpc_line;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Parser)]
struct Args {
    /// Lines per kind (generated kinds; Loghub's are repeated up to this).
    #[arg(long, default_value_t = 200_000)]
    lines: usize,
    /// Runs per measurement; the best is reported.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    #[arg(long, default_value = "../shared/datasets/loghub-2k")]
    loghub: PathBuf,
}

/// The best of `runs` timings of `f`, in nanoseconds per line.
fn best_ns(runs: usize, lines: usize, mut f: impl FnMut()) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..runs.max(1) {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed().as_secs_f64());
    }
    best * 1e9 / lines as f64
}

fn main() {
    let args = Args::parse();
    let mut kinds: Vec<(String, Vec<String>)> = vec![
        (
            "sshd".into(),
            logwell_template::sample_sshd_lines(args.lines),
        ),
        (
            "VPC flow logs".into(),
            (0..args.lines).map(vpc_line).collect(),
        ),
    ];
    let mut loghub: Vec<String> = std::fs::read_dir(&args.loghub)
        .map(|rd| rd.flatten().map(|e| e.path()).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with("_2k.log"))
        .flat_map(|p| {
            std::fs::read_to_string(p)
                .unwrap_or_default()
                .lines()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    if !loghub.is_empty() {
        let n = loghub.len();
        loghub = (0..args.lines.max(n))
            .map(|i| loghub[i % n].clone())
            .collect();
        kinds.push(("Loghub 2k".into(), loghub));
    }
    println!(
        "split-message benchmark, {} lines per kind, best of {}",
        args.lines, args.runs
    );
    println!("| lines | bytes/line | split ns/line | join ns/line | join MB/s |");
    println!("|---|---|---|---|---|");
    for (name, lines) in kinds {
        let array = StringArray::from(lines.clone());
        let n = array.len();
        let bytes = array.value_data().len() as f64 / n as f64;
        let split = best_ns(args.runs, n, || {
            std::hint::black_box(logwell_template::split_array(&array));
        });
        let (templates, vars) = logwell_template::split_array(&array);
        // As a scan hands them over: batches of 8,192 rows sharing the dictionary.
        let join = best_ns(args.runs, n, || {
            let mut at = 0;
            while at < n {
                let len = 8192.min(n - at);
                let joined =
                    logwell_template::join_arrays(&templates.slice(at, len), &vars.slice(at, len))
                        .expect("parts of lines");
                std::hint::black_box(joined.len());
                at += len;
            }
        });
        println!(
            "| {name} | {bytes:.0} | {split:.0} | {join:.0} | {:.0} |",
            bytes * 1e3 / join
        );
    }
}

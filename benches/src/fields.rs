//! Field extraction benchmark: how fast JSON fields come out of messages, in process, on the
//! query benchmark's JSON application lines (~140 bytes). Prints nanoseconds per event for
//! `PathSet::extract` with one and with three wanted paths (what a query on fresh data pays per
//! event), and what writing field columns adds to encoding one segment (what a flush would pay
//! per event with field columns at flush): `segment::encode` with and without them, same rows.
//!
//! Run: `cargo build --release -p logwell-benches && target/release/fields-bench`

#[path = "common.rs"]
mod common;

use anyhow::Result;
use arrow::array::{
    Array, ArrayRef, Int64Array, RecordBatch, StringArray, StringDictionaryBuilder,
};
use arrow::datatypes::Int32Type;
use clap::Parser;
use common::{app_line, machine};
use logwell_fields::{ColumnChoice, PathSet};
use logwell_storage::segment;
use std::borrow::Cow;
use std::sync::Arc;
use std::time::Instant;

#[derive(Parser)]
struct Args {
    /// Events per measurement.
    #[arg(long, default_value_t = 500_000)]
    events: usize,
    /// Runs per measurement; the best is reported.
    #[arg(long, default_value_t = 5)]
    runs: usize,
}

/// The best of `runs` timings of `f`, in nanoseconds per event.
fn best_ns(runs: usize, events: usize, mut f: impl FnMut() -> usize) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..runs.max(1) {
        let t = Instant::now();
        std::hint::black_box(f());
        best = best.min(t.elapsed().as_nanos() as f64 / events as f64);
    }
    best
}

/// Extraction from messages held as a query holds them (one Arrow string array).
fn extract_ns(lines: &StringArray, paths: &[&str], runs: usize) -> f64 {
    let set = PathSet::new(paths);
    let mut out: Vec<Option<Cow<str>>> = vec![None; paths.len()];
    best_ns(runs, lines.len(), || {
        let mut found = 0;
        for l in lines.iter().flatten() {
            set.extract(l, &mut out);
            found += out.iter().filter(|v| v.is_some()).count();
        }
        assert_eq!(
            found,
            lines.len() * paths.len(),
            "every path is in every line"
        );
        found
    })
}

/// One flush's worth of events as a memtable batch.
fn batch(lines: &[String]) -> RecordBatch {
    let mut streams = StringDictionaryBuilder::<Int32Type>::new();
    for i in 0..lines.len() {
        streams.append_value(format!("stream-{}", i % 4));
    }
    let ts: Vec<i64> = (0..lines.len() as i64)
        .map(|i| 1_700_000_000_000 + i)
        .collect();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(streams.finish()),
        Arc::new(Int64Array::from(ts.clone())),
        Arc::new(Int64Array::from(ts)),
        Arc::new(Int64Array::from_iter_values(0..lines.len() as i64)),
        Arc::new(StringArray::from_iter_values(lines)),
    ];
    RecordBatch::try_new(logwell_storage::memtable::event_schema(), columns).unwrap()
}

fn main() -> Result<()> {
    let args = Args::parse();
    let lines: Vec<String> = (0..args.events).map(app_line).collect();
    let bytes: usize = lines.iter().map(|l| l.len()).sum();
    println!(
        "fields-bench: {} JSON events, {:.0} bytes each, best of {}, {}",
        lines.len(),
        bytes as f64 / lines.len() as f64,
        args.runs,
        machine()
    );
    let mb_s = |ns: f64| bytes as f64 / lines.len() as f64 / ns * 1e3;
    let messages = StringArray::from_iter_values(&lines);
    for paths in [&["level"][..], &["status", "latency_ms", "user"][..]] {
        let ns = extract_ns(&messages, paths, args.runs);
        println!(
            "extract {:<28} {:>7.1} ns/event  {:>6.0} MB/s",
            paths.join(","),
            ns,
            mb_s(ns)
        );
    }
    let batches = vec![batch(&lines)];
    let none = ColumnChoice {
        max_columns: 0,
        ..ColumnChoice::default()
    };
    let encode = |choice: &ColumnChoice| {
        let mut columns = (0, 0);
        let ns = best_ns(args.runs, lines.len(), || {
            let e = segment::encode(
                &batches,
                3,
                256 * 1024,
                choice,
                None,
                &[],
                logwell_storage::config::MessageTemplates::Off,
            )
            .unwrap();
            columns = (e.fields.len(), e.numeric.len());
            e.file.len()
        });
        (ns, columns)
    };
    let (plain, _) = encode(&none);
    let (with, (columns, numeric)) = encode(&ColumnChoice::default());
    println!("encode a segment without field columns {plain:>7.1} ns/event");
    println!(
        "encode a segment with {columns} field columns ({numeric} numeric)  {with:>7.1} ns/event (+{:.1} ns/event)",
        with - plain
    );
    Ok(())
}

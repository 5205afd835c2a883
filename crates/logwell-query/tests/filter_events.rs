//! FilterLogEvents through DataFusion gives exactly what the storage engine's own scan gives, for
//! every pattern syntax, stream selection, direction, page size and paging key, over events in
//! segments, in memory, and of deleted streams.

use logwell_filter::FilterPattern;
use logwell_model::api::InputLogEvent;
use logwell_query::{Querier, QueryConfig};
use logwell_storage::{Scan, StorageConfig, StreamFilter};
use std::borrow::Cow;

mod common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datafusion_filter_matches_the_engine_scan() {
    // Segments that store the JSON fields as columns, which JSON patterns test before reading
    // messages; and fresh segments without them, where the fields are extracted first.
    for field_columns_at_flush in [true, false] {
        filter_matches_the_engine_scan(field_columns_at_flush).await;
    }
}

async fn filter_matches_the_engine_scan(field_columns_at_flush: bool) {
    let dir = tempfile::tempdir().unwrap();
    let streams = ["web-1", "web-2", "db-1", "gone"];
    let config = StorageConfig {
        row_group_rows: 64,
        field_columns_at_flush,
        // Fresh segments stay without columns while the patterns are tested.
        columns_when_queried: false,
        ..StorageConfig::default()
    };
    let engine = common::engine_with_group(dir.path(), config, "/g", &streams).await;
    let t0 = logwell_model::now_millis() - 600_000;
    for round in 0..3 {
        for (k, s) in streams.iter().enumerate() {
            let events: Vec<InputLogEvent> = (0..200)
                .map(|i| {
                    let n = round * 1000 + i;
                    let msg = match i % 4 {
                        // Buffered events whose status is not a number, where every segment
                        // holds status as numbers.
                        0 if round == 2 && i % 8 == 0 => format!(
                            r#"{{"level":"ERROR","status":{},"user":"u{}"}}"#,
                            ["\"timeout\"", "true"][i % 16 / 8],
                            i % 13
                        ),
                        0 => format!(
                            r#"{{"level":"ERROR","status":{},"user":"u{}"}}"#,
                            400 + i % 7,
                            i % 13
                        ),
                        1 => format!(
                            "127.0.0.{k} - frank [10/Oct/2000:13:55:36] \"GET /a{i}\" {} {n}",
                            200 + i % 3
                        ),
                        2 => format!("INFO request {n} took {} ms", i % 50),
                        _ => format!("WARN retry {n} ERROR ARGUMENTS"),
                    };
                    InputLogEvent {
                        // Equal timestamps across streams: ties are broken by seq.
                        timestamp: t0 + (round * 200 + i) as i64 * 10,
                        message: Cow::Owned(msg),
                    }
                })
                .collect();
            engine.put_events("/g", s, &events).await.unwrap();
        }
        if round < 2 {
            engine.flush().await.unwrap();
        }
    }
    engine.delete_stream("/g", "gone").await.unwrap();
    let snap = engine.snapshot("/g", i64::MIN, i64::MAX).unwrap();
    assert!(snap.segments.len() >= 2);
    for s in &snap.segments {
        for f in ["level", "status", "user"] {
            let stored = s.fields.iter().any(|x| x == f);
            assert_eq!(stored, field_columns_at_flush, "{f} in {:?}", s.fields);
        }
        let numeric = s.numeric.iter().any(|x| x == "status");
        assert_eq!(numeric, field_columns_at_flush, "{:?}", s.numeric);
    }
    // Slices of a few hundred rows: a page is read over several, and stops early.
    let querier = Querier::new(
        engine.clone(),
        QueryConfig {
            filter_slice_rows: 300,
            ..QueryConfig::default()
        },
    )
    .unwrap();
    let patterns = [
        "",
        "ERROR -ARGUMENTS",
        "?took ?retry",
        "\"GET /a1\"",
        "%request [0-9]+ took%",
        "{ $.level = \"ERROR\" && $.status >= 403 }",
        "{ $.user = \"u1*\" }",
        "{ $.status = 404 || $.user = \"u3\" }",
        "{ ($.status != 400 && $.level = \"ERR*\") || $.missing NOT EXISTS }",
        "{ $.status < 402 && $.user IS NULL }",
        "{ $.status = \"timeout\" }",
        "{ $.status = \"time*\" || $.status IS TRUE }",
        "{ $.status != 404 && $.level = \"ERROR\" }",
        "[ip, user, username, timestamp, request, status = 20*, bytes]",
    ];
    let selections = [
        StreamFilter::All,
        StreamFilter::Names(vec!["web-2".into(), "db-1".into()]),
        StreamFilter::Prefix("web-".into()),
    ];
    let mut checked = 0;
    let mut found = 0;
    for text in patterns {
        let pattern = FilterPattern::parse(text).unwrap();
        for streams in &selections {
            for newest_first in [false, true] {
                for limit in [1usize, 7, 5000] {
                    let mut scan = Scan {
                        streams: streams.clone(),
                        start: Some(t0 + 500),
                        end: Some(t0 + 5_500),
                        newest_first,
                        limit,
                        ..Default::default()
                    };
                    // Walk three pages, each after the last key of the one before.
                    for _ in 0..3 {
                        let want = reference(&engine, "/g", &scan, &pattern).await;
                        let got = querier
                            .filter_events("/g", &scan, Some((text, &pattern)), false)
                            .await
                            .unwrap();
                        assert_eq!(got, want, "pattern {text:?}, {streams:?}, newest_first {newest_first}, limit {limit}, field columns at flush {field_columns_at_flush}");
                        checked += 1;
                        found += usize::from(!want.is_empty());
                        let Some(last) = want.last() else { break };
                        if newest_first {
                            scan.before = Some(last.key());
                        } else {
                            scan.after = Some(last.key());
                        }
                    }
                }
            }
        }
    }
    assert!(checked > 200, "{checked}");
    assert!(
        found * 10 > checked * 8,
        "most scans find events: {found} of {checked}"
    );
    engine.shutdown().await.unwrap();
}

/// Numbers written differently in the event than in the pattern (`5e2`, `500.0`) still match,
/// when the field is a stored column too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_numbers_match_however_they_are_written() {
    let dir = tempfile::tempdir().unwrap();
    let config = StorageConfig {
        field_columns_at_flush: true,
        ..StorageConfig::default()
    };
    let engine = common::engine_with_group(dir.path(), config, "/n", &["s"]).await;
    let t0 = logwell_model::now_millis() - 60_000;
    let written = [
        "500",
        "5e2",
        "500.0",
        "5.0E2",
        "\"500\"",
        "501",
        "-0",
        "0",
        "1E3",
        "true",
        "9007199254740992",
    ];
    let events: Vec<InputLogEvent> = written
        .iter()
        .enumerate()
        .map(|(i, v)| InputLogEvent {
            timestamp: t0 + i as i64,
            message: Cow::Owned(format!(r#"{{"status":{v},"level":"x"}}"#)),
        })
        .collect();
    engine.put_events("/n", "s", &events).await.unwrap();
    engine.flush().await.unwrap();
    let snap = engine.snapshot("/n", i64::MIN, i64::MAX).unwrap();
    assert!(snap.segments[0].fields.iter().any(|f| f == "status"));
    let querier = Querier::new(engine.clone(), QueryConfig::default()).unwrap();
    for (text, want) in [
        (
            "{ $.status = 500 }",
            vec!["500", "5e2", "500.0", "5.0E2", "\"500\""],
        ),
        ("{ $.status = 500.0 }", vec!["500", "5e2", "500.0", "5.0E2"]),
        ("{ $.status = 0 }", vec!["-0", "0"]),
        ("{ $.status = -0 }", vec!["-0", "0"]),
        ("{ $.status <= -0 }", vec!["-0", "0"]),
        // Fractions and exponents read as floats, which print with a point.
        (
            "{ $.status = \"*.*\" }",
            vec!["5e2", "500.0", "5.0E2", "-0", "1E3"],
        ),
        // Beyond 2^53 integers compare as the same float.
        ("{ $.status = 9007199254740993 }", vec!["9007199254740992"]),
        ("{ $.status = 1000* }", vec!["1E3"]),
        (
            "{ $.status >= 501 }",
            vec!["501", "1E3", "9007199254740992"],
        ),
        ("{ $.status = \"true\" }", vec!["true"]),
    ] {
        let scan = Scan {
            limit: 100,
            ..Default::default()
        };
        let pattern = FilterPattern::parse(text).unwrap();
        let got = querier
            .filter_events("/n", &scan, Some((text, &pattern)), false)
            .await
            .unwrap();
        let want_rows = reference(&engine, "/n", &scan, &pattern).await;
        assert_eq!(got, want_rows, "{text}");
        let values: Vec<String> = got
            .iter()
            .map(|e| {
                e.message
                    .trim_start_matches(r#"{"status":"#)
                    .trim_end_matches(r#","level":"x"}"#)
                    .to_string()
            })
            .collect();
        assert_eq!(values, want, "{text}");
    }
    engine.shutdown().await.unwrap();
}

/// A page read a slice at a time stops only when the next slice cannot hold its events: here
/// every segment and the buffered events overlap in time, so each slice adds to the page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_read_in_time_slices_take_every_slice_that_overlaps() {
    // Without field columns every page reads the events; with them, JSON patterns first find
    // candidates in the columns, a slice at a time too.
    for field_columns_at_flush in [false, true] {
        slices_overlapping_in_time(field_columns_at_flush).await;
    }
}

async fn slices_overlapping_in_time(field_columns_at_flush: bool) {
    let dir = tempfile::tempdir().unwrap();
    let streams = ["a", "b", "c", "d"];
    let config = StorageConfig {
        field_columns_at_flush,
        ..StorageConfig::default()
    };
    let engine = common::engine_with_group(dir.path(), config, "/o", &streams).await;
    let t0 = logwell_model::now_millis() - 60_000;
    // Stream k's events at t0 + k, t0 + 10 + k, ...: one segment per stream, the last stream
    // still buffered; a slice ends at every source, and two slices hold more candidates than a
    // round of the column test takes (1,024).
    for (k, s) in streams.iter().enumerate() {
        let events: Vec<InputLogEvent> = (0..600)
            .map(|i| InputLogEvent {
                timestamp: t0 + i * 10 + k as i64,
                message: Cow::Owned(format!(
                    r#"{{"stream":"{s}","i":{i},"level":"{}"}}"#,
                    ["ERROR", "INFO"][i as usize % 2]
                )),
            })
            .collect();
        engine.put_events("/o", s, &events).await.unwrap();
        if k + 1 < streams.len() {
            engine.flush().await.unwrap();
        }
    }
    let snap = engine.snapshot("/o", i64::MIN, i64::MAX).unwrap();
    assert_eq!(snap.segments.len(), 3);
    let stored = snap.segments[0].numeric.iter().any(|f| f == "i");
    assert_eq!(stored, field_columns_at_flush, "{:?}", snap.segments[0]);
    let querier = Querier::new(
        engine.clone(),
        QueryConfig {
            filter_slice_rows: 1,
            ..QueryConfig::default()
        },
    )
    .unwrap();
    for text in ["", "ERROR", "{ $.level = \"ERROR\" }", "{ $.i >= 10 }"] {
        let pattern = FilterPattern::parse(text).unwrap();
        for newest_first in [false, true] {
            for limit in [3usize, 10, 1000] {
                let scan = Scan {
                    newest_first,
                    limit,
                    ..Default::default()
                };
                let got = querier
                    .filter_events("/o", &scan, Some((text, &pattern)), false)
                    .await
                    .unwrap();
                let want = reference(&engine, "/o", &scan, &pattern).await;
                assert_eq!(
                    got, want,
                    "{text:?} newest_first {newest_first} limit {limit} field columns {field_columns_at_flush}"
                );
                let streams: std::collections::BTreeSet<&str> =
                    got.iter().map(|r| r.stream.as_str()).collect();
                assert_eq!(
                    streams.len(),
                    limit.min(4),
                    "every slice gives events: {got:?}"
                );
            }
        }
    }
    engine.shutdown().await.unwrap();
}

/// What FilterLogEvents must return, computed the slow way: every event of the scan's window
/// and streams, in its order, kept when the pattern matches its message, up to the limit.
async fn reference(
    engine: &logwell_storage::Engine,
    group: &str,
    scan: &Scan,
    pattern: &FilterPattern,
) -> Vec<logwell_storage::EventRow> {
    let all = Scan {
        limit: usize::MAX,
        ..scan.clone()
    };
    let rows = engine.scan(group, &all).await.unwrap();
    rows.into_iter()
        .filter(|r| pattern.matches(&r.message))
        .take(scan.limit)
        .collect()
}

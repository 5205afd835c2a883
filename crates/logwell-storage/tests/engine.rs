//! Engine behaviour across flushes, restarts, compaction, retention and deletes.

mod common;

use common::*;
use logwell_model::api::InputLogEvent;
use logwell_model::now_millis;
use logwell_storage::{Engine, Scan, StorageConfig, StreamFilter};
use std::borrow::Cow;
use std::path::Path;
use std::time::Duration;

#[tokio::test]
async fn events_survive_flush_restart_and_unflushed_crash() {
    let dir = tempfile::tempdir().unwrap();
    let now = now_millis() - 60_000;
    let expected: Vec<String> = (0..300)
        .map(|i| format!("a {i}"))
        .chain((0..200).map(|i| format!("b {i}")))
        .collect();
    {
        let e = Engine::open(config(dir.path())).await.unwrap();
        setup(&e, "/g", &["s1"]).await;
        e.put_events("/g", "s1", &events(now, 300, "a"))
            .await
            .unwrap();
        e.flush().await.unwrap();
        // Acknowledged but never flushed: only the WAL has these when the engine goes away.
        e.put_events("/g", "s1", &events(now + 1000, 200, "b"))
            .await
            .unwrap();
        assert_eq!(all(&e, "/g").await, expected);
        assert_eq!(parquet_files(dir.path()), 1);
        // No shutdown: as if the process died here.
        e.crash();
    }
    let e = Engine::open(config(dir.path())).await.unwrap();
    assert_eq!(
        all(&e, "/g").await,
        expected,
        "replay after a crash restores unflushed events once"
    );
    let s = &e.list_streams("/g").unwrap()[0].1;
    assert_eq!(
        (s.first_event_ts, s.last_event_ts),
        (Some(now), Some(now + 1199))
    );
    e.shutdown().await.unwrap();
    let e = Engine::open(config(dir.path())).await.unwrap();
    assert_eq!(
        all(&e, "/g").await,
        expected,
        "after a clean shutdown everything is in segments"
    );
    assert_eq!(e.stats().buffered_bytes, 0);
    assert_eq!(e.stats().segment_rows, 500);
}

#[tokio::test]
async fn scans_page_by_key_from_either_end_over_memtable_and_segments() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::open(config(dir.path())).await.unwrap();
    setup(&e, "/g", &["x", "y"]).await;
    let now = now_millis() - 60_000;
    e.put_events("/g", "x", &events(now, 50, "x"))
        .await
        .unwrap();
    e.flush().await.unwrap();
    e.put_events("/g", "y", &events(now + 25, 50, "y"))
        .await
        .unwrap();
    let scan = |s: Scan| {
        let e = e.clone();
        async move { e.scan("/g", &s).await.unwrap() }
    };
    let first = scan(Scan {
        limit: 10,
        ..Default::default()
    })
    .await;
    assert_eq!(first.len(), 10);
    assert_eq!(first[0].message, "x 0");
    let next = scan(Scan {
        limit: 1000,
        after: Some(first[9].key()),
        ..Default::default()
    })
    .await;
    assert_eq!(next.len(), 90);
    let newest = scan(Scan {
        limit: 3,
        newest_first: true,
        ..Default::default()
    })
    .await;
    let msgs: Vec<_> = newest.iter().map(|r| r.message.as_str()).collect();
    assert_eq!(msgs, ["y 49", "y 48", "y 47"]);
    let only_y = scan(Scan {
        limit: 1000,
        streams: StreamFilter::Names(vec!["y".into()]),
        ..Default::default()
    })
    .await;
    assert!(only_y.iter().all(|r| r.stream == "y") && only_y.len() == 50);
    let window = scan(Scan {
        limit: 1000,
        start: Some(now + 10),
        end: Some(now + 20),
        ..Default::default()
    })
    .await;
    assert_eq!(window.len(), 10, "start inclusive, end exclusive");
}

#[tokio::test]
async fn compaction_merges_small_segments_without_changing_answers() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::open(config(dir.path())).await.unwrap();
    setup(&e, "/g", &["s"]).await;
    let now = now_millis() - 600_000;
    for round in 0..9 {
        e.put_events(
            "/g",
            "s",
            &events(now + round * 1000, 100, &format!("r{round}")),
        )
        .await
        .unwrap();
        e.flush().await.unwrap();
    }
    let before = all(&e, "/g").await;
    assert_eq!(before.len(), 900);
    assert_eq!(e.stats().segments, 9);
    assert!(e.compact_once().await.unwrap());
    e.maintain().await.unwrap();
    assert_eq!(e.stats().segments, 1);
    assert_eq!(all(&e, "/g").await, before);
    assert_eq!(
        parquet_files(dir.path()),
        1,
        "merged-away files are deleted"
    );
    e.crash();
    let e = Engine::open(config(dir.path())).await.unwrap();
    assert_eq!(
        all(&e, "/g").await,
        before,
        "the catalog lists the merged segment after restart"
    );
}

#[tokio::test]
async fn retention_hides_and_then_deletes_expired_segments() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::open(config(dir.path())).await.unwrap();
    setup(&e, "/g", &["s"]).await;
    let day = 86_400_000;
    let old = now_millis() - 3 * day;
    e.put_events("/g", "s", &events(old, 10, "old"))
        .await
        .unwrap();
    e.flush().await.unwrap();
    e.put_events("/g", "s", &events(now_millis() - 1000, 5, "new"))
        .await
        .unwrap();
    e.flush().await.unwrap();
    assert_eq!(all(&e, "/g").await.len(), 15);
    e.set_retention("/g", Some(1)).await.unwrap();
    assert_eq!(
        all(&e, "/g").await.len(),
        5,
        "expired events are never returned"
    );
    e.maintain().await.unwrap();
    assert_eq!(e.stats().segments, 1, "the expired segment is dropped");
    assert_eq!(parquet_files(dir.path()), 1);
    // An expired event is reported, not stored.
    let out = e
        .put_events("/g", "s", &events(old, 2, "late"))
        .await
        .unwrap();
    assert_eq!(out.accepted, 0);
    assert_eq!(out.rejected.unwrap().expired_log_event_end_index, Some(1));
}

#[tokio::test]
async fn deleted_streams_and_groups_take_their_events_with_them() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::open(config(dir.path())).await.unwrap();
    setup(&e, "/g", &["keep", "drop"]).await;
    setup(&e, "/other", &["s"]).await;
    let now = now_millis() - 60_000;
    e.put_events("/g", "keep", &events(now, 10, "keep"))
        .await
        .unwrap();
    e.put_events("/g", "drop", &events(now, 10, "drop"))
        .await
        .unwrap();
    e.put_events("/other", "s", &events(now, 10, "o"))
        .await
        .unwrap();
    e.flush().await.unwrap();
    e.delete_stream("/g", "drop").await.unwrap();
    // A stream created again with the same name starts empty.
    e.create_stream("/g", "drop").await.unwrap();
    e.put_events("/g", "drop", &events(now + 100, 1, "again"))
        .await
        .unwrap();
    let got = all(&e, "/g").await;
    assert_eq!(got.len(), 11);
    assert!(got.contains(&"again 0".to_string()) && !got.contains(&"drop 0".to_string()));
    e.delete_group("/other").await.unwrap();
    e.maintain().await.unwrap();
    assert_eq!(
        parquet_files(dir.path()),
        1,
        "the deleted group's segment file is gone"
    );
    assert!(e
        .scan(
            "/other",
            &Scan {
                limit: 10,
                ..Default::default()
            }
        )
        .await
        .is_err());
    e.crash();
    let e = Engine::open(config(dir.path())).await.unwrap();
    assert_eq!(all(&e, "/g").await.len(), 11);
    assert!(e.list_groups().iter().all(|g| g.name != "/other"));
}

/// A store holding 3 events in "/g"/"s", all flushed to one segment.
async fn three_events_then_clean_shutdown(dir: &Path) {
    let e = Engine::open(config(dir)).await.unwrap();
    setup(&e, "/g", &["s"]).await;
    e.put_events("/g", "s", &events(now_millis() - 1000, 3, "x"))
        .await
        .unwrap();
    e.shutdown().await.unwrap();
}

#[tokio::test]
async fn batch_rules_follow_aws() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::open(config(dir.path())).await.unwrap();
    setup(&e, "/g", &["s"]).await;
    let now = now_millis();
    let mut evs = events(now - 15 * 86_400_000, 2, "ancient");
    evs.extend(events(now - 1000, 3, "ok"));
    evs.extend(events(now + 3 * 3_600_000, 1, "future"));
    let out = e.put_events("/g", "s", &evs).await.unwrap();
    assert_eq!(out.accepted, 3);
    let r = out.rejected.unwrap();
    assert_eq!(
        (
            r.too_old_log_event_end_index,
            r.too_new_log_event_start_index
        ),
        (Some(1), Some(5))
    );
    let unordered = vec![
        events(now, 1, "b").remove(0),
        events(now - 5, 1, "a").remove(0),
    ];
    assert!(e
        .put_events("/g", "s", &unordered)
        .await
        .unwrap_err()
        .message
        .contains("chronological"));
    let wide = vec![
        events(now - 25 * 3_600_000, 1, "a").remove(0),
        events(now, 1, "b").remove(0),
    ];
    assert!(e
        .put_events("/g", "s", &wide)
        .await
        .unwrap_err()
        .message
        .contains("24 hours"));
    let big = vec![InputLogEvent {
        timestamp: now,
        message: Cow::Owned("x".repeat(1_048_576)),
    }];
    assert!(e.put_events("/g", "s", &big).await.is_err());
    assert_eq!(
        all(&e, "/g").await.len(),
        3,
        "rejected batches store nothing"
    );
}

#[tokio::test]
async fn cold_flushed_segments_are_rewritten_once_with_the_hard_codec() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = StorageConfig {
        recompress_after: Duration::ZERO,
        ..config(dir.path())
    };
    let e = Engine::open(cfg).await.unwrap();
    setup(&e, "/g", &["s"]).await;
    e.put_events("/g", "s", &events(now_millis() - 1000, 500, "line"))
        .await
        .unwrap();
    e.flush().await.unwrap();
    let flushed = e.segment_paths();
    let before = all(&e, "/g").await;
    e.maintain().await.unwrap();
    let rewritten = e.segment_paths();
    assert_eq!(rewritten.len(), 1);
    assert_ne!(rewritten, flushed, "the flushed file was replaced");
    assert_eq!(all(&e, "/g").await, before);
    e.maintain().await.unwrap();
    assert_eq!(
        e.segment_paths(),
        rewritten,
        "a compacted segment is not rewritten again"
    );
}

#[tokio::test]
async fn an_unreadable_catalog_stops_start_up_instead_of_losing_data() {
    let dir = tempfile::tempdir().unwrap();
    three_events_then_clean_shutdown(dir.path()).await;
    let mut manifests = manifests(dir.path());
    let newest = manifests.pop().unwrap();
    let previous = manifests.pop().unwrap();
    let (good_newest, good_previous) = (
        std::fs::read(&newest).unwrap(),
        std::fs::read(&previous).unwrap(),
    );
    // The newest alone is broken: the previous one and the WAL still cover everything.
    std::fs::write(&newest, b"{ not json").unwrap();
    let e = Engine::open(config(dir.path())).await.unwrap();
    assert_eq!(all(&e, "/g").await.len(), 3);
    e.crash();
    // Both broken: refuse rather than start empty.
    std::fs::write(&previous, b"{ not json").unwrap();
    let err = Engine::open(config(dir.path()))
        .await
        .err()
        .expect("must refuse to open");
    assert!(err.to_string().contains("refusing to start"), "{err}");
    // Nothing was deleted meanwhile: with the manifests repaired, everything is there.
    std::fs::write(&newest, good_newest).unwrap();
    std::fs::write(&previous, good_previous).unwrap();
    let e = Engine::open(config(dir.path())).await.unwrap();
    assert_eq!(all(&e, "/g").await.len(), 3);
}

/// The field columns of each of `group`'s segments.
/// 50 JSON events from `t0 + from` on, one a millisecond, with fields `level` and `n`.
fn json_events(t0: i64, from: i64) -> Vec<InputLogEvent<'static>> {
    (from..from + 50)
        .map(|i| InputLogEvent {
            timestamp: t0 + i,
            message: Cow::Owned(format!(r#"{{"level":"INFO","n":{i}}}"#)),
        })
        .collect()
}

fn segment_fields(e: &Engine, group: &str) -> Vec<Vec<String>> {
    e.snapshot(group, 0, i64::MAX)
        .unwrap()
        .segments
        .iter()
        .map(|s| s.fields.clone())
        .collect()
}

#[tokio::test]
async fn a_queried_group_has_its_flushed_files_given_field_columns_before_they_go_cold() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = StorageConfig {
        memtable_batch_rows: 10,
        ..config(dir.path())
    };
    let e = Engine::open(cfg).await.unwrap();
    setup(&e, "/g", &["s"]).await;
    let t0 = now_millis() - 1000;
    let json = |from: i64| json_events(t0, from);
    e.put_events("/g", "s", &json(0)).await.unwrap();
    e.flush().await.unwrap();
    e.put_events("/g", "s", &json(50)).await.unwrap();
    // Nobody queried the group: the flushed file waits until it goes cold.
    assert!(!e.compact_once().await.unwrap());
    assert_eq!(segment_fields(&e, "/g"), vec![Vec::<String>::new()]);
    // A query had the buffered batches keep `level`: the file is rewritten with its columns.
    for b in e.snapshot("/g", 0, i64::MAX).unwrap().buffered {
        b.keep(&["level".to_string()], &[]);
    }
    let before = all(&e, "/g").await;
    assert!(e.compact_once().await.unwrap());
    assert_eq!(
        segment_fields(&e, "/g"),
        vec![vec!["level".to_string(), "n".to_string()]]
    );
    assert_eq!(all(&e, "/g").await, before, "events read back unchanged");
    assert!(!e.compact_once().await.unwrap(), "rewritten once");
}

#[tokio::test]
async fn a_group_whose_fields_were_queried_gets_columns_now_and_at_its_next_flushes() {
    let dir = tempfile::tempdir().unwrap();
    // Maintenance ticks hourly (common config): only the query's wake-up can rewrite in time.
    let e = Engine::open(config(dir.path())).await.unwrap();
    setup(&e, "/g", &["s"]).await;
    setup(&e, "/other", &["s"]).await;
    let t0 = now_millis() - 1000;
    let json = |from: i64| json_events(t0, from);
    e.put_events("/g", "s", &json(0)).await.unwrap();
    e.put_events("/other", "s", &json(0)).await.unwrap();
    e.flush().await.unwrap();
    let before = all(&e, "/g").await;
    assert_eq!(segment_fields(&e, "/g"), vec![Vec::<String>::new()]);
    // A query extracted `level` of /g from its messages.
    e.fields_queried("/g");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while segment_fields(&e, "/g") != vec![vec!["level".to_string(), "n".to_string()]] {
        assert!(
            std::time::Instant::now() < deadline,
            "the flushed file was not rewritten with its field columns: {:?}",
            segment_fields(&e, "/g")
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(all(&e, "/g").await, before, "events read back unchanged");
    // The next flush of the group being looked into writes its columns at once; a group nobody
    // queried flushes as before, without them.
    e.put_events("/g", "s", &json(50)).await.unwrap();
    e.put_events("/other", "s", &json(50)).await.unwrap();
    e.flush().await.unwrap();
    let fields = segment_fields(&e, "/g");
    assert_eq!(fields.len(), 2);
    assert!(fields.iter().all(|f| f == &["level", "n"]), "{fields:?}");
    assert_eq!(
        segment_fields(&e, "/other"),
        vec![Vec::<String>::new(), Vec::new()]
    );
}

#[tokio::test]
async fn compaction_stores_frequent_json_fields_as_columns_and_flush_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = StorageConfig {
        recompress_after: Duration::ZERO,
        ..config(dir.path())
    };
    let e = Engine::open(cfg).await.unwrap();
    setup(&e, "/g", &["s"]).await;
    let t0 = now_millis() - 1000;
    let json: Vec<InputLogEvent> = (0..100)
        .map(|i| InputLogEvent {
            timestamp: t0 + i,
            message: Cow::Owned(format!(r#"{{"level":"INFO","n":{i}}}"#)),
        })
        .collect();
    e.put_events("/g", "s", &json).await.unwrap();
    e.flush().await.unwrap();
    assert_eq!(
        segment_fields(&e, "/g"),
        vec![Vec::<String>::new()],
        "flush stays cheap"
    );
    let before = all(&e, "/g").await;
    e.maintain().await.unwrap();
    assert_eq!(
        segment_fields(&e, "/g"),
        vec![vec!["level".to_string(), "n".to_string()]]
    );
    assert_eq!(all(&e, "/g").await, before, "events read back unchanged");
}

/// A store whose catalog an earlier version wrote (plain JSON manifests) opens with everything
/// in it; new manifests are compressed, and the plain ones go once three newer ones exist.
#[tokio::test]
async fn a_catalog_of_plain_manifests_is_read_and_replaced() {
    use logwell_storage::catalog::{parse_manifest_version, Manifest};
    let dir = tempfile::tempdir().unwrap();
    three_events_then_clean_shutdown(dir.path()).await;
    for path in manifests(dir.path()) {
        let m = Manifest::from_stored(&std::fs::read(&path).unwrap()).unwrap();
        let plain = path.to_string_lossy().trim_end_matches(".zst").to_string();
        std::fs::write(&plain, serde_json::to_vec(&m).unwrap()).unwrap();
        std::fs::remove_file(&path).unwrap();
    }
    let plain_newest = manifests(dir.path()).len();
    assert!(manifests(dir.path())
        .iter()
        .all(|p| p.extension().unwrap() == "json"));

    let e = Engine::open(config(dir.path())).await.unwrap();
    assert_eq!(all(&e, "/g").await.len(), 3);
    for i in 0..4 {
        e.put_events("/g", "s", &events(now_millis() - 500, 1, &format!("y{i}")))
            .await
            .unwrap();
        e.flush().await.unwrap();
    }
    e.shutdown().await.unwrap();
    let e = Engine::open(config(dir.path())).await.unwrap();
    assert_eq!(all(&e, "/g").await.len(), 7);
    e.shutdown().await.unwrap();
    let left = manifests(dir.path());
    let newest = left
        .iter()
        .filter_map(|p| parse_manifest_version(&p.to_string_lossy()))
        .max()
        .unwrap();
    for p in &left {
        let v = parse_manifest_version(&p.to_string_lossy()).unwrap();
        let plain = p.extension().unwrap() == "json";
        assert!(
            !plain || v + 3 > newest,
            "{p:?} left behind (newest {newest})"
        );
        let bytes = std::fs::read(p).unwrap();
        assert_eq!(
            bytes.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]),
            !plain,
            "{p:?}"
        );
    }
    assert!(left.len() <= 3 + plain_newest.min(3), "{left:?}");
}

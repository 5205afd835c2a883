//! Faults inside the engine, injected with failpoints: a crash at each step of flush, compaction
//! and retention; a client that goes away mid-fsync; a second writer; a damaged WAL or catalog.
//! After each, every acknowledged event is there exactly once.
//!
//! Failpoints are process-wide: every test holds a `FailScenario`, which runs them one at a time
//! (nextest runs each test in a process of its own anyway).

mod common;

use common::*;
use fail::FailScenario;
use logwell_model::now_millis;
use logwell_storage::{Engine, NewGroup, OpenError, OpenOptions, StorageConfig};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

fn compacting(dir: &Path) -> StorageConfig {
    StorageConfig {
        // Every segment counts as cold, so two flushed segments merge at once.
        recompress_after: Duration::ZERO,
        orphan_grace: Duration::ZERO,
        ..config(dir)
    }
}

/// Counts of each message in the group.
async fn counts(e: &Engine, group: &str) -> BTreeMap<String, usize> {
    let mut c = BTreeMap::new();
    for m in all(e, group).await {
        *c.entry(m).or_default() += 1;
    }
    c
}

fn expect_once(acked: &[String]) -> BTreeMap<String, usize> {
    acked.iter().map(|m| (m.clone(), 1)).collect()
}

/// Puts `n` events tagged `tag`; returns their messages (acknowledged).
async fn put(e: &Engine, tag: &str, n: usize) -> Vec<String> {
    let evs = events(now_millis() - 10_000, n, tag);
    e.put_events("/g", "s", &evs).await.unwrap();
    evs.iter().map(|v| v.message.to_string()).collect()
}

/// Every step of flush, compaction and retention where a crash can land.
const STEPS: &[(&str, &str)] = &[
    ("store::put", "return"),
    ("store::put", "1*off->return"),
    ("flush::before_manifest", "return"),
    ("manifest::before_deletes", "return"),
    ("flush::before_wal_truncate", "return"),
    ("store::delete", "return"),
    ("compact::before_swap", "return"),
    ("maintain::before_compaction", "return"),
];

#[tokio::test]
async fn a_crash_at_any_step_of_flush_compaction_or_retention_loses_nothing() {
    let scenario = FailScenario::setup();
    for (point, action) in STEPS {
        let dir = tempfile::tempdir().unwrap();
        let e = Engine::open(compacting(dir.path())).await.unwrap();
        setup(&e, "/g", &["s"]).await;
        let mut acked = put(&e, "a", 300).await;
        e.flush().await.unwrap();
        acked.extend(put(&e, "b", 200).await);
        fail::cfg(*point, action).unwrap();
        // Flush (a second segment), then maintenance (merging the two); the fault lands in one.
        let flushed = e.flush().await;
        let maintained = e.maintain().await;
        fail::remove(*point);
        assert!(
            flushed.is_err() || maintained.is_err() || *point == "store::delete",
            "{point} {action} never fired"
        );
        e.crash();
        let e = Engine::open(compacting(dir.path())).await.unwrap();
        assert_eq!(
            counts(&e, "/g").await,
            expect_once(&acked),
            "after a crash at {point} ({action})"
        );
        // The store still works: more events, a flush and maintenance, then a clean restart.
        acked.extend(put(&e, "c", 100).await);
        e.flush().await.unwrap();
        e.maintain().await.unwrap();
        e.shutdown().await.unwrap();
        let e = Engine::open(compacting(dir.path())).await.unwrap();
        assert_eq!(
            counts(&e, "/g").await,
            expect_once(&acked),
            "after recovering from {point}"
        );
        assert_eq!(e.stats().segments, 1, "compaction finished after {point}");
        e.shutdown().await.unwrap();
    }
    scenario.teardown();
}

#[tokio::test]
async fn a_second_engine_on_the_same_data_dir_is_refused_and_the_first_keeps_working() {
    let scenario = FailScenario::setup();
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::open(config(dir.path())).await.unwrap();
    setup(&e, "/g", &["s"]).await;
    let acked = put(&e, "a", 10).await;
    let err = Engine::open(config(dir.path()))
        .await
        .err()
        .expect("second open refused");
    assert!(matches!(err, OpenError::InUse(_)), "{err}");
    assert!(
        err.to_string()
            .contains(&format!("pid {}", std::process::id())),
        "{err}"
    );
    assert_eq!(counts(&e, "/g").await, expect_once(&acked));
    e.shutdown().await.unwrap();
    let e = Engine::open(config(dir.path())).await.unwrap();
    assert_eq!(counts(&e, "/g").await, expect_once(&acked));
    scenario.teardown();
}

/// Runs `op` until it is inside the WAL's (slowed) fsync, then drops it, as a server drops the
/// handler of a client that disconnected.
async fn abandon_mid_fsync<F: std::future::Future>(op: F) {
    assert!(
        tokio::time::timeout(Duration::from_millis(50), op)
            .await
            .is_err(),
        "finished before the fsync"
    );
}

#[tokio::test]
async fn operations_abandoned_mid_fsync_complete_whole() {
    let scenario = FailScenario::setup();
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::open(config(dir.path())).await.unwrap();
    setup(&e, "/g", &["s", "doomed"]).await;
    fail::cfg("wal::commit", "sleep(300)").unwrap();
    // A create abandoned mid-fsync, then another create: distinct group ids.
    abandon_mid_fsync(e.create_group(NewGroup {
        name: "/a".into(),
        ..Default::default()
    }))
    .await;
    e.create_group(NewGroup {
        name: "/b".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    // A stream deletion abandoned mid-fsync, then a put into that stream: not acknowledged.
    abandon_mid_fsync(e.delete_stream("/g", "doomed")).await;
    let put = e
        .put_events("/g", "doomed", &events(now_millis() - 1000, 5, "late"))
        .await;
    fail::remove("wal::commit");
    let err = put.expect_err("a put into a deleted stream must not be acknowledged");
    assert_eq!(err, logwell_model::ApiError::stream_not_found());
    let a = e.snapshot("/a", 0, i64::MAX).unwrap().group_id;
    let b = e.snapshot("/b", 0, i64::MAX).unwrap().group_id;
    let g = e.snapshot("/g", 0, i64::MAX).unwrap().group_id;
    assert!(
        a != b && a != g && b != g,
        "group ids {g} {a} {b} must differ"
    );
    // Events of one group never show up in, or go with, another.
    e.create_stream("/a", "s").await.unwrap();
    e.put_events("/a", "s", &events(now_millis() - 1000, 3, "in-a"))
        .await
        .unwrap();
    e.delete_group("/b").await.unwrap();
    assert_eq!(all(&e, "/a").await.len(), 3);
    e.crash();
    let e = Engine::open(config(dir.path())).await.unwrap();
    assert_eq!(all(&e, "/a").await.len(), 3);
    assert!(e
        .list_streams("/g")
        .unwrap()
        .iter()
        .all(|(n, _)| n != "doomed"));
    scenario.teardown();
}

#[tokio::test]
async fn a_failed_wal_write_is_not_acknowledged_and_leaves_no_gap() {
    let scenario = FailScenario::setup();
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::open(config(dir.path())).await.unwrap();
    setup(&e, "/g", &["s"]).await;
    let mut acked = put(&e, "a", 5).await;
    // The frames reach the file, then the fsync fails: they are cut off and their LSNs reused.
    fail::cfg("wal::fsync", "return").unwrap();
    assert!(e
        .put_events("/g", "s", &events(now_millis() - 1000, 5, "lost"))
        .await
        .is_err());
    fail::remove("wal::fsync");
    acked.extend(put(&e, "b", 5).await);
    e.crash();
    // A strict replay accepts the log: the failed write left no gap in the LSNs.
    let e = Engine::open(config(dir.path())).await.unwrap();
    assert_eq!(counts(&e, "/g").await, expect_once(&acked));
    scenario.teardown();
}

fn wal_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir.join("wal"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn a_corrupt_wal_record_stops_start_up_and_recover_salvages_the_rest() {
    let scenario = FailScenario::setup();
    let dir = tempfile::tempdir().unwrap();
    // Plain frames, so the test can find a record's text to damage (a sealed frame's damage
    // is caught the same way: by its checksum).
    let config = |p: &Path| StorageConfig {
        encrypt: false,
        ..config(p)
    };
    let e = Engine::open(config(dir.path())).await.unwrap();
    setup(&e, "/g", &["s"]).await;
    let first = put(&e, "a", 3).await;
    let _damaged = put(&e, "b", 3).await;
    let last = put(&e, "c", 3).await;
    e.crash();
    let wal = wal_files(dir.path()).pop().unwrap();
    let mut bytes = std::fs::read(&wal).unwrap();
    // The second event batch: find its text and flip a byte of it.
    let at = bytes.windows(3).position(|w| w == b"b 1").unwrap();
    bytes[at] ^= 0xff;
    std::fs::write(&wal, &bytes).unwrap();
    let err = Engine::open(config(dir.path()))
        .await
        .err()
        .expect("damage refuses");
    let msg = err.to_string();
    assert!(
        msg.contains("corrupt at offset") && msg.contains("--recover"),
        "{msg}"
    );
    let e = Engine::open_with(
        config(dir.path()),
        OpenOptions {
            recover: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(e.recovery_report().len(), 1, "{:?}", e.recovery_report());
    let mut want = first.clone();
    want.extend(last.clone());
    assert_eq!(counts(&e, "/g").await, expect_once(&want));
    e.shutdown().await.unwrap();
    // Recovery checkpointed: a plain start works again.
    let e = Engine::open(config(dir.path())).await.unwrap();
    assert_eq!(counts(&e, "/g").await, expect_once(&want));
    scenario.teardown();
}

#[tokio::test]
async fn an_empty_newest_manifest_falls_back_to_the_previous_one_and_the_wal() {
    let scenario = FailScenario::setup();
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::open(config(dir.path())).await.unwrap();
    setup(&e, "/g", &["s"]).await;
    let mut acked = put(&e, "a", 3).await;
    e.flush().await.unwrap();
    acked.extend(put(&e, "b", 3).await);
    // The power cut comes after the newest manifest's rename, before the WAL is truncated.
    fail::cfg("flush::before_wal_truncate", "return").unwrap();
    assert!(e.flush().await.is_err());
    fail::remove("flush::before_wal_truncate");
    e.crash();
    // As after a power cut right after the rename of the newest manifest.
    let manifests = manifests(dir.path());
    std::fs::write(manifests.last().unwrap(), b"").unwrap();
    let e = Engine::open(config(dir.path())).await.unwrap();
    assert_eq!(counts(&e, "/g").await, expect_once(&acked));
    // The next manifest gets a new version, past the broken one.
    acked.extend(put(&e, "c", 3).await);
    e.flush().await.unwrap();
    e.crash();
    let e = Engine::open(config(dir.path())).await.unwrap();
    assert_eq!(counts(&e, "/g").await, expect_once(&acked));
    scenario.teardown();
}

#[tokio::test]
async fn young_unlisted_segments_are_kept_old_ones_removed() {
    let scenario = FailScenario::setup();
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::open(config(dir.path())).await.unwrap();
    setup(&e, "/g", &["s"]).await;
    put(&e, "a", 3).await;
    e.shutdown().await.unwrap();
    let stray = dir.path().join("store/segments/g00000000/stray.parquet");
    std::fs::write(&stray, b"half-written").unwrap();
    let staging = dir.path().join("store/catalog/manifest-x.json#123");
    std::fs::write(&staging, b"half").unwrap();
    // It may be another writer's flush that is about to be published: kept.
    let e = Engine::open(config(dir.path())).await.unwrap();
    assert!(stray.exists());
    assert!(!staging.exists(), "staging leftovers are removed");
    e.shutdown().await.unwrap();
    let e = Engine::open(StorageConfig {
        orphan_grace: Duration::ZERO,
        ..config(dir.path())
    })
    .await
    .unwrap();
    assert!(!stray.exists());
    assert_eq!(all(&e, "/g").await.len(), 3);
    scenario.teardown();
}

#[tokio::test]
async fn a_crash_inside_retention_keeps_live_events_and_finishes_later() {
    let scenario = FailScenario::setup();
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::open(compacting(dir.path())).await.unwrap();
    setup(&e, "/g", &["s"]).await;
    // Three-day-old events, as a loader of history would put them, in a segment of their own.
    let then = now_millis() - 3 * 86_400_000;
    e.put_events_at(then, "/g", "s", &events(then - 1000, 50, "old"))
        .await
        .unwrap();
    e.flush().await.unwrap();
    let live = put(&e, "new", 20).await;
    e.flush().await.unwrap();
    e.set_retention("/g", Some(1)).await.unwrap();
    fail::cfg("maintain::before_compaction", "return").unwrap();
    assert!(e.maintain().await.is_err());
    fail::remove("maintain::before_compaction");
    e.crash();
    let e = Engine::open(compacting(dir.path())).await.unwrap();
    assert_eq!(
        counts(&e, "/g").await,
        expect_once(&live),
        "expired events stay hidden"
    );
    e.maintain().await.unwrap();
    assert_eq!(counts(&e, "/g").await, expect_once(&live));
    assert_eq!(e.stats().segment_rows, 20, "the expired segment is gone");
    scenario.teardown();
}

#[tokio::test]
async fn a_hanging_object_store_delays_the_flush_but_not_ingest_or_reads() {
    let scenario = FailScenario::setup();
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::open(config(dir.path())).await.unwrap();
    setup(&e, "/g", &["s"]).await;
    let mut acked = put(&e, "a", 100).await;
    fail::cfg("store::put_delay", "return(3000)").unwrap();
    let flushing = tokio::spawn({
        let e = e.clone();
        async move { e.flush().await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let t0 = std::time::Instant::now();
    acked.extend(put(&e, "b", 100).await);
    assert_eq!(counts(&e, "/g").await, expect_once(&acked));
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "ingest and reads waited for the store: {:?}",
        t0.elapsed()
    );
    fail::remove("store::put_delay");
    flushing.await.unwrap().unwrap();
    e.crash();
    let e = Engine::open(config(dir.path())).await.unwrap();
    assert_eq!(counts(&e, "/g").await, expect_once(&acked));
    scenario.teardown();
}

#[tokio::test]
async fn the_wal_holds_no_plaintext_and_a_sealed_frame_cannot_be_moved() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::open(config(dir.path())).await.unwrap();
    setup(&e, "/g", &["s"]).await;
    let acked = put(&e, "secret-text", 3).await;
    e.crash();
    let wal = wal_files(dir.path()).pop().unwrap();
    let bytes = std::fs::read(&wal).unwrap();
    assert!(
        !bytes.windows(11).any(|w| w == b"secret-text"),
        "the WAL holds the events' text"
    );
    // Replayed with the keyring: everything is back.
    let e = Engine::open(config(dir.path())).await.unwrap();
    assert_eq!(counts(&e, "/g").await, expect_once(&acked));
    e.crash();
    // Without it: start-up refuses (no new keyring is made over encrypted data).
    std::fs::rename(dir.path().join("keyring"), dir.path().join("keyring.away")).unwrap();
    let err = Engine::open(config(dir.path()))
        .await
        .err()
        .expect("refuses");
    assert!(err.to_string().contains("decrypted"), "{err}");
    assert!(
        !dir.path().join("keyring").exists(),
        "no stray keyring is left"
    );
}

use super::*;
use logwell_model::api::InputLogEvent;
use logwell_storage::{NewGroup, StorageConfig};
use std::borrow::Cow;

async fn engine(dir: &std::path::Path) -> Engine {
    let engine = Engine::open(StorageConfig {
        data_dir: dir.to_path_buf(),
        ..Default::default()
    })
    .await
    .unwrap();
    for g in ["/a", "/b"] {
        engine
            .create_group(NewGroup {
                name: g.into(),
                ..Default::default()
            })
            .await
            .unwrap();
        for s in ["web-1", "web-2", "db-1"] {
            engine.create_stream(g, s).await.unwrap();
        }
    }
    engine
}

async fn put(engine: &Engine, group: &str, stream: &str, messages: &[String]) {
    let now = logwell_model::now_millis();
    let events: Vec<InputLogEvent> = messages
        .iter()
        .map(|m| InputLogEvent {
            timestamp: now,
            message: Cow::Owned(m.clone()),
        })
        .collect();
    let out = engine.put_events(group, stream, &events).await.unwrap();
    assert_eq!(out.accepted, messages.len());
}

fn request(groups: &[&str]) -> StartLiveTailRequest {
    StartLiveTailRequest {
        log_group_identifiers: groups.iter().map(|g| g.to_string()).collect(),
        ..Default::default()
    }
}

fn messages(update: &LiveTailSessionUpdate) -> Vec<&str> {
    update
        .session_results
        .iter()
        .map(|e| e.message.as_str())
        .collect()
}

async fn update(s: &mut Session) -> LiveTailSessionUpdate {
    match s.next().await {
        Next::Update(u) => u,
        other => panic!("expected an update, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_sees_events_put_after_it_starts_filtered_by_stream_and_pattern() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path()).await;
    put(&engine, "/a", "web-1", &["before ERROR".into()]).await;
    let tails = Tails::new(engine.clone(), "123".into(), TailConfig::default());
    let mut all = tails
        .start(request(&["arn:aws:logs:us-east-1:123:log-group:/a", "/b"]))
        .unwrap();
    let mut filtered = tails
        .start(StartLiveTailRequest {
            log_stream_name_prefixes: Some(vec!["web-".into()]),
            log_event_filter_pattern: Some("ERROR".into()),
            ..request(&["/a"])
        })
        .unwrap();
    assert_eq!(tails.active(), 2);
    put(
        &engine,
        "/a",
        "web-1",
        &["GET ok".into(), "ERROR one".into()],
    )
    .await;
    put(&engine, "/a", "db-1", &["ERROR db".into()]).await;
    put(&engine, "/b", "web-2", &["ERROR two".into()]).await;
    let mut seen = Vec::new();
    while seen.len() < 4 {
        let u = update(&mut all).await;
        assert!(!u.session_metadata.sampled);
        seen.extend(u.session_results);
    }
    let got: Vec<(&str, &str, &str)> = seen
        .iter()
        .map(|e| {
            (
                e.log_group_identifier.as_str(),
                e.log_stream_name.as_str(),
                e.message.as_str(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("123:/a", "web-1", "GET ok"),
            ("123:/a", "web-1", "ERROR one"),
            ("123:/a", "db-1", "ERROR db"),
            ("123:/b", "web-2", "ERROR two"),
        ]
    );
    assert!(seen.iter().all(|e| e.ingestion_time >= e.timestamp));
    assert_eq!(messages(&update(&mut filtered).await), ["ERROR one"]);
    drop(all);
    assert_eq!(tails.active(), 1);
    engine.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bursts_are_sampled_slow_readers_flagged_and_idle_sessions_beat() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path()).await;
    let config = TailConfig {
        heartbeat: Duration::from_millis(100),
        rate_window: Duration::from_millis(100),
        queue_batches: 2,
        ..Default::default()
    };
    let tails = Tails::new(engine.clone(), "123".into(), config);
    let mut s = tails.start(request(&["/a"])).unwrap();
    // A burst of 1,200 events in one batch: 500 of them, in order, flagged.
    let burst: Vec<String> = (0..1200).map(|i| format!("e{i:04}")).collect();
    put(&engine, "/a", "web-1", &burst).await;
    let u = update(&mut s).await;
    assert!(u.session_metadata.sampled);
    let got = messages(&u);
    assert_eq!(got.len(), 500);
    assert!(got.windows(2).all(|w| w[0] < w[1]));
    // Events from the start and the end of the burst are both shown.
    assert!(
        got[0] < "e0100" && got[499] > "e1100",
        "{} {}",
        got[0],
        got[499]
    );
    // Nothing put: an empty heartbeat after the heartbeat interval, not sampled.
    let started = Instant::now();
    let beat = update(&mut s).await;
    assert!(beat.session_results.is_empty() && !beat.session_metadata.sampled);
    assert!(started.elapsed() >= Duration::from_millis(80));
    // A reader that does not read: batches beyond its queue are dropped for it (ingest does not
    // wait) and its next update says so.
    for i in 0..5 {
        put(&engine, "/a", "web-1", &[format!("slow {i}")]).await;
    }
    // The tap is offered a batch after its put is answered: wait until the last three were
    // turned away, so reading cannot make room for them first.
    let waited = Instant::now();
    while s.tap.dropped() < 3 {
        assert!(
            waited.elapsed() < Duration::from_secs(10),
            "the tap never dropped"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut seen = Vec::new();
    let mut sampled = false;
    while seen.len() < 2 {
        let u = update(&mut s).await;
        sampled |= u.session_metadata.sampled;
        seen.extend(u.session_results.into_iter().map(|e| e.message));
    }
    assert_eq!(seen, ["slow 0", "slow 1"]);
    assert!(sampled);
    engine.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_cloudwatch_errors_and_sessions_are_limited_and_end() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path()).await;
    let config = TailConfig {
        max_sessions: 1,
        max_duration: Duration::from_millis(200),
        ..Default::default()
    };
    let tails = Tails::new(engine.clone(), "123".into(), config);
    let err = |r: StartLiveTailRequest| tails.start(r).err().expect("an error");
    let e = err(request(&["/missing"]));
    assert_eq!(e.kind, ErrorKind::ResourceNotFound);
    let eleven: Vec<String> = (0..11).map(|i| format!("/g{i}")).collect();
    let e = err(StartLiveTailRequest {
        log_group_identifiers: eleven,
        ..Default::default()
    });
    assert!(e.message.contains("length less than or equal to 10"), "{e}");
    let e = err(request(&[]));
    assert!(e.message.contains("greater than or equal to 1"), "{e}");
    let e = err(StartLiveTailRequest {
        log_stream_names: Some(vec!["web-1".into()]),
        ..request(&["/a", "/b"])
    });
    assert_eq!(e.kind, ErrorKind::InvalidParameter);
    assert!(e.message.contains("single log group"), "{e}");
    let e = err(StartLiveTailRequest {
        log_stream_names: Some(vec!["web-1".into()]),
        log_stream_name_prefixes: Some(vec!["w".into()]),
        ..request(&["/a"])
    });
    assert!(e.message.starts_with("Only one of"), "{e}");
    let e = err(StartLiveTailRequest {
        log_event_filter_pattern: Some("{ $.a = ".into()),
        ..request(&["/a"])
    });
    assert_eq!(e.kind, ErrorKind::InvalidParameter);
    let e = err(request(&["arn:aws:logs:us-east-1:123:log-group:/a:*"]));
    assert_eq!(e.kind, ErrorKind::InvalidParameter);
    // Within the limit one runs; a second is refused until the first is gone.
    let mut s = tails.start(request(&["/a"])).unwrap();
    assert_eq!(err(request(&["/a"])).kind, ErrorKind::LimitExceeded);
    // Heartbeats until the session's time is up, then the timeout.
    let started = Instant::now();
    loop {
        match s.next().await {
            Next::Update(u) => assert!(u.session_results.is_empty()),
            Next::Timeout => break,
            Next::Closed => panic!("closed"),
        }
    }
    assert!(started.elapsed() >= Duration::from_millis(150));
    drop(s);
    assert!(tails.start(request(&["/a"])).is_ok());
    engine.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_is_sent_as_one_sampled_update_per_second() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path()).await;
    // A "second" of 200 ms and a budget of 50 events in it.
    let config = TailConfig {
        rate_window: Duration::from_millis(200),
        max_events_per_update: 50,
        ..Default::default()
    };
    let tails = Tails::new(engine.clone(), "123".into(), config);
    let mut s = tails.start(request(&["/a"])).unwrap();
    let flood = tokio::spawn({
        let engine = engine.clone();
        async move {
            for b in 0..40 {
                let batch: Vec<String> = (0..100).map(|i| format!("f{b:02}-{i:03}")).collect();
                put(&engine, "/a", "web-1", &batch).await;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    });
    let started = Instant::now();
    let mut received = 0;
    let mut updates = 0;
    let mut sampled = false;
    while !flood.is_finished() {
        let u = update(&mut s).await;
        assert!(u.session_results.len() <= 50);
        received += u.session_results.len();
        updates += 1;
        sampled |= u.session_metadata.sampled;
    }
    let windows = started.elapsed().as_millis() as usize / 200 + 1;
    // 4,000 events were put; the session sent at most its budget per window.
    assert!(sampled);
    assert!(
        received <= 50 * windows + 50,
        "{received} in {windows} windows"
    );
    assert!(
        updates <= windows + 2,
        "{updates} updates in {windows} windows"
    );
    engine.shutdown().await.unwrap();
}

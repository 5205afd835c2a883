//! What subscription delivery needs of storage: events after a position in applied order, from
//! buffered batches and segments alike, and filters whose cursors survive a restart.

mod common;

use common::*;
use logwell_model::now_millis;
use logwell_storage::catalog::SubscriptionFilter;
use logwell_storage::Engine;

fn messages(rows: &[logwell_storage::EventRow]) -> Vec<String> {
    rows.iter().map(|r| r.message.clone()).collect()
}

#[tokio::test]
async fn events_after_a_cursor_come_in_applied_order_from_segments_and_memory() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::open(config(dir.path())).await.unwrap();
    setup(&e, "/g", &["a", "b", "gone"]).await;
    let now = now_millis() - 60_000;
    // Applied order: a (timestamps late), then b (timestamps early), then more a.
    e.put_events("/g", "a", &events(now + 1000, 3, "a1"))
        .await
        .unwrap();
    e.put_events("/g", "b", &events(now, 2, "b1"))
        .await
        .unwrap();
    e.put_events("/g", "gone", &events(now, 2, "gone"))
        .await
        .unwrap();
    e.flush().await.unwrap();
    e.put_events("/g", "a", &events(now + 2000, 2, "a2"))
        .await
        .unwrap();
    e.delete_stream("/g", "gone").await.unwrap();

    let all = e.events_after("/g", 0, 100).await.unwrap();
    assert_eq!(
        messages(&all),
        ["a1 0", "a1 1", "a1 2", "b1 0", "b1 1", "a2 0", "a2 1"]
    );
    assert!(all.windows(2).all(|w| w[0].seq < w[1].seq));
    // From a cursor, a page at a time.
    let first = e.events_after("/g", 0, 4).await.unwrap();
    assert_eq!(messages(&first), ["a1 0", "a1 1", "a1 2", "b1 0"]);
    let rest = e.events_after("/g", first[3].seq, 4).await.unwrap();
    assert_eq!(messages(&rest), ["b1 1", "a2 0", "a2 1"]);
    assert!(e
        .events_after("/g", rest[2].seq, 4)
        .await
        .unwrap()
        .is_empty());
    e.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_filter_starts_after_its_creation_and_its_cursor_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::open(config(dir.path())).await.unwrap();
    setup(&e, "/g", &["s"]).await;
    let now = now_millis() - 60_000;
    e.put_events("/g", "s", &events(now, 2, "before"))
        .await
        .unwrap();
    let filter = SubscriptionFilter {
        filter_pattern: "x".into(),
        destination_arn: "arn".into(),
        distribution: "ByLogStream".into(),
        creation_time: 1,
        ..Default::default()
    };
    e.put_subscription_filter("/g", "f", filter.clone())
        .await
        .unwrap();
    e.put_events("/g", "s", &events(now, 2, "after"))
        .await
        .unwrap();
    let cursor = e.subscription_filters("/g").unwrap()["f"].delivered_seq;
    let pending = e.events_after("/g", cursor, 10).await.unwrap();
    assert_eq!(messages(&pending), ["after 0", "after 1"]);
    e.advance_subscription("/g", "f", pending[0].seq)
        .await
        .unwrap();
    // A third filter is over CloudWatch's quota of two.
    e.put_subscription_filter("/g", "g", filter.clone())
        .await
        .unwrap();
    let err = e
        .put_subscription_filter("/g", "h", filter.clone())
        .await
        .unwrap_err();
    assert_eq!(err.kind, logwell_model::ErrorKind::LimitExceeded);
    e.crash();
    drop(e);

    let e = Engine::open(config(dir.path())).await.unwrap();
    let filters = e.subscription_filters("/g").unwrap();
    assert_eq!(filters["f"].delivered_seq, pending[0].seq);
    assert_eq!(filters["f"].filter_pattern, "x");
    let pending = e
        .events_after("/g", filters["f"].delivered_seq, 10)
        .await
        .unwrap();
    assert_eq!(messages(&pending), ["after 1"]);
    // Replacing a filter keeps its cursor; deleting it removes it.
    e.put_subscription_filter(
        "/g",
        "f",
        SubscriptionFilter {
            filter_pattern: "y".into(),
            ..filter
        },
    )
    .await
    .unwrap();
    assert_eq!(
        e.subscription_filters("/g").unwrap()["f"].delivered_seq,
        filters["f"].delivered_seq
    );
    e.delete_subscription_filter("/g", "f").await.unwrap();
    assert!(!e.subscription_filters("/g").unwrap().contains_key("f"));
    e.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_reader_that_is_behind_reads_every_segment_in_order_a_page_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::open(config(dir.path())).await.unwrap();
    setup(&e, "/g", &["a", "b"]).await;
    let now = now_millis() - 60_000;
    // Five segments, each with two streams whose timestamps run backwards against applied order.
    for k in 0..5 {
        e.put_events("/g", "a", &events(now + 100 - k, 7, &format!("a{k}")))
            .await
            .unwrap();
        e.put_events("/g", "b", &events(now - k * 10, 5, &format!("b{k}")))
            .await
            .unwrap();
        e.flush().await.unwrap();
    }
    e.put_events("/g", "a", &events(now, 3, "mem"))
        .await
        .unwrap();
    let whole = e.events_after("/g", 0, 1000).await.unwrap();
    assert_eq!(whole.len(), 5 * 12 + 3);
    assert!(whole.windows(2).all(|w| w[0].seq < w[1].seq));
    assert_eq!(e.events_pending("/g", 0).unwrap(), 63);
    assert_eq!(e.events_pending("/g", whole[59].seq).unwrap(), 3);

    // Pages of 5 from a reader keeping its cache: the same events, in the same order.
    let mut cache = logwell_storage::SegmentCache::default();
    let mut read = Vec::new();
    let mut cursor = 0;
    loop {
        let page = e
            .events_after_cached("/g", cursor, 5, &mut cache)
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        assert!(page.len() <= 5);
        cursor = last.seq;
        read.extend(page);
    }
    assert_eq!(read, whole);
    assert_eq!(e.events_pending("/g", cursor).unwrap(), 0);
    e.shutdown().await.unwrap();
}

#[tokio::test]
async fn retention_keeps_what_a_subscription_has_not_delivered_up_to_the_hold() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.subscription_hold = std::time::Duration::from_secs(86_400);
    let e = Engine::open(cfg.clone()).await.unwrap();
    setup(&e, "/g", &["s"]).await;
    let filter = SubscriptionFilter {
        filter_pattern: String::new(),
        destination_arn: "arn".into(),
        distribution: "ByLogStream".into(),
        creation_time: 1,
        ..Default::default()
    };
    e.put_subscription_filter("/g", "f", filter).await.unwrap();
    let day = 86_400_000;
    // Accepted while inside retention (none yet); then retention shrinks under them.
    e.put_events("/g", "s", &events(now_millis() - 3 * day / 2, 4, "old"))
        .await
        .unwrap();
    e.flush().await.unwrap();
    e.put_events("/g", "s", &events(now_millis() - 3 * day, 3, "older"))
        .await
        .unwrap();
    e.flush().await.unwrap();
    e.put_events("/g", "s", &events(now_millis() - 1000, 2, "new"))
        .await
        .unwrap();
    e.flush().await.unwrap();
    e.set_retention("/g", Some(1)).await.unwrap();
    e.maintain().await.unwrap();
    // Queries no longer see the expired events, but the subscription still can: only the
    // segment older than retention plus the hold is gone, and it is counted.
    assert_eq!(all(&e, "/g").await.len(), 2);
    let cursor = e.subscription_filters("/g").unwrap()["f"].delivered_seq;
    let pending = e.events_after("/g", cursor, 100).await.unwrap();
    assert_eq!(
        messages(&pending),
        ["old 0", "old 1", "old 2", "old 3", "new 0", "new 1"]
    );
    assert_eq!(e.stats().undelivered_expired, 3);
    assert_eq!(e.stats().segments, 2);
    // Once delivered, retention removes them.
    e.advance_subscription("/g", "f", pending[3].seq)
        .await
        .unwrap();
    e.maintain().await.unwrap();
    assert_eq!(e.stats().segments, 1);
    let pending = e.events_after("/g", pending[3].seq, 100).await.unwrap();
    assert_eq!(messages(&pending), ["new 0", "new 1"]);
    assert_eq!(e.stats().undelivered_expired, 3);
    e.shutdown().await.unwrap();
}

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

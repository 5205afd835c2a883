//! Text searches over segments whose messages are stored split into templates and variables:
//! the search tests the template dictionary and the variables, and only the rows it may keep
//! are joined into whole messages; the answers are those of the whole lines.

use logwell_model::api::InputLogEvent;
use logwell_query::{Language, Querier, QueryConfig, QueryRequest};
use logwell_storage::config::MessageTemplates;
use logwell_storage::StorageConfig;
use std::borrow::Cow;
use std::time::Duration;

mod common;

/// Lines of a few kinds, with ids, numbers, sizes and mixed case.
fn line(i: usize) -> String {
    match i % 6 {
        0 => format!("INFO request {i} served in {} ms", i % 97),
        1 => format!("ERROR disk sda{} full at {}%", i % 3, 90 + i % 10),
        2 => format!("WARN user u-{i:05} retry {}", i % 4),
        3 => format!(
            "{{\"level\":\"info\",\"user\":\"u-{:05}\",\"path\":\"/api/v1/items\"}}",
            i * 7
        ),
        4 => format!(
            "connection from 10.0.{}.{} refused: Error code={}",
            i % 7,
            i % 251,
            i % 5
        ),
        _ => format!("Deadbeef{i:08x} error in worker-{}", i % 9),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_text_search_tests_templates_and_variables_before_joining() {
    let dir = tempfile::tempdir().unwrap();
    let config = StorageConfig {
        message_templates: MessageTemplates::Always,
        recompress_after: Duration::ZERO,
        flush_age: Duration::from_secs(3600),
        maintenance_interval: Duration::from_secs(3600),
        ..StorageConfig::default()
    };
    let engine = common::engine_with_group(dir.path(), config, "/t", &["s"]).await;
    let now = logwell_model::now_millis();
    let lines: Vec<String> = (0..3000).map(line).collect();
    let events: Vec<InputLogEvent> = lines
        .iter()
        .enumerate()
        .map(|(i, m)| InputLogEvent {
            timestamp: now - 10_000 + i as i64,
            message: Cow::Borrowed(m.as_str()),
        })
        .collect();
    engine.put_events("/t", "s", &events).await.unwrap();
    engine.flush().await.unwrap();
    while engine.compact_once().await.unwrap() {}
    let snap = engine.snapshot("/t", i64::MIN, i64::MAX).unwrap();
    assert!(!snap.segments.is_empty());
    assert!(snap.segments.iter().all(|s| s.templated));

    // One partition: the scan reads the split columns and joins them itself (the projection is
    // pushed into it); two: a repartition lies between the scan and the join.
    for target_partitions in [1, 2] {
        let querier = Querier::new(
            engine.clone(),
            QueryConfig {
                target_partitions,
                ..QueryConfig::default()
            },
        )
        .unwrap();
        search_cases(&querier, now, &lines).await;
    }
    engine.shutdown().await.unwrap();
}

async fn search_cases(querier: &Querier, now: i64, lines: &[String]) {
    let request = |q: &str| common::insights("/t", now, q);
    // `sql:` cases are a SQL condition on the group's table.
    let counting = |filter: &str| match filter.strip_prefix("sql:") {
        Some(condition) => QueryRequest {
            query: format!("SELECT count(*) AS n FROM logs WHERE {condition}"),
            language: Language::Sql,
            ..request("")
        },
        None => request(&format!("filter {filter} | stats count(*) as n")),
    };
    // (filter, the same test as a Rust regex over the whole lines (`!`: lines it does not
    // match), whether the search can be tested before joining: it needs a piece of text
    // without delimiters)
    let cases: &[(&str, &str, bool)] = &[
        ("@message like /ERROR/", "ERROR", true),
        ("@message like 'ERROR'", "ERROR", true),
        ("@message like /u-0012[0-9]/", "u-0012[0-9]", true),
        ("@message like /(?i)error/", "(?i)error", true),
        ("@message like /error/i", "(?i)error", true),
        ("@message like /disk sda1 full/", "disk sda1 full", true),
        ("@message like /in 4. ms/", "in 4. ms", true),
        ("@message like /code=3/", "code=3", true),
        (
            "@message like /10\\.0\\.3\\.1[0-9]/",
            r"10\.0\.3\.1[0-9]",
            true,
        ),
        ("@message like /worker-(1|2)$/", "worker-(1|2)$", true),
        ("@message like 'beef0000'", "beef0000", true),
        ("@message like 'at 95%'", "at 95%", true),
        (
            "@message like /^WARN user u-0000/",
            "^WARN user u-0000",
            true,
        ),
        ("@message like /full|refused/", "full|refused", false),
        ("@message like /.*/", ".*", false),
        ("@message not like /ERROR/", "!ERROR", false),
        ("@message =~ /retry [0-2]/", "retry [0-2]", true),
        ("sql:`@message` ILIKE '%error%'", "(?i)error", true),
        ("sql:`@message` LIKE '%u-0012%'", "u-0012", true),
        ("sql:`@message` ~ 'disk sda[0-9]'", "disk sda[0-9]", true),
        ("sql:`@message` ~* 'DEADBEEF'", "(?i)deadbeef", true),
        // `i` may match beyond ASCII under ILIKE: no piece is left.
        ("sql:`@message` ILIKE '%in%'", "(?i)in", false),
    ];
    // The join is handed the pieces of text to look for.
    let searched_first =
        regex::Regex::new(r"lw_message\(message_template@\d+, message_vars@\d+, ").unwrap();
    for (filter, oracle, tested_first) in cases {
        let (negated, oracle) = match oracle.strip_prefix('!') {
            Some(o) => (true, o),
            None => (false, *oracle),
        };
        let re = regex::Regex::new(oracle).unwrap();
        let expected = lines.iter().filter(|l| re.is_match(l) != negated).count();
        assert!(expected > 0, "{filter}: the data holds matches");
        let prepared = querier.prepare(counting(filter)).await.unwrap();
        let plan = prepared.physical_plan().await.unwrap();
        let out = prepared.run().await.unwrap();
        let n: usize = out.rows[0]
            .iter()
            .find(|(f, _)| f == "n")
            .unwrap()
            .1
            .parse()
            .unwrap();
        assert_eq!(n, expected, "{filter}");
        assert_eq!(
            searched_first.is_match(&plan),
            *tested_first,
            "{filter}\n{plan}"
        );
    }
    // Returned messages are whole again.
    let out = querier
        .prepare(request(
            "fields @message | filter @message like /ERROR disk sda1/ | limit 3",
        ))
        .await
        .unwrap()
        .run()
        .await
        .unwrap();
    assert_eq!(out.rows.len(), 3);
    for row in &out.rows {
        let m = &row.iter().find(|(f, _)| f == "@message").unwrap().1;
        assert!(
            lines.contains(m) && m.starts_with("ERROR disk sda1 full at "),
            "{m}"
        );
    }
}

//! The shape of the plans queries compile to, where it decides the cost: a message is parsed
//! once per event however many of its fields the query reads.

use logwell_model::api::InputLogEvent;
use logwell_query::{Language, Querier, QueryConfig, QueryRequest};
use logwell_storage::StorageConfig;
use std::borrow::Cow;

mod common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_message_is_parsed_once_whatever_the_fields_read() {
    let dir = tempfile::tempdir().unwrap();
    let engine =
        common::engine_with_group(dir.path(), StorageConfig::default(), "/v", &["s"]).await;
    let now = logwell_model::now_millis();
    let events: Vec<InputLogEvent> = (0..100)
        .map(|i| InputLogEvent {
            timestamp: now - 1000 + i,
            message: Cow::Owned(format!(
                "2 1 eni-1 10.0.0.{} 10.0.1.1 443 {i} 6 1 {} 1 2 {} OK",
                i % 5,
                i * 10,
                if i % 3 == 0 { "REJECT" } else { "ACCEPT" }
            )),
        })
        .collect();
    engine.put_events("/v", "s", &events).await.unwrap();
    engine.flush().await.unwrap();
    let querier = Querier::new(engine.clone(), QueryConfig::default()).unwrap();
    let request = |q: &str| common::insights("/v", now, q);
    // Bytes are 10 * i; REJECT where i % 3 == 0; sources 10.0.0.(i % 5).
    let reject: i64 = (0..100).filter(|i| i % 3 == 0).map(|i| i * 10).sum();
    let all: i64 = (0..100).map(|i| i * 10).sum();
    for (query, udf, rows, total) in [
        (
            "parse @message '* * * * * * * * * * * * * *' as v, acct, eni, src, dst, sport, dport, proto, pkts, bytes, t0, t1, action, status | filter action = 'REJECT' | stats sum(bytes) as b by src | sort b desc",
            "lw_parse(",
            5,
            reject,
        ),
        // VPC fields are discovered, not stored as columns: one pass extracts all the fields
        // a command reads.
        (
            "stats sum(bytes) as b by srcAddr, action",
            "lw_json(",
            10,
            all,
        ),
    ] {
        let prepared = querier.prepare(request(query)).await.unwrap();
        let plan = prepared.physical_plan().await.unwrap();
        assert_eq!(plan.matches(udf).count(), 1, "{query}\n{plan}");
        let out = prepared.run().await.unwrap();
        let sum: f64 = out
            .rows
            .iter()
            .map(|r| r.iter().find(|(f, _)| f == "b").unwrap().1.parse::<f64>().unwrap())
            .sum();
        assert_eq!(sum, total as f64, "{query}");
        assert_eq!(out.rows.len(), rows, "{query}");
    }
    engine.shutdown().await.unwrap();
}

/// Several percentiles (and a histogram) of one field read one collection of its values, not a
/// copy each: `pct(bytes, 50), pct(bytes, 99), histogram(bytes, 4)` plan one `lw_values`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn percentiles_of_one_field_share_its_values() {
    let dir = tempfile::tempdir().unwrap();
    let engine =
        common::engine_with_group(dir.path(), StorageConfig::default(), "/p", &["s"]).await;
    let now = logwell_model::now_millis();
    // bytes 0, 10, ..., 990 by path a/b (even/odd i).
    let events: Vec<InputLogEvent> = (0..100)
        .map(|i| InputLogEvent {
            timestamp: now - 1000 + i,
            message: Cow::Owned(format!(
                r#"{{"path":"{}","bytes":{}}}"#,
                if i % 2 == 0 { "a" } else { "b" },
                i * 10
            )),
        })
        .collect();
    engine.put_events("/p", "s", &events).await.unwrap();
    engine.flush().await.unwrap();
    let querier = Querier::new(engine.clone(), QueryConfig::default()).unwrap();
    let query = "stats pct(bytes, 50) as p50, pct(bytes, 99) as p99, histogram(bytes, 4) as h by path | sort path asc";
    let prepared = querier
        .prepare(common::insights("/p", now, query))
        .await
        .unwrap();
    let plan = prepared.physical_plan().await.unwrap();
    let aggregate = plan
        .lines()
        .find(|l| l.contains("AggregateExec") || l.contains("KeyedGroupExec"))
        .unwrap();
    assert_eq!(aggregate.matches("lw_values(").count(), 1, "{plan}");
    let out = prepared.run().await.unwrap();
    let cell = |row: usize, f: &str| {
        out.rows[row]
            .iter()
            .find(|(n, _)| n == f)
            .unwrap()
            .1
            .clone()
    };
    // Path a: 0, 20, ..., 980 (50 values): the median is between ranks 24 and 25 (480, 500);
    // p99 is at rank 0.99 * 49 = 48.51, from 960 to 980. Path b is 10 higher throughout.
    let number = |row: usize, f: &str| cell(row, f).parse::<f64>().unwrap();
    for (row, shift) in [(0, 0.0), (1, 10.0)] {
        assert_eq!(number(row, "p50"), 490.0 + shift);
        assert!(
            (number(row, "p99") - (970.2 + shift)).abs() < 1e-9,
            "{:?}",
            out.rows
        );
    }
    engine.shutdown().await.unwrap();
}

/// On data whose fields are not stored as columns (fresh segments, the memtable), a filter tests
/// a text search of the message before a field that must be extracted from it: DataFusion
/// evaluates the right of an AND on the rows its left kept, so only the rows found are parsed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_search_runs_before_field_extraction() {
    let dir = tempfile::tempdir().unwrap();
    // The segment stays without columns while both plans are made.
    let config = StorageConfig {
        columns_when_queried: false,
        ..StorageConfig::default()
    };
    let engine = common::engine_with_group(dir.path(), config, "/app", &["s"]).await;
    let now = logwell_model::now_millis();
    let events = |from: i64| {
        (from..from + 100)
            .map(|i| InputLogEvent {
                timestamp: now - 1000 + i,
                message: Cow::Owned(format!(
                    r#"{{"status":{},"user":"u-{:03}"}}"#,
                    if i % 4 == 0 { 500 } else { 200 },
                    i % 20
                )),
            })
            .collect::<Vec<_>>()
    };
    // A segment without field columns (the default flush writes none) and the memtable.
    engine.put_events("/app", "s", &events(0)).await.unwrap();
    engine.flush().await.unwrap();
    engine.put_events("/app", "s", &events(100)).await.unwrap();
    let querier = Querier::new(engine.clone(), QueryConfig::default()).unwrap();
    for query in [
        "filter status >= 400 and @message like /u-00[0-4]/ | stats count(*) as n",
        "filter @message like /u-00[0-4]/ and status >= 400 | stats count(*) as n",
    ] {
        let prepared = querier
            .prepare(QueryRequest {
                groups: vec!["/app".into()],
                start_ms: now - 3_600_000,
                end_ms: now,
                query: query.into(),
                language: Language::Insights,
                limit: None,
            })
            .await
            .unwrap();
        let plan = prepared.physical_plan().await.unwrap();
        let filter = plan.lines().find(|l| l.contains("FilterExec")).unwrap();
        let search = filter.find(" ~ u-00").unwrap();
        let extraction = filter.find("lw_json(").unwrap();
        assert!(
            search < extraction,
            "the search comes first: {query}\n{plan}"
        );
        // Users u-000..u-004 with status 500: i % 4 == 0 and i % 20 in {0, 4}.
        let out = prepared.run().await.unwrap();
        assert_eq!(out.rows[0][0].1, "20", "{query}");
    }
    engine.shutdown().await.unwrap();
}

/// Every function a compiled plan calls is the one its session resolves by that name (DataFusion's
/// own or logwell's registered ones), so nothing configures a function but its arguments: a plan
/// can be sent elsewhere and resolved there by names. Only the statistics counters belong to one
/// query's session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plans_name_only_registered_functions() {
    use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
    use datafusion::execution::FunctionRegistry;
    use datafusion::logical_expr::{Expr, WindowFunctionDefinition};
    let dir = tempfile::tempdir().unwrap();
    let engine =
        common::engine_with_group(dir.path(), StorageConfig::default(), "/f", &["s"]).await;
    let now = logwell_model::now_millis();
    let events: Vec<InputLogEvent> = (0..50)
        .map(|i| InputLogEvent {
            timestamp: now - 1000 + i,
            message: Cow::Owned(format!(
                r#"{{"ip":"10.0.0.{i}","n":{i},"list":[1,2],"url":"/a?b={i}"}}"#
            )),
        })
        .collect();
    engine.put_events("/f", "s", &events).await.unwrap();
    let querier = Querier::new(engine.clone(), QueryConfig::default()).unwrap();
    let registered = datafusion::prelude::SessionContext::new();
    logwell_query::udf::register(&registered);
    let per_query = ["lw_count_matched", "lw_count_scanned"];
    let mut seen = std::collections::BTreeSet::new();
    for query in [
        "fields isValidIp(ip) as v, urlDecode(url) as u, jsonParse(@message) as j, j.list.0 as first, split(url, '?') as parts | filter isIpInSubnet(ip, '10.0.0.0/8')",
        "stats count(*), histogram(n, 4) as h by bin(5m)",
        "parse @message /\"n\":(?<num>\\d+)/ | stats sum(num) by datefloor(@timestamp, 1h)",
        "parse @message logfmt as m | fields m.a",
        "pattern @message | anomaly",
        "fields parseDate('2024-05-19', 'yyyy-MM-dd') as d, hexToDec('ff') as h | unnest list into x",
    ] {
        let prepared = querier
            .prepare(QueryRequest {
                groups: vec!["/f".into()],
                start_ms: now - 3_600_000,
                end_ms: now,
                query: query.into(),
                language: Language::Insights,
                limit: None,
            })
            .await
            .unwrap_or_else(|e| panic!("{query}: {e}"));
        let mut names = Vec::new();
        prepared
            .plan()
            .apply_with_subqueries(|node| {
                node.apply_expressions(|e| {
                    e.apply(|e| {
                        match e {
                            Expr::ScalarFunction(f) => {
                                let by_name = prepared.session().udf(f.name());
                                assert!(
                                    by_name.is_ok_and(|u| *u == *f.func),
                                    "{} in `{query}` is not the function its name resolves to",
                                    f.name()
                                );
                                names.push(("scalar", f.name().to_string()))
                            }
                            Expr::AggregateFunction(a) => {
                                names.push(("aggregate", a.func.name().to_string()))
                            }
                            Expr::WindowFunction(w) => names.push(match &w.fun {
                                WindowFunctionDefinition::AggregateUDF(a) => {
                                    ("aggregate", a.name().to_string())
                                }
                                WindowFunctionDefinition::WindowUDF(f) => {
                                    ("window", f.name().to_string())
                                }
                            }),
                            _ => {}
                        }
                        Ok(TreeNodeRecursion::Continue)
                    })
                })
            })
            .unwrap();
        for (kind, name) in names {
            seen.insert(name.clone());
            if per_query.contains(&name.as_str()) {
                continue;
            }
            let known = match kind {
                "scalar" => registered.udf(&name).is_ok(),
                "aggregate" => registered.udaf(&name).is_ok(),
                _ => registered.udwf(&name).is_ok(),
            };
            assert!(known, "{kind} function {name} of `{query}` is not registered");
        }
    }
    // The queries did reach logwell's own functions.
    for name in [
        "lw_is_valid_ip",
        "lw_json_member",
        "lw_histogram",
        "lw_time_floor",
        "lw_pattern_cluster",
        "lw_anomaly",
        "lw_parse_date",
        "lw_json_elements",
        "lw_json",
        "lw_parse",
        "lw_count_matched",
        "lw_count_scanned",
    ] {
        assert!(seen.contains(name), "{name} not seen in {seen:?}");
    }
    engine.shutdown().await.unwrap();
}

/// A range holding every event of the group (the usual question over the last hours) reads no
/// timestamps to test them; one that cuts the events tests each, and both count what they scan.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_range_over_every_event_reads_no_timestamps() {
    let dir = tempfile::tempdir().unwrap();
    let engine =
        common::engine_with_group(dir.path(), StorageConfig::default(), "/g", &["s"]).await;
    let now = logwell_model::now_millis();
    let events = |from: i64| {
        (from..from + 100)
            .map(|i| InputLogEvent {
                timestamp: now - 10_000 + i * 10,
                message: Cow::Owned(format!(
                    r#"{{"level":"{}"}}"#,
                    ["INFO", "WARN"][i as usize % 2]
                )),
            })
            .collect::<Vec<_>>()
    };
    // In a segment and in the memtable.
    engine.put_events("/g", "s", &events(0)).await.unwrap();
    engine.flush().await.unwrap();
    engine.put_events("/g", "s", &events(100)).await.unwrap();
    let querier = Querier::new(engine.clone(), QueryConfig::default()).unwrap();
    for (start_ms, scanned) in [(now - 3_600_000, 200.0), (now - 10_000 + 1500, 50.0)] {
        let prepared = querier
            .prepare(QueryRequest {
                groups: vec!["/g".into()],
                start_ms,
                end_ms: now,
                query: "stats count(*) as n by level".into(),
                language: Language::Insights,
                limit: None,
            })
            .await
            .unwrap();
        let plan = prepared.physical_plan().await.unwrap();
        let tested = plan.contains("lw_count_scanned(timestamp");
        assert_eq!(tested, scanned < 200.0, "{plan}");
        let out = prepared.run().await.unwrap();
        assert_eq!(out.stats.records_scanned, scanned);
        let n: f64 = out
            .rows
            .iter()
            .map(|r| {
                r.iter()
                    .find(|(f, _)| f == "n")
                    .unwrap()
                    .1
                    .parse::<f64>()
                    .unwrap()
            })
            .sum();
        assert_eq!(n, scanned);
    }
    engine.shutdown().await.unwrap();
}

//! The query conformance suite: every `testdata/queries/**/*.case` file, run four times (events
//! still in memory; flushed to Parquet segments with JSON fields as columns; spread over a segment
//! without field columns, one with them and memory; compacted into segments that store their
//! messages split into templates and variables) with the same expected rows. See
//! `testdata/queries/README.md` for the format, and for running one file or one case
//! (`LOGWELL_CASES=functions/scalar.case:42`).

use arrow::array::{Array, AsArray};
use logwell_model::api::InputLogEvent;
use logwell_query::{Language, Querier, QueryConfig, QueryRequest};
use logwell_storage::config::MessageTemplates;
use logwell_storage::{Engine, NewGroup, StorageConfig};
use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug)]
struct Case {
    line: usize,
    groups: Vec<String>,
    start: Option<i64>,
    end: Option<i64>,
    limit: Option<usize>,
    unordered: bool,
    language: Language,
    query: String,
    expected: Expected,
}

#[derive(Debug)]
enum Expected {
    Rows {
        rows: Vec<Vec<(String, String)>>,
        statistics: Option<(f64, f64)>,
    },
    Error(String),
}

#[derive(Debug, Default)]
struct File {
    /// (group, stream, timestamp ms, message), in file order.
    events: Vec<(String, String, i64, String)>,
    /// Lookup tables: (name, CSV text).
    tables: Vec<(String, String)>,
    cases: Vec<Case>,
    /// How many lines the file has.
    lines: usize,
}

fn parse_time(s: &str) -> i64 {
    if let Ok(ms) = s.parse::<i64>() {
        return ms;
    }
    chrono::DateTime::parse_from_rfc3339(s)
        .unwrap_or_else(|e| panic!("bad time {s:?}: {e}"))
        .timestamp_millis()
}

fn parse_row(line: &str) -> Vec<(String, String)> {
    line.split(" | ")
        .map(|cell| {
            let (k, v) = cell
                .split_once('=')
                .unwrap_or_else(|| panic!("expected field=value, got {cell:?}"));
            (k.trim().to_string(), v.to_string())
        })
        .collect()
}

fn parse_file(path: &Path) -> File {
    let text = std::fs::read_to_string(path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let mut file = File {
        lines: lines.len(),
        ..File::default()
    };
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            i += 1;
            continue;
        }
        let mut words = trimmed.split_whitespace();
        match words.next().unwrap() {
            "events" => {
                let group = words.next().expect("events GROUP STREAM").to_string();
                let stream = words.next().expect("events GROUP STREAM").to_string();
                i += 1;
                while i < lines.len() && !lines[i].trim().is_empty() {
                    let (ts, msg) = lines[i].split_once(' ').expect("TIMESTAMP MESSAGE");
                    file.events.push((
                        group.clone(),
                        stream.clone(),
                        parse_time(ts),
                        msg.to_string(),
                    ));
                    i += 1;
                }
            }
            "table" => {
                let name = words.next().expect("table NAME").to_string();
                i += 1;
                let mut csv = String::new();
                while i < lines.len() && !lines[i].trim().is_empty() {
                    csv.push_str(lines[i]);
                    csv.push('\n');
                    i += 1;
                }
                file.tables.push((name, csv));
            }
            "query" => {
                let at = i + 1;
                let mut case = Case {
                    line: at,
                    groups: Vec::new(),
                    start: None,
                    end: None,
                    limit: None,
                    unordered: false,
                    language: Language::Insights,
                    query: String::new(),
                    expected: Expected::Rows {
                        rows: Vec::new(),
                        statistics: None,
                    },
                };
                for opt in words {
                    match opt.split_once('=') {
                        Some(("group", g)) => case.groups.push(g.to_string()),
                        Some(("start", t)) => case.start = Some(parse_time(t)),
                        Some(("end", t)) => case.end = Some(parse_time(t)),
                        Some(("limit", n)) => case.limit = Some(n.parse().unwrap()),
                        None if opt == "unordered" => case.unordered = true,
                        None if opt == "sql" => case.language = Language::Sql,
                        _ => panic!("{}:{at}: unknown option {opt}", path.display()),
                    }
                }
                i += 1;
                let mut q = Vec::new();
                while i < lines.len() && lines[i].trim() != "----" {
                    q.push(lines[i]);
                    i += 1;
                }
                assert!(
                    i < lines.len(),
                    "{}:{at}: query without ----",
                    path.display()
                );
                case.query = q.join("\n");
                i += 1;
                let mut rows = Vec::new();
                let mut statistics = None;
                let mut error = None;
                while i < lines.len() && !lines[i].trim().is_empty() {
                    let l = lines[i];
                    if let Some(e) = l.strip_prefix("error: ") {
                        error = Some(e.to_string());
                    } else if let Some(s) = l.strip_prefix("statistics: ") {
                        let mut m = 0.0;
                        let mut sc = 0.0;
                        for kv in s.split_whitespace() {
                            match kv.split_once('=') {
                                Some(("matched", v)) => m = v.parse().unwrap(),
                                Some(("scanned", v)) => sc = v.parse().unwrap(),
                                _ => panic!("statistics: matched=N scanned=N"),
                            }
                        }
                        statistics = Some((m, sc));
                    } else if l.trim() == "(empty row)" {
                        rows.push(Vec::new());
                    } else if l.trim() == "(no rows)" {
                    } else {
                        rows.push(parse_row(l));
                    }
                    i += 1;
                }
                case.expected = match error {
                    Some(e) => Expected::Error(e),
                    None => Expected::Rows { rows, statistics },
                };
                file.cases.push(case);
            }
            other => panic!("{}:{}: unknown directive {other}", path.display(), i + 1),
        }
    }
    file
}

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/queries")
}

/// Every case file under `dir`, by path.
fn case_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(case_files(&path));
        } else if path.extension().is_some_and(|e| e == "case") {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// Which cases to run: `LOGWELL_CASES` holds comma-separated selectors, each a part of a case
/// file's path under `testdata/queries/` (`functions/`, `scalar.case`), optionally with `:LINE`,
/// the line of one case's `query` line (or any line of it). Unset or empty: every case.
struct Selection(Vec<(String, Option<usize>)>);

impl Selection {
    fn from_env() -> Self {
        let spec = std::env::var("LOGWELL_CASES").unwrap_or_default();
        Selection(
            spec.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| match s.rsplit_once(':') {
                    Some((file, line)) if line.parse::<usize>().is_ok() => {
                        (file.to_string(), line.parse().ok())
                    }
                    _ => (s.to_string(), None),
                })
                .collect(),
        )
    }

    fn file(&self, rel: &str) -> bool {
        self.0.is_empty() || self.0.iter().any(|(f, _)| rel.contains(f.as_str()))
    }

    /// Whether the case from `line` up to (not including) `next` is selected.
    fn case(&self, rel: &str, line: usize, next: usize) -> bool {
        self.0.is_empty()
            || self.0.iter().any(|(f, l)| {
                rel.contains(f.as_str()) && l.is_none_or(|l| (line..next).contains(&l))
            })
    }
}

async fn open(dir: &Path, field_columns: usize) -> Engine {
    open_with(dir, field_columns, Duration::from_secs(3600)).await
}

/// An engine whose compaction rewrites segments `recompress_after` they were written, and
/// stores every message split into its template and variables.
async fn open_with(dir: &Path, field_columns: usize, recompress_after: Duration) -> Engine {
    Engine::open(StorageConfig {
        message_templates: MessageTemplates::Always,
        data_dir: dir.to_path_buf(),
        flush_age: Duration::from_secs(3600),
        maintenance_interval: Duration::from_secs(3600),
        recompress_after,
        field_columns,
        field_columns_at_flush: true,
        // Small sealed batches: buffered events are read from many batches, some holding a
        // field as numbers and some as text, and from the growing one.
        memtable_batch_rows: 3,
        ..StorageConfig::default()
    })
    .await
    .unwrap()
}

/// Puts `file`'s events `range` (creating their groups and streams as needed).
async fn load(engine: &Engine, file: &File, range: std::ops::Range<usize>) {
    for (g, s, _, _) in &file.events[range.clone()] {
        if !engine.group_exists(g) {
            engine
                .create_group(NewGroup {
                    name: g.clone(),
                    ..Default::default()
                })
                .await
                .unwrap();
        }
        if engine.stream(g, s).is_err() {
            engine.create_stream(g, s).await.unwrap();
        }
    }
    // One put per event keeps file order as ingestion order; the clock is set just after the
    // newest event so that historical samples are accepted.
    let now = file.events.iter().map(|e| e.2).max().unwrap_or(0) + 60_000;
    for (g, s, ts, msg) in &file.events[range] {
        let ev = [InputLogEvent {
            timestamp: *ts,
            message: Cow::Borrowed(msg.as_str()),
        }];
        let out = engine.put_events_at(now, g, s, &ev).await.unwrap();
        assert_eq!(out.accepted, 1, "event {msg:?} was rejected");
    }
}

/// The phases every case runs in: the same events, stored differently.
const PHASES: [&str; 4] = ["memtable", "segments", "mixed", "templates"];

/// An engine holding `file`'s events as `phase` says: all in memory; all flushed to segments
/// (with their JSON fields as columns); or mixed — the first third in a segment written without
/// field columns, the second in one with them, the rest in memory; or all flushed, then
/// rewritten by compaction, which stores messages split into templates and variables.
async fn stored(dir: &Path, file: &File, phase: &str) -> Engine {
    let n = file.events.len();
    let default_columns = StorageConfig::default().field_columns;
    match phase {
        "templates" => {
            let engine = open_with(dir, default_columns, Duration::ZERO).await;
            load(&engine, file, 0..n).await;
            engine.flush().await.unwrap();
            while engine.compact_once().await.unwrap() {}
            let mut groups: Vec<&String> = file.events.iter().map(|e| &e.0).collect();
            groups.dedup();
            for g in groups {
                let snap = engine.snapshot(g, i64::MIN, i64::MAX).unwrap();
                assert!(
                    snap.segments.iter().all(|s| s.templated && s.level > 0),
                    "{g}: every segment compacted and split"
                );
            }
            engine
        }
        "memtable" | "segments" => {
            let engine = open(dir, default_columns).await;
            load(&engine, file, 0..n).await;
            if phase == "segments" {
                engine.flush().await.unwrap();
            } else {
                keep_buffered_fields(&engine, file);
            }
            engine
        }
        _ => {
            let old = open(dir, 0).await;
            load(&old, file, 0..n / 3).await;
            old.flush().await.unwrap();
            old.shutdown().await.unwrap();
            drop(old);
            let engine = open(dir, default_columns).await;
            load(&engine, file, n / 3..2 * n / 3).await;
            engine.flush().await.unwrap();
            load(&engine, file, 2 * n / 3..n).await;
            engine
        }
    }
}

/// Has every sealed buffered batch keep the frequent fields of the group's batches, as earlier
/// queries would have had them do in the background: buffered events are then read from kept
/// columns where a batch keeps the field (the mixed phase reads its buffered events by
/// extracting in the plan).
fn keep_buffered_fields(engine: &Engine, file: &File) {
    let mut groups: Vec<&String> = file.events.iter().map(|e| &e.0).collect();
    groups.sort();
    groups.dedup();
    for g in groups {
        let buffered = engine.snapshot(g, i64::MIN, i64::MAX).unwrap().buffered;
        // The fields the group's batches offer, as a query's table has them.
        let (mut paths, mut numbers) = (Vec::new(), Vec::new());
        for b in &buffered {
            let msgs = b.column(4).as_string::<i32>();
            let chosen = logwell_fields::ColumnChoice::default()
                .choose_typed(msgs.len(), |i| msgs.is_valid(i).then(|| msgs.value(i)));
            for c in chosen {
                if c.numeric {
                    numbers.push(c.path.clone());
                }
                paths.push(c.path);
            }
        }
        paths.sort();
        paths.dedup();
        for b in &buffered {
            b.keep(&paths, &numbers);
        }
    }
}

fn first_group(file: &File) -> String {
    file.events.first().map(|e| e.0.clone()).unwrap_or_default()
}

async fn run_case(querier: &Querier, file: &File, case: &Case) -> Result<(), String> {
    let groups = if case.groups.is_empty() && case.language == Language::Insights {
        vec![first_group(file)]
    } else {
        case.groups.clone()
    };
    let req = QueryRequest {
        groups,
        start_ms: case.start.unwrap_or(0),
        end_ms: case.end.unwrap_or(i64::MAX / 2),
        query: case.query.clone(),
        language: case.language,
        limit: case.limit,
    };
    let result = match querier.prepare(req).await {
        Ok(p) => p.run().await,
        Err(e) => Err(e),
    };
    match (&case.expected, result) {
        (Expected::Error(want), Err(e)) => {
            let got = e.to_string();
            if got.contains(want.as_str()) {
                Ok(())
            } else {
                Err(format!(
                    "expected an error containing {want:?}, got {got:?}"
                ))
            }
        }
        (Expected::Error(want), Ok(r)) => Err(format!(
            "expected an error containing {want:?}, got {} rows",
            r.rows.len()
        )),
        (Expected::Rows { .. }, Err(e)) => Err(format!("query failed: {e}")),
        (Expected::Rows { rows, statistics }, Ok(r)) => {
            let mut got: Vec<Vec<(String, String)>> = r
                .rows
                .iter()
                .map(|row| row.iter().filter(|(k, _)| k != "@ptr").cloned().collect())
                .collect();
            let mut want = rows.clone();
            if case.unordered {
                got.sort();
                want.sort();
            }
            if got != want {
                let show = |rows: &[Vec<(String, String)>]| {
                    rows.iter()
                        .map(|r| {
                            r.iter()
                                .map(|(k, v)| format!("{k}={v}"))
                                .collect::<Vec<_>>()
                                .join(" | ")
                        })
                        .collect::<Vec<_>>()
                        .join("\n")
                };
                return Err(format!(
                    "rows differ\n--- expected\n{}\n--- got\n{}",
                    show(&want),
                    show(&got)
                ));
            }
            if let Some((m, s)) = statistics {
                let st = r.stats;
                if (st.records_matched, st.records_scanned) != (*m, *s) {
                    return Err(format!(
                        "statistics: expected matched={m} scanned={s}, got matched={} scanned={}",
                        st.records_matched, st.records_scanned
                    ));
                }
            }
            Ok(())
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_cases() {
    let mut failures = Vec::new();
    let mut total = 0;
    let selection = Selection::from_env();
    let root = cases_dir();
    for path in case_files(&root) {
        let rel = path
            .strip_prefix(&root)
            .unwrap()
            .to_string_lossy()
            .to_string();
        if !selection.file(&rel) {
            continue;
        }
        let file = parse_file(&path);
        let starts: Vec<usize> = file.cases.iter().map(|c| c.line).collect();
        let chosen: Vec<&Case> = file
            .cases
            .iter()
            .enumerate()
            .filter(|(i, c)| {
                let next = starts.get(i + 1).copied().unwrap_or(file.lines + 1);
                selection.case(&rel, c.line, next)
            })
            .map(|(_, c)| c)
            .collect();
        if chosen.is_empty() {
            continue;
        }
        for phase in PHASES {
            let dir = tempfile::tempdir().unwrap();
            let engine = stored(dir.path(), &file, phase).await;
            let querier = Querier::new(engine.clone(), QueryConfig::default()).unwrap();
            for (name, csv) in &file.tables {
                let table = logwell_query::lookup::LookupTable::parse(csv).unwrap();
                querier.lookup_tables().set(name, table);
            }
            for case in &chosen {
                total += 1;
                if let Err(e) = run_case(&querier, &file, case).await {
                    failures.push(format!(
                        "{rel}:{} ({phase}):\n{}\n{e}",
                        case.line, case.query
                    ));
                }
            }
            engine.shutdown().await.unwrap();
        }
    }
    assert!(
        total > 0,
        "no cases selected (LOGWELL_CASES={:?})",
        std::env::var("LOGWELL_CASES")
    );
    assert!(
        failures.is_empty(),
        "{} of {total} case runs failed:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

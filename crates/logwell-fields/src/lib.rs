//! Field discovery: the flattened paths of JSON log lines (`a.b.c`, arrays as `a.0`) a query asks
//! for, pulled out of each message in one pass that skips everything else; and the fields
//! CloudWatch discovers in two well-known text formats, Lambda `START`/`END`/`REPORT` lines and
//! VPC flow logs (default version-2 format).

mod json;

use std::borrow::Cow;

/// A number as CloudWatch prints it: `3`, `12.5`, `0.001`.
pub fn number(v: f64) -> String {
    let mut out = String::new();
    write_number(&mut out, v).expect("a String takes any text");
    out
}

/// [`number`], written to `out`.
pub fn write_number(out: &mut impl std::fmt::Write, v: f64) -> std::fmt::Result {
    if v.is_finite() && v.fract() == 0.0 && v.abs() < 1e17 {
        write!(out, "{}", v as i64)
    } else {
        write!(out, "{v}")
    }
}

/// The number a field's text stands for, when the text is exactly how [`number`] prints that
/// number, so that storing the number and printing it back gives the same text. Such fields can
/// be stored as numbers (`200`, `12.5`; not `007`, `-0`, `1e3`, `NaN` or `200.0`).
pub fn canonical_number(text: &str) -> Option<f64> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    // Plain integers, the common case, without formatting: no leading zero, no `-0`, few
    // enough digits to be exact.
    if !digits.is_empty() && digits.len() <= 15 && digits.bytes().all(|b| b.is_ascii_digit()) {
        let canonical = (digits == "0" && digits.len() == text.len()) || !digits.starts_with('0');
        if !canonical {
            return None;
        }
        return text.parse::<i64>().ok().map(|v| v as f64);
    }
    let v: f64 = text.parse().ok()?;
    (v.is_finite() && number(v) == text).then_some(v)
}

/// The flattened paths one query reads, compiled for matching while walking a message.
#[derive(Debug, Clone)]
pub struct PathSet {
    /// Wanted paths and their slots. A query wants a handful, so a linear scan beats hashing
    /// every key of every message.
    leaves: Vec<(String, usize)>,
    /// Proper dotted prefixes of the wanted paths (where to descend).
    prefixes: Vec<String>,
    len: usize,
    /// Wanted Lambda fields: (slot, field).
    lambda: Vec<(usize, &'static str)>,
    /// Wanted VPC flow log fields: (slot, position in the line).
    vpc: Vec<(usize, usize)>,
}

/// Lambda fields and the `REPORT` labels they come from; sizes are reported in MB and discovered
/// in bytes (so `@memorySize / 1000 / 1000` gives MB, as AWS's examples do).
const LAMBDA_FIELDS: [(&str, &str); 7] = [
    ("@requestId", "RequestId"),
    ("@duration", "Duration"),
    ("@billedDuration", "Billed Duration"),
    ("@memorySize", "Memory Size"),
    ("@maxMemoryUsed", "Max Memory Used"),
    ("@initDuration", "Init Duration"),
    ("@type", ""),
];

/// The fields of a default-format (version 2) VPC flow log line, in order.
const VPC_FIELDS: [&str; 14] = [
    "version",
    "accountId",
    "interfaceId",
    "srcAddr",
    "dstAddr",
    "srcPort",
    "dstPort",
    "protocol",
    "packets",
    "bytes",
    "startTime",
    "endTime",
    "action",
    "logStatus",
];

impl PathSet {
    pub fn new<S: AsRef<str>>(paths: &[S]) -> PathSet {
        let mut leaves: Vec<(String, usize)> = Vec::new();
        let mut prefixes: Vec<String> = Vec::new();
        for (i, p) in paths.iter().enumerate() {
            let p = p.as_ref();
            if !leaves.iter().any(|(l, _)| l == p) {
                leaves.push((p.to_string(), i));
            }
            for (at, _) in p.match_indices('.') {
                if !prefixes.iter().any(|x| x == &p[..at]) {
                    prefixes.push(p[..at].to_string());
                }
            }
        }
        let mut lambda = Vec::new();
        let mut vpc = Vec::new();
        for (i, p) in paths.iter().enumerate() {
            let p = p.as_ref();
            if let Some((name, _)) = LAMBDA_FIELDS.iter().find(|(n, _)| *n == p) {
                lambda.push((i, *name));
            }
            if let Some(pos) = VPC_FIELDS.iter().position(|n| *n == p) {
                vpc.push((i, pos));
            }
        }
        PathSet {
            leaves,
            prefixes,
            len: paths.len(),
            lambda,
            vpc,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Fills `out[i]` with the text of path `i` in `message` (strings unquoted, numbers and
    /// booleans as CloudWatch prints them, null and containers absent), borrowed from the message
    /// where it can be. Non-JSON messages leave `out` empty, unless they are Lambda or VPC flow
    /// log lines and such fields are wanted.
    pub fn extract<'m>(&self, message: &'m str, out: &mut [Option<Cow<'m, str>>]) {
        out.iter_mut().for_each(|o| *o = None);
        let trimmed = message.trim_start();
        if !trimmed.starts_with('{') {
            if !self.lambda.is_empty() {
                self.lambda_fields(trimmed, out);
            }
            if !self.vpc.is_empty() {
                self.vpc_fields(trimmed, out);
            }
            return;
        }
        self.walk(trimmed, out);
    }
}

impl PathSet {
    fn lambda_fields<'m>(&self, line: &'m str, out: &mut [Option<Cow<'m, str>>]) {
        let kind = ["REPORT", "START", "END"]
            .into_iter()
            .find(|k| line.starts_with(k) && line[k.len()..].starts_with(" RequestId: "));
        let Some(kind) = kind else {
            return;
        };
        for &(slot, name) in &self.lambda {
            let label = LAMBDA_FIELDS.iter().find(|(n, _)| *n == name).unwrap().1;
            out[slot] = if name == "@type" {
                Some(Cow::Borrowed(kind))
            } else if name == "@requestId" {
                let rest = &line[kind.len() + " RequestId: ".len()..];
                Some(Cow::Borrowed(rest.split([' ', '\t']).next().unwrap_or("")))
            } else {
                // `\tDuration: 12.34 ms`: the label must start a tab-separated part, so that
                // `Billed Duration` is not read as `Duration`.
                line.split('\t').find_map(|part| {
                    let v = part.trim().strip_prefix(label)?.strip_prefix(": ")?;
                    let (num, unit) = v.split_once(' ').unwrap_or((v, ""));
                    let x: f64 = num.parse().ok()?;
                    Some(Cow::Owned(if unit == "MB" {
                        number(x * 1_000_000.0)
                    } else {
                        number(x)
                    }))
                })
            };
        }
    }

    fn vpc_fields<'m>(&self, line: &'m str, out: &mut [Option<Cow<'m, str>>]) {
        let parts: Vec<&str> = line.split(' ').collect();
        if parts.len() != VPC_FIELDS.len() || parts[0] != "2" {
            return;
        }
        for &(slot, pos) in &self.vpc {
            // `-` marks a value the flow log could not record.
            out[slot] = (parts[pos] != "-").then_some(Cow::Borrowed(parts[pos]));
        }
    }
}

/// Every flattened leaf path of a JSON message with its text, in key order (for
/// GetLogRecord and field listings). At most `max` fields, as CloudWatch caps discovery.
pub fn flatten(message: &str, max: usize) -> Vec<(String, String)> {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(message.trim()) else {
        return Vec::new();
    };
    if !v.is_object() {
        return Vec::new();
    }
    let mut out = Vec::new();
    fn walk(v: &serde_json::Value, path: &mut String, out: &mut Vec<(String, String)>, max: usize) {
        use serde_json::Value;
        if out.len() >= max {
            return;
        }
        let base = path.len();
        let child = |key: &str, v: &Value, path: &mut String, out: &mut Vec<(String, String)>| {
            if base > 0 {
                path.push('.');
            }
            path.push_str(key);
            walk(v, path, out, max);
            path.truncate(base);
        };
        match v {
            Value::Object(m) => m.iter().for_each(|(k, v)| child(k, v, path, out)),
            Value::Array(a) => a
                .iter()
                .enumerate()
                .for_each(|(i, v)| child(&i.to_string(), v, path, out)),
            Value::Null => {}
            Value::String(s) => out.push((path.clone(), s.clone())),
            Value::Bool(b) => out.push((path.clone(), b.to_string())),
            Value::Number(n) => out.push((path.clone(), n.to_string())),
        }
    }
    walk(&v, &mut String::new(), &mut out, max);
    out
}

/// How segments choose the discovered fields they also store as columns, so that queries read a
/// column instead of parsing every JSON message again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ColumnChoice {
    /// At most this many columns per segment (0: none).
    pub max_columns: usize,
    /// A path must be present in at least this percentage of the sampled messages.
    pub min_percent: usize,
    /// Paths whose values average more bytes than this stay in the message only (stack traces
    /// and payloads would double the stored bytes for little gain).
    pub max_avg_bytes: usize,
    /// Messages looked at to choose (spread evenly over the segment).
    pub sample: usize,
}

/// Values at least this long that are (nearly) all distinct are identifiers (trace and request
/// ids, hashes): one searches for them rather than grouping by them, a substring search of the
/// message finds them fast, and a column of them would cost as much as the message part itself.
const ID_MIN_BYTES: usize = 12;

impl Default for ColumnChoice {
    fn default() -> Self {
        ColumnChoice {
            max_columns: 32,
            min_percent: 25,
            max_avg_bytes: 64,
            sample: 1024,
        }
    }
}

impl ColumnChoice {
    /// The JSON paths worth a column among `n` messages (`message(i)`), sorted by name.
    /// Their values are what [`PathSet::extract`] gives for each row, so a column and an
    /// extraction at query time always agree.
    pub fn choose<'a>(&self, n: usize, message: impl Fn(usize) -> Option<&'a str>) -> Vec<String> {
        self.choose_typed(n, message)
            .into_iter()
            .map(|c| c.path)
            .collect()
    }

    /// [`Self::choose`], saying also which paths held only [`canonical_number`]s in the sample
    /// (worth trying as a number column; the writer checks every row).
    pub fn choose_typed<'a>(
        &self,
        n: usize,
        message: impl Fn(usize) -> Option<&'a str>,
    ) -> Vec<Chosen> {
        if self.max_columns == 0 || n == 0 {
            return Vec::new();
        }
        let step = n.div_ceil(self.sample.max(1)).max(1);
        // Per path: messages holding it, value bytes, distinct values.
        let mut seen: std::collections::HashMap<
            String,
            (usize, usize, std::collections::HashSet<String>),
        > = Default::default();
        let mut sampled = 0usize;
        for i in (0..n).step_by(step) {
            sampled += 1;
            let Some(m) = message(i) else { continue };
            if !m.trim_start().starts_with('{') {
                continue;
            }
            let mut paths = flatten(m, 200);
            // A repeated path (duplicate keys) counts once per message.
            paths.sort_by(|a, b| a.0.cmp(&b.0));
            paths.dedup_by(|a, b| a.0 == b.0);
            for (path, value) in paths {
                let e = seen.entry(path).or_default();
                e.0 += 1;
                e.1 += value.len();
                e.2.insert(value);
            }
        }
        let mut picked: Vec<(String, usize, bool)> = seen
            .into_iter()
            .filter(|(_, (count, bytes, distinct))| {
                let avg = bytes / count;
                let identifier = avg >= ID_MIN_BYTES && distinct.len() * 10 >= count * 9;
                count * 100 >= sampled * self.min_percent
                    && avg <= self.max_avg_bytes
                    && !identifier
            })
            .map(|(p, (count, _, distinct))| {
                let numeric = distinct.iter().all(|v| canonical_number(v).is_some());
                (p, count, numeric)
            })
            .collect();
        picked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        picked.truncate(self.max_columns);
        let mut chosen: Vec<Chosen> = picked
            .into_iter()
            .map(|(path, _, numeric)| Chosen { path, numeric })
            .collect();
        chosen.sort_by(|a, b| a.path.cmp(&b.path));
        chosen
    }
}

/// A path [`ColumnChoice`] picked, and whether its sampled values were all numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chosen {
    pub path: String,
    pub numeric: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frequent_short_json_paths_are_chosen() {
        let long = "x".repeat(200);
        let msgs: Vec<String> = (0..100)
            .map(|i| match i % 4 {
                0 => "plain text".to_string(),
                1 => format!(
                    r#"{{"level":"INFO","http":{{"status":{i}}},"stack":"{long}","trace":"{:016x}"}}"#,
                    i * 7919
                ),
                _ => format!(r#"{{"level":"WARN","rare{i}":1,"http":{{"status":200}}}}"#),
            })
            .collect();
        let choice = ColumnChoice::default();
        let paths = choice.choose(msgs.len(), |i| Some(msgs[i].as_str()));
        // `stack` is too long, `rareN` too rare, `trace` an identifier, `plain text` has no
        // fields.
        assert_eq!(paths, vec!["http.status".to_string(), "level".to_string()]);
        let none = ColumnChoice {
            max_columns: 0,
            ..choice
        };
        assert!(none
            .choose(msgs.len(), |i| Some(msgs[i].as_str()))
            .is_empty());
        let one = ColumnChoice {
            max_columns: 1,
            ..choice
        };
        assert_eq!(one.choose(msgs.len(), |i| Some(msgs[i].as_str())).len(), 1);
    }

    #[test]
    fn canonical_numbers_print_back_as_written() {
        for (text, want) in [
            ("200", Some(200.0)),
            ("0", Some(0.0)),
            ("-17", Some(-17.0)),
            ("12.5", Some(12.5)),
            ("0.001", Some(0.001)),
            ("-0.25", Some(-0.25)),
            ("123456789012345", Some(123456789012345.0)),
            ("-0", None),
            ("007", None),
            ("1e3", None),
            ("1.50", None),
            ("200.0", None),
            ("+5", None),
            (".5", None),
            ("NaN", None),
            ("inf", None),
            ("", None),
            ("-", None),
            ("12345678901234567", None),
            ("abc", None),
        ] {
            assert_eq!(canonical_number(text), want, "{text}");
            if let Some(v) = want {
                assert_eq!(number(v), text);
            }
        }
        let msgs = [
            r#"{"a":1,"b":"x","c":2.5}"#,
            r#"{"a":20,"b":"7","c":"007"}"#,
        ];
        let chosen = ColumnChoice::default().choose_typed(2, |i| Some(msgs[i]));
        let numeric: Vec<(&str, bool)> = chosen
            .iter()
            .map(|c| (c.path.as_str(), c.numeric))
            .collect();
        assert_eq!(numeric, [("a", true), ("b", false), ("c", false)]);
    }

    fn get(msg: &str, paths: &[&str]) -> Vec<Option<String>> {
        let set = PathSet::new(paths);
        let mut out = vec![None; paths.len()];
        set.extract(msg, &mut out);
        out.into_iter().map(|v| v.map(Cow::into_owned)).collect()
    }

    #[test]
    fn a_nested_path_wins_over_a_key_with_a_dot() {
        // `$.a.b` (a filter pattern, and Insights' `a.b`) means the nested value, whichever
        // comes first; a dotted key only fills in when there is none.
        for msg in [
            r#"{"a":{"b":"x"},"a.b":"y"}"#,
            r#"{"a.b":"y","a":{"b":"x"}}"#,
        ] {
            assert_eq!(get(msg, &["a.b"]), vec![Some("x".into())], "{msg}");
        }
        assert_eq!(get(r#"{"a.b":"y"}"#, &["a.b"]), vec![Some("y".into())]);
    }

    #[test]
    fn nested_keys_and_arrays_flatten_with_dots() {
        let msg = r#"{"level":"ERROR","http":{"status":503,"path":"/a"},"items":[{"id":"i-1"},{"id":"i-2"}],"ok":true,"n":null,"f":1.5}"#;
        assert_eq!(
            get(
                msg,
                &[
                    "level",
                    "http.status",
                    "items.1.id",
                    "ok",
                    "n",
                    "f",
                    "http",
                    "missing"
                ]
            ),
            vec![
                Some("ERROR".into()),
                Some("503".into()),
                Some("i-2".into()),
                Some("true".into()),
                None,
                Some("1.5".into()),
                None,
                None
            ]
        );
    }

    #[test]
    fn values_read_as_cloudwatch_prints_them() {
        let msg = "  { \"s\" : \"a\\\"b\\u00e9\\n\" , \"k\\u0065y\": 1, \"big\": 18446744073709551615,
            \"bigger\": 18446744073709551616, \"neg\": -12, \"nz\": -0, \"e\": 1e3, \"f\": 1.50,
            \"t\": true, \"u\": \"caf\u{e9} \u{1F600}\", \"dup\": 1, \"dup\": 2, \"o\": {}, \"a\": [] }";
        assert_eq!(
            get(
                msg,
                &["s", "key", "big", "bigger", "neg", "nz", "e", "f", "t", "u", "dup", "o", "a"]
            ),
            vec![
                Some("a\"b\u{e9}\n".into()),
                Some("1".into()),
                Some("18446744073709551615".into()),
                Some("18446744073709552000".into()),
                Some("-12".into()),
                Some("0".into()),
                Some("1000".into()),
                Some("1.5".into()),
                Some("true".into()),
                Some("caf\u{e9} \u{1F600}".into()),
                Some("2".into()),
                None,
                None
            ]
        );
        // Strings and integers are borrowed from the message, not copied.
        let set = PathSet::new(&["u", "neg"]);
        let mut out = vec![None; 2];
        set.extract(msg, &mut out);
        assert!(out.iter().all(|v| matches!(v, Some(Cow::Borrowed(_)))));
    }

    #[test]
    fn json_in_a_string_is_a_leaf_and_non_json_has_no_fields() {
        let msg = r#"{"data":"{\"startTime\":1}"}"#;
        assert_eq!(get(msg, &["data.startTime", "data"])[0], None);
        assert_eq!(get(msg, &["data"])[0].as_deref(), Some("{\"startTime\":1}"));
        assert_eq!(get("plain text line", &["a"]), vec![None]);
        assert_eq!(get(r#"{"a": 1, "b": "#, &["a"]), vec![Some("1".into())]);
    }

    #[test]
    fn lambda_report_and_vpc_flow_fields() {
        let report = "REPORT RequestId: 3f2a-11\tDuration: 102.25 ms\tBilled Duration: 103 ms\tMemory Size: 128 MB\tMax Memory Used: 70 MB\tInit Duration: 250.10 ms\t";
        assert_eq!(
            get(
                report,
                &[
                    "@type",
                    "@requestId",
                    "@duration",
                    "@billedDuration",
                    "@memorySize",
                    "@maxMemoryUsed",
                    "@initDuration"
                ]
            ),
            vec![
                Some("REPORT".into()),
                Some("3f2a-11".into()),
                Some("102.25".into()),
                Some("103".into()),
                Some("128000000".into()),
                Some("70000000".into()),
                Some("250.1".into())
            ]
        );
        assert_eq!(
            get(
                "START RequestId: abc Version: $LATEST",
                &["@type", "@duration"]
            ),
            vec![Some("START".into()), None]
        );
        let flow = "2 123456789010 eni-1235b8ca123456789 172.31.16.139 172.31.16.21 20641 22 6 20 4249 1418530010 1418530070 ACCEPT OK";
        assert_eq!(
            get(
                flow,
                &["srcAddr", "dstPort", "bytes", "action", "logStatus"]
            ),
            vec![
                Some("172.31.16.139".into()),
                Some("22".into()),
                Some("4249".into()),
                Some("ACCEPT".into()),
                Some("OK".into())
            ]
        );
        assert_eq!(get("2 x", &["srcAddr"]), vec![None]);
    }

    #[test]
    fn flatten_lists_every_leaf() {
        let f = flatten(r#"{"a":{"b":[1,{"c":"x"}]},"d":false}"#, 200);
        assert_eq!(
            f,
            vec![
                ("a.b.0".to_string(), "1".to_string()),
                ("a.b.1.c".to_string(), "x".to_string()),
                ("d".to_string(), "false".to_string())
            ]
        );
    }
}

//! Scalar functions DataFusion does not have: JSON field discovery, `parse` captures, and the
//! counters behind a query's statistics.

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, StringBuilder, StringViewBuilder, StructArray,
};
use arrow::datatypes::FieldRef;
use arrow::datatypes::{DataType, Field, Fields};
use datafusion::common::{exec_err, Result, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, ColumnarValue, Expr, ScalarFunctionArgs,
    ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use logwell_fields::PathSet;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The volatility of the functions that parse a whole message into a struct of fields.
const ONCE_PER_ROW: Volatility = Volatility::Immutable;

/// Rows as strings, whatever string type DataFusion handed over.
fn strings(arg: &ColumnarValue, rows: usize) -> Result<ArrayRef> {
    let array = arg.to_array(rows)?;
    Ok(match array.data_type() {
        DataType::Utf8 => array,
        _ => arrow::compute::cast(&array, &DataType::Utf8)?,
    })
}

/// A struct type of text fields named `names`, each of type `text` (Utf8 or Utf8View).
fn text_struct(names: &[String], text: &DataType) -> DataType {
    DataType::Struct(Fields::from(
        names
            .iter()
            .map(|n| Field::new(n, text.clone(), true))
            .collect::<Vec<_>>(),
    ))
}

/// A struct column of text fields named `names`, from one builder per field.
fn struct_of<B: arrow::array::ArrayBuilder>(
    names: &[String],
    text: &DataType,
    builders: Vec<B>,
    rows: usize,
) -> Result<ColumnarValue> {
    if names.is_empty() {
        // Nothing is read, but the row count must still be right.
        return Ok(ColumnarValue::Array(Arc::new(
            StructArray::new_empty_fields(rows, None),
        )));
    }
    let DataType::Struct(fields) = text_struct(names, text) else {
        unreachable!("text_struct builds a struct")
    };
    let cols: Vec<ArrayRef> = builders.into_iter().map(|mut b| b.finish()).collect();
    Ok(ColumnarValue::Array(Arc::new(StructArray::try_new(
        fields, cols, None,
    )?)))
}

/// `lw_json(@message)`: the struct of the wanted flattened JSON paths (fields named `0`, `1`, ...).
#[derive(Debug)]
pub struct JsonFields {
    paths: Vec<String>,
    set: PathSet,
    slots: Vec<String>,
    signature: Signature,
}

impl PartialEq for JsonFields {
    fn eq(&self, o: &Self) -> bool {
        self.paths == o.paths
    }
}
impl Eq for JsonFields {}
impl Hash for JsonFields {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.paths.hash(h)
    }
}

impl JsonFields {
    pub fn udf(paths: Vec<String>) -> ScalarUDF {
        let slots = (0..paths.len()).map(|i| i.to_string()).collect();
        ScalarUDF::from(JsonFields {
            set: PathSet::new(&paths),
            paths,
            slots,
            signature: Signature::any(1, ONCE_PER_ROW),
        })
    }
}

impl ScalarUDFImpl for JsonFields {
    fn name(&self) -> &str {
        "lw_json"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(text_struct(&self.slots, &DataType::Utf8))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let msgs = strings(&args.args[0], rows)?;
        let msgs = msgs.as_string::<i32>();
        let n = self.paths.len();
        let mut builders: Vec<StringBuilder> = (0..n).map(|_| StringBuilder::new()).collect();
        let mut out = vec![None; n];
        for i in 0..msgs.len() {
            if msgs.is_valid(i) {
                self.set.extract(msgs.value(i), &mut out);
            } else {
                out.iter_mut().for_each(|o| *o = None);
            }
            for (b, v) in builders.iter_mut().zip(&out) {
                b.append_option(v.as_deref());
            }
        }
        struct_of(&self.slots, &DataType::Utf8, builders, msgs.len())
    }
}

/// How a `parse` command finds its captures.
#[derive(Debug, Clone)]
pub enum Captures {
    /// A glob's literal pieces (`"[*] * x: *"` is `["[", "] ", " x: ", ""]`): each star takes
    /// the text up to the next occurrence of the following piece, the last one (before an empty
    /// piece) the rest of the line; unanchored at the start. This is what the lazy regex
    /// `\[(.*?)\] (.*?) x: (.*)` means, found with substring search instead of a regex engine.
    Glob(Vec<String>),
    /// A regex: group `i + 1` fills name `i`.
    Regex(regex::Regex),
}

impl Captures {
    fn key(&self) -> String {
        match self {
            Captures::Glob(parts) => format!("glob:{}", parts.join("*")),
            Captures::Regex(r) => format!("regex:{}", r.as_str()),
        }
    }
}

/// The capture ranges of a glob's stars in `s`, or `None` when it does not match.
pub fn glob_captures(parts: &[String], s: &str, out: &mut Vec<(usize, usize)>) -> bool {
    out.clear();
    let Some((first, rest)) = parts.split_first() else {
        return false;
    };
    let mut pos = match first.as_str() {
        "" => 0,
        first => match s.find(first) {
            Some(at) => at + first.len(),
            None => return false,
        },
    };
    // Fields split by one repeated byte (`* * * *`, a space-delimited log line): one SIMD scan
    // finds every separator.
    let (seps, tail) = match rest.split_last() {
        Some((last, init)) if last.is_empty() => (init, true),
        _ => (rest, false),
    };
    if let Some(b) = seps.first().and_then(|p| match p.as_bytes() {
        [b] if b.is_ascii() => Some(*b),
        _ => None,
    }) {
        if seps.iter().all(|p| p.as_bytes() == [b]) {
            let base = pos;
            let mut found = memchr::memchr_iter(b, &s.as_bytes()[base..]);
            for _ in seps {
                let Some(at) = found.next() else {
                    return false;
                };
                out.push((pos, base + at));
                pos = base + at + 1;
            }
            if tail {
                out.push((pos, s.len()));
            }
            return true;
        }
    }
    for (k, piece) in rest.iter().enumerate() {
        if k + 1 == rest.len() && piece.is_empty() {
            out.push((pos, s.len()));
            pos = s.len();
            continue;
        }
        // A one-byte piece (the space between fields, typically) is a byte scan: fields are
        // short, so a plain loop beats setting up a searcher for each.
        let found = match piece.as_bytes() {
            [b] if b.is_ascii() => s.as_bytes()[pos..].iter().position(|c| c == b),
            _ => s[pos..].find(piece.as_str()),
        };
        match found {
            Some(at) => {
                out.push((pos, pos + at));
                pos += at + piece.len();
            }
            None => return false,
        }
    }
    true
}

/// `lw_parse(field)`: the captures of one `parse` command, as a struct of its names.
#[derive(Debug)]
pub struct ParseFields {
    captures: Captures,
    names: Vec<String>,
    /// The captures the query reads (by position) and their names: only these are built.
    kept: Vec<usize>,
    kept_names: Vec<String>,
    signature: Signature,
}

impl PartialEq for ParseFields {
    fn eq(&self, o: &Self) -> bool {
        self.captures.key() == o.captures.key() && self.names == o.names
    }
}
impl Eq for ParseFields {}
impl Hash for ParseFields {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.captures.key().hash(h);
        self.names.hash(h);
    }
}

impl ParseFields {
    /// Captures named `__...` are matched but not returned (nothing reads them).
    pub fn udf(captures: Captures, names: Vec<String>) -> ScalarUDF {
        let kept: Vec<usize> = (0..names.len())
            .filter(|i| !names[*i].starts_with("__"))
            .collect();
        let kept_names = kept.iter().map(|i| names[*i].clone()).collect();
        ScalarUDF::from(ParseFields {
            captures,
            names,
            kept,
            kept_names,
            signature: Signature::any(1, ONCE_PER_ROW),
        })
    }
}

impl ScalarUDFImpl for ParseFields {
    fn name(&self) -> &str {
        "lw_parse"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(text_struct(&self.kept_names, &DataType::Utf8View))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let input = strings(&args.args[0], rows)?;
        let input = input.as_string::<i32>();
        let n = self.names.len();
        // Captures are views into the input's bytes: nothing is copied.
        let offsets = input.value_offsets();
        let mut builders: Vec<StringViewBuilder> = self
            .kept
            .iter()
            .map(|_| StringViewBuilder::with_capacity(input.len()))
            .collect();
        let blocks: Vec<u32> = builders
            .iter_mut()
            .map(|b| b.append_block(input.values().clone()))
            .collect();
        let mut ranges: Vec<(usize, usize)> = Vec::with_capacity(n);
        let mut locs = match &self.captures {
            Captures::Regex(r) => Some(r.capture_locations()),
            Captures::Glob(_) => None,
        };
        for i in 0..input.len() {
            let text = if input.is_valid(i) {
                input.value(i)
            } else {
                ""
            };
            let hit = input.is_valid(i)
                && match (&self.captures, &mut locs) {
                    (Captures::Glob(parts), _) => glob_captures(parts, text, &mut ranges),
                    (Captures::Regex(r), Some(locs)) => {
                        ranges.clear();
                        let found = r.captures_read(locs, text).is_some();
                        if found {
                            ranges.extend((1..=n).map(|g| locs.get(g).unwrap_or((0, 0))));
                        }
                        found
                    }
                    _ => false,
                };
            for ((&g, b), &block) in self.kept.iter().zip(builders.iter_mut()).zip(&blocks) {
                match ranges.get(g) {
                    Some(&(s, e)) if hit => {
                        let start = offsets[i] as usize + s;
                        // SAFETY: the block is the input's value buffer, `start..start + len`
                        // lies within row i, and both ends are char boundaries of its text.
                        unsafe { b.append_view_unchecked(block, start as u32, (e - s) as u32) }
                    }
                    _ => b.append_null(),
                }
            }
        }
        struct_of(&self.kept_names, &DataType::Utf8View, builders, input.len())
    }
}

/// Live counters of one query, readable while it runs.
#[derive(Debug, Default)]
pub struct QueryCounters {
    pub scanned: AtomicU64,
    pub bytes: AtomicU64,
    pub matched: AtomicU64,
}

/// Which counter a [`CountTrue`] feeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Counter {
    /// Events in the query's time range (and `bytes_per_row` each).
    Scanned { bytes_per_row: u64 },
    /// Events that passed the query's filters.
    Matched,
}

/// `lw_count(pred)`: passes a boolean through unchanged and counts its true rows. Volatile, so
/// the optimizer neither folds nor moves it: it counts exactly the rows reaching its place.
#[derive(Debug)]
pub struct CountTrue {
    counters: Arc<QueryCounters>,
    counter: Counter,
    signature: Signature,
}

impl PartialEq for CountTrue {
    fn eq(&self, o: &Self) -> bool {
        Arc::ptr_eq(&self.counters, &o.counters) && self.counter == o.counter
    }
}
impl Eq for CountTrue {}
impl Hash for CountTrue {
    fn hash<H: Hasher>(&self, h: &mut H) {
        (Arc::as_ptr(&self.counters) as usize).hash(h);
        self.counter.hash(h);
    }
}

impl CountTrue {
    pub fn call(counters: &Arc<QueryCounters>, counter: Counter, predicate: Expr) -> Expr {
        ScalarUDF::from(CountTrue {
            counters: counters.clone(),
            counter,
            signature: Signature::exact(vec![DataType::Boolean], Volatility::Volatile),
        })
        .call(vec![predicate])
    }
}

impl ScalarUDFImpl for CountTrue {
    fn name(&self) -> &str {
        match self.counter {
            Counter::Scanned { .. } => "lw_count_scanned",
            Counter::Matched => "lw_count_matched",
        }
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Boolean)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let (trues, out) = match &args.args[0] {
            ColumnarValue::Scalar(ScalarValue::Boolean(b)) => {
                let t = if b.unwrap_or(false) {
                    args.number_rows
                } else {
                    0
                };
                (t, args.args[0].clone())
            }
            ColumnarValue::Array(a) => {
                let Some(b) = a.as_any().downcast_ref::<BooleanArray>() else {
                    return exec_err!("lw_count expects booleans");
                };
                (b.true_count(), args.args[0].clone())
            }
            _ => return exec_err!("lw_count expects booleans"),
        };
        let c = &self.counters;
        match self.counter {
            Counter::Scanned { bytes_per_row } => {
                c.scanned.fetch_add(trues as u64, Ordering::Relaxed);
                c.bytes
                    .fetch_add(trues as u64 * bytes_per_row, Ordering::Relaxed);
            }
            Counter::Matched => {
                c.matched.fetch_add(trues as u64, Ordering::Relaxed);
            }
        }
        Ok(out)
    }
}

/// JSON values held as text (what `jsonParse` returns): parsing, member access and list elements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JsonOp {
    /// `jsonParse(s)`: the compact text of a JSON object or array; anything else is absent.
    Parse,
    /// The elements of a JSON array as texts (strings unquoted, containers as JSON); any other
    /// value is a one-element list, as `unnest` treats non-lists.
    Elements,
}

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct JsonUdf {
    op: JsonOp,
    /// For member access: the dotted path below the value.
    path: Option<String>,
    signature: Signature,
}

impl JsonUdf {
    pub fn call(op: JsonOp, arg: Expr) -> Expr {
        ScalarUDF::from(JsonUdf {
            op,
            path: None,
            signature: Signature::any(1, Volatility::Immutable),
        })
        .call(vec![arg])
    }

    /// `value.a.b` where `value` holds JSON text: the member's text (containers as JSON).
    pub fn member(arg: Expr, path: &str) -> Expr {
        ScalarUDF::from(JsonUdf {
            op: JsonOp::Parse,
            path: Some(path.to_string()),
            signature: Signature::any(1, Volatility::Immutable),
        })
        .call(vec![arg])
    }
}

/// A JSON value as Insights shows it: strings unquoted, containers as compact JSON.
pub fn json_text(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

fn json_member<'v>(v: &'v serde_json::Value, path: &str) -> Option<&'v serde_json::Value> {
    let mut cur = v;
    for part in path.split('.') {
        cur = match cur {
            serde_json::Value::Object(m) => m.get(part)?,
            serde_json::Value::Array(a) => a.get(part.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

impl ScalarUDFImpl for JsonUdf {
    fn name(&self) -> &str {
        match (self.op, &self.path) {
            (JsonOp::Parse, None) => "jsonParse",
            (JsonOp::Parse, Some(_)) => "lw_json_member",
            (JsonOp::Elements, _) => "lw_json_elements",
        }
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(match self.op {
            JsonOp::Parse => DataType::Utf8,
            JsonOp::Elements => {
                DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true)))
            }
        })
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let input = strings(&args.args[0], rows)?;
        let input = input.as_string::<i32>();
        let parse = |i: usize| -> Option<serde_json::Value> {
            if input.is_null(i) {
                return None;
            }
            serde_json::from_str(input.value(i).trim()).ok()
        };
        match self.op {
            JsonOp::Parse => {
                let mut b = StringBuilder::new();
                for i in 0..rows {
                    let v = parse(i);
                    let out = match (&self.path, v) {
                        (
                            None,
                            Some(v @ (serde_json::Value::Object(_) | serde_json::Value::Array(_))),
                        ) => Some(v.to_string()),
                        (Some(path), Some(v)) => json_member(&v, path).and_then(json_text),
                        _ => None,
                    };
                    b.append_option(out);
                }
                Ok(ColumnarValue::Array(Arc::new(b.finish())))
            }
            JsonOp::Elements => {
                let mut b = arrow::array::ListBuilder::new(StringBuilder::new());
                for i in 0..rows {
                    if input.is_null(i) {
                        b.append_null();
                        continue;
                    }
                    match parse(i) {
                        Some(serde_json::Value::Array(items)) => {
                            for item in &items {
                                b.values().append_option(json_text(item));
                            }
                        }
                        Some(v) => b.values().append_option(json_text(&v)),
                        // Not JSON at all: the text itself is the single element.
                        None => b.values().append_value(input.value(i)),
                    }
                    b.append(true);
                }
                Ok(ColumnarValue::Array(Arc::new(b.finish())))
            }
        }
    }
}

/// `parse f logfmt as m`: `k=v k2="v 2"` pairs as the JSON text of one map (members as `m.k`).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct LogfmtUdf {
    signature: Signature,
}

impl LogfmtUdf {
    pub fn call(arg: Expr) -> Expr {
        ScalarUDF::from(LogfmtUdf {
            signature: Signature::any(1, ONCE_PER_ROW),
        })
        .call(vec![arg])
    }
}

/// The pairs of a logfmt line; a bare key is `true`, quoted values may hold spaces and `\"`.
pub fn logfmt(line: &str) -> serde_json::Map<String, serde_json::Value> {
    let mut out = serde_json::Map::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        if key.is_empty() {
            if chars.next().is_none() {
                return out;
            }
            continue;
        }
        if chars.peek() != Some(&'=') {
            out.insert(key, serde_json::Value::Bool(true));
            continue;
        }
        chars.next();
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        if let Some(n) = chars.next() {
                            value.push(n);
                        }
                    }
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        out.insert(key, serde_json::Value::String(value));
    }
}

impl ScalarUDFImpl for LogfmtUdf {
    fn name(&self) -> &str {
        "lw_logfmt"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let input = strings(&args.args[0], rows)?;
        let input = input.as_string::<i32>();
        let mut b = StringBuilder::new();
        for i in 0..rows {
            if input.is_null(i) {
                b.append_null();
                continue;
            }
            let m = logfmt(input.value(i));
            if m.is_empty() {
                b.append_null();
            } else {
                b.append_value(serde_json::Value::Object(m).to_string());
            }
        }
        Ok(ColumnarValue::Array(Arc::new(b.finish())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(glob: &str, s: &str) -> Option<Vec<String>> {
        let parts: Vec<String> = glob.split('*').map(str::to_string).collect();
        let mut out = Vec::new();
        glob_captures(&parts, s, &mut out)
            .then(|| out.iter().map(|&(a, b)| s[a..b].to_string()).collect())
    }

    #[test]
    fn glob_captures_are_lazy_unanchored_and_the_last_star_takes_the_rest() {
        assert_eq!(
            caps(
                "[*] * The error was: *",
                "2024-05-19 [ERROR] {\"a\":1} The error was: Db x"
            ),
            Some(vec!["ERROR".into(), "{\"a\":1}".into(), "Db x".into()])
        );
        assert_eq!(
            caps("a=* b=*;", "a=1 b=2;3;"),
            Some(vec!["1".into(), "2".into()])
        );
        assert_eq!(caps("*:*", "k:v:w"), Some(vec!["k".into(), "v:w".into()]));
        assert_eq!(caps("x=*", "no match"), None);
        assert_eq!(caps("a * c", "a b"), None);
        // Fields split by one repeated byte take the scan for it.
        let v = |xs: &[&str]| Some(xs.iter().map(|x| x.to_string()).collect::<Vec<String>>());
        assert_eq!(caps("* * *", "a b c d"), v(&["a", "b", "c d"]));
        assert_eq!(caps("* * *", "a b"), None);
        assert_eq!(caps("* * ", "a b c"), v(&["a", "b"]));
        assert_eq!(caps("x * *", "pre x a b c"), v(&["a", "b c"]));
        assert_eq!(caps("*,*,*", "a,,b"), v(&["a", "", "b"]));
        assert_eq!(caps("*,*,*", "a,b"), None);
        assert_eq!(caps("* *", " x"), v(&["", "x"]));
    }

    #[test]
    fn time_floor_is_the_exact_euclidean_floor() {
        for ms in [1, 7, 1000, 60_000, 300_000, 3_600_000, 86_400_000] {
            for t in [
                0,
                1,
                -1,
                ms - 1,
                ms,
                -ms,
                -ms - 1,
                1_795_634_895_157,
                1_795_634_895_157 / ms * ms,
                1_795_634_895_157 / ms * ms - 1,
                -1_795_634_895_157,
                (1 << 53) - 1,
            ] {
                assert_eq!(floor_to(t, ms), t.div_euclid(ms) * ms, "{t} {ms}");
            }
        }
    }
}

/// `histogram(x, buckets)` over the values one group collected (`array_agg`): counts in
/// `buckets` equal-width ranges from the smallest to the largest value, as a JSON map
/// `{"lo-hi": n, ...}` (the last range includes the largest value).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Histogram {
    buckets: usize,
    signature: Signature,
}

impl Histogram {
    pub fn call(values: Expr, buckets: usize) -> Expr {
        ScalarUDF::from(Histogram {
            buckets,
            signature: Signature::any(1, Volatility::Immutable),
        })
        .call(vec![values])
    }

    fn map(&self, values: &[f64]) -> Option<String> {
        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if !min.is_finite() || !max.is_finite() {
            return None;
        }
        let n = if max > min { self.buckets } else { 1 };
        let width = (max - min) / n as f64;
        let mut counts = vec![0u64; n];
        for v in values {
            let i = if width > 0.0 {
                (((v - min) / width) as usize).min(n - 1)
            } else {
                0
            };
            counts[i] += 1;
        }
        // Ranges in ascending order (a JSON map built by hand: serde_json's sorts its keys).
        let mut parts = Vec::with_capacity(n);
        for (i, c) in counts.iter().enumerate() {
            let lo = min + width * i as f64;
            let hi = if i + 1 == n {
                max
            } else {
                min + width * (i + 1) as f64
            };
            let key = format!(
                "{}-{}",
                logwell_fields::number(lo),
                logwell_fields::number(hi)
            );
            parts.push(format!("{}:{c}", serde_json::Value::String(key)));
        }
        Some(format!("{{{}}}", parts.join(",")))
    }
}

impl ScalarUDFImpl for Histogram {
    fn name(&self) -> &str {
        "lw_histogram"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let lists = args.args[0].to_array(rows)?;
        let Some(lists) = lists.as_list_opt::<i32>() else {
            return exec_err!("histogram() expects collected values");
        };
        let mut b = StringBuilder::new();
        for i in 0..lists.len() {
            if lists.is_null(i) {
                b.append_null();
                continue;
            }
            let values = arrow::compute::cast(&lists.value(i), &DataType::Float64)?;
            let values = values.as_primitive::<arrow::datatypes::Float64Type>();
            let present: Vec<f64> = values.iter().flatten().collect();
            b.append_option(self.map(&present));
        }
        Ok(ColumnarValue::Array(Arc::new(b.finish())))
    }
}

/// `lw_pattern_profile(ts_ms, text)`: the [`anomaly::Profile`](crate::anomaly::Profile) of one
/// pattern's events, as JSON (the `anomaly` command's input); `lw_pattern_profiles(profile)`:
/// several such profiles merged into one.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct PatternProfile {
    /// The input is profiles to merge, not events.
    merging: bool,
    signature: Signature,
}

impl PatternProfile {
    pub fn call(ts_ms: Expr, text: Expr) -> Expr {
        AggregateUDF::from(PatternProfile {
            merging: false,
            signature: Signature::exact(
                vec![DataType::Int64, DataType::Utf8],
                Volatility::Immutable,
            ),
        })
        .call(vec![ts_ms, text])
    }

    pub fn merge(profile: Expr) -> Expr {
        AggregateUDF::from(PatternProfile {
            merging: true,
            signature: Signature::exact(vec![DataType::Utf8], Volatility::Immutable),
        })
        .call(vec![profile])
    }
}

impl AggregateUDFImpl for PatternProfile {
    fn name(&self) -> &str {
        if self.merging {
            "lw_pattern_profiles"
        } else {
            "lw_pattern_profile"
        }
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn accumulator(&self, _: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(ProfileAccumulator {
            merging: self.merging,
            profile: Default::default(),
        }))
    }
    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![Arc::new(Field::new(
            format!("{}[profile]", args.name),
            DataType::Utf8,
            true,
        ))])
    }
}

#[derive(Debug)]
struct ProfileAccumulator {
    merging: bool,
    profile: crate::anomaly::Profile,
}

impl Accumulator for ProfileAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        if self.merging {
            return self.merge_batch(values);
        }
        let ts = values[0].as_primitive::<arrow::datatypes::Int64Type>();
        let text = values[1].as_string::<i32>();
        for i in 0..ts.len() {
            if ts.is_valid(i) && text.is_valid(i) {
                self.profile.add(ts.value(i), text.value(i));
            }
        }
        Ok(())
    }
    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(ScalarValue::Utf8(Some(self.profile.to_json())))
    }
    fn size(&self) -> usize {
        self.profile.size()
    }
    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![self.evaluate()?])
    }
    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let states = states[0].as_string::<i32>();
        for state in states.iter().flatten() {
            match crate::anomaly::Profile::from_json(state) {
                Some(p) => self.profile.merge(p),
                None => return exec_err!("unreadable pattern profile"),
            }
        }
        Ok(())
    }
}

/// `lw_anomaly(profile, lo_ms, hi_ms, severity)`: what [`anomaly::evaluate`]
/// (crate::anomaly::evaluate) finds, as a struct `{at, kinds, priority, description}` (all
/// null when the pattern looks usual).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct AnomalyUdf {
    signature: Signature,
}

impl AnomalyUdf {
    pub fn call(profile: Expr, lo: Expr, hi: Expr, severity: Expr) -> Expr {
        ScalarUDF::from(AnomalyUdf {
            signature: Signature::exact(
                vec![
                    DataType::Utf8,
                    DataType::Int64,
                    DataType::Int64,
                    DataType::Utf8,
                ],
                Volatility::Immutable,
            ),
        })
        .call(vec![profile, lo, hi, severity])
    }

    fn fields() -> Fields {
        Fields::from(vec![
            Field::new("at", DataType::Int64, true),
            Field::new("kinds", DataType::Utf8, true),
            Field::new("priority", DataType::Utf8, true),
            Field::new("description", DataType::Utf8, true),
        ])
    }
}

impl ScalarUDFImpl for AnomalyUdf {
    fn name(&self) -> &str {
        "lw_anomaly"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Struct(Self::fields()))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let profiles = strings(&args.args[0], rows)?;
        let profiles = profiles.as_string::<i32>();
        let lo = args.args[1].to_array(rows)?;
        let lo = lo.as_primitive::<arrow::datatypes::Int64Type>();
        let hi = args.args[2].to_array(rows)?;
        let hi = hi.as_primitive::<arrow::datatypes::Int64Type>();
        let severity = strings(&args.args[3], rows)?;
        let severity = severity.as_string::<i32>();
        let mut at = arrow::array::Int64Builder::new();
        let (mut kinds, mut priority, mut description) = (
            StringBuilder::new(),
            StringBuilder::new(),
            StringBuilder::new(),
        );
        for i in 0..rows {
            let finding = profiles
                .is_valid(i)
                .then(|| crate::anomaly::Profile::from_json(profiles.value(i)))
                .flatten()
                .filter(|_| lo.is_valid(i) && hi.is_valid(i))
                .and_then(|p| {
                    let sev = severity.is_valid(i).then(|| severity.value(i));
                    crate::anomaly::evaluate(&p, lo.value(i), hi.value(i), sev)
                });
            at.append_option(finding.as_ref().map(|f| f.at));
            kinds.append_option(finding.as_ref().map(|f| f.kinds.as_str()));
            priority.append_option(finding.as_ref().map(|f| f.priority));
            description.append_option(finding.as_ref().map(|f| f.description.as_str()));
        }
        let cols: Vec<ArrayRef> = vec![
            Arc::new(at.finish()),
            Arc::new(kinds.finish()),
            Arc::new(priority.finish()),
            Arc::new(description.finish()),
        ];
        Ok(ColumnarValue::Array(Arc::new(StructArray::try_new(
            Self::fields(),
            cols,
            None,
        )?)))
    }
}

/// `lw_time_floor(ts)`: a millisecond timestamp floored to a multiple of a fixed period (`bin`,
/// `datefloor`), in one pass: a multiplication by the period's inverse, corrected to the exact
/// integer floor.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct TimeFloor {
    ms: i64,
    signature: Signature,
}

/// The multiple of `ms` at or below `t` (also below zero).
pub fn floor_to(t: i64, ms: i64) -> i64 {
    floor_with_inverse(t, ms, 1.0 / ms as f64)
}

/// [`floor_to`] with `inverse = 1 / ms` computed once: the float quotient, truncated, is off by
/// at most one step (rounding, or truncation towards zero below zero), which the remainder
/// corrects. Integer division, or a call to `floor`, costs several times more per row.
#[inline]
fn floor_with_inverse(t: i64, ms: i64, inverse: f64) -> i64 {
    // Wrapping: nonsense far outside the timestamp range gives nonsense, not a panic.
    let mut q = (t as f64 * inverse) as i64;
    let r = t.wrapping_sub(q.wrapping_mul(ms));
    q -= i64::from(r < 0);
    q += i64::from(r >= ms);
    q.wrapping_mul(ms)
}

impl TimeFloor {
    pub fn call(ts: Expr, ms: i64) -> Expr {
        ScalarUDF::from(TimeFloor {
            ms,
            signature: Signature::any(1, Volatility::Immutable),
        })
        .call(vec![ts])
    }
}

impl ScalarUDFImpl for TimeFloor {
    fn name(&self) -> &str {
        "lw_time_floor"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Timestamp(
            arrow::datatypes::TimeUnit::Millisecond,
            None,
        ))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        use arrow::datatypes::TimestampMillisecondType as Ms;
        let ts = args.args[0].to_array(args.number_rows)?;
        let ts = match ts.data_type() {
            DataType::Timestamp(arrow::datatypes::TimeUnit::Millisecond, None) => ts,
            _ => arrow::compute::cast(
                &ts,
                &DataType::Timestamp(arrow::datatypes::TimeUnit::Millisecond, None),
            )?,
        };
        let (ms, inverse) = (self.ms, 1.0 / self.ms as f64);
        let out = ts
            .as_primitive::<Ms>()
            .unary::<_, Ms>(|t| floor_with_inverse(t, ms, inverse));
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

/// `lw_pattern_cluster(template, count) OVER ()`: each template's merged pattern
/// ([`pattern::cluster`](crate::pattern::cluster)) among all the templates of the query.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct PatternCluster {
    signature: Signature,
}

impl PatternCluster {
    pub fn call(template: Expr, count: Expr) -> Expr {
        let udwf = datafusion::logical_expr::WindowUDF::from(PatternCluster {
            signature: Signature::exact(
                vec![DataType::Utf8, DataType::Int64],
                Volatility::Immutable,
            ),
        });
        Expr::WindowFunction(Box::new(
            datafusion::logical_expr::expr::WindowFunction::new(
                Arc::new(udwf),
                vec![template, count],
            ),
        ))
    }
}

impl datafusion::logical_expr::WindowUDFImpl for PatternCluster {
    fn name(&self) -> &str {
        "lw_pattern_cluster"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn partition_evaluator(
        &self,
        _: datafusion::logical_expr::function::PartitionEvaluatorArgs,
    ) -> Result<Box<dyn datafusion::logical_expr::PartitionEvaluator>> {
        Ok(Box::new(ClusterEvaluator))
    }
    fn field(
        &self,
        args: datafusion::logical_expr::function::WindowUDFFieldArgs,
    ) -> Result<FieldRef> {
        Ok(Arc::new(Field::new(args.name(), DataType::Utf8, true)))
    }
}

#[derive(Debug)]
struct ClusterEvaluator;

impl datafusion::logical_expr::PartitionEvaluator for ClusterEvaluator {
    fn evaluate_all(&mut self, values: &[ArrayRef], rows: usize) -> Result<ArrayRef> {
        let templates = values[0].as_string::<i32>();
        let counts = values[1].as_primitive::<arrow::datatypes::Int64Type>();
        let input: Vec<(&str, u64)> = (0..rows)
            .map(|i| (templates.value(i), counts.value(i).max(0) as u64))
            .collect();
        let merged = crate::pattern::cluster(&input);
        let mut b = StringBuilder::new();
        for i in 0..rows {
            if templates.is_valid(i) {
                b.append_value(&merged[i]);
            } else {
                b.append_null();
            }
        }
        Ok(Arc::new(b.finish()))
    }
}

//! Scalar functions DataFusion does not have: JSON field discovery, `parse` captures, and the
//! counters behind a query's statistics.

use crate::json::PathSet;
use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, StringBuilder, StructArray};
use arrow::datatypes::{DataType, Field, Fields};
use datafusion::common::{exec_err, Result, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Rows as strings, whatever string type DataFusion handed over.
fn strings(arg: &ColumnarValue, rows: usize) -> Result<ArrayRef> {
    let array = arg.to_array(rows)?;
    Ok(match array.data_type() {
        DataType::Utf8 => array,
        _ => arrow::compute::cast(&array, &DataType::Utf8)?,
    })
}

fn utf8_struct(names: &[String]) -> DataType {
    DataType::Struct(Fields::from(
        names
            .iter()
            .map(|n| Field::new(n, DataType::Utf8, true))
            .collect::<Vec<_>>(),
    ))
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
            signature: Signature::any(1, Volatility::Immutable),
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
        Ok(utf8_struct(&self.slots))
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
        let DataType::Struct(fields) = utf8_struct(&self.slots) else {
            unreachable!()
        };
        let cols: Vec<ArrayRef> = builders
            .into_iter()
            .map(|mut b| Arc::new(b.finish()) as ArrayRef)
            .collect();
        Ok(ColumnarValue::Array(Arc::new(StructArray::try_new(
            fields, cols, None,
        )?)))
    }
}

/// `lw_parse(field)`: the captures of one `parse` command's regex, as a struct of its names.
#[derive(Debug)]
pub struct ParseFields {
    pattern: String,
    regex: regex::Regex,
    names: Vec<String>,
    signature: Signature,
}

impl PartialEq for ParseFields {
    fn eq(&self, o: &Self) -> bool {
        self.pattern == o.pattern && self.names == o.names
    }
}
impl Eq for ParseFields {}
impl Hash for ParseFields {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.pattern.hash(h);
        self.names.hash(h);
    }
}

impl ParseFields {
    /// `names[i]` receives capture group `i + 1`.
    pub fn udf(regex: regex::Regex, names: Vec<String>) -> ScalarUDF {
        ScalarUDF::from(ParseFields {
            pattern: regex.as_str().to_string(),
            regex,
            names,
            signature: Signature::any(1, Volatility::Immutable),
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
        Ok(utf8_struct(&self.names))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let input = strings(&args.args[0], rows)?;
        let input = input.as_string::<i32>();
        let n = self.names.len();
        let mut builders: Vec<StringBuilder> = (0..n).map(|_| StringBuilder::new()).collect();
        let mut locs = self.regex.capture_locations();
        for i in 0..input.len() {
            let hit = input.is_valid(i)
                && self
                    .regex
                    .captures_read(&mut locs, input.value(i))
                    .is_some();
            for (g, b) in builders.iter_mut().enumerate() {
                match (hit, locs.get(g + 1)) {
                    (true, Some((s, e))) => b.append_value(&input.value(i)[s..e]),
                    _ => b.append_null(),
                }
            }
        }
        let DataType::Struct(fields) = utf8_struct(&self.names) else {
            unreachable!()
        };
        let cols: Vec<ArrayRef> = builders
            .into_iter()
            .map(|mut b| Arc::new(b.finish()) as ArrayRef)
            .collect();
        Ok(ColumnarValue::Array(Arc::new(StructArray::try_new(
            fields, cols, None,
        )?)))
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

//! The live counters behind a query's statistics (`recordsMatched`...).

use super::*;

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

//! `histogram(x, buckets)` over the values a group collected.

use super::*;

/// `histogram(x, buckets)` over the values one group collected (`lw_values`): counts in
/// `buckets` equal-width ranges from the smallest to the largest value, as a JSON map
/// `{"lo-hi": n, ...}` (the last range includes the largest value).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Histogram {
    signature: Signature,
}

impl Histogram {
    pub fn udf() -> ScalarUDF {
        ScalarUDF::from(Histogram {
            signature: Signature::any(2, Volatility::Immutable),
        })
    }

    /// `lw_histogram(values, buckets)` (`buckets` a literal).
    pub fn call(values: Expr, buckets: usize) -> Expr {
        Histogram::udf().call(vec![values, datafusion::logical_expr::lit(buckets as i64)])
    }

    fn map(buckets: usize, values: &[f64]) -> Option<String> {
        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if !min.is_finite() || !max.is_finite() {
            return None;
        }
        let n = if max > min { buckets } else { 1 };
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
        let buckets = match &args.args[1] {
            ColumnarValue::Scalar(ScalarValue::Int64(Some(n))) if (1..=1000).contains(n) => {
                *n as usize
            }
            _ => return exec_err!("lw_histogram takes a literal number of buckets from 1 to 1000"),
        };
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
            b.append_option(Histogram::map(buckets, &present));
        }
        Ok(ColumnarValue::Array(Arc::new(b.finish())))
    }
}

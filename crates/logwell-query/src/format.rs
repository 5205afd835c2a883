//! How result values print: every value is a string, timestamps as `yyyy-MM-dd HH:mm:ss.SSS` UTC,
//! integral numbers without a trailing `.0`.

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{DataType, Float64Type, Int64Type, TimeUnit, TimestampMillisecondType};
use arrow::util::display::{ArrayFormatter, FormatOptions};

pub use logwell_fields::number;

/// Epoch milliseconds as `yyyy-MM-dd HH:mm:ss.SSS` (UTC).
pub fn timestamp(ms: i64) -> String {
    match chrono::DateTime::from_timestamp_millis(ms) {
        Some(t) => t.format("%Y-%m-%d %H:%M:%S%.3f").to_string(),
        None => ms.to_string(),
    }
}

/// The printed values of a column; `None` where the value is null (the field is left out).
pub fn column(array: &ArrayRef) -> Vec<Option<String>> {
    let n = array.len();
    let mut out = Vec::with_capacity(n);
    match array.data_type() {
        DataType::Timestamp(TimeUnit::Millisecond, _) => {
            let a = array.as_primitive::<TimestampMillisecondType>();
            for i in 0..n {
                out.push(a.is_valid(i).then(|| timestamp(a.value(i))));
            }
        }
        DataType::Timestamp(..) | DataType::Date32 | DataType::Date64 => {
            let cast =
                arrow::compute::cast(array, &DataType::Timestamp(TimeUnit::Millisecond, None));
            match cast {
                Ok(c) => return column(&c),
                Err(_) => return generic(array),
            }
        }
        DataType::Float64 | DataType::Float32 | DataType::Decimal128(..) => {
            let c = arrow::compute::cast(array, &DataType::Float64).expect("numeric casts to f64");
            let a = c.as_primitive::<Float64Type>();
            for i in 0..n {
                out.push(a.is_valid(i).then(|| number(a.value(i))));
            }
        }
        DataType::Int64 => {
            let a = array.as_primitive::<Int64Type>();
            for i in 0..n {
                out.push(a.is_valid(i).then(|| a.value(i).to_string()));
            }
        }
        DataType::Utf8 => {
            let a = array.as_string::<i32>();
            for i in 0..n {
                out.push(a.is_valid(i).then(|| a.value(i).to_string()));
            }
        }
        DataType::Utf8View => {
            let a = array.as_string_view();
            for i in 0..n {
                out.push(a.is_valid(i).then(|| a.value(i).to_string()));
            }
        }
        DataType::LargeUtf8 | DataType::Dictionary(..) => {
            match arrow::compute::cast(array, &DataType::Utf8) {
                Ok(c) => return column(&c),
                Err(_) => return generic(array),
            }
        }
        _ => return generic(array),
    }
    out
}

fn generic(array: &ArrayRef) -> Vec<Option<String>> {
    let opts = FormatOptions::default();
    let Ok(f) = ArrayFormatter::try_new(array.as_ref(), &opts) else {
        return vec![None; array.len()];
    };
    (0..array.len())
        .map(|i| array.is_valid(i).then(|| f.value(i).to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_times_print_like_cloudwatch() {
        assert_eq!(number(3.0), "3");
        assert_eq!(number(12.5), "12.5");
        assert_eq!(number(-0.25), "-0.25");
        assert_eq!(timestamp(1_716_099_035_743), "2024-05-19 06:10:35.743");
        assert_eq!(timestamp(0), "1970-01-01 00:00:00.000");
    }
}

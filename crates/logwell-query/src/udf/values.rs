//! `pct(x, p)` and `histogram(x, n)` over the values a group collected: `lw_values(x)` collects
//! them once per field, however many items of a `stats` read them (`pct(x, 50), pct(x, 99)`
//! are one aggregate to DataFusion, which computes identical aggregates once, where two
//! `percentile_cont`s each kept, sent and merged a copy), and
//! `lw_percentile(values, p)` picks a percentile from them.

use super::*;
use arrow::array::{Float64Array, Float64Builder, ListArray};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::Float64Type;
use datafusion::logical_expr::{EmitTo, GroupsAccumulator};

/// The items of the lists `lw_values` returns.
fn item() -> FieldRef {
    Arc::new(Field::new_list_field(DataType::Float64, true))
}

/// The type `lw_values` returns: the group's present values, in no particular order.
fn values_type() -> DataType {
    DataType::List(item())
}

/// `lw_values(x)`: the non-null values of `x` in each group, as a list.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct CollectValues {
    signature: Signature,
}

impl CollectValues {
    pub fn udaf() -> AggregateUDF {
        AggregateUDF::from(CollectValues {
            signature: Signature::exact(vec![DataType::Float64], Volatility::Immutable),
        })
    }

    pub fn call(x: Expr) -> Expr {
        CollectValues::udaf().call(vec![x])
    }
}

impl AggregateUDFImpl for CollectValues {
    fn name(&self) -> &str {
        "lw_values"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(values_type())
    }
    fn accumulator(&self, _: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(ValuesAccumulator::default()))
    }
    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![Arc::new(Field::new(
            format!("{}[values]", args.name),
            values_type(),
            true,
        ))])
    }
    fn groups_accumulator_supported(&self, _: AccumulatorArgs) -> bool {
        true
    }
    fn create_groups_accumulator(&self, _: AccumulatorArgs) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(GroupValues::default()))
    }
}

/// `array` as numbers (what `lw_values` collects).
fn numbers(array: &dyn Array) -> Result<&Float64Array> {
    match array.as_primitive_opt::<Float64Type>() {
        Some(values) => Ok(values),
        None => exec_err!("lw_values collects numbers, got {}", array.data_type()),
    }
}

/// Whether `row` of `values` is collected: present, and kept by the aggregate's filter.
fn collected(values: &Float64Array, filter: Option<&BooleanArray>, row: usize) -> bool {
    values.is_valid(row) && filter.is_none_or(|f| f.is_valid(row) && f.value(row))
}

/// Appends the present values of `array` (a Float64 array) to `to`.
fn extend_present(to: &mut Vec<f64>, array: &dyn Array) -> Result<()> {
    let values = numbers(array)?;
    if values.null_count() == 0 {
        to.extend_from_slice(values.values());
    } else {
        to.extend(values.iter().flatten());
    }
    Ok(())
}

/// One list per group, from the groups' values.
fn lists(groups: Vec<Vec<f64>>) -> ArrayRef {
    let offsets = OffsetBuffer::from_lengths(groups.iter().map(Vec::len));
    let flat = Float64Array::from(groups.concat());
    Arc::new(ListArray::new(item(), offsets, Arc::new(flat), None))
}

/// Adds each list of `states` (a list array) to the group `to(row)`.
fn merge_lists(
    states: &ArrayRef,
    mut to: impl FnMut(usize) -> usize,
    groups: &mut [Vec<f64>],
) -> Result<()> {
    let Some(states) = states.as_list_opt::<i32>() else {
        return exec_err!("lw_values merges lists, got {}", states.data_type());
    };
    let offsets = states.value_offsets();
    let flat = states.values();
    for row in 0..states.len() {
        if states.is_valid(row) {
            let (start, end) = (offsets[row] as usize, offsets[row + 1] as usize);
            extend_present(
                &mut groups[to(row)],
                flat.slice(start, end - start).as_ref(),
            )?;
        }
    }
    Ok(())
}

#[derive(Debug, Default)]
struct ValuesAccumulator {
    values: Vec<f64>,
}

impl Accumulator for ValuesAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        extend_present(&mut self.values, values[0].as_ref())
    }
    fn evaluate(&mut self) -> Result<ScalarValue> {
        let list = lists(vec![std::mem::take(&mut self.values)]);
        Ok(ScalarValue::List(Arc::new(list.as_list::<i32>().clone())))
    }
    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.values.capacity() * 8
    }
    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![self.evaluate()?])
    }
    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        merge_lists(&states[0], |_| 0, std::slice::from_mut(&mut self.values))
    }
}

#[derive(Debug, Default)]
struct GroupValues {
    groups: Vec<Vec<f64>>,
}

impl GroupValues {
    fn take(&mut self, emit_to: EmitTo) -> Vec<Vec<f64>> {
        emit_to.take_needed(&mut self.groups)
    }
}

impl GroupsAccumulator for GroupValues {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.groups.resize_with(total_num_groups, Vec::new);
        let values = numbers(values[0].as_ref())?;
        for (row, &g) in group_indices.iter().enumerate() {
            if collected(values, opt_filter, row) {
                self.groups[g].push(values.value(row));
            }
        }
        Ok(())
    }
    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        Ok(lists(self.take(emit_to)))
    }
    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        Ok(vec![lists(self.take(emit_to))])
    }
    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        self.groups.resize_with(total_num_groups, Vec::new);
        merge_lists(&values[0], |row| group_indices[row], &mut self.groups)
    }
    /// Each row as a group of its own (when partial aggregation is skipped).
    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        let values = numbers(values[0].as_ref())?;
        let rows = (0..values.len()).map(|row| {
            if collected(values, opt_filter, row) {
                vec![values.value(row)]
            } else {
                Vec::new()
            }
        });
        Ok(vec![lists(rows.collect())])
    }
    fn size(&self) -> usize {
        self.groups.capacity() * std::mem::size_of::<Vec<f64>>()
            + self.groups.iter().map(|g| g.capacity() * 8).sum::<usize>()
    }
}

/// `lw_percentile(values, p)`: the `p` percentile (0 to 1, a literal) of collected values,
/// interpolated between the two nearest ranks (as `percentile_cont` and DuckDB's
/// `quantile_cont`); null for no values.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Percentile {
    signature: Signature,
}

impl Percentile {
    pub fn udf() -> ScalarUDF {
        ScalarUDF::from(Percentile {
            signature: Signature::any(2, Volatility::Immutable),
        })
    }

    pub fn call(values: Expr, p: f64) -> Expr {
        Percentile::udf().call(vec![values, datafusion::logical_expr::lit(p)])
    }

    /// The `p` percentile of `values`, which it reorders.
    fn of(values: &mut [f64], p: f64) -> Option<f64> {
        if values.is_empty() {
            return None;
        }
        let at = p * (values.len() - 1) as f64;
        let lower = at.floor() as usize;
        let (_, low, above) = values.select_nth_unstable_by(lower, f64::total_cmp);
        let low = *low;
        let fraction = at - lower as f64;
        if fraction == 0.0 || above.is_empty() {
            return Some(low);
        }
        // The next rank is the smallest value above the selected one.
        let high = above.iter().copied().fold(f64::INFINITY, f64::min);
        Some(low + (high - low) * fraction)
    }
}

impl ScalarUDFImpl for Percentile {
    fn name(&self) -> &str {
        "lw_percentile"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let p = match &args.args[1] {
            ColumnarValue::Scalar(ScalarValue::Float64(Some(p))) if (0.0..=1.0).contains(p) => *p,
            _ => return exec_err!("lw_percentile takes a literal percentile from 0 to 1"),
        };
        let lists = args.args[0].to_array(rows)?;
        let Some(lists) = lists.as_list_opt::<i32>() else {
            return exec_err!("lw_percentile expects collected values");
        };
        let mut out = Float64Builder::with_capacity(lists.len());
        let mut scratch = Vec::new();
        for i in 0..lists.len() {
            if lists.is_null(i) {
                out.append_null();
                continue;
            }
            scratch.clear();
            extend_present(&mut scratch, lists.value(i).as_ref())?;
            out.append_option(Percentile::of(&mut scratch, p));
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The percentile of every rank and between ranks, against a sorted copy.
    #[test]
    fn percentiles_interpolate_between_ranks() {
        let sorted = [10.0, 20.0, 30.0, 40.0, 400.0, 1000.0];
        let mut shuffled = vec![400.0, 10.0, 1000.0, 30.0, 40.0, 20.0];
        assert_eq!(Percentile::of(&mut shuffled, 0.5), Some(35.0));
        assert_eq!(Percentile::of(&mut shuffled, 0.0), Some(10.0));
        assert_eq!(Percentile::of(&mut shuffled, 1.0), Some(1000.0));
        // 0.9 * 5 = 4.5: halfway from 400 to 1000.
        assert_eq!(Percentile::of(&mut shuffled, 0.9), Some(700.0));
        for k in 0..=100 {
            let p = k as f64 / 100.0;
            let at = p * 5.0;
            let (lo, hi) = (at.floor() as usize, at.ceil() as usize);
            let want = sorted[lo] + (sorted[hi] - sorted[lo]) * (at - lo as f64);
            let got = Percentile::of(&mut shuffled.clone(), p).unwrap();
            assert!((got - want).abs() < 1e-9, "p{k}: {got} against {want}");
        }
        assert_eq!(Percentile::of(&mut [], 0.5), None);
        assert_eq!(Percentile::of(&mut [7.0], 0.99), Some(7.0));
    }

    /// Groups collect only their own present values, through a partial state and a merge,
    /// as a plan on several partitions runs them.
    #[test]
    fn values_collect_by_group_through_a_merge() {
        let values: ArrayRef = Arc::new(Float64Array::from(vec![
            Some(1.0),
            None,
            Some(3.0),
            Some(4.0),
            Some(5.0),
        ]));
        let filter = BooleanArray::from(vec![true, true, true, true, false]);
        let mut partial = GroupValues::default();
        partial
            .update_batch(&[values.clone()], &[0, 0, 1, 0, 1], Some(&filter), 2)
            .unwrap();
        let state = partial.state(EmitTo::All).unwrap();
        let mut fin = GroupValues::default();
        // The partial's groups 0 and 1 are the final's 1 and 0; the final group 2 has none.
        fin.merge_batch(&state, &[1, 0], 3).unwrap();
        fin.update_batch(&[values], &[2, 2, 2, 2, 2], None, 3)
            .unwrap();
        let out = fin.evaluate(EmitTo::All).unwrap();
        let out = out.as_list::<i32>();
        let group =
            |i: usize| -> Vec<f64> { out.value(i).as_primitive::<Float64Type>().values().to_vec() };
        assert_eq!(group(0), vec![3.0]);
        assert_eq!(group(1), vec![1.0, 4.0]);
        assert_eq!(group(2), vec![1.0, 3.0, 4.0, 5.0]);
    }
}

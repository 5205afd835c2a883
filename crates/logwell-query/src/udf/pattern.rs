//! The `pattern` and `anomaly` commands' functions: pattern profiles (an aggregate), anomaly
//! findings, and the clustering of templates into patterns (a window function).

use super::*;

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
    /// `lw_pattern_profile(ts_ms, text)`, or with `merging` `lw_pattern_profiles(profile)`.
    pub fn udaf(merging: bool) -> AggregateUDF {
        let args = if merging {
            vec![DataType::Utf8]
        } else {
            vec![DataType::Int64, DataType::Utf8]
        };
        AggregateUDF::from(PatternProfile {
            merging,
            signature: Signature::exact(args, Volatility::Immutable),
        })
    }

    pub fn call(ts_ms: Expr, text: Expr) -> Expr {
        PatternProfile::udaf(false).call(vec![ts_ms, text])
    }

    pub fn merge(profile: Expr) -> Expr {
        PatternProfile::udaf(true).call(vec![profile])
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
    pub fn udf() -> ScalarUDF {
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
    }

    pub fn call(profile: Expr, lo: Expr, hi: Expr, severity: Expr) -> Expr {
        AnomalyUdf::udf().call(vec![profile, lo, hi, severity])
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

/// `lw_pattern_cluster(template, count) OVER ()`: each template's merged pattern
/// ([`pattern::cluster`](crate::pattern::cluster)) among all the templates of the query.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct PatternCluster {
    signature: Signature,
}

impl PatternCluster {
    pub fn udwf() -> datafusion::logical_expr::WindowUDF {
        datafusion::logical_expr::WindowUDF::from(PatternCluster {
            signature: Signature::exact(
                vec![DataType::Utf8, DataType::Int64],
                Volatility::Immutable,
            ),
        })
    }

    pub fn call(template: Expr, count: Expr) -> Expr {
        let udwf = PatternCluster::udwf();
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

//! `lw_number_text`: the text of a field stored as numbers, exactly as the message wrote it.

use super::*;

/// `lw_number_text(x)`: each number of a Float64 field column printed as
/// [`logwell_fields::number`] prints it. A segment stores a field as numbers only when every
/// value prints back as its text in the message, so this gives the text the field holds.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct NumberText {
    signature: Signature,
}

impl NumberText {
    pub fn udf() -> ScalarUDF {
        ScalarUDF::from(NumberText {
            signature: Signature::exact(vec![DataType::Float64], Volatility::Immutable),
        })
    }

    pub fn call(x: Expr) -> Expr {
        NumberText::udf().call(vec![x])
    }
}

impl ScalarUDFImpl for NumberText {
    fn name(&self) -> &str {
        "lw_number_text"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let x = args.args[0].to_array(args.number_rows)?;
        let x = x.as_primitive::<arrow::datatypes::Float64Type>();
        let mut out = StringBuilder::with_capacity(x.len(), x.len() * 4);
        for v in x.iter() {
            match v {
                Some(v) => {
                    logwell_fields::write_number(&mut out, v)
                        .map_err(|e| datafusion::error::DataFusionError::External(e.into()))?;
                    out.append_value("");
                }
                None => out.append_null(),
            }
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Float64Array;

    #[test]
    fn numbers_print_as_the_message_wrote_them() {
        let x = Float64Array::from(vec![
            Some(200.0),
            None,
            Some(12.5),
            Some(-0.001),
            Some(3e20),
        ]);
        let args = ScalarFunctionArgs {
            args: vec![ColumnarValue::Array(Arc::new(x))],
            arg_fields: vec![Arc::new(Field::new("x", DataType::Float64, true))],
            number_rows: 5,
            return_field: Arc::new(Field::new("t", DataType::Utf8, true)),
            config_options: Arc::new(Default::default()),
        };
        let ColumnarValue::Array(out) = NumberText::udf().invoke_with_args(args).unwrap() else {
            panic!("an array");
        };
        let out: Vec<Option<&str>> = out.as_string::<i32>().iter().collect();
        assert_eq!(
            out,
            [
                Some("200"),
                None,
                Some("12.5"),
                Some("-0.001"),
                Some("300000000000000000000")
            ]
        );
    }
}

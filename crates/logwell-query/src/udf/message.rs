//! `lw_message`: a message stored split into its template and variables, whole again.

use super::*;

/// `lw_message(template, vars[, piece, caseless]...)`: the message [`logwell_template::split`]
/// cut into the `message_template` and `message_vars` columns of a segment, byte for byte.
/// With pieces of text (literal text and a literal boolean: ignore ASCII case), a row whose
/// line does not hold every piece is left empty instead of joined: a text search that needs
/// them put them there (`crate::split_search`), and fails on those rows either way.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct JoinMessage {
    signature: Signature,
}

impl JoinMessage {
    pub fn udf() -> ScalarUDF {
        ScalarUDF::from(JoinMessage {
            signature: Signature::user_defined(Volatility::Immutable),
        })
    }

    pub fn call(template: Expr, vars: Expr) -> Expr {
        JoinMessage::udf().call(vec![template, vars])
    }

    /// The pieces literal arguments `args` (after the two columns) name.
    fn pieces(args: &[ColumnarValue]) -> Result<Vec<logwell_template::Piece>> {
        args.chunks(2)
            .map(|pair| match pair {
                [ColumnarValue::Scalar(ScalarValue::Utf8(Some(text))), ColumnarValue::Scalar(ScalarValue::Boolean(Some(caseless)))] => {
                    Ok(logwell_template::Piece {
                        text: text.clone(),
                        caseless: *caseless,
                    })
                }
                _ => exec_err!("lw_message takes pieces as pairs of literal text and boolean"),
            })
            .collect()
    }
}

impl ScalarUDFImpl for JoinMessage {
    fn name(&self) -> &str {
        "lw_message"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    /// The columns as they are read: a dictionary of templates stays one (each template is
    /// cut once per batch, not once per row), where an exact signature would have it cast.
    fn coerce_types(&self, args: &[DataType]) -> Result<Vec<DataType>> {
        match args.len() {
            n if n >= 2 && n % 2 == 0 => Ok(args.to_vec()),
            n => exec_err!("lw_message takes a template, its variables and pairs of piece and case flag, not {n} arguments"),
        }
    }
    /// Null only where the parts are: a segment's message is never null, and nor is it read.
    fn return_field_from_args(
        &self,
        args: datafusion::logical_expr::ReturnFieldArgs,
    ) -> Result<FieldRef> {
        let nullable = args.arg_fields.iter().take(2).any(|f| f.is_nullable());
        Ok(Arc::new(Field::new(self.name(), DataType::Utf8, nullable)))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let template = args.args[0].to_array(args.number_rows)?;
        let vars = args.args[1].to_array(args.number_rows)?;
        let pieces = Self::pieces(&args.args[2..])?;
        let search = logwell_template::Search::new(&pieces);
        Ok(ColumnarValue::Array(logwell_template::join_where(
            &template,
            &vars,
            search.as_ref(),
        )?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::StringArray;

    #[test]
    fn split_messages_are_whole_again() {
        let lines = StringArray::from(vec![Some("took 12 ms\r"), None, Some("")]);
        let (t, v) = logwell_template::split_array(&lines);
        let args = ScalarFunctionArgs {
            args: vec![
                ColumnarValue::Array(Arc::new(t)),
                ColumnarValue::Array(Arc::new(v)),
            ],
            arg_fields: vec![
                Arc::new(Field::new("t", logwell_template::template_type(), true)),
                Arc::new(Field::new("v", DataType::Utf8, true)),
            ],
            number_rows: 3,
            return_field: Arc::new(Field::new("m", DataType::Utf8, true)),
            config_options: Arc::new(Default::default()),
        };
        let ColumnarValue::Array(out) = JoinMessage::udf().invoke_with_args(args).unwrap() else {
            panic!("an array");
        };
        assert_eq!(out.as_string::<i32>(), &lines);
    }
}

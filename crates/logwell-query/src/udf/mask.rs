//! `lw_mask(@message)`: the text with what a group's data protection policy names masked. Not
//! callable by name: a table whose group has a policy applies it to the message as it is read,
//! before any filter, parse or field extraction sees the text.

use super::*;
use logwell_dataprotection::Masker;

#[derive(Debug)]
pub struct Mask {
    masker: Arc<Masker>,
    signature: Signature,
}

// One function per policy: two are the same when they share the compiled policy.
impl PartialEq for Mask {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.masker, &other.masker)
    }
}
impl Eq for Mask {}
impl std::hash::Hash for Mask {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (Arc::as_ptr(&self.masker) as usize).hash(state);
    }
}

impl Mask {
    pub fn udf(masker: Arc<Masker>) -> ScalarUDF {
        ScalarUDF::from(Mask {
            masker,
            signature: Signature::any(1, datafusion::logical_expr::Volatility::Immutable),
        })
    }
}

impl ScalarUDFImpl for Mask {
    fn name(&self) -> &str {
        "lw_mask"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let texts = strings(&args.args[0], args.number_rows)?;
        let texts = texts.as_string::<i32>();
        let mut out = StringBuilder::with_capacity(texts.len(), texts.values().len());
        for i in 0..texts.len() {
            if texts.is_valid(i) {
                out.append_value(self.masker.mask(texts.value(i)));
            } else {
                out.append_null();
            }
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

//! JSON: field discovery in messages (`lw_json`), `jsonParse`, member access, list elements,
//! and `parse ... logfmt`.

use super::*;

/// `lw_json(@message, 'path', ...)`: the struct of the wanted flattened JSON paths (literal
/// arguments), as fields named `0`, `1`, ... in argument order.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct JsonFields {
    signature: Signature,
}

impl JsonFields {
    pub fn udf() -> ScalarUDF {
        ScalarUDF::from(JsonFields {
            signature: Signature::variadic_any(ONCE_PER_ROW),
        })
    }

    /// `lw_json(message, paths...)`.
    pub fn call(message: Expr, paths: &[String]) -> Expr {
        let mut args = vec![message];
        args.extend(
            paths
                .iter()
                .map(|p| datafusion::logical_expr::lit(p.as_str())),
        );
        JsonFields::udf().call(args)
    }

    fn slots(n: usize) -> Vec<String> {
        (0..n).map(|i| i.to_string()).collect()
    }
}

impl ScalarUDFImpl for JsonFields {
    fn name(&self) -> &str {
        "lw_json"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        Ok(text_struct(
            &JsonFields::slots(args.len().saturating_sub(1)),
            &DataType::Utf8,
        ))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let paths = literal_texts(&args.args[1..], "lw_json")?;
        // A handful of paths: building the set per batch costs nothing beside parsing it.
        let set = PathSet::new(&paths);
        let msgs = strings(&args.args[0], rows)?;
        let msgs = msgs.as_string::<i32>();
        let n = paths.len();
        let mut builders: Vec<StringBuilder> = (0..n).map(|_| StringBuilder::new()).collect();
        let mut out: Vec<Option<std::borrow::Cow<str>>> = vec![None; n];
        for i in 0..msgs.len() {
            if msgs.is_valid(i) {
                set.extract(msgs.value(i), &mut out);
            } else {
                out.iter_mut().for_each(|o| *o = None);
            }
            for (b, v) in builders.iter_mut().zip(&out) {
                b.append_option(v.as_deref());
            }
        }
        struct_of(&JsonFields::slots(n), &DataType::Utf8, builders, msgs.len())
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
    /// `value.a.b` where `value` holds JSON text: the member at a dotted path (a literal second
    /// argument), containers as JSON.
    Member,
}

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct JsonUdf {
    op: JsonOp,
    signature: Signature,
}

impl JsonUdf {
    pub fn udf(op: JsonOp) -> ScalarUDF {
        let args = if op == JsonOp::Member { 2 } else { 1 };
        ScalarUDF::from(JsonUdf {
            op,
            signature: Signature::any(args, Volatility::Immutable),
        })
    }

    pub fn call(op: JsonOp, arg: Expr) -> Expr {
        JsonUdf::udf(op).call(vec![arg])
    }

    /// `value.a.b` where `value` holds JSON text: the member's text (containers as JSON).
    pub fn member(arg: Expr, path: &str) -> Expr {
        JsonUdf::udf(JsonOp::Member).call(vec![arg, datafusion::logical_expr::lit(path)])
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
        match self.op {
            JsonOp::Parse => "lw_json_parse",
            JsonOp::Member => "lw_json_member",
            JsonOp::Elements => "lw_json_elements",
        }
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(match self.op {
            JsonOp::Parse | JsonOp::Member => DataType::Utf8,
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
        let path = match (self.op, args.args.get(1)) {
            (JsonOp::Member, Some(ColumnarValue::Scalar(ScalarValue::Utf8(Some(p))))) => {
                Some(p.as_str())
            }
            (JsonOp::Member, _) => return exec_err!("lw_json_member takes a literal path"),
            _ => None,
        };
        match self.op {
            JsonOp::Parse | JsonOp::Member => {
                let mut b = StringBuilder::new();
                for i in 0..rows {
                    let v = parse(i);
                    let out = match (path, v) {
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
    pub fn udf() -> ScalarUDF {
        ScalarUDF::from(LogfmtUdf {
            signature: Signature::any(1, ONCE_PER_ROW),
        })
    }

    pub fn call(arg: Expr) -> Expr {
        LogfmtUdf::udf().call(vec![arg])
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

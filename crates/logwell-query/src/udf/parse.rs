//! `parse` captures: globs and regular expressions, as a struct of the named captures.

use super::*;

/// How a `parse` command finds its captures.
#[derive(Debug, Clone)]
pub enum Captures {
    /// A glob's literal pieces (`"[*] * x: *"` is `["[", "] ", " x: ", ""]`): each star takes
    /// the text up to the next occurrence of the following piece, the last one (before an empty
    /// piece) the rest of the line; unanchored at the start. This is what the lazy regex
    /// `\[(.*?)\] (.*?) x: (.*)` means, found with substring search instead of a regex engine.
    Glob(Vec<String>),
    /// A regex: group `i + 1` fills name `i`.
    Regex(regex::Regex),
}

impl Captures {
    /// The literal arguments that stand for these captures in a plan: a kind and a pattern.
    fn literals(&self) -> [String; 2] {
        match self {
            Captures::Glob(parts) => ["glob".into(), parts.join("*")],
            Captures::Regex(r) => ["regex".into(), r.as_str().into()],
        }
    }

    /// The captures a plan's literals stand for. Regexes are compiled once per pattern, not
    /// per batch (a cache shared by every query, emptied when it grows past a few hundred).
    fn from_literals(kind: &str, pattern: &str) -> Result<Captures> {
        static REGEXES: std::sync::LazyLock<
            std::sync::Mutex<std::collections::HashMap<String, regex::Regex>>,
        > = std::sync::LazyLock::new(Default::default);
        match kind {
            "glob" => Ok(Captures::Glob(
                pattern.split('*').map(str::to_string).collect(),
            )),
            "regex" => {
                let mut cache = REGEXES.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(r) = cache.get(pattern) {
                    return Ok(Captures::Regex(r.clone()));
                }
                let r = regex::RegexBuilder::new(pattern)
                    .size_limit(1 << 20)
                    .build()
                    .map_err(|e| datafusion::common::DataFusionError::Execution(e.to_string()))?;
                if cache.len() >= 256 {
                    cache.clear();
                }
                cache.insert(pattern.to_string(), r.clone());
                Ok(Captures::Regex(r))
            }
            other => exec_err!("lw_parse: unknown pattern kind {other}"),
        }
    }
}

/// The capture ranges of a glob's stars in `s`, or `None` when it does not match.
pub fn glob_captures(parts: &[String], s: &str, out: &mut Vec<(usize, usize)>) -> bool {
    out.clear();
    let Some((first, rest)) = parts.split_first() else {
        return false;
    };
    let mut pos = match first.as_str() {
        "" => 0,
        first => match s.find(first) {
            Some(at) => at + first.len(),
            None => return false,
        },
    };
    // Fields split by one repeated byte (`* * * *`, a space-delimited log line): one SIMD scan
    // finds every separator.
    let (seps, tail) = match rest.split_last() {
        Some((last, init)) if last.is_empty() => (init, true),
        _ => (rest, false),
    };
    if let Some(b) = seps.first().and_then(|p| match p.as_bytes() {
        [b] if b.is_ascii() => Some(*b),
        _ => None,
    }) {
        if seps.iter().all(|p| p.as_bytes() == [b]) {
            let base = pos;
            let mut found = memchr::memchr_iter(b, &s.as_bytes()[base..]);
            for _ in seps {
                let Some(at) = found.next() else {
                    return false;
                };
                out.push((pos, base + at));
                pos = base + at + 1;
            }
            if tail {
                out.push((pos, s.len()));
            }
            return true;
        }
    }
    for (k, piece) in rest.iter().enumerate() {
        if k + 1 == rest.len() && piece.is_empty() {
            out.push((pos, s.len()));
            pos = s.len();
            continue;
        }
        // A one-byte piece (the space between fields, typically) is a byte scan: fields are
        // short, so a plain loop beats setting up a searcher for each.
        let found = match piece.as_bytes() {
            [b] if b.is_ascii() => s.as_bytes()[pos..].iter().position(|c| c == b),
            _ => s[pos..].find(piece.as_str()),
        };
        match found {
            Some(at) => {
                out.push((pos, pos + at));
                pos += at + piece.len();
            }
            None => return false,
        }
    }
    true
}

/// `lw_parse(field, kind, pattern, names...)`: the captures of one `parse` command (`kind`
/// `'glob'` or `'regex'`, all literal), as a struct of its names. Captures named `__...` are
/// matched but not returned (nothing reads them).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ParseFields {
    signature: Signature,
}

impl ParseFields {
    pub fn udf() -> ScalarUDF {
        ScalarUDF::from(ParseFields {
            signature: Signature::variadic_any(ONCE_PER_ROW),
        })
    }

    pub fn call(input: Expr, captures: &Captures, names: &[String]) -> Expr {
        let mut args = vec![input];
        args.extend(captures.literals().map(datafusion::logical_expr::lit));
        args.extend(
            names
                .iter()
                .map(|n| datafusion::logical_expr::lit(n.as_str())),
        );
        ParseFields::udf().call(args)
    }

    /// The names' positions that are returned, and those names.
    fn kept(names: &[String]) -> (Vec<usize>, Vec<String>) {
        (0..names.len())
            .filter(|i| !names[*i].starts_with("__"))
            .map(|i| (i, names[i].clone()))
            .unzip()
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
        datafusion::common::internal_err!(
            "lw_parse's type depends on its names: see return_field_from_args"
        )
    }
    fn return_field_from_args(
        &self,
        args: datafusion::logical_expr::ReturnFieldArgs,
    ) -> Result<FieldRef> {
        let names = args
            .scalar_arguments
            .iter()
            .skip(3)
            .map(|a| match a {
                Some(ScalarValue::Utf8(Some(s)) | ScalarValue::Utf8View(Some(s))) => Ok(s.clone()),
                _ => exec_err!("lw_parse takes literal names"),
            })
            .collect::<Result<Vec<String>>>()?;
        let (_, kept) = ParseFields::kept(&names);
        Ok(Arc::new(Field::new(
            self.name(),
            text_struct(&kept, &DataType::Utf8View),
            true,
        )))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let config = literal_texts(&args.args[1..], "lw_parse")?;
        let [kind, pattern, names @ ..] = config.as_slice() else {
            return exec_err!("lw_parse takes a kind, a pattern and names");
        };
        let captures = Captures::from_literals(kind, pattern)?;
        let (kept, kept_names) = ParseFields::kept(names);
        let input = strings(&args.args[0], rows)?;
        let input = input.as_string::<i32>();
        let n = names.len();
        // Captures are views into the input's bytes: nothing is copied.
        let offsets = input.value_offsets();
        let mut builders: Vec<StringViewBuilder> = kept
            .iter()
            .map(|_| StringViewBuilder::with_capacity(input.len()))
            .collect();
        let blocks: Vec<u32> = builders
            .iter_mut()
            .map(|b| b.append_block(input.values().clone()))
            .collect();
        let mut ranges: Vec<(usize, usize)> = Vec::with_capacity(n);
        let mut locs = match &captures {
            Captures::Regex(r) => Some(r.capture_locations()),
            Captures::Glob(_) => None,
        };
        for i in 0..input.len() {
            let text = if input.is_valid(i) {
                input.value(i)
            } else {
                ""
            };
            let hit = input.is_valid(i)
                && match (&captures, &mut locs) {
                    (Captures::Glob(parts), _) => glob_captures(parts, text, &mut ranges),
                    (Captures::Regex(r), Some(locs)) => {
                        ranges.clear();
                        let found = r.captures_read(locs, text).is_some();
                        if found {
                            ranges.extend((1..=n).map(|g| locs.get(g).unwrap_or((0, 0))));
                        }
                        found
                    }
                    _ => false,
                };
            for ((&g, b), &block) in kept.iter().zip(builders.iter_mut()).zip(&blocks) {
                match ranges.get(g) {
                    Some(&(s, e)) if hit => {
                        let start = offsets[i] as usize + s;
                        // SAFETY: the block is the input's value buffer, `start..start + len`
                        // lies within row i, and both ends are char boundaries of its text.
                        unsafe { b.append_view_unchecked(block, start as u32, (e - s) as u32) }
                    }
                    _ => b.append_null(),
                }
            }
        }
        struct_of(&kept_names, &DataType::Utf8View, builders, input.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(glob: &str, s: &str) -> Option<Vec<String>> {
        let parts: Vec<String> = glob.split('*').map(str::to_string).collect();
        let mut out = Vec::new();
        glob_captures(&parts, s, &mut out)
            .then(|| out.iter().map(|&(a, b)| s[a..b].to_string()).collect())
    }

    #[test]
    fn glob_captures_are_lazy_unanchored_and_the_last_star_takes_the_rest() {
        assert_eq!(
            caps(
                "[*] * The error was: *",
                "2024-05-19 [ERROR] {\"a\":1} The error was: Db x"
            ),
            Some(vec!["ERROR".into(), "{\"a\":1}".into(), "Db x".into()])
        );
        assert_eq!(
            caps("a=* b=*;", "a=1 b=2;3;"),
            Some(vec!["1".into(), "2".into()])
        );
        assert_eq!(caps("*:*", "k:v:w"), Some(vec!["k".into(), "v:w".into()]));
        assert_eq!(caps("x=*", "no match"), None);
        assert_eq!(caps("a * c", "a b"), None);
        // Fields split by one repeated byte take the scan for it.
        let v = |xs: &[&str]| Some(xs.iter().map(|x| x.to_string()).collect::<Vec<String>>());
        assert_eq!(caps("* * *", "a b c d"), v(&["a", "b", "c d"]));
        assert_eq!(caps("* * *", "a b"), None);
        assert_eq!(caps("* * ", "a b c"), v(&["a", "b"]));
        assert_eq!(caps("x * *", "pre x a b c"), v(&["a", "b c"]));
        assert_eq!(caps("*,*,*", "a,,b"), v(&["a", "", "b"]));
        assert_eq!(caps("*,*,*", "a,b"), None);
        assert_eq!(caps("* *", " x"), v(&["", "x"]));
    }
}

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
    fn key(&self) -> String {
        match self {
            Captures::Glob(parts) => format!("glob:{}", parts.join("*")),
            Captures::Regex(r) => format!("regex:{}", r.as_str()),
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

/// `lw_parse(field)`: the captures of one `parse` command, as a struct of its names.
#[derive(Debug)]
pub struct ParseFields {
    captures: Captures,
    names: Vec<String>,
    /// The captures the query reads (by position) and their names: only these are built.
    kept: Vec<usize>,
    kept_names: Vec<String>,
    signature: Signature,
}

impl PartialEq for ParseFields {
    fn eq(&self, o: &Self) -> bool {
        self.captures.key() == o.captures.key() && self.names == o.names
    }
}
impl Eq for ParseFields {}
impl Hash for ParseFields {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.captures.key().hash(h);
        self.names.hash(h);
    }
}

impl ParseFields {
    /// Captures named `__...` are matched but not returned (nothing reads them).
    pub fn udf(captures: Captures, names: Vec<String>) -> ScalarUDF {
        let kept: Vec<usize> = (0..names.len())
            .filter(|i| !names[*i].starts_with("__"))
            .collect();
        let kept_names = kept.iter().map(|i| names[*i].clone()).collect();
        ScalarUDF::from(ParseFields {
            captures,
            names,
            kept,
            kept_names,
            signature: Signature::any(1, ONCE_PER_ROW),
        })
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
        Ok(text_struct(&self.kept_names, &DataType::Utf8View))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let input = strings(&args.args[0], rows)?;
        let input = input.as_string::<i32>();
        let n = self.names.len();
        // Captures are views into the input's bytes: nothing is copied.
        let offsets = input.value_offsets();
        let mut builders: Vec<StringViewBuilder> = self
            .kept
            .iter()
            .map(|_| StringViewBuilder::with_capacity(input.len()))
            .collect();
        let blocks: Vec<u32> = builders
            .iter_mut()
            .map(|b| b.append_block(input.values().clone()))
            .collect();
        let mut ranges: Vec<(usize, usize)> = Vec::with_capacity(n);
        let mut locs = match &self.captures {
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
                && match (&self.captures, &mut locs) {
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
            for ((&g, b), &block) in self.kept.iter().zip(builders.iter_mut()).zip(&blocks) {
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
        struct_of(&self.kept_names, &DataType::Utf8View, builders, input.len())
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

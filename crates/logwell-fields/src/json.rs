//! The wanted paths of one JSON message, found in a single forward pass over its bytes: keys are
//! matched as they come, values under other keys are skipped by scanning for their end without
//! being parsed or validated, and captured strings and integers are borrowed from the message.
//!
//! Written by hand because it is the hot loop of every query on fresh JSON logs and of field
//! columns: on 127-byte application lines serde_json's visitor (which parses every skipped
//! value) took 315 ns per line for one path and sonic-rs's lazy iterators 460 ns (also with
//! AVX2), where this takes a fraction of that (`fields-bench`). Malformed JSON keeps what was
//! found before the fault; only escaped strings go through serde_json.

use crate::{number, PathSet};
use std::borrow::Cow;
use std::fmt::Write;

/// What to do with the value under one key or index.
enum Step {
    Capture(usize),
    Descend(Option<usize>),
    Skip,
}

/// A cursor over a message's bytes. Every method returns `None` on malformed input, which ends
/// the walk.
struct Cursor<'m> {
    text: &'m str,
    at: usize,
}

impl<'m> Cursor<'m> {
    fn peek(&mut self) -> Option<u8> {
        let bytes = self.text.as_bytes();
        while let Some(&b) = bytes.get(self.at) {
            if !matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
                return Some(b);
            }
            self.at += 1;
        }
        None
    }

    fn eat(&mut self, want: u8) -> Option<()> {
        (self.peek()? == want).then(|| self.at += 1)
    }

    /// A string at the cursor, its quotes included; and whether it has escapes.
    fn raw_string(&mut self) -> Option<(&'m str, bool)> {
        let bytes = self.text.as_bytes();
        let start = self.at;
        debug_assert_eq!(bytes[start], b'"');
        let mut i = start + 1;
        let mut escaped = false;
        loop {
            match *bytes.get(i)? {
                b'"' => break,
                b'\\' => {
                    escaped = true;
                    i += 2;
                }
                _ => i += 1,
            }
        }
        self.at = i + 1;
        Some((&self.text[start..=i], escaped))
    }

    /// A string's text, unquoted (escapes decoded, which copies).
    fn string(&mut self) -> Option<Cow<'m, str>> {
        let (raw, escaped) = self.raw_string()?;
        if escaped {
            serde_json::from_str::<String>(raw).ok().map(Cow::Owned)
        } else {
            Some(Cow::Borrowed(&raw[1..raw.len() - 1]))
        }
    }

    /// The members of the object or array at the cursor (between `open` and `close`, separated
    /// by commas), each read by `each` with its index.
    fn items(
        &mut self,
        open: u8,
        close: u8,
        mut each: impl FnMut(&mut Self, usize) -> Option<()>,
    ) -> Option<()> {
        self.eat(open)?;
        if self.peek()? == close {
            self.at += 1;
            return Some(());
        }
        for i in 0usize.. {
            each(self, i)?;
            match self.peek()? {
                b',' => self.at += 1,
                b if b == close => {
                    self.at += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
        Some(())
    }

    /// The value at the cursor, whatever it is, passed over.
    fn skip(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => self.raw_string().map(|_| ()),
            b'{' | b'[' => {
                let bytes = self.text.as_bytes();
                let mut depth = 0usize;
                loop {
                    match *bytes.get(self.at)? {
                        b'"' => {
                            self.raw_string()?;
                            continue;
                        }
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => {
                            depth -= 1;
                            if depth == 0 {
                                self.at += 1;
                                return Some(());
                            }
                        }
                        _ => {}
                    }
                    self.at += 1;
                }
            }
            _ => self.bare().map(|_| ()),
        }
    }

    /// A number, `true`, `false` or `null` at the cursor.
    fn bare(&mut self) -> Option<&'m str> {
        let bytes = self.text.as_bytes();
        let start = self.at;
        while let Some(b) = bytes.get(self.at) {
            if matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r') {
                break;
            }
            self.at += 1;
        }
        (self.at > start).then(|| &self.text[start..self.at])
    }

    /// A leaf value as Insights shows it: strings unquoted, numbers as CloudWatch prints them
    /// (integers as written, others through [`number`]), booleans as written; null and
    /// containers are absent (and passed over). `Err` on malformed input.
    fn scalar(&mut self) -> Result<Option<Cow<'m, str>>, ()> {
        match self.peek().ok_or(())? {
            b'"' => self.string().map(Some).ok_or(()),
            b'{' | b'[' => self.skip().map(|_| None).ok_or(()),
            _ => {
                let raw = self.bare().ok_or(())?;
                match raw {
                    "true" | "false" => Ok(Some(Cow::Borrowed(raw))),
                    "null" => Ok(None),
                    _ => number_text(raw).map(Some).ok_or(()),
                }
            }
        }
    }
}

/// A JSON number's text as CloudWatch prints it, or `None` if `raw` is not a number.
fn number_text(raw: &str) -> Option<Cow<'_, str>> {
    let digits = raw.strip_prefix('-').unwrap_or(raw);
    let integer = !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit());
    if integer && raw != "-0" && (raw.parse::<i64>().is_ok() || raw.parse::<u64>().is_ok()) {
        return Some(Cow::Borrowed(raw));
    }
    // JSON's grammar, which Rust's float syntax is wider than (`inf`, `+1`, `.5`).
    let first = digits.bytes().next()?;
    if !first.is_ascii_digit() || !raw.bytes().all(|b| b"0123456789+-.eE".contains(&b)) {
        return None;
    }
    raw.parse::<f64>().ok().map(|v| Cow::Owned(number(v)))
}

impl PathSet {
    fn step(&self, full: &str) -> Step {
        let leaf = self.leaves.iter().find(|(l, _)| l == full).map(|(_, i)| *i);
        if self.prefixes.iter().any(|p| p == full) {
            Step::Descend(leaf)
        } else if let Some(i) = leaf {
            Step::Capture(i)
        } else {
            Step::Skip
        }
    }

    /// Fills `out` from the JSON object that starts `json`.
    pub(crate) fn walk<'m>(&self, json: &'m str, out: &mut [Option<Cow<'m, str>>]) {
        let mut cursor = Cursor { text: json, at: 0 };
        let _ = self.object(&mut cursor, &mut String::new(), false, out);
    }

    /// Walks the object at the cursor, whose own path is `prefix`. `dotted`: under a key with a
    /// dot in it (`{"a.b": 1}`), where a value only fills a slot that the nested path (`{"a":
    /// {"b": 1}}`, what `$.a.b` selects) left empty.
    fn object<'m>(
        &self,
        c: &mut Cursor<'m>,
        prefix: &mut String,
        dotted: bool,
        out: &mut [Option<Cow<'m, str>>],
    ) -> Option<()> {
        let base = prefix.len();
        c.items(b'{', b'}', |c, _| {
            if c.peek()? != b'"' {
                return None;
            }
            let key = c.string()?;
            c.eat(b':')?;
            // Top-level keys (most of what a log line has) are matched as they are; nested ones
            // by their dotted path.
            if base == 0 {
                let visited = self.value(c, &key, &key, prefix, dotted, out);
                prefix.clear();
                return visited;
            }
            prefix.push('.');
            prefix.push_str(&key);
            let path = std::mem::take(prefix);
            let visited = self.value(c, &path, &key, prefix, dotted, out);
            *prefix = path;
            prefix.truncate(base);
            visited
        })
    }

    fn array<'m>(
        &self,
        c: &mut Cursor<'m>,
        prefix: &mut String,
        dotted: bool,
        out: &mut [Option<Cow<'m, str>>],
    ) -> Option<()> {
        let base = prefix.len();
        c.items(b'[', b']', |c, i| {
            if base > 0 {
                prefix.push('.');
            }
            let _ = write!(prefix, "{i}");
            let path = std::mem::take(prefix);
            let visited = self.value(c, &path, "", prefix, dotted, out);
            *prefix = path;
            prefix.truncate(base);
            visited
        })
    }

    /// The value at the cursor, under `key` (empty for an array element), whose path is `path`;
    /// `scratch` is spare room for the paths below it.
    #[allow(clippy::too_many_arguments)]
    fn value<'m>(
        &self,
        c: &mut Cursor<'m>,
        path: &str,
        key: &str,
        scratch: &mut String,
        dotted: bool,
        out: &mut [Option<Cow<'m, str>>],
    ) -> Option<()> {
        let step = self.step(path);
        if matches!(step, Step::Skip) {
            return c.skip();
        }
        let dotted = dotted || key.contains('.');
        let fill = |out: &mut [Option<Cow<'m, str>>], slot: usize, v: Option<Cow<'m, str>>| {
            if !dotted || out[slot].is_none() {
                out[slot] = v;
            }
        };
        match step {
            // A container under a wanted name is absent (JSON keys are unique in practice, so a
            // container there holds no other wanted path).
            Step::Capture(slot) => fill(out, slot, c.scalar().ok()?),
            Step::Descend(capture) => match c.peek()? {
                b'{' => {
                    scratch.clear();
                    scratch.push_str(path);
                    self.object(c, scratch, dotted, out)?
                }
                b'[' => {
                    scratch.clear();
                    scratch.push_str(path);
                    self.array(c, scratch, dotted, out)?
                }
                // A scalar where containers were expected: kept if its own path is wanted.
                _ => {
                    let v = c.scalar().ok()?;
                    if let Some(slot) = capture {
                        fill(out, slot, v);
                    }
                }
            },
            Step::Skip => c.skip()?,
        }
        Some(())
    }
}

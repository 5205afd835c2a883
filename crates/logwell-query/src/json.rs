//! Field discovery in JSON log lines: the flattened paths (`a.b.c`, arrays as `a.0`) a query asks
//! for, pulled out of each message in one pass that skips everything else.

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::collections::{HashMap, HashSet};
use std::fmt;

/// The flattened paths one query reads, compiled for matching while walking a message.
#[derive(Debug, Clone)]
pub struct PathSet {
    leaves: HashMap<String, usize>,
    prefixes: HashSet<String>,
    len: usize,
}

impl PathSet {
    pub fn new<S: AsRef<str>>(paths: &[S]) -> PathSet {
        let mut leaves = HashMap::new();
        let mut prefixes = HashSet::new();
        for (i, p) in paths.iter().enumerate() {
            let p = p.as_ref();
            leaves.entry(p.to_string()).or_insert(i);
            for (at, _) in p.match_indices('.') {
                prefixes.insert(p[..at].to_string());
            }
        }
        PathSet {
            leaves,
            prefixes,
            len: paths.len(),
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Fills `out[i]` with the text of path `i` in `message` (strings unquoted, numbers and
    /// booleans as written, null and containers as absent). Non-JSON messages leave `out` empty.
    pub fn extract(&self, message: &str, out: &mut [Option<String>]) {
        out.iter_mut().for_each(|o| *o = None);
        let trimmed = message.trim_start();
        if !trimmed.starts_with('{') {
            return;
        }
        let mut de = serde_json::Deserializer::from_str(trimmed);
        let mut prefix = String::new();
        let walker = Walker {
            set: self,
            prefix: &mut prefix,
            out,
            capture: None,
        };
        // A malformed tail keeps what was found before it.
        let _ = walker.deserialize(&mut de);
    }
}

struct Walker<'a> {
    set: &'a PathSet,
    prefix: &'a mut String,
    out: &'a mut [Option<String>],
    /// The slot to fill if the value turns out to be a scalar (a path that is both wanted and
    /// the prefix of another wanted path).
    capture: Option<usize>,
}

impl<'de> DeserializeSeed<'de> for Walker<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

/// What to do with the value under one key or index.
enum Step {
    Capture(usize),
    Descend(Option<usize>),
    Skip,
}

impl Walker<'_> {
    fn step(&self, full: &str) -> Step {
        let leaf = self.set.leaves.get(full).copied();
        if self.set.prefixes.contains(full) {
            Step::Descend(leaf)
        } else if let Some(i) = leaf {
            Step::Capture(i)
        } else {
            Step::Skip
        }
    }
}

impl<'de> Visitor<'de> for Walker<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
        let base = self.prefix.len();
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if base > 0 {
                self.prefix.push('.');
            }
            self.prefix.push_str(&key);
            self.visit_entry(&mut map)?;
            self.prefix.truncate(base);
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let base = self.prefix.len();
        let mut i = 0usize;
        loop {
            if base > 0 {
                self.prefix.push('.');
            }
            self.prefix.push_str(itoa_usize(i).as_str());
            let more = match self.step(self.prefix.as_str()) {
                Step::Capture(slot) => match seq.next_element::<Scalar>()? {
                    Some(v) => {
                        self.out[slot] = v.0;
                        true
                    }
                    None => false,
                },
                Step::Descend(capture) => seq
                    .next_element_seed(Walker {
                        set: self.set,
                        prefix: self.prefix,
                        out: self.out,
                        capture,
                    })?
                    .is_some(),
                Step::Skip => seq.next_element::<IgnoredAny>()?.is_some(),
            };
            self.prefix.truncate(base);
            if !more {
                return Ok(());
            }
            i += 1;
        }
    }

    // A scalar where containers were expected: kept only if its own path is wanted.
    fn visit_bool<E>(self, v: bool) -> Result<(), E> {
        self.scalar(|| v.to_string());
        Ok(())
    }
    fn visit_i64<E>(self, v: i64) -> Result<(), E> {
        self.scalar(|| v.to_string());
        Ok(())
    }
    fn visit_u64<E>(self, v: u64) -> Result<(), E> {
        self.scalar(|| v.to_string());
        Ok(())
    }
    fn visit_f64<E>(self, v: f64) -> Result<(), E> {
        self.scalar(|| crate::format::number(v));
        Ok(())
    }
    fn visit_str<E>(self, v: &str) -> Result<(), E> {
        self.scalar(|| v.to_string());
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
}

impl Walker<'_> {
    fn scalar(self, text: impl FnOnce() -> String) {
        if let Some(slot) = self.capture {
            self.out[slot] = Some(text());
        }
    }

    fn visit_entry<'de, A: MapAccess<'de>>(&mut self, map: &mut A) -> Result<(), A::Error> {
        match self.step(self.prefix.as_str()) {
            Step::Capture(slot) => {
                let v: Scalar = map.next_value()?;
                // A container under a wanted name may still hold other wanted paths; JSON keys
                // are unique in practice, so capturing the scalar is enough.
                self.out[slot] = v.0;
            }
            Step::Descend(capture) => map.next_value_seed(Walker {
                set: self.set,
                prefix: self.prefix,
                out: self.out,
                capture,
            })?,
            Step::Skip => {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

fn itoa_usize(i: usize) -> String {
    i.to_string()
}

/// A leaf value as Insights shows it; containers and null are absent.
struct Scalar(Option<String>);

impl<'de> de::Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Scalar, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_bool<E>(self, v: bool) -> Result<Scalar, E> {
                Ok(Scalar(Some(v.to_string())))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar(Some(v.to_string())))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar(Some(v.to_string())))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Scalar, E> {
                Ok(Scalar(Some(crate::format::number(v))))
            }
            fn visit_str<E>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar(Some(v.to_string())))
            }
            fn visit_string<E>(self, v: String) -> Result<Scalar, E> {
                Ok(Scalar(Some(v)))
            }
            fn visit_unit<E>(self) -> Result<Scalar, E> {
                Ok(Scalar(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Scalar, A::Error> {
                while m.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Scalar(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Scalar, A::Error> {
                while s.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Scalar(None))
            }
        }
        d.deserialize_any(V)
    }
}

/// Every flattened leaf path of a JSON message with its text, in key order (for
/// GetLogRecord and field listings). At most `max` fields, as CloudWatch caps discovery.
pub fn flatten(message: &str, max: usize) -> Vec<(String, String)> {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(message.trim()) else {
        return Vec::new();
    };
    if !v.is_object() {
        return Vec::new();
    }
    let mut out = Vec::new();
    fn walk(v: &serde_json::Value, path: &mut String, out: &mut Vec<(String, String)>, max: usize) {
        use serde_json::Value;
        if out.len() >= max {
            return;
        }
        let base = path.len();
        let child = |key: &str, v: &Value, path: &mut String, out: &mut Vec<(String, String)>| {
            if base > 0 {
                path.push('.');
            }
            path.push_str(key);
            walk(v, path, out, max);
            path.truncate(base);
        };
        match v {
            Value::Object(m) => m.iter().for_each(|(k, v)| child(k, v, path, out)),
            Value::Array(a) => a
                .iter()
                .enumerate()
                .for_each(|(i, v)| child(&i.to_string(), v, path, out)),
            Value::Null => {}
            Value::String(s) => out.push((path.clone(), s.clone())),
            Value::Bool(b) => out.push((path.clone(), b.to_string())),
            Value::Number(n) => out.push((path.clone(), n.to_string())),
        }
    }
    walk(&v, &mut String::new(), &mut out, max);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(msg: &str, paths: &[&str]) -> Vec<Option<String>> {
        let set = PathSet::new(paths);
        let mut out = vec![None; paths.len()];
        set.extract(msg, &mut out);
        out
    }

    #[test]
    fn nested_keys_and_arrays_flatten_with_dots() {
        let msg = r#"{"level":"ERROR","http":{"status":503,"path":"/a"},"items":[{"id":"i-1"},{"id":"i-2"}],"ok":true,"n":null,"f":1.5}"#;
        assert_eq!(
            get(
                msg,
                &[
                    "level",
                    "http.status",
                    "items.1.id",
                    "ok",
                    "n",
                    "f",
                    "http",
                    "missing"
                ]
            ),
            vec![
                Some("ERROR".into()),
                Some("503".into()),
                Some("i-2".into()),
                Some("true".into()),
                None,
                Some("1.5".into()),
                None,
                None
            ]
        );
    }

    #[test]
    fn json_in_a_string_is_a_leaf_and_non_json_has_no_fields() {
        let msg = r#"{"data":"{\"startTime\":1}"}"#;
        assert_eq!(get(msg, &["data.startTime", "data"])[0], None);
        assert_eq!(get(msg, &["data"])[0].as_deref(), Some("{\"startTime\":1}"));
        assert_eq!(get("plain text line", &["a"]), vec![None]);
        assert_eq!(get(r#"{"a": 1, "b": "#, &["a"]), vec![Some("1".into())]);
    }

    #[test]
    fn flatten_lists_every_leaf() {
        let f = flatten(r#"{"a":{"b":[1,{"c":"x"}]},"d":false}"#, 200);
        assert_eq!(
            f,
            vec![
                ("a.b.0".to_string(), "1".to_string()),
                ("a.b.1.c".to_string(), "x".to_string()),
                ("d".to_string(), "false".to_string())
            ]
        );
    }
}

//! Space-delimited patterns: `[ip, user, ..., status = 4*, bytes > 1000]`.
//!
//! The event is split on spaces; text in `[...]` or `"..."` counts as one field (without the
//! brackets or quotes). A leading `...` aligns the named fields with the end of the event; the last
//! field takes whatever is left over, which is why AWS asks for a trailing blank indicator.

use crate::{compile_regex, glob_match, PatternError};

#[derive(Debug, Clone)]
pub struct Pattern {
    leading_ellipsis: bool,
    fields: Vec<Field>,
}

#[derive(Debug, Clone)]
struct Field {
    name: String,
    /// Alternatives (`||`) of conjunctions (`&&`) of conditions.
    any_of: Vec<Vec<Cond>>,
}

#[derive(Debug, Clone)]
struct Cond {
    op: &'static str,
    value: Value,
}

#[derive(Debug, Clone)]
enum Value {
    Text(String),
    Regex(regex::Regex),
}

impl Cond {
    fn holds(&self, field: &str) -> bool {
        match &self.value {
            Value::Regex(r) => (self.op == "=") == r.is_match(field),
            Value::Text(t) => {
                if let (Ok(want), Ok(got)) = (t.parse::<f64>(), field.parse::<f64>()) {
                    return match self.op {
                        "=" => got == want,
                        "!=" => got != want,
                        "<" => got < want,
                        "<=" => got <= want,
                        ">" => got > want,
                        _ => got >= want,
                    };
                }
                match self.op {
                    "=" => glob_match(t, field),
                    "!=" => !glob_match(t, field),
                    _ => false,
                }
            }
        }
    }
}

/// Splits an event into fields.
pub fn split_fields(message: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let b = message.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b' ' {
            i += 1;
            continue;
        }
        let close = match b[i] {
            b'[' => Some(b']'),
            b'"' => Some(b'"'),
            _ => None,
        };
        if let Some(close) = close {
            if let Some(end) = b[i + 1..].iter().position(|c| *c == close) {
                out.push(&message[i + 1..i + 1 + end]);
                i += end + 2;
                continue;
            }
        }
        let end = b[i..]
            .iter()
            .position(|c| *c == b' ')
            .map_or(b.len(), |e| i + e);
        out.push(&message[i..end]);
        i = end;
    }
    out
}

impl Pattern {
    pub fn matches(&self, message: &str) -> bool {
        self.extract(message).is_some()
    }

    /// The names of the pattern's fields (`$name` in metric filters).
    pub fn field_names(&self) -> Vec<&str> {
        self.fields.iter().map(|f| f.name.as_str()).collect()
    }

    /// The named fields' values (keyed `$name`) when the message matches.
    pub fn extract(&self, message: &str) -> Option<Vec<(String, String)>> {
        let fields = split_fields(message);
        let n = self.fields.len();
        if fields.len() < n {
            return None;
        }
        let start = if self.leading_ellipsis {
            fields.len() - n
        } else {
            0
        };
        let mut out = Vec::with_capacity(n);
        for (k, f) in self.fields.iter().enumerate() {
            let value: String = if k == n - 1 && !self.leading_ellipsis && fields.len() > n {
                // The last field takes the rest of the event.
                let first = fields[start + k];
                let offset = first.as_ptr() as usize - message.as_ptr() as usize;
                message[offset..].trim_end_matches([']', '"']).to_string()
            } else {
                fields[start + k].to_string()
            };
            if !f.any_of.is_empty()
                && !f
                    .any_of
                    .iter()
                    .any(|all| all.iter().all(|c| c.holds(&value)))
            {
                return None;
            }
            out.push((format!("${}", f.name), value));
        }
        Some(out)
    }
}

fn parse_cond(text: &str) -> Result<Option<Cond>, PatternError> {
    let text = text.trim();
    for op in ["!=", ">=", "<=", "=", ">", "<"] {
        if let Some(i) = text.find(op) {
            let value = text[i + op.len()..].trim();
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value);
            let value = match value.strip_prefix('%').and_then(|v| v.strip_suffix('%')) {
                Some(re) => Value::Regex(compile_regex(re)?),
                None => Value::Text(value.to_string()),
            };
            return Ok(Some(Cond { op, value }));
        }
    }
    Ok(None)
}

pub fn parse(pattern: &str) -> Result<Pattern, PatternError> {
    let inner = pattern
        .strip_prefix('[')
        .and_then(|p| p.strip_suffix(']'))
        .ok_or_else(|| {
            PatternError::Syntax("a space-delimited pattern must be enclosed in [ ]".into())
        })?;
    let mut leading_ellipsis = false;
    let mut fields = Vec::new();
    for (i, part) in inner.split(',').enumerate() {
        let part = part.trim();
        if part == "..." {
            if i != 0 {
                return Err(PatternError::Syntax(
                    "'...' is supported only as the first field".into(),
                ));
            }
            leading_ellipsis = true;
            continue;
        }
        if part.is_empty() {
            return Err(PatternError::Syntax(format!("field {} is empty", i + 1)));
        }
        let name = part
            .split(|c: char| "!=<>|&".contains(c))
            .next()
            .unwrap_or(part)
            .trim()
            .to_string();
        let mut any_of = Vec::new();
        for alt in part.split("||") {
            let mut all = Vec::new();
            for c in alt.split("&&") {
                if let Some(cond) = parse_cond(c)? {
                    all.push(cond);
                }
            }
            if !all.is_empty() {
                any_of.push(all);
            }
        }
        fields.push(Field { name, any_of });
    }
    if fields.is_empty() {
        return Err(PatternError::Syntax(
            "a space-delimited pattern needs at least one field".into(),
        ));
    }
    Ok(Pattern {
        leading_ellipsis,
        fields,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brackets_and_quotes_make_one_field() {
        let e = r#"127.0.0.1 Prod frank [10/Oct/2000:13:25:15 -0700] "GET /index.html HTTP/1.0" 404 1534"#;
        assert_eq!(
            split_fields(e),
            [
                "127.0.0.1",
                "Prod",
                "frank",
                "10/Oct/2000:13:25:15 -0700",
                "GET /index.html HTTP/1.0",
                "404",
                "1534"
            ]
        );
    }
}

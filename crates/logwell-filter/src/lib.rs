//! The CloudWatch Logs filter-pattern language: parses a pattern once and matches messages with it.
//!
//! Four syntaxes, as AWS documents them:
//! - terms: plain terms (all must appear), quoted phrases, `?term` alternatives (any must
//!   appear), `-term` exclusions; case-sensitive substring matching;
//! - `%regex%`: a restricted regular expression (no groups);
//! - JSON: `{ $.a.b[0] = "x*" && ($.n > 5 || $.c NOT EXISTS) }`, with `IS NULL`, `IS TRUE`,
//!   `IS FALSE`, wildcards and `%regex%` values;
//! - space-delimited: `[ip, user, ..., status = 4*, bytes > 1000]`.
//!
//! ```
//! let p = logwell_filter::FilterPattern::parse("ERROR -ARGUMENTS").unwrap();
//! assert!(p.matches("[ERROR 400] BAD REQUEST"));
//! assert!(!p.matches("[ERROR 420] INVALID ARGUMENTS"));
//! let j = logwell_filter::FilterPattern::parse(r#"{ $.user.id = 1 && $.actions[0] = "GET" }"#).unwrap();
//! assert!(j.matches(r#"{"user": {"id": 1}, "actions": ["GET"]}"#));
//! ```

mod delimited;
mod json;
pub use json::{Necessary, Op as CompareOp};
mod terms;

use thiserror::Error;

/// Why a pattern was refused; the message is what InvalidParameterException carries.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum PatternError {
    #[error("Invalid filter pattern: unterminated quoted phrase starting at character {0}")]
    UnterminatedQuote(usize),
    #[error("Invalid filter pattern: length {0} exceeds 1024 characters")]
    TooLong(usize),
    #[error("Invalid filter pattern: {0}")]
    Syntax(String),
    #[error("Invalid filter pattern: invalid regular expression {0}")]
    Regex(String),
    #[error("Invalid filter pattern: at most 2 regular expressions are allowed in one pattern")]
    TooManyRegexes,
}

#[derive(Debug, Clone)]
enum Kind {
    Terms(terms::Terms),
    Regex(regex::Regex),
    Json(json::Expr),
    Delimited(delimited::Pattern),
}

/// A compiled filter pattern.
#[derive(Debug, Clone)]
pub struct FilterPattern {
    kind: Kind,
}

/// Characters AWS allows inside `%regex%` (besides ASCII alphanumerics).
const REGEX_SYMBOLS: &str = ":_#=@/;,-^$?[]{}|\\*+. ";

/// Compiles a `%...%` body with AWS's restrictions: no groups, ASCII only.
pub(crate) fn compile_regex(body: &str) -> Result<regex::Regex, PatternError> {
    if let Some(c) = body
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || REGEX_SYMBOLS.contains(*c)))
    {
        return Err(PatternError::Regex(format!(
            "%{body}%: character '{c}' is not supported"
        )));
    }
    regex::RegexBuilder::new(body)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| PatternError::Regex(format!("%{body}%: {e}")))
}

impl FilterPattern {
    /// Parses a pattern; an empty or blank pattern matches everything.
    pub fn parse(pattern: &str) -> Result<Self, PatternError> {
        let len = pattern.chars().count();
        if len > 1024 {
            return Err(PatternError::TooLong(len));
        }
        let trimmed = pattern.trim();
        if trimmed.matches('%').count() / 2 > 2 {
            return Err(PatternError::TooManyRegexes);
        }
        let kind = if trimmed.starts_with('{') {
            Kind::Json(json::parse(trimmed)?)
        } else if trimmed.starts_with('[') {
            Kind::Delimited(delimited::parse(trimmed)?)
        } else if trimmed.len() > 1 && trimmed.starts_with('%') && trimmed.ends_with('%') {
            Kind::Regex(compile_regex(&trimmed[1..trimmed.len() - 1])?)
        } else {
            Kind::Terms(terms::parse(pattern)?)
        };
        Ok(FilterPattern { kind })
    }

    /// For JSON patterns, a test on flattened fields that every matching message passes.
    pub fn necessary(&self) -> Option<json::Necessary> {
        match &self.kind {
            Kind::Json(e) => Some(e.necessary()),
            _ => None,
        }
    }

    /// Whether this is a JSON pattern (`{ ... }`), whose metric values may name any `$.path`.
    pub fn is_json(&self) -> bool {
        matches!(&self.kind, Kind::Json(_))
    }

    /// The fields a space-delimited pattern names (None for other kinds).
    pub fn delimited_fields(&self) -> Option<Vec<&str>> {
        match &self.kind {
            Kind::Delimited(p) => Some(p.field_names()),
            _ => None,
        }
    }

    /// True when the pattern matches every message.
    pub fn matches_all(&self) -> bool {
        matches!(&self.kind, Kind::Terms(t) if t.is_empty())
    }

    /// Whether a message matches.
    pub fn matches(&self, message: &str) -> bool {
        match &self.kind {
            Kind::Terms(t) => t.matches(message),
            Kind::Regex(r) => r.is_match(message),
            Kind::Json(e) => match serde_json::from_str::<serde_json::Value>(message) {
                Ok(v) => e.eval(&v),
                Err(_) => false,
            },
            Kind::Delimited(p) => p.matches(message),
        }
    }
}

impl FilterPattern {
    /// For a matching message, the values the pattern names, as TestMetricFilter shows them:
    /// `$field` for space-delimited patterns, `$.path` for JSON ones; `None` when it does not match.
    pub fn extract(&self, message: &str) -> Option<Vec<(String, String)>> {
        match &self.kind {
            Kind::Delimited(p) => p.extract(message),
            Kind::Json(e) => {
                let v = serde_json::from_str::<serde_json::Value>(message).ok()?;
                if !e.eval(&v) {
                    return None;
                }
                let mut out = Vec::new();
                e.extract(&v, &mut out);
                Some(out)
            }
            _ => self.matches(message).then(Vec::new),
        }
    }
}

/// `*` wildcards in a value: any run of characters.
pub(crate) fn glob_match(pattern: &str, text: &str) -> bool {
    if !pattern.contains('*') {
        return pattern == text;
    }
    let parts: Vec<&str> = pattern.split('*').collect();
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extracted_values_are_named_as_aws_shows_them() {
        let p = FilterPattern::parse(
            "[ip, user, username, timestamp, request =*.html*, status_code = 4*, bytes]",
        )
        .unwrap();
        let got = p
            .extract(r#"127.0.0.1 Prod frank [10/Oct/2000:13:25:15 -0700] "GET /index.html HTTP/1.0" 404 1534"#)
            .unwrap();
        let want: Vec<(String, String)> = [
            ("$ip", "127.0.0.1"),
            ("$user", "Prod"),
            ("$username", "frank"),
            ("$timestamp", "10/Oct/2000:13:25:15 -0700"),
            ("$request", "GET /index.html HTTP/1.0"),
            ("$status_code", "404"),
            ("$bytes", "1534"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(got, want);
        let j = FilterPattern::parse("{ $.latency > 5 && $.user.id = * }").unwrap();
        assert_eq!(
            j.extract(r#"{"latency": 12, "user": {"id": "u1"}}"#)
                .unwrap(),
            vec![
                ("$.latency".to_string(), "12".to_string()),
                ("$.user.id".to_string(), "u1".to_string())
            ]
        );
        assert!(j.extract(r#"{"latency": 1}"#).is_none());
        assert_eq!(
            FilterPattern::parse("ERROR").unwrap().extract("an ERROR"),
            Some(vec![])
        );
    }

    #[test]
    fn globs() {
        assert!(glob_match("*", "anything"));
        assert!(glob_match("4*", "404"));
        assert!(glob_match("*.html*", "GET /index.html HTTP/1.0"));
        assert!(!glob_match("*.html*", "GET /index.htm"));
        assert!(glob_match("a*b*c", "aXbYc") && !glob_match("a*b*c", "aXcYb"));
        assert!(!glob_match("ab*ba", "aba"));
    }

    #[test]
    fn regex_restrictions_follow_aws() {
        assert!(FilterPattern::parse("%colou?r%")
            .unwrap()
            .matches("the colour red"));
        assert!(matches!(
            FilterPattern::parse("%something!%"),
            Err(PatternError::Regex(_))
        ));
        assert!(matches!(
            FilterPattern::parse("%(a|b)%"),
            Err(PatternError::Regex(_))
        ));
        assert!(matches!(
            FilterPattern::parse("{ $.a = %x% || $.b = %y% || $.c = %z% }"),
            Err(PatternError::TooManyRegexes)
        ));
    }
}

//! The CloudWatch Logs filter-pattern language: parses a pattern once and matches messages with it.
//!
//! This covers the unstructured (term) syntax: plain terms (all must appear), quoted phrases,
//! `?term` alternatives (any must appear) and `-term` exclusions. Matching is case-sensitive and by
//! substring, as AWS documents. JSON (`{ ... }`), space-delimited (`[ ... ]`) and `%regex%` patterns
//! are refused with an error until they are implemented, never silently mis-matched.
//!
//! ```
//! let p = logwell_filter::FilterPattern::parse("ERROR -ARGUMENTS").unwrap();
//! assert!(p.matches("[ERROR 400] BAD REQUEST"));
//! assert!(!p.matches("[ERROR 420] INVALID ARGUMENTS"));
//! ```

use thiserror::Error;

/// Why a pattern was refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum PatternError {
    #[error("Invalid filter pattern: unterminated quoted phrase starting at character {0}")]
    UnterminatedQuote(usize),
    #[error("Invalid filter pattern: this server does not support {0} patterns yet")]
    Unsupported(&'static str),
    #[error("Invalid filter pattern: length {0} exceeds 1024 characters")]
    TooLong(usize),
}

/// A compiled unstructured filter pattern.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FilterPattern {
    required: Vec<String>,
    any_of: Vec<String>,
    excluded: Vec<String>,
}

impl FilterPattern {
    /// Parses a pattern; an empty or blank pattern matches everything.
    pub fn parse(pattern: &str) -> Result<Self, PatternError> {
        if pattern.chars().count() > 1024 {
            return Err(PatternError::TooLong(pattern.chars().count()));
        }
        let trimmed = pattern.trim();
        if trimmed.starts_with('{') {
            return Err(PatternError::Unsupported("JSON"));
        }
        if trimmed.starts_with('[') {
            return Err(PatternError::Unsupported("space-delimited"));
        }
        if trimmed.starts_with('%') && trimmed.ends_with('%') && trimmed.len() > 1 {
            return Err(PatternError::Unsupported("regular-expression"));
        }
        let mut out = FilterPattern::default();
        let chars: Vec<(usize, char)> = pattern.char_indices().collect();
        let mut i = 0;
        while i < chars.len() {
            let (_, c) = chars[i];
            if c.is_whitespace() {
                i += 1;
                continue;
            }
            let mut kind = ' ';
            if (c == '?' || c == '-') && i + 1 < chars.len() && !chars[i + 1].1.is_whitespace() {
                kind = c;
                i += 1;
            }
            let term = if chars[i].1 == '"' {
                let start = chars[i].0;
                let mut j = i + 1;
                let mut term = String::new();
                while j < chars.len() && chars[j].1 != '"' {
                    if chars[j].1 == '\\' && j + 1 < chars.len() {
                        j += 1;
                    }
                    term.push(chars[j].1);
                    j += 1;
                }
                if j >= chars.len() {
                    return Err(PatternError::UnterminatedQuote(start));
                }
                i = j + 1;
                term
            } else {
                let mut term = String::new();
                while i < chars.len() && !chars[i].1.is_whitespace() {
                    term.push(chars[i].1);
                    i += 1;
                }
                term
            };
            // `" "` (a blank phrase) matches everything, as AWS documents.
            if term.trim().is_empty() {
                continue;
            }
            match kind {
                '?' => out.any_of.push(term),
                '-' => out.excluded.push(term),
                _ => out.required.push(term),
            }
        }
        Ok(out)
    }

    /// True when the pattern matches every message.
    pub fn matches_all(&self) -> bool {
        self.required.is_empty() && self.any_of.is_empty() && self.excluded.is_empty()
    }

    /// Whether a message matches.
    pub fn matches(&self, message: &str) -> bool {
        self.required.iter().all(|t| message.contains(t.as_str()))
            && (self.any_of.is_empty() || self.any_of.iter().any(|t| message.contains(t.as_str())))
            && !self.excluded.iter().any(|t| message.contains(t.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, msg: &str) -> bool {
        FilterPattern::parse(p).unwrap().matches(msg)
    }

    #[test]
    fn documented_term_examples() {
        assert!(m("ERROR", "[ERROR 400] BAD REQUEST"));
        assert!(m("ERROR ARGUMENTS", "[ERROR 419] MISSING ARGUMENTS"));
        assert!(!m("ERROR ARGUMENTS", "[ERROR 400] BAD REQUEST"));
        assert!(m("?ERROR ?ARGUMENTS", "[ERROR 400] BAD REQUEST"));
        assert!(m("?ERROR ?ARGUMENTS", "[ERROR 419] MISSING ARGUMENTS"));
        assert!(!m("?ERROR ?ARGUMENTS", "[INFO] fine"));
        assert!(m(
            "\"INTERNAL SERVER ERROR\"",
            "[ERROR 500] INTERNAL SERVER ERROR"
        ));
        assert!(!m(
            "\"INTERNAL SERVER ERROR\"",
            "[ERROR 500] INTERNAL ERROR SERVER"
        ));
        assert!(m("ERROR -ARGUMENTS", "[ERROR 400] BAD REQUEST"));
        assert!(!m("ERROR -ARGUMENTS", "[ERROR 420] INVALID ARGUMENTS"));
    }

    #[test]
    fn blank_patterns_match_everything_and_case_matters() {
        assert!(m("", "anything"));
        assert!(m("\" \"", "anything"));
        assert!(!m("error", "ERROR"));
    }

    #[test]
    fn unsupported_syntaxes_are_refused() {
        assert!(FilterPattern::parse("{ $.a = 1 }").is_err());
        assert!(FilterPattern::parse("[ip, user]").is_err());
        assert!(FilterPattern::parse("\"open").is_err());
    }
}

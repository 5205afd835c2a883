//! Unstructured patterns: terms, quoted phrases, `?` alternatives and `-` exclusions.

use crate::PatternError;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Terms {
    required: Vec<String>,
    any_of: Vec<String>,
    excluded: Vec<String>,
}

impl Terms {
    pub fn is_empty(&self) -> bool {
        self.required.is_empty() && self.any_of.is_empty() && self.excluded.is_empty()
    }

    pub fn matches(&self, message: &str) -> bool {
        self.required.iter().all(|t| message.contains(t.as_str()))
            && (self.any_of.is_empty() || self.any_of.iter().any(|t| message.contains(t.as_str())))
            && !self.excluded.iter().any(|t| message.contains(t.as_str()))
    }
}

pub fn parse(pattern: &str) -> Result<Terms, PatternError> {
    let mut out = Terms::default();
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

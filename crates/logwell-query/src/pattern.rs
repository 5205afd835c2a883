//! `pattern`: the text structure of log lines. Each line is reduced to a template in which the
//! parts that vary between events of the same kind (timestamps, IP addresses, ids, numbers) are
//! dynamic tokens named by their type and position, `<Time-1> [INFO] stored resource <ID-2>`;
//! lines with the same template form one pattern. Templates that differ only in a few plain
//! words are then merged into one pattern with `<*>` where the words vary
//! (`user <*> logged in`), as CloudWatch shows tokens it cannot type.

use regex::Regex;
use std::collections::HashMap;
use std::sync::OnceLock;

fn token_regex() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        // Alternatives in priority order; the regex crate takes the first that matches at the
        // leftmost position.
        Regex::new(concat!(
            // ISO-8601 and common date-times, or a bare time of day.
            r"(?P<time>\d{4}[-/]\d{2}[-/]\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?|\b\d{2}:\d{2}:\d{2}(?:[.,]\d+)?)",
            r"|(?P<uuid>\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b)",
            r"|(?P<ip>\b\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\b)",
            // Any word with a digit in it: a number, or an id like i-0abc12, u-00042, req42.
            r"|(?P<word>[A-Za-z0-9_.\-]*\d[A-Za-z0-9_.\-]*)",
        ))
        .expect("pattern token regex")
    })
}

/// The dynamic tokens of one line, in order: their type (`Time`, `ID`, `IP`, `Number`) and
/// byte range.
fn dynamic_tokens(line: &str) -> impl Iterator<Item = (&'static str, usize, usize)> + '_ {
    token_regex().captures_iter(line).filter_map(|caps| {
        let m = caps.get(0).expect("whole match");
        let (kind, text) = if let Some(t) = caps.name("time") {
            ("Time", t.as_str())
        } else if let Some(u) = caps.name("uuid") {
            ("ID", u.as_str())
        } else if let Some(ip) = caps.name("ip") {
            ("IP", ip.as_str())
        } else {
            // Punctuation that ends a sentence or joins words is not part of the value.
            let w = m.as_str().trim_end_matches(['.', '-', '_']);
            let w = w.trim_start_matches(['.', '-', '_']);
            if !w.bytes().any(|b| b.is_ascii_digit()) {
                return None;
            }
            let number = w.parse::<f64>().is_ok();
            (if number { "Number" } else { "ID" }, w)
        };
        let start = m.start() + m.as_str().find(text).unwrap_or(0);
        Some((kind, start, start + text.len()))
    })
}

/// The pattern of one line.
pub fn template(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut last = 0;
    for (n, (kind, start, end)) in dynamic_tokens(line).enumerate() {
        out.push_str(&line[last..start]);
        out.push('<');
        out.push_str(kind);
        out.push('-');
        out.push_str(&(n + 1).to_string());
        out.push('>');
        last = end;
    }
    out.push_str(&line[last..]);
    out
}

/// The values of a line's dynamic tokens with their types, in template order.
pub fn token_values(line: &str) -> Vec<(&'static str, &str)> {
    dynamic_tokens(line)
        .map(|(kind, start, end)| (kind, &line[start..end]))
        .collect()
}

/// The wildcard a merged pattern shows where its templates' words differ.
pub const WILDCARD: &str = "<*>";

fn is_typed(token: &str) -> bool {
    ["<Time-", "<ID-", "<IP-", "<Number-"]
        .iter()
        .any(|t| token.contains(t))
}

/// Merges templates (with their event counts) into patterns, returning each template's pattern.
/// Most frequent first, each template joins the first pattern of as many space-separated words
/// that it matches except in plain words (no typed token, no severity word) and that keeps at
/// least half of its words, and two, constant; the words that differ become `<*>`. Typed tokens
/// therefore stay where they were, so per-token statistics of merged templates line up.
pub fn cluster(templates: &[(&str, u64)]) -> Vec<String> {
    let mut order: Vec<usize> = (0..templates.len()).collect();
    order.sort_by(|&a, &b| {
        templates[b]
            .1
            .cmp(&templates[a].1)
            .then(templates[a].0.cmp(templates[b].0))
    });
    let mut clusters: Vec<Vec<String>> = Vec::new();
    // Clusters by word count; a template is compared with at most the first MAX_CANDIDATES of
    // its length (the most frequent), so that many distinct free-text lines stay linear.
    const MAX_CANDIDATES: usize = 256;
    let mut by_len: HashMap<usize, Vec<usize>> = HashMap::new();
    let mut member = vec![0usize; templates.len()];
    for i in order {
        let words: Vec<&str> = templates[i].0.split(' ').collect();
        let candidates = by_len.entry(words.len()).or_default();
        let joined = candidates.iter().take(MAX_CANDIDATES).find_map(|&k| {
            let c = &mut clusters[k];
            let mut differ = Vec::new();
            for (j, (have, w)) in c.iter().zip(&words).enumerate() {
                if have == WILDCARD {
                    if is_typed(w) || severity(w).is_some() {
                        return None;
                    }
                } else if have != w {
                    let plain = |t: &str| !is_typed(t) && severity(t).is_none();
                    if !plain(have) || !plain(w) {
                        return None;
                    }
                    differ.push(j);
                }
            }
            let wild = c.iter().filter(|t| *t == WILDCARD).count() + differ.len();
            let constant = c.len() - wild;
            if constant < 2 || constant * 2 < c.len() {
                return None;
            }
            for j in differ {
                c[j] = WILDCARD.to_string();
            }
            Some(k)
        });
        member[i] = joined.unwrap_or_else(|| {
            clusters.push(words.iter().map(|w| w.to_string()).collect());
            candidates.push(clusters.len() - 1);
            clusters.len() - 1
        });
    }
    member.iter().map(|&k| clusters[k].join(" ")).collect()
}

/// The severity a pattern's text names (`Error`, `Warning`, `Info`, `Debug`), if any.
pub fn severity(text: &str) -> Option<&'static str> {
    let mut best: Option<(usize, &'static str)> = None;
    for word in text.split(|c: char| !c.is_ascii_alphabetic()) {
        let label = match word.to_ascii_uppercase().as_str() {
            "FATAL" | "CRITICAL" | "CRIT" | "ERROR" | "ERR" | "EXCEPTION" | "SEVERE" => {
                (0, "Error")
            }
            "WARN" | "WARNING" => (1, "Warning"),
            "INFO" | "NOTICE" => (2, "Info"),
            "DEBUG" | "TRACE" => (3, "Debug"),
            _ => continue,
        };
        // The most severe word wins: "INFO retrying after ERROR" is an error line.
        if best.is_none_or(|b| label.0 < b.0) {
            best = Some(label);
        }
    }
    best.map(|b| b.1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dynamic_tokens_are_typed_and_numbered() {
        assert_eq!(
            template(
                "2024-05-01T10:00:00.123Z [INFO] Calling DynamoDB to store for resource id r-0042"
            ),
            "<Time-1> [INFO] Calling DynamoDB to store for resource id <ID-2>"
        );
        assert_eq!(
            template("GET /orders/123 from 10.0.0.7 took 12.5 ms."),
            "GET /orders/<Number-1> from <IP-2> took <Number-3> ms."
        );
        assert_eq!(
            template("request 3f2a9c1e-1111-4222-8333-444455556666 done"),
            "request <ID-1> done"
        );
        // Lines of one kind share a template.
        assert_eq!(
            template("user u-00017 logged in at 09:15:02"),
            template("user u-99 logged in at 23:59:59")
        );
        assert_eq!(template("no dynamic parts here"), "no dynamic parts here");
        assert_eq!(
            token_values("GET /orders/123 from 10.0.0.7 took 12.5 ms."),
            vec![("Number", "123"), ("IP", "10.0.0.7"), ("Number", "12.5")]
        );
    }

    #[test]
    fn templates_differing_in_plain_words_merge() {
        let got = cluster(&[
            ("user alice logged in from <IP-1>", 5),
            ("user bob logged in from <IP-1>", 3),
            ("user carol logged out from <IP-1>", 1),
            ("[INFO] job done", 4),
            ("[ERROR] job done", 1),
            ("disk sda full", 2),
            ("disk sdb full", 2),
            ("started x", 1),
            ("started y", 1),
        ]);
        assert_eq!(
            got,
            vec![
                // A third template differing in one more word still keeps four of six words:
                // it joins, and the whole cluster shows the merged pattern.
                "user <*> logged <*> from <IP-1>",
                "user <*> logged <*> from <IP-1>",
                "user <*> logged <*> from <IP-1>",
                "[INFO] job done",
                // A severity word never becomes a wildcard.
                "[ERROR] job done",
                "disk <*> full",
                "disk <*> full",
                // One constant word is not a pattern.
                "started x",
                "started y",
            ]
        );
    }

    #[test]
    fn severity_comes_from_level_words() {
        assert_eq!(severity("<Time-1> [ERROR] failed"), Some("Error"));
        assert_eq!(severity("level=warn disk"), Some("Warning"));
        assert_eq!(severity("INFO retry after Exception"), Some("Error"));
        assert_eq!(severity("GET /information 200"), None);
        assert_eq!(severity("debug: x"), Some("Debug"));
    }
}

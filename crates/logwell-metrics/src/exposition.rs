//! The Prometheus text exposition format (version 0.0.4): families declared once with their
//! help and type, then samples with escaped label values. Written here because the metric
//! filters' series are defined by users at run time; the format itself is a few lines.

use std::fmt::Write;

/// A scrape being written.
#[derive(Default)]
pub struct Exposition {
    out: String,
}

/// Prometheus metric types used here.
#[derive(Clone, Copy)]
pub enum Kind {
    Counter,
    Gauge,
    Summary,
}

impl Exposition {
    /// Starts a family.
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) -> &mut Self {
        let kind = match kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Summary => "summary",
        };
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        self
    }

    /// One sample of the family started last (or of its `_sum` / `_count` series).
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) -> &mut Self {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{}=\"", label_name(k));
                for c in v.chars() {
                    match c {
                        '\\' => self.out.push_str("\\\\"),
                        '"' => self.out.push_str("\\\""),
                        '\n' => self.out.push_str("\\n"),
                        c => self.out.push(c),
                    }
                }
                self.out.push('"');
            }
            self.out.push('}');
        }
        let _ = if value.is_nan() {
            writeln!(self.out, " NaN")
        } else if value.is_infinite() {
            writeln!(self.out, " {}Inf", if value > 0.0 { "+" } else { "-" })
        } else {
            writeln!(self.out, " {value}")
        };
        self
    }

    pub fn finish(self) -> String {
        self.out
    }
}

/// A label name as Prometheus allows it: `[a-zA-Z_][a-zA-Z0-9_]*` (other characters become `_`).
pub fn label_name(name: &str) -> String {
    let mut s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() || s.starts_with(|c: char| c.is_ascii_digit()) {
        s.insert(0, '_');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_the_text_format_with_escapes() {
        let mut e = Exposition::default();
        e.family("logwell_x_total", Kind::Counter, "An x.\nSecond line.")
            .sample(
                "logwell_x_total",
                &[("log_group", "/a\"b\\c\nd"), ("9 bad", "v")],
                3.0,
            )
            .sample("logwell_x_total", &[], f64::INFINITY);
        assert_eq!(
            e.finish(),
            "# HELP logwell_x_total An x.\\nSecond line.\n# TYPE logwell_x_total counter\n\
             logwell_x_total{log_group=\"/a\\\"b\\\\c\\nd\",_9_bad=\"v\"} 3\nlogwell_x_total +Inf\n"
        );
    }
}

//! A metric filter compiled for evaluation: its pattern, where its value and dimensions come from,
//! and the checks PutMetricFilter makes, with CloudWatch's errors.

use logwell_filter::FilterPattern;
use logwell_model::api_metric_filters::MetricFilter;
use logwell_model::ApiError;
use serde_json::Value;

/// CloudWatch's StandardUnit values.
const UNITS: &[&str] = &[
    "Seconds",
    "Microseconds",
    "Milliseconds",
    "Bytes",
    "Kilobytes",
    "Megabytes",
    "Gigabytes",
    "Terabytes",
    "Bits",
    "Kilobits",
    "Megabits",
    "Gigabits",
    "Terabits",
    "Percent",
    "Count",
    "Bytes/Second",
    "Kilobytes/Second",
    "Megabytes/Second",
    "Gigabytes/Second",
    "Terabytes/Second",
    "Bits/Second",
    "Kilobits/Second",
    "Megabits/Second",
    "Gigabits/Second",
    "Terabits/Second",
    "Count/Second",
    "None",
];

/// Where a value comes from.
#[derive(Debug)]
enum Source {
    Constant(f64),
    /// `$.path` of a JSON message, as path segments.
    Json(Vec<Segment>),
    /// `$name` of a space-delimited pattern (the key `extract` reports).
    Delimited(String),
}

#[derive(Debug)]
enum Segment {
    Key(String),
    Index(usize),
}

/// A filter ready to evaluate messages.
#[derive(Debug)]
pub(crate) struct Compiled {
    pattern: FilterPattern,
    value: Source,
    dimensions: Vec<(String, Source)>,
}

impl Compiled {
    pub fn new(def: &MetricFilter) -> Result<Compiled, ApiError> {
        let pattern = FilterPattern::parse(&def.filter_pattern)
            .map_err(|e| ApiError::invalid(format!("Invalid metric filter pattern: {e}")))?;
        let t = &def.metric_transformations[0];
        for (what, name) in [
            ("metricName", &t.metric_name),
            ("metricNamespace", &t.metric_namespace),
        ] {
            if name.is_empty() || name.chars().count() > 255 || name.contains([':', '*', '$']) {
                return Err(ApiError::constraint(
                    name,
                    &format!("metricTransformations.1.member.{what}"),
                    "satisfy regular expression pattern: [^:*$]* and have length between 1 and 255",
                ));
            }
        }
        if let Some(unit) = &t.unit {
            if !UNITS.contains(&unit.as_str()) {
                return Err(ApiError::constraint(
                    unit,
                    "metricTransformations.1.member.unit",
                    &format!("satisfy enum value set: [{}]", UNITS.join(", ")),
                ));
            }
        }
        let dims = t.dimensions.clone().unwrap_or_default();
        if dims.len() > 3 {
            return Err(ApiError::invalid(
                "A metric filter can have at most 3 dimensions.",
            ));
        }
        if t.default_value.is_some() && !dims.is_empty() {
            return Err(ApiError::invalid(
                "Metric filters that have dimensions cannot also have a default value.",
            ));
        }
        if t.metric_value.chars().count() > 100 {
            return Err(ApiError::constraint(
                &t.metric_value,
                "metricTransformations.1.member.metricValue",
                "have length less than or equal to 100",
            ));
        }
        let value = match t.metric_value.trim().parse::<f64>() {
            Ok(n) if n.is_finite() => Source::Constant(n),
            _ => field(&pattern, &t.metric_value).ok_or_else(|| {
                ApiError::invalid(format!(
                    "Invalid metric value: {} is not a number or a field the filter pattern defines.",
                    t.metric_value
                ))
            })?,
        };
        let dimensions = dims
            .into_iter()
            .map(|(name, reference)| {
                let source = field(&pattern, &reference).ok_or_else(|| {
                    ApiError::invalid(format!(
                        "Invalid dimension value: {reference} is not a field the filter pattern defines."
                    ))
                })?;
                Ok((name, source))
            })
            .collect::<Result<_, ApiError>>()?;
        Ok(Compiled {
            pattern,
            value,
            dimensions,
        })
    }

    /// The value and dimensions a message contributes: the extracted value when it matches and
    /// the value is a number, else nothing. (A default value is not added per event: CloudWatch
    /// reports it for periods without a match; here the series exists from the start at 0.)
    pub fn evaluate(&self, message: &str) -> Option<(f64, Vec<(String, String)>)> {
        let needs_fields =
            !matches!(self.value, Source::Constant(_)) || !self.dimensions.is_empty();
        if !needs_fields {
            return match self.pattern.matches(message) {
                true => match self.value {
                    Source::Constant(n) => Some((n, Vec::new())),
                    _ => unreachable!(),
                },
                false => None,
            };
        }
        let fields = match self.pattern.extract(message) {
            Some(f) => f,
            None => return None,
        };
        let json = if self.pattern.is_json() {
            serde_json::from_str::<Value>(message).ok()
        } else {
            None
        };
        let lookup = |s: &Source| -> Option<String> {
            match s {
                Source::Constant(n) => Some(n.to_string()),
                Source::Json(path) => {
                    let mut v = json.as_ref()?;
                    for seg in path {
                        v = match seg {
                            Segment::Key(k) => v.get(k)?,
                            Segment::Index(i) => v.get(*i)?,
                        };
                    }
                    match v {
                        Value::String(s) => Some(s.clone()),
                        Value::Null | Value::Object(_) | Value::Array(_) => None,
                        other => Some(other.to_string()),
                    }
                }
                Source::Delimited(key) => fields
                    .iter()
                    .find(|(k, _)| k == key)
                    .map(|(_, v)| v.clone()),
            }
        };
        let value: f64 = lookup(&self.value)?
            .trim()
            .parse()
            .ok()
            .filter(|v: &f64| v.is_finite())?;
        let dimensions = self
            .dimensions
            .iter()
            .map(|(name, s)| Some((name.clone(), lookup(s)?)))
            .collect::<Option<Vec<_>>>()?;
        Some((value, dimensions))
    }
}

/// A field reference the pattern defines: `$.path` for JSON patterns (any path), `$name` for a
/// space-delimited pattern that names it.
fn field(pattern: &FilterPattern, reference: &str) -> Option<Source> {
    let r = reference.trim();
    if let Some(path) = r.strip_prefix("$.") {
        if !pattern.is_json() || path.is_empty() {
            return None;
        }
        let mut segments = Vec::new();
        for part in path.split('.') {
            let (key, mut rest) = match part.find('[') {
                Some(i) => (&part[..i], &part[i..]),
                None => (part, ""),
            };
            if !key.is_empty() {
                segments.push(Segment::Key(key.to_string()));
            }
            while let Some(inner) = rest.strip_prefix('[') {
                let end = inner.find(']')?;
                segments.push(Segment::Index(inner[..end].parse().ok()?));
                rest = &inner[end + 1..];
            }
            if !rest.is_empty() {
                return None;
            }
        }
        return Some(Source::Json(segments));
    }
    let name = r.strip_prefix('$')?;
    pattern
        .delimited_fields()?
        .contains(&name)
        .then(|| Source::Delimited(format!("${name}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use logwell_model::api_metric_filters::MetricTransformation;

    fn def(
        pattern: &str,
        value: &str,
        default: Option<f64>,
        dims: &[(&str, &str)],
    ) -> MetricFilter {
        MetricFilter {
            filter_name: "f".into(),
            filter_pattern: pattern.into(),
            metric_transformations: vec![MetricTransformation {
                metric_name: "M".into(),
                metric_namespace: "N".into(),
                metric_value: value.into(),
                default_value: default,
                dimensions: (!dims.is_empty()).then(|| {
                    dims.iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect()
                }),
                unit: None,
            }],
            creation_time: 0,
            log_group_name: "/g".into(),
        }
    }

    #[test]
    fn json_values_and_dimensions() {
        let c = Compiled::new(&def(
            "{ $.status >= 500 }",
            "$.latency",
            None,
            &[("Method", "$.req.method")],
        ))
        .unwrap();
        assert_eq!(
            c.evaluate(r#"{"status": 503, "latency": 12.5, "req": {"method": "GET"}}"#),
            Some((12.5, vec![("Method".into(), "GET".into())]))
        );
        assert_eq!(
            c.evaluate(r#"{"status": 200, "latency": 1, "req": {"method": "GET"}}"#),
            None
        );
        // A value that is not a number is not counted.
        assert_eq!(
            c.evaluate(r#"{"status": 500, "latency": "slow", "req": {"method": "GET"}}"#),
            None
        );
    }

    #[test]
    fn delimited_fields_constants_and_defaults() {
        let c = Compiled::new(&def(
            "[ip, user, status = 4*, bytes]",
            "$bytes",
            None,
            &[("Status", "$status")],
        ))
        .unwrap();
        assert_eq!(
            c.evaluate("10.0.0.1 alice 404 512"),
            Some((512.0, vec![("Status".into(), "404".into())]))
        );
        let c = Compiled::new(&def("ERROR", "1", Some(0.0), &[])).unwrap();
        assert_eq!(c.evaluate("an ERROR here"), Some((1.0, vec![])));
        assert_eq!(c.evaluate("all fine"), None);
    }

    #[test]
    fn refuses_what_cloudwatch_refuses() {
        for d in [
            def("[ip, user]", "$bytes", None, &[]), // field the pattern does not define
            def("ERROR", "$.latency", None, &[]),   // JSON field, not a JSON pattern
            def("{ $.a = 1 }", "1", Some(0.0), &[("D", "$.a")]), // default value with dimensions
            def("{ $.a = ", "1", None, &[]),        // pattern does not parse
            def("[a]", "1", None, &[("D", "$b")]),  // dimension the pattern does not define
        ] {
            let e = Compiled::new(&d).unwrap_err();
            assert_eq!(e.kind, logwell_model::ErrorKind::InvalidParameter, "{d:?}");
        }
    }
}

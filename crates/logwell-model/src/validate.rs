//! AWS's validation rules for names, tags and retention, with AWS's error wording.

use crate::{ApiError, RETENTION_DAYS};
use std::collections::BTreeMap;

fn is_group_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '/' | '#')
}

/// `logGroupName`: `[\.\-_/#A-Za-z0-9]+`, 1-512 characters.
pub fn log_group_name(name: &str, param: &str) -> Result<(), ApiError> {
    if name.is_empty() || name.chars().count() > 512 {
        return Err(ApiError::constraint(
            name,
            param,
            "have length between 1 and 512",
        ));
    }
    if !name.chars().all(is_group_char) {
        return Err(ApiError::constraint(
            name,
            param,
            "satisfy regular expression pattern: [\\.\\-_/#A-Za-z0-9]+",
        ));
    }
    Ok(())
}

/// A log group name for CreateLogGroup, which also refuses the reserved `aws/` prefix.
pub fn new_log_group_name(name: &str) -> Result<(), ApiError> {
    log_group_name(name, "logGroupName")?;
    if name.starts_with("aws/") {
        return Err(ApiError::invalid(
            "Log group names starting with 'aws/' are reserved for AWS.",
        ));
    }
    Ok(())
}

/// `logStreamName`: `[^:*]*`, 1-512 characters.
pub fn log_stream_name(name: &str, param: &str) -> Result<(), ApiError> {
    if name.is_empty() || name.chars().count() > 512 {
        return Err(ApiError::constraint(
            name,
            param,
            "have length between 1 and 512",
        ));
    }
    if name.contains([':', '*']) {
        return Err(ApiError::constraint(
            name,
            param,
            "satisfy regular expression pattern: [^:*]*",
        ));
    }
    Ok(())
}

/// `retentionInDays`: one of AWS's fixed values.
pub fn retention_days(days: i32) -> Result<(), ApiError> {
    if RETENTION_DAYS.contains(&days) {
        Ok(())
    } else {
        let allowed: Vec<String> = RETENTION_DAYS.iter().map(|d| d.to_string()).collect();
        Err(ApiError::constraint(
            &days.to_string(),
            "retentionInDays",
            &format!("satisfy enum value set: [{}]", allowed.join(", ")),
        ))
    }
}

fn is_tag_char(c: char) -> bool {
    c.is_alphanumeric()
        || c.is_whitespace()
        || matches!(c, '_' | '.' | ':' | '/' | '=' | '+' | '-' | '@')
}

/// Tags: 1-50 entries, keys 1-128 and values 0-256 of `[\p{L}\p{Z}\p{N}_.:/=+\-@]`.
pub fn tags(tags: &BTreeMap<String, String>) -> Result<(), ApiError> {
    if tags.is_empty() || tags.len() > 50 {
        return Err(ApiError::constraint(
            &format!("{} tags", tags.len()),
            "tags",
            "have length between 1 and 50",
        ));
    }
    for (k, v) in tags {
        tag_key(k)?;
        if v.chars().count() > 256 || !v.chars().all(is_tag_char) {
            return Err(ApiError::constraint(
                v,
                "tags",
                "satisfy regular expression pattern: ^([\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]*)$ and have length at most 256",
            ));
        }
    }
    Ok(())
}

/// A tag key: 1-128 of `[\p{L}\p{Z}\p{N}_.:/=+\-@]`, and not starting with `aws:`.
pub fn tag_key(k: &str) -> Result<(), ApiError> {
    if k.is_empty() || k.chars().count() > 128 || !k.chars().all(is_tag_char) {
        return Err(ApiError::constraint(
            k,
            "tags",
            "satisfy regular expression pattern: ^([\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]+)$ and have length between 1 and 128",
        ));
    }
    if k.starts_with("aws:") {
        return Err(ApiError::invalid(
            "Tag keys starting with 'aws:' are reserved.",
        ));
    }
    Ok(())
}

/// A `limit` member: 1 to `max`, `default` when absent.
pub fn limit(limit: Option<i64>, default: usize, max: usize) -> Result<usize, ApiError> {
    match limit {
        None => Ok(default),
        Some(l) if l >= 1 && l as usize <= max => Ok(l as usize),
        Some(l) => {
            let rule = if l < 1 {
                "have value greater than or equal to 1".to_string()
            } else {
                format!("have value less than or equal to {max}")
            };
            Err(ApiError::constraint(&l.to_string(), "limit", &rule))
        }
    }
}

/// `limit` for Describe* operations: 1-50.
pub fn describe_limit(l: Option<i64>) -> Result<usize, ApiError> {
    limit(l, 50, 50)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_names_follow_aws_rules() {
        assert!(log_group_name("/app/web-1_x.y#z", "logGroupName").is_ok());
        assert!(log_group_name("", "logGroupName").is_err());
        assert!(log_group_name("bad name", "logGroupName").is_err());
        assert!(log_group_name(&"a".repeat(513), "logGroupName").is_err());
        assert!(new_log_group_name("aws/lambda").is_err());
    }

    #[test]
    fn stream_names_refuse_colon_and_star() {
        assert!(log_stream_name("i-abc /var/log/app.log", "logStreamName").is_ok());
        assert!(log_stream_name("a:b", "logStreamName").is_err());
        assert!(log_stream_name("a*", "logStreamName").is_err());
    }

    #[test]
    fn limits_name_the_bound_they_break() {
        assert_eq!(limit(None, 10_000, 10_000), Ok(10_000));
        assert_eq!(limit(Some(5), 50, 50), Ok(5));
        assert!(limit(Some(0), 50, 50)
            .unwrap_err()
            .message
            .contains("greater than or equal to 1"));
        assert!(limit(Some(51), 50, 50)
            .unwrap_err()
            .message
            .contains("less than or equal to 50"));
    }

    #[test]
    fn retention_accepts_only_listed_days() {
        assert!(retention_days(1).is_ok());
        assert!(retention_days(3653).is_ok());
        let err = retention_days(2).unwrap_err();
        assert!(err.message.contains("enum value set"), "{}", err.message);
    }
}

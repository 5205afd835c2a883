//! AWS's validation rules for names, tags and retention, with AWS's error wording.

use crate::api::{InputLogEvent, RejectedLogEventsInfo};
use crate::{
    ApiError, EVENT_OVERHEAD_BYTES, MAX_AGE_MS, MAX_BATCH_BYTES, MAX_BATCH_EVENTS,
    MAX_BATCH_SPAN_MS, MAX_EVENT_BYTES, MAX_FUTURE_MS, RETENTION_DAYS,
};
use std::collections::BTreeMap;
use std::ops::Range;

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

/// One page of a Describe* listing that pages by offset: at most `limit` (1-50, AWS's check)
/// of `matching` from the offset `next_token` carries, and the token of the next page.
pub fn offset_page<T: Clone>(
    matching: &[&T],
    next_token: Option<&str>,
    limit: Option<i64>,
) -> Result<(Vec<T>, Option<String>), ApiError> {
    let limit = describe_limit(limit)?;
    let skip: usize = match next_token {
        Some(t) => t.parse().map_err(|_| ApiError::bad_token())?,
        None => 0,
    };
    let page: Vec<T> = matching
        .iter()
        .skip(skip)
        .take(limit)
        .map(|t| (*t).clone())
        .collect();
    let next = skip + page.len();
    Ok((page, (next < matching.len()).then(|| next.to_string())))
}

/// PutLogEvents' rules for a whole batch: 1-10,000 non-empty events, each at most 1 MB, the
/// batch at most 1 MB counting 26 bytes per event, in time order.
pub fn put_log_events_batch(events: &[InputLogEvent<'_>]) -> Result<(), ApiError> {
    if events.is_empty() {
        return Err(ApiError::constraint(
            "[]",
            "logEvents",
            "have length greater than or equal to 1",
        ));
    }
    if events.len() > MAX_BATCH_EVENTS {
        return Err(ApiError::constraint(
            &format!("{} events", events.len()),
            "logEvents",
            "have length less than or equal to 10000",
        ));
    }
    let mut size = 0usize;
    for (i, e) in events.iter().enumerate() {
        if e.message.is_empty() {
            return Err(ApiError::constraint(
                "",
                &format!("logEvents.{}.member.message", i + 1),
                "have length greater than or equal to 1",
            ));
        }
        if e.message.len() > MAX_EVENT_BYTES {
            return Err(ApiError::invalid(format!(
                "Log event too large: {} bytes exceeds limit of {}",
                e.message.len(),
                MAX_EVENT_BYTES
            )));
        }
        size += e.message.len() + EVENT_OVERHEAD_BYTES;
    }
    if size > MAX_BATCH_BYTES {
        return Err(ApiError::invalid(format!(
            "Upload too large: {size} bytes exceeds limit of {MAX_BATCH_BYTES}"
        )));
    }
    if events.windows(2).any(|w| w[1].timestamp < w[0].timestamp) {
        return Err(ApiError::invalid(
            "Log events in a single PutLogEvents request must be in chronological order.",
        ));
    }
    Ok(())
}

/// Which events of a valid (time-ordered) batch are kept at `now`: too old (14 days), older
/// than the group's retention `cutoff` and too new (2 hours ahead) ones are rejected one by one
/// and reported by index, as AWS does (end indexes are the last rejected event's, inclusive).
/// The kept events may not span more than 24 hours.
pub fn put_log_events_window(
    events: &[InputLogEvent<'_>],
    now: i64,
    cutoff: Option<i64>,
) -> Result<(Range<usize>, Option<RejectedLogEventsInfo>), ApiError> {
    // Events are in time order, so rejected ones form a prefix (too old) and a suffix (too new).
    let too_old_end = events.partition_point(|e| e.timestamp < now - MAX_AGE_MS);
    let expired_end = cutoff.map_or(0, |c| events.partition_point(|e| e.timestamp < c));
    let too_new_start = events.partition_point(|e| e.timestamp <= now + MAX_FUTURE_MS);
    let first = too_old_end.max(expired_end).min(too_new_start);
    let last_of = |end: usize| end.checked_sub(1).map(|i| i as i64);
    let rejected = RejectedLogEventsInfo {
        too_old_log_event_end_index: last_of(too_old_end),
        expired_log_event_end_index: last_of(expired_end),
        too_new_log_event_start_index: (too_new_start < events.len())
            .then_some(too_new_start as i64),
    };
    let rejected = (rejected != RejectedLogEventsInfo::default()).then_some(rejected);
    let kept = &events[first..too_new_start];
    if let (Some(a), Some(b)) = (kept.first(), kept.last()) {
        if b.timestamp - a.timestamp > MAX_BATCH_SPAN_MS {
            return Err(ApiError::invalid(
                "The batch of log events in a single PutLogEvents request cannot span more than 24 hours.",
            ));
        }
    }
    Ok((first..too_new_start, rejected))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(timestamp: i64) -> InputLogEvent<'static> {
        InputLogEvent {
            timestamp,
            message: "m".into(),
        }
    }

    #[test]
    fn rejected_end_indexes_name_the_last_rejected_event() {
        let now = 100 * 86_400_000;
        let (kept, r) = put_log_events_window(&[ev(0), ev(now)], now, None).unwrap();
        assert_eq!(kept, 1..2);
        assert_eq!(r.unwrap().too_old_log_event_end_index, Some(0));
        let day = 86_400_000;
        let batch = [
            ev(now - 3 * day),
            ev(now - 2 * day),
            ev(now),
            ev(now + 3 * 3_600_000),
        ];
        let (kept, r) = put_log_events_window(&batch, now, Some(now - day)).unwrap();
        let r = r.unwrap();
        assert_eq!(kept, 2..3);
        assert_eq!(r.expired_log_event_end_index, Some(1));
        assert_eq!(r.too_old_log_event_end_index, None);
        assert_eq!(r.too_new_log_event_start_index, Some(3));
        assert_eq!(
            put_log_events_window(&[ev(now)], now, None).unwrap().1,
            None
        );
    }

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

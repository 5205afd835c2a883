//! CloudWatch Logs domain types, wire shapes (request and response bodies), validation rules and API errors.
//!
//! Everything here is shared by the server (which answers the API), the storage engine (which
//! enforces the same rules on replay) and the CLI (which speaks the API as a client).

pub mod api;
pub mod api_destinations;
pub mod api_export;
pub mod api_metric_filters;
pub mod api_policies;
pub mod api_queries;
pub mod api_subscriptions;
pub mod api_tail;
pub mod error;
pub mod validate;

pub use error::{ApiError, ErrorKind};

/// Per-event overhead AWS counts toward the PutLogEvents batch size.
pub const EVENT_OVERHEAD_BYTES: usize = 26;
/// Largest PutLogEvents batch: sum of UTF-8 message bytes plus 26 bytes per event.
pub const MAX_BATCH_BYTES: usize = 1_048_576;
/// Most events in one PutLogEvents call.
pub const MAX_BATCH_EVENTS: usize = 10_000;
/// Largest single event message (AWS raised this from 256 KB to 1 MB).
pub const MAX_EVENT_BYTES: usize = 1_048_576 - EVENT_OVERHEAD_BYTES;
/// A batch may not span more than this many milliseconds.
pub const MAX_BATCH_SPAN_MS: i64 = 24 * 3600 * 1000;
/// Events more than this far in the future are rejected individually.
pub const MAX_FUTURE_MS: i64 = 2 * 3600 * 1000;
/// Events older than this are rejected individually.
pub const MAX_AGE_MS: i64 = 14 * 24 * 3600 * 1000;

/// The values PutRetentionPolicy accepts, in days.
pub const RETENTION_DAYS: &[i32] = &[
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
];

/// The ARN of a log group as the `arn` field shows it (with the trailing `:*`).
pub fn log_group_arn(region: &str, account: &str, group: &str) -> String {
    format!("arn:aws:logs:{region}:{account}:log-group:{group}:*")
}

/// The ARN of a log group as `logGroupArn` and the tagging APIs use it (no trailing `:*`).
pub fn log_group_arn_bare(region: &str, account: &str, group: &str) -> String {
    format!("arn:aws:logs:{region}:{account}:log-group:{group}")
}

/// The ARN of a log stream.
pub fn log_stream_arn(region: &str, account: &str, group: &str, stream: &str) -> String {
    format!("arn:aws:logs:{region}:{account}:log-group:{group}:log-stream:{stream}")
}

/// Extracts the log group name from a `logGroupIdentifier`, which is either a name or an ARN.
pub fn group_name_from_identifier(identifier: &str) -> &str {
    match identifier.find(":log-group:") {
        Some(i) if identifier.starts_with("arn:") => {
            let rest = &identifier[i + ":log-group:".len()..];
            let rest = rest.strip_suffix(":*").unwrap_or(rest);
            rest
        }
        _ => identifier,
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_resolve_to_names() {
        assert_eq!(group_name_from_identifier("/app/web"), "/app/web");
        assert_eq!(
            group_name_from_identifier("arn:aws:logs:us-east-1:000000000000:log-group:/app/web"),
            "/app/web"
        );
        assert_eq!(
            group_name_from_identifier("arn:aws:logs:us-east-1:000000000000:log-group:/app/web:*"),
            "/app/web"
        );
    }
}

//! Firehose's S3 delivery: records buffered by size and time, then written as one object of
//! concatenated gzip members under `PREFIX YYYY/MM/DD/HH/`, named as Firehose names them.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::time::{Duration, Instant};

/// `[delivery.firehose."ARN"]`: a delivery stream writing to a bucket.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FirehoseConfig {
    /// Bucket name (see `[delivery.buckets]`).
    pub bucket: String,
    /// Key prefix, as Firehose's `Prefix` (usually ending in `/`).
    #[serde(default)]
    pub prefix: String,
    /// Write an object once this many bytes are buffered (Firehose's default: 5 MiB) ...
    #[serde(default = "default_buffer_bytes")]
    pub buffer_bytes: usize,
    /// ... or once the oldest buffered record has waited this long (default: 300 s).
    #[serde(default = "default_buffer_secs")]
    pub buffer_secs: f64,
}

fn default_buffer_bytes() -> usize {
    5 << 20
}
fn default_buffer_secs() -> f64 {
    300.0
}

/// Records waiting to be written.
pub(crate) struct FirehoseBuffer {
    bytes: Vec<u8>,
    since: Option<Instant>,
    limit_bytes: usize,
    interval: Duration,
}

impl FirehoseBuffer {
    pub fn new(config: &FirehoseConfig) -> FirehoseBuffer {
        FirehoseBuffer {
            bytes: Vec::new(),
            since: None,
            limit_bytes: config.buffer_bytes.max(1),
            interval: Duration::from_secs_f64(config.buffer_secs.max(0.0)),
        }
    }

    /// Adds one record (a gzip member; Firehose writes records back to back).
    pub fn push(&mut self, record: Vec<u8>) {
        self.since.get_or_insert_with(Instant::now);
        self.bytes.extend_from_slice(&record);
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    pub fn due(&self) -> Option<Instant> {
        self.since.map(|s| s + self.interval)
    }

    pub fn should_flush(&self, now: Instant) -> bool {
        !self.is_empty()
            && (self.bytes.len() >= self.limit_bytes || self.due().is_some_and(|d| now >= d))
    }

    pub fn contents(&self) -> Bytes {
        Bytes::copy_from_slice(&self.bytes)
    }

    pub fn clear(&mut self) {
        self.bytes.clear();
        self.since = None;
    }
}

/// `PREFIX` `YYYY/MM/DD/HH/` `STREAM-1-YYYY-MM-DD-HH-MM-SS-UUID`, in UTC, as Firehose names
/// the objects it delivers.
pub fn object_key(prefix: &str, stream: &str, at: chrono::DateTime<chrono::Utc>) -> String {
    format!(
        "{prefix}{}/{stream}-1-{}-{}",
        at.format("%Y/%m/%d/%H"),
        at.format("%Y-%m-%d-%H-%M-%S"),
        uuid::Uuid::new_v4()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn keys_follow_firehose_naming() {
        let at = chrono::Utc.with_ymd_and_hms(2026, 3, 4, 5, 6, 7).unwrap();
        let key = object_key("cwl/", "archive", at);
        assert!(
            key.starts_with("cwl/2026/03/04/05/archive-1-2026-03-04-05-06-07-"),
            "{key}"
        );
        assert_eq!(
            key.len(),
            "cwl/2026/03/04/05/archive-1-2026-03-04-05-06-07-".len() + 36
        );
    }

    #[test]
    fn buffer_flushes_on_size_or_age() {
        let config = FirehoseConfig {
            bucket: "b".into(),
            prefix: String::new(),
            buffer_bytes: 10,
            buffer_secs: 60.0,
        };
        let mut b = FirehoseBuffer::new(&config);
        let now = Instant::now();
        assert!(!b.should_flush(now) && b.due().is_none());
        b.push(vec![1; 4]);
        assert!(!b.should_flush(Instant::now()));
        assert!(b.should_flush(Instant::now() + Duration::from_secs(61)));
        b.push(vec![2; 6]);
        assert!(b.should_flush(Instant::now()));
        assert_eq!(&b.contents()[..], &[1, 1, 1, 1, 2, 2, 2, 2, 2, 2]);
        b.clear();
        assert!(b.is_empty() && b.due().is_none());
    }
}

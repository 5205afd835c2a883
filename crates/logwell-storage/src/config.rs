//! Typed storage configuration, with the defaults the server runs with when given no config file.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// Where immutable segments and the catalog live.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum ObjectStoreConfig {
    /// A directory under the data directory (`<data_dir>/store`).
    #[default]
    Local,
    /// An S3-compatible service (AWS S3, MinIO, SeaweedFS, moto, ...).
    S3(S3Config),
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    pub bucket: String,
    #[serde(default)]
    pub endpoint: Option<String>,
    #[serde(default = "default_region")]
    pub region: String,
    #[serde(default)]
    pub access_key_id: Option<String>,
    #[serde(default)]
    pub secret_access_key: Option<String>,
    /// Path-style addressing (`endpoint/bucket/key`), which most self-hosted servers need.
    #[serde(default = "default_true")]
    pub path_style: bool,
    /// Key prefix inside the bucket.
    #[serde(default)]
    pub prefix: Option<String>,
    /// Give up on a request (and report the store unavailable) after this many seconds of retries.
    #[serde(default = "default_retry_timeout")]
    pub retry_timeout: f64,
    #[serde(default = "default_max_retries")]
    pub max_retries: usize,
}

fn default_retry_timeout() -> f64 {
    15.0
}
fn default_max_retries() -> usize {
    3
}

fn default_region() -> String {
    "us-east-1".into()
}
fn default_true() -> bool {
    true
}

/// Everything the storage engine needs to know.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// Local directory for the write-ahead log (and the local object store).
    pub data_dir: PathBuf,
    pub object_store: ObjectStoreConfig,
    /// Flush buffered events to Parquet once this many bytes are buffered.
    pub flush_bytes: u64,
    /// ... or once the oldest buffered event has waited this long.
    #[serde(with = "secs")]
    pub flush_age: Duration,
    /// Refuse new events (ThrottlingException) while this much is buffered and not yet flushed.
    pub max_buffered_bytes: u64,
    /// Segments smaller than this are merged by compaction.
    pub compaction_small_bytes: u64,
    /// A lone flushed segment older than this is rewritten by compaction with the harder codec.
    #[serde(with = "secs")]
    pub recompress_after: Duration,
    /// zstd level for segments written at flush (cheap) and by compaction (hard).
    pub flush_zstd_level: i32,
    pub compaction_zstd_level: i32,
    /// How often retention and compaction run.
    #[serde(with = "secs")]
    pub maintenance_interval: Duration,
    /// Rows per Parquet row group, at most: a segment with the rows for it is cut into at least
    /// 8 row groups of at least 64 K rows (`segment::rows_per_group`), so queries read it on
    /// every core.
    pub row_group_rows: usize,
    /// Rows per sealed memtable batch. A sealed batch keeps the JSON fields queries extract
    /// from it, so the next query reads them instead of parsing its messages again.
    pub memtable_batch_rows: usize,
    /// Up to this many frequent JSON fields are also stored as columns of each segment, so that
    /// queries on them read a column instead of parsing messages (0: none). Compaction writes
    /// them (every flushed segment is rewritten once it goes cold, see `recompress_after`).
    pub field_columns: usize,
    /// Also write field columns at flush: fresh data gets them at once, for about 0.7 µs of
    /// extra flush CPU per JSON event (off: ingest stays cheap, compaction adds them later).
    pub field_columns_at_flush: bool,
    /// A group whose JSON fields queries read is being looked into: for `recompress_after`
    /// after such a query, its flushed files without field columns are rewritten with them at
    /// once and its flushes write them, so the next questions read columns (off: only once its
    /// files go cold, unless `field_columns_at_flush`).
    pub columns_when_queried: bool,
    /// Whether compaction stores each message split into its template and its variables
    /// (`logwell_template`), by default where a sample of the segment comes out at least 10%
    /// smaller that way: 6% fewer bytes on the Loghub samples, 19% on Lambda logs, none on
    /// JSON events (kept whole). Every message reads back byte-exact; a text search tests the
    /// templates and variables and joins only the lines it may keep. Flushes keep the whole
    /// message.
    pub message_templates: MessageTemplates,
    /// Encrypt new log groups' segments with a data key of their own, wrapped by the master key
    /// in `<data_dir>/keyring` (created on first start, mode 0600). Losing the keyring loses the
    /// data. Off: new groups are stored in plain Parquet (existing encrypted ones stay readable).
    pub encrypt: bool,
    /// Where the keyring is (default `<data_dir>/keyring`). Nodes that take over an S3 store
    /// from one another need the same keyring, like a KMS key they share.
    pub keyring: Option<PathBuf>,
    /// Events past retention that a subscription filter has not delivered yet are kept up to
    /// this much longer; a subscription lagging further loses them (a warning is logged and
    /// `/metrics` counts them).
    #[serde(with = "secs")]
    pub subscription_hold: Duration,
    /// Segment files no manifest lists are deleted at start-up only once they are this old: a
    /// younger one may belong to a flush of another node that has not published yet.
    #[serde(with = "secs")]
    pub orphan_grace: Duration,
}

/// When compaction stores messages split into templates and variables.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum MessageTemplates {
    /// Never: messages are stored whole.
    Off,
    /// When that takes fewer bytes, as measured on a sample of the segment's rows.
    WhenSmaller,
    /// Always (tests use it to read every message through the split layout).
    Always,
}

impl StorageConfig {
    /// The keyring file: `keyring`, else `<data_dir>/keyring`.
    pub fn keyring_path(&self) -> PathBuf {
        self.keyring
            .clone()
            .unwrap_or_else(|| self.data_dir.join(crate::keys::KEYRING_FILE))
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            data_dir: PathBuf::from("./logwell-data"),
            object_store: ObjectStoreConfig::Local,
            flush_bytes: 128 << 20,
            flush_age: Duration::from_secs(60),
            max_buffered_bytes: 1 << 30,
            compaction_small_bytes: 32 << 20,
            recompress_after: Duration::from_secs(600),
            flush_zstd_level: 3,
            compaction_zstd_level: 15,
            maintenance_interval: Duration::from_secs(30),
            row_group_rows: 256 * 1024,
            memtable_batch_rows: 32 * 1024,
            field_columns: 32,
            field_columns_at_flush: false,
            columns_when_queried: true,
            message_templates: MessageTemplates::WhenSmaller,
            encrypt: true,
            keyring: None,
            subscription_hold: Duration::from_secs(7 * 86_400),
            orphan_grace: Duration::from_secs(600),
        }
    }
}

mod secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let v = f64::deserialize(d)?;
        if !(v >= 0.0 && v.is_finite()) {
            return Err(serde::de::Error::custom(
                "a duration in seconds must be >= 0",
            ));
        }
        Ok(Duration::from_secs_f64(v))
    }
}

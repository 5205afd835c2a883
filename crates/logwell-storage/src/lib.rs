//! Durable log storage: write-ahead log, Arrow memtables, Parquet segments in an object store,
//! the catalog that lists them, retention and compaction, and the tap that offers each applied
//! batch to live consumers.

pub mod buffered;
pub mod catalog;
pub mod config;
pub mod engine;
pub mod keys;
pub mod kms;
pub mod lock;
pub mod memtable;
pub mod record;
pub mod segment;
pub mod store;
pub mod tap;
pub mod wal;

pub use buffered::Buffered;
pub use config::{ObjectStoreConfig, S3Config, StorageConfig};
pub use engine::{
    Engine, EventKey, EventRow, GroupSnapshot, GroupSummary, NewGroup, OpenError, OpenOptions,
    PutOutcome, Scan, SegmentCache, StorageStats, StreamFilter,
};

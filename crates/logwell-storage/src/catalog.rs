//! The catalog: log groups, streams and segments, and the manifest that makes them durable.
//!
//! A manifest is one JSON object in the store (`catalog/manifest-<version>.json.zst`, compressed:
//! it lists every segment and is written at every flush; earlier versions wrote plain
//! `manifest-<version>.json`, which is still read), written whole and never changed. It holds the metadata as of a WAL position plus the list of live segments;
//! start-up loads the newest manifest and replays the WAL after that position. A segment is
//! visible only once a manifest lists it, and its file is deleted only after a manifest without
//! it is durable and no reader holds it.

use crate::memtable::SEQ_INDEX_BITS;
use crate::record::MetaChange;
use logwell_model::ApiError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct StreamMeta {
    pub creation_time: i64,
    pub first_event_ts: Option<i64>,
    pub last_event_ts: Option<i64>,
    pub last_ingestion_time: Option<i64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct GroupMeta {
    pub group_id: u64,
    pub creation_time: i64,
    pub retention_days: Option<i32>,
    pub kms_key_id: Option<String>,
    pub class: String,
    pub deletion_protection: bool,
    pub tags: BTreeMap<String, String>,
    pub streams: BTreeMap<String, StreamMeta>,
    /// Deleted streams: events of the stream with `seq` below the value are gone.
    #[serde(default)]
    pub deleted_streams: BTreeMap<String, i64>,
    /// Subscription filters, by name (at most [`MAX_SUBSCRIPTION_FILTERS`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub subscriptions: BTreeMap<String, SubscriptionFilter>,
    /// The data protection policy: its document, as put, and when.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_protection: Option<DataProtectionPolicy>,
    /// The data key its segments are encrypted with, wrapped by the keyring's master key
    /// (none: the group was created without encryption).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_key: Option<String>,
}

/// A group's data protection policy (what every read masks).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct DataProtectionPolicy {
    pub document: String,
    pub last_updated: i64,
}

/// The account-level data protection policy and its name.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct AccountDataProtectionPolicy {
    pub name: String,
    pub document: String,
    pub last_updated: i64,
}

/// Subscription filters a log group may have (CloudWatch's quota).
pub const MAX_SUBSCRIPTION_FILTERS: usize = 2;

/// A subscription filter: which events go where, and how far delivery has come.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct SubscriptionFilter {
    pub filter_pattern: String,
    pub destination_arn: String,
    #[serde(default)]
    pub role_arn: Option<String>,
    pub distribution: String,
    pub creation_time: i64,
    /// Every matching event with a smaller or equal `seq` has been delivered.
    #[serde(default)]
    pub delivered_seq: i64,
}

impl GroupMeta {
    /// The oldest timestamp still inside retention, if the group has a retention policy.
    pub fn retention_cutoff(&self, now_ms: i64) -> Option<i64> {
        self.retention_days.map(|d| now_ms - d as i64 * 86_400_000)
    }

    /// The lowest position every subscription filter has delivered up to: events above it are
    /// kept past retention (up to the hold, see `Expiry`) until they are delivered.
    pub fn delivery_floor(&self) -> Option<i64> {
        self.subscriptions.values().map(|f| f.delivered_seq).min()
    }

    /// What retention removes now, with events a subscription has not delivered held for up to
    /// `hold_ms` past retention.
    pub fn expiry(&self, now_ms: i64, hold_ms: i64) -> Option<Expiry> {
        let cutoff = self.retention_cutoff(now_ms)?;
        Some(Expiry {
            cutoff,
            floor: self.delivery_floor(),
            hard_cutoff: cutoff.saturating_sub(hold_ms),
        })
    }
}

/// Retention of one group at one moment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Expiry {
    /// Events older than this are past retention...
    pub cutoff: i64,
    /// ... and removed, unless a subscription has not delivered them (seq above the floor)...
    pub floor: Option<i64>,
    /// ... and they are not older than this either: a subscription lagging that far loses them.
    pub hard_cutoff: i64,
}

impl Expiry {
    /// Whether an event (timestamp, seq) is removed.
    pub fn expired(&self, ts: i64, seq: i64) -> bool {
        ts < self.cutoff && (ts < self.hard_cutoff || self.floor.is_none_or(|f| seq <= f))
    }

    /// Whether a whole segment is removed, and whether it held events no subscription had
    /// delivered yet (lost to the hold's limit).
    pub fn segment(&self, s: &SegmentMeta) -> (bool, bool) {
        let undelivered = self.floor.is_some_and(|f| s.max_seq > f);
        let expired = s.max_ts < self.cutoff && (s.max_ts < self.hard_cutoff || !undelivered);
        (expired, expired && undelivered)
    }
}

/// Every group, by name.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Metadata {
    pub groups: BTreeMap<String, GroupMeta>,
    pub next_group_id: u64,
    /// The account's data protection policy (PutAccountPolicy): it masks every group, together
    /// with the group's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_data_protection: Option<AccountDataProtectionPolicy>,
}

impl Metadata {
    pub fn group(&self, name: &str) -> Result<&GroupMeta, ApiError> {
        self.groups.get(name).ok_or_else(ApiError::group_not_found)
    }

    /// Whether a change may be applied now, with the error AWS gives when not.
    pub fn check(&self, change: &MetaChange) -> Result<(), ApiError> {
        match change {
            MetaChange::CreateGroup { name, .. } => {
                if self.groups.contains_key(name) {
                    return Err(ApiError::already_exists());
                }
            }
            MetaChange::DeleteGroup { name } => {
                let g = self.group(name)?;
                if g.deletion_protection {
                    return Err(ApiError::new(
                        logwell_model::ErrorKind::Validation,
                        "Log group has deletion protection enabled and cannot be deleted.",
                    ));
                }
            }
            MetaChange::CreateStream { group, stream, .. } => {
                if self.group(group)?.streams.contains_key(stream) {
                    return Err(ApiError::already_exists());
                }
            }
            MetaChange::DeleteStream { group, stream } => {
                if !self.group(group)?.streams.contains_key(stream) {
                    return Err(ApiError::stream_not_found());
                }
            }
            MetaChange::PutRetention { group, .. }
            | MetaChange::Untag { group, .. }
            | MetaChange::PutDataProtectionPolicy { group, .. } => {
                self.group(group)?;
            }
            MetaChange::PutAccountDataProtectionPolicy { .. } => {}
            MetaChange::DeleteAccountDataProtectionPolicy { name } => {
                if self.account_data_protection.as_ref().map(|p| &p.name) != Some(name) {
                    return Err(ApiError::new(
                        logwell_model::ErrorKind::ResourceNotFound,
                        "Policy with the specified name does not exist.",
                    ));
                }
            }
            MetaChange::DeleteDataProtectionPolicy { group } => {
                if self.group(group)?.data_protection.is_none() {
                    return Err(ApiError::new(
                        logwell_model::ErrorKind::ResourceNotFound,
                        "The specified data protection policy does not exist.",
                    ));
                }
            }
            MetaChange::PutSubscriptionFilter { group, name, .. } => {
                let g = self.group(group)?;
                if !g.subscriptions.contains_key(name)
                    && g.subscriptions.len() >= MAX_SUBSCRIPTION_FILTERS
                {
                    return Err(ApiError::new(
                        logwell_model::ErrorKind::LimitExceeded,
                        "Resource limit exceeded.",
                    ));
                }
            }
            MetaChange::DeleteSubscriptionFilter { group, name } => {
                if !self.group(group)?.subscriptions.contains_key(name) {
                    return Err(ApiError::new(
                        logwell_model::ErrorKind::ResourceNotFound,
                        "The specified subscription filter does not exist.",
                    ));
                }
            }
            MetaChange::AdvanceSubscription { group, .. } => {
                self.group(group)?;
            }
            MetaChange::SetDataKeys { .. } => {}
            MetaChange::SetKmsKey {
                group, previous, ..
            } => {
                if self.group(group)?.data_key != *previous {
                    return Err(ApiError::new(
                        logwell_model::ErrorKind::OperationAborted,
                        "The log group's key changed meanwhile; retry the request.",
                    ));
                }
            }
            MetaChange::Tag { group, tags } => {
                let g = self.group(group)?;
                let total = g
                    .tags
                    .keys()
                    .chain(tags.keys())
                    .collect::<std::collections::BTreeSet<_>>()
                    .len();
                if total > 50 {
                    return Err(ApiError::new(
                        logwell_model::ErrorKind::TooManyTags,
                        "A resource can have no more than 50 tags.",
                    ));
                }
            }
        }
        Ok(())
    }

    /// Applies a change written at WAL position `lsn`. Changes that no longer apply are ignored,
    /// so replay is safe whatever state it starts from.
    pub fn apply(&mut self, change: &MetaChange, lsn: u64) {
        match change.clone() {
            MetaChange::CreateGroup {
                name,
                group_id,
                creation_time,
                kms_key_id,
                class,
                tags,
                deletion_protection,
                data_key,
            } => {
                self.next_group_id = self.next_group_id.max(group_id + 1);
                self.groups.entry(name).or_insert(GroupMeta {
                    group_id,
                    creation_time,
                    retention_days: None,
                    kms_key_id,
                    class,
                    deletion_protection,
                    tags,
                    streams: BTreeMap::new(),
                    deleted_streams: BTreeMap::new(),
                    subscriptions: BTreeMap::new(),
                    data_protection: None,
                    data_key,
                });
            }
            MetaChange::DeleteGroup { name } => {
                self.groups.remove(&name);
            }
            MetaChange::CreateStream {
                group,
                stream,
                creation_time,
            } => {
                if let Some(g) = self.groups.get_mut(&group) {
                    g.streams.entry(stream).or_insert(StreamMeta {
                        creation_time,
                        ..Default::default()
                    });
                }
            }
            MetaChange::DeleteStream { group, stream } => {
                if let Some(g) = self.groups.get_mut(&group) {
                    if g.streams.remove(&stream).is_some() {
                        g.deleted_streams
                            .insert(stream, (lsn << SEQ_INDEX_BITS) as i64);
                    }
                }
            }
            MetaChange::PutDataProtectionPolicy {
                group,
                document,
                last_updated,
            } => {
                if let Some(g) = self.groups.get_mut(&group) {
                    g.data_protection = Some(DataProtectionPolicy {
                        document,
                        last_updated,
                    });
                }
            }
            MetaChange::DeleteDataProtectionPolicy { group } => {
                if let Some(g) = self.groups.get_mut(&group) {
                    g.data_protection = None;
                }
            }
            MetaChange::PutAccountDataProtectionPolicy {
                name,
                document,
                last_updated,
            } => {
                self.account_data_protection = Some(AccountDataProtectionPolicy {
                    name,
                    document,
                    last_updated,
                });
            }
            MetaChange::DeleteAccountDataProtectionPolicy { .. } => {
                self.account_data_protection = None;
            }
            MetaChange::SetDataKeys { keys } => {
                for (group, key) in keys {
                    if let Some(g) = self.groups.get_mut(&group) {
                        g.data_key = Some(key);
                    }
                }
            }
            MetaChange::SetKmsKey {
                group,
                kms_key_id,
                data_key,
                previous,
            } => {
                if let Some(g) = self.groups.get_mut(&group) {
                    // Replayed in WAL order after a successful check; a stale one changes nothing.
                    if g.data_key == previous {
                        g.kms_key_id = kms_key_id;
                        g.data_key = data_key;
                    }
                }
            }
            MetaChange::PutRetention { group, days } => {
                if let Some(g) = self.groups.get_mut(&group) {
                    g.retention_days = days;
                }
            }
            MetaChange::Tag { group, tags } => {
                if let Some(g) = self.groups.get_mut(&group) {
                    g.tags.extend(tags);
                }
            }
            MetaChange::Untag { group, keys } => {
                if let Some(g) = self.groups.get_mut(&group) {
                    for k in keys {
                        g.tags.remove(&k);
                    }
                }
            }
            MetaChange::PutSubscriptionFilter {
                group,
                name,
                mut filter,
            } => {
                if let Some(g) = self.groups.get_mut(&group) {
                    let count = g.subscriptions.len();
                    match g.subscriptions.get_mut(&name) {
                        // A changed filter goes on from where delivery is.
                        Some(existing) => {
                            filter.delivered_seq = existing.delivered_seq;
                            filter.creation_time = existing.creation_time;
                            *existing = filter;
                        }
                        // A new one delivers the events that follow it.
                        None if count < MAX_SUBSCRIPTION_FILTERS => {
                            filter.delivered_seq = (lsn << SEQ_INDEX_BITS) as i64;
                            g.subscriptions.insert(name, filter);
                        }
                        None => {}
                    }
                }
            }
            MetaChange::DeleteSubscriptionFilter { group, name } => {
                if let Some(g) = self.groups.get_mut(&group) {
                    g.subscriptions.remove(&name);
                }
            }
            MetaChange::AdvanceSubscription { group, name, seq } => {
                if let Some(s) = self
                    .groups
                    .get_mut(&group)
                    .and_then(|g| g.subscriptions.get_mut(&name))
                {
                    s.delivered_seq = s.delivered_seq.max(seq);
                }
            }
        }
    }
}

/// A Parquet segment as the catalog knows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SegmentMeta {
    pub path: String,
    pub group_id: u64,
    pub rows: u64,
    pub bytes: u64,
    pub raw_bytes: u64,
    pub min_ts: i64,
    pub max_ts: i64,
    /// Lowest seq (absent in segments written before it was recorded: read them to know).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_seq: Option<i64>,
    pub max_seq: i64,
    /// Distinct streams, when there are few enough to be worth listing (for pruning).
    #[serde(default)]
    pub streams: Option<Vec<String>>,
    /// 0 for a flushed segment, 1+ for a compacted one.
    pub level: u32,
    pub created_ms: i64,
    /// Discovered fields the file also holds as `field:<path>` columns (sorted).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<String>,
    /// Those of `fields` held as Float64 columns, every value a number printed as written
    /// (absent in segments written before: all text).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub numeric: Vec<String>,
    /// Its messages are stored split into `message_template` and `message_vars`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub templated: bool,
    /// Encrypted with its group's data key (Parquet modular encryption).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub encrypted: bool,
    /// Encrypted instead with a key of its own, wrapped by the keyring: a flush that found its
    /// group's KMS key unusable wrote it so, rather than holding up every group's flush.
    /// Compaction rewrites it under the group's key once that key is usable again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_key: Option<String>,
}

/// Streams listed in segment metadata for pruning, up to this many.
pub const MAX_LISTED_STREAMS: usize = 64;

/// The durable catalog document.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub version: u64,
    /// Everything in the WAL up to this position is in `metadata` and `segments`.
    pub wal_lsn: u64,
    pub metadata: Metadata,
    pub segments: Vec<SegmentMeta>,
    /// The node that wrote it: WAL positions are that node's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub writer: Option<String>,
}

pub const MANIFEST_DIR: &str = "catalog";

pub fn manifest_path(version: u64) -> String {
    format!("{MANIFEST_DIR}/manifest-{version:020}.json.zst")
}

/// The version of the manifest at `path`, in either form.
pub fn parse_manifest_version(path: &str) -> Option<u64> {
    let name = path.rsplit('/').next()?.strip_prefix("manifest-")?;
    let version = name
        .strip_suffix(".json.zst")
        .or(name.strip_suffix(".json"))?;
    version.parse().ok()
}

/// Whether `path` is a manifest as earlier versions wrote them (plain JSON).
pub fn is_plain_manifest(path: &str) -> bool {
    path.ends_with(".json")
}

/// zstd's frame magic number, which no JSON text starts with.
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

impl Manifest {
    /// The bytes stored: its JSON, zstd-compressed (a tenth of the size).
    pub fn to_stored(&self) -> Vec<u8> {
        let json = serde_json::to_vec(self).expect("manifest serialises");
        zstd::bulk::compress(&json, 9).expect("compressing in memory cannot fail")
    }

    /// A manifest from stored bytes: compressed, or plain JSON as earlier versions wrote it.
    pub fn from_stored(bytes: &[u8]) -> Result<Manifest, String> {
        let json = match bytes.starts_with(&ZSTD_MAGIC) {
            true => zstd::stream::decode_all(bytes).map_err(|e| format!("not zstd: {e}"))?,
            false => bytes.to_vec(),
        };
        serde_json::from_slice(&json).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create(name: &str, id: u64) -> MetaChange {
        MetaChange::CreateGroup {
            name: name.into(),
            group_id: id,
            creation_time: 1,
            kms_key_id: None,
            class: "STANDARD".into(),
            tags: BTreeMap::new(),
            deletion_protection: false,
            data_key: None,
        }
    }

    #[test]
    fn checks_give_aws_errors_and_apply_is_idempotent() {
        let mut m = Metadata::default();
        m.apply(&create("/a", 0), 1);
        assert_eq!(
            m.check(&create("/a", 1)).unwrap_err(),
            ApiError::already_exists()
        );
        m.apply(&create("/a", 0), 1);
        assert_eq!(m.next_group_id, 1);
        let cs = MetaChange::CreateStream {
            group: "/a".into(),
            stream: "s".into(),
            creation_time: 2,
        };
        assert!(m.check(&cs).is_ok());
        m.apply(&cs, 2);
        assert_eq!(m.check(&cs).unwrap_err(), ApiError::already_exists());
        let ds = MetaChange::DeleteStream {
            group: "/a".into(),
            stream: "s".into(),
        };
        m.apply(&ds, 3);
        assert_eq!(m.groups["/a"].deleted_streams["s"], 3 << SEQ_INDEX_BITS);
        assert_eq!(m.check(&ds).unwrap_err(), ApiError::stream_not_found());
        let missing = MetaChange::DeleteGroup {
            name: "/nope".into(),
        };
        assert_eq!(m.check(&missing).unwrap_err(), ApiError::group_not_found());
        assert_eq!(parse_manifest_version(&manifest_path(42)), Some(42));
        assert_eq!(
            parse_manifest_version("catalog/manifest-00000000000000000007.json"),
            Some(7)
        );
        assert!(is_plain_manifest(
            "catalog/manifest-00000000000000000007.json"
        ));
        assert!(!is_plain_manifest(&manifest_path(7)));
    }

    #[test]
    fn manifests_are_stored_compressed_and_plain_ones_still_read() {
        let mut m = Manifest {
            version: 9,
            wal_lsn: 77,
            writer: Some("node-a".into()),
            ..Default::default()
        };
        m.metadata.apply(&create("/a", 0), 1);
        let stored = m.to_stored();
        assert!(stored.starts_with(&ZSTD_MAGIC));
        assert_eq!(Manifest::from_stored(&stored).unwrap(), m);
        let plain = serde_json::to_vec(&m).unwrap();
        assert_eq!(Manifest::from_stored(&plain).unwrap(), m);
        assert!(Manifest::from_stored(b"").is_err());
        assert!(Manifest::from_stored(&stored[..stored.len() / 2]).is_err());
    }
}

//! What the write-ahead log records: every change to the store, as a compact binary record.
//!
//! Metadata changes are rare and use JSON; event batches are hot and use a length-prefixed
//! binary layout so encoding them is a copy, not a serialisation.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A metadata change.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "op")]
pub enum MetaChange {
    CreateGroup {
        name: String,
        group_id: u64,
        creation_time: i64,
        kms_key_id: Option<String>,
        class: String,
        tags: BTreeMap<String, String>,
        deletion_protection: bool,
        /// The group's data key, wrapped by the keyring's master key.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        data_key: Option<String>,
    },
    /// Data keys wrapped again (by a new master key): group -> wrapped key.
    SetDataKeys {
        keys: BTreeMap<String, String>,
    },
    /// A KMS key associated with a group (or taken away), and its data key wrapped again;
    /// applied only if the group's wrapped key is still `previous`.
    SetKmsKey {
        group: String,
        kms_key_id: Option<String>,
        data_key: Option<String>,
        previous: Option<String>,
    },
    DeleteGroup {
        name: String,
    },
    CreateStream {
        group: String,
        stream: String,
        creation_time: i64,
    },
    DeleteStream {
        group: String,
        stream: String,
    },
    PutRetention {
        group: String,
        days: Option<i32>,
    },
    Tag {
        group: String,
        tags: BTreeMap<String, String>,
    },
    Untag {
        group: String,
        keys: Vec<String>,
    },
    /// Creates or replaces a subscription filter (a new one starts after this record).
    PutSubscriptionFilter {
        group: String,
        name: String,
        filter: crate::catalog::SubscriptionFilter,
    },
    DeleteSubscriptionFilter {
        group: String,
        name: String,
    },
    PutDataProtectionPolicy {
        group: String,
        document: String,
        last_updated: i64,
    },
    DeleteDataProtectionPolicy {
        group: String,
    },
    /// The account's data protection policy (one per account), put or replaced.
    PutAccountDataProtectionPolicy {
        name: String,
        document: String,
        last_updated: i64,
    },
    DeleteAccountDataProtectionPolicy {
        name: String,
    },
    /// A subscription delivered every matching event up to `seq`.
    AdvanceSubscription {
        group: String,
        name: String,
        seq: i64,
    },
}

/// A batch of events for one stream, borrowed from the WAL record that holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct EventBatch<'a> {
    pub group: &'a str,
    pub stream: &'a str,
    pub ingestion_time: i64,
    pub events: Vec<(i64, &'a str)>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Record<'a> {
    Meta(MetaChange),
    Events(EventBatch<'a>),
}

const TAG_META: u8 = 1;
const TAG_EVENTS: u8 = 2;

/// Encodes an event batch without building an `EventBatch` first.
pub fn encode_events<'a>(
    group: &str,
    stream: &str,
    ingestion_time: i64,
    events: impl ExactSizeIterator<Item = (i64, &'a str)> + Clone,
) -> Vec<u8> {
    let body: usize = events.clone().map(|(_, m)| m.len() + 12).sum();
    let mut out = Vec::with_capacity(1 + 4 + group.len() + stream.len() + 12 + body);
    out.push(TAG_EVENTS);
    put_str(&mut out, group);
    put_str(&mut out, stream);
    out.extend_from_slice(&ingestion_time.to_le_bytes());
    out.extend_from_slice(&(events.len() as u32).to_le_bytes());
    for (ts, msg) in events {
        out.extend_from_slice(&ts.to_le_bytes());
        out.extend_from_slice(&(msg.len() as u32).to_le_bytes());
        out.extend_from_slice(msg.as_bytes());
    }
    out
}

pub fn encode_meta(change: &MetaChange) -> Vec<u8> {
    let mut out = vec![TAG_META];
    serde_json::to_writer(&mut out, change).expect("metadata change serialises");
    out
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u16).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

struct Cursor<'a> {
    buf: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.buf.len() < n {
            return None;
        }
        let (a, b) = self.buf.split_at(n);
        self.buf = b;
        Some(a)
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.take(2)?.try_into().ok()?))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn i64(&mut self) -> Option<i64> {
        Some(i64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn str(&mut self, n: usize) -> Option<&'a str> {
        std::str::from_utf8(self.take(n)?).ok()
    }
}

/// Decodes a record; `None` means the bytes are not a record this version wrote.
pub fn decode(buf: &[u8]) -> Option<Record<'_>> {
    let (&tag, rest) = buf.split_first()?;
    match tag {
        TAG_META => serde_json::from_slice(rest).ok().map(Record::Meta),
        TAG_EVENTS => {
            let mut c = Cursor { buf: rest };
            let gl = c.u16()? as usize;
            let group = c.str(gl)?;
            let sl = c.u16()? as usize;
            let stream = c.str(sl)?;
            let ingestion_time = c.i64()?;
            let n = c.u32()? as usize;
            let mut events = Vec::with_capacity(n.min(10_000));
            for _ in 0..n {
                let ts = c.i64()?;
                let len = c.u32()? as usize;
                events.push((ts, c.str(len)?));
            }
            Some(Record::Events(EventBatch {
                group,
                stream,
                ingestion_time,
                events,
            }))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip() {
        let evs = [(1i64, "a"), (2, "héllo")];
        let buf = encode_events("/g", "s", 99, evs.iter().copied());
        let rec = decode(&buf).unwrap();
        assert_eq!(
            rec,
            Record::Events(EventBatch {
                group: "/g",
                stream: "s",
                ingestion_time: 99,
                events: vec![(1, "a"), (2, "héllo")],
            })
        );
    }

    #[test]
    fn meta_round_trips_and_garbage_is_refused() {
        let m = MetaChange::PutRetention {
            group: "/g".into(),
            days: Some(7),
        };
        assert_eq!(decode(&encode_meta(&m)), Some(Record::Meta(m)));
        assert_eq!(decode(&[9, 1, 2]), None);
        let mut truncated = encode_events("/g", "s", 1, [(1i64, "abc")].into_iter());
        truncated.pop();
        assert_eq!(decode(&truncated), None);
    }
}

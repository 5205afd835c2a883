//! What a destination receives, in CloudWatch's shapes.

use logwell_model::api_subscriptions::{SubscriptionLogEvent, SubscriptionMessage};
use logwell_storage::EventRow;

/// The test message CloudWatch sends a destination when a filter is created.
pub fn control_message(now_ms: i64, text: &str) -> SubscriptionMessage {
    SubscriptionMessage {
        message_type: "CONTROL_MESSAGE".into(),
        // Spelled as it arrives from CloudWatch (and as Firehose parsers match it).
        owner: "CloudwatchLogs".into(),
        log_group: String::new(),
        log_stream: String::new(),
        subscription_filters: Vec::new(),
        log_events: vec![SubscriptionLogEvent {
            id: String::new(),
            timestamp: now_ms,
            message: text.into(),
        }],
    }
}

/// `DATA_MESSAGE`s for `events` (in applied order): one per log stream and at most about
/// `max_bytes` of messages each, every stream's events in their order. Event ids are the ones
/// FilterLogEvents reports, so a receiver can recognise an event delivered twice.
pub fn data_messages(
    owner: &str,
    group: &str,
    filter: &str,
    events: Vec<EventRow>,
    max_bytes: usize,
) -> Vec<SubscriptionMessage> {
    let mut out: Vec<SubscriptionMessage> = Vec::new();
    // The message being filled for each stream, as an index into `out`, and its size.
    let mut open: std::collections::HashMap<String, (usize, usize)> = Default::default();
    for e in events {
        let size = e.message.len() + 80;
        let slot = match open.get(e.stream.as_str()) {
            Some(&(i, bytes)) if bytes + size <= max_bytes => Some(i),
            _ => None,
        };
        let i = match slot {
            Some(i) => i,
            None => {
                out.push(SubscriptionMessage {
                    message_type: "DATA_MESSAGE".into(),
                    owner: owner.into(),
                    log_group: group.into(),
                    log_stream: e.stream.clone(),
                    subscription_filters: vec![filter.into()],
                    log_events: Vec::new(),
                });
                open.insert(e.stream.clone(), (out.len() - 1, 0));
                out.len() - 1
            }
        };
        out[i].log_events.push(SubscriptionLogEvent {
            id: format!("{:056}", e.seq),
            timestamp: e.timestamp,
            message: e.message,
        });
        open.get_mut(e.stream.as_str()).expect("just opened").1 += size;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(stream: &str, seq: i64, message: &str) -> EventRow {
        EventRow {
            stream: stream.into(),
            timestamp: seq * 10,
            ingestion_time: 0,
            seq,
            message: message.into(),
        }
    }

    #[test]
    fn one_message_per_stream_in_order_and_split_by_size() {
        let rows = [
            row("a", 1, "a1"),
            row("b", 2, "b1"),
            row("a", 3, "a2"),
            row("a", 4, &"x".repeat(100)),
        ];
        let m = data_messages("123", "/g", "f", rows.to_vec(), 200);
        let shape: Vec<(&str, Vec<&str>)> = m
            .iter()
            .map(|m| {
                (
                    m.log_stream.as_str(),
                    m.log_events.iter().map(|e| e.id.as_str()).collect(),
                )
            })
            .collect();
        let id = |s: i64| format!("{s:056}");
        assert_eq!(
            shape,
            vec![
                ("a", vec![id(1).as_str(), id(3).as_str()]),
                ("b", vec![id(2).as_str()]),
                ("a", vec![id(4).as_str()]),
            ]
        );
        assert_eq!(m[0].subscription_filters, ["f"]);
        assert_eq!(m[0].message_type, "DATA_MESSAGE");
        assert_eq!(m[1].log_events[0].timestamp, 20);
    }
}

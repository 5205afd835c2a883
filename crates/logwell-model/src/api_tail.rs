//! StartLiveTail's request and the events of its response stream (`responseStream`).

use serde::{Deserialize, Serialize};

#[derive(Debug, Default, Deserialize, Serialize, Clone)]
#[serde(rename_all = "camelCase")]
pub struct StartLiveTailRequest {
    pub log_group_identifiers: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_stream_names: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_stream_name_prefixes: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_event_filter_pattern: Option<String>,
}

/// The `sessionStart` event: the session's id and what it tails.
#[derive(Debug, Default, Deserialize, Serialize, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LiveTailSessionStart {
    pub request_id: String,
    pub session_id: String,
    pub log_group_identifiers: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_stream_names: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_stream_name_prefixes: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_event_filter_pattern: Option<String>,
}

/// A `sessionUpdate` event: the events since the last one (empty as a heartbeat).
#[derive(Debug, Default, Deserialize, Serialize, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LiveTailSessionUpdate {
    pub session_metadata: LiveTailSessionMetadata,
    pub session_results: Vec<LiveTailSessionLogEvent>,
}

#[derive(Debug, Default, Deserialize, Serialize, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LiveTailSessionMetadata {
    /// Some matching events were left out (more than an update holds, or a slow reader).
    pub sampled: bool,
}

#[derive(Debug, Default, Deserialize, Serialize, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LiveTailSessionLogEvent {
    pub log_stream_name: String,
    /// `ACCOUNT:GROUP`, as CloudWatch reports it.
    pub log_group_identifier: String,
    pub message: String,
    pub timestamp: i64,
    pub ingestion_time: i64,
}

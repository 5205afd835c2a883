//! Subscription filters: requests, responses and what a destination receives.

use serde::{Deserialize, Serialize};

#[derive(Debug, Default, Deserialize, Serialize, Clone)]
#[serde(rename_all = "camelCase")]
pub struct PutSubscriptionFilterRequest {
    pub log_group_name: String,
    pub filter_name: String,
    pub filter_pattern: String,
    pub destination_arn: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distribution: Option<String>,
}

#[derive(Debug, Default, Deserialize, Serialize, Clone)]
#[serde(rename_all = "camelCase")]
pub struct DeleteSubscriptionFilterRequest {
    pub log_group_name: String,
    pub filter_name: String,
}

#[derive(Debug, Default, Deserialize, Serialize, Clone)]
#[serde(rename_all = "camelCase")]
pub struct DescribeSubscriptionFiltersRequest {
    pub log_group_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter_name_prefix: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
}

#[derive(Debug, Default, Deserialize, Serialize, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionFilter {
    pub filter_name: String,
    pub log_group_name: String,
    pub filter_pattern: String,
    pub destination_arn: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    pub distribution: String,
    pub creation_time: i64,
}

#[derive(Debug, Default, Deserialize, Serialize, Clone)]
#[serde(rename_all = "camelCase")]
pub struct DescribeSubscriptionFiltersResponse {
    pub subscription_filters: Vec<SubscriptionFilter>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

/// What a subscription's destination receives (gzip-compressed JSON): matching events of one
/// log stream (`DATA_MESSAGE`), or the test message sent when a filter is created
/// (`CONTROL_MESSAGE`).
#[derive(Debug, Default, Deserialize, Serialize, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionMessage {
    pub message_type: String,
    pub owner: String,
    pub log_group: String,
    pub log_stream: String,
    pub subscription_filters: Vec<String>,
    pub log_events: Vec<SubscriptionLogEvent>,
}

#[derive(Debug, Default, Deserialize, Serialize, Clone, PartialEq)]
pub struct SubscriptionLogEvent {
    pub id: String,
    pub timestamp: i64,
    pub message: String,
}

//! Destinations (cross-account subscription targets): requests and responses, and the message
//! one logwell server sends another to deliver through a destination.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Default, Deserialize, Serialize, Clone)]
#[serde(rename_all = "camelCase")]
pub struct PutDestinationRequest {
    pub destination_name: String,
    pub target_arn: String,
    pub role_arn: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize, Serialize, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Destination {
    pub destination_name: String,
    pub target_arn: String,
    pub role_arn: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_policy: Option<String>,
    pub arn: String,
    pub creation_time: i64,
}

#[derive(Debug, Default, Deserialize, Serialize, Clone)]
#[serde(rename_all = "camelCase")]
pub struct PutDestinationResponse {
    pub destination: Destination,
}

#[derive(Debug, Default, Deserialize, Serialize, Clone)]
#[serde(rename_all = "camelCase")]
pub struct PutDestinationPolicyRequest {
    pub destination_name: String,
    pub access_policy: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub force_update: Option<bool>,
}

#[derive(Debug, Default, Deserialize, Serialize, Clone)]
pub struct DescribeDestinationsRequest {
    /// Capitalised in AWS's API, unlike every other member.
    #[serde(
        rename = "DestinationNamePrefix",
        skip_serializing_if = "Option::is_none"
    )]
    pub destination_name_prefix: Option<String>,
    #[serde(rename = "nextToken", skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
}

#[derive(Debug, Default, Deserialize, Serialize, Clone)]
#[serde(rename_all = "camelCase")]
pub struct DescribeDestinationsResponse {
    pub destinations: Vec<Destination>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

#[derive(Debug, Default, Deserialize, Serialize, Clone)]
#[serde(rename_all = "camelCase")]
pub struct DeleteDestinationRequest {
    pub destination_name: String,
}

/// `Logs_20140328.LogwellDeliverToDestination`: what a sending logwell server posts to the
/// recipient's server. `data` is the subscription message, gzip-compressed and base64-encoded,
/// as a Lambda receives it.
#[derive(Debug, Default, Deserialize, Serialize, Clone)]
#[serde(rename_all = "camelCase")]
pub struct DeliverToDestinationRequest {
    pub destination_name: String,
    pub source_account: String,
    pub data: String,
    /// The destination's account, so a server hosting several accounts finds the right one
    /// (senders before it left it out: the recipient's own account is meant).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_account: Option<String>,
}

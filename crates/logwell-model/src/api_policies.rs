//! Resource policies (PutResourcePolicy and friends): requests and responses.

use serde::{Deserialize, Serialize};

#[derive(Debug, Default, Deserialize, Serialize, Clone)]
#[serde(rename_all = "camelCase")]
pub struct PutResourcePolicyRequest {
    pub policy_name: Option<String>,
    pub policy_document: Option<String>,
}

#[derive(Debug, Default, Deserialize, Serialize, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ResourcePolicy {
    pub policy_name: String,
    pub policy_document: String,
    pub last_updated_time: i64,
}

#[derive(Debug, Default, Deserialize, Serialize, Clone)]
#[serde(rename_all = "camelCase")]
pub struct PutResourcePolicyResponse {
    pub resource_policy: ResourcePolicy,
}

#[derive(Debug, Default, Deserialize, Serialize, Clone)]
#[serde(rename_all = "camelCase")]
pub struct DescribeResourcePoliciesRequest {
    pub next_token: Option<String>,
    pub limit: Option<i64>,
}

#[derive(Debug, Default, Deserialize, Serialize, Clone)]
#[serde(rename_all = "camelCase")]
pub struct DescribeResourcePoliciesResponse {
    pub resource_policies: Vec<ResourcePolicy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

#[derive(Debug, Default, Deserialize, Serialize, Clone)]
#[serde(rename_all = "camelCase")]
pub struct DeleteResourcePolicyRequest {
    pub policy_name: Option<String>,
}

//! Resource policies (PutResourcePolicy and friends) and data protection policies
//! (PutDataProtectionPolicy and friends): requests and responses.

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

#[derive(Debug, Default, Deserialize, Serialize, Clone)]
#[serde(rename_all = "camelCase")]
pub struct PutDataProtectionPolicyRequest {
    pub log_group_identifier: Option<String>,
    pub policy_document: Option<String>,
}

/// PutDataProtectionPolicy's and GetDataProtectionPolicy's answer.
#[derive(Debug, Default, Deserialize, Serialize, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DataProtectionPolicyResponse {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_group_identifier: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_document: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_updated_time: Option<i64>,
}

/// GetDataProtectionPolicy's and DeleteDataProtectionPolicy's request.
#[derive(Debug, Default, Deserialize, Serialize, Clone)]
#[serde(rename_all = "camelCase")]
pub struct DataProtectionPolicyRequest {
    pub log_group_identifier: Option<String>,
}

/// AssociateKmsKey: `kmsKeyId` and either `logGroupName` or `resourceIdentifier`.
#[derive(Debug, Default, Deserialize, Serialize, Clone)]
#[serde(rename_all = "camelCase")]
pub struct AssociateKmsKeyRequest {
    pub log_group_name: Option<String>,
    pub resource_identifier: Option<String>,
    pub kms_key_id: Option<String>,
}

/// DisassociateKmsKey: `logGroupName` or `resourceIdentifier`.
#[derive(Debug, Default, Deserialize, Serialize, Clone)]
#[serde(rename_all = "camelCase")]
pub struct DisassociateKmsKeyRequest {
    pub log_group_name: Option<String>,
    pub resource_identifier: Option<String>,
}

#[derive(Debug, Default, Deserialize, Serialize, Clone)]
#[serde(rename_all = "camelCase")]
pub struct PutAccountPolicyRequest {
    pub policy_name: Option<String>,
    pub policy_document: Option<String>,
    pub policy_type: Option<String>,
    pub scope: Option<String>,
    pub selection_criteria: Option<String>,
}

/// An account-level policy as PutAccountPolicy and DescribeAccountPolicies show it.
#[derive(Debug, Default, Deserialize, Serialize, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AccountPolicy {
    pub policy_name: String,
    pub policy_document: String,
    pub last_updated_time: i64,
    pub policy_type: String,
    pub scope: String,
    pub account_id: String,
}

#[derive(Debug, Default, Deserialize, Serialize, Clone)]
#[serde(rename_all = "camelCase")]
pub struct PutAccountPolicyResponse {
    pub account_policy: AccountPolicy,
}

#[derive(Debug, Default, Deserialize, Serialize, Clone)]
#[serde(rename_all = "camelCase")]
pub struct DescribeAccountPoliciesRequest {
    pub policy_type: Option<String>,
    pub policy_name: Option<String>,
    pub account_identifiers: Option<Vec<String>>,
    pub next_token: Option<String>,
}

#[derive(Debug, Default, Deserialize, Serialize, Clone)]
#[serde(rename_all = "camelCase")]
pub struct DescribeAccountPoliciesResponse {
    pub account_policies: Vec<AccountPolicy>,
}

#[derive(Debug, Default, Deserialize, Serialize, Clone)]
#[serde(rename_all = "camelCase")]
pub struct DeleteAccountPolicyRequest {
    pub policy_name: Option<String>,
    pub policy_type: Option<String>,
}

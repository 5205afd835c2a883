//! Request bodies of the Logs Insights operations (StartQuery and its siblings, saved query
//! definitions) and of the lookup-table operations. Every member is optional here: the
//! operations say which are required, with AWS's wording.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

#[derive(Debug, Deserialize, Serialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct StartQueryRequest {
    pub log_group_name: Option<String>,
    pub log_group_names: Option<Vec<String>>,
    pub log_group_identifiers: Option<Vec<String>>,
    pub start_time: Option<i64>,
    pub end_time: Option<i64>,
    pub query_string: Option<String>,
    pub limit: Option<i64>,
    pub query_language: Option<String>,
}

/// GetQueryResults and StopQuery.
#[derive(Debug, Deserialize, Serialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct QueryIdRequest {
    pub query_id: Option<String>,
    pub next_token: Option<String>,
    pub max_items: Option<i64>,
}

#[derive(Debug, Deserialize, Serialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct DescribeQueriesRequest {
    pub log_group_name: Option<String>,
    pub status: Option<String>,
    pub max_results: Option<i64>,
    pub next_token: Option<String>,
    pub query_language: Option<String>,
}

#[derive(Debug, Deserialize, Serialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct GetLogRecordRequest {
    pub log_record_pointer: Option<String>,
}

#[derive(Debug, Deserialize, Serialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct PutQueryDefinitionRequest {
    pub name: Option<String>,
    pub query_definition_id: Option<String>,
    pub log_group_names: Option<Vec<String>>,
    pub query_string: Option<String>,
    pub query_language: Option<String>,
    pub parameters: Option<Value>,
}

#[derive(Debug, Deserialize, Serialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct DescribeQueryDefinitionsRequest {
    pub query_definition_name_prefix: Option<String>,
    pub max_results: Option<i64>,
    pub next_token: Option<String>,
    pub query_language: Option<String>,
}

#[derive(Debug, Deserialize, Serialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct DeleteQueryDefinitionRequest {
    pub query_definition_id: Option<String>,
}

/// CreateLookupTable, GetLookupTable, UpdateLookupTable, DeleteLookupTable and
/// DescribeLookupTables.
#[derive(Debug, Deserialize, Serialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct LookupTableRequest {
    pub lookup_table_name: Option<String>,
    pub lookup_table_arn: Option<String>,
    pub description: Option<String>,
    pub table_body: Option<String>,
    pub query_id: Option<String>,
    pub kms_key_id: Option<String>,
    pub tags: Option<BTreeMap<String, String>>,
    pub lookup_table_name_prefix: Option<String>,
    pub max_results: Option<i64>,
    pub next_token: Option<String>,
}

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
    /// Show text a data protection policy masks (needs logs:Unmask).
    pub unmask: Option<bool>,
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

/// A query's state, as GetQueryResults and DescribeQueries report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum QueryStatus {
    Scheduled,
    Running,
    Complete,
    Failed,
    Cancelled,
    Timeout,
}

#[derive(Debug, Deserialize, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct StartQueryResponse {
    pub query_id: String,
}

/// One field of one result row.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
pub struct ResultField {
    pub field: String,
    pub value: String,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct QueryStatistics {
    pub records_matched: f64,
    pub records_scanned: f64,
    pub bytes_scanned: f64,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GetQueryResultsResponse {
    pub query_language: String,
    pub status: QueryStatus,
    pub statistics: QueryStatistics,
    pub results: Vec<Vec<ResultField>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

/// StopQuery and DeleteQueryDefinition.
#[derive(Debug, Deserialize, Serialize)]
pub struct SuccessResponse {
    pub success: bool,
}

/// One query as DescribeQueries lists it.
#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryInfo {
    pub query_id: String,
    pub query_string: String,
    pub status: QueryStatus,
    pub create_time: i64,
    pub query_language: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_group_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_duration: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_scanned: Option<f64>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DescribeQueriesResponse {
    pub queries: Vec<QueryInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GetLogRecordResponse {
    pub log_record: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PutQueryDefinitionResponse {
    pub query_definition_id: String,
}

/// A saved query, as DescribeQueryDefinitions lists it (and as logwell keeps it).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryDefinition {
    pub query_definition_id: String,
    pub name: String,
    pub query_string: String,
    pub last_modified: i64,
    #[serde(default)]
    pub log_group_names: Vec<String>,
    pub query_language: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Value>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DescribeQueryDefinitionsResponse {
    pub query_definitions: Vec<QueryDefinition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateLookupTableResponse {
    pub lookup_table_arn: String,
    pub created_at: i64,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GetLookupTableResponse {
    pub lookup_table_arn: String,
    pub lookup_table_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub table_body: String,
    pub size_bytes: u64,
    pub last_updated_time: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateLookupTableResponse {
    pub lookup_table_arn: String,
    pub last_updated_time: i64,
}

/// One lookup table as DescribeLookupTables lists it.
#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LookupTableInfo {
    pub lookup_table_arn: String,
    pub lookup_table_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub table_fields: Vec<String>,
    pub records_count: u64,
    pub size_bytes: u64,
    pub last_updated_time: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DescribeLookupTablesResponse {
    pub lookup_tables: Vec<LookupTableInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

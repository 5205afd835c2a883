//! Export tasks: requests and responses.

use serde::{Deserialize, Serialize};

#[derive(Debug, Default, Deserialize, Serialize, Clone)]
#[serde(rename_all = "camelCase")]
pub struct CreateExportTaskRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_name: Option<String>,
    pub log_group_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_stream_name_prefix: Option<String>,
    pub from: i64,
    pub to: i64,
    pub destination: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination_prefix: Option<String>,
    /// logwell's option (not in AWS's API): `parquet` writes Parquet files instead of gzip text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logwell_format: Option<String>,
}

#[derive(Debug, Default, Deserialize, Serialize, Clone)]
#[serde(rename_all = "camelCase")]
pub struct CreateExportTaskResponse {
    pub task_id: String,
}

#[derive(Debug, Default, Deserialize, Serialize, Clone)]
#[serde(rename_all = "camelCase")]
pub struct DescribeExportTasksRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
}

#[derive(Debug, Default, Deserialize, Serialize, Clone)]
#[serde(rename_all = "camelCase")]
pub struct DescribeExportTasksResponse {
    pub export_tasks: Vec<ExportTask>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

#[derive(Debug, Default, Deserialize, Serialize, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ExportTask {
    pub task_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_name: Option<String>,
    pub log_group_name: String,
    pub from: i64,
    pub to: i64,
    pub destination: String,
    pub destination_prefix: String,
    pub status: ExportTaskStatus,
    pub execution_info: ExportTaskExecutionInfo,
    /// logwell's addition: how far the task has got (clients that do not know it ignore it).
    #[serde(default)]
    pub logwell_progress: ExportProgress,
}

#[derive(Debug, Default, Deserialize, Serialize, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ExportTaskStatus {
    /// PENDING, RUNNING, COMPLETED, CANCELLED or FAILED.
    pub code: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[derive(Debug, Default, Deserialize, Serialize, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ExportTaskExecutionInfo {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub creation_time: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<i64>,
}

#[derive(Debug, Default, Deserialize, Serialize, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ExportProgress {
    /// Events and bytes of text written so far.
    pub events: u64,
    pub bytes: u64,
    /// Objects written so far.
    pub objects: u64,
    /// Estimated fraction done, 0 to 1.
    pub fraction: f64,
}

#[derive(Debug, Default, Deserialize, Serialize, Clone)]
#[serde(rename_all = "camelCase")]
pub struct CancelExportTaskRequest {
    pub task_id: String,
}

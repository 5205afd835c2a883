//! Every CloudWatch Logs operation this server answers, declared once: its name, the IAM action
//! it needs, the resource it acts on, and its handler with typed request and response (all wire
//! shapes are in `logwell-model`). Routing, and later authentication and per-action permission
//! checks, read this one table.

use crate::transport::{decode, encode};
use crate::{lookup_tables::LookupTableStore, ops, SharedApp};
use axum::body::Bytes;
use logwell_model::{ApiError, ErrorKind};
use serde_json::Value;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::LazyLock;

/// What an operation acts on, for permission checks (the ARN comes from these members).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    /// One log group: `logGroupName` or `logGroupIdentifier`.
    LogGroup,
    /// A log group named by `resourceArn` (the tagging APIs).
    TaggedResource,
    /// The log groups a query reads: `logGroupName`, `logGroupNames` or `logGroupIdentifiers`.
    QueriedLogGroups,
    /// A lookup table: `lookupTableArn` or `lookupTableName`.
    LookupTable,
    /// The account's resources of a kind (Describe*, query definitions, queries by id).
    Account,
}

impl Resource {
    /// The ARNs a request acts on, as IAM policies match their `Resource` against them: a log
    /// group as `arn:aws:logs:REGION:ACCOUNT:log-group:NAME` (with `:log-stream:NAME` when the
    /// request names a stream), a lookup table as `...:lookup-table:NAME`, account-wide
    /// operations as `*`.
    pub fn arns(self, request: &Value, region: &str, account: &str) -> Vec<String> {
        let text = |key: &str| request.get(key).and_then(Value::as_str);
        let list = |key: &str| -> Vec<&str> {
            request
                .get(key)
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default()
        };
        // An ARN keeps its own account and region (another account's group is not this one's).
        let group = |id: &str| match id.strip_prefix("arn:") {
            Some(_) => id.strip_suffix(":*").unwrap_or(id).to_string(),
            None => logwell_model::log_group_arn_bare(region, account, id),
        };
        match self {
            Resource::LogGroup => {
                let Some(id) = text("logGroupName")
                    .or(text("logGroupIdentifier"))
                    .or(text("resourceIdentifier"))
                else {
                    return Vec::new();
                };
                let arn = group(id);
                vec![match text("logStreamName") {
                    Some(stream) => format!("{arn}:log-stream:{stream}"),
                    None => arn,
                }]
            }
            Resource::TaggedResource => text("resourceArn")
                .map(str::to_string)
                .into_iter()
                .collect(),
            Resource::QueriedLogGroups => text("logGroupName")
                .into_iter()
                .chain(list("logGroupNames"))
                .chain(list("logGroupIdentifiers"))
                .map(group)
                .collect(),
            Resource::LookupTable => match (text("lookupTableArn"), text("lookupTableName")) {
                (Some(arn), _) => vec![arn.to_string()],
                (None, Some(name)) => {
                    vec![format!(
                        "arn:aws:logs:{region}:{account}:lookup-table:{name}"
                    )]
                }
                (None, None) => Vec::new(),
            },
            Resource::Account => vec!["*".to_string()],
        }
    }
}

/// What an operation answers: a JSON body, or a stream (StartLiveTail).
pub(crate) enum Output {
    Json(String),
    Stream(axum::response::Response),
}

type Reply = Pin<Box<dyn Future<Output = Result<Output, ApiError>> + Send>>;

/// One operation.
pub struct Operation {
    /// The `X-Amz-Target` suffix: `PutLogEvents`.
    pub name: &'static str,
    /// The IAM action a caller needs: `logs:PutLogEvents`.
    pub action: &'static str,
    pub resource: Resource,
    handler: fn(SharedApp, Bytes) -> Reply,
}

/// An operation whose handler is `async fn(&App, Request) -> Result<Response, ApiError>`.
macro_rules! op {
    ($name:literal, $resource:ident, $handler:expr) => {
        Operation {
            name: $name,
            action: concat!("logs:", $name),
            resource: Resource::$resource,
            handler: |app, body| {
                Box::pin(async move {
                    let request = decode(&body)?;
                    let response = ($handler)(&app, request).await?;
                    Ok(Output::Json(encode(&response)))
                })
            },
        }
    };
}

/// The operations, in the order of CloudWatch's API reference areas.
pub static OPERATIONS: &[Operation] = &[
    op!("CreateLogGroup", LogGroup, ops::create_log_group),
    op!("DeleteLogGroup", LogGroup, ops::delete_log_group),
    op!("DescribeLogGroups", Account, ops::describe_log_groups),
    op!("CreateLogStream", LogGroup, ops::create_log_stream),
    op!("DeleteLogStream", LogGroup, ops::delete_log_stream),
    op!("DescribeLogStreams", LogGroup, ops::describe_log_streams),
    Operation {
        name: "PutLogEvents",
        action: "logs:PutLogEvents",
        resource: Resource::LogGroup,
        // Messages borrow from the body instead of being copied.
        handler: |app, body| {
            Box::pin(async move {
                let request = decode(&body)?;
                let response = ops::put_log_events(&app, request).await?;
                Ok(Output::Json(encode(&response)))
            })
        },
    },
    op!("GetLogEvents", LogGroup, ops::get_log_events),
    op!("FilterLogEvents", LogGroup, ops::filter_log_events),
    op!("PutRetentionPolicy", LogGroup, ops::put_retention_policy),
    op!(
        "DeleteRetentionPolicy",
        LogGroup,
        ops::delete_retention_policy
    ),
    op!("TagResource", TaggedResource, ops::tag_resource),
    op!("UntagResource", TaggedResource, ops::untag_resource),
    op!(
        "ListTagsForResource",
        TaggedResource,
        ops::list_tags_for_resource
    ),
    op!("TagLogGroup", LogGroup, ops::tag_log_group),
    op!("UntagLogGroup", LogGroup, ops::untag_log_group),
    op!("ListTagsLogGroup", LogGroup, ops::list_tags_log_group),
    op!("TestMetricFilter", Account, ops::test_metric_filter),
    op!("PutSubscriptionFilter", LogGroup, crate::subscriptions::put),
    op!(
        "DescribeSubscriptionFilters",
        LogGroup,
        crate::subscriptions::describe
    ),
    op!(
        "DeleteSubscriptionFilter",
        LogGroup,
        crate::subscriptions::delete
    ),
    op!("PutDestination", Account, |app: &SharedApp, r| {
        let d = app.destinations.clone();
        async move { d.put(r).await }
    }),
    op!("PutDestinationPolicy", Account, |app: &SharedApp, r| {
        let d = app.destinations.clone();
        async move { d.put_policy(r).await }
    }),
    op!("DescribeDestinations", Account, |app: &SharedApp, r| {
        std::future::ready(app.destinations.describe(r))
    }),
    op!("DeleteDestination", Account, |app: &SharedApp, r| {
        let d = app.destinations.clone();
        async move { d.delete(r).await }
    }),
    // logwell's own: another logwell server delivering through one of this server's
    // destinations (the policy decides whether its account may).
    op!(
        "LogwellDeliverToDestination",
        Account,
        |app: &SharedApp, r| {
            let d = app.destinations.clone();
            async move { d.receive(r).await }
        }
    ),
    op!("PutResourcePolicy", Account, |app: &SharedApp, r| {
        let p = app.resource_policies.clone();
        async move { p.put(r).await }
    }),
    op!("DescribeResourcePolicies", Account, |app: &SharedApp, r| {
        std::future::ready(app.resource_policies.describe(r))
    }),
    op!("DeleteResourcePolicy", Account, |app: &SharedApp, r| {
        let p = app.resource_policies.clone();
        async move { p.delete(r).await }
    }),
    op!(
        "PutDataProtectionPolicy",
        LogGroup,
        crate::data_protection::put
    ),
    op!(
        "GetDataProtectionPolicy",
        LogGroup,
        crate::data_protection::get
    ),
    op!(
        "DeleteDataProtectionPolicy",
        LogGroup,
        crate::data_protection::delete
    ),
    op!(
        "PutAccountPolicy",
        Account,
        crate::data_protection::put_account
    ),
    op!("DescribeAccountPolicies", Account, |app: &SharedApp, r| {
        std::future::ready(crate::data_protection::describe_account(app, r))
    }),
    op!(
        "DeleteAccountPolicy",
        Account,
        crate::data_protection::delete_account
    ),
    op!("AssociateKmsKey", LogGroup, crate::kms_keys::associate),
    op!(
        "DisassociateKmsKey",
        LogGroup,
        crate::kms_keys::disassociate
    ),
    op!("PutMetricFilter", LogGroup, |app: &SharedApp, r| {
        let filters = app.metric_filters.clone();
        async move { filters.put(r).await }
    }),
    op!("DescribeMetricFilters", Account, |app: &SharedApp, r| {
        std::future::ready(app.metric_filters.describe(r))
    }),
    op!("DeleteMetricFilter", LogGroup, |app: &SharedApp, r| {
        let filters = app.metric_filters.clone();
        async move { filters.delete(r).await }
    }),
    op!("CreateExportTask", LogGroup, |app: &SharedApp, r| {
        let exports = app.exports.clone();
        async move { exports.create(r).await }
    }),
    op!("DescribeExportTasks", Account, |app: &SharedApp, r| {
        std::future::ready(app.exports.describe(r))
    }),
    op!("CancelExportTask", Account, |app: &SharedApp, r| {
        let exports = app.exports.clone();
        async move {
            exports.cancel(r).await?;
            Ok::<_, ApiError>(logwell_model::api::Empty {})
        }
    }),
    Operation {
        name: "StartLiveTail",
        action: "logs:StartLiveTail",
        resource: Resource::QueriedLogGroups,
        handler: |app, body| {
            Box::pin(async move {
                let request = decode(&body)?;
                Ok(Output::Stream(crate::live_tail::start(&app, request)?))
            })
        },
    },
    op!("StartQuery", QueriedLogGroups, |app: &SharedApp, r| {
        let queries = app.queries.clone();
        async move { queries.start(r).await }
    }),
    op!("GetQueryResults", Account, |app: &SharedApp, r| {
        let queries = app.queries.clone();
        async move { queries.results_when_done(r).await }
    }),
    op!("StopQuery", Account, |app: &SharedApp, r| {
        std::future::ready(app.queries.stop(r))
    }),
    op!("DescribeQueries", Account, |app: &SharedApp, r| {
        std::future::ready(app.queries.describe(r))
    }),
    op!("GetLogRecord", Account, |app: &SharedApp, r| {
        let queries = app.queries.clone();
        async move { queries.log_record(r).await }
    }),
    op!("PutQueryDefinition", Account, |app: &SharedApp, r| {
        let queries = app.queries.clone();
        async move { queries.put_definition(r).await }
    }),
    op!("DescribeQueryDefinitions", Account, |app: &SharedApp, r| {
        let queries = app.queries.clone();
        async move { queries.describe_definitions(r).await }
    }),
    op!("DeleteQueryDefinition", Account, |app: &SharedApp, r| {
        let queries = app.queries.clone();
        async move { queries.delete_definition(r).await }
    }),
    op!("CreateLookupTable", LookupTable, |app: &SharedApp, r| {
        let queries = app.queries.clone();
        async move { LookupTableStore::create(queries.lookups(), &queries, r).await }
    }),
    op!("GetLookupTable", LookupTable, |app: &SharedApp, r| {
        let queries = app.queries.clone();
        async move { queries.lookups().get(r).await }
    }),
    op!("UpdateLookupTable", LookupTable, |app: &SharedApp, r| {
        let queries = app.queries.clone();
        async move { LookupTableStore::update(queries.lookups(), &queries, r).await }
    }),
    op!("DeleteLookupTable", LookupTable, |app: &SharedApp, r| {
        let queries = app.queries.clone();
        async move { queries.lookups().delete(r).await }
    }),
    op!("DescribeLookupTables", Account, |app: &SharedApp, r| {
        let queries = app.queries.clone();
        async move { queries.lookups().describe(r).await }
    }),
];

static BY_NAME: LazyLock<HashMap<&'static str, &'static Operation>> =
    LazyLock::new(|| OPERATIONS.iter().map(|o| (o.name, o)).collect());

/// The operation an `X-Amz-Target` names.
pub fn find(name: &str) -> Option<&'static Operation> {
    BY_NAME.get(name).copied()
}

/// Runs the operation `name` on a request body.
pub(crate) async fn call(app: SharedApp, name: &str, body: Bytes) -> Result<Output, ApiError> {
    match find(name) {
        Some(op) => (op.handler)(app, body).await,
        None => Err(ApiError::new(
            ErrorKind::UnknownOperation,
            format!("The operation {name} is not supported by this logwell server yet."),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_operation_is_declared_once_with_its_iam_action() {
        assert_eq!(BY_NAME.len(), OPERATIONS.len(), "a name is declared twice");
        for op in OPERATIONS {
            assert_eq!(op.action, format!("logs:{}", op.name));
        }
        assert_eq!(find("PutLogEvents").unwrap().resource, Resource::LogGroup);
        assert!(find("PutLogEvent").is_none());
    }

    #[test]
    fn requests_name_the_arns_they_act_on() {
        let arns =
            |op: &str, body: Value| find(op).unwrap().resource.arns(&body, "eu-west-1", "123");
        assert_eq!(
            arns(
                "PutLogEvents",
                json!({"logGroupName": "/app", "logStreamName": "s1"})
            ),
            ["arn:aws:logs:eu-west-1:123:log-group:/app:log-stream:s1"]
        );
        assert_eq!(
            arns(
                "DeleteLogGroup",
                json!({"logGroupIdentifier": "arn:aws:logs:eu-west-1:123:log-group:/app:*"})
            ),
            ["arn:aws:logs:eu-west-1:123:log-group:/app"]
        );
        assert_eq!(
            arns(
                "StartQuery",
                json!({"logGroupIdentifiers": ["arn:aws:logs:us-east-1:999:log-group:/other"]})
            ),
            ["arn:aws:logs:us-east-1:999:log-group:/other"]
        );
        assert_eq!(
            arns("StartQuery", json!({"logGroupNames": ["/a", "/b"]})),
            [
                "arn:aws:logs:eu-west-1:123:log-group:/a",
                "arn:aws:logs:eu-west-1:123:log-group:/b"
            ]
        );
        assert_eq!(
            arns("GetLookupTable", json!({"lookupTableName": "hosts"})),
            ["arn:aws:logs:eu-west-1:123:lookup-table:hosts"]
        );
        assert_eq!(arns("DescribeLogGroups", json!({})), ["*"]);
    }
}

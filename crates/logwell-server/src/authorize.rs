//! Identity policies on every call: the action is `logs:<Operation>`, the resources those the
//! operation table derives from the request (the log stream or group it names, every group of a
//! query, `*` for account-wide calls); AWS's evaluation (explicit deny wins, then allow, else
//! default deny) decides, and AccessDeniedException says what was denied, as AWS does.

use crate::App;
use logwell_auth::{Caller, Context, Decision};
use logwell_model::{ApiError, ErrorKind};

/// The members of a request that name resources (`Resource::arns` reads these); the rest of
/// the body (a PutLogEvents' events) is skipped without being kept.
#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct Naming {
    pub log_group_name: Option<serde_json::Value>,
    pub log_group_identifier: Option<serde_json::Value>,
    log_stream_name: Option<serde_json::Value>,
    log_group_names: Option<serde_json::Value>,
    log_group_identifiers: Option<serde_json::Value>,
    resource_arn: Option<serde_json::Value>,
    pub lookup_table_arn: Option<serde_json::Value>,
    pub lookup_table_name: Option<serde_json::Value>,
    pub resource_identifier: Option<serde_json::Value>,
    query_string: Option<serde_json::Value>,
    query_language: Option<serde_json::Value>,
}

/// Whether a query may read groups beyond those its request names: a SOURCE command, SQL or
/// PPL table names, or a query that does not parse (StartQuery refuses it later).
fn query_reaches_beyond(n: &Naming) -> bool {
    let Some(text) = n.query_string.as_ref().and_then(|q| q.as_str()) else {
        return false;
    };
    let language = n.query_language.as_ref().and_then(|l| l.as_str());
    if !matches!(language, None | Some("CWLI")) {
        return true;
    }
    match logwell_insights::parse(text) {
        Ok(q) => q
            .commands
            .iter()
            .any(|c| matches!(c, logwell_insights::Command::Source(_))),
        Err(_) => true,
    }
}

/// The ARNs a request acts on, as the operation table declares them (`*` for calls that name
/// none, and for operations the table does not know).
pub(crate) fn resources(app: &App, operation: &str, body: &[u8]) -> Vec<String> {
    let n: Naming = serde_json::from_slice(body).unwrap_or_default();
    // A query that can pick its own groups needs every group (`*`).
    let beyond = query_reaches_beyond(&n);
    let request: serde_json::Map<String, serde_json::Value> = [
        ("logGroupName", n.log_group_name),
        ("logGroupIdentifier", n.log_group_identifier),
        ("logStreamName", n.log_stream_name),
        ("logGroupNames", n.log_group_names),
        ("logGroupIdentifiers", n.log_group_identifiers),
        ("resourceArn", n.resource_arn),
        ("lookupTableArn", n.lookup_table_arn),
        ("lookupTableName", n.lookup_table_name),
        ("resourceIdentifier", n.resource_identifier),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.map(|v| (k.to_string(), v)))
    .collect();
    let request = serde_json::Value::Object(request);
    let arns = crate::operations::find(operation)
        .map(|op| op.resource.arns(&request, &app.region, &app.account_id))
        .unwrap_or_default();
    if arns.is_empty() || beyond {
        vec!["*".to_string()]
    } else {
        arns
    }
}

/// Whether `operation` on what `body` names is allowed to `caller`: by its identity policy
/// (`home` callers without one may do everything in their account) or a resource policy, with an
/// explicit deny in either winning.
pub(crate) fn check(
    app: &App,
    caller: &Caller,
    home: bool,
    operation: &str,
    body: &[u8],
    source_ip: Option<std::net::IpAddr>,
) -> Result<(), ApiError> {
    check_action(
        app,
        caller,
        home,
        operation,
        resources(app, operation, body),
        source_ip,
    )
}

/// [`check`] of `logs:<action>` on `resources` (`logs:Unmask` on the groups a read asks to
/// unmask).
pub(crate) fn check_action(
    app: &App,
    caller: &Caller,
    home: bool,
    action: &str,
    resources: Vec<String>,
    source_ip: Option<std::net::IpAddr>,
) -> Result<(), ApiError> {
    let action = format!("logs:{action}");
    let mut keys = vec![
        ("aws:PrincipalAccount", caller.account_id.clone()),
        ("aws:PrincipalArn", caller.principal_arn.clone()),
        ("aws:username", caller.user.clone()),
    ];
    if let Some(ip) = source_ip {
        keys.push(("aws:SourceIp", ip.to_string()));
    }
    for resource in resources {
        let ctx = Context {
            action: &action,
            resource: &resource,
            principal_account: &caller.account_id,
            principal_arn: &caller.principal_arn,
            keys: &keys,
        };
        let identity = match (&caller.policy, home) {
            (Some(p), _) => p.evaluate(&ctx),
            (None, true) => Decision::Allow,
            (None, false) => Decision::ImplicitDeny,
        };
        let resource_policies = app.resource_policies.decide(&ctx);
        let why = match (identity, resource_policies) {
            (Decision::ExplicitDeny, _) => "with an explicit deny in an identity-based policy",
            (_, Decision::ExplicitDeny) => "with an explicit deny in a resource-based policy",
            (Decision::Allow, _) | (_, Decision::Allow) => continue,
            _ if home => &format!("because no identity-based policy allows the {action} action"),
            _ => "because no resource-based policy allows the action",
        };
        return Err(ApiError::new(
            ErrorKind::AccessDenied,
            format!(
                "User: {} is not authorized to perform: {action} on resource: {resource} {why}",
                caller.principal_arn
            ),
        ));
    }
    Ok(())
}

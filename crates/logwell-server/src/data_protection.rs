//! Data protection policies (PutDataProtectionPolicy, GetDataProtectionPolicy,
//! DeleteDataProtectionPolicy): a group's policy is checked when it is put and kept in the
//! catalog; every read of the group masks what it names (`logwell-dataprotection`) unless the
//! caller asked to unmask, which `admit` allows only with `logs:Unmask`.

use crate::App;
use logwell_dataprotection::Protection;
use logwell_model::api_policies::{
    AccountPolicy, DataProtectionPolicyRequest, DataProtectionPolicyResponse,
    DeleteAccountPolicyRequest, DescribeAccountPoliciesRequest, DescribeAccountPoliciesResponse,
    PutAccountPolicyRequest, PutAccountPolicyResponse, PutDataProtectionPolicyRequest,
};
use logwell_model::{validate, ApiError};

fn group(identifier: Option<String>) -> Result<String, ApiError> {
    let id = identifier.ok_or_else(|| {
        ApiError::invalid("1 validation error detected: Value null at 'logGroupIdentifier' failed to satisfy constraint: Member must not be null")
    })?;
    let name = logwell_model::group_name_from_identifier(&id).to_string();
    validate::log_group_name(&name, "logGroupIdentifier")?;
    Ok(name)
}

pub(crate) async fn put(
    app: &App,
    r: PutDataProtectionPolicyRequest,
) -> Result<DataProtectionPolicyResponse, ApiError> {
    let identifier = r.log_group_identifier.clone();
    let name = group(r.log_group_identifier)?;
    let document = r.policy_document.ok_or_else(|| {
        ApiError::invalid("1 validation error detected: Value null at 'policyDocument' failed to satisfy constraint: Member must not be null")
    })?;
    logwell_dataprotection::parse(&document).map_err(ApiError::invalid)?;
    let now = logwell_model::now_millis();
    app.engine
        .put_data_protection_policy(&name, document.clone(), now)
        .await?;
    Ok(DataProtectionPolicyResponse {
        log_group_identifier: identifier,
        policy_document: Some(document),
        last_updated_time: Some(now),
    })
}

pub(crate) async fn get(
    app: &App,
    r: DataProtectionPolicyRequest,
) -> Result<DataProtectionPolicyResponse, ApiError> {
    let identifier = r.log_group_identifier.clone();
    let name = group(r.log_group_identifier)?;
    let policy = app.engine.data_protection_policy(&name)?;
    Ok(DataProtectionPolicyResponse {
        log_group_identifier: identifier,
        last_updated_time: policy.as_ref().map(|p| p.last_updated),
        policy_document: policy.map(|p| p.document),
    })
}

pub(crate) async fn delete(
    app: &App,
    r: DataProtectionPolicyRequest,
) -> Result<logwell_model::api::Empty, ApiError> {
    let name = group(r.log_group_identifier)?;
    app.engine.delete_data_protection_policy(&name).await?;
    Ok(logwell_model::api::Empty {})
}

/// How a read of `group` shows its events: masked by its policy unless `unmask` (which the
/// caller was allowed when the request was admitted).
pub(crate) fn protection(app: &App, group: &str, unmask: bool) -> Protection {
    Protection::of_lookup(app.engine.masking_policy(group), unmask)
}

/// Whether a request asks to see masked text, and on which resources `logs:Unmask` must then be
/// allowed: `unmask` on GetLogEvents and FilterLogEvents (the group they name), on GetLogRecord
/// (the group of its pointer), the `unmask` command in a query (its groups; every group, `*`,
/// when a SOURCE command picks them). Anything that cannot be read counts as asking, on `*`:
/// the handler reads the body its own way, and a request must not slip past the check.
pub(crate) fn unmask_resources(app: &App, operation: &str, body: &[u8]) -> Option<Vec<String>> {
    if !matches!(
        operation,
        "GetLogEvents" | "FilterLogEvents" | "GetLogRecord" | "StartQuery"
    ) {
        return None;
    }
    let everything = || Some(vec!["*".to_string()]);
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return everything();
    };
    let asks = |key: &str| {
        !matches!(
            v.get(key),
            None | Some(serde_json::Value::Null) | Some(serde_json::Value::Bool(false))
        )
    };
    match operation {
        "GetLogEvents" | "FilterLogEvents" => {
            asks("unmask").then(|| crate::authorize::resources(app, operation, body))
        }
        "GetLogRecord" => asks("unmask").then(|| {
            let group = v["logRecordPointer"]
                .as_str()
                .and_then(logwell_query::decode_ptr)
                .map(|(g, _, _)| g);
            match group {
                Some(g) => vec![logwell_model::log_group_arn_bare(
                    &app.region,
                    &app.account_id,
                    &g,
                )],
                None => vec!["*".to_string()],
            }
        }),
        _ => {
            let Some(text) = v["queryString"].as_str() else {
                return everything();
            };
            let Ok(query) = logwell_insights::parse(text) else {
                // SQL, or a query StartQuery will refuse: it has no unmask command.
                return None;
            };
            let has = |f: fn(&logwell_insights::Command) -> bool| query.commands.iter().any(f);
            if !has(|c| matches!(c, logwell_insights::Command::Unmask(_))) {
                None
            } else if has(|c| matches!(c, logwell_insights::Command::Source(_))) {
                everything()
            } else {
                Some(crate::authorize::resources(app, operation, body))
            }
        }
    }
}

/// The Audit statement: counts, per identifier, the events of a protected group that hold
/// sensitive text (`logwell_data_protection_findings_total`). Only protected groups pay for it.
pub(crate) fn audit(app: &App, group: &str, events: &[logwell_model::api::InputLogEvent<'_>]) {
    let Protection::Masked(masker) = protection(app, group, false) else {
        return;
    };
    let names: Vec<&str> = masker.identifiers().collect();
    let mut counts = vec![0u64; names.len()];
    let mut seen = vec![false; names.len()];
    for e in events {
        seen.iter_mut().for_each(|s| *s = false);
        for (_, i) in masker.findings(&e.message) {
            seen[i] = true;
        }
        for (c, s) in counts.iter_mut().zip(&seen) {
            *c += u64::from(*s);
        }
    }
    for (name, n) in names.into_iter().zip(counts) {
        if n > 0 {
            app.telemetry.findings(group, name, n);
        }
    }
}

// ------------------------------------------------------------- account-level policies

/// The policy types PutAccountPolicy knows; logwell applies the data protection one.
const POLICY_TYPES: [&str; 5] = [
    "DATA_PROTECTION_POLICY",
    "SUBSCRIPTION_FILTER_POLICY",
    "FIELD_INDEX_POLICY",
    "TRANSFORMER_POLICY",
    "METRIC_EXTRACTION_POLICY",
];

fn required(value: Option<String>, member: &str) -> Result<String, ApiError> {
    value.ok_or_else(|| {
        ApiError::invalid(format!("1 validation error detected: Value null at '{member}' failed to satisfy constraint: Member must not be null"))
    })
}

fn data_protection_type(policy_type: &str) -> Result<(), ApiError> {
    if !POLICY_TYPES.contains(&policy_type) {
        return Err(ApiError::constraint(
            policy_type,
            "policyType",
            &format!("satisfy enum value set: [{}]", POLICY_TYPES.join(", ")),
        ));
    }
    if policy_type != "DATA_PROTECTION_POLICY" {
        return Err(ApiError::invalid(format!(
            "Account policies of type {policy_type} are not supported by this server; DATA_PROTECTION_POLICY is."
        )));
    }
    Ok(())
}

fn shown(app: &App, p: logwell_storage::catalog::AccountDataProtectionPolicy) -> AccountPolicy {
    AccountPolicy {
        policy_name: p.name,
        policy_document: p.document,
        last_updated_time: p.last_updated,
        policy_type: "DATA_PROTECTION_POLICY".into(),
        scope: "ALL".into(),
        account_id: app.account_id.clone(),
    }
}

/// PutAccountPolicy(DATA_PROTECTION_POLICY): one policy for the account, masking every group
/// together with the group's own; putting it again (under any name) replaces it.
pub(crate) async fn put_account(
    app: &App,
    r: PutAccountPolicyRequest,
) -> Result<PutAccountPolicyResponse, ApiError> {
    let name = required(r.policy_name, "policyName")?;
    let document = required(r.policy_document, "policyDocument")?;
    data_protection_type(&required(r.policy_type, "policyType")?)?;
    if name.is_empty() || name.chars().count() > 256 {
        return Err(ApiError::constraint(
            &name,
            "policyName",
            "have length between 1 and 256",
        ));
    }
    if r.scope.as_deref().is_some_and(|s| s != "ALL") {
        return Err(ApiError::constraint(
            r.scope.as_deref().unwrap_or_default(),
            "scope",
            "satisfy enum value set: [ALL]",
        ));
    }
    if r.selection_criteria.is_some() {
        return Err(ApiError::invalid(
            "selectionCriteria is not allowed for policies of type DATA_PROTECTION_POLICY.",
        ));
    }
    logwell_dataprotection::parse(&document).map_err(ApiError::invalid)?;
    let now = logwell_model::now_millis();
    app.engine
        .put_account_data_protection_policy(name, document, now)
        .await?;
    let policy = app
        .engine
        .account_data_protection_policy()
        .ok_or_else(|| ApiError::unavailable("the account policy went away meanwhile"))?;
    Ok(PutAccountPolicyResponse {
        account_policy: shown(app, policy),
    })
}

pub(crate) fn describe_account(
    app: &App,
    r: DescribeAccountPoliciesRequest,
) -> Result<DescribeAccountPoliciesResponse, ApiError> {
    data_protection_type(&required(r.policy_type, "policyType")?)?;
    let policy = app.engine.account_data_protection_policy().filter(|p| {
        r.policy_name.as_ref().is_none_or(|n| *n == p.name)
            && r.account_identifiers
                .as_ref()
                .is_none_or(|ids| ids.iter().any(|id| *id == app.account_id))
    });
    Ok(DescribeAccountPoliciesResponse {
        account_policies: policy.into_iter().map(|p| shown(app, p)).collect(),
    })
}

pub(crate) async fn delete_account(
    app: &App,
    r: DeleteAccountPolicyRequest,
) -> Result<logwell_model::api::Empty, ApiError> {
    let name = required(r.policy_name, "policyName")?;
    data_protection_type(&required(r.policy_type, "policyType")?)?;
    app.engine
        .delete_account_data_protection_policy(&name)
        .await?;
    Ok(logwell_model::api::Empty {})
}

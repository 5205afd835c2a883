//! Data protection policies (PutDataProtectionPolicy, GetDataProtectionPolicy,
//! DeleteDataProtectionPolicy): a group's policy is checked when it is put and kept in the
//! catalog; every read of the group masks what it names (`logwell-dataprotection`) unless the
//! caller asked to unmask, which `admit` allows only with `logs:Unmask`.

use crate::App;
use logwell_dataprotection::Protection;
use logwell_model::api_policies::{
    DataProtectionPolicyRequest, DataProtectionPolicyResponse, PutDataProtectionPolicyRequest,
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
    match app.engine.data_protection_policy(group) {
        Ok(Some(p)) => Protection::of(Some(&p.document), unmask),
        _ => Protection::Clear,
    }
}

/// Whether a request asks to see masked text: `unmask: true` on GetLogEvents, FilterLogEvents
/// and GetLogRecord, the `unmask` command in a query.
pub(crate) fn asks_to_unmask(operation: &str, body: &[u8]) -> bool {
    #[derive(serde::Deserialize, Default)]
    #[serde(rename_all = "camelCase", default)]
    struct Unmask {
        unmask: Option<bool>,
        query_string: Option<String>,
    }
    let wanted = || serde_json::from_slice::<Unmask>(body).unwrap_or_default();
    match operation {
        "GetLogEvents" | "FilterLogEvents" | "GetLogRecord" => wanted().unmask == Some(true),
        "StartQuery" => wanted()
            .query_string
            .and_then(|q| logwell_insights::parse(&q).ok())
            .is_some_and(|q| {
                q.commands
                    .iter()
                    .any(|c| matches!(c, logwell_insights::Command::Unmask(_)))
            }),
        _ => false,
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

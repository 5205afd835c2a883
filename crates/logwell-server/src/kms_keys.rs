//! AssociateKmsKey and DisassociateKmsKey, and the `kmsKeyId` of CreateLogGroup: a group's data
//! key wrapped by a customer's KMS key (`[kms]`) instead of the keyring.

use crate::App;
use logwell_model::api::Empty;
use logwell_model::api_policies::{AssociateKmsKeyRequest, DisassociateKmsKeyRequest};
use logwell_model::{validate, ApiError};

/// The group named by `logGroupName` or by a log group ARN in `resourceIdentifier`.
fn group(name: Option<String>, resource: Option<String>) -> Result<String, ApiError> {
    let name = match (name, resource) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(
                "You can't specify both logGroupName and resourceIdentifier.",
            ))
        }
        (None, None) => {
            return Err(ApiError::invalid(
                "Specify either logGroupName or resourceIdentifier.",
            ))
        }
        (Some(n), None) => n,
        (None, Some(arn)) if arn.contains(":query-result:") => {
            return Err(ApiError::invalid(
                "KMS keys for query results are not supported: logwell keeps query results in memory only, never on disk.",
            ))
        }
        (None, Some(arn)) if arn.starts_with("arn:") && arn.contains(":log-group:") => {
            logwell_model::group_name_from_identifier(&arn).to_string()
        }
        (None, Some(arn)) => {
            return Err(ApiError::invalid(format!(
                "Invalid resourceIdentifier '{arn}': expected a log group ARN or arn:aws:logs:REGION:ACCOUNT:query-result:*"
            )))
        }
    };
    validate::log_group_name(&name, "logGroupName")?;
    Ok(name)
}

/// A `kmsKeyId` within AWS's length limit.
pub(crate) fn check_key_id(key: &str) -> Result<(), ApiError> {
    if key.is_empty() || key.len() > 256 {
        return Err(ApiError::constraint(
            key,
            "kmsKeyId",
            "have length between 1 and 256",
        ));
    }
    Ok(())
}

pub(crate) async fn associate(app: &App, r: AssociateKmsKeyRequest) -> Result<Empty, ApiError> {
    let key = r.kms_key_id.ok_or_else(|| {
        ApiError::invalid("1 validation error detected: Value null at 'kmsKeyId' failed to satisfy constraint: Member must not be null")
    })?;
    check_key_id(&key)?;
    let name = group(r.log_group_name, r.resource_identifier)?;
    let arn = logwell_model::log_group_arn_bare(&app.region, &app.account_id, &name);
    app.engine.associate_kms_key(&name, &key, &arn).await?;
    Ok(Empty {})
}

pub(crate) async fn disassociate(
    app: &App,
    r: DisassociateKmsKeyRequest,
) -> Result<Empty, ApiError> {
    let name = group(r.log_group_name, r.resource_identifier)?;
    app.engine.disassociate_kms_key(&name).await?;
    Ok(Empty {})
}

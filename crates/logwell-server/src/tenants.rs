//! Accounts hosted side by side (`hosted_accounts`): each has an [`App`] of its own (store,
//! queries, deliveries, policies, audit), and every request is served by the app of the account
//! it acts in. That is the caller's own account, unless its resource ARNs name another account:
//! then that account's app serves it and sees the caller as a principal of another account,
//! which only its resource policies (and destinations' policies) let in.

use crate::operations::{self, Resource};
use crate::{App, SharedApp};
use logwell_model::{ApiError, ErrorKind};
use std::collections::BTreeMap;

/// The other accounts' apps, set on the server's own app once they are open.
pub type Tenants = std::sync::OnceLock<BTreeMap<String, SharedApp>>;

impl App {
    /// The app holding `account`'s resources on this server, if it is hosted here.
    pub fn account(self: &SharedApp, account: &str) -> Option<SharedApp> {
        if account == self.account_id {
            return Some(self.clone());
        }
        self.tenants.get().and_then(|t| t.get(account).cloned())
    }

    /// Every account's app, this one first (for start-up wiring and shutdown).
    pub fn all_accounts(self: &SharedApp) -> Vec<SharedApp> {
        std::iter::once(self.clone())
            .chain(
                self.tenants
                    .get()
                    .into_iter()
                    .flat_map(|t| t.values().cloned()),
            )
            .collect()
    }
}

/// The accounts a request's resource ARNs name (plain names are in `caller_account`).
fn named_accounts(operation: &str, body: &[u8], region: &str, caller_account: &str) -> Vec<String> {
    if operation == "LogwellDeliverToDestination" {
        // Another server's delivery names the destination's account beside its name.
        return serde_json::from_slice::<
            logwell_model::api_destinations::DeliverToDestinationRequest,
        >(body)
        .ok()
        .and_then(|r| r.destination_account)
        .into_iter()
        .collect();
    }
    let Some(op) = operations::find(operation) else {
        return Vec::new();
    };
    // Account-wide operations act in the caller's account; most requests name no ARN at all
    // (PutLogEvents bodies are large: they are not parsed again for nothing).
    if op.resource == Resource::Account || memchr::memmem::find(body, b"arn:").is_none() {
        return Vec::new();
    }
    let Ok(request) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Vec::new();
    };
    let mut accounts: Vec<String> = op
        .resource
        .arns(&request, region, caller_account)
        .iter()
        .filter_map(|arn| arn.split(':').nth(4).map(str::to_string))
        .filter(|a| !a.is_empty())
        .collect();
    accounts.sort();
    accounts.dedup();
    accounts
}

/// A request that names its group (or lookup table) in two members is refused, as AWS refuses
/// it: routing and permission checks read one member, and a handler must not act on another.
pub(crate) fn single_name(operation: &str, body: &[u8]) -> Result<(), ApiError> {
    const GROUP: [&str; 3] = ["logGroupName", "logGroupIdentifier", "resourceIdentifier"];
    const TABLE: [&str; 2] = ["lookupTableName", "lookupTableArn"];
    let members: &[&str] = match operations::find(operation).map(|op| op.resource) {
        Some(Resource::LogGroup) => &GROUP,
        Some(Resource::LookupTable) => &TABLE,
        _ => return Ok(()),
    };
    let present = |m: &str| memchr::memmem::find(body, format!("\"{m}\"").as_bytes()).is_some();
    if members.iter().filter(|m| present(m)).count() < 2 {
        return Ok(());
    }
    let n: crate::authorize::Naming = serde_json::from_slice(body).unwrap_or_default();
    let given = |v: &Option<serde_json::Value>| v.as_ref().is_some_and(|v| !v.is_null());
    let groups = [
        &n.log_group_name,
        &n.log_group_identifier,
        &n.resource_identifier,
    ];
    let tables = [&n.lookup_table_name, &n.lookup_table_arn];
    let named = |list: &[&Option<serde_json::Value>]| list.iter().filter(|v| given(v)).count();
    if named(&groups) > 1 || named(&tables) > 1 {
        return Err(ApiError::invalid(format!(
            "Specify only one of {}.",
            members.join(", ")
        )));
    }
    Ok(())
}

/// GetQueryResults and StopQuery of a query the caller started in another hosted account
/// (through its resource policy): that account's app holds it, and its policies decide again.
fn query_owner(
    app: &SharedApp,
    caller: &logwell_auth::Caller,
    operation: &str,
    body: &[u8],
) -> Option<SharedApp> {
    if !matches!(operation, "GetQueryResults" | "StopQuery") {
        return None;
    }
    let id = serde_json::from_slice::<serde_json::Value>(body).ok()?["queryId"]
        .as_str()?
        .to_string();
    let own = app
        .account(&caller.account_id)
        .unwrap_or_else(|| app.clone());
    if own.queries.knows(&id) {
        return None;
    }
    app.all_accounts()
        .into_iter()
        .find(|a| a.queries.knows(&id))
}

/// The app that serves a request of `caller`.
pub(crate) fn route(
    app: &SharedApp,
    caller: &logwell_auth::Caller,
    operation: &str,
    body: &[u8],
) -> Result<SharedApp, ApiError> {
    single_name(operation, body)?;
    if let Some(owner) = query_owner(app, caller, operation, body) {
        return Ok(owner);
    }
    let named = named_accounts(operation, body, &app.region, &caller.account_id);
    let account = match named.as_slice() {
        [] => caller.account_id.as_str(),
        [one] => one.as_str(),
        _ => {
            return Err(ApiError::invalid(
                "A request may name the resources of one account only.",
            ))
        }
    };
    if let Some(target) = app.account(account) {
        return Ok(target);
    }
    if account == caller.account_id {
        // A principal of an account not hosted here: this server's own account serves it, as
        // a principal of another account.
        return Ok(app.clone());
    }
    Err(ApiError::new(
        ErrorKind::AccessDenied,
        format!(
            "User: {} is not authorized to perform: logs:{operation} on a resource of account {account}, which this server does not hold",
            caller.principal_arn
        ),
    ))
}

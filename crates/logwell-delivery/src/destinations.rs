//! Destinations: the recipient's end of cross-account subscriptions. A destination names a target
//! (a log group of this server, or a Kinesis, Firehose or Lambda ARN this server maps) and an
//! access policy saying which accounts may subscribe to it. Senders deliver through
//! `LogwellDeliverToDestination`; the policy is checked on every delivery, so a sender refused
//! at PutSubscriptionFilter (by its test message) or later loses nothing: its worker retries.

use crate::target::{Clients, Sender};
use crate::DeliveryConfig;
use base64::Engine as _;
use logwell_model::api::{Empty, InputLogEvent};
use logwell_model::api_destinations::*;
use logwell_model::api_subscriptions::SubscriptionMessage;
use logwell_model::{now_millis, ApiError, ErrorKind};
use logwell_storage::Engine;
use serde_json::Value;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::Read;
use std::sync::{Arc, Mutex};

const DOCUMENT: &str = "destinations.json";
/// The most JSON a delivered message may inflate to.
const MAX_MESSAGE_JSON_BYTES: u64 = 16 << 20;
/// PutLogEvents' limit, which deliveries into a log group keep to.
const MAX_EVENTS_PER_PUT: usize = 10_000;

/// This server's destinations.
pub struct Destinations {
    engine: Engine,
    region: String,
    account: String,
    config: DeliveryConfig,
    clients: Arc<Clients>,
    defs: Mutex<BTreeMap<String, Destination>>,
    saving: tokio::sync::Mutex<()>,
}

fn not_found() -> ApiError {
    ApiError::new(
        ErrorKind::ResourceNotFound,
        "The specified destination does not exist.",
    )
}

fn check_name(name: &str) -> Result<(), ApiError> {
    if name.is_empty() || name.chars().count() > 512 || name.contains([':', '*']) {
        return Err(ApiError::constraint(
            name,
            "destinationName",
            "satisfy regular expression pattern: [^:*]* and have length between 1 and 512",
        ));
    }
    Ok(())
}

impl Destinations {
    pub(crate) async fn start(
        engine: Engine,
        region: String,
        account: String,
        config: DeliveryConfig,
        clients: Arc<Clients>,
    ) -> Result<Arc<Destinations>, ApiError> {
        let defs: BTreeMap<String, Destination> = match engine.get_document(DOCUMENT).await? {
            Some(b) => serde_json::from_slice(&b).map_err(|e| {
                ApiError::unavailable(format!("settings document {DOCUMENT} is unreadable: {e}"))
            })?,
            None => BTreeMap::new(),
        };
        Ok(Arc::new(Destinations {
            engine,
            region,
            account,
            config,
            clients,
            defs: Mutex::new(defs),
            saving: Default::default(),
        }))
    }

    /// Saves the definitions; when that fails, puts `before` back (the change was not made).
    async fn save_or_restore(&self, before: BTreeMap<String, Destination>) -> Result<(), ApiError> {
        let _one_at_a_time = self.saving.lock().await;
        let body = serde_json::to_vec_pretty(&*self.defs.lock().unwrap()).expect("serialises");
        let saved = self.engine.put_document(DOCUMENT, body.into()).await;
        if saved.is_err() {
            *self.defs.lock().unwrap() = before;
        }
        saved
    }

    /// The log group a target ARN names, when it is one of this server's.
    fn target_group(&self, arn: &str) -> Option<String> {
        let prefix = format!("arn:aws:logs:{}:{}:log-group:", self.region, self.account);
        let name = arn.strip_prefix(&prefix)?;
        Some(name.strip_suffix(":*").unwrap_or(name).to_string())
    }

    /// PutDestination: create, or update the target and role (the policy stays).
    pub async fn put(&self, r: PutDestinationRequest) -> Result<PutDestinationResponse, ApiError> {
        check_name(&r.destination_name)?;
        if r.role_arn.is_empty() {
            return Err(ApiError::constraint(
                "",
                "roleArn",
                "have length greater than or equal to 1",
            ));
        }
        match self.target_group(&r.target_arn) {
            Some(group) if !self.engine.group_exists(&group) => {
                return Err(ApiError::group_not_found())
            }
            Some(_) => {}
            None => {
                self.config.target(&r.target_arn)?;
            }
        }
        let before = self.defs.lock().unwrap().clone();
        let destination = {
            let mut defs = self.defs.lock().unwrap();
            let previous = defs.get(&r.destination_name).cloned();
            let d = Destination {
                arn: format!(
                    "arn:aws:logs:{}:{}:destination:{}",
                    self.region, self.account, r.destination_name
                ),
                destination_name: r.destination_name.clone(),
                target_arn: r.target_arn,
                role_arn: r.role_arn,
                access_policy: previous.as_ref().and_then(|p| p.access_policy.clone()),
                creation_time: previous.map_or_else(now_millis, |p| p.creation_time),
            };
            defs.insert(r.destination_name, d.clone());
            d
        };
        self.save_or_restore(before).await?;
        Ok(PutDestinationResponse { destination })
    }

    /// PutDestinationPolicy.
    pub async fn put_policy(&self, r: PutDestinationPolicyRequest) -> Result<Empty, ApiError> {
        check_name(&r.destination_name)?;
        if r.access_policy.is_empty() || r.access_policy.len() > 5120 {
            return Err(ApiError::constraint(
                "",
                "accessPolicy",
                "have length between 1 and 5120",
            ));
        }
        let policy: Value = serde_json::from_str(&r.access_policy)
            .map_err(|e| ApiError::invalid(format!("Access policy is not valid JSON: {e}")))?;
        if policy.get("Statement").is_none() {
            return Err(ApiError::invalid("Access policy has no Statement."));
        }
        let before = self.defs.lock().unwrap().clone();
        {
            let mut defs = self.defs.lock().unwrap();
            let d = defs.get_mut(&r.destination_name).ok_or_else(not_found)?;
            d.access_policy = Some(r.access_policy);
        }
        self.save_or_restore(before).await?;
        Ok(Empty {})
    }

    /// DescribeDestinations, by name.
    pub fn describe(
        &self,
        r: DescribeDestinationsRequest,
    ) -> Result<DescribeDestinationsResponse, ApiError> {
        let prefix = r.destination_name_prefix.unwrap_or_default();
        let defs = self.defs.lock().unwrap();
        let matching: Vec<&Destination> = defs
            .values()
            .filter(|d| d.destination_name.starts_with(&prefix))
            .collect();
        let (destinations, next_token) =
            logwell_model::validate::offset_page(&matching, r.next_token.as_deref(), r.limit)?;
        Ok(DescribeDestinationsResponse {
            destinations,
            next_token,
        })
    }

    /// DeleteDestination: senders' deliveries to it fail (and are retried) from then on.
    pub async fn delete(&self, r: DeleteDestinationRequest) -> Result<Empty, ApiError> {
        check_name(&r.destination_name)?;
        let before = self.defs.lock().unwrap().clone();
        self.defs
            .lock()
            .unwrap()
            .remove(&r.destination_name)
            .ok_or_else(not_found)?;
        self.save_or_restore(before).await?;
        Ok(Empty {})
    }

    /// A sender's delivery: allowed by the policy (or from this account), then handed to the
    /// target; answered only once the target holds it.
    pub async fn receive(&self, r: DeliverToDestinationRequest) -> Result<Empty, ApiError> {
        let d = self
            .defs
            .lock()
            .unwrap()
            .get(&r.destination_name)
            .cloned()
            .ok_or_else(not_found)?;
        let allowed = r.source_account == self.account
            || d.access_policy
                .as_deref()
                .is_some_and(|p| policy_allows(p, &r.source_account, &d.arn));
        if !allowed {
            return Err(ApiError::new(
                ErrorKind::AccessDenied,
                format!(
                    "User with accountId: {} is not authorized to perform: logs:PutSubscriptionFilter on resource: {}",
                    r.source_account, d.arn
                ),
            ));
        }
        let message = decode(&r.data)?;
        if message.message_type == "CONTROL_MESSAGE" {
            return Ok(Empty {});
        }
        match self.target_group(&d.target_arn) {
            Some(group) => self.put_into_group(&group, &message).await,
            None => {
                let target = self.config.target(&d.target_arn)?;
                let mut sender = Sender::new(target, "ByLogStream", self.clients.clone());
                let sent = match sender.deliver(&message).await {
                    Ok(()) => sender.flush().await,
                    Err(e) => Err(e),
                };
                sent.map_err(|e| ApiError::unavailable(format!("destination target: {e}")))?;
                Ok(Empty {})
            }
        }
    }

    /// The events of a message, into stream `OWNER/GROUP/STREAM` of a log group here.
    async fn put_into_group(
        &self,
        group: &str,
        m: &SubscriptionMessage,
    ) -> Result<Empty, ApiError> {
        let stream = format!(
            "{}/{}/{}",
            m.owner,
            m.log_group.trim_start_matches('/'),
            m.log_stream
        )
        .replace([':', '*'], "_");
        match self.engine.create_stream(group, &stream).await {
            Ok(()) => {}
            Err(e) if e.kind == ErrorKind::ResourceAlreadyExists => {}
            Err(e) => return Err(e),
        }
        let mut events: Vec<InputLogEvent> = m
            .log_events
            .iter()
            .map(|e| InputLogEvent {
                timestamp: e.timestamp,
                message: Cow::Borrowed(e.message.as_str()),
            })
            .collect();
        events.sort_by_key(|e| e.timestamp);
        // Within PutLogEvents' limits, so a message (of a backfill spanning days, say) always
        // goes in: at most 10,000 events, 1 MiB and 24 hours per put. Events CloudWatch would
        // reject (too old) are reported by the put and dropped, as a PutLogEvents caller sees.
        let mut start = 0;
        while start < events.len() {
            let (first_ts, mut bytes, mut end) = (events[start].timestamp, 0, start);
            while end < events.len()
                && end - start < MAX_EVENTS_PER_PUT
                && events[end].timestamp - first_ts < 24 * 3600 * 1000
                && (end == start
                    || bytes + events[end].message.len() + logwell_model::EVENT_OVERHEAD_BYTES
                        <= logwell_model::MAX_BATCH_BYTES)
            {
                bytes += events[end].message.len() + logwell_model::EVENT_OVERHEAD_BYTES;
                end += 1;
            }
            self.engine
                .put_events(group, &stream, &events[start..end])
                .await?;
            start = end;
        }
        Ok(Empty {})
    }
}

fn decode(data: &str) -> Result<SubscriptionMessage, ApiError> {
    let bad = |e: String| ApiError::invalid(format!("data is not a base64 gzip message: {e}"));
    let gz = base64::engine::general_purpose::STANDARD
        .decode(data)
        .map_err(|e| bad(e.to_string()))?;
    let mut json = String::new();
    // A message is at most a few MB of JSON; a small body must not inflate without bound.
    flate2::read::GzDecoder::new(&gz[..])
        .take(MAX_MESSAGE_JSON_BYTES + 1)
        .read_to_string(&mut json)
        .map_err(|e| bad(e.to_string()))?;
    if json.len() as u64 > MAX_MESSAGE_JSON_BYTES {
        return Err(bad("larger than 16 MiB".into()));
    }
    serde_json::from_str(&json).map_err(|e| bad(e.to_string()))
}

/// Whether an access policy lets `account` subscribe to the destination `arn`: evaluated as a
/// resource policy (principals named by account id, `arn:aws:iam::ID:root` or `*`; deny wins;
/// conditions on keys a delivery does not carry, such as `aws:PrincipalOrgID`, grant nothing).
pub fn policy_allows(policy: &str, account: &str, arn: &str) -> bool {
    let Ok(policy) = logwell_auth::Policy::parse(policy) else {
        return false;
    };
    let principal_arn = format!("arn:aws:iam::{account}:root");
    let keys = [("aws:PrincipalAccount", account.to_string())];
    let ctx = logwell_auth::Context {
        action: "logs:PutSubscriptionFilter",
        resource: arn,
        principal_account: account,
        principal_arn: &principal_arn,
        keys: &keys,
    };
    policy.evaluate_for_principal(&ctx) == logwell_auth::Decision::Allow
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str = "arn:aws:logs:us-east-1:222222222222:destination:central";

    #[test]
    fn policies_allow_named_accounts_and_deny_wins() {
        let allow = r#"{"Version":"2012-10-17","Statement":[{"Sid":"","Effect":"Allow",
            "Principal":{"AWS":["111111111111"]},"Action":"logs:PutSubscriptionFilter",
            "Resource":"arn:aws:logs:us-east-1:222222222222:destination:*"}]}"#;
        assert!(policy_allows(allow, "111111111111", ARN));
        assert!(!policy_allows(allow, "333333333333", ARN));
        assert!(!policy_allows(
            allow,
            "111111111111",
            "arn:aws:logs:us-east-1:222222222222:other:x"
        ));
        let root = r#"{"Statement":{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111111111111:root"},"Action":"logs:*","Resource":"*"}}"#;
        assert!(policy_allows(root, "111111111111", ARN));
        let everyone_but = r#"{"Statement":[
            {"Effect":"Allow","Principal":"*","Action":"logs:PutSubscriptionFilter","Resource":"*"},
            {"Effect":"Deny","Principal":{"AWS":"333333333333"},"Action":"*","Resource":"*"}]}"#;
        assert!(policy_allows(everyone_but, "111111111111", ARN));
        assert!(!policy_allows(everyone_but, "333333333333", ARN));
        assert!(!policy_allows("not json", "111111111111", ARN));
        let org = r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"logs:PutSubscriptionFilter",
            "Resource":"*","Condition":{"StringEquals":{"aws:PrincipalOrgID":["o-abc"]}}}]}"#;
        assert!(
            !policy_allows(org, "111111111111", ARN),
            "an unevaluated condition grants nothing"
        );
        let not_principal = r#"{"Statement":[
            {"Effect":"Allow","Principal":"*","Action":"logs:PutSubscriptionFilter","Resource":"*"},
            {"Effect":"Deny","NotPrincipal":{"AWS":"111111111111"},"Action":"*","Resource":"*"}]}"#;
        assert!(policy_allows(not_principal, "111111111111", ARN));
        assert!(!policy_allows(not_principal, "333333333333", ARN));
    }
}

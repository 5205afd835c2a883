//! Resource policies (PutResourcePolicy, DescribeResourcePolicies, DeleteResourcePolicy): IAM
//! documents with principals, kept as a settings document, that let other accounts' principals
//! (and principals of this account beyond their identity policies) act on this account's log
//! groups. Up to 10, as in CloudWatch.

use crate::settings;
use logwell_auth::{Context, Decision, Policy};
use logwell_model::api::Empty;
use logwell_model::api_policies::*;
use logwell_model::{now_millis, validate, ApiError, ErrorKind};
use logwell_storage::Engine;
use std::path::Path;
use std::sync::{Arc, RwLock};

const DOCUMENT: &str = "resource-policies.json";
/// CloudWatch's quota of resource policies per account and Region.
const MAX_POLICIES: usize = 10;
/// CloudWatch's limit on a policy document's length.
const MAX_DOCUMENT_CHARS: usize = 5120;

pub struct ResourcePolicies {
    engine: Engine,
    policies: RwLock<Vec<(ResourcePolicy, Arc<Policy>)>>,
    saving: tokio::sync::Mutex<()>,
}

impl ResourcePolicies {
    pub(crate) async fn open(engine: Engine, data_dir: &Path) -> Result<Self, ApiError> {
        let stored: Vec<ResourcePolicy> = settings::load(&engine, data_dir, DOCUMENT).await?;
        let policies = stored
            .into_iter()
            .filter_map(|p| match Policy::parse(&p.policy_document) {
                Ok(parsed) => Some((p, Arc::new(parsed))),
                Err(e) => {
                    tracing::warn!(policy = p.policy_name, error = %e, "resource policy skipped");
                    None
                }
            })
            .collect();
        Ok(ResourcePolicies {
            engine,
            policies: RwLock::new(policies),
            saving: Default::default(),
        })
    }

    pub async fn put(
        &self,
        r: PutResourcePolicyRequest,
    ) -> Result<PutResourcePolicyResponse, ApiError> {
        let name = r.policy_name.unwrap_or_default();
        if name.is_empty() || name.chars().count() > 255 {
            return Err(ApiError::constraint(
                &name,
                "policyName",
                "have length between 1 and 255",
            ));
        }
        let document = r.policy_document.unwrap_or_default();
        if document.is_empty() || document.chars().count() > MAX_DOCUMENT_CHARS {
            return Err(ApiError::constraint(
                "",
                "policyDocument",
                "have length between 1 and 5120",
            ));
        }
        let parsed = Policy::parse(&document)
            .map_err(|e| ApiError::invalid(format!("Invalid policy document: {e}")))?;
        let policy = ResourcePolicy {
            policy_name: name.clone(),
            policy_document: document,
            last_updated_time: now_millis(),
        };
        let _saving = self.saving.lock().await;
        let before = self.policies.read().unwrap().clone();
        {
            let mut all = self.policies.write().unwrap();
            let count = all.len();
            match all.iter_mut().find(|(p, _)| p.policy_name == name) {
                Some(slot) => *slot = (policy.clone(), Arc::new(parsed)),
                None if count >= MAX_POLICIES => {
                    return Err(ApiError::new(
                        ErrorKind::LimitExceeded,
                        "Resource limit exceeded.",
                    ))
                }
                None => all.push((policy.clone(), Arc::new(parsed))),
            }
        }
        self.save_or_restore(before).await?;
        Ok(PutResourcePolicyResponse {
            resource_policy: policy,
        })
    }

    pub fn describe(
        &self,
        r: DescribeResourcePoliciesRequest,
    ) -> Result<DescribeResourcePoliciesResponse, ApiError> {
        let all = self.documents();
        let refs: Vec<&ResourcePolicy> = all.iter().collect();
        let (resource_policies, next_token) =
            validate::offset_page(&refs, r.next_token.as_deref(), r.limit)?;
        Ok(DescribeResourcePoliciesResponse {
            resource_policies,
            next_token,
        })
    }

    pub async fn delete(&self, r: DeleteResourcePolicyRequest) -> Result<Empty, ApiError> {
        let name = r.policy_name.unwrap_or_default();
        let _saving = self.saving.lock().await;
        let before = self.policies.read().unwrap().clone();
        {
            let mut all = self.policies.write().unwrap();
            let n = all.len();
            all.retain(|(p, _)| p.policy_name != name);
            if all.len() == n {
                return Err(ApiError::new(
                    ErrorKind::ResourceNotFound,
                    format!("Policy with name [{name}] does not exist"),
                ));
            }
        }
        self.save_or_restore(before).await?;
        Ok(Empty {})
    }

    /// The policies as PutResourcePolicy stored them.
    fn documents(&self) -> Vec<ResourcePolicy> {
        self.policies
            .read()
            .unwrap()
            .iter()
            .map(|(p, _)| p.clone())
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.policies.read().unwrap().is_empty()
    }

    /// What the resource policies together say about a request (each evaluated for the
    /// principals it names): an explicit deny in any wins, then an allow in any.
    pub fn decide(&self, ctx: &Context<'_>) -> Decision {
        let mut decision = Decision::ImplicitDeny;
        for (_, p) in self.policies.read().unwrap().iter() {
            match p.evaluate_for_principal(ctx) {
                Decision::ExplicitDeny => return Decision::ExplicitDeny,
                Decision::Allow => decision = Decision::Allow,
                Decision::ImplicitDeny => {}
            }
        }
        decision
    }

    /// Saves the policies; if that fails, puts back what was there before.
    async fn save_or_restore(
        &self,
        before: Vec<(ResourcePolicy, Arc<Policy>)>,
    ) -> Result<(), ApiError> {
        if let Err(e) = settings::save(&self.engine, DOCUMENT, &self.documents()).await {
            *self.policies.write().unwrap() = before;
            return Err(e);
        }
        Ok(())
    }
}

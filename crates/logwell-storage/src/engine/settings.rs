//! A group's settings beside its events: its data protection policy and its tags.

use super::*;

impl Engine {
    /// Sets (or replaces) a group's data protection policy; the document was checked by the
    /// caller.
    pub async fn put_data_protection_policy(
        &self,
        group: &str,
        document: String,
        last_updated: i64,
    ) -> Result<(), ApiError> {
        self.change(MetaChange::PutDataProtectionPolicy {
            group: group.into(),
            document,
            last_updated,
        })
        .await
    }

    pub async fn delete_data_protection_policy(&self, group: &str) -> Result<(), ApiError> {
        self.change(MetaChange::DeleteDataProtectionPolicy {
            group: group.into(),
        })
        .await
    }

    /// A group's data protection policy, if it has one.
    pub fn data_protection_policy(
        &self,
        group: &str,
    ) -> Result<Option<crate::catalog::DataProtectionPolicy>, ApiError> {
        let st = self.inner.state.read().unwrap();
        Ok(st.meta.group(group)?.data_protection.clone())
    }

    /// What masks a group's events: its own policy document, the account's, or both as a JSON
    /// array of the two documents (policies are cumulative).
    pub fn masking_policy(&self, group: &str) -> Result<Option<String>, ApiError> {
        let st = self.inner.state.read().unwrap();
        let own = st.meta.group(group)?.data_protection.as_ref();
        Ok(masking_document(
            own.map(|p| p.document.as_str()),
            st.meta.account_data_protection.as_ref(),
        ))
    }

    /// Sets (or replaces) the account's data protection policy; checked by the caller.
    pub async fn put_account_data_protection_policy(
        &self,
        name: String,
        document: String,
        last_updated: i64,
    ) -> Result<(), ApiError> {
        self.change(MetaChange::PutAccountDataProtectionPolicy {
            name,
            document,
            last_updated,
        })
        .await
    }

    pub async fn delete_account_data_protection_policy(&self, name: &str) -> Result<(), ApiError> {
        self.change(MetaChange::DeleteAccountDataProtectionPolicy { name: name.into() })
            .await
    }

    /// The account's data protection policy, if it has one.
    pub fn account_data_protection_policy(
        &self,
    ) -> Option<crate::catalog::AccountDataProtectionPolicy> {
        self.inner
            .state
            .read()
            .unwrap()
            .meta
            .account_data_protection
            .clone()
    }

    pub async fn tag_group(
        &self,
        group: &str,
        tags: BTreeMap<String, String>,
    ) -> Result<(), ApiError> {
        self.change(MetaChange::Tag {
            group: group.into(),
            tags,
        })
        .await
    }

    pub async fn untag_group(&self, group: &str, keys: Vec<String>) -> Result<(), ApiError> {
        self.change(MetaChange::Untag {
            group: group.into(),
            keys,
        })
        .await
    }

    pub fn group_tags(&self, group: &str) -> Result<BTreeMap<String, String>, ApiError> {
        Ok(self
            .inner
            .state
            .read()
            .unwrap()
            .meta
            .group(group)?
            .tags
            .clone())
    }
}

/// A group's masking document from its own policy and the account's.
pub(super) fn masking_document(
    own: Option<&str>,
    account: Option<&crate::catalog::AccountDataProtectionPolicy>,
) -> Option<String> {
    match (own, account) {
        (None, None) => None,
        (Some(d), None) => Some(d.to_string()),
        (None, Some(a)) => Some(a.document.clone()),
        (Some(d), Some(a)) => Some(serde_json::json!([d, a.document]).to_string()),
    }
}

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

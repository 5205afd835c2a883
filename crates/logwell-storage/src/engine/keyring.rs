//! The engine's side of encryption at rest: each group's data key, unwrapped from the catalog
//! with the keyring; keys for groups made without one; master key rotation.

use super::*;

impl Engine {
    /// The data key of group `group_id`, if the group has one.
    pub fn group_key(&self, group_id: u64) -> Result<Option<crate::keys::DataKey>, ApiError> {
        Ok(self.live_group_key(group_id)?.flatten())
    }

    /// None when no live group has id `group_id`; else its data key, if it has one.
    pub(super) fn live_group_key(
        &self,
        group_id: u64,
    ) -> Result<Option<Option<crate::keys::DataKey>>, ApiError> {
        let wrapped = {
            let st = self.inner.state.read().unwrap();
            match st.meta.groups.values().find(|g| g.group_id == group_id) {
                None => return Ok(None),
                Some(g) => g.data_key.clone(),
            }
        };
        self.unwrap_key(wrapped.as_deref()).map(Some)
    }

    pub(super) fn unwrap_key(
        &self,
        wrapped: Option<&str>,
    ) -> Result<Option<crate::keys::DataKey>, ApiError> {
        let Some(wrapped) = wrapped else {
            return Ok(None);
        };
        let Some(ring) = &self.inner.keyring else {
            return Err(unavailable(
                "the log group is encrypted",
                "no keyring in the data directory",
            ));
        };
        ring.read()
            .unwrap()
            .unwrap(wrapped)
            .map(Some)
            .map_err(|e| unavailable("the log group's data key is unavailable", e))
    }

    /// The key a segment was encrypted with (None for a plain one).
    pub fn segment_key(&self, seg: &SegmentMeta) -> Result<Option<crate::keys::DataKey>, ApiError> {
        if !seg.encrypted {
            return Ok(None);
        }
        match self.group_key(seg.group_id)? {
            Some(k) => Ok(Some(k)),
            None => Err(unavailable(
                "an encrypted segment",
                "its log group has no data key",
            )),
        }
    }

    /// With encryption on, gives every group created without a data key (before encryption was
    /// on) one, so its new segments are encrypted; older plain segments stay readable. Best
    /// effort at start: a failure is reported and retried at the next start.
    pub(super) async fn ensure_data_keys(&self) {
        let Some(ring) = &self.inner.keyring else {
            return;
        };
        if !self.inner.config.encrypt {
            return;
        }
        let missing: Vec<String> = {
            let st = self.inner.state.read().unwrap();
            st.meta
                .groups
                .iter()
                .filter(|(_, g)| g.data_key.is_none())
                .map(|(n, _)| n.clone())
                .collect()
        };
        if missing.is_empty() {
            return;
        }
        let mut keys = BTreeMap::new();
        for name in missing {
            match ring.read().unwrap().new_data_key() {
                Ok((_, wrapped)) => {
                    keys.insert(name, wrapped);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot make data keys for existing groups");
                    return;
                }
            }
        }
        let n = keys.len();
        match self.change(MetaChange::SetDataKeys { keys }).await {
            Ok(()) => tracing::info!(groups = n, "encryption at rest: data keys for groups created without one; their new segments are encrypted"),
            Err(e) => tracing::warn!(error = %e, "cannot record data keys for existing groups"),
        }
    }

    /// Adds a new master key to the keyring and wraps every group's data key with it, so the
    /// old master key is no longer needed for new wraps (data is not rewritten). Returns the
    /// number of data keys wrapped again.
    pub async fn rotate_master_key(&self) -> Result<usize, ApiError> {
        let Some(ring) = &self.inner.keyring else {
            return Err(ApiError::invalid(
                "encryption is off and there is no keyring",
            ));
        };
        // The wrapped keys are read first and the state lock let go before the keyring's is
        // taken (readers take them in the other order). Run it with the server stopped.
        let wrapped: Vec<(String, String)> = {
            let st = self.inner.state.read().unwrap();
            st.meta
                .groups
                .iter()
                .filter_map(|(name, g)| g.data_key.clone().map(|w| (name.clone(), w)))
                .collect()
        };
        let keys = {
            let mut ring = ring.write().unwrap();
            ring.rotate()
                .map_err(|e| unavailable("cannot rotate the keyring", e))?;
            let mut keys = BTreeMap::new();
            for (name, w) in wrapped {
                let key = ring
                    .unwrap(&w)
                    .map_err(|e| unavailable("cannot unwrap a data key", e))?;
                let again = ring
                    .wrap(&key)
                    .map_err(|e| unavailable("cannot wrap a data key", e))?;
                keys.insert(name, again);
            }
            keys
        };
        let n = keys.len();
        self.change(MetaChange::SetDataKeys { keys }).await?;
        Ok(n)
    }
}

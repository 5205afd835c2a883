//! The engine's side of encryption at rest: each group's data key, unwrapped from the catalog
//! with the keyring or the group's KMS key; keys for groups made without one; master key
//! rotation; associating a KMS key with a group and taking it away.

use super::*;
use crate::kms::{self, KmsError};
use logwell_model::ErrorKind;

/// The API error for a group whose KMS key cannot be used: KMS's own error, passed on.
pub(super) fn kms_refusal(wrapped: &str, e: KmsError) -> ApiError {
    let kind = match e.code.as_str() {
        "DisabledException" => ErrorKind::KmsDisabled,
        "KMSInvalidStateException" => ErrorKind::KmsInvalidState,
        "NotFoundException" => ErrorKind::KmsNotFound,
        "AccessDeniedException" | "IncorrectKeyException" | "InvalidCiphertextException" => {
            ErrorKind::AccessDenied
        }
        _ => ErrorKind::KmsUnavailable,
    };
    let arn = kms::key_arn(wrapped).unwrap_or("?");
    ApiError::new(
        kind,
        format!("The log group's KMS key {arn} cannot be used: {e}"),
    )
}

/// The API error for a KMS key that cannot wrap a group's data key (CreateLogGroup,
/// AssociateKmsKey), as AWS words it.
fn kms_not_allowed(kind: ErrorKind, group_arn: &str, e: &KmsError) -> ApiError {
    if e.code.is_empty() {
        return ApiError::unavailable(format!("{e}"));
    }
    ApiError::new(
        kind,
        format!("The specified KMS key does not exist or is not allowed to be used with Arn '{group_arn}' ({e})"),
    )
}

impl Engine {
    /// The data key of group `group_id`, if the group has one.
    pub fn group_key(&self, group_id: u64) -> Result<Option<crate::keys::DataKey>, ApiError> {
        Ok(self.live_group_key(group_id, false)?.flatten())
    }

    /// None when no live group has id `group_id`; else its data key, if it has one. A flush
    /// (`for_flush`) also gets a KMS-wrapped key the KMS has not confirmed lately: the events it
    /// writes were accepted while the key was usable.
    pub(super) fn live_group_key(
        &self,
        group_id: u64,
        for_flush: bool,
    ) -> Result<Option<Option<crate::keys::DataKey>>, ApiError> {
        let wrapped = {
            let st = self.inner.state.read().unwrap();
            match st.meta.groups.values().find(|g| g.group_id == group_id) {
                None => return Ok(None),
                Some(g) => g.data_key.clone(),
            }
        };
        if let (Some(w), true) = (&wrapped, for_flush) {
            if kms::is_kms(w) {
                return self
                    .kms_keys(w)?
                    .last_known(w)
                    .map(|k| Some(Some(k)))
                    .map_err(|e| kms_refusal(w, e));
            }
        }
        self.unwrap_key(wrapped.as_deref()).map(Some)
    }

    /// The KMS, for wrapping the key of group `group_arn` (named in the error when none is set).
    fn kms_for(&self, group_arn: &str) -> Result<&kms::KmsKeys, ApiError> {
        self.inner.kms.as_ref().ok_or_else(|| {
            ApiError::invalid(format!(
                "The specified KMS key does not exist or is not allowed to be used with Arn '{group_arn}': this server has no KMS configured ([kms] endpoint)"
            ))
        })
    }

    fn kms_keys(&self, wrapped: &str) -> Result<&kms::KmsKeys, ApiError> {
        self.inner.kms.as_ref().ok_or_else(|| {
            kms_refusal(
                wrapped,
                KmsError::unreachable("no KMS is configured ([kms] endpoint)"),
            )
        })
    }

    /// Refuses writes to a group whose KMS key cannot be used now.
    pub(super) fn check_key_usable(&self, wrapped: Option<&str>) -> Result<(), ApiError> {
        match wrapped {
            Some(w) if kms::is_kms(w) => self.unwrap_key(Some(w)).map(|_| ()),
            _ => Ok(()),
        }
    }

    pub(super) fn unwrap_key(
        &self,
        wrapped: Option<&str>,
    ) -> Result<Option<crate::keys::DataKey>, ApiError> {
        let Some(wrapped) = wrapped else {
            return Ok(None);
        };
        if kms::is_kms(wrapped) {
            return self
                .kms_keys(wrapped)?
                .usable(wrapped)
                .map(Some)
                .map_err(|e| kms_refusal(wrapped, e));
        }
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

    /// What a flush of group `group_id` writes with: None when the group is gone; else its
    /// key, or, when it is a KMS key not unwrapped since start (the KMS unreachable or the key
    /// disabled), a held key of the segment's own wrapped by the keyring, as the WAL that held
    /// the events is sealed by the keyring too.
    pub(super) fn flush_key(
        &self,
        group_id: u64,
    ) -> Result<Option<(Option<crate::keys::DataKey>, Option<String>)>, ApiError> {
        let refused = match self.live_group_key(group_id, true) {
            Ok(None) => return Ok(None),
            Ok(Some(key)) => return Ok(Some((key, None))),
            Err(e) => e,
        };
        let kms_group = {
            let st = self.inner.state.read().unwrap();
            st.meta
                .groups
                .values()
                .find(|g| g.group_id == group_id)
                .and_then(|g| g.data_key.as_deref())
                .is_some_and(kms::is_kms)
        };
        let Some(ring) = self.inner.keyring.as_ref().filter(|_| kms_group) else {
            return Err(refused);
        };
        let (key, wrapped) = ring
            .read()
            .unwrap()
            .new_data_key()
            .map_err(|e| unavailable("cannot make a held key", e))?;
        tracing::warn!(group_id, error = %refused, "the group's KMS key is unusable: its events are flushed under a held key and rewritten under the group's key once it is usable");
        Ok(Some((Some(key), Some(wrapped))))
    }

    /// The key a segment was encrypted with (None for a plain one).
    pub fn segment_key(&self, seg: &SegmentMeta) -> Result<Option<crate::keys::DataKey>, ApiError> {
        if !seg.encrypted {
            return Ok(None);
        }
        if let Some(held) = &seg.held_key {
            // Readable only while its group is: a disabled KMS key hides held segments too.
            self.group_key(seg.group_id)?;
            return self.unwrap_key(Some(held));
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
                .filter(|(_, w)| !kms::is_kms(w))
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

    /// Asks the KMS to unwrap every KMS-wrapped data key again (at start, then every
    /// `KmsKeys::refresh_every`): a key the KMS refuses stops its group's reads and writes.
    pub async fn refresh_kms_keys(&self) {
        let Some(keys) = &self.inner.kms else {
            return;
        };
        let wrapped: Vec<(String, String)> = {
            let st = self.inner.state.read().unwrap();
            st.meta
                .groups
                .iter()
                .filter_map(|(n, g)| g.data_key.clone().map(|w| (n.clone(), w)))
                .filter(|(_, w)| kms::is_kms(w))
                .collect()
        };
        // Asked together: a KMS that does not answer costs one timeout, not one per group.
        let asks = wrapped.iter().map(|(group, w)| async move {
            if let Err(e) = keys.refresh(w).await {
                tracing::warn!(group, error = %e, "a log group's KMS key cannot be used");
            }
        });
        futures::future::join_all(asks).await;
    }

    pub(super) fn kms_refresh_every(&self) -> Option<Duration> {
        self.inner.kms.as_ref().map(|k| k.refresh_every())
    }

    /// A new data key wrapped by the KMS key `kms_key_id`, for a group about to be created
    /// (`group_arn` names it in errors, as AWS does).
    pub async fn new_kms_data_key(
        &self,
        kms_key_id: &str,
        group_arn: &str,
    ) -> Result<String, ApiError> {
        let keys = self.kms_for(group_arn)?;
        let key =
            crate::keys::DataKey::random().map_err(|e| unavailable("cannot make a data key", e))?;
        keys.wrap(kms_key_id, &key)
            .await
            .map_err(|e| kms_not_allowed(ErrorKind::InvalidParameter, group_arn, &e))
    }

    /// AssociateKmsKey: the group's data key is wrapped again by the KMS key, so from then on
    /// all of the group's data, old and new, needs it (a group without a data key gets one).
    pub async fn associate_kms_key(
        &self,
        group: &str,
        kms_key_id: &str,
        group_arn: &str,
    ) -> Result<(), ApiError> {
        let keys = self.kms_for(group_arn)?;
        let previous = self
            .inner
            .state
            .read()
            .unwrap()
            .meta
            .group(group)?
            .data_key
            .clone();
        let key = match self.unwrap_key(previous.as_deref())? {
            Some(k) => k,
            None => crate::keys::DataKey::random()
                .map_err(|e| unavailable("cannot make a data key", e))?,
        };
        let wrapped = keys
            .wrap(kms_key_id, &key)
            .await
            .map_err(|e| kms_not_allowed(ErrorKind::AccessDenied, group_arn, &e))?;
        self.change(MetaChange::SetKmsKey {
            group: group.into(),
            kms_key_id: Some(kms_key_id.into()),
            data_key: Some(wrapped),
            previous,
        })
        .await
    }

    /// DisassociateKmsKey: the group's data key is wrapped by the keyring again (the KMS key
    /// must still unwrap it). A group without a KMS key is left as it is.
    pub async fn disassociate_kms_key(&self, group: &str) -> Result<(), ApiError> {
        let (kms_key_id, previous) = {
            let st = self.inner.state.read().unwrap();
            let g = st.meta.group(group)?;
            (g.kms_key_id.clone(), g.data_key.clone())
        };
        if kms_key_id.is_none() {
            return Ok(());
        }
        let data_key = match self.unwrap_key(previous.as_deref())? {
            None => None,
            Some(key) => {
                let Some(ring) = &self.inner.keyring else {
                    return Err(ApiError::invalid(
                        "The log group's data key cannot be kept without its KMS key: encryption at rest is off and there is no keyring",
                    ));
                };
                Some(
                    ring.read()
                        .unwrap()
                        .wrap(&key)
                        .map_err(|e| unavailable("cannot wrap a data key", e))?,
                )
            }
        };
        self.change(MetaChange::SetKmsKey {
            group: group.into(),
            kms_key_id: None,
            data_key,
            previous,
        })
        .await
    }
}

//! Data keys wrapped by a customer's KMS key (a log group's `kmsKeyId`): the service that wraps
//! and unwraps them, and the cache of unwrapped keys, confirmed with the service again and again
//! so that a disabled or deleted KMS key stops the group's reads and writes within `max_age`.

use crate::keys::DataKey;
use futures::future::BoxFuture;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// Wrapped keys made by a KMS start with this: `kms1:<hex ciphertext>:<key ARN>`.
const PREFIX: &str = "kms1";

/// What a KMS answered instead of a key (its `__type` and message), or why it could not be
/// reached (`code` empty).
#[derive(Debug, Clone, PartialEq)]
pub struct KmsError {
    pub code: String,
    pub message: String,
}

impl KmsError {
    pub fn unreachable(message: impl Into<String>) -> KmsError {
        KmsError {
            code: String::new(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for KmsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.code.is_empty() {
            write!(f, "the KMS cannot be reached: {}", self.message)
        } else {
            write!(f, "{}: {}", self.code, self.message)
        }
    }
}

/// A KMS: AWS's, or one that speaks its API.
pub trait KeyService: Send + Sync + 'static {
    /// Encrypts `plain` under `key_id` (an id, ARN or alias); gives the key's ARN and the blob.
    fn encrypt<'a>(
        &'a self,
        key_id: &'a str,
        plain: &'a [u8],
    ) -> BoxFuture<'a, Result<(String, Vec<u8>), KmsError>>;

    /// Decrypts a blob made under `key_arn`; fails unless the key exists and is enabled.
    fn decrypt<'a>(
        &'a self,
        key_arn: &'a str,
        blob: &'a [u8],
    ) -> BoxFuture<'a, Result<Vec<u8>, KmsError>>;
}

/// A KMS for a store to use (what `OpenOptions` carries), and how long an unwrapped key is used
/// without the KMS confirming it again.
#[derive(Clone)]
pub struct KeyServiceRef {
    pub service: Arc<dyn KeyService>,
    pub max_age: Duration,
}

impl std::fmt::Debug for KeyServiceRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyService")
    }
}

/// Whether a wrapped key was wrapped by a KMS (else by the keyring).
pub fn is_kms(wrapped: &str) -> bool {
    wrapped.starts_with(PREFIX) && wrapped[PREFIX.len()..].starts_with(':')
}

fn parse(wrapped: &str) -> Option<(&str, Vec<u8>)> {
    let mut parts = wrapped.splitn(3, ':');
    let (Some(PREFIX), Some(blob), Some(arn)) = (parts.next(), parts.next(), parts.next()) else {
        return None;
    };
    Some((arn, crate::keys::unhex(blob)?))
}

/// The KMS key ARN a wrapped key names.
pub fn key_arn(wrapped: &str) -> Option<&str> {
    parse(wrapped).map(|(arn, _)| arn)
}

struct Entry {
    /// The key, once unwrapped.
    key: Option<DataKey>,
    /// When the KMS last unwrapped it.
    confirmed: Option<Instant>,
    /// What the KMS said the last time it did not.
    error: Option<KmsError>,
}

/// The unwrapped KMS-wrapped keys of a store's groups.
pub struct KmsKeys {
    service: Arc<dyn KeyService>,
    max_age: Duration,
    entries: RwLock<HashMap<String, Entry>>,
}

impl KmsKeys {
    /// A key is used for reads and writes only while the KMS unwrapped it within `max_age`.
    pub fn new(service: Arc<dyn KeyService>, max_age: Duration) -> KmsKeys {
        KmsKeys {
            service,
            max_age,
            entries: RwLock::new(HashMap::new()),
        }
    }

    /// How often keys are confirmed with the KMS.
    pub fn refresh_every(&self) -> Duration {
        (self.max_age / 4).max(Duration::from_millis(200))
    }

    /// Wraps `key` under the KMS key `key_id`; gives the wrapped text the catalog keeps.
    pub async fn wrap(&self, key_id: &str, key: &DataKey) -> Result<String, KmsError> {
        let (arn, blob) = self.service.encrypt(key_id, key.as_bytes()).await?;
        let wrapped = format!("{PREFIX}:{}:{arn}", crate::keys::hex(&blob));
        self.entries.write().unwrap().insert(
            wrapped.clone(),
            Entry {
                key: Some(key.clone()),
                confirmed: Some(Instant::now()),
                error: None,
            },
        );
        Ok(wrapped)
    }

    /// Asks the KMS to unwrap `wrapped` again, and records the answer.
    pub async fn refresh(&self, wrapped: &str) -> Result<DataKey, KmsError> {
        let answer = match parse(wrapped) {
            None => Err(KmsError {
                code: "InvalidCiphertextException".into(),
                message: "the catalog's wrapped key is not a KMS ciphertext".into(),
            }),
            Some((arn, blob)) => self.service.decrypt(arn, &blob).await.and_then(|plain| {
                DataKey::from_bytes(&plain).ok_or_else(|| KmsError {
                    code: "InvalidCiphertextException".into(),
                    message: "the KMS gave back a key of the wrong length".into(),
                })
            }),
        };
        let mut entries = self.entries.write().unwrap();
        let entry = entries.entry(wrapped.to_string()).or_insert(Entry {
            key: None,
            confirmed: None,
            error: None,
        });
        match &answer {
            Ok(key) => {
                entry.key = Some(key.clone());
                entry.confirmed = Some(Instant::now());
                entry.error = None;
            }
            Err(e) => entry.error = Some(e.clone()),
        }
        answer
    }

    /// The key for reads and writes: only while the KMS confirmed it lately.
    pub fn usable(&self, wrapped: &str) -> Result<DataKey, KmsError> {
        let entries = self.entries.read().unwrap();
        let Some(entry) = entries.get(wrapped) else {
            return Err(KmsError::unreachable("the key has not been unwrapped yet"));
        };
        let fresh = entry.confirmed.is_some_and(|t| t.elapsed() <= self.max_age);
        match (&entry.key, &entry.error) {
            // A definite refusal (disabled, deleted, access taken away) applies at once; a KMS
            // that cannot be reached is waited out for `max_age`.
            (Some(k), None) if fresh => Ok(k.clone()),
            (Some(k), Some(e)) if fresh && e.code.is_empty() => Ok(k.clone()),
            (_, Some(e)) => Err(e.clone()),
            _ => Err(KmsError::unreachable(
                "the key has not been confirmed lately",
            )),
        }
    }

    /// The key last unwrapped, however long ago: flushes write events accepted while the key
    /// was usable with it, so that a key disabled meanwhile does not hold up the whole flush.
    pub fn last_known(&self, wrapped: &str) -> Result<DataKey, KmsError> {
        let entries = self.entries.read().unwrap();
        match entries.get(wrapped) {
            Some(Entry { key: Some(k), .. }) => Ok(k.clone()),
            Some(Entry { error: Some(e), .. }) => Err(e.clone()),
            _ => Err(KmsError::unreachable("the key has not been unwrapped yet")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// A KMS that XORs with a fixed byte and can be switched off.
    struct Toy {
        enabled: AtomicBool,
    }

    impl KeyService for Toy {
        fn encrypt<'a>(
            &'a self,
            key_id: &'a str,
            plain: &'a [u8],
        ) -> BoxFuture<'a, Result<(String, Vec<u8>), KmsError>> {
            Box::pin(async move {
                Ok((
                    format!("arn:aws:kms:r:1:key/{key_id}"),
                    plain.iter().map(|b| b ^ 0x5a).collect(),
                ))
            })
        }
        fn decrypt<'a>(
            &'a self,
            _key_arn: &'a str,
            blob: &'a [u8],
        ) -> BoxFuture<'a, Result<Vec<u8>, KmsError>> {
            Box::pin(async move {
                if !self.enabled.load(Ordering::Relaxed) {
                    return Err(KmsError {
                        code: "DisabledException".into(),
                        message: "key is disabled".into(),
                    });
                }
                Ok(blob.iter().map(|b| b ^ 0x5a).collect())
            })
        }
    }

    #[tokio::test]
    async fn a_disabled_key_stops_reads_but_not_flushes() {
        let toy = Arc::new(Toy {
            enabled: AtomicBool::new(true),
        });
        let keys = KmsKeys::new(toy.clone(), Duration::from_secs(60));
        let key = DataKey::random().unwrap();
        let wrapped = keys.wrap("k1", &key).await.unwrap();
        assert!(is_kms(&wrapped));
        assert_eq!(key_arn(&wrapped), Some("arn:aws:kms:r:1:key/k1"));
        assert!(
            !wrapped.contains(&key.to_hex()),
            "the key is not kept in clear"
        );
        assert_eq!(keys.usable(&wrapped).unwrap(), key);

        // A new process knows nothing until the KMS unwraps it.
        let fresh = KmsKeys::new(toy.clone(), Duration::from_secs(60));
        assert!(fresh.usable(&wrapped).is_err());
        assert_eq!(fresh.refresh(&wrapped).await.unwrap(), key);
        assert_eq!(fresh.usable(&wrapped).unwrap(), key);

        toy.enabled.store(false, Ordering::Relaxed);
        assert_eq!(
            fresh.refresh(&wrapped).await.unwrap_err().code,
            "DisabledException"
        );
        assert_eq!(
            fresh.usable(&wrapped).unwrap_err().code,
            "DisabledException"
        );
        assert_eq!(fresh.last_known(&wrapped).unwrap(), key);

        toy.enabled.store(true, Ordering::Relaxed);
        fresh.refresh(&wrapped).await.unwrap();
        assert_eq!(fresh.usable(&wrapped).unwrap(), key);
    }

    #[tokio::test]
    async fn an_unreachable_kms_is_waited_out_for_max_age() {
        let toy = Arc::new(Toy {
            enabled: AtomicBool::new(true),
        });
        let keys = KmsKeys::new(toy, Duration::from_millis(300));
        let key = DataKey::random().unwrap();
        let wrapped = keys.wrap("k", &key).await.unwrap();
        keys.entries
            .write()
            .unwrap()
            .get_mut(&wrapped)
            .unwrap()
            .error = Some(KmsError::unreachable("connection refused"));
        assert_eq!(keys.usable(&wrapped).unwrap(), key);
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(keys.usable(&wrapped).unwrap_err().code.is_empty());
        assert_eq!(keys.last_known(&wrapped).unwrap(), key);
    }
}

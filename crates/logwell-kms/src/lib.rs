//! The KMS client that wraps log groups' data keys with customers' KMS keys: AWS KMS, or any
//! service speaking its API (`[kms] endpoint`), through the AWS SDK.

use aws_sdk_kms::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::KeyState;
use futures::future::BoxFuture;
use logwell_storage::kms::{KeyService, KeyServiceRef, KmsError};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// `[kms]`: the KMS that holds the keys named by groups' `kmsKeyId`. Unset (no endpoint and no
/// region): groups cannot have a KMS key.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct KmsConfig {
    /// The KMS's URL (unset: AWS KMS in `region`).
    pub endpoint: Option<String>,
    /// The KMS's region (unset: the server's region).
    pub region: Option<String>,
    /// Credentials for the KMS (unset: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and
    /// AWS_SESSION_TOKEN from the environment).
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub session_token: Option<String>,
    /// An unwrapped data key is used at most this long without the KMS confirming it again, so
    /// a disabled or deleted KMS key takes effect within it (CloudWatch: up to 5 minutes).
    pub key_cache_secs: f64,
}

impl Default for KmsConfig {
    fn default() -> Self {
        KmsConfig {
            endpoint: None,
            region: None,
            access_key_id: None,
            secret_access_key: None,
            session_token: None,
            key_cache_secs: 300.0,
        }
    }
}

impl KmsConfig {
    /// Whether a KMS is configured at all.
    pub fn is_set(&self) -> bool {
        self.endpoint.is_some() || self.region.is_some()
    }
}

/// A KMS reached through the AWS SDK.
pub struct Kms {
    client: aws_sdk_kms::Client,
}

/// The KMS a config names (None when it names none), for the storage engine.
pub fn service(config: &KmsConfig, server_region: &str) -> Result<Option<KeyServiceRef>, String> {
    if !config.is_set() {
        return Ok(None);
    }
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let access = config
        .access_key_id
        .clone()
        .or_else(|| env("AWS_ACCESS_KEY_ID"));
    let secret = config
        .secret_access_key
        .clone()
        .or_else(|| env("AWS_SECRET_ACCESS_KEY"));
    let (Some(access), Some(secret)) = (access, secret) else {
        return Err("[kms] needs credentials: access_key_id and secret_access_key, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY".into());
    };
    let token = config
        .session_token
        .clone()
        .or_else(|| env("AWS_SESSION_TOKEN"));
    let region = config
        .region
        .clone()
        .unwrap_or_else(|| server_region.to_string());
    let mut builder = aws_sdk_kms::Config::builder()
        .region(aws_sdk_kms::config::Region::new(region))
        .credentials_provider(aws_credential_types::Credentials::new(
            access,
            secret,
            token,
            None,
            "logwell-kms",
        ))
        .timeout_config(
            aws_sdk_kms::config::timeout::TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(3))
                .operation_timeout(Duration::from_secs(10))
                .build(),
        )
        .retry_config(aws_sdk_kms::config::retry::RetryConfig::standard().with_max_attempts(2));
    if let Some(e) = &config.endpoint {
        builder = builder.endpoint_url(e);
    }
    if !(config.key_cache_secs > 0.0) {
        return Err("[kms] key_cache_secs must be above 0".into());
    }
    Ok(Some(KeyServiceRef {
        service: Arc::new(Kms {
            client: aws_sdk_kms::Client::from_conf(builder.build()),
        }),
        max_age: Duration::from_secs_f64(config.key_cache_secs),
    }))
}

fn kms_error<
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
>(
    e: SdkError<E, R>,
) -> KmsError {
    match &e {
        SdkError::ServiceError(se) => KmsError {
            code: se
                .err()
                .code()
                .unwrap_or("KMSInternalException")
                .to_string(),
            message: se.err().message().unwrap_or_default().to_string(),
        },
        _ => KmsError::unreachable(DisplayErrorContext(&e).to_string()),
    }
}

impl Kms {
    /// The key's ARN, if the key is enabled; KMS's own errors for one that is not (a KMS
    /// refuses Encrypt and Decrypt with a disabled key anyway; asking first gives the same
    /// answer from services that do not check).
    async fn enabled_arn(&self, key_id: &str) -> Result<String, KmsError> {
        let out = self
            .client
            .describe_key()
            .key_id(key_id)
            .send()
            .await
            .map_err(kms_error)?;
        let meta = out.key_metadata().ok_or_else(|| KmsError {
            code: "KMSInternalException".into(),
            message: "DescribeKey returned no key metadata".into(),
        })?;
        let arn = meta.arn().unwrap_or(key_id).to_string();
        match meta.key_state() {
            Some(KeyState::Enabled) | None => Ok(arn),
            Some(KeyState::Disabled) => Err(KmsError {
                code: "DisabledException".into(),
                message: format!("{arn} is disabled."),
            }),
            Some(state) => Err(KmsError {
                code: "KMSInvalidStateException".into(),
                message: format!("{arn} is {}.", state.as_str()),
            }),
        }
    }
}

impl KeyService for Kms {
    fn encrypt<'a>(
        &'a self,
        key_id: &'a str,
        plain: &'a [u8],
    ) -> BoxFuture<'a, Result<(String, Vec<u8>), KmsError>> {
        Box::pin(async move {
            let arn = self.enabled_arn(key_id).await?;
            let out = self
                .client
                .encrypt()
                .key_id(&arn)
                .plaintext(Blob::new(plain))
                .send()
                .await
                .map_err(kms_error)?;
            let blob = out.ciphertext_blob().ok_or_else(|| KmsError {
                code: "KMSInternalException".into(),
                message: "Encrypt returned no ciphertext".into(),
            })?;
            Ok((arn, blob.as_ref().to_vec()))
        })
    }

    fn decrypt<'a>(
        &'a self,
        key_arn: &'a str,
        blob: &'a [u8],
    ) -> BoxFuture<'a, Result<Vec<u8>, KmsError>> {
        Box::pin(async move {
            self.enabled_arn(key_arn).await?;
            let out = self
                .client
                .decrypt()
                .key_id(key_arn)
                .ciphertext_blob(Blob::new(blob))
                .send()
                .await
                .map_err(kms_error)?;
            let plain = out.plaintext().ok_or_else(|| KmsError {
                code: "KMSInternalException".into(),
                message: "Decrypt returned no plaintext".into(),
            })?;
            Ok(plain.as_ref().to_vec())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_means_no_kms_and_settings_parse() {
        assert!(service(&KmsConfig::default(), "us-east-1")
            .unwrap()
            .is_none());
        let c: KmsConfig = toml::from_str(
            "endpoint = \"http://127.0.0.1:1\"\naccess_key_id = \"a\"\nsecret_access_key = \"b\"\nkey_cache_secs = 2",
        )
        .unwrap();
        let s = service(&c, "us-east-1").unwrap().unwrap();
        assert_eq!(s.max_age, Duration::from_secs(2));
        assert!(toml::from_str::<KmsConfig>("endpoints = \"x\"").is_err());
    }

    #[tokio::test]
    async fn an_unreachable_kms_is_reported_as_such() {
        let c = KmsConfig {
            endpoint: Some("http://127.0.0.1:9".into()),
            access_key_id: Some("a".into()),
            secret_access_key: Some("b".into()),
            ..Default::default()
        };
        let s = service(&c, "us-east-1").unwrap().unwrap();
        let e = s.service.encrypt("alias/x", b"k").await.unwrap_err();
        assert!(e.code.is_empty(), "{e:?}");
    }
}

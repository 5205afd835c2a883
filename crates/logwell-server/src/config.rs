//! The server's typed configuration: flags, an optional TOML file, and defaults.

use logwell_storage::StorageConfig;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on.
    pub listen: String,
    /// Region shown in ARNs.
    pub region: String,
    /// Account id shown in ARNs.
    pub account_id: String,
    /// Other accounts whose resources this server holds, each apart from the others (its own
    /// store under `<data_dir>/accounts/<id>`, or `<prefix>/accounts/<id>` in a bucket). A
    /// signed caller of a hosted account works in that account; accounts reach one another only
    /// through destinations and resource policies.
    pub hosted_accounts: Vec<String>,
    pub storage: StorageConfig,
    pub query: QuerySettings,
    pub limits: Limits,
    /// `[delivery]`: where subscription destinations lead (`[delivery.lambda]`: ARN = URL).
    pub delivery: logwell_delivery::DeliveryConfig,
    /// `[auth]`: the credentials requests are signed with (none: requests are not verified,
    /// which `logwell serve` allows only on a loopback address or with `--insecure-no-auth`).
    pub auth: logwell_auth::AuthConfig,
    /// `[tls]`: a certificate and key make the server speak HTTPS.
    pub tls: crate::tls::TlsConfig,
    /// `[kms]`: the KMS that wraps the data keys of groups with a `kmsKeyId`.
    pub kms: logwell_kms::KmsConfig,
}

/// `[limits]`: what the server holds at once, so memory stays bounded under any load. Requests
/// past a limit get ThrottlingException at once instead of queueing.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Requests being handled at once.
    pub max_concurrent_requests: usize,
    /// Request bytes held at once: each request counts twice its body (the body, then its WAL
    /// record), so this bounds what requests hold while they are read, parsed and written.
    pub max_request_bytes_in_flight: usize,
    /// A connection must send a request's headers within this many seconds.
    pub header_read_timeout_secs: f64,
    /// ... and its body within this many seconds.
    pub body_read_timeout_secs: f64,
    /// Finished queries whose results are kept for GetQueryResults (oldest go first).
    pub max_kept_queries: usize,
    /// ... and the bytes of results they may hold together.
    pub max_kept_result_bytes: usize,
    /// Live Tail sessions open at once (CloudWatch's default quota: 15).
    pub max_live_tail_sessions: usize,
    /// CPU priority (nice, 0-19) of the threads that deliver subscriptions, run export tasks and
    /// compute metric filters. Above 0, a flood of ingest keeps its pace and they catch up after
    /// it (their positions are durable); 0 runs them level with requests.
    pub background_nice: i32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_concurrent_requests: 1024,
            max_request_bytes_in_flight: 256 << 20,
            header_read_timeout_secs: 30.0,
            body_read_timeout_secs: 60.0,
            max_kept_queries: 1000,
            max_kept_result_bytes: 256 << 20,
            max_live_tail_sessions: 15,
            background_nice: 10,
        }
    }
}

/// `[query]`: limits of Logs Insights and SQL queries.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct QuerySettings {
    /// Memory a query may use before its sorts and aggregations spill to disk (bytes).
    pub memory_limit: usize,
    /// Where spill files go; the OS temp directory when unset.
    pub spill_dir: Option<std::path::PathBuf>,
    /// A query still running after this many seconds ends with status `Timeout`.
    pub timeout_secs: u64,
}

impl Default for QuerySettings {
    fn default() -> Self {
        QuerySettings {
            memory_limit: 2 << 30,
            spill_dir: None,
            // CloudWatch's limit: 60 minutes.
            timeout_secs: 3600,
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:4566".into(),
            region: "us-east-1".into(),
            account_id: "000000000000".into(),
            hosted_accounts: Vec::new(),
            storage: StorageConfig::default(),
            query: QuerySettings::default(),
            limits: Limits::default(),
            delivery: Default::default(),
            auth: Default::default(),
            tls: Default::default(),
            kms: Default::default(),
        }
    }
}

impl ServerConfig {
    /// Parses a TOML config file's text.
    pub fn from_toml(text: &str) -> Result<Self, toml::de::Error> {
        toml::from_str(text)
    }

    /// The config of hosted account `id`: the same settings, its own store beside this one's.
    pub fn for_account(&self, id: &str) -> ServerConfig {
        let mut c = self.clone();
        c.account_id = id.to_string();
        c.hosted_accounts = Vec::new();
        c.storage.data_dir = self.storage.data_dir.join("accounts").join(id);
        if let logwell_storage::ObjectStoreConfig::S3(s3) = &mut c.storage.object_store {
            s3.prefix = Some(
                match s3.prefix.as_deref().map(|p| p.trim_end_matches('/')) {
                    Some(p) if !p.is_empty() => format!("{p}/accounts/{id}"),
                    _ => format!("accounts/{id}"),
                },
            );
        }
        c
    }

    /// Hosted account ids are 12 digits, listed once, and not this server's own.
    pub fn check_hosted_accounts(&self) -> Result<(), String> {
        let mut seen = std::collections::BTreeSet::new();
        for id in &self.hosted_accounts {
            if id.len() != 12 || !id.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!(
                    "hosted_accounts: '{id}' is not a 12-digit account id"
                ));
            }
            if id == &self.account_id || !seen.insert(id) {
                return Err(format!(
                    "hosted_accounts: '{id}' is listed twice (or is account_id)"
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use logwell_storage::{ObjectStoreConfig, S3Config};
    use std::time::Duration;

    #[test]
    fn example_config_parses() {
        let text = include_str!("../../../testdata/config/s3.toml");
        let c = ServerConfig::from_toml(text).unwrap();
        assert_eq!(c.listen, "0.0.0.0:4566");
        assert_eq!(c.storage.flush_age, Duration::from_secs(30));
        assert_eq!(
            c.storage.object_store,
            ObjectStoreConfig::S3(S3Config {
                bucket: "logwell".into(),
                endpoint: Some("http://127.0.0.1:9000".into()),
                region: "us-east-1".into(),
                access_key_id: Some("minio".into()),
                secret_access_key: Some("minio123".into()),
                path_style: true,
                prefix: Some("prod".into()),
                retry_timeout: 15.0,
                max_retries: 3,
            })
        );
    }

    #[test]
    fn limits_example_parses() {
        let c =
            ServerConfig::from_toml(include_str!("../../../testdata/config/limits.toml")).unwrap();
        assert_eq!(c.limits.max_concurrent_requests, 512);
        assert_eq!(c.limits.max_request_bytes_in_flight, 128 << 20);
        assert_eq!(c.limits.max_kept_queries, 500);
        assert_eq!(c.storage.orphan_grace, Duration::from_secs(600));
        assert!(ServerConfig::from_toml("[limits]\nmax_requests = 1").is_err());
    }

    #[test]
    fn a_hosted_account_has_its_own_store() {
        let mut c =
            ServerConfig::from_toml(include_str!("../../../testdata/config/s3.toml")).unwrap();
        c.hosted_accounts = vec!["111111111111".into()];
        c.check_hosted_accounts().unwrap();
        let t = c.for_account("111111111111");
        assert_eq!(t.account_id, "111111111111");
        assert!(t.hosted_accounts.is_empty());
        assert_eq!(
            t.storage.data_dir,
            c.storage.data_dir.join("accounts/111111111111")
        );
        match t.storage.object_store {
            ObjectStoreConfig::S3(s3) => {
                assert_eq!(s3.prefix.as_deref(), Some("prod/accounts/111111111111"))
            }
            _ => panic!("an S3 store stays one"),
        }
        c.hosted_accounts = vec!["12".into()];
        assert!(c.check_hosted_accounts().is_err());
        c.hosted_accounts = vec![c.account_id.clone()];
        assert!(c.check_hosted_accounts().is_err());
    }

    #[test]
    fn empty_config_is_the_default_and_typos_are_errors() {
        assert_eq!(
            ServerConfig::from_toml("").unwrap(),
            ServerConfig::default()
        );
        assert!(ServerConfig::from_toml("listn = \"x\"").is_err());
    }
}

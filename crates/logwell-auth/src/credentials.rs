//! Credentials: access key ids with their secrets, accounts and principals, from the config or
//! a file that is re-read when it changes (so keys are added and revoked without a restart).

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};

use crate::Policy;
use std::time::SystemTime;

/// One access key.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Credential {
    pub access_key_id: String,
    pub secret_access_key: String,
    /// The 12-digit account the key belongs to.
    pub account_id: String,
    /// The IAM user name: the principal is `arn:aws:iam::ACCOUNT:user/USER`.
    #[serde(default = "default_user")]
    pub user: String,
    /// Temporary credentials: requests must carry this `X-Amz-Security-Token`.
    #[serde(default)]
    pub session_token: Option<String>,
    /// Temporary credentials stop working at this time (RFC 3339).
    #[serde(default)]
    pub expires: Option<String>,
    /// The principal's identity policy (IAM JSON). None: the account's root, allowed everything
    /// in its account.
    #[serde(default)]
    pub policy: Option<String>,
    /// `policy`, parsed (by `check`).
    #[serde(skip)]
    pub parsed_policy: Option<Arc<Policy>>,
}

fn default_user() -> String {
    "default".into()
}

impl Credential {
    pub fn principal_arn(&self) -> String {
        format!("arn:aws:iam::{}:user/{}", self.account_id, self.user)
    }

    /// Expiry in epoch milliseconds.
    pub fn expires_ms(&self) -> Option<i64> {
        self.expires
            .as_deref()
            .and_then(|e| chrono::DateTime::parse_from_rfc3339(e).ok())
            .map(|t| t.timestamp_millis())
    }

    /// Refuses a credential that could never verify, and parses its policy.
    pub fn check(&mut self) -> Result<(), String> {
        if let Some(p) = &self.policy {
            let parsed = Policy::parse(p)
                .map_err(|e| format!("credential {}: policy: {e}", self.access_key_id))?;
            self.parsed_policy = Some(Arc::new(parsed));
        }
        if self.access_key_id.is_empty() || self.secret_access_key.is_empty() {
            return Err("a credential needs access_key_id and secret_access_key".into());
        }
        if self.account_id.len() != 12 || !self.account_id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "credential {}: account_id must be 12 digits",
                self.access_key_id
            ));
        }
        if self.expires.is_some() && self.expires_ms().is_none() {
            return Err(format!(
                "credential {}: expires must be an RFC 3339 time",
                self.access_key_id
            ));
        }
        Ok(())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileContents {
    #[serde(default)]
    credentials: Vec<Credential>,
}

/// A credentials file, re-read (at most once a second) when its modification time or size
/// changes. A change that does not parse is reported and the previous credentials stay.
pub struct CredentialsFile {
    path: PathBuf,
    loaded: RwLock<Loaded>,
    checked_ms: AtomicI64,
}

struct Loaded {
    stamp: Option<(SystemTime, u64)>,
    by_key: HashMap<String, Credential>,
}

impl CredentialsFile {
    pub fn load(path: &Path) -> Result<CredentialsFile, String> {
        let (stamp, by_key) = read(path)?;
        warn_if_readable_by_others(path);
        Ok(CredentialsFile {
            path: path.to_path_buf(),
            loaded: RwLock::new(Loaded { stamp, by_key }),
            checked_ms: AtomicI64::new(0),
        })
    }

    /// The credential of `access_key_id`, as the file says now.
    pub fn find(&self, access_key_id: &str, now_ms: i64) -> Option<Credential> {
        self.refresh(now_ms);
        self.loaded
            .read()
            .unwrap()
            .by_key
            .get(access_key_id)
            .cloned()
    }

    fn refresh(&self, now_ms: i64) {
        let last = self.checked_ms.load(Ordering::Relaxed);
        if now_ms - last < 1000
            || self
                .checked_ms
                .compare_exchange(last, now_ms, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        let stamp = stamp(&self.path);
        if stamp == self.loaded.read().unwrap().stamp {
            return;
        }
        match read(&self.path) {
            Ok((stamp, by_key)) => {
                tracing::info!(path = %self.path.display(), keys = by_key.len(), "credentials reloaded");
                *self.loaded.write().unwrap() = Loaded { stamp, by_key };
            }
            Err(e) => {
                tracing::warn!(path = %self.path.display(), error = %e, "credentials file not reloaded; the previous credentials stay");
            }
        }
    }
}

fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

type Read = (Option<(SystemTime, u64)>, HashMap<String, Credential>);

fn read(path: &Path) -> Result<Read, String> {
    let stamp = stamp(path);
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read credentials file {}: {e}", path.display()))?;
    let contents: FileContents =
        toml::from_str(&text).map_err(|e| format!("credentials file {}: {e}", path.display()))?;
    let mut by_key = HashMap::new();
    for mut c in contents.credentials {
        c.check()?;
        if by_key.insert(c.access_key_id.clone(), c).is_some() {
            return Err(format!(
                "credentials file {}: an access key id appears twice",
                path.display()
            ));
        }
    }
    Ok((stamp, by_key))
}

fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(m) = std::fs::metadata(path) {
            if m.permissions().mode() & 0o077 != 0 {
                tracing::warn!(path = %path.display(), "the credentials file can be read by other users; chmod 600 it");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: &str, secret: &str) -> String {
        format!(
            "[[credentials]]\naccess_key_id = \"{key}\"\nsecret_access_key = \"{secret}\"\naccount_id = \"111111111111\"\nuser = \"alice\"\n"
        )
    }

    #[test]
    fn a_changed_file_is_read_again_and_a_broken_one_keeps_the_previous_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("credentials.toml");
        std::fs::write(&path, entry("AKIA1", "s1")).unwrap();
        let f = CredentialsFile::load(&path).unwrap();
        assert_eq!(f.find("AKIA1", 10_000).unwrap().secret_access_key, "s1");
        assert_eq!(
            f.find("AKIA1", 10_000).unwrap().principal_arn(),
            "arn:aws:iam::111111111111:user/alice"
        );
        // Key 1 revoked, key 2 added.
        std::fs::write(&path, entry("AKIA2", "s2-longer")).unwrap();
        assert!(
            f.find("AKIA1", 10_500).is_some(),
            "checked at most once a second"
        );
        assert!(f.find("AKIA1", 12_000).is_none());
        assert_eq!(
            f.find("AKIA2", 12_000).unwrap().secret_access_key,
            "s2-longer"
        );
        std::fs::write(&path, "[[credentials]]\nnot toml at all =").unwrap();
        assert!(f.find("AKIA2", 14_000).is_some());
        // A bad account id is refused at load.
        std::fs::write(&path, entry("AKIA3", "s").replace("111111111111", "12")).unwrap();
        assert!(CredentialsFile::load(&path).is_err());
    }
}

//! Where a client connects and as whom, resolved the way the AWS CLI and SDKs resolve it: the
//! endpoint from `AWS_ENDPOINT_URL_CLOUDWATCH_LOGS` or `AWS_ENDPOINT_URL`; the region from
//! `AWS_REGION`, `AWS_DEFAULT_REGION` or the profile; credentials from `AWS_ACCESS_KEY_ID` /
//! `AWS_SECRET_ACCESS_KEY` / `AWS_SESSION_TOKEN`, else the profile (`AWS_PROFILE`, default
//! `default`) in `~/.aws/credentials` (`AWS_SHARED_CREDENTIALS_FILE`) and `~/.aws/config`
//! (`AWS_CONFIG_FILE`); an extra CA bundle (for a self-signed HTTPS endpoint) from
//! `AWS_CA_BUNDLE` or the profile's `ca_bundle`.

use std::collections::HashMap;
use std::path::PathBuf;

/// The endpoint a local logwell listens on by default.
pub const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:4566";
pub const DEFAULT_REGION: &str = "us-east-1";

/// An access key and its secret (and a session token for temporary credentials).
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"** redacted **")
            .finish()
    }
}

/// A resolved client configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub endpoint: String,
    pub region: String,
    /// None when nothing configures credentials: requests are then signed with a placeholder
    /// key, which a logwell on a loopback address without configured credentials accepts.
    pub credentials: Option<Credentials>,
    /// PEM certificates trusted besides the system's (`AWS_CA_BUNDLE`, the profile's
    /// `ca_bundle`, the CLI's `--ca-bundle`).
    pub ca_bundle: Option<PathBuf>,
}

impl Settings {
    /// Resolves the settings from the process environment and the AWS profile files;
    /// `endpoint` (a command-line flag) wins over the environment.
    pub fn from_env(endpoint: Option<&str>) -> Settings {
        Settings::resolve(endpoint, &|k| {
            std::env::var(k).ok().filter(|v| !v.is_empty())
        })
    }

    /// [`Settings::from_env`] over any environment (for tests).
    pub fn resolve(endpoint: Option<&str>, env: &dyn Fn(&str) -> Option<String>) -> Settings {
        let profile = env("AWS_PROFILE").unwrap_or_else(|| "default".into());
        let home = env("HOME").map(PathBuf::from);
        let file = |var: &str, name: &str| {
            env(var)
                .map(PathBuf::from)
                .or_else(|| home.as_ref().map(|h| h.join(".aws").join(name)))
        };
        let credentials_file = file("AWS_SHARED_CREDENTIALS_FILE", "credentials")
            .and_then(|p| std::fs::read_to_string(p).ok())
            .map(|t| section(&t, &profile, false))
            .unwrap_or_default();
        let config_file = file("AWS_CONFIG_FILE", "config")
            .and_then(|p| std::fs::read_to_string(p).ok())
            .map(|t| section(&t, &profile, true))
            .unwrap_or_default();
        let from_profile = |key: &str| {
            credentials_file
                .get(key)
                .or_else(|| config_file.get(key))
                .cloned()
        };
        let endpoint = endpoint
            .map(str::to_string)
            .or_else(|| env("AWS_ENDPOINT_URL_CLOUDWATCH_LOGS"))
            .or_else(|| env("AWS_ENDPOINT_URL"))
            .or_else(|| config_file.get("endpoint_url").cloned())
            .unwrap_or_else(|| DEFAULT_ENDPOINT.into());
        let region = env("AWS_REGION")
            .or_else(|| env("AWS_DEFAULT_REGION"))
            .or_else(|| config_file.get("region").cloned())
            .unwrap_or_else(|| DEFAULT_REGION.into());
        let credentials = match (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
            (Some(id), Some(secret)) => Some(Credentials {
                access_key_id: id,
                secret_access_key: secret,
                session_token: env("AWS_SESSION_TOKEN"),
            }),
            _ => match (
                from_profile("aws_access_key_id"),
                from_profile("aws_secret_access_key"),
            ) {
                (Some(id), Some(secret)) => Some(Credentials {
                    access_key_id: id,
                    secret_access_key: secret,
                    session_token: from_profile("aws_session_token"),
                }),
                _ => None,
            },
        };
        let ca_bundle = env("AWS_CA_BUNDLE")
            .or_else(|| config_file.get("ca_bundle").cloned())
            .map(PathBuf::from);
        Settings {
            endpoint,
            region,
            credentials,
            ca_bundle,
        }
    }
}

/// The `key = value` pairs of one profile in an AWS INI file: `[name]` in the credentials
/// file; `[profile name]` (or `[default]`) in the config file.
fn section(text: &str, profile: &str, config: bool) -> HashMap<String, String> {
    let wanted = |header: &str| {
        let header = header.trim();
        if config && profile != "default" {
            header
                .strip_prefix("profile")
                .is_some_and(|rest| rest.starts_with(char::is_whitespace) && rest.trim() == profile)
        } else {
            header == profile
        }
    };
    let mut out = HashMap::new();
    let mut inside = false;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(header) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = wanted(header);
        } else if inside {
            if let Some((k, v)) = line.split_once('=') {
                out.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn the_environment_wins_over_profiles_and_defaults_fill_the_rest() {
        let s = Settings::resolve(None, &env_of(&[("HOME", "/nonexistent")]));
        assert_eq!(s.endpoint, DEFAULT_ENDPOINT);
        assert_eq!(s.region, DEFAULT_REGION);
        assert_eq!(s.credentials, None);
        let s = Settings::resolve(
            Some("http://flag:1"),
            &env_of(&[
                ("AWS_ENDPOINT_URL", "http://env:2"),
                ("AWS_DEFAULT_REGION", "eu-west-1"),
                ("AWS_ACCESS_KEY_ID", "AKID"),
                ("AWS_SECRET_ACCESS_KEY", "secret"),
                ("AWS_SESSION_TOKEN", "token"),
                ("HOME", "/nonexistent"),
            ]),
        );
        assert_eq!(s.endpoint, "http://flag:1");
        assert_eq!(s.region, "eu-west-1");
        let c = s.credentials.unwrap();
        assert_eq!(
            (c.access_key_id.as_str(), c.session_token.as_deref()),
            ("AKID", Some("token"))
        );
        let s = Settings::resolve(
            None,
            &env_of(&[
                ("AWS_ENDPOINT_URL", "http://env:2"),
                ("AWS_ENDPOINT_URL_CLOUDWATCH_LOGS", "http://logs:3"),
                ("HOME", "/nonexistent"),
            ]),
        );
        assert_eq!(s.endpoint, "http://logs:3");
    }

    #[test]
    fn profiles_come_from_the_credentials_and_config_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join(".aws")).unwrap();
        std::fs::write(
            dir.path().join(".aws/credentials"),
            "[default]\naws_access_key_id = DEF\naws_secret_access_key = defsecret\n\n[ops]\n# comment\naws_access_key_id=OPS\naws_secret_access_key=opssecret\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join(".aws/config"),
            "[default]\nregion = us-west-2\n\n[profile ops]\nregion = ap-south-1\nendpoint_url = http://ops:9\n",
        )
        .unwrap();
        let home = dir.path().to_str().unwrap();
        let s = Settings::resolve(None, &env_of(&[("HOME", home)]));
        assert_eq!(s.region, "us-west-2");
        assert_eq!(s.credentials.unwrap().access_key_id, "DEF");
        let s = Settings::resolve(None, &env_of(&[("HOME", home), ("AWS_PROFILE", "ops")]));
        assert_eq!(
            (s.region.as_str(), s.endpoint.as_str()),
            ("ap-south-1", "http://ops:9")
        );
        let c = s.credentials.unwrap();
        assert_eq!(
            (c.access_key_id.as_str(), c.secret_access_key.as_str()),
            ("OPS", "opssecret")
        );
    }
}

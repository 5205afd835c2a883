//! Who is calling: SigV4 signatures verified against the credentials logwell holds (a
//! credentials file, reloaded when it changes, or the config), or, on a loopback address with no
//! credentials configured, every well-formed request accepted as the server's own account.

mod credentials;
mod policy;
mod sigv4;

pub use credentials::{Credential, CredentialsFile};
pub use policy::{wildcard, Context, Decision, Policy};
pub use sigv4::{Request, SKEW_MS};

use logwell_model::ApiError;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// `[auth]`: where credentials come from.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// A TOML file of `[[credentials]]` (see [`Credential`]); re-read when it changes.
    pub credentials_file: Option<PathBuf>,
    /// Credentials written in the config itself.
    pub credentials: Vec<Credential>,
}

impl AuthConfig {
    /// Whether any credentials are configured (then every request must be signed with one).
    pub fn has_credentials(&self) -> bool {
        self.credentials_file.is_some() || !self.credentials.is_empty()
    }
}

/// The verified caller of a request.
#[derive(Debug, Clone, PartialEq)]
pub struct Caller {
    pub account_id: String,
    /// `arn:aws:iam::ACCOUNT:user/NAME`.
    pub principal_arn: String,
    /// None when signatures are not verified.
    pub access_key_id: Option<String>,
    /// The identity policy every call is checked against (None: everything in its account).
    pub policy: Option<std::sync::Arc<Policy>>,
    pub user: String,
}

enum Mode {
    /// No credentials: requests are not verified and act as the server's account.
    Open { account_id: String },
    /// Every request must carry a valid signature of a known credential.
    Verify {
        inline: Vec<Credential>,
        file: Option<CredentialsFile>,
    },
}

/// Decides who sends each request.
pub struct Authenticator {
    mode: Mode,
    region: String,
}

impl Authenticator {
    /// Verifies signatures when `config` has credentials; otherwise accepts every request as
    /// `account_id` (the caller decides whether that is allowed where it listens).
    pub fn new(config: &AuthConfig, region: &str, account_id: &str) -> Result<Self, String> {
        let mode = if config.has_credentials() {
            let mut inline = config.credentials.clone();
            for c in &mut inline {
                c.check()?;
            }
            let file = match &config.credentials_file {
                Some(p) => Some(CredentialsFile::load(p)?),
                None => None,
            };
            Mode::Verify { inline, file }
        } else {
            Mode::Open {
                account_id: account_id.to_string(),
            }
        };
        Ok(Authenticator {
            mode,
            region: region.to_string(),
        })
    }

    /// Whether signatures are verified.
    pub fn verifies(&self) -> bool {
        matches!(self.mode, Mode::Verify { .. })
    }

    /// The caller of `request`, or the error AWS gives for its signature.
    pub fn authenticate(&self, request: &Request<'_>, now_ms: i64) -> Result<Caller, ApiError> {
        match &self.mode {
            Mode::Open { account_id } => Ok(Caller {
                account_id: account_id.clone(),
                principal_arn: format!("arn:aws:iam::{account_id}:root"),
                access_key_id: None,
                policy: None,
                user: "root".into(),
            }),
            Mode::Verify { inline, file } => {
                let parsed = sigv4::Authorization::parse(request)?;
                let credential = match inline
                    .iter()
                    .find(|c| c.access_key_id == parsed.access_key_id)
                {
                    Some(c) => c.clone(),
                    None => {
                        let found = file
                            .as_ref()
                            .and_then(|f| f.find(&parsed.access_key_id, now_ms));
                        found.ok_or_else(sigv4::unrecognized)?
                    }
                };
                sigv4::verify(request, &parsed, &credential, &self.region, now_ms)?;
                Ok(Caller {
                    account_id: credential.account_id.clone(),
                    principal_arn: credential.principal_arn(),
                    access_key_id: Some(credential.access_key_id.clone()),
                    policy: credential.parsed_policy.clone(),
                    user: credential.user,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    const BODY: &[u8] = br#"{"logGroupNamePrefix":"/app"}"#;

    fn credential(token: Option<&str>) -> Credential {
        Credential {
            access_key_id: "AKIAEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG".into(),
            account_id: "111111111111".into(),
            user: "alice".into(),
            session_token: token.map(String::from),
            expires: token.map(|_| "2026-11-26T12:00:00Z".into()),
            policy: None,
            parsed_policy: None,
        }
    }

    /// Headers of a request signed as the AWS SDKs sign it (aws-sigv4's own signer).
    fn signed(
        secret: &str,
        token: Option<&str>,
        at: SystemTime,
        body: &[u8],
    ) -> Vec<(String, String)> {
        let identity = aws_credential_types::Credentials::new(
            "AKIAEXAMPLE",
            secret,
            token.map(String::from),
            None,
            "test",
        )
        .into();
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region("us-east-1")
            .name("logs")
            .time(at)
            .settings(SigningSettings::default())
            .build()
            .unwrap()
            .into();
        let mut headers = vec![
            ("host".to_string(), "127.0.0.1:4566".to_string()),
            ("content-type".into(), "application/x-amz-json-1.1".into()),
            (
                "x-amz-target".into(),
                "Logs_20140328.DescribeLogGroups".into(),
            ),
        ];
        let signable = SignableRequest::new(
            "POST",
            "http://127.0.0.1:4566/",
            headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            SignableBody::Bytes(body),
        )
        .unwrap();
        let (instructions, _) = sign(signable, &params).unwrap().into_parts();
        headers.extend(
            instructions
                .headers()
                .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        headers
    }

    fn check(
        auth: &Authenticator,
        headers: Vec<(String, String)>,
        body: &[u8],
        now: SystemTime,
    ) -> Result<Caller, ErrorKind> {
        let request = Request {
            method: "POST",
            path: "/",
            query: "",
            headers,
            body,
        };
        let now_ms = now.duration_since(UNIX_EPOCH).unwrap().as_millis() as i64;
        auth.authenticate(&request, now_ms).map_err(|e| e.kind)
    }

    use logwell_model::ErrorKind;

    #[test]
    fn a_signature_verifies_only_with_the_right_secret_body_time_and_token() {
        let config = AuthConfig {
            credentials: vec![credential(None), {
                let mut c = credential(Some("session-token"));
                c.access_key_id = "ASIATEMP".into();
                c
            }],
            ..Default::default()
        };
        let auth = Authenticator::new(&config, "us-east-1", "000000000000").unwrap();
        assert!(auth.verifies());
        let at = UNIX_EPOCH + Duration::from_secs(1_764_100_000); // 2025-11-25
        let ok = check(
            &auth,
            signed("wJalrXUtnFEMI/K7MDENG", None, at, BODY),
            BODY,
            at,
        )
        .unwrap();
        assert_eq!(ok.account_id, "111111111111");
        assert_eq!(ok.principal_arn, "arn:aws:iam::111111111111:user/alice");
        // Within the 15-minute window either way.
        assert!(check(
            &auth,
            signed("wJalrXUtnFEMI/K7MDENG", None, at, BODY),
            BODY,
            at + Duration::from_secs(14 * 60)
        )
        .is_ok());
        let cases = [
            (
                "a wrong secret",
                signed("wrong", None, at, BODY),
                BODY,
                at,
                ErrorKind::InvalidSignature,
            ),
            (
                "a tampered body",
                signed("wJalrXUtnFEMI/K7MDENG", None, at, BODY),
                &br#"{"logGroupNamePrefix":"/"}"#[..],
                at,
                ErrorKind::InvalidSignature,
            ),
            (
                "a clock 16 minutes behind",
                signed("wJalrXUtnFEMI/K7MDENG", None, at, BODY),
                BODY,
                at + Duration::from_secs(16 * 60),
                ErrorKind::InvalidSignature,
            ),
            (
                "a clock 16 minutes ahead",
                signed(
                    "wJalrXUtnFEMI/K7MDENG",
                    None,
                    at + Duration::from_secs(16 * 60),
                    BODY,
                ),
                BODY,
                at,
                ErrorKind::InvalidSignature,
            ),
            (
                "a token the key does not have",
                signed("wJalrXUtnFEMI/K7MDENG", Some("t"), at, BODY),
                BODY,
                at,
                ErrorKind::UnrecognizedClient,
            ),
            (
                "no signature",
                vec![("host".into(), "h".into())],
                BODY,
                at,
                ErrorKind::MissingAuthenticationToken,
            ),
        ];
        for (what, headers, body, now, kind) in cases {
            assert_eq!(
                check(&auth, headers, body, now).unwrap_err(),
                kind,
                "{what}"
            );
        }
        // An unknown key id.
        let unknown: Vec<(String, String)> = signed("x", None, at, BODY)
            .into_iter()
            .map(|(k, v)| (k, v.replace("AKIAEXAMPLE", "AKIAUNKNOWN")))
            .collect();
        assert_eq!(
            check(&auth, unknown, BODY, at).unwrap_err(),
            ErrorKind::UnrecognizedClient
        );
        // Temporary credentials: the token must match, and they expire.
        let before = UNIX_EPOCH + Duration::from_secs(1_764_100_000);
        let mut c = credential(Some("session-token"));
        c.access_key_id = "AKIAEXAMPLE".into();
        let temp_auth = Authenticator::new(
            &AuthConfig {
                credentials: vec![c],
                ..Default::default()
            },
            "us-east-1",
            "0",
        )
        .unwrap();
        assert!(check(
            &temp_auth,
            signed("wJalrXUtnFEMI/K7MDENG", Some("session-token"), before, BODY),
            BODY,
            before
        )
        .is_ok());
        assert_eq!(
            check(
                &temp_auth,
                signed("wJalrXUtnFEMI/K7MDENG", Some("other"), before, BODY),
                BODY,
                before
            )
            .unwrap_err(),
            ErrorKind::UnrecognizedClient
        );
        assert_eq!(
            check(
                &temp_auth,
                signed("wJalrXUtnFEMI/K7MDENG", None, before, BODY),
                BODY,
                before
            )
            .unwrap_err(),
            ErrorKind::UnrecognizedClient
        );
        let after = UNIX_EPOCH + Duration::from_secs(1_795_698_000); // 2026-11-26T13:00:00Z
        assert_eq!(
            check(
                &temp_auth,
                signed("wJalrXUtnFEMI/K7MDENG", Some("session-token"), after, BODY),
                BODY,
                after
            )
            .unwrap_err(),
            ErrorKind::ExpiredToken
        );
    }

    #[test]
    fn without_credentials_every_request_is_the_servers_account() {
        let auth = Authenticator::new(&AuthConfig::default(), "us-east-1", "000000000000").unwrap();
        assert!(!auth.verifies());
        let c = check(&auth, vec![], BODY, SystemTime::now()).unwrap();
        assert_eq!(c.account_id, "000000000000");
    }
}

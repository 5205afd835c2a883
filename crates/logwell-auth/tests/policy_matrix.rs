//! The policy matrix in `testdata/policies/matrix.toml`: each case's decision, as AWS's
//! evaluation rules give it. A new case is a few lines of that file.

use logwell_auth::{Context, Decision, Policy};
use std::collections::BTreeMap;

#[derive(serde::Deserialize)]
struct Matrix {
    policies: BTreeMap<String, String>,
    case: Vec<Case>,
}

#[derive(serde::Deserialize)]
struct Case {
    policy: String,
    action: String,
    #[serde(default = "any_group")]
    resource: String,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default = "home")]
    account: String,
    #[serde(default = "alice")]
    user: String,
    #[serde(default)]
    source_ip: Option<String>,
    expect: String,
}

fn any_group() -> String {
    "arn:aws:logs:us-east-1:000000000000:log-group:*".into()
}
fn home() -> String {
    "000000000000".into()
}
fn alice() -> String {
    "alice".into()
}

#[test]
fn every_case_decides_as_aws_would() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../testdata/policies/matrix.toml"
    );
    let matrix: Matrix = toml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let policies: BTreeMap<&str, Policy> = matrix
        .policies
        .iter()
        .map(|(name, text)| {
            (
                name.as_str(),
                Policy::parse(text).unwrap_or_else(|e| panic!("{name}: {e}")),
            )
        })
        .collect();
    let mut failures = Vec::new();
    for (i, c) in matrix.case.iter().enumerate() {
        let arn = format!("arn:aws:iam::{}:user/{}", c.account, c.user);
        let mut keys = vec![
            ("aws:PrincipalAccount", c.account.clone()),
            ("aws:PrincipalArn", arn.clone()),
            ("aws:username", c.user.clone()),
        ];
        if let Some(ip) = &c.source_ip {
            keys.push(("aws:SourceIp", ip.clone()));
        }
        let ctx = Context {
            action: &c.action,
            resource: &c.resource,
            principal_account: &c.account,
            principal_arn: &arn,
            keys: &keys,
        };
        let policy = &policies[c.policy.as_str()];
        let got = match c.kind.as_deref() {
            Some("resource") => policy.evaluate_for_principal(&ctx),
            _ => policy.evaluate(&ctx),
        };
        if format!("{got:?}") != c.expect {
            failures.push(format!(
                "case {i} ({} {} on {}): expected {}, got {got:?}",
                c.policy, c.action, c.resource, c.expect
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(matrix.case.len() >= 30);
    let _ = Decision::Allow;
}

#[test]
fn policies_that_do_not_parse_are_refused() {
    for bad in [
        "not json",
        r#"{"Statement":[{"Effect":"Maybe","Action":"*","Resource":"*"}]}"#,
        r#"{"Statement":[{"Effect":"Allow","Resource":"*"}]}"#,
        r#"{"Statement":[{"Effect":"Allow","Action":"*","NotAction":"x","Resource":"*"}]}"#,
        r#"{"Version":"2012-10-17"}"#,
        r#"{"Statement":[{"Effect":"Allow","Action":5,"Resource":"*"}]}"#,
    ] {
        assert!(Policy::parse(bad).is_err(), "{bad}");
    }
}

//! IAM policy documents as AWS evaluates them: statements with `Effect` Allow or Deny,
//! `Principal`/`NotPrincipal` (resource policies), `Action`/`NotAction` and
//! `Resource`/`NotResource` with `*` and `?` wildcards, and `Condition` blocks. An explicit Deny
//! wins, then an Allow, else the default deny. A condition operator or key this evaluator does
//! not know fails closed: such an Allow grants nothing and such a Deny applies.

use serde_json::Value;
use std::net::IpAddr;

/// A parsed policy document.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    statements: Vec<Statement>,
}

#[derive(Debug, Clone, PartialEq)]
struct Statement {
    allow: bool,
    principal: Option<Names>,
    not_principal: Option<Names>,
    action: Option<Vec<String>>,
    not_action: Option<Vec<String>>,
    resource: Option<Vec<String>>,
    not_resource: Option<Vec<String>>,
    conditions: Vec<Condition>,
}

/// `"*"` or a list of AWS principals.
#[derive(Debug, Clone, PartialEq)]
enum Names {
    Anyone,
    Listed(Vec<String>),
}

#[derive(Debug, Clone, PartialEq)]
struct Condition {
    operator: String,
    key: String,
    values: Vec<String>,
}

/// What a policy says about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// No statement allows it.
    ImplicitDeny,
    /// A Deny statement matches.
    ExplicitDeny,
}

/// The request a policy is asked about.
pub struct Context<'a> {
    /// `logs:PutLogEvents`.
    pub action: &'a str,
    /// The resource's ARN; a log group also matches written with a trailing `:*`.
    pub resource: &'a str,
    pub principal_account: &'a str,
    pub principal_arn: &'a str,
    /// Condition keys (`aws:SourceIp`, `aws:PrincipalAccount`, `aws:username`, ...).
    pub keys: &'a [(&'a str, String)],
}

impl Policy {
    /// Parses a policy document, or says why AWS would refuse it.
    pub fn parse(text: &str) -> Result<Policy, String> {
        let doc: Value =
            serde_json::from_str(text).map_err(|e| format!("the policy is not JSON: {e}"))?;
        let statements = match doc.get("Statement") {
            Some(Value::Array(a)) => a.iter().collect(),
            Some(s @ Value::Object(_)) => vec![s],
            _ => return Err("the policy has no Statement".into()),
        };
        let statements = statements
            .into_iter()
            .map(Statement::parse)
            .collect::<Result<_, _>>()?;
        Ok(Policy { statements })
    }

    /// Evaluates an identity policy (its statements name no principal).
    pub fn evaluate(&self, ctx: &Context<'_>) -> Decision {
        self.decide(ctx, false)
    }

    /// Evaluates a resource policy: statements apply only to the principals they name.
    pub fn evaluate_for_principal(&self, ctx: &Context<'_>) -> Decision {
        self.decide(ctx, true)
    }

    fn decide(&self, ctx: &Context<'_>, resource_policy: bool) -> Decision {
        let mut allowed = false;
        for s in &self.statements {
            match s.matches(ctx, resource_policy) {
                Match::Yes | Match::Unknown if !s.allow => return Decision::ExplicitDeny,
                Match::Yes => allowed = true,
                _ => {}
            }
        }
        if allowed {
            Decision::Allow
        } else {
            Decision::ImplicitDeny
        }
    }
}

#[derive(PartialEq)]
enum Match {
    Yes,
    No,
    /// A condition this evaluator cannot decide.
    Unknown,
}

fn strings(v: Option<&Value>, field: &str) -> Result<Option<Vec<String>>, String> {
    match v {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(vec![s.clone()])),
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| {
                x.as_str()
                    .map(String::from)
                    .ok_or_else(|| format!("{field} must hold strings"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(format!("{field} must be a string or a list of strings")),
    }
}

fn names(v: Option<&Value>, field: &str) -> Result<Option<Names>, String> {
    match v {
        None => Ok(None),
        Some(Value::String(s)) if s == "*" => Ok(Some(Names::Anyone)),
        Some(Value::Object(o)) => match o.get("AWS") {
            Some(Value::String(s)) if s == "*" => Ok(Some(Names::Anyone)),
            aws => Ok(Some(Names::Listed(
                strings(aws, field)?.unwrap_or_default(),
            ))),
        },
        Some(_) => Err(format!("{field} must be \"*\" or {{\"AWS\": ...}}")),
    }
}

impl Statement {
    fn parse(v: &Value) -> Result<Statement, String> {
        let allow = match v.get("Effect").and_then(Value::as_str) {
            Some("Allow") => true,
            Some("Deny") => false,
            _ => return Err("each statement needs Effect Allow or Deny".into()),
        };
        let mut conditions = Vec::new();
        if let Some(c) = v.get("Condition") {
            let ops = c.as_object().ok_or("Condition must be an object")?;
            for (operator, keys) in ops {
                let keys = keys
                    .as_object()
                    .ok_or("each Condition operator needs an object of keys")?;
                for (key, values) in keys {
                    let values = match values {
                        Value::Bool(b) => vec![b.to_string()],
                        Value::Number(n) => vec![n.to_string()],
                        other => strings(Some(other), "Condition values")?.unwrap_or_default(),
                    };
                    conditions.push(Condition {
                        operator: operator.clone(),
                        key: key.clone(),
                        values,
                    });
                }
            }
        }
        let s = Statement {
            allow,
            principal: names(v.get("Principal"), "Principal")?,
            not_principal: names(v.get("NotPrincipal"), "NotPrincipal")?,
            action: strings(v.get("Action"), "Action")?,
            not_action: strings(v.get("NotAction"), "NotAction")?,
            resource: strings(v.get("Resource"), "Resource")?,
            not_resource: strings(v.get("NotResource"), "NotResource")?,
            conditions,
        };
        if s.action.is_none() == s.not_action.is_none() {
            return Err("each statement needs exactly one of Action and NotAction".into());
        }
        Ok(s)
    }

    fn matches(&self, ctx: &Context<'_>, resource_policy: bool) -> Match {
        if resource_policy {
            let names_caller = |n: &Names| match n {
                Names::Anyone => true,
                Names::Listed(l) => l.iter().any(|p| {
                    p == ctx.principal_account
                        || *p == format!("arn:aws:iam::{}:root", ctx.principal_account)
                        || p == ctx.principal_arn
                }),
            };
            let principal = match (&self.principal, &self.not_principal) {
                (Some(p), _) => names_caller(p),
                (None, Some(not)) => !names_caller(not),
                (None, None) => false,
            };
            if !principal {
                return Match::No;
            }
        }
        let action = ctx.action.to_ascii_lowercase();
        let action_matches = |list: &Vec<String>| {
            list.iter()
                .any(|a| wildcard(&a.to_ascii_lowercase(), &action))
        };
        let action_ok = match (&self.action, &self.not_action) {
            (Some(a), _) => action_matches(a),
            (None, Some(not)) => !action_matches(not),
            (None, None) => false,
        };
        let resource_matches = |list: &Vec<String>| {
            list.iter()
                .any(|r| wildcard(r, ctx.resource) || wildcard(r, &format!("{}:*", ctx.resource)))
        };
        let resource_ok = match (&self.resource, &self.not_resource) {
            (Some(r), _) => resource_matches(r),
            (None, Some(not)) => !resource_matches(not),
            // A resource policy's statements may leave Resource out: the resource it is on.
            (None, None) => resource_policy,
        };
        if !(action_ok && resource_ok) {
            return Match::No;
        }
        let mut result = Match::Yes;
        for c in &self.conditions {
            match c.holds(ctx) {
                Some(true) => {}
                Some(false) => return Match::No,
                None => result = Match::Unknown,
            }
        }
        result
    }
}

impl Condition {
    /// Whether the condition holds; None when its operator is not one this evaluator knows.
    fn holds(&self, ctx: &Context<'_>) -> Option<bool> {
        let (operator, if_exists) = match self.operator.strip_suffix("IfExists") {
            Some(op) => (op, true),
            None => (self.operator.as_str(), false),
        };
        const KNOWN: [&str; 14] = [
            "StringEquals",
            "ArnEquals",
            "StringNotEquals",
            "ArnNotEquals",
            "StringEqualsIgnoreCase",
            "StringNotEqualsIgnoreCase",
            "StringLike",
            "ArnLike",
            "StringNotLike",
            "ArnNotLike",
            "Bool",
            "IpAddress",
            "NotIpAddress",
            "Null",
        ];
        if !KNOWN.contains(&operator) {
            return None;
        }
        let value = ctx
            .keys
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(&self.key))
            .map(|(_, v)| v.as_str());
        if operator == "Null" {
            // {"Null": {"key": "true"}}: holds when the key is absent.
            return Some(
                self.values
                    .iter()
                    .any(|v| v.eq_ignore_ascii_case(&value.is_none().to_string())),
            );
        }
        let Some(value) = value else {
            // A missing key: negated operators hold, others do not (IfExists: holds).
            return Some(if_exists || operator.contains("Not"));
        };
        let any = |f: &dyn Fn(&str) -> bool| self.values.iter().any(|v| f(v));
        Some(match operator {
            "StringEquals" | "ArnEquals" => any(&|v| v == value),
            "StringNotEquals" | "ArnNotEquals" => !any(&|v| v == value),
            "StringEqualsIgnoreCase" => any(&|v| v.eq_ignore_ascii_case(value)),
            "StringNotEqualsIgnoreCase" => !any(&|v| v.eq_ignore_ascii_case(value)),
            "StringLike" | "ArnLike" => any(&|v| wildcard(v, value)),
            "StringNotLike" | "ArnNotLike" => !any(&|v| wildcard(v, value)),
            "Bool" => any(&|v| v.eq_ignore_ascii_case(value)),
            "IpAddress" => any(&|v| in_cidr(v, value)),
            "NotIpAddress" => !any(&|v| in_cidr(v, value)),
            _ => return None,
        })
    }
}

/// Whether `ip` falls in `cidr` (`10.0.0.0/8`, `2001:db8::/32`, or one address).
fn in_cidr(cidr: &str, ip: &str) -> bool {
    let Ok(ip) = ip.parse::<IpAddr>() else {
        return false;
    };
    let (net, bits) = match cidr.split_once('/') {
        Some((n, b)) => (n, b.parse::<u32>().ok()),
        None => (cidr, None),
    };
    let Ok(net) = net.parse::<IpAddr>() else {
        return false;
    };
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(i)) => {
            let bits = bits.unwrap_or(32).min(32);
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            u32::from(n) & mask == u32::from(i) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(i)) => {
            let bits = bits.unwrap_or(128).min(128);
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits)
            };
            u128::from(n) & mask == u128::from(i) & mask
        }
        _ => false,
    }
}

/// IAM-style matching: `*` any run of characters, `?` one character.
pub fn wildcard(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_and_cidrs_match_as_iam_does() {
        assert!(wildcard("logs:put*", "logs:putsubscriptionfilter"));
        assert!(wildcard("a?c*", "abcdef"));
        assert!(!wildcard("a?c", "abcd"));
        assert!(wildcard("*", ""));
        assert!(in_cidr("10.0.0.0/8", "10.200.1.1"));
        assert!(!in_cidr("10.0.0.0/8", "11.0.0.1"));
        assert!(in_cidr("2001:db8::/32", "2001:db8::1"));
        assert!(!in_cidr("2001:db8::/32", "10.0.0.1"));
        assert!(in_cidr("0.0.0.0/0", "8.8.8.8"));
    }
}

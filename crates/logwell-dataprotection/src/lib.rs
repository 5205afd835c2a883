//! Data protection policies: AWS's policy document (`PutDataProtectionPolicy`), the managed and
//! custom data identifiers it names, and the masking every read path applies to a protected
//! group's events (each matched character becomes `*`) unless the caller may and asks to unmask.

use regex::{Regex, RegexSet};
use serde_json::Value;
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// The largest policy document CloudWatch accepts, in characters.
pub const MAX_DOCUMENT_CHARS: usize = 30_720;
/// Custom data identifiers one policy may define.
pub const MAX_CUSTOM_IDENTIFIERS: usize = 10;
/// The longest custom identifier regex.
pub const MAX_CUSTOM_REGEX_CHARS: usize = 200;
/// The prefix of a managed data identifier's ARN.
pub const MANAGED_ARN_PREFIX: &str = "arn:aws:dataprotection::aws:data-identifier/";

/// A managed data identifier: what it matches, and a check that a match really is one.
struct Managed {
    name: &'static str,
    pattern: &'static str,
    /// The capture group that is the sensitive text (0: the whole match).
    group: usize,
    check: fn(&str) -> bool,
}

/// The managed identifiers logwell knows, by the names AWS gives them.
const MANAGED: &[Managed] = &[
    Managed {
        name: "EmailAddress",
        pattern: r"[\w.%+-]+@[\w-]+(?:\.[\w-]+)*\.[^\W\d_]{2,}",
        group: 0,
        check: |_| true,
    },
    Managed {
        name: "CreditCardNumber",
        pattern: r"\b\d(?:[ -]?\d){12,18}\b",
        group: 0,
        check: luhn,
    },
    Managed {
        name: "IpAddress",
        pattern: r"\b(?:\d{1,3}\.){3}\d{1,3}\b|\b[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}\b",
        group: 0,
        check: ip_address,
    },
    Managed {
        name: "AwsSecretKey",
        pattern: r"(?:^|[^A-Za-z0-9/+])([A-Za-z0-9/+]{40})(?:$|[^A-Za-z0-9/+])",
        group: 1,
        check: secret_key,
    },
    Managed {
        name: "OpenSshPrivateKey",
        pattern: r"-----BEGIN OPENSSH PRIVATE KEY-----[\s\S]*?-----END OPENSSH PRIVATE KEY-----",
        group: 0,
        check: |_| true,
    },
    Managed {
        name: "PkcsPrivateKey",
        pattern: r"-----BEGIN (?:RSA |EC |DSA |ENCRYPTED )?PRIVATE KEY-----[\s\S]*?-----END (?:RSA |EC |DSA |ENCRYPTED )?PRIVATE KEY-----",
        group: 0,
        check: |_| true,
    },
];

/// The names of the managed identifiers this build knows.
pub fn managed_identifiers() -> impl Iterator<Item = &'static str> {
    MANAGED.iter().map(|m| m.name)
}

fn luhn(text: &str) -> bool {
    let digits: Vec<u32> = text.chars().filter_map(|c| c.to_digit(10)).collect();
    if !(13..=19).contains(&digits.len()) {
        return false;
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 1 {
                let d2 = d * 2;
                if d2 > 9 {
                    d2 - 9
                } else {
                    d2
                }
            } else {
                d
            }
        })
        .sum();
    sum % 10 == 0
}

fn ip_address(text: &str) -> bool {
    if text.contains('.') {
        text.parse::<std::net::Ipv4Addr>().is_ok()
    } else {
        // At least three groups with digits in them, so `a::b` in code paths is not an address.
        text.parse::<std::net::Ipv6Addr>().is_ok()
            && text.split(':').filter(|g| !g.is_empty()).count() >= 3
    }
}

/// A secret access key is 40 characters of base64 with upper case, lower case and digits mixed.
fn secret_key(text: &str) -> bool {
    text.len() == 40
        && text.bytes().any(|b| b.is_ascii_uppercase())
        && text.bytes().any(|b| b.is_ascii_lowercase())
        && text.bytes().any(|b| b.is_ascii_digit())
}

/// One identifier of a policy, compiled.
struct Detector {
    name: String,
    regex: Regex,
    group: usize,
    check: fn(&str) -> bool,
}

/// What a policy masks: its identifiers, compiled, with a set that tells in one pass which of
/// them can match a text at all (most events match none).
pub struct Masker {
    name: String,
    detectors: Vec<Detector>,
    set: RegexSet,
}

impl std::fmt::Debug for Masker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Masker")
            .field("name", &self.name)
            .field("identifiers", &self.identifiers().collect::<Vec<_>>())
            .finish()
    }
}

impl Masker {
    /// The policy's `Name`.
    pub fn policy_name(&self) -> &str {
        &self.name
    }

    /// The identifiers it masks (managed ones by name, custom ones by their `Name`).
    pub fn identifiers(&self) -> impl Iterator<Item = &str> {
        self.detectors.iter().map(|d| d.name.as_str())
    }

    /// The byte ranges of sensitive text in `text`, each with its identifier's index, in order.
    pub fn findings(&self, text: &str) -> Vec<(std::ops::Range<usize>, usize)> {
        let mut out = Vec::new();
        for i in self.set.matches(text).iter() {
            let d = &self.detectors[i];
            for caps in d.regex.captures_iter(text) {
                if let Some(m) = caps.get(d.group) {
                    if !m.as_str().is_empty() && (d.check)(m.as_str()) {
                        out.push((m.range(), i));
                    }
                }
            }
        }
        out.sort_by_key(|(r, _)| (r.start, r.end));
        out
    }

    /// `text` with every character of sensitive text replaced by `*`.
    pub fn mask<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let findings = self.findings(text);
        if findings.is_empty() {
            return Cow::Borrowed(text);
        }
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        for (r, _) in findings {
            if r.end <= at {
                continue;
            }
            let start = r.start.max(at);
            out.push_str(&text[at..start]);
            out.extend(text[start..r.end].chars().map(|_| '*'));
            at = r.end;
        }
        out.push_str(&text[at..]);
        Cow::Owned(out)
    }
}

/// Parses and checks a policy document as PutDataProtectionPolicy does; the error is the
/// message of the InvalidParameterException.
pub fn parse(document: &str) -> Result<Masker, String> {
    let invalid = |why: &str| format!("Invalid data protection policy document: {why}");
    if document.chars().count() > MAX_DOCUMENT_CHARS {
        return Err(invalid(&format!(
            "it must be at most {MAX_DOCUMENT_CHARS} characters"
        )));
    }
    let doc: Value =
        serde_json::from_str(document).map_err(|e| invalid(&format!("not JSON: {e}")))?;
    let name = doc["Name"].as_str().unwrap_or("data-protection-policy");
    let mut custom: HashMap<String, String> = HashMap::new();
    if let Some(list) = doc.pointer("/Configuration/CustomDataIdentifier") {
        let list = list
            .as_array()
            .ok_or_else(|| invalid("CustomDataIdentifier must be a list"))?;
        if list.len() > MAX_CUSTOM_IDENTIFIERS {
            return Err(invalid(&format!(
                "at most {MAX_CUSTOM_IDENTIFIERS} custom data identifiers"
            )));
        }
        for c in list {
            let (Some(n), Some(r)) = (c["Name"].as_str(), c["Regex"].as_str()) else {
                return Err(invalid("a custom data identifier needs a Name and a Regex"));
            };
            if r.chars().count() > MAX_CUSTOM_REGEX_CHARS {
                return Err(invalid(&format!(
                    "the regex of {n} must be at most {MAX_CUSTOM_REGEX_CHARS} characters"
                )));
            }
            if custom.insert(n.to_string(), r.to_string()).is_some() {
                return Err(invalid(&format!(
                    "custom data identifier {n} is defined twice"
                )));
            }
        }
    }
    let statements = doc["Statement"]
        .as_array()
        .ok_or_else(|| invalid("Statement must be a list"))?;
    let operation = |s: &Value, op: &str| s.pointer(&format!("/Operation/{op}")).is_some();
    let audit = statements.iter().filter(|s| operation(s, "Audit")).count();
    let deidentify: Vec<&Value> = statements
        .iter()
        .filter(|s| operation(s, "Deidentify"))
        .collect();
    if statements.len() != 2 || audit != 1 || deidentify.len() != 1 {
        return Err(invalid(
            "it must have exactly two statements, one with an Audit operation and one with a Deidentify operation",
        ));
    }
    if deidentify[0].pointer("/Operation/Deidentify/MaskConfig")
        != Some(&Value::Object(Default::default()))
    {
        return Err(invalid("the Deidentify operation's MaskConfig must be {}"));
    }
    let identifiers = |s: &Value| -> Result<Vec<String>, String> {
        let list = s["DataIdentifier"]
            .as_array()
            .filter(|l| !l.is_empty())
            .ok_or_else(|| invalid("each statement needs a non-empty DataIdentifier list"))?;
        let mut names: Vec<String> = list
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| invalid("DataIdentifier entries must be strings"))
            })
            .collect::<Result<_, _>>()?;
        names.sort();
        Ok(names)
    };
    let first = identifiers(&statements[0])?;
    if first != identifiers(&statements[1])? {
        return Err(invalid(
            "the Audit and Deidentify statements must have the same DataIdentifier list",
        ));
    }
    let mut detectors = Vec::new();
    for id in first {
        let detector = if let Some(managed) = id.strip_prefix(MANAGED_ARN_PREFIX) {
            let m = MANAGED
                .iter()
                .find(|m| m.name == managed)
                .ok_or_else(|| invalid(&format!("unknown managed data identifier {id}")))?;
            Detector {
                name: m.name.to_string(),
                regex: Regex::new(m.pattern).expect("managed patterns compile"),
                group: m.group,
                check: m.check,
            }
        } else if let Some(pattern) = custom.get(&id) {
            let regex = regex::RegexBuilder::new(pattern)
                .size_limit(1 << 20)
                .build()
                .map_err(|e| invalid(&format!("the regex of {id} does not compile: {e}")))?;
            Detector {
                name: id.clone(),
                regex,
                group: 0,
                check: |_| true,
            }
        } else {
            return Err(invalid(&format!(
                "{id} is neither a managed data identifier ARN nor a custom data identifier of the policy"
            )));
        };
        detectors.push(detector);
    }
    let set = RegexSet::new(detectors.iter().map(|d| d.regex.as_str()))
        .map_err(|e| invalid(&e.to_string()))?;
    Ok(Masker {
        name: name.to_string(),
        detectors,
        set,
    })
}

/// One masker for several policies that apply together (a group's own and its account's): it
/// masks what any of them names. Named after the first.
pub fn parse_all(documents: &[String]) -> Result<Masker, String> {
    let mut name = String::new();
    let mut detectors: Vec<Detector> = Vec::new();
    for (i, document) in documents.iter().enumerate() {
        let m = parse(document)?;
        if i == 0 {
            name = m.name;
        }
        for d in m.detectors {
            if !detectors.iter().any(|have| have.name == d.name) {
                detectors.push(d);
            }
        }
    }
    let set =
        RegexSet::new(detectors.iter().map(|d| d.regex.as_str())).map_err(|e| e.to_string())?;
    Ok(Masker {
        name,
        detectors,
        set,
    })
}

/// The masker of a stored policy document, compiled once and shared (documents are checked
/// when they are put, so a stored one parses; one that does not masks everything it can't
/// vouch for: see [`Protection::mask`]).
pub fn masker(document: &str) -> Result<Arc<Masker>, String> {
    static CACHE: OnceLock<Mutex<HashMap<String, Arc<Masker>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(m) = cache.lock().unwrap().get(document) {
        return Ok(m.clone());
    }
    let m = Arc::new(if document.trim_start().starts_with('[') {
        let documents: Vec<String> =
            serde_json::from_str(document).map_err(|e| format!("policy list: {e}"))?;
        parse_all(&documents)?
    } else {
        parse(document)?
    });
    let mut cache = cache.lock().unwrap();
    // Policies are few; a bound keeps a stream of changed documents from growing it.
    if cache.len() >= 256 {
        cache.clear();
    }
    cache.insert(document.to_string(), m.clone());
    Ok(m)
}

/// How a read shows one group's events: as stored, or masked by its policy.
#[derive(Debug, Clone, Default)]
pub enum Protection {
    /// No policy, or a caller allowed to unmask who asked to.
    #[default]
    Clear,
    Masked(Arc<Masker>),
}

impl Protection {
    /// The protection a group's stored policy document asks for; `unmask` when the caller may
    /// and asked to see the original text.
    pub fn of(document: Option<&str>, unmask: bool) -> Protection {
        match document {
            Some(doc) if !unmask => match masker(doc) {
                Ok(m) => Protection::Masked(m),
                // A stored document was checked when it was put; if a later build cannot read
                // it, nothing is shown unmasked by mistake.
                Err(_) => Protection::Masked(Arc::new(mask_everything())),
            },
            _ => Protection::Clear,
        }
    }

    /// The protection from a lookup of the group's stored document: a failed lookup (the group
    /// went away between reading its events and this) masks everything rather than nothing.
    pub fn of_lookup<E>(lookup: Result<Option<String>, E>, unmask: bool) -> Protection {
        match lookup {
            Ok(document) => Protection::of(document.as_deref(), unmask),
            Err(_) => Protection::Masked(Arc::new(mask_everything())),
        }
    }

    pub fn is_masked(&self) -> bool {
        matches!(self, Protection::Masked(_))
    }

    pub fn mask<'a>(&self, text: &'a str) -> Cow<'a, str> {
        match self {
            Protection::Clear => Cow::Borrowed(text),
            Protection::Masked(m) => m.mask(text),
        }
    }

    /// Masks `text` in place (no copy when nothing matches).
    pub fn mask_string(&self, text: &mut String) {
        if let Cow::Owned(masked) = self.mask(text) {
            *text = masked;
        }
    }
}

fn mask_everything() -> Masker {
    let regex = Regex::new(r"(?s).+").expect("compiles");
    Masker {
        name: "unreadable".into(),
        set: RegexSet::new([regex.as_str()]).expect("compiles"),
        detectors: vec![Detector {
            name: "unreadable policy".into(),
            regex,
            group: 0,
            check: |_| true,
        }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(ids: &[&str], custom: &str) -> String {
        let ids = serde_json::to_string(ids).unwrap();
        format!(
            r#"{{"Name": "p", "Version": "2021-06-01", {custom}
            "Statement": [
              {{"Sid": "audit", "DataIdentifier": {ids}, "Operation": {{"Audit": {{"FindingsDestination": {{}}}}}}}},
              {{"Sid": "redact", "DataIdentifier": {ids}, "Operation": {{"Deidentify": {{"MaskConfig": {{}}}}}}}}
            ]}}"#
        )
    }

    fn managed(name: &str) -> String {
        format!("{MANAGED_ARN_PREFIX}{name}")
    }

    #[test]
    fn group_and_account_policies_mask_together() {
        let group = policy(&[&managed("EmailAddress")], "");
        let account = policy(&[&managed("IpAddress"), &managed("EmailAddress")], "");
        let both = serde_json::json!([group, account]).to_string();
        let m = masker(&both).unwrap();
        assert_eq!(
            m.mask("alice@example.com from 10.1.2.3"),
            "***************** from ********"
        );
        assert_eq!(
            m.identifiers().count(),
            2,
            "an identifier in both is used once"
        );
        assert!(masker("[\"not a policy\"]").is_err());
    }

    #[test]
    fn managed_identifiers_mask_each_character() {
        let all: Vec<String> = managed_identifiers().map(managed).collect();
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        let m = parse(&policy(&all, "")).unwrap();
        assert_eq!(
            m.mask("user alice@example.com logged in from 10.1.2.3"),
            "user ***************** logged in from ********"
        );
        assert_eq!(
            m.mask("card 4111 1111 1111 1111 ok; not a card 4111 1111 1111 1112"),
            "card ******************* ok; not a card 4111 1111 1111 1112"
        );
        assert_eq!(
            m.mask("aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY end"),
            "aws_secret_access_key=**************************************** end"
        );
        assert_eq!(
            m.mask("addr 2001:db8::8a2e:370:7334!"),
            format!("addr {}!", "*".repeat(23))
        );
        // Not sensitive: versions past 255, code paths, short hex, a plain sentence.
        for clean in [
            "version 1.2.345.6",
            "logwell_storage::engine::flush",
            "took 45 ms",
            "status=200",
            "",
        ] {
            assert!(matches!(m.mask(clean), Cow::Borrowed(_)), "{clean}");
        }
        let key = "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----";
        assert_eq!(
            m.mask(&format!("k={key};")),
            format!("k={};", "*".repeat(key.len()))
        );
        // Characters, not bytes: a multi-byte address masks to as many stars as it has chars.
        assert_eq!(
            m.mask("é@exämple.com"),
            "é@exämple.com".replace(|_| true, "*").as_str()
        );
    }

    #[test]
    fn custom_identifiers_and_only_the_named_ones() {
        let doc = policy(
            &["EmployeeId", &managed("EmailAddress")],
            r#""Configuration": {"CustomDataIdentifier": [{"Name": "EmployeeId", "Regex": "EmployeeId-\\d{9}"}]},"#,
        );
        let m = parse(&doc).unwrap();
        assert_eq!(
            m.mask("EmployeeId-123456789 bob@x.io 10.0.0.1"),
            "******************** ******** 10.0.0.1"
        );
        assert_eq!(
            m.identifiers().collect::<Vec<_>>(),
            ["EmployeeId", "EmailAddress"]
        );
    }

    #[test]
    fn bad_documents_say_why() {
        let email = managed("EmailAddress");
        let cases: Vec<(String, &str)> = vec![
            ("{".into(), "not JSON"),
            (r#"{"Statement": []}"#.into(), "exactly two statements"),
            (
                policy(&[&managed("Nope")], ""),
                "unknown managed data identifier",
            ),
            (policy(&["Undefined"], ""), "neither a managed"),
            (
                policy(
                    &["X"],
                    r#""Configuration": {"CustomDataIdentifier": [{"Name": "X", "Regex": "("}]},"#,
                ),
                "does not compile",
            ),
            (
                policy(&[&email], "").replacen(&format!("[\"{email}\"]"), "[]", 1),
                "non-empty DataIdentifier",
            ),
            (
                policy(&[&email], "").replace(r#""MaskConfig": {}"#, r#""MaskConfig": {"x": 1}"#),
                "MaskConfig must be {}",
            ),
            ("x".repeat(MAX_DOCUMENT_CHARS + 1), "at most 30720"),
        ];
        for (doc, why) in cases {
            let err = parse(&doc).unwrap_err();
            assert!(err.contains(why), "{doc}: {err}");
        }
        // Different lists in the two statements.
        let doc = policy(&[&email], "").replacen(
            &format!("[\"{email}\"]"),
            &format!("[\"{}\"]", managed("IpAddress")),
            1,
        );
        assert!(parse(&doc).unwrap_err().contains("same DataIdentifier"));
    }

    #[test]
    fn protection_masks_unless_unmasked() {
        let doc = policy(&[&managed("EmailAddress")], "");
        let masked = Protection::of(Some(&doc), false);
        assert_eq!(masked.mask("to a@b.co"), "to ******");
        assert_eq!(
            Protection::of(Some(&doc), true).mask("to a@b.co"),
            "to a@b.co"
        );
        assert_eq!(Protection::of(None, false).mask("to a@b.co"), "to a@b.co");
        assert_eq!(Protection::of(Some("not json"), false).mask("ab"), "**");
    }
}

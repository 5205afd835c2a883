//! Property test: no pattern makes the filter-pattern parser or matcher panic.

use logwell_filter::FilterPattern;
use proptest::prelude::*;

const TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    "(",
    ")",
    "$",
    ".",
    "$.a",
    "$.b[0]",
    "[1]",
    "=",
    "!=",
    ">",
    "<",
    ">=",
    "<=",
    "&&",
    "||",
    "IS",
    "NULL",
    "TRUE",
    "FALSE",
    "NOT",
    "EXISTS",
    "\"",
    "\"x y\"",
    "*",
    "4*",
    "%",
    "%a+%",
    "%[a-z]{2,3}%",
    "...",
    ",",
    "w1",
    "?",
    "-",
    "ERROR",
    " ",
    "1e-3",
    "-5",
    "\\",
    "é",
];

fn pattern() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::collection::vec(prop::sample::select(TOKENS), 0..30).prop_map(|t| t.join(" ")),
        prop::collection::vec(prop::sample::select(TOKENS), 0..30).prop_map(|t| t.concat()),
        ".{0,60}",
    ]
}

const EVENTS: &[&str] = &[
    r#"{"a": 1, "b": [2, "x"], "c": {"d": null}}"#,
    r#"127.0.0.1 Prod frank [10/Oct/2000:13:25:15 -0700] "GET /index.html HTTP/1.0" 404 1534"#,
    "ERROR plain text é",
    "",
    "[unbalanced \"quote",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]
    #[test]
    fn patterns_never_panic(p in pattern()) {
        if let Ok(compiled) = FilterPattern::parse(&p) {
            for e in EVENTS {
                let m = compiled.matches(e);
                prop_assert_eq!(m, compiled.extract(e).is_some());
            }
        }
    }
}

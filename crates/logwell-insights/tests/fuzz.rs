//! Property test: no query text, however mangled, makes the parser panic; it parses or returns
//! a positioned error inside the text.

use proptest::prelude::*;

const TOKENS: &[&str] = &[
    "fields",
    "display",
    "filter",
    "where",
    "stats",
    "sort",
    "limit",
    "any",
    "parse",
    "dedup",
    "by",
    "as",
    "asc",
    "desc",
    "and",
    "or",
    "not",
    "like",
    "in",
    "|",
    ",",
    "(",
    ")",
    "[",
    "]",
    "*",
    "+",
    "-",
    "/",
    "%",
    "^",
    "=",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "=~",
    "@message",
    "@timestamp",
    "a.b.0",
    "`x-y`",
    "@`z`",
    "count",
    "bin",
    "5m",
    "300s",
    "1.5",
    "42",
    "1e3",
    "\"str\"",
    "'s'",
    "\"a*b\"",
    "/re/",
    "/(?i)x/i",
    "#c\n",
    "\n",
    " ",
    "\"",
    "/",
    "`",
    "@",
];

fn query() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::collection::vec(prop::sample::select(TOKENS), 0..40).prop_map(|t| t.join(" ")),
        prop::collection::vec(prop::sample::select(TOKENS), 0..40).prop_map(|t| t.concat()),
        ".{0,80}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]
    #[test]
    fn parser_never_panics(q in query()) {
        if let Err(e) = logwell_insights::parse(&q) {
            prop_assert!(e.line >= 1 && e.column >= 1);
            prop_assert!(e.start_offset <= q.len());
        }
    }
}

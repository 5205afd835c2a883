//! The function registry is the documentation: `crates/logwell-query/FUNCTIONS.md` is generated
//! from it (run with `LOGWELL_UPDATE=1` to rewrite it), and every function is exercised by at
//! least one case under `testdata/queries/`.

use logwell_query::compile::functions::{all, Returns};
use logwell_query::compile::Ty;
use std::path::{Path, PathBuf};

fn returns(r: Returns) -> &'static str {
    match r {
        Returns::Fixed(Ty::Num) => "number",
        Returns::Fixed(Ty::Str) => "string",
        Returns::Fixed(Ty::Bool) => "boolean",
        Returns::Fixed(Ty::Time) => "timestamp",
        Returns::Fixed(Ty::Json) => "JSON",
        Returns::Fixed(Ty::Any) => "any",
        Returns::Arguments => "as its arguments",
    }
}

fn arguments((min, max): (usize, usize)) -> String {
    match (min, max) {
        (a, b) if a == b => a.to_string(),
        (a, usize::MAX) => format!("{a}+"),
        (a, b) => format!("{a}-{b}"),
    }
}

fn generated() -> String {
    let mut out = String::from(
        "# Logs Insights functions\n\n\
         Generated from the registry in `src/compile/functions/` by `tests/function_list.rs`\n\
         (`LOGWELL_UPDATE=1 cargo test -p logwell-query --test function_list` rewrites it).\n\n\
         | Function | Also | Kind | Arguments | Returns | What it does |\n\
         |---|---|---|---|---|---|\n",
    );
    for f in all() {
        let kind = if f.is_aggregate() {
            "aggregate"
        } else {
            "scalar"
        };
        out.push_str(&format!(
            "| `{}` | {} | {kind} | {} | {} | {} |\n",
            f.name(),
            f.names[1..]
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", "),
            arguments(f.args),
            returns(f.returns),
            f.doc.replace('|', "\\|"),
        ));
    }
    out
}

#[test]
fn functions_md_is_generated_from_the_registry() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("FUNCTIONS.md");
    let want = generated();
    if std::env::var("LOGWELL_UPDATE").is_ok_and(|v| v == "1") {
        std::fs::write(&path, &want).unwrap();
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "FUNCTIONS.md is out of date: run LOGWELL_UPDATE=1 cargo test -p logwell-query --test function_list"
    );
}

fn case_text(dir: &Path, out: &mut String) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path: PathBuf = entry.unwrap().path();
        if path.is_dir() {
            case_text(&path, out);
        } else if path.extension().is_some_and(|e| e == "case") {
            out.push_str(&std::fs::read_to_string(&path).unwrap().to_ascii_lowercase());
        }
    }
}

#[test]
fn every_function_has_a_case() {
    let mut text = String::new();
    case_text(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/queries"),
        &mut text,
    );
    let missing: Vec<&str> = all()
        .filter(|f| {
            !f.names
                .iter()
                .any(|n| text.contains(&format!("{}(", n.to_ascii_lowercase())))
        })
        .map(|f| f.name())
        .collect();
    assert!(
        missing.is_empty(),
        "functions without a case in testdata/queries: {missing:?}"
    );
}

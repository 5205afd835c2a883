//! Runs every case in testdata/filter-patterns/*.cases (see the README there).

use logwell_filter::FilterPattern;
use std::path::Path;

#[test]
fn documented_filter_pattern_cases() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/filter-patterns");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    files.retain(|p| p.extension().is_some_and(|e| e == "cases"));
    files.sort();
    let (mut patterns, mut checks, mut failures) = (0, 0, Vec::new());
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        for block in text.split("\n\n") {
            let lines: Vec<&str> = block
                .lines()
                .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
                .collect();
            let Some(pattern) = lines.first().and_then(|l| l.strip_prefix("pattern:")) else {
                continue;
            };
            let pattern = pattern.strip_prefix(' ').unwrap_or(pattern);
            patterns += 1;
            let compiled = FilterPattern::parse(pattern);
            for line in &lines[1..] {
                checks += 1;
                let (kind, arg) = line.split_once(':').expect("kind: value");
                let arg = arg.strip_prefix(' ').unwrap_or(arg);
                let ok = match (kind, &compiled) {
                    ("error", Err(e)) => e.to_string().contains(arg),
                    ("error", Ok(_)) => false,
                    ("match", Ok(p)) => p.matches(arg),
                    ("nomatch", Ok(p)) => !p.matches(arg),
                    (_, Err(_)) => false,
                    (other, _) => panic!("{name}: unknown line kind {other}"),
                };
                if !ok {
                    failures.push(format!(
                        "{name}: pattern {pattern:?}: {kind} {arg:?} ({compiled:?})"
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {checks} checks failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        patterns >= 50,
        "only {patterns} patterns found in {}",
        dir.display()
    );
}

//! Hostile job files never panic the parser: random mutations of real job
//! files, truncations, deep nesting, huge numbers and long lines all come
//! back as `Ok` or as errors with positions inside the file.

use std::path::Path;

use wren_model::jobspec;

fn corpus() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/nomad");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "hcl"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect()
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    "\"",
    "${",
    "%{",
    "<<EOF\n",
    "EOF\n",
    "=",
    "\n",
    "#",
    "//",
    "/*",
    "*/",
    "-1",
    "99999999999999999999999",
    "1e308",
    "null",
    "true",
    "job",
    "group \"g\" {",
    "task \"t\" {",
    "var.x",
    "local.y",
    "attr.x",
    "f(1)",
    "[for x in y : x]",
    "\\u0000",
    "é",
    "\u{202e}",
    "0x",
    "constraint {",
    "device \"\" {",
    "port \"\" {",
    "\t",
    "\r\n",
];

fn check(text: &str) {
    match jobspec::parse("fuzz.hcl", text) {
        Ok(_) => {}
        Err(errors) => {
            let lines = text.lines().count().max(1) + 1;
            for e in &errors.0 {
                assert!(
                    e.line >= 1 && e.line <= lines,
                    "line {} outside the file: {e}",
                    e.line
                );
                assert!(e.col >= 1, "{e}");
                assert!(!e.message.is_empty());
            }
        }
    }
}

#[test]
fn mutated_job_files_never_panic() {
    let corpus = corpus();
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    for round in 0..3000 {
        let base = corpus[round % corpus.len()].clone();
        let mut bytes = base.into_bytes();
        for _ in 0..=rng.below(4) {
            match rng.below(4) {
                0 if !bytes.is_empty() => {
                    let i = rng.below(bytes.len());
                    bytes[i] = rng.next() as u8;
                }
                1 if !bytes.is_empty() => {
                    let i = rng.below(bytes.len());
                    let j = (i + rng.below(40)).min(bytes.len());
                    bytes.drain(i..j);
                }
                2 => {
                    let i = rng.below(bytes.len() + 1);
                    let tok = TOKENS[rng.below(TOKENS.len())].as_bytes();
                    bytes.splice(i..i, tok.iter().copied());
                }
                _ => {
                    let n = rng.below(bytes.len() + 1);
                    bytes.truncate(n);
                }
            }
        }
        check(&String::from_utf8_lossy(&bytes));
    }
}

#[test]
fn pathological_shapes_never_panic() {
    let deep_expr = format!(
        "job \"x\" {{ meta = {{ a = {}1{} }} }}",
        "[".repeat(5000),
        "]".repeat(5000)
    );
    let deep_blocks = format!(
        "job \"x\" {{ {} {} }}",
        "config { ".repeat(2000),
        "} ".repeat(2000)
    );
    let deep_parens = format!(
        "job \"x\" {{ priority = {}1{} }}",
        "(".repeat(5000),
        ")".repeat(5000)
    );
    let long_string = format!("job \"{}\" {{}}", "a".repeat(1 << 20));
    let many_groups: String = (0..2000)
        .map(|i| format!("group \"g{i}\" {{ task \"t\" {{ driver = \"exec\" }} }}\n"))
        .collect();
    for text in [
        deep_expr,
        deep_blocks,
        deep_parens,
        long_string,
        format!("job \"x\" {{\n{many_groups}}}"),
        "job \"x\" { priority = 1 / 0 }".to_owned(),
        "job \"x\" { priority = -9223372036854775808 - 1 }".to_owned(),
        "job \"x\" { priority = 99999999999999999999999999999 }".to_owned(),
        "job \"x\" { group \"g\" { task \"t\" { driver = \"exec\" kill_timeout = \"9999999999999h\" } } }".to_owned(),
        "\u{feff}job \"x\" {}".to_owned(),
        "\0\0\0".to_owned(),
        String::new(),
    ] {
        check(&text);
    }
}

/// Inputs the `jobspec` fuzz target found to take seconds in the HCL
/// parser (broken nesting 20 and 24 levels deep): refused up front, at the
/// bracket that goes too deep.
#[test]
fn deep_broken_nesting_found_by_the_fuzzer_is_refused_with_its_position() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fuzz-regressions");
    for name in ["deep-broken-nesting-1.hcl", "deep-broken-nesting-2.hcl"] {
        let bytes = std::fs::read(format!("{dir}/{name}")).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        let errors = jobspec::parse(name, &text).unwrap_err();
        let first = errors.first().unwrap();
        assert!(
            first.message.contains("nested more than"),
            "{name}: {errors}"
        );
        check(&text);
    }
}

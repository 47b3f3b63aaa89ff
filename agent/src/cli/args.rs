//! Rewrites Nomad-style flags into argh's spelling before parsing:
//! `-json` becomes `--json`, and `-output=FILE` or `--output=FILE` become
//! `--output FILE`. Short flags (`-f`), `-` (stdin) and negative numbers
//! are left alone, and nothing after `--` is touched.

/// Returns the arguments with long flags normalised.
pub fn normalize(args: &[String]) -> Vec<String> {
    let mut out = Vec::with_capacity(args.len());
    let mut rest_literal = false;
    for (i, arg) in args.iter().enumerate() {
        if i == 0 || rest_literal {
            out.push(arg.clone());
            continue;
        }
        if arg == "--" {
            rest_literal = true;
            out.push(arg.clone());
            continue;
        }
        let body = if let Some(b) = arg.strip_prefix("--") {
            b
        } else if let Some(b) = arg.strip_prefix('-') {
            // A single dash followed by one letter is a short flag.
            if b.chars().count() < 2 || !b.starts_with(|c: char| c.is_ascii_alphabetic()) {
                out.push(arg.clone());
                continue;
            }
            b
        } else {
            out.push(arg.clone());
            continue;
        };
        match body.split_once('=') {
            Some((flag, value)) if !flag.is_empty() => {
                out.push(format!("--{flag}"));
                out.push(value.to_owned());
            }
            _ => out.push(format!("--{body}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::normalize;

    fn n(args: &[&str]) -> Vec<String> {
        let owned: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        normalize(&owned)
    }

    #[test]
    fn nomad_spellings_become_argh_spellings() {
        assert_eq!(
            n(&["wren", "job", "run", "-output=out.json", "web.hcl"]),
            ["wren", "job", "run", "--output", "out.json", "web.hcl"]
        );
        assert_eq!(n(&["wren", "node", "status", "-json"]), ["wren", "node", "status", "--json"]);
        assert_eq!(n(&["wren", "x", "--a=b"]), ["wren", "x", "--a", "b"]);
    }

    #[test]
    fn short_flags_dashes_and_literals_untouched() {
        assert_eq!(n(&["wren", "alloc", "logs", "-f", "-", "-5"]), ["wren", "alloc", "logs", "-f", "-", "-5"]);
        assert_eq!(n(&["wren", "x", "--", "-json"]), ["wren", "x", "--", "-json"]);
    }
}

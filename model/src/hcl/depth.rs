//! A bound on bracket nesting, checked before the HCL parser runs.
//!
//! hcl-edit's parser backtracks on broken nested expressions, and the cost
//! doubles with each level: `a = x[y==z%x[y==z%...` with 20 unclosed
//! levels takes about a second, 24 levels more than ten (found by the
//! `jobspec` fuzz target). Correct files parse in linear time however deep
//! they nest, but nothing in a job file or an agent config needs more than
//! a handful of levels, so deeper nesting is refused up front with its
//! position, and the parser only ever sees text whose worst case is
//! bounded.

use std::ops::Range;

use super::{Error, Source};

/// The deepest bracket nesting (`{`, `[`, `(` together) accepted. A job
/// file nests job, group, task and config blocks plus a few levels of
/// lists and maps inside them.
pub const MAX_DEPTH: usize = 16;

/// Fails at the first bracket that opens level [`MAX_DEPTH`] + 1. Brackets
/// inside quoted strings, heredocs and comments do not count; `${` inside
/// a string does (it opens an expression).
pub fn check(src: &Source<'_>) -> Result<(), Error> {
    let text = src.text();
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    // Inside a quoted string: the depth of `${` interpolations opened in it.
    let mut strings: Vec<usize> = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let rest = &bytes[i..];
        if let Some(&open) = strings.last()
            && depth == open
        {
            // In a string's literal text.
            match rest {
                [b'\\', _, ..] => i += 2,
                [b'"', ..] => {
                    strings.pop();
                    i += 1;
                }
                [b'$' | b'%', b'{', ..] => {
                    depth += 1;
                    too_deep(src, depth, i..i + 2)?;
                    i += 2;
                }
                _ => i += 1,
            }
            continue;
        }
        match rest {
            [b'#', ..] | [b'/', b'/', ..] => i += line_end(rest),
            [b'/', b'*', ..] => {
                i += 2 + find(&rest[2..], b"*/").map_or(rest.len() - 2, |n| n + 2);
            }
            [b'<', b'<', ..] => i += heredoc(rest),
            [b'"', ..] => {
                strings.push(depth);
                i += 1;
            }
            [b'{' | b'[' | b'(', ..] => {
                depth += 1;
                too_deep(src, depth, i..i + 1)?;
                i += 1;
            }
            [b'}' | b']' | b')', ..] => {
                depth = depth.saturating_sub(1);
                i += 1;
            }
            _ => i += 1,
        }
    }
    Ok(())
}

fn too_deep(src: &Source<'_>, depth: usize, at: Range<usize>) -> Result<(), Error> {
    if depth > MAX_DEPTH {
        return Err(src.error(
            &at,
            format!(
                "brackets nested more than {MAX_DEPTH} deep; no job or agent file needs that many"
            ),
        ));
    }
    Ok(())
}

/// Bytes up to and including the next newline.
fn line_end(s: &[u8]) -> usize {
    s.iter()
        .position(|&b| b == b'\n')
        .map_or(s.len(), |n| n + 1)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The length of a heredoc starting at `<<` (`<<EOT` or `<<-EOT` up to the
/// line that is only the marker), or 2 when `<<` starts none.
fn heredoc(s: &[u8]) -> usize {
    let mut i = 2;
    if s.get(i) == Some(&b'-') {
        i += 1;
    }
    let start = i;
    while s
        .get(i)
        .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_')
    {
        i += 1;
    }
    let marker = &s[start..i];
    if marker.is_empty() || s.get(i) != Some(&b'\n') {
        return 2;
    }
    i += 1;
    while i < s.len() {
        let line = &s[i..i + line_end(&s[i..])];
        i += line.len();
        if line.trim_ascii() == marker {
            return i;
        }
    }
    s.len()
}

#[cfg(test)]
mod tests {
    use super::{MAX_DEPTH, check};
    use crate::hcl::Source;

    fn depth_ok(text: &str) -> bool {
        check(&Source::new("f.hcl", text)).is_ok()
    }

    #[test]
    fn ordinary_files_pass() {
        for f in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples")).unwrap() {
            let text = std::fs::read_to_string(f.unwrap().path()).unwrap();
            assert!(depth_ok(&text));
        }
    }

    #[test]
    fn the_limit_is_inclusive_and_the_error_points_at_the_bracket() {
        let at_limit = format!("a = {}1{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(depth_ok(&at_limit));
        let over = format!("a = x\nb = {}", "x[y==z%".repeat(MAX_DEPTH + 1));
        let e = check(&Source::new("f.hcl", &over)).unwrap_err();
        assert_eq!((e.line, e.col), (2, 5 + 7 * MAX_DEPTH + 1));
        assert!(
            e.message.contains("nested more than 16 deep"),
            "{}",
            e.message
        );
    }

    #[test]
    fn strings_comments_and_heredocs_do_not_count_but_interpolations_do() {
        let deep = "[".repeat(40);
        assert!(depth_ok(&format!("a = \"{deep}\\\"{deep}\"")));
        assert!(depth_ok(&format!(
            "# {deep}\n// {deep}\n/* {deep} */ a = 1"
        )));
        assert!(depth_ok(&format!("a = <<EOT\n{deep}\n  EOT\nb = 1")));
        assert!(depth_ok(&format!("a = <<-EOT\n{deep}\nEOT\n")));
        let nested = format!("a = {}", "\"${[".repeat(9));
        assert!(!depth_ok(&nested));
    }
}

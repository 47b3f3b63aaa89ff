//! Byte offsets to `line:col`.

use std::ops::Range;

use super::Error;

/// A job file's name and text, with a line index.
#[derive(Debug)]
pub struct Source<'a> {
    name: &'a str,
    text: &'a str,
    line_starts: Vec<usize>,
}

impl<'a> Source<'a> {
    /// Indexes `text`.
    pub fn new(name: &'a str, text: &'a str) -> Source<'a> {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Source {
            name,
            text,
            line_starts,
        }
    }

    /// The text.
    pub fn text(&self) -> &'a str {
        self.text
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn position(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = match self.line_starts.binary_search(&offset) {
            Ok(i) => i,
            Err(i) => i.saturating_sub(1),
        };
        let start = self.line_starts.get(line).copied().unwrap_or(0);
        let col = self
            .text
            .get(start..offset)
            .map_or(offset - start, |s| s.chars().count());
        (line + 1, col + 1)
    }

    /// An error at the start of `span`.
    pub fn error(&self, span: &Range<usize>, message: impl Into<String>) -> Error {
        let (line, col) = self.position(span.start);
        Error {
            file: self.name.to_owned(),
            line,
            col,
            message: message.into(),
        }
    }

    /// An error at 1-based `line:col` (from the HCL parser).
    pub fn error_at(&self, line: usize, col: usize, message: impl Into<String>) -> Error {
        Error {
            file: self.name.to_owned(),
            line,
            col,
            message: message.into(),
        }
    }

    /// The source text of a span, when it is valid.
    pub fn slice(&self, span: &Range<usize>) -> Option<&'a str> {
        self.text.get(span.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::Source;

    #[test]
    fn positions() {
        let s = Source::new("f", "ab\ncdé\n\nx");
        assert_eq!(s.position(0), (1, 1));
        assert_eq!(s.position(1), (1, 2));
        assert_eq!(s.position(3), (2, 1));
        assert_eq!(s.position(7), (2, 4)); // after the two-byte é
        assert_eq!(s.position(8), (3, 1));
        assert_eq!(s.position(9), (4, 1));
        assert_eq!(s.position(99), (4, 2));
    }
}

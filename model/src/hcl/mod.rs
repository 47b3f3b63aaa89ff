//! Decoding HCL files with positions: the machinery under the jobspec and
//! the agent's configuration file.
//!
//! [`Source`] maps byte offsets to `line:col`; [`Scope`] evaluates
//! expressions (literals, templates, heredocs, `var.*`, `local.*`,
//! arithmetic and conditionals); [`Reader`] reads one block body with typed
//! getters that record errors at the right span and reports whatever was
//! left unread as unknown. Every error is an [`Error`] naming
//! `file:line:col`.

mod depth;
mod eval;
mod reader;
mod source;

use std::fmt;

pub use eval::{EvalError, Scope};
pub use reader::{Ctx, NOMAD_UNSUPPORTED, Reader, block_span, no_labels, one_label};
pub use source::Source;

/// One problem in an HCL file, with its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// The file name as given.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub col: usize,
    /// What is wrong, naming the offending attribute, block or value.
    pub message: String,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.col, self.message
        )
    }
}

/// Every problem found in a file, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Errors(pub Vec<Error>);

impl Errors {
    /// The first error (there is always at least one).
    pub fn first(&self) -> Option<&Error> {
        self.0.first()
    }
}

impl fmt::Display for Errors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Errors {}

/// Parses an HCL body, turning a syntax error into an [`Errors`].
///
/// Text nested deeper than [`depth::MAX_DEPTH`] brackets is refused before
/// parsing: the parser's time on broken deep nesting grows exponentially.
pub fn parse_body(src: &Source<'_>) -> Result<hcl_edit::structure::Body, Errors> {
    depth::check(src).map_err(|e| Errors(vec![e]))?;
    hcl_edit::parser::parse_body(src.text()).map_err(|e| {
        let loc = e.location();
        Errors(vec![src.error_at(
            loc.line(),
            loc.column(),
            format!("syntax error: {}", e.message()),
        )])
    })
}

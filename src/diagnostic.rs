//! A problem at a place in a file, rendered as `path:LINE:COL: message` with the offending
//! line and a caret, the way compilers do, so editors and terminals can jump to it.

use std::fmt::Write as _;
use std::path::Path;

/// A 1-based line and 1-based column, counted in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

impl Pos {
    pub const START: Pos = Pos { line: 1, col: 1 };

    /// saphyr markers: 1-based line, 0-based column.
    pub fn from_marker(line: usize, col0: usize) -> Pos {
        Pos {
            line: line.max(1),
            col: col0 + 1,
        }
    }

    /// The position `chars` characters to the right on the same line.
    pub fn shifted(self, chars: usize) -> Pos {
        Pos {
            line: self.line,
            col: self.col + chars,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub pos: Pos,
    pub message: String,
    pub hint: Option<String>,
}

impl Diagnostic {
    pub fn new(pos: Pos, message: String) -> Diagnostic {
        Diagnostic {
            pos,
            message,
            hint: None,
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Diagnostic {
        self.hint = Some(hint.into());
        self
    }

    /// `path:LINE:COL: message`, then the source line with a caret under the column.
    pub fn render(&self, path: &Path, source: &str) -> String {
        let mut out = format!(
            "{}:{}:{}: {}\n",
            path.display(),
            self.pos.line,
            self.pos.col,
            self.message
        );
        if let Some(line) = source.lines().nth(self.pos.line.saturating_sub(1)) {
            let gutter = self.pos.line.to_string();
            let pad = " ".repeat(gutter.len());
            let line = line.trim_end_matches('\r');
            let skip = self.pos.col.saturating_sub(1);
            // Underline the word at the column; a key's trailing `:` is not part of it.
            let word: String = line
                .chars()
                .skip(skip)
                .take_while(|c| !c.is_whitespace())
                .collect();
            let caret_len = word.trim_end_matches(':').chars().count().clamp(1, 60);
            let _ = writeln!(out, "{pad} |");
            let _ = writeln!(out, "{gutter} | {line}");
            let _ = writeln!(out, "{pad} | {}{}", " ".repeat(skip), "^".repeat(caret_len));
        }
        if let Some(hint) = &self.hint {
            let _ = writeln!(out, "  = hint: {hint}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_location_line_and_caret() {
        let d = Diagnostic::new(Pos { line: 2, col: 3 }, "unknown key `bogus`".into())
            .with_hint("allowed keys: a, b");
        let text = d.render(Path::new("jobs/x.yaml"), "api:\n  bogus: 1\n");
        assert_eq!(
            text,
            "jobs/x.yaml:2:3: unknown key `bogus`\n  |\n2 |   bogus: 1\n  |   ^^^^^\n  = hint: allowed keys: a, b\n"
        );
    }
}

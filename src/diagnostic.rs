//! A problem at a place in a file, rendered as `path:LINE:COL: message` with the offending
//! line and a caret, the way compilers do, so editors and terminals can jump to it.
//!
//! Positions count characters (an editor's "go to column" does), but a terminal shows
//! columns: a CJK character takes two, a combining mark none, a tab up to the next tab stop.
//! So the echoed line has its tabs expanded and the caret is placed and sized by display
//! width, or it would drift left of a Chinese template value by one column per character.

use std::fmt::Write as _;
use std::path::Path;

use unicode_width::UnicodeWidthStr;

/// Tab stops in the echoed line: every 4 columns, counted from the start of the line (not
/// of the terminal, which the `N | ` gutter shifts), so the caret line can be built from the
/// same expanded text.
pub const TAB_STOP: usize = 4;

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
            let before: String = line.chars().take(skip).collect();
            // A column past the end of the line (a missing value) still gets its caret there.
            let past_end = skip.saturating_sub(before.chars().count());
            let word: String = line
                .chars()
                .skip(skip)
                .take_while(|c| !c.is_whitespace())
                .collect();
            let word = underlined(&word);
            let offset = expand_tabs(&before).width() + past_end;
            let caret_len = word.width().clamp(1, 60);
            let _ = writeln!(out, "{pad} |");
            let _ = writeln!(out, "{gutter} | {}", expand_tabs(line));
            let _ = writeln!(
                out,
                "{pad} | {}{}",
                " ".repeat(offset),
                "^".repeat(caret_len)
            );
        }
        if let Some(hint) = &self.hint {
            let _ = writeln!(out, "  = hint: {hint}");
        }
        out
    }
}

/// `text` with each tab replaced by the spaces up to the next [`TAB_STOP`].
fn expand_tabs(text: &str) -> String {
    if !text.contains('\t') {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c == '\t' {
            let n = TAB_STOP - out.width() % TAB_STOP;
            out.extend(std::iter::repeat_n(' ', n));
        } else {
            out.push(c);
        }
    }
    out
}

/// The part of the word at the column a caret underlines: not a key's trailing `:`, nor
/// the `,` or closing bracket after an item of a flow sequence, nor the closing quote of a
/// YAML string the word starts inside of.
fn underlined(word: &str) -> &str {
    let mut w = word.trim_end_matches([':', ',']);
    for (open, close) in [('[', ']'), ('{', '}'), ('"', '"'), ('\'', '\'')] {
        let opened = w.chars().filter(|&c| c == open).count();
        let closed = w.chars().filter(|&c| c == close).count();
        let unbalanced = if open == close {
            opened % 2 == 1
        } else {
            closed > opened
        };
        if unbalanced && let Some(rest) = w.strip_suffix(close) {
            w = rest.trim_end_matches([':', ',']);
        }
    }
    if w.is_empty() { word } else { w }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_caret_leaves_out_what_closes_the_yaml_around_the_word() {
        assert_eq!(underlined("delimter:"), "delimter");
        assert_eq!(underlined("emali,"), "emali");
        assert_eq!(underlined("whats_app_phone]"), "whats_app_phone");
        assert_eq!(underlined("}}\""), "}}");
        assert_eq!(underlined("\"hunter2\""), "\"hunter2\"");
        assert_eq!(underlined("[a,"), "[a");
        assert_eq!(underlined("{{"), "{{");
    }

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

    /// `line`'s diagnostic at `col`, reduced to its echoed line and caret line.
    fn snippet(line: &str, col: usize) -> (String, String) {
        let text = Diagnostic::new(Pos { line: 1, col }, "m".into()).render(Path::new("f"), line);
        let lines: Vec<&str> = text.lines().collect();
        (lines[2].to_string(), lines[3].to_string())
    }

    #[test]
    fn the_caret_sits_under_cjk_text_by_display_width() {
        // `bogus` is the 8th character but starts at screen column 12: 客户名字 are 2 wide.
        let (echo, caret) = snippet("a: 客户名字bogus x", 8);
        assert_eq!(echo, "1 | a: 客户名字bogus x");
        assert_eq!(caret, "  |            ^^^^^");
        // A wide word is underlined across its full width.
        let (_, caret) = snippet("a: 客户 x", 4);
        assert_eq!(caret, "  |    ^^^^");
    }

    #[test]
    fn tabs_are_expanded_to_the_next_stop_in_the_line_and_the_caret() {
        // `a\t` reaches column 4; `\t` after `bc` (column 6) reaches column 8.
        let (echo, caret) = snippet("a\tbc\tbogus", 6);
        assert_eq!(echo, "1 | a   bc  bogus");
        assert_eq!(caret, "  |         ^^^^^");
        // A tab after a wide character counts the character's two columns.
        let (echo, caret) = snippet("名\tx", 3);
        assert_eq!(echo, "1 | 名  x");
        assert_eq!(caret, "  |     ^");
    }

    #[test]
    fn a_column_past_the_end_of_the_line_gets_a_caret_there() {
        let (_, caret) = snippet("名:", 4);
        assert_eq!(caret, "  |     ^");
    }
}

//! Configuration errors that point at a file, line and column, the way a
//! compiler does, so a network team can fix a config without reading code.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One problem in a configuration file (or in a file it refers to).
/// Line and column are 1-based; the column counts characters, not bytes.
/// Line 0 and column 0 mean "the file as a whole" (for example unreadable).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}:{line}:{column}: {message}", file.display())]
pub struct ConfigError {
    /// The config file, or the included file the problem is in.
    pub file: PathBuf,
    /// 1-based; 0 for the file as a whole.
    pub line: usize,
    /// 1-based, in characters; 0 for the file as a whole.
    pub column: usize,
    /// What is wrong, in words a network team can act on.
    pub message: String,
}

/// Every problem found in one load, in file order.
#[derive(Debug, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
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

impl From<ConfigError> for ConfigErrors {
    fn from(e: ConfigError) -> Self {
        ConfigErrors(vec![e])
    }
}

/// 1-based line and character column of a byte offset in `text`.
/// Offsets past the end or inside a character are clamped, because spans
/// come from a parser and must never make error reporting panic.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = before.matches('\n').count() + 1;
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// Collects errors of one config file with the byte offset they refer to,
/// so they can be reported in file order whatever order the checks ran in.
pub(crate) struct Collector<'a> {
    file: &'a Path,
    text: &'a str,
    errors: Vec<(usize, ConfigError)>,
    /// Values that could not be read (a bad duration): their stand-ins
    /// must not draw a second, misleading error.
    unreadable: Vec<Range<usize>>,
}

impl<'a> Collector<'a> {
    pub fn new(file: &'a Path, text: &'a str) -> Self {
        Collector {
            file,
            text,
            errors: Vec::new(),
            unreadable: Vec::new(),
        }
    }

    /// An error at a value that could not be read at all: later errors at
    /// the same value (its stand-in's range checks) are dropped.
    pub fn unreadable(&mut self, span: Range<usize>, message: impl Into<String>) {
        self.at(span.clone(), message);
        self.unreadable.push(span);
    }

    /// An error at `span` of the config file.
    pub fn at(&mut self, span: Range<usize>, message: impl Into<String>) {
        // A stand-in's own range checks would only repeat, wrongly, that
        // the value is bad.
        if self
            .unreadable
            .iter()
            .any(|u| u.start == span.start && !span.is_empty())
        {
            return;
        }
        let (line, column) = line_column(self.text, span.start);
        let error = ConfigError {
            file: self.file.to_path_buf(),
            line,
            column,
            message: message.into(),
        };
        self.errors.push((span.start, error));
    }

    /// An error located in another file (an included catalogue), ordered as
    /// if it were at `offset` of the config file, where that file is named.
    pub fn external(&mut self, offset: usize, error: ConfigError) {
        self.errors.push((offset, error));
    }

    pub fn finish(mut self) -> Result<(), ConfigErrors> {
        if self.errors.is_empty() {
            return Ok(());
        }
        // Stable: errors at the same offset keep the order the checks found them.
        self.errors.sort_by_key(|(offset, _)| *offset);
        Err(ConfigErrors(
            self.errors.into_iter().map(|(_, e)| e).collect(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_are_one_based_and_count_characters() {
        let text = "a = 1\nnaam = \"café\" x\n";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 4), (1, 5));
        let x = text.find(" x").unwrap() + 1;
        // "naam = \"café\" " is 14 characters but 15 bytes.
        assert_eq!(line_column(text, x), (2, 15));
        assert_eq!(line_column(text, 10_000).0, 3);
        let inside_e_acute = text.find('é').unwrap() + 1;
        assert_eq!(line_column(text, inside_e_acute), (2, 12));
    }

    #[test]
    fn errors_display_one_per_line_in_file_order() {
        let text = "a\nb\nc\n";
        let mut c = Collector::new(Path::new("gate.toml"), text);
        c.at(4..5, "third");
        c.at(0..1, "first");
        c.at(2..3, "second");
        let errors = c.finish().unwrap_err();
        assert_eq!(
            errors.to_string(),
            "gate.toml:1:1: first\ngate.toml:2:1: second\ngate.toml:3:1: third"
        );
    }
}

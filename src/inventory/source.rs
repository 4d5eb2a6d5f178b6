//! The inventory text and the list of problems found in it. Every problem is tied to a place
//! (`file:line:col`) and a key (`hosts[2].roles`), so a person can go straight to it.

use std::ops::Range;
use std::path::{Path, PathBuf};

/// The inventory file as read, for turning byte spans into `line:col`.
pub struct Source {
    pub path: PathBuf,
    pub text: String,
}

impl Source {
    pub fn new(path: &Path, text: String) -> Source {
        Source { path: path.to_path_buf(), text }
    }

    /// `file:line:col` of a byte offset (1-based line and column, columns in characters).
    pub fn location(&self, span: Option<Range<usize>>) -> String {
        let offset = span.map(|span| span.start).unwrap_or(0).min(self.text.len());
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
        let column = before[line_start..].chars().count() + 1;
        format!("{}:{}:{}", self.path.display(), line, column)
    }

    /// The folder relative secret files and paths start from.
    pub fn folder(&self) -> PathBuf {
        match self.path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
            _ => PathBuf::from("."),
        }
    }
}

/// Problems collected while reading and checking an inventory; all are reported together.
pub struct Problems<'s> {
    source: &'s Source,
    found: Vec<(usize, String)>,
}

impl<'s> Problems<'s> {
    pub fn new(source: &'s Source) -> Problems<'s> {
        Problems { source, found: Vec::new() }
    }

    pub fn source(&self) -> &'s Source {
        self.source
    }

    /// Records `file:line:col: key: message`. The message says what is wrong and how to fix it.
    pub fn report(&mut self, span: Option<Range<usize>>, key: &str, message: impl AsRef<str>) {
        let offset = span.as_ref().map(|span| span.start).unwrap_or(0);
        let location = self.source.location(span);
        self.found.push((offset, format!("{location}: {key}: {}", message.as_ref())));
    }

    pub fn is_empty(&self) -> bool {
        self.found.is_empty()
    }

    /// The messages in file order (then in the order found), duplicates removed.
    pub fn into_messages(mut self) -> Vec<String> {
        self.found.sort_by_key(|(offset, _)| *offset);
        let mut messages: Vec<String> = Vec::new();
        for (_, message) in self.found {
            if !messages.contains(&message) {
                messages.push(message);
            }
        }
        messages
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn location_counts_lines_and_columns_from_one() {
        let source = Source::new(Path::new("inv.toml"), "a = 1\n  b = 2\n".into());
        assert_eq!(source.location(Some(0..1)), "inv.toml:1:1");
        assert_eq!(source.location(Some(8..9)), "inv.toml:2:3");
        assert_eq!(source.location(None), "inv.toml:1:1");
    }
}

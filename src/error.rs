//! The error type every command returns, written for the person at the terminal, and the
//! exit code each kind of failure maps to.

use std::fmt;

/// Exit codes shared by every command.
pub mod exit {
    /// The operation failed.
    pub const FAILED: i32 = 1;
    /// Bad input or usage; nothing was touched.
    pub const BAD_INPUT: i32 = 2;
    /// `status` found drift or an unhealthy fleet.
    pub const UNHEALTHY: i32 = 3;
}

#[derive(Debug)]
pub enum Error {
    /// The inventory (or another input) is invalid; one line per problem, already formatted
    /// as `file:line:col: key: what is wrong; how to fix it`.
    BadInput(Vec<String>),
    /// An operation failed part-way or could not start.
    Failed(String),
}

impl Error {
    pub fn bad_input(message: impl Into<String>) -> Error {
        Error::BadInput(vec![message.into()])
    }

    pub fn failed(message: impl Into<String>) -> Error {
        Error::Failed(message.into())
    }

    pub fn exit_code(&self) -> i32 {
        match self {
            Error::BadInput(_) => exit::BAD_INPUT,
            Error::Failed(_) => exit::FAILED,
        }
    }
}

impl Error {
    /// The lines `main` prints, each after `error: `: one per problem of bad input, one message
    /// (which may go on over several lines) for a failure.
    pub fn messages(&self) -> &[String] {
        match self {
            Error::BadInput(problems) => problems,
            Error::Failed(message) => std::slice::from_ref(message),
        }
    }
}

/// The text without any `error: ` label, so that an error can be embedded in another message;
/// `main` alone labels what reaches the terminal.
impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.messages().join("\n"))
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;

/// `text` on one line (every run of whitespace a single space), cut to `max_chars`: a program's
/// output quoted in an error message.
pub fn one_line(text: &str, max_chars: usize) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ").chars().take(max_chars).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn one_line_joins_lines_and_cuts_at_a_character_count() {
        assert_eq!(super::one_line("a\n  b\tc\n", 10), "a b c");
        assert_eq!(super::one_line("été été", 5), "été é");
    }
}

//! Remote commands as argument vectors. sshd hands the command line to the remote user's shell,
//! so every argument is quoted here, in one place, and nowhere else.

use std::fmt;

/// A remote command: program and arguments, never a shell string, and optionally the name
/// of the step it performs, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Argv(Vec<String>, Option<String>);

/// The longest command text a message quotes: a script is named by its first line.
const SUMMARY_CHARS: usize = 100;

impl Argv {
    pub fn new(program: impl Into<String>) -> Argv {
        Argv(vec![program.into()], None)
    }

    /// Names the step this command performs ("preflight", "reading the deploy lock"), so a
    /// failure or a timeout says what was being done, not only which command.
    pub fn step(mut self, name: impl Into<String>) -> Argv {
        self.1 = Some(name.into());
        self
    }

    /// What messages call the command: the step's name when given, with the command line
    /// shortened (a `sh -c` script by its first command line).
    pub fn summary(&self) -> String {
        let command = match self.0.as_slice() {
            [sh, c, script, ..] if sh == "sh" && c == "-c" => {
                let first = script
                    .lines()
                    .map(str::trim)
                    .find(|line| !line.is_empty() && !line.starts_with('#') && !line.starts_with("set -"))
                    .unwrap_or_default();
                format!("{first}…")
            }
            _ => self.to_command_line(),
        };
        let command = match command.char_indices().nth(SUMMARY_CHARS) {
            Some((cut, _)) => format!("{}…", &command[..cut]),
            None => command,
        };
        match &self.1 {
            Some(step) => format!("{step} (`{command}`)"),
            None => format!("`{command}`"),
        }
    }

    pub fn arg(mut self, arg: impl Into<String>) -> Argv {
        self.0.push(arg.into());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Argv
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.0.extend(args.into_iter().map(Into::into));
        self
    }

    /// `sh -c SCRIPT sh ARGS...`: a fixed script whose variable parts arrive as `$1`, `$2`, ...
    /// so they are never spliced into shell text.
    pub fn script(script: &str, args: &[&str]) -> Argv {
        Argv::new("sh").arg("-c").arg(script).arg("sh").args(args.iter().copied())
    }

    pub fn as_slice(&self) -> &[String] {
        &self.0
    }

    /// The command line sent to sshd: each argument quoted for a POSIX shell.
    pub fn to_command_line(&self) -> String {
        self.0.iter().map(|arg| shell_quote(arg)).collect::<Vec<_>>().join(" ")
    }
}

impl fmt::Display for Argv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_command_line())
    }
}

/// Quotes one argument for a POSIX shell. Words made only of safe characters stay readable;
/// anything else is wrapped in single quotes, inside which nothing is special except the
/// single quote itself, written as `'\''`.
pub fn shell_quote(arg: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c);
    if !arg.is_empty() && arg.chars().all(safe) {
        return arg.to_string();
    }
    format!("'{}'", arg.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_name_the_step_and_shorten_scripts() {
        let argv = Argv::script("\nset -e\necho a\n", &["x"]).step("preflight");
        assert_eq!(argv.summary(), "preflight (`echo a…`)");
        assert_eq!(Argv::new("docker").arg("version").summary(), "`docker version`");
        let long = Argv::new("echo").arg("x".repeat(300)).summary();
        assert!(long.chars().count() < 110 && long.ends_with("…`"), "{long}");
    }

    #[test]
    fn plain_words_stay_readable() {
        let argv = Argv::new("docker").args(["compose", "-p", "chat-app1-0", "up", "-d"]);
        assert_eq!(argv.to_command_line(), "docker compose -p chat-app1-0 up -d");
    }

    #[test]
    fn hostile_strings_are_quoted_exactly() {
        let cases = [
            ("", "''"),
            ("a b", "'a b'"),
            ("it's", r"'it'\''s'"),
            ("$HOME", "'$HOME'"),
            ("`id`", "'`id`'"),
            ("$(id)", "'$(id)'"),
            ("a;rm -rf /", "'a;rm -rf /'"),
            ("a|b", "'a|b'"),
            ("a\nb", "'a\nb'"),
            ("\"q\"", "'\"q\"'"),
            ("*", "'*'"),
            ("~", "'~'"),
            ("a&b", "'a&b'"),
            ("back\\slash", "'back\\slash'"),
            ("''", r"''\'''\'''"),
        ];
        for (input, quoted) in cases {
            assert_eq!(shell_quote(input), quoted, "quoting {input:?}");
        }
    }

    /// The real test of quoting: a local POSIX shell must give back every argument unchanged.
    #[test]
    fn a_shell_gives_back_every_argument_unchanged() {
        let hostile = [
            "plain",
            "",
            "two words",
            "it's",
            "\"double\"",
            "$HOME ${PATH}",
            "`id` $(id)",
            "a; echo pwned",
            "a | cat",
            "line1\nline2",
            "tab\there",
            "'''",
            "\\",
            "*?[a]",
            "-n",
            "ünïcødé",
        ];
        let script = r#"for a in "$@"; do printf '%s\0' "$a"; done"#;
        let argv = Argv::script(script, &hostile);
        let output = std::process::Command::new("sh")
            .arg("-c")
            .arg(argv.to_command_line())
            .output()
            .expect("run sh");
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let got: Vec<String> = output
            .stdout
            .split(|b| *b == 0)
            .map(|s| String::from_utf8(s.to_vec()).unwrap())
            .collect();
        let mut want: Vec<String> = hostile.iter().map(|s| s.to_string()).collect();
        want.push(String::new());
        assert_eq!(got, want);
    }
}

//! Several commands sent as one: a host's facts come back from one command (one channel, one
//! shell) instead of one per fact. Each part runs whatever the ones before it did, and its
//! output and exit status are read back on their own.

use super::argv::Argv;
use super::connection::Output;

/// Ends each part's output; a part's output cannot contain it by accident (it starts a line
/// with a name no command here prints).
const PART_END: &str = "__rcfleet_part_end=";

/// Commands to run one after another in one remote command.
#[derive(Debug, Clone, Default)]
pub struct Bundle {
    parts: Vec<Argv>,
}

impl Bundle {
    pub fn new() -> Bundle {
        Bundle::default()
    }

    /// Adds a command; its result is at this position in [`Bundle::split`]'s list.
    pub fn part(mut self, argv: Argv) -> Bundle {
        self.parts.push(argv);
        self
    }

    /// The one command that runs every part, each followed by its end mark and exit status.
    pub fn argv(&self, step: &str) -> Argv {
        let script: Vec<String> = self
            .parts
            .iter()
            .enumerate()
            .map(|(index, part)| format!("{}\nprintf '\\n{PART_END}{index} %d\\n' \"$?\"", part.to_command_line()))
            .collect();
        Argv::script(&script.join("\n"), &[]).step(step)
    }

    /// Each part's output (its stdout and exit status; stderr is the whole command's), or why
    /// it is missing (the command ended before it).
    pub fn split(&self, output: &Output) -> Vec<std::result::Result<Output, String>> {
        let mut rest: &[u8] = &output.stdout;
        let mut results = Vec::new();
        for index in 0..self.parts.len() {
            let needle = format!("\n{PART_END}{index} ");
            let found = rest.windows(needle.len()).position(|w| w == needle.as_bytes()).and_then(|start| {
                let after = &rest[start + needle.len()..];
                let line_end = after.iter().position(|b| *b == b'\n')?;
                let status = std::str::from_utf8(&after[..line_end]).ok()?.parse::<i32>().ok()?;
                Some((start, start + needle.len() + line_end + 1, status))
            });
            match found {
                Some((start, end, status)) => {
                    results.push(Ok(Output { status, stdout: rest[..start].to_vec(), stderr: output.stderr.clone() }));
                    rest = &rest[end..];
                }
                None => results.push(Err(format!(
                    "{} did not run to its end (the command stopped with status {}): {}",
                    self.parts[index].summary(),
                    output.status,
                    output.stderr_text().trim()
                ))),
            }
        }
        results
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The real test of the bundle: a local shell runs it and every part is read back.
    #[test]
    fn a_shell_runs_every_part_and_each_result_is_read_back() {
        let bundle = Bundle::new()
            .part(Argv::script("printf 'a b\\nc'", &[]))
            .part(Argv::script("echo \"$1\"; exit 3", &["it's $HOME"]))
            .part(Argv::new("true"));
        let argv = bundle.argv("facts");
        let ran = std::process::Command::new("sh").arg("-c").arg(argv.to_command_line()).output().unwrap();
        let output = Output { status: ran.status.code().unwrap(), stdout: ran.stdout, stderr: ran.stderr };
        let parts = bundle.split(&output);
        let got: Vec<(i32, String)> = parts.into_iter().map(|p| p.map(|o| (o.status, o.stdout_text())).unwrap()).collect();
        assert_eq!(got, [(0, "a b\nc".to_string()), (3, "it's $HOME\n".to_string()), (0, String::new())]);
    }

    #[test]
    fn a_part_that_never_ended_is_named() {
        let bundle = Bundle::new().part(Argv::new("true")).part(Argv::new("cat").arg("/x"));
        let output = Output { status: 137, stdout: format!("\n{PART_END}0 0\n").into_bytes(), stderr: b"Killed\n".to_vec() };
        let parts = bundle.split(&output);
        assert_eq!(parts[0].as_ref().map(|o| o.status), Ok(0));
        assert_eq!(parts[1].as_ref().unwrap_err(), "`cat /x` did not run to its end (the command stopped with status 137): Killed");
    }
}

//! One host's SSH connection and what runs over it: commands (stdout and stderr drained
//! together, exit status required), uploads (atomic, mode set, skipped when unchanged) and
//! tunnels (each on a session of its own).

use std::io::Read;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use super::files::sha256_hex;

use super::argv::Argv;
use super::session::{self, is_would_block, retry, wait_socket, Ssh};
use super::target::{self, Inputs, Target};
use super::tunnel::{self, Destination, Tunnel};
use crate::error::{Error, Result};
use crate::fleet::Host;

/// Printed after the command, on stderr, so a channel that closes without the command having
/// finished (OpenSSH's ChannelTimeout, a dropped connection) is told apart from exit status 0.
const EXIT_MARK: &str = "__rcfleet_exit=";
/// How long closing a finished command's channel may take.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(30);

/// How to connect; the inventory's SSH settings come with the host.
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    /// `--accept-new-host-keys`: trust and record unknown host keys (also set per host in the inventory).
    pub accept_new_host_keys: bool,
    /// The OpenSSH client configuration to honour; `None` means `$RCFLEET_SSH_CONFIG`, else `~/.ssh/config`.
    pub ssh_config: Option<PathBuf>,
    /// The SSH agent's socket; `None` means `$SSH_AUTH_SOCK`.
    pub agent_socket: Option<PathBuf>,
    /// `-v`: echo the output of commands run with `ExecOptions::stream`, prefixed by the host.
    pub verbose: bool,
}

#[derive(Default)]
pub struct ExecOptions<'a> {
    /// Give up (and close the channel) after this long; `None` means the host's
    /// `ssh.command_timeout_seconds`. No command waits without a limit: a wedged dockerd or a
    /// stuck script must fail the step, naming it, rather than hang rcfleet with the lock held.
    pub timeout: Option<Duration>,
    /// Streamed to the command's standard input, e.g. an image archive for `docker load`.
    pub stdin: Option<&'a mut (dyn Read + Send)>,
    /// Echo output lines as they arrive, prefixed by the host name, when the connection is verbose.
    pub stream: bool,
    /// Handed the command's output as it arrives (`rcfleet exec`); stdout is then not kept in
    /// [`Output::stdout`], so a large output never piles up in memory.
    pub output: Option<&'a mut (dyn FnMut(Stream, &[u8]) + Send)>,
}

/// Which of the command's output streams a piece of output came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// A finished command. `status` is the exit status, or 128 + the signal number when the
/// remote process was killed by a signal (137 for SIGKILL), as a shell reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub status: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Output {
    pub fn success(&self) -> bool {
        self.status == 0
    }

    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Uploaded {
    Written,
    /// The file already had this content, mode and owner: nothing was sent.
    Unchanged,
}

/// An open, verified, authenticated SSH connection to one host.
pub struct Connection {
    target: Target,
    /// The limit of a command that sets none of its own (`ssh.command_timeout_seconds`).
    pub(super) command_timeout: Duration,
    ssh: Mutex<Ssh>,
    verbose: bool,
    pub(crate) compose: OnceLock<super::docker::ComposeCli>,
    pub(crate) docker: Mutex<Option<(Tunnel, bollard::Docker)>>,
}

impl Connection {
    /// Connects to the host: TCP with the inventory's timeout (through the jump host if any),
    /// host key verified against known_hosts before any credential is sent, then the agent's
    /// keys and the identity files in turn.
    pub fn open(host: &Host, options: &ConnectOptions) -> Result<Connection> {
        let config_path = options.ssh_config.clone().unwrap_or_else(target::default_config_path);
        let config = target::load_ssh_config(&config_path)?;
        let target = target::resolve(Inputs {
            host,
            config: &config,
            accept_new: options.accept_new_host_keys,
            agent_socket: options.agent_socket.clone(),
        })?;
        let ssh = session::connect(&target)?;
        Ok(Connection {
            target,
            command_timeout: Duration::from_secs(host.ssh.command_timeout_seconds.max(1)),
            ssh: Mutex::new(ssh),
            verbose: options.verbose,
            compose: OnceLock::new(),
            docker: Mutex::new(None),
        })
    }

    /// The inventory's name for the host.
    pub fn name(&self) -> &str {
        &self.target.name
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, Ssh> {
        self.ssh.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn fail(&self, what: impl std::fmt::Display) -> Error {
        Error::failed(format!("{}: {what}", self.target.name))
    }

    /// Runs a command and reports how it ended; a non-zero status is not an error here.
    pub fn exec(&self, argv: &Argv, options: ExecOptions<'_>) -> Result<Output> {
        let ssh = self.lock();
        let command = argv.to_command_line();
        let summary = argv.summary();
        let fail = |what: String| self.fail(format!("{summary}: {what}"));
        let (timeout, limit) = match options.timeout {
            Some(timeout) => (timeout, "this step's limit"),
            None => (self.command_timeout, "ssh.command_timeout_seconds"),
        };
        let options = ExecOptions { timeout: Some(timeout), ..options };
        let mut channel = ssh
            .session
            .channel_session()
            .map_err(|e| fail(format!("cannot open a session channel: {e}; check the connection to the host")))?;
        channel
            .exec(&with_exit_mark(&command))
            .map_err(|e| fail(format!("the host refused to start the command: {e}")))?;
        ssh.session.set_blocking(false);
        let echo = (self.verbose && options.stream).then(|| self.target.name.clone());
        let drained = drain(&ssh, &mut channel, options, echo).map_err(|failure| match failure {
            Failure::TimedOut => format!(
                "no result within {}s ({limit}); the command may still be running on the host: check what it \
                 waits for there (e.g. `docker info` hangs when dockerd is stuck), then run again",
                timeout.as_secs()
            ),
            Failure::Other(what) => match ssh.silence_note() {
                Some(note) => format!("{what}: {note}"),
                None => what,
            },
        });
        let closed = match &drained {
            Ok(_) => {
                let deadline = Instant::now() + CLOSE_TIMEOUT;
                Some(
                    retry(&ssh.session, ssh.fd, deadline, || channel.close())
                        .and_then(|()| retry(&ssh.session, ssh.fd, deadline, || channel.wait_close())),
                )
            }
            Err(_) => {
                // sshd answers a close only once the process has exited; after a timeout, ask
                // for the close and move on instead of waiting for the command.
                let _ = channel.close();
                None
            }
        };
        let signal = channel.exit_signal().ok().and_then(|s| s.exit_signal);
        // Dropped while non-blocking: freeing a channel still open never waits.
        drop(channel);
        ssh.session.set_blocking(true);
        let (stdout, stderr) = drained.map_err(fail)?;
        if let Some(Err(e)) = closed {
            return Err(fail(format!("the channel did not close cleanly: {e}")));
        }
        finished(stdout, stderr, signal).map_err(fail)
    }

    /// Runs a command that must succeed; a non-zero status becomes an error quoting its stderr.
    pub fn run(&self, argv: &Argv) -> Result<Output> {
        self.checked(argv, self.exec(argv, ExecOptions::default())?)
    }

    /// `output` of `argv` if it succeeded; else an error quoting its stderr's last lines.
    pub fn checked(&self, argv: &Argv, output: Output) -> Result<Output> {
        if output.success() {
            return Ok(output);
        }
        let stderr = output.stderr_text();
        let tail: Vec<&str> = stderr.trim_end().lines().rev().take(10).collect::<Vec<_>>().into_iter().rev().collect();
        Err(self.fail(format!("{} exited with status {}:\n{}", argv.summary(), output.status, tail.join("\n"))))
    }

    /// Writes `content` to `path` atomically (a temporary file in the same folder, then
    /// `mv -f`), with `mode` (e.g. 0o600 for secrets) and, when given, `owner` (`user[:group]`).
    /// Nothing is sent when the file already has this content, mode and owner.
    pub fn upload(&self, path: &str, content: &[u8], mode: u32, owner: Option<&str>) -> Result<Uploaded> {
        let current = self.file_states(&[path.to_string()])?.pop().flatten();
        if current.is_some_and(|now| now.holds(content, mode) && owner.is_none_or(|owner| now.owned_by(owner))) {
            return Ok(Uploaded::Unchanged);
        }
        self.write_file(path, None, content, mode, owner).map(|()| Uploaded::Written)
    }

    /// Writes `content` to `path` as [`Connection::upload`] does, without asking first (for
    /// callers that already compared the host's file). With `staging` (a folder on the same
    /// file system as `path`, e.g. the deploy folder), the temporary file is made there: a
    /// program watching `path`'s folder (Traefik's file provider) then sees one event, the
    /// rename, and not the temporary file's creation, writes and mode change. Traefik 3.7 on
    /// the lab took a change in 30-130 ms this way, 230-390 ms with the temporary file beside
    /// the target.
    pub fn write_file(&self, path: &str, staging: Option<&str>, content: &[u8], mode: u32, owner: Option<&str>) -> Result<()> {
        let want_hash = sha256_hex(content);
        let want_mode = format!("{mode:o}");
        let script = r#"set -e
dir=$(dirname -- "$1")
mkdir -p -- "$dir"
tmp=$(mktemp "${4:-$dir}/.rcfleet-upload.XXXXXX")
trap 'rm -f -- "$tmp"' EXIT
cat > "$tmp"
chmod "$2" "$tmp"
if [ -n "$3" ]; then chown "$3" "$tmp"; fi
mv -f -- "$tmp" "$1"
trap - EXIT
sha256sum < "$1" | cut -d' ' -f1"#;
        let mut stdin: &[u8] = content;
        let output = self.exec(
            &Argv::script(script, &[path, &want_mode, owner.unwrap_or(""), staging.unwrap_or("")]).step(format!("uploading {path}")),
            ExecOptions { stdin: Some(&mut stdin), ..ExecOptions::default() },
        )?;
        if !output.success() {
            return Err(self.fail(format!(
                "uploading {path} failed (status {}): {}; check that the folder is writable and the owner exists",
                output.status,
                output.stderr_text().trim()
            )));
        }
        let written = output.stdout_text();
        if written.trim() != want_hash {
            return Err(self.fail(format!(
                "uploading {path}: the file on the host has sha256 {} instead of {want_hash}; the transfer was cut short",
                written.trim()
            )));
        }
        Ok(())
    }

    /// Forwards a local 127.0.0.1 port to `host:port` as seen from the host (direct-tcpip).
    pub fn forward_tcp(&self, host: &str, port: u16) -> Result<Tunnel> {
        self.forward(Destination::Tcp(host.to_string(), port), false)
    }

    /// Forwards a local Unix socket, in a directory only this user can open, to a Unix
    /// socket on the host (direct-streamlocal), e.g. `/var/run/docker.sock`.
    pub fn forward_unix(&self, socket: &str) -> Result<Tunnel> {
        self.forward(Destination::Unix(socket.to_string()), true)
    }

    fn forward(&self, destination: Destination, local_unix: bool) -> Result<Tunnel> {
        // A second session: a tunnel is long-lived and must not wait behind commands.
        let ssh = session::connect(&self.target)?;
        tunnel::open_tunnel(ssh, self.target.keepalive, destination.clone(), local_unix)
            .map_err(|e| self.fail(format!("cannot set up a local endpoint for {destination:?}: {e}")))
    }
}

/// Why draining a command stopped early.
enum Failure {
    TimedOut,
    Other(String),
}

impl From<String> for Failure {
    fn from(what: String) -> Failure {
        Failure::Other(what)
    }
}

type Drained = std::result::Result<(Vec<u8>, Vec<u8>), Failure>;

/// Reads stdout and stderr together (a command filling one while we wait on the other would
/// otherwise stall both sides), feeds stdin, until the channel reaches end of file.
fn drain(ssh: &Ssh, channel: &mut ssh2::Channel, options: ExecOptions<'_>, echo: Option<String>) -> Drained {
    use std::io::Write;
    let ExecOptions { timeout, mut stdin, mut output, .. } = options;
    let mut stderr_filter = MarkFilter::default();
    let deadline = timeout.map(|t| Instant::now() + t);
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let mut echo_out = echo.clone().map(LineEcho::new);
    let mut echo_err = echo.map(LineEcho::new);
    let mut pending: Vec<u8> = Vec::new();
    let mut stdin_done = stdin.is_none();
    let mut eof_sent = false;
    let mut buf = vec![0u8; 64 * 1024];
    let mut next_keepalive = Instant::now() + Duration::from_secs(10);
    loop {
        let mut progress = false;
        if !stdin_done && pending.is_empty() {
            let reader = stdin.as_mut().expect("stdin present until done");
            match reader.read(&mut buf) {
                Ok(0) => stdin_done = true,
                Ok(n) => pending.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("reading the data to send failed: {e}").into()),
            }
            progress = true;
        }
        if !pending.is_empty() {
            match channel.write(&pending) {
                Ok(n) => {
                    pending.drain(..n);
                    progress |= n > 0;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                // The command stopped reading its input (it exited early): keep its output.
                Err(_) => (pending, stdin_done) = (Vec::new(), true),
            }
        }
        if stdin_done && pending.is_empty() && !eof_sent {
            match channel.send_eof() {
                Err(e) if is_would_block(&e) => {}
                _ => (eof_sent, progress) = (true, true),
            }
        }
        for (id, sink, echo) in [(0, &mut stdout, &mut echo_out), (1, &mut stderr, &mut echo_err)] {
            let mut stream = channel.stream(id);
            loop {
                match stream.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        match (output.as_mut(), id) {
                            (Some(output), 0) => output(Stream::Stdout, &buf[..n]),
                            (Some(output), _) => {
                                sink.extend_from_slice(&buf[..n]);
                                output(Stream::Stderr, &stderr_filter.feed(&buf[..n]));
                            }
                            (None, _) => sink.extend_from_slice(&buf[..n]),
                        }
                        if let Some(echo) = echo.as_mut() {
                            echo.feed(&buf[..n]);
                        }
                        progress = true;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) => return Err(format!("reading the command's output failed: {e}").into()),
                }
            }
        }
        if channel.eof() {
            break;
        }
        let now = Instant::now();
        // Checked even while output flows: a limit is on the whole command.
        if deadline.is_some_and(|d| now >= d) {
            return Err(Failure::TimedOut);
        }
        if !progress {
            if now >= next_keepalive {
                let seconds = ssh.session.keepalive_send().unwrap_or(5);
                next_keepalive = now + Duration::from_secs(u64::from(seconds.clamp(1, 10)));
            }
            wait_socket(&ssh.session, ssh.fd, Duration::from_millis(200));
        }
    }
    for echo in [echo_out, echo_err].into_iter().flatten() {
        echo.finish();
    }
    if let Some(output) = output.as_mut() {
        output(Stream::Stderr, &stderr_filter.finish());
    }
    Ok((stdout, stderr))
}

/// Passes stderr on as it arrives, without the exit mark: what could be the start of the mark
/// is held back until it is clearly not (or is the mark, which is then dropped).
#[derive(Default)]
struct MarkFilter {
    held: Vec<u8>,
}

impl MarkFilter {
    /// The bytes that can be passed on now.
    fn feed(&mut self, data: &[u8]) -> Vec<u8> {
        self.held.extend_from_slice(data);
        let needle = format!("\n{EXIT_MARK}");
        let needle = needle.as_bytes();
        let mut ready = Vec::new();
        while let Some(start) = self.held.iter().position(|b| *b == b'\n') {
            let rest = &self.held[start..];
            let shared = rest.len().min(needle.len());
            if rest[..shared] != needle[..shared] {
                ready.extend(self.held.drain(..=start));
                continue;
            }
            // What comes before a possible mark is passed on now; only the mark's start waits.
            if rest.len() < needle.len() {
                ready.extend(self.held.drain(..start));
                break;
            }
            let digits = rest[needle.len()..].iter().take_while(|b| b.is_ascii_digit()).count();
            match rest.get(needle.len() + digits) {
                None => {
                    ready.extend(self.held.drain(..start));
                    break;
                }
                Some(b'\n') if digits > 0 => {
                    ready.extend(self.held.drain(..start));
                    self.held.drain(..needle.len() + digits + 1);
                }
                Some(_) => ready.extend(self.held.drain(..=start)),
            }
        }
        if !self.held.contains(&b'\n') {
            ready.append(&mut self.held);
        }
        ready
    }

    /// What was still held back when the command ended.
    fn finish(self) -> Vec<u8> {
        self.held
    }
}

/// Prints complete lines as they arrive, as `host | line`, leaving out the exit mark.
struct LineEcho {
    prefix: String,
    partial: Vec<u8>,
}

impl LineEcho {
    fn new(prefix: String) -> LineEcho {
        LineEcho { prefix, partial: Vec::new() }
    }

    fn feed(&mut self, data: &[u8]) {
        self.partial.extend_from_slice(data);
        while let Some(end) = self.partial.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=end).collect();
            self.print(&line[..line.len() - 1]);
        }
    }

    fn print(&self, line: &[u8]) {
        let text = String::from_utf8_lossy(line);
        if !text.starts_with(EXIT_MARK) {
            eprintln!("{} | {}", self.prefix, text);
        }
    }

    fn finish(self) {
        if !self.partial.is_empty() {
            self.print(&self.partial);
        }
    }
}

/// The command line sent to sshd: `command`, then its exit status printed as the mark
/// [`take_exit_mark`] reads back.
pub(crate) fn with_exit_mark(command: &str) -> String {
    format!("{command}; printf '\\n{EXIT_MARK}%d\\n' \"$?\" >&2")
}

/// The finished command's [`Output`], from what its channel carried and the signal sshd
/// reported, if any; an error when nothing says how it ended.
pub(crate) fn finished(stdout: Vec<u8>, mut stderr: Vec<u8>, signal: Option<String>) -> std::result::Result<Output, String> {
    let status = match (take_exit_mark(&mut stderr), signal) {
        (Some(status), _) => status,
        (None, Some(signal)) => 128 + signal_number(&signal),
        (None, None) => {
            return Err("the channel closed without an exit status, so the command may not have finished \
                        (sshd's ChannelTimeout, or the connection dropped); check the host and run again"
                .to_string())
        }
    };
    Ok(Output { status, stdout, stderr })
}

/// Removes the `\n__rcfleet_exit=N\n` the wrapper appended and returns N. It is looked for
/// anywhere, not only at the end: a background process the command started may still write
/// after it. The mark is one small write, so it is never split by other output.
fn take_exit_mark(stderr: &mut Vec<u8>) -> Option<i32> {
    let needle = format!("\n{EXIT_MARK}");
    let needle = needle.as_bytes();
    let start = stderr.windows(needle.len()).rposition(|w| w == needle)?;
    let rest = &stderr[start + needle.len()..];
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || rest.get(digits) != Some(&b'\n') {
        return None;
    }
    let status = std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()?;
    stderr.drain(start..start + needle.len() + digits + 1);
    Some(status)
}

/// POSIX signal numbers (Linux) for the names SSH reports without the `SIG` prefix.
fn signal_number(name: &str) -> i32 {
    match name.trim_start_matches("SIG") {
        "HUP" => 1,
        "INT" => 2,
        "QUIT" => 3,
        "ILL" => 4,
        "TRAP" => 5,
        "ABRT" => 6,
        "BUS" => 7,
        "FPE" => 8,
        "KILL" => 9,
        "USR1" => 10,
        "SEGV" => 11,
        "USR2" => 12,
        "PIPE" => 13,
        "ALRM" => 14,
        "TERM" => 15,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_mark_is_removed_and_read() {
        let mut stderr = b"warning: x\n\n__rcfleet_exit=137\n".to_vec();
        assert_eq!(take_exit_mark(&mut stderr), Some(137));
        assert_eq!(stderr, b"warning: x\n");
        let mut no_newline = b"partial\n__rcfleet_exit=0\n".to_vec();
        assert_eq!(take_exit_mark(&mut no_newline), Some(0));
        assert_eq!(no_newline, b"partial");
        let mut empty = b"\n__rcfleet_exit=1\n".to_vec();
        assert_eq!(take_exit_mark(&mut empty), Some(1));
        assert!(empty.is_empty());
        let mut late = b"early \n__rcfleet_exit=5\nlate writer\n".to_vec();
        assert_eq!(take_exit_mark(&mut late), Some(5));
        assert_eq!(late, b"early late writer\n");
    }

    #[test]
    fn a_missing_or_mangled_mark_is_not_a_status() {
        for text in [&b""[..], b"output only\n", b"\n__rcfleet_exit=\n", b"\n__rcfleet_exit=1x\n"] {
            let mut stderr = text.to_vec();
            assert_eq!(take_exit_mark(&mut stderr), None, "{:?}", String::from_utf8_lossy(text));
            assert_eq!(stderr, text);
        }
    }

    #[test]
    fn streamed_stderr_loses_only_the_exit_mark() {
        let text = b"warning: x\nsecond\n\n__rcfleet_exit=3\nlate\n";
        for split in 1..text.len() {
            let mut filter = MarkFilter::default();
            let mut passed = filter.feed(&text[..split]);
            passed.extend(filter.feed(&text[split..]));
            passed.extend(filter.finish());
            assert_eq!(String::from_utf8_lossy(&passed), "warning: x\nsecond\nlate\n", "split at {split}");
        }
        let mut filter = MarkFilter::default();
        assert_eq!(filter.feed(b"line one\nline two\n"), b"line one\nline two", "only a possible mark's start waits");
        assert_eq!(filter.feed(b"more\n"), b"\nmore");
        let mut filter = MarkFilter::default();
        let mut passed = filter.feed(b"no newline at the end\n__rcfleet_exit=0\n");
        passed.extend(filter.finish());
        assert_eq!(passed, b"no newline at the end");
    }

    #[test]
    fn signals_map_to_shell_statuses() {
        assert_eq!(128 + signal_number("KILL"), 137);
        assert_eq!(128 + signal_number("TERM"), 143);
        assert_eq!(128 + signal_number("SIGSEGV"), 139);
    }
}

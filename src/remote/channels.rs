//! Many requests at once over a host's one SSH session: commands, and HTTP GETs to a TCP port
//! or a Unix socket as the host sees them, each on a channel of its own, all driven by the
//! calling thread. A host's facts then cost no handshake beyond the connection's own and
//! about one round trip, instead of a tunnel (a session and a thread) per service.
//!
//! libssh2 allows one channel open and one unfinished packet send per session at a time, so
//! each channel is set up (opened, request sent, input written) before the next; only the
//! reading, where the waiting is, runs for all of them together.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use ssh2::Channel;

use super::argv::Argv;
use super::connection::{finished, with_exit_mark, Connection, Output};
use super::docker::HttpResponse;
use super::session::{retry, wait_socket, Ssh};
use super::tunnel::Destination;
use crate::error::Result;

/// How long an HTTP GET of a batch may take (at most; never longer than the host's
/// `ssh.command_timeout_seconds`).
const HTTP_TIMEOUT: Duration = Duration::from_secs(30);

/// One thing to ask the host.
#[derive(Debug, Clone)]
pub struct Request(Kind);

#[derive(Debug, Clone)]
enum Kind {
    /// A command, with (small) input for its stdin.
    Exec { argv: Argv, stdin: Vec<u8> },
    /// An HTTP request without a body (`GET`, or a `POST` action such as the Docker Engine
    /// API's container start) to a service reached from the host.
    Http { method: &'static str, to: Destination, path: String },
}

impl Request {
    pub fn exec(argv: Argv) -> Request {
        Request(Kind::Exec { argv, stdin: Vec::new() })
    }

    pub fn exec_with_input(argv: Argv, stdin: Vec<u8>) -> Request {
        Request(Kind::Exec { argv, stdin })
    }

    /// `GET path` from `address:port` as the host sees it.
    pub fn get(address: &str, port: u16, path: &str) -> Request {
        Request(Kind::Http { method: "GET", to: Destination::Tcp(address.to_string(), port), path: path.to_string() })
    }

    /// `GET path` from the HTTP server on a Unix socket of the host (e.g. the Docker Engine API).
    pub fn get_unix(socket: &str, path: &str) -> Request {
        Request(Kind::Http { method: "GET", to: Destination::Unix(socket.to_string()), path: path.to_string() })
    }

    /// `POST path` with no body to the HTTP server on a Unix socket of the host (e.g. the Docker
    /// Engine API's `/containers/{id}/start`).
    pub fn post_unix(socket: &str, path: &str) -> Request {
        Request(Kind::Http { method: "POST", to: Destination::Unix(socket.to_string()), path: path.to_string() })
    }

    fn describe(&self) -> String {
        match &self.0 {
            Kind::Exec { argv, .. } => argv.summary(),
            Kind::Http { method, to: Destination::Tcp(address, port), path } => format!("{method} http://{address}:{port}{path}"),
            Kind::Http { method, to: Destination::Unix(socket), path } => format!("{method} {path} on {socket}"),
        }
    }

    /// What is written to the channel once it is open.
    fn input(&self) -> Vec<u8> {
        match &self.0 {
            Kind::Exec { stdin, .. } => stdin.clone(),
            Kind::Http { method, to, path } => {
                let host = match to {
                    Destination::Tcp(address, port) => format!("{address}:{port}"),
                    // Docker's API ignores the name but HTTP/1.1 requires the header.
                    Destination::Unix(_) => "localhost".to_string(),
                };
                // No body: a POST says so (a server may otherwise wait for one).
                let length = if *method == "GET" { "" } else { "Content-Length: 0\r\n" };
                format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: rcfleet\r\nAccept: */*\r\n{length}Connection: close\r\n\r\n")
                    .into_bytes()
            }
        }
    }
}

/// How a request went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Exec(Output),
    Http(HttpResponse),
}

impl Answer {
    pub fn output(self) -> Option<Output> {
        match self {
            Answer::Exec(output) => Some(output),
            Answer::Http(_) => None,
        }
    }

    pub fn response(self) -> Option<HttpResponse> {
        match self {
            Answer::Http(response) => Some(response),
            Answer::Exec(_) => None,
        }
    }
}

/// A request whose channel is open and whose answer is being read.
struct Open {
    index: usize,
    channel: Channel,
    /// The request's time limit, and when it runs out.
    limit: Duration,
    deadline: Instant,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

impl Connection {
    /// Runs every request at once over this connection's session and returns each one's
    /// answer, in order. A command's non-zero status is an answer, not an error; a request
    /// that cannot be opened, times out or breaks off is an error naming the host and it,
    /// and does not stop the others.
    pub fn batch(&self, requests: &[Request]) -> Vec<Result<Answer>> {
        let ssh = self.lock();
        let mut answers: Vec<Option<Result<Answer>>> = requests.iter().map(|_| None).collect();
        let fail = |request: &Request, what: String| match ssh.silence_note() {
            Some(note) => self.fail(format!("{}: {what}: {note}", request.describe())),
            None => self.fail(format!("{}: {what}", request.describe())),
        };
        ssh.session.set_blocking(false);
        let mut open = Vec::new();
        for (index, request) in requests.iter().enumerate() {
            let timeout = match request.0 {
                Kind::Exec { .. } => self.command_timeout,
                Kind::Http { .. } => HTTP_TIMEOUT.min(self.command_timeout),
            };
            let deadline = Instant::now() + timeout;
            match start(&ssh, request, deadline) {
                Ok(channel) => open.push(Open { index, channel, limit: timeout, deadline, stdout: Vec::new(), stderr: Vec::new() }),
                Err(what) => answers[index] = Some(Err(fail(request, what))),
            }
        }
        let mut buf = vec![0u8; 64 * 1024];
        let mut next_keepalive = Instant::now() + Duration::from_secs(10);
        while !open.is_empty() {
            let mut progress = false;
            let now = Instant::now();
            let mut still_open = Vec::new();
            for mut request in open {
                let read = read_available(&mut request, &mut buf);
                progress |= matches!(read, Ok(true));
                let outcome = match read {
                    Err(what) => Some(Err(what)),
                    Ok(_) if request.channel.eof() => Some(conclude(&ssh, &requests[request.index], &mut request)),
                    Ok(_) if now >= request.deadline => Some(Err(format!(
                        "no answer within {}s; the host or the service is stuck",
                        request.limit.as_secs()
                    ))),
                    Ok(_) => None,
                };
                match outcome {
                    // Dropped while non-blocking: freeing a channel still open never waits.
                    Some(result) => {
                        let index = request.index;
                        answers[index] = Some(result.map_err(|what| fail(&requests[index], what)));
                        progress = true;
                    }
                    None => still_open.push(request),
                }
            }
            open = still_open;
            if !open.is_empty() && !progress {
                if now >= next_keepalive {
                    let seconds = ssh.session.keepalive_send().unwrap_or(5);
                    next_keepalive = now + Duration::from_secs(u64::from(seconds.clamp(1, 10)));
                }
                wait_socket(&ssh.session, ssh.fd, Duration::from_millis(200));
            }
        }
        ssh.session.set_blocking(true);
        answers.into_iter().map(|answer| answer.expect("every request was answered")).collect()
    }
}

/// Opens the request's channel, starts it and writes its input, waiting on nothing else
/// meanwhile (see the module's comment).
fn start(ssh: &Ssh, request: &Request, deadline: Instant) -> std::result::Result<Channel, String> {
    let (session, fd) = (&ssh.session, ssh.fd);
    let mut channel = match &request.0 {
        Kind::Exec { .. } => retry(session, fd, deadline, || session.channel_session()),
        Kind::Http { to: Destination::Tcp(address, port), .. } => {
            retry(session, fd, deadline, || session.channel_direct_tcpip(address, *port, None))
        }
        Kind::Http { to: Destination::Unix(socket), .. } => {
            retry(session, fd, deadline, || session.channel_direct_streamlocal(socket, None))
        }
    }
    .map_err(|e| format!("cannot open a channel: {e}; check the connection to the host and that the service listens"))?;
    if let Kind::Exec { argv, .. } = &request.0 {
        let command = with_exit_mark(&argv.to_command_line());
        retry(session, fd, deadline, || channel.exec(&command)).map_err(|e| format!("the host refused to start the command: {e}"))?;
    }
    let input = request.input();
    let mut sent = 0;
    while sent < input.len() {
        match channel.write(&input[sent..]) {
            Ok(n) => sent += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                wait_socket(session, fd, Duration::from_millis(200))
            }
            Err(e) => return Err(format!("sending the request failed: {e}")),
        }
    }
    // A command's input ends here. An HTTP request is not half-closed: Node's HTTP server
    // (Rocket.Chat) drops the requests it is still answering when the client's side ends
    // (`httpAllowHalfOpen` is off by default); `Connection: close` makes the server end instead.
    if matches!(request.0, Kind::Exec { .. }) {
        retry(session, fd, deadline, || channel.send_eof()).map_err(|e| format!("sending the request failed: {e}"))?;
    }
    Ok(channel)
}

/// Reads what the channel holds now; true if anything came.
fn read_available(request: &mut Open, buf: &mut [u8]) -> std::result::Result<bool, String> {
    let mut progress = false;
    for id in [0, 1] {
        let mut stream = request.channel.stream(id);
        loop {
            match stream.read(buf) {
                Ok(0) => break,
                Ok(n) => {
                    let sink = if id == 0 { &mut request.stdout } else { &mut request.stderr };
                    sink.extend_from_slice(&buf[..n]);
                    progress = true;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(format!("reading the answer failed: {e}")),
            }
        }
    }
    Ok(progress)
}

/// The answer of a channel that reached end of file; the channel is closed first, so that a
/// command's exit signal is known.
fn conclude(ssh: &Ssh, request: &Request, open: &mut Open) -> std::result::Result<Answer, String> {
    let closed = retry(&ssh.session, ssh.fd, open.deadline, || open.channel.close())
        .and_then(|()| retry(&ssh.session, ssh.fd, open.deadline, || open.channel.wait_close()));
    let (stdout, stderr) = (std::mem::take(&mut open.stdout), std::mem::take(&mut open.stderr));
    match request.0 {
        Kind::Exec { .. } => {
            closed.map_err(|e| format!("the channel did not close cleanly: {e}"))?;
            let signal = open.channel.exit_signal().ok().and_then(|s| s.exit_signal);
            finished(stdout, stderr, signal).map(Answer::Exec)
        }
        // The whole response has arrived at end of file; how the channel closes does not matter.
        Kind::Http { .. } => parse_response(&stdout).map(Answer::Http),
    }
}

/// An HTTP/1.x response read to its end: status, and the body (de-chunked when sent in chunks).
pub(crate) fn parse_response(bytes: &[u8]) -> std::result::Result<HttpResponse, String> {
    let Some(head_end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Err(if bytes.is_empty() {
            "nothing answered".to_string()
        } else {
            "the answer is not HTTP (no end of headers)".to_string()
        });
    };
    let head = String::from_utf8_lossy(&bytes[..head_end]);
    let mut lines = head.lines();
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .strip_prefix("HTTP/1.")
        .and_then(|rest| rest.split_whitespace().nth(1))
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or_else(|| format!("the answer is not HTTP ({status_line:?})"))?;
    let chunked = lines.any(|line| {
        line.split_once(':').is_some_and(|(name, value)| {
            name.trim().eq_ignore_ascii_case("transfer-encoding") && value.to_ascii_lowercase().contains("chunked")
        })
    });
    let raw = &bytes[head_end + 4..];
    let body = if chunked { dechunk(raw)? } else { raw.to_vec() };
    Ok(HttpResponse { status, body: String::from_utf8_lossy(&body).into_owned() })
}

fn dechunk(mut raw: &[u8]) -> std::result::Result<Vec<u8>, String> {
    let mut body = Vec::new();
    loop {
        let line_end = raw.windows(2).position(|w| w == b"\r\n").ok_or("a chunk was cut short")?;
        let size_text = String::from_utf8_lossy(&raw[..line_end]);
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| format!("bad chunk size {size_text:?}"))?;
        raw = &raw[line_end + 2..];
        if size == 0 {
            return Ok(body);
        }
        if raw.len() < size {
            return Err("a chunk was cut short".to_string());
        }
        body.extend_from_slice(&raw[..size]);
        raw = raw.get(size + 2..).unwrap_or_default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_are_read_plain_or_chunked() {
        let plain = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 5\r\n\r\nbusy!";
        assert_eq!(parse_response(plain), Ok(HttpResponse { status: 503, body: "busy!".into() }));
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"a\"\r\n3;x=y\r\n:1}\r\n0\r\n\r\n";
        assert_eq!(parse_response(chunked), Ok(HttpResponse { status: 200, body: "{\"a\":1}".into() }));
        assert_eq!(parse_response(b""), Err("nothing answered".to_string()));
        assert!(parse_response(b"SSH-2.0-OpenSSH\r\n\r\n").unwrap_err().contains("not HTTP"));
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nff\r\nab").is_err());
    }

    #[test]
    fn a_get_asks_for_the_connection_to_close() {
        let request = Request::get("10.0.0.5", 3000, "/readyz").input();
        assert_eq!(
            String::from_utf8(request).unwrap(),
            "GET /readyz HTTP/1.1\r\nHost: 10.0.0.5:3000\r\nUser-Agent: rcfleet\r\nAccept: */*\r\nConnection: close\r\n\r\n"
        );
    }
}

//! Opening one authenticated ssh2 session: TCP (or a jump host's direct-tcpip channel),
//! handshake with the host-key algorithms known for the host, host key checked against
//! known_hosts **before** any credential is sent, then the agent's keys and identity files.
//! Also the helpers for driving a session in non-blocking mode.

use std::net::{TcpStream, ToSocketAddrs};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use ssh2::{BlockDirections, ErrorCode, MethodType, Session};

use super::known_hosts::{self, KnownHosts, Verdict};
use super::target::{Endpoint, Target};
use super::tunnel::Pump;
use crate::error::{Error, Result};
use crate::fleet::SecretRef;

/// Blocking libssh2 calls (channel opens, requests) give up after this long.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// An authenticated session and what keeps its transport alive.
pub(crate) struct Ssh {
    pub session: Session,
    pub fd: RawFd,
    /// For a host reached through a jump host: the thread carrying its bytes.
    jump_relay: Option<Pump>,
}

impl Ssh {
    /// Whether the jump-host relay gave up on this host because it stopped answering.
    fn went_silent(&self) -> bool {
        self.jump_relay.as_ref().is_some_and(Pump::gave_up_on_silence)
    }

    /// What to tell the operator when the host [went silent](Ssh::went_silent).
    pub fn silence_note(&self) -> Option<String> {
        self.went_silent().then(|| {
            format!(
                "the host stopped answering through the jump host (no reply for {}s); check that it is up and \
                 reachable from the jump host",
                PEER_SILENCE.as_secs()
            )
        })
    }
}

impl Drop for Ssh {
    /// Says goodbye, then shuts the socket so that freeing the session and any channel a
    /// timed-out command left open cannot wait on the host.
    fn drop(&mut self) {
        self.session.set_timeout(2_000);
        if self.session.is_blocking() {
            let _ = self.session.disconnect(None, "rcfleet is done", None);
        }
        // SAFETY: the descriptor belongs to the stream the session owns, still open here.
        unsafe { libc::shutdown(self.fd, libc::SHUT_RDWR) };
        self.session.set_blocking(true);
    }
}

pub(crate) fn is_would_block(e: &ssh2::Error) -> bool {
    e.code() == ErrorCode::Session(libssh2_sys::LIBSSH2_ERROR_EAGAIN)
}

/// Waits until the session's socket is ready in the direction libssh2 is blocked on.
pub(crate) fn wait_socket(session: &Session, fd: RawFd, timeout: Duration) {
    let directions = session.block_directions();
    let mut events = 0;
    if matches!(directions, BlockDirections::Inbound | BlockDirections::Both | BlockDirections::None) {
        events |= libc::POLLIN;
    }
    if matches!(directions, BlockDirections::Outbound | BlockDirections::Both) {
        events |= libc::POLLOUT;
    }
    let mut pfd = libc::pollfd { fd, events, revents: 0 };
    let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
    // SAFETY: one valid pollfd, for the duration of the call.
    unsafe { libc::poll(&mut pfd, 1, ms) };
}

/// Repeats a non-blocking libssh2 call until it completes, fails, or the deadline passes.
pub(crate) fn retry<T>(
    session: &Session,
    fd: RawFd,
    deadline: Instant,
    mut call: impl FnMut() -> std::result::Result<T, ssh2::Error>,
) -> std::result::Result<T, ssh2::Error> {
    loop {
        match call() {
            Err(e) if is_would_block(&e) => {
                let now = Instant::now();
                if now >= deadline {
                    return Err(ssh2::Error::new(ErrorCode::Session(libssh2_sys::LIBSSH2_ERROR_TIMEOUT), "timed out"));
                }
                wait_socket(session, fd, (deadline - now).min(Duration::from_millis(200)));
            }
            other => return other,
        }
    }
}

/// Connects, verifies the host key and authenticates, through the jump host when there is one.
pub(crate) fn connect(target: &Target) -> Result<Ssh> {
    match &target.jump {
        None => {
            let tcp = tcp_connect(target, &target.endpoint)?;
            let fd = tcp.as_raw_fd();
            let session = establish(target, &target.endpoint, tcp, None)?;
            Ok(Ssh { session, fd, jump_relay: None })
        }
        Some(jump_endpoint) => {
            let tcp = tcp_connect(target, jump_endpoint)?;
            let jump_fd = tcp.as_raw_fd();
            let jump = establish(target, jump_endpoint, tcp, None)?;
            // The jump host's own connection to the target is under the same connect timeout
            // as a direct one: a silent target is not waited for longer behind a bastion.
            jump.set_timeout(millis(target.connect_timeout));
            let channel = jump.channel_direct_tcpip(&target.endpoint.address, target.endpoint.port, None);
            jump.set_timeout(millis(CALL_TIMEOUT));
            let channel = channel
                .map_err(|e| {
                    Error::failed(format!(
                        "{}: jump host {} could not open a connection to {}:{}: {e}; check that the jump host \
                         can reach that address and allows TCP forwarding (AllowTcpForwarding)",
                        target.name,
                        jump_endpoint.describe(),
                        target.endpoint.address,
                        target.endpoint.port
                    ))
                })?;
            // libssh2 needs a real file descriptor under a session, and a channel is not one:
            // a socketpair with a thread copying between the channel and one end stands in.
            let (near, far) = UnixStream::pair()
                .map_err(|e| Error::failed(format!("{}: cannot create a socket pair: {e}", target.name)))?;
            let pump = Pump::spawn_link(Ssh { session: jump, fd: jump_fd, jump_relay: None }, target.keepalive, far, channel)
                .map_err(|e| Error::failed(format!("{}: cannot start the jump-host relay: {e}", target.name)))?;
            let fd = near.as_raw_fd();
            let via = format!("via jump host {}", jump_endpoint.describe());
            let session = establish(target, &target.endpoint, near, Some(&via))?;
            Ok(Ssh { session, fd, jump_relay: Some(pump) })
        }
    }
}

fn tcp_connect(target: &Target, endpoint: &Endpoint) -> Result<TcpStream> {
    let fail = |what: String| {
        Error::failed(format!(
            "{}: cannot connect to {}:{}: {what}; check the address and port in the inventory and that sshd is \
             running and reachable from here",
            target.name, endpoint.address, endpoint.port
        ))
    };
    let addrs: Vec<_> = (endpoint.address.as_str(), endpoint.port)
        .to_socket_addrs()
        .map_err(|e| fail(format!("cannot resolve the address ({e})")))?
        .collect();
    let mut last = None;
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, target.connect_timeout) {
            Ok(tcp) => {
                let _ = tcp.set_nodelay(true);
                give_up_on_a_silent_peer(&tcp);
                return Ok(tcp);
            }
            Err(e) => last = Some(e),
        }
    }
    let cause = match last {
        Some(e) if e.kind() == std::io::ErrorKind::TimedOut => {
            format!("no answer within {}s", target.connect_timeout.as_secs())
        }
        Some(e) => e.to_string(),
        None => "the name resolved to no address".to_string(),
    };
    Err(fail(cause))
}

/// How long sent data may stay unacknowledged before the kernel drops the connection (and,
/// behind a jump host, before the relay does: `tunnel::Link`).
pub(crate) const PEER_SILENCE: Duration = Duration::from_secs(20);

fn millis(duration: Duration) -> u32 {
    duration.as_millis().min(u32::MAX as u128) as u32
}

/// A host that vanishes (cable cut, crashed, partitioned) sends neither data nor a reset, and
/// TCP would retry for a quarter of an hour. With TCP_USER_TIMEOUT, the keepalives sent while
/// a command or tunnel runs make such a connection fail within `PEER_SILENCE`, so a lost host
/// is reported in seconds instead of hanging the operation.
fn give_up_on_a_silent_peer(tcp: &TcpStream) {
    let millis = PEER_SILENCE.as_millis() as libc::c_uint;
    // SAFETY: a valid socket and a c_uint option value of the right size.
    unsafe {
        libc::setsockopt(
            tcp.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_USER_TIMEOUT,
            &millis as *const libc::c_uint as *const libc::c_void,
            std::mem::size_of::<libc::c_uint>() as libc::socklen_t,
        );
    }
}

/// Handshake, host-key check, authentication on an already connected stream.
fn establish<S: AsRawFd + 'static>(
    target: &Target,
    endpoint: &Endpoint,
    stream: S,
    via: Option<&str>,
) -> Result<Session> {
    let at = match via {
        Some(via) => format!("{}:{} ({via})", endpoint.address, endpoint.port),
        None => format!("{}:{}", endpoint.address, endpoint.port),
    };
    let fail = |what: String| Error::failed(format!("{}: {what}", target.name));
    let mut session = Session::new().map_err(|e| fail(format!("cannot create an SSH session: {e}")))?;
    session.set_tcp_stream(stream);
    session.set_timeout(target.connect_timeout.as_millis().min(u32::MAX as u128) as u32);
    let known = KnownHosts::load(&target.known_hosts)
        .map_err(|e| fail(format!("cannot read known_hosts file {}: {e}", target.known_hosts.display())))?;
    // libssh2 reports a host whose recorded key is of another type than the one negotiated as
    // changed; offering only the recorded types makes the server present a comparable key.
    if let Some(algorithms) = known.algorithms_for(&endpoint.address, endpoint.port) {
        session
            .method_pref(MethodType::HostKey, &algorithms)
            .map_err(|e| fail(format!("cannot offer host-key algorithms {algorithms}: {e}")))?;
    }
    session.handshake().map_err(|e| {
        fail(format!("SSH handshake with {at} failed: {e}; check that an SSH server (not another service) listens there"))
    })?;
    verify_host_key(target, endpoint, &session, &known)?;
    authenticate(target, endpoint, &session, &at)?;
    session.set_timeout(millis(CALL_TIMEOUT));
    // Keepalives ask for a reply (as OpenSSH's ServerAliveInterval does): a host behind a jump
    // host that stops answering them is how the relay tells it has gone silent.
    session.set_keepalive(true, target.keepalive.as_secs().max(1) as u32);
    Ok(session)
}

fn verify_host_key(target: &Target, endpoint: &Endpoint, session: &Session, known: &KnownHosts) -> Result<()> {
    let (blob, _) = session
        .host_key()
        .ok_or_else(|| Error::failed(format!("{}: {} presented no host key", target.name, endpoint.address)))?;
    let key_type = known_hosts::blob_key_type(blob);
    let presented = known_hosts::fingerprint(blob);
    let lookup = known_hosts::lookup_name(&endpoint.address, endpoint.port);
    let file = known.path().display();
    match known.check(&endpoint.address, endpoint.port, blob) {
        Verdict::Match { .. } => Ok(()),
        Verdict::Mismatch(recorded) => {
            let records: Vec<String> = recorded
                .iter()
                .map(|r| format!("{file} line {} records {} key {}", r.line, r.key_type, r.fingerprint))
                .collect();
            let first = recorded[0].line;
            Err(Error::failed(format!(
                "{}: HOST KEY MISMATCH for {lookup}: the server presented {key_type} key {presented}, but {}. \
                 Nothing was sent to the server. Someone may be intercepting the connection, or the host was \
                 reinstalled: confirm the new fingerprint on the host itself (ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub), \
                 then remove line {first} (ssh-keygen -R '{lookup}' -f {file}) and connect again",
                target.name,
                records.join("; ")
            )))
        }
        Verdict::Revoked { line } => Err(Error::failed(format!(
            "{}: the host key of {lookup} ({key_type} {presented}) is marked @revoked in {file} line {line}; refusing to connect",
            target.name
        ))),
        Verdict::Unknown if target.accept_new => {
            let line = known_hosts::append(known.path(), &endpoint.address, endpoint.port, blob)
                .map_err(|e| Error::failed(format!("{}: cannot add the host key of {lookup} to {file}: {e}", target.name)))?;
            eprintln!(
                "rcfleet: {}: trusted new host key of {lookup}: {key_type} {presented} (added as {file} line {line})",
                target.name
            );
            Ok(())
        }
        Verdict::Unknown => Err(Error::failed(format!(
            "{}: the host key of {lookup} is not in {file} (the server presented {key_type} key {presented}); \
             refusing to connect. Confirm the fingerprint on the host (ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub), \
             then add it with `ssh-keyscan -p {} {} >> {file}`, or rerun with --accept-new-host-keys \
             (or set accept_new_host_keys = true in the inventory) to trust it on first use",
            target.name, endpoint.port, endpoint.address
        ))),
    }
}

fn authenticate(target: &Target, endpoint: &Endpoint, session: &Session, at: &str) -> Result<()> {
    let user = &endpoint.user;
    let mut tried = Vec::new();
    if let Ok(mut agent) = session.agent() {
        if let Some(socket) = &target.agent_socket {
            let _ = agent.set_identity_path(socket);
        }
        let identities = agent.connect().and_then(|()| agent.list_identities()).and_then(|()| agent.identities());
        if let Ok(identities) = identities {
            for identity in &identities {
                if agent.userauth(user, identity).is_ok() && session.authenticated() {
                    let _ = agent.disconnect();
                    return Ok(());
                }
            }
            tried.push(format!("{} key(s) of the SSH agent", identities.len()));
            let _ = agent.disconnect();
        }
    }
    let passphrase = target.passphrase.as_ref().map(SecretRef::resolve).transpose()?;
    for path in &target.identity_files {
        if !path.exists() {
            tried.push(format!("{} (missing)", path.display()));
            continue;
        }
        match session.userauth_pubkey_file(user, None, path, passphrase.as_deref()) {
            Ok(()) if session.authenticated() => return Ok(()),
            Ok(()) => tried.push(path.display().to_string()),
            Err(e) => {
                let hint = match (&target.passphrase, e.code()) {
                    (None, ErrorCode::Session(libssh2_sys::LIBSSH2_ERROR_FILE)) => {
                        " (unreadable, or encrypted: give identity_passphrase)".to_string()
                    }
                    _ => String::new(),
                };
                tried.push(format!("{}{hint}", path.display()));
            }
        }
    }
    let tried = if tried.is_empty() {
        "no SSH agent and no identity file were available".to_string()
    } else {
        format!("tried {}", tried.join(", "))
    };
    Err(Error::failed(format!(
        "{}: authentication as {user} at {at} failed ({tried}); check that the public key is in \
         ~{user}/.ssh/authorized_keys on the host and that the inventory's user and identity_file are right",
        target.name
    )))
}

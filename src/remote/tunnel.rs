//! Local endpoints forwarded through SSH: a listener on this machine (127.0.0.1 on an
//! ephemeral port, or a Unix socket in a private directory) whose connections become
//! direct-tcpip or direct-streamlocal channels on the host. One thread per tunnel drives its
//! own session in non-blocking mode, so a tunnel never waits on the host's command session.
//! The same relay carries a jump host's channel to the socketpair under the inner session.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ssh2::{Channel, Session};

use super::session::{is_would_block, retry, Ssh, PEER_SILENCE};

/// How long opening one channel for a local connection may take (milliseconds normally);
/// meanwhile the relay serves nobody else.
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);
const IDLE_POLL: Duration = Duration::from_millis(100);
const BUFFER: usize = 64 * 1024;

/// Where a tunnel listens on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalEndpoint {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

/// A forwarded endpoint; forwarding stops and the local socket disappears when it is dropped.
pub struct Tunnel {
    local: LocalEndpoint,
    errors: Arc<Mutex<Option<String>>>,
    _pump: Pump,
    dir: Option<PathBuf>,
}

impl Tunnel {
    pub fn local(&self) -> &LocalEndpoint {
        &self.local
    }

    /// The last failure to open a channel for a local connection, e.g. "connection refused"
    /// from the host: an HTTP error alone would not say why.
    pub fn last_error(&self) -> Option<String> {
        self.errors.lock().ok().and_then(|e| e.clone())
    }
}

impl Drop for Tunnel {
    fn drop(&mut self) {
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// What a tunnel's channels go to on the host.
#[derive(Debug, Clone)]
pub(crate) enum Destination {
    Tcp(String, u16),
    Unix(String),
}

impl Destination {
    fn open(&self, session: &Session) -> Result<Channel, ssh2::Error> {
        match self {
            Destination::Tcp(host, port) => session.channel_direct_tcpip(host, *port, None),
            Destination::Unix(path) => session.channel_direct_streamlocal(path, None),
        }
    }
}

pub(crate) fn open_tunnel(ssh: Ssh, keepalive: Duration, destination: Destination, local_unix: bool) -> io::Result<Tunnel> {
    let (listener, local, dir) = if local_unix {
        let dir = private_dir()?;
        let path = dir.join("tunnel.sock");
        let listener = UnixListener::bind(&path)?;
        (Listener::Unix(listener), LocalEndpoint::Unix(path), Some(dir))
    } else {
        let listener = TcpListener::bind(("127.0.0.1", 0))?;
        let addr = listener.local_addr()?;
        (Listener::Tcp(listener), LocalEndpoint::Tcp(addr), None)
    };
    listener.set_nonblocking()?;
    let errors = Arc::new(Mutex::new(None));
    let pump = Pump::spawn(ssh, keepalive, Some((listener, destination, errors.clone())), Vec::new())?;
    Ok(Tunnel { local, errors, _pump: pump, dir })
}

/// A directory only this user can enter, for local sockets.
fn private_dir() -> io::Result<PathBuf> {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    loop {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("rcfleet-{}-{n}-{nanos:x}", std::process::id()));
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

impl Listener {
    fn set_nonblocking(&self) -> io::Result<()> {
        match self {
            Listener::Tcp(l) => l.set_nonblocking(true),
            Listener::Unix(l) => l.set_nonblocking(true),
        }
    }

    fn accept(&self) -> io::Result<Local> {
        match self {
            Listener::Tcp(l) => l.accept().map(|(s, _)| {
                let _ = s.set_nodelay(true);
                Local::Tcp(s)
            }),
            Listener::Unix(l) => l.accept().map(|(s, _)| Local::Unix(s)),
        }
    }

    fn fd(&self) -> RawFd {
        match self {
            Listener::Tcp(l) => l.as_raw_fd(),
            Listener::Unix(l) => l.as_raw_fd(),
        }
    }
}

enum Local {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Local {
    fn fd(&self) -> RawFd {
        match self {
            Local::Tcp(s) => s.as_raw_fd(),
            Local::Unix(s) => s.as_raw_fd(),
        }
    }

    fn set_nonblocking(&self) -> io::Result<()> {
        match self {
            Local::Tcp(s) => s.set_nonblocking(true),
            Local::Unix(s) => s.set_nonblocking(true),
        }
    }

    fn shutdown_write(&self) {
        let _ = match self {
            Local::Tcp(s) => s.shutdown(Shutdown::Write),
            Local::Unix(s) => s.shutdown(Shutdown::Write),
        };
    }

    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Local::Tcp(s) => s.read(buf),
            Local::Unix(s) => s.read(buf),
        }
    }

    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Local::Tcp(s) => s.write(buf),
            Local::Unix(s) => s.write(buf),
        }
    }
}

/// One local connection joined to one channel.
struct Link {
    local: Local,
    channel: Channel,
    up: Vec<u8>,
    down: Vec<u8>,
    local_eof: bool,
    eof_sent: bool,
    remote_eof: bool,
    local_shut: bool,
    broken: bool,
    /// Only for a jump host's channel to its target, whose session sends keepalives that ask
    /// for a reply: since when bytes went to the target with nothing back. The jump host's
    /// kernel would retry its connection to a vanished target for a quarter of an hour; this
    /// gives up after `PEER_SILENCE`, as TCP_USER_TIMEOUT does on a direct connection.
    unanswered_since: Option<Instant>,
    watch_silence: bool,
}

impl Link {
    fn new(local: Local, channel: Channel) -> Link {
        Link {
            unanswered_since: None,
            watch_silence: false,
            local,
            channel,
            up: Vec::new(),
            down: Vec::new(),
            local_eof: false,
            eof_sent: false,
            remote_eof: false,
            local_shut: false,
            broken: false,
        }
    }

    /// Moves what it can in both directions without blocking; true if anything moved.
    fn step(&mut self, buf: &mut [u8]) -> bool {
        let mut progress = false;
        if self.up.is_empty() && !self.local_eof {
            match self.local.read(buf) {
                Ok(0) => (self.local_eof, progress) = (true, true),
                Ok(n) => (self.up, progress) = (buf[..n].to_vec(), true),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => (self.local_eof, self.broken) = (true, true),
            }
        }
        // A write that libssh2 left half-sent must be repeated with the same data before the
        // session can send anything else, so pending bytes are never abandoned.
        if !self.up.is_empty() {
            match self.channel.write(&self.up) {
                Ok(n) => {
                    self.up.drain(..n);
                    progress |= n > 0;
                    if n > 0 && self.unanswered_since.is_none() {
                        self.unanswered_since = Some(Instant::now());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => {
                    self.up.clear();
                    (self.remote_eof, self.eof_sent, self.broken) = (true, true, true);
                }
            }
        }
        if self.local_eof && self.up.is_empty() && !self.eof_sent {
            match self.channel.send_eof() {
                Err(e) if is_would_block(&e) => {}
                _ => (self.eof_sent, progress) = (true, true),
            }
        }
        if self.down.is_empty() && !self.remote_eof {
            match self.channel.read(buf) {
                Ok(0) if self.channel.eof() => (self.remote_eof, progress) = (true, true),
                Ok(0) => {}
                Ok(n) => (self.down, progress, self.unanswered_since) = (buf[..n].to_vec(), true, None),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => (self.remote_eof, self.broken) = (true, true),
            }
        }
        if !self.down.is_empty() {
            match self.local.write(&self.down) {
                Ok(n) => {
                    self.down.drain(..n);
                    progress |= n > 0;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => {
                    self.down.clear();
                    (self.local_eof, self.broken) = (true, true);
                }
            }
        }
        if self.remote_eof && self.down.is_empty() && !self.local_shut {
            self.local.shutdown_write();
            (self.local_shut, progress) = (true, true);
        }
        progress
    }

    /// The target has left what was sent unanswered for too long (see `unanswered_since`).
    fn silent(&self) -> bool {
        self.watch_silence && self.unanswered_since.is_some_and(|since| since.elapsed() >= PEER_SILENCE)
    }

    fn finished(&self) -> bool {
        let drained = self.up.is_empty() && self.down.is_empty();
        drained && ((self.local_eof && self.eof_sent && self.remote_eof) || (self.broken && self.eof_sent))
    }

    fn poll_events(&self) -> libc::c_short {
        let mut events = 0;
        if self.up.is_empty() && !self.local_eof {
            events |= libc::POLLIN;
        }
        if !self.down.is_empty() {
            events |= libc::POLLOUT;
        }
        events
    }
}

type Accepting = (Listener, Destination, Arc<Mutex<Option<String>>>);

/// The relay thread; stops when dropped (or, without a listener, when its last link ends).
pub(crate) struct Pump {
    stop: Arc<AtomicBool>,
    /// Closed on drop: the relay polls the other end, so it stops at once instead of at its
    /// next idle poll (a run drops its tunnels one after another; 100 ms each added up).
    waker: Option<UnixStream>,
    /// Set when the relay closed a link whose target went silent.
    silent: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Pump {
    /// Relays one already opened channel to `local` (the jump-host case). When the target
    /// leaves the session's traffic unanswered for `PEER_SILENCE`, the link is closed, so the
    /// session over it fails instead of waiting on the jump host.
    pub fn spawn_link(ssh: Ssh, keepalive: Duration, local: UnixStream, channel: Channel) -> io::Result<Pump> {
        local.set_nonblocking(true)?;
        let mut link = Link::new(Local::Unix(local), channel);
        link.watch_silence = true;
        Pump::spawn(ssh, keepalive, None, vec![link])
    }

    fn spawn(ssh: Ssh, keepalive: Duration, accepting: Option<Accepting>, links: Vec<Link>) -> io::Result<Pump> {
        let stop = Arc::new(AtomicBool::new(false));
        let silent = Arc::new(AtomicBool::new(false));
        let (flag, silent_flag) = (stop.clone(), silent.clone());
        let (waker, woken) = UnixStream::pair()?;
        let thread = std::thread::Builder::new()
            .name("rcfleet-tunnel".into())
            .spawn(move || relay(ssh, keepalive, accepting, links, &flag, &silent_flag, &woken))?;
        Ok(Pump { stop, waker: Some(waker), silent, thread: Some(thread) })
    }

    pub fn gave_up_on_silence(&self) -> bool {
        self.silent.load(Ordering::SeqCst)
    }
}

impl Drop for Pump {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        drop(self.waker.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn relay(
    ssh: Ssh,
    keepalive: Duration,
    accepting: Option<Accepting>,
    mut links: Vec<Link>,
    stop: &AtomicBool,
    silent: &AtomicBool,
    woken: &UnixStream,
) {
    let session = &ssh.session;
    session.set_blocking(false);
    let mut buf = vec![0u8; BUFFER];
    let mut next_keepalive = Instant::now() + keepalive;
    let had_listener = accepting.is_some();
    while !stop.load(Ordering::SeqCst) {
        let mut progress = false;
        if let Some((listener, destination, errors)) = &accepting {
            while let Ok(local) = listener.accept() {
                progress = true;
                if local.set_nonblocking().is_err() {
                    continue;
                }
                let deadline = Instant::now() + OPEN_TIMEOUT;
                match retry(session, ssh.fd, deadline, || destination.open(session)) {
                    Ok(channel) => links.push(Link::new(local, channel)),
                    Err(e) => {
                        if let Ok(mut slot) = errors.lock() {
                            *slot = Some(format!("opening a channel to {destination:?} failed: {e}"));
                        }
                    }
                }
            }
        }
        for link in links.iter_mut() {
            progress |= link.step(&mut buf);
        }
        if links.iter().any(Link::silent) {
            // Closing our end of the socketpair ends the session over it at once.
            silent.store(true, Ordering::SeqCst);
            break;
        }
        // A channel is closed once its link is done; sshd confirms, and only then is it freed.
        links.retain_mut(|link| {
            if !link.finished() {
                return true;
            }
            match link.channel.close() {
                Err(e) if is_would_block(&e) => true,
                _ => {
                    progress = true;
                    false
                }
            }
        });
        if !had_listener && links.is_empty() {
            break;
        }
        if Instant::now() >= next_keepalive {
            let seconds = session.keepalive_send().unwrap_or(1);
            next_keepalive = Instant::now() + Duration::from_secs(u64::from(seconds.max(1)));
        }
        if !progress {
            wait(&ssh, accepting.as_ref().map(|(l, _, _)| l), &links, woken);
        }
    }
    // With the socket shut first, freeing the channels cannot wait on the host.
    // SAFETY: the descriptor belongs to the stream the session owns, still open here.
    unsafe { libc::shutdown(ssh.fd, libc::SHUT_RDWR) };
    session.set_blocking(true);
    drop(links);
}

fn wait(ssh: &Ssh, listener: Option<&Listener>, links: &[Link], woken: &UnixStream) {
    // Without a link nothing reads the session, so bytes the host sends (keepalive replies)
    // would keep its socket readable and this loop spinning: then only the listener (and the
    // keepalive timer) can wake it.
    let mut events = if links.is_empty() { 0 } else { libc::POLLIN };
    if matches!(ssh.session.block_directions(), ssh2::BlockDirections::Outbound | ssh2::BlockDirections::Both) {
        events |= libc::POLLOUT;
    }
    // The waker's end hangs up when the pump is dropped.
    let mut fds = vec![libc::pollfd { fd: ssh.fd, events, revents: 0 }, libc::pollfd { fd: woken.as_raw_fd(), events: libc::POLLIN, revents: 0 }];
    if let Some(listener) = listener {
        fds.push(libc::pollfd { fd: listener.fd(), events: libc::POLLIN, revents: 0 });
    }
    for link in links {
        let events = link.poll_events();
        if events != 0 {
            fds.push(libc::pollfd { fd: link.local.fd(), events, revents: 0 });
        }
    }
    // SAFETY: a valid array of pollfd for the duration of the call.
    unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, IDLE_POLL.as_millis() as i32) };
}

impl LocalEndpoint {
    /// The Unix socket path, for `LocalEndpoint::Unix`.
    pub fn path(&self) -> Option<&Path> {
        match self {
            LocalEndpoint::Unix(path) => Some(path),
            LocalEndpoint::Tcp(_) => None,
        }
    }
}

//! The remote layer against the lab: real sshd and dockerd per host (tests/lab).
//!
//! Run with `RCFLEET_LAB=1` and `RCFLEET_LAB_NAME` naming a lab that is up (as tests/run does;
//! `tests/lab_support` finds it). Without `RCFLEET_LAB` every test says why it skipped; with
//! it, a missing lab is a failure. The 16-host test uses the lab when it has 16 hosts, else a
//! light lab `remote16` that it brings up (and down again) itself. The tests share hosts and
//! read sshd's log, so they take turns (the lab handle holds the turn).

mod lab_support;

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use lab_support::{lab, other_lab, Lab};
use rcfleet::fleet::{Host, JumpHost, SecretRef, SshSettings};
use rcfleet::remote::{fan_out, Argv, ConnectOptions, Connection, ExecOptions, LocalEndpoint, Uploaded};
use sha2::{Digest, Sha256};
use tempfile::TempDir;

fn lab_script(args: &[&str]) -> std::process::Output {
    Command::new(lab_support::repo().join("tests/lab/lab")).args(args).output().expect("run tests/lab/lab")
}

/// A lab of at least 16 hosts: this one, or a light one brought up for the test and taken
/// down after it (unless it was already up).
struct WideLab {
    lab: Option<Lab>,
    brought_up: Option<String>,
}

impl WideLab {
    fn get(lab: &Lab) -> WideLab {
        if lab.hosts().len() >= 16 {
            return WideLab { lab: None, brought_up: None };
        }
        let name = "remote16";
        if let Ok(wide) = other_lab(name) {
            if wide.hosts().len() >= 16 {
                return WideLab { lab: Some(wide), brought_up: None };
            }
        }
        let up = lab_script(&["up", "--name", name, "--light", "--app-hosts", "14"]);
        if !up.status.success() {
            let _ = lab_script(&["down", "--name", name]);
            panic!("lab up --name {name} failed: {}", String::from_utf8_lossy(&up.stderr));
        }
        WideLab { lab: Some(other_lab(name).unwrap_or_else(|e| panic!("{e}"))), brought_up: Some(name.to_string()) }
    }

    /// The wide lab: the test's own lab when it is wide enough.
    fn or<'l>(&'l self, lab: &'l Lab) -> &'l Lab {
        self.lab.as_ref().unwrap_or(lab)
    }
}

impl Drop for WideLab {
    fn drop(&mut self) {
        if let Some(name) = &self.brought_up {
            let _ = lab_script(&["down", "--name", name]);
        }
    }
}

/// A scratch folder with a copy of the lab's known_hosts, an empty ssh config, and no agent.
struct Scratch {
    dir: TempDir,
}

impl Scratch {
    fn new(lab: &Lab) -> Scratch {
        let dir = tempfile::tempdir().unwrap();
        fs::copy(lab.var("LAB_KNOWN_HOSTS"), dir.path().join("known_hosts")).unwrap();
        fs::write(dir.path().join("ssh_config"), "").unwrap();
        Scratch { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn options(&self) -> ConnectOptions {
        ConnectOptions {
            accept_new_host_keys: false,
            ssh_config: Some(self.path("ssh_config")),
            agent_socket: Some(self.path("no-agent.sock")),
            verbose: false,
        }
    }

    fn host(&self, lab: &Lab, name: &str) -> Host {
        Host {
            name: name.to_string(),
            address: lab.addr(name).to_string(),
            private_address: lab.addr(name).to_string(),
            roles: vec![],
            ssh: SshSettings {
                user: Some("root".into()),
                port: Some(22),
                identity_file: Some(PathBuf::from(lab.var("LAB_SSH_KEY"))),
                identity_passphrase: None,
                known_hosts: Some(self.path("known_hosts")),
                accept_new_host_keys: Some(false),
                connect_timeout_seconds: 5,
                command_timeout_seconds: 120,
                jump: None,
            },
            instances: vec![],
        }
    }

    fn connect(&self, lab: &Lab, name: &str) -> Connection {
        Connection::open(&self.host(lab, name), &self.options()).unwrap_or_else(|e| panic!("{e}"))
    }
}

fn keygen(path: &Path, passphrase: &str) {
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", passphrase, "-C", "rcfleet-test", "-f"])
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
}

/// `SHA256:...` of the first key of a known_hosts or .pub file, as ssh-keygen prints it.
fn ssh_keygen_fingerprint(file: &Path, host: Option<&str>) -> String {
    let text = fs::read_to_string(file).unwrap();
    let line = text.lines().find(|l| host.is_none_or(|h| l.starts_with(&format!("{h} ")))).unwrap();
    let tmp = tempfile::NamedTempFile::new().unwrap();
    let fields: Vec<&str> = line.split_whitespace().collect();
    let key = if host.is_some() { fields[1..].join(" ") } else { line.to_string() };
    fs::write(tmp.path(), format!("{key}\n")).unwrap();
    let out = Command::new("ssh-keygen").arg("-lf").arg(tmp.path()).output().unwrap();
    String::from_utf8_lossy(&out.stdout).split_whitespace().nth(1).unwrap().to_string()
}

fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

fn text(argv: Argv, conn: &Connection) -> String {
    conn.run(&argv).unwrap_or_else(|e| panic!("{e}")).stdout_text().trim().to_string()
}

#[test]
fn known_host_connects_and_runs_a_command() {
    let Some(lab) = lab() else { return };
    let lab = &lab;
    let scratch = Scratch::new(lab);
    let conn = scratch.connect(lab, "db");
    assert_eq!(text(Argv::new("hostname"), &conn), "db");
    assert_eq!(text(Argv::new("echo").arg("it's $HOME; `id` | x"), &conn), "it's $HOME; `id` | x");
}

/// The lines sshd logged while `action` ran.
fn sshd_log_during(lab: &Lab, host: &str, action: impl FnOnce()) -> String {
    let log = lab.sshd_log(host);
    let before = fs::metadata(&log).map(|m| m.len()).unwrap_or(0) as usize;
    action();
    // sshd logs the closed connection when it notices; give it a moment.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let bytes = fs::read(&log).unwrap_or_default();
        let new = String::from_utf8_lossy(&bytes[before.min(bytes.len())..]).into_owned();
        if new.contains("Connection closed") || new.contains("Accepted") || Instant::now() > deadline {
            return new;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_changed_host_key_is_refused_before_authentication() {
    let Some(lab) = lab() else { return };
    let lab = &lab;
    let scratch = Scratch::new(lab);
    let addr = lab.addr("lb");
    let real = ssh_keygen_fingerprint(&scratch.path("known_hosts"), Some(addr));
    keygen(&scratch.path("impostor"), "");
    let impostor_pub = fs::read_to_string(scratch.path("impostor.pub")).unwrap();
    let impostor = ssh_keygen_fingerprint(&scratch.path("impostor.pub"), None);
    let original = fs::read_to_string(scratch.path("known_hosts")).unwrap();
    let tampered: Vec<String> = original
        .lines()
        .map(|l| {
            if l.starts_with(&format!("{addr} ")) {
                let key: Vec<&str> = impostor_pub.split_whitespace().take(2).collect();
                format!("{addr} {}", key.join(" "))
            } else {
                l.to_string()
            }
        })
        .collect();
    let line = tampered.iter().position(|l| l.starts_with(&format!("{addr} "))).unwrap() + 1;
    fs::write(scratch.path("known_hosts"), tampered.join("\n") + "\n").unwrap();

    let mut message = String::new();
    let log = sshd_log_during(lab, "lb", || {
        message = Connection::open(&scratch.host(lab, "lb"), &scratch.options()).err().expect("refused").to_string();
    });
    eprintln!("{message}\n--- sshd log ---\n{log}");
    assert!(message.contains("HOST KEY MISMATCH"), "{message}");
    assert!(message.contains(&real), "presented fingerprint {real} missing: {message}");
    assert!(message.contains(&impostor), "recorded fingerprint {impostor} missing: {message}");
    let file_line = format!("{} line {line}", scratch.path("known_hosts").display());
    assert!(message.contains(&file_line), "{file_line} missing: {message}");
    // Our key is authorized on the host, so any authentication attempt would have been accepted.
    assert!(!log.contains("Accepted"), "credentials were sent:\n{log}");
    assert!(!log.contains("authenticating user"), "authentication started:\n{log}");
    assert!(log.contains(&format!("Connection closed by {}", lab.var("LAB_GATEWAY"))), "{log}");
    assert!(log.contains("[preauth]"), "{log}");
}

#[test]
fn an_unknown_host_is_refused_unless_new_keys_are_accepted() {
    let Some(lab) = lab() else { return };
    let lab = &lab;
    let scratch = Scratch::new(lab);
    let addr = lab.addr("app1");
    let others: String = fs::read_to_string(scratch.path("known_hosts"))
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with(&format!("{addr} ")))
        .map(|l| format!("{l}\n"))
        .collect();
    let kept = format!("# my own comment, kept\n{others}");
    fs::write(scratch.path("known_hosts"), &kept).unwrap();
    let host = scratch.host(lab, "app1");

    let message = Connection::open(&host, &scratch.options()).err().expect("refused").to_string();
    assert!(message.contains("is not in") && message.contains("--accept-new-host-keys"), "{message}");
    assert!(message.starts_with("app1:"), "{message}");
    assert_eq!(fs::read_to_string(scratch.path("known_hosts")).unwrap(), kept, "refusal changed known_hosts");

    let accepting = ConnectOptions { accept_new_host_keys: true, ..scratch.options() };
    let conn = Connection::open(&host, &accepting).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(text(Argv::new("hostname"), &conn), "app1");
    let after = fs::read_to_string(scratch.path("known_hosts")).unwrap();
    let added = after.strip_prefix(&kept).expect("the file was appended to, not rewritten");
    assert_eq!(added.lines().count(), 1, "{added}");
    assert!(added.starts_with(&format!("{addr} ssh-ed25519 ")), "{added}");
    let real = fs::read_to_string(lab.var("LAB_KNOWN_HOSTS")).unwrap();
    assert!(real.contains(added.trim()), "recorded key differs from the host's: {added}");

    // Once recorded, the key is checked like any other, without the opt-in.
    let again = Connection::open(&host, &scratch.options()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(text(Argv::new("hostname"), &again), "app1");
}

struct Agent {
    pid: u32,
    socket: PathBuf,
}

impl Agent {
    fn start(dir: &Path, key: &Path) -> Agent {
        let socket = dir.join("agent.sock");
        let out = Command::new("ssh-agent").arg("-a").arg(&socket).arg("-s").output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let pid = text
            .split(';')
            .find_map(|part| part.trim().strip_prefix("SSH_AGENT_PID="))
            .and_then(|p| p.parse().ok())
            .expect("ssh-agent pid");
        let agent = Agent { pid, socket };
        let added = Command::new("ssh-add").arg("-q").arg(key).env("SSH_AUTH_SOCK", &agent.socket).status().unwrap();
        assert!(added.success());
        agent
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(self.pid.to_string()).status();
    }
}

#[test]
fn agent_and_key_file_authentication_work_and_a_wrong_key_fails_clearly() {
    let Some(lab) = lab() else { return };
    let lab = &lab;
    let scratch = Scratch::new(lab);

    // Agent only: the identity file named does not exist.
    let agent = Agent::start(scratch.dir.path(), Path::new(lab.var("LAB_SSH_KEY")));
    let mut host = scratch.host(lab, "app2");
    host.ssh.identity_file = Some(scratch.path("absent-key"));
    let options = ConnectOptions { agent_socket: Some(agent.socket.clone()), ..scratch.options() };
    let conn = Connection::open(&host, &options).unwrap_or_else(|e| panic!("agent: {e}"));
    assert_eq!(text(Argv::new("hostname"), &conn), "app2");
    drop(agent);

    // Key file only (no agent).
    let conn = scratch.connect(lab, "app2");
    assert_eq!(text(Argv::new("hostname"), &conn), "app2");

    // A key the host does not know.
    keygen(&scratch.path("stranger"), "");
    host.ssh.identity_file = Some(scratch.path("stranger"));
    let message = Connection::open(&host, &scratch.options()).err().expect("refused").to_string();
    assert!(message.contains("app2: authentication as root"), "{message}");
    assert!(message.contains(&scratch.path("stranger").display().to_string()), "{message}");
    assert!(message.contains("authorized_keys"), "{message}");

    // An encrypted key, its passphrase from a secret reference.
    keygen(&scratch.path("locked"), "correct horse");
    let public = fs::read_to_string(scratch.path("locked.pub")).unwrap();
    let authorized = lab.var("LAB_DIR").to_string() + "/authorized_keys";
    let before = fs::read_to_string(&authorized).unwrap();
    fs::write(&authorized, format!("{before}{public}")).unwrap();
    fs::write(scratch.path("passphrase"), "correct horse\n").unwrap();
    host.ssh.identity_file = Some(scratch.path("locked"));
    host.ssh.identity_passphrase = Some(SecretRef::File(scratch.path("passphrase")));
    let unlocked = Connection::open(&host, &scratch.options());
    host.ssh.identity_passphrase = None;
    let locked = Connection::open(&host, &scratch.options());
    fs::write(&authorized, before).unwrap();
    assert_eq!(text(Argv::new("hostname"), &unlocked.unwrap_or_else(|e| panic!("passphrase: {e}"))), "app2");
    let message = locked.err().expect("no passphrase").to_string();
    assert!(message.contains("identity_passphrase"), "{message}");
}

#[test]
fn big_output_on_both_streams_stdin_and_exit_statuses() {
    let Some(lab) = lab() else { return };
    let lab = &lab;
    let scratch = Scratch::new(lab);
    let conn = scratch.connect(lab, "db");
    const MIB10: usize = 10 * 1024 * 1024;
    // stderr first: a reader that waits for stdout's end first would stall on the full window.
    let script = "head -c 10485760 /dev/zero | tr '\\0' e >&2; head -c 10485760 /dev/zero | tr '\\0' o";
    let started = Instant::now();
    let out = conn
        .exec(&Argv::script(script, &[]), ExecOptions { timeout: Some(Duration::from_secs(120)), ..Default::default() })
        .unwrap_or_else(|e| panic!("{e}"));
    eprintln!("10 MiB + 10 MiB in {:?}", started.elapsed());
    assert_eq!(out.status, 0);
    assert_eq!(out.stdout.len(), MIB10);
    assert_eq!(out.stderr.len(), MIB10);
    assert!(out.stdout.iter().all(|b| *b == b'o') && out.stderr.iter().all(|b| *b == b'e'));

    // Both at once, interleaved.
    let both = "head -c 10485760 /dev/zero >&2 & head -c 10485760 /dev/zero; wait";
    let out = conn.exec(&Argv::script(both, &[]), ExecOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((out.stdout.len(), out.stderr.len(), out.status), (MIB10, MIB10, 0));
    // A background writer still busy after the command returned: the status is still found.
    let detached = "(sleep 0.2; head -c 1048576 /dev/zero >&2) & exit 5";
    let out = conn.exec(&Argv::script(detached, &[]), ExecOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((out.stderr.len(), out.status), (1048576, 5));

    let status = |argv: Argv| conn.exec(&argv, ExecOptions::default()).unwrap_or_else(|e| panic!("{e}")).status;
    assert_eq!(status(Argv::new("true")), 0);
    assert_eq!(status(Argv::new("false")), 1);
    assert_eq!(status(Argv::script("exit 3", &[])), 3);
    // Killed by SIGKILL inside the command, and the remote shell itself killed (exit-signal).
    assert_eq!(status(Argv::script("kill -9 $$", &[])), 137);
    assert_eq!(status(Argv::script("kill -9 $PPID", &[])), 137);

    // stdin is streamed, then closed.
    let data: Vec<u8> = (0..20 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let mut reader: &[u8] = &data;
    let out = conn
        .exec(&Argv::new("sha256sum"), ExecOptions { stdin: Some(&mut reader), ..Default::default() })
        .unwrap();
    assert_eq!(out.stdout_text().split_whitespace().next().unwrap(), sha256_hex(&data));

    // A command that outlives its timeout is an error, and the connection stays usable.
    let err = conn
        .exec(&Argv::new("sleep").arg("30"), ExecOptions { timeout: Some(Duration::from_secs(1)), ..Default::default() })
        .expect_err("timed out")
        .to_string();
    assert!(err.contains("db: `sleep 30`: no result within 1s (this step's limit)"), "{err}");
    assert_eq!(text(Argv::new("hostname"), &conn), "db");

    // run() turns a failure into an error naming the host, the command and its stderr.
    let err = conn.run(&Argv::script("echo boom >&2; exit 4", &[])).err().unwrap().to_string();
    assert!(err.contains("db: `echo boom >&2; exit 4…`") && err.contains("exited with status 4") && err.contains("boom"), "{err}");
}

#[test]
fn upload_is_atomic_sets_mode_and_skips_unchanged_files() {
    let Some(lab) = lab() else { return };
    let lab = &lab;
    let scratch = Scratch::new(lab);
    let conn = scratch.connect(lab, "app1");
    let dir = "/tmp/rcfleet-remote-test/upload dir";
    conn.run(&Argv::new("rm").args(["-rf", "/tmp/rcfleet-remote-test"])).unwrap();
    let path = format!("{dir}/secret.env");

    assert_eq!(conn.upload(&path, b"TOKEN=1\n", 0o600, None).unwrap(), Uploaded::Written);
    assert_eq!(text(Argv::new("stat").args(["-c", "%a %U", &path]), &conn), "600 root");
    assert_eq!(text(Argv::new("cat").arg(&path), &conn), "TOKEN=1");
    assert_eq!(conn.upload(&path, b"TOKEN=1\n", 0o600, None).unwrap(), Uploaded::Unchanged);
    assert_eq!(conn.upload(&path, b"TOKEN=1\n", 0o644, Some("nobody")).unwrap(), Uploaded::Written);
    assert_eq!(text(Argv::new("stat").args(["-c", "%a %U", &path]), &conn), "644 nobody");
    assert_eq!(conn.upload(&path, b"TOKEN=1\n", 0o644, Some("nobody")).unwrap(), Uploaded::Unchanged);

    // Atomicity: a reader on the host, looping while the file is replaced again and again,
    // only ever sees one whole version or the other.
    let big_a = vec![b'a'; 2 * 1024 * 1024];
    let t = Instant::now();
    conn.upload(&format!("{dir}/timing"), &big_a, 0o644, None).unwrap();
    eprintln!("upload 2 MiB: {:?}", t.elapsed());
    let big_b = vec![b'b'; 2 * 1024 * 1024];
    let file = format!("{dir}/big");
    conn.upload(&file, &big_a, 0o644, None).unwrap();
    let reader_conn = scratch.connect(lab, "app1");
    let stop = format!("{dir}/stop");
    let reads = std::thread::scope(|scope| {
        let reader = scope.spawn(|| {
            let script = r#"n=0; while [ ! -e "$2" ]; do sha256sum < "$1" | cut -d' ' -f1; n=$((n+1)); done"#;
            reader_conn.run(&Argv::script(script, &[&file, &stop])).unwrap().stdout_text()
        });
        for round in 0..12 {
            let content = if round % 2 == 0 { &big_b } else { &big_a };
            assert_eq!(conn.upload(&file, content, 0o644, None).unwrap(), Uploaded::Written);
        }
        conn.run(&Argv::new("touch").arg(&stop)).unwrap();
        reader.join().unwrap()
    });
    let (hash_a, hash_b) = (sha256_hex(&big_a), sha256_hex(&big_b));
    let seen: Vec<&str> = reads.lines().collect();
    eprintln!("reader read the file {} times during 12 uploads", seen.len());
    assert!(seen.len() > 12, "the reader barely ran: {}", seen.len());
    for hash in &seen {
        assert!(*hash == hash_a || *hash == hash_b, "a reader saw a partial file (sha256 {hash})");
    }
    assert!(seen.contains(&hash_a.as_str()) && seen.contains(&hash_b.as_str()));
    let leftovers = text(Argv::script("ls -A \"$1\" | grep rcfleet-upload || true", &[dir]), &conn);
    assert_eq!(leftovers, "", "temporary files left behind");
    conn.run(&Argv::new("rm").args(["-rf", "/tmp/rcfleet-remote-test"])).unwrap();
}

// The guard only keeps lab tests from overlapping; no task in this runtime takes it.
#[allow(clippy::await_holding_lock)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_api_through_the_tunnel_finds_a_compose_container_and_reads_its_health() {
    let Some(lab) = lab() else { return };
    let lab = &lab;
    let scratch = Scratch::new(lab);
    let conn = scratch.connect(lab, "lb");
    let cli = conn.compose_cli().unwrap();
    eprintln!("lb has compose {cli:?}");
    let dir = "/tmp/rcfleet-remote-compose";
    let project = "rcfleet-remote-test";
    let image = format!("{}/nats:{}", lab.var("LAB_REGISTRY"), lab.var("LAB_TAG_NATS"));
    let compose = format!(
        "version: \"2.4\"\nservices:\n  probe:\n    image: {image}\n    entrypoint: [\"/bin/sleep\", \"600\"]\n    \
         healthcheck:\n      test: [\"CMD\", \"/bin/true\"]\n      interval: 1s\n      timeout: 2s\n      retries: 3\n"
    );
    conn.upload(&format!("{dir}/compose.yml"), compose.as_bytes(), 0o644, None).unwrap();
    let compose = conn.compose(dir, project).unwrap();
    conn.run(&compose.up(&[])).unwrap_or_else(|e| panic!("{e}"));

    // The Engine API through the tunnel, as `logs` and `status` use it: the container found
    // by its compose labels, and its health.
    let docker = conn.docker().await.unwrap_or_else(|e| panic!("{e}"));
    let find = |service: &str| {
        let labels = vec![format!("com.docker.compose.project={project}"), format!("com.docker.compose.service={service}")];
        let filters = std::collections::HashMap::from([("label".to_string(), labels)]);
        docker.list_containers(Some(bollard::query_parameters::ListContainersOptionsBuilder::default().all(true).filters(&filters).build()))
    };
    let containers = find("probe").await.unwrap();
    assert_eq!(containers.len(), 1, "{containers:?}");
    let id = containers[0].id.clone().unwrap();
    assert!(find("other").await.unwrap().is_empty());
    let deadline = Instant::now() + Duration::from_secs(60);
    let health = loop {
        let inspect = docker.inspect_container(&id, None).await.unwrap();
        let health = inspect.state.and_then(|s| s.health).and_then(|h| h.status);
        if health == Some(bollard::models::HealthStatusEnum::HEALTHY) || Instant::now() > deadline {
            break health;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(health, Some(bollard::models::HealthStatusEnum::HEALTHY));
    let version = docker.version().await.unwrap();
    eprintln!("engine {:?}, API {:?}", version.version, version.api_version);
    conn.run(&compose.down()).unwrap_or_else(|e| panic!("{e}"));
    assert!(find("probe").await.unwrap().is_empty());
    conn.run(&Argv::new("rm").args(["-rf", dir])).unwrap();
}

#[allow(clippy::await_holding_lock)]
#[tokio::test]
async fn http_through_a_tcp_tunnel_reaches_a_service_on_the_host_loopback() {
    let Some(lab) = lab() else { return };
    let lab = &lab;
    let scratch = Scratch::new(lab);
    let conn = scratch.connect(lab, "app2");
    // A one-shot HTTP server bound to the host's 127.0.0.1, like Traefik's API.
    let server = r#"import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 18080))
s.listen(1)
open(sys.argv[2], "w").close()
c, _ = s.accept()
c.recv(65536)
body = '{"host": "%s"}' % sys.argv[1]
c.sendall(("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body)).encode())
c.close()
"#;
    let script = r#"rm -f /tmp/rcfleet-http-ready
(python3 -c "$1" "$(hostname)" /tmp/rcfleet-http-ready </dev/null >/dev/null 2>&1 &)
for i in $(seq 50); do [ -e /tmp/rcfleet-http-ready ] && exit 0; sleep 0.1; done; exit 1"#;
    conn.run(&Argv::script(script, &[server])).unwrap_or_else(|e| panic!("{e}"));
    let http = conn.http("127.0.0.1", 18080).unwrap();
    #[derive(serde::Deserialize)]
    struct Reply {
        host: String,
    }
    let reply: Reply = http.get_json("/api/rawdata").await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(reply.host, "app2");
    // Nothing listens any more: the error names the host and the remote endpoint.
    let err = http.get("/again").await.err().unwrap().to_string();
    assert!(err.contains("app2: GET http://127.0.0.1:18080/again"), "{err}");
}

#[test]
fn unix_socket_tunnel_is_private_and_removed_on_drop() {
    let Some(lab) = lab() else { return };
    let lab = &lab;
    let scratch = Scratch::new(lab);
    let conn = scratch.connect(lab, "db");
    let tunnel = conn.forward_unix("/var/run/docker.sock").unwrap();
    let LocalEndpoint::Unix(path) = tunnel.local().clone() else { panic!() };
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(path.parent().unwrap()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
    let mut stream = std::os::unix::net::UnixStream::connect(&path).unwrap();
    use std::io::Write;
    stream.write_all(b"GET /_ping HTTP/1.0\r\n\r\n").unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.0 200") && answer.ends_with("OK"), "{answer}");
    drop(tunnel);
    assert!(!path.exists() && !path.parent().unwrap().exists());
}

/// Blocks TCP from this (root) namespace to one lab address while alive; only that rule.
struct Blocked {
    rule: Vec<String>,
}

impl Blocked {
    fn new(addr: &str) -> Blocked {
        let rule: Vec<String> = ["OUTPUT", "-d", addr, "-p", "tcp", "-m", "comment", "--comment", "rcfleet-remote-test", "-j", "REJECT"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let status = Command::new("iptables").arg("-I").args(&rule).status().expect("iptables");
        assert!(status.success(), "cannot add the iptables rule");
        Blocked { rule }
    }
}

impl Drop for Blocked {
    fn drop(&mut self) {
        let _ = Command::new("iptables").arg("-D").args(&self.rule).status();
    }
}

#[test]
fn a_blocked_host_is_reached_through_the_jump_host() {
    let Some(lab) = lab() else { return };
    let lab = &lab;
    let scratch = Scratch::new(lab);
    let target = lab.hosts().into_iter().rfind(|h| h.starts_with("app")).unwrap();
    let target = target.as_str();
    let mut host = scratch.host(lab, target);
    host.ssh.connect_timeout_seconds = 2;
    let _blocked = Blocked::new(lab.addr(target));

    let direct = Connection::open(&host, &scratch.options()).err().expect("blocked").to_string();
    assert!(direct.contains(&format!("{target}: cannot connect to {}:22", lab.addr(target))), "{direct}");

    host.ssh.jump = Some(JumpHost { user: Some("root".into()), address: lab.addr("lb").to_string(), port: Some(22) });
    let conn = Connection::open(&host, &scratch.options()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(text(Argv::new("hostname"), &conn), target);
    let out = conn
        .exec(&Argv::script("head -c 3000000 /dev/zero; head -c 3000000 /dev/zero >&2", &[]), ExecOptions::default())
        .unwrap();
    assert_eq!((out.stdout.len(), out.stderr.len()), (3_000_000, 3_000_000));
    assert_eq!(conn.upload("/tmp/rcfleet-jump-test", b"via lb\n", 0o600, None).unwrap(), Uploaded::Written);
    assert_eq!(text(Argv::new("cat").arg("/tmp/rcfleet-jump-test"), &conn), "via lb");
    conn.run(&Argv::new("rm").arg("/tmp/rcfleet-jump-test")).unwrap();

    // The same through ~/.ssh/config: an alias with HostName and ProxyJump.
    fs::write(
        scratch.path("ssh_config"),
        format!("Host {target}.behind-lb\n  HostName {}\n  ProxyJump root@{}\n", lab.addr(target), lab.addr("lb")),
    )
    .unwrap();
    let mut aliased = scratch.host(lab, target);
    aliased.address = format!("{target}.behind-lb");
    let conn = Connection::open(&aliased, &scratch.options()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(text(Argv::new("hostname"), &conn), target);
    drop(conn);

    // The jump host's key is verified too.
    let known = fs::read_to_string(scratch.path("known_hosts")).unwrap();
    let lb = format!("{} ", lab.addr("lb"));
    let without_lb: String = known.lines().filter(|l| !l.starts_with(&lb)).map(|l| format!("{l}\n")).collect();
    fs::write(scratch.path("known_hosts"), without_lb).unwrap();
    let err = Connection::open(&host, &scratch.options()).err().expect("jump host unknown").to_string();
    assert!(err.contains(&format!("the host key of {} is not in", lab.addr("lb"))), "{err}");
}

#[test]
fn sixteen_hosts_at_once() {
    let Some(lab) = lab() else { return };
    let lab = &lab;
    let wide = WideLab::get(lab);
    let lab = wide.or(lab);
    let scratch = Scratch::new(lab);
    let names = lab.hosts();
    let names = &names[..16];
    let one = Instant::now();
    let conn = scratch.connect(lab, &names[0]);
    conn.run(&Argv::new("sleep").arg("1")).unwrap();
    let one = one.elapsed();

    let running = AtomicUsize::new(0);
    let peak = AtomicUsize::new(0);
    let all = Instant::now();
    let results = fan_out(names, 16, |n| n.clone(), |name| {
        let conn = Connection::open(&scratch.host(lab, name), &scratch.options())?;
        peak.fetch_max(running.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
        let out = conn.run(&Argv::script("sleep 1; hostname", &[]));
        running.fetch_sub(1, Ordering::SeqCst);
        Ok(out?.stdout_text().trim().to_string())
    });
    let all = all.elapsed();
    let connect_only = Instant::now();
    let connected = fan_out(names, 16, |n| n.clone(), |name| Connection::open(&scratch.host(lab, name), &scratch.options()));
    let connect_only = connect_only.elapsed();
    assert!(connected.iter().all(|(_, c)| c.is_ok()));
    drop(connected);
    eprintln!("16 connections alone: {connect_only:?}");
    eprintln!("one host: {one:?}; 16 hosts at once: {all:?}; peak concurrency {}", peak.load(Ordering::SeqCst));
    for (name, result) in &results {
        assert_eq!(result.as_ref().unwrap_or_else(|e| panic!("{e}")), name);
    }
    assert!(peak.load(Ordering::SeqCst) >= 12, "the hosts were not reached concurrently");
}

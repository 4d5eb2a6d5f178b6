//! Shared by the lab tests of rcfleet's commands: finds the lab, runs rcfleet against it, and
//! looks at the hosts the way an operator would (SSH into the lab host, HTTP through Traefik).
//!
//! Lab tests run when `RCFLEET_LAB=1` (set by `tests/run`, which builds the lab); without it
//! they print why they did not run. With it, a missing lab is a failure, never a pass.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub struct Lab {
    pub name: String,
    pub vars: BTreeMap<String, String>,
    /// Tests of one binary share the lab: they take turns (`None` for a second lab used
    /// during a turn already held, see `other_lab`).
    _turn: Option<MutexGuard<'static, ()>>,
}

static TURN: Mutex<()> = Mutex::new(());

/// The lab to test against, or `None` (with a printed reason) when lab tests are not asked for.
pub fn lab() -> Option<Lab> {
    if std::env::var("RCFLEET_LAB").as_deref() != Ok("1") {
        eprintln!("lab test not run: set RCFLEET_LAB=1 with a lab up (tests/run does both)");
        return None;
    }
    let name = std::env::var("RCFLEET_LAB_NAME").unwrap_or_else(|_| "rcfleet".into());
    let vars = lab_vars(&name).unwrap_or_else(|e| panic!("{e}; bring it up with: tests/lab/lab up --name {name}"));
    let turn = TURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    Some(Lab { name, vars, _turn: Some(turn) })
}

/// Another lab, by name, for a test that already holds its turn (e.g. a wide light lab).
pub fn other_lab(name: &str) -> Result<Lab, String> {
    Ok(Lab { name: name.to_string(), vars: lab_vars(name)?, _turn: None })
}

/// The `LAB_*` variables of lab `name` (`tests/lab/lab env`).
fn lab_vars(name: &str) -> Result<BTreeMap<String, String>, String> {
    let output = Command::new(repo().join("tests/lab/lab")).args(["env", "--name", name]).output().expect("run tests/lab/lab env");
    if !output.status.success() {
        return Err(format!("lab {name} is not up: {}", String::from_utf8_lossy(&output.stderr).trim()));
    }
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
        .collect())
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn rcfleet(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rcfleet")).args(args).output().expect("run rcfleet")
}

pub fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

impl Lab {
    pub fn var(&self, key: &str) -> &str {
        self.vars.get(key).unwrap_or_else(|| panic!("lab env has no {key}"))
    }

    pub fn inventory(&self) -> &str {
        self.var("LAB_INVENTORY")
    }

    pub fn addr(&self, host: &str) -> &str {
        self.var(&format!("LAB_ADDR_{}", host.to_uppercase()))
    }

    pub fn hosts(&self) -> Vec<String> {
        self.var("LAB_HOSTS").split_whitespace().map(str::to_string).collect()
    }

    /// The log of a host's sshd (on this machine, in the lab's folder).
    pub fn sshd_log(&self, host: &str) -> PathBuf {
        Path::new(self.var("LAB_DIR")).join("hosts").join(host).join("sshd.log")
    }

    /// The pid of a host's dockerd, from the lab's pid file (`tests/lab/lab status` prints it).
    pub fn dockerd_pid(&self, host: &str) -> u32 {
        self.daemon_pid(host, "dockerd")
    }

    /// The pid of a host's sshd, from the lab's pid file.
    pub fn sshd_pid(&self, host: &str) -> u32 {
        self.daemon_pid(host, "sshd")
    }

    fn daemon_pid(&self, host: &str, daemon: &str) -> u32 {
        let status = self.exec_lab(&["status"]);
        let text = text(&status);
        let key = format!("{daemon}=");
        text.lines()
            .map(|line| line.split_whitespace().collect::<Vec<_>>())
            .find(|words| words.first() == Some(&host))
            .and_then(|words| words.iter().find_map(|w| w.strip_prefix(key.as_str())).and_then(|pid| pid.parse().ok()))
            .unwrap_or_else(|| panic!("no {daemon} pid for {host} in `lab status`:\n{text}"))
    }

    /// Runs a shell command on a lab host over SSH (strict host keys), returning its output.
    pub fn sh(&self, host: &str, command: &str) -> Output {
        Command::new("ssh")
            .args(["-q", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o"])
            .arg(format!("UserKnownHostsFile={}", self.var("LAB_KNOWN_HOSTS")))
            .args(["-i", self.var("LAB_SSH_KEY")])
            .arg(format!("root@{}", self.addr(host)))
            .arg(command)
            .output()
            .expect("run ssh")
    }

    /// Like `sh`, but the command must succeed; returns its stdout.
    pub fn run(&self, host: &str, command: &str) -> String {
        let output = self.sh(host, command);
        assert!(output.status.success(), "{host}: `{command}` failed: {}", text(&output));
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Runs a command inside a lab host's namespaces from this machine (`lab exec`), e.g. a
    /// firewall rule that SSH itself must not be able to undo.
    pub fn exec(&self, host: &str, args: &[&str]) -> Output {
        Command::new(repo().join("tests/lab/lab"))
            .args(["exec", "--name", &self.name, host, "--"])
            .args(args)
            .output()
            .expect("run tests/lab/lab exec")
    }

    /// Runs a lab command on this lab, e.g. `["partition", "app2"]`.
    pub fn exec_lab(&self, args: &[&str]) -> Output {
        let (command, rest) = args.split_first().expect("a lab command");
        Command::new(repo().join("tests/lab/lab"))
            .arg(command)
            .args(["--name", &self.name])
            .args(rest)
            .output()
            .expect("run tests/lab/lab")
    }

    /// Removes every trace of an earlier fleet from every host: containers, volumes, files.
    pub fn reset_fleet(&self) {
        for host in self.hosts() {
            self.run(
                &host,
                "docker ps -aq --filter label=io.rcfleet.fleet | xargs -r docker rm -f >/dev/null; \
                 docker volume ls -q | grep -E '^lab-' | xargs -r docker volume rm >/dev/null; rm -rf /opt/rcfleet/lab",
            );
        }
    }

    /// `container id -> (unit, started at)` of every rcfleet container on every host.
    pub fn containers(&self) -> BTreeMap<String, (String, String)> {
        let mut all = BTreeMap::new();
        for host in self.hosts() {
            let out = self.run(
                &host,
                "for c in $(docker ps -aq --filter label=io.rcfleet.fleet); do \
                 docker inspect --format '{{.Id}} {{index .Config.Labels \"io.rcfleet.unit\"}} {{.State.StartedAt}}' $c; done",
            );
            for line in out.lines() {
                let parts: Vec<&str> = line.split_whitespace().collect();
                if let [id, unit, started] = parts[..] {
                    all.insert(id.to_string(), (format!("{host}/{unit}"), started.to_string()));
                }
            }
        }
        all
    }

    /// The `com.docker.compose.version` labels of rcfleet's containers on every host: the
    /// version of the Compose that created them (v1 writes 1.x, v2 2.x).
    pub fn compose_versions(&self) -> std::collections::BTreeSet<String> {
        let mut all = std::collections::BTreeSet::new();
        for host in self.hosts() {
            let out = self.run(
                &host,
                "docker ps -a --filter label=io.rcfleet.fleet --format '{{.Label \"com.docker.compose.version\"}}'",
            );
            all.extend(out.lines().map(str::to_string));
        }
        all
    }

    /// `path -> modification time` of every file rcfleet keeps on every host.
    pub fn deployed_files(&self) -> BTreeMap<String, String> {
        let mut all = BTreeMap::new();
        for host in self.hosts() {
            // Not the audit log, nor the node exporter's text files (the MongoDB probe rewrites
            // its metric every 15 s): what rcfleet writes only.
            let out = self.run(
                &host,
                "find /opt/rcfleet -type f ! -name audit.log ! -path '*/textfile/*' -exec stat -c '%n %Y.%Z' {} + 2>/dev/null || true",
            );
            for line in out.lines() {
                if let Some((path, time)) = line.rsplit_once(' ') {
                    all.insert(format!("{host}:{path}"), time.to_string());
                }
            }
        }
        all
    }

    /// One plain HTTP GET through Traefik with the workspace's Host header: (status, body).
    pub fn get_through_traefik(&self, path: &str) -> std::io::Result<(u16, String)> {
        http_get(&format!("{}:80", self.addr("lb")), self.var("LAB_DOMAIN"), path)
    }
}

/// A minimal HTTP/1.0 GET (no proxy, no redirects, no chunked bodies), enough for checks
/// against the lab.
pub fn http_get(address: &str, host: &str, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&address.parse().expect("socket address"), Duration::from_secs(3))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Ok((status, body))
}

/// Waits until `check` is true or `seconds` pass; returns whether it became true.
pub fn eventually(seconds: u64, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    loop {
        if check() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

pub fn json(output: &Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(output)))
}

pub fn write_inventory(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("inventory.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// A copy of the lab's inventory in `dir` at `release`, with some `key = value` lines of its
/// tables changed (e.g. `("drain_seconds", "6")`). The lab's own file is never changed by tests.
/// Rocket.Chat 7.x fleets get MongoDB 7.0 (`mongodb.version`, which also picks the lab's
/// `7.0-ubi8` image): 7.x does not run on the lab's default 8.2.
pub fn inventory_at(lab: &Lab, dir: &Path, release: &str, settings: &[(&str, &str)]) -> PathBuf {
    let mut settings = settings.to_vec();
    if release.starts_with("7.") && !settings.iter().any(|(key, _)| *key == "version") {
        settings.push(("version", "\"7.0\""));
    }
    let original = std::fs::read_to_string(lab.inventory()).unwrap();
    let lines: Vec<String> = original
        .lines()
        .map(|line| {
            let key = line.split(" = ").next().unwrap_or_default();
            if key == "release" {
                format!("release = \"{release}\"")
            } else if let Some((_, value)) = settings.iter().find(|(k, _)| *k == key) {
                format!("{key} = {value}")
            } else {
                line.to_string()
            }
        })
        .collect();
    write_inventory(dir, &(lines.join("\n") + "\n"))
}

/// The version every instance of the lab fleet reports in `rocketchat_info`, host by host.
/// An instance opens its metrics port after it is ready (Rocket.Chat configures it once its
/// settings settle), so a port that refuses is asked again for up to 30 s.
pub fn versions(lab: &Lab) -> Vec<String> {
    let mut versions = Vec::new();
    for host in ["app1", "app2", "app3"] {
        for port in [9458, 9459] {
            // On the spare port (1000 above) after a start-first upgrade moved it.
            let ask = || {
                http_get(&format!("{}:{port}", lab.addr(host)), lab.addr(host), "/metrics")
                    .or_else(|_| http_get(&format!("{}:{}", lab.addr(host), port + 1000), lab.addr(host), "/metrics"))
            };
            let deadline = Instant::now() + Duration::from_secs(30);
            let mut answer = ask();
            while answer.is_err() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(250));
                answer = ask();
            }
            let (_, body) = answer.unwrap_or_else(|e| panic!("metrics of {host}:{port}: {e}"));
            let line = body.lines().find(|l| l.starts_with("rocketchat_info{")).expect("rocketchat_info").to_string();
            versions.push(line.split("version=\"").nth(1).and_then(|v| v.split('"').next()).unwrap().to_string());
        }
    }
    versions
}

/// Traefik's servers for the Rocket.Chat service (url -> UP/DOWN), read from its API on lb.
pub fn traefik_servers(lab: &Lab) -> serde_json::Map<String, serde_json::Value> {
    let body = lab.run("lb", "curl -s http://127.0.0.1:8080/api/http/services/rocketchat@file");
    let service: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    service["serverStatus"].as_object().cloned().unwrap_or_default()
}

/// Every server Traefik lists answers its readiness check now.
pub fn traefik_lists_only_ready_instances(lab: &Lab) {
    let servers = traefik_servers(lab);
    assert!(!servers.is_empty(), "Traefik lists no server");
    for url in servers.keys() {
        let address = url.trim_start_matches("http://");
        let ready = http_get(address, address, "/readyz").map(|(status, _)| status == 200).unwrap_or(false);
        assert!(ready, "Traefik lists {url}, which is not ready; servers: {servers:?}");
    }
}

pub fn lock_is_free(lab: &Lab) {
    assert!(lab.sh("db", "test ! -e /opt/rcfleet/lab/deploy.lock").status.success(), "the deploy lock was left behind");
}

/// Requests through Traefik, one after another, until stopped: (succeeded, failed).
pub struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicUsize>,
    failed: Arc<AtomicUsize>,
    thread: Option<JoinHandle<Vec<String>>>,
}

impl Load {
    pub fn start(lab: &Lab) -> Load {
        let (stop, ok, failed) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let address = format!("{}:80", lab.addr("lb"));
        let domain = lab.var("LAB_DOMAIN").to_string();
        let (s, o, f) = (stop.clone(), ok.clone(), failed.clone());
        let thread = std::thread::spawn(move || {
            let mut errors = Vec::new();
            // Bounded: at most 10 minutes, whatever happens to the test.
            let deadline = std::time::Instant::now() + Duration::from_secs(600);
            while !s.load(Ordering::SeqCst) && std::time::Instant::now() < deadline {
                match http_get(&address, &domain, "/") {
                    Ok((200, _)) => {
                        o.fetch_add(1, Ordering::SeqCst);
                    }
                    other => {
                        f.fetch_add(1, Ordering::SeqCst);
                        if errors.len() < 10 {
                            errors.push(format!("{other:?}"));
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            errors
        });
        Load { stop, ok, failed, thread: Some(thread) }
    }

    /// Stops the load; returns (succeeded, failed, first errors).
    pub fn finish(mut self) -> (usize, usize, Vec<String>) {
        self.stop.store(true, Ordering::SeqCst);
        let errors = self.thread.take().unwrap().join().unwrap();
        (self.ok.load(Ordering::SeqCst), self.failed.load(Ordering::SeqCst), errors)
    }
}

/// rcfleet running in the background, its stderr lines readable as they come.
pub struct Running {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Running {
    pub fn start(args: &[&str]) -> Running {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_rcfleet"))
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (send, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufRead::lines(std::io::BufReader::new(stderr)).map_while(Result::ok) {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        Running { child, lines, seen: Vec::new() }
    }

    /// Waits (at most `seconds`) for a stderr line containing `text`.
    pub fn wait_for(&mut self, text: &str, seconds: u64) {
        let deadline = std::time::Instant::now() + Duration::from_secs(seconds);
        while std::time::Instant::now() < deadline {
            if let Ok(line) = self.lines.recv_timeout(Duration::from_millis(200)) {
                let found = line.contains(text);
                self.seen.push(line);
                if found {
                    return;
                }
            }
        }
        panic!("no line with {text:?} within {seconds} s:\n{}", self.seen.join("\n"));
    }

    pub fn signal(&self, signal: &str) {
        let status = std::process::Command::new("kill").args([&format!("-{signal}"), &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
    }

    /// Waits for the end (bounded); returns the exit code and everything it printed.
    pub fn finish(mut self, seconds: u64) -> (Option<i32>, String) {
        let deadline = std::time::Instant::now() + Duration::from_secs(seconds);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("rcfleet did not finish within {seconds} s:\n{}", self.seen.join("\n"));
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        self.seen.extend(self.lines.try_iter());
        let mut stdout = String::new();
        use std::io::Read;
        self.child.stdout.take().unwrap().read_to_string(&mut stdout).unwrap();
        (status.code(), format!("{stdout}\n{}", self.seen.join("\n")))
    }
}

/// The real mongosh on this machine (`LAB_MONGOSH`), connected to the database host's MongoDB,
/// `script` on its stdin (`--file /dev/stdin`: script mode).
pub fn mongosh(lab: &Lab, script: &str) -> Output {
    let uri = format!("mongodb://{}:27017/?directConnection=true", lab.addr("db"));
    let mut child = Command::new(lab.var("LAB_MONGOSH"))
        .args(["--quiet", &uri, "--file", "/dev/stdin"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run the lab's mongosh");
    child.stdin.take().unwrap().write_all(script.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

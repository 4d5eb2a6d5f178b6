//! Security defaults and "no secret in any output", against the lab (issue 8).
//!
//! One fleet is brought up from an inventory whose secrets are distinctive: references to
//! environment variables and files (`S3CRET-...-4711`) and the values rcfleet generates (read
//! with `rcfleet secrets show` only to know what to look for). Then every command a user runs
//! — plan, up, up again, status --json, logs, add-instance, upgrade (success and failure),
//! secrets list — and several error paths are run, and their stdout and stderr, the local run
//! logs and every host's audit log are searched for every secret, raw and URI-encoded: zero
//! occurrences. On the way, the defaults themselves are checked on the hosts: MongoDB refuses
//! clients without (or with wrong) credentials, NATS refuses a CONNECT without the password,
//! Grafana takes only the inventory's password, secret files are 0600, and no secret is on
//! any process' command line.

mod lab_support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use lab_support::*;

const GRAFANA: &str = "S3CRET-grafana-4711";
const MONGO_APP: &str = "S3CRET-mongo:app@4711";
const MAIL: &str = "smtp://S3CRET-mail-4711@mail.lab.test";
const LICENSE: &str = "S3CRET-license-4711";
const WRONG_ADMIN: &str = "S3CRET-wrong-admin-4711";
const DOLLAR: &str = "S3CRET-dollar$4711";

/// Everything rcfleet printed or wrote where people look, per command.
struct Transcript {
    dir: PathBuf,
    inventory: PathBuf,
    outputs: Vec<(String, String)>,
}

impl Transcript {
    /// Runs rcfleet with the secrets in its environment; returns the output and keeps it.
    fn run(&mut self, args: &[&str], extra_env: &[(&str, &str)]) -> Output {
        let inventory = self.inventory.to_string_lossy().into_owned();
        let mut command = Command::new(env!("CARGO_BIN_EXE_rcfleet"));
        command.args(["-i", &inventory]).args(args);
        command.env("RCFLEET_SEC_GRAFANA", GRAFANA).env("RCFLEET_SEC_MAIL", MAIL).env("RCFLEET_SEC_LICENSE", LICENSE);
        for (key, value) in extra_env {
            command.env(key, value);
        }
        let output = command.output().expect("run rcfleet");
        self.outputs.push((format!("rcfleet {}", args.join(" ")), text(&output)));
        output
    }

    /// Like `run`, but the exit code must be `code`.
    fn expect(&mut self, code: i32, args: &[&str], extra_env: &[(&str, &str)]) -> String {
        let output = self.run(args, extra_env);
        let said = text(&output);
        assert_eq!(output.status.code(), Some(code), "rcfleet {}:\n{said}", args.join(" "));
        said
    }

    /// A secret's value, printed on request; this output is the one place it may appear.
    fn secret(&self, name: &str) -> String {
        let inventory = self.inventory.to_string_lossy().into_owned();
        let output = Command::new(env!("CARGO_BIN_EXE_rcfleet"))
            .args(["-i", &inventory, "secrets", "show", name])
            .env("RCFLEET_SEC_GRAFANA", GRAFANA)
            .env("RCFLEET_SEC_MAIL", MAIL)
            .env("RCFLEET_SEC_LICENSE", LICENSE)
            .output()
            .expect("run rcfleet secrets show");
        assert!(output.status.success(), "secrets show {name}: {}", text(&output));
        String::from_utf8_lossy(&output.stdout).trim_end_matches('\n').to_string()
    }
}

/// The lab's inventory with distinctive secret references, in a folder of its own (so its
/// `.rcfleet/logs` hold only this test's runs).
fn inventory(lab: &Lab, dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(lab.inventory()).unwrap();
    std::fs::write(dir.join("mongo-app-password"), format!("{MONGO_APP}\n")).unwrap();
    let mut out = String::new();
    for line in text.lines() {
        if line.starts_with("grafana_admin_password") {
            out.push_str("grafana_admin_password = { env = \"RCFLEET_SEC_GRAFANA\" }\n");
        } else if line.starts_with("readiness_timeout_seconds") {
            out.push_str("readiness_timeout_seconds = 20\n");
        } else if line.starts_with("deploy_dir") {
            out.push_str(&format!("{line}\nlicense = {{ env = \"RCFLEET_SEC_LICENSE\" }}\n"));
        } else if line == "[mongodb]" {
            out.push_str(&format!("[mongodb]\napp_password = {{ file = \"{}\" }}\n", dir.join("mongo-app-password").display()));
        } else if line == "[rocketchat.env]" {
            out.push_str("[rocketchat.env]\nMAIL_URL = { env = \"RCFLEET_SEC_MAIL\" }\n");
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    let path = dir.join("inventory.toml");
    std::fs::write(&path, out).unwrap();
    path
}

/// The mongodb container's id on the database host.
fn mongodb_container(lab: &Lab) -> String {
    lab.run("db", "docker ps -q --filter label=io.rcfleet.unit=database --filter label=com.docker.compose.service=mongodb")
        .trim()
        .to_string()
}

/// What nats-server answers a verbose CONNECT with these credentials: `+OK` or `-ERR ...`.
fn nats_connect(lab: &Lab, credentials: Option<(&str, &str)>) -> String {
    let mut stream = TcpStream::connect_timeout(&format!("{}:4222", lab.addr("db")).parse().unwrap(), Duration::from_secs(3)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut info = String::new();
    reader.read_line(&mut info).unwrap();
    assert!(info.starts_with("INFO "), "{info}");
    let connect = match credentials {
        Some((user, pass)) => serde_json::json!({"verbose": true, "user": user, "pass": pass}),
        None => serde_json::json!({"verbose": true}),
    };
    write!(stream, "CONNECT {connect}\r\nPING\r\n").unwrap();
    let mut answer = String::new();
    reader.read_line(&mut answer).unwrap();
    answer.trim().to_string()
}

/// Grafana's answer to an authenticated API call as `admin:password`.
fn grafana_status(lab: &Lab, password: &str) -> u16 {
    use base64_lite::encode;
    let mut stream = TcpStream::connect_timeout(&format!("{}:5050", lab.addr("db")).parse().unwrap(), Duration::from_secs(3)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let auth = encode(format!("admin:{password}").as_bytes());
    write!(stream, "GET /api/org HTTP/1.0\r\nHost: grafana\r\nAuthorization: Basic {auth}\r\n\r\n").unwrap();
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}

mod base64_lite {
    pub fn encode(bytes: &[u8]) -> String {
        const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
            let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[test]
fn security_defaults_hold_and_no_secret_appears_in_any_output() {
    let Some(lab) = lab() else { return };
    lab.reset_fleet();
    let dir = tempfile::tempdir().unwrap();
    let mut t = Transcript { dir: dir.path().to_path_buf(), inventory: inventory(&lab, dir.path()), outputs: Vec::new() };

    // Before any host: plan, and bad input naming sources, never values.
    t.expect(0, &["plan"], &[]);
    t.expect(0, &["plan", "--json"], &[]);
    // plan reads no secret: it names the one it could not read and goes on.
    let said = t.expect(0, &["plan"], &[("RCFLEET_SEC_GRAFANA", "")]);
    assert!(said.contains("RCFLEET_SEC_GRAFANA (not available here"), "{said}");
    let said = t.expect(2, &["up"], &[("RCFLEET_SEC_GRAFANA", "")]);
    assert!(said.contains("RCFLEET_SEC_GRAFANA"), "{said}");
    let said = t.expect(2, &["up"], &[("RCFLEET_SEC_MAIL", DOLLAR)]);
    assert!(said.contains("RCFLEET_SEC_MAIL") && said.contains("'$'"), "{said}");
    t.expect(2, &["secrets", "show", "no-such-secret"], &[]);
    let said = t.expect(1, &["secrets", "show", "grafana-admin-password"], &[]);
    assert!(said.contains("rcfleet up"), "before the first up there are no generated secrets: {said}");

    // The first up generates the secrets; the second changes nothing.
    t.expect(0, &["up"], &[]);
    let said = t.expect(0, &["up"], &[]);
    for host in lab.hosts() {
        assert!(said.contains(&format!("done        {host}: unchanged")), "second up changed {host}:\n{said}");
    }
    let listed = t.expect(0, &["secrets", "list"], &[]);
    for name in ["mongodb-keyfile", "mongodb-admin-password", "mongodb-app-password", "nats-password", "grafana-admin-password"] {
        assert!(listed.contains(name), "{listed}");
    }
    assert!(listed.contains("inventory mongodb.app_password") && listed.contains("inventory monitoring.grafana_admin_password"));
    t.expect(0, &["secrets", "list", "--json"], &[]);

    let generated: BTreeMap<&str, String> =
        ["mongodb-keyfile", "mongodb-admin-password", "nats-password"].into_iter().map(|n| (n, t.secret(n))).collect();
    for (name, value) in &generated {
        assert!(value.len() >= 32 && value.chars().all(|c| c.is_ascii_alphanumeric()), "{name} is weak: {} chars", value.len());
    }
    assert_eq!(t.secret("grafana-admin-password"), GRAFANA, "the inventory's reference wins");
    assert_eq!(t.secret("mongodb-app-password"), MONGO_APP);

    // Files on the hosts: one secrets file, 0600; secrets only in 0600 files.
    let deploy = "/opt/rcfleet/lab";
    assert_eq!(lab.run("db", &format!("stat -c '%a %U' {deploy}/secrets.json")).trim(), "600 root");
    let modes = lab.run("db", &format!("stat -c '%a %n' {deploy}/database/*.env {deploy}/monitoring/grafana-admin-password"));
    assert!(modes.lines().count() == 3 && modes.lines().all(|l| l.starts_with("600 ")), "{modes}");
    let env = lab.run("app1", &format!("stat -c %a {deploy}/rocketchat/app1-0/instance.env; cat {deploy}/rocketchat/app1-0/instance.env"));
    assert!(env.starts_with("600\n"), "{env}");
    assert!(env.contains("MONGO_URL=mongodb://rocketchat:S3CRET-mongo%3Aapp%404711@"), "the app user's password, URI-encoded");
    assert!(env.contains(&format!("TRANSPORTER=monolith+nats://rocketchat:{}@", generated["nats-password"])));
    for host in lab.hosts() {
        let public = lab.run(&host, &format!("find {deploy} -type f -perm -044 ! -name audit.log -exec cat {{}} + 2>/dev/null || true"));
        for value in [GRAFANA, MONGO_APP, "S3CRET-mongo%3Aapp%404711", MAIL, LICENSE].iter().copied().chain(generated.values().map(String::as_str)) {
            assert!(!public.contains(value), "{host}: a world-readable file holds a secret");
        }
    }

    // MongoDB: no access without credentials from another address than localhost, nor with
    // wrong ones; the application user's credentials work.
    let mongodb = mongodb_container(&lab);
    let db = lab.addr("db").to_string();
    let probe = |uri: &str| lab.sh("db", &format!("docker exec {mongodb} mongosh --quiet '{uri}' --eval 'rs.status().ok'"));
    let denied = probe(&format!("mongodb://{db}:27017/?directConnection=true"));
    assert!(!denied.status.success() && text(&denied).contains("requires authentication"), "{}", text(&denied));
    let wrong = probe(&format!("mongodb://rocketchat:nope@{db}:27017/?authSource=admin"));
    assert!(!wrong.status.success() && text(&wrong).contains("Authentication failed"), "{}", text(&wrong));
    let right = probe(&format!("mongodb://rocketchat:S3CRET-mongo%3Aapp%404711@{db}:27017/?authSource=admin"));
    assert!(right.status.success(), "{}", text(&right));
    // From the Database Tools image, as rcfleet's backup runs it (the server image has none).
    let tools = format!("{}/mongo:{}", lab.var("LAB_REGISTRY"), lab.var("LAB_TAG_MONGODB_TOOLS"));
    let dump = lab.sh(
        "db",
        &format!("docker run --rm --network host --entrypoint mongodump {tools} --quiet --uri=mongodb://{db}:27017/rocketchat --archive=/tmp/x"),
    );
    assert!(!dump.status.success() && text(&dump).contains("requires authentication"), "mongodump without credentials must fail: {}", text(&dump));

    // NATS refuses clients without TRANSPORTER's password.
    assert!(nats_connect(&lab, None).starts_with("-ERR"), "NATS accepts anonymous clients");
    assert!(nats_connect(&lab, Some(("rocketchat", "wrong"))).starts_with("-ERR"));
    assert_eq!(nats_connect(&lab, Some(("rocketchat", &generated["nats-password"]))), "+OK");

    // Grafana: the inventory's password, not the official stack's defaults.
    assert_eq!(grafana_status(&lab, GRAFANA), 200);
    for default in ["admin", "rc-admin"] {
        assert_eq!(grafana_status(&lab, default), 401, "Grafana accepts {default}");
    }

    // Everything else a user runs, and error paths.
    t.expect(0, &["status", "--json"], &[]);
    t.expect(0, &["status"], &[]);
    t.expect(0, &["logs", "app1-0", "--tail", "100"], &[]);
    t.expect(0, &["logs", "mongodb", "--tail", "200"], &[]);
    t.expect(0, &["logs", "nats", "--tail", "200"], &[]);
    t.expect(0, &["add-instance", "--host", "app1"], &[]);
    t.expect(0, &["upgrade", "--release", "8.1.0"], &[]);
    let said = t.expect(1, &["upgrade", "--release", "8.2.0", "--skip-backup"], &[]);
    assert!(said.contains("8.2.0"), "{said}");
    t.expect(1, &["upgrade", "--release", "99.0.0"], &[]);
    // A wrong admin password (as when secrets.json was lost) fails at once, saying what to fix.
    let with_wrong_admin = std::fs::read_to_string(&t.inventory).unwrap().replace(
        "[mongodb]\n",
        "[mongodb]\nadmin_password = { env = \"RCFLEET_SEC_WRONG_ADMIN\" }\n",
    );
    let original = std::fs::read_to_string(&t.inventory).unwrap();
    std::fs::write(&t.inventory, &with_wrong_admin).unwrap();
    let said = t.expect(3, &["status"], &[("RCFLEET_SEC_WRONG_ADMIN", WRONG_ADMIN)]);
    assert!(said.contains("refused rcfleet's admin login"), "{said}");
    let said = t.expect(1, &["up"], &[("RCFLEET_SEC_WRONG_ADMIN", WRONG_ADMIN)]);
    assert!(said.contains("refused rcfleet's admin login"), "{said}");
    std::fs::write(&t.inventory, &original).unwrap();
    // Prometheus scrapes every 15 s: an instance the failed upgrade's rollback restarted shows
    // as down until its next scrape.
    let healthy = lab_support::eventually(45, || t.run(&["status", "--json"], &[]).status.code() == Some(0));
    assert!(healthy, "status never became healthy again after the failed upgrade");

    // No process on any host carries a secret on its command line.
    let mut searched: Vec<(String, String)> = std::mem::take(&mut t.outputs);
    for host in lab.hosts() {
        searched.push((format!("{host}: ps"), lab.run(&host, "ps -eo args")));
        searched.push((format!("{host}: {deploy}/audit.log"), lab.run(&host, &format!("cat {deploy}/audit.log 2>/dev/null || true"))));
    }
    let logs = t.dir.join(".rcfleet/logs");
    let mut log_files = 0;
    for entry in std::fs::read_dir(&logs).unwrap_or_else(|e| panic!("{}: {e}", logs.display())) {
        let path = entry.unwrap().path();
        searched.push((path.display().to_string(), std::fs::read_to_string(&path).unwrap_or_default()));
        log_files += 1;
    }
    assert!(log_files >= 5, "only {log_files} run logs in {}", logs.display());
    let plan = t.dir.join("plan");
    t.expect(0, &["plan", "--out", &plan.to_string_lossy()], &[]);
    searched.push(t.outputs.pop().unwrap());
    for file in walk(&plan) {
        searched.push((file.display().to_string(), std::fs::read_to_string(&file).unwrap_or_default()));
    }

    let mut secrets: Vec<String> =
        [GRAFANA, MONGO_APP, MAIL, LICENSE, WRONG_ADMIN, DOLLAR].iter().map(|s| s.to_string()).collect();
    secrets.extend(generated.values().cloned());
    let encoded: Vec<String> = secrets.iter().map(|s| rcfleet::fleet::percent_encode(s)).collect();
    secrets.extend(encoded);
    secrets.push("S3CRET".to_string());
    let mut leaks = Vec::new();
    for (source, content) in &searched {
        for secret in &secrets {
            if content.contains(secret.as_str()) {
                leaks.push(format!("{source}: contains {}…", &secret[..8.min(secret.len())]));
            }
        }
    }
    assert!(searched.len() > 30, "only {} outputs searched", searched.len());
    // The search sees what it should: references are named, the failed upgrade is reported.
    let all: String = searched.iter().map(|(_, c)| c.as_str()).collect();
    assert!(all.contains("environment variable RCFLEET_SEC_GRAFANA"), "plan's secret references are missing");
    assert!(all.contains("8.2.0") && all.contains("app1-2"), "upgrade and add-instance output is missing");
    assert!(leaks.is_empty(), "secrets leaked:\n{}", leaks.join("\n"));
}

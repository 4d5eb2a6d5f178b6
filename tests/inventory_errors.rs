//! A corpus of bad inventories. Each is a small valid inventory with one mistake; `rcfleet plan`
//! must exit 2, print nothing on stdout, and name the file, the line and the key of the mistake
//! on stderr (with a hint of the fix).

use std::path::Path;
use std::process::Command;

const BASE: &str = r#"[workspace]
name = "chat"
root_url = "http://chat.example.com"
release = "8.0.1"

[[hosts]]
name = "db"
address = "10.0.0.10"
roles = ["database", "monitoring"]

[[hosts]]
name = "lb"
address = "10.0.0.20"
roles = ["traefik"]

[[hosts]]
name = "app1"
address = "10.0.0.31"
roles = ["rocketchat"]
instances = 2

[traefik]
domain = "chat.example.com"
"#;

struct Case {
    /// The command run: `plan` for every problem it finds; a deploying command (`up`) for
    /// secrets, which `plan` never reads. Both stop before contacting any host.
    command: &'static str,
    name: &'static str,
    inventory: String,
    line: usize,
    key: &'static str,
    says: &'static str,
}

fn replaced(from: &str, to: &str) -> String {
    assert!(BASE.contains(from), "test bug: {from:?} not in the base inventory");
    BASE.replacen(from, to, 1)
}

fn appended(extra: &str) -> String {
    format!("{BASE}{extra}")
}

/// The base inventory with a licence reference (line 5) and `extra` appended (from line 25).
fn licensed(extra: &str) -> String {
    format!("{}{extra}", replaced("release = \"8.0.1\"", "release = \"8.0.1\"\nlicense = { env = \"RCFLEET_TEST_LICENSE\" }"))
}

fn case(name: &'static str, inventory: String, line: usize, key: &'static str, says: &'static str) -> Case {
    Case { command: "plan", name, inventory, line, key, says }
}

fn deploy_case(name: &'static str, inventory: String, line: usize, key: &'static str, says: &'static str) -> Case {
    Case { command: "up", ..case(name, inventory, line, key, says) }
}

fn corpus() -> Vec<Case> {
    vec![
        case("unterminated string", replaced("release = \"8.0.1\"", "release = \"8.0.1"), 4, "", "invalid TOML"),
        case("unknown key with a suggestion", replaced("release = ", "relase = "), 4, "workspace.relase", "did you mean `release`"),
        case("unknown top-level table", appended("[monitorng]\nretention = \"1d\"\n"), 24, "monitorng", "did you mean `monitoring`"),
        case("missing workspace name", replaced("name = \"chat\"\n", ""), 1, "workspace.name", "missing"),
        case("missing workspace table", replaced("[workspace]\nname = \"chat\"\nroot_url = \"http://chat.example.com\"\nrelease = \"8.0.1\"\n", ""), 1, "workspace", "missing"),
        case("missing traefik table", replaced("[traefik]\ndomain = \"chat.example.com\"\n", ""), 1, "traefik", "missing"),
        case("missing host address", replaced("address = \"10.0.0.20\"\n", ""), 11, "hosts[1].address", "missing"),
        case("duplicate host name", replaced("name = \"app1\"", "name = \"db\""), 17, "hosts[2].name", "already used"),
        case("duplicate address", replaced("address = \"10.0.0.31\"", "address = \"10.0.0.10\""), 18, "hosts[2].address", "already used"),
        case(
            "duplicate private address",
            replaced("address = \"10.0.0.31\"", "address = \"10.0.0.31\"\nprivate_address = \"10.0.0.9\"")
                .replacen("address = \"10.0.0.20\"", "address = \"10.0.0.20\"\nprivate_address = \"10.0.0.9\"", 1),
            20,
            "hosts[2].private_address",
            "already used",
        ),
        case("no database host", replaced("roles = [\"database\", \"monitoring\"]", "roles = [\"monitoring\"]"), 6, "hosts", "no host has the \"database\" role"),
        case("two database hosts", replaced("roles = [\"traefik\"]", "roles = [\"traefik\", \"database\"]"), 14, "hosts[1].roles", "on 2 hosts"),
        case("no traefik host", replaced("roles = [\"traefik\"]", "roles = [\"rocketchat\"]\ninstances = 1"), 6, "hosts", "no host has the \"traefik\" role"),
        case(
            "no Rocket.Chat instance",
            replaced("[[hosts]]\nname = \"app1\"\naddress = \"10.0.0.31\"\nroles = [\"rocketchat\"]\ninstances = 2\n", ""),
            6,
            "hosts",
            "no Rocket.Chat instance",
        ),
        case("instances without the rocketchat role", replaced("roles = [\"traefik\"]", "roles = [\"traefik\"]\ninstances = 2"), 15, "hosts[1].instances", "only hosts with the \"rocketchat\" role"),
        case("zero instances", replaced("instances = 2", "instances = 0"), 20, "hosts[2].instances", "give 1 to 100"),
        case("instances of the wrong type", replaced("instances = 2", "instances = \"two\""), 20, "hosts[2].instances", "expected an integer"),
        case("instance ports collide with metrics ports", replaced("instances = 2", "instances = 2\nport = 3000\nmetrics_port = 3001"), 21, "hosts[2].port", "port 3001"),
        case(
            "instance port collides with NATS on a shared host",
            replaced("roles = [\"database\", \"monitoring\"]", "roles = [\"database\", \"monitoring\", \"rocketchat\"]\ninstances = 1\nport = 4222"),
            11,
            "hosts[0].port",
            "NATS",
        ),
        case("node exporter port collides with an instance", appended("[monitoring]\nnode_exporter_port = 3000\n"), 16, "hosts[2].port", "used by both node exporter and instance app1-0"),
        case("alertmanager without its webhook", appended("[monitoring.alertmanager]\nport = 9093\n"), 24, "monitoring.alertmanager.webhook_url", "missing"),
        case("alertmanager port collides with Prometheus", appended("[monitoring.alertmanager]\nwebhook_url = { env = \"HOOK\" }\nport = 9090\n"), 26, "monitoring.alertmanager.port", "both Prometheus and Alertmanager"),
        case("instance port collides with SSH", replaced("instances = 2", "instances = 2\nmetrics_port = 21"), 21, "hosts[2].metrics_port", "SSH"),
        case("Traefik API on the HTTP port", appended("api_port = 80\n"), 24, "traefik.api_port", "Traefik HTTP"),
        case("port out of range", replaced("instances = 2", "instances = 2\nport = 70000"), 21, "hosts[2].port", "out of range"),
        case("spare ports run past 65535", replaced("instances = 2", "instances = 2\nport = 65500"), 21, "hosts[2].port", "spare ports 1000 above"),
        case(
            "metrics ports on the spare instance ports",
            replaced("instances = 2", "instances = 2\nport = 3000\nmetrics_port = 4000"),
            21,
            "hosts[2].port",
            "instance app1-0 (spare, for start-first upgrades)",
        ),
        case("unknown upgrade strategy", appended("\n[upgrade]\nstrategy = \"blue-green\"\n"), 26, "upgrade.strategy", "use \"auto\", \"start-first\""),
        case("release without a patch number", replaced("release = \"8.0.1\"", "release = \"8.0\""), 4, "workspace.release", "X.Y.Z"),
        case("release latest", replaced("release = \"8.0.1\"", "release = \"latest\""), 4, "workspace.release", "X.Y.Z"),
        case("invalid IPv4 address", replaced("address = \"10.0.0.10\"", "address = \"10.0.0.300\""), 8, "hosts[0].address", "not an IP address"),
        case("shell metacharacters in an address", replaced("address = \"10.0.0.10\"", "address = \"db;rm -rf /\""), 8, "hosts[0].address", "not an IP address"),
        case("unknown role", replaced("roles = [\"database\", \"monitoring\"]", "roles = [\"dtabase\", \"monitoring\"]"), 9, "hosts[0].roles", "unknown role"),
        deploy_case("unset secret variable", replaced("release = \"8.0.1\"", "release = \"8.0.1\"\nlicense = { env = \"RCFLEET_TEST_SURELY_UNSET\" }"), 5, "workspace.license", "RCFLEET_TEST_SURELY_UNSET is not set"),
        deploy_case("missing secret file", appended("\n[monitoring]\ngrafana_admin_password = { file = \"no-such-secret-file\" }\n"), 26, "monitoring.grafana_admin_password", "cannot be read"),
        case("secret written inline", replaced("release = \"8.0.1\"", "release = \"8.0.1\"\nlicense = \"hunter2-licence\""), 5, "workspace.license", "never written in the inventory"),
        case("root_url on another domain", replaced("domain = \"chat.example.com\"", "domain = \"other.example.com\""), 3, "workspace.root_url", "differs from traefik.domain"),
        case("root_url without scheme", replaced("root_url = \"http://chat.example.com\"", "root_url = \"chat.example.com\""), 3, "workspace.root_url", "must start with https://"),
        case("workspace name with spaces", replaced("name = \"chat\"", "name = \"Chat Prod\""), 2, "workspace.name", "not a valid name"),
        case("letsencrypt without email", appended("tls = { mode = \"letsencrypt\" }\n"), 24, "traefik.tls.email", "missing"),
        case("unknown TLS mode", appended("tls = { mode = \"selfsigned\" }\n"), 24, "traefik.tls.mode", "unknown TLS mode"),
        case("reserved environment variable", appended("\n[rocketchat.env]\nPORT = \"4000\"\n"), 26, "rocketchat.env.PORT", "rcfleet sets this variable itself"),
        case("line break in an environment value", appended("\n[rocketchat.env]\nMAIL_URL = \"smtp://x\\nINJECTED=1\"\n"), 26, "rocketchat.env.MAIL_URL", "line breaks"),
        case("invalid image repository", appended("\n[images]\nnats = { repository = \"Bad Repo\" }\n"), 26, "images.nats.repository", "not an image repository"),
        case("invalid Database Tools image tag", appended("\n[images]\nmongodb_tools = { repository = \"docker.io/mongo\", tag = \"8.2 latest\" }\n"), 26, "images.mongodb_tools.tag", "not an image tag"),
        case("tag on the Rocket.Chat image", appended("\n[images]\nrocketchat = { repository = \"mirror.example.com/rc\", tag = \"8.0.0\" }\n"), 26, "images.rocketchat.tag", "unknown key"),
        case("invalid retention", appended("\n[monitoring]\nretention = \"forever\"\n"), 26, "monitoring.retention", "not a duration"),
        case("invalid alert_for", appended("\n[monitoring]\nalert_for = \"5 minutes\"\n"), 26, "monitoring.alert_for", "not a duration"),
        case("backup retention of zero", appended("\n[backup]\nkeep = 0\n"), 26, "backup.keep", "out of range; use a number from 1 to 1000"),
        case("unknown backup key", appended("\n[backup]\nkeep_days = 7\n"), 26, "backup.keep_days", "unknown key"),
        case("jump through an unknown host", appended("\n[ssh]\njump = \"bastion\"\n"), 26, "ssh.jump", "neither a host of this inventory"),
        case("deploy_dir with a quote", replaced("release = \"8.0.1\"", "release = \"8.0.1\"\ndeploy_dir = \"/opt/it's\""), 5, "workspace.deploy_dir", "not an absolute path"),
        case("MongoDB the release cannot run on", appended("\n[mongodb]\nversion = \"4.4\"\n"), 26, "mongodb.version", "MongoDB 4.4 is not supported by Rocket.Chat 8.0.1 (8.x runs on MongoDB 8.0, 8.2)"),
        case("default MongoDB under a 7.x release", replaced("release = \"8.0.1\"", "release = \"7.10.0\""), 4, "workspace.release", "MongoDB 8.2 (the default) is not supported by Rocket.Chat 7.10.0"),
        case("MongoDB tag contradicting the version", appended("\n[images]\nmongodb = { repository = \"docker.io/mongodb/mongodb-community-server\", tag = \"8.0-ubi8\" }\n"), 26, "images.mongodb.tag", "is MongoDB 8.0 but mongodb.version is \"8.2\""),
        case(
            "cyclic jump hosts",
            replaced("roles = [\"traefik\"]", "roles = [\"traefik\"]\nssh = { jump = \"app1\" }")
                .replacen("instances = 2", "instances = 2\nssh = { jump = \"lb\" }", 1),
            15,
            "hosts[1].ssh.jump",
            "a cycle",
        ),
        case(
            "chained jump hosts",
            replaced("roles = [\"database\", \"monitoring\"]", "roles = [\"database\", \"monitoring\"]\nssh = { jump = \"lb\" }")
                .replacen("roles = [\"traefik\"]", "roles = [\"traefik\"]\nssh = { jump = \"app1\" }", 1),
            10,
            "hosts[0].ssh.jump",
            "rcfleet makes one hop only",
        ),
        case(
            "two hosts at one address with two SSH ports",
            replaced("address = \"10.0.0.31\"", "address = \"10.0.0.20\"\nssh = { port = 2222 }"),
            18,
            "hosts[2].address",
            "already used by hosts[1]",
        ),
        case(
            "private address equal to another host's address",
            replaced("address = \"10.0.0.31\"", "address = \"10.0.0.31\"\nprivate_address = \"10.0.0.20\""),
            19,
            "hosts[2].private_address",
            "already used by hosts[1]",
        ),
        case("IPv6 address", replaced("address = \"10.0.0.10\"", "address = \"fd00::10\""), 8, "hosts[0].address", "IPv6 address, which rcfleet does not support"),
        case(
            "IPv6 private address",
            replaced("address = \"10.0.0.31\"", "address = \"10.0.0.31\"\nprivate_address = \"fd00::31\""),
            19,
            "hosts[2].private_address",
            "IPv6",
        ),
        case("deploy_dir under /tmp", replaced("release = \"8.0.1\"", "release = \"8.0.1\"\ndeploy_dir = \"/tmp/rcfleet\""), 5, "workspace.deploy_dir", "every local user of the server can write to"),
        case("deploy_dir under /dev/shm", replaced("release = \"8.0.1\"", "release = \"8.0.1\"\ndeploy_dir = \"/dev/shm/rc\""), 5, "workspace.deploy_dir", "under /dev/shm"),
        case("deploy_dir under /var/tmp", replaced("release = \"8.0.1\"", "release = \"8.0.1\"\ndeploy_dir = \"/var/tmp\""), 5, "workspace.deploy_dir", "under /var/tmp"),
        deploy_case("secret file that is a device", appended("\n[monitoring]\ngrafana_admin_password = { file = \"/dev/zero\" }\n"), 26, "monitoring.grafana_admin_password", "is not a regular file"),
        case("command timeout of zero", appended("\n[ssh]\ncommand_timeout_seconds = 0\n"), 26, "ssh.command_timeout_seconds", "out of range"),
        case("insecure registry flag that is not a boolean", appended("\n[images]\nrocketchat = { repository = \"mirror.example.com/rc\", insecure = \"yes\" }\n"), 26, "images.rocketchat.insecure", "true or false"),
        case("microservices without a licence", appended("[microservices]\nenabled = true\n"), 25, "microservices.enabled", "licence with the `scalability` module"),
        case("stream-hub on Rocket.Chat 8", licensed("[microservices]\nenabled = true\nservices = [\"account\", \"stream-hub\"]\n"), 27, "microservices.services", "stream-hub was removed in Rocket.Chat 8.0"),
        case("unknown microservice", licensed("[microservices]\nenabled = true\nservices = [\"accounts\"]\n"), 27, "microservices.services", "unknown service \"accounts\""),
        case("ddp-streamers sized twice", licensed("[microservices]\nenabled = true\nddp_streamers = 2\nconcurrent_users = 900\n"), 28, "microservices.concurrent_users", "not both"),
        case("ddp-streamer replicas", licensed("[microservices]\nenabled = true\n[microservices.replicas]\nddp-streamer = 3\n"), 28, "microservices.replicas.ddp-streamer", "ddp_streamers = N or concurrent_users"),
        case("microservices image repository", licensed("[microservices]\nenabled = true\nrepository = \"Registry/RC\"\n"), 27, "microservices.repository", "is not an image repository"),
        case("app host named like a microservice", licensed("[microservices]\nenabled = true\n").replace("name = \"app1\"", "name = \"presence\""), 26, "microservices.enabled", "has the name of a microservice"),
        case("microservice placed on an unknown host", licensed("[microservices]\nenabled = true\n[microservices.placement]\npresence = [\"app9\"]\n"), 28, "microservices.placement.presence", "\"app9\" is not a host"),
        case("omnichannel-transcript without queue-worker", licensed("[microservices]\nenabled = true\nservices = [\"presence\", \"omnichannel-transcript\"]\n"), 27, "microservices.services", "waits for queue-worker"),
        case("domain with a backtick", replaced("domain = \"chat.example.com\"", "domain = \"chat`id`.example.com\""), 23, "traefik.domain", "not a domain name"),
    ]
}

fn rcfleet() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rcfleet"))
}

#[test]
fn the_base_inventory_is_valid() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("inventory.toml");
    std::fs::write(&path, BASE).unwrap();
    let output = rcfleet().arg("plan").arg("-i").arg(&path).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
}

#[test]
fn every_bad_inventory_exits_2_naming_file_line_and_key() {
    assert!(corpus().len() >= 40, "the corpus must keep at least 40 cases");
    let dir = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for case in corpus() {
        let path = dir.path().join("inventory.toml");
        std::fs::write(&path, &case.inventory).unwrap();
        let output = rcfleet().arg(case.command).arg("-i").arg(&path).env_remove("RCFLEET_TEST_SURELY_UNSET").output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        let expected_place = format!("{}:{}:", path.display(), case.line);
        let line = stderr.lines().find(|l| l.contains(&expected_place) && l.contains(case.key) && l.contains(case.says));
        let wrong = if output.status.code() != Some(2) {
            Some(format!("exit code {:?}, expected 2", output.status.code()))
        } else if !output.stdout.is_empty() {
            Some("printed on stdout".to_string())
        } else if line.is_none() {
            Some(format!("no line with {expected_place:?}, key {:?} and {:?}", case.key, case.says))
        } else {
            None
        };
        if let Some(wrong) = wrong {
            failures.push(format!("{}: {wrong}\n--- stderr:\n{stderr}", case.name));
        }
    }
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), corpus().len(), failures.join("\n"));
}

#[test]
fn plan_lists_secrets_it_cannot_read_and_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("inventory.toml");
    std::fs::write(&path, replaced("release = \"8.0.1\"", "release = \"8.0.1\"\nlicense = { env = \"RCFLEET_TEST_SURELY_UNSET\" }")).unwrap();
    let output = rcfleet().arg("plan").arg("-i").arg(&path).env_remove("RCFLEET_TEST_SURELY_UNSET").output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("workspace.license: environment variable RCFLEET_TEST_SURELY_UNSET (not available here"), "{stdout}");
}

#[test]
fn the_example_inventory_plans_in_a_clean_environment() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("inventory.example.toml");
    let output = rcfleet().arg("plan").arg("-i").arg(&example).env_clear().output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
}

#[test]
fn several_instances_without_a_licence_are_warned_about_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("inventory.toml");
    std::fs::write(&path, BASE).unwrap();
    let stdout = String::from_utf8_lossy(&rcfleet().arg("plan").arg("-i").arg(&path).output().unwrap().stdout).to_string();
    assert_eq!(stdout.matches("WARNING: 2 instances and no workspace.license").count(), 1, "{stdout}");
    assert!(stdout.contains("`scalability`"), "{stdout}");
    std::fs::write(&path, replaced("instances = 2", "instances = 1")).unwrap();
    let stdout = String::from_utf8_lossy(&rcfleet().arg("plan").arg("-i").arg(&path).output().unwrap().stdout).to_string();
    assert!(!stdout.contains("WARNING"), "{stdout}");
}

#[test]
fn all_problems_are_reported_together() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("inventory.toml");
    let inventory = replaced("release = \"8.0.1\"", "release = \"8.0\"").replacen("instances = 2", "instances = \"2\"", 1);
    std::fs::write(&path, inventory).unwrap();
    let output = rcfleet().arg("plan").arg("-i").arg(&path).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr.contains(":4:") && stderr.contains("workspace.release"), "{stderr}");
    assert!(stderr.contains(":20:") && stderr.contains("hosts[2].instances"), "{stderr}");
}

#[test]
fn a_secret_value_never_appears_in_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("grafana-password");
    std::fs::write(&secret, "s3cr3t-v4lue-$-{{x}}\n").unwrap();
    let inventory = appended(&format!(
        "\n[monitoring]\nretention = \"bad\"\ngrafana_admin_password = {{ file = \"{}\" }}\n",
        secret.display()
    ));
    let path = dir.path().join("inventory.toml");
    std::fs::write(&path, inventory).unwrap();
    let output = rcfleet().arg("plan").arg("-i").arg(&path).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let all = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(!all.contains("s3cr3t"), "{all}");
}

/// A FIFO as a secret file would block any read of it forever; rcfleet refuses it without
/// opening it for a blocking read. (The wait below only keeps a regression from hanging CI.)
#[test]
fn a_fifo_secret_file_is_refused_not_waited_on() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("password.fifo");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let path = dir.path().join("inventory.toml");
    std::fs::write(&path, appended(&format!("\n[monitoring]\ngrafana_admin_password = {{ file = \"{}\" }}\n", fifo.display()))).unwrap();
    let mut child = rcfleet()
        .arg("up")
        .arg("-i")
        .arg(&path)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut waited = 0;
    while child.try_wait().unwrap().is_none() {
        if waited == 300 {
            child.kill().unwrap();
            panic!("rcfleet up blocked on a FIFO secret file");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        waited += 1;
    }
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(&format!("{}:26:", path.display())) && stderr.contains("is not a regular file"), "{stderr}");
}

/// `--count` beyond what a host runs is refused before anything is computed from it.
#[test]
fn add_instance_refuses_an_overflowing_count() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("inventory.toml");
    std::fs::write(&path, BASE).unwrap();
    for count in ["0", "101", "4294967295", "4294967296"] {
        let output = rcfleet().args(["add-instance", "--host", "app1", "--count", count, "-i"]).arg(&path).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "--count {count}: {stderr}");
        assert!(stderr.contains("--count"), "--count {count}: {stderr}");
    }
    assert_eq!(std::fs::read_to_string(&path).unwrap(), BASE, "the inventory is unchanged");
}

#[test]
fn a_missing_inventory_file_is_bad_input() {
    let output = rcfleet().arg("plan").arg("-i").arg(Path::new("/nonexistent/inventory.toml")).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("/nonexistent/inventory.toml"));
}

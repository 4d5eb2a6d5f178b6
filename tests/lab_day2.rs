//! Day-2 operations against the lab (issue 21), on one fleet: `exec` (in an instance, on a
//! host, in every instance; output, exit status, stdin, audit lines), the monitoring stack
//! (every host's node exporter, NATS' probe and MongoDB's PRIMARY scraped), the shipped alerts
//! (stopping an instance's container and NATS makes Prometheus fire RocketChatInstanceDown and
//! NatsDown, and Alertmanager posts the first to a webhook receiver), hooks (a
//! failing `pre-upgrade` stops the upgrade with nothing changed; `post-upgrade` sees the new
//! release) and `prune` (after two upgrades, `--keep 1` removes the older Rocket.Chat images
//! and nothing rcfleet did not create, and backups beyond `[backup] keep`; `--dry-run` changes nothing).

mod lab_support;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use lab_support::{eventually, http_get, inventory_at, json, rcfleet, text, Lab};

/// The app hosts of the test's fleet (see `only_two_app_hosts`).
fn app_hosts(_lab: &Lab) -> Vec<String> {
    vec!["app1".to_string(), "app2".to_string()]
}

fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn hook(dir: &Path, name: &str, script: &str) {
    let hooks = dir.join(".rcfleet/hooks");
    std::fs::create_dir_all(&hooks).unwrap();
    std::fs::write(hooks.join(name), script).unwrap();
    std::fs::set_permissions(hooks.join(name), std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// `repository:tag` of the Rocket.Chat images on a host.
fn rocketchat_images(lab: &Lab, host: &str) -> Vec<String> {
    let out = lab.run(host, "docker images --format '{{.Repository}}:{{.Tag}}' | grep /rocketchat/rocket.chat: | sort");
    out.lines().map(|l| l.rsplit(':').next().unwrap().to_string()).collect()
}

#[test]
fn exec_alerts_hooks_and_prune_on_one_fleet() {
    let Some(lab) = lab_support::lab() else { return };
    lab.reset_fleet();
    // Other lab tests leave Rocket.Chat images behind; prune is checked against the releases
    // this fleet runs, so the app hosts start without any.
    for host in app_hosts(&lab) {
        lab.run(&host, "docker images -q --filter reference='*/rocketchat/rocket.chat' | sort -u | xargs -r docker rmi -f >/dev/null");
    }
    let dir = tempfile::tempdir().unwrap();
    // One instance per app host, no drain wait (no client here) and a short `for` so that the
    // instance-down alert fires soon: the two upgrades and the alert are most of this test's time.
    let path = inventory_at(&lab, dir.path(), "8.0.0", &[("instances", "1"), ("drain_seconds", "0"), ("retention", "\"15d\"\nalert_for = \"15s\"")]);
    // Alertmanager posts to a receiver this test runs on the database host; the URL's token is
    // a secret that no output may show.
    let webhook = dir.path().join("webhook-url");
    std::fs::write(&webhook, format!("http://{}:{WEBHOOK_PORT}/hooks/{WEBHOOK_TOKEN}\n", lab.addr("db"))).unwrap();
    let with_alertmanager = format!(
        "{}\n[monitoring.alertmanager]\nwebhook_url = {{ file = \"{}\" }}\n",
        only_two_app_hosts(&std::fs::read_to_string(&path).unwrap()),
        webhook.display()
    );
    std::fs::write(&path, with_alertmanager).unwrap();
    let inventory = path.to_str().unwrap().to_string();
    let started = Instant::now();
    let up = rcfleet(&["up", "-i", &inventory]);
    assert!(up.status.success(), "up failed:\n{}", text(&up));
    assert!(!text(&up).contains(WEBHOOK_TOKEN), "up shows the webhook's secret URL:\n{}", text(&up));
    eprintln!("up: {:.0?}", started.elapsed());

    for (phase, run) in [
        ("exec", &exec as &dyn Fn(&Lab, &Path, &str)),
        ("monitoring", &exporters_are_scraped),
        ("alert", &instance_down_alert_fires),
        ("hooks and two upgrades", &hooks_guard_and_see_the_upgrade),
        ("prune", &prune_removes_only_old_rocketchat_images),
    ] {
        let started = Instant::now();
        run(&lab, dir.path(), &inventory);
        eprintln!("{phase}: {:.0?}", started.elapsed());
    }
}

/// The inventory without the app hosts after app2: two instances are enough here, and every
/// more one makes both upgrades longer.
fn only_two_app_hosts(inventory: &str) -> String {
    inventory
        .split("\n\n")
        .filter(|block| !block.lines().any(|l| l.starts_with("name = \"app") && !matches!(l, "name = \"app1\"" | "name = \"app2\"")))
        .collect::<Vec<_>>()
        .join("\n\n")
}

fn exec(lab: &Lab, _dir: &Path, inventory: &str) {
    let port = rcfleet(&["exec", "-i", inventory, "app1-0", "--", "printenv", "PORT"]);
    assert!(port.status.success(), "{}", text(&port));
    assert_eq!(stdout(&port), "3000\n", "exec prints the instance's own PORT, and only that");

    let status = rcfleet(&["exec", "-i", inventory, "app1-0", "--", "sh", "-c", "echo out; echo err >&2; exit 3"]);
    assert_eq!(status.status.code(), Some(3), "the exit status is passed through: {}", text(&status));
    assert_eq!(stdout(&status), "out\n");
    assert_eq!(String::from_utf8_lossy(&status.stderr), "err\n", "stderr stays stderr, without rcfleet's exit mark");

    let on_host = rcfleet(&["exec", "-i", inventory, "--host", "app2", "--", "hostname"]);
    assert_eq!(stdout(&on_host), "app2\n", "{}", text(&on_host));

    let all = rcfleet(&["exec", "-i", inventory, "--all", "--", "true"]);
    assert_eq!(all.status.code(), Some(0), "{}", text(&all));
    let named = rcfleet(&["exec", "-i", inventory, "--all", "--", "printenv", "PORT"]);
    let expected: String = app_hosts(lab).iter().map(|h| format!("{h}-0 | 3000\n")).collect();
    assert_eq!(stdout(&named), expected, "one prefixed line per instance, one host after another");

    let mut child = Command::new(env!("CARGO_BIN_EXE_rcfleet"))
        .args(["exec", "-i", inventory, "--stdin", "mongodb", "--", "wc", "-c"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&vec![b'x'; 200_000]).unwrap();
    let counted = child.wait_with_output().unwrap();
    assert_eq!(stdout(&counted).trim(), "200000", "--stdin forwards all of standard input: {}", text(&counted));

    let unknown = rcfleet(&["exec", "-i", inventory, "app9-0", "--", "true"]);
    assert_eq!(unknown.status.code(), Some(2), "{}", text(&unknown));

    let audit = lab.run("app1", "cat /opt/rcfleet/lab/audit.log");
    assert!(audit.lines().any(|l| l.ends_with("\trcfleet exec\texec in app1-0: printenv PORT")), "{audit}");
    assert!(audit.contains("exec in app1-0: sh -c 'echo out; echo err >&2; exit 3'"), "{audit}");
    assert!(!audit.contains("\nout\n") && !audit.lines().any(|l| l == "3000"), "output never goes to the audit trail");
    let audit2 = lab.run("app2", "cat /opt/rcfleet/lab/audit.log");
    assert!(audit2.contains("exec on the host: hostname"), "{audit2}");
}

fn alerts(lab: &Lab) -> serde_json::Value {
    let (status, body) = http_get(&format!("{}:9090", lab.addr("db")), lab.addr("db"), "/api/v1/alerts").expect("Prometheus answers");
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

const WEBHOOK_PORT: u16 = 9099;
const WEBHOOK_TOKEN: &str = "d2-secret-hook-token";
const WEBHOOK_LOG: &str = "/opt/rcfleet/webhook-received.jsonl";

/// The values of an instant query, as `(labels, value)`.
fn query(lab: &Lab, promql: &str) -> Vec<(serde_json::Value, String)> {
    let encoded: String = promql
        .bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect();
    let path = format!("/api/v1/query?query={encoded}");
    let Ok((200, body)) = http_get(&format!("{}:9090", lab.addr("db")), lab.addr("db"), &path) else { return Vec::new() };
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    answer["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["metric"].clone(), r["value"][1].as_str().unwrap().to_string()))
        .collect()
}

/// Every host's node exporter, NATS' health probe and MongoDB's PRIMARY reach Prometheus.
fn exporters_are_scraped(lab: &Lab, dir: &Path, _inventory: &str) {
    let hosts = ["db", "lb", "app1", "app2"];
    let nodes_up = eventually(90, || {
        let up = query(lab, "up{job=\"node\"} == 1");
        hosts.iter().all(|h| up.iter().any(|(labels, _)| labels["host"] == *h))
    });
    assert!(nodes_up, "not every host's node exporter is scraped: {:?}", query(lab, "up{job=\"node\"}"));
    let root = query(lab, "node_filesystem_size_bytes{host=\"app1\", mountpoint=\"/\"}");
    assert!(!root.is_empty() && root[0].1.parse::<f64>().unwrap() > 0.0, "app1's root file system is measured: {root:?}");
    let nats = eventually(60, || query(lab, "probe_success{job=\"nats\"}").iter().any(|(_, v)| v == "1"));
    assert!(nats, "NATS' /healthz is not probed: {:?}", query(lab, "probe_success"));
    let primary = eventually(60, || query(lab, "rcfleet_mongodb_writable_primary").iter().any(|(l, v)| v == "1" && l["host"] == "db"));
    assert!(primary, "MongoDB's PRIMARY is not reported: {:?}", query(lab, "rcfleet_mongodb_writable_primary"));
    let config = lab.run("db", "stat -c %a /opt/rcfleet/lab/alertmanager/alertmanager.yml");
    assert_eq!(config.trim(), "600", "the file with the webhook's URL is private");
    // The receiver: a small HTTP server on the database host that appends every body it gets.
    let receiver = format!(
        r#"import http.server, sys
class Hook(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with open("{WEBHOOK_LOG}", "ab") as log:
            log.write(self.path.encode() + b" " + body.replace(b"\n", b" ") + b"\n")
        self.send_response(200)
        self.end_headers()
http.server.HTTPServer(("{}", {WEBHOOK_PORT}), Hook).serve_forever()
"#,
        lab.addr("db")
    );
    let script = "/opt/rcfleet/webhook-receiver.py";
    lab.run("db", &format!("rm -f {WEBHOOK_LOG}; cat > {script} <<'EOF'\n{receiver}EOF\n"));
    let pid = lab.run("db", &format!("nohup python3 {script} </dev/null >/dev/null 2>&1 & echo $!"));
    std::fs::write(dir.join("receiver.pid"), pid.trim()).unwrap();
}

fn instance_down_alert_fires(lab: &Lab, dir: &Path, inventory: &str) {
    let rules = lab.run("db", "cat /opt/rcfleet/lab/monitoring/prometheus/alerts.yml");
    assert!(rules.contains("for: \"15s\""), "the inventory's alert_for is in the deployed rules:\n{rules}");
    let firing = |alerts: &serde_json::Value| {
        alerts["data"]["alerts"].as_array().unwrap().iter().any(|a| {
            a["labels"]["alertname"] == "RocketChatInstanceDown" && a["labels"]["instance_name"] == "app2-0" && a["state"] == "firing"
        })
    };
    assert!(!firing(&alerts(lab)), "the alert fires on a healthy fleet");
    lab.run("app2", "docker stop $(docker ps -q --filter label=io.rcfleet.unit=app2-0) >/dev/null");
    let nats = "$(docker ps -aq --filter label=io.rcfleet.unit=database --filter label=com.docker.compose.service=nats)";
    lab.run("db", &format!("docker stop {nats} >/dev/null"));
    let partial = rcfleet(&["exec", "-i", inventory, "--all", "--", "printenv", "PORT"]);
    assert_eq!(partial.status.code(), Some(1), "{}", text(&partial));
    assert_eq!(stdout(&partial), "app1-0 | 3000\n", "the running instance still runs the command");
    let stderr = String::from_utf8_lossy(&partial.stderr);
    assert!(stderr.contains("app2-0 | rcfleet: app2: app2-0 has no running container"), "{stderr}");
    assert!(stderr.contains("the command failed in 1 of 2 instances: app2-0 (status 1)"), "{stderr}");
    // Scrape and evaluation every 15s, `for` 15s: firing well within two minutes.
    let fired = eventually(120, || firing(&alerts(lab)));
    assert!(fired, "RocketChatInstanceDown never fired for app2-0: {}", alerts(lab));
    let nats_down = |alerts: &serde_json::Value| {
        alerts["data"]["alerts"].as_array().unwrap().iter().any(|a| a["labels"]["alertname"] == "NatsDown" && a["state"] == "firing")
    };
    assert!(eventually(60, || nats_down(&alerts(lab))), "NatsDown never fired with NATS stopped: {}", alerts(lab));
    // Alertmanager waits group_wait (30s) before its first post.
    let posted = || lab.sh("db", &format!("cat {WEBHOOK_LOG}")).stdout;
    let delivered = eventually(120, || {
        let log = String::from_utf8_lossy(&posted()).into_owned();
        log.lines().any(|l| l.starts_with(&format!("/hooks/{WEBHOOK_TOKEN} ")) && l.contains("\"RocketChatInstanceDown\"") && l.contains("\"firing\""))
    });
    let pid = std::fs::read_to_string(dir.join("receiver.pid")).unwrap();
    lab.run("db", &format!("kill {pid}"));
    assert!(delivered, "Alertmanager never posted RocketChatInstanceDown to the webhook: {}", String::from_utf8_lossy(&posted()));
    lab.run("db", &format!("docker start {nats} >/dev/null"));
    lab.run("app2", "docker start $(docker ps -aq --filter label=io.rcfleet.unit=app2-0) >/dev/null");
    let ready = eventually(60, || http_get(&format!("{}:3000", lab.addr("app2")), lab.addr("app2"), "/health").is_ok_and(|(s, _)| s == 200));
    assert!(ready, "app2-0 did not come back after docker start");
    let in_traefik = eventually(60, || {
        let servers = lab_support::traefik_servers(lab);
        servers.len() == 2 && servers.values().all(|s| s == "UP")
    });
    assert!(in_traefik, "Traefik did not take app2-0 back: {:?}", lab_support::traefik_servers(lab));
}

fn hooks_guard_and_see_the_upgrade(lab: &Lab, dir: &Path, inventory: &str) {
    let before = lab.containers();
    hook(dir, "pre-upgrade", "#!/bin/sh\necho 'change freeze until Monday' >&2\nexit 1\n");
    let refused = rcfleet(&["upgrade", "-i", inventory, "--release", "8.0.1", "--skip-backup"]);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    let message = text(&refused);
    assert!(message.contains("change freeze until Monday"), "the hook's own output is shown: {message}");
    assert!(message.contains("the pre-upgrade hook exited with status 1, so rcfleet upgrade did not start; nothing was changed"), "{message}");
    assert_eq!(lab.containers(), before, "a refused upgrade touched a container");
    assert!(std::fs::read_to_string(inventory).unwrap().contains("release = \"8.0.0\""));
    lab_support::lock_is_free(lab);

    let failed = dir.join("upgrade-failed.env");
    hook(dir, "pre-upgrade", "#!/bin/sh\nexit 0\n");
    hook(dir, "upgrade-failed", &format!("#!/bin/sh\nenv | grep ^RCFLEET_ | sort > {}\n", failed.display()));
    let missing = rcfleet(&["upgrade", "-i", inventory, "--release", "8.0.99", "--skip-backup"]);
    assert_eq!(missing.status.code(), Some(1), "{}", text(&missing));
    let env = std::fs::read_to_string(&failed).expect("upgrade-failed ran");
    assert!(env.lines().any(|l| l == "RCFLEET_RESULT=failed") && env.lines().any(|l| l == "RCFLEET_RELEASE=8.0.99"), "{env}");
    let error = env.lines().find(|l| l.starts_with("RCFLEET_ERROR=")).expect("RCFLEET_ERROR");
    assert!(error.contains("8.0.99"), "the hook is told why: {error}");
    assert_eq!(lab.containers(), before, "an upgrade to a release that does not exist touched a container");

    let seen = dir.join("post-upgrade.env");
    hook(dir, "post-upgrade", &format!("#!/bin/sh\nenv | grep ^RCFLEET_ | sort > {}\n", seen.display()));
    for release in ["8.0.1", "8.1.0"] {
        let upgrade = rcfleet(&["upgrade", "-i", inventory, "--release", release, "--skip-backup"]);
        assert!(upgrade.status.success(), "upgrade to {release} failed:\n{}", text(&upgrade));
        let env = std::fs::read_to_string(&seen).unwrap();
        assert!(env.lines().any(|l| l == format!("RCFLEET_RELEASE={release}")), "{env}");
        assert!(env.lines().any(|l| l == "RCFLEET_RESULT=succeeded"), "{env}");
        assert!(env.lines().any(|l| l == "RCFLEET_COMMAND=upgrade"), "{env}");
    }
}

fn prune_removes_only_old_rocketchat_images(lab: &Lab, _dir: &Path, inventory: &str) {
    let app1 = app_hosts(lab)[0].clone();
    for host in app_hosts(lab) {
        assert_eq!(rocketchat_images(lab, &host), ["8.0.0", "8.0.1", "8.1.0"], "{host} after two upgrades");
    }
    // What rcfleet did not create: another repository's tag of the same image, a stopped
    // container and an unused volume of someone else. A stopped container labelled for this
    // fleet's unit that no longer exists is rcfleet's leftover.
    let image = format!("{}/rocketchat/rocket.chat:8.0.0", lab.var("LAB_REGISTRY"));
    lab.run(&app1, &format!("docker tag {image} someone/else:8.0.0 && docker create --name stranger {image} >/dev/null && docker volume create stranger-data >/dev/null"));
    lab.run(&app1, &format!("docker create --name leftover --label io.rcfleet.fleet=lab --label io.rcfleet.unit=app1-7 --label com.docker.compose.service=rocketchat someone/else:8.0.0 >/dev/null"));

    // Two backups taken under the default keep, then `[backup] keep = 1`: prune deletes the older.
    let mut backups = Vec::new();
    for note in ["first", "second"] {
        // Archives are named to the second.
        std::thread::sleep(std::time::Duration::from_millis(1100));
        let taken = rcfleet(&["backup", "-i", inventory, "--note", note, "--json"]);
        assert!(taken.status.success(), "{}", text(&taken));
        let path = json(&taken)["path"].as_str().expect("the archive's path").to_string();
        backups.push(path.rsplit('/').next().unwrap().to_string());
    }
    let with_keep = format!("{}\n[backup]\nkeep = 1\n", std::fs::read_to_string(inventory).unwrap());
    std::fs::write(inventory, with_keep).unwrap();
    let backups_dir = "/opt/rcfleet/lab/backups";
    let archive_names = || lab.run("db", &format!("ls {backups_dir} | grep 'archive.gz$' | sort || true"));

    let dry = rcfleet(&["prune", "-i", inventory, "--keep", "1", "--dry-run", "--json"]);
    assert!(dry.status.success(), "{}", text(&dry));
    let plan = json(&dry);
    let host = plan["hosts"].as_array().unwrap().iter().find(|h| h["host"] == app1.as_str()).unwrap();
    let images: Vec<&str> = host["images"].as_array().unwrap().iter().map(|i| i["image"].as_str().unwrap()).collect();
    assert_eq!(images.len(), 1, "8.0.0 is used by the stranger container, so only 8.0.1 goes: {plan}");
    assert!(images[0].ends_with("rocket.chat:8.0.1"), "{plan}");
    assert_eq!(host["containers"], serde_json::json!(["app1-7/rocketchat"]), "{plan}");
    assert_eq!(rocketchat_images(lab, &app1), ["8.0.0", "8.0.1", "8.1.0"], "--dry-run removed something");
    assert!(lab.sh(&app1, "docker inspect leftover >/dev/null").status.success(), "--dry-run removed the leftover");
    let db = plan["hosts"].as_array().unwrap().iter().find(|h| h["host"] == "db").unwrap();
    let listed: Vec<&str> = db["backups"].as_array().unwrap().iter().map(|b| b["name"].as_str().unwrap()).collect();
    assert!(listed.contains(&backups[0].as_str()) && !listed.contains(&backups[1].as_str()), "only backups beyond keep 1: {plan}");
    assert!(archive_names().contains(&backups[0]), "--dry-run deleted a backup");

    let pruned = rcfleet(&["prune", "-i", inventory, "--keep", "1"]);
    assert!(pruned.status.success(), "{}", text(&pruned));
    let said = stdout(&pruned);
    assert!(said.lines().any(|l| l.starts_with("app1 ") && l.contains("removed 1 image(s)") && l.contains("rocket.chat:8.0.1")), "{said}");
    assert!(said.lines().any(|l| l.starts_with("app2 ") && l.contains("removed 2 image(s)")), "{said}");
    assert!(said.lines().any(|l| l.starts_with("db ") && l.contains(&backups[0])), "{said}");
    assert_eq!(archive_names().trim(), backups[1], "the newest backup stays, the rest go");
    assert_eq!(rocketchat_images(lab, &app1), ["8.0.0", "8.1.0"], "8.0.0 stays: a container uses it");
    for host in app_hosts(lab).iter().skip(1) {
        assert_eq!(rocketchat_images(lab, host), ["8.1.0"], "{host}: only the newest release stays");
    }
    for (what, check) in [
        ("the other repository's tag", "docker image inspect someone/else:8.0.0"),
        ("the stranger container", "docker inspect stranger"),
        ("the stranger volume", "docker volume inspect stranger-data"),
    ] {
        assert!(lab.sh(&app1, &format!("{check} >/dev/null")).status.success(), "prune removed {what}");
    }
    assert!(!lab.sh(&app1, "docker inspect leftover >/dev/null 2>&1").status.success(), "rcfleet's leftover container stayed");
    let audit = lab.run(&app1, "cat /opt/rcfleet/lab/audit.log");
    assert!(audit.contains("rcfleet prune\tpruned image") && audit.contains("pruned stopped container app1-7/rocketchat"), "{audit}");
    let db_audit = lab.run("db", "cat /opt/rcfleet/lab/audit.log");
    assert!(db_audit.contains(&format!("pruned backup {}", backups[0])), "{db_audit}");
    let servers = lab_support::traefik_servers(lab);
    assert!(servers.len() == 2 && servers.values().all(|s| s == "UP"), "the fleet still serves after prune: {servers:?}");
    lab.run(&app1, "docker rm stranger >/dev/null; docker rmi someone/else:8.0.0 >/dev/null; docker volume rm stranger-data >/dev/null");
    lab_support::lock_is_free(lab);
}

//! `rcfleet up` against the lab (issue 5): a fleet from nothing that serves through Traefik and
//! is scraped by Prometheus; a second run that changes nothing; drift put back, and only that;
//! a preflight failure that changes nothing anywhere.

mod lab_support;

use std::collections::BTreeSet;
use std::time::Instant;

use lab_support::{eventually, json, rcfleet, text, write_inventory, Lab};

#[test]
fn up_builds_a_serving_fleet_repairs_drift_and_is_idempotent() {
    let Some(lab) = lab_support::lab() else { return };
    lab.reset_fleet();

    // From nothing.
    let started = Instant::now();
    let first = rcfleet(&["up", "-i", lab.inventory(), "--json"]);
    let first_seconds = started.elapsed().as_secs_f64();
    assert!(first.status.success(), "first up failed:\n{}", text(&first));
    let report = json(&first);
    assert_eq!(report["instances"].as_array().unwrap().len(), 6);
    serves_every_instance(&lab);
    prometheus_scrapes_every_instance(&lab);
    replica_set_member_is_the_db_private_address(&lab);
    instances_have_the_right_environment(&lab);

    // Converged: nothing re-sent, nothing recreated.
    let containers = lab.containers();
    let files = lab.deployed_files();
    let started = Instant::now();
    let second = rcfleet(&["up", "-i", lab.inventory(), "--json"]);
    let second_seconds = started.elapsed().as_secs_f64();
    assert!(second.status.success(), "second up failed:\n{}", text(&second));
    let report = json(&second);
    for host in report["hosts"].as_array().unwrap() {
        assert_eq!(host["unchanged"], true, "host changed on a converged up: {host}");
    }
    assert_eq!(lab.containers(), containers, "a converged up recreated or restarted containers");
    assert_eq!(lab.deployed_files(), files, "a converged up rewrote files");
    eprintln!("up from nothing: {first_seconds:.1} s; converged up: {second_seconds:.1} s");

    // A container removed by hand: exactly that one comes back.
    let victim = containers.iter().find(|(_, (unit, _))| unit == "app2/app2-1").map(|(id, _)| id.clone()).expect("app2-1 container");
    lab.run("app2", &format!("docker rm -f {victim}"));
    let repair = rcfleet(&["up", "-i", lab.inventory(), "--json"]);
    assert!(repair.status.success(), "repairing up failed:\n{}", text(&repair));
    let after = lab.containers();
    let replaced: Vec<_> = containers.keys().filter(|id| !after.contains_key(*id)).collect();
    assert_eq!(replaced, vec![&victim], "only the removed container may change");
    let new: Vec<_> = after.iter().filter(|(id, _)| !containers.contains_key(*id)).map(|(_, (unit, _))| unit.clone()).collect();
    assert_eq!(new, vec!["app2/app2-1".to_string()]);
    for (id, state) in &containers {
        if id != &victim {
            assert_eq!(after.get(id), Some(state), "container {id} was restarted");
        }
    }
    serves_every_instance(&lab);

    // A config file edited by hand: put back, nothing else touched.
    let file = "/opt/rcfleet/lab/monitoring/prometheus/prometheus.yml";
    let original = lab.run("db", &format!("sha256sum < {file}"));
    lab.run("db", &format!("echo '# edited by hand' >> {file}"));
    let files = lab.deployed_files();
    let repair = rcfleet(&["up", "-i", lab.inventory(), "--json"]);
    assert!(repair.status.success(), "repairing up failed:\n{}", text(&repair));
    assert_eq!(lab.run("db", &format!("sha256sum < {file}")), original, "the edited file was not put back");
    let changed: Vec<_> = lab.deployed_files().into_iter().filter(|(path, time)| files.get(path) != Some(time)).map(|(p, _)| p).collect();
    assert_eq!(changed, vec![format!("db:{file}")]);
    let report = json(&repair);
    let changed_hosts: Vec<&str> = report["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["unchanged"] == false)
        .map(|h| h["name"].as_str().unwrap())
        .collect();
    assert_eq!(changed_hosts, vec!["db"]);
    let audit = lab.run("db", "cat /opt/rcfleet/lab/audit.log");
    assert!(audit.contains("wrote monitoring/prometheus/prometheus.yml"), "audit log lacks the repair:\n{audit}");
    prometheus_scrapes_every_instance(&lab);
}

#[test]
fn a_failed_preflight_changes_nothing_anywhere() {
    let Some(lab) = lab_support::lab() else { return };
    // Ask for app3's instances on a port some other program holds there.
    let busy_port = 3300;
    let listener = lab.run("app3", &format!("busybox nc -l -p {busy_port} </dev/null >/dev/null 2>&1 & echo $!"));
    assert!(eventually(5, || lab.sh("app3", &format!("cat /proc/net/tcp /proc/net/tcp6 | grep -q ':{busy_port:04X} '")).status.success()));
    let inventory = std::fs::read_to_string(lab.inventory()).unwrap();
    let app3 = format!("address = \"{}\"", lab.addr("app3"));
    let start = inventory.find(&app3).expect("app3 in the lab inventory");
    let moved = format!("{}{}", &inventory[..start], inventory[start..].replacen("port = 3000", &format!("port = {busy_port}"), 1));
    let dir = tempfile::tempdir().unwrap();
    let path = write_inventory(dir.path(), &moved);

    let containers = lab.containers();
    let files = lab.deployed_files();
    let output = rcfleet(&["up", "-i", path.to_str().unwrap()]);
    lab.run("app3", &format!("kill {}", listener.trim()));

    assert_eq!(output.status.code(), Some(1), "preflight should fail:\n{}", text(&output));
    let said = text(&output);
    assert!(said.contains("app3") && said.contains(&format!("port {busy_port}")), "{said}");
    assert!(said.contains("nothing was changed"), "{said}");
    assert_eq!(lab.containers(), containers, "containers changed after a failed preflight");
    assert_eq!(lab.deployed_files(), files, "files changed after a failed preflight");
}

/// Rejects connections from a lab host to the lab registry while it lives.
struct RegistryBlocked<'l> {
    lab: &'l Lab,
    hosts: Vec<String>,
}

impl RegistryBlocked<'_> {
    fn rule(&self, action: &str) -> Vec<String> {
        let gateway = self.lab.var("LAB_GATEWAY").to_string();
        ["iptables", action, "OUTPUT", "-d", &gateway, "-p", "tcp", "--dport", "5000", "-j", "REJECT"].map(str::to_string).to_vec()
    }
}

impl Drop for RegistryBlocked<'_> {
    fn drop(&mut self) {
        for host in &self.hosts {
            let rule = self.rule("-D");
            self.lab.exec(host, &rule.iter().map(String::as_str).collect::<Vec<_>>());
        }
    }
}

#[test]
fn push_images_deploys_hosts_that_cannot_reach_the_registry() {
    let Some(lab) = lab_support::lab() else { return };
    lab.reset_fleet();
    let inventory = std::fs::read_to_string(lab.inventory()).unwrap();
    let release = inventory.lines().find_map(|l| l.strip_prefix("release = ")).unwrap().trim_matches('"').to_string();
    let registry = lab.var("LAB_REGISTRY");
    // The "local" engine rcfleet pushes from: the db host's, given every image the fleet needs.
    let images = [
        format!("rocketchat/rocket.chat:{release}"),
        format!("traefik:{}", lab.var("LAB_TAG_TRAEFIK")),
        format!("nats:{}", lab.var("LAB_TAG_NATS")),
        format!("prom/prometheus:{}", lab.var("LAB_TAG_PROMETHEUS")),
        format!("grafana/grafana:{}", lab.var("LAB_TAG_GRAFANA")),
        format!("mongodb/mongodb-community-server:{}", lab.var("LAB_TAG_MONGODB")),
        format!("mongo:{}", lab.var("LAB_TAG_MONGODB_TOOLS")),
        format!("prometheus/node-exporter:{}", lab.var("LAB_TAG_NODE_EXPORTER")),
        format!("prometheus/blackbox-exporter:{}", lab.var("LAB_TAG_BLACKBOX_EXPORTER")),
    ];
    for image in images {
        lab.run("db", &format!("docker pull -q {registry}/{image}"));
    }
    let hosts: Vec<String> = ["lb", "app1", "app2", "app3"].map(str::to_string).to_vec();
    let blocked = RegistryBlocked { lab: &lab, hosts: hosts.clone() };
    for host in &hosts {
        let rule = blocked.rule("-I");
        let output = lab.exec(host, &rule.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(output.status.success(), "{}", text(&output));
        lab.run(host, "docker images -q | xargs -r docker rmi -f >/dev/null");
    }
    let pull = lab.sh("app1", &format!("docker pull {registry}/rocketchat/rocket.chat:{release}"));
    assert!(!pull.status.success(), "app1 can still reach the registry");

    let output = std::process::Command::new(env!("CARGO_BIN_EXE_rcfleet"))
        .args(["up", "-i", lab.inventory(), "--push-images"])
        .env("DOCKER_HOST", lab.var("LAB_DOCKER_DB"))
        .output()
        .unwrap();
    assert!(output.status.success(), "up --push-images failed:\n{}", text(&output));
    assert!(text(&output).contains("from the local engine"), "{}", text(&output));
    serves_every_instance(&lab);
    drop(blocked);
}

fn serves_every_instance(lab: &Lab) {
    // On a fleet's first `up`, Traefik's router is new: Traefik switches its entrypoints to a
    // new configuration one after the other, in Go map order (`TCPEntryPoints.Switch`,
    // pkg/server/server_entrypoint_tcp.go), so its API (`up` confirms the listing there) can
    // show the new routers a moment before the web entrypoint routes them (a 404 from Traefik).
    let routed = eventually(5, || lab.get_through_traefik("/").is_ok_and(|(status, _)| status == 200));
    assert!(routed, "Traefik's web entrypoint did not route to the instances within 5 s");
    let mut seen = BTreeSet::new();
    for _ in 0..60 {
        let (status, body) = lab.get_through_traefik("/").expect("Traefik answers");
        assert_eq!(status, 200, "{body}");
        seen.insert(body.trim().to_string());
    }
    assert_eq!(seen.len(), 6, "60 requests through Traefik reached {} instances: {seen:?}", seen.len());
}

fn prometheus_scrapes_every_instance(lab: &Lab) {
    let db = lab.addr("db");
    let mut last = String::new();
    let all_up = eventually(60, || {
        let Ok((_, body)) = lab_support::http_get(&format!("{db}:9090"), db, "/api/v1/targets?state=active") else { return false };
        let targets: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        let up = targets["data"]["activeTargets"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|t| t["scrapePool"] == "rocketchat" && t["health"] == "up")
            .count();
        last = format!("{up} instance targets up");
        up == 6
    });
    assert!(all_up, "Prometheus: {last}");
}

fn replica_set_member_is_the_db_private_address(lab: &Lab) {
    let container = lab.run("db", "docker ps -q --filter label=io.rcfleet.unit=database --filter label=com.docker.compose.service=mongodb");
    // MongoDB has access control: as rcfleet's admin, whose password `secrets show` prints.
    let password = secret(lab, "mongodb-admin-password");
    let config = lab.run(
        "db",
        &format!(
            "docker exec {} mongosh --quiet 'mongodb://rcfleet-admin:{password}@127.0.0.1:27017/?directConnection=true&authSource=admin' --eval 'JSON.stringify(rs.conf())'",
            container.trim()
        ),
    );
    let config: serde_json::Value = serde_json::from_str(config.trim()).expect("rs.conf() as JSON");
    assert_eq!(config["_id"], "rs0");
    assert_eq!(config["members"][0]["host"], format!("{}:27017", lab.addr("db")));
}

/// A secret's value, as `rcfleet secrets show` prints it.
fn secret(lab: &Lab, name: &str) -> String {
    let shown = rcfleet(&["-i", lab.inventory(), "secrets", "show", name]);
    assert!(shown.status.success(), "{}", text(&shown));
    String::from_utf8_lossy(&shown.stdout).trim().to_string()
}

fn instances_have_the_right_environment(lab: &Lab) {
    let db = lab.addr("db");
    // With the credentials of the application user and of NATS (generated by `up`).
    let (mongo, nats) = (secret(lab, "mongodb-app-password"), secret(lab, "nats-password"));
    for host in ["app1", "app2", "app3"] {
        for index in 0..2 {
            let unit = format!("{host}-{index}");
            let env = lab.run(
                host,
                &format!("docker inspect --format '{{{{range .Config.Env}}}}{{{{println .}}}}{{{{end}}}}' $(docker ps -q --filter label=io.rcfleet.unit={unit})"),
            );
            let has = |line: String| assert!(env.lines().any(|l| l == line), "{unit} lacks {line}:\n{env}");
            has(format!("MONGO_URL=mongodb://rocketchat:{mongo}@{db}:27017/rocketchat?replicaSet=rs0&authSource=admin"));
            has(format!("TRANSPORTER=monolith+nats://rocketchat:{nats}@{db}:4222"));
            has(format!("INSTANCE_IP={}", lab.addr(host)));
            has(format!("PORT={}", 3000 + index));
            has(format!("PROMETHEUS_PORT={}", 9458 + index));
            assert!(!env.contains("OVERWRITE_SETTING_Prometheus_Port"), "{unit}: a per-instance port in the shared setting:\n{env}");
        }
    }
}

//! The one rollout engine against the lab (issue 15), on one fleet, under load through Traefik
//! counting every failed request: an edited `[rocketchat.env]` makes `up` replace the
//! instances canary first, one batch at a time, with no failed request; a release changed by
//! hand makes `up` refuse (exit 2), naming `rcfleet upgrade`, with nothing restarted; an
//! upgrade whose canary migrates the database and then fails starts no instance on the old
//! release over the migrated database, names the ways on, and fails no request. Start-first
//! upgrades (issue 17) on the same fleet: no failed request and never fewer instances UP in
//! Traefik than the fleet has; names kept, ports alternating; a broken canary costs only its
//! new container.

mod lab_support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use lab_support::{inventory_at, json, lock_is_free, rcfleet, text, traefik_lists_only_ready_instances, traefik_servers, versions, Lab, Load};

/// Samples Traefik's API on lb about every 100 ms (one SSH session running a loop): the
/// fewest servers UP it saw, and how many samples.
struct UpSampler {
    child: Child,
    seen: Arc<Mutex<(usize, usize)>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl UpSampler {
    fn start(lab: &Lab) -> UpSampler {
        let script = "while :; do curl -s http://127.0.0.1:8080/api/http/services/rocketchat@file; echo; sleep 0.1; done";
        let mut child = Command::new("ssh")
            .args(["-q", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o"])
            .arg(format!("UserKnownHostsFile={}", lab.var("LAB_KNOWN_HOSTS")))
            .args(["-i", lab.var("LAB_SSH_KEY")])
            .arg(format!("root@{}", lab.addr("lb")))
            .arg(script)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("ssh to lb");
        let stdout = child.stdout.take().unwrap();
        let seen = Arc::new(Mutex::new((usize::MAX, 0)));
        let shared = seen.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let Ok(service) = serde_json::from_str::<serde_json::Value>(&line) else { continue };
                let Some(servers) = service["serverStatus"].as_object() else { continue };
                let up = servers.values().filter(|s| *s == "UP").count();
                let mut seen = shared.lock().unwrap();
                *seen = (seen.0.min(up), seen.1 + 1);
            }
        });
        UpSampler { child, seen, reader: Some(reader) }
    }

    /// (fewest UP, samples).
    fn finish(mut self) -> (usize, usize) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = self.reader.take().unwrap().join();
        *self.seen.lock().unwrap()
    }
}

/// The `.slot` file and instance folders of app1's instances, for `ls`-style comparisons.
fn app1_folders(lab: &Lab) -> String {
    lab.run("app1", "cd /opt/rcfleet/lab/rocketchat && LC_ALL=C ls -1 && cat app1-0.slot 2>/dev/null || true")
}

/// The image of the running container of `unit` (`app1-0`) on `host`.
fn image_of(lab: &Lab, host: &str, unit: &str) -> String {
    lab.run(
        host,
        &format!("docker ps --filter label=io.rcfleet.unit={unit} --format '{{{{.Image}}}}'"),
    )
    .trim()
    .to_string()
}

/// The lines of a report that take instances out of Traefik, in order.
fn drains(said: &str) -> Vec<String> {
    said.lines()
        .filter(|l| l.contains(" out of Traefik; waiting"))
        .map(|l| l.split("drain").nth(1).unwrap_or(l).trim().to_string())
        .collect()
}

#[test]
fn changes_roll_batch_by_batch_and_a_migrated_database_is_never_rolled_back() {
    let Some(lab) = lab_support::lab() else { return };
    let dir = tempfile::tempdir().unwrap();
    lab.reset_fleet();
    let settings = [("batch_size", "2"), ("readiness_timeout_seconds", "30")];
    let path = inventory_at(&lab, dir.path(), "8.0.0", &settings);
    let inventory = path.to_str().unwrap();
    let up = rcfleet(&["up", "-i", inventory]);
    assert!(up.status.success(), "{}", text(&up));
    let original = std::fs::read_to_string(&path).unwrap();

    // [rocketchat.env] edited: every instance is replaced, canary first, then two at a time.
    let before = lab.containers();
    std::fs::write(&path, format!("{original}OVERWRITE_SETTING_Site_Name = \"Rolled\"\n")).unwrap();
    let load = Load::start(&lab);
    let rolled = rcfleet(&["up", "-i", inventory]);
    let (ok, failed, errors) = load.finish();
    let said = text(&rolled);
    assert!(rolled.status.success(), "{said}");
    assert_eq!(failed, 0, "{failed} of {} requests failed while up rolled the change: {errors:?}", ok + failed);
    assert!(ok > 50, "the load generator hardly ran ({ok} requests)");
    assert_eq!(
        drains(&said),
        [
            "canary: app1-0 out of Traefik; waiting 2 s",
            "batch 1: app1-1, app2-0 out of Traefik; waiting 2 s",
            "batch 2: app2-1, app3-0 out of Traefik; waiting 2 s",
            "batch 3: app3-1 out of Traefik; waiting 2 s"
        ],
        "{said}"
    );
    let after = lab.containers();
    for (id, (unit, _)) in &before {
        let instance = unit.contains("/app");
        assert_eq!(after.contains_key(id), !instance, "{unit}: instances are replaced, nothing else is: {after:?}");
    }
    assert_eq!(traefik_servers(&lab).len(), 6);
    traefik_lists_only_ready_instances(&lab);
    let env = lab.run(
        "app2",
        "docker inspect --format '{{range .Config.Env}}{{println .}}{{end}}' $(docker ps -q --filter label=io.rcfleet.unit=app2-1)",
    );
    assert!(env.contains("OVERWRITE_SETTING_Site_Name=Rolled"), "app2-1 does not run with the change: {env}");
    eprintln!("env change rolled: {ok} requests, 0 failed");

    // The release changed by hand: refused, nothing restarted, no lock left.
    let before = lab.containers();
    let by_hand = std::fs::read_to_string(&path).unwrap().replace("release = \"8.0.0\"", "release = \"9.0.0\"");
    std::fs::write(&path, &by_hand).unwrap();
    let refused = rcfleet(&["up", "-i", inventory]);
    let said = text(&refused);
    assert_eq!(refused.status.code(), Some(2), "{said}");
    assert!(said.contains("rcfleet upgrade") && said.contains("8.0.0") && said.contains("9.0.0"), "{said}");
    assert_eq!(lab.containers(), before, "a refused up restarted containers");
    lock_is_free(&lab);
    std::fs::write(&path, by_hand.replace("release = \"9.0.0\"", "release = \"8.0.0\"")).unwrap();

    // Start-first under load: every instance moves to its spare ports (+1000) keeping its name,
    // Traefik never has fewer instances UP than the fleet has, no request fails.
    let app1 = lab.addr("app1").to_string();
    let load = Load::start(&lab);
    let sampler = UpSampler::start(&lab);
    let upgrade = rcfleet(&["upgrade", "-i", inventory, "--release", "8.0.1", "--strategy", "start-first", "--skip-backup"]);
    let (fewest_up, samples) = sampler.finish();
    let (ok, failed, errors) = load.finish();
    let said = text(&upgrade);
    assert!(upgrade.status.success(), "{said}");
    assert_eq!(failed, 0, "{failed} of {} requests failed during the start-first upgrade: {errors:?}", ok + failed);
    assert!(samples > 20, "Traefik was hardly sampled ({samples} samples)");
    assert_eq!(fewest_up, 6, "Traefik had only {fewest_up} instances UP at one point of a start-first upgrade");
    assert!(said.contains("start-first (--strategy start-first)"), "{said}");
    assert_eq!(versions(&lab), vec!["8.0.1"; 6]);
    let servers = traefik_servers(&lab);
    assert_eq!(servers.len(), 6, "{servers:?}");
    assert!(servers.contains_key(&format!("http://{app1}:4000")) && servers.contains_key(&format!("http://{app1}:4001")), "{servers:?}");
    traefik_lists_only_ready_instances(&lab);
    assert_eq!(app1_folders(&lab), "app1-0-b\napp1-0.slot\napp1-1-b\napp1-1.slot\nspare\n", "old folders left behind");
    let status = rcfleet(&["status", "-i", inventory, "--json"]);
    let report = json(&status);
    let app1_0 = report["instances"].as_array().unwrap().iter().find(|i| i["name"] == "app1-0").expect("app1-0 in status").clone();
    assert_eq!((app1_0["port"].as_u64(), app1_0["metrics_port"].as_u64(), app1_0["slot"].as_str()), (Some(4000), Some(10458), Some("spare")), "{app1_0}");
    assert!(status.status.success(), "status after a start-first upgrade: {}", text(&status));
    assert!(text(&rcfleet(&["status", "-i", inventory])).contains("4000/10458"));
    let exec = rcfleet(&["exec", "-i", inventory, "app1-0", "--", "printenv", "PORT"]);
    assert_eq!(String::from_utf8_lossy(&exec.stdout).trim(), "4000", "{}", text(&exec));
    eprintln!("start-first upgrade: {ok} requests, 0 failed, {samples} Traefik samples, never fewer than 6 UP");

    // The next start-first upgrade goes back to the first ports.
    let load = Load::start(&lab);
    let sampler = UpSampler::start(&lab);
    let upgrade = rcfleet(&["upgrade", "-i", inventory, "--release", "8.1.0", "--strategy", "start-first", "--skip-backup"]);
    let (fewest_up, samples) = sampler.finish();
    let (ok, failed, errors) = load.finish();
    assert!(upgrade.status.success(), "{}", text(&upgrade));
    assert_eq!(failed, 0, "{failed} of {} requests failed: {errors:?}", ok + failed);
    assert_eq!(fewest_up, 6, "only {fewest_up} UP at one point ({samples} samples)");
    assert_eq!(versions(&lab), vec!["8.1.0"; 6]);
    assert!(traefik_servers(&lab).contains_key(&format!("http://{app1}:3000")));
    assert_eq!(app1_folders(&lab), "app1-0\napp1-0.slot\napp1-1\napp1-1.slot\nprimary\n");
    let before = lab.containers();
    let converged = rcfleet(&["up", "-i", inventory]);
    assert!(converged.status.success(), "up after it: {}", text(&converged));
    assert_eq!(lab.containers(), before, "up after a start-first upgrade changed containers");

    // A start-first canary that never becomes ready: its new container goes, the old one never
    // stopped, no request fails.
    let before = lab.containers();
    let load = Load::start(&lab);
    let sampler = UpSampler::start(&lab);
    let broken = rcfleet(&["upgrade", "-i", inventory, "--release", "8.2.0", "--strategy", "start-first", "--skip-backup"]);
    let (fewest_up, _) = sampler.finish();
    let (ok, failed, errors) = load.finish();
    let said = text(&broken);
    assert_eq!(broken.status.code(), Some(1), "{said}");
    assert!(said.contains("failed on the spare ports") && said.contains("keep serving"), "{said}");
    assert_eq!(failed, 0, "{failed} of {} requests failed: {errors:?}", ok + failed);
    assert_eq!(fewest_up, 6);
    assert_eq!(lab.containers(), before, "the running containers were touched, or the spare one is left");
    assert_eq!(app1_folders(&lab), "app1-0\napp1-0.slot\napp1-1\napp1-1.slot\nprimary\n", "the spare folder is left");
    assert_eq!(traefik_servers(&lab).len(), 6);
    traefik_lists_only_ready_instances(&lab);
    lock_is_free(&lab);
    eprintln!("start-first broken canary: {ok} requests, 0 failed");

    // A canary that migrates the database and then never becomes ready: 8.1.0 is not started
    // again over the migrated database; the others serve on; the report names the ways on.
    let before = lab.containers();
    let broken = lab.var("LAB_TAG_BROKEN_AFTER_MIGRATION").to_string();
    let load = Load::start(&lab);
    let upgrade = rcfleet(&["upgrade", "-i", inventory, "--release", &broken, "--strategy", "stop-first"]);
    let (ok, failed, errors) = load.finish();
    let said = text(&upgrade);
    assert_eq!(upgrade.status.code(), Some(1), "{said}");
    assert_eq!(failed, 0, "{failed} of {} requests failed during the failed upgrade: {errors:?}", ok + failed);
    assert!(said.contains("migration version 801 -> 803"), "{said}");
    assert!(said.contains("nothing was rolled back") && !said.contains("rolled back (the failing batch)"), "{said}");
    assert!(said.contains("roll forward") && said.contains("rcfleet restore") && said.contains("DOWN"), "{said}");
    assert!(image_of(&lab, "app1", "app1-0").ends_with(&format!(":{broken}")), "the canary was put back on the old release");
    let after = lab.containers();
    for (id, (unit, started)) in &before {
        if unit != "app1/app1-0" {
            assert_eq!(after.get(id).map(|(_, s)| s), Some(started), "{unit} was restarted");
        }
    }
    let servers = traefik_servers(&lab);
    assert_eq!(servers.len(), 5, "app1-0 stays out of Traefik, the others stay in: {servers:?}");
    assert!(!servers.keys().any(|url| url.ends_with(&format!("{}:3000", lab.addr("app1")))), "{servers:?}");
    traefik_lists_only_ready_instances(&lab);
    assert!(std::fs::read_to_string(&path).unwrap().contains("release = \"8.1.0\""), "inventory rewritten");
    lock_is_free(&lab);
    eprintln!("migrated canary held: {ok} requests, 0 failed");
}

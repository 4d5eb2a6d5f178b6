//! `rcfleet add-instance` and `remove-instance` against the lab (issue 7): a fleet of two app
//! hosts with one instance each grows by an instance on app1 and by a new host app3; Traefik
//! and Prometheus see every instance, nothing that ran before is restarted, and the inventory
//! gains only the lines that describe the additions. Then one instance is removed while
//! requests flow through Traefik the whole time: none fails.

mod lab_support;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use lab_support::{eventually, json, rcfleet, text, write_inventory, Lab};

/// The lab inventory with app1 and app2 running one instance each and no app3.
fn two_hosts_one_instance_each(lab: &Lab) -> String {
    let inventory = std::fs::read_to_string(lab.inventory()).unwrap();
    let app3 = inventory.find("[[hosts]]\nname = \"app3\"").expect("app3 in the lab inventory");
    let end = app3 + inventory[app3..].find("\n\n").expect("a blank line after app3's block") + 2;
    let without_app3 = format!("{}{}", &inventory[..app3], &inventory[end..]);
    assert!(!without_app3.contains("name = \"app3\""));
    without_app3.replace("instances = 2", "instances = 1")
}

/// The instance URLs that answered 60 requests through Traefik (the stand-in names itself).
fn instances_behind_traefik(lab: &Lab) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    for _ in 0..60 {
        let (status, body) = lab.get_through_traefik("/").expect("Traefik answers");
        assert_eq!(status, 200, "{body}");
        let address = body.trim().rsplit(' ').next().unwrap_or_default().to_string();
        seen.insert(address);
    }
    seen
}

fn instance_addresses(lab: &Lab, instances: &[(&str, u16)]) -> BTreeSet<String> {
    instances.iter().map(|(host, port)| format!("{}:{port}", lab.addr(host))).collect()
}

/// Waits until Prometheus' rocketchat targets are exactly `expected` (`host:port`), all up.
fn prometheus_scrapes(lab: &Lab, expected: &BTreeSet<String>) {
    let db = lab.addr("db");
    let mut last = String::new();
    let matched = eventually(60, || {
        let Ok((_, body)) = lab_support::http_get(&format!("{db}:9090"), db, "/api/v1/targets?state=active") else { return false };
        let answer: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        let targets: Vec<(String, String)> = answer["data"]["activeTargets"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|t| t["scrapePool"] == "rocketchat")
            .map(|t| (t["labels"]["instance"].as_str().unwrap_or_default().to_string(), t["health"].as_str().unwrap_or_default().to_string()))
            .collect();
        last = format!("{targets:?}");
        let listed: BTreeSet<String> = targets.iter().map(|(t, _)| t.clone()).collect();
        &listed == expected && targets.iter().all(|(_, health)| health == "up")
    });
    assert!(matched, "Prometheus targets: {last}, expected {expected:?} all up");
}

fn metrics_targets(lab: &Lab, instances: &[(&str, u16)]) -> BTreeSet<String> {
    instances.iter().map(|(host, port)| format!("{}:{}", lab.addr(host), port + 6458)).collect()
}

#[test]
fn instances_are_added_and_removed_without_touching_the_others() {
    let Some(lab) = lab_support::lab() else { return };
    lab.reset_fleet();
    let dir = tempfile::tempdir().unwrap();
    let path = write_inventory(dir.path(), &two_hosts_one_instance_each(&lab));
    let inventory = path.to_str().unwrap();
    let up = rcfleet(&["up", "-i", inventory]);
    assert!(up.status.success(), "up failed:\n{}", text(&up));
    let before = lab.containers();
    assert_eq!(before.values().filter(|(unit, _)| unit.ends_with("-0")).count(), 2, "{before:?}");

    refusals_change_nothing(&lab, &path);

    // One more instance on app1.
    let original = std::fs::read_to_string(&path).unwrap();
    let added = rcfleet(&["add-instance", "-i", inventory, "--host", "app1", "--json"]);
    assert!(added.status.success(), "add-instance --host app1 failed:\n{}", text(&added));
    assert_eq!(json(&added)["added"], serde_json::json!(["app1-1"]));
    let after_app1 = std::fs::read_to_string(&path).unwrap();
    let app1 = original.find("name = \"app1\"").unwrap();
    let expected = format!("{}{}", &original[..app1], original[app1..].replacen("instances = 1", "instances = 2", 1));
    assert_eq!(after_app1, expected, "the inventory changed beyond app1's count");

    // A new host, app3.
    let added = rcfleet(&["add-instance", "-i", inventory, "--host", "app3", "--address", lab.addr("app3")]);
    assert!(added.status.success(), "add-instance --host app3 --address failed:\n{}", text(&added));
    let after_app3 = std::fs::read_to_string(&path).unwrap();
    let block = format!(
        "[[hosts]]\nname = \"app3\"\naddress = \"{}\"\nroles = [\"rocketchat\"]\ninstances = 1\nport = 3000\nmetrics_port = 9458\n\n",
        lab.addr("app3")
    );
    assert!(after_app3.contains(&block), "no app3 block like the others:\n{after_app3}");
    assert_eq!(after_app3.replacen(&block, "", 1), after_app1, "the inventory changed beyond the added block");
    let app2_end = after_app1.find("[images]").unwrap();
    assert_eq!(after_app3.find(&block), Some(app2_end), "the block is not right after the last host");

    let four = [("app1", 3000), ("app1", 3001), ("app2", 3000), ("app3", 3000)];
    assert_eq!(instances_behind_traefik(&lab), instance_addresses(&lab, &four));
    prometheus_scrapes(&lab, &metrics_targets(&lab, &four));
    let now = lab.containers();
    for (id, state) in &before {
        assert_eq!(now.get(id), Some(state), "container {id} ({}) was recreated or restarted", state.0);
    }
    assert_eq!(now.len(), before.len() + 2, "{now:?}");

    // Remove app1-0 with requests flowing through Traefik the whole time.
    let before = lab.containers();
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let failures = Arc::new(std::sync::Mutex::new(Vec::new()));
    let address = format!("{}:80", lab.addr("lb"));
    let domain = lab.var("LAB_DOMAIN").to_string();
    let load = {
        let (stop, ok, failed, failures) = (stop.clone(), ok.clone(), failed.clone(), failures.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                match lab_support::http_get(&address, &domain, "/") {
                    Ok((status, _)) if (200..300).contains(&status) => {
                        ok.fetch_add(1, Ordering::SeqCst);
                    }
                    other => {
                        failed.fetch_add(1, Ordering::SeqCst);
                        failures.lock().unwrap().push(format!("{other:?}"));
                    }
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    std::thread::sleep(Duration::from_secs(1));
    let removed = rcfleet(&["remove-instance", "-i", inventory, "app1-0"]);
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::SeqCst);
    load.join().unwrap();
    assert!(removed.status.success(), "remove-instance failed:\n{}", text(&removed));
    let (ok, failed) = (ok.load(Ordering::SeqCst), failed.load(Ordering::SeqCst));
    eprintln!("requests through Traefik during remove-instance: {ok} answered, {failed} failed");
    assert!(ok > 100, "the load sent only {ok} requests");
    assert_eq!(failed, 0, "requests failed during remove-instance: {:?}", failures.lock().unwrap());

    let three = [("app1", 3001), ("app2", 3000), ("app3", 3000)];
    assert_eq!(instances_behind_traefik(&lab), instance_addresses(&lab, &three));
    prometheus_scrapes(&lab, &metrics_targets(&lab, &three));
    let now = lab.containers();
    let gone: Vec<&String> = before.iter().filter(|(id, _)| !now.contains_key(*id)).map(|(_, (unit, _))| unit).collect();
    assert_eq!(gone, vec!["app1/app1-0"]);
    assert_eq!(now.len(), before.len() - 1, "{now:?}");
    for (id, state) in &now {
        assert_eq!(before.get(id), Some(state), "container {id} ({}) was recreated or restarted", state.0);
    }
    assert_eq!(lab.run("app1", "ls /opt/rcfleet/lab/rocketchat").trim(), "app1-1");
    let after_remove = std::fs::read_to_string(&path).unwrap();
    let app1 = after_app3.find("name = \"app1\"").unwrap();
    let expected = format!("{}{}", &after_app3[..app1], after_app3[app1..].replacen("instances = 2\n", "instances = 2\nretired = [0]\n", 1));
    assert_eq!(after_remove, expected, "app1-1 must keep its name and port: app1 gets retired = [0] and nothing else changes");
    let audit = lab.run("app1", "cat /opt/rcfleet/lab/audit.log");
    assert!(audit.contains("rcfleet remove-instance app1-0"), "{audit}");

    // The last instances of the fleet cannot all go.
    let refused = rcfleet(&["remove-instance", "-i", inventory, "app1-1", "app2-0", "app3-0"]);
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));
    assert!(text(&refused).contains("without any Rocket.Chat instance"), "{}", text(&refused));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), after_remove);
}

/// Bad usage and inventories that would be invalid are refused with exit 2 before any host
/// is contacted; the inventory file and the fleet stay as they were.
fn refusals_change_nothing(lab: &Lab, path: &Path) {
    let inventory = path.to_str().unwrap();
    let original = std::fs::read_to_string(path).unwrap();
    let containers = lab.containers();
    let files = lab.deployed_files();
    let cases: [(&[&str], &str); 5] = [
        (&["add-instance", "--host", "app9"], "no host \"app9\" in the inventory"),
        (&["add-instance", "--host", "db"], "has no \"rocketchat\" role"),
        (&["add-instance", "--host", "app1", "--count", "0"], "0 is not in 1..=100"),
        (&["add-instance", "--host", "app4", "--address", lab.addr("app1")], "hosts[4].address: address"),
        (&["remove-instance", "app9-0"], "no instance \"app9-0\""),
    ];
    for (args, expected) in cases {
        let mut all = args.to_vec();
        all.extend(["-i", inventory]);
        let output = rcfleet(&all);
        assert_eq!(output.status.code(), Some(2), "{args:?}:\n{}", text(&output));
        assert!(text(&output).contains(expected), "{args:?}: expected {expected:?} in:\n{}", text(&output));
        assert!(!text(&output).contains("connect "), "{args:?} contacted hosts:\n{}", text(&output));
    }
    let duplicate = rcfleet(&["add-instance", "-i", inventory, "--host", "app4", "--address", lab.addr("app1")]);
    let said = text(&duplicate);
    let line = said.lines().find(|l| l.contains("hosts[4].address")).unwrap_or_default();
    assert!(line.starts_with(&format!("error: {inventory}:")), "no file:line:col in {line:?}");
    assert_eq!(std::fs::read_to_string(path).unwrap(), original, "a refused command changed the inventory");
    assert_eq!(lab.containers(), containers);
    assert_eq!(lab.deployed_files(), files);
}

//! Faults in the lab (issue 8): a host lost in the middle of an upgrade, Ctrl-C in the middle
//! of an upgrade, sshd down during `up`, a Docker engine down, and a Traefik that refuses its
//! configuration. After each, Traefik must list only instances that answer, the lock must be
//! free, and running the same command again must finish the job.

mod lab_support;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use lab_support::{json, lock_is_free, Load, Running, rcfleet, text, traefik_lists_only_ready_instances, traefik_servers, versions, Lab};

/// A fleet of the lab at 8.0.0 from nothing, with a drain long enough to act during it.
fn fleet_at_8_0_0(lab: &Lab, dir: &Path) -> String {
    lab.reset_fleet();
    let settings = [("drain_seconds", "4"), ("readiness_timeout_seconds", "30")];
    let inventory = lab_support::inventory_at(lab, dir, "8.0.0", &settings).to_str().unwrap().to_string();
    let up = rcfleet(&["up", "-i", &inventory]);
    assert!(up.status.success(), "{}", text(&up));
    inventory
}


/// An 8.0.0 fleet whose `rcfleet upgrade --release 8.1.0` (the inventory's strategy) gets
/// `signal` once it printed `moment` (e.g. "app2-0 out of Traefik"): (inventory, exit code,
/// everything it printed).
fn upgrade_signalled_at(lab: &Lab, dir: &Path, moment: &str, signal: &str, seconds: u64) -> (String, Option<i32>, String) {
    let inventory = fleet_at_8_0_0(lab, dir);
    let mut upgrade = Running::start(&["upgrade", "-i", &inventory, "--release", "8.1.0", "--skip-backup"]);
    upgrade.wait_for(moment, 240);
    upgrade.signal(signal);
    let (code, said) = upgrade.finish(seconds);
    (inventory, code, said)
}


/// Every instance runs in one container (no second one left on its other ports) from one
/// instance folder, beside its slot file.
fn one_container_and_folder_per_instance(lab: &Lab) {
    let mut per_instance: BTreeMap<String, usize> = BTreeMap::new();
    for (unit, _) in lab.containers().values() {
        if unit.split('/').nth(1).is_some_and(|name| name.starts_with("app")) {
            *per_instance.entry(unit.clone()).or_default() += 1;
        }
    }
    assert!(per_instance.len() == 6 && per_instance.values().all(|n| *n == 1), "instance containers: {per_instance:?}");
    for host in ["app1", "app2", "app3"] {
        let folders = lab.run(host, "cd /opt/rcfleet/lab/rocketchat && for d in */; do echo \"${d%/}\"; done");
        assert_eq!(folders.lines().count(), 2, "{host} has other instance folders than its two instances': {folders}");
    }
}

#[test]
fn a_host_lost_mid_upgrade_is_rolled_around_and_the_rerun_finishes() {
    let Some(lab) = lab_support::lab() else { return };
    let dir = tempfile::tempdir().unwrap();
    let inventory = fleet_at_8_0_0(&lab, dir.path());
    let inventory = inventory.as_str();

    let mut upgrade = Running::start(&["upgrade", "-i", inventory, "--release", "8.1.0", "--skip-backup"]);
    upgrade.wait_for("app2-0 out of Traefik", 240);
    let partition = lab.exec_lab(&["partition", "app2"]);
    assert!(partition.status.success(), "{}", text(&partition));
    let (code, said) = upgrade.finish(400);
    let heal = lab.exec_lab(&["heal", "app2"]);
    assert!(heal.status.success(), "{}", text(&heal));

    assert_eq!(code, Some(1), "{said}");
    assert!(said.contains("app2"), "the report does not name the lost host:\n{said}");
    assert!(said.contains("Now:"), "the report does not give the state of the instances:\n{said}");
    traefik_lists_only_ready_instances(&lab);
    lock_is_free(&lab);

    // Healed: the same command finishes the job.
    let rerun = rcfleet(&["upgrade", "-i", inventory, "--release", "8.1.0", "--skip-backup"]);
    assert!(rerun.status.success(), "the rerun failed:\n{}", text(&rerun));
    assert_eq!(versions(&lab), vec!["8.1.0"; 6]);
    assert_eq!(traefik_servers(&lab).len(), 6);
    traefik_lists_only_ready_instances(&lab);
    one_container_and_folder_per_instance(&lab);
}

#[test]
fn an_upgrade_killed_mid_batch_is_named_meanwhile_and_finished_by_the_next_upgrade() {
    let Some(lab) = lab_support::lab() else { return };
    let dir = tempfile::tempdir().unwrap();
    // Killed with no chance to clean up while rcfleet waits for app2-0 (third, after app1-0
    // and app1-1) to be ready on the new release: start-first, beside its old container on its
    // spare ports (the slot file not yet flipped; it was launched while app1-1 went into
    // Traefik, and its wait comes once app1-1 is done); stop-first, on its own ports, out of
    // Traefik.
    let (inventory, code, killed) = upgrade_signalled_at(&lab, dir.path(), "app2-0 ready", "KILL", 30);
    let inventory = inventory.as_str();
    assert_eq!(code, None, "rcfleet was not killed");
    let start_first = killed.contains("start-first (auto:");

    // Meanwhile: status, lock status and up name the unfinished upgrade and its command, and
    // status the second container start-first left beside app2-0.
    let status = rcfleet(&["status", "-i", inventory]);
    let said = text(&status);
    assert_eq!(status.status.code(), Some(3), "{said}");
    assert!(said.contains("was interrupted") && said.contains("Run `rcfleet upgrade --release 8.1.0` again"), "{said}");
    if start_first {
        assert!(said.contains("rocketchat/app2-0-b (app2-0's other ports, left by an interrupted start-first upgrade"), "{said}");
    }
    let lock = rcfleet(&["lock", "status", "-i", inventory]);
    let said = text(&lock);
    assert!(said.contains("replaced to 8.1.0: app1-0, app1-1") && said.contains("in flight: app2-0"), "{said}");
    let before = lab.containers();
    let up = rcfleet(&["up", "-i", inventory]);
    let said = text(&up);
    assert_eq!(up.status.code(), Some(1), "{said}");
    assert!(said.contains("was interrupted") && said.contains("Run `rcfleet upgrade --release 8.1.0` again"), "{said}");
    assert_eq!(lab.containers(), before, "a refused up restarted containers");

    // The next upgrade takes over the dead run's lock and finishes where it stopped.
    let rerun = rcfleet(&["upgrade", "-i", inventory, "--release", "8.1.0", "--skip-backup"]);
    let said = text(&rerun);
    assert!(rerun.status.success(), "the rerun failed:\n{said}");
    assert!(said.contains("already on 8.1.0: app1-0, app1-1"), "{said}");
    assert!(!said.contains("canary: app1-0 out of Traefik"), "the rerun replaced app1-0 again:\n{said}");
    assert_eq!(versions(&lab), vec!["8.1.0"; 6]);
    assert_eq!(traefik_servers(&lab).len(), 6);
    traefik_lists_only_ready_instances(&lab);
    lock_is_free(&lab);
    assert!(std::fs::read_to_string(inventory).unwrap().contains("release = \"8.1.0\""));
    one_container_and_folder_per_instance(&lab);
}

#[test]
fn ctrl_c_mid_upgrade_finishes_the_instance_in_flight() {
    let Some(lab) = lab_support::lab() else { return };
    let dir = tempfile::tempdir().unwrap();
    // Start-first: once app1-1's new container serves and its old one drains; stop-first: while
    // it is out of Traefik.
    let (inventory, code, said) = upgrade_signalled_at(&lab, dir.path(), "app1-1 out of Traefik", "INT", 300);
    let inventory = inventory.as_str();
    assert_eq!(code, Some(1), "{said}");
    assert!(said.contains("stopped by Ctrl-C"), "{said}");
    assert!(said.contains("app1-1 on 8.1.0"), "the instance in flight was not finished:\n{said}");
    assert_eq!(traefik_servers(&lab).len(), 6, "every instance must be back in Traefik");
    traefik_lists_only_ready_instances(&lab);
    // Finished means its old container is gone too, and its slot file names the new one's ports.
    one_container_and_folder_per_instance(&lab);
    lock_is_free(&lab);
    assert!(std::fs::read_to_string(inventory).unwrap().contains("release = \"8.0.0\""));

    // Twice: stops at once and says what is left.
    let mut upgrade = Running::start(&["upgrade", "-i", inventory, "--release", "8.1.0", "--skip-backup"]);
    upgrade.wait_for("out of Traefik", 240);
    upgrade.signal("INT");
    std::thread::sleep(Duration::from_millis(300));
    upgrade.signal("INT");
    let (code, said) = upgrade.finish(60);
    assert_eq!(code, Some(130), "{said}");
    assert!(said.contains("Stopped at once") && said.contains("run the same upgrade again"), "{said}");
    let _ = rcfleet(&["lock", "release", "--yes", "-i", inventory]);

    // A re-run converges.
    let rerun = rcfleet(&["upgrade", "-i", inventory, "--release", "8.1.0", "--skip-backup"]);
    assert!(rerun.status.success(), "{}", text(&rerun));
    assert_eq!(versions(&lab), vec!["8.1.0"; 6]);
    traefik_lists_only_ready_instances(&lab);
    lock_is_free(&lab);
    one_container_and_folder_per_instance(&lab);
}

#[test]
fn sshd_down_during_up_leaves_that_host_for_the_next_run() {
    let Some(lab) = lab_support::lab() else { return };
    lab.reset_fleet();
    let stop = lab.exec_lab(&["stop-sshd", "app2"]);
    assert!(stop.status.success(), "{}", text(&stop));
    let first = rcfleet(&["up", "-i", lab.inventory()]);
    let start = lab.exec_lab(&["start-sshd", "app2"]);
    assert!(start.status.success(), "{}", text(&start));

    let said = text(&first);
    assert_eq!(first.status.code(), Some(1), "{said}");
    assert!(said.contains("app2") && said.contains("could not be reached"), "{said}");
    // Capacity is only removed on purpose: app2's instances stay listed (they were never
    // started in this fresh fleet, so Traefik's health check has them DOWN and routes nothing
    // to them); the 4 of app1 and app3 are UP.
    // Traefik takes a server it was just given for UP until its first health check (every 5 s,
    // 3 s timeout) fails: app2's go DOWN within one interval of `up` listing them.
    let mut servers = traefik_servers(&lab);
    lab_support::eventually(20, || {
        servers = traefik_servers(&lab);
        servers.values().filter(|s| *s == "UP").count() <= 4
    });
    assert_eq!(servers.len(), 6, "Traefik should still list every instance: {servers:?}");
    let up: Vec<&String> = servers.iter().filter(|(_, s)| *s == "UP").map(|(url, _)| url).collect();
    assert_eq!(up.len(), 4, "{servers:?}");
    assert!(up.iter().all(|url| !url.contains(lab.addr("app2"))), "{servers:?}");
    lock_is_free(&lab);

    let before = lab.containers();
    let second = rcfleet(&["up", "-i", lab.inventory(), "--json"]);
    assert!(second.status.success(), "{}", text(&second));
    let after = lab.containers();
    for (id, state) in &before {
        assert_eq!(after.get(id), Some(state), "a container of a host that was already up changed");
    }
    let new: Vec<&String> = after.iter().filter(|(id, _)| !before.contains_key(*id)).map(|(_, (unit, _))| unit).collect();
    assert_eq!(new.len(), 3, "only app2's containers should be new (its two instances, its node exporter): {new:?}");
    assert!(new.iter().all(|unit| unit.starts_with("app2/")), "{new:?}");
    let report = json(&second);
    for host in report["hosts"].as_array().unwrap() {
        if host["name"] == "app1" || host["name"] == "app3" {
            assert_eq!(host["unchanged"], true, "{host}");
        }
    }
    assert_eq!(traefik_servers(&lab).len(), 6);
}

#[test]
fn unreachable_app_hosts_keep_their_serving_instances_in_traefik() {
    let Some(lab) = lab_support::lab() else { return };
    // The lab's own release from nothing: an earlier test may have left the fleet on another
    // one, which `up` refuses to change.
    lab.reset_fleet();
    let up = rcfleet(&["up", "-i", lab.inventory()]);
    assert!(up.status.success(), "{}", text(&up));
    // sshd stopped on every app host while requests go through Traefik: `up` reaches only the
    // database and Traefik hosts, and must take no serving instance away.
    let app_hosts = ["app1", "app2", "app3"];
    for host in app_hosts {
        let stop = lab.exec_lab(&["stop-sshd", host]);
        assert!(stop.status.success(), "{}", text(&stop));
    }
    let load = Load::start(&lab);
    let again = rcfleet(&["up", "-i", lab.inventory()]);
    let (ok, failed, errors) = load.finish();
    for host in app_hosts {
        let start = lab.exec_lab(&["start-sshd", host]);
        assert!(start.status.success(), "{}", text(&start));
    }

    let said = text(&again);
    assert_eq!(again.status.code(), Some(1), "{said}");
    for host in app_hosts {
        assert!(said.contains(&format!("  {host}: ")), "{host} is not named:\n{said}");
    }
    assert!(said.contains("stay listed in Traefik"), "{said}");
    assert!(ok > 0, "no request went through during up");
    assert_eq!(failed, 0, "{failed} of {} requests failed during up: {errors:?}", ok + failed);
    let servers = traefik_servers(&lab);
    assert_eq!(servers.len(), 6, "{servers:?}");
    assert!(servers.values().all(|s| s == "UP"), "the instances serve and must stay UP: {servers:?}");
    traefik_lists_only_ready_instances(&lab);
    let db = lab.addr("db");
    let (_, targets) = lab_support::http_get(&format!("{db}:9090"), db, "/api/v1/targets?state=active").expect("Prometheus answers");
    for host in app_hosts {
        assert!(targets.contains(&format!("{}:9458", lab.addr(host))), "Prometheus lost {host}'s targets: {targets}");
    }
    lock_is_free(&lab);
}

#[test]
fn a_stopped_docker_engine_is_named_and_nothing_changes() {
    let Some(lab) = lab_support::lab() else { return };
    // The lab's own release from nothing: an earlier test may have left the fleet on another
    // one, which `up` refuses to change.
    lab.reset_fleet();
    let up = rcfleet(&["up", "-i", lab.inventory()]);
    assert!(up.status.success(), "{}", text(&up));
    let files = lab.deployed_files();
    let stop = lab.exec_lab(&["stop-dockerd", "app3"]);
    assert!(stop.status.success(), "{}", text(&stop));
    let output = rcfleet(&["up", "-i", lab.inventory()]);
    let start = lab.exec_lab(&["start-dockerd", "app3"]);
    assert!(start.status.success(), "{}", text(&start));

    let said = text(&output);
    assert_eq!(output.status.code(), Some(1), "{said}");
    assert!(said.contains("app3: the Docker engine does not answer"), "{said}");
    assert!(said.contains("nothing was changed"), "{said}");
    assert!(!said.contains("panicked") && !said.contains("RUST_BACKTRACE"), "{said}");
    assert_eq!(lab.deployed_files(), files);
    lock_is_free(&lab);
    let again = rcfleet(&["up", "-i", lab.inventory()]);
    assert!(again.status.success(), "{}", text(&again));
}

#[test]
fn traefik_refusing_its_configuration_stops_the_upgrade_before_any_instance() {
    let Some(lab) = lab_support::lab() else { return };
    let dir = tempfile::tempdir().unwrap();
    let inventory = fleet_at_8_0_0(&lab, dir.path());
    let inventory = inventory.as_str();
    let containers = lab.containers();

    let hand_made = "printf 'http:\\n  routers: [this is not\\n' > /opt/rcfleet/lab/traefik/dynamic/hand-made.yml";
    // Stop-first: the drain is refused, before any instance is touched.
    lab.run("lb", hand_made);
    let upgrade = rcfleet(&["upgrade", "-i", inventory, "--release", "8.1.0", "--skip-backup", "--strategy", "stop-first"]);
    lab.run("lb", "rm -f /opt/rcfleet/lab/traefik/dynamic/hand-made.yml");

    let said = text(&upgrade);
    assert_eq!(upgrade.status.code(), Some(1), "{said}");
    assert!(said.contains("Traefik did not apply"), "{said}");
    assert!(said.contains("Nothing was stopped"), "{said}");
    assert_eq!(lab.containers(), containers, "an instance was touched although Traefik never drained it");
    assert!(lab_support::eventually(20, || traefik_servers(&lab).len() == 6), "Traefik does not list all 6 again");
    traefik_lists_only_ready_instances(&lab);
    lock_is_free(&lab);

    // Start-first: the canary's new container is refused a place in Traefik; it goes, nothing
    // was stopped.
    lab.run("lb", hand_made);
    let upgrade = rcfleet(&["upgrade", "-i", inventory, "--release", "8.1.0", "--skip-backup", "--strategy", "start-first"]);
    lab.run("lb", "rm -f /opt/rcfleet/lab/traefik/dynamic/hand-made.yml");
    let said = text(&upgrade);
    assert_eq!(upgrade.status.code(), Some(1), "{said}");
    assert!(said.contains("failed on the spare ports") && said.contains("Traefik did not apply"), "{said}");
    assert!(said.contains("nothing was stopped"), "{said}");
    assert_eq!(lab.containers(), containers, "an old instance was touched, or the refused new one is left");
    assert!(lab_support::eventually(20, || traefik_servers(&lab).len() == 6), "Traefik does not list all 6 again");
    traefik_lists_only_ready_instances(&lab);
    lock_is_free(&lab);
}

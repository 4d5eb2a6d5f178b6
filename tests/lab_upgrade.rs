//! `rcfleet upgrade` against the lab (issue 6): a rolling upgrade under load with no failed
//! request, a broken release rolled back with no failed request, release specs resolved from
//! the lab registry, guards that refuse with every reason and touch nothing, and the lock.

mod lab_support;

use lab_support::{inventory_at, json, rcfleet, text, traefik_lists_only_ready_instances, traefik_servers, versions, Load};

/// The broken release must fail fast.
const FAST: &[(&str, &str)] = &[("readiness_timeout_seconds", "20")];


#[test]
fn rolling_upgrade_under_load_then_a_broken_release_is_rolled_back() {
    let Some(lab) = lab_support::lab() else { return };
    let dir = tempfile::tempdir().unwrap();
    lab.reset_fleet();
    let inventory = inventory_at(&lab, dir.path(), "8.0.0", FAST);
    let inventory = inventory.to_str().unwrap();
    let up = rcfleet(&["up", "-i", inventory]);
    assert!(up.status.success(), "{}", text(&up));

    // Dry run: the spec is resolved from the registry's tags; nothing changes.
    let before = lab.containers();
    let dry = rcfleet(&["upgrade", "-i", inventory, "--release", "8.0.x", "--dry-run"]);
    assert!(dry.status.success(), "{}", text(&dry));
    let said = text(&dry);
    assert!(said.contains("8.0.x is 8.0.1") && said.contains("Upgrade 8.0.0 -> 8.0.1"), "{said}");
    assert!(said.contains("canary: app1-0") && said.contains("Nothing was changed"), "{said}");
    assert_eq!(lab.containers(), before);

    // The real thing, under load.
    let load = Load::start(&lab);
    let upgrade = rcfleet(&["upgrade", "-i", inventory, "--release", "8.1.0", "--json"]);
    let (ok, failed, errors) = load.finish();
    assert!(upgrade.status.success(), "{}", text(&upgrade));
    assert_eq!(failed, 0, "{failed} of {} requests failed during the upgrade: {errors:?}", ok + failed);
    assert!(ok > 100, "the load generator hardly ran ({ok} requests)");
    assert_eq!(versions(&lab), vec!["8.1.0"; 6]);
    // Made by the lab's Compose (`tests/run` runs this on a v2 and a v1 lab): the run tested that one.
    let compose = lab.var("LAB_COMPOSE_VERSION").to_string();
    assert_eq!(lab.compose_versions(), [compose].into(), "containers made by another Compose than the lab's");
    let config = std::fs::read_to_string(inventory).unwrap();
    assert!(config.contains("release = \"8.1.0\""), "inventory not rewritten");
    let report = json(&upgrade);
    let backup = report["backup"].as_str().expect("a backup path");
    assert!(lab.sh("db", &format!("test -s {backup}")).status.success(), "backup {backup} missing");
    assert_eq!(traefik_servers(&lab).len(), 6);
    traefik_lists_only_ready_instances(&lab);
    eprintln!("rolling upgrade: {ok} requests, 0 failed");

    // A release that never becomes ready: the canary goes back, nobody notices. Stop-first, so
    // that the canary really is replaced and rolled back (start-first never stops it:
    // lab_rollout shows that case).
    let load = Load::start(&lab);
    let broken = rcfleet(&["upgrade", "-i", inventory, "--release", "8.2.0", "--skip-backup", "--strategy", "stop-first"]);
    let (ok, failed, errors) = load.finish();
    assert_eq!(broken.status.code(), Some(1), "{}", text(&broken));
    let said = text(&broken);
    assert!(said.contains("app1-0") && said.contains("rolled back"), "{said}");
    assert!(said.contains("last lines"), "the report lacks the instance's log: {said}");
    assert_eq!(failed, 0, "{failed} of {} requests failed during the failed upgrade: {errors:?}", ok + failed);
    assert_eq!(versions(&lab), vec!["8.1.0"; 6]);
    assert!(std::fs::read_to_string(inventory).unwrap().contains("release = \"8.1.0\""));
    assert_eq!(traefik_servers(&lab).len(), 6);
    traefik_lists_only_ready_instances(&lab);

    // Guards: a downgrade is refused and nothing is touched.
    let before = lab.containers();
    let downgrade = rcfleet(&["upgrade", "-i", inventory, "--release", "8.0.0"]);
    assert_eq!(downgrade.status.code(), Some(1));
    assert!(text(&downgrade).contains("downgrade"), "{}", text(&downgrade));
    assert_eq!(lab.containers(), before);

    // Two upgrades at once: the second names the holder of the lock.
    let first = std::process::Command::new(env!("CARGO_BIN_EXE_rcfleet"))
        .args(["upgrade", "-i", inventory, "--release", "9.0.0", "--skip-backup"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    assert!(
        lab_support::eventually(30, || lab.sh("db", "test -f /opt/rcfleet/lab/deploy.lock").status.success()),
        "the first upgrade never took the lock"
    );
    let second = rcfleet(&["upgrade", "-i", inventory, "--release", "9.0.0", "--skip-backup"]);
    let said = text(&second);
    assert_eq!(second.status.code(), Some(1), "{said}");
    assert!(said.contains("locked by") && said.contains("rcfleet upgrade --release 9.0.0"), "{said}");
    let first = first.wait_with_output().unwrap();
    assert!(first.status.success());
    assert!(lab.sh("db", "test ! -e /opt/rcfleet/lab/deploy.lock").status.success(), "the lock was not released");
}

#[test]
fn specs_and_guards_on_a_7x_fleet() {
    let Some(lab) = lab_support::lab() else { return };
    // A fresh fleet: MongoDB 7.0 refuses to start on the data files an 8.2 left (feature
    // compatibility version 8.2), as the real server does.
    lab.reset_fleet();
    let dir = tempfile::tempdir().unwrap();
    let inventory = inventory_at(&lab, dir.path(), "7.9.0", FAST);
    let inventory = inventory.to_str().unwrap();
    let up = rcfleet(&["up", "-i", inventory]);
    assert!(up.status.success(), "{}", text(&up));

    let dry = rcfleet(&["upgrade", "-i", inventory, "--release", "7.x", "--dry-run"]);
    let said = text(&dry);
    assert!(said.contains("7.x is 7.10.0"), "{said}");
    assert!(said.contains("Upgrade 7.9.0 -> 7.10.0"), "{said}");

    // Skipping a major: refused, every reason listed, nothing touched. A fresh fleet on 7.10.0:
    // `up` never changes the running release.
    lab.reset_fleet();
    let inventory = inventory_at(&lab, dir.path(), "7.10.0", FAST);
    let inventory = inventory.to_str().unwrap();
    let up = rcfleet(&["up", "-i", inventory]);
    assert!(up.status.success(), "{}", text(&up));
    let before = lab.containers();
    let files = lab.deployed_files();
    let skip = rcfleet(&["upgrade", "-i", inventory, "--release", "9.0.0"]);
    let said = text(&skip);
    assert_eq!(skip.status.code(), Some(1), "{said}");
    assert!(said.contains("skips major 8"), "{said}");
    assert!(said.contains("refused; nothing was changed"), "{said}");
    assert_eq!(lab.containers(), before);
    assert_eq!(lab.deployed_files(), files);
    assert!(std::fs::read_to_string(inventory).unwrap().contains("release = \"7.10.0\""));

    // 8.x does not run on the MongoDB 7.0 this fleet runs (the guard asks the server itself);
    // --allow-unsupported-mongodb goes ahead, loudly.
    let next = rcfleet(&["upgrade", "-i", inventory, "--release", "8.0.0", "--dry-run"]);
    let said = text(&next);
    assert_eq!(next.status.code(), Some(1), "{said}");
    assert!(said.contains("MongoDB 7.0 is not supported by Rocket.Chat 8.x (it runs on 8.0, 8.2)"), "{said}");
    let allowed = rcfleet(&["upgrade", "-i", inventory, "--release", "8.0.0", "--dry-run", "--allow-unsupported-mongodb"]);
    let said = text(&allowed);
    assert!(allowed.status.success(), "{said}");
    assert!(said.contains("WARNING") && said.contains("--allow-unsupported-mongodb"), "{said}");
    assert_eq!(lab.containers(), before);
}

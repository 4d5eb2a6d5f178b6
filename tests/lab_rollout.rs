//! The one rollout engine against the lab (issue 15), on one fleet, under load through Traefik
//! counting every failed request: an edited `[rocketchat.env]` makes `up` replace the
//! instances canary first, one batch at a time, with no failed request; a release changed by
//! hand makes `up` refuse (exit 2), naming `rcfleet upgrade`, with nothing restarted; an
//! upgrade whose canary migrates the database and then fails starts no instance on the old
//! release over the migrated database, names the ways on, and fails no request.

mod lab_support;

use lab_support::{inventory_at, lock_is_free, rcfleet, text, traefik_lists_only_ready_instances, traefik_servers, Lab, Load};

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
    let path = inventory_at(&lab, dir.path(), "8.1.0", &settings);
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
    let by_hand = std::fs::read_to_string(&path).unwrap().replace("release = \"8.1.0\"", "release = \"9.0.0\"");
    std::fs::write(&path, &by_hand).unwrap();
    let refused = rcfleet(&["up", "-i", inventory]);
    let said = text(&refused);
    assert_eq!(refused.status.code(), Some(2), "{said}");
    assert!(said.contains("rcfleet upgrade") && said.contains("8.1.0") && said.contains("9.0.0"), "{said}");
    assert_eq!(lab.containers(), before, "a refused up restarted containers");
    lock_is_free(&lab);
    std::fs::write(&path, by_hand.replace("release = \"9.0.0\"", "release = \"8.1.0\"")).unwrap();

    // A canary that migrates the database and then never becomes ready: 8.1.0 is not started
    // again over the migrated database; the others serve on; the report names the ways on.
    let before = lab.containers();
    let broken = lab.var("LAB_TAG_BROKEN_AFTER_MIGRATION").to_string();
    let load = Load::start(&lab);
    let upgrade = rcfleet(&["upgrade", "-i", inventory, "--release", &broken]);
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

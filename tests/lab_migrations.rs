//! Rocket.Chat's migrations against the lab (issue 14, item 5). The lab's Rocket.Chat stand-in
//! keeps the `migrations` control document as the real server does (tests/lab/README.md,
//! "Migrations"): a release migrates the shared database forward when it starts, and a release
//! older than the database's migration version refuses to start with the real server's error.
//! So once an upgrade has migrated the database, the older release can no longer run on it —
//! what a rollback after a migrated canary really meets.

mod lab_support;

use lab_support::{eventually, http_get, inventory_at, json, rcfleet, text, versions};

#[test]
fn after_an_upgrade_migrated_the_database_the_older_release_refuses_to_start() {
    let Some(lab) = lab_support::lab() else { return };
    let dir = tempfile::tempdir().unwrap();
    lab.reset_fleet();
    let inventory = inventory_at(&lab, dir.path(), "8.0.0", &[("readiness_timeout_seconds", "60")]);
    let inventory = inventory.to_str().unwrap();
    let up = rcfleet(&["up", "-i", inventory]);
    assert!(up.status.success(), "{}", text(&up));

    let upgrade = rcfleet(&["upgrade", "-i", inventory, "--release", "8.1.0", "--skip-backup"]);
    assert!(upgrade.status.success(), "{}", text(&upgrade));
    assert_eq!(versions(&lab), vec!["8.1.0"; 6]);
    // The canary took the database from 8.0's migration version to 8.1's.
    let canary = rcfleet(&["logs", "-i", inventory, "app1-0", "--tail", "300"]);
    let said = text(&canary);
    assert!(said.contains("Migrating from version 800 -> 801") && said.contains("Finished migrating."), "{said}");

    // 8.0.0 started by hand on app1 beside the fleet, with the fleet's own settings (other ports).
    // The instance's folder is the one of the port pair it runs on (start-first alternates them).
    let address = lab.addr("app1").to_string();
    let inspect = |format: &str| {
        lab.run("app1", &format!("docker inspect --format '{format}' $(docker ps -q --filter label=io.rcfleet.unit=app1-0)")).trim().to_string()
    };
    let old_image = inspect("{{.Config.Image}}").replace(":8.1.0", ":8.0.0");
    let folder = inspect("{{index .Config.Labels \"com.docker.compose.project.working_dir\"}}");
    lab.run(
        "app1",
        &format!(
            "docker rm -f older-release >/dev/null 2>&1; docker run -d --name older-release --network host \
             --env-file {folder}/instance.env -e PORT=3200 -e BIND_IP={address} \
             -e PROMETHEUS_PORT=9658 {old_image} >/dev/null"
        ),
    );
    let mut seen = String::new();
    let stopped = eventually(60, || {
        seen = lab.run("app1", "docker inspect --format '{{.State.Status}} {{.State.ExitCode}}' older-release").trim().to_string();
        seen.starts_with("exited")
    });
    let logs = lab.run("app1", "docker logs older-release 2>&1");
    lab.run("app1", "docker rm -f older-release >/dev/null");
    assert!(stopped, "8.0.0 kept running on a database 8.1.0 migrated ({seen}):\n{logs}");
    assert_eq!(seen, "exited 1", "{logs}");
    assert!(logs.contains("Error: Can't find migration version 801"), "not the real server's refusal:\n{logs}");
    assert!(!logs.contains("Migrating from"), "the older release touched the migrations:\n{logs}");

    // The newer release still starts on that database: the lock the refused start left behind
    // belongs to another build, which the real server takes over at once.
    // On the ports status shows for it (start-first moves it to its spare pair).
    let status = json(&rcfleet(&["status", "-i", inventory, "--json"]));
    let app1_1 = status["instances"].as_array().unwrap().iter().find(|i| i["name"] == "app1-1").expect("app1-1 in status").clone();
    let (port, metrics_port) = (app1_1["port"].as_u64().unwrap(), app1_1["metrics_port"].as_u64().unwrap());
    lab.run("app1", "docker restart -t 2 $(docker ps -q --filter label=io.rcfleet.unit=app1-1) >/dev/null");
    let ready = eventually(40, || http_get(&format!("{address}:{port}"), &address, "/readyz").map(|(status, _)| status == 200).unwrap_or(false));
    assert!(ready, "8.1.0 did not come back on the database 8.0.0 refused");
    // Its metrics server starts a moment after it is ready (after its settings settle).
    let metrics = eventually(20, || http_get(&format!("{address}:{metrics_port}"), &address, "/metrics").is_ok());
    assert!(metrics, "8.1.0 on app1-1 serves no metrics");
    assert_eq!(versions(&lab), vec!["8.1.0"; 6]);
}

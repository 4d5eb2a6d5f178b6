//! MongoDB over the workspace's lifetime against the lab (issue 16), on one fleet deployed
//! with Rocket.Chat 7.10.0 on MongoDB 5.0: `mongodb upgrade --to 7.0` climbs 5.0 -> 6.0 -> 7.0
//! (stopped gracefully after 6.0, then killed outright in the middle of the 7.0 step, and each
//! time run again to finish); `mongodb status` shows 7.0 / FCV 7.0 and the fleet serves;
//! `--to 8.0` under 7.10.0 is refused before anything changes and, with
//! `--allow-unsupported-mongodb`, reaches 8.0 / FCV 8.0, after which `upgrade --release 8.1.0`
//! succeeds; a document inserted with the real mongosh, backed up, deleted and restored is
//! back, and the fleet serves. Retention keeps `[backup] keep` archives.

mod lab_support;

use std::process::Output;

use lab_support::{inventory_at, json, rcfleet, text, versions, Lab, Running};

/// The real mongosh on this machine, logged in as rcfleet's admin (password on stdin).
fn mongosh(lab: &Lab, inventory: &str, script: &str) -> Output {
    let shown = rcfleet(&["-i", inventory, "secrets", "show", "mongodb-admin-password"]);
    assert!(shown.status.success(), "{}", text(&shown));
    let password = String::from_utf8_lossy(&shown.stdout).trim().to_string();
    let login = format!("db.getSiblingDB(\"admin\").auth(\"rcfleet-admin\", {});\n", serde_json::to_string(&password).unwrap());
    lab_support::mongosh(lab, &format!("{login}{script}\n"))
}

fn status(inventory: &str) -> serde_json::Value {
    let out = rcfleet(&["mongodb", "status", "-i", inventory, "--json"]);
    let document = json(&out);
    assert!(out.status.code().is_some(), "{}", text(&out));
    document
}

fn serves(lab: &Lab) -> bool {
    lab_support::eventually(30, || matches!(lab.get_through_traefik("/"), Ok((200, _))))
}

#[test]
fn mongodb_climbs_one_major_at_a_time_and_a_backup_restores_a_deleted_document() {
    let Some(lab) = lab_support::lab() else { return };
    let dir = tempfile::tempdir().unwrap();
    lab.reset_fleet();
    let inventory = inventory_at(&lab, dir.path(), "7.10.0", &[("version", "\"5.0\""), ("drain_seconds", "0")]);
    let mut config = std::fs::read_to_string(&inventory).unwrap();
    config.push_str("\n[backup]\nkeep = 3\n");
    std::fs::write(&inventory, config).unwrap();
    let inventory = inventory.to_str().unwrap();
    let started = std::time::Instant::now();
    // Where the time goes, for the report (`--nocapture`); nothing is asserted on it.
    let phase = |what: &str| eprintln!("[{:>6.1}s] {what}", started.elapsed().as_secs_f64());
    let up = rcfleet(&["up", "-i", inventory]);
    phase("up on MongoDB 5.0");
    assert!(up.status.success(), "{}", text(&up));
    let first = status(inventory);
    assert_eq!((first["version"].as_str(), first["fcv"].as_str()), (Some("5.0.0"), Some("5.0")), "{first}");
    assert_eq!(first["members"][0]["state"], "PRIMARY", "{first}");

    // The plan: two steps, the downtime announced; nothing changes.
    let before = lab.containers();
    let dry = rcfleet(&["mongodb", "upgrade", "-i", inventory, "--to", "7.0", "--dry-run"]);
    let said = text(&dry);
    assert!(dry.status.success(), "{said}");
    assert!(said.contains("MongoDB 5.0 -> 6.0") && said.contains("MongoDB 6.0 -> 7.0") && said.contains("DOWN"), "{said}");
    assert!(said.contains("setFeatureCompatibilityVersion: \"7.0\", confirm: true"), "{said}");
    assert_eq!(lab.containers(), before, "a dry run changed containers");

    // Stopped (SIGTERM) while the 6.0 step runs: it ends that step, brings the fleet back.
    let mut run = Running::start(&["mongodb", "upgrade", "-i", inventory, "--to", "7.0"]);
    run.wait_for("the database unit runs", 300);
    run.signal("TERM");
    let (code, said) = run.finish(300);
    phase("5.0 -> 6.0, stopped");
    assert_eq!(code, Some(1), "{said}");
    assert!(said.contains("stopped by Ctrl-C after MongoDB 6.0"), "{said}");
    let between = status(inventory);
    assert_eq!((between["series"].as_str(), between["fcv"].as_str()), (Some("6.0"), Some("6.0")), "{between}");
    assert!(std::fs::read_to_string(inventory).unwrap().contains("version = \"6.0\""), "inventory not rewritten per step");
    assert!(serves(&lab), "the fleet does not serve between the steps");

    // Killed outright in the middle of the 7.0 step (image swapped, FCV not yet set): the
    // lock stays, as after a crash; released, the same command finishes the step.
    let mut run = Running::start(&["mongodb", "upgrade", "-i", inventory, "--to", "7.0"]);
    run.wait_for("the database unit runs", 300);
    run.signal("KILL");
    let _ = run.finish(60);
    let released = rcfleet(&["lock", "release", "-i", inventory, "--yes"]);
    assert!(released.status.success(), "{}", text(&released));
    let rerun = rcfleet(&["mongodb", "upgrade", "-i", inventory, "--to", "7.0"]);
    let said = text(&rerun);
    phase("killed in 6.0 -> 7.0, rerun finished");
    assert!(rerun.status.success(), "{said}");
    assert!(said.contains("Downtime:"), "the downtime is not printed: {said}");
    let done = rcfleet(&["mongodb", "status", "-i", inventory]);
    let shown = text(&done);
    assert!(done.status.success(), "{shown}");
    assert!(shown.contains("version      7.0.0") && shown.contains("FCV          7.0") && shown.contains("PRIMARY"), "{shown}");
    assert!(shown.contains("last backup  /"), "{shown}");
    let seven = status(inventory);
    assert!(seven["oplog_window_seconds"].as_u64().is_some_and(|s| s > 0), "the oplog spans the climb: {seven}");
    assert!(seven["data_bytes"].as_u64().is_some(), "{seven}");
    assert!(serves(&lab), "the fleet does not serve on MongoDB 7.0");
    assert_eq!(versions(&lab), vec!["7.10.0"; 6]);

    // 8.0 under 7.10.0: outside the documented matrix, refused before anything changes.
    let before = lab.containers();
    let refused = rcfleet(&["mongodb", "upgrade", "-i", inventory, "--to", "8.0"]);
    let said = text(&refused);
    assert_eq!(refused.status.code(), Some(1), "{said}");
    assert!(said.contains("Rocket.Chat 7.10.0 on MongoDB 8.0") && said.contains("nothing was changed"), "{said}");
    assert_eq!(lab.containers(), before, "a refused upgrade changed containers");
    // A downgrade is refused too.
    let down = rcfleet(&["mongodb", "upgrade", "-i", inventory, "--to", "6.0"]);
    assert!(text(&down).contains("cannot go back"), "{}", text(&down));

    let allowed = rcfleet(&["mongodb", "upgrade", "-i", inventory, "--to", "8.0", "--allow-unsupported-mongodb"]);
    let said = text(&allowed);
    phase("7.0 -> 8.0");
    assert!(allowed.status.success(), "{said}");
    assert!(said.contains("rcfleet upgrade --release 8.x` at once"), "{said}");
    let eight = status(inventory);
    assert_eq!((eight["series"].as_str(), eight["fcv"].as_str()), (Some("8.0"), Some("8.0")), "{eight}");
    let config = std::fs::read_to_string(inventory).unwrap();
    assert!(config.contains("version = \"8.0\"") && config.contains("allow_unsupported = true"), "{config}");
    let upgrade = rcfleet(&["upgrade", "-i", inventory, "--release", "8.1.0", "--skip-backup", "--batch", "5"]);
    phase("upgrade --release 8.1.0");
    assert!(upgrade.status.success(), "{}", text(&upgrade));
    assert_eq!(versions(&lab), vec!["8.1.0"; 6]);

    // Backup, delete, restore: the document is back and the fleet serves.
    let insert = mongosh(&lab, inventory, "db.getSiblingDB(\"rocketchat\").lifecycle.insertOne({_id: \"keep-me\", n: 7}); print(\"INSERTED\");");
    assert!(text(&insert).contains("INSERTED"), "{}", text(&insert));
    let local = tempfile::tempdir().unwrap();
    let local_dir = local.path().to_str().unwrap();
    let backup = rcfleet(&["backup", "-i", inventory, "--note", "before the delete", "--download", local_dir, "--json"]);
    assert!(backup.status.success(), "{}", text(&backup));
    let taken = json(&backup);
    let path = taken["path"].as_str().unwrap().to_string();
    assert_eq!(taken["release"], "8.1.0", "{taken}");
    assert_eq!(lab.run("db", &format!("stat -c %a {path}")).trim(), "600");
    let name = path.rsplit('/').next().unwrap().to_string();
    let copy = local.path().join(&name);
    assert_eq!(std::fs::metadata(&copy).unwrap().len(), taken["bytes"].as_u64().unwrap(), "the local copy differs in size");
    let list = rcfleet(&["backup", "list", "-i", inventory]);
    let listed = text(&list);
    assert!(listed.contains(&name) && listed.contains("before the delete") && listed.contains("release 8.1.0"), "{listed}");
    let archives = json(&rcfleet(&["backup", "list", "-i", inventory, "--json"]))["archives"].as_array().unwrap().len();
    assert_eq!(archives, 3, "retention keeps [backup] keep = 3: {listed}");

    let delete = mongosh(&lab, inventory, "print(\"DELETED \" + db.getSiblingDB(\"rocketchat\").lifecycle.deleteOne({_id: \"keep-me\"}).deletedCount);");
    assert!(text(&delete).contains("DELETED 1"), "{}", text(&delete));
    // Without --yes and without a terminal to ask on, nothing happens.
    let unasked = rcfleet(&["restore", "-i", inventory, &name]);
    assert_eq!(unasked.status.code(), Some(2), "{}", text(&unasked));
    assert!(text(&unasked).contains("restore") && text(&unasked).contains("--yes"), "{}", text(&unasked));
    let restore = rcfleet(&["restore", "-i", inventory, &name, "--yes"]);
    let said = text(&restore);
    phase("backup, restore");
    assert!(restore.status.success(), "{said}");
    assert!(said.contains("mongorestore --drop") && said.contains("Downtime:"), "{said}");
    let found = mongosh(&lab, inventory, "print(\"FOUND \" + JSON.stringify(db.getSiblingDB(\"rocketchat\").lifecycle.findOne({_id: \"keep-me\"})));");
    assert!(text(&found).contains("FOUND {\"_id\":\"keep-me\",\"n\":7}"), "{}", text(&found));
    assert!(serves(&lab), "the fleet does not serve after the restore");
    assert_eq!(versions(&lab), vec!["8.1.0"; 6]);
    lab_support::lock_is_free(&lab);
}

//! `restore`: put the workspace database back to a backup. The fleet goes down for it: every
//! instance out of Traefik (confirmed) and stopped, so no Rocket.Chat writes into a database
//! being replaced; `mongorestore --drop` replaces each collection of the archive; then the
//! release recorded with the archive is started (the inventory's release is rewritten to it),
//! never on a database whose migrations are newer than that release ran, and the fleet comes
//! back into Traefik.

use std::path::Path;
use std::time::Instant;

use serde_json::{json, Value};

use super::backup::{self, Archive, Record};
use super::hosts::Hosts;
use super::lock;
use super::mongodb::facts;
use super::outage;
use super::report::{Outcome, Reporter};
use super::secrets::{self, MongoLogin};
use crate::compat;
use crate::error::{Error, Result};
use crate::fleet::{Fleet, Release};
use crate::inventory;
use crate::remote::{Argv, ExecOptions};

pub struct RestoreOptions {
    /// A path on the database host, or an archive's name as `backup list` shows it.
    pub archive: String,
    pub connect: crate::remote::ConnectOptions,
}

pub struct RestoreOutcome {
    pub archive: String,
    pub release: Release,
    pub steps: Vec<String>,
    pub downtime_seconds: f64,
}

/// Restores after `confirm` agreed to the steps it is shown (the CLI asks, or `--yes`).
pub fn restore(inventory_path: &Path, options: &RestoreOptions, confirm: impl FnOnce(&[String]) -> Result<bool>) -> Result<RestoreOutcome> {
    let fleet = inventory::load(inventory_path)?;
    let report = Reporter::new(inventory_path, "restore");
    let remote = Hosts::connect_fleet(&fleet, &options.connect, &report)?;
    // Each instance on the ports its host records (a start-first upgrade alternates them).
    let fleet = super::slots::current(&fleet, &remote)?;
    let db = remote.host(&fleet.database_host().name);
    let all = backup::archives(&fleet, db)?;
    let archive = find(&all, &options.archive).ok_or_else(|| {
        let names: Vec<&str> = all.iter().map(Archive::name).collect();
        Error::bad_input(format!(
            "{}: no such backup on {}; the backups there are: {}",
            options.archive,
            db.name(),
            if names.is_empty() { "(none)".to_string() } else { names.join(", ") }
        ))
    })?;
    let record = archive.record.clone().ok_or_else(|| {
        Error::bad_input(format!(
            "{}: has no record ({}.json) saying which release's data it holds, so rcfleet cannot tell which release may \
             start on it; restore it by hand with mongorestore",
            archive.path, archive.path
        ))
    })?;
    let release = Release::parse(&record.release)
        .ok_or_else(|| Error::bad_input(format!("{}.json: release {:?} is not a release", archive.path, record.release)))?;
    let target = with_release(&fleet, &release);
    // The archive's release must run on the MongoDB the host runs now (it may have been
    // upgraded since the backup).
    let unsupported = matches!(compat::mongodb_support(&release, &fleet.mongodb.version), compat::Support::Unsupported(_));
    if unsupported && !fleet.mongodb.allow_unsupported {
        return Err(Error::failed(format!(
            "{} holds the data of {release}, which does not support MongoDB {} (what the database host runs); nothing was              changed. Restore an archive of a release that does, or set mongodb.allow_unsupported = true to accept it",
            archive.name(),
            fleet.mongodb.version
        )));
    }
    let steps = plan(&fleet, &target, archive, &record);
    if !confirm(&steps)? {
        return Err(Error::failed("not confirmed; nothing was changed"));
    }
    let store = secrets::Store::load(&fleet, db)?;
    let login = secrets::mongo_admin(&fleet, &store)?;
    crate::interrupt::graceful("the restore");
    let _lock = lock::acquire(&fleet, db, &format!("rcfleet restore {}", archive.name()), Some(release.to_string()))?;
    let down = Instant::now();
    outage::take_down(&fleet, &remote, &report)?;
    crate::interrupt::set_left_to_do(&format!(
        "every instance is stopped and out of Traefik; the database may be half restored: run the same restore again"
    ));
    let left = |err: Error| {
        Error::failed(format!(
            "{err}\nNow: every instance is stopped and out of Traefik (the workspace is down); run the same restore again \
             once the cause is fixed, or `rcfleet up` to start the fleet on the database as it is"
        ))
    };
    run_mongorestore(&fleet, &remote, &archive.path, login.as_ref(), &report).map_err(left)?;
    let restored = facts::read(&remote, &fleet, login.as_ref()).map_err(left)?;
    migrations_allow(restored.migrations, record.migrations, &release).map_err(left)?;
    if release != fleet.workspace.release {
        inventory::edit::set_release(inventory_path, &release, unsupported)
            .map_err(left)?;
        report.step("inventory", "", format!("{}: release = \"{release}\" (the archive's)", inventory_path.display()));
    }
    outage::bring_back(&target, &remote, &store, &report).map_err(left)?;
    Ok(RestoreOutcome { archive: archive.path.clone(), release, steps, downtime_seconds: down.elapsed().as_secs_f64() })
}

/// Rocket.Chat's migrations only go forward: `release` may start on the restored database only
/// when its migration version (`now`) is not newer than what `release` ran (`recorded`, the
/// archive's record). Without a control document (Rocket.Chat never ran) there is nothing to
/// break.
fn migrations_allow(now: Option<i64>, recorded: Option<i64>, release: &Release) -> Result<()> {
    match (now, recorded) {
        (Some(now), Some(recorded)) if now > recorded => Err(Error::failed(format!(
            "the restored database is at migration version {now}, newer than the {recorded} that {release} ran (the \
             archive's record); starting {release} on it could break it, so no instance was started"
        ))),
        (Some(now), None) => Err(Error::failed(format!(
            "the restored database is at migration version {now} but the archive's record names none for {release}; \
             rcfleet cannot tell whether {release} may run on it, so no instance was started"
        ))),
        _ => Ok(()),
    }
}

fn find<'a>(archives: &'a [Archive], wanted: &str) -> Option<&'a Archive> {
    archives.iter().find(|a| a.path == wanted || a.name() == wanted)
}

fn with_release(fleet: &Fleet, release: &Release) -> Fleet {
    let mut fleet = fleet.clone();
    fleet.workspace.release = release.clone();
    fleet.images.rocketchat.tag = release.to_string();
    fleet
}

fn plan(fleet: &Fleet, target: &Fleet, archive: &Archive, record: &Record) -> Vec<String> {
    let db = &fleet.database_host().name;
    let release = &target.workspace.release;
    let mut steps = vec![
        format!("hold the deploy lock on {db} throughout"),
        "take every instance out of Traefik and stop it: the workspace is DOWN from here".to_string(),
        format!(
            "restore {} (taken {}, release {}, MongoDB {}) into database {} with mongorestore --drop: its collections replace the current ones",
            archive.path, record.created, record.release, record.mongodb, fleet.mongodb.database
        ),
    ];
    if release != &fleet.workspace.release {
        steps.push(format!("write release = \"{release}\" to the inventory (it says {})", fleet.workspace.release));
    }
    steps.push(format!("start every instance on {release}, wait until ready, put them back into Traefik (confirmed UP)"));
    steps
}

/// mongorestore from the Database Tools image on the host's network, as the dump ran: the
/// archive mounted read-only, the password in a `--config` document on stdin, only the
/// workspace database (`--nsInclude`), each of its collections dropped first (`--drop`).
fn run_mongorestore(fleet: &Fleet, remote: &Hosts, path: &str, login: Option<&MongoLogin>, report: &Reporter) -> Result<()> {
    let db = remote.host(&fleet.database_host().name);
    let (argv, config) = restore_command(fleet, path, login);
    let mut stdin = config.as_bytes();
    let options = ExecOptions { stdin: Some(&mut stdin), timeout: Some(std::time::Duration::from_secs(3600)), ..Default::default() };
    let output = db.exec(&argv, options)?;
    if !output.success() {
        return Err(Error::failed(format!("{}: mongorestore failed: {}", db.name(), output.stderr_text().trim())));
    }
    report.step("restore", db.name(), format!("{path} restored into {}", fleet.mongodb.database));
    Ok(())
}

fn restore_command(fleet: &Fleet, path: &str, login: Option<&MongoLogin>) -> (Argv, String) {
    let (uri, config) = backup::tools_login(fleet, None, login);
    let script = r#"set -e
path=$1 image=$2 uri=$3 include=$4
shift 4
test -s "$path"
docker run --rm -i --pull never --network host -v "$path:/backup/archive.gz:ro" --entrypoint mongorestore "$image" \
  --quiet --uri="$uri" "$@" --nsInclude="$include" --drop --gzip --archive=/backup/archive.gz"#;
    let image = fleet.images.mongodb_tools.to_string();
    let include = format!("{}.*", fleet.mongodb.database);
    let mut args = vec![path, image.as_str(), uri.as_str(), include.as_str()];
    if login.is_some() {
        args.push("--config=/dev/stdin");
    }
    (Argv::script(script, &args), config)
}

impl Outcome for RestoreOutcome {
    fn to_text(&self) -> String {
        let mut out = format!("\nRestored {}; the fleet serves on {}.\n\nSteps taken:\n", self.archive, self.release);
        for (index, step) in self.steps.iter().enumerate() {
            out.push_str(&format!("  {:>2}. {step}\n", index + 1));
        }
        out.push_str(&format!("\nDowntime: {:.1} s\n", self.downtime_seconds));
        out
    }

    fn to_json(&self) -> Value {
        json!({"archive": self.archive, "release": self.release.to_string(), "steps": self.steps, "downtime_seconds": self.downtime_seconds})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mongorestore_reads_the_mounted_archive_and_the_password_from_stdin() {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/three-app-hosts.toml")).unwrap();
        let fleet = crate::inventory::parse(&text, Path::new("three-app-hosts.toml")).unwrap();
        let login = MongoLogin { user: "rcfleet-admin", password: "s3cret$(x)".to_string() };
        let (argv, stdin) = restore_command(&fleet, "/opt/rcfleet/backups/a.archive.gz", Some(&login));
        let argv = argv.as_slice();
        assert!(argv.iter().all(|a| !a.contains("s3cret")), "the password must not be on the command line");
        assert!(stdin.contains("s3cret"));
        assert!(argv[2].contains("--entrypoint mongorestore") && argv[2].contains("--drop"), "{}", argv[2]);
        assert_eq!(argv[7], format!("{}.*", fleet.mongodb.database));
        assert!(argv[6].contains("127.0.0.1") && !argv[6].contains(&format!("/{}?", fleet.mongodb.database)), "{}", argv[6]);
    }

    #[test]
    fn a_release_never_starts_on_migrations_newer_than_it_ran() {
        let release = Release::parse("7.10.0").unwrap();
        assert!(migrations_allow(Some(300), Some(300), &release).is_ok());
        assert!(migrations_allow(Some(299), Some(300), &release).is_ok());
        assert!(migrations_allow(None, None, &release).is_ok(), "Rocket.Chat never ran on it");
        let newer = migrations_allow(Some(301), Some(300), &release).unwrap_err().to_string();
        assert!(newer.contains("migration version 301") && newer.contains("no instance was started"), "{newer}");
        assert!(migrations_allow(Some(301), None, &release).is_err(), "no record: no guess");
    }

    #[test]
    fn an_archive_is_found_by_path_or_name() {
        let archive = Archive { path: "/opt/rcfleet/backups/x-8.0.0.archive.gz".into(), bytes: 1, record: None };
        let list = vec![archive];
        assert!(find(&list, "x-8.0.0.archive.gz").is_some());
        assert!(find(&list, "/opt/rcfleet/backups/x-8.0.0.archive.gz").is_some());
        assert!(find(&list, "y").is_none());
    }
}

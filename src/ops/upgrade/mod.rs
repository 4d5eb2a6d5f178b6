//! `upgrade`: move every instance to another Rocket.Chat release without a failed request.
//!
//! Resolve the release against the registry's tags; run the guards (no downgrade, no major
//! skipped, MongoDB supported, fleet healthy), refusing with every reason before anything
//! changes; take the deploy lock; back up MongoDB; pull the new image everywhere; then replace
//! instances one canary first and then batch by batch: drain from Traefik (confirmed through
//! its API), wait, recreate on the new release, wait until ready and reporting the new version,
//! put back (confirmed UP). On a failure the failing batch and, by default, every upgraded
//! instance go back to the previous release, because a workspace must not run mixed versions.
//! The inventory's `release` is rewritten only after success; then the microservice
//! containers (if any) move to the new release too.

mod capacity;
mod guards;
mod migrations;
mod window;

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::{json, Value};

use super::converge::pull_missing_images;
use super::lock;
use super::mongodb::facts;
use super::probe;
use super::hosts::{Hosts, CONCURRENCY};
use super::report::{Outcome, Reporter};
use super::run::{Run, RunOptions, Secrets};
use super::secrets;
use crate::compat;
use crate::error::{Error, Result};
use crate::fleet::{Fleet, Host, Instance, Release, Role, UpgradeStrategy};
use crate::inventory;
use crate::registry::{self, ReleaseSpec};
use crate::remote::{self, ConnectOptions};
use crate::render;
use guards::Verdict;
use super::rollout::{self, Recovery, Rollout};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Strategy {
    /// Canary, then batches, start-first or stop-first as `upgrade.strategy` says (default
    /// auto: start-first where every app host has the memory for it, else stop-first).
    Rolling,
    /// Canary, then batches; each new instance starts on its spare ports beside the old one,
    /// which leaves only once the new one is UP in Traefik (no capacity lost).
    StartFirst,
    /// Canary, then batches; each old instance is drained and stopped, then the new one starts
    /// on its ports (one instance's capacity less per batch).
    StopFirst,
    /// Stop every instance, then start them all on the new release (announced downtime).
    Recreate,
}

/// How this run replaces instances, decided once before the canary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Way {
    StartFirst,
    StopFirst,
    Recreate,
}

impl Way {
    fn name(self) -> &'static str {
        match self {
            Way::StartFirst => "start-first",
            Way::StopFirst => "stop-first",
            Way::Recreate => "recreate",
        }
    }
}

/// The way to replace instances, and why: the command line's, else the inventory's, else
/// (auto) start-first when every app host has the memory for a batch more instances.
fn choose_way(fleet: &Fleet, remote: &Hosts, strategy: Strategy, batch: u32) -> Result<(Way, String)> {
    let configured = match strategy {
        Strategy::Recreate => return Ok((Way::Recreate, "--strategy recreate".to_string())),
        Strategy::StartFirst => return Ok((Way::StartFirst, "--strategy start-first".to_string())),
        Strategy::StopFirst => return Ok((Way::StopFirst, "--strategy stop-first".to_string())),
        Strategy::Rolling => fleet.upgrade.strategy,
    };
    Ok(match configured {
        UpgradeStrategy::StartFirst => (Way::StartFirst, "upgrade.strategy = \"start-first\"".to_string()),
        UpgradeStrategy::StopFirst => (Way::StopFirst, "upgrade.strategy = \"stop-first\"".to_string()),
        UpgradeStrategy::Auto => match capacity::start_first_fits(fleet, remote, batch)? {
            Ok(why) => (Way::StartFirst, format!("auto: {why}")),
            Err(why) => (Way::StopFirst, format!("auto: {why}")),
        },
    })
}

pub struct UpgradeOptions {
    /// `X.Y.Z`, `X.Y.Z-rc.N`, `X.x` or `X.Y.x`.
    pub release: String,
    pub batch: Option<u32>,
    pub strategy: Strategy,
    pub allow_downgrade: bool,
    pub allow_unsupported_mongodb: bool,
    pub force: bool,
    pub skip_backup: bool,
    pub no_rollback: bool,
    pub dry_run: bool,
    pub connect: ConnectOptions,
}

pub struct UpgradeOutcome {
    pub from: Release,
    pub to: Release,
    pub dry_run: bool,
    /// The steps, in order (what was done, or with --dry-run what would be).
    pub steps: Vec<String>,
    pub verdicts: Vec<Verdict>,
    pub backup: Option<String>,
    /// (phase, seconds) in order.
    pub phases: Vec<(String, f64)>,
    /// (instance, seconds from drain to back in Traefik).
    pub instances: Vec<(String, f64)>,
    /// The old and the new release side by side (after an upgrade that ran).
    pub window: Option<window::Window>,
    pub log: Option<PathBuf>,
}

pub fn upgrade(inventory_path: &Path, options: &UpgradeOptions) -> Result<UpgradeOutcome> {
    let spec = ReleaseSpec::parse(&options.release).ok_or_else(|| {
        Error::bad_input(format!(
            "--release {:?}: not a release; write X.Y.Z (8.1.0), X.Y.Z-rc.N, X.x (newest 8.x) or X.Y.x (newest 8.1.x)",
            options.release
        ))
    })?;
    let run = Run::open(
        inventory_path,
        &RunOptions {
            graceful: (!options.dry_run).then_some("the upgrade"),
            // The secrets `up` generated: the same credentials for the backup, the guards and the
            // instances' env files.
            secrets: Secrets::Load,
            ..RunOptions::new("upgrade", &options.connect)
        },
    )?;
    let started = Instant::now();
    let mut phases = Vec::new();

    let target = resolve(&run, &spec, &options.release)?;
    // Taken before the guards look at the fleet, so they never see another run's half-done work.
    if !options.dry_run {
        run.lock(&format!("rcfleet upgrade --release {}", options.release), Some(target.to_string()))?;
    }
    let (fleet, remote, report, store) = (&run.fleet, &run.hosts, &run.report, &run.secrets);
    let login = secrets::mongo_admin(fleet, store)?;
    let current = fleet.workspace.release.clone();
    if target == current {
        report.step("release", "", format!("the inventory already says {target}; run `rcfleet up` to converge the fleet"));
    }
    let new_fleet = with_release(&fleet, &target);
    // An earlier run of this upgrade that died: its lock says how far it got.
    let resumed = resumed_progress(&run, &target)?;
    let (verdicts, database) = run_guards(&run, &target, options, login.as_ref(), &resumed.in_flight)?;
    let batch_size = options.batch.unwrap_or(fleet.upgrade.batch_size);
    let batches = resumed.batches(&fleet, batch_size);
    let (way, why) = choose_way(fleet, remote, options.strategy, batch_size)?;
    report.step("strategy", "", format!("{} ({why})", way.name()));
    let steps = plan_steps(&fleet, &new_fleet, &batches, options, way, &why);
    phases.push(("checks".to_string(), started.elapsed().as_secs_f64()));
    let outcome = |phases, instances, backup, log| UpgradeOutcome {
        from: current.clone(),
        to: target.clone(),
        dry_run: options.dry_run,
        steps: steps.clone(),
        verdicts: verdicts.clone(),
        backup,
        phases,
        instances,
        window: None,
        log,
    };
    if options.dry_run {
        return Ok(outcome(phases, Vec::new(), None, report.log_path().map(Path::to_path_buf)));
    }
    if let Some(refused) = refusal(&current, &target, &verdicts) {
        return Err(refused);
    }
    if target == current {
        return Ok(outcome(phases, Vec::new(), None, report.log_path().map(Path::to_path_buf)));
    }

    if crate::interrupt::requested() {
        return Err(Error::failed("stopped by Ctrl-C before anything changed"));
    }
    // The database host takes the backup and reads the migration version while the app hosts
    // pull the new image: none of it changes what serves, so the three overlap instead of adding up.
    let (database_side, pulled) = std::thread::scope(|scope| {
        let pulling = scope.spawn(|| {
            let phase = Instant::now();
            prepull(&new_fleet, &remote, &report).map(|()| phase.elapsed().as_secs_f64())
        });
        let database_side = (|| {
            let phase = Instant::now();
            let backup = if options.skip_backup {
                report.step("backup", &fleet.database_host().name, "skipped (--skip-backup)");
                None
            } else {
                Some(backup(&run, &current, &target, login.as_ref(), &database)?)
            };
            Ok::<_, Error>((backup, phase.elapsed().as_secs_f64()))
        })();
        (database_side, pulling.join().expect("the pre-pull thread does not panic"))
    });
    let (backup, backup_seconds) = database_side?;
    phases.push(("backup".to_string(), backup_seconds));
    phases.push(("pre-pull".to_string(), pulled?));
    // Before the canary: how far the database is migrated (read with the guards' facts, under
    // the lock, with only the old release running). A failure after the new release moved it
    // on cannot be answered by starting the old release again.
    let before = database.migrations.unwrap_or(0);
    report.step("migrations", &fleet.database_host().name, format!("the database is at migration version {before}"));
    let forward_only = || -> Option<String> {
        let ways_on = ways_on(&fleet, &current, &target, backup.as_deref());
        if !resumed.replaced.is_empty() {
            return Some(format!(
                "the interrupted run already started {target} on the database (it replaced {}), so {current} is not \
                 started on it again.\n{ways_on}",
                resumed.replaced.join(", ")
            ));
        }
        match migrations::read(&fleet, &remote, login.as_ref()) {
            Ok(now) if migrations::version(&now) == before => None,
            Ok(now) => {
                let locked = if now.as_ref().is_some_and(|c| c.locked) { ", its migration control still locked" } else { "" };
                report.step("migrations", &fleet.database_host().name, format!("migrated to version {}{locked}", migrations::version(&now)));
                Some(format!(
                    "{target} migrated the database (migration version {} -> {}{locked}). Rocket.Chat's migrations are \
                     forward-only: {current} must not start on it, so nothing was rolled back.\n{ways_on}",
                    before,
                    migrations::version(&now)
                ))
            }
            Err(err) => Some(format!(
                "whether {target} migrated the database is unknown ({}), so {current} was not started on it.\n{ways_on}",
                err
            )),
        }
    };
    let on_progress = |replaced: &[String], in_flight: &[String]| {
        let Some(deploy_lock) = run.held_lock() else { return };
        let progress = lock::Progress {
            release: target.to_string(),
            replaced: resumed.replaced.iter().chain(replaced).cloned().collect(),
            in_flight: in_flight.to_vec(),
        };
        if let Err(err) = deploy_lock.record(run.database(), progress) {
            report.warn(format!("could not write the progress into the deploy lock: {}", err));
        }
    };
    // What an interrupted start-first run left beside instances it is not redoing holds the
    // ports this run starts their new release on. Left there, the rollout takes it over.
    if let Err(err) = super::slots::remove_leftovers(fleet, remote, report, &resumed.in_flight) {
        report.warn(format!("removing what an interrupted start-first upgrade left failed: {err}"));
    }
    let new_files = render::render(&new_fleet, store)?;
    let rollout = Rollout {
        old: &fleet,
        new: &new_fleet,
        old_files: &run.artifacts,
        new_files: &new_files,
        remote: &remote,
        report: &report,
        recovery: Recovery::RollBack { all: !options.no_rollback },
        forward_only: Some(&forward_only),
        on_progress: Some(&on_progress),
        finish: "run the same upgrade again",
        start_first: way == Way::StartFirst,
        moved: Default::default(),
        first_ready: Default::default(),
        prometheus_file: Default::default(),
        prepared: Default::default(),
    };
    let result = match way {
        Way::StartFirst | Way::StopFirst => rollout.rolling(&batches),
        Way::Recreate => rollout.recreate(),
    };
    // Where the instances listen now, whatever happened: Prometheus follows them.
    let new_fleet = rollout.as_moved(&new_fleet);
    if result.is_err() && !rollout.moved.lock().unwrap_or_else(|p| p.into_inner()).is_empty() {
        let _ = super::instances::publish_prometheus(&rollout.as_moved(&fleet), &remote, &report, &mut Default::default(), false);
    }
    // The rollout's end: start-first has stopped every old instance by now (a stop-first
    // rollout stopped its last ones one batch earlier); recreate stopped them all first.
    let instances_closed = (way != Way::Recreate).then(Instant::now);
    let (rollout_phases, instances) = result.map_err(|failure| {
        let backup_line = match &backup {
            Some(path) => format!("\nThe backup taken before the upgrade is {}:{path}.", fleet.database_host().name),
            None => String::new(),
        };
        Error::failed(format!("upgrade to {target} failed.\n{failure}{backup_line}"))
    })?;
    phases.extend(rollout_phases);

    // With the guard overridden, the inventory records the operator's choice: without it the
    // edited inventory (new release, same mongodb.version) would no longer validate.
    let allow_unsupported = options.allow_unsupported_mongodb
        && matches!(compat::mongodb_support(&target, &fleet.mongodb.version), compat::Support::Unsupported(_));
    inventory::edit::set_release(inventory_path, &target, allow_unsupported)?;
    report.step("inventory", "", format!("{}: release = \"{target}\"", inventory_path.display()));
    if allow_unsupported {
        report.warn(format!(
            "{}: mongodb.allow_unsupported = true (the running MongoDB is not supported by {target}; \
             remove the line once MongoDB is on a supported version)",
            inventory_path.display()
        ));
    }
    // The microservices follow the instances to the new release at once (the ddp-streamers
    // one at a time, through Traefik's route): a bus of mixed versions may not understand
    // itself. After the inventory edit, so `up` finishes the job.
    let services = if new_fleet.microservices.enabled {
        Some(super::services::move_services(&new_fleet, &remote, &new_files, &report).map_err(|err| {
            Error::failed(format!(
                "every instance runs {target} and the inventory says so, but moving the microservices failed:\n{err}\n\
                 Run `rcfleet up` to move the rest of them."
            ))
        })?)
    } else {
        None
    };
    let window = window::Window::measure(rollout.first_ready.get().copied(), instances_closed, services);
    // Every instance was restarted (start-first: on its other ports, which Prometheus' targets
    // name since each batch's drain began): wait until Prometheus scrapes each or its metrics
    // answer from Prometheus' host. A moved target Prometheus does not list yet is not waited
    // for (its file lists it; Prometheus takes that in within two 5 s ticks, and `status` shows
    // it `pending` meanwhile). Prometheus' silence is worth a warning only.
    if let Err(err) = super::instances::publish_prometheus(&new_fleet, &remote, &report, &mut Default::default(), false) {
        report.step("prometheus", "", format!("WARNING: {}", err));
    }
    phases.push(("total".to_string(), started.elapsed().as_secs_f64()));
    Ok(UpgradeOutcome { window: Some(window), ..outcome(phases, instances, backup, report.log_path().map(Path::to_path_buf)) })
}

/// The two ways on from a database that `to` migrated and then failed on.
fn ways_on(fleet: &Fleet, from: &Release, to: &Release, backup: Option<&str>) -> String {
    let db = &fleet.database_host().name;
    let restore = match backup {
        Some(path) => format!(
            "`rcfleet restore {db}:{path}` brings back the database as it was before the upgrade; it takes the whole \
             workspace DOWN while it runs, and loses what was written since; then `rcfleet up` runs {from} again"
        ),
        None => format!(
            "restore a backup of your own taken before the upgrade (this one ran with --skip-backup) with \
             `rcfleet restore`; it takes the whole workspace DOWN while it runs; then `rcfleet up` runs {from} again"
        ),
    };
    format!(
        "Instances that serve were left serving; the failed ones stay out of Traefik. Two ways on:\n  \
         1. roll forward: `rcfleet upgrade --release <a release newer than {to} that fixes the failure>`;\n  \
         2. go back: {restore}."
    )
}

/// The release a spec names, from the registry's tags of the Rocket.Chat image.
fn resolve(run: &Run, spec: &ReleaseSpec, text: &str) -> Result<Release> {
    let (fleet, remote, report) = (&run.fleet, &run.hosts, &run.report);
    let repository = &fleet.images.rocketchat.repository;
    let tags = remote.block_on(registry::tags(repository, fleet.images.rocketchat_registry_insecure))?;
    let release = spec.resolve(&tags).ok_or_else(|| {
        let mut known: Vec<Release> = tags.iter().filter_map(|t| Release::parse(t)).filter(Release::is_stable).collect();
        known.sort();
        let newest: Vec<String> = known.iter().rev().take(8).map(Release::to_string).collect();
        Error::failed(format!(
            "no tag of {repository} matches {text}; the newest stable ones are {}",
            if newest.is_empty() { "(none)".to_string() } else { newest.join(", ") }
        ))
    })?;
    report.step("release", "", format!("{text} is {release} (from the tags of {repository})"));
    Ok(release)
}

/// The same fleet on another release.
fn with_release(fleet: &Fleet, release: &Release) -> Fleet {
    let mut fleet = fleet.clone();
    fleet.workspace.release = release.clone();
    fleet.images.rocketchat.tag = release.to_string();
    fleet
}

/// What an interrupted run of the same upgrade left: instances it replaced (and that run the
/// target and are ready now) and those it was replacing when it died. Empty for a fresh run.
#[derive(Default)]
struct Resumed {
    replaced: Vec<String>,
    in_flight: Vec<String>,
}

impl Resumed {
    /// The batches still to do: what was in flight first (it is out of Traefik already), then
    /// canary and batches of the rest, leaving out what was replaced.
    fn batches<'f>(&self, fleet: &'f Fleet, batch: u32) -> Vec<Vec<&'f Instance>> {
        let todo: Vec<&Instance> = fleet.instances().filter(|i| !self.replaced.contains(&i.name)).collect();
        let (in_flight, rest): (Vec<&Instance>, Vec<&Instance>) = todo.into_iter().partition(|i| self.in_flight.contains(&i.name));
        let mut batches = Vec::new();
        if !in_flight.is_empty() {
            batches.push(in_flight);
        }
        batches.extend(rollout::batches(rest, batch));
        batches
    }
}

fn resumed_progress(run: &Run, target: &Release) -> Result<Resumed> {
    let (fleet, remote, report) = (&run.fleet, &run.hosts, &run.report);
    let Some(dead) = run.held_lock().and_then(|l| l.interrupted()) else { return Ok(Resumed::default()) };
    report.step("resume", "", format!("took over the lock of an interrupted run: {}", dead.describe()));
    let Some(progress) = dead.progress.as_ref().filter(|p| p.release == target.to_string()) else {
        return Ok(Resumed::default());
    };
    // Trusted only as far as the fleet confirms it: replaced means running the target, ready.
    let mut resumed = Resumed { replaced: Vec::new(), in_flight: progress.in_flight.clone() };
    for instance in fleet.instances().filter(|i| progress.replaced.contains(&i.name)) {
        let on_target = probe::instance_version(remote, instance)?.is_some_and(|v| v == target.to_string());
        let ready = matches!(probe::instance_ready_steady(remote, fleet, instance)?, Ok(()));
        if on_target && ready {
            resumed.replaced.push(instance.name.clone());
        } else {
            resumed.in_flight.push(instance.name.clone());
        }
    }
    report.step(
        "resume",
        "",
        format!(
            "finishing it: already on {target}: {}; to redo first: {}",
            if resumed.replaced.is_empty() { "none".to_string() } else { resumed.replaced.join(", ") },
            if resumed.in_flight.is_empty() { "none".to_string() } else { resumed.in_flight.join(", ") }
        ),
    );
    Ok(resumed)
}

/// The guards' verdicts, and what MongoDB said of itself (one mongosh run: its version for the
/// guards, the migration version and the rest for the backup's record).
fn run_guards(
    run: &Run,
    target: &Release,
    options: &UpgradeOptions,
    login: Option<&secrets::MongoLogin>,
    in_flight: &[String],
) -> Result<(Vec<Verdict>, facts::Facts)> {
    let (fleet, remote, report) = (&run.fleet, &run.hosts, &run.report);
    // MongoDB's answer, the instances' readiness and the app hosts' room for the new image do
    // not wait for each other.
    let (database, unhealthy, low_disk) = std::thread::scope(|scope| {
        let database = scope.spawn(|| facts::read(remote, fleet, login));
        let low_disk = scope.spawn(|| super::disk::low_disk_warnings(fleet, remote));
        let unhealthy = unhealthy(fleet, remote);
        let database = database.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (database, unhealthy, low_disk.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
    });
    // Only a warning: the pull itself says when there is no room.
    for warning in low_disk.unwrap_or_default() {
        report.warn(warning);
    }
    let database = database?;
    let mongodb = database.series();
    // Instances an interrupted run left half replaced are this run's to finish, not a reason to refuse.
    let unhealthy: Vec<String> =
        unhealthy?.into_iter().filter(|p| !in_flight.iter().any(|name| p.starts_with(&format!("{name} ")) || p.starts_with(&format!("{name}:")))).collect();
    let facts = guards::Facts {
        current: &fleet.workspace.release,
        target,
        mongodb: &mongodb,
        unhealthy: &unhealthy,
        allow_downgrade: options.allow_downgrade,
        allow_unsupported_mongodb: options.allow_unsupported_mongodb || fleet.mongodb.allow_unsupported,
        force: options.force,
    };
    let verdicts = guards::check(&facts);
    for verdict in &verdicts {
        report.step("guard", "", verdict.text());
    }
    Ok((verdicts, database))
}

/// The error for refused guards, listing every reason.
fn refusal(from: &Release, to: &Release, verdicts: &[Verdict]) -> Option<Error> {
    let refused: Vec<String> = verdicts
        .iter()
        .filter_map(|v| match v {
            Verdict::Refuse(reason) => Some(reason.clone()),
            _ => None,
        })
        .collect();
    (!refused.is_empty()).then(|| {
        Error::failed(format!("upgrade {from} -> {to} refused; nothing was changed:\n  - {}", refused.join("\n  - ")))
    })
}

/// What keeps the fleet from being healthy: instances that are not ready. An instance that is
/// ready but out of Traefik (left out by an interrupted run) is not a problem: the rollout puts
/// every instance back.
fn unhealthy(fleet: &Fleet, remote: &Hosts) -> Result<Vec<String>> {
    let instances: Vec<&Instance> = fleet.instances().collect();
    let readiness = remote::fan_out(&instances, CONCURRENCY, |i| i.name.clone(), |i| probe::instance_ready_steady(remote, fleet, i));
    let mut problems = Vec::new();
    for (name, result) in readiness {
        match result {
            Ok(Ok(())) => {}
            Ok(Err(seen)) => problems.push(format!("{name} not ready: {seen}")),
            Err(err) => problems.push(format!("{name}: {}", err)),
        }
    }
    if let Err(seen) = probe::traefik_servers(remote, fleet)? {
        problems.push(format!("Traefik: {seen}"));
    }
    Ok(problems)
}

/// A `mongodump` archive of the database on the database host, before any instance changes,
/// taken like every backup (`ops::backup`: record, retention).
fn backup(run: &Run, from: &Release, to: &Release, login: Option<&secrets::MongoLogin>, database: &facts::Facts) -> Result<String> {
    let note = format!("before upgrade {from} -> {to}");
    let (archive, _) = super::backup::take_with(&run.fleet, &run.hosts, &run.report, login, Some(&note), database).map_err(|err| {
        Error::failed(format!("{}. Fix it, or pass --skip-backup to upgrade without a backup", err))
    })?;
    Ok(archive.path)
}

/// Pulls the new image on every app host at once, before any instance is touched; asks each
/// which Compose it has on the way (a host without one fails here, not half-way, and the
/// rollout's first `compose up` on each host does not wait for the question).
fn prepull(new_fleet: &Fleet, remote: &Hosts, report: &Reporter) -> Result<()> {
    let hosts: Vec<&Host> = new_fleet.hosts_with(Role::Rocketchat).collect();
    let results = remote::fan_out(&hosts, CONCURRENCY, |h| h.name.clone(), |host| {
        let conn = remote.host(&host.name);
        conn.compose_cli()?;
        pull_missing_images(new_fleet, host, conn, report)
    });
    remote::all_succeeded(results).map_err(|err| {
        Error::failed(format!("{}\nNo instance was changed. Check the registry and run the same upgrade again.", err))
    })?;
    report.step("pre-pull", "", format!("{} present on every app host", new_fleet.images.rocketchat));
    Ok(())
}

fn plan_steps(fleet: &Fleet, new_fleet: &Fleet, batches: &[Vec<&Instance>], options: &UpgradeOptions, way: Way, why: &str) -> Vec<String> {
    let db = &fleet.database_host().name;
    let to = &new_fleet.workspace.release;
    let mut steps = vec![format!("hold the deploy lock on {db} throughout")];
    if options.skip_backup {
        steps.push("no backup (--skip-backup)".to_string());
    } else {
        steps.push(format!("back up MongoDB on {db} to {}/ (mongodump from {})", render::backups_dir(fleet), fleet.images.mongodb_tools));
    }
    let app_hosts: Vec<&str> = fleet.hosts_with(Role::Rocketchat).map(|h| h.name.as_str()).collect();
    steps.push(format!("pull {} on {}", new_fleet.images.rocketchat, app_hosts.join(", ")));
    let drain = fleet.upgrade.drain_seconds;
    steps.push(format!("replace instances {} ({why})", way.name()));
    match way {
        Way::StartFirst => {
            for (index, batch) in batches.iter().enumerate() {
                let names: Vec<String> = batch.iter().map(|i| {
                    let next = i.on_slot(i.slot.other());
                    format!("{} (ports {}/{} -> {}/{})", i.name, i.port, i.metrics_port, next.port, next.metrics_port)
                }).collect();
                let label = if index == 0 { "canary".to_string() } else { format!("batch {index}") };
                steps.push(format!(
                    "{label}: {}: start {to} beside the running one, wait until ready and reporting {to}, into Traefik beside it (confirmed UP), old one out of Traefik (confirmed), wait {drain} s, stop the old one",
                    names.join(", ")
                ));
            }
        }
        Way::StopFirst => {
            for (index, batch) in batches.iter().enumerate() {
                let names: Vec<&str> = batch.iter().map(|i| i.name.as_str()).collect();
                let label = if index == 0 { "canary".to_string() } else { format!("batch {index}") };
                steps.push(format!(
                    "{label}: {}: out of Traefik (confirmed), wait {drain} s, recreate on {to}, wait until ready and reporting {to}, back into Traefik (confirmed UP)",
                    names.join(", ")
                ));
            }
        }
        Way::Recreate => {
            steps.push("take every instance out of Traefik: the workspace is DOWN from here".to_string());
            steps.push(format!("stop every instance, start all on {to}, wait until all are ready and report {to}"));
            steps.push("put every instance back into Traefik (confirmed UP)".to_string());
        }
    }
    steps.push(format!("write release = \"{to}\" to the inventory"));
    steps.extend(window::steps(fleet, new_fleet));
    steps
}

impl UpgradeOutcome {
    /// Whether a guard refused (only a dry run returns such an outcome).
    pub fn refused(&self) -> bool {
        self.verdicts.iter().any(Verdict::refused)
    }
}

impl Outcome for UpgradeOutcome {
    fn to_text(&self) -> String {
        let mut out = String::new();
        if self.from == self.to && !self.dry_run {
            out.push_str(&format!("Already on {}; nothing to upgrade.\n", self.to));
            return out;
        }
        out.push_str(&format!("\nUpgrade {} -> {}\n", self.from, self.to));
        out.push_str("\nGuards:\n");
        for verdict in &self.verdicts {
            out.push_str(&format!("  {}\n", verdict.text()));
        }
        out.push_str(if self.dry_run { "\nSteps it would take:\n" } else { "\nSteps taken:\n" });
        for (index, step) in self.steps.iter().enumerate() {
            out.push_str(&format!("  {:>2}. {step}\n", index + 1));
        }
        if self.dry_run {
            if self.refused() {
                out.push_str("\nThe upgrade would be refused (see the guards above). Nothing was changed (--dry-run).\n");
            } else {
                out.push_str("\nNothing was changed (--dry-run).\n");
            }
            return out;
        }
        if let Some(backup) = &self.backup {
            out.push_str(&format!("\nBackup: {backup}\n"));
        }
        out.push_str("\nTime per phase:\n");
        for (phase, seconds) in &self.phases {
            out.push_str(&format!("  {phase:<12} {seconds:>7.1} s\n"));
        }
        out.push_str("\nTime per instance (out of Traefik -> back in):\n");
        for (instance, seconds) in &self.instances {
            out.push_str(&format!("  {instance:<12} {seconds:>7.1} s\n"));
        }
        if let Some(window) = &self.window {
            out.push_str(&window.to_text(&self.from.to_string(), &self.to.to_string()));
        }
        out
    }

    fn to_json(&self) -> Value {
        json!({
            "from": self.from.to_string(),
            "to": self.to.to_string(),
            "dry_run": self.dry_run,
            "guards": self.verdicts.iter().map(|v| json!({
                "verdict": match v { Verdict::Pass(_) => "pass", Verdict::Overridden(_) => "overridden", Verdict::Refuse(_) => "refused" },
                "text": match v { Verdict::Pass(t) | Verdict::Overridden(t) | Verdict::Refuse(t) => t },
            })).collect::<Vec<_>>(),
            "steps": self.steps,
            "backup": self.backup,
            "phases": self.phases.iter().map(|(p, s)| json!({"phase": p, "seconds": s})).collect::<Vec<_>>(),
            "instances": self.instances.iter().map(|(i, s)| json!({"instance": i, "seconds": s})).collect::<Vec<_>>(),
            "mixed_versions": self.window.as_ref().map(window::Window::to_json),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fleet(extra: &str) -> Fleet {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/three-app-hosts.toml")).unwrap();
        crate::inventory::parse(&format!("{text}{extra}"), Path::new("three-app-hosts.toml")).unwrap()
    }

    #[test]
    fn a_resumed_upgrade_redoes_what_was_in_flight_first_and_skips_what_was_replaced() {
        let fleet = fleet("");
        let names = |batches: Vec<Vec<&Instance>>| -> Vec<Vec<String>> {
            batches.iter().map(|b| b.iter().map(|i| i.name.clone()).collect()).collect()
        };
        let resumed = Resumed { replaced: vec!["app1-0".into(), "app1-1".into()], in_flight: vec!["app2-0".into()] };
        assert_eq!(
            names(resumed.batches(&fleet, 2)),
            vec![vec!["app2-0"], vec!["app2-1"], vec!["app3-0", "app3-1"]]
        );
        assert_eq!(names(Resumed::default().batches(&fleet, 2)), names(rollout::batches(fleet.instances(), 2)));
    }
}

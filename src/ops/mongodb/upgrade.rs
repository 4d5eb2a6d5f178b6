//! `rcfleet mongodb upgrade --to X.Y`: MongoDB one major at a time (5.0 -> 6.0 -> 7.0 -> 8.0
//! -> 8.2), as MongoDB's upgrade pages require, on the one-member replica set rcfleet deploys.
//!
//! The path is planned from what the server runs, not from the inventory: its version and
//! feature compatibility version (FCV). Before anything changes: the FCV must equal the running
//! version (or be one step behind it, the trace of an interrupted hop, which is finished
//! first), the replica set healthy, no downgrade, and every MongoDB on the way supported by the
//! running Rocket.Chat release (`compat`, shared with `upgrade`) unless
//! `--allow-unsupported-mongodb`. Then: pull every image, back up, take every instance out of
//! Traefik and stop it (announced downtime: a one-member set has no secondary to roll through),
//! and per hop: the database unit on the next image, PRIMARY, `setFeatureCompatibilityVersion`
//! (`confirm: true` from 7.0), and `mongodb.version` rewritten in the inventory; finally every
//! instance starts again and goes back into Traefik. The inventory is rewritten after each hop,
//! so that `up` and a second run both start from the MongoDB really running: running the
//! command again after an interruption finishes the path.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::facts::{self, Facts};
use crate::compat::{self, Support};
use crate::error::{Error, Result};
use crate::fleet::{Fleet, Release};
use crate::inventory;
use crate::ops::backup;
use crate::ops::converge::{converge_unit, pull_missing_images, send_files};
use crate::ops::hosts::Hosts;
use crate::ops::instances::edited_is_invalid;
use crate::ops::outage;
use crate::ops::probe;
use crate::ops::report::{Outcome, Reporter};
use crate::ops::run::{Run, RunOptions, Secrets};
use crate::ops::secrets::{self, MongoLogin, Store};
use crate::ops::wait;
use crate::remote::ConnectOptions;
use crate::render;

/// The MongoDB series rcfleet climbs, in MongoDB's required order (each
/// `…/release-notes/X.Y-upgrade-replica-set/` page: "Upgrade Version Path"; 8.2 requires 8.0).
pub const SERIES: &[&str] = &["4.4", "5.0", "6.0", "7.0", "8.0", "8.2"];

pub struct MongoUpgradeOptions {
    /// `major.minor`.
    pub to: String,
    pub dry_run: bool,
    pub allow_unsupported_mongodb: bool,
    pub connect: ConnectOptions,
}

/// One change to the server, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Finish a hop an interrupted run left: the binary runs this version, the FCV is behind.
    SetFcv(String),
    /// Run the next major and set the FCV to it.
    Hop(String),
}

impl Step {
    pub fn version(&self) -> &str {
        match self {
            Step::SetFcv(v) | Step::Hop(v) => v,
        }
    }
}

/// The path, and what the guards said of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub steps: Vec<Step>,
    /// Combinations outside the compatibility table, accepted with --allow-unsupported-mongodb.
    pub overridden: Vec<String>,
    /// Why the upgrade is refused; empty when it may go.
    pub refused: Vec<String>,
}

/// Plans the way from MongoDB `running` (`major.minor`) with FCV `fcv` to `target` under
/// Rocket.Chat `release`. Pure; every refusal is listed.
pub fn plan(running: &str, fcv: &str, target: &str, release: &Release, allow_unsupported: bool) -> Route {
    let mut route = Route { steps: Vec::new(), overridden: Vec::new(), refused: Vec::new() };
    let index = |v: &str| SERIES.iter().position(|s| *s == v);
    let (Some(from), Some(to)) = (index(running), index(target)) else {
        route.refused.push(format!("rcfleet climbs MongoDB {} only; the server runs {running}, --to says {target}", SERIES.join(" -> ")));
        return route;
    };
    if to < from {
        route.refused.push(format!(
            "--to {target} is older than the {running} the server runs: MongoDB cannot go back to an older major (restore a backup instead)"
        ));
        return route;
    }
    if fcv != running {
        if from > 0 && fcv == SERIES[from - 1] {
            route.steps.push(Step::SetFcv(running.to_string()));
        } else {
            route.refused.push(format!(
                "the feature compatibility version is {fcv} while the server runs {running}; MongoDB upgrades only from an FCV \
                 equal to the running version. Set it by hand (setFeatureCompatibilityVersion) first"
            ));
            return route;
        }
    }
    route.steps.extend(SERIES[from + 1..=to].iter().map(|v| Step::Hop(v.to_string())));
    for step in &route.steps {
        let version = step.version();
        match compat::mongodb_support(release, version) {
            Support::Supported => {}
            Support::Unsupported(list) => {
                let combination = format!(
                    "Rocket.Chat {release} on MongoDB {version}: outside the documented matrix ({release} supports MongoDB {})",
                    list.join(", ")
                );
                if allow_unsupported {
                    route.overridden.push(combination);
                } else {
                    route.refused.push(format!("{combination}; pass --allow-unsupported-mongodb to accept it for a short window"));
                }
            }
            Support::Unknown => route.overridden.push(format!("rcfleet has no sources for Rocket.Chat {}.x on MongoDB {version}", release.major)),
        }
    }
    route
}

/// The Rocket.Chat majors documented on MongoDB `version`, for the advice that follows an
/// override: `8.x`.
fn releases_for(version: &str) -> Vec<String> {
    (6..=9)
        .filter(|major| compat::supported_mongodb(&Release { major: *major, minor: 0, patch: 0, rc: None }).is_some_and(|l| l.contains(&version)))
        .map(|major| format!("{major}.x"))
        .collect()
}

pub struct MongoUpgradeOutcome {
    pub from: String,
    pub fcv: String,
    pub to: String,
    pub release: Release,
    pub dry_run: bool,
    pub steps: Vec<String>,
    pub overridden: Vec<String>,
    pub advice: Option<String>,
    pub backup: Option<String>,
    /// Seconds from the first instance leaving Traefik to all being back.
    pub downtime_seconds: Option<f64>,
}

pub fn upgrade(inventory_path: &Path, options: &MongoUpgradeOptions) -> Result<MongoUpgradeOutcome> {
    if !SERIES.contains(&options.to.as_str()) {
        return Err(Error::bad_input(format!("--to {:?}: not a MongoDB series rcfleet climbs; write one of {}", options.to, SERIES.join(", "))));
    }
    let command = format!("rcfleet mongodb upgrade --to {}", options.to);
    let run = Run::open(
        inventory_path,
        &RunOptions {
            graceful: (!options.dry_run).then_some("the MongoDB upgrade"),
            lock: (!options.dry_run).then(|| command.clone()),
            secrets: Secrets::Load,
            ..RunOptions::new("mongodb upgrade", &options.connect)
        },
    )?;
    let (fleet, remote, report, store, db) = (&run.fleet, &run.hosts, &run.report, &run.secrets, run.database());
    let login = secrets::mongo_admin(fleet, store)?;
    let facts = facts::read_settled(&remote, &fleet, login.as_ref(), report, Duration::from_secs(30))?;
    let running = facts.series();
    let release = fleet.workspace.release.clone();
    let allow = options.allow_unsupported_mongodb || fleet.mongodb.allow_unsupported;
    let mut route = plan(&running, &facts.fcv, &options.to, &release, allow);
    if let Some(unhealthy) = facts.unhealthy() {
        route.refused.push(format!("the replica set is not healthy: {unhealthy}"));
    }
    let hop_fleets = hop_fleets(inventory_path, &fleet, &route.steps, &release)?;
    for text in &route.overridden {
        report.warn(format!("--allow-unsupported-mongodb: {text}"));
    }
    let advice = advice(&route, &release);
    let outcome = MongoUpgradeOutcome {
        from: running.clone(),
        fcv: facts.fcv.clone(),
        to: options.to.clone(),
        release: release.clone(),
        dry_run: options.dry_run,
        steps: describe(&fleet, &route.steps, &running),
        overridden: route.overridden.clone(),
        advice,
        backup: None,
        downtime_seconds: None,
    };
    if !route.refused.is_empty() {
        return Err(Error::failed(format!(
            "mongodb upgrade {running} -> {} refused; nothing was changed:\n  - {}",
            options.to,
            route.refused.join("\n  - ")
        )));
    }
    if options.dry_run {
        return Ok(outcome);
    }
    if route.steps.is_empty() {
        if fleet.mongodb.version != running {
            inventory::edit::set_mongodb_version(inventory_path, &running, false)?;
            report.step("inventory", "", format!("{}: mongodb.version = \"{running}\"", inventory_path.display()));
        }
        return Ok(outcome);
    }

    // Everything that can fail without downtime comes first: the images, then the backup.
    let db_host = fleet.database_host();
    for hop in &hop_fleets {
        pull_missing_images(hop, db_host, db, &report).map_err(|e| Error::failed(format!("{e}\nNothing was changed.")))?;
    }
    let note = format!("before mongodb upgrade {running} -> {}", options.to);
    let (archive, _) = backup::take_with(&fleet, &remote, &report, login.as_ref(), Some(&note), &facts)?;
    if crate::interrupt::requested() {
        return Err(Error::failed("stopped by Ctrl-C before anything changed"));
    }

    let down = Instant::now();
    outage::take_down(&fleet, &remote, &report)?;
    let mut current = fleet.clone();
    let mut stopped_early = None;
    for (index, (step, hop)) in route.steps.iter().zip(&hop_fleets).enumerate() {
        crate::interrupt::set_left_to_do(&format!(
            "MongoDB may be half way to {}, every instance is stopped: run `{command}` again to finish",
            step.version()
        ));
        let unsupported = matches!(compat::mongodb_support(&release, step.version()), Support::Unsupported(_));
        let done = run_step(hop, &remote, &store, login.as_ref(), step, &report).and_then(|()| {
            inventory::edit::set_mongodb_version(inventory_path, step.version(), unsupported)?;
            report.step("inventory", "", format!("{}: mongodb.version = \"{}\"", inventory_path.display(), step.version()));
            Ok(())
        });
        if let Err(err) = done {
            return Err(Error::failed(format!(
                "{err}\nNow: MongoDB runs {} or is on its way to {}; every instance is stopped and out of Traefik (the \
                 workspace is down). Fix the cause and run `{command}` again to finish; the backup taken first is {}:{}.",
                current.mongodb.version,
                step.version(),
                db.name(),
                archive.path
            )));
        }
        current = hop.clone();
        if crate::interrupt::requested() && index + 1 < route.steps.len() {
            stopped_early = Some(step.version().to_string());
            break;
        }
    }
    let current = inventory::load(inventory_path)?;
    outage::bring_back(&current, &remote, &store, &report).map_err(|err| {
        Error::failed(format!(
            "{err}\nMongoDB runs {}; some instances may still be stopped or out of Traefik: run `rcfleet up` to start them",
            current.mongodb.version
        ))
    })?;
    let downtime = down.elapsed().as_secs_f64();
    report.step("downtime", "", format!("{downtime:.1} s from the first instance out of Traefik to all back"));
    if let Some(reached) = stopped_early {
        return Err(Error::failed(format!(
            "stopped by Ctrl-C after MongoDB {reached}; the fleet serves again on it ({downtime:.1} s of downtime). Run \
             `{command}` again to go on to {}.",
            options.to
        )));
    }
    Ok(MongoUpgradeOutcome { backup: Some(archive.path), downtime_seconds: Some(downtime), ..outcome })
}

/// The fleet as each step leaves it: the inventory's text with `mongodb.version` changed,
/// read by the same rules (so the image tag follows the version as it does for `up`).
fn hop_fleets(inventory_path: &Path, fleet: &Fleet, steps: &[Step], release: &Release) -> Result<Vec<Fleet>> {
    let text = inventory::edit::read(inventory_path)?;
    steps
        .iter()
        .map(|step| {
            let mut edited = inventory::edit::with_mongodb_version(&text, step.version())?;
            if matches!(compat::mongodb_support(release, step.version()), Support::Unsupported(_)) && !fleet.mongodb.allow_unsupported {
                edited = inventory::edit::with_mongodb_allow_unsupported(&edited)?;
            }
            inventory::parse(&edited, inventory_path)
                .map_err(|err| edited_is_invalid(err, &format!("mongodb.version = \"{}\"", step.version())))
        })
        .collect()
}

/// One step on the database host: for a hop, the database unit's files for the next version
/// and `compose up` (which recreates the mongodb container on the new image, same volume),
/// then PRIMARY and the new version; then the FCV.
fn run_step(hop: &Fleet, remote: &Hosts, store: &Store, login: Option<&MongoLogin>, step: &Step, report: &Reporter) -> Result<()> {
    let db = remote.host(&hop.database_host().name);
    let version = step.version();
    if let Step::Hop(_) = step {
        // MongoDB's prerequisites, checked again before each step: FCV equal to the running
        // version, a healthy set.
        let before = facts::read(remote, hop, login)?;
        if before.fcv != before.series() {
            return Err(Error::failed(format!("{}: before the step to {version}: the FCV is {} on MongoDB {}", db.name(), before.fcv, before.version)));
        }
        if let Some(unhealthy) = before.unhealthy() {
            return Err(Error::failed(format!("{}: before the step to {version}: the replica set is not healthy: {unhealthy}", db.name())));
        }
        let unit = render::database_unit(hop);
        let files = render::render(hop, store)?;
        let prefix = format!("{}/", unit.dir);
        let unit_files: Vec<render::Artifact> = files
            .iter()
            .filter(|h| h.host == unit.host)
            .flat_map(|h| h.files.iter().filter(|f| f.path.starts_with(&prefix)).cloned())
            .collect();
        let deploy_dir = render::deploy_dir(hop);
        let written = send_files(db, &deploy_dir, &unit_files)?;
        let changed = std::collections::BTreeMap::from([(unit.host.clone(), written)]);
        converge_unit(hop, db, &unit, &changed, &deploy_dir, report)?;
        report.step("mongodb", db.name(), format!("the database unit runs {}", hop.images.mongodb));
    }
    let facts = wait_primary(hop, remote, login, report)?;
    if facts.series() != version {
        return Err(Error::failed(format!("{}: MongoDB reports {} after the change to {version}", db.name(), facts.version)));
    }
    if facts.fcv != version {
        let after = set_fcv(hop, remote, login, version)?;
        if after.fcv != version {
            return Err(Error::failed(format!("{}: the feature compatibility version stayed {} after setting {version}", db.name(), after.fcv)));
        }
    }
    report.step("mongodb", db.name(), format!("MongoDB {} PRIMARY, feature compatibility version {version}", facts.version));
    Ok(())
}

/// Waits until the replica set has a PRIMARY again after the container was recreated; returns
/// what the server then says of itself.
fn wait_primary(fleet: &Fleet, remote: &Hosts, login: Option<&MongoLogin>, report: &Reporter) -> Result<Facts> {
    let db = remote.host(&fleet.database_host().name);
    wait::until(report, "mongodb", "replica set PRIMARY", Duration::from_secs(180), Duration::from_millis(500), || {
        facts::poll_primary(remote, fleet, login)
    })
    .map_err(|err| {
        let logs = probe::mongodb(fleet, db).ok().flatten().map(|c| probe::last_log_lines(db, &c.id, 5)).unwrap_or_default();
        Error::failed(format!("{}: {err}{}", db.name(), if logs.is_empty() { String::new() } else { format!("\n{logs}") }))
    })
}

/// The FCV command: `confirm: true` from 7.0 on (MongoDB docs, setFeatureCompatibilityVersion:
/// "New in version 7.0 ... If you omit the confirm parameter ... the command fails"); before
/// 7.0 the field does not exist and is refused.
pub fn fcv_command(version: &str) -> String {
    let major: u32 = version.split('.').next().and_then(|m| m.parse().ok()).unwrap_or(0);
    let confirm = if major >= 7 { ", confirm: true" } else { "" };
    format!("{{ setFeatureCompatibilityVersion: \"{version}\"{confirm} }}")
}

/// Sets the FCV and reads the facts after, in one mongosh run; the command's failure is
/// mongosh's (script mode: an uncaught server error, exit 1).
fn set_fcv(fleet: &Fleet, remote: &Hosts, login: Option<&MongoLogin>, version: &str) -> Result<Facts> {
    let command = format!("db.getSiblingDB(\"admin\").runCommand({});", fcv_command(version));
    facts::read_after(remote, fleet, login, &command)
        .map_err(|err| Error::failed(format!("setting the feature compatibility version to {version}: {err}")))
}

fn advice(route: &Route, release: &Release) -> Option<String> {
    let last = route.steps.last()?.version();
    if matches!(compat::mongodb_support(release, last), Support::Supported) || route.overridden.is_empty() {
        return None;
    }
    let releases = releases_for(last);
    Some(format!(
        "Rocket.Chat {release} is not documented on MongoDB {last}: run `rcfleet upgrade --release {}` at once after this",
        releases.first().cloned().unwrap_or_else(|| "<a release that supports it>".to_string())
    ))
}

fn describe(fleet: &Fleet, steps: &[Step], running: &str) -> Vec<String> {
    let db = &fleet.database_host().name;
    if steps.is_empty() {
        return Vec::new();
    }
    let mut lines = vec![
        format!("hold the deploy lock on {db} throughout"),
        format!("pull the MongoDB images of every step on {db}"),
        format!("back up the database to {}/", render::backups_dir(fleet)),
        format!(
            "take every instance out of Traefik and stop it: the workspace is DOWN from here (one-member replica set: \
             expect about {} s per step plus the instances' start)",
            EXPECTED_SECONDS_PER_STEP
        ),
    ];
    let mut from = running.to_string();
    for step in steps {
        match step {
            Step::SetFcv(v) => lines.push(format!("finish the interrupted step: set the feature compatibility version to {v} ({})", fcv_command(v))),
            Step::Hop(v) => {
                lines.push(format!(
                    "MongoDB {from} -> {v}: the mongodb container on the {v} image, wait for PRIMARY, {}, write mongodb.version = \"{v}\"",
                    fcv_command(v)
                ));
                from = v.clone();
            }
        }
    }
    lines.push("start every instance, wait until ready, put them back into Traefik (confirmed UP)".to_string());
    lines
}

/// What a step takes on a small database, to announce the downtime: a container recreated,
/// an election, one command.
const EXPECTED_SECONDS_PER_STEP: u32 = 30;

impl Outcome for MongoUpgradeOutcome {
    fn to_text(&self) -> String {
        let mut out = format!("\nMongoDB {} (FCV {}) -> {} under Rocket.Chat {}\n", self.from, self.fcv, self.to, self.release);
        if self.steps.is_empty() {
            out.push_str(&format!("Already on {} with FCV {}; nothing to do.\n", self.from, self.fcv));
            return out;
        }
        for text in &self.overridden {
            out.push_str(&format!("WARNING (--allow-unsupported-mongodb): {text}\n"));
        }
        out.push_str(if self.dry_run { "\nSteps it would take:\n" } else { "\nSteps taken:\n" });
        for (index, step) in self.steps.iter().enumerate() {
            out.push_str(&format!("  {:>2}. {step}\n", index + 1));
        }
        if let Some(advice) = &self.advice {
            out.push_str(&format!("\nNEXT: {advice}\n"));
        }
        if self.dry_run {
            out.push_str("\nNothing was changed (--dry-run).\n");
            return out;
        }
        if let Some(backup) = &self.backup {
            out.push_str(&format!("\nBackup: {backup}\n"));
        }
        if let Some(seconds) = self.downtime_seconds {
            out.push_str(&format!("Downtime: {seconds:.1} s (instances out of Traefik -> all back)\n"));
        }
        out
    }

    fn to_json(&self) -> Value {
        json!({
            "from": self.from,
            "fcv": self.fcv,
            "to": self.to,
            "release": self.release.to_string(),
            "dry_run": self.dry_run,
            "steps": self.steps,
            "overridden": self.overridden,
            "advice": self.advice,
            "backup": self.backup,
            "downtime_seconds": self.downtime_seconds,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn release(text: &str) -> Release {
        Release::parse(text).unwrap()
    }

    fn hops(route: &Route) -> Vec<String> {
        route.steps.iter().map(|s| format!("{s:?}")).collect()
    }

    #[test]
    fn the_path_climbs_one_major_at_a_time() {
        let route = plan("5.0", "5.0", "7.0", &release("7.10.0"), false);
        assert_eq!(hops(&route), ["Hop(\"6.0\")", "Hop(\"7.0\")"]);
        assert!(route.refused.is_empty() && route.overridden.is_empty(), "{route:?}");
        assert_eq!(plan("8.0", "8.0", "8.2", &release("8.1.0"), false).steps, [Step::Hop("8.2".into())]);
        assert!(plan("7.0", "7.0", "7.0", &release("7.10.0"), false).steps.is_empty());
    }

    #[test]
    fn a_downgrade_an_unknown_series_and_a_stray_fcv_are_refused() {
        assert!(plan("7.0", "7.0", "6.0", &release("7.10.0"), false).refused[0].contains("cannot go back"));
        assert!(plan("7.0", "7.0", "7.1", &release("7.10.0"), false).refused[0].contains("climbs MongoDB"));
        let stray = plan("7.0", "5.0", "8.0", &release("8.1.0"), true);
        assert!(stray.refused[0].contains("feature compatibility version is 5.0"), "{stray:?}");
    }

    #[test]
    fn an_interrupted_hop_is_finished_first() {
        let route = plan("6.0", "5.0", "7.0", &release("7.10.0"), false);
        assert_eq!(route.steps, [Step::SetFcv("6.0".into()), Step::Hop("7.0".into())]);
    }

    #[test]
    fn mongodb_8_under_rocket_chat_7_needs_the_override_and_says_what_follows() {
        let refused = plan("7.0", "7.0", "8.0", &release("7.10.0"), false);
        assert_eq!(refused.refused.len(), 1);
        assert!(refused.refused[0].contains("Rocket.Chat 7.10.0 on MongoDB 8.0"), "{refused:?}");
        let allowed = plan("7.0", "7.0", "8.0", &release("7.10.0"), true);
        assert!(allowed.refused.is_empty());
        assert_eq!(allowed.overridden.len(), 1);
        let advice = advice(&allowed, &release("7.10.0")).unwrap();
        assert!(advice.contains("rcfleet upgrade --release 8.x"), "{advice}");
        assert_eq!(advice_for_supported(), None);
    }

    fn advice_for_supported() -> Option<String> {
        advice(&plan("5.0", "5.0", "7.0", &release("7.10.0"), false), &release("7.10.0"))
    }

    #[test]
    fn the_fcv_command_confirms_from_7_0_only() {
        assert_eq!(fcv_command("6.0"), "{ setFeatureCompatibilityVersion: \"6.0\" }");
        assert_eq!(fcv_command("7.0"), "{ setFeatureCompatibilityVersion: \"7.0\", confirm: true }");
        assert_eq!(fcv_command("8.2"), "{ setFeatureCompatibilityVersion: \"8.2\", confirm: true }");
    }
}

//! `up`: bring the whole fleet to what the inventory describes, from nothing or from any
//! earlier state, and prove it serves.
//!
//! Order: connect and preflight every host (nothing changes if any host has a problem); pull
//! missing images and send changed files everywhere (before any container is touched); the
//! database unit, then the replica set's PRIMARY; monitoring; every instance, in parallel
//! across hosts, until ready; Traefik; serving instances whose files changed, through the
//! rollout; the microservice containers, until healthy; Traefik's server list, confirmed
//! through its API; Prometheus' targets, confirmed through its API. A unit is only (re)started when one of its files changed or one
//! of its containers is not running, so a second `up` changes nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::audit;
use super::converge::{converge_unit, files_differ, pull_missing_images, send_files, unit_files, wait_ready};
use super::instances::{publish_prometheus, publish_traefik, Changes};
use super::rollout::{self, Recovery, Rollout};
use super::lock;
use super::push_images;
use super::probe;
use super::hosts::{Hosts, CONCURRENCY};
use super::report::Outcome;
use super::run::{Run, RunOptions, Secrets, WhenUnreachable};
use super::secrets;
use super::wait::{self, Poll};
use crate::error::{Error, Result};
use crate::fleet::{Fleet, Host, Instance, Role};
use crate::remote::{self, ConnectOptions, Connection};
use crate::render::{self, HostArtifacts};

pub struct UpOptions {
    pub connect: ConnectOptions,
    /// Send images from the local Docker engine instead of having hosts pull them.
    pub push_images: bool,
}

/// What `up` did and found, for the summary.
pub struct UpOutcome {
    pub fleet: Fleet,
    /// Per host, in inventory order: what changed there (empty = unchanged).
    pub changes: Vec<(String, Vec<String>)>,
    pub traefik_servers: BTreeMap<String, String>,
    pub prometheus_targets: BTreeMap<String, String>,
    pub seconds: f64,
    pub log: Option<std::path::PathBuf>,
}

pub fn up(inventory_path: &Path, options: &UpOptions) -> Result<UpOutcome> {
    // App hosts that cannot be reached are left out of this run, so the rest of the fleet still
    // converges; the run then fails naming them. Their instances stay in Traefik's and
    // Prometheus' lists, which are rendered from the whole inventory: an SSH problem on the
    // operator's side must not take serving capacity away (Traefik's health check takes out
    // instances that really stopped answering).
    let refuse = |fleet: &Fleet, remote: &Hosts| refuse_release_change(inventory_path, fleet, remote);
    let run = Run::open(
        inventory_path,
        &RunOptions {
            advice: true,
            when_unreachable: WhenUnreachable::CarryOnWithoutAppHosts,
            graceful: Some("`rcfleet up`"),
            lock: Some("rcfleet up".to_string()),
            preflight: true,
            // Under the lock, so that no upgrade is half-way through while this looks.
            check: Some(&refuse),
            secrets: Secrets::LoadOrCreate,
            ..RunOptions::new("up", &options.connect)
        },
    )?;
    let (fleet, full_fleet, remote, report, store) = (&run.fleet, &run.whole, &run.hosts, &run.report, &run.secrets);
    let (artifacts, deploy_dir, unreachable) = (&run.artifacts, &run.deploy_dir, &run.unreachable);
    // Each phase's time goes to the run log (`time` lines): where a converged run spends it.
    let phase = std::cell::Cell::new(report.started());
    let timed = |name: &str| report.phase_time(name, phase.replace(Instant::now()));
    timed("connect, preflight, lock, release check");

    let local_engine = if options.push_images { Some(push_images::local_engine(&remote)?) } else { None };
    // Instances' files go with their instance (below), Traefik's server list and Prometheus'
    // targets once the instances are ready: written now, they would change a serving instance
    // or send users to one that is not ready.
    let shared = without_published_files(&fleet, &artifacts);
    let changed = prepare_hosts(&run, &shared, local_engine.as_ref())?;
    timed("images and files");
    stop_if_asked("images and files were sent; no container was changed")?;
    let mut changes: BTreeMap<String, Vec<String>> =
        changed.iter().map(|(host, files)| (host.clone(), files.iter().map(|f| format!("wrote {f}")).collect())).collect();
    let mut record = |host: &str, change: String| changes.entry(host.to_string()).or_default().push(change);

    let database = render::database_unit(&fleet);
    let db_conn = remote.host(&database.host);
    let database_change = converge_unit(&fleet, db_conn, &database, &changed, &deploy_dir, &report)?;
    timed("database unit");
    // A database that was left running is asked for its PRIMARY and users beside the work that
    // does not need its answer (monitoring, exporters, looking at the instances); a recreated
    // one is waited for first, as the instances' readiness follows it.
    let (primary, rest) = if database_change.is_some() {
        let primary = wait_for_primary(&run, db_conn)?;
        (Ok(primary), monitoring_and_instances(&run, &changed))
    } else {
        std::thread::scope(|scope| {
            let primary = scope.spawn(|| wait_for_primary(&run, db_conn));
            let rest = monitoring_and_instances(&run, &changed);
            (primary.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)), rest)
        })
    };
    if let Some(change) = database_change {
        record(&database.host, change);
    }
    if let Some(change) = primary? {
        report.step("database", db_conn.name(), &change);
        record(&database.host, change);
    }
    let (monitoring_changes, plan) = rest?;
    for (host, change) in monitoring_changes {
        record(&host, change);
    }
    timed("replica set PRIMARY and users; monitoring, exporters, instances looked at (files, containers, readiness)");
    for (host, host_changes) in start_instances(&run, &plan.start)? {
        for change in host_changes {
            record(&host, change);
        }
    }
    timed("instances started");

    stop_if_asked("every instance is ready; Traefik was not changed")?;
    let traefik = render::traefik_unit(&fleet);
    if let Some(change) = converge_unit(&fleet, remote.host(&traefik.host), &traefik, &changed, &deploy_dir, &report)? {
        record(&traefik.host, change);
    }
    if !plan.replace.is_empty() {
        for instance in roll_changes(&run, &plan.replace)? {
            record(&instance.host, format!("{} replaced (drained, recreated, ready, back in Traefik)", instance.name));
        }
    }
    timed("Traefik unit and changed instances");
    // Microservices join the bus once the monolith serves `license` there: after every instance,
    // the replaced ones too (a fleet switched to microservices gets its first monolith in
    // microservices mode only through the rollout).
    stop_if_asked("every instance is ready; the microservices were not changed")?;
    for (host, host_changes) in super::services::converge_services(&fleet, &remote, &changed, &deploy_dir, &report)? {
        for change in host_changes {
            record(&host, change);
        }
    }
    timed("microservices");
    // Every instance of the inventory, also on hosts this run could not when_unreachable: an SSH problem on
    // the operator's side must not take serving capacity away.
    let listed: Vec<&Instance> = full_fleet.instances().collect();
    // Traefik's list (then what may only go once it is published) and monitoring (Prometheus'
    // targets, Grafana's admin password) do not wait for each other. A Prometheus or Grafana
    // problem is reported after Traefik's outcome and never holds back the instances or Traefik.
    let (serving, monitoring) = std::thread::scope(|scope| {
        let monitoring = scope.spawn(|| {
            let mut changes = Changes::new();
            let targets = publish_prometheus(&full_fleet, &remote, &report, &mut changes, true)?;
            let grafana = super::grafana::ensure_admin_password(&fleet, &remote, store, &report)?;
            Ok::<_, Error>((changes, targets, grafana))
        });
        let serving = (|| {
            let mut changes = Changes::new();
            let servers = publish_traefik(&full_fleet, &remote, &report, &listed, &mut changes)?;
            // Service containers the inventory no longer has: out of Traefik's route by now (it
            // lists only the fleet's ddp-streamers), so they go without failing a request.
            for (host, removed) in super::services::remove_unwanted(&fleet, &remote, &report)? {
                changes.entry(host).or_default().extend(removed);
            }
            // A start-first upgrade that stopped half-way (its run failed): what it left on the
            // other ports is out of Traefik's list now.
            for (host, removed) in super::slots::remove_leftovers(&fleet, &remote, &report, &[])? {
                changes.entry(host).or_default().push(removed);
            }
            Ok::<_, Error>((changes, servers))
        })();
        (serving, monitoring.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
    });
    let (mut published, traefik_servers) = serving?;
    let (monitoring_changes, prometheus_targets, grafana) = monitoring?;
    for (host, host_changes) in monitoring_changes {
        published.entry(host).or_default().extend(host_changes);
    }
    if let (Some(change), Some(host)) = (grafana, fleet.monitoring_host()) {
        published.entry(host.name.clone()).or_default().push(change);
    }
    for (host, host_changes) in published {
        for change in host_changes {
            record(&host, change);
        }
    }
    timed("Traefik's server list, leftovers; Prometheus' targets, Grafana admin password");

    for host in &fleet.hosts {
        let host_changes = changes.get(&host.name).cloned().unwrap_or_default();
        audit::record(remote.host(&host.name), &fleet, "rcfleet up", &host_changes)?;
        if host_changes.is_empty() {
            report.step("done", &host.name, "unchanged");
        }
    }
    timed("audit records");
    if !unreachable.is_empty() {
        let lines: Vec<String> = unreachable.iter().map(|(host, why)| format!("  {host}: {why}")).collect();
        return Err(Error::failed(format!(
            "{} host(s) could not be reached and were left as they were:\n{}\nEvery other host is up and serves. \
             Their instances stay listed in Traefik and Prometheus (Traefik's health check takes out any that do not \
             answer). Fix the connection and run `rcfleet up` again: it finishes only what is missing.",
            unreachable.len(),
            lines.join("\n")
        )));
    }
    Ok(UpOutcome {
        changes: fleet.hosts.iter().map(|h| (h.name.clone(), changes.get(&h.name).cloned().unwrap_or_default())).collect(),
        fleet: fleet.clone(),
        traefik_servers,
        prometheus_targets,
        seconds: report.elapsed_seconds(),
        log: report.log_path().map(Path::to_path_buf),
    })
}

/// Stops `up` at a safe point after Ctrl-C, saying how far it got.
fn stop_if_asked(state: &str) -> Result<()> {
    crate::interrupt::set_left_to_do(&format!("`rcfleet up` was stopped part-way ({state}); run it again to finish"));
    if crate::interrupt::requested() {
        return Err(Error::failed(format!("stopped by Ctrl-C: {state}. Run `rcfleet up` again to finish.")));
    }
    Ok(())
}

/// On every host at once: pull (or push from the local engine) the images its units need
/// that it lacks, then send the files
/// that differ. Returns, per host, the paths that were written. No container is touched.
fn prepare_hosts(run: &Run, artifacts: &[HostArtifacts], local_engine: Option<&bollard::Docker>) -> Result<BTreeMap<String, BTreeSet<String>>> {
    let (fleet, remote, report, deploy_dir) = (&run.fleet, &run.hosts, &run.report, &run.deploy_dir);
    let work: Vec<(&Host, &HostArtifacts)> = fleet.hosts.iter().zip(artifacts).collect();
    let results = remote::fan_out(&work, CONCURRENCY, |(h, _)| h.name.clone(), |(host, files)| {
        let conn = remote.host(&host.name);
        match local_engine {
            Some(local) => push_images::push_missing_images(fleet, host, conn, local, remote, report)?,
            None => pull_missing_images(fleet, host, conn, report)?,
        }
        let written = send_files(conn, deploy_dir, &files.files)?;
        if !written.is_empty() {
            report.step("files", &host.name, format!("{} written: {}", written.len(), written.iter().cloned().collect::<Vec<_>>().join(", ")));
        }
        Ok(written)
    });
    let done = remote::all_succeeded(results).map_err(|err| {
        Error::failed(format!(
            "{}\nNo container was started or changed; hosts listed above may have new images or files. Fix the problem and run `rcfleet up` again.",
            err
        ))
    })?;
    Ok(done.into_iter().collect())
}

/// Waits until the replica set has a PRIMARY, then makes sure MongoDB's users are as the
/// secrets say (in the same mongosh run when the fleet has an admin login); returns what changed.
fn wait_for_primary(run: &Run, conn: &Connection) -> Result<Option<String>> {
    let (fleet, report, store) = (&run.fleet, &run.report, &run.secrets);
    // Most runs find MongoDB as the last one left it: told over MongoDB's wire protocol, that
    // costs a few round trips instead of mongosh's Node start; mongosh makes any change.
    match secrets::users_in_place(fleet, conn, store) {
        Ok(Some(primary)) => {
            report.step("database", conn.name(), format!("replica set {} PRIMARY at {primary}", fleet.mongodb.replica_set));
            return Ok(None);
        }
        Ok(None) => report.note("database", "MongoDB's users need a look from mongosh"),
        Err(err) => report.note("database", format!("asking MongoDB directly failed, mongosh is asked: {err}")),
    }
    let (primary, change) = wait::until(report, "database", "replica set PRIMARY", Duration::from_secs(120), Duration::from_millis(500), || {
        let Some(mongodb) = probe::mongodb(fleet, conn)? else {
            return Ok(Poll::Err("the mongodb container is not running".to_string()));
        };
        match secrets::ensure_users_on_primary(fleet, conn, &mongodb.id, store)? {
            Some(answer) => Ok(answer),
            None => Ok(probe::mongo_primary(conn, fleet, None)?.map(|primary| (primary, None))),
        }
    })
    .map_err(|err| Error::failed(format!("{}: {}; no instance was started or changed", conn.name(), err)))?;
    report.step("database", conn.name(), format!("replica set {} PRIMARY at {primary}", fleet.mongodb.replica_set));
    Ok(change)
}

/// `up` refuses to change the running release: that is `rcfleet upgrade`'s job, with its
/// guards, backup, canary and rollback. A fleet where no instance runs yet starts on the
/// inventory's release.
fn refuse_release_change(inventory_path: &Path, fleet: &Fleet, remote: &Hosts) -> Result<()> {
    let want = &fleet.images.rocketchat.tag;
    let hosts: Vec<&Host> = fleet.hosts_with(Role::Rocketchat).collect();
    let found = remote::fan_out(&hosts, CONCURRENCY, |h| h.name.clone(), |host| {
        probe::containers(fleet, remote.host(&host.name))
    });
    let mut other: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for container in remote::all_succeeded(found)?.into_iter().flat_map(|(_, containers)| containers) {
        if container.service != "rocketchat" || !container.running() {
            continue;
        }
        let tag = image_tag(&container.image);
        if tag != want {
            other.entry(tag.to_string()).or_default().push(container.unit.clone());
        }
    }
    if other.is_empty() {
        return Ok(());
    }
    let running: Vec<String> = other.iter().map(|(tag, units)| format!("{tag} on {}", units.join(", "))).collect();
    // After an interrupted upgrade the fleet runs two releases: name the command that finishes it.
    if let Some(holder) = lock::read(fleet, remote.host(&fleet.database_host().name))? {
        if holder.command.starts_with("rcfleet upgrade") {
            return Err(Error::bad_input(format!(
                "{}: the fleet runs {} while [workspace] release = \"{}\": an upgrade is unfinished, and `rcfleet up` \
                 never changes the running release; nothing was changed. {}",
                inventory_path.display(),
                running.join("; "),
                fleet.workspace.release,
                if holder.run_is_gone() { holder.unfinished() } else { format!("It is running now: {}", holder.describe()) }
            )));
        }
    }
    Err(Error::bad_input(format!(
        "{}: [workspace] release = \"{}\" but the fleet runs {}. `rcfleet up` never changes the running release; \
         nothing was changed. To move the fleet to {}, run `rcfleet upgrade -i {} --release {}` (backup, canary, \
         rollback); to keep what runs, set release back to what it runs.",
        inventory_path.display(),
        fleet.workspace.release,
        running.join("; "),
        fleet.workspace.release,
        inventory_path.display(),
        fleet.workspace.release
    )))
}

/// The tag of an image reference (`registry:5000/rocketchat/rocket.chat:8.1.0` → `8.1.0`).
fn image_tag(image: &str) -> &str {
    let name = image.rsplit('/').next().unwrap_or(image);
    let name = name.split('@').next().unwrap_or(name);
    name.split_once(':').map(|(_, tag)| tag).unwrap_or("latest")
}

/// The rendered files without the instances' units, Traefik's server list and Prometheus'
/// targets: what `up` sends before any container changes.
fn without_published_files(fleet: &Fleet, artifacts: &[HostArtifacts]) -> Vec<HostArtifacts> {
    let instance_dirs: Vec<String> = fleet.instances().map(|i| format!("{}/", render::instance_unit(fleet, i).dir)).collect();
    artifacts
        .iter()
        .map(|host| HostArtifacts {
            host: host.host.clone(),
            files: host
                .files
                .iter()
                .filter(|f| f.path != render::TRAEFIK_DYNAMIC_PATH && f.path != render::PROMETHEUS_TARGETS_PATH)
                .filter(|f| !instance_dirs.iter().any(|dir| f.path.starts_with(dir)))
                .cloned()
                .collect(),
        })
        .collect()
}

/// Which instances `up` starts directly and which it replaces through the rollout.
struct InstancePlan {
    /// Not serving (no running container, or not ready): started or updated in place, at once.
    start: Vec<Instance>,
    /// Serving, with changed files (env, config, image): drained and replaced batch by batch.
    replace: Vec<Instance>,
}

/// The monitoring unit and the hosts' exporters brought up to date (the changes, per host),
/// then what each instance needs.
fn monitoring_and_instances(run: &Run, changed: &BTreeMap<String, BTreeSet<String>>) -> Result<(Vec<(String, String)>, InstancePlan)> {
    let (fleet, remote, report, deploy_dir) = (&run.fleet, &run.hosts, &run.report, &run.deploy_dir);
    let mut changes = Vec::new();
    if let Some(monitoring) = render::monitoring_unit(fleet) {
        let conn = remote.host(&monitoring.host);
        if let Some(change) = converge_unit(fleet, conn, &monitoring, changed, deploy_dir, report)? {
            changes.push((monitoring.host.clone(), change));
        }
    }
    changes.extend(super::exporters::converge(fleet, remote, changed, deploy_dir, report)?);
    stop_if_asked("the database and monitoring are up; instances and Traefik were not changed")?;
    Ok((changes, plan_instances(run)?))
}

fn plan_instances(run: &Run) -> Result<InstancePlan> {
    let (fleet, remote, artifacts, deploy_dir) = (&run.fleet, &run.hosts, &run.artifacts, &run.deploy_dir);
    let instances: Vec<&Instance> = fleet.instances().collect();
    let looked = remote::fan_out(&instances, CONCURRENCY, |i| i.name.clone(), |instance| {
        let conn = remote.host(&instance.host);
        let unit = render::instance_unit(fleet, instance);
        let changed = files_differ(conn, deploy_dir, &unit_files(artifacts, &unit))?;
        // Its container and its readiness in one round trip on the host's session.
        let mut answers = conn.batch(&[probe::containers_request(), probe::readiness_request(fleet, instance)]).into_iter();
        let containers = probe::containers_answered(fleet, conn, answers.next().expect("the containers' answer"))?;
        let ready = answers.next().expect("the readiness answer").ok().and_then(remote::Answer::response);
        let serving = probe::running(&containers, &unit.name, "rocketchat").is_some()
            && matches!(probe::readiness_in_answer(fleet, instance, ready), probe::Readiness::Ready);
        Ok((changed, serving))
    });
    let looked: BTreeMap<String, (bool, bool)> = remote::all_succeeded(looked)?.into_iter().collect();
    let mut plan = InstancePlan { start: Vec::new(), replace: Vec::new() };
    for instance in instances {
        match looked.get(&instance.name) {
            Some((true, true)) => plan.replace.push(instance.clone()),
            Some((_, false)) => plan.start.push(instance.clone()),
            _ => {}
        }
    }
    Ok(plan)
}

/// Instances that serve no one yet: their files sent, started where needed, in parallel
/// across hosts, then waited for until ready.
fn start_instances(run: &Run, start: &[Instance]) -> Result<Vec<(String, Vec<String>)>> {
    let (fleet, remote, artifacts, deploy_dir, report) = (&run.fleet, &run.hosts, &run.artifacts, &run.deploy_dir, &run.report);
    let hosts: Vec<&Host> = fleet.hosts_with(Role::Rocketchat).filter(|h| start.iter().any(|i| i.host == h.name)).collect();
    let results = remote::fan_out(&hosts, CONCURRENCY, |h| h.name.clone(), |host| {
        let conn = remote.host(&host.name);
        let mine: Vec<&Instance> = start.iter().filter(|i| i.host == host.name).collect();
        let mut done = Vec::new();
        for instance in &mine {
            let unit = render::instance_unit(fleet, instance);
            let written = send_files(conn, deploy_dir, &unit_files(artifacts, &unit))?;
            done.extend(written.iter().map(|f| format!("wrote {f}")));
            let changed = BTreeMap::from([(host.name.clone(), written)]);
            if let Some(change) = converge_unit(fleet, conn, &unit, &changed, deploy_dir, report)? {
                done.push(change);
            }
        }
        for instance in &mine {
            wait_ready(fleet, remote, conn, instance, report)?;
        }
        Ok(done)
    });
    remote::all_succeeded(results).map_err(|err| {
        Error::failed(format!(
            "{}\nTraefik was not changed, so it still sends users only to the instances it listed before. \
             Fix the cause and run `rcfleet up` again.",
            err
        ))
    })
}

/// Serving instances whose files changed go through the rollout engine: canary first, then
/// `upgrade.batch_size` at a time, each drained from Traefik, recreated, ready, put back. A
/// failed batch stays out of Traefik; every other instance keeps serving. Returns the
/// instances replaced.
fn roll_changes(run: &Run, replace: &[Instance]) -> Result<Vec<Instance>> {
    let (full_fleet, remote, artifacts, report) = (&run.whole, &run.hosts, &run.artifacts, &run.report);
    let batches = rollout::batches(replace, full_fleet.upgrade.batch_size);
    report.step("rollout", "", format!("{} serving instance(s) changed: replacing them {} at a time after a canary", replace.len(), full_fleet.upgrade.batch_size));
    let rollout = Rollout {
        old: full_fleet,
        new: full_fleet,
        old_files: artifacts,
        new_files: artifacts,
        remote,
        report,
        recovery: Recovery::Hold,
        forward_only: None,
        on_progress: None,
        finish: "run `rcfleet up` again",
        start_first: false,
        moved: Default::default(),
        first_ready: Default::default(),
        prometheus_file: Default::default(),
        prepared: Default::default(),
    };
    rollout.rolling(&batches).map_err(|story| Error::failed(format!("replacing changed instances stopped.\n{story}")))?;
    Ok(replace.to_vec())
}

impl Outcome for UpOutcome {
    fn to_text(&self) -> String {
        let fleet = &self.fleet;
        let mut out = format!(
            "\nWorkspace {} is up: release {}, {} instances on {} hosts, in {:.1} s.\n\n",
            fleet.workspace.name,
            fleet.workspace.release,
            fleet.instances().count(),
            fleet.hosts.len(),
            self.seconds
        );
        out.push_str(&format!("{:<8}  {:<22}  {:<9}\n", "HOST", "ROLES", "CHANGES"));
        for (host, changes) in &self.changes {
            let roles: Vec<&str> = fleet.host(host).map(|h| h.roles.iter().map(|r| r.name()).collect()).unwrap_or_default();
            let changed = if changes.is_empty() { "unchanged".to_string() } else { format!("{} change(s)", changes.len()) };
            out.push_str(&format!("{host:<8}  {:<22}  {changed}\n", roles.join(",")));
        }
        out.push('\n');
        out.push_str(&super::report::instances_table(fleet, &self.traefik_servers, &self.prometheus_targets));
        out.push_str(&format!("\nOpen {}", fleet.workspace.root_url));
        if let Some(log) = &self.log {
            out.push_str(&format!("  (run log: {})", log.display()));
        }
        out.push('\n');
        out
    }

    fn to_json(&self) -> Value {
        let fleet = &self.fleet;
        json!({
            "workspace": fleet.workspace.name,
            "release": fleet.workspace.release.to_string(),
            "url": fleet.workspace.root_url,
            "seconds": self.seconds,
            "hosts": self.changes.iter().map(|(host, changes)| json!({
                "name": host,
                "roles": fleet.host(host).map(|h| h.roles.iter().map(|r| r.name()).collect::<Vec<_>>()).unwrap_or_default(),
                "unchanged": changes.is_empty(),
                "changes": changes,
            })).collect::<Vec<_>>(),
            "instances": super::report::instances_json(fleet, &self.traefik_servers, &self.prometheus_targets),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::image_tag;

    #[test]
    fn the_release_an_instance_runs_is_its_image_tag() {
        assert_eq!(image_tag("10.231.0.1:5000/rocketchat/rocket.chat:8.1.0"), "8.1.0");
        assert_eq!(image_tag("rocketchat/rocket.chat:8.1.0-rc.2"), "8.1.0-rc.2");
        assert_eq!(image_tag("registry.example.org:5000/rocket.chat"), "latest");
        assert_eq!(image_tag("rocket.chat:7.9.0@sha256:abc"), "7.9.0");
    }
}

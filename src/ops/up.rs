//! `up`: bring the whole fleet to what the inventory describes, from nothing or from any
//! earlier state, and prove it serves.
//!
//! Order: connect and preflight every host (nothing changes if any host has a problem); pull
//! missing images and send changed files everywhere (before any container is touched); the
//! database unit, then the replica set's PRIMARY; monitoring; every instance, in parallel
//! across hosts, until ready; Traefik, confirmed through its API; Prometheus' targets,
//! confirmed through its API. A unit is only (re)started when one of its files changed or one
//! of its containers is not running, so a second `up` changes nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

use super::audit;
use super::lock;
use super::preflight;
use super::probe;
use super::remote::{strip, Remote, CONCURRENCY};
use super::report::Reporter;
use super::wait::{self, Poll};
use crate::error::{Error, Result};
use crate::fleet::{Fleet, Host, Instance, Role};
use crate::inventory;
use crate::remote::{self, Argv, ConnectOptions, Connection, ExecOptions};
use crate::render::{self, Artifact, HostArtifacts, Unit, UnitKind};

pub struct UpOptions {
    pub connect: ConnectOptions,
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
    let fleet = inventory::load(inventory_path)?;
    let artifacts = render::render(&fleet, &inventory::secrets::Resolver)?;
    let report = Reporter::new(inventory_path, "up");
    let remote = Remote::connect_fleet(&fleet, &options.connect, &report)?;
    let _lock = lock::acquire(&fleet, remote.host(&fleet.database_host().name), "rcfleet up", None)?;
    preflight::run(&fleet, &remote, &report)?;
    let deploy_dir = render::deploy_dir(&fleet);

    let changed = prepare_hosts(&fleet, &artifacts, &remote, &report, &deploy_dir)?;
    let mut changes: BTreeMap<String, Vec<String>> =
        changed.iter().map(|(host, files)| (host.clone(), files.iter().map(|f| format!("wrote {f}")).collect())).collect();
    let mut record = |host: &str, change: String| changes.entry(host.to_string()).or_default().push(change);

    let database = render::database_unit(&fleet);
    let db_conn = remote.host(&database.host);
    if let Some(change) = converge_unit(&fleet, &remote, db_conn, &database, &changed, &deploy_dir, &report)? {
        record(&database.host, change);
    }
    wait_for_primary(&fleet, &remote, db_conn, &report)?;
    if let Some(monitoring) = render::monitoring_unit(&fleet) {
        let conn = remote.host(&monitoring.host);
        if let Some(change) = converge_unit(&fleet, &remote, conn, &monitoring, &changed, &deploy_dir, &report)? {
            record(&monitoring.host, change);
        }
    }

    for (host, host_changes) in converge_instances(&fleet, &remote, &changed, &deploy_dir, &report)? {
        for change in host_changes {
            record(&host, change);
        }
    }

    let traefik = render::traefik_unit(&fleet);
    if let Some(change) = converge_unit(&fleet, &remote, remote.host(&traefik.host), &traefik, &changed, &deploy_dir, &report)? {
        record(&traefik.host, change);
    }
    let traefik_servers = confirm_traefik(&fleet, &remote, &report)?;
    let prometheus_targets = confirm_prometheus(&fleet, &remote, &report)?;

    for host in &fleet.hosts {
        let host_changes = changes.get(&host.name).cloned().unwrap_or_default();
        audit::record(remote.host(&host.name), &deploy_dir, "rcfleet up", &host_changes)?;
        if host_changes.is_empty() {
            report.step("done", &host.name, "unchanged");
        }
    }
    Ok(UpOutcome {
        changes: fleet.hosts.iter().map(|h| (h.name.clone(), changes.get(&h.name).cloned().unwrap_or_default())).collect(),
        fleet,
        traefik_servers,
        prometheus_targets,
        seconds: report.elapsed_seconds(),
        log: report.log_path().map(Path::to_path_buf),
    })
}

/// On every host at once: pull the images its units need that it lacks, then send the files
/// that differ. Returns, per host, the paths that were written. No container is touched.
fn prepare_hosts(
    fleet: &Fleet,
    artifacts: &[HostArtifacts],
    remote: &Remote,
    report: &Reporter,
    deploy_dir: &str,
) -> Result<BTreeMap<String, BTreeSet<String>>> {
    let work: Vec<(&Host, &HostArtifacts)> = fleet.hosts.iter().zip(artifacts).collect();
    let results = remote::fan_out(&work, CONCURRENCY, |(h, _)| h.name.clone(), |(host, files)| {
        let conn = remote.host(&host.name);
        pull_missing_images(fleet, host, conn, report)?;
        let written = send_files(conn, deploy_dir, &files.files)?;
        if !written.is_empty() {
            report.step("files", &host.name, format!("{} written: {}", written.len(), written.iter().cloned().collect::<Vec<_>>().join(", ")));
        }
        Ok(written)
    });
    let done = remote::all_succeeded(results).map_err(|err| {
        Error::failed(format!(
            "{}\nNo container was started or changed; hosts listed above may have new images or files. Fix the problem and run `rcfleet up` again.",
            strip(&err)
        ))
    })?;
    Ok(done.into_iter().collect())
}

/// The images of the units on `host`.
fn images_for(fleet: &Fleet, host: &Host) -> Vec<String> {
    let mut images = BTreeSet::new();
    for unit in render::host_units(fleet, host) {
        let unit_images = match unit.kind {
            UnitKind::Database => vec![&fleet.images.mongodb, &fleet.images.nats],
            UnitKind::Monitoring => vec![&fleet.images.prometheus, &fleet.images.grafana],
            UnitKind::Traefik => vec![&fleet.images.traefik],
            UnitKind::Instance => vec![&fleet.images.rocketchat],
        };
        images.extend(unit_images.into_iter().map(|image| image.to_string()));
    }
    images.into_iter().collect()
}

fn pull_missing_images(fleet: &Fleet, host: &Host, conn: &Connection, report: &Reporter) -> Result<()> {
    let wanted = images_for(fleet, host);
    let refs: Vec<&str> = wanted.iter().map(String::as_str).collect();
    let missing_script = r#"for i in "$@"; do docker image inspect "$i" >/dev/null 2>&1 || echo "$i"; done"#;
    let missing = conn.run(&Argv::script(missing_script, &refs))?.stdout_text();
    for image in missing.lines().filter(|l| !l.is_empty()) {
        report.waiting("images", format!("{}: pulling {image}", host.name));
        let options = ExecOptions { timeout: Some(Duration::from_secs(1800)), stream: true, ..Default::default() };
        let output = conn.exec(&Argv::new("docker").args(["pull", image]), options)?;
        if !output.success() {
            let said = output.stderr_text().trim().lines().last().unwrap_or_default().to_string();
            return Err(Error::failed(format!(
                "{}: pulling {image} failed: {said}; check that the host can reach the registry (or use a mirror in [images])",
                host.name
            )));
        }
        report.step("images", &host.name, format!("pulled {image}"));
    }
    Ok(())
}

/// Sends the files whose content or mode differs on the host; returns the paths written.
fn send_files(conn: &Connection, deploy_dir: &str, files: &[Artifact]) -> Result<BTreeSet<String>> {
    let paths: Vec<String> = files.iter().map(|f| format!("{deploy_dir}/{}", f.path)).collect();
    let refs: Vec<&str> = paths.iter().map(String::as_str).collect();
    // One round trip for the state of every file; then only differing files are sent.
    let state_script = r#"for f in "$@"; do if [ -f "$f" ]; then printf '%s %s\n' "$(sha256sum < "$f" | cut -d' ' -f1)" "$(stat -c %a "$f")"; else echo "- -"; fi; done"#;
    let state = conn.run(&Argv::script(state_script, &refs))?.stdout_text();
    let mut written = BTreeSet::new();
    for ((file, path), line) in files.iter().zip(&paths).zip(state.lines().chain(std::iter::repeat(""))) {
        let want = format!("{} {:o}", sha256_hex(file.content.as_bytes()), file.mode);
        if line.trim() == want {
            continue;
        }
        conn.upload(path, file.content.as_bytes(), file.mode, None)?;
        written.insert(file.path.clone());
    }
    Ok(written)
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Services that keep running (the replica-set initiation is a one-shot).
fn long_running(unit: &Unit) -> Vec<&'static str> {
    unit.services().iter().copied().filter(|s| *s != "mongodb-init").collect()
}

/// Starts the unit when a file of it changed or one of its services is not running. Compose
/// recreates exactly the containers whose definition changed: services that read mounted
/// files only at start carry a digest of those files in a label (see `render`). Returns what
/// was done, if anything.
fn converge_unit(
    fleet: &Fleet,
    remote: &Remote,
    conn: &Connection,
    unit: &Unit,
    changed: &BTreeMap<String, BTreeSet<String>>,
    deploy_dir: &str,
    report: &Reporter,
) -> Result<Option<String>> {
    let prefix = format!("{}/", unit.dir);
    let changed_files: Vec<&String> = changed.get(&unit.host).into_iter().flatten().filter(|p| p.starts_with(&prefix)).collect();
    let containers: Vec<probe::Container> =
        probe::containers(remote, fleet, conn)?.into_iter().filter(|c| c.unit == unit.name).collect();
    let running: BTreeSet<&str> = containers.iter().filter(|c| c.running()).map(|c| c.service.as_str()).collect();
    let missing: Vec<&str> = long_running(unit).into_iter().filter(|s| !running.contains(s)).collect();
    if changed_files.is_empty() && missing.is_empty() {
        return Ok(None);
    }
    let compose = conn.compose(&format!("{deploy_dir}/{}", unit.dir), &unit.project)?;
    let options = ExecOptions { timeout: Some(Duration::from_secs(900)), stream: true, ..Default::default() };
    let output = conn.exec(&compose.up(&[]), options)?;
    if !output.success() {
        let stderr = output.stderr_text();
        let tail: Vec<&str> = stderr.lines().rev().take(8).collect::<Vec<_>>().into_iter().rev().collect();
        return Err(Error::failed(format!(
            "{}: starting {} (compose project {}) failed:\n    {}\nFix the cause and run `rcfleet up` again; other units are as reported above.",
            unit.host,
            unit.name,
            unit.project,
            tail.join("\n    ")
        )));
    }
    let what = if missing.is_empty() {
        format!("{} updated ({} file(s) changed)", unit.name, changed_files.len())
    } else if running.is_empty() {
        format!("{} started", unit.name)
    } else {
        format!("{} started {}", unit.name, missing.join(", "))
    };
    report.step(step_name(unit), &unit.host, &what);
    Ok(Some(what))
}

fn step_name(unit: &Unit) -> &'static str {
    match unit.kind {
        UnitKind::Database => "database",
        UnitKind::Monitoring => "monitoring",
        UnitKind::Traefik => "traefik",
        UnitKind::Instance => "instance",
    }
}

fn wait_for_primary(fleet: &Fleet, remote: &Remote, conn: &Connection, report: &Reporter) -> Result<()> {
    let database = render::database_unit(fleet);
    let primary = wait::until(report, "database", "replica set PRIMARY", Duration::from_secs(120), Duration::from_millis(500), || {
        let containers = probe::containers(remote, fleet, conn)?;
        let Some(mongodb) = containers.iter().find(|c| c.unit == database.name && c.service == "mongodb" && c.running()) else {
            return Ok(Poll::Err("the mongodb container is not running".to_string()));
        };
        probe::mongo_primary(conn, fleet, &mongodb.id)
    })
    .map_err(|err| Error::failed(format!("{}: {}; no instance was started or changed", conn.name(), strip(&err))))?;
    report.step("database", conn.name(), format!("replica set {} PRIMARY at {primary}", fleet.mongodb.replica_set));
    Ok(())
}

/// Every instance: started where needed, in parallel across hosts, then waited for until ready.
fn converge_instances(
    fleet: &Fleet,
    remote: &Remote,
    changed: &BTreeMap<String, BTreeSet<String>>,
    deploy_dir: &str,
    report: &Reporter,
) -> Result<Vec<(String, Vec<String>)>> {
    let hosts: Vec<&Host> = fleet.hosts_with(Role::Rocketchat).collect();
    let results = remote::fan_out(&hosts, CONCURRENCY, |h| h.name.clone(), |host| {
        let conn = remote.host(&host.name);
        let mut done = Vec::new();
        for instance in &host.instances {
            let unit = render::instance_unit(fleet, instance);
            if let Some(change) = converge_unit(fleet, remote, conn, &unit, changed, deploy_dir, report)? {
                done.push(change);
            }
        }
        for instance in &host.instances {
            wait_ready(fleet, remote, conn, instance, report)?;
        }
        Ok(done)
    });
    remote::all_succeeded(results).map_err(|err| {
        Error::failed(format!(
            "{}\nTraefik was not changed, so it still sends users only to the instances it listed before. \
             Fix the cause and run `rcfleet up` again.",
            strip(&err)
        ))
    })
}

fn wait_ready(fleet: &Fleet, remote: &Remote, conn: &Connection, instance: &Instance, report: &Reporter) -> Result<()> {
    let timeout = Duration::from_secs(fleet.upgrade.readiness_timeout_seconds);
    let what = format!("{} ready on {}", instance.name, probe::readiness_path(fleet));
    let waited = wait::until(report, "instance", &what, timeout, Duration::from_millis(500), || {
        probe::instance_ready(remote, fleet, instance)
    });
    match waited {
        Ok(()) => {
            report.step("instance", &instance.host, format!("{} ready at {}", instance.name, instance.url()));
            Ok(())
        }
        Err(err) => {
            let containers = probe::containers(remote, fleet, conn)?;
            let logs = match containers.iter().find(|c| c.unit == instance.name) {
                Some(container) => format!(
                    "container {} is {}; its last lines:\n{}",
                    &container.id[..12.min(container.id.len())],
                    container.state,
                    probe::last_log_lines(conn, &container.id, 20)
                ),
                None => "its container does not exist".to_string(),
            };
            Err(Error::failed(format!("{}: {}\n  {logs}", instance.host, strip(&err))))
        }
    }
}

fn confirm_traefik(fleet: &Fleet, remote: &Remote, report: &Reporter) -> Result<BTreeMap<String, String>> {
    let expected: BTreeSet<String> = fleet.instances().map(Instance::url).collect();
    let host = &fleet.traefik_host().name;
    let servers = wait::until(report, "traefik", "every instance UP in Traefik", Duration::from_secs(60), Duration::from_millis(500), || {
        Ok::<Poll<_>, Error>(match probe::traefik_servers(remote, fleet)? {
            Ok(servers) => {
                let listed: BTreeSet<String> = servers.keys().cloned().collect();
                let up = servers.values().filter(|s| *s == "UP").count();
                if listed == expected && up == expected.len() {
                    Ok(servers)
                } else {
                    Err(format!("{up} of {} UP, {} listed", expected.len(), listed.len()))
                }
            }
            Err(seen) => Err(seen),
        })
    })
    .map_err(|err| {
        Error::failed(format!(
            "{host}: Traefik did not take the new configuration: {}; check `docker logs` of its container on {host}",
            strip(&err)
        ))
    })?;
    report.step("traefik", host, format!("{}/{} instances UP behind {}", servers.len(), expected.len(), fleet.workspace.root_url));
    Ok(servers)
}

fn confirm_prometheus(fleet: &Fleet, remote: &Remote, report: &Reporter) -> Result<BTreeMap<String, String>> {
    let Some(host) = fleet.monitoring_host() else { return Ok(BTreeMap::new()) };
    let expected: BTreeSet<String> = fleet.instances().map(Instance::metrics_target).collect();
    // Targets are read within a few seconds of the file changing and scraped every 15 s.
    let targets = wait::until(report, "prometheus", "every instance target up", Duration::from_secs(90), Duration::from_secs(1), || {
        Ok::<Poll<_>, Error>(match probe::prometheus_targets(remote, fleet)? {
            Ok(targets) => {
                let up: BTreeSet<String> = targets.iter().filter(|(_, h)| *h == "up").map(|(t, _)| t.clone()).collect();
                if up == expected && targets.len() == expected.len() {
                    Ok(targets)
                } else {
                    Err(format!("{} of {} targets up", up.len(), expected.len()))
                }
            }
            Err(seen) => Err(seen),
        })
    })
    .map_err(|err| Error::failed(format!("{}: Prometheus does not scrape every instance: {}", host.name, strip(&err))))?;
    report.step("prometheus", &host.name, format!("{}/{} instance targets up", targets.len(), expected.len()));
    Ok(targets)
}

impl UpOutcome {
    pub fn to_text(&self) -> String {
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
        out.push_str(&format!("\n{:<10}  {:<26}  {:<7}  {:<10}\n", "INSTANCE", "ADDRESS", "TRAEFIK", "PROMETHEUS"));
        for instance in fleet.instances() {
            let traefik = self.traefik_servers.get(&instance.url()).map(String::as_str).unwrap_or("absent");
            let prometheus = self.prometheus_targets.get(&instance.metrics_target()).map(String::as_str).unwrap_or("-");
            out.push_str(&format!("{:<10}  {:<26}  {traefik:<7}  {prometheus}\n", instance.name, instance.url()));
        }
        out.push_str(&format!("\nOpen {}", fleet.workspace.root_url));
        if let Some(log) = &self.log {
            out.push_str(&format!("  (run log: {})", log.display()));
        }
        out.push('\n');
        out
    }

    pub fn to_json(&self) -> Value {
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
            "instances": fleet.instances().map(|i| json!({
                "name": i.name,
                "host": i.host,
                "url": i.url(),
                "traefik": self.traefik_servers.get(&i.url()),
                "prometheus": self.prometheus_targets.get(&i.metrics_target()),
            })).collect::<Vec<_>>(),
        })
    }
}

//! Bringing units to their rendered state and checking the result; shared by `up`,
//! `upgrade` and the instance commands. Each function works on one host or one unit and says
//! what it did; the procedures decide the order.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::hosts::Hosts;
use super::probe;
use super::report::Reporter;
use super::wait::{self, Poll};
use crate::error::{Error, Result};
use crate::fleet::{Fleet, Host, Instance};
use crate::remote::{Answer, Argv, Connection, ExecOptions, Request, DOCKER_SOCKET};
use crate::render::{self, Artifact, HostArtifacts, Unit, UnitKind};

/// How often rcfleet looks again at something it waits for (readiness, Traefik's view, a
/// service's health): each look is one small HTTP request, and the waits sit on the path of a
/// rolling upgrade (an instance's readiness and Traefik's change once per batch; Traefik
/// takes a change within 30-130 ms of its file's rename, measured on the lab), so a short
/// interval saves real time per instance.
pub const POLL: Duration = Duration::from_millis(50);

/// The images of the units on `host`.
fn images_for(fleet: &Fleet, host: &Host) -> Vec<String> {
    let images: BTreeSet<String> =
        render::host_units(fleet, host).iter().flat_map(|unit| unit.images(fleet)).map(|image| image.to_string()).collect();
    images.into_iter().collect()
}

/// The images `host`'s units need that its engine does not have, in one round trip.
pub fn missing_images(fleet: &Fleet, host: &Host, conn: &Connection) -> Result<Vec<String>> {
    // Asked of the Docker Engine API, all at once: a `docker image inspect` per image cost a
    // CLI start each on the host.
    let wanted = images_for(fleet, host);
    let requests: Vec<Request> = wanted.iter().map(|image| Request::get_unix(DOCKER_SOCKET, &format!("/images/{image}/json"))).collect();
    let mut missing = Vec::new();
    for (image, answer) in wanted.into_iter().zip(conn.batch(&requests)) {
        match answer?.response().map(|response| response.status) {
            Some(200) => {}
            Some(404) => missing.push(image),
            other => {
                let said = other.map(|status| format!("answered {status}")).unwrap_or_else(|| "gave no HTTP answer".to_string());
                return Err(conn.fail(format!("asking the Docker Engine API for image {image}: it {said}")));
            }
        }
    }
    Ok(missing)
}

pub fn pull_missing_images(fleet: &Fleet, host: &Host, conn: &Connection, report: &Reporter) -> Result<()> {
    for image in missing_images(fleet, host, conn)? {
        let image = image.as_str();
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
pub fn send_files(conn: &Connection, deploy_dir: &str, files: &[Artifact]) -> Result<BTreeSet<String>> {
    let paths: Vec<String> = files.iter().map(|f| format!("{deploy_dir}/{}", f.path)).collect();
    // One round trip for the state of every file; then only differing files are sent.
    let states = conn.file_states(&paths)?;
    let mut written = BTreeSet::new();
    for ((file, path), state) in files.iter().zip(&paths).zip(states) {
        if state.is_some_and(|now| now.holds(file.content.as_bytes(), file.mode)) {
            continue;
        }
        // Staged in the deploy folder: watchers of a file's folder see only its rename.
        conn.write_file(path, Some(deploy_dir), file.content.as_bytes(), file.mode, None)?;
        written.insert(file.path.clone());
    }
    Ok(written)
}

/// The rendered files of `unit` (those under its directory on its host).
pub fn unit_files(artifacts: &[HostArtifacts], unit: &Unit) -> Vec<Artifact> {
    let prefix = format!("{}/", unit.dir);
    artifacts
        .iter()
        .filter(|h| h.host == unit.host)
        .flat_map(|h| h.files.iter().filter(|f| f.path.starts_with(&prefix)).cloned())
        .collect()
}

/// Whether any of `files` differs (content or mode) from what the host has, without writing.
pub fn files_differ(conn: &Connection, deploy_dir: &str, files: &[Artifact]) -> Result<bool> {
    let paths: Vec<String> = files.iter().map(|f| format!("{deploy_dir}/{}", f.path)).collect();
    let states = conn.file_states(&paths)?;
    Ok(files.iter().zip(states).any(|(file, state)| !state.is_some_and(|now| now.holds(file.content.as_bytes(), file.mode))))
}

/// Services that keep running (the key file and replica-set initiation are one-shots).
pub fn long_running(unit: &Unit) -> Vec<&'static str> {
    unit.services().iter().copied().filter(|s| !render::one_shot(s)).collect()
}

/// Starts the unit when a file of it changed or one of its services is not running. Compose
/// recreates exactly the containers whose definition changed: services that read mounted
/// files only at start carry a digest of those files in a label (see `render`). Returns what
/// was done, if anything.
pub fn converge_unit(
    fleet: &Fleet,
    conn: &Connection,
    unit: &Unit,
    changed: &BTreeMap<String, BTreeSet<String>>,
    deploy_dir: &str,
    report: &Reporter,
) -> Result<Option<String>> {
    let prefix = format!("{}/", unit.dir);
    let changed_files: Vec<&String> = changed.get(&unit.host).into_iter().flatten().filter(|p| p.starts_with(&prefix)).collect();
    // A changed file means `compose up` anyway: the containers are listed only to say why
    // otherwise (one Docker API round trip less per instance of a rollout).
    let containers: Vec<probe::Container> = if changed_files.is_empty() {
        probe::containers(fleet, conn)?.into_iter().filter(|c| c.unit == unit.name && c.project == unit.project).collect()
    } else {
        Vec::new()
    };
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
    let what = if !changed_files.is_empty() {
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
        UnitKind::Alertmanager => "alertmanager",
        UnitKind::NodeExporter => "node-exporter",
        UnitKind::Traefik => "traefik",
        UnitKind::Instance => "instance",
        UnitKind::Service => "service",
    }
}

pub fn wait_ready(fleet: &Fleet, remote: &Hosts, conn: &Connection, instance: &Instance, report: &Reporter) -> Result<()> {
    let timeout = Duration::from_secs(fleet.upgrade.readiness_timeout_seconds);
    let what = format!("{} ready on {}", instance.name, probe::readiness_path(fleet));
    let waited = wait::until(report, "instance", &what, timeout, POLL, || {
        probe::instance_ready(remote, fleet, instance)
    });
    match waited {
        Ok(()) => {
            report.step("instance", &instance.host, format!("{} ready at {}", instance.name, instance.url()));
            Ok(())
        }
        Err(err) => {
            let project = render::instance_unit(fleet, instance).project;
            Err(Error::failed(format!("{}: {}\n  {}", instance.host, err, container_story(fleet, conn, &instance.name, Some(&project))?)))
        }
    }
}

/// What became of the container of `unit` on the host (of its compose `project` when given:
/// an instance has two during a start-first upgrade), for an error: its state and last log
/// lines, or that it does not exist.
pub fn container_story(fleet: &Fleet, conn: &Connection, unit: &str, project: Option<&str>) -> Result<String> {
    let containers = probe::containers(fleet, conn)?;
    Ok(match containers.iter().find(|c| c.unit == unit && project.is_none_or(|p| c.project == p)) {
        Some(container) => format!(
            "container {} is {}; its last lines:\n{}",
            &container.id[..12.min(container.id.len())],
            container.state,
            probe::last_log_lines(conn, &container.id, 20)
        ),
        None => "its container does not exist".to_string(),
    })
}

/// Waits until Traefik's API lists exactly `expected` (instance URLs) for the Rocket.Chat
/// service, every one UP; returns what it lists.
pub fn confirm_traefik(fleet: &Fleet, remote: &Hosts, report: &Reporter, expected: &BTreeSet<String>) -> Result<BTreeMap<String, String>> {
    confirm_traefik_listing(fleet, remote, report, expected, expected)
}

/// Waits until Traefik's API lists exactly `listed` for the Rocket.Chat service with at least
/// `up` UP (the others, on hosts this run could not reach, are Traefik's health check's to
/// judge); returns what it lists.
pub fn confirm_traefik_listing(
    fleet: &Fleet,
    remote: &Hosts,
    report: &Reporter,
    listed: &BTreeSet<String>,
    up: &BTreeSet<String>,
) -> Result<BTreeMap<String, String>> {
    let host = &fleet.traefik_host().name;
    let servers = wait::until(report, "traefik", "every instance UP in Traefik", Duration::from_secs(30), POLL, || {
        Ok::<Poll<_>, Error>(match probe::traefik_servers(remote, fleet)? {
            Ok(servers) => {
                let seen: BTreeSet<String> = servers.keys().cloned().collect();
                let up_now = up.iter().filter(|url| servers.get(*url).is_some_and(|s| s == "UP")).count();
                if &seen == listed && up_now == up.len() {
                    Ok(servers)
                } else {
                    Err(format!("{up_now} of {} UP, {}", up.len(), listing(&seen, listed)))
                }
            }
            Err(seen) => Err(seen),
        })
    })
    .map_err(|err| {
        Error::failed(format!(
            "{host}: Traefik did not take the new configuration: {}; check `docker logs` of its container on {host}",
            err
        ))
    })?;
    let up_count = servers.values().filter(|s| *s == "UP").count();
    report.step("traefik", host, format!("{up_count}/{} instances UP behind {}", servers.len(), fleet.workspace.root_url));
    Ok(servers)
}

/// Waits until Prometheus has every instance of `fleet` as a target and can scrape at least `up`
/// (the others, on hosts this run could not reach, are as they are); returns its targets.
///
/// A target counts when Prometheus last scraped it `up`, or when its scrape URL answers 200 now,
/// asked from Prometheus' own host (host networking: the path its next scrape takes). Prometheus
/// scrapes every 15 s, so a target that just moved or restarted would otherwise hold every
/// `up` and `upgrade` for up to one scrape interval; the next scrape sees what this request saw.
/// Without `await_listing` a target Prometheus does not list yet counts the same way: its
/// targets file lists it, and Prometheus takes such a change in within two 5 s ticks (its
/// discovery and scrape managers'); `status` shows it `pending` meanwhile.
pub fn confirm_prometheus_listing(
    fleet: &Fleet,
    remote: &Hosts,
    report: &Reporter,
    up: &BTreeSet<String>,
    await_listing: bool,
) -> Result<BTreeMap<String, String>> {
    let Some(host) = fleet.monitoring_host() else { return Ok(BTreeMap::new()) };
    let listed: BTreeSet<String> = fleet.instances().map(Instance::metrics_target).collect();
    let mut answering = BTreeSet::new();
    // Targets are read within a few seconds of the file changing.
    let targets = wait::until(report, "prometheus", "every instance target scraped", Duration::from_secs(90), Duration::from_secs(1), || {
        Ok::<Poll<_>, Error>(match probe::prometheus_targets(remote, fleet)? {
            Ok(targets) => {
                let seen: BTreeSet<String> = targets.keys().cloned().collect();
                let not_up: Vec<&String> = up.iter().filter(|t| targets.get(*t).is_none_or(|h| h != "up")).collect();
                let listing_done = seen == listed || !await_listing;
                if listing_done {
                    answering = answering_from(fleet, remote, host, &not_up);
                }
                let pending = not_up.iter().filter(|t| !answering.contains(**t)).count();
                if listing_done && pending == 0 {
                    Ok(targets)
                } else {
                    Err(format!("{} of {} targets up, {}", up.len() - pending, up.len(), listing(&seen, &listed)))
                }
            }
            Err(seen) => Err(seen),
        })
    })
    .map_err(|err| Error::failed(format!("{}: Prometheus does not scrape every instance: {}", host.name, err)))?;
    if !answering.is_empty() {
        report.step(
            "prometheus",
            &host.name,
            format!("{} not scraped since they changed; their metrics answer from {} (Prometheus scrapes every 15 s)", answering.len(), host.name),
        );
    }
    // Of the wanted targets: an old address Prometheus still lists is not counted.
    let up_count = listed.iter().filter(|t| targets.get(*t).is_some_and(|h| h == "up")).count() + answering.len();
    report.step("prometheus", &host.name, format!("{up_count}/{} instance targets up", listed.len()));
    Ok(targets)
}

/// How far a list `seen` is from `listed`: those of `listed` in it, and those it still holds
/// that are no longer wanted (a moved instance's old address).
fn listing(seen: &BTreeSet<String>, listed: &BTreeSet<String>) -> String {
    let gone = seen.difference(listed).count();
    let still = if gone == 0 { String::new() } else { format!(", {gone} gone still listed") };
    format!("{} of {} listed{still}", seen.intersection(listed).count(), listed.len())
}

/// Which of `targets` (instances' metrics addresses) answer their scrape URL with 200, asked in
/// one batch over the monitoring host's connection.
fn answering_from(fleet: &Fleet, remote: &Hosts, monitoring: &Host, targets: &[&String]) -> BTreeSet<String> {
    let instances: Vec<&Instance> = fleet.instances().filter(|i| targets.contains(&&i.metrics_target())).collect();
    if instances.is_empty() {
        return BTreeSet::new();
    }
    let requests: Vec<_> = instances.iter().map(|instance| probe::metrics_request(instance)).collect();
    let answers = remote.host(&monitoring.name).batch(&requests);
    instances
        .into_iter()
        .zip(answers)
        .filter(|(_, answer)| answer.as_ref().is_ok_and(|a| matches!(a, Answer::Http(r) if r.status == 200)))
        .map(|(instance, _)| instance.metrics_target())
        .collect()
}


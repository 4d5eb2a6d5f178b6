//! `add-instance --service NAME` and `remove-instance --service NAME`: more or fewer containers
//! of one microservice. The inventory gets the new count (`ddp_streamers`, or
//! `[microservices.replicas]`; with `--host`, `[microservices.placement]` one host per
//! replica) and is checked before any host is contacted. Only the service's last containers
//! come or go: container names, hosts and ports follow from the service and the replica's
//! number alone (`microservices::containers`), so nothing else is restarted.
//!
//! Adding: the new containers are started and waited for on `/health`, then (ddp-streamer)
//! put in Traefik's `/websocket` route, then Prometheus scrapes them. Removing: a ddp-streamer
//! leaves Traefik's route first (confirmed) and gets `upgrade.drain_seconds`; then the
//! containers are stopped and removed and Prometheus stops scraping them. The inventory is
//! written last, once all of it worked.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};

use super::audit;
use super::converge::{pull_missing_images, send_files, unit_files, POLL};
use super::hosts::Hosts;
use super::instances::{drain, edited_is_invalid, publish_traefik_with, Changes};
use super::probe;
use super::report::{Outcome, Reporter};
use super::run::{Run, RunOptions};
use super::services::{converge_services, ready_ddp_streamers, remove_containers};
use super::wait::{self, Poll};
use crate::error::{Error, Result};
use crate::fleet::{Fleet, Instance};
use crate::inventory::{self, edit};
use crate::microservices::{self, Service, ServiceContainer};
use crate::remote::ConnectOptions;
use crate::render::{self, Artifact, PROMETHEUS_SERVICE_TARGETS_PATH};

pub struct ReplicaOptions {
    pub connect: ConnectOptions,
    /// The service's name in the inventory (`ddp-streamer`).
    pub service: String,
    /// Adding: the host the new containers run on (default: the service's placement).
    pub host: Option<String>,
    pub count: u32,
}

/// What `add-instance --service` or `remove-instance --service` did.
pub struct ReplicaChange {
    pub fleet: Fleet,
    /// `added` or `removed`.
    pub verb: &'static str,
    pub service: Service,
    pub containers: Vec<ServiceContainer>,
    /// Traefik's `/websocket` servers afterwards (ddp-streamer only).
    pub ddp_servers: BTreeMap<String, String>,
    pub inventory: PathBuf,
    pub seconds: f64,
    pub log: Option<PathBuf>,
}

pub fn add_replicas(inventory_path: &Path, options: &ReplicaOptions) -> Result<ReplicaChange> {
    let before = inventory::load(inventory_path)?;
    let service = running_service(&before, inventory_path, &options.service)?;
    let current = of_service(&before, service);
    let count = current.len() as u32 + options.count;
    // One host per replica: the ones running keep theirs, the new ones go to --host.
    let placement: Option<Vec<String>> = options.host.as_ref().map(|host| {
        current.iter().map(|c| c.host.clone()).chain(std::iter::repeat_n(host.clone(), options.count as usize)).collect()
    });
    let what = format!("adding {} {service} container(s)", options.count);
    let (fleet, edited) = edited(inventory_path, service, count, placement.as_deref(), &what)?;
    let added = changed_containers(&before, &fleet)?;
    let names: Vec<&str> = added.iter().map(|c| c.name.as_str()).collect();
    let command = format!("rcfleet add-instance --service {service} ({})", names.join(", "));
    let run = Run::open_with(inventory_path, fleet, &RunOptions::change("add-instance", command.clone(), &options.connect))?;
    let (fleet, remote, report, artifacts, deploy_dir) = (&run.fleet, &run.hosts, &run.report, &run.artifacts, &run.deploy_dir);
    let mut changes = Changes::new();

    // The new containers' files, then every service container converged (only the new ones
    // are not running, so only they start) and healthy.
    let mut written: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for container in &added {
        let conn = remote.host(&container.host);
        let host = fleet.host(&container.host).expect("a service container's host is in the fleet");
        pull_missing_images(&fleet, host, conn, &report)?;
        let unit = render::service_unit(&fleet, container);
        written.entry(unit.host.clone()).or_default().extend(send_files(conn, &deploy_dir, &unit_files(&artifacts, &unit))?);
    }
    let started = converge_services(&fleet, &remote, &written, &deploy_dir, &report).map_err(|err| {
        Error::failed(format!(
            "{err}\nThe new containers are not in Traefik's route nor scraped, and the inventory was not written: run \
             the same command again once the cause is fixed, or `rcfleet up` to take them away"
        ))
    })?;
    for (host, done) in started {
        changes.entry(host).or_default().extend(done);
    }
    let ddp_servers = publish(&fleet, &remote, &report, service, &mut changes)?;
    finish(&fleet, &remote, &command, &changes, inventory_path, &edited)?;
    report.step("inventory", "", format!("{} updated: {} added", inventory_path.display(), names.join(", ")));
    Ok(ReplicaChange {
        verb: "added",
        service,
        containers: added,
        ddp_servers,
        inventory: inventory_path.to_path_buf(),
        seconds: report.elapsed_seconds(),
        log: report.log_path().map(Path::to_path_buf),
        fleet: fleet.clone(),
    })
}

pub fn remove_replicas(inventory_path: &Path, options: &ReplicaOptions) -> Result<ReplicaChange> {
    if options.host.is_some() {
        return Err(Error::bad_input(
            "remove-instance --service takes away the service's last containers (the others keep their names and \
             ports); leave out --host, and give --count K for more than one",
        ));
    }
    let before = inventory::load(inventory_path)?;
    let service = running_service(&before, inventory_path, &options.service)?;
    let current = of_service(&before, service).len() as u32;
    if options.count >= current {
        return Err(Error::bad_input(format!(
            "{service} runs {current} container(s) in {}; remove at most {} (one stays). To stop running {service}, take \
             it out of microservices.services and run `rcfleet up`",
            inventory_path.display(),
            current.saturating_sub(1)
        )));
    }
    let what = format!("removing {} {service} container(s)", options.count);
    let (fleet, edited) = edited(inventory_path, service, current - options.count, None, &what)?;
    let removed = changed_containers(&fleet, &before)?;

    let names: Vec<&str> = removed.iter().map(|c| c.name.as_str()).collect();
    let command = format!("rcfleet remove-instance --service {service} ({})", names.join(", "));
    // Over the fleet as it runs (the containers removed too); the edited one is published.
    let run = Run::open_with(
        inventory_path,
        before,
        &RunOptions { lock: Some(command.clone()), ..RunOptions::new("remove-instance", &options.connect) },
    )?;
    let (before, remote, report) = (&run.fleet, &run.hosts, &run.report);
    let mut changes = Changes::new();

    // Out of Traefik's route first, confirmed, and drained: WebSocket clients reconnect to
    // another streamer instead of failing on a stopped one.
    let ddp_servers = if service == Service::DdpStreamer {
        let servers = publish_traefik_route(&fleet, &remote, &report, &mut changes)?;
        drain(&report, Duration::from_secs(fleet.upgrade.drain_seconds), &names);
        servers
    } else {
        BTreeMap::new()
    };
    for container in &removed {
        let conn = remote.host(&container.host);
        for change in remove_containers(&before, conn, &[container.name.as_str()], &report)? {
            changes.entry(container.host.clone()).or_default().push(change);
        }
    }
    publish_prometheus_services(&fleet, &remote, &report, &mut changes)?;
    finish(&fleet, &remote, &command, &changes, inventory_path, &edited)?;
    report.step("inventory", "", format!("{} updated: {} removed", inventory_path.display(), names.join(", ")));
    Ok(ReplicaChange {
        verb: "removed",
        service,
        containers: removed,
        ddp_servers,
        inventory: inventory_path.to_path_buf(),
        seconds: report.elapsed_seconds(),
        log: report.log_path().map(Path::to_path_buf),
        fleet,
    })
}

/// `name` as a service this fleet runs; otherwise bad input naming the inventory and the
/// services it knows.
fn running_service(fleet: &Fleet, inventory_path: &Path, name: &str) -> Result<Service> {
    let inventory = inventory_path.display();
    let known: Vec<&str> = Service::all_in(&fleet.workspace.release).iter().map(|s| s.name()).collect();
    let Some(service) = Service::from_name(name).filter(|s| s.exists_in(&fleet.workspace.release)) else {
        return Err(Error::bad_input(format!(
            "--service {name:?}: no such microservice for Rocket.Chat {} (in {inventory}); the services are {}",
            fleet.workspace.release,
            known.join(", ")
        )));
    };
    if !fleet.microservices.enabled {
        return Err(Error::bad_input(format!(
            "--service {name}: microservices are off in {inventory}; set enabled = true in [microservices] and run \
             `rcfleet up` first"
        )));
    }
    if !fleet.microservices.services.contains(&service) {
        let running: Vec<&str> = fleet.microservices.services.iter().map(|s| s.name()).collect();
        return Err(Error::bad_input(format!(
            "--service {name}: {inventory} does not run {name} (microservices.services is {}); add it there and run \
             `rcfleet up`",
            running.join(", ")
        )));
    }
    Ok(service)
}

fn of_service(fleet: &Fleet, service: Service) -> Vec<ServiceContainer> {
    microservices::containers(fleet).into_iter().filter(|c| c.service == service).collect()
}

/// The inventory with `count` containers of `service`, read back: the fleet and the text.
fn edited(inventory_path: &Path, service: Service, count: u32, placement: Option<&[String]>, what: &str) -> Result<(Fleet, String)> {
    let text = edit::read(inventory_path)?;
    let edited = edit::set_service_replicas(&text, service.name(), count, placement)?;
    let fleet = inventory::parse(&edited, inventory_path).map_err(|err| edited_is_invalid(err, what))?;
    Ok((fleet, edited))
}

/// The containers of `larger` that `smaller` does not have; every container of `smaller`
/// must be in `larger` unchanged (same host and ports), or the command would restart it.
fn changed_containers(smaller: &Fleet, larger: &Fleet) -> Result<Vec<ServiceContainer>> {
    let (small, large) = (microservices::containers(smaller), microservices::containers(larger));
    if let Some(moved) = small.iter().find(|c| !large.contains(c)) {
        return Err(Error::failed(format!(
            "{} would move to another host or port, which restarts it; change [microservices] in the inventory and run \
             `rcfleet up` instead",
            moved.name
        )));
    }
    Ok(large.into_iter().filter(|c| !small.contains(c)).collect())
}

/// After adding: ddp-streamers into Traefik's route (each answers `/health` by now), and
/// Prometheus' service targets. Returns Traefik's ddp-streamer servers.
fn publish(fleet: &Fleet, remote: &Hosts, report: &Reporter, service: Service, changes: &mut Changes) -> Result<BTreeMap<String, String>> {
    let servers = if service == Service::DdpStreamer {
        publish_traefik_route(fleet, remote, report, changes)?
    } else {
        BTreeMap::new()
    };
    publish_prometheus_services(fleet, remote, report, changes)?;
    Ok(servers)
}

/// Rewrites Traefik's file (the ready ddp-streamers of `fleet` behind `/websocket`) and waits
/// until Traefik's API lists exactly those.
fn publish_traefik_route(fleet: &Fleet, remote: &Hosts, report: &Reporter, changes: &mut Changes) -> Result<BTreeMap<String, String>> {
    publish_ddp_route(fleet, remote, report, &ready_ddp_streamers(fleet, remote), changes)
}

/// Rewrites Traefik's file with exactly `streamers` behind `/websocket` (and every instance of
/// `fleet` behind the rest) and waits until Traefik's API lists exactly those, each UP. With
/// none, the route is left out and the instances take WebSocket and SockJS.
pub(super) fn publish_ddp_route(
    fleet: &Fleet,
    remote: &Hosts,
    report: &Reporter,
    streamers: &[ServiceContainer],
    changes: &mut Changes,
) -> Result<BTreeMap<String, String>> {
    let instances: Vec<&Instance> = fleet.instances().collect();
    publish_traefik_with(fleet, remote, report, &instances, streamers, changes)?;
    let expected: BTreeSet<String> = streamers.iter().map(ServiceContainer::url).collect();
    let host = &fleet.traefik_host().name;
    wait::until(report, "traefik", "the ddp-streamers in Traefik's /websocket route", Duration::from_secs(30), POLL, || {
        Ok::<Poll<_>, Error>(match probe::traefik_service_servers(remote, fleet, "ddp-streamer")? {
            Ok(servers) if servers.keys().cloned().collect::<BTreeSet<_>>() == expected && servers.values().all(|s| s == "UP") => {
                Ok(servers)
            }
            Ok(servers) => Err(format!(
                "Traefik lists {} of {} ddp-streamer(s), {} UP",
                servers.keys().filter(|url| expected.contains(*url)).count(),
                expected.len(),
                servers.values().filter(|s| *s == "UP").count()
            )),
            Err(seen) => Err(seen),
        })
    })
    .map_err(|err| Error::failed(format!("{host}: Traefik did not take the ddp-streamers' route: {err}")))
    .inspect(|servers| report.step("traefik", host, format!("{} ddp-streamer(s) behind /websocket", servers.len())))
}

/// Rewrites Prometheus' service targets and waits until it lists exactly those.
fn publish_prometheus_services(fleet: &Fleet, remote: &Hosts, report: &Reporter, changes: &mut Changes) -> Result<()> {
    let Some(monitoring) = fleet.monitoring_host() else { return Ok(()) };
    let file = Artifact::public(PROMETHEUS_SERVICE_TARGETS_PATH, render::prometheus_service_targets(fleet)?);
    if !send_files(remote.host(&monitoring.name), &render::deploy_dir(fleet), &[file])?.is_empty() {
        let change = format!("wrote {PROMETHEUS_SERVICE_TARGETS_PATH}");
        report.step("files", &monitoring.name, &change);
        changes.entry(monitoring.name.clone()).or_default().push(change);
    }
    let expected: BTreeSet<String> = microservices::containers(fleet).iter().map(ServiceContainer::metrics_target).collect();
    wait::until(report, "prometheus", "every service target listed", Duration::from_secs(90), Duration::from_secs(1), || {
        Ok::<Poll<()>, Error>(match probe::prometheus_job_targets(remote, fleet, "rocketchat-services")? {
            Ok(targets) if targets.keys().cloned().collect::<BTreeSet<_>>() == expected => Ok(()),
            Ok(targets) => Err(format!("Prometheus lists {} of {} service target(s)", targets.len(), expected.len())),
            Err(seen) => Err(seen),
        })
    })
    .map_err(|err| Error::failed(format!("{}: Prometheus did not take the service targets: {err}", monitoring.name)))
}

/// The audit on every host that changed, then the inventory.
fn finish(fleet: &Fleet, remote: &Hosts, command: &str, changes: &Changes, inventory_path: &Path, edited: &str) -> Result<()> {
    for (host, host_changes) in changes {
        audit::record(remote.host(host), fleet, command, host_changes)?;
    }
    edit::write(inventory_path, edited)
}

impl Outcome for ReplicaChange {
    fn to_text(&self) -> String {
        let names: Vec<String> = self.containers.iter().map(|c| format!("{} on {}", c.name, c.host)).collect();
        let mut out = format!(
            "\n{} {} (release {}): {} {} container(s) now, in {:.1} s.\nInventory updated: {}\n",
            if self.verb == "added" { "Added" } else { "Removed" },
            names.join(", "),
            self.fleet.workspace.release,
            self.fleet.microservices.replicas_of(self.service),
            self.service,
            self.seconds,
            self.inventory.display(),
        );
        if self.service == Service::DdpStreamer {
            out.push_str("\nTraefik /websocket and /sockjs:\n");
            for (url, state) in &self.ddp_servers {
                out.push_str(&format!("  {url}  {state}\n"));
            }
        }
        if let Some(log) = &self.log {
            out.push_str(&format!("\nRun log: {}\n", log.display()));
        }
        out
    }

    fn to_json(&self) -> Value {
        let mut document = json!({
            "workspace": self.fleet.workspace.name,
            "release": self.fleet.workspace.release.to_string(),
            "inventory": self.inventory.display().to_string(),
            "seconds": self.seconds,
            "service": self.service.name(),
            "replicas": self.fleet.microservices.replicas_of(self.service),
            "ddp_streamers_in_traefik": self.ddp_servers,
        });
        document[self.verb] = json!(self
            .containers
            .iter()
            .map(|c| json!({ "name": c.name, "host": c.host, "url": c.url() }))
            .collect::<Vec<_>>());
        document
    }
}

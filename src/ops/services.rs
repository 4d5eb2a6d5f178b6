//! The microservice containers (`[microservices]`) in `up`: started after the instances, since
//! every service waits for the monolith's `license` service on the bus before it listens
//! (Rocket.Chat `NetworkBroker.createService`, dependencies `['license', ...]`), then each one
//! checked on its `/health` (200 while it can list the bus' nodes). In `upgrade` they follow
//! the instances to the new release (the ddp-streamers one at a time: `ddp_roll`).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::converge::{container_story, converge_unit, send_files, unit_files, POLL};
use super::ddp_roll;
use super::hosts::{Hosts, CONCURRENCY};
use super::probe;
use super::report::Reporter;
use super::wait::{self, Poll};
use crate::error::{Error, Result};
use crate::fleet::Fleet;
use crate::microservices::{self, Service, ServiceContainer};
use crate::remote::{self, Argv, Connection};
use crate::render::{self, HostArtifacts, SERVICES_DIR};

/// The compose service of every service unit (`compose/service.yml.hbs`).
const SERVICE: &str = "service";

/// Starts or updates every service container whose files changed or that is not running, in
/// parallel across hosts, then waits until every one answers `/health`. Returns, per host,
/// what was done.
pub fn converge_services(
    fleet: &Fleet,
    remote: &Hosts,
    changed: &BTreeMap<String, BTreeSet<String>>,
    deploy_dir: &str,
    report: &Reporter,
) -> Result<Vec<(String, Vec<String>)>> {
    let containers = microservices::containers(fleet);
    let hosts: BTreeSet<&str> = containers.iter().map(|c| c.host.as_str()).collect();
    let hosts: Vec<&str> = hosts.into_iter().collect();
    let results = remote::fan_out(&hosts, CONCURRENCY, |h| h.to_string(), |host| {
        let conn = remote.host(host);
        let mine: Vec<&ServiceContainer> = containers.iter().filter(|c| c.host == *host).collect();
        let mut done = Vec::new();
        for container in &mine {
            let unit = render::service_unit(fleet, container);
            done.extend(converge_unit(fleet, conn, &unit, changed, deploy_dir, report)?);
        }
        for container in &mine {
            wait_healthy(fleet, remote, conn, container, report)?;
        }
        Ok(done)
    });
    remote::all_succeeded(results).map_err(|err| {
        Error::failed(format!(
            "{err}\nThe instances serve as before; Traefik's and Prometheus' lists were not changed. Fix the cause and \
             run `rcfleet up` again."
        ))
    })
}

/// What moving the service containers to another release did.
pub struct ServicesMoved {
    /// When the services other than ddp-streamer had all been recreated and were healthy.
    pub others_moved: Instant,
    pub streamers: ddp_roll::Rolled,
}

/// After the instances moved to another release (`upgrade`): the services other than
/// ddp-streamer recreated together (their files sent, then each recreated and waited for, all
/// hosts at once), then the ddp-streamers one at a time through Traefik's route
/// ([`ddp_roll`]). Mixed versions on one bus may not understand each other (reference A.2), so
/// this follows the instances at once, the services that no client reaches directly in one go.
pub fn move_services(fleet: &Fleet, remote: &Hosts, files: &[HostArtifacts], report: &Reporter) -> Result<ServicesMoved> {
    let deploy_dir = render::deploy_dir(fleet);
    let mut changed: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for container in microservices::containers(fleet).into_iter().filter(|c| c.service != Service::DdpStreamer) {
        let unit = render::service_unit(fleet, &container);
        let written = send_files(remote.host(&unit.host), &deploy_dir, &unit_files(files, &unit))?;
        changed.entry(unit.host.clone()).or_default().extend(written);
    }
    converge_services(fleet, remote, &changed, &deploy_dir, report)?;
    let others_moved = Instant::now();
    let streamers = ddp_roll::roll(fleet, remote, files, report)?;
    Ok(ServicesMoved { others_moved, streamers })
}

/// The fleet's ddp-streamers that answer `/health` now (asked from their own hosts; those on
/// hosts this run did not reach are left out): the ones Traefik may send WebSockets to.
pub fn ready_ddp_streamers(fleet: &Fleet, remote: &Hosts) -> Vec<ServiceContainer> {
    render::ddp_streamers(fleet)
        .into_iter()
        .filter(|c| remote.try_host(&c.host).is_some_and(|conn| health(remote, conn, c).is_ok()))
        .collect()
}

/// `/health` of one service container, asked from its own host.
pub fn health(remote: &Hosts, conn: &Connection, container: &ServiceContainer) -> Poll<()> {
    probe::http_ok(remote, conn, &container.private_address, container.port, "/health")
}

pub(super) fn wait_healthy(fleet: &Fleet, remote: &Hosts, conn: &Connection, container: &ServiceContainer, report: &Reporter) -> Result<()> {
    let timeout = Duration::from_secs(fleet.upgrade.readiness_timeout_seconds);
    let what = format!("{} healthy on {}/health", container.name, container.url());
    match wait::until(report, "service", &what, timeout, POLL, || Ok(health(remote, conn, container))) {
        Ok(()) => {
            report.step("service", &container.host, format!("{} healthy at {}", container.name, container.url()));
            Ok(())
        }
        Err(err) => {
            let story = container_story(fleet, conn, &container.name, None)?;
            Err(Error::failed(format!("{}: {err}\n  {story}", container.host)))
        }
    }
}

/// Stops and removes the service containers of the units `names` on `conn`'s host (found by
/// rcfleet's labels; `restart: unless-stopped` keeps a stopped one stopped) and their
/// directories. Returns what was done, one line per unit.
pub fn remove_containers(fleet: &Fleet, conn: &Connection, names: &[&str], report: &Reporter) -> Result<Vec<String>> {
    let deploy_dir = render::deploy_dir(fleet);
    let found = probe::containers(fleet, conn)?;
    let mut done = Vec::new();
    for name in names {
        let ids: Vec<&str> = found.iter().filter(|c| c.unit == *name && c.service == SERVICE).map(|c| c.id.as_str()).collect();
        let dir = format!("{deploy_dir}/{SERVICES_DIR}/{name}");
        if !ids.is_empty() {
            // Moleculer leaves the bus on SIGTERM; 10 s is Docker's own default grace.
            conn.run(&Argv::new("docker").args(["stop", "--time", "10"]).args(ids.iter().copied()).step(format!("stopping {name}")))?;
            conn.run(&Argv::new("docker").args(["rm"]).args(ids.iter().copied()).step(format!("removing {name}")))?;
        }
        conn.run(&Argv::new("rm").args(["-rf", "--", &dir]))?;
        report.step("service", conn.name(), format!("{name} stopped and removed ({dir})"));
        done.push(format!("removed {name} and {dir}"));
    }
    Ok(done)
}

/// `up`: the service containers on the fleet's hosts that the inventory no longer has there (a
/// service taken out, fewer replicas, microservices switched off, a host changed) are stopped
/// and removed, after Traefik's route has left them. Only containers with rcfleet's labels for
/// this workspace and a service unit's compose service are touched.
pub fn remove_unwanted(fleet: &Fleet, remote: &Hosts, report: &Reporter) -> Result<Vec<(String, Vec<String>)>> {
    let wanted: BTreeSet<(String, String)> =
        microservices::containers(fleet).into_iter().map(|c| (c.host, c.name)).collect();
    let mut done = Vec::new();
    for host in &fleet.hosts {
        let Some(conn) = remote.try_host(&host.name) else { continue };
        let unwanted: BTreeSet<String> = probe::containers(fleet, conn)?
            .into_iter()
            .filter(|c| c.service == SERVICE && !wanted.contains(&(host.name.clone(), c.unit.clone())))
            .map(|c| c.unit)
            .collect();
        if unwanted.is_empty() {
            continue;
        }
        let names: Vec<&str> = unwanted.iter().map(String::as_str).collect();
        if names.iter().any(|n| n.starts_with(Service::DdpStreamer.name())) {
            // WebSocket clients of a streamer that left Traefik's route finish or reconnect.
            super::instances::drain(report, Duration::from_secs(fleet.upgrade.drain_seconds), &names);
        }
        done.push((host.name.clone(), remove_containers(fleet, conn, &names, report)?));
    }
    Ok(done)
}

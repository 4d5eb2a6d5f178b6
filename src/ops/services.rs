//! The microservice containers (`[microservices]`) in `up`: started after the instances, since
//! every service waits for the monolith's `license` service on the bus before it listens
//! (Rocket.Chat `NetworkBroker.createService`, dependencies `['license', ...]`), then each one
//! checked on its `/health` (200 while it can list the bus' nodes).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::converge::{container_story, converge_unit, send_files, unit_files, POLL};
use super::hosts::{Hosts, CONCURRENCY};
use super::probe;
use super::report::Reporter;
use super::wait::{self, Poll};
use crate::error::{Error, Result};
use crate::fleet::Fleet;
use crate::microservices::{self, ServiceContainer};
use crate::remote::{self, Connection};
use crate::render::{self, HostArtifacts};

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
            done.extend(converge_unit(fleet, remote, conn, &unit, changed, deploy_dir, report)?);
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

/// After the instances moved to another release (`upgrade`): every service container's files
/// sent (its image tag is the release), then each recreated and waited for, host by host.
/// Mixed versions on one bus may not understand each other (reference A.2), so this follows
/// the instances at once.
pub fn move_services(fleet: &Fleet, remote: &Hosts, files: &[HostArtifacts], report: &Reporter) -> Result<Vec<(String, Vec<String>)>> {
    let deploy_dir = render::deploy_dir(fleet);
    let mut changed: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for container in microservices::containers(fleet) {
        let unit = render::service_unit(fleet, &container);
        let written = send_files(remote.host(&unit.host), &deploy_dir, &unit_files(files, &unit))?;
        changed.entry(unit.host.clone()).or_default().extend(written);
    }
    converge_services(fleet, remote, &changed, &deploy_dir, report)
}

/// `/health` of one service container, asked from its own host.
pub fn health(remote: &Hosts, conn: &Connection, container: &ServiceContainer) -> Poll<()> {
    probe::http_ok(remote, conn, &container.private_address, container.port, "/health")
}

fn wait_healthy(fleet: &Fleet, remote: &Hosts, conn: &Connection, container: &ServiceContainer, report: &Reporter) -> Result<()> {
    let timeout = Duration::from_secs(fleet.upgrade.readiness_timeout_seconds);
    let what = format!("{} healthy on {}/health", container.name, container.url());
    match wait::until(report, "service", &what, timeout, POLL, || Ok(health(remote, conn, container))) {
        Ok(()) => {
            report.step("service", &container.host, format!("{} healthy at {}", container.name, container.url()));
            Ok(())
        }
        Err(err) => {
            let story = container_story(fleet, remote, conn, &container.name, None)?;
            Err(Error::failed(format!("{}: {err}\n  {story}", container.host)))
        }
    }
}

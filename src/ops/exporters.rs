//! The monitoring pieces no instance depends on, brought up by `up` after the monitoring unit:
//! the node exporter on every host (at once, [`CONCURRENCY`] hosts at a time) and Alertmanager
//! when the inventory has `[monitoring.alertmanager]`.

use std::collections::{BTreeMap, BTreeSet};

use super::converge::converge_unit;
use super::hosts::{Hosts, CONCURRENCY};
use super::probe;
use super::report::Reporter;
use crate::error::{Error, Result};
use crate::fleet::{Fleet, Host};
use crate::remote::{self, Argv};
use crate::render;

/// Converges every host's node exporter and Alertmanager; returns `(host, change)` of what
/// changed.
pub fn converge(
    fleet: &Fleet,
    remote: &Hosts,
    changed: &BTreeMap<String, BTreeSet<String>>,
    deploy_dir: &str,
    report: &Reporter,
) -> Result<Vec<(String, String)>> {
    let hosts: Vec<&Host> = fleet.hosts.iter().collect();
    let results = remote::fan_out(&hosts, CONCURRENCY, |h| h.name.clone(), |host| {
        let unit = render::node_exporter_unit(fleet, host);
        converge_unit(fleet, remote.host(&host.name), &unit, changed, deploy_dir, report)
    });
    let mut changes = Vec::new();
    let mut failures = Vec::new();
    for (host, result) in results {
        match result {
            Ok(Some(change)) => changes.push((host, change)),
            Ok(None) => {}
            Err(err) => failures.push(err.to_string()),
        }
    }
    if !failures.is_empty() {
        return Err(Error::failed(failures.join("\n")));
    }
    if let Some(unit) = render::alertmanager_unit(fleet) {
        let conn = remote.host(&unit.host);
        let config_written = changed.get(&unit.host).is_some_and(|paths| paths.contains(render::ALERTMANAGER_CONFIG_PATH));
        // The host's clock before compose runs: a container created since read the new file when
        // it started. One created before runs on the old file: compose leaves it as it is (the
        // webhook's URL is not in the service's definition), and SIGHUP makes it read the file
        // again. Never a SIGHUP to a container just started: until Alertmanager has set up its
        // handler, SIGHUP ends it (a Go program's default), and Docker does not restart it.
        let before = if config_written { Some(host_clock(conn)?) } else { None };
        let started = converge_unit(fleet, conn, &unit, changed, deploy_dir, report)?;
        if let Some(before) = before {
            let container = probe::containers(fleet, conn)?.into_iter().find(|c| c.unit == unit.name && c.running());
            if let Some(container) = container.filter(|c| c.created < before) {
                conn.run(&Argv::new("docker").args(["kill", "--signal", "HUP", &container.id]))?;
                report.step("alertmanager", &unit.host, "alertmanager re-read its configuration");
                changes.push((unit.host.clone(), "alertmanager re-read its configuration".to_string()));
            }
        }
        if let Some(change) = started {
            changes.push((unit.host.clone(), change));
        }
    }
    Ok(changes)
}

/// The host's clock, in seconds since the epoch (Docker's `Created` is on that clock).
fn host_clock(conn: &remote::Connection) -> Result<i64> {
    let out = conn.run(&Argv::new("date").arg("+%s"))?.stdout_text();
    out.trim().parse().map_err(|_| Error::failed(format!("{}: `date +%s` printed {:?}, not a number", conn.name(), out.trim())))
}

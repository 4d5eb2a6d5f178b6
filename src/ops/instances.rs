//! What every command that changes the set of serving instances shares (`up`, `upgrade`,
//! `add-instance`, `remove-instance`): the one publisher of Traefik's server list and
//! Prometheus' targets, the drain that lets requests in flight finish, the outcome of the
//! instance commands and how an edited inventory's problems are told.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::converge::{confirm_prometheus_listing, confirm_traefik_listing, send_files};
use super::hosts::Hosts;
use super::report::{Outcome, Reporter};
use crate::error::{Error, Result};
use crate::fleet::{Fleet, Instance};
use crate::microservices::ServiceContainer;
use crate::render::{self, Artifact, PROMETHEUS_TARGETS_PATH, TRAEFIK_DYNAMIC_PATH};

/// What a run changed, per host, for the audit log.
pub type Changes = BTreeMap<String, Vec<String>>;

/// Writes Traefik's server list with exactly `in_service` (only if it differs from the file on
/// the host), without waiting for Traefik. Returns whether it was written. An empty list is
/// refused: rcfleet never takes the last instance out of service.
pub fn write_traefik(fleet: &Fleet, remote: &Hosts, in_service: &[&Instance]) -> Result<bool> {
    // ddp-streamers only once they answer `/health`: until then WebSocket and SockJS stay with
    // the instances (switching to microservices fails no request).
    let streamers = super::services::ready_ddp_streamers(fleet, remote);
    write_traefik_with(fleet, remote, in_service, &streamers)
}

/// [`write_traefik`] with exactly `streamers` behind the `/websocket` route (an upgrade takes
/// one out while it drains).
pub fn write_traefik_with(fleet: &Fleet, remote: &Hosts, in_service: &[&Instance], streamers: &[ServiceContainer]) -> Result<bool> {
    if in_service.is_empty() {
        return Err(Error::failed(
            "refusing to write an empty server list to Traefik: that would take the whole workspace out of service",
        ));
    }
    let streamers: Vec<&ServiceContainer> = streamers.iter().collect();
    let file = Artifact::public(TRAEFIK_DYNAMIC_PATH, render::traefik_dynamic(fleet, in_service, &streamers)?);
    let lb = remote.host(&fleet.traefik_host().name);
    Ok(!send_files(lb, &render::deploy_dir(fleet), &[file])?.is_empty())
}

/// Publishes `in_service` as Traefik's server list and waits until Traefik's API lists exactly
/// those, every one UP except on hosts this run could not reach (Traefik's health check judges
/// those). Records the write in `changes` (per host, for the audit log); returns what Traefik lists.
pub fn publish_traefik(
    fleet: &Fleet,
    remote: &Hosts,
    report: &Reporter,
    in_service: &[&Instance],
    changes: &mut Changes,
) -> Result<BTreeMap<String, String>> {
    let streamers = super::services::ready_ddp_streamers(fleet, remote);
    publish_traefik_with(fleet, remote, report, in_service, &streamers, changes)
}

/// [`publish_traefik`] with exactly `streamers` behind the `/websocket` route.
pub fn publish_traefik_with(
    fleet: &Fleet,
    remote: &Hosts,
    report: &Reporter,
    in_service: &[&Instance],
    streamers: &[ServiceContainer],
    changes: &mut Changes,
) -> Result<BTreeMap<String, String>> {
    if write_traefik_with(fleet, remote, in_service, streamers)? {
        let change = format!("wrote {TRAEFIK_DYNAMIC_PATH} ({} instance(s))", in_service.len());
        report.step("files", &fleet.traefik_host().name, &change);
        changes.entry(fleet.traefik_host().name.clone()).or_default().push(change);
    }
    let listed: BTreeSet<String> = in_service.iter().map(|i| i.url()).collect();
    let reached: BTreeSet<String> = in_service.iter().filter(|i| remote.try_host(&i.host).is_some()).map(|i| i.url()).collect();
    confirm_traefik_listing(fleet, remote, report, &listed, &reached)
}

/// Publishes every instance of `fleet` as Prometheus' targets and waits until it can scrape
/// those on hosts this run reached (see [`confirm_prometheus_listing`] for `await_listing`).
/// Records the write in `changes`; returns its targets (none without a monitoring host).
pub fn publish_prometheus(
    fleet: &Fleet,
    remote: &Hosts,
    report: &Reporter,
    changes: &mut Changes,
    await_listing: bool,
) -> Result<BTreeMap<String, String>> {
    if let Some((host, change)) = write_prometheus_targets(fleet, remote, report)? {
        changes.entry(host).or_default().push(change);
    }
    let scraped: BTreeSet<String> =
        fleet.instances().filter(|i| remote.try_host(&i.host).is_some()).map(|i| i.metrics_target()).collect();
    confirm_prometheus_listing(fleet, remote, report, &scraped, await_listing)
}

/// Writes Prometheus' targets file listing `fleet`'s instances, without waiting for Prometheus;
/// the monitoring host and what changed, if the file did.
pub fn write_prometheus_targets(fleet: &Fleet, remote: &Hosts, report: &Reporter) -> Result<Option<(String, String)>> {
    let Some(monitoring) = fleet.monitoring_host() else { return Ok(None) };
    let instances: Vec<&Instance> = fleet.instances().collect();
    let file = Artifact::public(PROMETHEUS_TARGETS_PATH, render::prometheus_targets(&instances)?);
    if send_files(remote.host(&monitoring.name), &render::deploy_dir(fleet), &[file])?.is_empty() {
        return Ok(None);
    }
    let change = format!("wrote {PROMETHEUS_TARGETS_PATH} ({} target(s))", instances.len());
    report.step("files", &monitoring.name, &change);
    Ok(Some((monitoring.name.clone(), change)))
}

/// What `add-instance` or `remove-instance` did.
pub struct InstanceChange {
    /// The fleet as it is now (the inventory as written).
    pub fleet: Fleet,
    /// `added` or `removed`.
    pub verb: &'static str,
    /// The instances added or removed.
    pub instances: Vec<Instance>,
    pub traefik_servers: BTreeMap<String, String>,
    pub prometheus_targets: BTreeMap<String, String>,
    pub inventory: PathBuf,
    pub seconds: f64,
    pub log: Option<PathBuf>,
}

/// The edited inventory's problems, introduced as such: their line numbers are those of the
/// text rcfleet would have written, which was not written.
pub fn edited_is_invalid(err: Error, what: &str) -> Error {
    match err {
        Error::BadInput(problems) => {
            let mut lines = vec![format!(
                "{what} would make the inventory invalid, so nothing was changed (places are in the edited text):"
            )];
            lines.extend(problems);
            Error::BadInput(lines)
        }
        other => other,
    }
}

/// Requests already sent to the instances get this long to finish.
pub fn drain(report: &Reporter, time: Duration, names: &[&str]) {
    let started = Instant::now();
    while started.elapsed() < time {
        let left = time.saturating_sub(started.elapsed());
        report.waiting("drain", format!("{} out of Traefik, {}s left for requests in flight", names.join(", "), left.as_secs()));
        std::thread::sleep(left.min(Duration::from_millis(500)));
    }
    report.step("drain", "", format!("{} drained ({} s)", names.join(", "), time.as_secs()));
}

impl Outcome for InstanceChange {
    fn to_text(&self) -> String {
        let fleet = &self.fleet;
        let names: Vec<&str> = self.instances.iter().map(|i| i.name.as_str()).collect();
        let mut out = format!(
            "\n{} {} (release {}): {} instances on {} hosts serve {}, in {:.1} s.\nInventory updated: {}\n\n",
            capitalised(self.verb),
            names.join(", "),
            fleet.workspace.release,
            fleet.instances().count(),
            fleet.hosts.iter().filter(|h| !h.instances.is_empty()).count(),
            fleet.workspace.root_url,
            self.seconds,
            self.inventory.display(),
        );
        out.push_str(&super::report::instances_table(fleet, &self.traefik_servers, &self.prometheus_targets));
        if let Some(log) = &self.log {
            out.push_str(&format!("\nRun log: {}\n", log.display()));
        }
        out
    }

    fn to_json(&self) -> Value {
        let fleet = &self.fleet;
        let mut document = json!({
            "workspace": fleet.workspace.name,
            "release": fleet.workspace.release.to_string(),
            "inventory": self.inventory.display().to_string(),
            "seconds": self.seconds,
            "instances": super::report::instances_json(fleet, &self.traefik_servers, &self.prometheus_targets),
        });
        document[self.verb] = json!(self.instances.iter().map(|i| &i.name).collect::<Vec<_>>());
        document
    }
}

fn capitalised(word: &str) -> String {
    let mut chars = word.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

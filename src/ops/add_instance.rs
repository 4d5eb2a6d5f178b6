//! `add-instance`: more Rocket.Chat instances on a host of the fleet, or on a new host that is
//! added to the inventory. Only the new instances are deployed (files, `compose up`, ready);
//! then Traefik's server list and Prometheus' targets are rewritten for the grown fleet and
//! confirmed through their APIs. Nothing else is started, stopped or recreated: Traefik and
//! Prometheus re-read those files by themselves.
//!
//! The edited inventory is validated before any host is contacted (a port collision or a
//! duplicate address is refused with its `file:line:col`), and written only once it all worked.

use std::collections::BTreeMap;
use std::path::Path;

use super::audit;
use super::converge::{converge_unit, pull_missing_images, send_files, wait_ready};
use super::hosts::CONCURRENCY;
use super::instances::{edited_is_invalid, publish_prometheus, publish_traefik, InstanceChange};
use super::run::{Run, RunOptions};
use crate::error::{Error, Result};
use crate::fleet::{Host, Instance};
use crate::inventory::{self, edit};
use crate::remote::{self, ConnectOptions};
use crate::render::{self, Artifact};

pub struct AddOptions {
    pub connect: ConnectOptions,
    /// The host to add instances to, or the name of the new host.
    pub host: String,
    pub count: u32,
    /// A new host at this address (with the two settings below); `None` adds to an existing host.
    pub address: Option<String>,
    pub private_address: Option<String>,
    pub ssh_user: Option<String>,
}

pub fn add_instance(inventory_path: &Path, options: &AddOptions) -> Result<InstanceChange> {
    if options.count == 0 {
        return Err(Error::bad_input("--count must be 1 or more"));
    }
    let before = inventory::load(inventory_path)?;
    let text = edit::read(inventory_path)?;
    let edited = match &options.address {
        Some(address) => edit::add_host(
            &text,
            &edit::NewHost {
                name: options.host.clone(),
                address: address.clone(),
                private_address: options.private_address.clone(),
                ssh_user: options.ssh_user.clone(),
                instances: options.count,
            },
        )?,
        None if options.private_address.is_some() || options.ssh_user.is_some() => {
            return Err(Error::bad_input(
                "--private-address and --ssh-user describe a new host; give them with --address, or leave them out",
            ))
        }
        None => edit::add_instances(&text, &options.host, options.count)?.0,
    };
    let fleet = inventory::parse(&edited, inventory_path).map_err(|err| {
        let what = match options.address {
            Some(_) => format!("adding host {}", options.host),
            None => format!("adding {} instance(s) to {}", options.count, options.host),
        };
        edited_is_invalid(err, &what)
    })?;
    let added: Vec<Instance> =
        fleet.instances().filter(|i| before.instances().all(|old| old.name != i.name)).cloned().collect();
    let names: Vec<&str> = added.iter().map(|i| i.name.as_str()).collect();
    let command = format!("rcfleet add-instance {}", names.join(" "));
    let run = Run::open_with(inventory_path, fleet, &RunOptions::change("add-instance", command.clone(), &options.connect))?;
    let (fleet, remote, report, artifacts, deploy_dir) = (&run.fleet, &run.hosts, &run.report, &run.artifacts, &run.deploy_dir);
    let mut changes: BTreeMap<String, Vec<String>> = BTreeMap::new();

    // The new instances, in parallel across their hosts, until ready.
    let hosts: Vec<(&Host, Vec<&Instance>)> = fleet
        .hosts
        .iter()
        .map(|h| (h, added.iter().filter(|i| i.host == h.name).collect::<Vec<_>>()))
        .filter(|(_, instances)| !instances.is_empty())
        .collect();
    let results = remote::fan_out(&hosts, CONCURRENCY, |(h, _)| h.name.clone(), |(host, instances)| {
        let conn = remote.host(&host.name);
        pull_missing_images(&fleet, host, conn, &report)?;
        let dirs: Vec<String> = instances.iter().map(|i| format!("{}/", render::instance_unit(&fleet, i).dir)).collect();
        let files: Vec<Artifact> = host_files(&artifacts, &host.name)
            .iter()
            .filter(|f| dirs.iter().any(|d| f.path.starts_with(d)))
            .cloned()
            .collect();
        let written = send_files(conn, &deploy_dir, &files)?;
        let changed = BTreeMap::from([(host.name.clone(), written)]);
        let mut done = Vec::new();
        for instance in instances {
            let unit = render::instance_unit(&fleet, instance);
            if let Some(change) = converge_unit(&fleet, conn, &unit, &changed, &deploy_dir, &report)? {
                done.push(change);
            }
        }
        for instance in instances {
            wait_ready(&fleet, &remote, conn, instance, &report)?;
        }
        Ok(done)
    });
    let started = remote::all_succeeded(results).map_err(|err| {
        Error::failed(format!(
            "{}\nTraefik and Prometheus were not changed and the inventory was not written; the instances that \
             started are not in service. Fix the cause and run the same command again.",
            err
        ))
    })?;
    for (host, done) in started {
        changes.entry(host).or_default().extend(done);
    }

    // Only now, every new instance ready, does Traefik send it users.
    let every_instance: Vec<&Instance> = fleet.instances().collect();
    let traefik_servers = publish_traefik(&fleet, &remote, &report, &every_instance, &mut changes)?;
    let prometheus_targets = publish_prometheus(&fleet, &remote, &report, &mut changes, true)?;
    for (host, host_changes) in &changes {
        audit::record(remote.host(host), &fleet, &command, host_changes)?;
    }
    edit::write(inventory_path, &edited)?;
    report.step("inventory", "", format!("{} updated: {} added", inventory_path.display(), names.join(", ")));
    Ok(InstanceChange {
        fleet: fleet.clone(),
        verb: "added",
        instances: added,
        traefik_servers,
        prometheus_targets,
        inventory: inventory_path.to_path_buf(),
        seconds: report.elapsed_seconds(),
        log: report.log_path().map(Path::to_path_buf),
    })
}

fn host_files<'a>(artifacts: &'a [render::HostArtifacts], host: &str) -> &'a [Artifact] {
    artifacts.iter().find(|a| a.host == host).map(|a| a.files.as_slice()).unwrap_or_default()
}

//! `remove-instance`: takes instances out of the fleet without failing a request. Traefik's
//! server list is rewritten without them and confirmed through its API (no new request goes
//! to them), requests already sent get `upgrade.drain_seconds` to finish, then each unit is
//! brought down and its directory removed, Prometheus' targets are rewritten and confirmed,
//! and the inventory is updated (`retired`, see `inventory::edit::remove_instance`) so the
//! remaining instances keep their names and ports.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use super::instances::{drain, edited_is_invalid, publish_prometheus, publish_traefik, InstanceChange};
use super::audit;
use super::probe;
use super::run::{Run, RunOptions};
use crate::error::{Error, Result};
use crate::fleet::{Fleet, Instance};
use crate::inventory::{self, edit};
use crate::remote::{ConnectOptions, ExecOptions};
use crate::render;

pub struct RemoveOptions {
    pub connect: ConnectOptions,
    /// Instances by name (`app1-0`).
    pub instances: Vec<String>,
    /// Every instance of this host.
    pub host: Option<String>,
}

pub fn remove_instance(inventory_path: &Path, options: &RemoveOptions) -> Result<InstanceChange> {
    let before = inventory::load(inventory_path)?;
    let removed = chosen(&before, options)?;
    let mut edited = edit::read(inventory_path)?;
    for instance in &removed {
        edited = edit::remove_instance(&edited, &instance.host, instance.index)?;
    }
    let names: Vec<&str> = removed.iter().map(|i| i.name.as_str()).collect();
    let fleet = inventory::parse(&edited, inventory_path)
        .map_err(|err| edited_is_invalid(err, &format!("removing {}", names.join(", "))))?;
    let command = format!("rcfleet remove-instance {}", names.join(" "));

    // Over the fleet as it runs (the instances removed too); the edited one is published.
    let run = Run::open_with(
        inventory_path,
        before,
        &RunOptions { lock: Some(command.clone()), ..RunOptions::new("remove-instance", &options.connect) },
    )?;
    let (before, remote, report, deploy_dir) = (&run.fleet, &run.hosts, &run.report, &run.deploy_dir);
    // Each instance on the ports its host records (a start-first upgrade alternates them; the
    // run's fleet already is).
    let fleet = super::slots::current(&fleet, remote)?;
    let removed: Vec<Instance> =
        removed.iter().map(|r| before.instances().find(|i| i.name == r.name).unwrap_or(r).clone()).collect();
    let remaining: Vec<&Instance> = fleet.instances().collect();
    let mut changes: BTreeMap<String, Vec<String>> = BTreeMap::new();

    // Out of Traefik first, confirmed: from then on no new request reaches them.
    let traefik_servers = publish_traefik(&fleet, &remote, &report, &remaining, &mut changes)?;
    drain(&report, Duration::from_secs(fleet.upgrade.drain_seconds), &names);

    for instance in &removed {
        let conn = remote.host(&instance.host);
        let unit = render::instance_unit(&before, instance);
        let dir = format!("{deploy_dir}/{}", unit.dir);
        let options = ExecOptions { timeout: Some(Duration::from_secs(300)), stream: true, ..Default::default() };
        let output = conn.exec(&conn.compose(&dir, &unit.project)?.down(), options)?;
        let left = probe::containers(&before, conn)?.into_iter().filter(|c| c.unit == instance.name).count();
        if !output.success() || left > 0 {
            let said = output.stderr_text().trim().lines().last().unwrap_or_default().to_string();
            return Err(Error::failed(format!(
                "{}: bringing down {} failed ({said}); it no longer receives requests from Traefik, but its container \
                 is still there. Remove it by hand and run the same command again; the inventory was not changed.",
                instance.host, instance.name
            )));
        }
        conn.run(&crate::remote::Argv::new("rm").args(["-rf", "--", &dir, &super::slots::file(&before, instance)]))?;
        report.step("instance", &instance.host, format!("{} stopped and removed ({dir})", instance.name));
        changes.entry(instance.host.clone()).or_default().push(format!("removed {} and {dir}", instance.name));
    }

    let prometheus_targets = publish_prometheus(&fleet, &remote, &report, &mut changes, true)?;
    for (host, host_changes) in &changes {
        audit::record(remote.host(host), &fleet, &command, host_changes)?;
    }
    edit::write(inventory_path, &edited)?;
    report.step("inventory", "", format!("{} updated: {} removed", inventory_path.display(), names.join(", ")));
    Ok(InstanceChange {
        fleet,
        verb: "removed",
        instances: removed,
        traefik_servers,
        prometheus_targets,
        inventory: inventory_path.to_path_buf(),
        seconds: report.elapsed_seconds(),
        log: report.log_path().map(Path::to_path_buf),
    })
}

/// The instances named on the command line, checked against the fleet.
fn chosen(fleet: &Fleet, options: &RemoveOptions) -> Result<Vec<Instance>> {
    let all: Vec<&str> = fleet.instances().map(|i| i.name.as_str()).collect();
    let mut chosen: Vec<Instance> = Vec::new();
    if let Some(host) = &options.host {
        let Some(found) = fleet.host(host) else {
            let hosts: Vec<&str> = fleet.hosts.iter().map(|h| h.name.as_str()).collect();
            return Err(Error::bad_input(format!("no host {host:?} in the inventory; its hosts are {}", hosts.join(", "))));
        };
        if found.instances.is_empty() {
            return Err(Error::bad_input(format!("host {host:?} runs no Rocket.Chat instance")));
        }
        chosen.extend(found.instances.iter().cloned());
    }
    for name in &options.instances {
        match fleet.instances().find(|i| &i.name == name) {
            Some(instance) if chosen.contains(instance) => {}
            Some(instance) => chosen.push(instance.clone()),
            None => {
                return Err(Error::bad_input(format!("no instance {name:?} in the fleet; its instances are {}", all.join(", "))))
            }
        }
    }
    if chosen.is_empty() {
        return Err(Error::bad_input("name the instances to remove (e.g. app1-1), or give --host NAME"));
    }
    if chosen.len() == all.len() {
        return Err(Error::bad_input(format!(
            "removing {} would leave the workspace without any Rocket.Chat instance; add another first \
             (`rcfleet add-instance`), or keep one",
            chosen.iter().map(|i| i.name.as_str()).collect::<Vec<_>>().join(", ")
        )));
    }
    Ok(chosen)
}

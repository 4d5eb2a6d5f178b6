//! A planned outage of every Rocket.Chat instance, for work on the database that Rocket.Chat
//! must not see (a MongoDB major upgrade, a restore): every instance out of Traefik (confirmed
//! through its API), then stopped; afterwards started again on the fleet's release, waited for
//! until ready, and put back into Traefik (confirmed UP). Both halves are safe to run again:
//! a stopped instance stays stopped, a running one is left running.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::fleet::{Fleet, Host, Instance, Role};
use crate::ops::converge::{confirm_traefik, converge_unit, send_files, wait_ready};
use crate::ops::hosts::{Hosts, CONCURRENCY};
use crate::ops::report::Reporter;
use crate::ops::secrets::Store;
use crate::remote::{self, ExecOptions};
use crate::render::{self, Artifact};

/// Takes every instance out of Traefik and stops it. From here the workspace is down.
pub fn take_down(fleet: &Fleet, remote: &Hosts, report: &Reporter) -> Result<()> {
    set_traefik(fleet, remote, report, &[])?;
    report.step("outage", "", "every instance is out of Traefik: the workspace is DOWN from here");
    let hosts: Vec<&Host> = fleet.hosts_with(Role::Rocketchat).collect();
    let results = remote::fan_out(&hosts, CONCURRENCY, |h| h.name.clone(), |host| {
        let conn = remote.host(&host.name);
        for instance in &host.instances {
            let unit = render::instance_unit(fleet, instance);
            let compose = conn.compose(&format!("{}/{}", render::deploy_dir(fleet), unit.dir), &unit.project)?;
            let options = ExecOptions { timeout: Some(Duration::from_secs(300)), stream: true, ..Default::default() };
            let output = conn.exec(&compose.stop(&[]), options)?;
            if !output.success() {
                return Err(Error::failed(format!("{}: stopping {} failed: {}", host.name, instance.name, output.stderr_text().trim())));
            }
            report.step("outage", &host.name, format!("{} stopped", instance.name));
        }
        Ok(())
    });
    remote::all_succeeded(results).map(|_| ())
}

/// Starts every instance on `fleet`'s release (its files sent first: a restore may change the
/// release), waits until each is ready, and puts them all back into Traefik.
pub fn bring_back(fleet: &Fleet, remote: &Hosts, store: &Store, report: &Reporter) -> Result<()> {
    let files = render::render(fleet, store)?;
    let deploy_dir = render::deploy_dir(fleet);
    let hosts: Vec<&Host> = fleet.hosts_with(Role::Rocketchat).collect();
    let results = remote::fan_out(&hosts, CONCURRENCY, |h| h.name.clone(), |host| {
        let conn = remote.host(&host.name);
        let units: Vec<render::Unit> = host.instances.iter().map(|i| render::instance_unit(fleet, i)).collect();
        let unit_files: Vec<Artifact> = files
            .iter()
            .filter(|h| h.host == host.name)
            .flat_map(|h| h.files.iter())
            .filter(|f| units.iter().any(|u| f.path.starts_with(&format!("{}/", u.dir))))
            .cloned()
            .collect();
        let written = send_files(conn, &deploy_dir, &unit_files)?;
        let changed = BTreeMap::from([(host.name.clone(), written)]);
        for (instance, unit) in host.instances.iter().zip(&units) {
            converge_unit(fleet, conn, unit, &changed, &deploy_dir, report)?;
            wait_ready(fleet, remote, conn, instance, report)?;
        }
        Ok(())
    });
    remote::all_succeeded(results)?;
    let all: Vec<&Instance> = fleet.instances().collect();
    set_traefik(fleet, remote, report, &all)?;
    report.step("outage", "", "every instance is back in Traefik: the workspace serves again");
    Ok(())
}

/// Writes Traefik's dynamic file listing `in_service` and waits until its API shows exactly
/// those, all UP.
fn set_traefik(fleet: &Fleet, remote: &Hosts, report: &Reporter, in_service: &[&Instance]) -> Result<()> {
    let lb = remote.host(&fleet.traefik_host().name);
    let streamers = super::services::ready_ddp_streamers(fleet, remote);
    let streamers: Vec<&crate::microservices::ServiceContainer> = streamers.iter().collect();
    let content = render::traefik_dynamic(fleet, in_service, &streamers)?;
    send_files(lb, &render::deploy_dir(fleet), &[Artifact::public(render::TRAEFIK_DYNAMIC_PATH, content)])?;
    let expected: BTreeSet<String> = in_service.iter().map(|i| i.url()).collect();
    confirm_traefik(fleet, remote, report, &expected).map(|_| ())
}

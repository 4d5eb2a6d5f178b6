//! Which port pair each instance listens on now (`fleet::Slot`). A start-first upgrade moves
//! an instance to its other pair; its host records the pair in
//! `<deploy_dir>/rocketchat/<instance>.slot` (no file: the primary pair), so every later run,
//! from any machine, renders Traefik's list, Prometheus' targets and the instance's own files
//! with the ports it really listens on.

use std::collections::BTreeMap;

use super::hosts::{Hosts, CONCURRENCY};
use super::probe;
use super::report::Reporter;
use crate::error::{Error, Result};
use crate::fleet::{Fleet, Host, Instance, Slot};
use crate::remote::{self, Argv, Connection};
use crate::render::{self, INSTANCES_DIR};

/// The file that records `instance`'s slot on its host.
pub fn file(fleet: &Fleet, instance: &Instance) -> String {
    format!("{}/{INSTANCES_DIR}/{}.slot", render::deploy_dir(fleet), instance.name)
}

/// `fleet` with every instance on the slot its host records. Hosts this run could not reach
/// keep what the inventory says (the primary pair).
pub fn current(fleet: &Fleet, remote: &Hosts) -> Result<Fleet> {
    let hosts: Vec<&Host> =
        fleet.hosts.iter().filter(|h| !h.instances.is_empty() && remote.try_host(&h.name).is_some()).collect();
    let results = remote::fan_out(&hosts, CONCURRENCY, |h| h.name.clone(), |host| read_host(fleet, host, remote.host(&host.name)));
    let slots: BTreeMap<String, Slot> = remote::all_succeeded(results)?.into_iter().flat_map(|(_, slots)| slots).collect();
    Ok(fleet.with_slots(&slots))
}

/// The recorded slot of each instance of `host`, in one round trip.
fn read_host(fleet: &Fleet, host: &Host, conn: &Connection) -> Result<Vec<(String, Slot)>> {
    let files: Vec<String> = host.instances.iter().map(|i| file(fleet, i)).collect();
    let args: Vec<&str> = files.iter().map(String::as_str).collect();
    let script = r#"for f in "$@"; do if [ -f "$f" ]; then echo "$(head -c 32 -- "$f")"; else echo primary; fi; done"#;
    let output = conn.run(&Argv::script(script, &args))?.stdout_text();
    let words: Vec<&str> = output.lines().collect();
    host.instances
        .iter()
        .zip(&files)
        .enumerate()
        .map(|(index, (instance, path))| match words.get(index).map(|w| w.trim()) {
            Some("primary") => Ok((instance.name.clone(), Slot::Primary)),
            Some("spare") => Ok((instance.name.clone(), Slot::Spare)),
            other => Err(Error::failed(format!(
                "{}: {path} says {:?}, neither \"primary\" nor \"spare\"; it records which ports {} listens on \
                 (rcfleet writes it); put back the word matching its running container's PORT",
                host.name,
                other.unwrap_or_default(),
                instance.name
            ))),
        })
        .collect()
}

/// Records on its host that `instance` now listens on `slot`'s ports.
pub fn record(fleet: &Fleet, conn: &Connection, instance: &Instance, slot: Slot) -> Result<()> {
    let content = format!("{}\n", slot.name());
    conn.upload(&file(fleet, instance), content.as_bytes(), render::PUBLIC_MODE, None).map(|_| ())
}

/// Brings down `instance`'s compose project on the slot it carries and removes its folder.
pub fn remove_unit(fleet: &Fleet, conn: &Connection, instance: &Instance) -> Result<()> {
    let unit = render::instance_unit(fleet, instance);
    let dir = format!("{}/{}", render::deploy_dir(fleet), unit.dir);
    // One round trip: compose down (when the folder still has its compose file), then the folder.
    let script = r#"dir=$1; shift; if [ -f "$dir/compose.yml" ]; then "$@" || exit; fi; rm -rf -- "$dir""#;
    let down = conn.compose(&dir, &unit.project)?.down();
    let mut args = vec![dir.as_str()];
    args.extend(down.as_slice().iter().map(String::as_str));
    conn.run(&Argv::script(script, &args))?;
    Ok(())
}

/// Removes what an interrupted start-first upgrade left on instances' other port pair: the
/// unit folder (and its container) beside the one the slot file names, e.g. a new release
/// that never got into Traefik, or an old one whose drain was cut short. `fleet` carries the
/// recorded slots. Left alone: the instances in `keep` (an interrupted upgrade redoes them
/// and takes over what stands there) and any leftover Traefik still lists (the rollout drops
/// it from the list before it touches the instance). Returns (host, what was removed).
pub fn remove_leftovers(fleet: &Fleet, remote: &Hosts, report: &Reporter, keep: &[String]) -> Result<Vec<(String, String)>> {
    let hosts: Vec<&Host> =
        fleet.hosts.iter().filter(|h| !h.instances.is_empty() && remote.try_host(&h.name).is_some()).collect();
    let looked = remote::fan_out(&hosts, CONCURRENCY, |h| h.name.clone(), |host| {
        let folders = probe::directories(remote.host(&host.name), &format!("{}/{INSTANCES_DIR}", render::deploy_dir(fleet)))?;
        Ok(host
            .instances
            .iter()
            .filter(|i| !keep.contains(&i.name))
            .map(|i| i.on_slot(i.slot.other()))
            .filter(|other| folders.iter().any(|f| render::instance_unit(fleet, other).dir == format!("{INSTANCES_DIR}/{f}")))
            .collect::<Vec<Instance>>())
    });
    let leftovers: Vec<Instance> = remote::all_succeeded(looked)?.into_iter().flat_map(|(_, found)| found).collect();
    if leftovers.is_empty() || remote.try_host(&fleet.traefik_host().name).is_none() {
        return Ok(Vec::new());
    }
    // Traefik's own view, not its file: a leftover it routes to stays until the rollout moves on.
    let Ok(listed) = probe::traefik_servers(remote, fleet)? else { return Ok(Vec::new()) };
    let unlisted: Vec<Instance> = leftovers.into_iter().filter(|other| !listed.contains_key(&other.url())).collect();
    let removed = remote::fan_out(&unlisted, CONCURRENCY, |i| i.name.clone(), |other| {
        remove_unit(fleet, remote.host(&other.host), other)?;
        let serving = other.on_slot(other.slot.other());
        let line = format!(
            "{}: removed {} (ports {}/{}), left by an interrupted start-first upgrade; it serves on {}/{}",
            other.name,
            render::instance_unit(fleet, other).dir,
            other.port,
            other.metrics_port,
            serving.port,
            serving.metrics_port
        );
        report.step("leftover", &other.host, &line);
        Ok((other.host.clone(), line))
    });
    Ok(remote::all_succeeded(removed)?.into_iter().map(|(_, removed)| removed).collect())
}

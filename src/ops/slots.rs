//! Which port pair each instance listens on now (`fleet::Slot`). A start-first upgrade moves
//! an instance to its other pair; its host records the pair in
//! `<deploy_dir>/rocketchat/<instance>.slot` (no file: the primary pair), so every later run,
//! from any machine, renders Traefik's list, Prometheus' targets and the instance's own files
//! with the ports it really listens on.

use std::collections::BTreeMap;

use super::hosts::{Hosts, CONCURRENCY};
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

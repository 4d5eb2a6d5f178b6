//! Whether a start-first upgrade fits: each app host must have the memory for the new
//! containers of a batch while the old ones still run. `upgrade.strategy = "auto"` picks
//! start-first only when every app host has it.

use bollard::query_parameters::StatsOptionsBuilder;
use futures_util::StreamExt;

use crate::error::{Error, Result};
use crate::fleet::{Fleet, Host, Role};
use crate::ops::hosts::{Hosts, CONCURRENCY};
use crate::ops::probe;
use crate::remote::{self, Argv, Connection};

/// What one app host has and would need.
struct HostMemory {
    available_mib: u64,
    /// The most memory one of its running instances uses; `None` when none reports it.
    per_instance_mib: Option<u64>,
    /// Instances of this host that run twice at once: one batch booting beside its old
    /// containers while the batch before it drains.
    at_once: u64,
}

/// `Ok(why)` when every app host has MemAvailable for two batches more instances (as large as
/// its largest running one), `Err(why not)` otherwise, naming the host.
pub fn start_first_fits(fleet: &Fleet, remote: &Hosts, batch: u32) -> Result<std::result::Result<String, String>> {
    let hosts: Vec<&Host> = fleet.hosts_with(Role::Rocketchat).collect();
    let looked = remote::fan_out(&hosts, CONCURRENCY, |h| h.name.clone(), |host| {
        host_memory(fleet, remote, remote.host(&host.name), host, batch)
    });
    let mut fits = Vec::new();
    for (name, memory) in remote::all_succeeded(looked)? {
        let Some(per_instance) = memory.per_instance_mib else {
            return Ok(Err(format!("{name}: no running instance reports its memory use, so the room for one more is unknown")));
        };
        let need = per_instance * memory.at_once;
        if memory.available_mib < need {
            return Ok(Err(format!(
                "{name}: {} MiB available, {need} MiB needed for {} more instance(s) of {per_instance} MiB",
                memory.available_mib, memory.at_once
            )));
        }
        fits.push(format!("{name} {}/{need} MiB", memory.available_mib));
    }
    Ok(Ok(format!("memory available/needed for the instances two batches run twice: {}", fits.join(", "))))
}

fn host_memory(fleet: &Fleet, remote: &Hosts, conn: &Connection, host: &Host, batch: u32) -> Result<HostMemory> {
    let meminfo = conn.run(&Argv::new("cat").arg("/proc/meminfo"))?.stdout_text();
    let available_kib = meminfo
        .lines()
        .find_map(|line| line.strip_prefix("MemAvailable:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse::<u64>().ok())
        .ok_or_else(|| Error::failed(format!("{}: /proc/meminfo has no MemAvailable line", host.name)))?;
    let instances: Vec<String> = probe::containers(fleet, conn)?
        .into_iter()
        .filter(|c| c.running() && c.service == "rocketchat" && host.instances.iter().any(|i| i.name == c.unit))
        .map(|c| c.id)
        .collect();
    let per_instance = remote.block_on(async {
        let docker = conn.docker().await?;
        let mut largest: Option<u64> = None;
        for id in &instances {
            let options = StatsOptionsBuilder::default().stream(false).one_shot(true).build();
            let stats = docker.stats(id, Some(options)).next().await;
            if let Some(usage) = stats.and_then(|s| s.ok()).and_then(|s| s.memory_stats).and_then(|m| m.usage) {
                largest = Some(largest.unwrap_or(0).max(usage));
            }
        }
        Ok::<_, Error>(largest)
    })?;
    Ok(HostMemory {
        available_mib: available_kib / 1024,
        per_instance_mib: per_instance.map(|bytes| bytes.div_ceil(1024 * 1024)),
        at_once: (2 * u64::from(batch)).min(host.instances.len() as u64),
    })
}

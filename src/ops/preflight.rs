//! Preflight: before anything changes, every host is asked at once whether it can take its
//! part: Docker engine and Compose present, CPU architecture, free disk in the deploy
//! directory, and every port its units need free (or already held by this fleet's containers).
//! Any problem on any host stops the operation with the whole list and nothing changed.

use std::collections::BTreeSet;

use super::disk;
use super::hosts::{Hosts, CONCURRENCY};
use super::probe::{self, Container};
use super::report::Reporter;
use crate::error::{Error, Result};
use crate::fleet::{Fleet, Host, Role};
use crate::remote::{self, Argv, Bundle, ComposeCli, Connection, DOCKER_SOCKET};

/// Below this much free space in the deploy directory, images and data will not fit.
const MIN_FREE_MIB: u64 = 1024;

/// What preflight learnt about a host.
#[derive(Debug, Clone)]
pub struct HostFacts {
    pub docker_version: String,
    pub compose_version: String,
    pub architecture: String,
    pub free_mib: u64,
    /// An app host's warning that it lacks room for one more Rocket.Chat image.
    pub low_disk: Option<String>,
}

pub fn run(fleet: &Fleet, remote: &Hosts, report: &Reporter) -> Result<Vec<(String, HostFacts)>> {
    let hosts: Vec<(usize, &Host)> = fleet.hosts.iter().enumerate().collect();
    let results = remote::fan_out(&hosts, CONCURRENCY, |(_, h)| h.name.clone(), |(index, host)| {
        check_host(fleet, remote, *index, host)
    });
    let mut problems = Vec::new();
    let mut facts = Vec::new();
    for (name, result) in results {
        match result {
            Ok(Ok(host_facts)) => {
                report.step(
                    "preflight",
                    &name,
                    format!(
                        "Docker {}, Compose {}, {}, {} MiB free",
                        host_facts.docker_version, host_facts.compose_version, host_facts.architecture, host_facts.free_mib
                    ),
                );
                facts.push((name, host_facts));
            }
            Ok(Err(host_problems)) => problems.extend(host_problems.into_iter().map(|p| format!("{name}: {p}"))),
            Err(err) => problems.push(err.to_string()),
        }
    }
    if problems.is_empty() {
        for (_, host_facts) in &facts {
            if let Some(warning) = &host_facts.low_disk {
                report.warn(warning);
            }
        }
        Ok(facts)
    } else {
        Err(Error::failed(format!(
            "preflight found {} problem(s); nothing was changed on any host:\n  {}",
            problems.len(),
            problems.join("\n  ")
        )))
    }
}

/// What preflight asks a host in its one command (bundled with the Compose finder
/// [`remote::compose_argv`], and on app hosts `df` for Docker's images): the engine's version
/// (`docker version` waits on a wedged engine, so the command's time limit names it), the
/// Docker CLI, CPU architecture, free KiB for the deploy directory, the folders above it,
/// listening sockets. The Docker Engine API's answers (containers; on app hosts `/info` and
/// the image) follow in one batch.
const FACTS_SCRIPT: &str = r#"
echo "docker=$(docker version --format '{{.Server.Version}}' 2>/dev/null)"
echo "docker_cli=$(command -v docker)"
echo "arch=$(uname -m)"
d=$1; while [ ! -d "$d" ]; do d=$(dirname -- "$d"); done
echo "free_kib=$(df -Pk -- "$d" | awk 'NR==2 {print $4}')"
echo "uid=$(id -u)"
p=$d; while :; do echo "dir=$(stat -c '%a %u' -- "$p") $p"; [ "$p" = / ] && break; p=$(dirname -- "$p"); done
cat /proc/net/tcp /proc/net/tcp6 2>/dev/null
"#;

fn check_host(fleet: &Fleet, remote: &Hosts, index: usize, host: &Host) -> Result<std::result::Result<HostFacts, Vec<String>>> {
    let conn = remote.host(&host.name);
    let mut problems = Vec::new();
    let app_host = host.has_role(Role::Rocketchat);
    let mut bundle = Bundle::new().part(Argv::script(FACTS_SCRIPT, &[&fleet.workspace.deploy_dir])).part(remote::compose_argv());
    if app_host {
        bundle = bundle.part(disk::free_kib_argv());
    }
    let mut parts = bundle.split(&conn.run(&bundle.argv("preflight (Docker, Compose, disk, ports)"))?).into_iter();
    let mut next_part = |what: &str| match parts.next() {
        Some(Ok(part)) => Ok(part.stdout_text()),
        Some(Err(why)) => Err(conn.fail(format!("preflight's {what}: {why}"))),
        None => Err(conn.fail(format!("preflight's {what}: missing"))),
    };
    let output = next_part("facts")?;
    let compose = next_part("Compose")?;
    let fact = |key: &str| {
        output.lines().find_map(|line| line.strip_prefix(&format!("{key}="))).unwrap_or_default().trim().to_string()
    };
    let docker_version = fact("docker");
    if docker_version.is_empty() {
        problems.push(format!(
            "the Docker engine does not answer on {DOCKER_SOCKET}; start it (e.g. `systemctl start docker`) \
             and check that {} may use it",
            host.ssh.user.as_deref().unwrap_or("the SSH user")
        ));
        return Ok(Err(problems));
    }
    let mut requests = vec![probe::containers_request()];
    if app_host {
        requests.extend([disk::info_request(), disk::image_request(fleet)]);
    }
    let mut answers = conn.batch(&requests).into_iter();
    let mut next = || answers.next().expect("one answer per request");
    let containers = probe::containers_answered(fleet, conn, next())?;
    let low_disk = if app_host {
        let (info, image) = (next(), next());
        disk::warning_in(conn, info, image, &next_part("disk")?)?
    } else {
        None
    };
    if fact("docker_cli").is_empty() {
        problems.push("the `docker` command is not installed (rcfleet runs it over SSH); install the Docker CLI".to_string());
    }
    let compose_version = match remote::compose_in(&compose) {
        Some((cli, version)) => {
            let which = if cli == ComposeCli::V1 { "v1" } else { "v2" };
            // The run's Compose commands need not ask again.
            conn.knows_compose(cli);
            format!("{version} ({which})")
        }
        None => {
            problems.push("neither `docker compose` nor `docker-compose` works; install the Docker Compose plugin".to_string());
            String::new()
        }
    };
    let architecture = fact("arch");
    let free_mib = fact("free_kib").parse::<u64>().unwrap_or(0) / 1024;
    if free_mib < MIN_FREE_MIB {
        problems.push(format!(
            "only {free_mib} MiB free for {}; rcfleet needs at least {MIN_FREE_MIB} MiB there for images and data",
            fleet.workspace.deploy_dir
        ));
    }
    problems.extend(unsafe_folders(&fleet.workspace.deploy_dir, &fact("uid"), &output));
    problems.extend(busy_ports(fleet, conn, index, &containers, &parse_listening(&output))?);
    Ok(if problems.is_empty() {
        Ok(HostFacts { docker_version, compose_version, architecture, free_mib, low_disk })
    } else {
        Err(problems)
    })
}

/// Ports this host's units need that something other than this fleet's containers listens on.
fn busy_ports(fleet: &Fleet, conn: &Connection, index: usize, containers: &[Container], listening: &BTreeSet<u16>) -> Result<Vec<String>> {
    let ours = ports_held_by_fleet(fleet, conn, index, containers)?;
    Ok(fleet
        .listeners(index)
        .into_iter()
        .filter(|listener| listener.unit.is_some() && listening.contains(&listener.port) && !ours.contains(&listener.port))
        .map(|listener| {
            format!(
                "port {} is already in use by another program, but {} needs it; free the port or change {} in the inventory",
                listener.port, listener.what, listener.key
            )
        })
        .collect())
}

/// The ports this fleet's running containers hold on the host. An instance holds the ports in
/// its container's environment (they may differ from the inventory's when an instance moves);
/// other units hold the ports the inventory gives them.
fn ports_held_by_fleet(fleet: &Fleet, conn: &Connection, index: usize, containers: &[Container]) -> Result<BTreeSet<u16>> {
    let listeners = fleet.listeners(index);
    let running = containers.iter().filter(|c| c.running());
    let (instances, others): (Vec<&Container>, Vec<&Container>) =
        running.partition(|c| fleet.hosts[index].instances.iter().any(|i| i.name == c.unit));
    let mut held: BTreeSet<u16> = probe::instance_ports(conn, &instances)?.into_iter().collect();
    for container in others {
        held.extend(listeners.iter().filter(|l| l.unit.as_deref() == Some(&container.unit)).map(|l| l.port));
    }
    Ok(held)
}

/// The deploy directory (its nearest existing folder) and every folder above it must be owned by
/// root or the SSH user and writable by no one else: another local user who could write there
/// could swap the secrets and the compose files root runs (the inventory already refuses
/// /tmp and the like; this sees the server as it is). `dir=MODE UID PATH` lines, nearest first.
fn unsafe_folders(deploy_dir: &str, ssh_uid: &str, facts: &str) -> Vec<String> {
    facts
        .lines()
        .filter_map(|line| line.strip_prefix("dir="))
        .filter_map(|rest| {
            let mut words = rest.splitn(3, ' ');
            let (mode, uid, path) = (words.next()?, words.next()?, words.next()?);
            let mode = u32::from_str_radix(mode, 8).ok()?;
            let owner_ok = uid == "0" || uid == ssh_uid;
            let writable_by_others = mode & 0o022 != 0;
            (!owner_ok || writable_by_others).then(|| {
                let why = if writable_by_others {
                    format!("is writable by its group or all users (mode {:o})", mode & 0o7777)
                } else {
                    format!("belongs to uid {uid}, neither root nor the SSH user")
                };
                format!(
                    "{path} {why}, so another local user could replace what rcfleet keeps in {deploy_dir}; make it \
                     root's and not group- or world-writable (chown root; chmod go-w), or choose another deploy_dir"
                )
            })
        })
        .collect()
}

/// TCP ports in LISTEN state, from the lines of /proc/net/tcp{,6} (no `ss` needed).
fn parse_listening(proc_net_tcp: &str) -> BTreeSet<u16> {
    proc_net_tcp
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (local, state) = (fields.get(1)?, fields.get(3)?);
            if *state != "0A" {
                return None;
            }
            u16::from_str_radix(local.rsplit(':').next()?, 16).ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deploy_dir_parents_must_be_private() {
        let facts = "uid=1000\ndir=755 0 /opt/rcfleet\ndir=755 0 /opt\ndir=755 0 /\n";
        assert!(unsafe_folders("/opt/rcfleet/x", "1000", facts).is_empty());
        let facts = "dir=700 1000 /home/deploy/rc\ndir=1777 0 /srv/shared\ndir=775 1001 /srv\ndir=755 0 /\n";
        let problems = unsafe_folders("/srv/shared/rc", "1000", facts);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].starts_with("/srv/shared is writable by its group or all users (mode 1777)"), "{problems:?}");
        assert!(problems[1].starts_with("/srv is writable"), "{problems:?}");
        let problems = unsafe_folders("/srv/rc", "1000", "dir=755 1001 /srv/rc\n");
        assert!(problems[0].contains("belongs to uid 1001, neither root nor the SSH user"), "{problems:?}");
    }

    #[test]
    fn listening_ports_come_from_proc_net_tcp() {
        let sample = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1\n   1: 0100007F:0BB8 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 2\n";
        assert_eq!(parse_listening(sample), BTreeSet::from([8080]));
    }
}

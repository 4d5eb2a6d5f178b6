//! `logs`: the output of one instance or service, read through the host's Docker Engine API
//! (over the SSH tunnel), each line prefixed by the target's name. `--follow` streams until
//! Ctrl-C.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bollard::container::LogOutput;
use bollard::query_parameters::LogsOptionsBuilder;
use futures_util::StreamExt;

use super::probe;
use super::hosts::Hosts;
use super::report::Reporter;
use crate::error::{Error, Result};
use crate::fleet::{Fleet, Host};
use crate::inventory;
use crate::render::{self, UnitKind};
use crate::remote::ConnectOptions;

pub struct LogsOptions {
    pub connect: ConnectOptions,
    /// An instance name (`app1-0`) or a service of the other units (`mongodb`, `traefik`, ...).
    pub target: String,
    pub follow: bool,
    /// Only lines after this: a duration back from now (`10m`, `2h`) or an RFC 3339 time.
    pub since: Option<String>,
    /// Only this many lines from the end (`all` for every line).
    pub tail: Option<String>,
}

/// Where a target runs: host, unit and compose service.
pub(crate) fn locate<'f>(fleet: &'f Fleet, target: &str) -> Result<(&'f Host, String, String)> {
    if let Some(instance) = fleet.instances().find(|i| i.name == target) {
        let host = fleet.host(&instance.host).expect("instances belong to hosts");
        return Ok((host, instance.name.clone(), "rocketchat".to_string()));
    }
    // A microservice container by its unit name, e.g. `ddp-streamer-0`.
    let containers = crate::microservices::containers(fleet);
    if let Some(container) = containers.iter().find(|c| c.name == target) {
        let host = fleet.host(&container.host).expect("service containers belong to hosts");
        return Ok((host, container.name.clone(), UnitKind::Service.services()[0].to_string()));
    }
    let services: Vec<(UnitKind, &str)> = UnitKind::ALL
        .into_iter()
        .filter(|kind| !matches!(kind, UnitKind::Instance | UnitKind::Service))
        .flat_map(|kind| kind.services().iter().map(move |service| (kind, *service)))
        .collect();
    if let Some((kind, service)) = services.iter().find(|(_, service)| *service == target) {
        let Some(unit) = render::units(fleet).into_iter().find(|unit| unit.kind == *kind) else {
            return Err(Error::bad_input(format!("{service} does not run: no host has the \"{}\" role", kind.role().name())));
        };
        let host = fleet.host(&unit.host).expect("units belong to hosts");
        return Ok((host, unit.name, service.to_string()));
    }
    let instances: Vec<&str> = fleet.instances().map(|i| i.name.as_str()).collect();
    let mut services: Vec<&str> = services.iter().map(|(_, service)| *service).collect();
    services.extend(containers.iter().map(|c| c.name.as_str()));
    Err(Error::bad_input(format!(
        "{target:?} is neither an instance ({}) nor a service ({})",
        instances.join(", "),
        services.join(", ")
    )))
}

/// Seconds since the epoch of `--since`.
fn since_seconds(text: &str) -> Result<i32> {
    let now = SystemTime::now();
    let at = match humantime::parse_duration(text) {
        Ok(back) => now.checked_sub(back).unwrap_or(UNIX_EPOCH),
        Err(_) => humantime::parse_rfc3339_weak(text).map_err(|_| {
            Error::bad_input(format!(
                "--since {text:?}: give a duration back from now (e.g. 10m, 2h) or a time (e.g. 2026-01-31T08:00:00Z)"
            ))
        })?,
    };
    Ok(at.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_secs().min(i32::MAX as u64) as i32)
}

fn tail(text: Option<&str>) -> Result<String> {
    match text {
        None => Ok("all".to_string()),
        Some("all") => Ok("all".to_string()),
        Some(n) if n.parse::<u32>().is_ok() => Ok(n.to_string()),
        Some(other) => Err(Error::bad_input(format!("--tail {other:?}: give a number of lines, or `all`"))),
    }
}

/// Writes the target's log lines to `out`, each as `<target> | <line>`.
pub fn logs(inventory_path: &Path, options: &LogsOptions, out: &mut dyn Write) -> Result<()> {
    let fleet = inventory::load(inventory_path)?;
    let (host, unit, service) = locate(&fleet, &options.target)?;
    let since = options.since.as_deref().map(since_seconds).transpose()?;
    let tail = tail(options.tail.as_deref())?;
    let remote = Hosts::connect(&[host], &options.connect, &Reporter::quiet_log())?;
    let conn = remote.host(&host.name);
    let containers = probe::containers(&fleet, conn)?;
    let container = containers
        .iter()
        .filter(|c| c.unit == unit && c.service == service)
        .max_by_key(|c| (c.running(), c.created))
        .ok_or_else(|| {
            Error::failed(format!(
                "{}: {} has no container (is the fleet deployed? `rcfleet status` shows what runs)",
                host.name, options.target
            ))
        })?;
    let prefix = &options.target;
    remote.block_on(async {
        let docker = conn.docker().await?;
        let mut builder = LogsOptionsBuilder::default().follow(options.follow).stdout(true).stderr(true).tail(&tail);
        if let Some(since) = since {
            builder = builder.since(since);
        }
        // Listening once, before following: a Ctrl-C that arrives while a line is being written
        // is kept for the next wait instead of being lost between two waits.
        let mut interrupt = match options.follow {
            true => Some(
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
                    .map_err(|e| Error::failed(format!("cannot listen for Ctrl-C: {e}")))?,
            ),
            false => None,
        };
        let mut stream = std::pin::pin!(docker.logs(&container.id, Some(builder.build())));
        let mut pending: Vec<u8> = Vec::new();
        let write_failed = |e: std::io::Error| Error::failed(format!("cannot write the logs: {e}"));
        loop {
            let item = tokio::select! {
                item = stream.next() => item,
                _ = async { interrupt.as_mut().expect("listening").recv().await }, if interrupt.is_some() => None,
            };
            let Some(item) = item else { break };
            let chunk = match item {
                Ok(LogOutput::StdOut { message } | LogOutput::StdErr { message } | LogOutput::Console { message }) => message,
                Ok(LogOutput::StdIn { .. }) => continue,
                Err(e) => {
                    return Err(Error::failed(format!("{}: reading the logs of {} failed: {e}", host.name, options.target)))
                }
            };
            pending.extend_from_slice(&chunk);
            while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                let line = String::from_utf8_lossy(&line[..line.len() - 1]).trim_end_matches('\r').to_string();
                writeln!(out, "{prefix} | {line}").map_err(write_failed)?;
            }
            out.flush().map_err(write_failed)?;
        }
        if !pending.is_empty() {
            writeln!(out, "{prefix} | {}", String::from_utf8_lossy(&pending)).map_err(write_failed)?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_found_on_the_host_of_their_unit() {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/three-app-hosts.toml")).unwrap();
        let fleet = inventory::parse(&text, Path::new("three-app-hosts.toml")).unwrap();
        let found = |target| locate(&fleet, target).map(|(host, unit, service)| (host.name.clone(), unit, service));
        assert_eq!(found("mongodb-init").unwrap(), ("db".into(), "database".into(), "mongodb-init".into()));
        assert_eq!(found("grafana").unwrap(), ("mon".into(), "monitoring".into(), "grafana".into()));
        assert_eq!(found("traefik").unwrap(), ("edge".into(), "traefik".into(), "traefik".into()));
        assert_eq!(found("blackbox-exporter").unwrap(), ("mon".into(), "monitoring".into(), "blackbox-exporter".into()));
        assert_eq!(found("app2-1").unwrap(), ("app2".into(), "app2-1".into(), "rocketchat".into()));
        let unknown = found("rocketchat").unwrap_err().to_string();
        assert!(unknown.contains("neither an instance (app1-0,") && unknown.contains("nats, mongodb-probe, prometheus, grafana, blackbox-exporter, alertmanager, node-exporter, traefik)"), "{unknown}");

        let mut without_monitoring = fleet.clone();
        without_monitoring.hosts.retain(|h| h.name != "mon");
        let refused = locate(&without_monitoring, "prometheus").unwrap_err().to_string();
        assert_eq!(refused, "prometheus does not run: no host has the \"monitoring\" role");
    }

    #[test]
    fn since_takes_durations_and_times() {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i32;
        assert!((since_seconds("10m").unwrap() - (now - 600)).abs() <= 1);
        assert_eq!(since_seconds("2026-01-31T08:00:00Z").unwrap(), 1_769_846_400);
        assert!(since_seconds("yesterday").unwrap_err().to_string().contains("--since"));
    }

    #[test]
    fn tail_is_a_number_or_all() {
        assert_eq!(tail(None).unwrap(), "all");
        assert_eq!(tail(Some("20")).unwrap(), "20");
        assert!(tail(Some("-1")).is_err());
    }
}

//! `status`: what the fleet is doing, compared with what the inventory says. Every host is
//! asked at once; a host that cannot be reached is a finding, not a failure. Per instance:
//! container state, readiness, the version it reports, Traefik membership, Prometheus target
//! health. Per host: drift (containers missing or not rcfleet's, deployed files whose sha256
//! or mode differs from what `render` gives; secret files are compared by hash only). The
//! services: MongoDB's member state, NATS, Prometheus, Grafana, Traefik. Every problem is one
//! line naming its subject; no problem means healthy.

mod assemble;
mod observe;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;
use serde_json::Value;

use self::assemble::Observations;
use self::observe::Observed;
use super::hosts::CONCURRENCY;
use super::lock;
use super::report::Outcome;
use super::run::{Run, RunOptions, Secrets, WhenUnreachable};
use super::secrets;
use crate::error::Result;
use crate::fleet::Host;
use crate::remote::{self, ConnectOptions};
use crate::render::HostArtifacts;

/// The whole report; `--json` prints it as is (field names are a stable interface).
#[derive(Debug, Serialize)]
pub struct Status {
    pub workspace: String,
    pub release: String,
    pub url: String,
    pub healthy: bool,
    /// One line per problem, each starting with the instance, service or host it is about.
    pub problems: Vec<String>,
    pub hosts: Vec<HostStatus>,
    pub instances: Vec<InstanceStatus>,
    pub services: Vec<ServiceStatus>,
    /// Who holds the deploy lock, since when and how far its run got; `None` when free.
    pub lock: Option<String>,
    /// Rocket.Chat's microservice containers (`[microservices]`); empty when off.
    pub microservices: Vec<MicroserviceStatus>,
    /// When this look began (RFC 3339, UTC).
    pub observed_at: String,
    /// How long it took, in seconds (the first look of a run includes connecting).
    pub observe_seconds: f64,
}

#[derive(Debug, Serialize)]
pub struct MicroserviceStatus {
    /// The container's unit name, e.g. `ddp-streamer-0`.
    pub name: String,
    /// The Rocket.Chat service, e.g. `ddp-streamer`.
    pub service: String,
    pub host: String,
    pub url: String,
    /// Docker's state, `missing`, or `unknown` (host unreachable).
    pub container: String,
    pub container_id: Option<String>,
    pub image: Option<String>,
    /// The release its image is tagged with (the services report no version of their own).
    pub version: Option<String>,
    /// `ok` when `/health` answers 200, else what was seen.
    pub health: String,
    pub healthy: bool,
    /// `up`, `down`, `unknown`, `absent`, or `pending` (its targets file changed moments ago
    /// and Prometheus does not list it yet).
    pub prometheus: String,
}

#[derive(Debug, Serialize)]
pub struct HostStatus {
    pub name: String,
    pub address: String,
    pub roles: Vec<String>,
    pub reachable: bool,
    /// Why it could not be reached.
    pub error: Option<String>,
    /// Rendered files compared with the deployed ones.
    pub files_checked: usize,
    /// Deploy-dir relative paths whose content or mode differs.
    pub files_differing: Vec<String>,
    pub files_missing: Vec<String>,
    /// rcfleet containers of this workspace that the inventory does not describe here.
    pub unexpected_containers: Vec<String>,
    /// Instance directories left on the host that the inventory does not describe.
    pub unexpected_units: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct InstanceStatus {
    pub name: String,
    pub host: String,
    pub url: String,
    /// The HTTP and metrics ports it listens on now.
    pub port: u16,
    pub metrics_port: u16,
    /// `primary` or `spare`: which of its two port pairs (a start-first upgrade alternates them).
    pub slot: String,
    /// Docker's state (`running`, `exited`, ...), `missing`, or `unknown` (host unreachable).
    pub container: String,
    pub container_id: Option<String>,
    pub image: Option<String>,
    pub ready: bool,
    /// From `rocketchat_info{version=...}` on its metrics port.
    pub version: Option<String>,
    /// `UP`, `DOWN`, `absent`, or `unknown` (Traefik's API not reached).
    pub traefik: String,
    /// `up`, `down`, `unknown`, `absent`, or `pending` (its targets file changed moments ago
    /// and Prometheus does not list it yet).
    pub prometheus: String,
    pub problems: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct ServiceStatus {
    /// `mongodb`, `nats`, `prometheus`, `grafana`, `traefik`.
    pub name: String,
    pub host: String,
    pub container: String,
    pub container_id: Option<String>,
    /// What its health check said: `PRIMARY at ...`, `ok`, or what was seen.
    pub health: String,
    pub healthy: bool,
}

/// What `status` asks of a run: every host it can reach, the others reported; no lock, no log.
fn run_options(connect: &ConnectOptions) -> RunOptions<'_> {
    RunOptions {
        log_as: None,
        when_unreachable: WhenUnreachable::Report,
        // For comparing the files that hold them (by hash) and for logging in to MongoDB;
        // without them (database host unreachable, never brought up) secret files show as
        // differing.
        secrets: Secrets::IfReadable,
        ..RunOptions::new("status", connect)
    }
}

pub fn status(inventory_path: &Path, connect: &ConnectOptions) -> Result<Status> {
    let began = (SystemTime::now(), Instant::now());
    let run = Run::open(inventory_path, &run_options(connect))?;
    Ok(look(&run, began)?.0)
}

/// `status --watch`: a look every `every` (from the start of one to the start of the next, or
/// at once when a look took longer), until `count` looks were taken or Ctrl-C. The looks share
/// the first one's SSH connections: only a host not reached, or whose look failed, is connected
/// again; the inventory and the ports and secrets the hosts record are read again each time.
/// `show` is handed each look and says whether to go on; the last look is returned.
pub fn watch(
    inventory_path: &Path,
    connect: &ConnectOptions,
    every: Duration,
    count: Option<u32>,
    show: &mut dyn FnMut(&Status) -> bool,
) -> Result<Status> {
    let options = run_options(connect);
    let mut began = (SystemTime::now(), Instant::now());
    let mut run = Run::open(inventory_path, &options)?;
    let mut looked = 0;
    loop {
        let (status, failed) = look(&run, began)?;
        looked += 1;
        if !show(&status) || count.is_some_and(|count| looked >= count) {
            return Ok(status);
        }
        std::thread::sleep(every.saturating_sub(began.1.elapsed()));
        began = (SystemTime::now(), Instant::now());
        run.refresh(inventory_path, &options, &failed)?;
    }
}

/// One look at every host of the run, begun at `began`; with the hosts whose look failed.
fn look(run: &Run, began: (SystemTime, Instant)) -> Result<(Status, Vec<String>)> {
    let (fleet, remote) = (&run.fleet, &run.hosts);
    let unreachable: BTreeMap<String, String> = run.unreachable.iter().cloned().collect();
    let login = secrets::mongo_admin(fleet, &run.secrets)?;

    let work: Vec<(&Host, &HostArtifacts)> = fleet.hosts.iter().zip(&run.artifacts).collect();
    let results = remote::fan_out(&work, CONCURRENCY, |(h, _)| h.name.clone(), |(host, files)| {
        match remote.try_host(&host.name) {
            Some(conn) => Ok(Some(observe::observe(fleet, conn, host, &files.files, login.as_ref()))),
            None => Ok(None),
        }
    });
    let observed: BTreeMap<String, Option<Observed>> =
        results.into_iter().map(|(name, result)| (name, result.unwrap_or(None))).collect();
    let failed = observed.iter().filter(|(_, seen)| seen.as_ref().is_some_and(|s| s.error.is_some())).map(|(name, _)| name.clone()).collect();
    let mut status = assemble::assemble(fleet, &Observations { observed: &observed, unreachable: &unreachable });
    if let Some(db) = remote.try_host(&fleet.database_host().name) {
        match lock::read(fleet, db) {
            // A run that died half-way (killed, machine lost) left work to finish: say which
            // command finishes it.
            Ok(Some(holder)) => {
                if holder.run_is_gone() {
                    status.problems.push(format!("deploy lock: {}", holder.unfinished()));
                    status.healthy = false;
                }
                status.lock = Some(holder.describe());
            }
            Ok(None) => {}
            Err(err) => {
                status.problems.push(format!("deploy lock: cannot read it: {err}"));
                status.healthy = false;
            }
        }
    }
    status.observed_at = humantime::format_rfc3339_seconds(began.0).to_string();
    status.observe_seconds = (began.1.elapsed().as_secs_f64() * 1000.0).round() / 1000.0;
    Ok((status, failed))
}

impl Outcome for Status {
    fn to_json(&self) -> Value {
        serde_json::to_value(self).expect("status serialises")
    }

    fn to_text(&self) -> String {
        let verdict = if self.healthy { "healthy".to_string() } else { format!("{} problem(s)", self.problems.len()) };
        let mut out = format!("Workspace {} ({}), release {}: {verdict}\n\n", self.workspace, self.url, self.release);
        out.push_str(&format!("{:<8}  {:<16}  {:<20}  {:<9}  {}\n", "HOST", "ADDRESS", "ROLES", "REACHABLE", "FILES"));
        for host in &self.hosts {
            let files = if !host.reachable {
                "-".to_string()
            } else if host.files_differing.is_empty() && host.files_missing.is_empty() {
                format!("{} match", host.files_checked)
            } else {
                format!("{} differ, {} missing", host.files_differing.len(), host.files_missing.len())
            };
            let reachable = if host.reachable { "yes" } else { "NO" };
            out.push_str(&format!("{:<8}  {:<16}  {:<20}  {reachable:<9}  {files}\n", host.name, host.address, host.roles.join(",")));
        }
        out.push_str(&format!(
            "\n{:<10}  {:<8}  {:<10}  {:<10}  {:<5}  {:<10}  {:<7}  {}\n",
            "INSTANCE", "HOST", "PORTS", "CONTAINER", "READY", "VERSION", "TRAEFIK", "PROMETHEUS"
        ));
        for i in &self.instances {
            let ready = if i.ready { "yes" } else { "no" };
            let version = i.version.as_deref().unwrap_or("-");
            let ports = format!("{}/{}", i.port, i.metrics_port);
            out.push_str(&format!(
                "{:<10}  {:<8}  {ports:<10}  {:<10}  {ready:<5}  {version:<10}  {:<7}  {}\n",
                i.name, i.host, i.container, i.traefik, i.prometheus
            ));
        }
        out.push_str(&format!("\n{:<17}  {:<8}  {:<10}  {}\n", "SERVICE", "HOST", "CONTAINER", "HEALTH"));
        for s in &self.services {
            out.push_str(&format!("{:<17}  {:<8}  {:<10}  {}\n", s.name, s.host, s.container, s.health));
        }
        if !self.microservices.is_empty() {
            out.push_str(&format!(
                "\n{:<26}  {:<8}  {:<10}  {:<10}  {:<10}  {}\n",
                "MICROSERVICE", "HOST", "CONTAINER", "VERSION", "PROMETHEUS", "HEALTH"
            ));
            for m in &self.microservices {
                let version = m.version.as_deref().unwrap_or("-");
                out.push_str(&format!(
                    "{:<26}  {:<8}  {:<10}  {version:<10}  {:<10}  {}\n",
                    m.name, m.host, m.container, m.prometheus, m.health
                ));
            }
        }
        if let Some(lock) = &self.lock {
            out.push_str(&format!("\nDeploy lock: held by {lock}\n"));
        }
        if !self.problems.is_empty() {
            out.push_str("\nProblems:\n");
            for problem in &self.problems {
                out.push_str(&format!("  {problem}\n"));
            }
        }
        out
    }
}

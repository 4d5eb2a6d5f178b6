//! `status`: what the fleet is doing, compared with what the inventory says. Every host is
//! asked at once; a host that cannot be reached is a finding, not a failure. Per instance:
//! container state, readiness, the version it reports, Traefik membership, Prometheus target
//! health. Per host: drift (containers missing or not rcfleet's, deployed files whose sha256
//! or mode differs from what `render` gives; secret files are compared by hash only). The
//! services: MongoDB's member state, NATS, Prometheus, Grafana, Traefik. Every problem is one
//! line naming its subject; no problem means healthy.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::Serialize;
use serde_json::Value;

use super::converge::long_running;
use super::probe::{self, Container};
use super::report::Outcome;
use super::secrets;
use super::wait::Poll;
use super::hosts::{Hosts, CONCURRENCY};
use super::lock;
use crate::error::Result;
use crate::fleet::{Fleet, Host, Role};
use crate::inventory;
use crate::remote::{self, ConnectOptions, Connection};
use crate::render::{self, Artifact, HostArtifacts, UnitKind, INSTANCES_DIR};

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
    /// `up`, `down`, `unknown`, or `absent`.
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
    /// `up`, `down`, `unknown`, or `absent`.
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

pub fn status(inventory_path: &Path, connect: &ConnectOptions) -> Result<Status> {
    let fleet = inventory::load(inventory_path)?;
    render::render(&fleet, &secrets::Store::preview())?;
    let hosts: Vec<&Host> = fleet.hosts.iter().collect();
    let (remote, unreachable) = Hosts::connect_reachable(&hosts, connect)?;
    // Each instance on the ports its host records (a start-first upgrade alternates them).
    let fleet = super::slots::current(&fleet, &remote)?;
    let unreachable: BTreeMap<String, String> = unreachable.into_iter().collect();
    // The generated secrets, for comparing the files that hold them (by hash) and for logging
    // in to MongoDB; without them (database host unreachable, never brought up) secret files
    // show as differing.
    let store = match remote.try_host(&fleet.database_host().name) {
        Some(db) => secrets::Store::read(&fleet, db).ok().flatten(),
        None => None,
    }
    .unwrap_or_else(secrets::Store::preview);
    let artifacts = render::render(&fleet, &store)?;
    let login = secrets::mongo_admin(&fleet, &store)?;

    let work: Vec<(&Host, &HostArtifacts)> = fleet.hosts.iter().zip(&artifacts).collect();
    let results = remote::fan_out(&work, CONCURRENCY, |(h, _)| h.name.clone(), |(host, files)| {
        match remote.try_host(&host.name) {
            Some(conn) => Ok(Some(observe(&fleet, &remote, conn, host, &files.files, login.as_ref()))),
            None => Ok(None),
        }
    });
    let observed: BTreeMap<String, Option<Observed>> =
        results.into_iter().map(|(name, result)| (name, result.unwrap_or(None))).collect();
    let mut status = assemble(&fleet, &observed, &unreachable);
    if let Some(db) = remote.try_host(&fleet.database_host().name) {
        if let Some(holder) = lock::read(&fleet, db)? {
            // A run that died half-way (killed, machine lost) left work to finish: say which
            // command finishes it.
            if holder.run_is_gone() {
                status.problems.push(format!("deploy lock: {}", holder.unfinished()));
                status.healthy = false;
            }
            status.lock = Some(holder.describe());
        }
    }
    Ok(status)
}

/// What one reachable host showed.
#[derive(Default)]
struct Observed {
    error: Option<String>,
    containers: Vec<Container>,
    files_checked: usize,
    files_differing: Vec<String>,
    files_missing: Vec<String>,
    unit_dirs: Vec<String>,
    /// Instance name -> (ready or what was seen, version).
    instances: BTreeMap<String, (Poll<()>, Option<String>)>,
    /// Service name -> health.
    health: BTreeMap<String, Poll<String>>,
    /// Microservice container name -> its `/health`.
    microservices: BTreeMap<String, Poll<()>>,
    /// Prometheus' view of the microservices' targets (on the monitoring host).
    service_targets: Option<Poll<BTreeMap<String, String>>>,
    traefik_servers: Option<Poll<BTreeMap<String, String>>>,
    prometheus_targets: Option<Poll<BTreeMap<String, String>>>,
}

fn observe(
    fleet: &Fleet,
    remote: &Hosts,
    conn: &Connection,
    host: &Host,
    files: &[Artifact],
    login: Option<&secrets::MongoLogin>,
) -> Observed {
    let mut seen = Observed::default();
    let mut fail = |what: &str, err: crate::error::Error| {
        let text = format!("{what}: {}", err);
        seen_error(&mut seen.error, text);
    };
    match probe::containers(remote, fleet, conn) {
        Ok(containers) => seen.containers = containers,
        Err(err) => fail("containers", err),
    }
    let deploy_dir = render::deploy_dir(fleet);
    let paths: Vec<String> = files.iter().map(|f| format!("{deploy_dir}/{}", f.path)).collect();
    match conn.file_states(&paths) {
        Ok(states) => {
            seen.files_checked = files.len();
            for (file, state) in files.iter().zip(states) {
                match state {
                    None => seen.files_missing.push(file.path.clone()),
                    Some(state) if !state.holds(file.content.as_bytes(), file.mode) => seen.files_differing.push(file.path.clone()),
                    Some(_) => {}
                }
            }
        }
        Err(err) => fail("files", err),
    }
    match probe::directories(conn, &format!("{deploy_dir}/{INSTANCES_DIR}")) {
        Ok(dirs) => seen.unit_dirs = dirs,
        Err(err) => fail("files", err),
    }
    for instance in &host.instances {
        let ready = probe::instance_ready_steady(remote, fleet, instance).unwrap_or_else(|err| Err(err.to_string()));
        let version = probe::instance_version(remote, instance).unwrap_or(None);
        seen.instances.insert(instance.name.clone(), (ready, version));
    }
    for container in crate::microservices::containers(fleet).iter().filter(|c| c.host == host.name) {
        seen.microservices.insert(container.name.clone(), super::services::health(remote, conn, container));
    }
    let private = &host.private_address;
    if host.has_role(Role::Database) {
        let mongo = match probe::running(&seen.containers, &render::database_unit(fleet).name, "mongodb") {
            Some(mongodb) => match probe::mongo_primary(conn, fleet, &mongodb.id, login) {
                Ok(Ok(primary)) => Ok(format!("PRIMARY at {primary}")),
                Ok(Err(seen)) => Err(seen),
                Err(err) => Err(err.to_string()),
            },
            None => Err("not running".to_string()),
        };
        seen.health.insert("mongodb".into(), mongo);
        let nats = probe::http_ok(remote, conn, private, fleet.nats.monitor_port, "/healthz").map(|()| "ok".to_string());
        seen.health.insert("nats".into(), nats);
    }
    if host.has_role(Role::Monitoring) {
        let ready = probe::http_ok(remote, conn, private, fleet.monitoring.prometheus_port, "/-/ready");
        seen.health.insert("prometheus".into(), ready.map(|()| "ok".to_string()));
        let grafana = probe::http_ok(remote, conn, private, fleet.monitoring.grafana_port, "/api/health");
        seen.health.insert("grafana".into(), grafana.map(|()| "ok".to_string()));
        seen.prometheus_targets = Some(probe::prometheus_targets(remote, fleet).unwrap_or_else(|err| Err(err.to_string())));
        if fleet.microservices.enabled {
            let targets = probe::prometheus_job_targets(remote, fleet, "rocketchat-services");
            seen.service_targets = Some(targets.unwrap_or_else(|err| Err(err.to_string())));
        }
    }
    if host.has_role(Role::Traefik) {
        let ping = probe::http_ok(remote, conn, "127.0.0.1", fleet.traefik.api_port, "/ping");
        seen.health.insert("traefik".into(), ping.map(|()| "ok".to_string()));
        seen.traefik_servers = Some(probe::traefik_servers(remote, fleet).unwrap_or_else(|err| Err(err.to_string())));
    }
    seen
}

fn seen_error(slot: &mut Option<String>, text: String) {
    match slot {
        Some(existing) => existing.push_str(&format!("; {text}")),
        None => *slot = Some(text),
    }
}

fn short(id: &str) -> String {
    id.chars().take(12).collect()
}

fn assemble(fleet: &Fleet, observed: &BTreeMap<String, Option<Observed>>, unreachable: &BTreeMap<String, String>) -> Status {
    let mut problems = Vec::new();
    let seen = |host: &str| observed.get(host).and_then(Option::as_ref);
    let traefik_host = &fleet.traefik_host().name;
    let traefik: Option<&Poll<BTreeMap<String, String>>> = seen(traefik_host).and_then(|o| o.traefik_servers.as_ref());
    let prometheus = fleet.monitoring_host().and_then(|h| seen(&h.name)).and_then(|o| o.prometheus_targets.as_ref());

    let mut hosts = Vec::new();
    for host in &fleet.hosts {
        let mut status = HostStatus {
            name: host.name.clone(),
            address: host.address.clone(),
            roles: host.roles.iter().map(|r| r.name().to_string()).collect(),
            reachable: seen(&host.name).is_some(),
            error: unreachable.get(&host.name).cloned(),
            files_checked: 0,
            files_differing: Vec::new(),
            files_missing: Vec::new(),
            unexpected_containers: Vec::new(),
            unexpected_units: Vec::new(),
        };
        match seen(&host.name) {
            None => problems.push(format!("{}: unreachable: {}", host.name, status.error.clone().unwrap_or_default())),
            Some(o) => {
                if let Some(error) = &o.error {
                    problems.push(format!("{}: could not look at everything: {error}", host.name));
                    status.error = Some(error.clone());
                }
                status.files_checked = o.files_checked;
                status.files_differing = o.files_differing.clone();
                status.files_missing = o.files_missing.clone();
                for path in &o.files_differing {
                    problems.push(format!("{}: {path} differs from what the inventory renders (run `rcfleet up`)", host.name));
                }
                for path in &o.files_missing {
                    problems.push(format!("{}: {path} is missing (run `rcfleet up`)", host.name));
                }
                let units = render::host_units(fleet, host);
                for container in &o.containers {
                    let expected = units.iter().any(|u| u.name == container.unit && u.services().contains(&container.service.as_str()));
                    if !expected {
                        let what = format!("{}/{} ({}, {})", container.unit, container.service, short(&container.id), container.state);
                        problems.push(format!("{}: unexpected container {what}: the inventory has no such unit here", host.name));
                        status.unexpected_containers.push(what);
                    }
                }
                for dir in &o.unit_dirs {
                    let expected = format!("{INSTANCES_DIR}/{dir}");
                    if !host.instances.iter().any(|i| render::instance_unit(fleet, i).dir == expected) {
                        problems.push(format!("{}: unexpected instance directory {INSTANCES_DIR}/{dir}", host.name));
                        status.unexpected_units.push(format!("{INSTANCES_DIR}/{dir}"));
                    }
                }
            }
        }
        hosts.push(status);
    }

    let expected_image = fleet.images.rocketchat.to_string();
    let release = fleet.workspace.release.to_string();
    let mut instances = Vec::new();
    for instance in fleet.instances() {
        let o = seen(&instance.host);
        let container = o.and_then(|o| o.containers.iter().find(|c| c.unit == instance.name && c.service == "rocketchat"));
        let (ready, version) = o.and_then(|o| o.instances.get(&instance.name)).cloned().unwrap_or((Err("host unreachable".into()), None));
        let mut own = Vec::new();
        let state = match (o, container) {
            (None, _) => "unknown".to_string(),
            (Some(_), None) => {
                own.push("no container (run `rcfleet up`)".to_string());
                "missing".to_string()
            }
            (Some(_), Some(c)) => {
                if !c.running() {
                    own.push(format!("container {} is {}", short(&c.id), c.state));
                }
                if c.image != expected_image {
                    own.push(format!("runs image {}, the inventory says {expected_image}", c.image));
                }
                c.state.clone()
            }
        };
        if o.is_some() {
            if let Err(why) = &ready {
                own.push(format!("not ready ({why})"));
            }
            if let Some(version) = &version {
                if version != &release {
                    own.push(format!("reports version {version}, the inventory says {release}"));
                }
            }
        }
        let traefik_state = match traefik {
            Some(Ok(servers)) => servers.get(&instance.url()).cloned().unwrap_or_else(|| "absent".into()),
            _ => "unknown".into(),
        };
        if traefik_state != "UP" && traefik_state != "unknown" {
            own.push(format!("{traefik_state} in Traefik"));
        }
        let prometheus_state = match prometheus {
            Some(Ok(targets)) => targets.get(&instance.metrics_target()).cloned().unwrap_or_else(|| "absent".into()),
            _ if fleet.monitoring_host().is_none() => "absent".into(),
            _ => "unknown".into(),
        };
        if fleet.monitoring_host().is_some() && prometheus_state != "up" && prometheus_state != "unknown" {
            own.push(format!("Prometheus target {}", prometheus_state));
        }
        problems.extend(own.iter().map(|p| format!("{}: {p}", instance.name)));
        instances.push(InstanceStatus {
            name: instance.name.clone(),
            host: instance.host.clone(),
            url: instance.url(),
            port: instance.port,
            metrics_port: instance.metrics_port,
            slot: instance.slot.name().to_string(),
            container: state,
            container_id: container.map(|c| short(&c.id)),
            image: container.map(|c| c.image.clone()),
            ready: ready.is_ok(),
            version,
            traefik: traefik_state,
            prometheus: prometheus_state,
            problems: own,
        });
    }
    match traefik {
        Some(Ok(servers)) => {
            let known: BTreeSet<String> = fleet.instances().map(|i| i.url()).collect();
            for url in servers.keys().filter(|u| !known.contains(*u)) {
                problems.push(format!("traefik: sends requests to {url}, which is no instance of the inventory"));
            }
        }
        Some(Err(why)) => problems.push(format!("traefik: its API did not answer: {why}")),
        None => {}
    }
    match prometheus {
        Some(Ok(targets)) => {
            let known: BTreeSet<String> = fleet.instances().map(|i| i.metrics_target()).collect();
            for target in targets.keys().filter(|t| !known.contains(*t)) {
                problems.push(format!("prometheus: scrapes {target}, which is no instance of the inventory"));
            }
        }
        Some(Err(why)) => problems.push(format!("prometheus: its API did not answer: {why}")),
        None => {}
    }

    let mut services = Vec::new();
    for unit in render::units(fleet).into_iter().filter(|u| !matches!(u.kind, UnitKind::Instance | UnitKind::Service)) {
        let o = seen(&unit.host);
        for service in long_running(&unit) {
            let container = o.and_then(|o| o.containers.iter().find(|c| c.unit == unit.name && c.service == service));
            let health = o.and_then(|o| o.health.get(service)).cloned();
            let (container_state, health, healthy) = match (o, container, health) {
                (None, _, _) => ("unknown".to_string(), "host unreachable".to_string(), false),
                (Some(_), None, _) => ("missing".to_string(), "no container".to_string(), false),
                (Some(_), Some(c), Some(Ok(said))) => (c.state.clone(), said, c.running()),
                (Some(_), Some(c), Some(Err(seen))) => (c.state.clone(), seen, false),
                (Some(_), Some(c), None) => (c.state.clone(), "-".to_string(), c.running()),
            };
            if !healthy && o.is_some() {
                problems.push(format!("{service}: {} on {}, {health}", container_state, unit.host));
            }
            services.push(ServiceStatus {
                name: service.to_string(),
                host: unit.host.clone(),
                container: container_state,
                container_id: container.map(|c| short(&c.id)),
                health,
                healthy,
            });
        }
    }

    let service_targets =
        fleet.monitoring_host().and_then(|h| seen(&h.name)).and_then(|o| o.service_targets.as_ref());
    let microservices = microservices(fleet, &seen, service_targets, &release, &mut problems);

    Status {
        workspace: fleet.workspace.name.clone(),
        release,
        url: fleet.workspace.root_url.clone(),
        healthy: problems.is_empty(),
        problems,
        hosts,
        instances,
        services,
        lock: None,
        microservices,
    }
}

/// One line per microservice container: its container, image tag, `/health`, Prometheus target.
fn microservices<'o>(
    fleet: &Fleet,
    seen: &dyn Fn(&str) -> Option<&'o Observed>,
    targets: Option<&Poll<BTreeMap<String, String>>>,
    release: &str,
    problems: &mut Vec<String>,
) -> Vec<MicroserviceStatus> {
    let mut list = Vec::new();
    for wanted in crate::microservices::containers(fleet) {
        let o = seen(&wanted.host);
        let container = o.and_then(|o| o.containers.iter().find(|c| c.unit == wanted.name));
        let health = o.and_then(|o| o.microservices.get(&wanted.name)).cloned().unwrap_or(Err("host unreachable".into()));
        let mut own = Vec::new();
        let state = match (o, container) {
            (None, _) => "unknown".to_string(),
            (Some(_), None) => {
                own.push("no container (run `rcfleet up`)".to_string());
                "missing".to_string()
            }
            (Some(_), Some(c)) => {
                if !c.running() {
                    own.push(format!("container {} is {}", short(&c.id), c.state));
                }
                c.state.clone()
            }
        };
        let version = container.and_then(|c| c.image.rsplit_once(':')).map(|(_, tag)| tag.to_string());
        if o.is_some() {
            if let Err(why) = &health {
                own.push(format!("not healthy ({why})"));
            }
            if let Some(version) = version.as_deref().filter(|v| *v != release) {
                own.push(format!("runs {version}, the inventory says {release}"));
            }
        }
        let prometheus = match targets {
            Some(Ok(targets)) => targets.get(&wanted.metrics_target()).cloned().unwrap_or_else(|| "absent".into()),
            _ if fleet.monitoring_host().is_none() => "absent".into(),
            _ => "unknown".into(),
        };
        if fleet.monitoring_host().is_some() && prometheus != "up" && prometheus != "unknown" {
            own.push(format!("Prometheus target {prometheus}"));
        }
        problems.extend(own.iter().map(|p| format!("{}: {p}", wanted.name)));
        list.push(MicroserviceStatus {
            name: wanted.name.clone(),
            service: wanted.service.name().to_string(),
            host: wanted.host.clone(),
            url: wanted.url(),
            container: state,
            container_id: container.map(|c| short(&c.id)),
            image: container.map(|c| c.image.clone()),
            version,
            health: match &health {
                Ok(()) => "ok".to_string(),
                Err(why) => why.clone(),
            },
            healthy: health.is_ok() && container.is_some_and(|c| c.running()),
            prometheus,
        });
    }
    list
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
        out.push_str(&format!("\n{:<10}  {:<8}  {:<10}  {}\n", "SERVICE", "HOST", "CONTAINER", "HEALTH"));
        for s in &self.services {
            out.push_str(&format!("{:<10}  {:<8}  {:<10}  {}\n", s.name, s.host, s.container, s.health));
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

//! The report from what the hosts showed: pure functions of the fleet and the observations,
//! one per part of the report (hosts, instances, what Traefik and Prometheus know beyond the
//! inventory, services, microservices), each adding its problems to one list.

use std::collections::{BTreeMap, BTreeSet};

use super::observe::Observed;
use super::{HostStatus, InstanceStatus, MicroserviceStatus, ServiceStatus, Status};
use crate::fleet::{Fleet, Host, Instance};
use crate::ops::converge::long_running;
use crate::ops::probe::Container;
use crate::ops::wait::Poll;
use crate::render::{self, UnitKind, INSTANCES_DIR};

/// A view from Traefik (server URL -> state) or Prometheus (target -> health).
type View = Poll<BTreeMap<String, String>>;

/// How long after its targets file changed Prometheus' list may still lag it (two 5 s ticks,
/// with room to spare): an instance it does not list yet is `pending`, an old address it still
/// lists is no problem.
const PROMETHEUS_CATCH_UP_SECONDS: u64 = 20;

/// What every host showed, by host name (`None`: not reached).
pub(super) struct Observations<'o> {
    pub observed: &'o BTreeMap<String, Option<Observed>>,
    /// Why each host that could not be reached could not.
    pub unreachable: &'o BTreeMap<String, String>,
}

impl<'o> Observations<'o> {
    fn of(&self, host: &str) -> Option<&'o Observed> {
        self.observed.get(host).and_then(Option::as_ref)
    }

    fn traefik(&self, fleet: &Fleet) -> Option<&'o View> {
        self.of(&fleet.traefik_host().name).and_then(|o| o.traefik_servers.as_ref())
    }

    fn prometheus(&self, fleet: &Fleet) -> Option<&'o View> {
        fleet.monitoring_host().and_then(|h| self.of(&h.name)).and_then(|o| o.prometheus_targets.as_ref())
    }

    /// Whether Prometheus' targets file changed so recently that Prometheus may not list the
    /// change yet: its discovery manager passes changes on every 5 s (`updatert`,
    /// discovery/manager.go) and its scrape manager reloads every 5 s (scrape/manager.go).
    fn prometheus_catching_up(&self, fleet: &Fleet) -> bool {
        let age = fleet.monitoring_host().and_then(|h| self.of(&h.name)).and_then(|o| o.targets_file_age);
        age.is_some_and(|age| age < PROMETHEUS_CATCH_UP_SECONDS)
    }

    fn service_targets(&self, fleet: &Fleet) -> Option<&'o View> {
        fleet.monitoring_host().and_then(|h| self.of(&h.name)).and_then(|o| o.service_targets.as_ref())
    }
}

pub(super) fn assemble(fleet: &Fleet, seen: &Observations) -> Status {
    let mut problems = Vec::new();
    let hosts = fleet.hosts.iter().map(|host| host_status(fleet, host, seen, &mut problems)).collect();
    let (traefik, prometheus) = (seen.traefik(fleet), seen.prometheus(fleet));
    let catching_up = seen.prometheus_catching_up(fleet);
    let instances = fleet
        .instances()
        .map(|i| instance_status(fleet, i, seen.of(&i.host), traefik, (prometheus, catching_up), &mut problems))
        .collect();
    problems.extend(strays(fleet, traefik, prometheus, catching_up));
    let services = services(fleet, seen, &mut problems);
    let microservices = microservices(fleet, seen, &mut problems);
    Status {
        workspace: fleet.workspace.name.clone(),
        release: fleet.workspace.release.to_string(),
        url: fleet.workspace.root_url.clone(),
        healthy: problems.is_empty(),
        problems,
        hosts,
        instances,
        services,
        lock: None,
        microservices,
        // Filled in by the look that assembled this.
        observed_at: String::new(),
        observe_seconds: 0.0,
    }
}

fn short(id: &str) -> String {
    id.chars().take(12).collect()
}

/// A host's line: reached or not, files that drifted, containers and instance directories the
/// inventory does not describe there.
fn host_status(fleet: &Fleet, host: &Host, seen: &Observations, problems: &mut Vec<String>) -> HostStatus {
    let mut status = HostStatus {
        name: host.name.clone(),
        address: host.address.clone(),
        roles: host.roles.iter().map(|r| r.name().to_string()).collect(),
        reachable: seen.of(&host.name).is_some(),
        error: seen.unreachable.get(&host.name).cloned(),
        files_checked: 0,
        files_differing: Vec::new(),
        files_missing: Vec::new(),
        unexpected_containers: Vec::new(),
        unexpected_units: Vec::new(),
    };
    let Some(o) = seen.of(&host.name) else {
        problems.push(format!("{}: unreachable: {}", host.name, status.error.clone().unwrap_or_default()));
        return status;
    };
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
        // A start-first upgrade moves an instance to a unit directory of its own (its spare ports).
        let expected = format!("{INSTANCES_DIR}/{dir}");
        if !host.instances.iter().any(|i| render::instance_unit(fleet, i).dir == expected) {
            let other_slot = host.instances.iter().find(|i| render::instance_unit(fleet, &i.on_slot(i.slot.other())).dir == expected);
            let why = match other_slot {
                Some(i) => format!(
                    " ({}'s other ports, left by an interrupted start-first upgrade; the next `rcfleet upgrade` or \
                     `rcfleet up` removes it)",
                    i.name
                ),
                None => String::new(),
            };
            problems.push(format!("{}: unexpected instance directory {INSTANCES_DIR}/{dir}{why}", host.name));
            status.unexpected_units.push(format!("{INSTANCES_DIR}/{dir}"));
        }
    }
    status
}

/// An instance's line: its container, readiness and version on its host (`o`, `None` when
/// the host was not reached), and what Traefik and Prometheus make of it.
fn instance_status(
    fleet: &Fleet,
    instance: &Instance,
    o: Option<&Observed>,
    traefik: Option<&View>,
    (prometheus, catching_up): (Option<&View>, bool),
    problems: &mut Vec<String>,
) -> InstanceStatus {
    let expected_image = fleet.images.rocketchat.to_string();
    let release = fleet.workspace.release.to_string();
    // The container on the instance's recorded ports: an interrupted start-first upgrade may
    // have left a second one with its name on the other pair.
    let project = render::instance_unit(fleet, instance).project;
    let container = o.and_then(|o| {
        let named: Vec<&Container> = o.containers.iter().filter(|c| c.unit == instance.name && c.service == "rocketchat").collect();
        named.iter().find(|c| c.project == project).or(named.first()).copied()
    });
    let (ready, version) = o.and_then(|o| o.instances.get(&instance.name)).cloned().unwrap_or((Err("host unreachable".into()), None));
    let mut own = Vec::new();
    let state = container_state(o.is_some(), container, &mut own);
    if let Some(c) = container.filter(|c| c.image != expected_image) {
        own.push(format!("runs image {}, the inventory says {expected_image}", c.image));
    }
    if o.is_some() {
        if let Err(why) = &ready {
            own.push(format!("not ready ({why})"));
        }
        if let Some(version) = version.as_ref().filter(|v| **v != release) {
            own.push(format!("reports version {version}, the inventory says {release}"));
        }
    }
    let traefik_state = match traefik {
        Some(Ok(servers)) => servers.get(&instance.url()).cloned().unwrap_or_else(|| "absent".into()),
        _ => "unknown".into(),
    };
    if traefik_state != "UP" && traefik_state != "unknown" {
        own.push(format!("{traefik_state} in Traefik"));
    }
    let mut prometheus_state = target_health(fleet, prometheus, &instance.metrics_target());
    if prometheus_state == "absent" && catching_up {
        prometheus_state = "pending".into();
    }
    if fleet.monitoring_host().is_some() && !matches!(prometheus_state.as_str(), "up" | "unknown" | "pending") {
        own.push(format!("Prometheus target {prometheus_state}"));
    }
    problems.extend(own.iter().map(|p| format!("{}: {p}", instance.name)));
    InstanceStatus {
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
    }
}

/// A unit's container as shown: Docker's state, `unknown` when its host was not reached,
/// `missing` when there is none; what is wrong with it goes to `own`.
fn container_state(reached: bool, container: Option<&Container>, own: &mut Vec<String>) -> String {
    match (reached, container) {
        (false, _) => "unknown".to_string(),
        (true, None) => {
            own.push("no container (run `rcfleet up`)".to_string());
            "missing".to_string()
        }
        (true, Some(c)) => {
            if !c.running() {
                own.push(format!("container {} is {}", short(&c.id), c.state));
            }
            c.state.clone()
        }
    }
}

/// A target's health in Prometheus' view: `absent` when it is not there (or nothing monitors
/// the fleet), `unknown` when Prometheus was not asked or did not answer.
fn target_health(fleet: &Fleet, prometheus: Option<&View>, target: &str) -> String {
    match prometheus {
        Some(Ok(targets)) => targets.get(target).cloned().unwrap_or_else(|| "absent".into()),
        _ if fleet.monitoring_host().is_none() => "absent".into(),
        _ => "unknown".into(),
    }
}

/// Servers Traefik sends requests to and targets Prometheus scrapes that are no instance of
/// the inventory (unless Prometheus is still catching up with its targets file), and whether
/// their APIs answered at all.
fn strays(fleet: &Fleet, traefik: Option<&View>, prometheus: Option<&View>, catching_up: bool) -> Vec<String> {
    let mut problems = Vec::new();
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
        Some(Ok(_)) if catching_up => {}
        Some(Ok(targets)) => {
            let known: BTreeSet<String> = fleet.instances().map(|i| i.metrics_target()).collect();
            for target in targets.keys().filter(|t| !known.contains(*t)) {
                problems.push(format!("prometheus: scrapes {target}, which is no instance of the inventory"));
            }
        }
        Some(Err(why)) => problems.push(format!("prometheus: its API did not answer: {why}")),
        None => {}
    }
    problems
}

/// One line per long-running service container of the fleet's own units (MongoDB, NATS,
/// Prometheus, Grafana, Traefik): its container and what its health check said.
fn services(fleet: &Fleet, seen: &Observations, problems: &mut Vec<String>) -> Vec<ServiceStatus> {
    let mut services = Vec::new();
    for unit in render::units(fleet).into_iter().filter(|u| !matches!(u.kind, UnitKind::Instance | UnitKind::Service)) {
        let o = seen.of(&unit.host);
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
    services
}

/// One line per microservice container: its container, image tag, `/health`, Prometheus target.
fn microservices(fleet: &Fleet, seen: &Observations, problems: &mut Vec<String>) -> Vec<MicroserviceStatus> {
    let release = fleet.workspace.release.to_string();
    let targets = seen.service_targets(fleet);
    let mut list = Vec::new();
    for wanted in crate::microservices::containers(fleet) {
        let o = seen.of(&wanted.host);
        let container = o.and_then(|o| o.containers.iter().find(|c| c.unit == wanted.name));
        let health = o.and_then(|o| o.microservices.get(&wanted.name)).cloned().unwrap_or(Err("host unreachable".into()));
        let mut own = Vec::new();
        let state = container_state(o.is_some(), container, &mut own);
        let version = container.and_then(|c| c.image.rsplit_once(':')).map(|(_, tag)| tag.to_string());
        if o.is_some() {
            if let Err(why) = &health {
                own.push(format!("not healthy ({why})"));
            }
            if let Some(version) = version.as_deref().filter(|v| *v != release) {
                own.push(format!("runs {version}, the inventory says {release}"));
            }
        }
        let prometheus = target_health(fleet, targets, &wanted.metrics_target());
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

#[cfg(test)]
mod tests {
    use super::*;

    fn fleet() -> Fleet {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/three-app-hosts.toml")).unwrap();
        crate::inventory::parse(&text, std::path::Path::new("three-app-hosts.toml")).unwrap()
    }

    fn container(unit: &str, service: &str, image: &str, state: &str) -> Container {
        let id = format!("{unit}-{service}-0123456789abcdef");
        Container { id, unit: unit.into(), project: String::new(), service: service.into(), image: image.into(), state: state.into(), created: 0 }
    }

    /// What a fleet deployed and serving as the inventory says shows.
    fn healthy(fleet: &Fleet) -> BTreeMap<String, Option<Observed>> {
        let mut observed: BTreeMap<String, Option<Observed>> =
            fleet.hosts.iter().map(|h| (h.name.clone(), Some(Observed { files_checked: 3, ..Observed::default() }))).collect();
        let release = fleet.workspace.release.to_string();
        for instance in fleet.instances() {
            let o = observed_on(&mut observed, &instance.host);
            o.containers.push(container(&instance.name, "rocketchat", &fleet.images.rocketchat.to_string(), "running"));
            o.instances.insert(instance.name.clone(), (Ok(()), Some(release.clone())));
            o.unit_dirs.push(instance.name.clone());
        }
        for unit in render::units(fleet).into_iter().filter(|u| !matches!(u.kind, UnitKind::Instance | UnitKind::Service)) {
            for service in long_running(&unit) {
                let o = observed_on(&mut observed, &unit.host);
                o.containers.push(container(&unit.name, service, "image:1", "running"));
                o.health.insert(service.to_string(), Ok("ok".to_string()));
            }
        }
        let servers = fleet.instances().map(|i| (i.url(), "UP".to_string())).collect();
        observed_on(&mut observed, &fleet.traefik_host().name).traefik_servers = Some(Ok(servers));
        let targets = fleet.instances().map(|i| (i.metrics_target(), "up".to_string())).collect();
        observed_on(&mut observed, &fleet.monitoring_host().unwrap().name).prometheus_targets = Some(Ok(targets));
        observed
    }

    fn report(fleet: &Fleet, observed: &BTreeMap<String, Option<Observed>>, unreachable: &[(&str, &str)]) -> Status {
        let unreachable = unreachable.iter().map(|(h, why)| (h.to_string(), why.to_string())).collect();
        assemble(fleet, &Observations { observed, unreachable: &unreachable })
    }

    fn observed_on<'o>(observed: &'o mut BTreeMap<String, Option<Observed>>, host: &str) -> &'o mut Observed {
        observed.get_mut(host).unwrap().as_mut().unwrap()
    }

    #[test]
    fn a_fleet_as_the_inventory_says_is_healthy() {
        let fleet = fleet();
        let status = report(&fleet, &healthy(&fleet), &[]);
        assert_eq!(status.problems, Vec::<String>::new());
        assert!(status.healthy);
        assert_eq!(status.instances.len(), 6);
        assert!(status.instances.iter().all(|i| i.ready && i.traefik == "UP" && i.prometheus == "up" && i.container == "running"));
        assert!(status.services.iter().all(|s| s.healthy), "{:?}", status.services);
    }

    #[test]
    fn a_moved_target_is_pending_while_prometheus_catches_up_with_its_file_and_absent_after() {
        let fleet = fleet();
        let mut observed = healthy(&fleet);
        let moved = fleet.instances().next().unwrap().clone();
        let monitoring = fleet.monitoring_host().unwrap().name.clone();
        let on_monitoring = observed_on(&mut observed, &monitoring);
        let Some(Ok(targets)) = on_monitoring.prometheus_targets.as_mut() else { unreachable!() };
        targets.remove(&moved.metrics_target());
        targets.insert("10.9.9.9:9999".into(), "down".into());
        on_monitoring.targets_file_age = Some(3);
        let status = report(&fleet, &observed, &[]);
        assert_eq!(status.problems, Vec::<String>::new(), "the old address and the new one wait for Prometheus' next look");
        assert_eq!(status.instances.iter().find(|i| i.name == moved.name).unwrap().prometheus, "pending");
        observed_on(&mut observed, &monitoring).targets_file_age = Some(PROMETHEUS_CATCH_UP_SECONDS);
        let status = report(&fleet, &observed, &[]);
        assert_eq!(
            status.problems,
            [
                format!("{}: Prometheus target absent", moved.name),
                "prometheus: scrapes 10.9.9.9:9999, which is no instance of the inventory".to_string()
            ]
        );
    }

    #[test]
    fn an_unreachable_host_makes_its_instances_unknown_and_only_it_a_problem() {
        let fleet = fleet();
        let mut observed = healthy(&fleet);
        observed.insert("app2".into(), None);
        let status = report(&fleet, &observed, &[("app2", "cannot connect")]);
        assert_eq!(status.problems, ["app2: unreachable: cannot connect"]);
        let app2: Vec<&InstanceStatus> = status.instances.iter().filter(|i| i.host == "app2").collect();
        assert!(app2.iter().all(|i| i.container == "unknown" && !i.ready), "{app2:?}");
        let host = status.hosts.iter().find(|h| h.name == "app2").unwrap();
        assert_eq!((host.reachable, host.error.as_deref()), (false, Some("cannot connect")));
    }

    #[test]
    fn a_stopped_instance_is_named_in_every_problem_it_causes() {
        let fleet = fleet();
        let mut observed = healthy(&fleet);
        let app1 = observed_on(&mut observed, "app1");
        app1.containers[0].state = "exited".into();
        app1.instances.insert("app1-0".into(), (Err("nothing answers on 10.0.0.31:3000".into()), None));
        let traefik = fleet.traefik_host().name.clone();
        let url = fleet.instances().next().unwrap().url();
        if let Some(Ok(servers)) = &mut observed_on(&mut observed, &traefik).traefik_servers {
            servers.insert(url, "DOWN".into());
        }
        let status = report(&fleet, &observed, &[]);
        assert_eq!(
            status.problems,
            [
                "app1-0: container app1-0-rocke is exited",
                "app1-0: not ready (nothing answers on 10.0.0.31:3000)",
                "app1-0: DOWN in Traefik",
            ]
        );
        assert!(!status.healthy);
    }

    #[test]
    fn drift_and_strays_are_problems_of_the_host_or_the_service() {
        let fleet = fleet();
        let mut observed = healthy(&fleet);
        let app3 = observed_on(&mut observed, "app3");
        app3.files_differing.push("rocketchat/app3-0/compose.yml".into());
        app3.files_missing.push("rocketchat/app3-1/.env".into());
        app3.containers.push(container("app3-7", "rocketchat", "x", "created"));
        app3.unit_dirs.push("app3-9".into());
        let traefik = fleet.traefik_host().name.clone();
        if let Some(Ok(servers)) = &mut observed_on(&mut observed, &traefik).traefik_servers {
            servers.insert("http://10.9.9.9:3000".into(), "UP".into());
        }
        let monitoring = fleet.monitoring_host().unwrap().name.clone();
        observed_on(&mut observed, &monitoring).prometheus_targets = Some(Err("Prometheus' API does not answer yet".into()));
        let status = report(&fleet, &observed, &[]);
        let app3_problems: Vec<&String> = status.problems.iter().filter(|p| p.starts_with("app3:")).collect();
        assert_eq!(
            app3_problems,
            [
                "app3: rocketchat/app3-0/compose.yml differs from what the inventory renders (run `rcfleet up`)",
                "app3: rocketchat/app3-1/.env is missing (run `rcfleet up`)",
                "app3: unexpected container app3-7/rocketchat (app3-7-rocke, created): the inventory has no such unit here",
                "app3: unexpected instance directory rocketchat/app3-9",
            ]
        );
        assert!(status.problems.contains(&"traefik: sends requests to http://10.9.9.9:3000, which is no instance of the inventory".to_string()));
        assert!(status.problems.contains(&"prometheus: its API did not answer: Prometheus' API does not answer yet".to_string()));
        assert!(status.instances.iter().all(|i| i.prometheus == "unknown"), "an unanswered Prometheus knows nothing");
        assert_eq!(status.hosts.iter().find(|h| h.name == "app3").unwrap().unexpected_units, ["rocketchat/app3-9"]);
    }

    #[test]
    fn a_service_without_its_container_or_health_is_a_problem() {
        let fleet = fleet();
        let mut observed = healthy(&fleet);
        let db = fleet.database_host().name.clone();
        let o = observed_on(&mut observed, &db);
        o.health.insert("mongodb".into(), Err("no PRIMARY yet (\"db:27017\" SECONDARY)".into()));
        o.containers.retain(|c| c.service != "nats");
        let status = report(&fleet, &observed, &[]);
        assert_eq!(
            status.problems,
            ["mongodb: running on db, no PRIMARY yet (\"db:27017\" SECONDARY)", "nats: missing on db, no container"]
        );
    }

    #[test]
    fn what_an_interrupted_start_first_upgrade_left_is_named_and_not_taken_for_the_instance() {
        let fleet = fleet();
        let mut observed = healthy(&fleet);
        let image = fleet.images.rocketchat.to_string();
        let app1 = observed_on(&mut observed, "app1");
        // The instance's own container (its recorded, primary ports) comes second in Docker's list.
        let own = app1.containers.iter().position(|c| c.unit == "app1-0").unwrap();
        app1.containers[own].project = fleet.project_name("app1-0");
        let mut leftover = container("app1-0", "rocketchat", "registry/rocket.chat:0.0.1", "running");
        leftover.id = "leftover-0123456789".into();
        leftover.project = fleet.project_name("app1-0-b");
        app1.containers.insert(0, leftover);
        app1.unit_dirs.push("app1-0-b".into());
        let status = report(&fleet, &observed, &[]);
        let app1_problems: Vec<&String> = status.problems.iter().filter(|p| p.starts_with("app1")).collect();
        assert_eq!(
            app1_problems,
            [
                "app1: unexpected instance directory rocketchat/app1-0-b (app1-0's other ports, left by an interrupted \
                 start-first upgrade; the next `rcfleet upgrade` or `rcfleet up` removes it)"
            ]
        );
        let app1_0 = status.instances.iter().find(|i| i.name == "app1-0").unwrap();
        assert_eq!(app1_0.image.as_deref(), Some(image.as_str()));
    }
}

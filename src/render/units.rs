//! Compose units: one compose project per unit, each in its own directory under the deploy
//! dir. The operations code finds projects, directories and compose files here, so every
//! name is defined once.

use super::layout::{INSTANCES_DIR, SERVICES_DIR};
use crate::fleet::{Fleet, Host, Image, Instance, Role, Slot};
use crate::microservices::{self, ServiceContainer};

/// What a unit runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum UnitKind {
    /// MongoDB, its replica-set initiation, NATS.
    Database,
    /// Prometheus, Grafana and the blackbox exporter (which probes NATS for Prometheus).
    Monitoring,
    /// Alertmanager, on the monitoring host when `[monitoring.alertmanager]` is given.
    Alertmanager,
    /// The node exporter, on every host.
    NodeExporter,
    /// The load balancer.
    Traefik,
    /// One Rocket.Chat instance.
    Instance,
    /// One container of a Rocket.Chat microservice (`[microservices]`), e.g. `ddp-streamer-0`.
    Service,
}

impl UnitKind {
    /// Every kind, in start order.
    pub const ALL: [UnitKind; 7] = [
        UnitKind::Database,
        UnitKind::Monitoring,
        UnitKind::Alertmanager,
        UnitKind::NodeExporter,
        UnitKind::Traefik,
        UnitKind::Instance,
        UnitKind::Service,
    ];

    /// The compose service names in a unit of this kind, in start order.
    pub fn services(self) -> &'static [&'static str] {
        match self {
            UnitKind::Database => &["mongodb-keyfile", "mongodb", "mongodb-init", "nats", "mongodb-probe"],
            UnitKind::Monitoring => &["prometheus", "grafana", "blackbox-exporter"],
            UnitKind::Alertmanager => &["alertmanager"],
            UnitKind::NodeExporter => &["node-exporter"],
            UnitKind::Traefik => &["traefik"],
            UnitKind::Instance => &["rocketchat"],
            UnitKind::Service => &["service"],
        }
    }

    /// The role of the hosts that run units of this kind.
    pub fn role(self) -> Role {
        match self {
            UnitKind::Database => Role::Database,
            UnitKind::Monitoring | UnitKind::Alertmanager => Role::Monitoring,
            // Every host runs one; the database host always exists.
            UnitKind::NodeExporter => Role::Database,
            UnitKind::Traefik => Role::Traefik,
            UnitKind::Instance | UnitKind::Service => Role::Rocketchat,
        }
    }
}

/// One compose project on one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unit {
    pub kind: UnitKind,
    /// `database`, `monitoring`, `traefik`, or the instance name (`app1-0`).
    pub name: String,
    pub host: String,
    /// The compose project name, `fleet.project_name(name)`, e.g. `chat-app1-0`.
    pub project: String,
    /// Relative to [`deploy_dir`], e.g. `rocketchat/app1-0`.
    pub dir: String,
}

impl Unit {
    /// The compose file, relative to [`deploy_dir`].
    pub fn compose_file(&self) -> String {
        format!("{}/compose.yml", self.dir)
    }

    /// The compose service names in this unit, in start order.
    pub fn services(&self) -> &'static [&'static str] {
        self.kind.services()
    }

    /// The images this unit's host needs for it.
    pub fn images(&self, fleet: &Fleet) -> Vec<Image> {
        let images = &fleet.images;
        match self.kind {
            // The Database Tools image too, so an upgrade's backup never waits for a pull.
            UnitKind::Database => vec![images.mongodb.clone(), images.nats.clone(), images.mongodb_tools.clone()],
            UnitKind::Monitoring => vec![images.prometheus.clone(), images.grafana.clone(), images.blackbox_exporter.clone()],
            UnitKind::Alertmanager => vec![images.alertmanager.clone()],
            UnitKind::NodeExporter => vec![images.node_exporter.clone()],
            UnitKind::Traefik => vec![images.traefik.clone()],
            UnitKind::Instance => vec![images.rocketchat.clone()],
            UnitKind::Service => self
                .service_container(fleet)
                .map(|c| fleet.microservices.image(c.service, &fleet.workspace.release))
                .into_iter()
                .collect(),
        }
    }

    /// The service container this unit runs, for [`UnitKind::Service`] units.
    pub fn service_container(&self, fleet: &Fleet) -> Option<ServiceContainer> {
        if self.kind != UnitKind::Service {
            return None;
        }
        microservices::containers(fleet).into_iter().find(|c| c.name == self.name)
    }
}

/// Services that run once and exit (0 when done), never expected to keep running:
/// `mongodb-keyfile` (writes MongoDB's key file) and `mongodb-init` (initiates the replica set).
pub fn one_shot(service: &str) -> bool {
    matches!(service, "mongodb-keyfile" | "mongodb-init")
}

/// The absolute directory on every host that holds the workspace's units, e.g. `/opt/rcfleet/chat`.
pub fn deploy_dir(fleet: &Fleet) -> String {
    format!("{}/{}", fleet.workspace.deploy_dir.trim_end_matches('/'), fleet.workspace.name)
}

fn unit(fleet: &Fleet, kind: UnitKind, name: &str, host: &str, dir: String) -> Unit {
    Unit { kind, name: name.to_string(), host: host.to_string(), project: fleet.project_name(name), dir }
}

pub fn database_unit(fleet: &Fleet) -> Unit {
    unit(fleet, UnitKind::Database, "database", &fleet.database_host().name, "database".into())
}

pub fn monitoring_unit(fleet: &Fleet) -> Option<Unit> {
    let host = fleet.monitoring_host()?;
    Some(unit(fleet, UnitKind::Monitoring, "monitoring", &host.name, "monitoring".into()))
}

/// Alertmanager's unit, when the inventory has `[monitoring.alertmanager]` and a monitoring host.
pub fn alertmanager_unit(fleet: &Fleet) -> Option<Unit> {
    fleet.monitoring.alertmanager.as_ref()?;
    let host = fleet.monitoring_host()?;
    Some(unit(fleet, UnitKind::Alertmanager, "alertmanager", &host.name, "alertmanager".into()))
}

/// The node exporter's unit on `host` (every host has one).
pub fn node_exporter_unit(fleet: &Fleet, host: &Host) -> Unit {
    unit(fleet, UnitKind::NodeExporter, "node-exporter", &host.name, NODE_EXPORTER_DIR.into())
}

/// The node exporter's folder on every host; its `textfile/` holds metrics other units write
/// for it (the database host's MongoDB probe).
pub const NODE_EXPORTER_DIR: &str = "node-exporter";

pub fn traefik_unit(fleet: &Fleet) -> Unit {
    unit(fleet, UnitKind::Traefik, "traefik", &fleet.traefik_host().name, "traefik".into())
}

/// The unit of an instance on its current slot. On the spare slot it is a compose project of
/// its own (`<instance>-b`, in its own folder), so that both can run side by side during a
/// start-first upgrade; the unit (and the container's `io.rcfleet.unit` label) keeps the
/// instance's name.
pub fn instance_unit(fleet: &Fleet, instance: &Instance) -> Unit {
    let folder = match instance.slot {
        Slot::Primary => instance.name.clone(),
        Slot::Spare => format!("{}-b", instance.name),
    };
    Unit {
        kind: UnitKind::Instance,
        name: instance.name.clone(),
        host: instance.host.clone(),
        project: fleet.project_name(&folder),
        dir: format!("{INSTANCES_DIR}/{folder}"),
    }
}

pub fn service_unit(fleet: &Fleet, container: &ServiceContainer) -> Unit {
    unit(fleet, UnitKind::Service, &container.name, &container.host, format!("{SERVICES_DIR}/{}", container.name))
}

/// The units on `host`: database, monitoring, alertmanager, traefik (those it has), the node
/// exporter, its instances, then its service containers.
pub fn host_units(fleet: &Fleet, host: &Host) -> Vec<Unit> {
    let mut units = Vec::new();
    if host.has_role(Role::Database) {
        units.push(unit(fleet, UnitKind::Database, "database", &host.name, "database".into()));
    }
    if host.has_role(Role::Monitoring) {
        units.push(unit(fleet, UnitKind::Monitoring, "monitoring", &host.name, "monitoring".into()));
        units.extend(alertmanager_unit(fleet));
    }
    if host.has_role(Role::Traefik) {
        units.push(unit(fleet, UnitKind::Traefik, "traefik", &host.name, "traefik".into()));
    }
    units.push(node_exporter_unit(fleet, host));
    units.extend(host.instances.iter().map(|instance| instance_unit(fleet, instance)));
    let services = microservices::containers(fleet);
    units.extend(services.iter().filter(|c| c.host == host.name).map(|c| service_unit(fleet, c)));
    units
}

/// Every unit of the fleet, host by host in inventory order.
pub fn units(fleet: &Fleet) -> Vec<Unit> {
    fleet.hosts.iter().flat_map(|host| host_units(fleet, host)).collect()
}

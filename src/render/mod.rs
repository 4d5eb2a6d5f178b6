//! Rendering: the desired state of a fleet (`&Fleet`) turned into the files each host needs,
//! from the templates under `compose/`, `traefik/` and `prometheus/`. Pure: no host is
//! contacted, secrets come from a [`SecretSource`], and the same input gives the same bytes.
//!
//! Layout on every host, relative to [`deploy_dir`] (e.g. `/opt/rcfleet/chat`): one directory
//! per compose unit (see [`units`]): `database/`, `monitoring/`, `traefik/`,
//! `rocketchat/<instance>/`, `services/<service>-<n>/`.

mod alertmanager;
mod database;
mod envfile;
pub mod helm;
mod layout;
mod monitoring;
mod node_exporter;
mod rocketchat;
mod scalar;
mod secrets;
mod services;
mod templates;
mod traefik;
mod units;

use std::collections::BTreeSet;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::fleet::{Fleet, Host};

pub use alertmanager::ALERTMANAGER_CONFIG_PATH;
pub use layout::{audit_log, backups_dir, lock_file, secrets_file, INSTANCES_DIR, SERVICES_DIR};
pub use monitoring::{
    grafana_root_url, prometheus_service_targets, prometheus_targets, PROMETHEUS_SERVICE_TARGETS_PATH, PROMETHEUS_TARGETS_PATH,
};
pub use secrets::{credential, Generated, Redacted, SecretSource};
pub use traefik::{ddp_streamers, traefik_dynamic, TRAEFIK_DYNAMIC_PATH};
pub use units::{
    alertmanager_unit, database_unit, deploy_dir, host_units, instance_unit, monitoring_unit, node_exporter_unit, one_shot,
    service_unit, traefik_unit, units, Unit, UnitKind,
};

/// Mode of files without secrets.
pub const PUBLIC_MODE: u32 = 0o644;
/// Mode of files holding secrets.
pub const SECRET_MODE: u32 = 0o600;

/// One file to write on a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    /// Relative to the workspace deploy dir, e.g. `database/compose.yml`.
    pub path: String,
    pub content: String,
    /// [`PUBLIC_MODE`], or [`SECRET_MODE`] for files with secrets.
    pub mode: u32,
    /// Holds a secret: never print it, never show its content in a diff.
    pub secret: bool,
}

impl Artifact {
    pub fn public(path: impl Into<String>, content: String) -> Artifact {
        Artifact { path: path.into(), content, mode: PUBLIC_MODE, secret: false }
    }

    fn secret(path: impl Into<String>, content: String) -> Artifact {
        Artifact { path: path.into(), content, mode: SECRET_MODE, secret: true }
    }
}

/// Every file one host needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostArtifacts {
    pub host: String,
    /// Sorted by path.
    pub files: Vec<Artifact>,
}

/// Renders every host's files, hosts in inventory order. Problems with values (a secret an env
/// file cannot carry, a reserved variable in `[rocketchat.env]`, ...) are all reported
/// together as [`Error::BadInput`].
pub fn render(fleet: &Fleet, secrets: &dyn SecretSource) -> Result<Vec<HostArtifacts>> {
    let mut problems = Problems::default();
    let instance_env = problems.take(rocketchat::instance_env(fleet, secrets));
    let service_env =
        if fleet.microservices.enabled { problems.take(services::service_env(fleet, secrets)) } else { None };
    let env = EnvFiles { instance: instance_env.as_deref(), service: service_env.as_deref() };
    let mut hosts = Vec::new();
    for host in &fleet.hosts {
        let files = render_host(fleet, host, secrets, &env, &mut problems)?;
        hosts.push(HostArtifacts { host: host.name.clone(), files });
    }
    problems.finish()?;
    Ok(hosts)
}

/// The files of one instance's unit on its current slot, with `instance_env` (the same for
/// every instance, as [`render`] made it) as its `instance.env`.
pub fn instance_files(fleet: &Fleet, instance: &crate::fleet::Instance, instance_env: &str) -> Result<Vec<Artifact>> {
    let host = fleet.host(&instance.host).ok_or_else(|| Error::failed(format!("no host {} in the fleet (a bug in rcfleet)", instance.host)))?;
    rocketchat::render(fleet, host, instance, &instance_unit(fleet, instance), Some(instance_env))
}

/// The env files shared by every unit of a kind (`None`: their problems are already reported).
struct EnvFiles<'a> {
    instance: Option<&'a str>,
    service: Option<&'a str>,
}

fn render_host(
    fleet: &Fleet,
    host: &Host,
    secrets: &dyn SecretSource,
    env: &EnvFiles,
    problems: &mut Problems,
) -> Result<Vec<Artifact>> {
    let mut files = Vec::new();
    for unit in host_units(fleet, host) {
        let rendered = match unit.kind {
            UnitKind::Database => database::render(fleet, host, &unit, secrets),
            UnitKind::Monitoring => monitoring::render(fleet, host, &unit, secrets),
            UnitKind::Alertmanager => alertmanager::render(fleet, host, &unit, secrets),
            UnitKind::NodeExporter => node_exporter::render(fleet, host, &unit),
            UnitKind::Traefik => traefik::render(fleet, host, &unit),
            UnitKind::Instance => {
                let instance = host.instances.iter().find(|i| i.name == unit.name).expect("unit from this host");
                rocketchat::render(fleet, host, instance, &unit, env.instance)
            }
            UnitKind::Service => {
                let container = unit.service_container(fleet).expect("unit from this fleet's containers");
                services::render(fleet, &container, &unit, env.service)
            }
        };
        files.extend(problems.take(rendered).unwrap_or_default());
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    if let Some(pair) = files.windows(2).find(|pair| pair[0].path == pair[1].path) {
        return Err(Error::failed(format!("two rendered files share the path {} (a bug in rcfleet)", pair[0].path)));
    }
    Ok(files)
}

/// Bad-input problems collected across units, each reported once.
#[derive(Default)]
struct Problems {
    seen: BTreeSet<String>,
    list: Vec<String>,
    failure: Option<Error>,
}

impl Problems {
    /// The value, or `None` after recording why not.
    fn take<T>(&mut self, result: Result<T>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(Error::BadInput(problems)) => {
                for problem in problems {
                    if self.seen.insert(problem.clone()) {
                        self.list.push(problem);
                    }
                }
                None
            }
            Err(failure) => {
                self.failure.get_or_insert(failure);
                None
            }
        }
    }

    fn finish(self) -> Result<()> {
        match (self.failure, self.list.is_empty()) {
            (Some(failure), _) => Err(failure),
            (None, false) => Err(Error::BadInput(self.list)),
            (None, true) => Ok(()),
        }
    }
}

/// A `name: value` pair for templates (labels, environment), kept in the order given.
#[derive(Debug, Clone, Serialize)]
struct Pair {
    name: String,
    value: String,
}

fn pair(name: impl Into<String>, value: impl Into<String>) -> Pair {
    Pair { name: name.into(), value: value.into() }
}

/// The labels every service of `unit` carries.
fn labels(fleet: &Fleet, unit: &Unit) -> Vec<Pair> {
    let mut labels = vec![
        pair("io.rcfleet.fleet", &fleet.workspace.name),
        pair("io.rcfleet.host", &unit.host),
        pair("io.rcfleet.unit", &unit.name),
    ];
    if unit.kind == UnitKind::Instance {
        labels.push(pair("io.rcfleet.instance", &unit.name));
    }
    labels
}

/// SHA-256 over files (path and content), as a `io.rcfleet.config-digest` label: a change in
/// a mounted configuration file changes the service definition, so `compose up` recreates
/// exactly the containers whose configuration changed. Never given secret files.
fn digest(files: &[&Artifact]) -> String {
    let mut hasher = Sha256::new();
    for file in files {
        debug_assert!(!file.secret, "secrets never go into a digest label");
        hasher.update(file.path.as_bytes());
        hasher.update([0]);
        hasher.update(file.content.as_bytes());
        hasher.update([0]);
    }
    format!("sha256:{:x}", hasher.finalize())
}

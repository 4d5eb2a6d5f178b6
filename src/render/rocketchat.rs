//! One unit per Rocket.Chat instance: its compose file (plain settings, quoted) and its
//! `instance.env` (0600: MONGO_URL and TRANSPORTER with their credentials, the licence, secret
//! extra env), so that upgrading one instance never recreates another.

use serde_json::json;

use super::envfile::{self, Entry, Origin};
use super::secrets::{credential, Generated};
use super::{labels, pair, templates, Artifact, Pair, SecretSource, Unit};
use crate::error::{Error, Result};
use crate::fleet::{EnvValue, Fleet, Host, Instance, SecretRef, Slot};

/// Variables rcfleet sets for every instance; `[rocketchat.env]` may not set them too
/// (Compose would silently let one win).
const RESERVED: &[&str] = &[
    "ROOT_URL",
    "PORT",
    "BIND_IP",
    "TRANSPORTER",
    "INSTANCE_IP",
    "OVERWRITE_SETTING_Prometheus_Enabled",
    "OVERWRITE_SETTING_Prometheus_Port",
    "PROMETHEUS_PORT",
    "DEPLOY_METHOD",
    "DEPLOY_PLATFORM",
    "MONGO_URL",
    "ROCKETCHAT_LICENSE",
];

pub fn render(
    fleet: &Fleet,
    host: &Host,
    instance: &Instance,
    unit: &Unit,
    instance_env: Option<&str>,
) -> Result<Vec<Artifact>> {
    let environment = environment(fleet, host, instance)?;
    let compose = templates::render(
        "rocketchat",
        &json!({
            "image": fleet.images.rocketchat.to_string(),
            "hostname": hostname(fleet, instance),
            "environment": environment,
            "labels": labels(fleet, unit),
        }),
    )?;
    let mut files = vec![Artifact::public(unit.compose_file(), compose)];
    // `None`: the env file's problems are already reported, once for all instances.
    if let Some(env) = instance_env {
        files.push(Artifact::secret(format!("{}/instance.env", unit.dir), env.to_string()));
    }
    Ok(files)
}

/// In microservices mode, the instance's own host name: the monolith then joins the services'
/// moleculer broker, whose default node ID is host name + PID (Rocket.Chat sets no `nodeID`,
/// `network-broker/src/moleculer.ts`). Under host networking every container of a host shares
/// the host's name and runs node as PID 1, so two instances of one host would both be
/// `<host>-1` and moleculer stops on the node-ID conflict. Docker gives a host-networked
/// container its own UTS namespace, so `hostname:` works with `network_mode: host` (checked on
/// the lab's Docker 20.10). A start-first upgrade runs the instance's new container on the
/// spare ports beside the old one, both on the bus: the spare one gets a name of its own, else
/// the old one, still in Traefik, would stop on the conflict. Not set in monolith mode, where
/// containers stay as they were.
fn hostname(fleet: &Fleet, instance: &Instance) -> Option<String> {
    fleet.microservices.enabled.then(|| match instance.slot {
        Slot::Primary => instance.name.clone(),
        Slot::Spare => format!("{}-{}", instance.name, Slot::Spare.name()),
    })
}

/// The moleculer settings every node of the bus shares in microservices mode (Rocket.Chat's
/// Helm chart values: log level warn, heartbeats 10/30 s; reference A.3).
pub fn moleculer_environment() -> Vec<Pair> {
    vec![pair("MOLECULER_LOG_LEVEL", "warn"), pair("HEARTBEAT_INTERVAL", "10"), pair("HEARTBEAT_TIMEOUT", "30")]
}

/// The compose `environment` of an instance: rcfleet's settings, then plain extra env.
fn environment(fleet: &Fleet, host: &Host, instance: &Instance) -> Result<Vec<Pair>> {
    let mut environment = vec![
        pair("ROOT_URL", &fleet.workspace.root_url),
        pair("PORT", instance.port.to_string()),
        // Host networking: without BIND_IP Rocket.Chat (and its metrics server) would also
        // listen on the public address, around Traefik.
        pair("BIND_IP", &host.private_address),
        pair("INSTANCE_IP", &host.private_address),
        pair("OVERWRITE_SETTING_Prometheus_Enabled", "true"),
        // The metrics port through the process environment, not OVERWRITE_SETTING_Prometheus_Port:
        // an overwritten setting is saved to MongoDB and shared by every instance, so instances of
        // one host starting together would race for one port. PROMETHEUS_PORT is read first and
        // stays in this process (collectMetrics.ts; see tests/lab/README.md).
        pair("PROMETHEUS_PORT", instance.metrics_port.to_string()),
        pair("DEPLOY_METHOD", "docker"),
        pair("DEPLOY_PLATFORM", "rcfleet"),
    ];
    if fleet.microservices.enabled {
        environment.extend(moleculer_environment());
        // moleculer's own Prometheus reporter would listen on 9458 too, the default of the
        // instances' PROMETHEUS_PORT (the Helm chart moves the app metrics to 9100 instead,
        // reference A.4). The instances keep their app metrics; the services report theirs.
        environment.push(pair("MS_METRICS", "false"));
    }
    let mut problems = Vec::new();
    for (name, value) in &fleet.rocketchat_env {
        if let Some(problem) = name_problem(name) {
            problems.push(problem);
            continue;
        }
        if let EnvValue::Plain(text) = value {
            if text.contains('\0') {
                problems.push(format!(
                    "rocketchat.env.{name}: the value contains a NUL character, which no environment variable can hold; remove it"
                ));
            } else {
                environment.push(pair(name, text));
            }
        }
    }
    if problems.is_empty() {
        Ok(environment)
    } else {
        Err(Error::BadInput(problems))
    }
}

fn name_problem(name: &str) -> Option<String> {
    if !envfile::is_env_name(name) {
        return Some(format!(
            "rocketchat.env.{name}: not a valid environment variable name; use letters, digits and '_', not starting with a digit"
        ));
    }
    if RESERVED.contains(&name) {
        let fix = match name {
            "ROCKETCHAT_LICENSE" => "set workspace.license instead",
            "OVERWRITE_SETTING_Prometheus_Port" => {
                "rcfleet gives every instance its own metrics port (PROMETHEUS_PORT); this workspace-wide setting would \
                 only be ignored; remove it from [rocketchat.env]"
            }
            _ => "rcfleet sets it for every instance; remove it from [rocketchat.env]",
        };
        return Some(format!("rocketchat.env.{name}: {fix}"));
    }
    None
}

/// `instance.env`, the same for every instance: MONGO_URL and TRANSPORTER (with the
/// application user's and NATS' credentials unless the inventory opts out), the licence when
/// set, and extra env given as secret references. Secrets are read here, once.
pub fn instance_env(fleet: &Fleet, secrets: &dyn SecretSource) -> Result<String> {
    let mut entries = connection_entries(fleet, secrets)?;
    let mut problems = Vec::new();
    let mut failure = None;
    let mut secret = |name: &str, key: String, source: &SecretRef| match secrets.value(source) {
        Ok(value) => {
            entries.push(Entry { name: name.into(), value, origin: Origin::Secret { key, source: source.clone() } })
        }
        Err(Error::BadInput(more)) => problems.extend(more),
        Err(other) => {
            failure.get_or_insert(other);
        }
    };
    if let Some(license) = &fleet.workspace.license {
        secret("ROCKETCHAT_LICENSE", "workspace.license".into(), license);
    }
    for (name, value) in &fleet.rocketchat_env {
        if let EnvValue::Secret(source) = value {
            if name_problem(name).is_none() {
                secret(name, format!("rocketchat.env.{name}"), source);
            }
        }
    }
    if let Some(failure) = failure {
        return Err(failure);
    }
    match envfile::render(&entries) {
        Ok(text) if problems.is_empty() => Ok(text),
        Ok(_) => Err(Error::BadInput(problems)),
        Err(Error::BadInput(more)) => {
            problems.extend(more);
            Err(Error::BadInput(problems))
        }
        Err(failure) => Err(failure),
    }
}

/// MONGO_URL and TRANSPORTER, with the application user's and NATS' credentials unless the
/// inventory opts out: what every instance and every microservice needs to reach the others.
pub fn connection_entries(fleet: &Fleet, secrets: &dyn SecretSource) -> Result<Vec<Entry>> {
    let mongo_password = if fleet.mongodb.auth { Some(credential(fleet, secrets, Generated::MongoAppPassword)?) } else { None };
    let nats_password = if fleet.nats.auth { Some(credential(fleet, secrets, Generated::NatsPassword)?) } else { None };
    Ok(vec![
        Entry {
            name: "MONGO_URL".into(),
            value: fleet.mongo_url_with(mongo_password.as_deref()),
            origin: Origin::Derived {
                from: "mongodb (replica_set, database, app_password) and the database host's private_address".into(),
            },
        },
        Entry {
            name: "TRANSPORTER".into(),
            value: fleet.transporter_with(nats_password.as_deref()),
            origin: Origin::Derived { from: "nats (port, password) and the database host's private_address".into() },
        },
    ])
}

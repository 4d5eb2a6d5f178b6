//! One unit per microservice container (`[microservices]`): its compose file and its
//! `service.env` (0600: MONGO_URL and TRANSPORTER with their credentials). Environment from
//! Rocket.Chat's Helm chart and CI compose file (reference A.3): `TRANSPORTER=nats://...` (plain
//! `nats`, the services' broker refuses `monolith+nats`), the shared moleculer settings, `PORT`
//! for `/health` (and ddp-streamer's WebSocket), moleculer's Prometheus reporter on a port of
//! its own. No licence: the services ask the monolith's `license` service over the bus.

use serde_json::json;

use super::envfile;
use super::rocketchat::{connection_entries, moleculer_environment};
use super::{labels, pair, templates, Artifact, Pair, SecretSource, Unit};
use crate::error::Result;
use crate::fleet::Fleet;
use crate::microservices::ServiceContainer;

/// `service.env`, the same for every service container; secrets are read here, once.
pub fn service_env(fleet: &Fleet, secrets: &dyn SecretSource) -> Result<String> {
    envfile::render(&connection_entries(fleet, secrets)?)
}

pub fn render(fleet: &Fleet, container: &ServiceContainer, unit: &Unit, service_env: Option<&str>) -> Result<Vec<Artifact>> {
    let mut labels = labels(fleet, unit);
    labels.push(pair("io.rcfleet.service", container.service.name()));
    let compose = templates::render(
        "service",
        &json!({
            "image": fleet.microservices.image(container.service, &fleet.workspace.release).to_string(),
            "hostname": container.name,
            "environment": environment(container),
            "labels": labels,
        }),
    )?;
    let mut files = vec![Artifact::public(unit.compose_file(), compose)];
    // `None`: the env file's problems are already reported, once for all containers.
    if let Some(env) = service_env {
        files.push(Artifact::secret(format!("{}/service.env", unit.dir), env.to_string()));
    }
    Ok(files)
}

fn environment(container: &ServiceContainer) -> Vec<Pair> {
    let mut environment = vec![
        // Every image defaults to PORT=3000, the first instance's port (reference A.4, A.9).
        pair("PORT", container.port.to_string()),
        pair("MS_METRICS", "true"),
        pair("MS_METRICS_PORT", container.metrics_port.to_string()),
    ];
    environment.extend(moleculer_environment());
    environment
}

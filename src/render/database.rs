//! The database unit: MongoDB as a single-member replica set whose member address is the
//! database host's private address (so every app host can reach the primary it discovers),
//! an idempotent replica-set initiation, and NATS for the instances' `monolith+nats` broker.

use serde_json::json;

use super::{digest, labels, templates, Artifact, Unit};
use crate::error::Result;
use crate::fleet::{Fleet, Host};

pub fn render(fleet: &Fleet, host: &Host, unit: &Unit) -> Result<Vec<Artifact>> {
    let address = &host.private_address;
    let port = fleet.mongodb.port;
    let script = Artifact::public(
        format!("{}/replica-set.js", unit.dir),
        templates::render(
            "replica-set",
            &json!({
                "replica_set": fleet.mongodb.replica_set,
                "member": format!("{address}:{port}"),
            }),
        )?,
    );
    let compose = templates::render(
        "database",
        &json!({
            "images": {
                "mongodb": fleet.images.mongodb.to_string(),
                "nats": fleet.images.nats.to_string(),
            },
            "labels": labels(fleet, unit),
            "init_digest": digest(&[&script]),
            "mongodb": {
                "replica_set": fleet.mongodb.replica_set,
                "bind_ip": format!("{address},127.0.0.1"),
                "port": port.to_string(),
                "init_uri": format!("mongodb://{address}:{port}/?directConnection=true"),
            },
            "nats": {
                "address": address,
                "port": fleet.nats.port.to_string(),
                "monitor_port": fleet.nats.monitor_port.to_string(),
            },
        }),
    )?;
    Ok(vec![Artifact::public(unit.compose_file(), compose), script])
}

//! The node exporter's unit on every host: the host's disks, memory and load for Prometheus
//! (the disk-filling alert reads them), bound to the host's private address. Its `textfile/`
//! folder carries metrics other units write for it: on the database host, MongoDB's PRIMARY.

use serde_json::json;

use super::{labels, templates, Artifact, Unit};
use crate::error::Result;
use crate::fleet::{Fleet, Host};

pub fn render(fleet: &Fleet, host: &Host, unit: &Unit) -> Result<Vec<Artifact>> {
    let compose = templates::render(
        "node-exporter",
        &json!({
            "image": fleet.images.node_exporter.to_string(),
            "labels": labels(fleet, unit),
            "listen_flag": format!("--web.listen-address={}:{}", host.private_address, fleet.monitoring.node_exporter_port),
        }),
    )?;
    Ok(vec![Artifact::public(unit.compose_file(), compose)])
}

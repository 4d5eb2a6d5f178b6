//! The monitoring unit: Prometheus (Rocket.Chat targets through `file_sd`, Traefik, itself,
//! every host's node exporter, NATS through the blackbox exporter, Alertmanager when
//! configured; the alert rules of `prometheus/alerts.yml.hbs`)
//! and Grafana (provisioned Prometheus datasource, our dashboard, admin password only through
//! a 0600 file, from the inventory or generated), both bound to the monitoring host's private address.

use serde_json::json;

use super::secrets::{credential, Generated};
use super::{digest, labels, templates, Artifact, SecretSource, Unit};
use crate::error::{Error, Result};
use crate::fleet::{Fleet, Host, Instance};
use crate::microservices;

/// The Prometheus targets file, relative to the deploy dir: rewrite it (atomically) to change
/// what Prometheus scrapes; Prometheus notices by itself.
pub const PROMETHEUS_TARGETS_PATH: &str = "monitoring/prometheus/file_sd/rocketchat.yml";

/// The microservices' file_sd targets file, relative to the deploy dir.
pub const PROMETHEUS_SERVICE_TARGETS_PATH: &str = "monitoring/prometheus/file_sd/services.yml";

/// The file_sd targets file of the service containers (moleculer's reporter, `MS_METRICS`):
/// one target group per container; an empty list without microservices.
pub fn prometheus_service_targets(fleet: &Fleet) -> Result<String> {
    let groups: Vec<_> = microservices::containers(fleet)
        .iter()
        .map(|c| json!({ "target": c.metrics_target(), "service": c.service.name(), "container": c.name, "host": c.host }))
        .collect();
    templates::render("file-sd-services", &json!({ "groups": groups }))
}

/// The file_sd targets file for `instances`: one target group per instance, labelled with
/// `instance_name` and `host`.
pub fn prometheus_targets(instances: &[&Instance]) -> Result<String> {
    let groups: Vec<_> = instances
        .iter()
        .map(|instance| {
            json!({
                "target": instance.metrics_target(),
                "instance": instance.name,
                "host": instance.host,
            })
        })
        .collect();
    templates::render("file-sd", &json!({ "groups": groups }))
}

pub fn render(fleet: &Fleet, host: &Host, unit: &Unit, secrets: &dyn SecretSource) -> Result<Vec<Artifact>> {
    let dir = &unit.dir;
    let address = &host.private_address;
    let monitoring = &fleet.monitoring;
    let traefik = fleet.traefik_host();

    let prometheus_config = Artifact::public(
        format!("{dir}/prometheus/prometheus.yml"),
        templates::render(
            "prometheus",
            &json!({
                "traefik_target": format!("{}:{}", traefik.private_address, fleet.traefik.metrics_port),
                "prometheus_target": format!("{address}:{}", monitoring.prometheus_port),
                "blackbox_target": format!("{address}:{}", monitoring.blackbox_port),
                "nats_healthz": format!("http://{}:{}/healthz", fleet.database_host().private_address, fleet.nats.monitor_port),
                "alertmanager_target": monitoring.alertmanager.as_ref().map(|a| format!("{address}:{}", a.port)),
            }),
        )?,
    );
    let alerts = Artifact::public(
        format!("{dir}/prometheus/alerts.yml"),
        templates::render("prometheus-alerts", &json!({ "alert_for": monitoring.alert_for }))?,
    );
    let blackbox = Artifact::public(format!("{dir}/blackbox/blackbox.yml"), templates::render("blackbox", &json!({}))?);
    // Every host of the inventory; written with the unit, like the services' targets.
    let node_groups: Vec<_> = fleet
        .hosts
        .iter()
        .map(|h| json!({ "target": format!("{}:{}", h.private_address, monitoring.node_exporter_port), "host": h.name }))
        .collect();
    let node_targets = Artifact::public(
        format!("{dir}/prometheus/file_sd/node/hosts.yml"),
        templates::render("file-sd-nodes", &json!({ "groups": node_groups }))?,
    );
    let instances: Vec<&Instance> = fleet.instances().collect();
    let targets = Artifact::public(format!("{dir}/prometheus/file_sd/rocketchat.yml"), prometheus_targets(&instances)?);
    debug_assert_eq!(targets.path, PROMETHEUS_TARGETS_PATH);
    // Written with the unit also when microservices are off (an empty list), so that a fleet
    // switched back to the monolith stops scraping the services.
    let service_targets = Artifact::public(format!("{dir}/prometheus/file_sd/services.yml"), prometheus_service_targets(fleet)?);
    debug_assert_eq!(service_targets.path, PROMETHEUS_SERVICE_TARGETS_PATH);

    let datasource = Artifact::public(
        format!("{dir}/grafana/provisioning/datasources/prometheus.yml"),
        templates::render(
            "grafana-datasource",
            &json!({ "url": format!("http://{address}:{}", monitoring.prometheus_port) }),
        )?,
    );
    let dashboards = Artifact::public(
        format!("{dir}/grafana/provisioning/dashboards/rcfleet.yml"),
        templates::render("grafana-dashboards", &json!({ "provider": "rcfleet", "folder": "rcfleet" }))?,
    );
    let dashboard =
        Artifact::public(format!("{dir}/grafana/dashboards/rcfleet.json"), templates::GRAFANA_DASHBOARD.to_string());

    // From the inventory's reference, else generated: never Grafana's default.
    let value = credential(fleet, secrets, Generated::GrafanaAdminPassword)?;
    check_grafana_password(&value, monitoring.grafana_admin_password.as_ref())?;
    let password = Artifact::secret(format!("{dir}/grafana-admin-password"), value);

    let compose = templates::render(
        "monitoring",
        &json!({
            "images": {
                "prometheus": fleet.images.prometheus.to_string(),
                "grafana": fleet.images.grafana.to_string(),
                "blackbox_exporter": fleet.images.blackbox_exporter.to_string(),
            },
            "labels": labels(fleet, unit),
            "prometheus": {
                "retention_flag": format!("--storage.tsdb.retention.time={}", monitoring.retention),
                "listen_flag": format!("--web.listen-address={address}:{}", monitoring.prometheus_port),
                "digest": digest(&[&prometheus_config, &alerts]),
            },
            "blackbox": {
                "listen_flag": format!("--web.listen-address={address}:{}", monitoring.blackbox_port),
                "digest": digest(&[&blackbox]),
            },
            "grafana": {
                "address": address,
                "port": monitoring.grafana_port.to_string(),
                "root_url": grafana_root_url(fleet),
                // Dashboards are re-read by Grafana itself; provisioning needs a restart.
                "digest": digest(&[&datasource, &dashboards]),
            },
        }),
    )?;

    Ok(vec![
        Artifact::public(unit.compose_file(), compose),
        prometheus_config,
        alerts,
        targets,
        node_targets,
        blackbox,
        datasource,
        dashboards,
        dashboard,
        password,
        service_targets,
    ])
}

/// Grafana's public URL (`GF_SERVER_ROOT_URL`): the workspace's root URL plus `/grafana/`, the
/// path Traefik routes to it. Grafana serves from that sub-path (`GF_SERVER_SERVE_FROM_SUB_PATH`).
pub fn grafana_root_url(fleet: &Fleet) -> String {
    format!("{}/grafana/", fleet.workspace.root_url.trim_end_matches('/'))
}

/// Grafana's image reads `GF_*__FILE` with the shell's `$(< file)`, which drops trailing line
/// breaks and NUL bytes, and `grafana cli admin reset-admin-password --password-from-stdin`
/// (with which rcfleet applies a changed password) reads one line: refuse what would not
/// arrive unchanged.
fn check_grafana_password(value: &str, source: Option<&crate::fleet::SecretRef>) -> Result<()> {
    let problem = if value.is_empty() {
        Some("is empty")
    } else if value.contains('\0') {
        Some("contains a NUL byte")
    } else if value.ends_with(['\n', '\r']) {
        Some("ends with a line break")
    } else if value.contains(['\n', '\r']) {
        Some("contains a line break")
    } else {
        None
    };
    match problem {
        Some(problem) => Err(Error::bad_input(format!(
            "monitoring.grafana_admin_password: the secret read from {} {problem}, which Grafana would not \
             receive unchanged; change the password",
            source.map(|s| s.to_string()).unwrap_or_else(|| "the generated secrets".into())
        ))),
        None => Ok(()),
    }
}

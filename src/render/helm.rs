//! The fleet as values for Rocket.Chat's official Helm chart `rocketchat`
//! (<https://rocketchat.github.io/helm-charts>), and the Kubernetes Secrets those values
//! refer to. Pure: the same fleet gives the same bytes.
//!
//! The values never hold a secret: MongoDB's URI and the licence reach the pods through
//! Secrets (`existingMongodbSecret`, `extraSecret`), written only by [`secrets_manifest`]. Each
//! value carries a comment naming the inventory key it came from. Every key written must be in
//! the target chart version's key list (`helm/rocketchat/<version>.keys`, taken from that
//! version's values.yaml); a key outside it is a bug and fails the export.
//!
//! The chart's traps (`shared/reference/microservices-and-mongodb.md` B.4) are handled here:
//! the bundled MongoDB (6.0) is too old for Rocket.Chat 8, so it is always off; stream-hub is
//! never enabled for Rocket.Chat >= 8.0; NATS replicas go under `nats.cluster.replicas`, not
//! under `microservices`; the app's Prometheus port is 9100 because 9458 is the Moleculer
//! exporter's.

use serde_json::{json, Value};

use super::scalar::{quote, Flavour};
use super::secrets::{credential, Generated, SecretSource};
use crate::error::{Error, Result};
use crate::fleet::{EnvValue, Fleet, Role, Tls};
use crate::microservices::{DdpSizing, Service, USERS_PER_DDP_STREAMER};

/// Where the chart is published (`helm repo add rocketchat <this>`).
pub const CHART_REPOSITORY: &str = "https://rocketchat.github.io/helm-charts";

/// A version of the chart rcfleet knows the keys of.
#[derive(Debug)]
pub struct Chart {
    pub version: &'static str,
    /// The Rocket.Chat release the chart deploys when `image.tag` is not set.
    pub app_version: &'static str,
    /// The key list (see the file's header for its source).
    keys: &'static str,
}

/// Newest first: the first is the default of `--chart-version`.
pub const CHARTS: [Chart; 3] = [
    Chart { version: "7.0.2", app_version: "8.6.1", keys: include_str!("../../helm/rocketchat/7.0.2.keys") },
    Chart { version: "6.32.1", app_version: "8.2.0", keys: include_str!("../../helm/rocketchat/6.32.1.keys") },
    Chart { version: "6.27.1", app_version: "7.11.0", keys: include_str!("../../helm/rocketchat/6.27.1.keys") },
];

/// The chart `version`, or the newest one when `None`.
pub fn chart(version: Option<&str>) -> Result<&'static Chart> {
    let Some(version) = version else { return Ok(&CHARTS[0]) };
    CHARTS.iter().find(|chart| chart.version == version).ok_or_else(|| {
        let known: Vec<&str> = CHARTS.iter().map(|chart| chart.version).collect();
        Error::bad_input(format!(
            "--chart-version {version}: rcfleet knows the keys of chart rocketchat {} only; pick one of them",
            known.join(", ")
        ))
    })
}

impl Chart {
    /// Every key path of the list, as written there (`a.b`, or `a.*` for a free-form map).
    pub fn keys(&self) -> impl Iterator<Item = &'static str> {
        self.keys
            .lines()
            .map(|line| line.split('#').next().unwrap_or_default().trim())
            .filter(|key| !key.is_empty())
    }

    /// Whether `path` (dotted) is a key of this chart version's values.
    pub fn has_key(&self, path: &str) -> bool {
        self.keys().any(|key| match key.strip_suffix(".*") {
            Some(map) => path.strip_prefix(map).is_some_and(|rest| rest.starts_with('.') && rest.len() > 1),
            None => key == path,
        })
    }
}

/// The Secret holding MongoDB's URI under the key `mongo-uri` (chart: `existingMongodbSecret`).
pub fn mongodb_secret_name(fleet: &Fleet) -> String {
    format!("{}-mongodb", fleet.workspace.name)
}

/// The Secret whose keys become environment variables of Rocket.Chat (chart: `extraSecret`):
/// the licence and the secret values of `[rocketchat.env]`.
pub fn env_secret_name(fleet: &Fleet) -> String {
    format!("{}-rocketchat-env", fleet.workspace.name)
}

/// The TLS Secret the Ingress uses (cert-manager fills it, or the operator creates it).
pub fn tls_secret_name(fleet: &Fleet) -> String {
    format!("{}-tls", fleet.workspace.name)
}

/// What goes into the `extraSecret` Secret: (variable, inventory key) pairs.
fn env_secret_entries(fleet: &Fleet) -> Vec<(String, String)> {
    let mut entries = Vec::new();
    if fleet.workspace.license.is_some() {
        entries.push(("ROCKETCHAT_LICENSE".to_string(), "workspace.license".to_string()));
    }
    for (name, value) in &fleet.rocketchat_env {
        if let EnvValue::Secret(_) = value {
            entries.push((name.clone(), format!("rocketchat.env.{name}")));
        }
    }
    entries
}

/// The values file for `chart`, with a comment on each value saying where it came from.
pub fn values(fleet: &Fleet, chart: &Chart, inventory_name: &str) -> Result<String> {
    let mut doc = Doc::default();
    header(&mut doc, fleet, chart, inventory_name);
    let release = &fleet.workspace.release;
    doc.set(&["image", "repository"], json!(fleet.images.rocketchat.repository), "images.rocketchat.repository");
    doc.set(&["image", "tag"], json!(release.to_string()), "workspace.release; every microservice runs the same tag");
    doc.set(
        &["host"],
        json!(fleet.traefik.domain),
        &format!("traefik.domain; the chart sets ROOT_URL to https://<host> (workspace.root_url is {})", fleet.workspace.root_url),
    );
    let instances: Vec<String> = fleet
        .hosts_with(Role::Rocketchat)
        .map(|host| format!("{} x{}", host.name, host.instances.len()))
        .collect();
    doc.set(
        &["replicaCount"],
        json!(fleet.instances().count()),
        &format!("the monolith instances ({}: hosts[].instances); microservices are sized below", instances.join(", ")),
    );
    mongodb(&mut doc, fleet);
    extra_env(&mut doc, fleet);
    microservices(&mut doc, fleet, chart)?;
    nats(&mut doc, fleet);
    ingress(&mut doc, fleet);
    monitoring(&mut doc, fleet);
    if let Some(key) = doc.keys.iter().find(|key| !chart.has_key(key)) {
        return Err(Error::failed(format!(
            "the export wrote the key {key}, which chart rocketchat {} does not have (a bug in rcfleet)",
            chart.version
        )));
    }
    Ok(doc.text)
}

fn header(doc: &mut Doc, fleet: &Fleet, chart: &Chart, inventory_name: &str) {
    let name = &fleet.workspace.name;
    doc.comment(&format!("Values for Helm chart rocketchat {} (appVersion {}), {CHART_REPOSITORY}", chart.version, chart.app_version));
    doc.comment(&format!("Written by `rcfleet export helm-values` from {inventory_name} (workspace {name:?})."));
    let mut secrets = vec![mongodb_secret_name(fleet)];
    if !env_secret_entries(fleet).is_empty() {
        secrets.push(env_secret_name(fleet));
    }
    doc.comment(&format!(
        "No secret value is in this file: they come from the Kubernetes Secrets {}, which",
        secrets.join(" and ")
    ));
    doc.comment("`rcfleet export helm-values --secrets-manifest FILE` writes (create them before `helm install`).");
    doc.comment(&format!("  helm repo add rocketchat {CHART_REPOSITORY}"));
    doc.comment(&format!("  helm install {name} rocketchat/rocketchat --version {} -f values.yaml", chart.version));
}

fn mongodb(doc: &mut Doc, fleet: &Fleet) {
    doc.set(
        &["mongodb", "enabled"],
        json!(false),
        "the chart's bundled MongoDB (Bitnami, 6.0) is too old for Rocket.Chat 8: use an external one",
    );
    let db = fleet.database_host();
    doc.set(
        &["existingMongodbSecret"],
        json!(mongodb_secret_name(fleet)),
        &format!(
            "key mongo-uri: MONGO_URL as `up` writes it (mongodb.*, replica set {} on {}); no password here",
            fleet.mongodb.replica_set, db.name
        ),
    );
}

fn extra_env(doc: &mut Doc, fleet: &Fleet) {
    let secret = env_secret_entries(fleet);
    if !secret.is_empty() {
        let from: Vec<String> = secret.iter().map(|(name, key)| format!("{name} <- {key}")).collect();
        doc.set(&["extraSecret"], json!(env_secret_name(fleet)), &format!("environment from a Secret: {}", from.join(", ")));
    }
    let plain: Vec<Value> = fleet
        .rocketchat_env
        .iter()
        .filter_map(|(name, value)| match value {
            EnvValue::Plain(text) => Some(json!({"name": name, "value": text})),
            EnvValue::Secret(_) => None,
        })
        .collect();
    if !plain.is_empty() {
        doc.set(&["extraEnv"], Value::Array(plain), "[rocketchat.env] (plain values)");
    }
}

/// The chart's key of each service it deploys; queue-worker and omnichannel-transcript have
/// no template in the chart.
fn chart_key(service: Service) -> Option<&'static str> {
    match service {
        Service::Presence => Some("presence"),
        Service::DdpStreamer => Some("ddpStreamer"),
        Service::Account => Some("account"),
        Service::Authorization => Some("authorization"),
        Service::StreamHub => Some("streamHub"),
        Service::QueueWorker | Service::OmnichannelTranscript => None,
    }
}

fn microservices(doc: &mut Doc, fleet: &Fleet, chart: &Chart) -> Result<()> {
    let ms = &fleet.microservices;
    if !ms.enabled {
        doc.set(
            &["microservices", "enabled"],
            json!(false),
            "[microservices] is not enabled: the monolith only (the chart's default is true)",
        );
        return Ok(());
    }
    doc.set(&["microservices", "enabled"], json!(true), "microservices.enabled (licence: workspace.license, via extraSecret)");
    for service in [Service::Presence, Service::DdpStreamer, Service::Account, Service::Authorization] {
        let replicas = ms.replicas_of(service);
        let from = if service == Service::DdpStreamer {
            match ms.ddp_sizing {
                DdpSizing::Given => "microservices.ddp_streamers".to_string(),
                DdpSizing::ConcurrentUsers(users) => format!(
                    "microservices.concurrent_users = {users}: one per {USERS_PER_DDP_STREAMER} users, at least one per app host"
                ),
                DdpSizing::PerAppHost => "one per rocketchat host (no ddp_streamers or concurrent_users given)".to_string(),
            }
        } else if replicas == 0 {
            format!("{service} is not in microservices.services")
        } else if ms.replicas.contains_key(&service) {
            format!("microservices.replicas.{service}")
        } else {
            format!("{service}: default 1")
        };
        let key = chart_key(service).expect("the chart deploys the four core services");
        doc.set(&["microservices", key, "replicas"], json!(replicas), &from);
    }
    stream_hub(doc, fleet, chart)?;
    let missing: Vec<&str> =
        [Service::QueueWorker, Service::OmnichannelTranscript].into_iter().filter(|s| ms.services.contains(s)).map(Service::name).collect();
    if !missing.is_empty() {
        doc.comment(&format!(
            "Not exported: {}. The chart has no template for them, and in microservices mode the monolith",
            missing.join(", ")
        ));
        doc.comment("does not run them either: deploy them yourself if you use omnichannel queues or transcripts.");
    }
    Ok(())
}

/// stream-hub: deprecated in 7.x, gone from 8.0. Charts from 6.28 have a switch and refuse it
/// for 8.0+; older ones deploy it whenever microservices are on.
fn stream_hub(doc: &mut Doc, fleet: &Fleet, chart: &Chart) -> Result<()> {
    let wanted = fleet.microservices.services.contains(&Service::StreamHub);
    let release = &fleet.workspace.release;
    if chart.has_key("microservices.streamHub.enabled") {
        let from = if wanted {
            "stream-hub is in microservices.services (Rocket.Chat 7.x)".to_string()
        } else if !Service::StreamHub.exists_in(release) {
            format!("Rocket.Chat {release} has no stream-hub (removed in 8.0); never enable it")
        } else {
            "stream-hub is not in microservices.services".to_string()
        };
        doc.set(&["microservices", "streamHub", "enabled"], json!(wanted), &from);
        return Ok(());
    }
    if !Service::StreamHub.exists_in(release) {
        return Err(Error::bad_input(format!(
            "chart rocketchat {} deploys stream-hub whenever microservices are enabled, and Rocket.Chat {release} has none \
             (removed in 8.0); export for a newer chart (--chart-version {})",
            chart.version, CHARTS[0].version
        )));
    }
    if !wanted {
        doc.comment(&format!(
            "Chart {} always runs one stream-hub with microservices, although microservices.services leaves it out.",
            chart.version
        ));
    }
    Ok(())
}

fn nats(doc: &mut Doc, fleet: &Fleet) {
    let why = if fleet.microservices.enabled {
        "the services and the monolith talk over NATS (nats://)"
    } else {
        "the monolith instances talk over NATS (monolith+nats://), as under compose"
    };
    doc.set(&["nats", "enabled"], json!(true), why);
    doc.set(&["nats", "cluster", "enabled"], json!(true), "NATS' own replicas live here, not under microservices");
    doc.set(
        &["nats", "cluster", "replicas"],
        json!(2),
        &format!("rcfleet runs one NATS on {}; in the cluster the chart's default 2-node cluster", fleet.database_host().name),
    );
}

fn ingress(doc: &mut Doc, fleet: &Fleet) {
    let traefik = fleet.traefik_host();
    doc.set(&["ingress", "enabled"], json!(true), &format!("Traefik on {} becomes the cluster's Ingress", traefik.name));
    let tls = json!([{"secretName": tls_secret_name(fleet), "hosts": [fleet.traefik.domain]}]);
    match &fleet.traefik.tls {
        Tls::None => {}
        Tls::LetsEncrypt { email } => {
            doc.set(
                &["ingress", "annotations", "cert-manager.io/cluster-issuer"],
                json!("CHANGE-ME"),
                &format!(
                    "traefik.tls.mode = \"letsencrypt\": name your cert-manager ClusterIssuer here (ACME email: traefik.tls.email, {email})"
                ),
            );
            doc.set(&["ingress", "tls"], tls, "cert-manager obtains the certificate into this Secret");
        }
        Tls::Files { cert, key } => doc.set(
            &["ingress", "tls"],
            tls,
            &format!(
                "traefik.tls.mode = \"files\": kubectl create secret tls {} --cert=CERT --key=KEY, with {cert} and {key} from {}",
                tls_secret_name(fleet),
                traefik.name
            ),
        ),
    }
}

fn monitoring(doc: &mut Doc, fleet: &Fleet) {
    let scraped = match fleet.monitoring_host() {
        Some(host) => format!("Prometheus on {} scrapes every instance (hosts[].metrics_port)", host.name),
        None => "no monitoring host in the inventory; the chart's scraping costs nothing unused".to_string(),
    };
    doc.set(&["prometheusScraping", "enabled"], json!(true), &scraped);
    doc.set(&["prometheusScraping", "port"], json!(9100), "the app's metrics, off 9458: the Moleculer exporter (msPort) uses it");
    doc.set(&["prometheusScraping", "msPort"], json!(9458), "Moleculer metrics of the monolith in microservices mode");
    doc.set(&["podMonitor", "enabled"], json!(true), "a PodMonitor, created when the Prometheus Operator's CRDs exist");
}

/// The Kubernetes Secrets the values refer to, with their values: MongoDB's URI, and the
/// licence with the secret `[rocketchat.env]` values. Holds secrets: written 0600, only on
/// explicit request.
pub fn secrets_manifest(fleet: &Fleet, secrets: &dyn SecretSource) -> Result<String> {
    let password = if fleet.mongodb.auth { Some(credential(fleet, secrets, Generated::MongoAppPassword)?) } else { None };
    let db = fleet.database_host();
    let mut out = String::new();
    out.push_str("# Kubernetes Secrets for Helm chart rocketchat, from `rcfleet export helm-values --secrets-manifest`.\n");
    out.push_str("# THIS FILE HOLDS SECRETS: keep it 0600, apply it (kubectl apply -n NAMESPACE -f FILE), then delete it.\n");
    out.push_str(&format!(
        "# mongo-uri points at the compose fleet's MongoDB ({}, {}); after restoring the data into another\n",
        db.name, db.private_address
    ));
    out.push_str("# MongoDB, change its host part.\n");
    out.push_str(&secret_document(&mongodb_secret_name(fleet), &[("mongo-uri".into(), fleet.mongo_url_with(password.as_deref()))]));
    let mut env = Vec::new();
    for (name, _) in env_secret_entries(fleet) {
        let value = match (&fleet.workspace.license, fleet.rocketchat_env.get(&name)) {
            (_, Some(EnvValue::Secret(reference))) => secrets.value(reference)?,
            (Some(license), _) if name == "ROCKETCHAT_LICENSE" => secrets.value(license)?,
            _ => continue,
        };
        env.push((name, value));
    }
    if !env.is_empty() {
        out.push_str("---\n");
        out.push_str(&secret_document(&env_secret_name(fleet), &env));
    }
    Ok(out)
}

fn secret_document(name: &str, data: &[(String, String)]) -> String {
    let mut out = format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: {}\ntype: Opaque\nstringData:\n", quote(name, Flavour::Plain));
    for (key, value) in data {
        out.push_str(&format!("  {}: {}\n", quote(key, Flavour::Plain), quote(value, Flavour::Plain)));
    }
    out
}

/// A YAML document written key by key (nested mappings by path), each value with a comment.
#[derive(Default)]
struct Doc {
    text: String,
    /// The mapping path of the last key written.
    open: Vec<String>,
    /// Every key path written, dotted.
    keys: Vec<String>,
}

impl Doc {
    fn comment(&mut self, text: &str) {
        let indent = "  ".repeat(self.open.len());
        self.text.push_str(&format!("{indent}# {text}\n"));
    }

    /// Writes `value` at `path`, opening the parent mappings not open yet. Paths sharing a
    /// parent must be written one after the other.
    fn set(&mut self, path: &[&str], value: Value, comment: &str) {
        let (leaf, parents) = path.split_last().expect("a key path");
        let shared = self.open.iter().zip(parents).take_while(|(open, parent)| open == parent).count();
        self.open.truncate(shared);
        for parent in &parents[shared..] {
            self.text.push_str(&format!("{}{}:\n", "  ".repeat(self.open.len()), key(parent)));
            self.open.push(parent.to_string());
        }
        let indent = "  ".repeat(self.open.len());
        let comment = comment.replace(['\n', '\r'], " ");
        self.text.push_str(&format!("{indent}{}: {}  # {comment}\n", key(leaf), scalar(&value)));
        self.keys.push(path.join("."));
    }
}

fn key(name: &str) -> String {
    if name.chars().all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c)) {
        name.to_string()
    } else {
        quote(name, Flavour::Plain)
    }
}

/// Strings double-quoted (safe whatever they hold); numbers, booleans and lists as JSON,
/// which YAML reads the same.
fn scalar(value: &Value) -> String {
    match value {
        Value::String(text) => quote(text, Flavour::Plain),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_lists_have_the_keys_every_export_may_write() {
        for chart in &CHARTS {
            for key in ["image.tag", "host", "replicaCount", "mongodb.enabled", "existingMongodbSecret", "extraSecret", "nats.cluster.replicas"] {
                assert!(chart.has_key(key), "{} lacks {key}", chart.version);
            }
            assert!(chart.has_key("ingress.annotations.cert-manager.io/cluster-issuer"));
            assert!(!chart.has_key("ingress.annotationsx.y") && !chart.has_key("ingress.annotations."));
            assert!(!chart.has_key("microservices.nats.replicas"), "{}: NATS replicas are not under microservices", chart.version);
        }
        assert!(chart(None).unwrap().has_key("microservices.streamHub.enabled"));
        assert!(!chart(Some("6.27.1")).unwrap().has_key("microservices.streamHub.enabled"));
    }

    #[test]
    fn unknown_chart_version_is_bad_input() {
        let err = chart(Some("1.0.0")).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("7.0.2, 6.32.1, 6.27.1"), "{err}");
    }

    #[test]
    fn doc_nests_and_reopens_mappings() {
        let mut doc = Doc::default();
        doc.set(&["a", "b", "c"], json!(1), "one");
        doc.set(&["a", "b", "d"], json!("x: y"), "two");
        doc.set(&["a", "e"], json!([{"k": "v"}]), "three");
        doc.set(&["f"], json!(true), "four");
        let parsed: yaml_serde::Value = yaml_serde::from_str(&doc.text).unwrap();
        assert_eq!(parsed["a"]["b"]["c"], yaml_serde::Value::from(1));
        assert_eq!(parsed["a"]["b"]["d"], yaml_serde::Value::from("x: y"));
        assert_eq!(parsed["a"]["e"][0]["k"], yaml_serde::Value::from("v"));
        assert_eq!(parsed["f"], yaml_serde::Value::from(true));
        assert_eq!(doc.keys, ["a.b.c", "a.b.d", "a.e", "f"]);
    }
}

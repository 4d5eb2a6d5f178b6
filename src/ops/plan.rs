//! `plan`: validate the inventory, render every host's files, optionally write them to a
//! folder, and summarise hosts, roles, instances, images and secret references. No server is
//! contacted and no secret value is read into the output (files are rendered redacted).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::error::{Error, Result};
use super::advice;
use super::report::Outcome;
use crate::fleet::{Fleet, SecretRef, Tls, UpgradeStrategy};
use crate::inventory;
use crate::remote::{how_to_reach, Reach};
use crate::render::{self, HostArtifacts};

pub struct Plan {
    pub inventory: PathBuf,
    pub fleet: Fleet,
    pub artifacts: Vec<HostArtifacts>,
    /// Where the files were written, if asked.
    pub written_to: Option<PathBuf>,
    /// How each host will be reached over SSH, in the order of `fleet.hosts`.
    pub reach: Vec<Reach>,
}

pub fn plan(inventory_path: &Path, out: Option<&Path>) -> Result<Plan> {
    // Secrets are references here: `plan` shows where each comes from, never needs its value.
    let fleet = inventory::load_without_secrets(inventory_path)?;
    let artifacts = render::render(&fleet, &render::Redacted)?;
    // What ~/.ssh/config decides is shown too: the operator sees who logs in where before `up`.
    let reach = how_to_reach(&fleet.hosts)?;
    if let Some(out) = out {
        write_tree(out, &artifacts)?;
    }
    Ok(Plan { inventory: inventory_path.to_path_buf(), fleet, artifacts, written_to: out.map(Path::to_path_buf), reach })
}

/// Writes `DIR/<host>/<path>` for every artifact, with the mode it gets on the host.
fn write_tree(out: &Path, artifacts: &[HostArtifacts]) -> Result<()> {
    let failed = |path: &Path, err: std::io::Error| {
        Error::failed(format!("cannot write {}: {err}; check that the folder is writable", path.display()))
    };
    for host in artifacts {
        for file in &host.files {
            let path = out.join(&host.host).join(&file.path);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(|err| failed(parent, err))?;
            }
            std::fs::write(&path, &file.content).map_err(|err| failed(&path, err))?;
            set_mode(&path, file.mode).map_err(|err| failed(&path, err))?;
        }
    }
    Ok(())
}

#[cfg(unix)]
pub(super) fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
pub(super) fn set_mode(_path: &Path, _mode: u32) -> std::io::Result<()> {
    Ok(())
}

fn tls_name(tls: &Tls) -> &'static str {
    match tls {
        Tls::None => "none",
        Tls::LetsEncrypt { .. } => "letsencrypt",
        Tls::Files { .. } => "files",
    }
}

impl Plan {
    fn images(&self) -> [(&'static str, String); 7] {
        let images = &self.fleet.images;
        [
            ("rocketchat", images.rocketchat.to_string()),
            ("mongodb", images.mongodb.to_string()),
            ("nats", images.nats.to_string()),
            ("prometheus", images.prometheus.to_string()),
            ("grafana", images.grafana.to_string()),
            ("traefik", images.traefik.to_string()),
            ("mongodb_tools", images.mongodb_tools.to_string()),
        ]
    }
}

impl Outcome for Plan {
    fn to_text(&self) -> String {
        let fleet = &self.fleet;
        let mut out = String::new();
        let instances = fleet.instances().count();
        let _ = writeln!(
            out,
            "Plan for workspace {} (release {}) from {}: {} hosts, {} instances",
            fleet.workspace.name,
            fleet.workspace.release,
            self.inventory.display(),
            fleet.hosts.len(),
            instances
        );
        let _ = writeln!(
            out,
            "URL {} via Traefik on {} (TLS: {})",
            fleet.workspace.root_url,
            fleet.traefik_host().name,
            tls_name(&fleet.traefik.tls)
        );
        let _ = writeln!(out, "Upgrades: {}", upgrade_policy(fleet));

        let mut hosts = vec![vec!["HOST".into(), "SSH".into(), "PRIVATE ADDRESS".into(), "ROLES".into(), "FILES".into()]];
        for ((host, files), reach) in fleet.hosts.iter().zip(&self.artifacts).zip(&self.reach) {
            let roles: Vec<&str> = host.roles.iter().map(|r| r.name()).collect();
            hosts.push(vec![
                host.name.clone(),
                format!("{}@{}:{}", reach.user, reach.address, reach.port),
                host.private_address.clone(),
                roles.join(", "),
                files.files.len().to_string(),
            ]);
        }
        out.push('\n');
        out.push_str(&table(&hosts));
        out.push_str(&ssh_origins(&fleet.hosts, &self.reach));

        let mut rows = vec![vec!["INSTANCE".into(), "HOST".into(), "URL".into(), "METRICS".into()]];
        for instance in fleet.instances() {
            rows.push(vec![instance.name.clone(), instance.host.clone(), instance.url(), instance.metrics_target()]);
        }
        out.push('\n');
        out.push_str(&table(&rows));

        let containers = crate::microservices::containers(fleet);
        if !containers.is_empty() {
            let mut rows = vec![vec!["MICROSERVICE".into(), "HOST".into(), "URL".into(), "METRICS".into(), "IMAGE".into()]];
            for c in &containers {
                let image = fleet.microservices.image(c.service, &fleet.workspace.release).to_string();
                rows.push(vec![c.name.clone(), c.host.clone(), c.url(), c.metrics_target(), image]);
            }
            out.push('\n');
            out.push_str(&table(&rows));
        }

        let mut images = vec![vec!["COMPONENT".into(), "IMAGE".into()]];
        images.extend(self.images().into_iter().map(|(name, image)| vec![name.to_string(), image]));
        out.push('\n');
        out.push_str(&table(&images));

        let secrets = fleet.secret_references();
        if !secrets.is_empty() {
            out.push_str("\nSecrets (read at run time; values never shown):\n");
            for (key, secret) in secrets {
                let missing = if available(&secret) { "" } else { " (not available here; commands that deploy need it)" };
                let _ = writeln!(out, "  {key}: {secret}{missing}");
            }
        }
        for warning in advice::warnings(fleet) {
            let _ = writeln!(out, "\nWARNING: {warning}");
        }
        match &self.written_to {
            Some(dir) => {
                let files: usize = self.artifacts.iter().map(|h| h.files.len()).sum();
                let _ = writeln!(out, "\nWrote {files} files to {}/<host>/ (secrets redacted).", dir.display());
            }
            None => out.push_str("\nNothing was written; add --out DIR to see every file each host would receive.\n"),
        }
        out
    }

    fn to_json(&self) -> Value {
        let fleet = &self.fleet;
        let hosts: Vec<Value> = fleet
            .hosts
            .iter()
            .zip(&self.artifacts)
            .zip(&self.reach)
            .map(|((host, files), reach)| {
                json!({
                    "name": host.name,
                    "address": host.address,
                    "private_address": host.private_address,
                    "ssh": reach_json(reach),
                    "roles": host.roles.iter().map(|r| r.name()).collect::<Vec<_>>(),
                    "files": files.files.iter().map(|f| json!({"path": f.path, "mode": format!("{:o}", f.mode), "secret": f.secret})).collect::<Vec<_>>(),
                })
            })
            .collect();
        let instances: Vec<Value> = fleet
            .instances()
            .map(|i| json!({"name": i.name, "host": i.host, "url": i.url(), "metrics": i.metrics_target(), "port": i.port, "metrics_port": i.metrics_port}))
            .collect();
        let microservices: Vec<Value> = crate::microservices::containers(fleet)
            .iter()
            .map(|c| {
                let image = fleet.microservices.image(c.service, &fleet.workspace.release).to_string();
                json!({"name": c.name, "service": c.service.name(), "host": c.host, "url": c.url(), "metrics": c.metrics_target(), "image": image})
            })
            .collect();
        let images: serde_json::Map<String, Value> =
            self.images().into_iter().map(|(name, image)| (name.to_string(), Value::String(image))).collect();
        let secrets: Vec<Value> = fleet.secret_references()
            .into_iter()
            .map(|(key, secret)| json!({"key": key, "source": secret.to_string(), "available": available(&secret)}))
            .collect();
        json!({
            "workspace": fleet.workspace.name,
            "release": fleet.workspace.release.to_string(),
            "root_url": fleet.workspace.root_url,
            "traefik": { "host": fleet.traefik_host().name, "domain": fleet.traefik.domain, "tls": tls_name(&fleet.traefik.tls) },
            "upgrade": {
                "strategy": fleet.upgrade.strategy.name(),
                "batch_size": fleet.upgrade.batch_size,
                "drain_seconds": fleet.upgrade.drain_seconds,
            },
            "hosts": hosts,
            "instances": instances,
            "microservices": microservices,
            "images": images,
            "secrets": secrets,
            "warnings": advice::warnings(fleet),
            "written_to": self.written_to.as_ref().map(|d| d.display().to_string()),
        })
    }
}

/// How `rcfleet upgrade` will replace instances. `auto` is decided only by the upgrade, from
/// each app host's memory: `plan` contacts no server.
fn upgrade_policy(fleet: &Fleet) -> String {
    let upgrade = &fleet.upgrade;
    let how = match upgrade.strategy {
        UpgradeStrategy::Auto => "auto: start-first (each new instance on its spare ports, port + 1000, before the old one \
                                  stops) if every app host's MemAvailable covers the instances two batches run twice, \
                                  else stop-first; `rcfleet upgrade` decides and prints why"
            .to_string(),
        other => format!("{} (upgrade.strategy)", other.name()),
    };
    format!("{how}; batch {}, drain {} s", upgrade.batch_size, upgrade.drain_seconds)
}

/// Where each host's SSH settings come from: the inventory, ~/.ssh/config or OpenSSH's defaults.
fn ssh_origins(hosts: &[crate::fleet::Host], reach: &[Reach]) -> String {
    let mut out = String::from("\nSSH settings (from the inventory, ssh_config or the default):\n");
    for (host, reach) in hosts.iter().zip(reach) {
        let origins = &reach.origins;
        let keys: Vec<String> = reach.identity_files.iter().map(|key| key.display().to_string()).collect();
        let keys = if keys.is_empty() { "agent only".to_string() } else { keys.join(", ") };
        let _ = writeln!(
            out,
            "  {}: user {} ({}), port {} ({}), address {} ({}), key {} ({}), jump {} ({}), known_hosts {} ({})",
            host.name,
            reach.user,
            origins.user.name(),
            reach.port,
            origins.port.name(),
            reach.address,
            origins.address.name(),
            keys,
            origins.identity.name(),
            reach.jump.as_deref().unwrap_or("none"),
            origins.jump.name(),
            reach.known_hosts.display(),
            origins.known_hosts.name(),
        );
    }
    out
}

fn reach_json(reach: &Reach) -> Value {
    let origins = &reach.origins;
    let keys: Vec<String> = reach.identity_files.iter().map(|key| key.display().to_string()).collect();
    json!({
        "user": { "value": reach.user, "from": origins.user.name() },
        "port": { "value": reach.port, "from": origins.port.name() },
        "address": { "value": reach.address, "from": origins.address.name() },
        "identity_files": { "value": keys, "from": origins.identity.name() },
        "jump": { "value": reach.jump, "from": origins.jump.name() },
        "known_hosts": { "value": reach.known_hosts.display().to_string(), "from": origins.known_hosts.name() },
    })
}

/// Whether a secret reference can be read on this machine now (its value is dropped at once).
fn available(secret: &SecretRef) -> bool {
    secret.resolve().is_ok()
}

/// Left-aligned columns separated by two spaces.
fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> =
        (0..columns).map(|c| rows.iter().map(|r| r.get(c).map_or(0, |s| s.chars().count())).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for row in rows {
        let line: Vec<String> = row.iter().enumerate().map(|(c, cell)| format!("{cell:<width$}", width = widths[c])).collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

//! The database unit: MongoDB as a single-member replica set whose member address is the
//! database host's private address (so every app host can reach the primary it discovers),
//! an idempotent replica-set initiation, and NATS for the instances' `monolith+nats` broker.
//! With the default access control, MongoDB gets a key file (`mongodb-keyfile.env`, 0600)
//! and NATS a user whose password it reads from `nats.env` (0600); the compose file and
//! `nats.conf` hold no secret.

use serde_json::json;

use super::envfile::{self, Entry, Origin};
use super::secrets::{credential, Generated};
use super::{digest, labels, templates, Artifact, SecretSource, Unit};
use crate::error::{Error, Result};
use crate::fleet::{Fleet, Host, NatsSettings};

pub fn render(fleet: &Fleet, host: &Host, unit: &Unit, secrets: &dyn SecretSource) -> Result<Vec<Artifact>> {
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
    let probe = Artifact::public(
        format!("{}/mongodb-probe.js", unit.dir),
        templates::render(
            "mongodb-probe",
            &json!({
                "uri": format!("mongodb://127.0.0.1:{port}/?directConnection=true&serverSelectionTimeoutMS=5000"),
                "replica_set": fleet.mongodb.replica_set,
            }),
        )?,
    );
    let mut files = vec![script.clone(), probe.clone()];
    if fleet.mongodb.auth {
        let keyfile = credential(fleet, secrets, Generated::MongoKeyfile)?;
        let env = env_file(&[(Generated::MongoKeyfile, "MONGODB_KEYFILE", keyfile)])?;
        files.push(Artifact::secret(format!("{}/mongodb-keyfile.env", unit.dir), env));
    }
    let mut nats_digest = String::new();
    if fleet.nats.auth {
        let password = credential(fleet, secrets, Generated::NatsPassword)?;
        if !secrets.is_redacted() {
            check_nats_password(fleet, &password)?;
        }
        let conf = Artifact::public(
            format!("{}/nats.conf", unit.dir),
            templates::render("nats-conf", &json!({ "user": NatsSettings::USER }))?,
        );
        nats_digest = digest(&[&conf]);
        files.push(conf);
        let env = env_file(&[(Generated::NatsPassword, "NATS_PASSWORD", password)])?;
        files.push(Artifact::secret(format!("{}/nats.env", unit.dir), env));
    }
    let compose = templates::render(
        "database",
        &json!({
            "images": {
                "mongodb": fleet.images.mongodb.to_string(),
                "nats": fleet.images.nats.to_string(),
            },
            "labels": labels(fleet, unit),
            "init_digest": digest(&[&script]),
            "probe_digest": digest(&[&probe]),
            // Relative to this unit's folder, like every bind in these compose files.
            "probe_textfile_volume": format!("../{}/textfile:/textfile", super::units::NODE_EXPORTER_DIR),
            "nats_digest": nats_digest,
            "auth": { "mongodb": fleet.mongodb.auth, "nats": fleet.nats.auth },
            "mongodb": {
                "replica_set": fleet.mongodb.replica_set,
                "bind_ip": format!("{address},127.0.0.1"),
                "port": port.to_string(),
                "init_uri": format!("mongodb://127.0.0.1:{port}/?directConnection=true"),
            },
            "nats": {
                "address": address,
                "port": fleet.nats.port.to_string(),
                "monitor_port": fleet.nats.monitor_port.to_string(),
            },
        }),
    )?;
    files.push(Artifact::public(unit.compose_file(), compose));
    Ok(files)
}

fn env_file(entries: &[(Generated, &str, String)]) -> Result<String> {
    let entries: Vec<Entry> = entries
        .iter()
        .map(|(secret, name, value)| Entry {
            name: name.to_string(),
            value: value.clone(),
            origin: Origin::Derived { from: secret.inventory_key().unwrap_or(secret.name()).to_string() },
        })
        .collect();
    envfile::render(&entries)
}

/// nats-server parses the value of `$NATS_PASSWORD` as configuration text: only a word of
/// letters, digits and '_' starting with a letter is read back as that same string.
fn check_nats_password(fleet: &Fleet, password: &str) -> Result<()> {
    let mut chars = password.chars();
    let ok = matches!(chars.next(), Some(c) if c.is_ascii_alphabetic()) && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        return Ok(());
    }
    let source = fleet.nats.password.as_ref().map(|s| s.to_string()).unwrap_or_else(|| "the generated secrets".into());
    Err(Error::bad_input(format!(
        "nats.password: the secret read from {source} must be letters, digits and '_' starting with a letter \
         (nats-server reads it as configuration text); change the password"
    )))
}

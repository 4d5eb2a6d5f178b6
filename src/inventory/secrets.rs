//! Secret references resolved at run time. A value is read only when needed, is never stored
//! in the fleet, and never appears in a message: errors name the reference (variable or file).

use std::collections::BTreeSet;

use super::checks::Locator;
use super::source::Problems;
use crate::error::{Error, Result};
use crate::fleet::{EnvValue, Fleet, SecretRef};

/// Reads the value behind `secret`, trimmed of one trailing newline (files usually end with one).
pub fn resolve(secret: &SecretRef) -> Result<String> {
    let value = match secret {
        SecretRef::Env(name) => std::env::var(name).map_err(|_| {
            Error::bad_input(format!(
                "secret {secret} is not set; export {name} before running rcfleet (its value is never printed)"
            ))
        })?,
        SecretRef::File(path) => std::fs::read_to_string(path).map_err(|err| {
            Error::bad_input(format!("secret {secret} cannot be read ({}); create it or fix the path", err.kind()))
        })?,
    };
    let value = value.strip_suffix('\n').map(|v| v.strip_suffix('\r').unwrap_or(v)).unwrap_or(&value);
    if value.is_empty() {
        return Err(Error::bad_input(format!("secret {secret} is empty; give it a value")));
    }
    Ok(value.to_string())
}

/// Every secret reference of the fleet, each once.
pub fn references(fleet: &Fleet) -> BTreeSet<(String, SecretRef)> {
    let mut found = BTreeSet::new();
    if let Some(license) = &fleet.workspace.license {
        found.insert(("workspace.license".to_string(), license.clone()));
    }
    if let Some(password) = &fleet.monitoring.grafana_admin_password {
        found.insert(("monitoring.grafana_admin_password".to_string(), password.clone()));
    }
    for (key, reference) in [
        ("mongodb.admin_password", &fleet.mongodb.admin_password),
        ("mongodb.app_password", &fleet.mongodb.app_password),
        ("nats.password", &fleet.nats.password),
    ] {
        if let Some(reference) = reference {
            found.insert((key.to_string(), reference.clone()));
        }
    }
    for (name, value) in &fleet.rocketchat_env {
        if let EnvValue::Secret(secret) = value {
            found.insert((format!("rocketchat.env.{name}"), secret.clone()));
        }
    }
    for (index, host) in fleet.hosts.iter().enumerate() {
        if let Some(passphrase) = &host.ssh.identity_passphrase {
            found.insert((format!("hosts[{index}].ssh.identity_passphrase"), passphrase.clone()));
        }
    }
    found
}

/// Checks that every secret reference resolves, reporting each one that does not.
pub(super) fn check_resolvable(fleet: &Fleet, root: &toml_edit::Table, problems: &mut Problems) {
    let locate = Locator::new(root);
    for (key, secret) in references(fleet) {
        if let Err(Error::BadInput(messages)) = resolve(&secret) {
            problems.report(locate.span(&key), &key, messages.join("; "));
        }
    }
}

/// Reads the inventory's secret references for real. Generated secrets live on the database
/// host: operations render with `ops::secrets::Store`, which has both (`plan` uses
/// `render::Redacted`).
pub struct Resolver;

impl crate::render::SecretSource for Resolver {
    fn value(&self, secret: &SecretRef) -> Result<String> {
        resolve(secret)
    }

    fn generated(&self, secret: crate::render::Generated) -> Result<String> {
        Err(Error::failed(format!(
            "the generated secret {} was asked for without reading the database host's secrets (a bug in rcfleet)",
            secret.name()
        )))
    }
}

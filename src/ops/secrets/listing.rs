//! `rcfleet secrets list|show`. `list` names each secret and where it comes from, never a
//! value; `show NAME` gives one value, on explicit request only, and says so in the database
//! host's audit trail.

use std::path::Path;

use serde_json::{json, Value};

use super::Store;
use crate::error::{Error, Result};
use crate::inventory;
use crate::ops::audit;
use crate::ops::hosts::Hosts;
use crate::ops::report::Outcome;
use crate::remote::ConnectOptions;
use crate::render::{self, credential, Generated};

/// One secret as `rcfleet secrets list` shows it: never its value.
struct Listed {
    name: &'static str,
    /// `generated`, or the inventory reference (`environment variable X`).
    source: String,
    in_use: bool,
    /// Generated and present in the database host's file.
    stored: bool,
}

/// Every secret of the security defaults, with where it comes from.
pub struct Listing {
    secrets: Vec<Listed>,
    /// The database host, which keeps the generated ones.
    host: String,
    /// The file there that holds them.
    file: String,
}

pub fn list(inventory_path: &Path, connect: &ConnectOptions) -> Result<Listing> {
    let fleet = inventory::load(inventory_path)?;
    let hosts = Hosts::connect_database(&fleet, connect)?;
    let db = hosts.host(&fleet.database_host().name);
    let store = Store::read(&fleet, db)?;
    let secrets = Generated::ALL
        .into_iter()
        .map(|secret| Listed {
            name: secret.name(),
            source: match secret.reference(&fleet) {
                Some(reference) => format!("inventory {} ({reference})", secret.inventory_key().unwrap_or_default()),
                None => "generated".to_string(),
            },
            in_use: secret.in_use(&fleet),
            stored: store.as_ref().is_some_and(|s| s.generated.contains_key(secret.name())),
        })
        .collect();
    Ok(Listing { secrets, host: db.name().to_string(), file: render::secrets_file(&fleet) })
}

impl Outcome for Listing {
    fn to_text(&self) -> String {
        let mut out = format!("{:<24}  {:<8}  SOURCE\n", "NAME", "USED");
        for s in &self.secrets {
            let source = if s.source == "generated" && !s.stored {
                "generated (not yet: run `rcfleet up`)".to_string()
            } else if s.source == "generated" {
                format!("generated, in {}:{}", self.host, self.file)
            } else {
                s.source.clone()
            };
            out.push_str(&format!("{:<24}  {:<8}  {source}\n", s.name, if s.in_use { "yes" } else { "no" }));
        }
        out
    }

    fn to_json(&self) -> Value {
        let list: Vec<Value> = self
            .secrets
            .iter()
            .map(|s| json!({"name": s.name, "source": s.source, "in_use": s.in_use, "stored": s.stored}))
            .collect();
        json!({ "file": self.file, "secrets": list })
    }
}

/// One secret's value, asked for by name.
pub struct Shown {
    name: String,
    value: String,
}

/// The value of the secret `name` as the fleet uses it (the inventory's reference wins over
/// the generated value). An unknown name is refused before any host is contacted.
pub fn show(inventory_path: &Path, connect: &ConnectOptions, name: &str) -> Result<Shown> {
    let fleet = inventory::load(inventory_path)?;
    let secret = known(name)?;
    let hosts = Hosts::connect_database(&fleet, connect)?;
    let db = hosts.host(&fleet.database_host().name);
    let value = credential(&fleet, &Store::load(&fleet, db)?, secret)?;
    audit::record(db, &fleet, "rcfleet secrets show", &[format!("showed secret {name}")])?;
    Ok(Shown { name: name.to_string(), value })
}

fn known(name: &str) -> Result<Generated> {
    Generated::from_name(name).ok_or_else(|| {
        let names: Vec<&str> = Generated::ALL.iter().map(|g| g.name()).collect();
        Error::bad_input(format!("no secret named {name:?}; the secrets are {}", names.join(", ")))
    })
}

impl Outcome for Shown {
    fn to_text(&self) -> String {
        format!("{}\n", self.value)
    }

    fn to_json(&self) -> Value {
        json!({ "name": self.name, "value": self.value })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_secrets_of_the_security_defaults_are_known() {
        assert_eq!(known("grafana-admin-password").unwrap(), Generated::GrafanaAdminPassword);
        let refused = known("no-such-secret").unwrap_err().to_string();
        assert!(refused.contains("no secret named \"no-such-secret\"") && refused.contains("grafana-admin-password"), "{refused}");
    }
}

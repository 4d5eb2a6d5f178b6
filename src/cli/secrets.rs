//! `rcfleet secrets list|show`: the secrets of the security defaults. `list` names them and
//! where each comes from, never a value; `show NAME` prints one value, on explicit request
//! only (and says so in the database host's audit trail).

use clap::Subcommand;
use serde_json::json;

use super::GlobalArgs;
use crate::error::Result;
use crate::inventory;
use crate::ops::audit;
use crate::ops::hosts::Hosts;
use crate::ops::report::Reporter;
use crate::ops::secrets::{self, Store};
use crate::remote::ConnectOptions;
use crate::render;

#[derive(Debug, Subcommand)]
pub enum SecretsCommand {
    /// List the secrets (MongoDB key file and passwords, NATS and Grafana passwords): where each
    /// comes from (generated on the database host, or an inventory reference). No value is shown.
    List,
    /// Print the value of one secret (e.g. `grafana-admin-password`) on standard output.
    Show {
        /// The secret's name, as `rcfleet secrets list` shows it.
        name: String,
    },
}

pub fn run(global: &GlobalArgs, command: SecretsCommand) -> Result<i32> {
    let fleet = inventory::load(&global.inventory)?;
    if let SecretsCommand::Show { name } = &command {
        // An unknown name is bad input: refused before any host is contacted.
        secrets::show(&fleet, &Store::preview(), name)?;
    }
    let report = Reporter::quiet_log();
    let options = ConnectOptions { verbose: global.verbose, ..Default::default() };
    let remote = Hosts::connect(&[fleet.database_host()], &options, &report)?;
    let db = remote.host(&fleet.database_host().name);
    match command {
        SecretsCommand::List => {
            let store = Store::read(&fleet, db)?;
            let listed = secrets::list(&fleet, store.as_ref());
            if global.json {
                let list: Vec<_> = listed
                    .iter()
                    .map(|s| json!({"name": s.name, "source": s.source, "in_use": s.in_use, "stored": s.stored}))
                    .collect();
                println!("{}", json!({ "file": secrets::path(&fleet), "secrets": list }));
                return Ok(0);
            }
            println!("{:<24}  {:<8}  SOURCE", "NAME", "USED");
            for s in &listed {
                let source = if s.source == "generated" && !s.stored {
                    "generated (not yet: run `rcfleet up`)".to_string()
                } else if s.source == "generated" {
                    format!("generated, in {}:{}", db.name(), secrets::path(&fleet))
                } else {
                    s.source.clone()
                };
                println!("{:<24}  {:<8}  {source}", s.name, if s.in_use { "yes" } else { "no" });
            }
            Ok(0)
        }
        SecretsCommand::Show { name } => {
            let store = Store::load(&fleet, db)?;
            let value = secrets::show(&fleet, &store, &name)?;
            audit::record(db, &render::deploy_dir(&fleet), "rcfleet secrets show", &[format!("showed secret {name}")])?;
            println!("{value}");
            Ok(0)
        }
    }
}

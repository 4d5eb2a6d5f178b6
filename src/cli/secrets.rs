//! `rcfleet secrets list|show`: arguments only; the work is in `ops::secrets`.

use clap::Subcommand;

use super::GlobalArgs;
use crate::error::Result;
use crate::ops::secrets;

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
    match command {
        SecretsCommand::List => global.print(&secrets::list(&global.inventory, &global.connect())?),
        SecretsCommand::Show { name } => global.print(&secrets::show(&global.inventory, &global.connect(), &name)?),
    }
    Ok(0)
}

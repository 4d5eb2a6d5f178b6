//! `rcfleet mongodb status|upgrade`: arguments only; the work is in `ops::mongodb`.

use clap::Subcommand;

use super::GlobalArgs;
use crate::error::{exit, Result};
use crate::ops::mongodb::status;
use crate::ops::mongodb::upgrade::{self, MongoUpgradeOptions};

#[derive(Debug, Subcommand)]
pub enum MongodbCommand {
    /// Version, feature compatibility version, replica-set members and their state, oplog
    /// window, data size and the last backup. Exits 3 when something is wrong.
    Status,
    /// Take MongoDB to another major, one step at a time (e.g. 5.0 -> 6.0 -> 7.0): checks,
    /// backup, announced downtime, FCV set at each step, inventory rewritten. Run it again
    /// after an interruption to finish.
    Upgrade {
        /// The MongoDB series to reach: 5.0, 6.0, 7.0, 8.0 or 8.2.
        #[arg(long, value_name = "X.Y")]
        to: String,
        /// Plan the path and run the checks; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Go through MongoDB versions the running Rocket.Chat release is not documented for
        /// (e.g. 8.0 under 7.x, before `upgrade --release 8.x`).
        #[arg(long)]
        allow_unsupported_mongodb: bool,
    },
}

pub fn run(global: &GlobalArgs, command: MongodbCommand) -> Result<i32> {
    match command {
        MongodbCommand::Status => {
            let status = status::status(&global.inventory, &global.connect())?;
            global.print(&status);
            Ok(if status.problems().is_empty() { 0 } else { exit::UNHEALTHY })
        }
        MongodbCommand::Upgrade { to, dry_run, allow_unsupported_mongodb } => {
            let options = MongoUpgradeOptions { to, dry_run, allow_unsupported_mongodb, connect: global.connect() };
            global.print(&upgrade::upgrade(&global.inventory, &options)?);
            Ok(0)
        }
    }
}

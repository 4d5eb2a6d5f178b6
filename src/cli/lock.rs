//! `rcfleet lock status|release`: look at or remove the deploy lock (for a run that died).

use std::io::{BufRead, IsTerminal, Write};

use clap::Subcommand;
use serde_json::json;

use super::GlobalArgs;
use crate::error::{Error, Result};
use crate::inventory;
use crate::ops::lock;
use crate::ops::hosts::Hosts;
use crate::ops::report::Reporter;
use crate::remote::ConnectOptions;

#[derive(Debug, Subcommand)]
pub enum LockCommand {
    /// Show who holds the deploy lock, if anyone.
    Status,
    /// Remove the deploy lock left by a run that died. Asks for confirmation.
    Release {
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
}

pub fn run(global: &GlobalArgs, command: LockCommand) -> Result<i32> {
    let fleet = inventory::load(&global.inventory)?;
    let report = Reporter::quiet_log();
    let options = ConnectOptions { verbose: global.verbose, ..Default::default() };
    let remote = Hosts::connect(&[fleet.database_host()], &options, &report)?;
    let db = remote.host(&fleet.database_host().name);
    match command {
        LockCommand::Status => {
            let holder = lock::read(&fleet, db)?;
            if global.json {
                println!("{}", json!({ "locked": holder.is_some(), "holder": holder }));
            } else {
                match &holder {
                    Some(holder) => println!("locked by {}", holder.describe()),
                    None => println!("not locked"),
                }
            }
            Ok(0)
        }
        LockCommand::Release { yes } => {
            let Some(holder) = lock::read(&fleet, db)? else {
                println!("not locked; nothing to release");
                return Ok(0);
            };
            if !yes && !confirm(&holder)? {
                println!("left as it is");
                return Ok(0);
            }
            lock::force_release(&fleet, db)?;
            println!("released the lock held by {}", holder.describe());
            Ok(0)
        }
    }
}

fn confirm(holder: &lock::Holder) -> Result<bool> {
    if !std::io::stdin().is_terminal() {
        return Err(Error::bad_input(format!(
            "the lock is held by {}; releasing it while that run still works could let two runs change the fleet at \
             once. Run again with --yes to release it without asking.",
            holder.describe()
        )));
    }
    eprint!("The lock is held by {}.\nRelease it only if that run is gone. Release? [y/N] ", holder.describe());
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer).map_err(|e| Error::failed(format!("cannot read the answer: {e}")))?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}

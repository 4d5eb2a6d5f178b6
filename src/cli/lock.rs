//! `rcfleet lock status|release`: look at or remove the deploy lock (for a run that died).
//! The work is in `ops::lock`; here only the question asked before releasing.

use std::io::{BufRead, IsTerminal, Write};

use clap::Subcommand;

use super::GlobalArgs;
use crate::error::{Error, Result};
use crate::ops::lock::{self, Holder};

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
    match command {
        LockCommand::Status => global.print(&lock::status(&global.inventory, &global.connect())?),
        LockCommand::Release { yes } => {
            let confirm = |holder: &Holder| if yes { Ok(true) } else { confirm(holder) };
            global.print(&lock::release(&global.inventory, &global.connect(), confirm)?)
        }
    }
    Ok(0)
}

fn confirm(holder: &Holder) -> Result<bool> {
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

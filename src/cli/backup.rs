//! `rcfleet backup [--note TEXT] [--download DIR]`, `rcfleet backup list` and
//! `rcfleet restore ARCHIVE [--yes]`: arguments and the question asked before a restore; the
//! work is in `ops::backup` and `ops::restore`.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

use clap::Subcommand;

use super::GlobalArgs;
use crate::error::{Error, Result};
use crate::ops::backup::{self, BackupOptions};
use crate::ops::restore::{self, RestoreOptions};

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BackupArgs {
    #[command(subcommand)]
    pub command: Option<BackupCommand>,
    /// A few words kept with the archive and shown by `backup list`.
    #[arg(long, value_name = "TEXT")]
    pub note: Option<String>,
    /// Also copy the archive into this folder on this machine (streamed, 0600).
    #[arg(long, value_name = "DIR")]
    pub download: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// The archives on the database host, oldest first, with their size, release and note.
    List,
}

#[derive(Debug, clap::Args)]
pub struct RestoreArgs {
    /// The archive: its name as `rcfleet backup list` shows it, or its path on the database host.
    pub archive: String,
    /// Do not ask for confirmation.
    #[arg(long)]
    pub yes: bool,
}

pub fn run(global: &GlobalArgs, args: BackupArgs) -> Result<i32> {
    match args.command {
        Some(BackupCommand::List) => global.print(&backup::list(&global.inventory, &global.connect())?),
        None => {
            let options = BackupOptions { note: args.note, download: args.download, connect: global.connect() };
            global.print(&backup::backup(&global.inventory, &options)?);
        }
    }
    Ok(0)
}

pub fn run_restore(global: &GlobalArgs, args: RestoreArgs) -> Result<i32> {
    let options = RestoreOptions { archive: args.archive, connect: global.connect() };
    let yes = args.yes;
    let confirm = |steps: &[String]| {
        eprintln!("rcfleet restore will:");
        for (index, step) in steps.iter().enumerate() {
            eprintln!("  {:>2}. {step}", index + 1);
        }
        if yes {
            Ok(true)
        } else {
            ask()
        }
    };
    global.print(&restore::restore(&global.inventory, &options, confirm)?);
    Ok(0)
}

fn ask() -> Result<bool> {
    if !std::io::stdin().is_terminal() {
        return Err(Error::bad_input(
            "a restore replaces the database and stops the workspace meanwhile; run again with --yes to restore without asking",
        ));
    }
    eprint!("Restore? [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer).map_err(|e| Error::failed(format!("cannot read the answer: {e}")))?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}

//! `rcfleet prune`: arguments only; the work is in `ops::prune`.

use super::GlobalArgs;
use crate::error::Result;
use crate::ops::prune::{self, PruneOptions};

#[derive(Debug, clap::Args)]
pub struct PruneArgs {
    /// Keep the images of this many newest Rocket.Chat releases on each host (the previous one
    /// stays for a rollback with the default).
    #[arg(long, value_name = "N", default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..))]
    pub keep: u32,
    /// List what would be removed; change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

pub fn run(global: &GlobalArgs, args: PruneArgs) -> Result<i32> {
    let options = PruneOptions { connect: global.connect(), keep: args.keep as usize, dry_run: args.dry_run };
    global.print(&prune::prune(&global.inventory, &options)?);
    Ok(0)
}

//! `rcfleet plan`: arguments only; the work is in `ops::plan`.

use std::path::PathBuf;

use super::GlobalArgs;
use crate::error::Result;
use crate::ops;

#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    /// Write the files each host would receive under DIR/<host>/ (secrets redacted).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

pub fn run(global: &GlobalArgs, args: PlanArgs) -> Result<i32> {
    global.print(&ops::plan::plan(&global.inventory, args.out.as_deref())?);
    Ok(0)
}

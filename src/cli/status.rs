//! `rcfleet status`: arguments only; the work is in `ops::status`.

use super::GlobalArgs;
use crate::error::{exit, Result};
use crate::ops;

#[derive(Debug, clap::Args)]
pub struct StatusArgs {}

pub fn run(global: &GlobalArgs, _args: StatusArgs) -> Result<i32> {
    let status = ops::status::status(&global.inventory, &global.connect())?;
    global.print(&status);
    Ok(if status.healthy { 0 } else { exit::UNHEALTHY })
}

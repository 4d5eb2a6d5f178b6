//! `rcfleet up`: arguments only; the work is in `ops::up`.

use super::{GlobalArgs, NewHostArgs};
use crate::error::Result;
use crate::inventory;
use crate::ops;
use crate::ops::hooks::{Hook, Run};

#[derive(Debug, clap::Args)]
pub struct UpArgs {
    #[command(flatten)]
    pub new_hosts: NewHostArgs,
    /// Air-gapped hosts: send the images they lack from this machine's Docker engine
    /// (DOCKER_HOST, else the local socket) over SSH instead of pulling from a registry.
    #[arg(long)]
    pub push_images: bool,
}

pub fn run(global: &GlobalArgs, args: UpArgs) -> Result<i32> {
    let options = ops::up::UpOptions { connect: args.new_hosts.connect(global), push_images: args.push_images };
    let mut hooks = Run::new(&global.inventory, "up", &inventory::load(&global.inventory)?);
    hooks.run(Hook::PreUp)?;
    let outcome = ops::up::up(&global.inventory, &options)?;
    global.print(&outcome);
    hooks.set("RCFLEET_RESULT", "succeeded");
    hooks.run(Hook::PostUp)?;
    Ok(0)
}

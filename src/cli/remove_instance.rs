//! `rcfleet remove-instance`: arguments only; the work is in `ops::remove_instance`.

use super::GlobalArgs;
use crate::error::Result;
use crate::ops;

#[derive(Debug, clap::Args)]
pub struct RemoveInstanceArgs {
    /// The instances to remove, by name (e.g. app1-1).
    #[arg(value_name = "INSTANCE", required_unless_present = "host")]
    pub instances: Vec<String>,
    /// Remove every instance of this host.
    #[arg(long, value_name = "NAME")]
    pub host: Option<String>,
}

pub fn run(global: &GlobalArgs, args: RemoveInstanceArgs) -> Result<i32> {
    let options = ops::remove_instance::RemoveOptions {
        connect: global.connect(),
        instances: args.instances,
        host: args.host,
    };
    global.print(&ops::remove_instance::remove_instance(&global.inventory, &options)?);
    Ok(0)
}

//! `rcfleet add-instance`: arguments only; the work is in `ops::add_instance`.

use super::{GlobalArgs, NewHostArgs};
use crate::error::Result;
use crate::ops;

#[derive(Debug, clap::Args)]
pub struct AddInstanceArgs {
    /// The host to add instances to; with --address, the name of a new host; with --service,
    /// the host the new service containers run on (default: the service's placement).
    #[arg(long, value_name = "NAME", required_unless_present = "service")]
    pub host: Option<String>,
    /// Add containers of this microservice (e.g. ddp-streamer) instead of Rocket.Chat instances.
    #[arg(long, value_name = "SERVICE", conflicts_with = "address")]
    pub service: Option<String>,
    /// How many instances to add (1 to 100).
    #[arg(long, default_value_t = 1, value_name = "K", value_parser = clap::value_parser!(u32).range(1..=100))]
    pub count: u32,
    /// Add a new host at this address (where rcfleet connects over SSH) to the inventory.
    #[arg(long, value_name = "ADDR")]
    pub address: Option<String>,
    /// The new host's address for the other hosts (default: --address).
    #[arg(long, value_name = "ADDR", requires = "address")]
    pub private_address: Option<String>,
    /// The SSH user for the new host (default: the inventory's [ssh] user).
    #[arg(long, value_name = "USER", requires = "address")]
    pub ssh_user: Option<String>,
    #[command(flatten)]
    pub new_hosts: NewHostArgs,
}

pub fn run(global: &GlobalArgs, args: AddInstanceArgs) -> Result<i32> {
    if let Some(service) = args.service {
        let options = ops::service_replicas::ReplicaOptions {
            connect: args.new_hosts.connect(global),
            service,
            host: args.host,
            count: args.count,
        };
        global.print(&ops::service_replicas::add_replicas(&global.inventory, &options)?);
        return Ok(0);
    }
    let options = ops::add_instance::AddOptions {
        connect: args.new_hosts.connect(global),
        host: args.host.unwrap_or_default(),
        count: args.count,
        address: args.address,
        private_address: args.private_address,
        ssh_user: args.ssh_user,
    };
    global.print(&ops::add_instance::add_instance(&global.inventory, &options)?);
    Ok(0)
}

//! `rcfleet add-instance`: arguments only; the work is in `ops::add_instance`.

use super::GlobalArgs;
use crate::error::Result;
use crate::ops;
use crate::remote::ConnectOptions;

#[derive(Debug, clap::Args)]
pub struct AddInstanceArgs {
    /// The host to add instances to; with --address, the name of a new host.
    #[arg(long, value_name = "NAME")]
    pub host: String,
    /// How many instances to add.
    #[arg(long, default_value_t = 1, value_name = "K")]
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
    /// Trust hosts seen for the first time and record their keys (one line appended to known_hosts).
    #[arg(long)]
    pub accept_new_host_keys: bool,
}

pub fn run(global: &GlobalArgs, args: AddInstanceArgs) -> Result<i32> {
    let options = ops::add_instance::AddOptions {
        connect: ConnectOptions { accept_new_host_keys: args.accept_new_host_keys, verbose: global.verbose, ..Default::default() },
        host: args.host,
        count: args.count,
        address: args.address,
        private_address: args.private_address,
        ssh_user: args.ssh_user,
    };
    let outcome = ops::add_instance::add_instance(&global.inventory, &options)?;
    if global.json {
        println!("{}", serde_json::to_string_pretty(&outcome.to_json()).expect("outcome serialises"));
    } else {
        print!("{}", outcome.to_text());
    }
    Ok(0)
}

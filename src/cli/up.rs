//! `rcfleet up`: arguments only; the work is in `ops::up`.

use super::GlobalArgs;
use crate::error::Result;
use crate::ops;
use crate::remote::ConnectOptions;

#[derive(Debug, clap::Args)]
pub struct UpArgs {
    /// Trust hosts seen for the first time and record their keys (one line appended to known_hosts).
    #[arg(long)]
    pub accept_new_host_keys: bool,
    /// Air-gapped hosts: send the images they lack from this machine's Docker engine
    /// (DOCKER_HOST, else the local socket) over SSH instead of pulling from a registry.
    #[arg(long)]
    pub push_images: bool,
}

pub fn run(global: &GlobalArgs, args: UpArgs) -> Result<i32> {
    let options = ops::up::UpOptions {
        connect: ConnectOptions { accept_new_host_keys: args.accept_new_host_keys, verbose: global.verbose, ..Default::default() },
        push_images: args.push_images,
    };
    let outcome = ops::up::up(&global.inventory, &options)?;
    if global.json {
        println!("{}", serde_json::to_string_pretty(&outcome.to_json()).expect("outcome serialises"));
    } else {
        print!("{}", outcome.to_text());
    }
    Ok(0)
}

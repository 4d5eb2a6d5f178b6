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
}

pub fn run(global: &GlobalArgs, args: UpArgs) -> Result<i32> {
    let options = ops::up::UpOptions {
        connect: ConnectOptions { accept_new_host_keys: args.accept_new_host_keys, verbose: global.verbose, ..Default::default() },
    };
    let outcome = ops::up::up(&global.inventory, &options)?;
    if global.json {
        println!("{}", serde_json::to_string_pretty(&outcome.to_json()).expect("outcome serialises"));
    } else {
        print!("{}", outcome.to_text());
    }
    Ok(0)
}

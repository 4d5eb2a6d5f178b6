//! `rcfleet status`: arguments only; the work is in `ops::status`.

use super::GlobalArgs;
use crate::error::{exit, Result};
use crate::ops;
use crate::remote::ConnectOptions;

#[derive(Debug, clap::Args)]
pub struct StatusArgs {}

pub fn run(global: &GlobalArgs, _args: StatusArgs) -> Result<i32> {
    let connect = ConnectOptions { verbose: global.verbose, ..Default::default() };
    let status = ops::status::status(&global.inventory, &connect)?;
    if global.json {
        println!("{}", serde_json::to_string_pretty(&status.to_json()).expect("status serialises"));
    } else {
        print!("{}", status.to_text());
    }
    Ok(if status.healthy { 0 } else { exit::UNHEALTHY })
}

//! `rcfleet exec`: arguments only; the work is in `ops::exec`.

use super::GlobalArgs;
use crate::error::{Error, Result};
use crate::ops::exec::{self, ExecOptions, Target};

#[derive(Debug, clap::Args)]
pub struct ExecArgs {
    /// An instance (e.g. app1-0) or a service (mongodb, nats, prometheus, grafana, traefik):
    /// the command runs in its container. Not given with --host or --all.
    #[arg(value_name = "TARGET", required_unless_present_any = ["host", "all"], conflicts_with_all = ["host", "all"])]
    pub target: Option<String>,
    /// Run the command on this host itself, outside any container.
    #[arg(long, value_name = "NAME", conflicts_with = "all")]
    pub host: Option<String>,
    /// Run the command in every instance, one host after another, lines prefixed by the instance.
    #[arg(long)]
    pub all: bool,
    /// Forward standard input to the command (`-i` is the inventory, as in every command).
    /// Not with --all: one input cannot be read by every instance.
    #[arg(long, conflicts_with = "all")]
    pub stdin: bool,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

pub fn run(global: &GlobalArgs, args: ExecArgs) -> Result<i32> {
    let target = match (args.target, args.host, args.all) {
        (Some(name), None, false) => Target::Container(name),
        (None, Some(host), false) => Target::Host(host),
        (None, None, true) => Target::AllInstances,
        _ => return Err(Error::bad_input("give one of TARGET, --host NAME or --all")),
    };
    let options = ExecOptions { connect: global.connect(), target, command: args.command, stdin: args.stdin };
    exec::exec(&global.inventory, &options, &mut std::io::stdout(), &mut std::io::stderr())
}

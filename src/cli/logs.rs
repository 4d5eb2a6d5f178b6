//! `rcfleet logs`: arguments only; the work is in `ops::logs`.

use super::GlobalArgs;
use crate::error::Result;
use crate::ops;

#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    /// An instance (e.g. app1-0) or a service: mongodb, mongodb-init, nats, prometheus, grafana, traefik.
    #[arg(value_name = "TARGET")]
    pub target: String,
    /// Keep printing new lines until Ctrl-C.
    #[arg(short, long)]
    pub follow: bool,
    /// Only lines since then: a duration back from now (10m, 2h) or a time (2026-01-31T08:00:00Z).
    #[arg(long, value_name = "D")]
    pub since: Option<String>,
    /// Only the last N lines (or `all`).
    #[arg(long, value_name = "N")]
    pub tail: Option<String>,
}

pub fn run(global: &GlobalArgs, args: LogsArgs) -> Result<i32> {
    let options = ops::logs::LogsOptions {
        connect: global.connect(),
        target: args.target,
        follow: args.follow,
        since: args.since,
        tail: args.tail,
    };
    ops::logs::logs(&global.inventory, &options, &mut std::io::stdout().lock())?;
    Ok(0)
}

//! `rcfleet upgrade`: arguments only; the work is in `ops::upgrade`.

use super::GlobalArgs;
use crate::error::Result;
use crate::ops::upgrade::{self, Strategy, UpgradeOptions};

#[derive(Debug, clap::Args)]
pub struct UpgradeArgs {
    /// The release to move to: X.Y.Z, X.Y.Z-rc.N, or X.x / X.Y.x for the newest stable match
    /// in the registry.
    #[arg(long, value_name = "RELEASE")]
    pub release: String,
    /// Instances replaced at a time after the canary (default: upgrade.batch_size, else 1).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub batch: Option<u32>,
    /// `rolling` keeps serving; `recreate` stops every instance first (announced downtime).
    #[arg(long, value_enum, default_value = "rolling")]
    pub strategy: Strategy,
    /// Allow moving to an older release (database migrations cannot be undone).
    #[arg(long)]
    pub allow_downgrade: bool,
    /// Upgrade even when the running MongoDB is not supported by the new release (loud; the
    /// inventory then records mongodb.allow_unsupported = true).
    #[arg(long)]
    pub allow_unsupported_mongodb: bool,
    /// Upgrade even when the fleet is not healthy.
    #[arg(long)]
    pub force: bool,
    /// Do not take a mongodump backup first.
    #[arg(long)]
    pub skip_backup: bool,
    /// On failure, stop and leave upgraded instances as they are instead of rolling them back.
    #[arg(long)]
    pub no_rollback: bool,
    /// Resolve the release, run the guards and print the steps; change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

pub fn run(global: &GlobalArgs, args: UpgradeArgs) -> Result<i32> {
    let options = UpgradeOptions {
        release: args.release,
        batch: args.batch,
        strategy: args.strategy,
        allow_downgrade: args.allow_downgrade,
        allow_unsupported_mongodb: args.allow_unsupported_mongodb,
        force: args.force,
        skip_backup: args.skip_backup,
        no_rollback: args.no_rollback,
        dry_run: args.dry_run,
        connect: global.connect(),
    };
    let outcome = upgrade::upgrade(&global.inventory, &options)?;
    global.print(&outcome);
    // A dry run that a guard refused says so on stdout and fails like the real run would.
    Ok(if outcome.refused() { crate::error::exit::FAILED } else { 0 })
}

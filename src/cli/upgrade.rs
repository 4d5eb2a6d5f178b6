//! `rcfleet upgrade`: arguments only; the work is in `ops::upgrade`.

use super::GlobalArgs;
use crate::error::Result;
use crate::inventory;
use crate::ops::hooks::{Hook, Run};
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
    /// `rolling` keeps serving, start-first or stop-first as `upgrade.strategy` says (auto:
    /// start-first where every app host has the memory for it); `start-first` starts each new
    /// instance on its spare ports before the old one stops; `stop-first` stops it first;
    /// `recreate` stops every instance first (announced downtime).
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
    // A dry run changes nothing, so there is nothing for the hooks to announce or guard.
    let mut hooks = (!options.dry_run).then(|| inventory::load(&global.inventory)).transpose()?.map(|fleet| {
        let mut hooks = Run::new(&global.inventory, "upgrade", &fleet);
        hooks.set("RCFLEET_RELEASE_FROM", fleet.workspace.release.to_string());
        hooks.set("RCFLEET_RELEASE", options.release.clone());
        hooks
    });
    if let Some(hooks) = &hooks {
        hooks.run(Hook::PreUpgrade)?;
    }
    let outcome = match (upgrade::upgrade(&global.inventory, &options), hooks.as_mut()) {
        // Bad input (exit 2) is not a failed upgrade: nothing was attempted.
        (Err(err), Some(hooks)) if err.exit_code() == crate::error::exit::FAILED => {
            hooks.set("RCFLEET_RESULT", "failed");
            hooks.set("RCFLEET_ERROR", err.to_string());
            // The upgrade's own error is what the operator must read first; a failing hook is added.
            if let Err(hook) = hooks.run(Hook::UpgradeFailed) {
                return Err(crate::error::Error::failed(format!("{err}\n{hook}")));
            }
            return Err(err);
        }
        (outcome, _) => outcome?,
    };
    global.print(&outcome);
    if let Some(hooks) = hooks.as_mut() {
        hooks.set("RCFLEET_RELEASE", outcome.to.to_string());
        hooks.set("RCFLEET_RESULT", "succeeded");
        hooks.run(Hook::PostUpgrade)?;
    }
    // A dry run that a guard refused says so on stdout and fails like the real run would.
    Ok(if outcome.refused() { crate::error::exit::FAILED } else { 0 })
}

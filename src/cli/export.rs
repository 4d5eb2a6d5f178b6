//! `rcfleet export helm-values`: arguments only; the work is in `ops::export`.

use std::path::PathBuf;

use clap::Subcommand;

use super::GlobalArgs;
use crate::error::Result;
use crate::ops::export::{self, HelmRequest};

#[derive(Debug, Subcommand)]
pub enum ExportCommand {
    /// Values for Rocket.Chat's official Helm chart (rocketchat), from this inventory: release,
    /// domain, instances, microservices, ingress and TLS, monitoring. No secret value is written
    /// unless --secrets-manifest asks for it.
    HelmValues(HelmValuesArgs),
}

#[derive(Debug, clap::Args)]
pub struct HelmValuesArgs {
    /// Write the values to FILE instead of standard output.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// The chart version to write keys for (default: the newest rcfleet knows).
    #[arg(long, value_name = "V")]
    pub chart_version: Option<String>,
    /// Also write the Kubernetes Secrets the values refer to (MongoDB URI, licence), with their
    /// values, to FILE (mode 0600).
    #[arg(long, value_name = "FILE")]
    pub secrets_manifest: Option<PathBuf>,
}

pub fn run(global: &GlobalArgs, command: ExportCommand) -> Result<i32> {
    match command {
        ExportCommand::HelmValues(args) => {
            let request = HelmRequest {
                out: args.out.as_deref(),
                chart_version: args.chart_version.as_deref(),
                secrets_manifest: args.secrets_manifest.as_deref(),
            };
            global.print(&export::helm_values(&global.inventory, &request, &global.connect())?);
        }
    }
    Ok(0)
}

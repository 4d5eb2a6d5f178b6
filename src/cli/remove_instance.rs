//! `rcfleet remove-instance`: arguments only; the work is in `ops::remove_instance`.

use super::GlobalArgs;
use crate::error::Result;
use crate::ops;

#[derive(Debug, clap::Args)]
pub struct RemoveInstanceArgs {
    /// The instances to remove, by name (e.g. app1-1).
    #[arg(value_name = "INSTANCE", required_unless_present_any = ["host", "service"])]
    pub instances: Vec<String>,
    /// Remove every instance of this host.
    #[arg(long, value_name = "NAME")]
    pub host: Option<String>,
    /// Remove the last containers of this microservice (e.g. ddp-streamer) instead of instances.
    #[arg(long, value_name = "SERVICE", conflicts_with = "instances")]
    pub service: Option<String>,
    /// With --service: how many containers to remove (1 to 100).
    #[arg(long, default_value_t = 1, value_name = "K", requires = "service", value_parser = clap::value_parser!(u32).range(1..=100))]
    pub count: u32,
}

pub fn run(global: &GlobalArgs, args: RemoveInstanceArgs) -> Result<i32> {
    if let Some(service) = args.service {
        let options = ops::service_replicas::ReplicaOptions {
            connect: global.connect(),
            service,
            host: args.host,
            count: args.count,
        };
        global.print(&ops::service_replicas::remove_replicas(&global.inventory, &options)?);
        return Ok(0);
    }
    let options = ops::remove_instance::RemoveOptions {
        connect: global.connect(),
        instances: args.instances,
        host: args.host,
    };
    global.print(&ops::remove_instance::remove_instance(&global.inventory, &options)?);
    Ok(0)
}

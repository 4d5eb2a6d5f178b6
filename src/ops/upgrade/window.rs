//! The window of mixed versions in an upgrade: which containers run which release when (the
//! plan's steps), and how long the old and the new release ran side by side (the report).
//!
//! It opens when the first container of the new release is ready (the canary) and closes when
//! the last container of the old release stopped: the instances roll first, because the
//! canary runs the database migrations the new services expect; then the services that no
//! client reaches directly move together (as short a mixed bus as possible); the ddp-streamers
//! go last and one at a time, because they hold the clients' WebSocket sessions.

use std::time::Instant;

use serde_json::{json, Value};

use crate::fleet::Fleet;
use crate::microservices::{self, Service};
use crate::ops::ddp_roll::StreamerMove;
use crate::ops::services::ServicesMoved;

/// What the report says about the mixed versions of a finished upgrade.
pub struct Window {
    /// From the first new container ready to the last old one stopped; `None` when this run
    /// replaced no instance (an interrupted run did, so the window opened before it).
    pub seconds: Option<f64>,
    pub streamers: Vec<StreamerMove>,
}

impl Window {
    /// `first_ready`: the first instance ready on the new release; `instances_closed`: when the
    /// last old instance had stopped (`None`: before `first_ready`, as with `recreate`);
    /// `services`: the services' move, if any.
    pub fn measure(first_ready: Option<Instant>, instances_closed: Option<Instant>, services: Option<ServicesMoved>) -> Window {
        let (closed, streamers) = match services {
            Some(moved) => (Some(moved.streamers.last_old_stopped.unwrap_or(moved.others_moved)), moved.streamers.streamers),
            None => (instances_closed, Vec::new()),
        };
        let seconds = first_ready.map(|opened| closed.map_or(0.0, |closed| closed.saturating_duration_since(opened).as_secs_f64()));
        Window { seconds, streamers }
    }

    pub fn to_text(&self, from: &str, to: &str) -> String {
        let mut out = match self.seconds {
            Some(seconds) => format!(
                "\nMixed versions: {from} and {to} ran side by side for {seconds:.1} s (first {to} container ready -> \
                 last {from} container stopped).\n"
            ),
            None => format!("\nMixed versions: opened by the interrupted run this one finished; closed now, all on {to}.\n"),
        };
        if !self.streamers.is_empty() {
            out.push_str("\nddp-streamers, one at a time (out of the /websocket route -> back in):\n");
            for s in &self.streamers {
                let cut = s.cut.map_or("sessions cut: unknown".to_string(), |n| format!("{n} session(s) cut"));
                out.push_str(&format!("  {:<16} {:<8} {:>7.1} s  {cut}\n", s.name, s.host, s.seconds));
            }
        }
        out
    }

    pub fn to_json(&self) -> Value {
        json!({
            "seconds": self.seconds,
            "ddp_streamers": self.streamers.iter().map(|s| json!({
                "name": s.name, "host": s.host, "seconds": s.seconds, "sessions_cut": s.cut,
            })).collect::<Vec<_>>(),
        })
    }
}

/// The plan's steps for the services (after the instances) and the window, in order.
pub fn steps(fleet: &Fleet, new_fleet: &Fleet) -> Vec<String> {
    let (from, to) = (&fleet.workspace.release, &new_fleet.workspace.release);
    let containers = microservices::containers(new_fleet);
    let mut steps = Vec::new();
    let (streamers, others): (Vec<_>, Vec<_>) = containers.iter().partition(|c| c.service == Service::DdpStreamer);
    let at = |c: &&microservices::ServiceContainer| format!("{} ({})", c.name, c.host);
    if !others.is_empty() {
        steps.push(format!(
            "recreate the services on {to} together, each healthy on /health: {}",
            others.iter().map(at).collect::<Vec<_>>().join(", ")
        ));
    }
    if !streamers.is_empty() {
        let drain = new_fleet.upgrade.drain_seconds;
        let alone = if streamers.len() == 1 { " (the only one: the instances take WebSockets meanwhile)" } else { "" };
        steps.push(format!(
            "ddp-streamers one at a time, {}: out of Traefik's /websocket route (confirmed){alone}, wait until it holds \
             no WebSocket session or {drain} s (sessions still open are cut as it stops; their clients reconnect to \
             another streamer), recreate on {to}, healthy on /health, back into the route (confirmed UP)",
            streamers.iter().map(at).collect::<Vec<_>>().join(", ")
        ));
    }
    let services = if containers.is_empty() { String::new() } else { " and every service container until it moves".to_string() };
    steps.push(format!(
        "mixed versions from the first instance ready on {to} until the last {from} container stops: the instances \
         not yet replaced{services} run {from} beside {to} (the report says how long)"
    ));
    steps
}

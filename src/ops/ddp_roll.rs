//! `upgrade` moves the ddp-streamers one at a time, as the rollout engine moves instances
//! stop-first: out of Traefik's `/websocket` route (confirmed through its API), drained,
//! recreated on the new release, healthy on `/health`, back into the route (confirmed UP). The
//! other streamers take the WebSockets meanwhile; a fleet with a single streamer leaves the
//! route out while it moves, and the instances (Meteor's own DDP server) take them.
//!
//! The drain is a bounded wait, not a close: Rocket.Chat's ddp-streamer has no way to be asked
//! to close its sessions, and when it stops it cuts every one without a WebSocket close frame
//! (`DDPStreamer.stopped()`: `client.terminate()`). So rcfleet waits, at most
//! `upgrade.drain_seconds`, until the streamer counts no open WebSocket (`users_connected`, the
//! gauge its moleculer metrics keep per connection); what is still open then is cut when it
//! stops, its clients reconnect through the route to another streamer (Rocket.Chat's client
//! reconnects by itself), and the report says how many were cut.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::converge::{converge_unit, send_files, unit_files};
use super::hosts::Hosts;
use super::instances::Changes;
use super::report::Reporter;
use super::service_replicas::publish_ddp_route;
use super::services::{ready_ddp_streamers, wait_healthy};
use crate::error::{Error, Result};
use crate::fleet::Fleet;
use crate::microservices::ServiceContainer;
use crate::remote::Connection;
use crate::render::{self, HostArtifacts};

/// One ddp-streamer moved to the new release.
pub struct StreamerMove {
    pub name: String,
    pub host: String,
    /// From leaving Traefik's route to back in it.
    pub seconds: f64,
    /// Sessions still open when it stopped (cut without a close frame); `None`: its metrics did
    /// not answer, so how many is unknown.
    pub cut: Option<u64>,
}

/// What moving the ddp-streamers did.
#[derive(Default)]
pub struct Rolled {
    pub streamers: Vec<StreamerMove>,
    /// When the last old ddp-streamer container had been stopped (replaced).
    pub last_old_stopped: Option<Instant>,
}

/// Moves every ddp-streamer of `fleet` (the fleet on the new release) to its release with the
/// files of `files`, one at a time; see the module doc.
pub fn roll(fleet: &Fleet, remote: &Hosts, files: &[HostArtifacts], report: &Reporter) -> Result<Rolled> {
    let streamers = render::ddp_streamers(fleet);
    let release = &fleet.workspace.release;
    let mut rolled = Rolled::default();
    for streamer in &streamers {
        let started = Instant::now();
        let cut = move_one(fleet, remote, files, report, streamer, &mut rolled).map_err(|err| {
            let done: Vec<&str> = rolled.streamers.iter().map(|s| s.name.as_str()).collect();
            let left: Vec<&str> =
                streamers.iter().map(|s| s.name.as_str()).filter(|n| !done.contains(n) && *n != streamer.name).collect();
            Error::failed(format!(
                "moving {} on {} to {release} failed: {err}\nIt stays out of Traefik's /websocket route; the ready \
                 ddp-streamers serve the WebSockets. On {release}: {}. Not moved yet: {}.",
                streamer.name,
                streamer.host,
                if done.is_empty() { "none".to_string() } else { done.join(", ") },
                if left.is_empty() { "none".to_string() } else { left.join(", ") },
            ))
        })?;
        let seconds = started.elapsed().as_secs_f64();
        report.step("ddp-streamer", &streamer.host, format!("{} on {release}, back in the /websocket route ({seconds:.1} s)", streamer.name));
        rolled.streamers.push(StreamerMove { name: streamer.name.clone(), host: streamer.host.clone(), seconds, cut });
    }
    Ok(rolled)
}

/// Out of the route, drained, recreated, healthy, back in; returns how many sessions were cut.
fn move_one(
    fleet: &Fleet,
    remote: &Hosts,
    files: &[HostArtifacts],
    report: &Reporter,
    streamer: &ServiceContainer,
    rolled: &mut Rolled,
) -> Result<Option<u64>> {
    let conn = remote.host(&streamer.host);
    let others: Vec<ServiceContainer> = ready_ddp_streamers(fleet, remote).into_iter().filter(|c| c != streamer).collect();
    if others.is_empty() {
        report.step("ddp-streamer", &streamer.host, format!("{} is the only ready ddp-streamer: the instances take WebSockets while it moves", streamer.name));
    }
    publish_ddp_route(fleet, remote, report, &others, &mut Changes::new())?;
    let cut = drain(remote, conn, streamer, Duration::from_secs(fleet.upgrade.drain_seconds), report);

    // Every file of the unit counts as changed: `compose up` recreates the container only when
    // its configuration differs, and a run that died after sending the files is finished too.
    let deploy_dir = render::deploy_dir(fleet);
    let unit = render::service_unit(fleet, streamer);
    let unit_files = unit_files(files, &unit);
    send_files(conn, &deploy_dir, &unit_files)?;
    let paths = unit_files.iter().map(|f| f.path.clone()).collect();
    let changed = BTreeMap::from([(streamer.host.clone(), paths)]);
    converge_unit(fleet, conn, &unit, &changed, &deploy_dir, report)?;
    rolled.last_old_stopped = Some(Instant::now());
    wait_healthy(fleet, remote, conn, streamer, report)?;
    publish_ddp_route(fleet, remote, report, &ready_ddp_streamers(fleet, remote), &mut Changes::new())?;
    Ok(cut)
}

/// Waits until `streamer` counts no open session, at most `time`; returns how many were still
/// open at the end (`None`: its metrics did not answer).
fn drain(remote: &Hosts, conn: &Connection, streamer: &ServiceContainer, time: Duration, report: &Reporter) -> Option<u64> {
    let started = Instant::now();
    loop {
        let open = open_sessions(remote, conn, streamer);
        let waited = started.elapsed();
        if open == Some(0) {
            report.step("drain", &streamer.host, format!("{}: no WebSocket session open ({:.1} s)", streamer.name, waited.as_secs_f64()));
            return open;
        }
        if waited >= time {
            let open_now = open.map_or("an unknown number of".to_string(), |n| n.to_string());
            report.step(
                "drain",
                &streamer.host,
                format!("{}: {open_now} WebSocket session(s) still open after {} s are cut as it stops; their clients reconnect", streamer.name, time.as_secs()),
            );
            return open;
        }
        let open_now = open.map_or("?".to_string(), |n| n.to_string());
        let left = time.saturating_sub(waited);
        report.waiting("drain", format!("{} out of the /websocket route, {open_now} session(s) open, {}s left", streamer.name, left.as_secs()));
        std::thread::sleep(left.min(Duration::from_millis(250)));
    }
}

/// How many WebSocket sessions `streamer` holds now, from its metrics page.
fn open_sessions(remote: &Hosts, conn: &Connection, streamer: &ServiceContainer) -> Option<u64> {
    let http = remote.http(conn.name(), &streamer.private_address, streamer.metrics_port).ok()?;
    let response = remote.block_on(http.get("/metrics")).ok()?;
    (response.status == 200).then(|| sessions_in_metrics(&response.body))
}

/// The sum of `users_connected` (ddp-streamer's gauge of open WebSockets, one series per
/// moleculer node) in a Prometheus text page; a page without it counts none (moleculer's
/// reporter leaves out a gauge that was never set).
fn sessions_in_metrics(metrics: &str) -> u64 {
    let total: f64 = metrics
        .lines()
        .filter(|line| line.starts_with("users_connected{") || line.starts_with("users_connected "))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    total.max(0.0).round() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_sessions_are_the_sum_of_users_connected() {
        let page = "# HELP users_connected Users connected by streamer\n# TYPE users_connected gauge\n\
                    users_connected{namespace=\"\",nodeID=\"app1-1\"} 3\nusers_connected{namespace=\"\",nodeID=\"app1-2\"} 1\n\
                    users_connected_total 9\nusers_logged{nodeID=\"app1-1\"} 2\n";
        assert_eq!(sessions_in_metrics(page), 4);
        assert_eq!(sessions_in_metrics("moleculer_node_type 1\n"), 0);
        assert_eq!(sessions_in_metrics("users_connected 0\n"), 0);
    }
}

//! The remote layer: everything rcfleet does to a server goes through here.
//!
//! [`Connection::open`] connects to a [`Host`](crate::fleet::Host) over SSH (libssh2): the
//! inventory's settings merged with `~/.ssh/config`, through a jump host when one is set, the
//! host key checked against known_hosts **before** any credential is sent (unknown hosts are
//! refused unless `accept_new_host_keys`, which appends one line), then the agent's keys and
//! the identity files in turn. Commands are argument vectors ([`Argv`], quoted in one place by
//! [`shell_quote`]): [`Connection::exec`] returns an [`Output`] (exit status, stdout, stderr;
//! a channel closed without a status is an error; every command has a time limit, by default
//! the host's `ssh.command_timeout_seconds`), [`Connection::run`] requires success, and
//! [`Connection::upload`] writes a file atomically with an explicit mode, skipping it when the
//! content is already there. [`Connection::forward_tcp`] and [`Connection::forward_unix`] give
//! a local [`Tunnel`]; on top of them [`Connection::docker`] is the host's Docker Engine API
//! (bollard, version negotiated), and [`Connection::http`] reaches an HTTP service listening
//! on the host. [`Connection::compose`] builds the commands of
//! whichever Compose the host has. [`fan_out`] runs a step on many hosts at once with a bound,
//! keeping every host's result. Every error names the host, what was attempted and what to check.
//!
//! All of it is blocking except the Docker and HTTP calls; a `Connection` is `Sync` and runs
//! one command at a time (each tunnel has a session of its own).

mod argv;
mod bundle;
mod channels;
mod connection;
mod docker;
mod files;
mod known_hosts;
mod session;
mod target;
mod tunnel;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

pub use argv::{shell_quote, Argv};
pub use bundle::Bundle;
pub use channels::{Answer, Request};
pub use connection::{ConnectOptions, Connection, ExecOptions, Output, Stream, Uploaded};
pub use docker::{compose_argv, compose_in, Compose, ComposeCli, HttpResponse, HttpTunnel, DOCKER_SOCKET};
pub use files::{file_states_argv, file_states_in, sha256_hex, FileState};
pub use target::{how_to_reach, Origin, Origins, Reach, SSH_CONFIG_ENV};
pub use tunnel::{LocalEndpoint, Tunnel};

use crate::error::{Error, Result};

/// Runs `work` on every item, at most `limit` at a time, and returns each item's name with its
/// result, in the order of `items`. One failure neither stops nor hides the others.
pub fn fan_out<T, R, N, W>(items: &[T], limit: usize, name: N, work: W) -> Vec<(String, Result<R>)>
where
    T: Sync,
    R: Send,
    N: Fn(&T) -> String,
    W: Fn(&T) -> Result<R> + Sync,
{
    let results: Vec<Mutex<Option<Result<R>>>> = items.iter().map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..limit.clamp(1, items.len().max(1)) {
            scope.spawn(|| loop {
                let index = next.fetch_add(1, Ordering::SeqCst);
                let Some(item) = items.get(index) else { break };
                let result = work(item);
                *results[index].lock().unwrap_or_else(|p| p.into_inner()) = Some(result);
            });
        }
    });
    items
        .iter()
        .zip(results)
        .map(|(item, slot)| {
            let result = slot.into_inner().unwrap_or_else(|p| p.into_inner()).expect("every item ran");
            (name(item), result)
        })
        .collect()
}

/// All results when every host succeeded; otherwise one error listing every failed host.
pub fn all_succeeded<R>(results: Vec<(String, Result<R>)>) -> Result<Vec<(String, R)>> {
    let mut failures = Vec::new();
    let mut done = Vec::new();
    for (name, result) in results {
        match result {
            Ok(value) => done.push((name, value)),
            Err(e) => {
                let message = e.to_string();
                let named = if message.starts_with(&format!("{name}:")) { message } else { format!("{name}: {message}") };
                failures.push(named);
            }
        }
    }
    if failures.is_empty() {
        return Ok(done);
    }
    let total = failures.len() + done.len();
    Err(Error::failed(format!("{} of {total} hosts failed:\n  {}", failures.len(), failures.join("\n  "))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_connection_can_be_shared_between_threads() {
        fn shareable<T: Send + Sync>() {}
        shareable::<Connection>();
        shareable::<Tunnel>();
        shareable::<HttpTunnel>();
    }

    #[test]
    fn fan_out_keeps_order_and_every_failure() {
        let hosts = ["a", "b", "c", "d"];
        let results = fan_out(&hosts, 2, |h| h.to_string(), |h| {
            if *h == "b" || *h == "d" {
                Err(Error::failed(format!("{h}: broke")))
            } else {
                Ok(h.len())
            }
        });
        let names: Vec<&str> = results.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, hosts);
        let message = all_succeeded(results).unwrap_err().to_string();
        assert_eq!(message, "2 of 4 hosts failed:\n  b: broke\n  d: broke");
    }

    #[test]
    fn fan_out_respects_the_bound() {
        let running = AtomicUsize::new(0);
        let peak = AtomicUsize::new(0);
        let items: Vec<usize> = (0..12).collect();
        let results = fan_out(&items, 4, |i| format!("h{i}"), |_| {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(50));
            running.fetch_sub(1, Ordering::SeqCst);
            Ok(())
        });
        assert_eq!(peak.load(Ordering::SeqCst), 4);
        assert_eq!(all_succeeded(results).unwrap().len(), 12);
    }

    #[test]
    fn all_succeeded_names_hosts_whose_errors_do_not() {
        let results: Vec<(String, Result<()>)> = vec![("db".into(), Err(Error::failed("timed out")))];
        assert_eq!(all_succeeded(results).unwrap_err().to_string(), "1 of 1 hosts failed:\n  db: timed out");
    }
}

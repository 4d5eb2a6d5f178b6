//! The fleet's hosts, connected: one verified SSH connection per host for the whole run, and a
//! small async runtime for the Docker API and HTTP checks that go through those connections.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex};

use super::report::Reporter;
use crate::error::{Error, Result};
use crate::fleet::{Fleet, Host};
use crate::remote::{self, ConnectOptions, Connection, HttpTunnel};

/// How many hosts are worked on at once.
pub const CONCURRENCY: usize = 32;

pub struct Hosts {
    connections: BTreeMap<String, Connection>,
    runtime: tokio::runtime::Runtime,
    /// HTTP tunnels kept for the whole run: a tunnel costs an SSH handshake, and the same
    /// services are asked again and again while rcfleet waits for them.
    tunnels: Mutex<HashMap<(String, String, u16), Arc<HttpTunnel>>>,
}

impl Hosts {
    /// Connects to `hosts` at once. If any host cannot be reached, fails listing every one
    /// that could not (and why) before anything is changed anywhere.
    pub fn connect(hosts: &[&Host], options: &ConnectOptions, report: &Reporter) -> Result<Hosts> {
        let results = remote::fan_out(hosts, CONCURRENCY, |h| h.name.clone(), |host| Connection::open(host, options));
        let connections = remote::all_succeeded(results)
            .map_err(|err| Error::failed(format!("{}\nNothing was changed. Fix the connection problems above and run again.", err)))?;
        let names: Vec<&str> = connections.iter().map(|(name, _)| name.as_str()).collect();
        report.step("connect", "", format!("{} (host keys verified)", names.join(", ")));
        Ok(Hosts { connections: connections.into_iter().collect(), runtime: runtime()?, tunnels: Mutex::new(HashMap::new()) })
    }

    /// Connects to the database host only: for the commands that read or change what rcfleet
    /// keeps there (the deploy lock, the generated secrets).
    pub fn connect_database(fleet: &Fleet, options: &ConnectOptions) -> Result<Hosts> {
        Hosts::connect(&[fleet.database_host()], options, &Reporter::quiet_log())
    }

    /// Connects to every host of the fleet.
    pub fn connect_fleet(fleet: &Fleet, options: &ConnectOptions, report: &Reporter) -> Result<Hosts> {
        let hosts: Vec<&Host> = fleet.hosts.iter().collect();
        Hosts::connect(&hosts, options, report)
    }

    /// Connects to `hosts` at once, keeping those that answer: for `status`, where a host that
    /// cannot be reached is a finding, not a reason to stop. Returns the unreachable hosts with why.
    pub fn connect_reachable(hosts: &[&Host], options: &ConnectOptions) -> Result<(Hosts, Vec<(String, String)>)> {
        let mut connected = Hosts { connections: BTreeMap::new(), runtime: runtime()?, tunnels: Mutex::new(HashMap::new()) };
        let unreachable = connected.reconnect(hosts, &[], options);
        Ok((connected, unreachable))
    }

    /// Keeps the connections to `hosts`, except those to `close` (a look at them failed: the
    /// connection may be dead), and connects at once to those of `hosts` without one (again:
    /// `status --watch`); a connection kept costs no handshake. Returns the hosts that could
    /// not be reached, with why.
    pub fn reconnect(&mut self, hosts: &[&Host], close: &[String], options: &ConnectOptions) -> Vec<(String, String)> {
        self.connections.retain(|name, _| hosts.iter().any(|h| h.name == *name) && !close.contains(name));
        self.tunnels.lock().unwrap_or_else(|p| p.into_inner()).retain(|(name, _, _), _| self.connections.contains_key(name));
        let missing: Vec<&Host> = hosts.iter().copied().filter(|h| !self.connections.contains_key(&h.name)).collect();
        let results = remote::fan_out(&missing, CONCURRENCY, |h| h.name.clone(), |host| Connection::open(host, options));
        let mut unreachable = Vec::new();
        for (name, result) in results {
            match result {
                Ok(conn) => {
                    self.connections.insert(name, conn);
                }
                Err(err) => unreachable.push((name, err.to_string())),
            }
        }
        unreachable
    }

    /// The connection to `name`, if it was reached.
    pub fn try_host(&self, name: &str) -> Option<&Connection> {
        self.connections.get(name)
    }

    pub fn host(&self, name: &str) -> &Connection {
        self.connections.get(name).expect("connected to every host of the fleet")
    }

    /// An HTTP client for `target:port` as seen from `host`, through a tunnel opened once per run
    /// (again after a request through it timed out: its session may be wedged).
    pub fn http(&self, host: &str, target: &str, port: u16) -> Result<Arc<HttpTunnel>> {
        let key = (host.to_string(), target.to_string(), port);
        if let Some(tunnel) = self.tunnels.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
            if !tunnel.timed_out() {
                return Ok(tunnel.clone());
            }
        }
        let fresh = Arc::new(self.host(host).http(target, port)?);
        let mut tunnels = self.tunnels.lock().unwrap_or_else(|p| p.into_inner());
        let tunnel = tunnels.entry(key).or_insert_with(|| fresh.clone());
        if tunnel.timed_out() {
            *tunnel = fresh;
        }
        Ok(tunnel.clone())
    }

    /// Runs a future in the background (e.g. a stream feeding a blocking reader).
    pub fn spawn<F: Future<Output = ()> + Send + 'static>(&self, future: F) {
        self.runtime.spawn(future);
    }

    /// Runs a future (Docker API, HTTP) to completion from any thread.
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.runtime.handle().block_on(future)
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::failed(format!("cannot start the async runtime: {e}")))
}

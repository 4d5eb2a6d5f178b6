//! One run of a command over the fleet, opened the same way by every command: the inventory
//! loaded and rendered with placeholder secrets (bad input stops here, before any host is
//! contacted), the reporter, the SSH connections, the deploy lock, preflight, the generated
//! secrets and the files rendered with them. What differs between commands is said in
//! [`RunOptions`]; the functions of an operation then take `&Run`.

use std::path::Path;
use std::sync::OnceLock;

use super::advice;
use super::hosts::Hosts;
use super::lock;
use super::preflight;
use super::report::Reporter;
use super::secrets::Store;
use super::slots;
use crate::error::{Error, Result};
use crate::fleet::{Fleet, Host, Role};
use crate::inventory;
use crate::remote::ConnectOptions;
use crate::render::{self, HostArtifacts};

/// What a run does about hosts that cannot be reached.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum WhenUnreachable {
    /// Stops before anything changes, naming every one.
    Stop,
    /// App hosts are left out of the run ([`Run::fleet`]), which carries on without them
    /// (`up`); any other host stops it.
    CarryOnWithoutAppHosts,
    /// Reports them ([`Run::unreachable`]) and keeps them in the fleet (`status`).
    Report,
}

/// The generated secrets a run needs.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Secrets {
    /// None: [`Run::secrets`] are placeholders and [`Run::artifacts`] is empty.
    Skip,
    /// Those `up` created; a fleet never brought up is an error.
    Load,
    /// Read, the missing ones generated and written back (`up`).
    LoadOrCreate,
    /// Those the database host has, if it can be reached and has any; placeholders otherwise
    /// (`status` then shows the files holding them as differing).
    IfReadable,
}

/// What differs between the runs of the commands.
pub struct RunOptions<'a> {
    pub connect: &'a ConnectOptions,
    /// Names the run log (`up` logs to `.rcfleet/logs/<time>-up.log`); `None` reports nothing.
    pub log_as: Option<&'a str>,
    /// Say `advice::warnings` before connecting (`up`).
    pub advice: bool,
    pub when_unreachable: WhenUnreachable,
    /// Ctrl-C stops the run at its next safe point, saying this was interrupted (see
    /// `crate::interrupt`); `None` leaves Ctrl-C's default.
    pub graceful: Option<&'a str>,
    /// The command the deploy lock names; `None` takes no lock (or later: [`Run::lock`]).
    pub lock: Option<String>,
    pub preflight: bool,
    /// Asked under the lock, after preflight and before anything is written (the secrets
    /// included): a refusal here has changed nothing.
    pub check: Option<&'a dyn Fn(&Fleet, &Hosts) -> Result<()>>,
    pub secrets: Secrets,
}

impl<'a> RunOptions<'a> {
    /// Every host reached, reported in the run log `log_as`; no lock, preflight or secrets.
    pub fn new(log_as: &'a str, connect: &'a ConnectOptions) -> RunOptions<'a> {
        RunOptions {
            connect,
            log_as: Some(log_as),
            advice: false,
            when_unreachable: WhenUnreachable::Stop,
            graceful: None,
            lock: None,
            preflight: false,
            check: None,
            secrets: Secrets::Skip,
        }
    }

    /// A change to a fleet `up` brought up (`add-instance`): under the lock `command`, after
    /// preflight, with the secrets `up` generated, so that what starts gets the same credentials.
    pub fn change(log_as: &'a str, command: String, connect: &'a ConnectOptions) -> RunOptions<'a> {
        RunOptions { lock: Some(command), preflight: true, secrets: Secrets::Load, ..RunOptions::new(log_as, connect) }
    }
}

pub struct Run {
    /// The fleet this run works on: the inventory's, less the app hosts it carries on without.
    pub fleet: Fleet,
    /// The inventory's whole fleet, also the app hosts this run could not reach: Traefik's and
    /// Prometheus' lists are rendered from it, so that an SSH problem on the operator's side
    /// never takes serving capacity away.
    pub whole: Fleet,
    /// Where the fleet's files live on every host (`workspace.deploy_dir`).
    pub deploy_dir: String,
    pub hosts: Hosts,
    /// Hosts that could not be reached, with why (none with [`WhenUnreachable::Stop`]).
    pub unreachable: Vec<(String, String)>,
    pub report: Reporter,
    pub secrets: Store,
    /// Per host of [`Run::fleet`], the files rendered with [`Run::secrets`].
    pub artifacts: Vec<HostArtifacts>,
    /// Taken once at most ([`Run::lock`]); released when the run ends.
    lock: OnceLock<lock::Held>,
}

impl Run {
    /// Opens a run over the inventory at `inventory`.
    pub fn open(inventory: &Path, options: &RunOptions) -> Result<Run> {
        let fleet = inventory::load(inventory)?;
        Run::open_with(inventory, fleet, options)
    }

    /// Opens a run over `fleet`, read from `inventory` but not as the file says now (`add-instance`:
    /// as edited; `remove-instance`: as before the edit).
    pub fn open_with(inventory: &Path, fleet: Fleet, options: &RunOptions) -> Result<Run> {
        // Generated secrets as placeholders: a value no file can carry is bad input (exit 2).
        render::render(&fleet, &Store::preview())?;
        let report = match options.log_as {
            Some(command) => Reporter::new(inventory, command),
            None => Reporter::silent(),
        };
        if options.advice {
            for warning in advice::warnings(&fleet) {
                report.warn(warning);
            }
        }
        let (hosts, unreachable) = connect(&fleet, options, &report)?;
        let mut run = Run {
            deploy_dir: render::deploy_dir(&fleet),
            fleet: fleet.clone(),
            whole: fleet.clone(),
            hosts,
            unreachable,
            report,
            secrets: Store::preview(),
            artifacts: Vec::new(),
            lock: OnceLock::new(),
        };
        run.place(&fleet, options)?;
        if let Some(what) = options.graceful {
            crate::interrupt::graceful(what);
        }
        if let Some(command) = &options.lock {
            run.lock(command, None)?;
        }
        if options.preflight {
            preflight::run(&run.fleet, &run.hosts, &run.report)?;
        }
        if let Some(check) = options.check {
            check(&run.fleet, &run.hosts)?;
        }
        run.read_secrets(options)?;
        Ok(run)
    }

    /// The run brought up to date for another look (`status --watch`): the inventory read
    /// again, the connections to `close` (a look at them failed) closed, every host without a
    /// connection tried again, the ports and files as the hosts record them now. A connection
    /// kept costs no handshake. Only for runs that report unreachable hosts and take no lock.
    pub fn refresh(&mut self, inventory: &Path, options: &RunOptions, close: &[String]) -> Result<()> {
        assert!(
            options.when_unreachable == WhenUnreachable::Report && options.lock.is_none() && self.lock.get().is_none(),
            "only a run that changes nothing is refreshed"
        );
        let fleet = inventory::load(inventory)?;
        render::render(&fleet, &Store::preview())?;
        let hosts: Vec<&Host> = fleet.hosts.iter().collect();
        self.unreachable = self.hosts.reconnect(&hosts, close, options.connect);
        self.place(&fleet, options)?;
        self.read_secrets(options)
    }

    /// Each instance of `fleet` on the ports its host records (a start-first upgrade alternates
    /// them); the app hosts not reached left out when the run carries on without them.
    fn place(&mut self, fleet: &Fleet, options: &RunOptions) -> Result<()> {
        self.whole = slots::current(fleet, &self.hosts)?;
        self.fleet = self.whole.clone();
        if options.when_unreachable == WhenUnreachable::CarryOnWithoutAppHosts {
            self.fleet.hosts.retain(|h| !self.unreachable.iter().any(|(name, _)| *name == h.name));
        }
        self.deploy_dir = render::deploy_dir(&self.fleet);
        Ok(())
    }

    /// The generated secrets `options` asks for, and the files rendered with them.
    fn read_secrets(&mut self, options: &RunOptions) -> Result<()> {
        self.secrets = match options.secrets {
            Secrets::Skip => return Ok(()),
            Secrets::Load => Store::load(&self.fleet, self.database())?,
            Secrets::LoadOrCreate => Store::load_or_create(&self.fleet, self.database(), &self.report)?,
            Secrets::IfReadable => self
                .hosts
                .try_host(&self.fleet.database_host().name)
                .and_then(|db| Store::read(&self.fleet, db).ok().flatten())
                .unwrap_or_else(Store::preview),
        };
        self.artifacts = render::render(&self.whole, &self.secrets)?
            .into_iter()
            .filter(|host| self.fleet.host(&host.host).is_some())
            .collect();
        Ok(())
    }

    /// Takes the deploy lock on the database host for `command` (towards `release`), held until
    /// the run ends.
    pub fn lock(&self, command: &str, release: Option<String>) -> Result<()> {
        let held = lock::take(&self.fleet, self.database(), command, release)?;
        if let Err(twice) = self.lock.set(held) {
            twice.release(self.database());
            return Err(Error::failed(format!("`{command}` asked for the deploy lock it already holds")));
        }
        Ok(())
    }

    /// The deploy lock this run holds, if it took one.
    pub fn held_lock(&self) -> Option<&lock::Held> {
        self.lock.get()
    }

    /// The connection to the database host.
    pub fn database(&self) -> &crate::remote::Connection {
        self.hosts.host(&self.fleet.database_host().name)
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        if let Some(held) = self.lock.take() {
            held.release(self.database());
        }
    }
}

/// Connects to every host at once; what happens to those that do not answer is
/// `options.when_unreachable`.
fn connect(fleet: &Fleet, options: &RunOptions, report: &Reporter) -> Result<(Hosts, Vec<(String, String)>)> {
    let hosts: Vec<&Host> = fleet.hosts.iter().collect();
    match options.when_unreachable {
        WhenUnreachable::Stop => Ok((Hosts::connect(&hosts, options.connect, report)?, Vec::new())),
        WhenUnreachable::Report => Hosts::connect_reachable(&hosts, options.connect),
        WhenUnreachable::CarryOnWithoutAppHosts => {
            let (remote, unreachable) = Hosts::connect_reachable(&hosts, options.connect)?;
            let essential: Vec<String> = unreachable
                .iter()
                .filter(|(name, _)| fleet.host(name).is_some_and(|h| h.roles.iter().any(|r| *r != Role::Rocketchat)))
                .map(|(_, why)| why.clone())
                .collect();
            if !essential.is_empty() {
                return Err(Error::failed(format!(
                    "cannot reach the hosts every instance depends on:\n  {}\nNothing was changed. Fix the connection and run again.",
                    essential.join("\n  ")
                )));
            }
            let reached: Vec<&str> =
                fleet.hosts.iter().filter(|h| remote.try_host(&h.name).is_some()).map(|h| h.name.as_str()).collect();
            report.step("connect", "", format!("{} (host keys verified)", reached.join(", ")));
            for (name, why) in &unreachable {
                report.step("connect", name, format!("UNREACHABLE, carrying on without it: {why}"));
            }
            Ok((remote, unreachable))
        }
    }
}

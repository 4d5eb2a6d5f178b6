//! Command-line arguments. Each subcommand has a file that only turns its arguments into a
//! call of its operation in `ops`; every flag is defined once, with its help beside it.

mod add_instance;
mod backup;
mod completions;
mod exec;
mod export;
mod init;
mod lock;
mod logs;
mod mongodb;
mod plan;
mod prune;
mod remove_instance;
mod schema;
mod secrets;
mod status;
mod up;
mod upgrade;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::error::Result;
use crate::ops::report::Outcome;
use crate::remote::ConnectOptions;

/// Deploy and operate a multi-instance Rocket.Chat workspace on your own servers, over SSH,
/// with Docker Compose on each server.
#[derive(Debug, Parser)]
#[command(
    name = "rcfleet",
    version,
    long_version = crate::inventory::defaults::version_text(),
    about,
    long_about = None,
    propagate_version = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, clap::Args)]
pub struct GlobalArgs {
    /// The inventory file describing the fleet.
    #[arg(short, long, global = true, default_value = "inventory.toml", value_name = "FILE")]
    pub inventory: PathBuf,
    /// Print the result as a JSON document instead of text for people.
    #[arg(long, global = true)]
    pub json: bool,
    /// Show more detail (remote command output, prefixed by host).
    #[arg(short, long, global = true)]
    pub verbose: bool,
    /// No live progress bars on a terminal: plain timestamped lines, as when output is not a
    /// terminal (also with --json and -v).
    #[arg(short, long, global = true)]
    pub quiet: bool,
}

impl GlobalArgs {
    /// How to connect, for commands that only reach hosts already known.
    fn connect(&self) -> ConnectOptions {
        ConnectOptions { verbose: self.verbose, ..Default::default() }
    }

    /// Prints what a command did: text for people, or the JSON document with `--json`.
    fn print(&self, outcome: &dyn Outcome) {
        if self.json {
            println!("{}", serde_json::to_string_pretty(&outcome.to_json()).expect("outcome serialises"));
        } else {
            print!("{}", outcome.to_text());
        }
    }
}

/// Writes generated text (schema, completions, manual) to stdout. A reader that stops early
/// (`rcfleet man | head`) closes the pipe; that is not a failure.
fn write_stdout(bytes: &[u8]) -> Result<i32> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|_| stdout.flush()) {
        Ok(()) => Ok(0),
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => Ok(0),
        Err(err) => Err(crate::error::Error::failed(format!("cannot write to standard output: {err}"))),
    }
}

/// The connection flag of the commands that may meet a host for the first time.
#[derive(Debug, clap::Args)]
pub struct NewHostArgs {
    /// Trust hosts seen for the first time and record their keys (one line appended to known_hosts).
    #[arg(long)]
    pub accept_new_host_keys: bool,
}

impl NewHostArgs {
    fn connect(&self, global: &GlobalArgs) -> ConnectOptions {
        ConnectOptions { accept_new_host_keys: self.accept_new_host_keys, ..global.connect() }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a commented inventory from flags (--db, --lb, --app, --domain) or, on a terminal
    /// without them, from a few questions. Checked before it is written; never overwrites
    /// without --force.
    Init(init::InitArgs),
    /// Validate the inventory, render every host's files and show what would be deployed.
    /// Touches no server.
    Plan(plan::PlanArgs),
    /// Bring every host to what the inventory describes and check that the workspace serves:
    /// database and replica set, monitoring, every instance ready, Traefik and Prometheus
    /// confirmed. Running it again changes nothing; it also repairs drift.
    Up(up::UpArgs),
    /// Move every instance to another Rocket.Chat release: guards, backup, canary then
    /// batches drained from Traefik, automatic rollback on failure.
    Upgrade(upgrade::UpgradeArgs),
    /// Add Rocket.Chat instances to a host, or (with --address) a new host to the fleet and
    /// the inventory; only the new instances are started, then put behind Traefik and scraped.
    AddInstance(add_instance::AddInstanceArgs),
    /// Take instances out of Traefik (confirmed), let requests in flight finish, stop and
    /// remove them, drop their Prometheus targets, and update the inventory.
    RemoveInstance(remove_instance::RemoveInstanceArgs),
    /// Every host, instance and service: running, ready, version, Traefik and Prometheus view,
    /// and drift from the inventory. Exits 3 when anything is wrong or differs.
    Status(status::StatusArgs),
    /// The output of an instance or a service, through the Docker API, prefixed by its name.
    Logs(logs::LogsArgs),
    /// Run a command in an instance's or a service's container, on a host (--host) or in every
    /// instance (--all); output streamed, exit status passed through, each run audited.
    Exec(exec::ExecArgs),
    /// Free disk on every host: Rocket.Chat images older than the newest N releases there,
    /// stopped containers and unused volumes rcfleet left behind (by its labels, nothing else).
    Prune(prune::PruneArgs),
    /// Back up the workspace database to the database host (`backup list`: the archives).
    Backup(backup::BackupArgs),
    /// Put the workspace database back to a backup: the fleet stops meanwhile and starts again
    /// on the release recorded with the archive. Asks first unless --yes.
    Restore(backup::RestoreArgs),
    /// MongoDB: `status`, and `upgrade --to X.Y` one major at a time.
    #[command(subcommand)]
    Mongodb(mongodb::MongodbCommand),
    /// Show or remove the deploy lock that keeps two changing runs apart.
    #[command(subcommand)]
    Lock(lock::LockCommand),
    /// List the secrets rcfleet generated or reads (never their values), or show one value.
    #[command(subcommand)]
    Secrets(secrets::SecretsCommand),
    /// Describe the fleet for another system: `helm-values` for Rocket.Chat's Helm chart.
    #[command(subcommand)]
    Export(export::ExportCommand),
    /// Print the inventory's JSON Schema, for editors (Taplo, VS Code "Even Better TOML").
    Schema,
    /// Print shell completions: bash, zsh or fish.
    Completions(completions::CompletionsArgs),
    /// Print the manual page (roff): `rcfleet man | man -l -`.
    Man,
}

/// Runs the chosen command; returns the exit code for success paths (0, or 3 for `status`).
pub fn run(cli: Cli) -> Result<i32> {
    if cli.global.quiet || cli.global.json || cli.global.verbose {
        crate::ops::report::prefer_plain_lines();
    }
    match cli.command {
        Command::Init(args) => init::run(&cli.global, args),
        Command::Plan(args) => plan::run(&cli.global, args),
        Command::Up(args) => up::run(&cli.global, args),
        Command::Upgrade(args) => upgrade::run(&cli.global, args),
        Command::AddInstance(args) => add_instance::run(&cli.global, args),
        Command::RemoveInstance(args) => remove_instance::run(&cli.global, args),
        Command::Status(args) => status::run(&cli.global, args),
        Command::Logs(args) => logs::run(&cli.global, args),
        Command::Exec(args) => exec::run(&cli.global, args),
        Command::Prune(args) => prune::run(&cli.global, args),
        Command::Backup(args) => backup::run(&cli.global, args),
        Command::Restore(args) => backup::run_restore(&cli.global, args),
        Command::Mongodb(command) => mongodb::run(&cli.global, command),
        Command::Lock(command) => lock::run(&cli.global, command),
        Command::Secrets(command) => secrets::run(&cli.global, command),
        Command::Export(command) => export::run(&cli.global, command),
        Command::Schema => schema::run(),
        Command::Completions(args) => completions::completions(args),
        Command::Man => completions::man(),
    }
}

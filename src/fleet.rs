//! The resolved desired state of a fleet: every host with its roles, every instance with its
//! ports, every image with its tag. Built from a validated inventory (`inventory::load`); the
//! renderer, the planner and the operations read only this, never the TOML.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::microservices::Microservices;

/// A Rocket.Chat release: `X.Y.Z` or `X.Y.Z-rc.N`, the image tag of every instance.
/// Ordered as versions are: `8.1.0-rc.2 < 8.1.0 < 8.1.1`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Release {
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
    /// `Some(N)` for `-rc.N`.
    pub rc: Option<u64>,
}

impl Release {
    /// Parses the tag forms Rocket.Chat publishes: `X.Y.Z` and `X.Y.Z-rc.N`.
    pub fn parse(text: &str) -> Option<Release> {
        let (core, rc) = match text.split_once("-rc.") {
            Some((core, rc)) => (core, Some(parse_number(rc)?)),
            None => (text, None),
        };
        let mut parts = core.split('.');
        let major = parse_number(parts.next()?)?;
        let minor = parse_number(parts.next()?)?;
        let patch = parse_number(parts.next()?)?;
        if parts.next().is_some() {
            return None;
        }
        Some(Release { major, minor, patch, rc })
    }

    pub fn is_stable(&self) -> bool {
        self.rc.is_none()
    }
}

impl Ord for Release {
    fn cmp(&self, other: &Release) -> std::cmp::Ordering {
        // A release comes after each of its release candidates; a derived order would put
        // `rc: None` first and call upgrading from 8.1.0-rc.2 to 8.1.0 a downgrade.
        let key = |r: &Release| (r.major, r.minor, r.patch, r.rc.is_none(), r.rc);
        key(self).cmp(&key(other))
    }
}

impl PartialOrd for Release {
    fn partial_cmp(&self, other: &Release) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

fn parse_number(text: &str) -> Option<u64> {
    let leading_zero = text.len() > 1 && text.starts_with('0');
    if text.is_empty() || leading_zero || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

impl fmt::Display for Release {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)?;
        if let Some(rc) = self.rc {
            write!(f, "-rc.{rc}")?;
        }
        Ok(())
    }
}

/// Where a secret comes from. The value itself is never stored in the fleet.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum SecretRef {
    /// An environment variable of the machine running rcfleet.
    Env(String),
    /// A file on the machine running rcfleet (already made absolute).
    File(PathBuf),
}

impl fmt::Display for SecretRef {
    /// Names the source, never the value: safe to print.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretRef::Env(name) => write!(f, "environment variable {name}"),
            SecretRef::File(path) => write!(f, "file {}", path.display()),
        }
    }
}

impl SecretRef {
    /// Reads the value, trimmed of one trailing newline (files usually end with one). Read only
    /// when needed and never kept in the fleet; errors name the reference, never a value.
    pub fn resolve(&self) -> Result<String> {
        let value = match self {
            SecretRef::Env(name) => std::env::var(name).map_err(|_| {
                Error::bad_input(format!(
                    "secret {self} is not set; export {name} before running rcfleet (its value is never printed)"
                ))
            })?,
            SecretRef::File(path) => read_secret_file(path).map_err(|problem| Error::bad_input(format!("secret {self} {problem}")))?,
        };
        let value = value.strip_suffix('\n').map(|v| v.strip_suffix('\r').unwrap_or(v)).unwrap_or(&value);
        if value.is_empty() {
            return Err(Error::bad_input(format!("secret {self} is empty; give it a value")));
        }
        Ok(value.to_string())
    }
}

/// The most a secret file may hold: secrets are passwords, keys and licences, far smaller.
const MAX_SECRET_BYTES: u64 = 64 * 1024;

/// Reads a secret file that must be a regular file of at most `MAX_SECRET_BYTES`: a FIFO would
/// block rcfleet (even `plan`) forever and a device such as /dev/zero would fill memory. It is
/// opened non-blocking and checked on the opened descriptor, so swapping the path between a
/// check and the read changes nothing. The error completes "secret <reference> ...".
fn read_secret_file(path: &std::path::Path) -> std::result::Result<String, String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|err| format!("cannot be read ({}); create it or fix the path", err.kind()))?;
    let metadata = file.metadata().map_err(|err| format!("cannot be read ({}); check the file", err.kind()))?;
    if !metadata.is_file() {
        return Err("is not a regular file (a FIFO, socket, device or folder); point it at a file holding the value".into());
    }
    if metadata.len() > MAX_SECRET_BYTES {
        return Err(format!(
            "is {} bytes, more than a secret can be ({MAX_SECRET_BYTES} at most); point it at the file holding only the value",
            metadata.len()
        ));
    }
    let mut text = String::new();
    file.take(MAX_SECRET_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|err| format!("cannot be read ({}); it must be UTF-8 text", err.kind()))?;
    Ok(text)
}

/// A value in `[rocketchat.env]`: plain text, or a secret reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvValue {
    Plain(String),
    Secret(SecretRef),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    Database,
    Monitoring,
    Traefik,
    Rocketchat,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Database, Role::Monitoring, Role::Traefik, Role::Rocketchat];

    pub fn name(self) -> &'static str {
        match self {
            Role::Database => "database",
            Role::Monitoring => "monitoring",
            Role::Traefik => "traefik",
            Role::Rocketchat => "rocketchat",
        }
    }

    pub fn from_name(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|role| role.name() == name)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How rcfleet reaches a host over SSH (inventory defaults merged with the host's overrides).
/// Each `None` is a key the inventory leaves open: the operator's `~/.ssh/config` decides it,
/// then OpenSSH's default, as `ssh` itself would (`remote::target`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshSettings {
    pub user: Option<String>,
    pub port: Option<u16>,
    pub identity_file: Option<PathBuf>,
    pub identity_passphrase: Option<SecretRef>,
    pub known_hosts: Option<PathBuf>,
    pub accept_new_host_keys: Option<bool>,
    pub connect_timeout_seconds: u64,
    /// The limit of each remote command that has none of its own (long steps such as image
    /// pulls, `compose up` and the backup have theirs).
    pub command_timeout_seconds: u64,
    /// A bastion: `user@address:port` already resolved from a host name when one was given.
    pub jump: Option<JumpHost>,
}

/// How long an ordinary remote command (`docker version`, a file check, the lock) may take:
/// seconds on a healthy server, so two minutes leaves room for a slow, loaded one.
const DEFAULT_COMMAND_TIMEOUT_SECONDS: u64 = 120;

impl SshSettings {
    /// Every key left open: `~/.ssh/config` and OpenSSH's defaults decide (`remote::target`).
    pub fn open() -> SshSettings {
        SshSettings {
            user: None,
            port: None,
            identity_file: None,
            identity_passphrase: None,
            known_hosts: None,
            accept_new_host_keys: None,
            connect_timeout_seconds: 10,
            command_timeout_seconds: DEFAULT_COMMAND_TIMEOUT_SECONDS,
            jump: None,
        }
    }

    /// The port sshd listens on as far as the inventory knows: its own, else OpenSSH's 22.
    pub fn port_or_default(&self) -> u16 {
        self.port.unwrap_or(22)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JumpHost {
    pub user: Option<String>,
    pub address: String,
    pub port: Option<u16>,
}

/// Which of its two port pairs an instance listens on. A start-first upgrade starts the new
/// release on the other pair beside the running one, so the pair alternates with each
/// upgrade; the host records the current one (`ops::slots`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Slot {
    /// `port + index`, `metrics_port + index`: where `up` first starts an instance.
    #[default]
    Primary,
    /// The same plus [`SPARE_PORT_OFFSET`].
    Spare,
}

impl Slot {
    pub fn other(self) -> Slot {
        match self {
            Slot::Primary => Slot::Spare,
            Slot::Spare => Slot::Primary,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Slot::Primary => "primary",
            Slot::Spare => "spare",
        }
    }

    fn offset(self) -> u16 {
        match self {
            Slot::Primary => 0,
            Slot::Spare => SPARE_PORT_OFFSET,
        }
    }
}

/// How far an instance's spare ports lie above its primary ones. A host runs at most 100
/// instances (`instances` is 1 to 100), so the spare range `port + 1000 ..` never meets the
/// primary range of the same host, and with the defaults (4000.., 10458..) none of the other
/// listeners (microservices from 3100 and 9600, NATS 4222, ...); the listener check refuses
/// any collision.
pub const SPARE_PORT_OFFSET: u16 = 1000;

/// One Rocket.Chat instance: a container with host networking on one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    /// Stable name, `<host>-<index>`, e.g. `app1-0`.
    pub name: String,
    pub host: String,
    pub index: u32,
    /// The address other hosts (Traefik, Prometheus) use to reach it.
    pub private_address: String,
    /// The ports it listens on now, those of `slot`.
    pub port: u16,
    pub metrics_port: u16,
    pub slot: Slot,
}

impl Instance {
    /// The same instance listening on `slot`'s ports.
    pub fn on_slot(&self, slot: Slot) -> Instance {
        let shift = |port: u16| port - self.slot.offset() + slot.offset();
        Instance { port: shift(self.port), metrics_port: shift(self.metrics_port), slot, ..self.clone() }
    }

    /// The URL Traefik sends requests to.
    pub fn url(&self) -> String {
        format!("http://{}:{}", self.private_address, self.port)
    }

    /// The `host:port` Prometheus scrapes.
    pub fn metrics_target(&self) -> String {
        format!("{}:{}", self.private_address, self.metrics_port)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    pub name: String,
    /// Where rcfleet connects over SSH.
    pub address: String,
    /// Where the other hosts reach this one.
    pub private_address: String,
    pub roles: Vec<Role>,
    pub ssh: SshSettings,
    /// Empty unless the host has the `rocketchat` role.
    pub instances: Vec<Instance>,
}

impl Host {
    pub fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }
}

/// A container image reference, `repository:tag`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub repository: String,
    pub tag: String,
}

impl fmt::Display for Image {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.repository, self.tag)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Images {
    /// Its tag is always the workspace release.
    pub rocketchat: Image,
    /// `images.rocketchat.insecure`: the registry of the Rocket.Chat image may be asked for
    /// its tags over plain HTTP when HTTPS fails (a private registry without TLS).
    pub rocketchat_registry_insecure: bool,
    pub mongodb: Image,
    pub nats: Image,
    pub prometheus: Image,
    pub grafana: Image,
    pub traefik: Image,
    /// Runs on every host: its disks, memory and load for Prometheus.
    pub node_exporter: Image,
    /// Probes NATS' monitoring endpoint for Prometheus (the monitoring host).
    pub blackbox_exporter: Image,
    /// `[monitoring.alertmanager]`: sends Prometheus' alerts on (the monitoring host).
    pub alertmanager: Image,
    /// Runs `mongodump` for the upgrade's backup: the MongoDB server image is not documented
    /// to contain the Database Tools, a separate package.
    pub mongodb_tools: Image,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tls {
    None,
    LetsEncrypt { email: String },
    Files { cert: String, key: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraefikSettings {
    pub domain: String,
    pub http_port: u16,
    pub https_port: u16,
    /// API, dashboard and ping; bound to 127.0.0.1 on the Traefik host.
    pub api_port: u16,
    /// Prometheus metrics; bound to the Traefik host's private address.
    pub metrics_port: u16,
    pub tls: Tls,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MongoSettings {
    /// `major.minor`, e.g. `8.2`.
    pub version: String,
    pub replica_set: String,
    pub port: u16,
    pub database: String,
    /// Access control: a replica-set key file, an admin user and the application user whose
    /// credentials go into MONGO_URL. `false` only to match an existing deployment.
    pub auth: bool,
    /// The admin user's password; `None`: generated and kept on the database host.
    pub admin_password: Option<SecretRef>,
    /// The application user's password; `None`: generated and kept on the database host.
    pub app_password: Option<SecretRef>,
    /// The operator accepts a `version` the release does not support (`compat`): validation
    /// and the upgrade guard warn instead of refusing.
    pub allow_unsupported: bool,
}

impl MongoSettings {
    /// The user rcfleet administers MongoDB with (role `root`, database `admin`).
    pub const ADMIN_USER: &'static str = "rcfleet-admin";
    /// The user Rocket.Chat connects as (database `admin` is its authentication database).
    pub const APP_USER: &'static str = "rocketchat";
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsSettings {
    pub port: u16,
    pub monitor_port: u16,
    /// Clients must give a user and password. `false` only to match an existing deployment.
    pub auth: bool,
    /// The password of [`NatsSettings::USER`]; `None`: generated and kept on the database host.
    pub password: Option<SecretRef>,
}

impl NatsSettings {
    pub const USER: &'static str = "rocketchat";
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitoringSettings {
    pub prometheus_port: u16,
    pub grafana_port: u16,
    pub retention: String,
    /// How long an instance must be down or not ready before its alert fires.
    pub alert_for: String,
    pub grafana_admin_password: Option<SecretRef>,
    /// The node exporter's port on every host (bound to its private address).
    pub node_exporter_port: u16,
    /// The blackbox exporter's port on the monitoring host (it probes NATS' `/healthz`).
    pub blackbox_port: u16,
    /// `[monitoring.alertmanager]`; `None`: alerts stay in Prometheus (and Grafana).
    pub alertmanager: Option<AlertmanagerSettings>,
}

/// `[monitoring.alertmanager]`: Alertmanager on the monitoring host, Prometheus' alerts sent to
/// a webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertmanagerSettings {
    pub port: u16,
    /// The webhook's URL usually holds a token: a secret reference, never printed.
    pub webhook_url: SecretRef,
}

/// `upgrade.strategy`: how a rolling upgrade replaces an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum UpgradeStrategy {
    /// The default: start-first when every app host has the memory for the instances two
    /// batches run twice, else stop-first (`ops::upgrade::capacity`).
    Auto,
    /// Start the new release on the spare ports beside the old instance, then drain and stop the old.
    StartFirst,
    /// Drain and stop the old instance, then start the new release on the same ports.
    StopFirst,
}

impl UpgradeStrategy {
    pub fn name(self) -> &'static str {
        match self {
            UpgradeStrategy::Auto => "auto",
            UpgradeStrategy::StartFirst => "start-first",
            UpgradeStrategy::StopFirst => "stop-first",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpgradePolicy {
    pub strategy: UpgradeStrategy,
    pub batch_size: u32,
    pub drain_seconds: u64,
    pub readiness_timeout_seconds: u64,
}

/// `[backup]`: how many archives of the database stay on the database host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupPolicy {
    /// After each new backup the oldest archives beyond this many are deleted.
    pub keep: u32,
}

impl BackupPolicy {
    pub const DEFAULT_KEEP: u32 = 10;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workspace {
    pub name: String,
    pub root_url: String,
    pub release: Release,
    pub license: Option<SecretRef>,
    /// Folder on every host holding rcfleet's compose projects and configs.
    pub deploy_dir: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fleet {
    pub workspace: Workspace,
    /// In inventory order.
    pub hosts: Vec<Host>,
    pub images: Images,
    pub traefik: TraefikSettings,
    pub mongodb: MongoSettings,
    pub nats: NatsSettings,
    pub monitoring: MonitoringSettings,
    pub upgrade: UpgradePolicy,
    pub backup: BackupPolicy,
    /// Extra environment for every instance, sorted by name.
    pub rocketchat_env: BTreeMap<String, EnvValue>,
    /// `[microservices]`; disabled unless the inventory enables it.
    pub microservices: Microservices,
}

impl Fleet {
    /// Every secret reference of the fleet with its inventory key, each once.
    pub fn secret_references(&self) -> BTreeSet<(String, SecretRef)> {
        let mut found = BTreeSet::new();
        if let Some(license) = &self.workspace.license {
            found.insert(("workspace.license".to_string(), license.clone()));
        }
        if let Some(password) = &self.monitoring.grafana_admin_password {
            found.insert(("monitoring.grafana_admin_password".to_string(), password.clone()));
        }
        if let Some(alertmanager) = &self.monitoring.alertmanager {
            found.insert(("monitoring.alertmanager.webhook_url".to_string(), alertmanager.webhook_url.clone()));
        }
        for (key, reference) in [
            ("mongodb.admin_password", &self.mongodb.admin_password),
            ("mongodb.app_password", &self.mongodb.app_password),
            ("nats.password", &self.nats.password),
        ] {
            if let Some(reference) = reference {
                found.insert((key.to_string(), reference.clone()));
            }
        }
        for (name, value) in &self.rocketchat_env {
            if let EnvValue::Secret(secret) = value {
                found.insert((format!("rocketchat.env.{name}"), secret.clone()));
            }
        }
        for (index, host) in self.hosts.iter().enumerate() {
            if let Some(passphrase) = &host.ssh.identity_passphrase {
                found.insert((format!("hosts[{index}].ssh.identity_passphrase"), passphrase.clone()));
            }
        }
        found
    }

    pub fn host(&self, name: &str) -> Option<&Host> {
        self.hosts.iter().find(|host| host.name == name)
    }

    /// The one host with the `database` role (validation guarantees exactly one).
    pub fn database_host(&self) -> &Host {
        self.hosts_with(Role::Database).next().expect("validated: one database host")
    }

    /// The host with the `monitoring` role, if any.
    pub fn monitoring_host(&self) -> Option<&Host> {
        self.hosts_with(Role::Monitoring).next()
    }

    /// The one host with the `traefik` role (validation guarantees exactly one).
    pub fn traefik_host(&self) -> &Host {
        self.hosts_with(Role::Traefik).next().expect("validated: one traefik host")
    }

    pub fn hosts_with(&self, role: Role) -> impl Iterator<Item = &Host> {
        self.hosts.iter().filter(move |host| host.has_role(role))
    }

    /// Every instance of the fleet, host by host in inventory order.
    pub fn instances(&self) -> impl Iterator<Item = &Instance> {
        self.hosts.iter().flat_map(|host| host.instances.iter())
    }

    /// MONGO_URL with the application user's password when MongoDB has access control:
    /// `mongodb://rocketchat:<password>@<db>:<port>/<database>?replicaSet=<rs>&authSource=admin`.
    /// The password is percent-encoded, so any value is carried unchanged.
    pub fn mongo_url_with(&self, password: Option<&str>) -> String {
        let (login, auth_source) = match password {
            Some(password) => (format!("{}:{}@", MongoSettings::APP_USER, percent_encode(password)), "&authSource=admin"),
            None => (String::new(), ""),
        };
        format!(
            "mongodb://{login}{}:{}/{}?replicaSet={}{auth_source}",
            self.database_host().private_address,
            self.mongodb.port,
            self.mongodb.database,
            self.mongodb.replica_set
        )
    }

    /// TRANSPORTER (for instances and services) with NATS' user and password when NATS has authentication.
    pub fn transporter_with(&self, password: Option<&str>) -> String {
        let login = match password {
            Some(password) => format!("{}:{}@", NatsSettings::USER, percent_encode(password)),
            None => String::new(),
        };
        // `monolith+nats://` keeps the instances a multi-instance monolith; plain `nats://` puts
        // them in microservices mode, where the monolith leaves presence, authorization and the
        // queue to the services (Rocket.Chat `isRunningMs.ts`; reference A.5).
        let scheme = if self.microservices.enabled { "nats" } else { "monolith+nats" };
        format!("{scheme}://{login}{}:{}", self.database_host().private_address, self.nats.port)
    }

    /// The same fleet with each instance named in `slots` on that slot's ports.
    pub fn with_slots(&self, slots: &BTreeMap<String, Slot>) -> Fleet {
        let mut fleet = self.clone();
        for instance in fleet.hosts.iter_mut().flat_map(|h| h.instances.iter_mut()) {
            if let Some(slot) = slots.get(&instance.name) {
                *instance = instance.on_slot(*slot);
            }
        }
        fleet
    }

    /// The compose project name for a unit on a host, e.g. `chat-database`, `chat-app1-0`.
    pub fn project_name(&self, unit: &str) -> String {
        format!("{}-{}", self.workspace.name, unit)
    }
}

/// `text` with every byte outside RFC 3986's unreserved set as `%XX`, for URI user info.
pub fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A port a host listens on (every service uses host networking), and what listens there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub port: u16,
    /// For people: "MongoDB", "instance app1-0 metrics".
    pub what: String,
    /// The inventory key that sets the port, e.g. `mongodb.port`, `hosts[2].port`.
    pub key: String,
    /// The compose unit that opens it (`database`, `app1-0`, ...); `None` for SSH.
    pub unit: Option<String>,
}

impl Fleet {
    /// Every listener of the host at `index` (in inventory order): SSH, then each role's
    /// services, then each instance's two ports.
    pub fn listeners(&self, index: usize) -> Vec<Listener> {
        let host = &self.hosts[index];
        let listener = |port: u16, what: &str, key: &str, unit: Option<&str>| Listener {
            port,
            what: what.to_string(),
            key: key.to_string(),
            unit: unit.map(str::to_string),
        };
        let mut listeners = vec![
            listener(host.ssh.port_or_default(), "SSH", &format!("hosts[{index}].ssh.port"), None),
            listener(self.monitoring.node_exporter_port, "node exporter", "monitoring.node_exporter_port", Some("node-exporter")),
        ];
        if host.has_role(Role::Database) {
            listeners.push(listener(self.mongodb.port, "MongoDB", "mongodb.port", Some("database")));
            listeners.push(listener(self.nats.port, "NATS", "nats.port", Some("database")));
            listeners.push(listener(self.nats.monitor_port, "NATS monitoring", "nats.monitor_port", Some("database")));
        }
        if host.has_role(Role::Monitoring) {
            let unit = Some("monitoring");
            listeners.push(listener(self.monitoring.prometheus_port, "Prometheus", "monitoring.prometheus_port", unit));
            listeners.push(listener(self.monitoring.grafana_port, "Grafana", "monitoring.grafana_port", unit));
            listeners.push(listener(self.monitoring.blackbox_port, "blackbox exporter", "monitoring.blackbox_port", unit));
            if let Some(alertmanager) = &self.monitoring.alertmanager {
                let key = "monitoring.alertmanager.port";
                listeners.push(listener(alertmanager.port, "Alertmanager", key, Some("alertmanager")));
            }
        }
        if host.has_role(Role::Traefik) {
            let unit = Some("traefik");
            listeners.push(listener(self.traefik.http_port, "Traefik HTTP", "traefik.http_port", unit));
            if self.traefik.tls != Tls::None {
                listeners.push(listener(self.traefik.https_port, "Traefik HTTPS", "traefik.https_port", unit));
            }
            listeners.push(listener(self.traefik.api_port, "Traefik API", "traefik.api_port", unit));
            listeners.push(listener(self.traefik.metrics_port, "Traefik metrics", "traefik.metrics_port", unit));
        }
        // Both port pairs of every instance: a start-first upgrade opens the one not in use.
        for instance in host.instances.iter().flat_map(|i| [i.on_slot(Slot::Primary), i.on_slot(Slot::Spare)]) {
            let unit = Some(instance.name.as_str());
            let spare = if instance.slot == Slot::Spare { " (spare, for start-first upgrades)" } else { "" };
            listeners.push(listener(instance.port, &format!("instance {}{spare}", instance.name), &format!("hosts[{index}].port"), unit));
            listeners.push(listener(
                instance.metrics_port,
                &format!("instance {} metrics{spare}", instance.name),
                &format!("hosts[{index}].metrics_port"),
                unit,
            ));
        }
        for container in crate::microservices::containers(self).iter().filter(|c| c.host == host.name) {
            let unit = Some(container.name.as_str());
            let what = format!("service {}", container.name);
            listeners.push(listener(container.port, &what, "microservices", unit));
            listeners.push(listener(container.metrics_port, &format!("{what} metrics"), "microservices", unit));
        }
        listeners
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_parses_stable_and_rc_tags_only() {
        assert_eq!(Release::parse("8.1.0").unwrap().to_string(), "8.1.0");
        assert_eq!(Release::parse("8.1.0-rc.2").unwrap().rc, Some(2));
        for bad in ["8.1", "8.1.0.1", "v8.1.0", "8.1.0-beta", "08.1.0", "latest", "", "8.x", "8.1.0-rc."] {
            assert!(Release::parse(bad).is_none(), "{bad} should be rejected");
        }
    }

    #[test]
    fn an_instance_alternates_between_its_port_pairs() {
        let primary = Instance {
            name: "app1-1".into(),
            host: "app1".into(),
            index: 1,
            private_address: "10.0.0.31".into(),
            port: 3001,
            metrics_port: 9459,
            slot: Slot::Primary,
        };
        let spare = primary.on_slot(Slot::Spare);
        assert_eq!((spare.port, spare.metrics_port, spare.slot), (4001, 10459, Slot::Spare));
        assert_eq!(spare.on_slot(spare.slot.other()), primary);
        assert_eq!(primary.on_slot(Slot::Primary), primary);
    }

    #[test]
    fn percent_encoding_keeps_unreserved_only() {
        assert_eq!(percent_encode("Ab9-._~"), "Ab9-._~");
        assert_eq!(percent_encode("p@ss:w/d?#%"), "p%40ss%3Aw%2Fd%3F%23%25");
    }

    #[test]
    fn release_orders_rc_before_release() {
        let release = |s| Release::parse(s).unwrap();
        assert!(release("8.1.0-rc.2") < release("8.1.0"));
        assert!(release("8.1.0-rc.1") < release("8.1.0-rc.2"));
        assert!(release("8.0.9") < release("8.1.0-rc.1"));
        assert!(release("8.1.0") < release("8.1.1"));
        assert!(release("7.10.0") > release("7.9.0"));
        assert_eq!(release("8.1.0").max(release("8.1.0-rc.3")), release("8.1.0"));
    }
}

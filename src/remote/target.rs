//! Where and how to connect to one host, decided as `ssh` decides: what the inventory states,
//! else the operator's `~/.ssh/config` for the host's address (HostName, User, Port,
//! IdentityFile, ProxyJump, UserKnownHostsFile, StrictHostKeyChecking), else OpenSSH's
//! defaults. Each choice remembers where it came from, for `plan`.

use std::fs;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ssh2_config::{HostParams, ParseRule, SshConfig};

use crate::error::{Error, Result};
use crate::fleet::{Host, JumpHost, SecretRef};

/// Names another OpenSSH client configuration than `~/.ssh/config`, as `ssh -F` does.
pub const SSH_CONFIG_ENV: &str = "RCFLEET_SSH_CONFIG";

/// One SSH server to reach: the name used in known_hosts and for the TCP connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    pub address: String,
    pub port: u16,
    pub user: String,
}

impl Endpoint {
    pub fn describe(&self) -> String {
        format!("{}@{}:{}", self.user, self.address, self.port)
    }
}

/// Where a connection setting came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Inventory,
    SshConfig,
    /// OpenSSH's default (or rcfleet's, where OpenSSH has none to copy).
    Default,
}

impl Origin {
    pub fn name(self) -> &'static str {
        match self {
            Origin::Inventory => "inventory",
            Origin::SshConfig => "ssh_config",
            Origin::Default => "default",
        }
    }
}

/// The origin of each setting `plan` shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origins {
    pub address: Origin,
    pub user: Origin,
    pub port: Origin,
    pub identity: Origin,
    pub jump: Origin,
    pub known_hosts: Origin,
}

#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// The inventory's name for the host, used in every message.
    pub name: String,
    pub endpoint: Endpoint,
    pub jump: Option<Endpoint>,
    pub identity_files: Vec<PathBuf>,
    pub passphrase: Option<SecretRef>,
    pub known_hosts: PathBuf,
    pub accept_new: bool,
    pub connect_timeout: Duration,
    pub keepalive: Duration,
    pub agent_socket: Option<PathBuf>,
    pub origins: Origins,
}

pub(crate) fn home() -> PathBuf {
    std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/"))
}

pub(crate) fn expand_tilde(path: &Path) -> PathBuf {
    match path.strip_prefix("~") {
        Ok(rest) => home().join(rest),
        Err(_) => path.to_path_buf(),
    }
}

/// The OpenSSH client configuration rcfleet honours: `$RCFLEET_SSH_CONFIG`, else `~/.ssh/config`.
pub(crate) fn default_config_path() -> PathBuf {
    match std::env::var_os(SSH_CONFIG_ENV) {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => home().join(".ssh").join("config"),
    }
}

/// OpenSSH's default login name: the local user's.
fn local_user() -> String {
    // SAFETY: getpwuid returns a pointer into static storage or null; it is read at once.
    let from_passwd = unsafe {
        let entry = libc::getpwuid(libc::getuid());
        (!entry.is_null() && !(*entry).pw_name.is_null())
            .then(|| std::ffi::CStr::from_ptr((*entry).pw_name).to_string_lossy().into_owned())
    };
    from_passwd.or_else(|| std::env::var("USER").ok()).unwrap_or_else(|| "root".to_string())
}

/// Reads an ssh config file; a missing file is an empty configuration.
pub(crate) fn load_ssh_config(path: &Path) -> Result<SshConfig> {
    let file = match fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(SshConfig::default()),
        Err(e) => return Err(Error::failed(format!("cannot read SSH config {}: {e}", path.display()))),
    };
    SshConfig::default()
        .parse(
            &mut BufReader::new(file),
            ParseRule::ALLOW_UNKNOWN_FIELDS | ParseRule::ALLOW_UNSUPPORTED_FIELDS,
        )
        .map_err(|e| Error::failed(format!("cannot parse SSH config {}: {e}; fix the file or pass another one", path.display())))
}

pub(crate) struct Inputs<'a> {
    pub host: &'a Host,
    pub config: &'a SshConfig,
    pub accept_new: bool,
    pub agent_socket: Option<PathBuf>,
}

/// A value and where it came from: the inventory's, else ssh_config's, else the default.
fn pick<T>(stated: Option<T>, configured: Option<T>, default: impl FnOnce() -> T) -> (T, Origin) {
    match (stated, configured) {
        (Some(value), _) => (value, Origin::Inventory),
        (None, Some(value)) => (value, Origin::SshConfig),
        (None, None) => (default(), Origin::Default),
    }
}

/// A keyword ssh2-config reads but does not interpret (first value of the first matching block).
fn unsupported<'p>(params: &'p HostParams, keyword: &str) -> Option<&'p str> {
    params.unsupported_fields.get(keyword).and_then(|values| values.first()).map(String::as_str)
}

pub(crate) fn resolve(inputs: Inputs<'_>) -> Result<Target> {
    let Inputs { host, config, accept_new, agent_socket } = inputs;
    let ssh = &host.ssh;
    let params = config.query(&host.address);
    let (address, address_origin) = pick(None, params.host_name.clone(), || host.address.clone());
    let (port, port_origin) = pick(ssh.port, params.port, || 22);
    let (user, user_origin) = pick(ssh.user.clone(), params.user.clone(), local_user);
    let endpoint = Endpoint { address, port, user };
    let configured_keys = params.identity_file.as_ref().map(|paths| paths.iter().map(|p| expand_tilde(p)).collect());
    let (identity_files, identity_origin) = pick(ssh.identity_file.as_ref().map(|p| vec![expand_tilde(p)]), configured_keys, || {
        ["id_ed25519", "id_ecdsa", "id_rsa"]
            .iter()
            .map(|name| home().join(".ssh").join(name))
            .filter(|path| path.exists())
            .collect()
    });
    let configured_jump = match params.proxy_jump.as_deref() {
        None | Some([]) => None,
        Some([one]) if one == "none" => None,
        Some([one]) => Some(Some(parse_jump(one, config))),
        Some(_) => {
            return Err(Error::failed(format!(
                "{}: ~/.ssh/config gives a ProxyJump chain of several hosts for {}; rcfleet supports one jump host: \
                 set `jump` in the inventory instead",
                host.name, host.address
            )))
        }
    };
    let stated_jump = ssh.jump.as_ref().map(|jump| Some(jump_endpoint(jump, config)));
    let (jump, jump_origin) = pick(stated_jump, configured_jump, || None);
    let configured_known_hosts = unsupported(&params, "userknownhostsfile").map(|path| expand_tilde(Path::new(path)));
    let (known_hosts, known_hosts_origin) = pick(ssh.known_hosts.as_ref().map(|p| expand_tilde(p)), configured_known_hosts, || {
        home().join(".ssh").join("known_hosts")
    });
    // StrictHostKeyChecking accept-new (or no/off, of which rcfleet keeps only the safe half:
    // a new host is trusted, a changed key is still refused).
    let configured_accept = unsupported(&params, "stricthostkeychecking")
        .map(|value| matches!(value.to_ascii_lowercase().as_str(), "accept-new" | "no" | "off"));
    let (accept_new_here, _) = pick(ssh.accept_new_host_keys, configured_accept, || false);
    Ok(Target {
        name: host.name.clone(),
        endpoint,
        jump,
        identity_files,
        passphrase: ssh.identity_passphrase.clone(),
        known_hosts,
        accept_new: accept_new || accept_new_here,
        connect_timeout: Duration::from_secs(ssh.connect_timeout_seconds.max(1)),
        keepalive: params.server_alive_interval.filter(|d| !d.is_zero()).unwrap_or(Duration::from_secs(15)),
        agent_socket,
        origins: Origins {
            address: address_origin,
            user: user_origin,
            port: port_origin,
            identity: identity_origin,
            jump: jump_origin,
            known_hosts: known_hosts_origin,
        },
    })
}

/// How a host will be reached, for `plan`: every setting with where it came from.
#[derive(Debug, Clone)]
pub struct Reach {
    pub address: String,
    pub user: String,
    pub port: u16,
    /// The keys tried after the agent's, in order.
    pub identity_files: Vec<PathBuf>,
    /// `user@address:port` of the jump host.
    pub jump: Option<String>,
    pub known_hosts: PathBuf,
    pub origins: Origins,
}

/// How each of `hosts` will be reached with the ssh config rcfleet honours (see
/// `default_config_path`). Reads only local files.
pub fn how_to_reach(hosts: &[Host]) -> Result<Vec<Reach>> {
    let config = load_ssh_config(&default_config_path())?;
    hosts
        .iter()
        .map(|host| {
            let target = resolve(Inputs { host, config: &config, accept_new: false, agent_socket: None })?;
            Ok(Reach {
                address: target.endpoint.address,
                user: target.endpoint.user,
                port: target.endpoint.port,
                identity_files: target.identity_files,
                jump: target.jump.map(|jump| jump.describe()),
                known_hosts: target.known_hosts,
                origins: target.origins,
            })
        })
        .collect()
}

/// The inventory's jump host, with what it leaves open taken from the ssh config for its
/// address, then OpenSSH's defaults.
fn jump_endpoint(jump: &JumpHost, config: &SshConfig) -> Endpoint {
    let params = config.query(&jump.address);
    Endpoint {
        address: params.host_name.clone().unwrap_or_else(|| jump.address.clone()),
        port: jump.port.or(params.port).unwrap_or(22),
        user: jump.user.clone().or(params.user.clone()).unwrap_or_else(local_user),
    }
}

/// `[user@]host[:port]`, where `host` may itself be an alias in the ssh config.
fn parse_jump(text: &str, config: &SshConfig) -> Endpoint {
    let (user, rest) = match text.split_once('@') {
        Some((user, rest)) => (Some(user.to_string()), rest),
        None => (None, text),
    };
    let (alias, port) = match rest.rsplit_once(':') {
        Some((alias, port)) if port.parse::<u16>().is_ok() => (alias, port.parse().ok()),
        _ => (rest, None),
    };
    let alias = alias.trim_start_matches('[').trim_end_matches(']');
    jump_endpoint(&JumpHost { user, address: alias.to_string(), port }, config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::{JumpHost, SshSettings};

    fn host(address: &str) -> Host {
        Host {
            name: "app1".into(),
            address: address.into(),
            private_address: address.into(),
            roles: vec![],
            ssh: SshSettings::open(),
            instances: vec![],
        }
    }

    fn config(text: &str) -> SshConfig {
        SshConfig::default()
            .parse(&mut text.as_bytes(), ParseRule::ALLOW_UNKNOWN_FIELDS | ParseRule::ALLOW_UNSUPPORTED_FIELDS)
            .unwrap()
    }

    fn resolve_with(host: &Host, config: &SshConfig) -> Target {
        resolve(Inputs { host, config, accept_new: false, agent_socket: None }).unwrap()
    }

    const CONFIG: &str = "Host app1.alias\n  HostName 10.9.0.31\n  User deploy\n  Port 2222\n  IdentityFile /keys/app\n  ProxyJump ops@bastion:2200\n  UserKnownHostsFile /keys/known\n  StrictHostKeyChecking accept-new\n\nHost bastion\n  HostName 10.9.0.2\n";

    #[test]
    fn ssh_config_fills_what_the_inventory_leaves_open() {
        let host = host("app1.alias");
        let target = resolve_with(&host, &config(CONFIG));
        assert_eq!(target.endpoint, Endpoint { address: "10.9.0.31".into(), port: 2222, user: "deploy".into() });
        assert_eq!(target.identity_files, vec![PathBuf::from("/keys/app")]);
        assert_eq!(target.jump, Some(Endpoint { address: "10.9.0.2".into(), port: 2200, user: "ops".into() }));
        assert_eq!(target.known_hosts, PathBuf::from("/keys/known"));
        assert!(target.accept_new, "StrictHostKeyChecking accept-new");
        let origins = target.origins;
        assert_eq!(
            [origins.address, origins.user, origins.port, origins.identity, origins.jump, origins.known_hosts],
            [Origin::SshConfig; 6]
        );
    }

    #[test]
    fn the_inventory_wins_over_ssh_config() {
        let mut host = host("app1.alias");
        host.ssh.identity_file = Some(PathBuf::from("/inv/key"));
        host.ssh.user = Some("root".into());
        host.ssh.port = Some(22);
        host.ssh.jump = Some(JumpHost { user: Some("root".into()), address: "10.9.0.20".into(), port: Some(22) });
        let target = resolve_with(&host, &config(CONFIG));
        assert_eq!(target.endpoint, Endpoint { address: "10.9.0.31".into(), port: 22, user: "root".into() });
        assert_eq!(target.identity_files, vec![PathBuf::from("/inv/key")]);
        assert_eq!(target.jump.unwrap().address, "10.9.0.20");
    }

    #[test]
    fn no_config_means_the_address_as_given() {
        let host = host("10.0.0.5");
        let target = resolve_with(&host, &SshConfig::default());
        assert_eq!(target.endpoint, Endpoint { address: "10.0.0.5".into(), port: 22, user: local_user() });
        assert_eq!((target.origins.user, target.origins.port, target.origins.address), (Origin::Default, Origin::Default, Origin::Default));
        assert_eq!(target.jump, None);
        assert!(target.known_hosts.ends_with(".ssh/known_hosts") && !target.known_hosts.starts_with("~"));
    }
}

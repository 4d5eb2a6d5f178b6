//! Where and how to connect to one host: the inventory's SSH settings merged with the
//! operator's `~/.ssh/config` (HostName, User, Port, IdentityFile, ProxyJump). The inventory
//! wins wherever it says something.

use std::fs;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ssh2_config::{ParseRule, SshConfig};

use crate::error::{Error, Result};
use crate::fleet::{Host, SecretRef};

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
}

/// What the inventory states explicitly; `None` lets `~/.ssh/config` decide.
#[derive(Debug, Clone, Default)]
pub(crate) struct Stated {
    pub user: Option<String>,
    pub port: Option<u16>,
    pub identity_file: Option<PathBuf>,
    pub jump: Option<Endpoint>,
}

impl Stated {
    /// The fleet model resolves user and port to concrete values, so today they always win;
    /// identity file and jump host are optional there and fall back to `~/.ssh/config`.
    pub fn from_host(host: &Host) -> Stated {
        Stated {
            user: Some(host.ssh.user.clone()),
            port: Some(host.ssh.port),
            identity_file: host.ssh.identity_file.clone(),
            jump: host.ssh.jump.as_ref().map(|jump| Endpoint {
                address: jump.address.clone(),
                port: jump.port,
                user: jump.user.clone(),
            }),
        }
    }
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
    pub stated: Stated,
    pub config: &'a SshConfig,
    pub accept_new: bool,
    pub agent_socket: Option<PathBuf>,
}

pub(crate) fn resolve(inputs: Inputs<'_>) -> Result<Target> {
    let Inputs { host, stated, config, accept_new, agent_socket } = inputs;
    let params = config.query(&host.address);
    let endpoint = Endpoint {
        address: params.host_name.clone().unwrap_or_else(|| host.address.clone()),
        port: stated.port.or(params.port).unwrap_or(22),
        user: stated.user.clone().or(params.user.clone()).unwrap_or_else(|| "root".to_string()),
    };
    let identity_files = match &stated.identity_file {
        Some(path) => vec![expand_tilde(path)],
        None => match &params.identity_file {
            Some(paths) => paths.iter().map(|p| expand_tilde(p)).collect(),
            None => ["id_ed25519", "id_ecdsa", "id_rsa"]
                .iter()
                .map(|name| home().join(".ssh").join(name))
                .filter(|path| path.exists())
                .collect(),
        },
    };
    let jump = match stated.jump {
        Some(jump) => Some(jump),
        None => match params.proxy_jump.as_deref() {
            None | Some([]) => None,
            Some([one]) if one == "none" => None,
            Some([one]) => Some(parse_jump(one, config, &endpoint.user)),
            Some(_) => {
                return Err(Error::failed(format!(
                    "{}: ~/.ssh/config gives a ProxyJump chain of several hosts for {}; rcfleet supports one jump host: \
                     set `jump` in the inventory instead",
                    host.name, host.address
                )))
            }
        },
    };
    Ok(Target {
        name: host.name.clone(),
        endpoint,
        jump,
        identity_files,
        passphrase: host.ssh.identity_passphrase.clone(),
        known_hosts: expand_tilde(&host.ssh.known_hosts),
        accept_new: accept_new || host.ssh.accept_new_host_keys,
        connect_timeout: Duration::from_secs(host.ssh.connect_timeout_seconds.max(1)),
        keepalive: params.server_alive_interval.filter(|d| !d.is_zero()).unwrap_or(Duration::from_secs(15)),
        agent_socket,
    })
}

/// `[user@]host[:port]`, where `host` may itself be an alias in the ssh config.
fn parse_jump(text: &str, config: &SshConfig, default_user: &str) -> Endpoint {
    let (user, rest) = match text.split_once('@') {
        Some((user, rest)) => (Some(user.to_string()), rest),
        None => (None, text),
    };
    let (alias, port) = match rest.rsplit_once(':') {
        Some((alias, port)) if port.parse::<u16>().is_ok() => (alias, port.parse().ok()),
        _ => (rest, None),
    };
    let alias = alias.trim_start_matches('[').trim_end_matches(']');
    let params = config.query(alias);
    Endpoint {
        address: params.host_name.clone().unwrap_or_else(|| alias.to_string()),
        port: port.or(params.port).unwrap_or(22),
        user: user.or(params.user.clone()).unwrap_or_else(|| default_user.to_string()),
    }
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
            ssh: SshSettings {
                user: "root".into(),
                port: 22,
                identity_file: None,
                identity_passphrase: None,
                known_hosts: PathBuf::from("~/.ssh/known_hosts"),
                accept_new_host_keys: false,
                connect_timeout_seconds: 10,
                command_timeout_seconds: 120,
                jump: None,
            },
            instances: vec![],
        }
    }

    fn config(text: &str) -> SshConfig {
        SshConfig::default().parse(&mut text.as_bytes(), ParseRule::ALLOW_UNKNOWN_FIELDS).unwrap()
    }

    fn resolve_with(host: &Host, stated: Stated, config: &SshConfig) -> Target {
        resolve(Inputs { host, stated, config, accept_new: false, agent_socket: None }).unwrap()
    }

    const CONFIG: &str = "Host app1.alias\n  HostName 10.9.0.31\n  User deploy\n  Port 2222\n  IdentityFile /keys/app\n  ProxyJump ops@bastion:2200\n\nHost bastion\n  HostName 10.9.0.2\n";

    #[test]
    fn ssh_config_fills_what_the_inventory_leaves_open() {
        let host = host("app1.alias");
        let stated = Stated { identity_file: None, jump: None, user: None, port: None };
        let target = resolve_with(&host, stated, &config(CONFIG));
        assert_eq!(target.endpoint, Endpoint { address: "10.9.0.31".into(), port: 2222, user: "deploy".into() });
        assert_eq!(target.identity_files, vec![PathBuf::from("/keys/app")]);
        assert_eq!(target.jump, Some(Endpoint { address: "10.9.0.2".into(), port: 2200, user: "ops".into() }));
    }

    #[test]
    fn the_inventory_wins_over_ssh_config() {
        let mut host = host("app1.alias");
        host.ssh.identity_file = Some(PathBuf::from("/inv/key"));
        host.ssh.jump = Some(JumpHost { user: "root".into(), address: "10.9.0.20".into(), port: 22 });
        let target = resolve_with(&host, Stated::from_host(&host), &config(CONFIG));
        assert_eq!(target.endpoint, Endpoint { address: "10.9.0.31".into(), port: 22, user: "root".into() });
        assert_eq!(target.identity_files, vec![PathBuf::from("/inv/key")]);
        assert_eq!(target.jump.unwrap().address, "10.9.0.20");
    }

    #[test]
    fn no_config_means_the_address_as_given() {
        let host = host("10.0.0.5");
        let target = resolve_with(&host, Stated::from_host(&host), &SshConfig::default());
        assert_eq!(target.endpoint, Endpoint { address: "10.0.0.5".into(), port: 22, user: "root".into() });
        assert_eq!(target.jump, None);
        assert!(target.known_hosts.ends_with(".ssh/known_hosts") && !target.known_hosts.starts_with("~"));
    }
}

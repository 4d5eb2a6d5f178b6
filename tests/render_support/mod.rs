//! Shared by the `render_*` tests: the fleets under test, loading them, finding rendered
//! files, writing a host's tree to disk, and a secret source with known values.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rcfleet::error::{Error, Result};
use rcfleet::fleet::{Fleet, SecretRef};
use rcfleet::render::{self, Artifact, Generated, HostArtifacts, Redacted, SecretSource};

/// `(golden name, inventory path relative to the crate root)`.
pub const FLEETS: &[(&str, &str)] = &[
    ("example", "inventory.example.toml"),
    ("all-in-one", "tests/fixtures/all-in-one.toml"),
    ("three-app-hosts", "tests/fixtures/three-app-hosts.toml"),
    ("microservices", "tests/fixtures/microservices.toml"),
];

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The validated fleet of an inventory; secrets are not read (the tests give their own).
pub fn load(relative: &str) -> Fleet {
    let path = root().join(relative);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    rcfleet::inventory::parse(&text, Path::new(relative)).unwrap_or_else(|e| panic!("{relative}:\n{e}"))
}

pub fn fleets() -> Vec<(&'static str, Fleet)> {
    FLEETS.iter().map(|(name, path)| (*name, load(path))).collect()
}

pub fn redacted(fleet: &Fleet) -> Vec<HostArtifacts> {
    render::render(fleet, &Redacted).unwrap_or_else(|e| panic!("render failed:\n{e}"))
}

/// The file at `path` on `host`.
pub fn file<'a>(hosts: &'a [HostArtifacts], host: &str, path: &str) -> &'a Artifact {
    let files = &hosts.iter().find(|h| h.host == host).unwrap_or_else(|| panic!("no host {host}")).files;
    files.iter().find(|f| f.path == path).unwrap_or_else(|| {
        let paths: Vec<_> = files.iter().map(|f| f.path.as_str()).collect();
        panic!("no {path} on {host}; have {paths:?}")
    })
}

pub fn yaml(artifact: &Artifact) -> yaml_serde::Value {
    yaml_serde::from_str(&artifact.content)
        .unwrap_or_else(|e| panic!("{} does not parse: {e}\n{}", artifact.path, artifact.content))
}

/// `value[a][b]...`, panicking with the path when a key is absent.
pub fn at<'a>(value: &'a yaml_serde::Value, keys: &[&str]) -> &'a yaml_serde::Value {
    keys.iter().fold(value, |value, key| {
        value.get(*key).unwrap_or_else(|| panic!("no key {key} (path {keys:?}) in {value:?}"))
    })
}

pub fn str_at<'a>(value: &'a yaml_serde::Value, keys: &[&str]) -> &'a str {
    at(value, keys).as_str().unwrap_or_else(|| panic!("{keys:?} is not a string"))
}

pub fn strings(value: &yaml_serde::Value) -> Vec<String> {
    value.as_sequence().expect("a list").iter().map(|v| v.as_str().expect("a string").to_string()).collect()
}

/// Writes every file of `host` under `dir`, as it would be laid out in the deploy dir.
pub fn write_tree(host: &HostArtifacts, dir: &Path) {
    for file in &host.files {
        let path = dir.join(&file.path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &file.content).unwrap();
    }
}

/// Secret values given by the test.
#[derive(Default)]
pub struct Values(pub BTreeMap<SecretRef, String>);

impl Values {
    pub fn with(mut self, env: &str, value: &str) -> Values {
        self.0.insert(SecretRef::Env(env.into()), value.into());
        self
    }
}

impl SecretSource for Values {
    fn value(&self, secret: &SecretRef) -> Result<String> {
        self.0.get(secret).cloned().ok_or_else(|| Error::bad_input(format!("test gave no value for {secret}")))
    }

    /// Distinctive, and shaped like real generated values (letters and digits).
    fn generated(&self, secret: Generated) -> Result<String> {
        Ok(format!("Gen{}Value7777", secret.name().replace('-', "")))
    }
}

/// Secret values for every reference the fixtures use, each distinctive.
pub fn known_secrets() -> Values {
    Values::default()
        .with("GRAFANA_ADMIN_PASSWORD", "grafana-pw-1111")
        .with("SOLO_MAIL_URL", "smtp://solo-mail-2222@mail.example")
        .with("BIG_LICENSE", "big-license-3333")
        .with("BIG_GRAFANA_PASSWORD", "big-grafana-pw-4444")
        .with("BIG_MAIL_URL", "smtp://big-mail-5555@mail.example")
        .with("BIG_MONGO_APP_PASSWORD", "big:mongo/app@pw-6666")
        .with("BIG_NATS_PASSWORD", "BigNatsPw7777")
        .with("BIG_ALERT_WEBHOOK", "https://chat.example.com/hooks/big-alert-token-9999")
        .with("SCALED_LICENSE", "scaled-license-scalability-8888")
}

/// A Compose that reads rendered files: `name` for messages, `argv` the program and its first
/// arguments.
pub struct ComposeProgram {
    pub name: &'static str,
    argv: Vec<String>,
}

impl ComposeProgram {
    pub fn command(&self) -> std::process::Command {
        let mut command = std::process::Command::new(&self.argv[0]);
        command.args(&self.argv[1..]);
        command
    }

    fn works(&self) -> bool {
        self.command().arg("version").output().is_ok_and(|o| o.status.success())
    }
}

/// Compose v1 (`docker-compose`), the strictest reader rcfleet supports; the tests fail, not
/// skip, without it.
pub fn docker_compose() -> ComposeProgram {
    let v1 = ComposeProgram { name: "docker-compose (v1)", argv: vec!["docker-compose".into()] };
    assert!(
        v1.works(),
        "docker-compose (Compose v1) is required to validate rendered compose files and was not found; \
         install it: apt-get install -y docker-compose"
    );
    v1
}

/// Compose v2 when this machine has it: the binary named by `RCFLEET_COMPOSE_V2` (tests/run
/// points it at the lab's copy of the plugin; it must then work), else the `docker compose`
/// plugin if it answers. `None` (with a note) otherwise.
pub fn docker_compose_v2() -> Option<ComposeProgram> {
    if let Some(path) = std::env::var_os("RCFLEET_COMPOSE_V2").filter(|p| !p.is_empty()) {
        let v2 = ComposeProgram { name: "docker compose (v2)", argv: vec![path.to_string_lossy().into_owned()] };
        assert!(v2.works(), "RCFLEET_COMPOSE_V2={} does not run `version`", path.to_string_lossy());
        return Some(v2);
    }
    let plugin = ComposeProgram { name: "docker compose (v2)", argv: vec!["docker".into(), "compose".into()] };
    if plugin.works() {
        return Some(plugin);
    }
    eprintln!("Compose v2 not checked: no `docker compose` plugin here and RCFLEET_COMPOSE_V2 is not set");
    None
}

/// Every Compose there is to check with: v1, and v2 when present.
pub fn compose_programs() -> Vec<ComposeProgram> {
    std::iter::once(docker_compose()).chain(docker_compose_v2()).collect()
}

/// `docker-compose config` of `dir/compose.yml`, parsed. `RCFLEET_PROBE=EXPANDED` is in its
/// environment, so a value Compose expanded shows `EXPANDED`.
pub fn compose_config(dir: &Path) -> yaml_serde::Value {
    compose_config_with(&docker_compose(), dir)
}

/// [`compose_config`] as read by the given Compose.
pub fn compose_config_with(compose: &ComposeProgram, dir: &Path) -> yaml_serde::Value {
    let output = compose
        .command()
        .args(["-f", "compose.yml", "config"])
        .current_dir(dir)
        .env_remove("COMPOSE_PROJECT_NAME")
        .env("RCFLEET_PROBE", "EXPANDED")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{} config failed in {}:\n{}",
        compose.name,
        dir.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    yaml_serde::from_slice(&output.stdout).unwrap()
}

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
}

/// The docker-compose (Compose v1) program; the tests fail, not skip, without it.
pub fn docker_compose() -> &'static str {
    let found = std::process::Command::new("docker-compose").arg("version").output();
    match found {
        Ok(output) if output.status.success() => "docker-compose",
        _ => panic!(
            "docker-compose (Compose v1) is required to validate rendered compose files and was not found; \
             install it: apt-get install -y docker-compose"
        ),
    }
}

/// `docker-compose config` of `dir/compose.yml`, parsed. `RCFLEET_PROBE=EXPANDED` is in its
/// environment, so a value Compose expanded shows `EXPANDED`.
pub fn compose_config(dir: &Path) -> yaml_serde::Value {
    let output = std::process::Command::new(docker_compose())
        .args(["-f", "compose.yml", "config"])
        .current_dir(dir)
        .env_remove("COMPOSE_PROJECT_NAME")
        .env("RCFLEET_PROBE", "EXPANDED")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "docker-compose config failed in {}:\n{}",
        dir.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    yaml_serde::from_slice(&output.stdout).unwrap()
}

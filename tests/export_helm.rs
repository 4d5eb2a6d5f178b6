//! `rcfleet export helm-values`, run as a user would: the values parse as YAML, every key path
//! is in the target chart version's key list kept in `helm/rocketchat/` (taken from the
//! chart's values.yaml), microservices are on or off as the inventory says, no secret value is
//! written anywhere but the `--secrets-manifest` file, which holds valid v1 Secrets (0600).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde::Deserialize;
use yaml_serde::Value;

const CHART_VERSIONS: [&str; 3] = ["7.0.2", "6.32.1", "6.27.1"];

fn rcfleet(inventory: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_rcfleet"));
    command.arg("-i").arg(inventory).arg("export").arg("helm-values");
    command
}

fn repo(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).to_string()
}

fn succeeded(output: Output) -> String {
    assert!(output.status.success(), "exit {:?}: {}", output.status.code(), text(&output.stderr));
    text(&output.stdout)
}

/// The chart's key list as the repository keeps it: (exact keys, free-form maps).
fn chart_keys(version: &str) -> (BTreeSet<String>, Vec<String>) {
    let list = std::fs::read_to_string(repo(&format!("helm/rocketchat/{version}.keys"))).unwrap();
    let mut exact = BTreeSet::new();
    let mut maps = Vec::new();
    for line in list.lines() {
        let key = line.split('#').next().unwrap().trim();
        match key.strip_suffix(".*") {
            Some(map) => maps.push(format!("{map}.")),
            None if !key.is_empty() => {
                exact.insert(key.to_string());
            }
            None => {}
        }
    }
    (exact, maps)
}

/// Every key path of a YAML document, parents included (`a`, `a.b`, ...).
fn key_paths(value: &Value, prefix: &str, out: &mut Vec<String>) {
    if let Value::Mapping(map) = value {
        for (key, child) in map {
            let key = key.as_str().expect("string keys");
            let path = if prefix.is_empty() { key.to_string() } else { format!("{prefix}.{key}") };
            out.push(path.clone());
            key_paths(child, &path, out);
        }
    }
}

fn assert_keys_in_chart(values: &Value, version: &str) {
    let (exact, maps) = chart_keys(version);
    let mut paths = Vec::new();
    key_paths(values, "", &mut paths);
    assert!(paths.len() > 10, "{paths:?}");
    for path in paths {
        let free_form = maps.iter().any(|map| path.starts_with(map) || format!("{path}.") == *map);
        assert!(exact.contains(&path) || free_form, "chart {version} has no key {path}");
    }
}

fn parse(yaml: &str) -> Value {
    yaml_serde::from_str(yaml).unwrap_or_else(|e| panic!("not YAML ({e}):\n{yaml}"))
}

#[test]
fn example_and_fixtures_export_values_whose_keys_all_exist_in_the_chart() {
    let mut inventories = vec![repo("inventory.example.toml")];
    for entry in std::fs::read_dir(repo("tests/fixtures")).unwrap() {
        inventories.push(entry.unwrap().path());
    }
    assert!(inventories.len() >= 4, "{inventories:?}");
    let mut with_microservices = 0;
    for inventory in &inventories {
        let fleet = rcfleet::inventory::load_without_secrets(inventory).unwrap();
        for version in CHART_VERSIONS {
            let output = rcfleet(inventory).args(["--chart-version", version]).output().unwrap();
            if fleet.microservices.enabled && version == "6.27.1" {
                assert_eq!(output.status.code(), Some(2), "chart 6.27.1 would deploy stream-hub on 8.x");
                continue;
            }
            let values = parse(&succeeded(output));
            assert_keys_in_chart(&values, version);
            assert_eq!(values["image"]["tag"], Value::from(fleet.workspace.release.to_string()), "{}", inventory.display());
            assert_eq!(values["replicaCount"], Value::from(fleet.instances().count()));
            assert_eq!(values["mongodb"]["enabled"], Value::from(false));
            assert_eq!(values["microservices"]["enabled"], Value::from(fleet.microservices.enabled), "{}", inventory.display());
            if fleet.microservices.enabled {
                with_microservices += 1;
                let ddp = fleet.microservices.ddp_streamers;
                assert_eq!(values["microservices"]["ddpStreamer"]["replicas"], Value::from(ddp));
                assert_eq!(values["microservices"]["streamHub"]["enabled"], Value::from(false));
            } else {
                assert!(values["microservices"].get("ddpStreamer").is_none());
            }
            assert!(values["existingMongodbSecret"].as_str().unwrap().ends_with("-mongodb"), "MONGO_URL comes from a Secret");
            assert_ne!(values["prometheusScraping"]["port"], Value::from(9458), "the app's metrics stay off Moleculer's port");
            assert_eq!(values["nats"]["cluster"]["replicas"], Value::from(2));
            assert!(values.get("license").is_none() && values.get("externalMongodbUrl").is_none());
        }
    }
    assert!(with_microservices > 0, "a fixture enables [microservices]");
}

#[test]
fn the_default_chart_is_the_newest_and_instances_become_replica_count() {
    let values = parse(&succeeded(rcfleet(&repo("inventory.example.toml")).output().unwrap()));
    assert_keys_in_chart(&values, CHART_VERSIONS[0]);
    assert_eq!(values["replicaCount"], Value::from(4), "app1 and app2 run 2 instances each");
    assert_eq!(values["host"], Value::from("chat.example.com"));
    assert_eq!(values["ingress"]["tls"][0]["hosts"][0], Value::from("chat.example.com"));
    assert!(values["ingress"]["annotations"].get("cert-manager.io/cluster-issuer").is_some(), "letsencrypt maps to cert-manager");
    let files = parse(&succeeded(rcfleet(&repo("tests/fixtures/all-in-one.toml")).output().unwrap()));
    assert_eq!(files["replicaCount"], Value::from(3));
    assert!(files["ingress"].get("tls").is_none(), "tls mode none: no TLS section");
}

const FLEET: &str = r#"[workspace]
name = "team"
root_url = "https://chat.example.com"
release = "RELEASE"
license = { env = "RCFLEET_TEST_LICENSE" }

[[hosts]]
name = "db"
address = "10.0.0.10"
roles = ["database", "monitoring", "traefik"]

[[hosts]]
name = "app1"
address = "10.0.0.31"
roles = ["rocketchat"]
instances = 2

[[hosts]]
name = "app2"
address = "10.0.0.32"
roles = ["rocketchat"]
instances = 1

[traefik]
domain = "chat.example.com"
tls = { mode = "files", cert = "/etc/tls/chat.crt", key = "/etc/tls/chat.key" }

[mongodb]
version = "MONGO"
app_password = { file = "APP_PASSWORD_FILE" }

[rocketchat.env]
MAIL_URL = { env = "RCFLEET_TEST_MAIL_URL" }
Accounts_UseDNSDomainCheck = "false"
"#;

const LICENSE: &str = "licence-with-scalability-L1c3nc3";
const MAIL_URL: &str = "smtp://mailer:M4il-p4ss@mail.example.com:587";
const APP_PASSWORD: &str = "Ap#p:\"pa$s {w}/@rd";

struct Fixture {
    dir: tempfile::TempDir,
    inventory: PathBuf,
}

fn fixture(release: &str, mongo: &str, microservices: &str) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let password = dir.path().join("app-password");
    std::fs::write(&password, format!("{APP_PASSWORD}\n")).unwrap();
    let inventory = dir.path().join("inventory.toml");
    let text = FLEET
        .replace("RELEASE", release)
        .replace("MONGO", mongo)
        .replace("APP_PASSWORD_FILE", &password.display().to_string());
    std::fs::write(&inventory, format!("{text}{microservices}")).unwrap();
    Fixture { dir, inventory }
}

fn with_secrets(command: &mut Command) -> &mut Command {
    command.env("RCFLEET_TEST_LICENSE", LICENSE).env("RCFLEET_TEST_MAIL_URL", MAIL_URL)
}

fn assert_no_secret(what: &str, text: &str) {
    for secret in [LICENSE, MAIL_URL, APP_PASSWORD, "M4il-p4ss", "L1c3nc3", "pa$s", "pa%24s"] {
        assert!(!text.contains(secret), "{what} holds a secret ({secret}):\n{text}");
    }
}

#[test]
fn microservices_enabled_export_per_service_replicas_and_never_stream_hub_on_8() {
    let ms = "\n[microservices]\nenabled = true\nconcurrent_users = 1400\n[microservices.replicas]\npresence = 2\n";
    let fleet = fixture("8.6.1", "8.0", ms);
    let values = parse(&succeeded(rcfleet(&fleet.inventory).output().unwrap()));
    assert_keys_in_chart(&values, "7.0.2");
    let services = &values["microservices"];
    assert_eq!(services["enabled"], Value::from(true));
    assert_eq!(services["ddpStreamer"]["replicas"], Value::from(3), "1400 users: one per 500, rounded up");
    assert_eq!(services["presence"]["replicas"], Value::from(2));
    assert_eq!(services["account"]["replicas"], Value::from(1));
    assert_eq!(services["authorization"]["replicas"], Value::from(1));
    assert_eq!(services["streamHub"]["enabled"], Value::from(false));
    assert!(services.get("nats").is_none() && services.get("replicaCount").is_none(), "NATS and monolith replicas are not under microservices");
    assert_eq!(values["nats"]["enabled"], Value::from(true));
    assert_eq!(values["replicaCount"], Value::from(3));
    assert_eq!(values["extraSecret"], Value::from("team-rocketchat-env"), "the licence comes from a Secret");

    // The oldest chart deploys stream-hub whenever microservices are on: refused for 8.x.
    let output = rcfleet(&fleet.inventory).args(["--chart-version", "6.27.1"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
    assert!(text(&output.stderr).contains("stream-hub") && output.stdout.is_empty());

    // 7.x runs stream-hub by default, and the charts with the switch get it on.
    let seven = fixture("7.11.0", "7.0", "\n[microservices]\nenabled = true\nddp_streamers = 2\n");
    for version in CHART_VERSIONS {
        let values = parse(&succeeded(rcfleet(&seven.inventory).args(["--chart-version", version]).output().unwrap()));
        assert_keys_in_chart(&values, version);
        assert_eq!(values["microservices"]["ddpStreamer"]["replicas"], Value::from(2));
        if version != "6.27.1" {
            assert_eq!(values["microservices"]["streamHub"]["enabled"], Value::from(true), "chart {version}");
        }
    }
}

#[test]
fn no_secret_value_is_written_without_the_manifest_flag() {
    let fleet = fixture("8.6.1", "8.0", "");
    let out = fleet.dir.path().join("values.yaml");
    let output = with_secrets(rcfleet(&fleet.inventory).arg("--out").arg(&out)).output().unwrap();
    let stdout = succeeded(output);
    assert!(stdout.contains("values.yaml"), "{stdout}");
    let values = std::fs::read_to_string(&out).unwrap();
    assert_no_secret("values.yaml", &values);
    let parsed = parse(&values);
    assert_eq!(parsed["extraEnv"][0]["name"], Value::from("Accounts_UseDNSDomainCheck"), "plain env is carried");
    assert_eq!(parsed["ingress"]["tls"][0]["secretName"], Value::from("team-tls"), "tls files map to a TLS Secret");
    let json = with_secrets(rcfleet(&fleet.inventory).arg("--json")).output().unwrap();
    assert_no_secret("--json output", &format!("{}{}", text(&json.stdout), text(&json.stderr)));
    let names: Vec<String> = std::fs::read_dir(fleet.dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into()).collect();
    assert_eq!(names.len(), 3, "inventory, password file, values.yaml only: {names:?}");
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Secret {
    api_version: String,
    kind: String,
    metadata: Metadata,
    #[serde(rename = "type")]
    kind_of_secret: String,
    string_data: std::collections::BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Metadata {
    name: String,
}

#[test]
fn the_secrets_manifest_holds_valid_v1_secrets_0600_and_warns() {
    let fleet = fixture("8.6.1", "8.0", "");
    let out = fleet.dir.path().join("values.yaml");
    let manifest = fleet.dir.path().join("secrets.yaml");
    std::fs::write(&manifest, "old content").unwrap();
    let output = with_secrets(rcfleet(&fleet.inventory).arg("--out").arg(&out).arg("--secrets-manifest").arg(&manifest))
        .output()
        .unwrap();
    let stderr = text(&output.stderr);
    let stdout = succeeded(output);
    assert_no_secret("stdout and stderr", &format!("{stdout}{stderr}"));
    assert!(stderr.contains("WARNING") && stderr.contains("secrets.yaml") && stderr.contains("0600"), "{stderr}");
    let values = std::fs::read_to_string(&out).unwrap();
    assert_no_secret("values.yaml", &values);

    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&manifest).unwrap().permissions().mode() & 0o777, 0o600);
    let text = std::fs::read_to_string(&manifest).unwrap();
    let secrets: Vec<Secret> =
        yaml_serde::Deserializer::from_str(&text).map(|doc| Secret::deserialize(doc).unwrap()).collect();
    assert_eq!(secrets.len(), 2, "{text}");
    for secret in &secrets {
        assert_eq!((secret.api_version.as_str(), secret.kind.as_str(), secret.kind_of_secret.as_str()), ("v1", "Secret", "Opaque"));
    }
    let parsed = parse(&values);
    assert_eq!(Value::from(secrets[0].metadata.name.as_str()), parsed["existingMongodbSecret"]);
    let uri = &secrets[0].string_data["mongo-uri"];
    assert_eq!(
        uri,
        "mongodb://rocketchat:Ap%23p%3A%22pa%24s%20%7Bw%7D%2F%40rd@10.0.0.10:27017/rocketchat?replicaSet=rs0&authSource=admin"
    );
    assert_eq!(Value::from(secrets[1].metadata.name.as_str()), parsed["extraSecret"]);
    assert_eq!(secrets[1].string_data["ROCKETCHAT_LICENSE"], LICENSE);
    assert_eq!(secrets[1].string_data["MAIL_URL"], MAIL_URL);
    assert_eq!(secrets[1].string_data.len(), 2, "plain env stays in the values");
}

#[test]
fn plan_says_microservices_on_compose_are_unsupported_by_rocket_chat() {
    let output = Command::new(env!("CARGO_BIN_EXE_rcfleet")).arg("plan").arg("-i").arg(repo("tests/fixtures/microservices.toml")).output().unwrap();
    let stdout = succeeded(output);
    assert!(stdout.contains("which Rocket.Chat does not support"), "{stdout}");
}

#[test]
fn bad_requests_exit_2_and_write_nothing() {
    let fleet = fixture("8.6.1", "8.0", "");
    let out = fleet.dir.path().join("values.yaml");
    let output = rcfleet(&fleet.inventory).args(["--chart-version", "5.0.0"]).arg("--out").arg(&out).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("7.0.2, 6.32.1, 6.27.1"), "{}", text(&output.stderr));
    // A secret that cannot be read: named, never shown, and no file written.
    let manifest = fleet.dir.path().join("secrets.yaml");
    let output = rcfleet(&fleet.inventory)
        .arg("--out")
        .arg(&out)
        .arg("--secrets-manifest")
        .arg(&manifest)
        .env_remove("RCFLEET_TEST_LICENSE")
        .env("RCFLEET_TEST_MAIL_URL", MAIL_URL)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("RCFLEET_TEST_LICENSE"), "{}", text(&output.stderr));
    assert!(!out.exists() && !manifest.exists());
    let output = rcfleet(&fleet.inventory).arg("--out").arg(&out).arg("--secrets-manifest").arg(&out).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
}

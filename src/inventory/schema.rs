//! The inventory's keys in one table: each key's name, kind and description. The reader takes
//! the keys it accepts from here (so an unknown key is refused by both), and `rcfleet schema`
//! turns the same table into a JSON Schema that editors (Taplo, VS Code "Even Better TOML") use
//! for completion, hover help and validation as you type.

use serde_json::{json, Map, Value};

/// What a key holds.
pub enum Kind {
    String,
    /// One of these words.
    Choice(&'static [&'static str]),
    Integer { min: i64, max: i64 },
    Port,
    Boolean,
    /// `{ env = "NAME" }` or `{ file = "path" }`; never the secret itself.
    Secret,
    /// An array of these words, each at most once.
    Choices(&'static [&'static str]),
    /// An array of integers from 0.
    Indexes,
    /// An array of strings (e.g. host names).
    Strings,
    Table(&'static [Key]),
    /// `[[hosts]]`: an array of tables.
    Tables(&'static [Key]),
    /// A free-form table whose values are strings or secret references (`[rocketchat.env]`).
    EnvTable,
}

pub struct Key {
    pub name: &'static str,
    pub kind: Kind,
    pub required: bool,
    pub description: &'static str,
}

const fn key(name: &'static str, kind: Kind, description: &'static str) -> Key {
    Key { name, kind, required: false, description }
}

const fn required(name: &'static str, kind: Kind, description: &'static str) -> Key {
    Key { name, kind, required: true, description }
}

/// The names of `keys`, for `Section::reject_unknown_keys`.
pub fn names(keys: &[Key]) -> Vec<&'static str> {
    keys.iter().map(|key| key.name).collect()
}

pub const ROLES: &[&str] = &["database", "monitoring", "traefik", "rocketchat"];

pub const WORKSPACE: &[Key] = &[
    required("name", Kind::String, "Short name; prefixes every compose project (chat-database, chat-app1-0). Lowercase letters, digits and '-', starting with a letter."),
    required("root_url", Kind::String, "The URL users open, e.g. \"https://chat.example.com\". Its host must be traefik.domain."),
    required("release", Kind::String, "Rocket.Chat release (image tag): X.Y.Z or X.Y.Z-rc.N. `rcfleet upgrade` rewrites this line."),
    key("license", Kind::Secret, "Enterprise licence, passed to every instance as ROCKETCHAT_LICENSE."),
    key("deploy_dir", Kind::String, "Folder on every host where rcfleet keeps its compose projects and configs (default /opt/rcfleet)."),
];

pub const SSH: &[Key] = &[
    key("user", Kind::String, "Login user. When absent, ~/.ssh/config's User for the host decides, then root."),
    key("port", Kind::Port, "SSH port. When absent, ~/.ssh/config's Port for the host decides, then 22."),
    key("identity_file", Kind::String, "Private key file. When absent, ~/.ssh/config's IdentityFile decides, then the SSH agent and ~/.ssh/id_ed25519, id_ecdsa, id_rsa."),
    key("identity_passphrase", Kind::Secret, "Passphrase of the identity file."),
    key("known_hosts", Kind::String, "Host keys are checked against this file before any login (default ~/.ssh/known_hosts, or ~/.ssh/config's UserKnownHostsFile)."),
    key("accept_new_host_keys", Kind::Boolean, "Trust hosts seen for the first time and record their keys (default false)."),
    key("connect_timeout_seconds", Kind::Integer { min: 1, max: 600 }, "Seconds to wait for a connection (default 10)."),
    key("command_timeout_seconds", Kind::Integer { min: 1, max: 3600 }, "Seconds a remote command without a limit of its own may take before it is stopped and named (default 120)."),
    key("jump", Kind::String, "Reach the host through a bastion: the name of a host of this inventory, or user@address[:port]. When absent, ~/.ssh/config's ProxyJump decides."),
];

pub const HOST: &[Key] = &[
    required("name", Kind::String, "Unique host name; used in instance names (app1-0) and on the command line."),
    required("address", Kind::String, "Where rcfleet connects over SSH: IP address, DNS name or ~/.ssh/config alias."),
    key("private_address", Kind::String, "Where the other hosts reach this one (defaults to address)."),
    required("roles", Kind::Choices(ROLES), "What runs on the host: any of database, monitoring, traefik, rocketchat."),
    key("instances", Kind::Integer { min: 1, max: 100 }, "Number of Rocket.Chat instances (rocketchat role only; required there)."),
    key("port", Kind::Port, "PORT of the first instance; instance k listens on port + k (default 3000)."),
    key("metrics_port", Kind::Port, "Prometheus metrics port of the first instance; instance k uses metrics_port + k (default 9458)."),
    key("retired", Kind::Indexes, "Instance indexes below `instances` that do not run; written by `rcfleet remove-instance`."),
    key("ssh", Kind::Table(SSH), "SSH settings of this host; they win over [ssh]."),
];

pub const IMAGE: &[Key] = &[
    key("repository", Kind::String, "Image repository, e.g. a private mirror."),
    key("tag", Kind::String, "Image tag."),
];
pub const IMAGE_WITHOUT_TAG: &[Key] = &[
    key("repository", Kind::String, "Image repository, e.g. a private mirror. The tag is always workspace.release."),
    key("insecure", Kind::Boolean, "The mirror's registry speaks plain HTTP: look its tags up without TLS (default false)."),
];

pub const IMAGES: &[Key] = &[
    key("rocketchat", Kind::Table(IMAGE_WITHOUT_TAG), "Rocket.Chat's image; its tag is workspace.release."),
    key("mongodb", Kind::Table(IMAGE), "MongoDB server image; the tag follows mongodb.version unless given."),
    key("nats", Kind::Table(IMAGE), "NATS image."),
    key("prometheus", Kind::Table(IMAGE), "Prometheus image."),
    key("grafana", Kind::Table(IMAGE), "Grafana image."),
    key("traefik", Kind::Table(IMAGE), "Traefik image."),
    key("mongodb_tools", Kind::Table(IMAGE), "Image that runs mongodump for the upgrade's backup."),
    key("node_exporter", Kind::Table(IMAGE), "Prometheus node exporter image (every host)."),
    key("blackbox_exporter", Kind::Table(IMAGE), "Prometheus blackbox exporter image (probes NATS)."),
    key("alertmanager", Kind::Table(IMAGE), "Alertmanager image ([monitoring.alertmanager])."),
];

pub const TLS: &[Key] = &[
    required("mode", Kind::Choice(&["none", "letsencrypt", "files"]), "none (plain HTTP), letsencrypt (needs email) or files (needs cert and key)."),
    key("email", Kind::String, "Let's Encrypt account e-mail (mode = \"letsencrypt\")."),
    key("cert", Kind::String, "Certificate path on the Traefik host, PEM (mode = \"files\")."),
    key("key", Kind::String, "Private key path on the Traefik host, PEM (mode = \"files\")."),
];

pub const TRAEFIK: &[Key] = &[
    required("domain", Kind::String, "The public name of the workspace; must be the host of workspace.root_url."),
    key("http_port", Kind::Port, "HTTP entry point (default 80)."),
    key("https_port", Kind::Port, "HTTPS entry point (default 443)."),
    key("api_port", Kind::Port, "Traefik's API and ping, on 127.0.0.1 of the Traefik host (default 8080)."),
    key("metrics_port", Kind::Port, "Traefik's Prometheus metrics, on the host's private address (default 8082)."),
    key("tls", Kind::Table(TLS), "How Traefik serves HTTPS."),
];

pub const MONGODB: &[Key] = &[
    key("version", Kind::String, "MongoDB major.minor, e.g. \"8.2\"; must be supported by the Rocket.Chat major in use."),
    key("replica_set", Kind::String, "Replica set name (default rs0)."),
    key("port", Kind::Port, "MongoDB port (default 27017)."),
    key("database", Kind::String, "Rocket.Chat's database (default rocketchat)."),
    key("auth", Kind::Boolean, "Access control with generated users (default true)."),
    key("admin_password", Kind::Secret, "rcfleet's admin user password (generated when absent)."),
    key("app_password", Kind::Secret, "Password of the user Rocket.Chat connects as (generated when absent)."),
    key("allow_unsupported", Kind::Boolean, "Deploy a MongoDB version the Rocket.Chat release does not list (default false)."),
];

pub const NATS: &[Key] = &[
    key("port", Kind::Port, "NATS client port (default 4222)."),
    key("monitor_port", Kind::Port, "NATS monitoring port (default 8222)."),
    key("auth", Kind::Boolean, "Clients must log in as user rocketchat (default true)."),
    key("password", Kind::Secret, "NATS password (generated when absent)."),
];

pub const MONITORING: &[Key] = &[
    key("prometheus_port", Kind::Port, "Prometheus port (default 9090)."),
    key("grafana_port", Kind::Port, "Grafana port (default 5050)."),
    key("retention", Kind::String, "How long Prometheus keeps data, e.g. \"15d\"."),
    key("alert_for", Kind::String, "How long a condition must hold before its alert fires, e.g. \"5m\" (default 5m)."),
    key("grafana_admin_password", Kind::Secret, "Grafana's admin password (generated when absent)."),
    key("node_exporter_port", Kind::Port, "The node exporter's port on every host (default 9100)."),
    key("blackbox_port", Kind::Port, "The blackbox exporter's port on the monitoring host (default 9115)."),
    key("alertmanager", Kind::Table(ALERTMANAGER), "Alertmanager on the monitoring host, sending alerts to a webhook."),
];

pub const ALERTMANAGER: &[Key] = &[
    required("webhook_url", Kind::Secret, "Secret reference to the URL Alertmanager posts alerts to (it usually holds a token)."),
    key("port", Kind::Port, "Alertmanager's port on the monitoring host (default 9093)."),
];

pub const UPGRADE: &[Key] = &[
    key("strategy", Kind::Choice(&["auto", "start-first", "stop-first"]), "auto (default) picks start-first where every app host has the memory for the instances two batches run twice, else stop-first; start-first starts the new release on each instance's spare ports (port + 1000) before the old one stops; stop-first drains and stops it first."),
    key("batch_size", Kind::Integer { min: 1, max: 100 }, "Instances replaced at a time after the canary (default 1)."),
    key("drain_seconds", Kind::Integer { min: 0, max: 3600 }, "Seconds to wait after an instance left Traefik before it is stopped (default 10)."),
    key("readiness_timeout_seconds", Kind::Integer { min: 1, max: 7200 }, "Seconds an instance may take to become ready before the upgrade is rolled back (default 300)."),
];

pub const ROCKETCHAT: &[Key] =
    &[key("env", Kind::EnvTable, "Extra environment for every instance: strings or secret references.")];

pub const BACKUP: &[Key] =
    &[key("keep", Kind::Integer { min: 1, max: 1000 }, "Backups kept on the database host; older ones are removed after each new one.")];

const SERVICES: &[&str] = &["account", "authorization", "presence", "ddp-streamer", "queue-worker", "omnichannel-transcript", "stream-hub"];

const REPLICAS: &[Key] = &[
    key("account", Kind::Integer { min: 1, max: 100 }, "Replicas of account (default 1)."),
    key("authorization", Kind::Integer { min: 1, max: 100 }, "Replicas of authorization (default 1)."),
    key("presence", Kind::Integer { min: 1, max: 100 }, "Replicas of presence (default 1)."),
    key("queue-worker", Kind::Integer { min: 1, max: 100 }, "Replicas of queue-worker (default 1)."),
    key("omnichannel-transcript", Kind::Integer { min: 1, max: 100 }, "Replicas of omnichannel-transcript (default 1)."),
    key("stream-hub", Kind::Integer { min: 1, max: 1 }, "stream-hub runs exactly once (7.x only)."),
];

const PLACEMENT: &[Key] = &[
    key("account", Kind::Strings, "Hosts that run account."),
    key("authorization", Kind::Strings, "Hosts that run authorization."),
    key("presence", Kind::Strings, "Hosts that run presence."),
    key("ddp-streamer", Kind::Strings, "Hosts that run the ddp-streamers."),
    key("queue-worker", Kind::Strings, "Hosts that run queue-worker."),
    key("omnichannel-transcript", Kind::Strings, "Hosts that run omnichannel-transcript."),
    key("stream-hub", Kind::Strings, "The host that runs stream-hub."),
];

pub const MICROSERVICES: &[Key] = &[
    key("enabled", Kind::Boolean, "Run Rocket.Chat's microservices (needs workspace.license with the scalability module)."),
    key("services", Kind::Choices(SERVICES), "Services to run (default: every service the release has; stream-hub is 7.x only)."),
    key("replicas", Kind::Table(REPLICAS), "Replicas per service (ddp-streamers are sized by ddp_streamers or concurrent_users)."),
    key("ddp_streamers", Kind::Integer { min: 1, max: 1000 }, "Number of ddp-streamers (or give concurrent_users)."),
    key("concurrent_users", Kind::Integer { min: 1, max: 10_000_000 }, "Expected concurrent users: one ddp-streamer per 500, at least one per app host."),
    key("placement", Kind::Table(PLACEMENT), "Hosts per service (default: spread over the rocketchat hosts)."),
    key("repository", Kind::String, "Where the service images are: <repository>/<name>-service:<release> (default docker.io/rocketchat)."),
];

pub const TOP: &[Key] = &[
    required("workspace", Kind::Table(WORKSPACE), "The workspace: name, URL and release."),
    key("ssh", Kind::Table(SSH), "SSH defaults for every host; a host can override any of them."),
    required("hosts", Kind::Tables(HOST), "Every server rcfleet manages, one [[hosts]] table each."),
    key("images", Kind::Table(IMAGES), "Container images; defaults are the official images."),
    required("traefik", Kind::Table(TRAEFIK), "The load balancer."),
    key("mongodb", Kind::Table(MONGODB), "The MongoDB replica set."),
    key("nats", Kind::Table(NATS), "NATS, the instances' message bus."),
    key("monitoring", Kind::Table(MONITORING), "Prometheus and Grafana."),
    key("upgrade", Kind::Table(UPGRADE), "How `rcfleet upgrade` replaces instances."),
    key("backup", Kind::Table(BACKUP), "Backups of the workspace database (`rcfleet backup`)."),
    key("rocketchat", Kind::Table(ROCKETCHAT), "Rocket.Chat settings."),
    key("microservices", Kind::Table(MICROSERVICES), "Rocket.Chat's microservices: run on the app hosts by `up`, exported by `export helm-values`."),
];

/// The JSON Schema (draft-07, which Taplo reads) of the whole inventory.
pub fn json_schema() -> Value {
    let mut schema = table_schema(TOP);
    let object = schema.as_object_mut().expect("a table schema is an object");
    object.insert("$schema".into(), json!("http://json-schema.org/draft-07/schema#"));
    object.insert("title".into(), json!("rcfleet inventory"));
    object.insert(
        "description".into(),
        json!("One file describing a Rocket.Chat workspace deployed by rcfleet. Secrets are references, never values."),
    );
    // The one rule between keys of a host that editors can check: a rocketchat host says how
    // many instances it runs (the reader's `instances` is required there too).
    let host = schema.pointer_mut("/properties/hosts/items").and_then(Value::as_object_mut).expect("hosts are tables");
    host.insert("if".into(), json!({ "properties": { "roles": { "contains": { "const": "rocketchat" } } }, "required": ["roles"] }));
    host.insert("then".into(), json!({ "required": ["instances"] }));
    schema
}

fn table_schema(keys: &[Key]) -> Value {
    let mut properties = Map::new();
    for key in keys {
        let mut property = kind_schema(&key.kind);
        property.as_object_mut().expect("an object").insert("description".into(), json!(key.description));
        properties.insert(key.name.into(), property);
    }
    let required: Vec<&str> = keys.iter().filter(|key| key.required).map(|key| key.name).collect();
    json!({ "type": "object", "properties": properties, "required": required, "additionalProperties": false })
}

fn secret_schema() -> Value {
    json!({
        "type": "object",
        "oneOf": [
            { "properties": { "env": { "type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*$" } }, "required": ["env"], "additionalProperties": false },
            { "properties": { "file": { "type": "string", "minLength": 1 } }, "required": ["file"], "additionalProperties": false }
        ]
    })
}

fn kind_schema(kind: &Kind) -> Value {
    match kind {
        Kind::String => json!({ "type": "string" }),
        Kind::Choice(words) => json!({ "type": "string", "enum": words }),
        Kind::Integer { min, max } => json!({ "type": "integer", "minimum": min, "maximum": max }),
        Kind::Port => json!({ "type": "integer", "minimum": 1, "maximum": 65535 }),
        Kind::Boolean => json!({ "type": "boolean" }),
        Kind::Secret => secret_schema(),
        Kind::Choices(words) => {
            json!({ "type": "array", "items": { "type": "string", "enum": words }, "uniqueItems": true, "minItems": 1 })
        }
        Kind::Indexes => json!({ "type": "array", "items": { "type": "integer", "minimum": 0 }, "uniqueItems": true }),
        Kind::Strings => json!({ "type": "array", "items": { "type": "string" }, "uniqueItems": true }),
        Kind::Table(keys) => table_schema(keys),
        Kind::Tables(keys) => json!({ "type": "array", "items": table_schema(keys) }),
        Kind::EnvTable => json!({
            "type": "object",
            "propertyNames": { "pattern": "^[A-Za-z_][A-Za-z0-9_]*$" },
            "additionalProperties": { "anyOf": [{ "type": "string" }, secret_schema()] }
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_has_a_description() {
        fn walk(keys: &[Key]) {
            for key in keys {
                assert!(!key.description.is_empty(), "{} has no description", key.name);
                if let Kind::Table(inner) | Kind::Tables(inner) = &key.kind {
                    walk(inner);
                }
            }
        }
        walk(TOP);
    }

    #[test]
    fn every_default_image_has_its_key() {
        let defaults: Vec<&str> = crate::inventory::defaults::IMAGES.iter().map(|image| image.key).collect();
        assert_eq!(defaults, names(IMAGES));
    }
}

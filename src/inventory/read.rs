//! Reads every section of the inventory into a `Fleet`, checking each value on its own.
//! A bad value is reported and replaced by its default (or left empty), so reading goes on
//! and the checks between values (`checks`) still run: the user sees every problem at once.

use std::collections::BTreeMap;
use toml_edit::{Item, Table};

use super::microservices;
use super::defaults::{self, DefaultImage};
use super::paths;
use super::schema;
use super::reader::{is_env_name, secret_from_item, Section};
use super::source::Problems;
use super::values::{self, Check};
use crate::fleet::*;

/// Environment variables rcfleet sets on every instance itself; `[rocketchat.env]` may not.
pub const RESERVED_ENV: &[&str] = &[
    "ROOT_URL",
    "PORT",
    "MONGO_URL",
    "MONGO_OPLOG_URL",
    "TRANSPORTER",
    "INSTANCE_IP",
    "DEPLOY_METHOD",
    "DEPLOY_PLATFORM",
    "ROCKETCHAT_LICENSE",
    "OVERWRITE_SETTING_Prometheus_Enabled",
    "OVERWRITE_SETTING_Prometheus_Port",
    "PROMETHEUS_PORT",
];

pub fn fleet(root: &Table, problems: &mut Problems) -> Option<Fleet> {
    let top = Section::new("", root, None);
    top.reject_unknown_keys(&schema::names(schema::TOP), problems);

    let workspace = workspace(&top, problems);
    let ssh_defaults = ssh_settings(top.table("ssh", false, problems).as_ref(), &SshSettings::open(), problems);
    let (mut hosts, jumps) = hosts(&top, &ssh_defaults, problems);
    resolve_jumps(&mut hosts, jumps, problems);

    let mongodb = mongodb(&top, problems);
    let context = microservices::Context { release: &workspace.release, has_license: workspace.license.is_some(), hosts: &hosts };
    let microservices = microservices::microservices(&top, &context, problems);
    Some(Fleet {
        images: images(&top, &workspace.release, &mongodb.version, problems),
        traefik: traefik(&top, problems),
        mongodb,
        nats: nats(&top, problems),
        monitoring: monitoring(&top, problems),
        upgrade: upgrade(&top, problems),
        backup: backup(&top, problems),
        rocketchat_env: rocketchat_env(&top, problems),
        microservices,
        workspace,
        hosts,
    })
}

/// Reports `check`'s error at `section.key`.
fn check(section: &Section, key: &str, result: Check, problems: &mut Problems) -> bool {
    match result {
        Ok(()) => true,
        Err(message) => {
            problems.report(section.value_span(key), &section.key_path(key), message);
            false
        }
    }
}

/// A required string that must pass `rule`; empty when missing or invalid.
fn checked_string(section: &Section, key: &str, rule: fn(&str) -> Check, problems: &mut Problems) -> String {
    match section.string(key, true, problems) {
        Some(text) if check(section, key, rule(&text), problems) => text,
        _ => String::new(),
    }
}

/// An optional string that must pass `rule`; `default` when absent, empty when invalid.
pub(super) fn checked_or(section: &Section, key: &str, default: &str, rule: fn(&str) -> Check, problems: &mut Problems) -> String {
    if !section.has(key) {
        return default.to_string();
    }
    match section.string(key, false, problems) {
        Some(text) if check(section, key, rule(&text), problems) => text,
        _ => String::new(),
    }
}

fn workspace(top: &Section, problems: &mut Problems) -> Workspace {
    let fallback = Release { major: 0, minor: 0, patch: 0, rc: None };
    let Some(section) = top.table("workspace", true, problems) else {
        return Workspace {
            name: String::new(),
            root_url: String::new(),
            release: fallback,
            license: None,
            deploy_dir: String::new(),
        };
    };
    section.reject_unknown_keys(&schema::names(schema::WORKSPACE), problems);
    let root_url = match section.string("root_url", true, problems) {
        Some(url) => match values::root_url(&url) {
            Ok(_) => url,
            Err(message) => {
                problems.report(section.value_span("root_url"), &section.key_path("root_url"), message);
                String::new()
            }
        },
        None => String::new(),
    };
    let release = match section.string("release", true, problems) {
        Some(tag) => Release::parse(&tag).unwrap_or_else(|| {
            problems.report(
                section.value_span("release"),
                &section.key_path("release"),
                format!("{tag:?} is not a Rocket.Chat release; write X.Y.Z or X.Y.Z-rc.N, e.g. \"8.0.1\""),
            );
            fallback.clone()
        }),
        None => fallback,
    };
    Workspace {
        name: checked_string(&section, "name", values::name, problems),
        root_url,
        release,
        license: section.secret("license", false, problems),
        deploy_dir: checked_or(&section, "deploy_dir", "/opt/rcfleet", values::deploy_dir, problems),
    }
}

/// A jump host as written: a host name of the inventory, or `user@address[:port]`.
struct JumpRequest {
    text: String,
    key_path: String,
    span: Option<std::ops::Range<usize>>,
}

/// SSH settings from `section` over `base`. The jump host is resolved later, once every host is known.
fn ssh_settings(section: Option<&Section>, base: &SshSettings, problems: &mut Problems) -> SshSettings {
    let mut ssh = base.clone();
    let Some(section) = section else { return ssh };
    section.reject_unknown_keys(&schema::names(schema::SSH), problems);
    let folder = problems.source().folder();
    if section.has("user") {
        let user = section.string("user", false, problems).unwrap_or_default();
        if check(section, "user", values::identifier(&user, "deploy"), problems) {
            ssh.user = Some(user);
        }
    }
    if section.has("port") {
        ssh.port = section.port("port", 22, problems).or(base.port);
    }
    if let Some(path) = section.string("identity_file", false, problems) {
        ssh.identity_file = Some(paths::expand(&path, &folder));
    }
    if let Some(secret) = section.secret("identity_passphrase", false, problems) {
        ssh.identity_passphrase = Some(secret);
    }
    if let Some(path) = section.string("known_hosts", false, problems) {
        ssh.known_hosts = Some(paths::expand(&path, &folder));
    }
    if let Some(flag) = section.boolean("accept_new_host_keys", problems) {
        ssh.accept_new_host_keys = Some(flag);
    }
    if let Some(seconds) = section.number_in("connect_timeout_seconds", 1..=600, base.connect_timeout_seconds as i64, problems) {
        ssh.connect_timeout_seconds = seconds as u64;
    }
    if let Some(seconds) = section.number_in("command_timeout_seconds", 1..=3600, base.command_timeout_seconds as i64, problems) {
        ssh.command_timeout_seconds = seconds as u64;
    }
    ssh
}

fn jump_request(section: Option<&Section>, problems: &mut Problems) -> Option<JumpRequest> {
    let section = section?;
    let text = section.string("jump", false, problems)?;
    Some(JumpRequest { text, key_path: section.key_path("jump"), span: section.value_span("jump") })
}

fn hosts(top: &Section, ssh_defaults: &SshSettings, problems: &mut Problems) -> (Vec<Host>, Vec<Option<JumpRequest>>) {
    let default_jump = jump_request(top.table("ssh", false, problems).as_ref(), problems);
    let mut hosts = Vec::new();
    let mut jumps = Vec::new();
    let Some(item) = root_item(top, "hosts", problems) else {
        return (hosts, jumps);
    };
    let Some(array) = item.as_array_of_tables() else {
        problems.report(item.span(), "hosts", "expected [[hosts]] tables, one per server");
        return (hosts, jumps);
    };
    for (index, table) in array.iter().enumerate() {
        let section = Section::new(format!("hosts[{index}]"), table, table.span());
        let ssh_section = section.table("ssh", false, problems);
        let ssh = ssh_settings(ssh_section.as_ref(), ssh_defaults, problems);
        let jump = jump_request(ssh_section.as_ref(), problems).or_else(|| {
            default_jump.as_ref().map(|j| JumpRequest { text: j.text.clone(), key_path: j.key_path.clone(), span: j.span.clone() })
        });
        hosts.push(host(&section, ssh, problems));
        jumps.push(jump);
    }
    (hosts, jumps)
}

fn root_item<'d>(top: &Section<'d>, key: &str, problems: &mut Problems) -> Option<&'d Item> {
    let entry = top.entries().into_iter().find(|(name, _, _)| *name == key);
    if entry.is_none() {
        problems.report(None, key, "missing; add one [[hosts]] table per server (see inventory.example.toml)");
    }
    entry.map(|(_, item, _)| item)
}

fn host(section: &Section, ssh: SshSettings, problems: &mut Problems) -> Host {
    section.reject_unknown_keys(&schema::names(schema::HOST), problems);
    let name = checked_string(section, "name", values::name, problems);
    let address = checked_string(section, "address", values::address, problems);
    let private_address = checked_or(section, "private_address", &address, values::address, problems);
    let roles = roles(section, problems);
    let instances = instances(section, &name, &private_address, roles.contains(&Role::Rocketchat), problems);
    Host { name, address, private_address, roles, ssh, instances }
}

fn roles(section: &Section, problems: &mut Problems) -> Vec<Role> {
    let mut roles = Vec::new();
    let Some(names) = section.strings("roles", true, problems) else {
        return roles;
    };
    let key = section.key_path("roles");
    if names.is_empty() {
        problems.report(section.value_span("roles"), &key, "no roles; give at least one of database, monitoring, traefik, rocketchat");
    }
    for (name, span) in names {
        match Role::from_name(&name) {
            Some(role) if roles.contains(&role) => problems.report(span, &key, format!("role {name:?} is listed twice")),
            Some(role) => roles.push(role),
            None => problems.report(
                span,
                &key,
                format!("unknown role {name:?}; use any of database, monitoring, traefik, rocketchat"),
            ),
        }
    }
    roles.sort();
    roles
}

fn instances(section: &Section, host: &str, private_address: &str, rocketchat: bool, problems: &mut Problems) -> Vec<Instance> {
    if !rocketchat {
        for key in ["instances", "port", "metrics_port", "retired"] {
            if section.has(key) {
                problems.report(
                    section.value_span(key),
                    &section.key_path(key),
                    "only hosts with the \"rocketchat\" role run instances; add that role or remove this key",
                );
            }
        }
        return Vec::new();
    }
    let count = match section.integer("instances", true, problems) {
        Some(count) if (1..=100).contains(&count) => count as u32,
        Some(count) => {
            problems.report(
                section.value_span("instances"),
                &section.key_path("instances"),
                format!("{count} instances; give 1 to 100 (to run none, remove the \"rocketchat\" role)"),
            );
            0
        }
        None => 0,
    };
    let port = section.port("port", 3000, problems).unwrap_or(3000);
    let metrics_port = section.port("metrics_port", 9458, problems).unwrap_or(9458);
    for (key, first) in [("port", port), ("metrics_port", metrics_port)] {
        // The spare ports (start-first upgrades) lie SPARE_PORT_OFFSET above.
        if u32::from(first) + count.saturating_sub(1) + u32::from(SPARE_PORT_OFFSET) > 65535 {
            problems.report(
                section.value_span(key),
                &section.key_path(key),
                format!(
                    "{count} instances from port {first}, with their spare ports {SPARE_PORT_OFFSET} above, run past \
                     65535; choose a lower first port"
                ),
            );
            return Vec::new();
        }
    }
    let retired = retired(section, count, problems);
    (0..count)
        .filter(|index| !retired.contains(index))
        .map(|index| Instance {
            name: format!("{host}-{index}"),
            host: host.to_string(),
            index,
            private_address: private_address.to_string(),
            port: port + index as u16,
            metrics_port: metrics_port + index as u16,
            slot: Slot::Primary,
        })
        .collect()
}

/// `retired = [k, ...]`: indexes below `instances` that do not run (left by `remove-instance`),
/// so that every other instance keeps its name and ports. At least one index must run.
fn retired(section: &Section, count: u32, problems: &mut Problems) -> Vec<u32> {
    let Some((_, item, _)) = section.entries().into_iter().find(|(name, _, _)| *name == "retired") else {
        return Vec::new();
    };
    let key = section.key_path("retired");
    let Some(array) = item.as_array() else {
        problems.report(item.span(), &key, "expected an array of instance indexes, e.g. retired = [0]");
        return Vec::new();
    };
    let mut retired = Vec::new();
    for value in array.iter() {
        match value.as_integer() {
            Some(index) if count > 0 && !(0..i64::from(count)).contains(&index) => problems.report(
                value.span(),
                &key,
                format!("{index} is not an instance index of this host (instances = {count} gives 0 to {})", count - 1),
            ),
            Some(index) if retired.contains(&(index as u32)) => {
                problems.report(value.span(), &key, format!("index {index} is listed twice"))
            }
            Some(index) if count > 0 => retired.push(index as u32),
            Some(_) => {}
            None => problems.report(value.span(), &key, "expected instance indexes (integers), e.g. retired = [0]"),
        }
    }
    if count > 0 && retired.len() == count as usize {
        problems.report(
            item.span(),
            &key,
            "every instance of this host is retired; to run none, remove the \"rocketchat\" role and its keys",
        );
    }
    retired
}

/// Turns each host's jump request into a `JumpHost`: a host name of the inventory takes that
/// host's SSH address, user and port; anything else must be `user@address[:port]`. rcfleet
/// makes one hop: a jump host that is itself reached through another one (a chain, or a
/// cycle) is refused rather than silently reached directly.
fn resolve_jumps(hosts: &mut [Host], jumps: Vec<Option<JumpRequest>>, problems: &mut Problems) {
    let by_name: BTreeMap<String, JumpHost> = hosts
        .iter()
        .map(|h| (h.name.clone(), JumpHost { user: h.ssh.user.clone(), address: h.address.clone(), port: h.ssh.port }))
        .collect();
    // Which host each inventory host itself jumps through (none for a bastion naming itself).
    let jumps_of: BTreeMap<String, String> = hosts
        .iter()
        .zip(&jumps)
        .filter_map(|(h, j)| j.as_ref().filter(|j| j.text != h.name).map(|j| (h.name.clone(), j.text.clone())))
        .collect();
    for (host, jump) in hosts.iter_mut().zip(jumps) {
        let Some(jump) = jump else { continue };
        if jump.text == host.name {
            continue; // the bastion itself is reached directly
        }
        if let Some(next) = jumps_of.get(&jump.text) {
            let how = if *next == host.name {
                "a cycle; let one of the two be reached directly (set that host's ssh jump to its own name)".to_string()
            } else {
                format!(
                    "rcfleet makes one hop only, so jump through {next:?} directly, or let {:?} be reached directly \
                     (set its ssh jump to its own name)",
                    jump.text
                )
            };
            problems.report(
                jump.span.clone(),
                &jump.key_path,
                format!("host {:?} is reached through jump host {:?}, which is itself reached through {next:?}: {how}", host.name, jump.text),
            );
            continue;
        }
        let resolved = by_name.get(&jump.text).cloned().or_else(|| parse_jump(&jump.text));
        match resolved {
            Some(resolved) => host.ssh.jump = Some(resolved),
            None => problems.report(
                jump.span.clone(),
                &jump.key_path,
                format!("{:?} is neither a host of this inventory nor user@address[:port]", jump.text),
            ),
        }
    }
}

fn parse_jump(text: &str) -> Option<JumpHost> {
    let (user, rest) = text.split_once('@')?;
    let (address, port) = match rest.rsplit_once(':') {
        Some((address, port)) if !address.contains(':') => (address, Some(port.parse().ok().filter(|p| *p > 0)?)),
        _ => (rest, None),
    };
    (values::identifier(user, "root").is_ok() && values::address(address).is_ok())
        .then(|| JumpHost { user: Some(user.into()), address: address.into(), port })
}

/// The images; MongoDB's tag follows `mongodb.version` unless `[images].mongodb.tag` is given.
fn images(top: &Section, release: &Release, mongodb_version: &str, problems: &mut Problems) -> Images {
    let mongodb_tag =
        defaults::mongodb_tag(if mongodb_version.is_empty() { defaults::MONGODB_VERSION } else { mongodb_version });
    let section = top.table("images", false, problems);
    if let Some(section) = &section {
        section.reject_unknown_keys(&schema::names(schema::IMAGES), problems);
    }
    // Only the Rocket.Chat image's registry is asked by rcfleet itself (for its tags).
    let rocketchat_registry_insecure = section
        .as_ref()
        .filter(|s| s.entries().iter().any(|(key, item, _)| *key == "rocketchat" && item.is_table_like()))
        .and_then(|s| s.table("rocketchat", false, problems))
        .and_then(|table| table.boolean("insecure", problems))
        .unwrap_or(false);
    let mut image = |default: &DefaultImage, tag: Option<&str>| -> Image {
        let repository = default.repository;
        let mut image = Image { repository: repository.into(), tag: tag.unwrap_or_default().into() };
        let Some(table) = section.as_ref().and_then(|s| s.table(default.key, false, problems)) else {
            if tag.is_none() {
                image.tag = release.to_string();
            }
            return image;
        };
        table.reject_unknown_keys(&schema::names(if tag.is_some() { schema::IMAGE } else { schema::IMAGE_WITHOUT_TAG }), problems);
        image.repository = checked_or(&table, "repository", repository, values::image_repository, problems);
        image.tag = match tag {
            Some(tag) => checked_or(&table, "tag", tag, values::image_tag, problems),
            None => release.to_string(),
        };
        image
    };
    Images {
        rocketchat_registry_insecure,
        rocketchat: image(&defaults::ROCKETCHAT, None),
        mongodb: image(&defaults::MONGODB, Some(&mongodb_tag)),
        nats: image(&defaults::NATS, defaults::NATS.tag),
        prometheus: image(&defaults::PROMETHEUS, defaults::PROMETHEUS.tag),
        grafana: image(&defaults::GRAFANA, defaults::GRAFANA.tag),
        traefik: image(&defaults::TRAEFIK, defaults::TRAEFIK.tag),
        mongodb_tools: image(&defaults::MONGODB_TOOLS, defaults::MONGODB_TOOLS.tag),
        node_exporter: image(&defaults::NODE_EXPORTER, defaults::NODE_EXPORTER.tag),
        blackbox_exporter: image(&defaults::BLACKBOX_EXPORTER, defaults::BLACKBOX_EXPORTER.tag),
        alertmanager: image(&defaults::ALERTMANAGER, defaults::ALERTMANAGER.tag),
    }
}

fn traefik(top: &Section, problems: &mut Problems) -> TraefikSettings {
    let mut settings = TraefikSettings {
        domain: String::new(),
        http_port: 80,
        https_port: 443,
        api_port: 8080,
        metrics_port: 8082,
        tls: Tls::None,
    };
    let Some(section) = top.table("traefik", true, problems) else {
        return settings;
    };
    section.reject_unknown_keys(&schema::names(schema::TRAEFIK), problems);
    settings.domain = checked_string(&section, "domain", values::domain, problems);
    settings.http_port = section.port("http_port", 80, problems).unwrap_or(80);
    settings.https_port = section.port("https_port", 443, problems).unwrap_or(443);
    settings.api_port = section.port("api_port", 8080, problems).unwrap_or(8080);
    settings.metrics_port = section.port("metrics_port", 8082, problems).unwrap_or(8082);
    if let Some(tls) = section.table("tls", false, problems) {
        settings.tls = read_tls(&tls, problems);
    }
    settings
}

fn read_tls(section: &Section, problems: &mut Problems) -> Tls {
    let mode = section.string("mode", true, problems).unwrap_or_default();
    match mode.as_str() {
        "none" => {
            section.reject_unknown_keys(&["mode"], problems);
            Tls::None
        }
        "letsencrypt" => {
            section.reject_unknown_keys(&["mode", "email"], problems);
            Tls::LetsEncrypt { email: checked_string(section, "email", values::email, problems) }
        }
        "files" => {
            section.reject_unknown_keys(&["mode", "cert", "key"], problems);
            Tls::Files {
                cert: checked_string(section, "cert", values::server_path, problems),
                key: checked_string(section, "key", values::server_path, problems),
            }
        }
        "" => Tls::None,
        other => {
            problems.report(
                section.value_span("mode"),
                &section.key_path("mode"),
                format!("unknown TLS mode {other:?}; use \"none\", \"letsencrypt\" (with email) or \"files\" (with cert and key)"),
            );
            Tls::None
        }
    }
}

fn mongodb(top: &Section, problems: &mut Problems) -> MongoSettings {
    let mut settings = MongoSettings {
        version: defaults::MONGODB_VERSION.into(),
        replica_set: "rs0".into(),
        port: 27017,
        database: "rocketchat".into(),
        auth: true,
        admin_password: None,
        app_password: None,
        allow_unsupported: false,
    };
    let Some(section) = top.table("mongodb", false, problems) else {
        return settings;
    };
    section.reject_unknown_keys(&schema::names(schema::MONGODB), problems);
    settings.version = checked_or(&section, "version", defaults::MONGODB_VERSION, values::mongo_version, problems);
    settings.allow_unsupported = section.boolean("allow_unsupported", problems).unwrap_or(false);
    settings.replica_set = checked_or(&section, "replica_set", "rs0", |t| values::identifier(t, "rs0"), problems);
    settings.port = section.port("port", 27017, problems).unwrap_or(27017);
    settings.database = checked_or(&section, "database", "rocketchat", |t| values::identifier(t, "rocketchat"), problems);
    settings.auth = section.boolean("auth", problems).unwrap_or(true);
    settings.admin_password = section.secret("admin_password", false, problems);
    settings.app_password = section.secret("app_password", false, problems);
    if !settings.auth {
        for key in ["admin_password", "app_password"] {
            if section.has(key) {
                problems.report(
                    section.value_span(key),
                    &section.key_path(key),
                    "MongoDB has no users with `auth = false`; remove this line or set auth = true",
                );
            }
        }
    }
    settings
}

fn nats(top: &Section, problems: &mut Problems) -> NatsSettings {
    let Some(section) = top.table("nats", false, problems) else {
        return NatsSettings { port: 4222, monitor_port: 8222, auth: true, password: None };
    };
    section.reject_unknown_keys(&schema::names(schema::NATS), problems);
    let auth = section.boolean("auth", problems).unwrap_or(true);
    let password = section.secret("password", false, problems);
    if !auth && section.has("password") {
        problems.report(
            section.value_span("password"),
            &section.key_path("password"),
            "NATS takes no password with `auth = false`; remove this line or set auth = true",
        );
    }
    NatsSettings {
        port: section.port("port", 4222, problems).unwrap_or(4222),
        monitor_port: section.port("monitor_port", 8222, problems).unwrap_or(8222),
        auth,
        password,
    }
}

fn monitoring(top: &Section, problems: &mut Problems) -> MonitoringSettings {
    let Some(section) = top.table("monitoring", false, problems) else {
        return MonitoringSettings {
            prometheus_port: 9090,
            grafana_port: 5050,
            retention: "15d".into(),
            alert_for: "5m".into(),
            grafana_admin_password: None,
            node_exporter_port: 9100,
            blackbox_port: 9115,
            alertmanager: None,
        };
    };
    section.reject_unknown_keys(&schema::names(schema::MONITORING), problems);
    let alertmanager = section.table("alertmanager", false, problems).map(|table| {
        table.reject_unknown_keys(&schema::names(schema::ALERTMANAGER), problems);
        let webhook_url = table.secret("webhook_url", true, problems);
        (table.port("port", 9093, problems).unwrap_or(9093), webhook_url)
    });
    MonitoringSettings {
        node_exporter_port: section.port("node_exporter_port", 9100, problems).unwrap_or(9100),
        blackbox_port: section.port("blackbox_port", 9115, problems).unwrap_or(9115),
        alertmanager: alertmanager.and_then(|(port, webhook_url)| Some(AlertmanagerSettings { port, webhook_url: webhook_url? })),
        prometheus_port: section.port("prometheus_port", 9090, problems).unwrap_or(9090),
        grafana_port: section.port("grafana_port", 5050, problems).unwrap_or(5050),
        retention: checked_or(&section, "retention", "15d", values::retention, problems),
        alert_for: checked_or(&section, "alert_for", "5m", values::retention, problems),
        grafana_admin_password: section.secret("grafana_admin_password", false, problems),
    }
}

fn upgrade(top: &Section, problems: &mut Problems) -> UpgradePolicy {
    let mut policy =
        UpgradePolicy { strategy: UpgradeStrategy::Auto, batch_size: 1, drain_seconds: 10, readiness_timeout_seconds: 300 };
    let Some(section) = top.table("upgrade", false, problems) else {
        return policy;
    };
    section.reject_unknown_keys(&schema::names(schema::UPGRADE), problems);
    match section.string("strategy", false, problems).as_deref() {
        None | Some("auto") => {}
        Some("stop-first") => policy.strategy = UpgradeStrategy::StopFirst,
        Some("start-first") => policy.strategy = UpgradeStrategy::StartFirst,
        Some(other) => problems.report(
            section.value_span("strategy"),
            &section.key_path("strategy"),
            format!("unknown strategy {other:?}; use \"auto\", \"start-first\" (needs memory for one more instance per host) or \"stop-first\""),
        ),
    }
    if let Some(n) = section.number_in("batch_size", 1..=100, 1, problems) {
        policy.batch_size = n as u32;
    }
    if let Some(n) = section.number_in("drain_seconds", 0..=3600, 10, problems) {
        policy.drain_seconds = n as u64;
    }
    if let Some(n) = section.number_in("readiness_timeout_seconds", 1..=7200, 300, problems) {
        policy.readiness_timeout_seconds = n as u64;
    }
    policy
}

fn backup(top: &Section, problems: &mut Problems) -> BackupPolicy {
    let mut policy = BackupPolicy { keep: BackupPolicy::DEFAULT_KEEP };
    let Some(section) = top.table("backup", false, problems) else {
        return policy;
    };
    section.reject_unknown_keys(&schema::names(schema::BACKUP), problems);
    if let Some(n) = section.number_in("keep", 1..=1000, BackupPolicy::DEFAULT_KEEP as i64, problems) {
        policy.keep = n as u32;
    }
    policy
}

fn rocketchat_env(top: &Section, problems: &mut Problems) -> BTreeMap<String, EnvValue> {
    let mut env = BTreeMap::new();
    let Some(section) = top.table("rocketchat", false, problems) else {
        return env;
    };
    section.reject_unknown_keys(&schema::names(schema::ROCKETCHAT), problems);
    let Some(env_section) = section.table("env", false, problems) else {
        return env;
    };
    for (name, item, key_span) in env_section.entries() {
        let key = env_section.key_path(name);
        if !is_env_name(name) {
            problems.report(key_span.clone(), &key, "not a valid environment variable name; use letters, digits and '_', not starting with a digit");
            continue;
        }
        if RESERVED_ENV.contains(&name) {
            problems.report(key_span.clone(), &key, "rcfleet sets this variable itself from the inventory; remove it here");
            continue;
        }
        let value = match item.as_str() {
            Some(text) if text.contains(['\n', '\r', '\0']) => {
                problems.report(item.span(), &key, "line breaks and NUL cannot be passed in an environment variable; put the value on one line");
                continue;
            }
            Some(text) => EnvValue::Plain(text.to_string()),
            None if item.is_table_like() => match secret_from_item(&key, item, key_span, problems) {
                Some(secret) => EnvValue::Secret(secret),
                None => continue,
            },
            None => {
                problems.report(item.span(), &key, "expected a string or a secret reference such as { env = \"NAME\" }");
                continue;
            }
        };
        env.insert(name.to_string(), value);
    }
    env
}

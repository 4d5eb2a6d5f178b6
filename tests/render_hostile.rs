//! Hostile values in everything that reaches the renderer: either they come back exactly
//! from the rendered file (YAML structure unchanged, `$` doubled where Compose or Grafana
//! would expand it, no `{{` where Traefik would run a template), or rendering is refused with
//! a message naming the key and the secret's source, never the value. Which one, per field,
//! is what these tests pin down.

mod render_support;

use std::collections::BTreeMap;

use rcfleet::error::Error;
use rcfleet::fleet::{EnvValue, Fleet, SecretRef, Tls};
use rcfleet::render::{self, HostArtifacts};
use render_support::*;

/// Values YAML, Compose, Traefik or a shell would misread if pasted raw.
const HOSTILE: &[&str] = &[
    "quote \" and ' inside",
    "colon: space",
    "hash # not a comment",
    "multi\nline\nvalue",
    "dollar $RCFLEET_PROBE ${RCFLEET_PROBE} $$ $",
    "{{ handlebars }} {{{triple}}}",
    "{{ env \"RCFLEET_PROBE\" }}",
    "`backtick`",
    "- dash start",
    "yes",
    "0755",
    "&anchor *alias !tag",
    " leading and trailing ",
    "tab\there",
    "{\"json\": [1, 2]}",
    "back\\slash",
    "ünïcödé ✓",
    "",
];

/// The example fleet (Let's Encrypt, monitoring with a password).
fn example() -> Fleet {
    load("inventory.example.toml")
}

fn bad_input(result: rcfleet::error::Result<Vec<HostArtifacts>>) -> Vec<String> {
    match result {
        Err(Error::BadInput(problems)) => problems,
        Err(other) => panic!("expected bad input, got {other}"),
        Ok(_) => panic!("expected bad input, rendering succeeded"),
    }
}

fn secrets_for(fleet: &Fleet) -> Values {
    let mut values = known_secrets();
    for value in fleet.rocketchat_env.values() {
        if let EnvValue::Secret(source) = value {
            values.0.entry(source.clone()).or_insert_with(|| "plain-secret".into());
        }
    }
    values
}

#[test]
fn plain_extra_env_values_round_trip_through_yaml_and_compose() {
    let mut fleet = example();
    let expected: BTreeMap<String, String> =
        HOSTILE.iter().enumerate().map(|(i, v)| (format!("HOSTILE_{i:02}"), v.to_string())).collect();
    fleet.rocketchat_env = expected.iter().map(|(k, v)| (k.clone(), EnvValue::Plain(v.clone()))).collect();
    let hosts = render::render(&fleet, &secrets_for(&fleet)).unwrap();
    let instance = fleet.instances().next().unwrap();
    let unit = render::instance_unit(&fleet, instance);

    let compose = yaml(file(&hosts, &unit.host, &unit.compose_file()));
    let env = at(&compose, &["services", "rocketchat", "environment"]).as_mapping().unwrap();
    // rcfleet's 8 settings (MONGO_URL and TRANSPORTER are in instance.env) and the extra env.
    assert_eq!(env.len(), 8 + expected.len(), "keys were added or lost");
    for (key, value) in &expected {
        assert_eq!(
            str_at(&compose, &["services", "rocketchat", "environment", key]),
            value.replace('$', "$$"),
            "{key}"
        );
    }

    // What Compose itself makes of it: no expansion happened (`config` prints `$` as `$$`).
    let tree = tempfile::tempdir().unwrap();
    write_tree(hosts.iter().find(|h| h.host == unit.host).unwrap(), tree.path());
    let config = compose_config(&tree.path().join(&unit.dir));
    for (key, value) in &expected {
        let read = str_at(&config, &["services", "rocketchat", "environment", key]);
        assert_eq!(read, value.replace('$', "$$"), "{key}");
        assert!(!read.contains("EXPANDED"));
    }
}

#[test]
fn root_url_retention_replica_set_and_images_round_trip_where_they_land() {
    for hostile in HOSTILE
        .iter()
        .filter(|v| !v.contains(['\n', '\t', '$', '"', '\'', '\\']) && !v.contains(" #") && v.trim() == **v)
    {
        let mut fleet = example();
        fleet.workspace.root_url = format!("https://x/{hostile}");
        fleet.monitoring.retention = hostile.to_string();
        fleet.mongodb.replica_set = format!("rs{hostile}");
        fleet.images.rocketchat.repository = format!("registry/{hostile}");
        let hosts = render::render(&fleet, &secrets_for(&fleet)).unwrap_or_else(|e| panic!("{hostile:?}: {e}"));

        let instance = fleet.instances().next().unwrap();
        let unit = render::instance_unit(&fleet, instance);
        let compose = yaml(file(&hosts, &unit.host, &unit.compose_file()));
        assert_eq!(str_at(&compose, &["services", "rocketchat", "environment", "ROOT_URL"]), fleet.workspace.root_url);
        assert_eq!(str_at(&compose, &["services", "rocketchat", "image"]), fleet.images.rocketchat.to_string());

        let db = fleet.database_host().name.clone();
        let database = yaml(file(&hosts, &db, "database/compose.yml"));
        let mongod = strings(at(&database, &["services", "mongodb", "command"]));
        // 8 flags, and --keyFile with its path (access control is on by default).
        assert_eq!(mongod.len(), 10, "{hostile:?} changed the command");
        assert_eq!(mongod[1], fleet.mongodb.replica_set);
        let script = &file(&hosts, &db, "database/replica-set.js").content;
        let id = script.split("_id: ").nth(1).unwrap();
        let mut strings_in_js = serde_json::Deserializer::from_str(id).into_iter::<String>();
        assert_eq!(strings_in_js.next().unwrap().unwrap(), fleet.mongodb.replica_set, "{script}");

        let monitoring = yaml(file(&hosts, &db, "monitoring/compose.yml"));
        let flags = strings(at(&monitoring, &["services", "prometheus", "command"]));
        assert_eq!(flags.len(), 5);
        assert_eq!(flags[2], format!("--storage.tsdb.retention.time={hostile}"));
        assert_eq!(
            str_at(&monitoring, &["services", "grafana", "environment", "GF_SERVER_ROOT_URL"]),
            format!("{}/grafana/", fleet.workspace.root_url.trim_end_matches('/'))
        );
    }
}

#[test]
fn dollars_in_compose_and_grafana_files_are_doubled() {
    let mut fleet = example();
    fleet.workspace.root_url = "https://x/$HOME".into();
    fleet.monitoring.retention = "${X}d".into();
    let hosts = redacted(&fleet);
    let db = &fleet.database_host().name;
    let monitoring = yaml(file(&hosts, db, "monitoring/compose.yml"));
    assert_eq!(
        str_at(&monitoring, &["services", "grafana", "environment", "GF_SERVER_ROOT_URL"]),
        "https://x/$$HOME/grafana/"
    );
    assert_eq!(
        strings(at(&monitoring, &["services", "prometheus", "command"]))[2],
        "--storage.tsdb.retention.time=$${X}d"
    );
}

#[test]
fn hostile_domain_stays_one_traefik_rule_and_never_shows_a_template() {
    for domain in ["chat{{ env \"HOME\" }}.example", "a\"b: c # d", "x\ny", "${D}"] {
        let mut fleet = example();
        fleet.traefik.domain = domain.into();
        let hosts = redacted(&fleet);
        let lb = fleet.traefik_host().name.clone();
        for path in [render::TRAEFIK_DYNAMIC_PATH, "traefik/dynamic/grafana.yml"] {
            let artifact = file(&hosts, &lb, path);
            assert!(!artifact.content.contains("{{"), "{path} would run a Go template:\n{}", artifact.content);
            let parsed = yaml(artifact);
            let router = if path.ends_with("grafana.yml") { "grafana" } else { "rocketchat" };
            let rule = str_at(&parsed, &["http", "routers", router, "rule"]);
            assert!(rule.starts_with(&format!("Host(`{domain}`)")), "{rule}");
        }
    }
    let mut fleet = example();
    fleet.traefik.domain = "evil`) || Host(`other".into();
    let problems = bad_input(render::render(&fleet, &secrets_for(&fleet)));
    assert!(problems.iter().any(|p| p.starts_with("traefik.domain:") && p.contains("backtick")), "{problems:?}");
    assert!(render::traefik_dynamic(&fleet, &[], &[]).is_err());
}

#[test]
fn hostile_email_and_certificate_paths_round_trip() {
    let mut fleet = example();
    fleet.traefik.tls = Tls::LetsEncrypt { email: "ops+\"x\": #y@example.com".into() };
    let hosts = redacted(&fleet);
    let lb = fleet.traefik_host().name.clone();
    let config = yaml(file(&hosts, &lb, "traefik/traefik.yml"));
    assert_eq!(
        str_at(&config, &["certificatesResolvers", "letsencrypt", "acme", "email"]),
        "ops+\"x\": #y@example.com"
    );

    let cert = "/etc/ssl/my certs/$weird:name #1.pem";
    let key = "/etc/ssl/it's \"here\"/key.pem";
    fleet.traefik.tls = Tls::Files { cert: cert.into(), key: key.into() };
    let hosts = redacted(&fleet);
    let unit = render::traefik_unit(&fleet);
    let compose = yaml(file(&hosts, &lb, &unit.compose_file()));
    let volumes = at(&compose, &["services", "traefik", "volumes"]).as_sequence().unwrap();
    let sources: Vec<&str> = volumes.iter().filter(|v| v.is_mapping()).map(|v| str_at(v, &["source"])).collect();
    assert_eq!(sources, [cert.replace('$', "$$"), key.replace('$', "$$")]);
    let tree = tempfile::tempdir().unwrap();
    write_tree(hosts.iter().find(|h| h.host == lb).unwrap(), tree.path());
    let read = compose_config(&tree.path().join(&unit.dir));
    let read_sources: Vec<String> = at(&read, &["services", "traefik", "volumes"])
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|v| v.get("source").and_then(|s| s.as_str()).map(str::to_string))
        .filter(|s| s.starts_with("/etc/ssl"))
        .collect();
    assert_eq!(read_sources, [cert.replace('$', "$$"), key.replace('$', "$$")]);
}

/// Secret values an env file can carry, and ones it cannot.
const ENV_SAFE: &[&str] = &["p@ss:w0rd#1!&*?=%^~`{{x}}`[]", "ünïcödé ✓", "a b", ""];
const ENV_UNSAFE: &[&str] =
    &["Zq9\nX", "Zq9$X", "Zq9\"X", "Zq9'X", "Zq9\\X", " Zq9X", "Zq9X ", "Zq9 #X", "Zq9\0X", "Zq9\tX", "Zq9\rX"];

#[test]
fn secret_env_values_reach_the_env_file_verbatim_or_are_refused() {
    let mut fleet = example();
    fleet.workspace.license = Some(SecretRef::Env("LICENSE_SRC".into()));
    fleet.rocketchat_env.insert("MAIL_URL".into(), EnvValue::Secret(SecretRef::Env("MAIL_SRC".into())));
    for value in ENV_SAFE {
        let secrets = known_secrets().with("LICENSE_SRC", value).with("MAIL_SRC", value);
        let hosts = render::render(&fleet, &secrets).unwrap();
        let unit = render::instance_unit(&fleet, fleet.instances().next().unwrap());
        let env_file = file(&hosts, &unit.host, &format!("{}/instance.env", unit.dir));
        assert!(env_file.content.contains(&format!("\nROCKETCHAT_LICENSE={value}\n")));
        assert!(!file(&hosts, &unit.host, &unit.compose_file()).content.contains("MAIL_URL"));
        let tree = tempfile::tempdir().unwrap();
        write_tree(hosts.iter().find(|h| h.host == unit.host).unwrap(), tree.path());
        let config = compose_config(&tree.path().join(&unit.dir));
        assert_eq!(str_at(&config, &["services", "rocketchat", "environment", "MAIL_URL"]), *value);
        assert_eq!(str_at(&config, &["services", "rocketchat", "environment", "ROCKETCHAT_LICENSE"]), *value);
    }
    for value in ENV_UNSAFE {
        let secrets = known_secrets().with("LICENSE_SRC", value).with("MAIL_SRC", value);
        let problems = bad_input(render::render(&fleet, &secrets));
        assert_eq!(problems.len(), 2, "one problem per key, not per instance: {problems:?}");
        assert!(
            problems[0].starts_with("workspace.license:") && problems[0].contains("environment variable LICENSE_SRC")
        );
        assert!(
            problems[1].starts_with("rocketchat.env.MAIL_URL:")
                && problems[1].contains("environment variable MAIL_SRC")
        );
        assert!(problems.iter().all(|p| !p.contains("Zq9")), "a value leaked: {problems:?}");
    }
}

#[test]
fn grafana_password_reaches_its_file_verbatim_and_nothing_else() {
    let fleet = example();
    let source = fleet.monitoring.grafana_admin_password.clone().unwrap();
    let db = fleet.monitoring_host().unwrap().name.clone();
    // Line breaks are refused (below): `grafana cli ... --password-from-stdin`, which applies a
    // changed password, reads one line.
    let mut passwords: Vec<String> =
        HOSTILE.iter().filter(|v| !v.is_empty() && !v.contains(['\n', '\r'])).map(|v| format!("Zq9{v}")).collect();
    passwords.push("Zq9 spaces and \"quotes\" and $dollars$ ".into());
    for password in &passwords {
        let mut secrets = known_secrets();
        secrets.0.insert(source.clone(), password.clone());
        let hosts = render::render(&fleet, &secrets).unwrap();
        let artifact = file(&hosts, &db, "monitoring/grafana-admin-password");
        assert_eq!(&artifact.content, password);
        assert!(artifact.secret && artifact.mode == 0o600);
        for other in hosts.iter().flat_map(|h| &h.files).filter(|f| f.path != artifact.path) {
            assert!(!other.content.contains("Zq9"), "{} holds the password", other.path);
        }
    }
    for password in ["", "Zq9\n", "Zq9\r\n", "Zq9\0", "Zq9\nsecond line", "Zq9\rmore"] {
        let mut secrets = known_secrets();
        secrets.0.insert(source.clone(), password.into());
        let problems = bad_input(render::render(&fleet, &secrets));
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].starts_with("monitoring.grafana_admin_password:"), "{problems:?}");
        assert!(problems[0].contains(&source.to_string()) && !problems[0].contains("Zq9"), "{problems:?}");
    }
}

#[test]
fn bad_or_reserved_extra_env_names_and_nul_values_are_refused_all_at_once() {
    let mut fleet = example();
    for name in ["A-B", "1X", "A B", "PORT", "MONGO_URL", "ROCKETCHAT_LICENSE", "TRANSPORTER"] {
        fleet.rocketchat_env.insert(name.into(), EnvValue::Plain("x".into()));
    }
    fleet.rocketchat_env.insert("SECRET_BAD-NAME".into(), EnvValue::Secret(SecretRef::Env("S".into())));
    fleet.rocketchat_env.insert("NUL_VALUE".into(), EnvValue::Plain("a\0b".into()));
    let problems = bad_input(render::render(&fleet, &secrets_for(&fleet).with("S", "ok")));
    let keys: Vec<&str> = problems.iter().map(|p| p.split(':').next().unwrap()).collect();
    assert_eq!(
        keys,
        [
            "rocketchat.env.1X",
            "rocketchat.env.A B",
            "rocketchat.env.A-B",
            "rocketchat.env.MONGO_URL",
            "rocketchat.env.NUL_VALUE",
            "rocketchat.env.PORT",
            "rocketchat.env.ROCKETCHAT_LICENSE",
            "rocketchat.env.SECRET_BAD-NAME",
            "rocketchat.env.TRANSPORTER",
        ],
        "{problems:#?}"
    );
    assert!(problems.iter().any(|p| p.contains("set workspace.license instead")));
    assert!(problems.iter().any(|p| p.contains("PORT: rcfleet sets it for every instance")));
}

#[test]
fn a_derived_value_an_env_file_cannot_carry_is_refused_naming_its_settings() {
    let mut fleet = example();
    fleet.mongodb.replica_set = "rs$0".into();
    let problems = bad_input(render::render(&fleet, &secrets_for(&fleet)));
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("MONGO_URL") && problems[0].starts_with("mongodb"), "{problems:?}");
}

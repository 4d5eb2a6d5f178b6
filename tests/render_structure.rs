//! Every rendered file parsed back and checked for what it must say: the servers Traefik
//! balances, where MongoDB, NATS, Prometheus and Grafana listen, what each instance is told,
//! which files hold secrets.

mod render_support;

use rcfleet::fleet::{Fleet, Role, Tls};
use rcfleet::render::{self, Generated, HostArtifacts, Redacted, SecretSource, UnitKind};
use render_support::*;

fn check_every_fleet(check: impl Fn(&str, &Fleet, &[HostArtifacts])) {
    for (name, fleet) in fleets() {
        let hosts = redacted(&fleet);
        check(name, &fleet, &hosts);
    }
}

#[test]
fn every_yaml_and_json_file_parses() {
    check_every_fleet(|_, _, hosts| {
        for file in hosts.iter().flat_map(|h| &h.files) {
            if file.path.ends_with(".yml") {
                yaml(file);
            } else if file.path.ends_with(".json") {
                serde_json::from_str::<serde_json::Value>(&file.content).unwrap();
            }
        }
    });
}

#[test]
fn hosts_come_in_inventory_order_with_sorted_files() {
    check_every_fleet(|_, fleet, hosts| {
        let names: Vec<_> = hosts.iter().map(|h| h.host.as_str()).collect();
        let expected: Vec<_> = fleet.hosts.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, expected);
        for host in hosts {
            assert!(host.files.windows(2).all(|w| w[0].path < w[1].path), "{} files not sorted", host.host);
        }
    });
}

#[test]
fn only_env_files_the_grafana_password_and_alertmanagers_webhook_are_secret_and_0600() {
    check_every_fleet(|_, _, hosts| {
        for file in hosts.iter().flat_map(|h| &h.files) {
            let secret = file.path.ends_with(".env")
                || file.path.ends_with("/grafana-admin-password")
                || file.path == "alertmanager/alertmanager.yml";
            assert_eq!(file.secret, secret, "{}", file.path);
            assert_eq!(file.mode, if secret { 0o600 } else { 0o644 }, "{}", file.path);
        }
    });
}

#[test]
fn no_secret_value_reaches_a_public_file() {
    check_every_fleet(|_, fleet, _| {
        let secrets = known_secrets();
        let hosts = render::render(fleet, &secrets).unwrap();
        let generated: Vec<String> = Generated::ALL.iter().map(|g| secrets.generated(*g).unwrap()).collect();
        for file in hosts.iter().flat_map(|h| &h.files).filter(|f| !f.secret) {
            for value in secrets.0.values().chain(&generated) {
                assert!(!file.content.contains(value.as_str()), "{} holds a secret", file.path);
                let encoded = rcfleet::fleet::percent_encode(value);
                assert!(!file.content.contains(encoded.as_str()), "{} holds a secret (URI-encoded)", file.path);
            }
        }
    });
}

#[test]
fn every_unit_has_its_compose_file_on_its_host_and_nothing_else_is_a_compose_file() {
    check_every_fleet(|_, fleet, hosts| {
        let units = render::units(fleet);
        for host in hosts {
            let mut compose: Vec<String> =
                host.files.iter().filter(|f| f.path.ends_with("compose.yml")).map(|f| f.path.clone()).collect();
            let mut expected: Vec<String> =
                units.iter().filter(|u| u.host == host.host).map(|u| u.compose_file()).collect();
            compose.sort();
            expected.sort();
            assert_eq!(compose, expected, "{}", host.host);
        }
        for unit in &units {
            assert_eq!(unit.project, format!("{}-{}", fleet.workspace.name, unit.name));
            let services = at(&yaml(file(hosts, &unit.host, &unit.compose_file())), &["services"]).clone();
            let names: Vec<_> =
                services.as_mapping().unwrap().keys().map(|k| k.as_str().unwrap().to_string()).collect();
            let expected: Vec<&str> =
                unit.services().iter().copied().filter(|s| *s != "mongodb-keyfile" || fleet.mongodb.auth).collect();
            assert_eq!(names, expected, "{}", unit.name);
        }
        assert_eq!(
            render::deploy_dir(fleet),
            format!("{}/{}", fleet.workspace.deploy_dir.trim_end_matches('/'), fleet.workspace.name)
        );
    });
}

#[test]
fn every_service_uses_host_networking_a_restart_policy_and_the_labels() {
    check_every_fleet(|_, fleet, hosts| {
        for unit in render::units(fleet) {
            let compose = yaml(file(hosts, &unit.host, &unit.compose_file()));
            // No `version:`: Compose v2 warns that it is obsolete; v1 (1.27+) reads such files too.
            assert!(compose.get("version").is_none(), "{}: version key", unit.compose_file());
            for (name, service) in at(&compose, &["services"]).as_mapping().unwrap() {
                let name = name.as_str().unwrap();
                // The key file writer needs no network at all.
                let network = if name == "mongodb-keyfile" { "none" } else { "host" };
                assert_eq!(str_at(service, &["network_mode"]), network, "{name}");
                let restart = if render::one_shot(name) { "on-failure" } else { "unless-stopped" };
                assert_eq!(str_at(service, &["restart"]), restart, "{name}");
                assert_eq!(str_at(service, &["labels", "io.rcfleet.fleet"]), fleet.workspace.name);
                assert_eq!(str_at(service, &["labels", "io.rcfleet.host"]), unit.host);
                assert_eq!(str_at(service, &["labels", "io.rcfleet.unit"]), unit.name);
                let instance = service.get("labels").unwrap().get("io.rcfleet.instance").and_then(|v| v.as_str());
                assert_eq!(instance, (unit.kind == UnitKind::Instance).then_some(unit.name.as_str()));
                assert!(!serde_json::to_string(service).unwrap().contains("0.0.0.0"), "{name} binds 0.0.0.0");
            }
        }
    });
}

#[test]
fn mongodb_and_nats_bind_the_private_address_and_the_replica_set_names_it() {
    check_every_fleet(|_, fleet, hosts| {
        let db = fleet.database_host();
        let private = &db.private_address;
        let compose = yaml(file(hosts, &db.name, "database/compose.yml"));
        let mongod = strings(at(&compose, &["services", "mongodb", "command"]));
        let mut expected = vec![
            "--replSet".to_string(),
            fleet.mongodb.replica_set.clone(),
            "--bind_ip".into(),
            format!("{private},127.0.0.1"),
            "--port".into(),
            fleet.mongodb.port.to_string(),
            "--dbpath".into(),
            "/data/db".into(),
        ];
        if fleet.mongodb.auth {
            expected.extend(["--keyFile".to_string(), "/keyfile/keyfile".into()]);
        }
        assert_eq!(mongod, expected);
        let entrypoint = strings(at(&compose, &["services", "mongodb", "entrypoint"]));
        assert_eq!(str_at(&compose, &["services", "mongodb", "image"]), fleet.images.mongodb.to_string());
        let volumes = strings(at(&compose, &["services", "mongodb", "volumes"]));
        if fleet.mongodb.auth {
            assert_eq!(entrypoint[..2], ["sh", "-c"]);
            // `$$`: Compose passes a literal `$` to the shell.
            assert!(entrypoint[2].ends_with("exec mongod \"$$@\""), "{entrypoint:?}");
            assert_eq!(volumes, ["mongodb_data:/data/db", "mongodb_keyfile:/keyfile:ro"]);
            let keyfile = at(&compose, &["services", "mongodb-keyfile"]);
            assert_eq!(strings(at(keyfile, &["env_file"])), ["mongodb-keyfile.env"]);
            assert_eq!(str_at(keyfile, &["user"]), "0");
            let script = &strings(at(keyfile, &["command"]))[0];
            assert!(script.contains("chmod 0400") && script.contains("stat -c %u:%g /data/db"), "{script}");
            assert!(script.contains("\"$$MONGODB_KEYFILE\""), "{script}");
            let env = &file(hosts, &db.name, "database/mongodb-keyfile.env");
            assert!(env.secret && env.content.starts_with("MONGODB_KEYFILE="));
        } else {
            assert_eq!(entrypoint, ["mongod"]);
            assert_eq!(volumes, ["mongodb_data:/data/db"]);
            assert!(!hosts.iter().flat_map(|h| &h.files).any(|f| f.path.ends_with("mongodb-keyfile.env")));
        }
        // The localhost exception lets it initiate before users exist.
        let init = strings(at(&compose, &["services", "mongodb-init", "command"]));
        assert_eq!(init[1], format!("mongodb://127.0.0.1:{}/?directConnection=true", fleet.mongodb.port));
        assert_eq!(
            strings(at(&compose, &["services", "mongodb-init", "volumes"])),
            ["./replica-set.js:/scripts/replica-set.js:ro"]
        );
        let nats = strings(at(&compose, &["services", "nats", "command"]));
        let mut expected: Vec<String> = Vec::new();
        if fleet.nats.auth {
            expected.extend(["--config".to_string(), "/etc/rcfleet/nats.conf".into()]);
        }
        expected.extend([
            "--addr".to_string(),
            private.clone(),
            "--port".into(),
            fleet.nats.port.to_string(),
            "--http_port".into(),
            fleet.nats.monitor_port.to_string(),
        ]);
        assert_eq!(nats, expected);
        if fleet.nats.auth {
            let conf = &file(hosts, &db.name, "database/nats.conf");
            assert!(!conf.secret);
            assert!(conf.content.contains("user: \"rocketchat\"") && conf.content.contains("password: $NATS_PASSWORD"));
            assert_eq!(strings(at(&compose, &["services", "nats", "env_file"])), ["nats.env"]);
            assert!(file(hosts, &db.name, "database/nats.env").content.starts_with("NATS_PASSWORD="));
        }
        assert!(!nats.iter().any(|arg| arg.contains("monolith")));

        let script = &file(hosts, &db.name, "database/replica-set.js").content;
        assert_eq!(
            *script,
            format!(
                "// Initiates the replica set once; AlreadyInitialized (23) means an earlier run did it, and\n\
                 // Unauthorized (13) that users exist, which rcfleet creates only after initiating the set.\n\
                 try {{\n  rs.initiate({{_id: \"{}\", members: [{{_id: 0, host: \"{private}:{}\"}}]}});\n\
                 }} catch (e) {{\n  if (e.code !== 23 && e.code !== 13) throw e;\n}}\n",
                fleet.mongodb.replica_set, fleet.mongodb.port
            )
        );
    });
}

#[test]
fn each_instance_gets_its_settings_and_mongo_url_names_the_database_host() {
    check_every_fleet(|_, fleet, hosts| {
        let db_private = &fleet.database_host().private_address;
        for host in &fleet.hosts {
            for instance in &host.instances {
                let dir = format!("rocketchat/{}", instance.name);
                let compose = yaml(file(hosts, &host.name, &format!("{dir}/compose.yml")));
                let service = at(&compose, &["services", "rocketchat"]);
                assert_eq!(
                    str_at(service, &["image"]),
                    format!("{}:{}", fleet.images.rocketchat.repository, fleet.workspace.release)
                );
                assert_eq!(strings(at(service, &["env_file"])), ["instance.env"]);
                let env = at(service, &["environment"]);
                let get = |key: &str| str_at(env, &[key]).to_string();
                assert_eq!(get("ROOT_URL"), fleet.workspace.root_url);
                assert_eq!(get("PORT"), instance.port.to_string());
                assert_eq!(get("BIND_IP"), host.private_address);
                assert_eq!(get("INSTANCE_IP"), host.private_address);
                assert_eq!(get("OVERWRITE_SETTING_Prometheus_Enabled"), "true");
                assert_eq!(get("PROMETHEUS_PORT"), instance.metrics_port.to_string());
                assert!(env.get("OVERWRITE_SETTING_Prometheus_Port").is_none(), "the shared setting must not carry a per-instance port");
                assert_eq!(get("DEPLOY_METHOD"), "docker");
                assert_eq!(get("DEPLOY_PLATFORM"), "rcfleet");
                for (key, value) in &fleet.rocketchat_env {
                    match value {
                        rcfleet::fleet::EnvValue::Plain(text) => assert_eq!(&get(key), text),
                        rcfleet::fleet::EnvValue::Secret(_) => {
                            assert!(env.get(key.as_str()).is_none(), "{key} in compose")
                        }
                    }
                }
                for key in ["MONGO_URL", "TRANSPORTER", "ROCKETCHAT_LICENSE"] {
                    assert!(env.get(key).is_none(), "{key} in compose");
                }

                let env_file = file(hosts, &host.name, &format!("{dir}/instance.env"));
                let lines: Vec<(&str, &str)> =
                    env_file.content.lines().map(|line| line.split_once('=').expect("KEY=value")).collect();
                let mongo_url = lines.iter().find(|(k, _)| *k == "MONGO_URL").expect("MONGO_URL").1;
                let rest = mongo_url.strip_prefix("mongodb://").unwrap();
                let (authority, path) = rest.split_once('/').unwrap();
                let transporter = lines.iter().find(|(k, _)| *k == "TRANSPORTER").expect("TRANSPORTER").1;
                // Microservices mode: plain nats://, which makes the monolith a node of the services' bus.
                let scheme = if fleet.microservices.enabled { "nats://" } else { "monolith+nats://" };
                let nats = transporter.strip_prefix(scheme).unwrap();
                let db_and_port = format!("{db_private}:{}", fleet.mongodb.port);
                let nats_and_port = format!("{db_private}:{}", fleet.nats.port);
                let rs = format!("{}?replicaSet={}", fleet.mongodb.database, fleet.mongodb.replica_set);
                if fleet.mongodb.auth {
                    let (login, host) = authority.rsplit_once('@').expect("credentials in MONGO_URL");
                    assert!(login.starts_with("rocketchat:") && login.len() > "rocketchat:".len(), "{login}");
                    assert_eq!(host, db_and_port);
                    assert_eq!(path, format!("{rs}&authSource=admin"));
                } else {
                    assert_eq!(authority, db_and_port);
                    assert_eq!(path, rs);
                }
                if fleet.nats.auth {
                    let (login, host) = nats.rsplit_once('@').expect("credentials in TRANSPORTER");
                    assert!(login.starts_with("rocketchat:") && login.len() > "rocketchat:".len(), "{login}");
                    assert_eq!(host, nats_and_port);
                } else {
                    assert_eq!(nats, nats_and_port);
                }
                assert_eq!(lines.iter().any(|(k, _)| *k == "ROCKETCHAT_LICENSE"), fleet.workspace.license.is_some());
            }
        }
    });
}

#[test]
fn traefik_balances_exactly_every_instance_with_health_check_and_sticky_cookie() {
    check_every_fleet(|_, fleet, hosts| {
        let lb = fleet.traefik_host();
        let dynamic = yaml(file(hosts, &lb.name, render::TRAEFIK_DYNAMIC_PATH));
        let lb_settings = at(&dynamic, &["http", "services", "rocketchat", "loadBalancer"]);
        let urls: Vec<String> = at(lb_settings, &["servers"])
            .as_sequence()
            .unwrap()
            .iter()
            .map(|server| str_at(server, &["url"]).to_string())
            .collect();
        let expected: Vec<String> = fleet.instances().map(|i| i.url()).collect();
        assert_eq!(urls, expected);
        assert_eq!(str_at(lb_settings, &["healthCheck", "path"]), "/health");
        assert_eq!(str_at(lb_settings, &["healthCheck", "interval"]), "5s");
        assert_eq!(str_at(lb_settings, &["healthCheck", "timeout"]), "3s");
        let cookie = at(lb_settings, &["sticky", "cookie"]);
        assert_eq!(str_at(cookie, &["name"]), "rcfleet_sticky");
        assert_eq!(at(cookie, &["httpOnly"]).as_bool(), Some(true));
        assert_eq!(at(cookie, &["secure"]).as_bool(), Some(fleet.traefik.tls != Tls::None));
        assert_eq!(str_at(cookie, &["sameSite"]), "lax");

        let router = at(&dynamic, &["http", "routers", "rocketchat"]);
        assert_eq!(str_at(router, &["rule"]), format!("Host(`{}`)", fleet.traefik.domain));
        assert_eq!(str_at(router, &["service"]), "rocketchat");
        let entry = strings(at(router, &["entryPoints"]));
        match &fleet.traefik.tls {
            Tls::None => {
                assert_eq!(entry, ["web"]);
                assert!(router.get("tls").is_none());
            }
            Tls::LetsEncrypt { .. } => {
                assert_eq!(entry, ["websecure"]);
                assert_eq!(str_at(router, &["tls", "certResolver"]), "letsencrypt");
            }
            Tls::Files { .. } => {
                assert_eq!(entry, ["websecure"]);
                assert!(at(router, &["tls"]).as_mapping().unwrap().is_empty());
            }
        }
    });
}

#[test]
fn traefik_static_config_keeps_the_api_on_loopback() {
    check_every_fleet(|_, fleet, hosts| {
        let lb = fleet.traefik_host();
        let config = yaml(file(hosts, &lb.name, "traefik/traefik.yml"));
        let entry_points = at(&config, &["entryPoints"]).as_mapping().unwrap();
        let mut names: Vec<&str> = entry_points.keys().map(|k| k.as_str().unwrap()).collect();
        names.sort();
        let tls = fleet.traefik.tls != Tls::None;
        let expected: &[&str] =
            if tls { &["metrics", "traefik", "web", "websecure"] } else { &["metrics", "traefik", "web"] };
        assert_eq!(names, expected);
        assert_eq!(
            str_at(&config, &["entryPoints", "traefik", "address"]),
            format!("127.0.0.1:{}", fleet.traefik.api_port)
        );
        assert_eq!(
            str_at(&config, &["entryPoints", "metrics", "address"]),
            format!("{}:{}", lb.private_address, fleet.traefik.metrics_port)
        );
        assert_eq!(str_at(&config, &["entryPoints", "web", "address"]), format!(":{}", fleet.traefik.http_port));
        if tls {
            assert_eq!(
                str_at(&config, &["entryPoints", "websecure", "address"]),
                format!(":{}", fleet.traefik.https_port)
            );
            assert_eq!(
                str_at(&config, &["entryPoints", "web", "http", "redirections", "entryPoint", "to"]),
                "websecure"
            );
        }
        assert_eq!(at(&config, &["api", "insecure"]).as_bool(), Some(true));
        assert_eq!(str_at(&config, &["ping", "entryPoint"]), "traefik");
        assert_eq!(str_at(&config, &["metrics", "prometheus", "entryPoint"]), "metrics");
        assert_eq!(str_at(&config, &["providers", "file", "directory"]), "/etc/traefik/dynamic");
        assert_eq!(at(&config, &["providers", "file", "watch"]).as_bool(), Some(true));
        assert!(at(&config, &["providers", "file"]).get("filename").is_none());
        match &fleet.traefik.tls {
            Tls::LetsEncrypt { email } => {
                let acme = at(&config, &["certificatesResolvers", "letsencrypt", "acme"]);
                assert_eq!(str_at(acme, &["email"]), email);
                assert!(acme.get("tlsChallenge").is_some());
            }
            _ => assert!(config.get("certificatesResolvers").is_none()),
        }

        let compose = yaml(file(hosts, &lb.name, "traefik/compose.yml"));
        let service = at(&compose, &["services", "traefik"]);
        assert_eq!(strings(at(service, &["command"])), ["traefik", "--configFile=/etc/traefik/traefik.yml"]);
        let volumes = at(service, &["volumes"]).as_sequence().unwrap();
        let short: Vec<&str> = volumes.iter().filter_map(|v| v.as_str()).collect();
        assert!(short.contains(&"./dynamic:/etc/traefik/dynamic:ro"));
        assert!(!short.iter().any(|v| v.contains("/etc/traefik/dynamic/")), "a single dynamic file is mounted");
        assert_eq!(
            short.iter().any(|v| v.starts_with("traefik_acme:")),
            matches!(fleet.traefik.tls, Tls::LetsEncrypt { .. })
        );
        let binds: Vec<(&str, &str)> = volumes
            .iter()
            .filter(|v| v.is_mapping())
            .map(|v| (str_at(v, &["source"]), str_at(v, &["target"])))
            .collect();
        match &fleet.traefik.tls {
            Tls::Files { cert, key } => {
                assert_eq!(
                    binds,
                    [(cert.as_str(), "/etc/traefik/certs/cert.pem"), (key.as_str(), "/etc/traefik/certs/key.pem")]
                );
                let tls = yaml(file(hosts, &lb.name, "traefik/dynamic/tls.yml"));
                let certificate = &at(&tls, &["tls", "certificates"]).as_sequence().unwrap()[0];
                assert_eq!(str_at(certificate, &["certFile"]), "/etc/traefik/certs/cert.pem");
                assert_eq!(str_at(certificate, &["keyFile"]), "/etc/traefik/certs/key.pem");
            }
            _ => assert!(binds.is_empty()),
        }
    });
}

#[test]
fn grafana_is_routed_under_grafana_when_a_monitoring_host_exists() {
    check_every_fleet(|_, fleet, hosts| {
        let lb = fleet.traefik_host();
        let monitoring = fleet.monitoring_host().expect("every fixture has one");
        let route = yaml(file(hosts, &lb.name, "traefik/dynamic/grafana.yml"));
        assert_eq!(
            str_at(&route, &["http", "routers", "grafana", "rule"]),
            format!("Host(`{}`) && PathPrefix(`/grafana`)", fleet.traefik.domain)
        );
        let server = &at(&route, &["http", "services", "grafana", "loadBalancer", "servers"]).as_sequence().unwrap()[0];
        assert_eq!(
            str_at(server, &["url"]),
            format!("http://{}:{}", monitoring.private_address, fleet.monitoring.grafana_port)
        );
    });
    let (_, mut fleet) = fleets().remove(0);
    for host in &mut fleet.hosts {
        host.roles.retain(|role| *role != Role::Monitoring);
    }
    let hosts = redacted(&fleet);
    assert!(hosts
        .iter()
        .flat_map(|h| &h.files)
        .all(|f| !f.path.contains("grafana") && !f.path.starts_with("monitoring/")));
}

#[test]
fn prometheus_scrapes_every_instance_through_file_sd_on_private_addresses() {
    check_every_fleet(|_, fleet, hosts| {
        let monitoring = fleet.monitoring_host().unwrap();
        let private = &monitoring.private_address;
        let targets = yaml(file(hosts, &monitoring.name, render::PROMETHEUS_TARGETS_PATH));
        let groups = targets.as_sequence().unwrap();
        let instances: Vec<_> = fleet.instances().collect();
        assert_eq!(groups.len(), instances.len());
        for (group, instance) in groups.iter().zip(&instances) {
            assert_eq!(strings(at(group, &["targets"])), [instance.metrics_target()]);
            assert_eq!(str_at(group, &["labels", "instance_name"]), instance.name);
            assert_eq!(str_at(group, &["labels", "host"]), instance.host);
            assert_eq!(str_at(group, &["labels", "job"]), "rocketchat");
        }

        let config = yaml(file(hosts, &monitoring.name, "monitoring/prometheus/prometheus.yml"));
        assert_eq!(str_at(&config, &["global", "scrape_interval"]), "15s");
        let jobs = at(&config, &["scrape_configs"]).as_sequence().unwrap();
        let job = |name: &str| {
            jobs.iter().find(|j| str_at(j, &["job_name"]) == name).unwrap_or_else(|| panic!("no job {name}"))
        };
        let sd = &at(job("rocketchat"), &["file_sd_configs"]).as_sequence().unwrap()[0];
        assert_eq!(strings(at(sd, &["files"])), ["/etc/prometheus/file_sd/*.yml"]);
        assert_eq!(str_at(sd, &["refresh_interval"]), "15s");
        let static_target =
            |name: &str| strings(at(&at(job(name), &["static_configs"]).as_sequence().unwrap()[0], &["targets"]));
        assert_eq!(
            static_target("traefik"),
            [format!("{}:{}", fleet.traefik_host().private_address, fleet.traefik.metrics_port)]
        );
        assert_eq!(static_target("prometheus"), [format!("{private}:{}", fleet.monitoring.prometheus_port)]);

        let compose = yaml(file(hosts, &monitoring.name, "monitoring/compose.yml"));
        let flags = strings(at(&compose, &["services", "prometheus", "command"]));
        assert_eq!(
            flags,
            [
                "--config.file=/etc/prometheus/prometheus.yml".to_string(),
                "--storage.tsdb.path=/prometheus".into(),
                format!("--storage.tsdb.retention.time={}", fleet.monitoring.retention),
                format!("--web.listen-address={private}:{}", fleet.monitoring.prometheus_port),
                "--web.enable-lifecycle".into(),
            ]
        );
        assert!(strings(at(&compose, &["services", "prometheus", "volumes"]))
            .contains(&"./prometheus:/etc/prometheus:ro".into()));
    });
}

#[test]
fn grafana_binds_the_private_address_and_gets_its_password_only_from_a_file() {
    check_every_fleet(|_, fleet, hosts| {
        let monitoring = fleet.monitoring_host().unwrap();
        let compose = yaml(file(hosts, &monitoring.name, "monitoring/compose.yml"));
        let grafana = at(&compose, &["services", "grafana"]);
        let env = at(grafana, &["environment"]);
        assert_eq!(str_at(env, &["GF_SERVER_HTTP_ADDR"]), monitoring.private_address);
        assert_eq!(str_at(env, &["GF_SERVER_HTTP_PORT"]), fleet.monitoring.grafana_port.to_string());
        assert_eq!(
            str_at(env, &["GF_SERVER_ROOT_URL"]),
            format!("{}/grafana/", fleet.workspace.root_url.trim_end_matches('/'))
        );
        assert_eq!(str_at(env, &["GF_SERVER_SERVE_FROM_SUB_PATH"]), "true");
        assert_eq!(str_at(env, &["GF_AUTH_ANONYMOUS_ENABLED"]), "false");
        assert!(env.get("GF_SECURITY_ADMIN_PASSWORD").is_none());
        let volumes = strings(at(grafana, &["volumes"]));
        let mount = "./grafana-admin-password:/run/secrets/grafana-admin-password:ro".to_string();
        let password_file = hosts
            .iter()
            .find(|h| h.host == monitoring.name)
            .unwrap()
            .files
            .iter()
            .find(|f| f.path == "monitoring/grafana-admin-password");
        // Always a password: the inventory's, else a generated one (never Grafana's default).
        assert_eq!(str_at(env, &["GF_SECURITY_ADMIN_PASSWORD__FILE"]), "/run/secrets/grafana-admin-password");
        assert!(volumes.contains(&mount));
        let password_file = password_file.expect("grafana-admin-password");
        assert!(password_file.secret);
        let expected = match &fleet.monitoring.grafana_admin_password {
            Some(reference) => Redacted.value(reference).unwrap(),
            None => Redacted.generated(Generated::GrafanaAdminPassword).unwrap(),
        };
        assert_eq!(password_file.content, expected);

        let datasource =
            yaml(file(hosts, &monitoring.name, "monitoring/grafana/provisioning/datasources/prometheus.yml"));
        let source = &at(&datasource, &["datasources"]).as_sequence().unwrap()[0];
        assert_eq!(str_at(source, &["uid"]), "DS_PROMETHEUS");
        assert_eq!(
            str_at(source, &["url"]),
            format!("http://{}:{}", monitoring.private_address, fleet.monitoring.prometheus_port)
        );
        let provider = yaml(file(hosts, &monitoring.name, "monitoring/grafana/provisioning/dashboards/rcfleet.yml"));
        let provider = &at(&provider, &["providers"]).as_sequence().unwrap()[0];
        assert_eq!(str_at(provider, &["options", "path"]), "/etc/grafana/dashboards");
        assert!(volumes.contains(&"./grafana/dashboards:/etc/grafana/dashboards:ro".into()));
    });
}

#[test]
fn the_dashboard_shows_instances_versions_requests_and_scrape_health() {
    let (_, fleet) = fleets().remove(0);
    let hosts = redacted(&fleet);
    let monitoring = fleet.monitoring_host().unwrap();
    let dashboard: serde_json::Value =
        serde_json::from_str(&file(&hosts, &monitoring.name, "monitoring/grafana/dashboards/rcfleet.json").content)
            .unwrap();
    let exprs: Vec<String> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|panel| panel["targets"].as_array().unwrap().iter())
        .map(|target| {
            assert_eq!(target["datasource"]["uid"], "DS_PROMETHEUS");
            target["expr"].as_str().unwrap().to_string()
        })
        .collect();
    for needle in
        ["up{job=\"rocketchat\"}", "rocketchat_info", "traefik_service_requests_total", "scrape_duration_seconds"]
    {
        assert!(exprs.iter().any(|e| e.contains(needle)), "no panel queries {needle}");
    }
}

#[test]
fn helpers_render_the_subset_they_are_given() {
    let (_, fleet) = fleets().remove(0);
    let all: Vec<_> = fleet.instances().collect();
    let draining = all[1];
    let in_service: Vec<_> = all.iter().copied().filter(|i| i.name != draining.name).collect();
    let text = render::traefik_dynamic(&fleet, &in_service, &[]).unwrap();
    let parsed: yaml_serde::Value = yaml_serde::from_str(&text).unwrap();
    let urls: Vec<String> = at(&parsed, &["http", "services", "rocketchat", "loadBalancer", "servers"])
        .as_sequence()
        .unwrap()
        .iter()
        .map(|s| str_at(s, &["url"]).to_string())
        .collect();
    assert_eq!(urls, in_service.iter().map(|i| i.url()).collect::<Vec<_>>());
    assert!(!urls.contains(&draining.url()));

    let empty: yaml_serde::Value = yaml_serde::from_str(&render::traefik_dynamic(&fleet, &[], &[]).unwrap()).unwrap();
    assert!(at(&empty, &["http", "services", "rocketchat", "loadBalancer", "servers"])
        .as_sequence()
        .unwrap()
        .is_empty());

    let targets: yaml_serde::Value = yaml_serde::from_str(&render::prometheus_targets(&in_service).unwrap()).unwrap();
    assert_eq!(targets.as_sequence().unwrap().len(), in_service.len());
    let none: yaml_serde::Value = yaml_serde::from_str(&render::prometheus_targets(&[]).unwrap()).unwrap();
    assert!(none.as_sequence().unwrap().is_empty());
}

#[test]
fn websocket_route_lists_only_the_streamers_given() {
    let (_, fleet) = fleets().into_iter().find(|(name, _)| *name == "microservices").unwrap();
    let instances: Vec<_> = fleet.instances().collect();
    // None ready (a fleet switching to microservices): no /websocket router, so WebSocket and
    // SockJS stay with the instances.
    let none: yaml_serde::Value = yaml_serde::from_str(&render::traefik_dynamic(&fleet, &instances, &[]).unwrap()).unwrap();
    assert!(at(&none, &["http", "routers"]).get("ddp-streamer").is_none(), "{none:?}");
    assert!(at(&none, &["http", "services"]).get("ddp-streamer").is_none(), "{none:?}");
    let streamers = render::ddp_streamers(&fleet);
    let ready = vec![&streamers[1]];
    let one: yaml_serde::Value = yaml_serde::from_str(&render::traefik_dynamic(&fleet, &instances, &ready).unwrap()).unwrap();
    let urls: Vec<&str> = at(&one, &["http", "services", "ddp-streamer", "loadBalancer", "servers"])
        .as_sequence()
        .unwrap()
        .iter()
        .map(|s| str_at(s, &["url"]))
        .collect();
    assert_eq!(urls, [streamers[1].url().as_str()]);
}

#[test]
fn an_instance_on_its_spare_slot_has_a_node_id_of_its_own() {
    // Start-first: the new container runs beside the old one on the same bus; moleculer's node
    // ID is host name + PID, so the two must not share a host name.
    let (_, fleet) = fleets().into_iter().find(|(name, _)| *name == "microservices").unwrap();
    let primary = fleet.instances().next().unwrap().clone();
    let spare = primary.on_slot(rcfleet::fleet::Slot::Spare);
    let hostname = |instance: &rcfleet::fleet::Instance| {
        let files = render::instance_files(&fleet, instance, "").unwrap();
        let compose: yaml_serde::Value = yaml_serde::from_str(&files[0].content).unwrap();
        at(&compose, &["services", "rocketchat", "hostname"]).as_str().unwrap().to_string()
    };
    assert_eq!(hostname(&primary), primary.name);
    assert_eq!(hostname(&spare), format!("{}-spare", primary.name));
}

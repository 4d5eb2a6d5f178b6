//! Every rendered compose file passes `docker-compose config` (Compose v1, the strictest
//! reader we support), with the host's whole tree on disk so that env files and mounts
//! resolve; and what Compose reads back from the env files is exactly what was rendered.
//! Needs `docker-compose` (apt-get install -y docker-compose); fails without it.

mod render_support;

use std::process::{Command, Stdio};

use rcfleet::render::{self, Generated};
use render_support::*;

#[test]
fn every_rendered_compose_file_passes_docker_compose_config() {
    let program = docker_compose();
    // Started all at once: each run is a Python start-up of about half a second.
    let mut runs = Vec::new();
    for (name, fleet) in fleets() {
        let hosts = render::render(&fleet, &known_secrets()).unwrap();
        for unit in render::units(&fleet) {
            let host = hosts.iter().find(|h| h.host == unit.host).unwrap();
            let tree = tempfile::tempdir().unwrap();
            write_tree(host, tree.path());
            let child = Command::new(program)
                .args(["-p", &unit.project, "-f", "compose.yml", "config", "-q"])
                .current_dir(tree.path().join(&unit.dir))
                .env_remove("COMPOSE_PROJECT_NAME")
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            runs.push((format!("{name}/{}/{}", unit.host, unit.compose_file()), child, tree));
        }
    }
    assert!(runs.len() >= 20, "only {} compose files checked", runs.len());
    let failures: Vec<String> = runs
        .into_iter()
        .filter_map(|(what, child, _tree)| {
            let output = child.wait_with_output().unwrap();
            let ok = output.status.success() && output.stderr.is_empty();
            (!ok).then(|| format!("{what}: {}", String::from_utf8_lossy(&output.stderr)))
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn compose_reads_back_every_instance_variable_exactly() {
    for (_, fleet) in fleets() {
        let hosts = render::render(&fleet, &known_secrets()).unwrap();
        let instance = fleet.instances().next().unwrap();
        let unit = render::instance_unit(&fleet, instance);
        let host = hosts.iter().find(|h| h.host == unit.host).unwrap();
        let tree = tempfile::tempdir().unwrap();
        write_tree(host, tree.path());
        let config = compose_config(&tree.path().join(&unit.dir));
        let env = at(&config, &["services", "rocketchat", "environment"]);
        let env_file = &file(&hosts, &unit.host, &format!("{}/instance.env", unit.dir)).content;
        for line in env_file.lines() {
            let (key, value) = line.split_once('=').unwrap();
            assert_eq!(str_at(env, &[key]), value, "{key}");
        }
        let secrets = known_secrets();
        let mongo = fleet.mongodb.auth.then(|| render::credential(&fleet, &secrets, Generated::MongoAppPassword).unwrap());
        let nats = fleet.nats.auth.then(|| render::credential(&fleet, &secrets, Generated::NatsPassword).unwrap());
        assert_eq!(str_at(env, &["MONGO_URL"]), fleet.mongo_url_with(mongo.as_deref()));
        assert_eq!(str_at(env, &["TRANSPORTER"]), fleet.transporter_with(nats.as_deref()));
        assert!(at(&config, &["services", "rocketchat"]).get("ports").is_none());
    }
}

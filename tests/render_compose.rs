//! Every rendered compose file passes `config` of Compose v1 (the strictest reader we support)
//! and of Compose v2 (what servers run today) without a word on stderr, with the host's whole
//! tree on disk so that env files and mounts resolve; and what each Compose reads back from the
//! env files is exactly what was rendered. Needs `docker-compose` (apt-get install -y
//! docker-compose), fails without it; Compose v2 is checked when present
//! (`render_support::docker_compose_v2`; tests/run always provides it).

mod render_support;

use std::process::Stdio;
use std::sync::Arc;

use rcfleet::render::{self, Generated};
use render_support::*;

#[test]
fn every_rendered_compose_file_passes_docker_compose_config() {
    let composes = compose_programs();
    // Started all at once: each v1 run is a Python start-up of about half a second.
    let mut runs = Vec::new();
    for (name, fleet) in fleets() {
        let hosts = render::render(&fleet, &known_secrets()).unwrap();
        for unit in render::units(&fleet) {
            let host = hosts.iter().find(|h| h.host == unit.host).unwrap();
            let tree = Arc::new(tempfile::tempdir().unwrap());
            write_tree(host, tree.path());
            for compose in &composes {
                let child = compose
                    .command()
                    .args(["-p", &unit.project, "-f", "compose.yml", "config", "-q"])
                    .current_dir(tree.path().join(&unit.dir))
                    .env_remove("COMPOSE_PROJECT_NAME")
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap();
                let what = format!("{}: {name}/{}/{}", compose.name, unit.host, unit.compose_file());
                runs.push((what, child, Arc::clone(&tree)));
            }
        }
    }
    assert!(runs.len() >= 20 * composes.len(), "only {} compose runs", runs.len());
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
    for compose in compose_programs() {
        for (_, fleet) in fleets() {
            let hosts = render::render(&fleet, &known_secrets()).unwrap();
            let instance = fleet.instances().next().unwrap();
            let unit = render::instance_unit(&fleet, instance);
            let host = hosts.iter().find(|h| h.host == unit.host).unwrap();
            let tree = tempfile::tempdir().unwrap();
            write_tree(host, tree.path());
            let config = compose_config_with(&compose, &tree.path().join(&unit.dir));
            let env = at(&config, &["services", "rocketchat", "environment"]);
            let env_file = &file(&hosts, &unit.host, &format!("{}/instance.env", unit.dir)).content;
            for line in env_file.lines() {
                let (key, value) = line.split_once('=').unwrap();
                assert_eq!(str_at(env, &[key]), value, "{}: {key}", compose.name);
            }
            let secrets = known_secrets();
            let mongo = fleet.mongodb.auth.then(|| render::credential(&fleet, &secrets, Generated::MongoAppPassword).unwrap());
            let nats = fleet.nats.auth.then(|| render::credential(&fleet, &secrets, Generated::NatsPassword).unwrap());
            assert_eq!(str_at(env, &["MONGO_URL"]), fleet.mongo_url_with(mongo.as_deref()), "{}", compose.name);
            assert_eq!(str_at(env, &["TRANSPORTER"]), fleet.transporter_with(nats.as_deref()), "{}", compose.name);
            assert!(at(&config, &["services", "rocketchat"]).get("ports").is_none());
        }
    }
}

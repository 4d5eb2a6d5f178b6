//! SSH like `ssh` (issue 20) against the lab: an inventory that names its hosts by ssh_config
//! aliases and says nothing of user, port, key or known_hosts is deployed by `up`, because the
//! OpenSSH client configuration (`RCFLEET_SSH_CONFIG`, a file this test writes; HOME points at
//! an empty folder so the real ~/.ssh is never read) supplies HostName, User, Port,
//! IdentityFile and UserKnownHostsFile. `plan` says where each setting came from; without the
//! configuration the same inventory reaches nothing.

mod lab_support;

use std::path::Path;
use std::process::{Command, Output};

use lab_support::{eventually, json, text, Lab};

const HOSTS: [&str; 3] = ["db", "lb", "app1"];

fn alias(host: &str) -> String {
    format!("ux-alias-{host}")
}

/// The lab's inventory with db, lb and app1 only, each addressed by its alias, and no SSH key
/// but the connect timeout.
fn alias_inventory(lab: &Lab, dir: &Path) -> std::path::PathBuf {
    let original = std::fs::read_to_string(lab.inventory()).unwrap();
    let mut document: toml_edit::DocumentMut = original.parse().unwrap();
    let ssh = document["ssh"].as_table_mut().unwrap();
    for key in ["user", "port", "identity_file", "known_hosts"] {
        assert!(ssh.remove(key).is_some(), "the lab inventory states ssh.{key}");
    }
    let hosts = document["hosts"].as_array_of_tables_mut().unwrap();
    hosts.retain(|host| HOSTS.contains(&host["name"].as_str().unwrap()));
    for host in hosts.iter_mut() {
        let name = host["name"].as_str().unwrap().to_string();
        assert!(host.contains_key("private_address"), "the other hosts reach {name} by its private address");
        host["address"] = toml_edit::value(alias(&name));
    }
    let path = dir.join("inventory.toml");
    std::fs::write(&path, document.to_string()).unwrap();
    path
}

fn ssh_config(lab: &Lab, dir: &Path) -> std::path::PathBuf {
    let mut text = String::from("# written by tests/lab_ssh_config.rs\n");
    for host in HOSTS {
        text.push_str(&format!(
            "\nHost {}\n  HostName {}\n  User root\n  Port 22\n  IdentityFile {}\n  UserKnownHostsFile {}\n",
            alias(host),
            lab.addr(host),
            lab.var("LAB_SSH_KEY"),
            lab.var("LAB_KNOWN_HOSTS"),
        ));
    }
    let path = dir.join("ssh_config");
    std::fs::write(&path, text).unwrap();
    path
}

/// rcfleet with HOME at an empty folder and, when given, RCFLEET_SSH_CONFIG.
fn rcfleet(home: &Path, config: Option<&Path>, args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_rcfleet"));
    command.args(args).env("HOME", home).env_remove("RCFLEET_SSH_CONFIG").env_remove("SSH_AUTH_SOCK");
    if let Some(config) = config {
        command.env("RCFLEET_SSH_CONFIG", config);
    }
    command.output().expect("run rcfleet")
}

#[test]
fn hosts_named_by_ssh_config_aliases_are_deployed_by_up() {
    let Some(lab) = lab_support::lab() else { return };
    lab.reset_fleet();
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir(&home).unwrap();
    let inventory = alias_inventory(&lab, dir.path());
    let config = ssh_config(&lab, dir.path());
    let inventory = inventory.to_str().unwrap();

    // plan: every setting is the ssh config's, and says so.
    let plan = rcfleet(&home, Some(&config), &["plan", "--json", "-i", inventory]);
    assert!(plan.status.success(), "{}", text(&plan));
    let plan = json(&plan);
    for (index, host) in HOSTS.iter().enumerate() {
        let ssh = &plan["hosts"][index]["ssh"];
        let expected = serde_json::json!({
            "user": { "value": "root", "from": "ssh_config" },
            "port": { "value": 22, "from": "ssh_config" },
            "address": { "value": lab.addr(host), "from": "ssh_config" },
            "identity_files": { "value": [lab.var("LAB_SSH_KEY")], "from": "ssh_config" },
            "jump": { "value": null, "from": "default" },
            "known_hosts": { "value": lab.var("LAB_KNOWN_HOSTS"), "from": "ssh_config" },
        });
        assert_eq!(ssh, &expected, "{host}");
    }

    // Without the configuration the aliases mean nothing: nothing is reached.
    let lost = rcfleet(&home, None, &["status", "-i", inventory]);
    assert_ne!(lost.status.code(), Some(0), "{}", text(&lost));
    assert!(text(&lost).contains(&alias("db")), "the unreachable alias is named:\n{}", text(&lost));

    // up through the aliases: the fleet is built and serves through Traefik.
    let up = rcfleet(&home, Some(&config), &["up", "--json", "-i", inventory]);
    assert!(up.status.success(), "up through ssh_config aliases failed:\n{}", text(&up));
    assert_eq!(json(&up)["instances"].as_array().unwrap().len(), 2);
    let serving = eventually(30, || matches!(lab.get_through_traefik("/api/info"), Ok((200, _))));
    assert!(serving, "the workspace does not answer through Traefik");
    for host in HOSTS {
        let deployed = lab.run(host, "ls /opt/rcfleet/lab");
        assert!(!deployed.trim().is_empty(), "{host} received no files");
    }

    let status = rcfleet(&home, Some(&config), &["status", "--json", "-i", inventory]);
    assert_eq!(status.status.code(), Some(0), "status through the aliases:\n{}", text(&status));
}

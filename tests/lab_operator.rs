//! The operator's experience (issue 20) against the lab, on one small fleet (db, lb, app1):
//! - SSH like `ssh`: an inventory that names its hosts by ssh_config aliases and says nothing of
//!   user, port, key or known_hosts is deployed by `up`, because the OpenSSH client
//!   configuration (`RCFLEET_SSH_CONFIG`, a file this test writes; HOME points at an empty
//!   folder so the real ~/.ssh is never read) supplies HostName, User, Port, IdentityFile and
//!   UserKnownHostsFile. `plan` says where each setting came from; without the configuration
//!   the same inventory reaches nothing.
//! - Progress you can see: that `up` runs in a tmux pane, whose captures show live progress
//!   bars; a piped run (`remove-instance`, which always waits for its drain) has none, only
//!   plain lines.

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
    let mut text = String::from("# written by tests/lab_operator.rs\n");
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

    // up through the aliases, on a terminal (tmux): the fleet is built, with live bars.
    let captures = up_in_tmux(&home, &config, inventory, dir.path());
    let bar_lines: Vec<&str> =
        captures.iter().flat_map(|screen| screen.lines()).filter(|line| is_bar(line)).collect();
    assert!(!bar_lines.is_empty(), "no progress bar in {} captures of the pane; last:\n{}", captures.len(), captures.last().unwrap());
    assert!(bar_lines.iter().any(|line| line.contains("instance") || line.contains("database")), "{bar_lines:?}");
    eprintln!("{} pane captures, {} bar lines, e.g. {:?}", captures.len(), bar_lines.len(), bar_lines[0]);
    let serving = eventually(30, || matches!(lab.get_through_traefik("/api/info"), Ok((200, _))));
    assert!(serving, "the workspace does not answer through Traefik");
    for host in HOSTS {
        let deployed = lab.run(host, "ls /opt/rcfleet/lab");
        assert!(!deployed.trim().is_empty(), "{host} received no files");
    }
    let status = rcfleet(&home, Some(&config), &["status", "--json", "-i", inventory]);
    assert_eq!(status.status.code(), Some(0), "status through the aliases:\n{}", text(&status));

    // Piped, a command that waits (the drain) prints plain lines and no terminal control.
    let removed = rcfleet(&home, Some(&config), &["remove-instance", "app1-1", "-i", inventory]);
    assert!(removed.status.success(), "{}", text(&removed));
    let stderr = String::from_utf8_lossy(&removed.stderr);
    assert!(!stderr.contains('\x1b') && !stderr.contains('\r'), "terminal control in piped output:\n{stderr:?}");
    assert!(!stderr.lines().any(is_bar), "a bar in piped output:\n{stderr}");
    assert!(stderr.lines().any(|line| line.contains("drain") && line.ends_with(" ...")), "no plain waiting line:\n{stderr}");
}

/// A line indicatif drew for a wait: a spinner glyph, then `[elapsed]`.
fn is_bar(line: &str) -> bool {
    let line = line.trim_start();
    line.starts_with(|c: char| "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏".contains(c)) && line.contains(" [") && line.contains("s] ")
}

/// Runs `up` in a detached tmux pane (its own server socket) and captures the pane every 100 ms
/// until it ends; returns the captures. `up` must succeed.
fn up_in_tmux(home: &Path, config: &Path, inventory: &str, dir: &Path) -> Vec<String> {
    let exit_file = dir.join("up.exit");
    let script = dir.join("up.sh");
    // The pane shows stderr as a terminal: no redirection of rcfleet's output.
    std::fs::write(
        &script,
        format!(
            "export HOME='{}' RCFLEET_SSH_CONFIG='{}' TERM=screen; unset SSH_AUTH_SOCK\n'{}' up -i '{}'\necho $? > '{}'\nsleep 600\n",
            home.display(),
            config.display(),
            env!("CARGO_BIN_EXE_rcfleet"),
            inventory,
            exit_file.display()
        ),
    )
    .unwrap();
    let socket = format!("rcfleet-test-{}", std::process::id());
    let tmux = |args: &[&str]| Command::new("tmux").args(["-L", &socket, "-f", "/dev/null"]).args(args).output().expect("tmux runs");
    let started = tmux(&["new-session", "-d", "-s", "up", "-x", "160", "-y", "50", &format!("sh {}", script.display())]);
    assert!(started.status.success(), "tmux: {}", text(&started));
    let mut captures = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(600);
    while !exit_file.exists() && std::time::Instant::now() < deadline {
        let capture = tmux(&["capture-pane", "-p", "-t", "up"]);
        captures.push(String::from_utf8_lossy(&capture.stdout).into_owned());
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let last = String::from_utf8_lossy(&tmux(&["capture-pane", "-p", "-S", "-200", "-t", "up"]).stdout).into_owned();
    tmux(&["kill-server"]);
    let code = std::fs::read_to_string(&exit_file).unwrap_or_default();
    assert_eq!(code.trim(), "0", "up in tmux failed; the pane:\n{last}");
    assert!(!last.lines().any(is_bar), "bars left on the screen after up ended:\n{last}");
    eprintln!("the pane after up:\n{last}");
    captures.push(last);
    captures
}

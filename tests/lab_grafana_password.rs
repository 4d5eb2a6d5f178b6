//! A changed Grafana admin password, against the lab (issue 12, fidelity audit B3). Grafana
//! applies the password from its environment only when it first creates its database, and the
//! lab's Grafana stand-in behaves the same (tests/lab/README.md). The inventory's reference is
//! changed and `up` run again: the new password works against Grafana's API, the old one no
//! longer does, `rcfleet secrets show grafana-admin-password` prints the one that works, the
//! Grafana container was not replaced (the password was set, not re-created with its data),
//! and neither password appears in rcfleet's output.

mod lab_support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use lab_support::{text, Lab};

const FIRST: &str = "S3CRET-first-grafana-4711";
const SECOND: &str = "S3CRET-second-grafana-4711";
const VARIABLE: &str = "RCFLEET_TEST_GRAFANA_PASSWORD";

/// rcfleet with the inventory's Grafana password reference set to `password`.
fn rcfleet(inventory: &Path, password: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rcfleet"))
        .arg("-i")
        .arg(inventory)
        .args(args)
        .env(VARIABLE, password)
        .output()
        .expect("run rcfleet")
}

/// The lab's inventory with the Grafana password taken from an environment variable.
fn inventory(lab: &Lab, dir: &Path) -> std::path::PathBuf {
    let original = std::fs::read_to_string(lab.inventory()).unwrap();
    let changed: Vec<String> = original
        .lines()
        .map(|line| {
            if line.starts_with("grafana_admin_password") {
                format!("grafana_admin_password = {{ env = \"{VARIABLE}\" }}")
            } else {
                line.to_string()
            }
        })
        .collect();
    assert!(changed.iter().any(|l| l.contains(VARIABLE)), "no grafana_admin_password in the lab inventory");
    lab_support::write_inventory(dir, &(changed.join("\n") + "\n"))
}

/// Grafana's answer to `GET /grafana/api/user` as `admin:password`, straight to the monitoring
/// host (the sub-path Traefik routes to Grafana).
fn grafana_status(lab: &Lab, password: &str) -> u16 {
    let address = format!("{}:5050", lab.addr("db"));
    let mut stream = TcpStream::connect_timeout(&address.parse().unwrap(), Duration::from_secs(3)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let auth = base64(format!("admin:{password}").as_bytes());
    write!(stream, "GET /grafana/api/user HTTP/1.0\r\nHost: grafana\r\nAuthorization: Basic {auth}\r\n\r\n").unwrap();
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}

fn base64(bytes: &[u8]) -> String {
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = (chunk[0] as u32) << 16 | (*chunk.get(1).unwrap_or(&0) as u32) << 8 | *chunk.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            out.push(if i <= chunk.len() { T[(n >> (18 - 6 * i) & 63) as usize] as char } else { '=' });
        }
    }
    out
}

fn grafana_container(lab: &Lab) -> String {
    lab.run("db", "docker ps -q --no-trunc --filter label=io.rcfleet.unit=monitoring --filter label=com.docker.compose.service=grafana")
        .trim()
        .to_string()
}

#[test]
fn a_changed_grafana_password_works_after_up() {
    let Some(lab) = lab_support::lab() else { return };
    lab.reset_fleet();
    let dir = tempfile::tempdir().unwrap();
    let inventory = inventory(&lab, dir.path());

    let first = rcfleet(&inventory, FIRST, &["up"]);
    assert!(first.status.success(), "first up failed:\n{}", text(&first));
    assert_eq!(grafana_status(&lab, FIRST), 200, "Grafana was created with the first password");
    assert!(!text(&first).contains("Grafana admin password applied"), "nothing to apply on a fresh Grafana:\n{}", text(&first));
    let container = grafana_container(&lab);

    let second = rcfleet(&inventory, SECOND, &["up"]);
    let said = text(&second);
    assert!(second.status.success(), "second up failed:\n{said}");
    assert!(said.contains("Grafana admin password applied"), "up does not say it applied the password:\n{said}");
    assert_eq!(grafana_status(&lab, SECOND), 200, "the new password does not work");
    assert_eq!(grafana_status(&lab, FIRST), 401, "the old password still works");
    assert_eq!(grafana_container(&lab), container, "Grafana was replaced instead of given the password");

    let shown = rcfleet(&inventory, SECOND, &["secrets", "show", "grafana-admin-password"]);
    assert!(shown.status.success(), "{}", text(&shown));
    assert_eq!(String::from_utf8_lossy(&shown.stdout).trim_end_matches('\n'), SECOND);
    assert_eq!(grafana_status(&lab, String::from_utf8_lossy(&shown.stdout).trim_end_matches('\n')), 200);

    // Once applied, nothing more to do.
    let third = rcfleet(&inventory, SECOND, &["up"]);
    assert!(third.status.success(), "third up failed:\n{}", text(&third));
    assert!(!text(&third).contains("Grafana admin password applied"), "applied again:\n{}", text(&third));

    for (run, output) in [("first up", &first), ("second up", &second), ("third up", &third)] {
        for secret in [FIRST, SECOND] {
            assert!(!text(output).contains(secret), "{run} printed a Grafana password");
        }
    }
    let mut logs = vec![dir.path().join(".rcfleet")];
    while let Some(path) = logs.pop() {
        if path.is_dir() {
            logs.extend(std::fs::read_dir(&path).unwrap().flatten().map(|e| e.path()));
        } else if let Ok(content) = std::fs::read_to_string(&path) {
            assert!(!content.contains(FIRST) && !content.contains(SECOND), "{} holds a Grafana password", path.display());
        }
    }
}

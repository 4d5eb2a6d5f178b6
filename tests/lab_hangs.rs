//! Nothing hangs (#15 item 5), against the lab: a remote command that never returns fails the
//! step within its limit, naming host and step; a host that goes silent behind a jump host
//! is given up on as a direct one is (about 20 s), not after the jump host's TCP retries
//! (about 15 minutes).
//!
//! The never-returning command is real: app2's dockerd is stopped with SIGSTOP (its pid from
//! the lab's pid file), so `docker version` in preflight connects to the socket and waits
//! forever, as with a wedged engine. The wait for rcfleet below only keeps a regression from
//! hanging CI; what is asserted is the message, which tells the two mechanisms apart.

mod lab_support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use lab_support::*;

/// app2's dockerd stopped (SIGSTOP) while alive; continued (SIGCONT) when dropped.
struct StoppedDockerd {
    pid: u32,
}

impl StoppedDockerd {
    fn new(lab: &Lab, host: &str) -> StoppedDockerd {
        let pid = lab.dockerd_pid(host);
        assert!(Command::new("kill").args(["-STOP", &pid.to_string()]).status().unwrap().success());
        StoppedDockerd { pid }
    }
}

impl Drop for StoppedDockerd {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-CONT", &self.pid.to_string()]).status();
    }
}

/// A host's link cut (`lab partition`) while alive; restored (`lab heal`) when dropped.
struct Partitioned<'l> {
    lab: &'l Lab,
    host: &'static str,
}

impl Drop for Partitioned<'_> {
    fn drop(&mut self) {
        let _ = self.lab.exec_lab(&["heal", self.host]);
    }
}

/// A copy of the lab's inventory with extra `[ssh]` settings.
fn inventory_with_ssh(lab: &Lab, dir: &Path, settings: &str) -> PathBuf {
    let original = std::fs::read_to_string(lab.inventory()).unwrap();
    assert!(original.contains("\n[ssh]\n"), "the lab inventory has an [ssh] table");
    write_inventory(dir, &original.replacen("\n[ssh]\n", &format!("\n[ssh]\n{settings}\n"), 1))
}

fn start_up(inventory: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_rcfleet"))
        .arg("up")
        .arg("-i")
        .arg(inventory)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run rcfleet up")
}

/// The run's output; a run still going after `guard` is killed and fails the test.
fn finish(mut child: Child, guard: Duration) -> Output {
    let deadline = Instant::now() + guard;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let output = child.wait_with_output().unwrap();
            panic!("rcfleet up still ran after {guard:?} (a hang):\n{}", text(&output));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    child.wait_with_output().unwrap()
}

/// Whether a `docker version` started by app2's sshd is running (the step is waiting on the
/// stopped engine). Processes are matched by ancestry from app2's sshd pid, never by name alone.
fn preflight_waits_on_docker(lab: &Lab, host: &str) -> bool {
    let sshd = lab.sshd_pid(host);
    let parent_of = |pid: u32| -> Option<u32> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        stat.rsplit_once(')')?.1.split_whitespace().nth(1)?.parse().ok()
    };
    std::fs::read_dir("/proc").unwrap().flatten().filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok()).any(|pid| {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if !cmdline.starts_with(b"docker\0version\0") {
            return false;
        }
        let mut ancestor = pid;
        for _ in 0..10 {
            match parent_of(ancestor) {
                Some(parent) if parent == sshd => return true,
                Some(parent) if parent > 1 => ancestor = parent,
                _ => return false,
            }
        }
        false
    })
}

#[test]
fn a_command_that_never_returns_fails_within_its_timeout_naming_host_and_step() {
    let Some(lab) = lab() else { return };
    let dir = tempfile::tempdir().unwrap();
    let inventory = inventory_with_ssh(&lab, dir.path(), "command_timeout_seconds = 5");
    let stopped = StoppedDockerd::new(&lab, "app2");
    let output = finish(start_up(&inventory), Duration::from_secs(120));
    drop(stopped);
    let all = text(&output);
    eprintln!("{all}");
    assert_eq!(output.status.code(), Some(1), "{all}");
    assert!(all.contains("app2: preflight (Docker, Compose, disk, ports)"), "host and step named: {all}");
    assert!(all.contains("no result within 5s (ssh.command_timeout_seconds)"), "the limit named: {all}");
    assert!(!all.contains("db: preflight") && !all.contains("app1: preflight ("), "only app2 failed: {all}");
    lock_is_free(&lab);
    // The engine answers again: the same run now passes preflight on app2.
    assert!(eventually(30, || lab.sh("app2", "docker version >/dev/null").status.success()));
}

#[test]
fn a_host_gone_silent_behind_a_jump_host_is_given_up_on_like_a_direct_one() {
    let Some(lab) = lab() else { return };
    let dir = tempfile::tempdir().unwrap();
    // Only the relay's silence detection can end this run early: the command limit is long.
    let inventory = inventory_with_ssh(&lab, dir.path(), "command_timeout_seconds = 600\njump = \"lb\"");
    let stopped = StoppedDockerd::new(&lab, "app2");
    let child = start_up(&inventory);
    assert!(eventually(60, || preflight_waits_on_docker(&lab, "app2")), "preflight never reached app2's docker");
    let partitioned = Partitioned { lab: &lab, host: "app2" };
    assert!(lab.exec_lab(&["partition", "app2"]).status.success());
    let output = finish(child, Duration::from_secs(240));
    drop(partitioned);
    drop(stopped);
    let all = text(&output);
    eprintln!("{all}");
    assert_eq!(output.status.code(), Some(1), "{all}");
    assert!(all.contains("app2: preflight (Docker, Compose, disk, ports)"), "host and step named: {all}");
    assert!(all.contains("the host stopped answering through the jump host (no reply for 20s)"), "{all}");
    assert!(!all.contains("no result within"), "ended by silence detection, not the command limit: {all}");
    lock_is_free(&lab);
}

//! Per-instance metrics ports against the lab (issue 12, fidelity audit B1). Rocket.Chat saves an
//! `OVERWRITE_SETTING_*` value to MongoDB, where every instance of the workspace reads it, and
//! its metrics server listens once on whatever `Prometheus_Port` is when it starts; only the
//! process environment's `PROMETHEUS_PORT` is the instance's own. The lab's Rocket.Chat stand-in
//! models that (tests/lab/README.md), so two instances of one host that start at the same
//! moment keep distinct ports only if each has its own `PROMETHEUS_PORT`: with a per-instance
//! port in the shared setting, both would take the port written last and one would find it in
//! use, leaving the other port silent.

mod lab_support;

use std::collections::BTreeMap;

use lab_support::{eventually, http_get, rcfleet, text, Lab};

/// The release the lab's inventory deploys.
fn release(lab: &Lab) -> String {
    let inventory = std::fs::read_to_string(lab.inventory()).unwrap();
    let line = inventory.lines().find(|l| l.starts_with("release = ")).expect("a release in the lab inventory");
    line.trim_start_matches("release = ").trim_matches('"').to_string()
}

/// The id of the running container of `unit` on `host`.
fn container(lab: &Lab, host: &str, unit: &str) -> String {
    let id = lab.run(host, &format!("docker ps -q --no-trunc --filter label=io.rcfleet.unit={unit}")).trim().to_string();
    assert!(!id.is_empty() && !id.contains('\n'), "{host}: one running container of {unit} expected, got {id:?}");
    id
}

/// `container id -> (main process id on the host, started at)`.
fn processes(lab: &Lab, host: &str, containers: &[&str]) -> BTreeMap<String, (String, String)> {
    let out = lab.run(host, &format!("docker inspect --format '{{{{.Id}}}} {{{{.State.Pid}}}} {{{{.State.StartedAt}}}}' {}", containers.join(" ")));
    out.lines()
        .filter_map(|line| {
            let parts: Vec<&str> = line.split_whitespace().collect();
            match parts[..] {
                [id, pid, started] => Some((id.to_string(), (pid.to_string(), started.to_string()))),
                _ => None,
            }
        })
        .collect()
}

/// The process that listens on `address:port` of the host (from `ss`), if any.
fn listener_pid(lab: &Lab, host: &str, address: &str, port: u16) -> Option<String> {
    let out = lab.run(host, &format!("ss -Hltnp 'src {address}:{port}'"));
    let at = out.find("pid=")? + "pid=".len();
    Some(out[at..].chars().take_while(char::is_ascii_digit).collect())
}

/// The version in `rocketchat_info` on `address:port/metrics`, if that answers.
fn reported_version(address: &str, port: u16) -> Option<String> {
    let (status, body) = http_get(&format!("{address}:{port}"), address, "/metrics").ok()?;
    let line = body.lines().find(|l| l.starts_with("rocketchat_info{")).filter(|_| status == 200)?;
    line.split("version=\"").nth(1)?.split('"').next().map(str::to_string)
}

/// Seconds between two Docker `StartedAt` times of the same minute or so (RFC 3339, UTC).
fn seconds_apart(a: &str, b: &str) -> f64 {
    let seconds = |t: &str| -> f64 {
        let clock = t.split('T').nth(1).unwrap_or_default().trim_end_matches('Z');
        clock.split(':').fold(0.0, |acc, part| acc * 60.0 + part.parse::<f64>().unwrap_or(0.0))
    };
    (seconds(a) - seconds(b)).abs()
}

#[test]
fn instances_of_one_host_started_together_keep_their_own_metrics_ports() {
    let Some(lab) = lab_support::lab() else { return };
    lab.reset_fleet();
    let up = rcfleet(&["up", "-i", lab.inventory()]);
    assert!(up.status.success(), "up failed:\n{}", text(&up));
    let release = release(&lab);
    let address = lab.addr("app1").to_string();
    let instances = [("app1-0", 9458u16), ("app1-1", 9459u16)];
    let before: Vec<String> = instances.iter().map(|(unit, _)| container(&lab, "app1", unit)).collect();
    let ids: Vec<&str> = before.iter().map(String::as_str).collect();
    let started_before = processes(&lab, "app1", &ids);

    // Both at once, as after a host reboot or an `upgrade --batch 2`: two background restarts.
    lab.run("app1", &format!("docker restart -t 2 {} >/dev/null & a=$!; docker restart -t 2 {} >/dev/null & b=$!; wait $a && wait $b", ids[0], ids[1]));
    let after = processes(&lab, "app1", &ids);
    assert_eq!(after.len(), 2, "{after:?}");
    for id in &ids {
        assert_ne!(after[*id].1, started_before[*id].1, "container {id} was not restarted");
    }
    // The race needs both to register their settings within the stand-in's 2 s settle window;
    // apart by more, this test would show nothing.
    let apart = seconds_apart(&after[ids[0]].1, &after[ids[1]].1);
    assert!(apart < 1.5, "the two instances started {apart:.2} s apart, not at the same moment: {after:?}");

    let mut seen = String::new();
    let settled = eventually(45, || {
        seen.clear();
        let mut good = true;
        for ((unit, port), id) in instances.iter().zip(&ids) {
            let version = reported_version(&address, *port);
            let owner = listener_pid(&lab, "app1", &address, *port);
            let own_pid = &after[*id].0;
            seen.push_str(&format!("{unit} port {port}: version {version:?}, listener pid {owner:?} (its pid {own_pid}); "));
            good &= version.as_deref() == Some(release.as_str()) && owner.as_deref() == Some(own_pid.as_str());
        }
        good
    });
    assert!(settled, "each instance must answer on its own metrics port with its version: {seen}");

    old_rendering_collides(&lab, &address);
}

/// The control: the same two instances given their ports the way rcfleet once did, through
/// the shared setting, and started together, end up with one metrics port between them, so
/// the check above can fail. Started by hand beside the fleet (other HTTP and metrics ports),
/// with the fleet's instance.env for MongoDB's credentials.
fn old_rendering_collides(lab: &Lab, address: &str) {
    let image = lab.run("app1", "docker inspect --format '{{.Config.Image}}' $(docker ps -q --filter label=io.rcfleet.unit=app1-0)");
    let image = image.trim();
    let run = |name: &str, port: u16, metrics: u16| {
        format!(
            "docker run -d --name {name} --network host --env-file /opt/rcfleet/lab/rocketchat/app1-0/instance.env \
             -e PORT={port} -e BIND_IP={address} -e OVERWRITE_SETTING_Prometheus_Enabled=true \
             -e OVERWRITE_SETTING_Prometheus_Port={metrics} {image} >/dev/null"
        )
    };
    lab.run("app1", &format!("{} & a=$!; {} & b=$!; wait $a && wait $b", run("old-rendering-0", 3100, 9558), run("old-rendering-1", 3101, 9559)));
    let mut seen = String::new();
    let collided = eventually(30, || {
        let answering: Vec<u16> = [9558u16, 9559].into_iter().filter(|port| reported_version(address, *port).is_some()).collect();
        let logs = lab.run("app1", "docker logs old-rendering-0 2>&1; docker logs old-rendering-1 2>&1");
        seen = format!("answering {answering:?}; {}", logs.lines().filter(|l| l.contains("etrics") || l.contains("EADDRINUSE")).collect::<Vec<_>>().join(" | "));
        answering.len() == 1 && logs.contains("EADDRINUSE")
    });
    lab.run("app1", "docker rm -f old-rendering-0 old-rendering-1 >/dev/null");
    assert!(collided, "with a per-instance port in the shared setting, two instances started together must collide: {seen}");
}

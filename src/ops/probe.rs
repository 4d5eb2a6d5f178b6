//! Observed state: what is actually running and answering on the hosts. Each probe returns
//! facts (or "not yet" with what it saw); deciding what to do with them is the caller's job.

use std::collections::{BTreeMap, HashMap};

use bollard::query_parameters::ListContainersOptionsBuilder;
use serde_json::Value;

use super::hosts::Hosts;
use super::secrets::{self, MongoLogin, MARK};
use super::wait::Poll;
use crate::error::{Error, Result};
use crate::fleet::{Fleet, Instance};
use crate::remote::{Argv, Connection};

/// One rcfleet container on a host.
#[derive(Debug, Clone)]
pub struct Container {
    pub id: String,
    pub unit: String,
    /// Its compose project: an instance has two during a start-first upgrade (`render::instance_unit`).
    pub project: String,
    pub service: String,
    pub image: String,
    /// Docker's state: `running`, `exited`, `created`, ...
    pub state: String,
    /// Seconds since the epoch when it was created.
    pub created: i64,
}

impl Container {
    pub fn running(&self) -> bool {
        self.state == "running"
    }
}

/// Every container of this workspace on a host (running or not), found by rcfleet's labels.
pub fn containers(remote: &Hosts, fleet: &Fleet, conn: &Connection) -> Result<Vec<Container>> {
    remote.block_on(async {
        let docker = conn.docker().await?;
        let filters = HashMap::from([("label".to_string(), vec![format!("io.rcfleet.fleet={}", fleet.workspace.name)])]);
        let options = ListContainersOptionsBuilder::default().all(true).filters(&filters).build();
        let list = docker
            .list_containers(Some(options))
            .await
            .map_err(|e| Error::failed(format!("{}: listing containers through the Docker API failed: {e}", conn.name())))?;
        Ok(list
            .into_iter()
            .map(|c| {
                let labels = c.labels.unwrap_or_default();
                let label = |key: &str| labels.get(key).cloned().unwrap_or_default();
                Container {
                    id: c.id.unwrap_or_default(),
                    unit: label("io.rcfleet.unit"),
                    project: label("com.docker.compose.project"),
                    service: label("com.docker.compose.service"),
                    image: c.image.unwrap_or_default(),
                    state: c.state.map(|s| s.to_string()).unwrap_or_default(),
                    created: c.created.unwrap_or_default(),
                }
            })
            .collect())
    })
}

/// The running container of `service` in `unit`, if any.
pub fn running<'c>(containers: &'c [Container], unit: &str, service: &str) -> Option<&'c Container> {
    containers.iter().find(|c| c.unit == unit && c.service == service && c.running())
}

/// The running MongoDB server container on the database host (`conn`), if any.
pub fn mongodb(hosts: &Hosts, fleet: &Fleet, conn: &Connection) -> Result<Option<Container>> {
    let database = crate::render::database_unit(fleet);
    Ok(running(&containers(hosts, fleet, conn)?, &database.name, "mongodb").cloned())
}

/// The HTTP and metrics ports a running instance container was given (`PORT` and
/// `PROMETHEUS_PORT` in its environment; `OVERWRITE_SETTING_Prometheus_Port` in containers
/// that earlier rcfleet releases started).
pub fn instance_ports(remote: &Hosts, conn: &Connection, container: &str) -> Result<Vec<u16>> {
    remote.block_on(async {
        let docker = conn.docker().await?;
        let inspect = docker
            .inspect_container(container, None)
            .await
            .map_err(|e| Error::failed(format!("{}: inspecting container {container} failed: {e}", conn.name())))?;
        let env = inspect.config.and_then(|c| c.env).unwrap_or_default();
        Ok(env
            .iter()
            .filter_map(|entry| entry.split_once('='))
            .filter(|(key, _)| matches!(*key, "PORT" | "PROMETHEUS_PORT" | "OVERWRITE_SETTING_Prometheus_Port"))
            .filter_map(|(_, value)| value.parse().ok())
            .collect())
    })
}

/// The path that tells whether an instance of `fleet`'s release is ready: `/readyz` from 7.11
/// on (it checks MongoDB), `/health` before (the only endpoint those releases have).
pub fn readiness_path(fleet: &Fleet) -> &'static str {
    let release = &fleet.workspace.release;
    if (release.major, release.minor) >= (7, 11) {
        "/readyz"
    } else {
        "/health"
    }
}

/// Whether the instance answers its readiness endpoint with 200, asked from its own host: one
/// sample, for waits that go on until it is ready.
pub fn instance_ready(remote: &Hosts, fleet: &Fleet, instance: &Instance) -> Result<Poll<()>> {
    Ok(match readiness(remote, fleet, instance)? {
        Readiness::Ready => Ok(()),
        Readiness::Refused(seen) | Readiness::Silent(seen) => Err(seen),
    })
}

/// Readiness samples that must all fail, one after another, before a judgement (the upgrade
/// guard, `status`, taking instances out after a failed batch) counts an instance as not
/// ready. Rocket.Chat's `/readyz` (7.11+) answers 503 whenever one sample of heap use (85 %)
/// or event-loop lag (p99 70 ms, reset at every call) is over its threshold
/// (`apps/meteor/server/routes/health.ts`), and Rocket.Chat PR #38192 says its heap measure
/// reported 85 % "very frequently" when it was not: one 503 is noise on a busy instance. Three
/// samples a second apart span three fresh lag windows, and cost `status` two seconds only
/// for an instance that really refuses.
pub const READINESS_SAMPLES: u32 = 3;
const READINESS_SAMPLE_GAP: std::time::Duration = std::time::Duration::from_secs(1);

/// Whether the instance is ready, judged over up to [`READINESS_SAMPLES`] samples: ready at the
/// first 200; not ready when every sample was refused (the last reason is kept) or at once when
/// nothing answers (a closed port does not flap).
pub fn instance_ready_steady(remote: &Hosts, fleet: &Fleet, instance: &Instance) -> Result<Poll<()>> {
    let mut last = String::new();
    for sample in 1..=READINESS_SAMPLES {
        match readiness(remote, fleet, instance)? {
            Readiness::Ready => return Ok(Ok(())),
            Readiness::Silent(seen) => return Ok(Err(seen)),
            Readiness::Refused(seen) => last = seen,
        }
        if sample < READINESS_SAMPLES {
            std::thread::sleep(READINESS_SAMPLE_GAP);
        }
    }
    Ok(Err(format!("{last} ({READINESS_SAMPLES} times in a row)")))
}

enum Readiness {
    Ready,
    /// It answered, not with 200: what it said.
    Refused(String),
    /// Nothing answered.
    Silent(String),
}

fn readiness(remote: &Hosts, fleet: &Fleet, instance: &Instance) -> Result<Readiness> {
    let conn = remote.host(&instance.host);
    let path = readiness_path(fleet);
    let http = match remote.http(conn.name(), &instance.private_address, instance.port) {
        Ok(http) => http,
        Err(err) => return Ok(Readiness::Silent(err.to_string())),
    };
    Ok(match remote.block_on(http.get(path)) {
        Ok(response) if response.status == 200 => Readiness::Ready,
        Ok(response) => {
            // The body says why (`/readyz` names the failed check); kept short and on one line.
            let body: String = response.body.split_whitespace().collect::<Vec<_>>().join(" ").chars().take(120).collect();
            let said = if body.is_empty() { String::new() } else { format!(": {body}") };
            Readiness::Refused(format!("{path} answered {}{said}", response.status))
        }
        Err(_) => Readiness::Silent(format!("nothing answers on {}:{}", instance.private_address, instance.port)),
    })
}

/// The version an instance reports in `rocketchat_info{version="X.Y.Z"}` on its metrics port.
pub fn instance_version(remote: &Hosts, instance: &Instance) -> Result<Option<String>> {
    let conn = remote.host(&instance.host);
    let http = remote.http(conn.name(), &instance.private_address, instance.metrics_port)?;
    let Ok(response) = remote.block_on(http.get("/metrics")) else { return Ok(None) };
    Ok(response.body.lines().find(|line| line.starts_with("rocketchat_info{")).and_then(|line| {
        let start = line.find("version=\"")? + "version=\"".len();
        let end = line[start..].find('"')? + start;
        Some(line[start..end].to_string())
    }))
}

/// The last `lines` lines a unit's container printed, for failure reports.
pub fn last_log_lines(conn: &Connection, container: &str, lines: u32) -> String {
    let argv = Argv::new("docker").args(["logs", "--tail", &lines.to_string(), container]);
    match conn.exec(&argv, Default::default()) {
        Ok(output) => {
            let text = format!("{}{}", output.stdout_text(), output.stderr_text());
            text.lines().map(|l| format!("    | {l}")).collect::<Vec<_>>().join("\n")
        }
        Err(err) => format!("    (logs unavailable: {})", err),
    }
}

/// The replica set as the database host's mongod reports it: `Ok(primary member)` once a member
/// is PRIMARY, else what was seen.
/// With `login` (MongoDB with access control) it authenticates first; the password goes
/// through stdin (see `secrets::mongosh`).
pub fn mongo_primary(conn: &Connection, fleet: &Fleet, mongodb_container: &str, login: Option<&MongoLogin>) -> Result<Poll<String>> {
    let script = format!("print(\"{MARK}\" + JSON.stringify(rs.status()));");
    let output = secrets::mongosh(conn, fleet, mongodb_container, login, &script)?;
    let answer = secrets::marked(&output).pop();
    let Some(answer) = answer.filter(|_| output.success()) else {
        let said = format!("{} {}", output.stdout_text(), output.stderr_text());
        let said: String = said.split_whitespace().collect::<Vec<_>>().join(" ").chars().take(160).collect();
        // Waiting does not help when MongoDB refuses rcfleet's admin login.
        if login.is_some() && secrets::refused_login(&output.stderr_text()) {
            return Err(Error::failed(format!(
                "{}: MongoDB refused rcfleet's admin login ({said}); {} on this host, or mongodb.admin_password, \
                 must hold the password the admin user was created with",
                conn.name(),
                crate::render::secrets_file(fleet)
            )));
        }
        return Ok(Err(said));
    };
    let status: Value = match serde_json::from_str(answer.trim()) {
        Ok(status) => status,
        Err(_) => return Ok(Err(format!("unexpected answer: {}", answer.trim()))),
    };
    let members = status["members"].as_array().cloned().unwrap_or_default();
    Ok(members
        .iter()
        .find(|m| m["stateStr"] == "PRIMARY")
        .map(|m| m["name"].as_str().unwrap_or_default().to_string())
        .ok_or_else(|| {
            let states: Vec<String> = members.iter().map(|m| format!("{} {}", m["name"], m["stateStr"])).collect();
            format!("no PRIMARY yet ({})", states.join(", "))
        }))
}

/// Traefik's view of the Rocket.Chat service: server URL -> `UP`/`DOWN`, from its API on the
/// Traefik host's 127.0.0.1 (reached through SSH). Empty when the service is not loaded.
pub fn traefik_servers(remote: &Hosts, fleet: &Fleet) -> Result<Poll<BTreeMap<String, String>>> {
    let conn = remote.host(&fleet.traefik_host().name);
    let http = match remote.http(conn.name(), "127.0.0.1", fleet.traefik.api_port) {
        Ok(http) => http,
        Err(err) => return Ok(Err(err.to_string())),
    };
    let response = match remote.block_on(http.get("/api/http/services/rocketchat@file")) {
        Ok(response) => response,
        Err(_) => return Ok(Err(format!("Traefik's API on 127.0.0.1:{} does not answer", fleet.traefik.api_port))),
    };
    if response.status == 404 {
        return Ok(Ok(BTreeMap::new()));
    }
    let service: Value = serde_json::from_str(&response.body)
        .map_err(|e| Error::failed(format!("{}: Traefik's API gave unexpected JSON: {e}", conn.name())))?;
    let mut servers: BTreeMap<String, String> = BTreeMap::new();
    for server in service["loadBalancer"]["servers"].as_array().into_iter().flatten() {
        if let Some(url) = server["url"].as_str() {
            servers.insert(url.to_string(), "unknown".to_string());
        }
    }
    if let Some(status) = service["serverStatus"].as_object() {
        for (url, state) in status {
            servers.insert(url.clone(), state.as_str().unwrap_or_default().to_string());
        }
    }
    Ok(Ok(servers))
}

/// Prometheus' view of the instance targets: `host:port` -> health (`up`, `down`, `unknown`).
pub fn prometheus_targets(remote: &Hosts, fleet: &Fleet) -> Result<Poll<BTreeMap<String, String>>> {
    prometheus_job_targets(remote, fleet, "rocketchat")
}

/// Prometheus' view of the targets labelled `job` (the instances' `rocketchat`, the
/// microservices' `rocketchat-services`; both come from the `file_sd` scrape pool).
pub fn prometheus_job_targets(remote: &Hosts, fleet: &Fleet, job: &str) -> Result<Poll<BTreeMap<String, String>>> {
    let Some(host) = fleet.monitoring_host() else { return Ok(Ok(BTreeMap::new())) };
    let conn = remote.host(&host.name);
    let http = match remote.http(conn.name(), &host.private_address, fleet.monitoring.prometheus_port) {
        Ok(http) => http,
        Err(err) => return Ok(Err(err.to_string())),
    };
    let answer: Value = match remote.block_on(http.get_json("/api/v1/targets?state=active")) {
        Ok(answer) => answer,
        Err(_) => return Ok(Err("Prometheus' API does not answer yet".to_string())),
    };
    let mut targets = BTreeMap::new();
    for target in answer["data"]["activeTargets"].as_array().into_iter().flatten() {
        if target["scrapePool"] == "rocketchat" && target["labels"]["job"] == job {
            if let Some(instance) = target["labels"]["instance"].as_str() {
                targets.insert(instance.to_string(), target["health"].as_str().unwrap_or("unknown").to_string());
            }
        }
    }
    Ok(Ok(targets))
}

/// Whether an HTTP service on the host answers `path` with 200, asked from the host itself:
/// `Ok(())`, or what was seen instead. Never an error: a service that does not answer is a fact.
pub fn http_ok(remote: &Hosts, conn: &Connection, address: &str, port: u16, path: &str) -> Poll<()> {
    let http = remote.http(conn.name(), address, port).map_err(|err| err.to_string())?;
    match remote.block_on(http.get(path)) {
        Ok(response) if response.status == 200 => Ok(()),
        Ok(response) => Err(format!("{path} answered {}", response.status)),
        Err(_) => Err(format!("nothing answers on {address}:{port}")),
    }
}

/// The names of the directories in `dir` on the host (empty when it does not exist).
pub fn directories(conn: &Connection, dir: &str) -> Result<Vec<String>> {
    let script = r#"[ -d "$1" ] || exit 0; for d in "$1"/*/; do [ -d "$d" ] && basename -- "$d"; done; true"#;
    Ok(conn.run(&Argv::script(script, &[dir]).step(format!("listing {dir}")))?.stdout_text().lines().map(str::to_string).collect())
}

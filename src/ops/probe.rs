//! Observed state: what is actually running and answering on the hosts. Each probe returns
//! facts (or "not yet" with what it saw); deciding what to do with them is the caller's job.

use std::collections::BTreeMap;

use bollard::models::{ContainerInspectResponse, ContainerSummary};
use serde_json::Value;

use super::hosts::Hosts;
use super::mongodb::wire;
use super::secrets::MongoLogin;
use super::wait::Poll;
use crate::error::{one_line, Error, Result};
use crate::fleet::{Fleet, Instance};
use crate::remote::{Answer, Argv, Connection, HttpResponse, Request, DOCKER_SOCKET};

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

/// The label every container rcfleet starts carries, naming the workspace (fleet).
const FLEET_LABEL: &str = "io.rcfleet.fleet";

/// Every container of this workspace on a host (running or not), found by rcfleet's labels.
/// Asked over the host's command session (a channel to the Docker socket), so a run that
/// only looks opens no second SSH connection for the Docker API.
pub fn containers(fleet: &Fleet, conn: &Connection) -> Result<Vec<Container>> {
    containers_answered(fleet, conn, conn.batch(&[containers_request()]).remove(0))
}

/// The workspace's containers in `conn`'s answer to [`containers_request`] (asked in a batch).
pub fn containers_answered(fleet: &Fleet, conn: &Connection, answer: Result<Answer>) -> Result<Vec<Container>> {
    let response = answer?.response().ok_or_else(|| conn.fail("listing containers: not an HTTP answer"))?;
    containers_in_answer(fleet, &response).map_err(|e| conn.fail(format!("listing containers: {e}")))
}

/// The Docker Engine API request listing every container of a host (`GET /containers/json`,
/// unversioned: the daemon's own version), for [`containers_in_answer`].
pub fn containers_request() -> Request {
    Request::get_unix(DOCKER_SOCKET, "/containers/json?all=1")
}

/// The workspace's containers in the Engine API's answer to [`containers_request`].
pub fn containers_in_answer(fleet: &Fleet, response: &HttpResponse) -> std::result::Result<Vec<Container>, String> {
    if response.status != 200 {
        return Err(format!("the Docker Engine API answered {}: {}", response.status, one_line(&response.body, 120)));
    }
    let list: Vec<ContainerSummary> =
        serde_json::from_str(&response.body).map_err(|e| format!("the Docker Engine API gave unexpected JSON: {e}"))?;
    Ok(workspace_containers(fleet, list))
}

/// The containers labelled as this workspace's, in rcfleet's terms.
fn workspace_containers(fleet: &Fleet, list: Vec<ContainerSummary>) -> Vec<Container> {
    list.into_iter()
        .filter_map(|c| {
            let labels = c.labels.unwrap_or_default();
            if labels.get(FLEET_LABEL) != Some(&fleet.workspace.name) {
                return None;
            }
            let label = |key: &str| labels.get(key).cloned().unwrap_or_default();
            Some(Container {
                id: c.id.unwrap_or_default(),
                unit: label("io.rcfleet.unit"),
                project: label("com.docker.compose.project"),
                service: label("com.docker.compose.service"),
                image: c.image.unwrap_or_default(),
                state: c.state.map(|s| s.to_string()).unwrap_or_default(),
                created: c.created.unwrap_or_default(),
            })
        })
        .collect()
}

/// The running container of `service` in `unit`, if any.
pub fn running<'c>(containers: &'c [Container], unit: &str, service: &str) -> Option<&'c Container> {
    containers.iter().find(|c| c.unit == unit && c.service == service && c.running())
}

/// The running MongoDB server container on the database host (`conn`), if any.
pub fn mongodb(fleet: &Fleet, conn: &Connection) -> Result<Option<Container>> {
    let database = crate::render::database_unit(fleet);
    Ok(running(&containers(fleet, conn)?, &database.name, "mongodb").cloned())
}

/// The HTTP and metrics ports running instance containers were given (`PORT` and
/// `PROMETHEUS_PORT` in their environment; `OVERWRITE_SETTING_Prometheus_Port` in containers
/// that earlier rcfleet releases started), asked of the Docker Engine API together.
pub fn instance_ports(conn: &Connection, containers: &[&Container]) -> Result<Vec<u16>> {
    let requests: Vec<Request> =
        containers.iter().map(|c| Request::get_unix(DOCKER_SOCKET, &format!("/containers/{}/json", c.id))).collect();
    let mut ports = Vec::new();
    for (container, answer) in containers.iter().zip(conn.batch(&requests)) {
        let fail = |what: String| Error::failed(format!("{}: inspecting container {}: {what}", conn.name(), container.unit));
        let response = answer?.response().ok_or_else(|| fail("not an HTTP answer".to_string()))?;
        if response.status != 200 {
            return Err(fail(format!("the Docker Engine API answered {}: {}", response.status, one_line(&response.body, 120))));
        }
        let inspect: ContainerInspectResponse =
            serde_json::from_str(&response.body).map_err(|e| fail(format!("unexpected JSON: {e}")))?;
        let env = inspect.config.and_then(|c| c.env).unwrap_or_default();
        ports.extend(
            env.iter()
                .filter_map(|entry| entry.split_once('='))
                .filter(|(key, _)| matches!(*key, "PORT" | "PROMETHEUS_PORT" | "OVERWRITE_SETTING_Prometheus_Port"))
                .filter_map(|(_, value)| value.parse::<u16>().ok()),
        );
    }
    Ok(ports)
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
    Ok(match readiness(remote, fleet, instance) {
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

/// Whether the instance is ready, judged over up to [`READINESS_SAMPLES`] samples (see
/// [`steady_readiness`]).
pub fn instance_ready_steady(remote: &Hosts, fleet: &Fleet, instance: &Instance) -> Result<Poll<()>> {
    Ok(steady_readiness(1, |_| vec![readiness(remote, fleet, instance)]).remove(0))
}

/// Whether each of `count` instances is ready, judged over up to [`READINESS_SAMPLES`]
/// samples: ready at the first 200; not ready when every sample was refused (the last reason
/// is kept) or at once when nothing answers (a closed port does not flap). `sample` is given
/// the indices still refusing and returns one sample of each, in that order; those of one
/// round are asked together.
pub fn steady_readiness(count: usize, mut sample: impl FnMut(&[usize]) -> Vec<Readiness>) -> Vec<Poll<()>> {
    let mut judged: Vec<Option<Poll<()>>> = vec![None; count];
    let mut refusing: Vec<(usize, String)> = (0..count).map(|i| (i, String::new())).collect();
    for round in 1..=READINESS_SAMPLES {
        let indices: Vec<usize> = refusing.iter().map(|(i, _)| *i).collect();
        let mut still = Vec::new();
        for (index, seen) in indices.iter().copied().zip(sample(&indices)) {
            match seen {
                Readiness::Ready => judged[index] = Some(Ok(())),
                Readiness::Silent(seen) => judged[index] = Some(Err(seen)),
                Readiness::Refused(seen) => still.push((index, seen)),
            }
        }
        refusing = still;
        if refusing.is_empty() {
            break;
        }
        if round < READINESS_SAMPLES {
            std::thread::sleep(READINESS_SAMPLE_GAP);
        }
    }
    for (index, last) in refusing {
        judged[index] = Some(Err(format!("{last} ({READINESS_SAMPLES} times in a row)")));
    }
    judged.into_iter().map(|j| j.expect("every instance judged")).collect()
}

pub enum Readiness {
    Ready,
    /// It answered, not with 200: what it said.
    Refused(String),
    /// Nothing answered.
    Silent(String),
}

fn readiness(remote: &Hosts, fleet: &Fleet, instance: &Instance) -> Readiness {
    let conn = remote.host(&instance.host);
    let http = match remote.http(conn.name(), &instance.private_address, instance.port) {
        Ok(http) => http,
        Err(err) => return Readiness::Silent(err.to_string()),
    };
    readiness_in_answer(fleet, instance, remote.block_on(http.get(readiness_path(fleet))).ok())
}

/// The request asking an instance whether it is ready, from its own host.
pub fn readiness_request(fleet: &Fleet, instance: &Instance) -> Request {
    Request::get(&instance.private_address, instance.port, readiness_path(fleet))
}

/// What the instance's answer to its readiness path (`None`: no answer) says.
pub fn readiness_in_answer(fleet: &Fleet, instance: &Instance, response: Option<HttpResponse>) -> Readiness {
    let path = readiness_path(fleet);
    match response {
        Some(response) if response.status == 200 => Readiness::Ready,
        Some(response) => {
            // The body says why (`/readyz` names the failed check); kept short and on one line.
            let body = one_line(&response.body, 120);
            let said = if body.is_empty() { String::new() } else { format!(": {body}") };
            Readiness::Refused(format!("{path} answered {}{said}", response.status))
        }
        None => Readiness::Silent(format!("nothing answers on {}:{}", instance.private_address, instance.port)),
    }
}

/// The version an instance reports in `rocketchat_info{version="X.Y.Z"}` on its metrics port.
/// Asked through a tunnel: it answers while the host's session runs a command (a backup reads
/// the versions while the upgrade's pre-pull runs `docker pull` on every app host).
pub fn instance_version(remote: &Hosts, instance: &Instance) -> Result<Option<String>> {
    let conn = remote.host(&instance.host);
    let http = remote.http(conn.name(), &instance.private_address, instance.metrics_port)?;
    let Ok(response) = remote.block_on(http.get("/metrics")) else { return Ok(None) };
    Ok(version_in_metrics(&response.body))
}

/// [`instance_version`] asked on a channel of the host's connection: no tunnel to open for a
/// port asked once (a tunnel is an SSH connection of its own: its handshake was ~0.1 s of each
/// start-first batch on the lab), but it waits behind a command running on that connection.
pub fn instance_version_on(conn: &Connection, instance: &Instance) -> Option<String> {
    let answer = conn.batch(&[metrics_request(instance)]).remove(0);
    answer.ok().and_then(Answer::response).and_then(|response| version_in_metrics(&response.body))
}

/// The request for an instance's metrics, where it reports its version.
pub fn metrics_request(instance: &Instance) -> Request {
    Request::get(&instance.private_address, instance.metrics_port, "/metrics")
}

/// The version in `rocketchat_info{version="X.Y.Z"}` of a metrics page.
pub fn version_in_metrics(metrics: &str) -> Option<String> {
    metrics.lines().find(|line| line.starts_with("rocketchat_info{")).and_then(|line| {
        let start = line.find("version=\"")? + "version=\"".len();
        let end = line[start..].find('"')? + start;
        Some(line[start..end].to_string())
    })
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

/// The replica set as the database host's mongod reports it (`hello`, over MongoDB's wire
/// protocol: no Node start): `Ok(primary member)` once it is PRIMARY, else what was seen,
/// including that nothing answers yet. With `login` (MongoDB with access control) rcfleet's
/// admin login is tried first: MongoDB refusing it is an error, as waiting does not help.
pub fn mongo_primary(conn: &Connection, fleet: &Fleet, login: Option<&MongoLogin>) -> Result<Poll<String>> {
    let mut mongodb = match wire::Client::connect(conn, fleet.mongodb.port) {
        Ok(mongodb) => mongodb,
        Err(err) => return Ok(Err(err.to_string())),
    };
    if let Some(login) = login {
        match mongodb.login(login.user, &login.password) {
            Ok(Ok(())) => {}
            Ok(Err(refused)) => {
                return Err(Error::failed(format!(
                    "{}: MongoDB refused rcfleet's admin login ({}); {} on this host, or mongodb.admin_password, \
                     must hold the password the admin user was created with",
                    conn.name(),
                    one_line(&refused.message, 160),
                    crate::render::secrets_file(fleet)
                )))
            }
            Err(err) => return Ok(Err(err.to_string())),
        }
    }
    Ok(mongodb.primary().unwrap_or_else(|err| Err(err.to_string())))
}

/// Where Traefik's API tells its view of its file-provided service `service` (on the Traefik
/// host's 127.0.0.1).
fn traefik_service_path(service: &str) -> String {
    format!("/api/http/services/{service}@file")
}
/// Where Prometheus' API lists its targets.
const PROMETHEUS_TARGETS: &str = "/api/v1/targets?state=active";

/// Traefik's view of the Rocket.Chat service: server URL -> `UP`/`DOWN`, from its API on the
/// Traefik host's 127.0.0.1 (reached through SSH). Empty when the service is not loaded.
pub fn traefik_servers(remote: &Hosts, fleet: &Fleet) -> Result<Poll<BTreeMap<String, String>>> {
    traefik_service_servers(remote, fleet, "rocketchat")
}

/// Traefik's view of the servers of its file-provided service `service` (`rocketchat`,
/// `ddp-streamer`): URL -> `UP`/`DOWN`; empty when Traefik has no such service.
pub fn traefik_service_servers(remote: &Hosts, fleet: &Fleet, service: &str) -> Result<Poll<BTreeMap<String, String>>> {
    let conn = remote.host(&fleet.traefik_host().name);
    let answer = conn.batch(&[traefik_service_request(fleet, service)]).remove(0).ok().and_then(Answer::response);
    traefik_servers_in_answer(fleet, answer).map_err(|e| Error::failed(format!("{}: {e}", conn.name())))
}

/// The request for Traefik's view of the Rocket.Chat service, asked on the Traefik host.
pub fn traefik_request(fleet: &Fleet) -> Request {
    traefik_service_request(fleet, "rocketchat")
}

fn traefik_service_request(fleet: &Fleet, service: &str) -> Request {
    Request::get("127.0.0.1", fleet.traefik.api_port, &traefik_service_path(service))
}

/// Traefik's answer (`None`: no answer) to [`traefik_request`] as server URL -> state; an
/// error when the answer is not Traefik's JSON.
pub fn traefik_servers_in_answer(
    fleet: &Fleet,
    response: Option<HttpResponse>,
) -> std::result::Result<Poll<BTreeMap<String, String>>, String> {
    let Some(response) = response else {
        return Ok(Err(format!("Traefik's API on 127.0.0.1:{} does not answer", fleet.traefik.api_port)));
    };
    if response.status == 404 {
        return Ok(Ok(BTreeMap::new()));
    }
    let service: Value =
        serde_json::from_str(&response.body).map_err(|e| format!("Traefik's API gave unexpected JSON: {e}"))?;
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
    let answer = remote.host(&host.name).batch(&[prometheus_request(fleet, host)]).remove(0).ok().and_then(Answer::response);
    Ok(prometheus_targets_in_answer(answer, job))
}

/// The request for Prometheus' targets, asked on the monitoring host `host`.
pub fn prometheus_request(fleet: &Fleet, host: &crate::fleet::Host) -> Request {
    Request::get(&host.private_address, fleet.monitoring.prometheus_port, PROMETHEUS_TARGETS)
}

/// The targets of `job` in Prometheus' answer (`None`: no answer) to [`prometheus_request`].
pub fn prometheus_targets_in_answer(response: Option<HttpResponse>, job: &str) -> Poll<BTreeMap<String, String>> {
    let answer: Value = match response {
        Some(response) if (200..300).contains(&response.status) => {
            serde_json::from_str(&response.body).map_err(|_| "Prometheus' API does not answer yet".to_string())?
        }
        _ => return Err("Prometheus' API does not answer yet".to_string()),
    };
    let mut targets = BTreeMap::new();
    for target in answer["data"]["activeTargets"].as_array().into_iter().flatten() {
        if target["scrapePool"] == "rocketchat" && target["labels"]["job"] == job {
            if let Some(instance) = target["labels"]["instance"].as_str() {
                targets.insert(instance.to_string(), target["health"].as_str().unwrap_or("unknown").to_string());
            }
        }
    }
    Ok(targets)
}

/// Whether an HTTP service on the host answers `path` with 200, asked from the host itself:
/// `Ok(())`, or what was seen instead. Never an error: a service that does not answer is a fact.
pub fn http_ok(remote: &Hosts, conn: &Connection, address: &str, port: u16, path: &str) -> Poll<()> {
    let http = remote.http(conn.name(), address, port).map_err(|err| err.to_string())?;
    ok_in_answer(remote.block_on(http.get(path)).ok(), address, port, path)
}

/// Whether a service's answer (`None`: no answer) to `GET path` on `address:port` was a 200.
pub fn ok_in_answer(response: Option<HttpResponse>, address: &str, port: u16, path: &str) -> Poll<()> {
    match response {
        Some(response) if response.status == 200 => Ok(()),
        Some(response) => Err(format!("{path} answered {}", response.status)),
        None => Err(format!("nothing answers on {address}:{port}")),
    }
}

/// The names of the directories in `dir` on the host (empty when it does not exist).
pub fn directories(conn: &Connection, dir: &str) -> Result<Vec<String>> {
    Ok(directories_in(&conn.run(&directories_argv(dir))?.stdout_text()))
}

/// The command listing the directories in `dir`, one name a line, for [`directories_in`].
pub fn directories_argv(dir: &str) -> Argv {
    // The shell's own expansions name each folder: no program started per folder.
    let script = r#"[ -d "$1" ] || exit 0; for d in "$1"/*/; do [ -d "$d" ] || continue; d=${d%/}; printf '%s\n' "${d##*/}"; done"#;
    Argv::script(script, &[dir]).step(format!("listing {dir}"))
}

pub fn directories_in(output: &str) -> Vec<String> {
    output.lines().map(str::to_string).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A local shell runs the listing: folders only, by name; nothing (and success) for a
    /// folder that does not exist or holds none.
    #[test]
    fn the_listing_run_by_a_shell_names_each_folder() {
        let dir = std::env::temp_dir().join(format!("rcfleet-directories-{}", std::process::id()));
        for folder in ["app1-0", "app1 1"] {
            std::fs::create_dir_all(dir.join(folder)).unwrap();
        }
        std::fs::write(dir.join("a-file"), b"").unwrap();
        let list = |path: &std::path::Path| {
            let argv = directories_argv(&path.to_string_lossy()).to_command_line();
            let output = std::process::Command::new("sh").arg("-c").arg(&argv).output().unwrap();
            assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
            directories_in(&String::from_utf8_lossy(&output.stdout))
        };
        assert_eq!(list(&dir), vec!["app1 1".to_string(), "app1-0".to_string()]);
        assert!(list(&dir.join("app1-0")).is_empty());
        assert!(list(&dir.join("missing")).is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

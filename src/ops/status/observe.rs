//! What one host shows `status`, asked in one batch over the host's one SSH connection: one
//! command (the deployed files' sha256 and mode, the instance directories), the Docker Engine
//! API's container list, and every HTTP check its services answer from the host itself
//! (readiness, version, health, Traefik's and Prometheus' views), each a channel of that
//! connection. The database host also asks MongoDB (`hello` and the admin login, over its wire
//! protocol through a tunnel of its own, beside the batch); an instance refusing readiness is
//! asked again (re-sampled, see `probe`).

use std::collections::BTreeMap;

use crate::fleet::{Fleet, Host, Role};
use crate::ops::probe::{self, Container, Readiness};
use crate::ops::secrets::MongoLogin;
use crate::ops::wait::Poll;
use crate::remote::{self, Answer, Bundle, Connection, HttpResponse, Request};
use crate::render::{self, Artifact, INSTANCES_DIR, PROMETHEUS_TARGETS_PATH};

/// What one reachable host showed.
#[derive(Debug, Default)]
pub(super) struct Observed {
    pub error: Option<String>,
    pub containers: Vec<Container>,
    pub files_checked: usize,
    pub files_differing: Vec<String>,
    pub files_missing: Vec<String>,
    pub unit_dirs: Vec<String>,
    /// Instance name -> (ready or what was seen, version).
    pub instances: BTreeMap<String, (Poll<()>, Option<String>)>,
    /// Service name -> health.
    pub health: BTreeMap<String, Poll<String>>,
    /// Microservice container name -> its `/health`.
    pub microservices: BTreeMap<String, Poll<()>>,
    /// Prometheus' view of the microservices' targets (on the monitoring host).
    pub service_targets: Option<Poll<BTreeMap<String, String>>>,
    pub traefik_servers: Option<Poll<BTreeMap<String, String>>>,
    pub prometheus_targets: Option<Poll<BTreeMap<String, String>>>,
    /// Seconds since Prometheus' targets file was last written (on the monitoring host).
    pub targets_file_age: Option<u64>,
}

/// What each request of the host's batch asks.
enum Ask {
    /// The bundled command: file states, the instance directories, and on the monitoring
    /// host the age of Prometheus' targets file.
    Facts(Bundle, Vec<String>),
    Containers,
    Ready(usize),
    Version(usize),
    /// A microservice container's `/health`: its name, address and port.
    Microservice(String, String, u16),
    /// A service's health: its name, and where and what was asked (for messages).
    Health(&'static str, String, u16, &'static str),
    Traefik,
    Prometheus,
}

pub(super) fn observe(fleet: &Fleet, conn: &Connection, host: &Host, files: &[Artifact], login: Option<&MongoLogin>) -> Observed {
    let asks = asks(fleet, host, files);
    let requests: Vec<Request> = asks.iter().map(|(_, request)| request.clone()).collect();
    // MongoDB is asked through a tunnel of its own, beside the batch.
    let (answers, primary) = std::thread::scope(|scope| {
        let primary = host.has_role(Role::Database).then(|| scope.spawn(|| probe::mongo_primary(conn, fleet, login)));
        let answers = conn.batch(&requests);
        (answers, primary.map(|asked| asked.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))))
    });
    let mut seen = Observed::default();
    let mut first_readiness = Vec::new();
    for ((ask, _), answer) in asks.into_iter().zip(answers) {
        let response = || answer.as_ref().ok().cloned().and_then(Answer::response);
        match ask {
            Ask::Facts(bundle, paths) => facts(&mut seen, files, &bundle, &paths, answer),
            Ask::Containers => match answer.map_err(|e| e.to_string()).and_then(|a| containers(fleet, a)) {
                Ok(containers) => seen.containers = containers,
                Err(err) => fail(&mut seen, "containers", err),
            },
            Ask::Ready(index) => first_readiness.push(probe::readiness_in_answer(fleet, &host.instances[index], response())),
            Ask::Version(index) => {
                let version = response().and_then(|r| probe::version_in_metrics(&r.body));
                seen.instances.insert(host.instances[index].name.clone(), (Err(String::new()), version));
            }
            Ask::Microservice(name, address, port) => {
                seen.microservices.insert(name, probe::ok_in_answer(response(), &address, port, "/health"));
            }
            Ask::Health(service, address, port, path) => {
                let ok = probe::ok_in_answer(response(), &address, port, path).map(|()| "ok".to_string());
                seen.health.insert(service.to_string(), ok);
            }
            Ask::Traefik => {
                let servers = probe::traefik_servers_in_answer(fleet, response()).unwrap_or_else(|e| Err(format!("{}: {e}", host.name)));
                seen.traefik_servers = Some(servers);
            }
            Ask::Prometheus => {
                seen.prometheus_targets = Some(probe::prometheus_targets_in_answer(response(), "rocketchat"));
                if fleet.microservices.enabled {
                    seen.service_targets = Some(probe::prometheus_targets_in_answer(response(), "rocketchat-services"));
                }
            }
        }
    }
    let readiness = readiness(fleet, conn, host, first_readiness);
    for (instance, ready) in host.instances.iter().zip(readiness) {
        seen.instances.entry(instance.name.clone()).or_insert((Err(String::new()), None)).0 = ready;
    }
    if let Some(primary) = primary {
        let mongo = match (probe::running(&seen.containers, &render::database_unit(fleet).name, "mongodb"), primary) {
            (None, _) => Err("not running".to_string()),
            (Some(_), Ok(Ok(primary))) => Ok(format!("PRIMARY at {primary}")),
            (Some(_), Ok(Err(seen))) => Err(seen),
            (Some(_), Err(err)) => Err(err.to_string()),
        };
        seen.health.insert("mongodb".into(), mongo);
    }
    seen
}

/// The host's batch: what `status` needs from it, by its roles and units.
fn asks(fleet: &Fleet, host: &Host, files: &[Artifact]) -> Vec<(Ask, Request)> {
    let deploy_dir = render::deploy_dir(fleet);
    let paths: Vec<String> = files.iter().map(|f| format!("{deploy_dir}/{}", f.path)).collect();
    let mut bundle = Bundle::new()
        .part(remote::file_states_argv(&paths))
        .part(probe::directories_argv(&format!("{deploy_dir}/{INSTANCES_DIR}")));
    if host.has_role(Role::Monitoring) {
        bundle = bundle.part(file_age_argv(&format!("{deploy_dir}/{PROMETHEUS_TARGETS_PATH}")));
    }
    let mut asks = vec![
        (Ask::Facts(bundle.clone(), paths), Request::exec(bundle.argv("gathering the host's files"))),
        (Ask::Containers, probe::containers_request()),
    ];
    for (index, instance) in host.instances.iter().enumerate() {
        asks.push((Ask::Ready(index), probe::readiness_request(fleet, instance)));
        asks.push((Ask::Version(index), probe::metrics_request(instance)));
    }
    for container in crate::microservices::containers(fleet).into_iter().filter(|c| c.host == host.name) {
        let request = Request::get(&container.private_address, container.port, "/health");
        asks.push((Ask::Microservice(container.name, container.private_address, container.port), request));
    }
    let private = host.private_address.clone();
    let mut health = |service: &'static str, address: String, port: u16, path: &'static str| {
        let request = Request::get(&address, port, path);
        asks.push((Ask::Health(service, address, port, path), request));
    };
    if host.has_role(Role::Database) {
        health("nats", private.clone(), fleet.nats.monitor_port, "/healthz");
    }
    if host.has_role(Role::Monitoring) {
        health("prometheus", private.clone(), fleet.monitoring.prometheus_port, "/-/ready");
        health("grafana", private.clone(), fleet.monitoring.grafana_port, "/api/health");
    }
    if host.has_role(Role::Traefik) {
        health("traefik", "127.0.0.1".to_string(), fleet.traefik.api_port, "/ping");
        asks.push((Ask::Traefik, probe::traefik_request(fleet)));
    }
    if host.has_role(Role::Monitoring) {
        asks.push((Ask::Prometheus, probe::prometheus_request(fleet, host)));
    }
    asks
}

/// The bundled command's answer: which deployed files differ or are missing, which instance
/// directories exist.
fn facts(seen: &mut Observed, files: &[Artifact], bundle: &Bundle, paths: &[String], answer: crate::error::Result<Answer>) {
    let output = match answer.map(Answer::output) {
        Ok(Some(output)) => output,
        Ok(None) => return fail(seen, "files", "not a command's answer".to_string()),
        Err(err) => return fail(seen, "files", err.to_string()),
    };
    let mut parts = bundle.split(&output).into_iter();
    match parts.next().expect("the file states part").and_then(|o| part_succeeded(&o)) {
        Ok(text) => {
            seen.files_checked = files.len();
            for (file, state) in files.iter().zip(remote::file_states_in(paths, &text)) {
                match state {
                    None => seen.files_missing.push(file.path.clone()),
                    Some(state) if !state.holds(file.content.as_bytes(), file.mode) => seen.files_differing.push(file.path.clone()),
                    Some(_) => {}
                }
            }
        }
        Err(err) => fail(seen, "files", err),
    }
    match parts.next().expect("the directories part").and_then(|o| part_succeeded(&o)) {
        Ok(text) => seen.unit_dirs = probe::directories_in(&text),
        Err(err) => fail(seen, "files", err),
    }
    if let Some(age) = parts.next() {
        seen.targets_file_age = age.and_then(|o| part_succeeded(&o)).ok().and_then(|text| text.trim().parse().ok());
    }
}

/// Prints how many seconds ago `path` was last written.
fn file_age_argv(path: &str) -> remote::Argv {
    remote::Argv::script(r#"echo $(( $(date +%s) - $(stat -c %Y -- "$1") ))"#, &[path])
}

fn part_succeeded(output: &remote::Output) -> Result<String, String> {
    if output.success() {
        Ok(output.stdout_text())
    } else {
        Err(format!("exited with status {}: {}", output.status, output.stderr_text().trim()))
    }
}

fn containers(fleet: &Fleet, answer: Answer) -> Result<Vec<Container>, String> {
    let response: HttpResponse = answer.response().ok_or("not an HTTP answer")?;
    probe::containers_in_answer(fleet, &response)
}

/// Each instance's readiness, from the batch's sample and, for those refusing, fresh samples
/// asked of the host together.
fn readiness(fleet: &Fleet, conn: &Connection, host: &Host, first: Vec<Readiness>) -> Vec<Poll<()>> {
    let mut first = Some(first);
    probe::steady_readiness(host.instances.len(), |indices| {
        if let Some(first) = first.take() {
            return first;
        }
        let requests: Vec<Request> = indices.iter().map(|i| probe::readiness_request(fleet, &host.instances[*i])).collect();
        let answers = conn.batch(&requests);
        indices
            .iter()
            .zip(answers)
            .map(|(i, answer)| probe::readiness_in_answer(fleet, &host.instances[*i], answer.ok().and_then(Answer::response)))
            .collect()
    })
}

fn fail(seen: &mut Observed, what: &str, err: String) {
    let text = format!("{what}: {err}");
    match &mut seen.error {
        Some(existing) => existing.push_str(&format!("; {text}")),
        None => seen.error = Some(text),
    }
}

//! Docker on a host: the Engine API through a tunnel to `/var/run/docker.sock` (no Docker TCP
//! port is ever opened), Compose commands built as argument vectors for whichever Compose
//! the host has, and HTTP to services that listen on the host, through a TCP tunnel.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use bollard::{Docker, API_DEFAULT_VERSION};

use super::argv::Argv;
use super::connection::Connection;
use super::tunnel::{LocalEndpoint, Tunnel};
use crate::error::Result;

pub const DOCKER_SOCKET: &str = "/var/run/docker.sock";

/// Which Compose the host has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ComposeCli {
    /// The Compose v2 plugin, started from where the Docker CLI finds it (the path): the
    /// same program `docker compose` runs, started once instead of after the CLI's own start
    /// and a run of the plugin for its metadata.
    Plugin(String),
    /// `docker compose`: a v2 plugin the CLI finds elsewhere (e.g. `cliPluginsExtraDirs`).
    V2,
    /// The standalone `docker-compose` (v1).
    V1,
}

/// Finds the host's Compose and its version; prints `plugin VERSION PATH`, `v2 VERSION` or
/// `v1 VERSION`, or nothing when none works ([`compose_in`] reads it). Plugin folders in the
/// Docker CLI's order of preference: its config folder, then the system's
/// (`cli-plugins/manager` in docker/cli); the first one found is the one `docker compose` runs.
const COMPOSE_SCRIPT: &str = r#"
for d in "${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins" /usr/local/lib/docker/cli-plugins \
    /usr/local/libexec/docker/cli-plugins /usr/lib/docker/cli-plugins /usr/libexec/docker/cli-plugins; do
  if [ -x "$d/docker-compose" ]; then
    v=$("$d/docker-compose" version --short 2>/dev/null) && [ -n "$v" ] && { echo "plugin $v $d/docker-compose"; exit 0; }
    break
  fi
done
v=$(docker compose version --short 2>/dev/null) && [ -n "$v" ] && { echo "v2 $v"; exit 0; }
if command -v docker-compose >/dev/null 2>&1; then
  # Compose v1 is a Python program: asking its package for the version skips a slow start-up.
  py=$(sed -n '1s/^#! *//p' "$(command -v docker-compose)" 2>/dev/null)
  v=$($py -c 'import compose; print(compose.__version__)' 2>/dev/null || docker-compose version --short 2>/dev/null)
  [ -n "$v" ] && echo "v1 $v"
fi
exit 0
"#;

/// The command that finds the host's Compose, for [`compose_in`].
pub fn compose_argv() -> Argv {
    Argv::script(COMPOSE_SCRIPT, &[]).step("finding Docker Compose")
}

/// The Compose and its version in what [`compose_argv`] printed; `None`: no Compose works.
pub fn compose_in(output: &str) -> Option<(ComposeCli, String)> {
    let line = output.lines().next()?.trim();
    let (kind, rest) = line.split_once(' ')?;
    match kind {
        "plugin" => {
            let (version, path) = rest.split_once(' ')?;
            Some((ComposeCli::Plugin(path.to_string()), version.to_string()))
        }
        "v2" => Some((ComposeCli::V2, rest.to_string())),
        "v1" => Some((ComposeCli::V1, rest.to_string())),
        _ => None,
    }
}

/// A compose project on a host: its folder (holding `compose.yml`) and project name; builds
/// the commands rcfleet runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compose {
    cli: ComposeCli,
    dir: String,
    project: String,
}

/// Every unit's compose file has this name in its folder.
const COMPOSE_FILE: &str = "compose.yml";

impl Compose {
    /// The project in `dir`, described by `dir/compose.yml`.
    pub fn new(cli: ComposeCli, dir: &str, project: &str) -> Compose {
        Compose { cli, dir: dir.to_string(), project: project.to_string() }
    }

    fn command(&self) -> Argv {
        let program = match &self.cli {
            ComposeCli::Plugin(path) => Argv::new(path),
            ComposeCli::V2 => Argv::new("docker").arg("compose"),
            ComposeCli::V1 => Argv::new("docker-compose"),
        };
        program
            .arg("--project-directory")
            .arg(&self.dir)
            .arg("-p")
            .arg(&self.project)
            .arg("-f")
            .arg(format!("{}/{COMPOSE_FILE}", self.dir.trim_end_matches('/')))
    }

    /// Creates or updates the project's containers in the background; only `services` when given.
    pub fn up(&self, services: &[&str]) -> Argv {
        self.command().args(["up", "-d", "--remove-orphans"]).args(services.iter().copied())
    }

    /// Creates the project's containers without starting them (`up` then only starts them).
    pub fn create(&self) -> Argv {
        self.command().args(["up", "--no-start", "--remove-orphans"])
    }

    pub fn stop(&self, services: &[&str]) -> Argv {
        self.command().arg("stop").args(services.iter().copied())
    }

    /// Removes the project's containers and networks; volumes are kept.
    pub fn down(&self) -> Argv {
        self.command().args(["down", "--remove-orphans"])
    }
}

/// How long an HTTP request through a tunnel may take: the services asked (readiness, metrics,
/// Traefik's, Prometheus' and Grafana's APIs) answer in well under a second; a wait that polls
/// them asks again.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// A TCP tunnel to an HTTP service on the host, and a client for it.
pub struct HttpTunnel {
    tunnel: Tunnel,
    client: reqwest::Client,
    host: String,
    target: String,
    /// Set when a request got no answer in time: the tunnel's session may be wedged (a channel
    /// open that never completes was seen under load), so the run opens a fresh tunnel.
    timed_out: AtomicBool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    pub body: String,
}

impl HttpTunnel {
    /// The local URL of `path` (which starts with `/`) on the remote service.
    pub fn url(&self, path: &str) -> String {
        match self.tunnel.local() {
            LocalEndpoint::Tcp(addr) => format!("http://{addr}{path}"),
            LocalEndpoint::Unix(_) => unreachable!("HTTP tunnels listen on TCP"),
        }
    }

    pub async fn get(&self, path: &str) -> Result<HttpResponse> {
        self.send(path, self.client.get(self.url(path))).await
    }

    /// GET with HTTP basic authentication: the password travels only in the request's
    /// `Authorization` header, never in the URL (which error messages quote).
    pub async fn get_basic_auth(&self, path: &str, user: &str, password: &str) -> Result<HttpResponse> {
        self.send(path, self.client.get(self.url(path)).basic_auth(user, Some(password))).await
    }

    async fn send(&self, path: &str, request: reqwest::RequestBuilder) -> Result<HttpResponse> {
        let fail = |what: String| {
            let cause = self.tunnel.last_error().map(|e| format!(" ({e})")).unwrap_or_default();
            crate::error::Error::failed(format!(
                "{}: GET http://{}{path}: {what}{cause}; check that the service is running and listens there",
                self.host, self.target
            ))
        };
        let response = request.send().await.map_err(|e| {
            if e.is_timeout() {
                self.timed_out.store(true, Ordering::Relaxed);
            }
            fail(e.to_string())
        })?;
        let status = response.status().as_u16();
        let body = response.text().await.map_err(|e| fail(e.to_string()))?;
        Ok(HttpResponse { status, body })
    }

    /// Whether a request through this tunnel timed out (see `timed_out`).
    pub fn timed_out(&self) -> bool {
        self.timed_out.load(Ordering::Relaxed)
    }

    /// GET and parse JSON; a status other than 2xx is an error quoting the body's start.
    pub async fn get_json<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T> {
        let response = self.get(path).await?;
        let fail = |what: String| {
            crate::error::Error::failed(format!("{}: GET http://{}{path}: {what}", self.host, self.target))
        };
        if !(200..300).contains(&response.status) {
            let start: String = response.body.chars().take(200).collect();
            return Err(fail(format!("status {}: {start}", response.status)));
        }
        serde_json::from_str(&response.body).map_err(|e| fail(format!("the answer is not the expected JSON: {e}")))
    }
}

impl Connection {
    /// Which Compose the host has, asked once per connection (or told by preflight).
    pub fn compose_cli(&self) -> Result<ComposeCli> {
        if let Some(cli) = self.compose.get() {
            return Ok(cli.clone());
        }
        let Some((cli, _)) = compose_in(&self.run(&compose_argv())?.stdout_text()) else {
            return Err(self.fail(
                "neither `docker compose` nor `docker-compose` works on this host; install the Docker Compose plugin",
            ));
        };
        Ok(self.compose.get_or_init(|| cli).clone())
    }

    /// Remembers which Compose the host has, found by [`compose_argv`] in a batch of the caller's.
    pub fn knows_compose(&self, cli: ComposeCli) {
        let _ = self.compose.set(cli);
    }

    /// A Compose command builder for a project on this host.
    pub fn compose(&self, dir: &str, project: &str) -> Result<Compose> {
        Ok(Compose::new(self.compose_cli()?, dir, project))
    }

    /// The host's Docker Engine API, through a tunnel to its socket that lives as long as this
    /// connection; the API version is negotiated down to what the daemon speaks. The first
    /// call opens the tunnel's SSH session, which blocks for the length of a handshake.
    pub async fn docker(&self) -> Result<Docker> {
        if let Some((_, docker)) = self.docker.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            return Ok(docker.clone());
        }
        let tunnel = self.forward_unix(DOCKER_SOCKET)?;
        let path = tunnel.local().path().expect("a Unix tunnel").to_string_lossy().into_owned();
        let fail = |what: String| {
            let cause = tunnel.last_error().map(|e| format!(" ({e})")).unwrap_or_default();
            self.fail(format!(
                "Docker Engine API through {DOCKER_SOCKET}: {what}{cause}; check that dockerd runs on the host \
                 and that the SSH user may open its socket (root or the docker group)"
            ))
        };
        let docker =
            Docker::connect_with_socket(&path, 120, API_DEFAULT_VERSION).map_err(|e| fail(e.to_string()))?;
        let docker = docker.negotiate_version().await.map_err(|e| fail(format!("version negotiation failed: {e}")))?;
        let mut slot = self.docker.lock().unwrap_or_else(|p| p.into_inner());
        Ok(slot.get_or_insert((tunnel, docker)).1.clone())
    }

    /// An HTTP client for a service on the host at `host:port` as the host sees it, e.g.
    /// Traefik's API on `127.0.0.1:8080`, through a tunnel that lives as long as the result.
    pub fn http(&self, host: &str, port: u16) -> Result<HttpTunnel> {
        let tunnel = self.forward_tcp(host, port)?;
        let client = tunnel_client().map_err(|e| self.fail(format!("cannot build an HTTP client: {e}")))?;
        Ok(HttpTunnel { tunnel, client, host: self.name().to_string(), target: format!("{host}:{port}"), timed_out: AtomicBool::new(false) })
    }
}

/// The one HTTP client of every tunnel (plain HTTP to a local endpoint; its pool keeps a
/// connection per tunnel). Building a client loads the system's CA certificates for TLS
/// (native-tls), about 0.1 s of CPU each time: a client per tunnel was most of the CPU a
/// converged `up` spent (measured with `perf`).
fn tunnel_client() -> std::result::Result<reqwest::Client, reqwest::Error> {
    static CLIENT: Mutex<Option<reqwest::Client>> = Mutex::new(None);
    let mut client = CLIENT.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(client) = client.as_ref() {
        return Ok(client.clone());
    }
    let built = reqwest::Client::builder().no_proxy().timeout(HTTP_TIMEOUT).build()?;
    Ok(client.insert(built).clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compose_commands_for_both_clis() {
        let v2 = Compose::new(ComposeCli::V2, "/opt/rcfleet/app1-0", "chat-app1-0");
        assert_eq!(
            v2.up(&["rocketchat"]).to_command_line(),
            "docker compose --project-directory /opt/rcfleet/app1-0 -p chat-app1-0 -f /opt/rcfleet/app1-0/compose.yml \
             up -d --remove-orphans rocketchat"
        );
        let v1 = Compose::new(ComposeCli::V1, "/srv/my dir/", "p");
        assert_eq!(
            v1.down().to_command_line(),
            "docker-compose --project-directory '/srv/my dir/' -p p -f '/srv/my dir/compose.yml' down --remove-orphans"
        );
        let plugin = Compose::new(ComposeCli::Plugin("/usr/lib/docker/cli-plugins/docker-compose".into()), "/d", "p");
        assert_eq!(
            plugin.stop(&[]).to_command_line(),
            "/usr/lib/docker/cli-plugins/docker-compose --project-directory /d -p p -f /d/compose.yml stop"
        );
    }

    #[test]
    fn the_compose_finder_says_which_and_what_version() {
        let path = "/home/deploy/.docker/cli-plugins/docker-compose";
        assert_eq!(compose_in(&format!("plugin 2.40.3 {path}\n")), Some((ComposeCli::Plugin(path.into()), "2.40.3".into())));
        assert_eq!(compose_in("v2 2.29.1\n"), Some((ComposeCli::V2, "2.29.1".into())));
        assert_eq!(compose_in("v1 1.29.2\n"), Some((ComposeCli::V1, "1.29.2".into())));
        assert_eq!(compose_in(""), None);
    }

    #[test]
    fn the_compose_finder_runs_under_sh() {
        // Whatever this machine has (or not), the script ends well and says something readable.
        let script = compose_argv().to_command_line();
        let ran = std::process::Command::new("/bin/sh").arg("-c").arg(script).env("HOME", "/nonexistent").output().unwrap();
        assert!(ran.status.success(), "{ran:?}");
        let said = String::from_utf8_lossy(&ran.stdout);
        assert!(said.is_empty() || compose_in(&said).is_some(), "{said}");
    }
}

//! `exec`: runs a command in an instance's or a service's container (`docker exec` on its
//! host, over SSH), or on a host itself, with its output streamed back as it comes and its exit
//! status passed through. `--all` runs it in every instance, one host after another, each line
//! prefixed by the instance's name as `logs` does. Every run is written to the host's audit
//! trail first: the command, never its output.

use std::io::Write;
use std::path::Path;

use super::audit;
use super::hosts::Hosts;
use super::logs::locate;
use super::probe;
use super::report::Reporter;
use crate::error::{Error, Result};
use crate::fleet::{Fleet, Host};
use crate::inventory;
use crate::remote::{self, shell_quote, Argv, ConnectOptions, Connection, Stream};

/// Where the command runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// An instance (`app1-0`) or a service (`mongodb`, `nats`, ...): in its running container.
    Container(String),
    /// On the host itself, outside any container.
    Host(String),
    /// In every instance's container, one host after another.
    AllInstances,
}

pub struct ExecOptions {
    pub connect: ConnectOptions,
    pub target: Target,
    /// The command and its arguments, passed on without a shell in between.
    pub command: Vec<String>,
    /// Forward this process's standard input to the command.
    pub stdin: bool,
}

/// Where one run of the command goes: the host, what to call it in prefixes and the audit
/// trail, and the container (`None` on the host itself).
struct Place<'f> {
    host: &'f Host,
    name: String,
    unit_service: Option<(String, String)>,
}

fn places<'f>(fleet: &'f Fleet, target: &Target) -> Result<Vec<Place<'f>>> {
    match target {
        Target::Container(name) => {
            let (host, unit, service) = locate(fleet, name)?;
            Ok(vec![Place { host, name: name.clone(), unit_service: Some((unit, service)) }])
        }
        Target::Host(name) => {
            let host = fleet.host(name).ok_or_else(|| {
                let names: Vec<&str> = fleet.hosts.iter().map(|h| h.name.as_str()).collect();
                Error::bad_input(format!("--host {name:?} is not a host of the inventory ({})", names.join(", ")))
            })?;
            Ok(vec![Place { host, name: name.clone(), unit_service: None }])
        }
        Target::AllInstances => {
            let places: Vec<Place> = fleet
                .instances()
                .map(|instance| Place {
                    host: fleet.host(&instance.host).expect("instances belong to hosts"),
                    name: instance.name.clone(),
                    unit_service: Some((instance.name.clone(), "rocketchat".to_string())),
                })
                .collect();
            if places.is_empty() {
                return Err(Error::bad_input("--all: the inventory has no Rocket.Chat instance"));
            }
            Ok(places)
        }
    }
}

/// The command as it is written to the audit trail and shown in messages.
pub fn command_line(command: &[String]) -> String {
    command.iter().map(|arg| shell_quote(arg)).collect::<Vec<_>>().join(" ")
}

/// `docker exec` of `command` in `container`; `-i` keeps its standard input open for `--stdin`.
fn docker_exec(container: &str, command: &[String], stdin: bool) -> Argv {
    let mut argv = Argv::new("docker").arg("exec");
    if stdin {
        argv = argv.arg("-i");
    }
    argv.arg(container).args(command.iter().cloned())
}

/// Runs the command and returns its exit status (with `--all`, the first non-zero one).
/// Output goes to `out`/`err` as it arrives: untouched for one target, each line prefixed by
/// the instance's name with `--all`.
pub fn exec(inventory_path: &Path, options: &ExecOptions, out: &mut (dyn Write + Send), err: &mut (dyn Write + Send)) -> Result<i32> {
    if options.command.is_empty() {
        return Err(Error::bad_input("no command given: write it after `--`, e.g. `rcfleet exec app1-0 -- printenv PORT`"));
    }
    let fleet = inventory::load(inventory_path)?;
    let places = places(&fleet, &options.target)?;
    let mut hosts: Vec<&Host> = places.iter().map(|p| p.host).collect();
    hosts.dedup_by(|a, b| a.name == b.name);
    let remote = Hosts::connect(&hosts, &options.connect, &Reporter::silent())?;
    let prefixed = options.target == Target::AllInstances;
    let command = command_line(&options.command);
    let mut failed: Vec<(String, i32)> = Vec::new();
    for place in &places {
        let conn = remote.host(&place.host.name);
        let argv = match &place.unit_service {
            None => Argv::new(options.command[0].clone()).args(options.command[1..].iter().cloned()),
            Some((unit, service)) => {
                let containers = probe::containers(&fleet, conn)?;
                let Some(container) = probe::running(&containers, unit, service) else {
                    let missing = format!(
                        "{}: {} has no running container (`rcfleet status` shows what runs; `rcfleet up` starts it)",
                        place.host.name, place.name
                    );
                    if !prefixed {
                        return Err(Error::failed(missing));
                    }
                    // With --all, one instance down does not keep the command from the others.
                    let _ = writeln!(err, "{} | rcfleet: {missing}", place.name);
                    failed.push((place.name.clone(), crate::error::exit::FAILED));
                    continue;
                };
                docker_exec(&container.id, &options.command, options.stdin)
            }
        };
        let location = match place.unit_service {
            Some(_) => format!("in {}", place.name),
            None => "on the host".to_string(),
        };
        audit::record(conn, &fleet, "rcfleet exec", &[format!("exec {location}: {command}")])?;
        let status = run_streamed(conn, &argv, options.stdin, prefixed.then_some(place.name.as_str()), out, err)?;
        if status != 0 {
            failed.push((place.name.clone(), status));
        }
    }
    if prefixed && !failed.is_empty() {
        let list: Vec<String> = failed.iter().map(|(name, status)| format!("{name} (status {status})")).collect();
        let _ = writeln!(err, "rcfleet: the command failed in {} of {} instances: {}", failed.len(), places.len(), list.join(", "));
    }
    Ok(failed.first().map_or(0, |(_, status)| *status))
}

fn run_streamed(
    conn: &Connection,
    argv: &Argv,
    stdin: bool,
    prefix: Option<&str>,
    out: &mut (dyn Write + Send),
    err: &mut (dyn Write + Send),
) -> Result<i32> {
    let mut lines_out = Lines::new(prefix);
    let mut lines_err = Lines::new(prefix);
    let mut write_error: Option<std::io::Error> = None;
    let status = {
        let mut forward = |stream: Stream, data: &[u8]| {
            let (lines, sink): (&mut Lines, &mut dyn Write) = match stream {
                Stream::Stdout => (&mut lines_out, &mut *out),
                Stream::Stderr => (&mut lines_err, &mut *err),
            };
            if let Err(e) = lines.write(sink, data) {
                write_error.get_or_insert(e);
            }
        };
        let mut input = std::io::stdin();
        let options = remote::ExecOptions {
            stdin: if stdin { Some(&mut input) } else { None },
            output: Some(&mut forward),
            ..Default::default()
        };
        conn.exec(argv, options)?.status
    };
    let finished = lines_out.finish(out).and_then(|()| lines_err.finish(err));
    if let Some(e) = write_error.or(finished.err()) {
        return Err(Error::failed(format!("cannot write the command's output: {e}")));
    }
    Ok(status)
}

/// Passes output on: untouched without a prefix, else complete lines as `prefix | line`.
struct Lines<'p> {
    prefix: Option<&'p str>,
    partial: Vec<u8>,
}

impl<'p> Lines<'p> {
    fn new(prefix: Option<&'p str>) -> Lines<'p> {
        Lines { prefix, partial: Vec::new() }
    }

    fn write(&mut self, sink: &mut dyn Write, data: &[u8]) -> std::io::Result<()> {
        let Some(prefix) = self.prefix else {
            sink.write_all(data)?;
            return sink.flush();
        };
        self.partial.extend_from_slice(data);
        while let Some(end) = self.partial.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=end).collect();
            write!(sink, "{prefix} | ")?;
            sink.write_all(&line)?;
        }
        sink.flush()
    }

    fn finish(self, sink: &mut dyn Write) -> std::io::Result<()> {
        match self.prefix {
            Some(prefix) if !self.partial.is_empty() => {
                write!(sink, "{prefix} | ")?;
                sink.write_all(&self.partial)?;
                writeln!(sink)
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fleet() -> Fleet {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/three-app-hosts.toml")).unwrap();
        inventory::parse(&text, Path::new("three-app-hosts.toml")).unwrap()
    }

    #[test]
    fn targets_become_places() {
        let fleet = fleet();
        let one = places(&fleet, &Target::Container("app2-1".into())).unwrap();
        assert_eq!((one[0].host.name.as_str(), one[0].unit_service.clone()), ("app2", Some(("app2-1".into(), "rocketchat".into()))));
        let host = places(&fleet, &Target::Host("db".into())).unwrap();
        assert_eq!((host[0].host.name.as_str(), host[0].unit_service.clone()), ("db", None));
        let all = places(&fleet, &Target::AllInstances).unwrap();
        assert_eq!(all.len(), fleet.instances().count());
        assert!(all.windows(2).all(|w| w[0].host.name <= w[1].host.name), "one host after another");
        let unknown = places(&fleet, &Target::Host("nope".into())).err().unwrap();
        assert!(unknown.to_string().starts_with("--host \"nope\" is not a host of the inventory (db,"), "{unknown}");
        assert_eq!(unknown.exit_code(), 2);
    }

    #[test]
    fn commands_are_passed_without_a_shell() {
        let command: Vec<String> = ["sh", "-c", "echo $PORT; exit 3"].map(String::from).to_vec();
        assert_eq!(docker_exec("c0ffee", &command, false).to_command_line(), "docker exec c0ffee sh -c 'echo $PORT; exit 3'");
        assert_eq!(docker_exec("c0ffee", &command[..1], true).to_command_line(), "docker exec -i c0ffee sh");
        assert_eq!(command_line(&command), "sh -c 'echo $PORT; exit 3'");
    }

    #[test]
    fn lines_are_prefixed_only_with_all() {
        let mut plain = Vec::new();
        let mut lines = Lines::new(None);
        lines.write(&mut plain, b"ab").unwrap();
        lines.write(&mut plain, b"c\nd").unwrap();
        lines.finish(&mut plain).unwrap();
        assert_eq!(plain, b"abc\nd");
        let mut prefixed = Vec::new();
        let mut lines = Lines::new(Some("app1-0"));
        lines.write(&mut prefixed, b"ab").unwrap();
        lines.write(&mut prefixed, b"c\nd").unwrap();
        lines.finish(&mut prefixed).unwrap();
        assert_eq!(String::from_utf8(prefixed).unwrap(), "app1-0 | abc\napp1-0 | d\n");
    }
}

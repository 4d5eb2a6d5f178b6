//! What an operation tells the person running it: one line per step and host on stderr
//! (stdout stays free for the result, e.g. `--json`), the same lines in a local run log, and a
//! waiting line that shows progress while rcfleet waits for something. Messages never carry
//! secret values: callers pass names and facts only.

use std::fs::File;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

pub struct Reporter {
    started: Instant,
    log: Mutex<Option<File>>,
    log_path: Option<PathBuf>,
    interactive: bool,
    /// The last waiting message logged: waits poll often, the log keeps each change once.
    last_waiting: Mutex<String>,
    /// Prints nothing: for `exec`, whose stdout and stderr are the command's own.
    silent: bool,
}

impl Reporter {
    /// Starts a report for `command`, logging to `<inventory folder>/.rcfleet/logs/`.
    pub fn new(inventory: &Path, command: &str) -> Reporter {
        let folder = inventory.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let stamp = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string().replace(':', "");
        let log_path = folder.join(".rcfleet").join("logs").join(format!("{stamp}-{command}.log"));
        let log = std::fs::create_dir_all(log_path.parent().expect("has a parent")).and_then(|_| File::create(&log_path)).ok();
        Reporter {
            started: Instant::now(),
            log_path: log.as_ref().map(|_| log_path),
            log: Mutex::new(log),
            interactive: std::io::stderr().is_terminal(),
            last_waiting: Mutex::new(String::new()),
            silent: false,
        }
    }

    /// A reporter that only prints (tests, commands without a run log).
    pub fn quiet_log() -> Reporter {
        Reporter {
            started: Instant::now(),
            log: Mutex::new(None),
            log_path: None,
            interactive: false,
            last_waiting: Mutex::new(String::new()),
            silent: false,
        }
    }

    /// A reporter that neither prints nor logs.
    pub fn silent() -> Reporter {
        Reporter { silent: true, ..Reporter::quiet_log() }
    }

    pub fn log_path(&self) -> Option<&Path> {
        self.log_path.as_deref()
    }

    pub fn elapsed_seconds(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// `[  1.2s] step        host: message`
    pub fn step(&self, step: &str, host: &str, message: impl AsRef<str>) {
        let subject = if host.is_empty() { String::new() } else { format!("{host}: ") };
        self.line(&format!("[{:>6.1}s] {step:<11} {subject}{}", self.elapsed_seconds(), message.as_ref()));
    }

    /// Something the operator must not miss: a step line marked `WARNING`.
    pub fn warn(&self, message: impl AsRef<str>) {
        self.step("WARNING", "", message);
    }

    /// A line shown while waiting; on a terminal it is rewritten in place, elsewhere only logged.
    pub fn waiting(&self, step: &str, message: impl AsRef<str>) {
        let text = format!("[{:>6.1}s] {step:<11} {} ...", self.elapsed_seconds(), message.as_ref());
        if self.interactive {
            eprint!("\r\x1b[2K{text}");
            let _ = std::io::stderr().flush();
        }
        let mut last = self.last_waiting.lock().unwrap_or_else(|p| p.into_inner());
        if *last != message.as_ref() {
            *last = message.as_ref().to_string();
            self.write_log(&text);
        }
    }

    fn line(&self, text: &str) {
        if self.silent {
            return;
        }
        if self.interactive {
            eprint!("\r\x1b[2K");
        }
        eprintln!("{text}");
        self.write_log(text);
    }

    fn write_log(&self, text: &str) {
        if let Some(file) = self.log.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
            let _ = writeln!(file, "{text}");
        }
    }
}

/// What a command hands back when it is done: text for people, or with `--json` a document
/// for scripts. `cli` prints it; the operation decides its content.
pub trait Outcome {
    fn to_text(&self) -> String;
    fn to_json(&self) -> serde_json::Value;
}

/// Every instance with its address and what Traefik and Prometheus say of it, as a table.
pub fn instances_table(
    fleet: &crate::fleet::Fleet,
    traefik: &std::collections::BTreeMap<String, String>,
    prometheus: &std::collections::BTreeMap<String, String>,
) -> String {
    let mut out = format!("{:<10}  {:<26}  {:<7}  {:<10}\n", "INSTANCE", "ADDRESS", "TRAEFIK", "PROMETHEUS");
    for instance in fleet.instances() {
        let in_traefik = traefik.get(&instance.url()).map(String::as_str).unwrap_or("absent");
        let scraped = prometheus.get(&instance.metrics_target()).map(String::as_str).unwrap_or("-");
        out.push_str(&format!("{:<10}  {:<26}  {in_traefik:<7}  {scraped}\n", instance.name, instance.url()));
    }
    out
}

/// Every instance with what Traefik and Prometheus say of it, for `--json` results.
pub fn instances_json(
    fleet: &crate::fleet::Fleet,
    traefik: &std::collections::BTreeMap<String, String>,
    prometheus: &std::collections::BTreeMap<String, String>,
) -> Vec<serde_json::Value> {
    fleet
        .instances()
        .map(|i| {
            serde_json::json!({
                "name": i.name,
                "host": i.host,
                "url": i.url(),
                "traefik": traefik.get(&i.url()),
                "prometheus": prometheus.get(&i.metrics_target()),
            })
        })
        .collect()
}

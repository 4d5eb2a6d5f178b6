//! What an operation tells the person running it: one line per step and host on stderr
//! (stdout stays free for the result, e.g. `--json`), the same lines in a local run log, and
//! progress while rcfleet waits for something. On a terminal every wait (an image pull on a
//! host, an instance becoming ready, a drain, a batch) gets a live bar with its elapsed time,
//! drawn below the step lines; elsewhere, or with `--quiet`/`--json`/`-v`, waits are plain
//! timestamped lines, repeated at most every few seconds. Messages never carry secret values:
//! callers pass names and facts only.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Set by the command line for `--quiet`, `--json` and `-v`: plain lines even on a terminal.
static PLAIN: AtomicBool = AtomicBool::new(false);

/// Asks every reporter made from now on for plain lines instead of progress bars.
pub fn prefer_plain_lines() {
    PLAIN.store(true, Ordering::Relaxed);
}

/// How often a wait is repeated as a plain line while it lasts.
const PLAIN_REPEAT: Duration = Duration::from_secs(10);

/// The live display on a terminal: one spinner per thing being waited for.
struct Bars {
    multi: MultiProgress,
    /// By (step, subject): the wait's bar.
    waits: Mutex<BTreeMap<(String, String), ProgressBar>>,
}

impl Bars {
    fn new() -> Bars {
        Bars { multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()), waits: Mutex::new(BTreeMap::new()) }
    }

    fn show(&self, step: &str, subject: String, message: &str) {
        let mut waits = self.waits.lock().unwrap_or_else(|p| p.into_inner());
        let bar = waits.entry((step.to_string(), subject)).or_insert_with(|| {
            let bar = self.multi.add(ProgressBar::new_spinner());
            let style = ProgressStyle::with_template("{spinner:.cyan} [{elapsed:>4}] {prefix:<11} {wide_msg}")
                .expect("a valid template")
                .tick_chars("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏ ");
            bar.set_style(style);
            bar.set_prefix(step.to_string());
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        bar.set_message(message.to_string());
    }

    /// A step line above the bars; the bars of waits it concludes are removed.
    fn line(&self, step: &str, subjects: &[&str], text: &str) {
        let mut waits = self.waits.lock().unwrap_or_else(|p| p.into_inner());
        waits.retain(|(bar_step, subject), bar| {
            let done = bar_step == step && subjects.contains(&subject.as_str());
            if done {
                bar.finish_and_clear();
                self.multi.remove(bar);
            }
            !done
        });
        if self.multi.println(text).is_err() {
            eprintln!("{text}");
        }
    }

    fn clear(&self) {
        let mut waits = self.waits.lock().unwrap_or_else(|p| p.into_inner());
        for bar in waits.values() {
            bar.finish_and_clear();
        }
        waits.clear();
        let _ = self.multi.clear();
    }
}

/// Who a wait is about: the first word of its message (`app1: pulling ...` is host app1,
/// `app1-0 ready on /api/info (3s, ...)` is instance app1-0).
fn subject(message: &str) -> String {
    message.split_whitespace().next().unwrap_or_default().trim_end_matches([':', ',']).to_string()
}

pub struct Reporter {
    started: Instant,
    log: Mutex<Option<File>>,
    log_path: Option<PathBuf>,
    /// `Some` on a terminal: live bars for waits.
    bars: Option<Bars>,
    /// By (step, subject): the last waiting message logged and when it was last printed as a
    /// plain line. Waits poll often; the log keeps each change once.
    last_waiting: Mutex<BTreeMap<(String, String), (String, Instant)>>,
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
        let terminal = std::io::stderr().is_terminal() && std::env::var("TERM").map_or(true, |term| term != "dumb");
        Reporter {
            started: Instant::now(),
            log_path: log.as_ref().map(|_| log_path),
            log: Mutex::new(log),
            bars: (terminal && !PLAIN.load(Ordering::Relaxed)).then(Bars::new),
            last_waiting: Mutex::new(BTreeMap::new()),
            silent: false,
        }
    }

    /// A reporter that only prints (tests, commands without a run log).
    pub fn quiet_log() -> Reporter {
        Reporter {
            started: Instant::now(),
            log: Mutex::new(None),
            log_path: None,
            bars: None,
            last_waiting: Mutex::new(BTreeMap::new()),
            silent: false,
        }
    }

    /// A reporter that neither prints nor logs.
    pub fn silent() -> Reporter {
        let mut reporter = Reporter::quiet_log();
        reporter.silent = true;
        reporter
    }

    pub fn log_path(&self) -> Option<&Path> {
        self.log_path.as_deref()
    }

    /// When the run started (the report was made).
    pub fn started(&self) -> Instant {
        self.started
    }

    pub fn elapsed_seconds(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// `[  1.2s] step        host: message`
    pub fn step(&self, step: &str, host: &str, message: impl AsRef<str>) {
        if self.silent {
            return;
        }
        let message = message.as_ref();
        let about = if host.is_empty() { String::new() } else { format!("{host}: ") };
        let text = format!("[{:>6.1}s] {step:<11} {about}{message}", self.elapsed_seconds());
        match &self.bars {
            Some(bars) => bars.line(step, &[host, &subject(message)], &text),
            None => eprintln!("{text}"),
        }
        self.write_log(&text);
    }

    /// Something the operator must not miss: a step line marked `WARNING`.
    pub fn warn(&self, message: impl AsRef<str>) {
        self.step("WARNING", "", message);
    }

    /// Progress while waiting: a live bar on a terminal; elsewhere a plain line when the wait
    /// is new and then every few seconds. The log keeps every change of message.
    pub fn waiting(&self, step: &str, message: impl AsRef<str>) {
        if self.silent {
            return;
        }
        let message = message.as_ref();
        let text = format!("[{:>6.1}s] {step:<11} {message} ...", self.elapsed_seconds());
        if let Some(bars) = &self.bars {
            bars.show(step, subject(message), message);
        }
        let mut last = self.last_waiting.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        match last.get_mut(&(step.to_string(), subject(message))) {
            Some((seen, printed)) => {
                if self.bars.is_none() && now.duration_since(*printed) >= PLAIN_REPEAT {
                    eprintln!("{text}");
                    *printed = now;
                }
                if seen != message {
                    *seen = message.to_string();
                    self.write_log(&text);
                }
            }
            None => {
                if self.bars.is_none() {
                    eprintln!("{text}");
                }
                last.insert((step.to_string(), subject(message)), (message.to_string(), now));
                self.write_log(&text);
            }
        }
    }

    /// A line for the run log only: how a run went about something, which the operator's
    /// screen does not need.
    pub fn note(&self, step: &str, message: impl AsRef<str>) {
        if !self.silent {
            self.write_log(&format!("[{:>6.1}s] {step:<11} {}", self.elapsed_seconds(), message.as_ref()));
        }
    }

    /// How long one phase took since `started`, in the run log only: where a run's time goes,
    /// to the millisecond, without more lines on the operator's screen.
    pub fn phase_time(&self, phase: &str, started: Instant) {
        if self.silent {
            return;
        }
        let took = started.elapsed().as_secs_f64();
        self.write_log(&format!("[{:>6.1}s] {:<11} {phase}: {took:.3} s", self.elapsed_seconds(), "time"));
    }

    fn write_log(&self, text: &str) {
        if let Some(file) = self.log.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
            let _ = writeln!(file, "{text}");
        }
    }
}

impl Drop for Reporter {
    /// Bars of waits nobody concluded (an error, an interrupt) leave the screen with the report.
    fn drop(&mut self) {
        if let Some(bars) = &self.bars {
            bars.clear();
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

#[cfg(test)]
mod tests {
    use super::subject;

    #[test]
    fn a_wait_is_about_the_host_or_instance_its_message_starts_with() {
        assert_eq!(subject("app1: pulling docker.io/nats:2.11-alpine"), "app1");
        assert_eq!(subject("app1-0 ready on /api/info (3s, connection refused)"), "app1-0");
        assert_eq!(subject("app1-0, app2-1 out of Traefik, 4s left"), "app1-0");
        assert_eq!(subject(""), "");
    }
}

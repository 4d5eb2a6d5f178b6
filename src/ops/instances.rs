//! What `add-instance` and `remove-instance` share: their outcome, how an edited inventory's
//! problems are told, and the drain that lets requests in flight finish (the rollout's too).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::report::{Outcome, Reporter};
use crate::error::Error;
use crate::fleet::{Fleet, Instance};

/// What `add-instance` or `remove-instance` did.
pub struct InstanceChange {
    /// The fleet as it is now (the inventory as written).
    pub fleet: Fleet,
    /// `added` or `removed`.
    pub verb: &'static str,
    /// The instances added or removed.
    pub instances: Vec<Instance>,
    pub traefik_servers: BTreeMap<String, String>,
    pub prometheus_targets: BTreeMap<String, String>,
    pub inventory: PathBuf,
    pub seconds: f64,
    pub log: Option<PathBuf>,
}

/// The edited inventory's problems, introduced as such: their line numbers are those of the
/// text rcfleet would have written, which was not written.
pub fn edited_is_invalid(err: Error, what: &str) -> Error {
    match err {
        Error::BadInput(problems) => {
            let mut lines = vec![format!(
                "{what} would make the inventory invalid, so nothing was changed (places are in the edited text):"
            )];
            lines.extend(problems);
            Error::BadInput(lines)
        }
        other => other,
    }
}

/// Requests already sent to the instances get this long to finish.
pub fn drain(report: &Reporter, time: Duration, names: &[&str]) {
    let started = Instant::now();
    while started.elapsed() < time {
        let left = time.saturating_sub(started.elapsed());
        report.waiting("drain", format!("{} out of Traefik, {}s left for requests in flight", names.join(", "), left.as_secs()));
        std::thread::sleep(left.min(Duration::from_millis(500)));
    }
    report.step("drain", "", format!("{} drained ({} s)", names.join(", "), time.as_secs()));
}

impl Outcome for InstanceChange {
    fn to_text(&self) -> String {
        let fleet = &self.fleet;
        let names: Vec<&str> = self.instances.iter().map(|i| i.name.as_str()).collect();
        let mut out = format!(
            "\n{} {} (release {}): {} instances on {} hosts serve {}, in {:.1} s.\nInventory updated: {}\n\n",
            capitalised(self.verb),
            names.join(", "),
            fleet.workspace.release,
            fleet.instances().count(),
            fleet.hosts.iter().filter(|h| !h.instances.is_empty()).count(),
            fleet.workspace.root_url,
            self.seconds,
            self.inventory.display(),
        );
        out.push_str(&super::report::instances_table(fleet, &self.traefik_servers, &self.prometheus_targets));
        if let Some(log) = &self.log {
            out.push_str(&format!("\nRun log: {}\n", log.display()));
        }
        out
    }

    fn to_json(&self) -> Value {
        let fleet = &self.fleet;
        let mut document = json!({
            "workspace": fleet.workspace.name,
            "release": fleet.workspace.release.to_string(),
            "inventory": self.inventory.display().to_string(),
            "seconds": self.seconds,
            "instances": super::report::instances_json(fleet, &self.traefik_servers, &self.prometheus_targets),
        });
        document[self.verb] = json!(self.instances.iter().map(|i| &i.name).collect::<Vec<_>>());
        document
    }
}

fn capitalised(word: &str) -> String {
    let mut chars = word.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

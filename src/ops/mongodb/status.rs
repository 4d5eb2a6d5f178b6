//! `rcfleet mongodb status`: the version and feature compatibility version MongoDB runs,
//! its replica-set members and their state, the oplog window, the workspace database's size
//! and the newest backup. Exits 3 when the replica set is not healthy or the FCV lags.

use std::path::Path;

use serde_json::{json, Value};

use super::facts::{self, Facts};
use crate::error::Result;
use crate::inventory;
use crate::ops::backup::{self, Archive};
use crate::ops::hosts::Hosts;
use crate::ops::report::Outcome;
use crate::ops::secrets;
use crate::remote::ConnectOptions;

pub struct MongoStatus {
    pub host: String,
    /// What the inventory says (`mongodb.version`).
    pub inventory_version: String,
    pub facts: Facts,
    pub last_backup: Option<Archive>,
}

impl MongoStatus {
    /// What is wrong, if anything: an unhealthy replica set, an FCV behind the binary (an
    /// unfinished upgrade), a version other than the inventory's.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if let Some(unhealthy) = self.facts.unhealthy() {
            problems.push(format!("replica set: {unhealthy}"));
        }
        if self.facts.fcv != self.facts.series() {
            problems.push(format!(
                "feature compatibility version {} is behind the server's {} (an unfinished `rcfleet mongodb upgrade`: run it again)",
                self.facts.fcv,
                self.facts.series()
            ));
        }
        if self.inventory_version != self.facts.series() {
            problems.push(format!("the inventory says mongodb.version = \"{}\", the server runs {}", self.inventory_version, self.facts.series()));
        }
        problems
    }
}

pub fn status(inventory_path: &Path, connect: &ConnectOptions) -> Result<MongoStatus> {
    let fleet = inventory::load(inventory_path)?;
    let remote = Hosts::connect_database(&fleet, connect)?;
    let db = remote.host(&fleet.database_host().name);
    let store = secrets::Store::load(&fleet, db)?;
    let login = secrets::mongo_admin(&fleet, &store)?;
    let facts = facts::read(&remote, &fleet, login.as_ref())?;
    let last_backup = backup::archives(&fleet, db)?.pop();
    Ok(MongoStatus { host: db.name().to_string(), inventory_version: fleet.mongodb.version.clone(), facts, last_backup })
}

/// `3 h 20 min`, `45 min`, `12 s`.
fn duration(seconds: u64) -> String {
    match seconds {
        s if s >= 86_400 => format!("{} d {} h", s / 86_400, s % 86_400 / 3600),
        s if s >= 3600 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        s if s >= 60 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

impl Outcome for MongoStatus {
    fn to_text(&self) -> String {
        let f = &self.facts;
        let mut out = format!("MongoDB on {}\n", self.host);
        out.push_str(&format!("  version      {} (inventory: {})\n", f.version, self.inventory_version));
        out.push_str(&format!("  FCV          {}\n", f.fcv));
        out.push_str(&format!("  replica set  {}\n", f.replica_set.as_deref().unwrap_or("(none)")));
        for member in &f.members {
            out.push_str(&format!("    {:<28} {}{}\n", member.name, member.state, if member.healthy { "" } else { " (unhealthy)" }));
        }
        out.push_str(&format!(
            "  oplog window {}\n",
            f.oplog_seconds.map(duration).unwrap_or_else(|| "unknown (the server reports no oplog entries)".to_string())
        ));
        out.push_str(&format!("  data size    {}\n", f.data_bytes.map(backup::size).unwrap_or_else(|| "unknown".to_string())));
        out.push_str(&format!(
            "  last backup  {}\n",
            match &self.last_backup {
                Some(a) => format!("{} ({})", a.path, backup::size(a.bytes)),
                None => "none (`rcfleet backup` takes one)".to_string(),
            }
        ));
        let problems = self.problems();
        if !problems.is_empty() {
            out.push_str("\nProblems:\n");
            for problem in problems {
                out.push_str(&format!("  - {problem}\n"));
            }
        }
        out
    }

    fn to_json(&self) -> Value {
        let f = &self.facts;
        json!({
            "host": self.host,
            "version": f.version,
            "series": f.series(),
            "inventory_version": self.inventory_version,
            "fcv": f.fcv,
            "replica_set": f.replica_set,
            "members": f.members.iter().map(|m| json!({"name": m.name, "state": m.state, "healthy": m.healthy})).collect::<Vec<_>>(),
            "oplog_window_seconds": f.oplog_seconds,
            "data_bytes": f.data_bytes,
            "migrations": f.migrations,
            "last_backup": self.last_backup.as_ref().map(|a| json!({"path": a.path, "bytes": a.bytes})),
            "problems": self.problems(),
        })
    }
}

//! What MongoDB on the database host says of itself: version, feature compatibility version,
//! replica-set members, data size, oplog window and Rocket.Chat's migration control. Asked
//! as rcfleet's admin over MongoDB's wire protocol (`wire`), or with the real mongosh inside
//! the mongodb container (password on stdin) when that cannot answer and for changes.

use std::time::{Duration, Instant};

use bson::{doc, Bson, Document};
use serde_json::Value;

use crate::error::{one_line, Error, Result};
use crate::fleet::Fleet;
use crate::ops::hosts::Hosts;
use crate::ops::probe;
use crate::ops::report::Reporter;
use crate::ops::wait::Poll;
use crate::ops::secrets::{self, MongoLogin};
use super::wire;
use crate::remote::Connection;

#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    pub name: String,
    /// `PRIMARY`, `SECONDARY`, `RECOVERING`, `ROLLBACK`, ...
    pub state: String,
    pub healthy: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Facts {
    /// As the server reports it, e.g. `7.0.14`.
    pub version: String,
    /// The feature compatibility version, e.g. `7.0`.
    pub fcv: String,
    pub replica_set: Option<String>,
    pub members: Vec<Member>,
    /// Size of the workspace database's documents (dbStats `dataSize`).
    pub data_bytes: Option<u64>,
    /// Seconds between the oldest and the newest oplog entry; `None` when the server has none.
    pub oplog_seconds: Option<u64>,
    /// `version` of Rocket.Chat's migration control document; `None` before Rocket.Chat ran.
    pub migrations: Option<i64>,
}

impl Facts {
    /// `major.minor` of the running server.
    pub fn series(&self) -> String {
        series(&self.version)
    }

    /// Why the replica set is not fit for a change, if it is not: every member must be
    /// healthy, one PRIMARY, none in ROLLBACK or RECOVERING (MongoDB's upgrade prerequisites).
    pub fn unhealthy(&self) -> Option<String> {
        if self.members.is_empty() {
            return Some("the replica set reports no members".to_string());
        }
        let bad: Vec<String> = self
            .members
            .iter()
            .filter(|m| !m.healthy || !matches!(m.state.as_str(), "PRIMARY" | "SECONDARY" | "ARBITER"))
            .map(|m| format!("{} is {}", m.name, m.state))
            .collect();
        if !bad.is_empty() {
            return Some(bad.join(", "));
        }
        (!self.members.iter().any(|m| m.state == "PRIMARY")).then(|| "no member is PRIMARY".to_string())
    }
}

/// `major.minor` of a version such as `7.0.14`.
pub fn series(version: &str) -> String {
    let mut parts = version.split('.');
    match (parts.next(), parts.next()) {
        (Some(major), Some(minor)) => format!("{major}.{minor}"),
        _ => version.to_string(),
    }
}

/// The mongosh script that prints the facts as one marked JSON line. Only the version and
/// the FCV must be answered; the rest is `null` when the server does not say.
fn script(database: &str) -> String {
    let database = serde_json::to_string(database).expect("JSON of a string");
    format!(
        r#"const admin = db.getSiblingDB("admin");
const out = {{ version: db.version() }};
out.fcv = admin.runCommand({{ getParameter: 1, featureCompatibilityVersion: 1 }}).featureCompatibilityVersion.version;
try {{
  const s = admin.runCommand({{ replSetGetStatus: 1 }});
  out.set = s.set;
  out.members = (s.members || []).map(m => ({{ name: m.name, state: m.stateStr, health: m.health }}));
}} catch (e) {{ out.members = []; out.set = null; }}
try {{ out.data = Number(db.getSiblingDB({database}).runCommand({{ dbStats: 1 }}).dataSize); }} catch (e) {{ out.data = null; }}
try {{
  const o = db.getSiblingDB("local").getCollection("oplog.rs");
  const first = o.find({{}}, {{ ts: 1 }}).sort({{ $natural: 1 }}).limit(1).toArray()[0];
  const last = o.find({{}}, {{ ts: 1 }}).sort({{ $natural: -1 }}).limit(1).toArray()[0];
  out.oplog = first && last ? last.ts.getHighBits() - first.ts.getHighBits() : null;
}} catch (e) {{ out.oplog = null; }}
try {{
  const c = db.getSiblingDB({database}).getCollection("migrations").findOne({{ _id: "control" }});
  out.migrations = c ? Number(c.version) : null;
}} catch (e) {{ out.migrations = null; }}
print("{mark}" + JSON.stringify(out));"#,
        mark = secrets::MARK
    )
}

/// Asks the running MongoDB for its facts.
pub fn read(remote: &Hosts, fleet: &Fleet, login: Option<&MongoLogin>) -> Result<Facts> {
    let db = remote.host(&fleet.database_host().name);
    // Over MongoDB's wire protocol first (no Node start); mongosh when that cannot answer, and
    // then its own words say why.
    match read_over_wire(db, fleet, login) {
        Ok(facts) => Ok(facts),
        Err(_) => read_after(remote, fleet, login, ""),
    }
}

/// The facts once the replica set is fit for a change, or the last ones read after
/// `patience`: a member that just restarted (e.g. under a run that was killed) is PRIMARY again
/// within seconds, and judging it before would refuse for nothing.
pub fn read_settled(remote: &Hosts, fleet: &Fleet, login: Option<&MongoLogin>, report: &Reporter, patience: Duration) -> Result<Facts> {
    let started = Instant::now();
    loop {
        let facts = read(remote, fleet, login)?;
        match facts.unhealthy() {
            Some(unhealthy) if started.elapsed() < patience => {
                report.waiting("mongodb", format!("replica set fit for a change ({}s, {unhealthy})", started.elapsed().as_secs()));
                std::thread::sleep(Duration::from_millis(500));
            }
            _ => return Ok(facts),
        }
    }
}

/// The facts as [`script`] gathers them, asked command by command over MongoDB's wire
/// protocol, logged in as rcfleet's admin.
fn read_over_wire(db: &Connection, fleet: &Fleet, login: Option<&MongoLogin>) -> Result<Facts> {
    let mut mongodb = wire::Client::connect(db, fleet.mongodb.port)?;
    if let Some(login) = login {
        mongodb.login(login.user, &login.password)?.map_err(|refused| Error::failed(refused.message))?;
    }
    let mut ask = |database: &str, command: Document| mongodb.command(database, command).map(|reply| reply.ok());
    let refused = |what: &str| Error::failed(format!("{}: MongoDB did not answer {what}", db.name()));
    let version = ask("admin", doc! {"buildInfo": 1})?.ok_or_else(|| refused("buildInfo"))?;
    let version = version.get_str("version").map_err(|_| refused("its version"))?.to_string();
    let fcv = ask("admin", doc! {"getParameter": 1, "featureCompatibilityVersion": 1})?.ok_or_else(|| refused("getParameter"))?;
    let fcv = fcv.get_document("featureCompatibilityVersion").and_then(|f| f.get_str("version")).map_err(|_| refused("its FCV"))?.to_string();
    let status = ask("admin", doc! {"replSetGetStatus": 1})?;
    let members = status
        .as_ref()
        .and_then(|s| s.get_array("members").ok())
        .into_iter()
        .flatten()
        .filter_map(Bson::as_document)
        .map(|m| Member {
            name: m.get_str("name").unwrap_or_default().to_string(),
            state: m.get_str("stateStr").unwrap_or_default().to_string(),
            healthy: number(m.get("health")) == Some(1.0),
        })
        .collect();
    let database = &fleet.mongodb.database;
    let data_bytes = ask(database, doc! {"dbStats": 1})?.and_then(|stats| number(stats.get("dataSize"))).map(|d| d as u64);
    let mut first = |database: &str, collection: &str, filter: Document, sort: Document| -> Result<Option<Document>> {
        let find = doc! {"find": collection, "filter": filter, "sort": sort, "limit": 1, "singleBatch": true};
        Ok(ask(database, find)?.and_then(|reply| {
            reply.get_document("cursor").ok()?.get_array("firstBatch").ok()?.first()?.as_document().cloned()
        }))
    };
    let timestamp = |entry: Option<Document>| match entry?.get("ts") {
        Some(Bson::Timestamp(ts)) => Some(ts.time),
        _ => None,
    };
    let oldest = timestamp(first("local", "oplog.rs", doc! {}, doc! {"$natural": 1})?);
    let newest = timestamp(first("local", "oplog.rs", doc! {}, doc! {"$natural": -1})?);
    let control = first(database, "migrations", doc! {"_id": "control"}, doc! {})?;
    Ok(Facts {
        version,
        fcv,
        replica_set: status.as_ref().and_then(|s| s.get_str("set").ok()).map(str::to_string),
        members,
        data_bytes,
        oplog_seconds: oldest.zip(newest).map(|(oldest, newest)| u64::from(newest.saturating_sub(oldest))),
        migrations: control.and_then(|c| number(c.get("version"))).map(|v| v as i64),
    })
}

/// A BSON number as `f64`, whichever type MongoDB stored it as.
fn number(value: Option<&Bson>) -> Option<f64> {
    match value? {
        Bson::Double(n) => Some(*n),
        Bson::Int32(n) => Some(f64::from(*n)),
        Bson::Int64(n) => Some(*n as f64),
        _ => None,
    }
}

/// Runs `command` (mongosh statements, e.g. setting the FCV) and then reads the facts, in one
/// mongosh run: each run starts a Node process, which is most of what a look costs.
pub fn read_after(remote: &Hosts, fleet: &Fleet, login: Option<&MongoLogin>, command: &str) -> Result<Facts> {
    let db = remote.host(&fleet.database_host().name);
    let container = probe::mongodb(fleet, db)?
        .ok_or_else(|| Error::failed(format!("{}: MongoDB is not running; run `rcfleet up` first", db.name())))?;
    let answer = run(db, fleet, &container.id, login, &format!("{command}\n{}", script(&fleet.mongodb.database)))?;
    parse(&answer).ok_or_else(|| Error::failed(format!("{}: MongoDB answered unexpectedly: {}", db.name(), one_line(&answer.to_string(), 300))))
}

/// One look while waiting for MongoDB to come back: its facts once it answers with a
/// PRIMARY, else what was seen. Only a refused login is an error (waiting does not help).
pub fn poll_primary(remote: &Hosts, fleet: &Fleet, login: Option<&MongoLogin>) -> Result<Poll<Facts>> {
    let db = remote.host(&fleet.database_host().name);
    let Some(container) = probe::mongodb(fleet, db)? else {
        return Ok(Err("the mongodb container is not running".to_string()));
    };
    let output = secrets::mongosh(db, fleet, &container.id, login, &script(&fleet.mongodb.database))?;
    if login.is_some() && secrets::refused_login(&output.stderr_text()) {
        return Err(Error::failed(format!("{}: MongoDB refused rcfleet's admin login: {}", db.name(), one_line(&output.stderr_text(), 300))));
    }
    let facts = secrets::marked(&output).pop().filter(|_| output.success()).and_then(|line| serde_json::from_str(line.trim()).ok()).and_then(|v| parse(&v));
    Ok(match facts {
        Some(facts) if facts.members.iter().any(|m| m.state == "PRIMARY") => Ok(facts),
        Some(facts) => Err(format!("no PRIMARY yet ({})", facts.members.iter().map(|m| format!("{} {}", m.name, m.state)).collect::<Vec<_>>().join(", "))),
        None => Err(one_line(&format!("{} {}", output.stderr_text(), output.stdout_text()), 160)),
    })
}

/// Runs `script` (which prints one line marked [`secrets::MARK`] holding JSON) and parses it.
pub fn run(db: &Connection, fleet: &Fleet, container: &str, login: Option<&MongoLogin>, script: &str) -> Result<Value> {
    let output = secrets::mongosh(db, fleet, container, login, script)?;
    let line = secrets::marked(&output).pop();
    match line.filter(|_| output.success()) {
        Some(line) => serde_json::from_str(line.trim())
            .map_err(|_| Error::failed(format!("{}: mongosh printed unexpected output: {}", db.name(), one_line(&line, 300)))),
        None => Err(Error::failed(format!("{}: mongosh failed: {}", db.name(), one_line(&format!("{} {}", output.stderr_text(), output.stdout_text()), 300)))),
    }
}

fn parse(answer: &Value) -> Option<Facts> {
    let members = answer["members"]
        .as_array()?
        .iter()
        .map(|m| Member {
            name: m["name"].as_str().unwrap_or_default().to_string(),
            state: m["state"].as_str().unwrap_or_default().to_string(),
            healthy: m["health"].as_f64() == Some(1.0),
        })
        .collect();
    Some(Facts {
        version: answer["version"].as_str()?.to_string(),
        fcv: answer["fcv"].as_str()?.to_string(),
        replica_set: answer["set"].as_str().map(str::to_string),
        members,
        data_bytes: answer["data"].as_f64().map(|d| d as u64),
        oplog_seconds: answer["oplog"].as_f64().map(|s| s as u64),
        migrations: answer["migrations"].as_f64().map(|m| m as i64),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_answer_becomes_facts_and_health() {
        let facts = parse(&json!({"version": "7.0.14", "fcv": "6.0", "set": "rs0", "data": 2048.0, "oplog": 3600, "migrations": 310,
            "members": [{"name": "db:27017", "state": "PRIMARY", "health": 1}]}))
        .unwrap();
        assert_eq!(facts.series(), "7.0");
        assert_eq!(facts.fcv, "6.0");
        assert_eq!((facts.data_bytes, facts.oplog_seconds, facts.migrations), (Some(2048), Some(3600), Some(310)));
        assert_eq!(facts.unhealthy(), None);
        let recovering = Facts { members: vec![Member { name: "db:27017".into(), state: "RECOVERING".into(), healthy: true }], ..facts.clone() };
        assert_eq!(recovering.unhealthy().as_deref(), Some("db:27017 is RECOVERING"));
        let no_primary = Facts { members: vec![Member { name: "db:27017".into(), state: "SECONDARY".into(), healthy: true }], ..facts };
        assert_eq!(no_primary.unhealthy().as_deref(), Some("no member is PRIMARY"));
        assert!(parse(&json!({"version": "7.0.1", "members": []})).is_none(), "no FCV, no facts");
    }

    #[test]
    fn the_script_names_the_database_as_a_literal() {
        let text = script("rocket\"chat");
        assert!(text.contains(r#"db.getSiblingDB("rocket\"chat")"#), "{text}");
        assert!(text.contains("featureCompatibilityVersion: 1"), "{text}");
    }
}

//! What MongoDB on the database host says of itself: version, feature compatibility version,
//! replica-set members, data size, oplog window and Rocket.Chat's migration control. Asked
//! with the real mongosh inside the mongodb container, as rcfleet's admin (password on stdin).

use serde_json::Value;

use crate::error::{one_line, Error, Result};
use crate::fleet::Fleet;
use crate::ops::hosts::Hosts;
use crate::ops::probe;
use crate::ops::wait::Poll;
use crate::ops::secrets::{self, MongoLogin};
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
    read_after(remote, fleet, login, "")
}

/// Runs `command` (mongosh statements, e.g. setting the FCV) and then reads the facts, in one
/// mongosh run: each run starts a Node process, which is most of what a look costs.
pub fn read_after(remote: &Hosts, fleet: &Fleet, login: Option<&MongoLogin>, command: &str) -> Result<Facts> {
    let db = remote.host(&fleet.database_host().name);
    let container = probe::mongodb(remote, fleet, db)?
        .ok_or_else(|| Error::failed(format!("{}: MongoDB is not running; run `rcfleet up` first", db.name())))?;
    let answer = run(db, fleet, &container.id, login, &format!("{command}\n{}", script(&fleet.mongodb.database)))?;
    parse(&answer).ok_or_else(|| Error::failed(format!("{}: MongoDB answered unexpectedly: {}", db.name(), one_line(&answer.to_string(), 300))))
}

/// One look while waiting for MongoDB to come back: its facts once it answers with a
/// PRIMARY, else what was seen. Only a refused login is an error (waiting does not help).
pub fn poll_primary(remote: &Hosts, fleet: &Fleet, login: Option<&MongoLogin>) -> Result<Poll<Facts>> {
    let db = remote.host(&fleet.database_host().name);
    let Some(container) = probe::mongodb(remote, fleet, db)? else {
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

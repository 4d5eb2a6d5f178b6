//! Rocket.Chat's migration control: the `{_id: "control", version, locked}` document in the
//! `migrations` collection of the workspace's database, which every release moves forward when
//! it starts (apps/meteor/server/lib/migrations.ts). Migrations are forward-only: once a new
//! release moved `version`, the old release refuses the database ("Can't find migration
//! version N"), or worse, runs on data it does not understand. The rollout reads it before the
//! canary and after each failure to decide whether a rollback is still possible.

use serde::Deserialize;

use crate::error::{one_line, Error, Result};
use crate::fleet::Fleet;
use crate::ops::hosts::Hosts;
use crate::ops::probe;
use crate::ops::secrets::{self, MongoLogin};

/// What the control document says (read as `None` when there is none yet: a fresh database).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Control {
    pub version: i64,
    #[serde(default)]
    pub locked: bool,
}

/// Reads the control document through mongosh in the MongoDB container.
pub fn read(fleet: &Fleet, remote: &Hosts, login: Option<&MongoLogin>) -> Result<Option<Control>> {
    let db = remote.host(&fleet.database_host().name);
    let mongodb = probe::mongodb(fleet, db)?
        .ok_or_else(|| Error::failed(format!("{}: MongoDB is not running", db.name())))?;
    let output = secrets::mongosh(db, fleet, &mongodb.id, login, &script(&fleet.mongodb.database))?;
    if !output.success() {
        let said = output.stderr_text();
        return Err(Error::failed(format!(
            "{}: reading Rocket.Chat's migration control failed: {}",
            db.name(),
            one_line(&said, 200)
        )));
    }
    parse(&secrets::marked(&output).pop().unwrap_or_default())
        .map_err(|why| Error::failed(format!("{}: Rocket.Chat's migration control: {why}", db.name())))
}

fn script(database: &str) -> String {
    let database = serde_json::to_string(database).expect("JSON of a string");
    format!(
        "const c = db.getSiblingDB({database}).getCollection(\"migrations\").findOne({{ _id: \"control\" }});\n\
         print({mark} + JSON.stringify(c ? {{ version: Number(c.version), locked: c.locked === true }} : null));",
        mark = serde_json::to_string(secrets::MARK).expect("JSON of a string")
    )
}

/// The marked line the script printed: `null` or `{"version":N,"locked":B}`.
fn parse(line: &str) -> std::result::Result<Option<Control>, String> {
    serde_json::from_str::<Option<Control>>(line.trim()).map_err(|e| format!("unexpected answer {line:?} ({e})"))
}

/// The version a control says, 0 for none (Rocket.Chat's own reading of a fresh database).
pub fn version(control: &Option<Control>) -> i64 {
    control.as_ref().map_or(0, |c| c.version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_control_document_is_read_from_the_marked_line() {
        assert_eq!(parse("{\"version\":801,\"locked\":false}"), Ok(Some(Control { version: 801, locked: false })));
        assert_eq!(parse(" null\n"), Ok(None));
        assert!(parse("").is_err());
        assert!(parse("{\"locked\":true}").is_err(), "a control without a version is not one");
        assert_eq!(version(&None), 0);
    }

    #[test]
    fn the_script_names_the_workspace_database_and_the_control_document() {
        let script = script("rocket\"chat");
        assert!(script.contains("getSiblingDB(\"rocket\\\"chat\")"), "{script}");
        assert!(script.contains("findOne({ _id: \"control\" })"), "{script}");
        assert!(script.contains("print(\"RCFLEET \" + JSON.stringify("), "{script}");
    }
}

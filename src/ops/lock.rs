//! The deploy lock: one mutating rcfleet run at a time per fleet. It is a file on the database
//! host (`render::lock_file`) created atomically (`set -C`: O_EXCL), holding who took
//! it, from where, when, with which command and release. It is released when the operation
//! ends, however it ends (the guard's `Drop`), and only by the run that holds it; a lock left
//! by a run that died is shown by `rcfleet lock status` and removed by `rcfleet lock release`.

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::audit;
use super::hosts::Hosts;
use super::report::Outcome;
use crate::error::{Error, Result};
use crate::fleet::Fleet;
use crate::inventory;
use crate::render;
use crate::remote::{Argv, ConnectOptions, Connection};

/// Who holds the lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// `user@machine` of the person who ran rcfleet.
    pub who: String,
    /// Process id of that rcfleet run on its machine.
    pub pid: u32,
    pub command: String,
    /// The release the run works towards, if it changes releases.
    pub release: Option<String>,
    /// RFC 3339, UTC.
    pub since: String,
    /// Identifies this run, so only it releases its own lock.
    pub token: String,
}

impl Holder {
    pub fn describe(&self) -> String {
        let release = self.release.as_ref().map(|r| format!(" towards release {r}")).unwrap_or_default();
        format!("{} (pid {}) since {}: `{}`{release}", self.who, self.pid, self.since, self.command)
    }
}

/// The held lock; released when dropped.
pub struct DeployLock<'c> {
    conn: &'c Connection,
    path: String,
    holder: Holder,
}

impl DeployLock<'_> {
    pub fn holder(&self) -> &Holder {
        &self.holder
    }
}

/// Takes the lock on the database host, or refuses with the holder's details.
pub fn acquire<'c>(fleet: &Fleet, db: &'c Connection, command: &str, release: Option<String>) -> Result<DeployLock<'c>> {
    let holder = Holder {
        who: audit::operator(),
        pid: std::process::id(),
        command: command.to_string(),
        release,
        since: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        token: format!("{:x}-{:x}", std::process::id(), nanos()),
    };
    let path = render::lock_file(fleet);
    let body = serde_json::to_string(&holder).expect("holder serialises");
    let script = r#"mkdir -p -- "$(dirname -- "$1")" && (set -C; printf '%s\n' "$2" > "$1") 2>/dev/null"#;
    let output = db.exec(&Argv::script(script, &[&path, &body]), Default::default())?;
    if output.success() {
        return Ok(DeployLock { conn: db, path, holder });
    }
    match read(fleet, db)? {
        Some(current) => Err(Error::failed(format!(
            "the fleet is locked by another rcfleet run: {}.\nWait for it to finish. If that run is gone (its machine \
             crashed), check with `rcfleet lock status` and remove the lock with `rcfleet lock release`.",
            current.describe()
        ))),
        None => Err(Error::failed(format!(
            "{}: cannot create the deploy lock {path}: {}; check that the folder is writable",
            db.name(),
            output.stderr_text().trim()
        ))),
    }
}

/// The current holder, if the fleet is locked.
pub fn read(fleet: &Fleet, db: &Connection) -> Result<Option<Holder>> {
    let path = render::lock_file(fleet);
    let output = db.run(&Argv::script(r#"if [ -f "$1" ]; then cat -- "$1"; fi"#, &[&path]))?;
    let text = output.stdout_text();
    if text.trim().is_empty() {
        return Ok(None);
    }
    serde_json::from_str(text.trim()).map(Some).map_err(|_| {
        Error::failed(format!("{}: the deploy lock {path} is not rcfleet's; look at it and remove it by hand", db.name()))
    })
}

/// `rcfleet lock status`: who holds the lock, if anyone.
pub struct LockStatus {
    pub holder: Option<Holder>,
}

pub fn status(inventory_path: &Path, connect: &ConnectOptions) -> Result<LockStatus> {
    let fleet = inventory::load(inventory_path)?;
    let hosts = Hosts::connect_database(&fleet, connect)?;
    Ok(LockStatus { holder: read(&fleet, hosts.host(&fleet.database_host().name))? })
}

impl Outcome for LockStatus {
    fn to_text(&self) -> String {
        match &self.holder {
            Some(holder) => format!("locked by {}\n", holder.describe()),
            None => "not locked\n".to_string(),
        }
    }

    fn to_json(&self) -> Value {
        json!({ "locked": self.holder.is_some(), "holder": self.holder })
    }
}

/// What `rcfleet lock release` did.
pub enum Released {
    NotLocked,
    /// The operator said no.
    Kept(Holder),
    Released(Holder),
}

/// Removes the lock whoever holds it (for a run that died), once `confirm` agrees; the removal
/// goes into the database host's audit trail.
pub fn release(inventory_path: &Path, connect: &ConnectOptions, confirm: impl FnOnce(&Holder) -> Result<bool>) -> Result<Released> {
    let fleet = inventory::load(inventory_path)?;
    let hosts = Hosts::connect_database(&fleet, connect)?;
    let db = hosts.host(&fleet.database_host().name);
    let Some(holder) = read(&fleet, db)? else { return Ok(Released::NotLocked) };
    if !confirm(&holder)? {
        return Ok(Released::Kept(holder));
    }
    db.run(&Argv::new("rm").args(["-f", "--", &render::lock_file(&fleet)]))?;
    let what = format!("removed the deploy lock held by {}", holder.describe());
    audit::record(db, &fleet, "rcfleet lock release", &[what])?;
    Ok(Released::Released(holder))
}

impl Outcome for Released {
    fn to_text(&self) -> String {
        match self {
            Released::NotLocked => "not locked; nothing to release\n".to_string(),
            Released::Kept(_) => "left as it is\n".to_string(),
            Released::Released(holder) => format!("released the lock held by {}\n", holder.describe()),
        }
    }

    fn to_json(&self) -> Value {
        match self {
            Released::NotLocked => json!({ "released": false, "holder": null }),
            Released::Kept(holder) => json!({ "released": false, "holder": holder }),
            Released::Released(holder) => json!({ "released": true, "holder": holder }),
        }
    }
}

impl Drop for DeployLock<'_> {
    fn drop(&mut self) {
        // Only the run that holds the lock removes it: compare tokens on the host.
        let script = r#"grep -qF -- "$2" "$1" 2>/dev/null && rm -f -- "$1""#;
        if let Err(err) = self.conn.run(&Argv::script(script, &[&self.path, &self.holder.token])) {
            eprintln!(
                "warning: could not release the deploy lock on {} ({}); remove it with `rcfleet lock release`",
                self.conn.name(),
                err
            );
        }
    }
}

fn nanos() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
}

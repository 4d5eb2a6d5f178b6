//! The deploy lock: one mutating rcfleet run at a time per fleet. It is a file on the database
//! host (`render::lock_file`) created atomically (`set -C`: O_EXCL), holding who took
//! it, from where, when, with which command and release, and how far a rollout got (which
//! instances were replaced, which were in flight). It is released when the operation ends,
//! however it ends (the guard's `Drop`), and only by the run that holds it. A lock left by a
//! run that died (killed, machine lost) keeps its progress: the same command run again from
//! the same machine takes it over and finishes the work; any other command refuses and names
//! the one that finishes it; `rcfleet lock status` shows it and `rcfleet lock release` removes
//! exactly the lock it showed.

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
    /// How far the run's rollout got (absent until it replaces instances).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<Progress>,
}

/// How far a rollout got, written into the lock after each step.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// The release the replaced instances run.
    pub release: String,
    /// Instances replaced, ready and back in Traefik.
    pub replaced: Vec<String>,
    /// Instances being replaced when the progress was written (out of Traefik, maybe half done).
    pub in_flight: Vec<String>,
}

impl Holder {
    pub fn describe(&self) -> String {
        let release = self.release.as_ref().map(|r| format!(" towards release {r}")).unwrap_or_default();
        let age = self.age().map(|age| format!(" ({} ago)", humantime::format_duration(age))).unwrap_or_default();
        let mut text = format!("{} (pid {}) since {}{age}: `{}`{release}", self.who, self.pid, self.since, self.command);
        if let Some(progress) = &self.progress {
            text.push_str(&format!("; {}", progress.describe()));
        }
        text
    }

    /// How long the lock has been held (whole seconds).
    pub fn age(&self) -> Option<std::time::Duration> {
        let since = humantime::parse_rfc3339(&self.since).ok()?;
        let age = std::time::SystemTime::now().duration_since(since).ok()?;
        Some(std::time::Duration::from_secs(age.as_secs()))
    }

    /// Whether the run that holds the lock is provably gone: it ran as this user on this
    /// machine and its process no longer exists. (From another machine nobody can tell.)
    pub fn run_is_gone(&self) -> bool {
        self.who == audit::operator() && self.pid != std::process::id() && !Path::new(&format!("/proc/{}", self.pid)).exists()
    }

    /// The first two words of the command (`rcfleet upgrade`): what kind of run it is.
    fn kind(&self) -> String {
        self.command.split_whitespace().take(2).collect::<Vec<_>>().join(" ")
    }

    /// For a run that is gone: what it left and the command that finishes it.
    pub fn unfinished(&self) -> String {
        let done = self.progress.as_ref().map(|p| format!(" It got this far: {}.", p.describe())).unwrap_or_default();
        format!(
            "`{}` was interrupted (its process {} on {} is gone) and did not finish.{done} Run `{}` again to finish it.",
            self.command, self.pid, self.who, self.command
        )
    }
}

impl Progress {
    pub fn describe(&self) -> String {
        let list = |names: &[String]| if names.is_empty() { "none".to_string() } else { names.join(", ") };
        let mut text = format!("replaced to {}: {}", self.release, list(&self.replaced));
        if !self.in_flight.is_empty() {
            text.push_str(&format!("; in flight: {}", self.in_flight.join(", ")));
        }
        text
    }
}

/// The lock this run holds, apart from the connection it was taken through: the run that keeps
/// it releases it when it ends (`ops::Run`).
pub struct Held {
    path: String,
    holder: Holder,
    /// The lock of a run of the same command that died, taken over by this one.
    taken_over: Option<Holder>,
}

impl Held {
    /// The progress of the interrupted run this one took the lock over from, if any.
    pub fn interrupted(&self) -> Option<&Holder> {
        self.taken_over.as_ref()
    }

    /// Writes how far the run got into the lock file (only while it is still this run's).
    pub fn record(&self, db: &Connection, progress: Progress) -> Result<()> {
        let holder = Holder { progress: Some(progress), ..self.holder.clone() };
        let body = serde_json::to_string(&holder).expect("holder serialises");
        let script = r#"grep -qF -- "$2" "$1" && printf '%s\n' "$3" > "$1.tmp" && mv -f -- "$1.tmp" "$1""#;
        let output = db.exec(&Argv::script(script, &[&self.path, &self.holder.token, &body]), Default::default())?;
        if !output.success() {
            return Err(Error::failed(format!("{}: the deploy lock {} is no longer this run's", db.name(), self.path)));
        }
        Ok(())
    }

    /// Removes the lock file, if it is still this run's: compare tokens on the host.
    pub fn release(&self, db: &Connection) {
        let script = r#"grep -qF -- "$2" "$1" 2>/dev/null && rm -f -- "$1""#;
        if let Err(err) = db.run(&Argv::script(script, &[&self.path, &self.holder.token])) {
            eprintln!(
                "warning: could not release the deploy lock on {} ({}); remove it with `rcfleet lock release`",
                db.name(),
                err
            );
        }
    }
}

/// Takes the lock on the database host, or refuses with the holder's details. The lock of a run
/// of the same command that is provably gone ([`Holder::run_is_gone`]) is taken over, its
/// progress kept for the caller ([`Held::interrupted`]). The caller releases it ([`Held::release`]).
pub fn take(fleet: &Fleet, db: &Connection, command: &str, release: Option<String>) -> Result<Held> {
    let holder = Holder {
        who: audit::operator(),
        pid: std::process::id(),
        command: command.to_string(),
        release,
        since: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        token: format!("{:x}-{:x}", std::process::id(), nanos()),
        progress: None,
    };
    let path = render::lock_file(fleet);
    let body = serde_json::to_string(&holder).expect("holder serialises");
    let script = r#"mkdir -p -- "$(dirname -- "$1")" && (set -C; printf '%s\n' "$2" > "$1") 2>/dev/null"#;
    let output = db.exec(&Argv::script(script, &[&path, &body]), Default::default())?;
    if output.success() {
        return Ok(Held { path, holder, taken_over: None });
    }
    match read(fleet, db)? {
        Some(dead) if dead.run_is_gone() && dead.kind() == holder.kind() => {
            // Replaced only while it still holds the dead run's token.
            let script = r#"grep -qF -- "$2" "$1" && printf '%s\n' "$3" > "$1.tmp" && mv -f -- "$1.tmp" "$1""#;
            let output = db.exec(&Argv::script(script, &[&path, &dead.token, &body]), Default::default())?;
            if !output.success() {
                return Err(Error::failed(format!("{}: the deploy lock changed while rcfleet took it over; run again", db.name())));
            }
            Ok(Held { path, holder, taken_over: Some(dead) })
        }
        Some(dead) if dead.run_is_gone() => Err(Error::failed(dead.unfinished())),
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
            Some(holder) if holder.run_is_gone() => format!("locked by {}\n{}\n", holder.describe(), holder.unfinished()),
            Some(holder) => format!("locked by {}\n", holder.describe()),
            None => "not locked\n".to_string(),
        }
    }

    fn to_json(&self) -> Value {
        json!({
            "locked": self.holder.is_some(),
            "holder": self.holder,
            "age_seconds": self.holder.as_ref().and_then(Holder::age).map(|a| a.as_secs()),
            "run_is_gone": self.holder.as_ref().map(Holder::run_is_gone),
        })
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
    // Only the lock that was shown: a run that took the lock (or wrote its progress) meanwhile
    // keeps it.
    let script = r#"[ "$(cat -- "$1" 2>/dev/null)" = "$2" ] && rm -f -- "$1""#;
    let shown = serde_json::to_string(&holder).expect("holder serialises");
    let removed = db.exec(&Argv::script(script, &[&render::lock_file(&fleet), &shown]), Default::default())?;
    if !removed.success() {
        let now = read(&fleet, db)?.map(|h| h.describe()).unwrap_or_else(|| "nobody".to_string());
        return Err(Error::failed(format!(
            "the deploy lock changed since it was shown (now held by {now}); nothing was removed. Look again with \
             `rcfleet lock status`"
        )));
    }
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

fn nanos() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holder(who: &str, pid: u32) -> Holder {
        Holder {
            who: who.to_string(),
            pid,
            command: "rcfleet upgrade --release 8.1.0".to_string(),
            release: Some("8.1.0".to_string()),
            since: "2026-11-30T20:00:00Z".to_string(),
            token: "t".to_string(),
            progress: Some(Progress {
                release: "8.1.0".to_string(),
                replaced: vec!["app1-0".to_string(), "app1-1".to_string()],
                in_flight: vec!["app2-0".to_string()],
            }),
        }
    }

    #[test]
    fn a_holder_is_described_with_its_age_and_progress() {
        let text = holder("ann@desk", 42).describe();
        assert!(text.starts_with("ann@desk (pid 42) since 2026-11-30T20:00:00Z ("), "{text}");
        assert!(text.contains(" ago): `rcfleet upgrade --release 8.1.0` towards release 8.1.0"), "{text}");
        assert!(text.ends_with("; replaced to 8.1.0: app1-0, app1-1; in flight: app2-0"), "{text}");
    }

    #[test]
    fn only_a_run_of_this_operator_whose_process_is_gone_counts_as_gone() {
        // Linux pids stay below 2^22: this one never exists.
        assert!(holder(&audit::operator(), 4_000_000_000).run_is_gone());
        assert!(!holder(&audit::operator(), std::process::id()).run_is_gone(), "this very run");
        assert!(!holder("someone@elsewhere", 4_000_000_000).run_is_gone(), "another machine: nobody can tell");
        let unfinished = holder(&audit::operator(), 4_000_000_000).unfinished();
        assert!(unfinished.contains("It got this far: replaced to 8.1.0: app1-0, app1-1; in flight: app2-0."), "{unfinished}");
        assert!(unfinished.ends_with("Run `rcfleet upgrade --release 8.1.0` again to finish it."), "{unfinished}");
    }

    #[test]
    fn a_lock_without_progress_still_reads() {
        let old = r#"{"who":"a@b","pid":1,"command":"rcfleet up","release":null,"since":"2026-11-30T20:00:00Z","token":"x"}"#;
        let holder: Holder = serde_json::from_str(old).unwrap();
        assert_eq!(holder.progress, None);
        assert_eq!(holder.kind(), "rcfleet up");
    }
}

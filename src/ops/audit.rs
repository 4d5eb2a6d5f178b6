//! The audit trail each host keeps: one appended line per change rcfleet made there (time,
//! who, from which machine, which command, what). Never rewritten, never holds a secret value.

use crate::error::Result;
use crate::fleet::Fleet;
use crate::render;
use crate::remote::{Argv, Connection};

/// `user@machine` of the person running rcfleet.
pub fn operator() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .or_else(user_from_passwd)
        .unwrap_or_else(|| "unknown".into());
    let machine = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    format!("{user}@{machine}")
}

/// The name of this process's user from /etc/passwd, for when USER is not set (cron, CI).
fn user_from_passwd() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let uid = status.lines().find_map(|l| l.strip_prefix("Uid:"))?.split_whitespace().next()?.to_string();
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().map(|l| l.split(':').collect::<Vec<_>>()).find(|f| f.get(2) == Some(&uid.as_str())).map(|f| f[0].to_string())
}

/// Appends one line per change to the host's audit log (`render::audit_log`).
pub fn record(conn: &Connection, fleet: &Fleet, command: &str, changes: &[String]) -> Result<()> {
    if changes.is_empty() {
        return Ok(());
    }
    let time = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let who = operator();
    let lines: String = changes
        .iter()
        .map(|change| format!("{time}\t{who}\t{command}\t{}\n", change.replace(['\n', '\t'], " ")))
        .collect();
    let script = r#"mkdir -p -- "$(dirname -- "$1")" && printf '%s' "$2" >> "$1""#;
    conn.run(&Argv::script(script, &[&render::audit_log(fleet), &lines]).step("writing the audit log"))?;
    Ok(())
}

//! Grafana's admin password after a deploy. Grafana applies `GF_SECURITY_ADMIN_PASSWORD(__FILE)`
//! only when it creates the admin user in a fresh `grafana.db`; a password changed later in the
//! inventory (or in the secrets file) would be ignored while `rcfleet secrets show` printed it.
//! So rcfleet asks Grafana whether the configured password works and, if Grafana refuses it,
//! sets it with Grafana's own CLI inside the container.

use std::time::Duration;

use super::probe;
use super::hosts::Hosts;
use super::report::Reporter;
use super::wait::{self, Poll};
use crate::error::{one_line, Error, Result};
use crate::fleet::Fleet;
use crate::remote::{Argv, Connection, ExecOptions};
use crate::render::{self, credential, Generated, SecretSource};

/// The user Grafana creates on first start (`GF_SECURITY_ADMIN_USER`, which rcfleet leaves at
/// Grafana's default).
const ADMIN_USER: &str = "admin";

/// Makes Grafana accept the configured admin password: checked with the HTTP API (basic
/// auth), set with `grafana cli admin reset-admin-password` if Grafana refuses it, then checked
/// again. Returns the change made, if any. The password goes only into an HTTP header and the
/// CLI's stdin, never into a command line or any output.
pub fn ensure_admin_password(fleet: &Fleet, remote: &Hosts, secrets: &dyn SecretSource, report: &Reporter) -> Result<Option<String>> {
    let Some(host) = fleet.monitoring_host() else { return Ok(None) };
    let conn = remote.host(&host.name);
    let password = credential(fleet, secrets, Generated::GrafanaAdminPassword)?;
    if password_accepted(fleet, remote, conn, &password, report)? {
        return Ok(None);
    }
    reset_with_cli(fleet, conn, &password)?;
    if !password_accepted(fleet, remote, conn, &password, report)? {
        return Err(Error::failed(format!(
            "{}: Grafana still refuses the configured admin password after `grafana cli admin reset-admin-password` \
             succeeded. Grafana blocks a user for 5 minutes after 5 failed logins; wait and run `rcfleet up` again.",
            conn.name()
        )));
    }
    let change = "Grafana admin password applied (Grafana keeps the one it was first created with)".to_string();
    report.step("monitoring", conn.name(), &change);
    Ok(Some(change))
}

/// Whether `GET <sub-path>/api/user` as the admin answers 200 (401: refused). Waits first
/// for Grafana to answer at all, as it may have just been (re)started.
fn password_accepted(fleet: &Fleet, remote: &Hosts, conn: &Connection, password: &str, report: &Reporter) -> Result<bool> {
    let host = fleet.monitoring_host().expect("called with a monitoring host");
    let http = remote.http(conn.name(), &host.private_address, fleet.monitoring.grafana_port)?;
    // Grafana serves from the root URL's path (GF_SERVER_SERVE_FROM_SUB_PATH).
    let root = render::grafana_root_url(fleet);
    let sub_path = reqwest::Url::parse(&root).map(|u| u.path().trim_end_matches('/').to_string()).unwrap_or_default();
    let path = format!("{sub_path}/api/user");
    wait::until(report, "monitoring", "Grafana's API", Duration::from_secs(90), Duration::from_millis(500), || {
        Ok(match remote.block_on(http.get_basic_auth(&path, ADMIN_USER, password)) {
            Ok(response) if response.status == 200 => Ok(true),
            Ok(response) if response.status == 401 => Ok(false),
            Ok(response) => Poll::Err(format!("{path} answered {}", response.status)),
            Err(err) => Poll::Err(err.to_string()),
        })
    })
    .map_err(|err| Error::failed(format!("{}: checking Grafana's admin password: {}", conn.name(), err)))
}

/// `grafana cli admin reset-admin-password --password-from-stdin` in the running Grafana
/// container: Grafana's documented way to set the admin password without the old one. The CLI
/// reads the password from the first line of stdin (pkg/cmd/grafana-cli/commands).
fn reset_with_cli(fleet: &Fleet, conn: &Connection, password: &str) -> Result<()> {
    let unit = render::monitoring_unit(fleet).expect("called with a monitoring host");
    let containers = probe::containers(fleet, conn)?;
    let Some(grafana) = probe::running(&containers, &unit.name, "grafana") else {
        return Err(Error::failed(format!("{}: the grafana container is not running; its admin password cannot be set", conn.name())));
    };
    let input = format!("{password}\n");
    let mut stdin = input.as_bytes();
    let argv = Argv::new("docker").args(["exec", "-i", &grafana.id, "grafana", "cli", "admin", "reset-admin-password", "--password-from-stdin"]);
    let output = conn.exec(&argv, ExecOptions { stdin: Some(&mut stdin), timeout: Some(Duration::from_secs(60)), ..Default::default() })?;
    if output.success() {
        return Ok(());
    }
    // The CLI does not echo the password; it is removed anyway, should a future one do so.
    let said = format!("{} {}", output.stdout_text(), output.stderr_text()).replace(password, "<password>");
    let said = one_line(&said, 300);
    Err(Error::failed(format!(
        "{}: Grafana refuses the configured admin password, and `grafana cli admin reset-admin-password` failed \
         (exit {}): {said}",
        conn.name(),
        output.status
    )))
}

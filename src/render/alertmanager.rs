//! Alertmanager's unit (`[monitoring.alertmanager]`) on the monitoring host: Prometheus sends
//! it every alert, and it posts them to the webhook. The webhook's URL is a secret: it is only
//! in `alertmanager.yml` (mode 0600), never in the compose file or a digest label.

use serde_json::json;

use super::{labels, templates, Artifact, Unit};
use crate::error::{Error, Result};
use crate::fleet::{Fleet, Host};

/// The configuration file, relative to the deploy dir: `up` restarts Alertmanager when it changed.
pub const ALERTMANAGER_CONFIG_PATH: &str = "alertmanager/alertmanager.yml";

pub fn render(fleet: &Fleet, host: &Host, unit: &Unit, secrets: &dyn super::SecretSource) -> Result<Vec<Artifact>> {
    let settings = fleet.monitoring.alertmanager.as_ref().expect("the unit exists only with [monitoring.alertmanager]");
    let url = secrets.value(&settings.webhook_url)?;
    if !secrets.is_redacted() {
        check_url(&url, &settings.webhook_url)?;
    }
    let config = Artifact::secret(
        format!("{}/alertmanager.yml", unit.dir),
        templates::render("alertmanager-config", &json!({ "webhook_url": url }))?,
    );
    debug_assert_eq!(config.path, ALERTMANAGER_CONFIG_PATH);
    let compose = templates::render(
        "alertmanager",
        &json!({
            "image": fleet.images.alertmanager.to_string(),
            "labels": labels(fleet, unit),
            "listen_flag": format!("--web.listen-address={}:{}", host.private_address, settings.port),
        }),
    )?;
    Ok(vec![Artifact::public(unit.compose_file(), compose), config])
}

/// Alertmanager refuses a configuration whose webhook URL is not an http(s) URL and would then
/// not start: say so before any host is touched, naming the reference (never the value).
fn check_url(url: &str, source: &crate::fleet::SecretRef) -> Result<()> {
    let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"));
    match rest {
        Some(rest) if !rest.is_empty() && !url.chars().any(|c| c.is_whitespace() || c.is_control()) => Ok(()),
        _ => Err(Error::bad_input(format!(
            "monitoring.alertmanager.webhook_url: the secret read from {source} is not an http:// or https:// URL \
             without spaces; put the webhook's URL in it"
        ))),
    }
}

//! `export helm-values`: the fleet as values for Rocket.Chat's Helm chart, and on request the
//! Kubernetes Secrets they refer to. Touches no server, except to read the generated MongoDB
//! password from the database host when `--secrets-manifest` needs it and the inventory does
//! not reference one. Everything is rendered before any file is written.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::hosts::Hosts;
use super::plan::set_mode;
use super::report::{Outcome, Reporter};
use super::secrets::Store;
use crate::error::{Error, Result};
use crate::fleet::{Fleet, SecretRef};
use crate::inventory;
use crate::remote::ConnectOptions;
use crate::render::helm::{self, Chart};
use crate::render::{Generated, SecretSource, PUBLIC_MODE, SECRET_MODE};

pub struct HelmExport {
    pub chart: &'static Chart,
    /// The values file's text (never holds a secret).
    pub values: String,
    /// Where the values were written; `None`: the text is the command's output.
    pub out: Option<PathBuf>,
    pub secrets_manifest: Option<PathBuf>,
}

pub struct HelmRequest<'a> {
    pub out: Option<&'a Path>,
    pub chart_version: Option<&'a str>,
    pub secrets_manifest: Option<&'a Path>,
}

pub fn helm_values(inventory_path: &Path, request: &HelmRequest, connect: &ConnectOptions) -> Result<HelmExport> {
    if request.out.is_some() && request.out == request.secrets_manifest {
        return Err(Error::bad_input("--out and --secrets-manifest name the same file; give the Secrets their own file"));
    }
    // Secret values are read only when the manifest is asked for.
    let fleet = match request.secrets_manifest {
        Some(_) => inventory::load(inventory_path)?,
        None => inventory::load_without_secrets(inventory_path)?,
    };
    let chart = helm::chart(request.chart_version)?;
    let values = helm::values(&fleet, chart, &inventory_path.display().to_string())?;
    let manifest = match request.secrets_manifest {
        Some(_) => Some(helm::secrets_manifest(&fleet, secret_source(&fleet, connect)?.as_ref())?),
        None => None,
    };
    if let Some(out) = request.out {
        write(out, &values, PUBLIC_MODE)?;
    }
    if let (Some(path), Some(manifest)) = (request.secrets_manifest, manifest) {
        write(path, &manifest, SECRET_MODE)?;
        Reporter::quiet_log().warn(format!(
            "{} holds secrets in clear text (MongoDB's URI with its password{}), mode 0600: apply it with kubectl, \
             then delete it; never commit it",
            path.display(),
            if fleet.workspace.license.is_some() { ", the licence" } else { "" }
        ));
    }
    Ok(HelmExport {
        chart,
        values,
        out: request.out.map(Path::to_path_buf),
        secrets_manifest: request.secrets_manifest.map(Path::to_path_buf),
    })
}

/// The secrets `up` would use: the inventory's references, and the generated MongoDB password
/// from the database host only when the inventory gives none.
fn secret_source(fleet: &Fleet, connect: &ConnectOptions) -> Result<Box<dyn SecretSource>> {
    let generated_needed = fleet.mongodb.auth && Generated::MongoAppPassword.reference(fleet).is_none();
    if !generated_needed {
        return Ok(Box::new(References));
    }
    let hosts = Hosts::connect_database(fleet, connect)?;
    Ok(Box::new(Store::load(fleet, hosts.host(&fleet.database_host().name))?))
}

/// Resolves the inventory's references only.
struct References;

impl SecretSource for References {
    fn value(&self, secret: &SecretRef) -> Result<String> {
        secret.resolve()
    }

    fn generated(&self, secret: Generated) -> Result<String> {
        Err(Error::failed(format!("the export asked for the generated secret {} it said it did not need (a bug in rcfleet)", secret.name())))
    }
}

/// Writes `text` to `path` with `mode`; a secret file is created 0600, never briefly readable.
fn write(path: &Path, text: &str, mode: u32) -> Result<()> {
    let failed = |err: std::io::Error| Error::failed(format!("cannot write {}: {err}; check that the folder exists and is writable", path.display()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    // An existing file keeps its old mode through open(): set it before writing.
    let mut file = options.open(path).map_err(failed)?;
    set_mode(path, mode).map_err(failed)?;
    std::io::Write::write_all(&mut file, text.as_bytes()).map_err(failed)
}

impl Outcome for HelmExport {
    fn to_text(&self) -> String {
        let Some(out) = &self.out else { return self.values.clone() };
        let mut text = format!("wrote {}: values for Helm chart rocketchat {}\n", out.display(), self.chart.version);
        if let Some(manifest) = &self.secrets_manifest {
            text.push_str(&format!("wrote {}: the Kubernetes Secrets they refer to (0600)\n", manifest.display()));
        }
        text
    }

    fn to_json(&self) -> Value {
        json!({
            "chart": {"name": "rocketchat", "version": self.chart.version, "repository": helm::CHART_REPOSITORY},
            "values_file": self.out.as_ref().map(|p| p.display().to_string()),
            "secrets_manifest": self.secrets_manifest.as_ref().map(|p| p.display().to_string()),
            "values": self.values,
        })
    }
}

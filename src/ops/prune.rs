//! `prune`: frees disk that rcfleet's own leftovers take on every host, never touching anything
//! else: Rocket.Chat images (the inventory's repository) older than the newest N releases on the
//! host, stopped containers labelled for this fleet whose unit the host no longer has, and
//! unused volumes of this fleet's compose projects that the host no longer has. The inventory's
//! release and whatever a container uses always stay. On the database host, backups beyond
//! `[backup] keep` go too (the oldest first, as after each new backup). `--dry-run` lists and
//! changes nothing.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::Path;

use bollard::query_parameters::{ListContainersOptionsBuilder, ListImagesOptionsBuilder, ListVolumesOptionsBuilder};
use serde_json::json;

use super::audit;
use super::backup::{self, Archive};
use super::hosts::Hosts;
use super::report::Outcome;
use super::run::{Run, RunOptions};
use crate::error::{Error, Result};
use crate::fleet::{Fleet, Host, Release};
use crate::remote::ConnectOptions;

pub struct PruneOptions {
    pub connect: ConnectOptions,
    /// How many of the newest Rocket.Chat releases on a host keep their image (at least 1).
    pub keep: usize,
    pub dry_run: bool,
}

/// A Rocket.Chat image on a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseImage {
    pub release: Release,
    /// `repository:tag`, how it is removed.
    pub reference: String,
    pub id: String,
    pub bytes: u64,
}

/// What prune removes (or, with `--dry-run`, would remove) on one host.
#[derive(Debug, Default)]
pub struct HostPrune {
    pub host: String,
    pub images: Vec<ReleaseImage>,
    /// `(unit/service, container id)`.
    pub containers: Vec<(String, String)>,
    pub volumes: Vec<String>,
    /// Backups beyond `[backup] keep` (database host only), oldest first.
    pub backups: Vec<Archive>,
}

pub struct PruneOutcome {
    pub dry_run: bool,
    pub keep: usize,
    /// `[backup] keep`.
    pub backup_keep: u32,
    pub hosts: Vec<HostPrune>,
}

/// The images to remove: all but the newest `keep` releases, the inventory's `current` release
/// and images a container (running or stopped) uses.
pub fn images_to_remove(images: &[ReleaseImage], keep: usize, current: &Release, in_use: &HashSet<String>) -> Vec<ReleaseImage> {
    let releases: BTreeSet<&Release> = images.iter().map(|i| &i.release).collect();
    let kept: Vec<&Release> = releases.into_iter().rev().take(keep.max(1)).collect();
    images
        .iter()
        .filter(|i| !kept.contains(&&i.release) && i.release != *current && !in_use.contains(&i.id))
        .cloned()
        .collect()
}

fn docker_error(host: &str, what: &str, e: impl std::fmt::Display) -> Error {
    Error::failed(format!("{host}: {what} through the Docker API failed: {e}"))
}

/// Looks at one host and decides what goes.
fn survey(fleet: &Fleet, remote: &Hosts, host: &Host, keep: usize) -> Result<HostPrune> {
    let conn = remote.host(&host.name);
    let units: HashSet<String> = crate::render::host_units(fleet, host).into_iter().map(|u| u.name).collect();
    let projects: HashSet<String> = units.iter().map(|u| fleet.project_name(u)).collect();
    let repository = &fleet.images.rocketchat.repository;
    let plan = remote.block_on(async {
        let docker = conn.docker().await?;
        let every = ListContainersOptionsBuilder::default().all(true).build();
        let containers = docker.list_containers(Some(every)).await.map_err(|e| docker_error(&host.name, "listing containers", e))?;
        let in_use: HashSet<String> = containers.iter().filter_map(|c| c.image_id.clone()).collect();
        let leftovers = containers
            .iter()
            .filter(|c| {
                let labels = c.labels.clone().unwrap_or_default();
                let ours = labels.get("io.rcfleet.fleet") == Some(&fleet.workspace.name);
                let stopped = !matches!(c.state.as_ref().map(|s| s.to_string()).as_deref(), Some("running" | "restarting" | "paused"));
                let unit = labels.get("io.rcfleet.unit").cloned().unwrap_or_default();
                ours && stopped && !units.contains(&unit)
            })
            .map(|c| {
                let labels = c.labels.clone().unwrap_or_default();
                let name = format!(
                    "{}/{}",
                    labels.get("io.rcfleet.unit").cloned().unwrap_or_default(),
                    labels.get("com.docker.compose.service").cloned().unwrap_or_default()
                );
                (name, c.id.clone().unwrap_or_default())
            })
            .collect();

        let images = docker
            .list_images(Some(ListImagesOptionsBuilder::default().build()))
            .await
            .map_err(|e| docker_error(&host.name, "listing images", e))?;
        let release_images: Vec<ReleaseImage> = images
            .iter()
            .flat_map(|image| {
                image.repo_tags.iter().filter_map(move |reference| {
                    let (repo, tag) = reference.rsplit_once(':')?;
                    (repo == repository).then_some(())?;
                    Some(ReleaseImage {
                        release: Release::parse(tag)?,
                        reference: reference.clone(),
                        id: image.id.clone(),
                        bytes: image.size.max(0) as u64,
                    })
                })
            })
            .collect();
        let images = images_to_remove(&release_images, keep, &fleet.workspace.release, &in_use);

        let prefix = format!("{}-", fleet.workspace.name);
        let dangling = HashMap::from([("dangling".to_string(), vec!["true".to_string()])]);
        let unused = docker
            .list_volumes(Some(ListVolumesOptionsBuilder::default().filters(&dangling).build()))
            .await
            .map_err(|e| docker_error(&host.name, "listing volumes", e))?;
        let volumes = unused
            .volumes
            .unwrap_or_default()
            .into_iter()
            .filter(|v| {
                let project = v.labels.get("com.docker.compose.project").map(String::as_str).unwrap_or("");
                project.starts_with(&prefix) && !projects.contains(project)
            })
            .map(|v| v.name)
            .collect();
        Ok(HostPrune { host: host.name.clone(), images, containers: leftovers, volumes, backups: Vec::new() })
    })?;
    let mut plan = plan;
    if host.name == fleet.database_host().name {
        plan.backups = backup::beyond_keep(fleet, conn)?;
    }
    Ok(plan)
}

/// Removes what `survey` chose on one host and writes it to the host's audit trail.
fn remove(fleet: &Fleet, remote: &Hosts, plan: &HostPrune) -> Result<()> {
    let conn = remote.host(&plan.host);
    let mut changes: Vec<String> = Vec::new();
    let result: Result<()> = remote.block_on(async {
        let docker = conn.docker().await?;
        for (name, id) in &plan.containers {
            docker.remove_container(id, None).await.map_err(|e| docker_error(&plan.host, &format!("removing container {name}"), e))?;
            changes.push(format!("pruned stopped container {name}"));
        }
        for image in &plan.images {
            let no_options: Option<bollard::query_parameters::RemoveImageOptions> = None;
            docker
                .remove_image(&image.reference, no_options, None)
                .await
                .map_err(|e| docker_error(&plan.host, &format!("removing image {}", image.reference), e))?;
            changes.push(format!("pruned image {}", image.reference));
        }
        for volume in &plan.volumes {
            let no_options: Option<bollard::query_parameters::RemoveVolumeOptions> = None;
            docker.remove_volume(volume, no_options).await.map_err(|e| docker_error(&plan.host, &format!("removing volume {volume}"), e))?;
            changes.push(format!("pruned volume {volume}"));
        }
        Ok(())
    });
    let result = result.and_then(|()| {
        if !plan.backups.is_empty() {
            backup::delete(conn, &plan.backups)?;
            changes.extend(plan.backups.iter().map(|a| format!("pruned backup {}", a.name())));
        }
        Ok(())
    });
    // What was removed before a failure is recorded too.
    audit::record(conn, fleet, "rcfleet prune", &changes)?;
    result
}

pub fn prune(inventory_path: &Path, options: &PruneOptions) -> Result<PruneOutcome> {
    let run = Run::open(
        inventory_path,
        &RunOptions {
            // Held while removing: an upgrade running meanwhile may have pulled an image it has not
            // started yet.
            lock: (!options.dry_run).then(|| "rcfleet prune".to_string()),
            ..RunOptions::new("prune", &options.connect)
        },
    )?;
    let (fleet, remote) = (&run.fleet, &run.hosts);
    let mut hosts = Vec::new();
    for host in &fleet.hosts {
        let plan = survey(&fleet, &remote, host, options.keep)?;
        if !options.dry_run {
            remove(&fleet, &remote, &plan)?;
        }
        hosts.push(plan);
    }
    Ok(PruneOutcome { dry_run: options.dry_run, keep: options.keep, backup_keep: fleet.backup.keep, hosts })
}

fn mib(bytes: u64) -> String {
    format!("{:.0} MiB", bytes as f64 / (1024.0 * 1024.0))
}

impl HostPrune {
    /// The images' sizes as Docker reports them; layers shared with a kept image stay on disk.
    fn image_bytes(&self) -> u64 {
        self.images.iter().map(|i| i.bytes).sum()
    }

    fn backup_bytes(&self) -> u64 {
        self.backups.iter().map(|a| a.bytes).sum()
    }
}

impl Outcome for PruneOutcome {
    fn to_text(&self) -> String {
        let verb = if self.dry_run { "would remove" } else { "removed" };
        let mut text = String::new();
        for host in &self.hosts {
            let mut parts = Vec::new();
            if !host.images.is_empty() {
                let names: Vec<&str> = host.images.iter().map(|i| i.reference.as_str()).collect();
                parts.push(format!("{} image(s), up to {} ({})", host.images.len(), mib(host.image_bytes()), names.join(", ")));
            }
            if !host.containers.is_empty() {
                let names: Vec<&str> = host.containers.iter().map(|(n, _)| n.as_str()).collect();
                parts.push(format!("{} stopped container(s) ({})", names.len(), names.join(", ")));
            }
            if !host.volumes.is_empty() {
                parts.push(format!("{} unused volume(s) ({})", host.volumes.len(), host.volumes.join(", ")));
            }
            if !host.backups.is_empty() {
                let names: Vec<&str> = host.backups.iter().map(|a| a.name()).collect();
                parts.push(format!("{} backup(s) beyond [backup] keep, {} ({})", names.len(), backup::size(host.backup_bytes()), names.join(", ")));
            }
            let what = if parts.is_empty() { "nothing to remove".to_string() } else { format!("{verb} {}", parts.join("; ")) };
            text.push_str(&format!("{:<10} {what}\n", host.host));
        }
        text.push_str(&format!(
            "kept the newest {} Rocket.Chat release(s) on each host, the inventory's release, every image a container uses \
             and the newest {} backup(s) ([backup] keep)\n",
            self.keep, self.backup_keep
        ));
        if self.dry_run {
            text.push_str("dry run: nothing was changed\n");
        }
        text
    }

    fn to_json(&self) -> serde_json::Value {
        json!({
            "dry_run": self.dry_run,
            "keep": self.keep,
            "backup_keep": self.backup_keep,
            "hosts": self.hosts.iter().map(|h| json!({
                "host": h.host,
                "images": h.images.iter().map(|i| json!({ "image": i.reference, "bytes": i.bytes })).collect::<Vec<_>>(),
                "image_bytes": h.image_bytes(),
                "containers": h.containers.iter().map(|(name, _)| name).collect::<Vec<_>>(),
                "volumes": h.volumes,
                "backups": h.backups.iter().map(|a| json!({ "name": a.name(), "bytes": a.bytes })).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(tag: &str, id: &str) -> ReleaseImage {
        ReleaseImage { release: Release::parse(tag).unwrap(), reference: format!("rocketchat/rocket.chat:{tag}"), id: id.into(), bytes: 1 }
    }

    fn removed(images: &[ReleaseImage], keep: usize, current: &str, in_use: &[&str]) -> Vec<String> {
        let in_use = in_use.iter().map(|s| s.to_string()).collect();
        images_to_remove(images, keep, &Release::parse(current).unwrap(), &in_use).into_iter().map(|i| i.reference).collect()
    }

    #[test]
    fn the_newest_releases_the_current_one_and_used_images_stay() {
        let images = [image("7.10.0", "a"), image("8.0.0", "b"), image("8.1.0", "c"), image("8.0.1", "d")];
        assert_eq!(removed(&images, 2, "8.1.0", &[]), ["rocketchat/rocket.chat:7.10.0", "rocketchat/rocket.chat:8.0.0"]);
        assert_eq!(removed(&images, 1, "8.1.0", &["a"]), ["rocketchat/rocket.chat:8.0.0", "rocketchat/rocket.chat:8.0.1"]);
        // After a rollback the inventory's release may be older than the newest image.
        assert_eq!(removed(&images, 1, "8.0.0", &[]), ["rocketchat/rocket.chat:7.10.0", "rocketchat/rocket.chat:8.0.1"]);
        assert!(removed(&images, 4, "8.1.0", &[]).is_empty());
        assert_eq!(removed(&images, 0, "8.1.0", &[]).len(), 3, "keep 0 keeps one");
    }
}

//! Rules between values: one database host, one Traefik host, unique names and addresses,
//! at least one instance, no two listeners on one port of one host, root_url on the domain.

use std::collections::BTreeMap;
use std::ops::Range;

use toml_edit::{Table, TableLike};

use super::source::Problems;
use crate::compat::{self, Support};
use crate::fleet::{Fleet, Role, Tls};

/// Finds the span of a key path such as `hosts[2].port` in the parsed document: the deepest
/// part of the path that exists, so a missing key points at its table.
pub(super) struct Locator<'d> {
    root: &'d Table,
}

impl<'d> Locator<'d> {
    pub(super) fn new(root: &'d Table) -> Locator<'d> {
        Locator { root }
    }

    pub(super)     fn span(&self, path: &str) -> Option<Range<usize>> {
        let mut table: &dyn TableLike = self.root;
        let mut best = None;
        for part in path.split('.') {
            let (key, index) = match part.split_once('[') {
                Some((key, rest)) => (key, rest.trim_end_matches(']').parse::<usize>().ok()),
                None => (part, None),
            };
            let Some(item) = table.get(key) else { break };
            best = item.span().or(best);
            let next: Option<&dyn TableLike> = match index {
                Some(index) => item.as_array_of_tables().and_then(|tables| tables.get(index)).map(|t| {
                    best = t.span().or(best.clone());
                    t as &dyn TableLike
                }),
                None => item.as_table_like(),
            };
            match next {
                Some(next) => table = next,
                None => break,
            }
        }
        best
    }
}

pub fn fleet(fleet: &Fleet, root: &Table, problems: &mut Problems) {
    let locate = Locator::new(root);
    let mut report = |path: &str, message: String| problems.report(locate.span(path), path, message);
    role_counts(fleet, &mut report);
    unique_hosts(fleet, &mut report);
    if fleet.instances().next().is_none() && fleet.hosts_with(Role::Rocketchat).next().is_none() {
        report("hosts", "no Rocket.Chat instance; give at least one host roles = [\"rocketchat\"] and instances = 1 or more".into());
    }
    for (index, _) in fleet.hosts.iter().enumerate() {
        port_collisions(fleet, index, &mut report);
    }
    domain_matches_root_url(fleet, &mut report);
    let version_written = root.get("mongodb").and_then(|m| m.get("version")).is_some();
    mongodb_runs_the_release(fleet, version_written, &mut report);
    mongodb_tag_is_the_version(fleet, &mut report);
}

/// `mongodb.version` must be one the release supports (`compat`), unless the operator said
/// `mongodb.allow_unsupported = true` (then every command warns instead). Reported at the
/// version, or at the release when the version is the default.
fn mongodb_runs_the_release(fleet: &Fleet, version_written: bool, report: &mut impl FnMut(&str, String)) {
    let (release, version) = (&fleet.workspace.release, &fleet.mongodb.version);
    if fleet.mongodb.allow_unsupported || version.is_empty() {
        return;
    }
    if let Support::Unsupported(list) = compat::mongodb_support(release, version) {
        let (key, default) = if version_written { ("mongodb.version", "") } else { ("workspace.release", " (the default)") };
        report(
            key,
            format!(
                "MongoDB {version}{default} is not supported by Rocket.Chat {release} ({}.x runs on MongoDB {}); set \
                 [mongodb] version to one of them (it also picks the MongoDB image), or add `allow_unsupported = true` to \
                 [mongodb] to run this combination anyway",
                release.major,
                list.join(", ")
            ),
        );
    }
}

/// An explicit MongoDB image tag must not contradict `mongodb.version` (`8.0-ubi8` with
/// version 8.2): the version is what compatibility checks and upgrades go by.
fn mongodb_tag_is_the_version(fleet: &Fleet, report: &mut impl FnMut(&str, String)) {
    let (tag, version) = (&fleet.images.mongodb.tag, &fleet.mongodb.version);
    match compat::tag_major_minor(tag) {
        Some(tagged) if !version.is_empty() && &tagged != version => report(
            "images.mongodb.tag",
            format!(
                "the tag {tag:?} is MongoDB {tagged} but mongodb.version is {version:?}; make them agree, or remove the \
                 tag (it then follows mongodb.version: \"{version}-ubi8\")"
            ),
        ),
        _ => {}
    }
}

fn role_counts(fleet: &Fleet, report: &mut impl FnMut(&str, String)) {
    let names = |role| fleet.hosts_with(role).map(|h| h.name.clone()).collect::<Vec<_>>();
    for (role, at_least_one) in [(Role::Database, true), (Role::Traefik, true), (Role::Monitoring, false)] {
        let holders = names(role);
        if holders.is_empty() && at_least_one {
            report("hosts", format!("no host has the \"{role}\" role; add it to exactly one host's roles"));
        }
        if holders.len() > 1 {
            let second = fleet.hosts.iter().rposition(|h| h.has_role(role)).unwrap_or(0);
            report(
                &format!("hosts[{second}].roles"),
                format!("the \"{role}\" role is on {} hosts ({}); keep it on exactly one", holders.len(), holders.join(", ")),
            );
        }
    }
}

fn unique_hosts(fleet: &Fleet, report: &mut impl FnMut(&str, String)) {
    let mut names = BTreeMap::new();
    let mut addresses = BTreeMap::new();
    let mut private = BTreeMap::new();
    for (index, host) in fleet.hosts.iter().enumerate() {
        if !host.name.is_empty() {
            if let Some(first) = names.insert(host.name.clone(), index) {
                report(&format!("hosts[{index}].name"), format!("host name {:?} is already used by hosts[{first}]; names must be unique", host.name));
            }
        }
        if !host.address.is_empty() {
            if let Some(first) = addresses.insert((host.address.to_ascii_lowercase(), host.ssh.port_or_default()), index) {
                report(
                    &format!("hosts[{index}].address"),
                    format!("address {:?} is already used by hosts[{first}]; put several roles on one host instead of listing it twice", host.address),
                );
                continue;
            }
        }
        // Every service listens on its host's private address (host networking) and every URL
        // other hosts use is built from it: two hosts sharing one (two SSH ports forwarded to
        // one IP, or a private address copied from another host) would both claim e.g.
        // http://10.0.0.31:3000.
        if !host.private_address.is_empty() {
            if let Some(first) = private.insert(host.private_address.to_ascii_lowercase(), index) {
                let (key, whose) = if host.private_address == host.address {
                    ("address", "its address (it has no private_address)")
                } else {
                    ("private_address", "its private address")
                };
                report(
                    &format!("hosts[{index}].{key}"),
                    format!(
                        "{whose} {:?} is already used by hosts[{first}]; services listen on it and the other hosts \
                         reach them by it, so give each host its own private_address",
                        host.private_address
                    ),
                );
            }
        }
    }
}

/// Two listeners of one host on one port (every service uses host networking).
fn port_collisions(fleet: &Fleet, index: usize, report: &mut impl FnMut(&str, String)) {
    let mut seen: BTreeMap<u16, String> = BTreeMap::new();
    for listener in fleet.listeners(index) {
        if let Some(first) = seen.get(&listener.port) {
            report(
                &listener.key,
                format!(
                    "port {} on host {:?} would be used by both {first} and {}; move one of them to a free port",
                    listener.port, fleet.hosts[index].name, listener.what
                ),
            );
        } else {
            seen.insert(listener.port, listener.what);
        }
    }
}

fn domain_matches_root_url(fleet: &Fleet, report: &mut impl FnMut(&str, String)) {
    let Ok(host) = super::values::root_url(&fleet.workspace.root_url) else { return };
    if !fleet.traefik.domain.is_empty() && host != fleet.traefik.domain {
        report(
            "workspace.root_url",
            format!(
                "its host {host:?} differs from traefik.domain {:?}; users reach the workspace through Traefik, so make them the same",
                fleet.traefik.domain
            ),
        );
    }
    let https = fleet.workspace.root_url.starts_with("https://");
    if !https && fleet.traefik.tls != Tls::None {
        report("workspace.root_url", "Traefik serves HTTPS (traefik.tls) but root_url starts with http://; use https://".into());
    }
}

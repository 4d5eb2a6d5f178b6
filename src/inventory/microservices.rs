//! `[microservices]`: reads and checks the table (issue 18 item 1). Only `enabled = true` is
//! needed; every other key has a default:
//!
//! ```toml
//! [microservices]
//! enabled = true
//! services = ["account", "presence", ...]   # default: every service the release has
//! ddp_streamers = 3                          # or concurrent_users = 1400 (one per 500 users)
//! [microservices.replicas]                   # default 1 each; ddp-streamer is sized above
//! presence = 2
//! [microservices.placement]                  # default: spread over the rocketchat hosts
//! ddp-streamer = ["app1", "app2"]         # in turn, replica by replica
//! ```

use std::collections::BTreeMap;

use super::reader::Section;
use super::source::Problems;
use crate::fleet::{Host, Release, Role};
use crate::microservices::{ddp_streamers_for, DdpSizing, Microservices, Service};

/// What the table's checks need from the rest of the inventory.
pub(super) struct Context<'a> {
    pub release: &'a Release,
    pub has_license: bool,
    pub hosts: &'a [Host],
}

pub(super) fn microservices(top: &Section, context: &Context, problems: &mut Problems) -> Microservices {
    let Some(section) = top.table("microservices", false, problems) else {
        return Microservices::disabled();
    };
    section.reject_unknown_keys(&super::schema::names(super::schema::MICROSERVICES), problems);
    let enabled = section.boolean("enabled", problems).unwrap_or(false);
    if enabled && !context.has_license {
        problems.report(
            section.value_span("enabled"),
            &section.key_path("enabled"),
            "microservices need a Rocket.Chat licence with the `scalability` module (without it the services shut \
             themselves down after two licence checks); add workspace.license = { env = \"NAME\" } or { file = \"path\" }, \
             or set enabled = false",
        );
    }
    if enabled {
        // Instances are `<host>-<n>`, service containers `<service>-<n>`: both name compose
        // projects and container host names, which must be unique.
        for host in context.hosts.iter().filter(|h| h.has_role(Role::Rocketchat)) {
            if Service::from_name(&host.name).is_some() {
                problems.report(
                    section.value_span("enabled"),
                    &section.key_path("enabled"),
                    format!(
                        "the rocketchat host {:?} has the name of a microservice, so its instances would share names \
                         with that service's containers; rename the host",
                        host.name
                    ),
                );
            }
        }
    }
    let services = services(&section, context.release, problems);
    let app_hosts = context.hosts.iter().filter(|h| h.has_role(Role::Rocketchat)).count() as u32;
    let (ddp_streamers, ddp_sizing) = ddp_streamers(&section, app_hosts, problems);
    Microservices {
        enabled,
        replicas: replicas(&section, &services, problems),
        placement: placement(&section, context.hosts, problems),
        services,
        ddp_streamers,
        ddp_sizing,
        repository: super::read::checked_or(
            &section,
            "repository",
            crate::microservices::DEFAULT_REPOSITORY,
            super::values::image_repository,
            problems,
        ),
    }
}

/// A service name at `span` of `key`, reported when unknown.
fn service(name: &str, span: Option<std::ops::Range<usize>>, key: &str, problems: &mut Problems) -> Option<Service> {
    let found = Service::from_name(name);
    if found.is_none() {
        let known: Vec<&str> = Service::ALL.iter().map(|s| s.name()).collect();
        problems.report(span, key, format!("unknown service {name:?}; use any of {}", known.join(", ")));
    }
    found
}

fn services(section: &Section, release: &Release, problems: &mut Problems) -> Vec<Service> {
    let Some(names) = section.strings("services", false, problems) else {
        return Service::all_in(release);
    };
    let key = section.key_path("services");
    if names.is_empty() {
        problems.report(section.value_span("services"), &key, "no service listed; name at least one, or remove the key to run every service");
    }
    let mut services = Vec::new();
    for (name, span) in names {
        let Some(found) = service(&name, span.clone(), &key, problems) else { continue };
        if services.contains(&found) {
            problems.report(span, &key, format!("service {name:?} is listed twice"));
        } else if !found.exists_in(release) {
            problems.report(
                span,
                &key,
                format!(
                    "{name} was removed in Rocket.Chat 8.0 (workspace.release is {release}); remove it from the list"
                ),
            );
        } else {
            services.push(found);
        }
    }
    services.sort();
    // omnichannel-transcript waits on the bus for queue-worker before it starts
    // (`dependencies` in Rocket.Chat's ee/apps/omnichannel-transcript/src/service.ts).
    if services.contains(&Service::OmnichannelTranscript) && !services.contains(&Service::QueueWorker) {
        problems.report(
            section.value_span("services"),
            &key,
            "omnichannel-transcript waits for queue-worker on the bus and never starts without it; add \"queue-worker\" \
             or remove \"omnichannel-transcript\"",
        );
    }
    services
}

fn replicas(section: &Section, services: &[Service], problems: &mut Problems) -> BTreeMap<Service, u32> {
    let mut replicas = BTreeMap::new();
    let Some(table) = section.table("replicas", false, problems) else {
        return replicas;
    };
    for (name, item, key_span) in table.entries() {
        let key = table.key_path(name);
        let Some(found) = service(name, key_span.clone(), &key, problems) else { continue };
        let limit = match found {
            Service::DdpStreamer => {
                problems.report(key_span, &key, "ddp-streamers are sized by ddp_streamers = N or concurrent_users = U in [microservices]; move the number there");
                continue;
            }
            // The chart and the docs run exactly one: it reads MongoDB's change streams.
            Service::StreamHub => 1,
            _ => 100,
        };
        if !services.contains(&found) {
            problems.report(key_span, &key, format!("{name} is not in microservices.services; add it there or remove this line"));
            continue;
        }
        match item.as_integer() {
            Some(n) if (1..=limit).contains(&n) => {
                replicas.insert(found, n as u32);
            }
            _ if found == Service::StreamHub => {
                problems.report(item.span(), &key, "stream-hub runs exactly once; remove this line or write 1")
            }
            _ => problems.report(item.span(), &key, format!("expected a number of replicas from 1 to {limit}")),
        }
    }
    replicas
}

fn ddp_streamers(section: &Section, app_hosts: u32, problems: &mut Problems) -> (u32, DdpSizing) {
    if section.has("ddp_streamers") && section.has("concurrent_users") {
        problems.report(
            section.value_span("concurrent_users"),
            &section.key_path("concurrent_users"),
            "give either ddp_streamers (a number of containers) or concurrent_users (sized at one per 500 users), not both",
        );
    }
    if section.has("ddp_streamers") {
        let n = section.number_in("ddp_streamers", 1..=1000, 1, problems).unwrap_or(1);
        return (n as u32, DdpSizing::Given);
    }
    if section.has("concurrent_users") {
        let users = section.number_in("concurrent_users", 1..=10_000_000, 1, problems).unwrap_or(1) as u32;
        return (ddp_streamers_for(users, app_hosts), DdpSizing::ConcurrentUsers(users));
    }
    (app_hosts.max(1), DdpSizing::PerAppHost)
}

fn placement(section: &Section, hosts: &[Host], problems: &mut Problems) -> BTreeMap<Service, Vec<String>> {
    let mut placement = BTreeMap::new();
    let Some(table) = section.table("placement", false, problems) else {
        return placement;
    };
    for (name, _, key_span) in table.entries() {
        let key = table.key_path(name);
        let Some(found) = service(name, key_span, &key, problems) else { continue };
        let Some(names) = table.strings(name, true, problems) else { continue };
        let mut chosen = Vec::new();
        for (host, span) in names {
            // A host listed twice takes two turns: `add-instance --service S --host H` writes
            // one host per replica.
            if !hosts.iter().any(|h| h.name == host) {
                problems.report(span, &key, format!("{host:?} is not a host of this inventory; use the name of a [[hosts]] entry"));
            } else {
                chosen.push(host);
            }
        }
        placement.insert(found, chosen);
    }
    placement
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::microservices::{DdpSizing, Microservices, Service};

    const BASE: &str = r#"
[workspace]
name = "chat"
root_url = "http://chat.example.com"
release = "RELEASE"
license = { env = "LICENSE" }
[[hosts]]
name = "db"
address = "10.0.0.10"
roles = ["database", "traefik"]
[[hosts]]
name = "app1"
address = "10.0.0.31"
roles = ["rocketchat"]
instances = 1
[[hosts]]
name = "app2"
address = "10.0.0.32"
roles = ["rocketchat"]
instances = 1
[traefik]
domain = "chat.example.com"
[mongodb]
version = "MONGO"
"#;

    fn read(release: &str, mongo: &str, table: &str) -> Microservices {
        let text = format!("{}{table}", BASE.replace("RELEASE", release).replace("MONGO", mongo));
        crate::inventory::parse(&text, Path::new("inventory.toml")).unwrap().microservices
    }

    #[test]
    fn absent_table_is_disabled() {
        assert!(!read("8.6.1", "8.0", "").enabled);
    }

    #[test]
    fn enabled_alone_is_complete_with_defaults_per_release() {
        let ms = read("8.6.1", "8.0", "[microservices]\nenabled = true\n");
        assert!(ms.enabled);
        assert_eq!(ms.services, Service::ALL[..6].to_vec(), "every 8.x service, no stream-hub");
        assert_eq!((ms.ddp_streamers, ms.ddp_sizing), (2, DdpSizing::PerAppHost), "one per app host");
        assert_eq!(ms.replicas_of(Service::Presence), 1);
        let seven = read("7.11.0", "7.0", "[microservices]\nenabled = true\n");
        assert!(seven.services.contains(&Service::StreamHub));
    }

    #[test]
    fn concurrent_users_size_ddp_streamers_and_replicas_are_read() {
        let ms = read(
            "8.6.1",
            "8.0",
            "[microservices]\nenabled = true\nconcurrent_users = 2001\nservices = [\"presence\", \"ddp-streamer\"]\n\
             [microservices.replicas]\npresence = 3\n[microservices.placement]\npresence = [\"app2\"]\n",
        );
        assert_eq!((ms.ddp_streamers, ms.ddp_sizing), (5, DdpSizing::ConcurrentUsers(2001)));
        assert_eq!(ms.replicas_of(Service::Presence), 3);
        assert_eq!(ms.replicas_of(Service::Account), 0, "not in services");
        assert_eq!(ms.placement[&Service::Presence], ["app2"]);
    }
}

//! Rocket.Chat's microservices: which services exist for a release, and the desired
//! microservices setup of a fleet (`[microservices]` in the inventory). One home for these
//! facts; the inventory reads into [`Microservices`], renderers and operations read from it.
//!
//! Sources (`shared/reference/microservices-and-mongodb.md`, part A):
//! - the services and their Docker Hub images: Rocket.Chat `.github/workflows/ci.yml`
//!   (job `services-docker-image-publish`, `rocketchat/<name>-service`, singular
//!   `account-service` whatever some docs write, tagged with the release like the monolith) and
//!   `docker-compose-ci.yml` (A.1); stream-hub was removed in 8.0 (Rocket.Chat PR #35964).
//! - one ddp-streamer per 500 concurrent users (Rocket.Chat docs "Microservices", A.7).
//! - microservices need a licence with the `scalability` module, or the services shut
//!   themselves down (`EnterpriseCheck.ts`, A.8).

use std::collections::BTreeMap;
use std::fmt;

use crate::fleet::{Fleet, Image, Release, Role};

/// Concurrent users one ddp-streamer is sized for.
pub const USERS_PER_DDP_STREAMER: u32 = 500;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Service {
    Account,
    Authorization,
    Presence,
    DdpStreamer,
    QueueWorker,
    OmnichannelTranscript,
    /// Deprecated in 7.x, removed from 8.0.
    StreamHub,
}

impl Service {
    pub const ALL: [Service; 7] = [
        Service::Account,
        Service::Authorization,
        Service::Presence,
        Service::DdpStreamer,
        Service::QueueWorker,
        Service::OmnichannelTranscript,
        Service::StreamHub,
    ];

    /// The name in the inventory and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Service::Account => "account",
            Service::Authorization => "authorization",
            Service::Presence => "presence",
            Service::DdpStreamer => "ddp-streamer",
            Service::QueueWorker => "queue-worker",
            Service::OmnichannelTranscript => "omnichannel-transcript",
            Service::StreamHub => "stream-hub",
        }
    }

    pub fn from_name(name: &str) -> Option<Service> {
        Service::ALL.into_iter().find(|service| service.name() == name)
    }

    /// Whether Rocket.Chat publishes this service for `release`.
    pub fn exists_in(self, release: &Release) -> bool {
        self != Service::StreamHub || release.major < 8
    }

    /// Every service `release` has, in [`Service::ALL`] order.
    pub fn all_in(release: &Release) -> Vec<Service> {
        Service::ALL.into_iter().filter(|service| service.exists_in(release)).collect()
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How the number of ddp-streamers was chosen (said in `plan` and in exports).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DdpSizing {
    /// `ddp_streamers = N`.
    Given,
    /// `concurrent_users = U`: one per [`USERS_PER_DDP_STREAMER`], at least one per app host.
    ConcurrentUsers(u32),
    /// Neither key: one per host with the `rocketchat` role.
    PerAppHost,
}

/// `[microservices]`: disabled (the default) or the services to run and how many of each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Microservices {
    pub enabled: bool,
    /// The services to run, in [`Service::ALL`] order (default: every one the release has).
    pub services: Vec<Service>,
    /// Replicas of every service but ddp-streamer (default 1).
    pub replicas: BTreeMap<Service, u32>,
    pub ddp_streamers: u32,
    pub ddp_sizing: DdpSizing,
    /// `[microservices.placement]`: the hosts a service runs on, when the inventory names them.
    pub placement: BTreeMap<Service, Vec<String>>,
    /// `microservices.repository`: where the service images are, `<repository>/<name>-service`.
    pub repository: String,
}

impl Microservices {
    pub fn disabled() -> Microservices {
        Microservices {
            enabled: false,
            services: Vec::new(),
            replicas: BTreeMap::new(),
            ddp_streamers: 0,
            ddp_sizing: DdpSizing::PerAppHost,
            placement: BTreeMap::new(),
            repository: DEFAULT_REPOSITORY.to_string(),
        }
    }

    /// The image of `service` at `release`: every container of a fleet runs the same tag
    /// (mixed versions on one bus may not understand each other, reference A.2).
    pub fn image(&self, service: Service, release: &Release) -> Image {
        Image { repository: format!("{}/{}-service", self.repository, service.name()), tag: release.to_string() }
    }

    /// How many containers of `service` run: 0 when it is not run at all.
    pub fn replicas_of(&self, service: Service) -> u32 {
        if !self.enabled || !self.services.contains(&service) {
            0
        } else if service == Service::DdpStreamer {
            self.ddp_streamers
        } else {
            self.replicas.get(&service).copied().unwrap_or(1)
        }
    }
}

/// Docker Hub's `rocketchat` namespace, where Rocket.Chat publishes the service images.
pub const DEFAULT_REPOSITORY: &str = "docker.io/rocketchat";

/// First HTTP (`PORT`, `/health`, ddp-streamer's WebSocket) and metrics (`MS_METRICS_PORT`)
/// ports of the service containers on a host. Away from the instances' 3000+ and 9458+ (every
/// image defaults to 3000 and 9458, reference A.9) and from NATS' 4222.
pub const FIRST_SERVICE_PORT: u16 = 3100;
pub const FIRST_SERVICE_METRICS_PORT: u16 = 9600;
/// Each service has a block of this many ports per host (its n-th container on a host takes
/// the block's n-th port), so adding or removing a service's last container never moves
/// another container to another port (which would recreate it).
pub const PORTS_PER_SERVICE: u16 = 100;

/// One service container: which service, where, and its ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceContainer {
    pub service: Service,
    /// `<service>-<n>`, n counting the service's replicas from 0, e.g. `ddp-streamer-2`.
    pub name: String,
    pub host: String,
    pub private_address: String,
    pub port: u16,
    pub metrics_port: u16,
}

impl ServiceContainer {
    /// The URL Traefik sends requests to (ddp-streamer) and `/health` is asked at.
    pub fn url(&self) -> String {
        format!("http://{}:{}", self.private_address, self.port)
    }

    /// The `host:port` Prometheus scrapes.
    pub fn metrics_target(&self) -> String {
        format!("{}:{}", self.private_address, self.metrics_port)
    }
}

/// The host of replica `replica` of `service`: with `[microservices.placement]` the listed hosts
/// in turn (a host listed twice takes two turns), else the `rocketchat` hosts in turn, each
/// service starting one host further than the one before so that single services spread out.
/// Only the service and the replica's number decide, so adding or removing a service's last
/// replica leaves every other container where it is.
fn host_of<'a>(ms: &'a Microservices, app_hosts: &[&'a str], service: Service, replica: usize) -> &'a str {
    match ms.placement.get(&service).filter(|hosts| !hosts.is_empty()) {
        Some(hosts) => hosts[replica % hosts.len()].as_str(),
        None => app_hosts[(service as usize + replica) % app_hosts.len()],
    }
}

/// Every service container of the fleet (none when microservices are off), services in
/// [`Service::ALL`] order, replicas in order. Ports: the service's block on the host
/// ([`PORTS_PER_SERVICE`]), the n-th container of that service on that host its n-th port.
pub fn containers(fleet: &Fleet) -> Vec<ServiceContainer> {
    let ms = &fleet.microservices;
    let app_hosts: Vec<&str> = fleet.hosts_with(Role::Rocketchat).map(|h| h.name.as_str()).collect();
    let mut containers = Vec::new();
    if !ms.enabled || app_hosts.is_empty() {
        return containers;
    }
    for &service in &ms.services {
        let mut per_host: BTreeMap<&str, u16> = BTreeMap::new();
        let block = service as u16 * PORTS_PER_SERVICE;
        for replica in 0..ms.replicas_of(service) as usize {
            let Some(host) = fleet.host(host_of(ms, &app_hosts, service, replica)) else { continue };
            let k = per_host.entry(host.name.as_str()).or_default();
            containers.push(ServiceContainer {
                service,
                name: format!("{service}-{replica}"),
                host: host.name.clone(),
                private_address: host.private_address.clone(),
                port: FIRST_SERVICE_PORT.saturating_add(block + *k),
                metrics_port: FIRST_SERVICE_METRICS_PORT.saturating_add(block + *k),
            });
            *k += 1;
        }
    }
    containers
}

/// ddp-streamers for `users` concurrent users: one per [`USERS_PER_DDP_STREAMER`], rounded up,
/// and never fewer than `app_hosts` (every app host gets one) or 1.
pub fn ddp_streamers_for(users: u32, app_hosts: u32) -> u32 {
    users.div_ceil(USERS_PER_DDP_STREAMER).max(app_hosts).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_hub_is_gone_from_8() {
        let release = |s| Release::parse(s).unwrap();
        assert!(Service::all_in(&release("7.11.0")).contains(&Service::StreamHub));
        assert!(!Service::all_in(&release("8.0.0")).contains(&Service::StreamHub));
        assert_eq!(Service::all_in(&release("8.6.1")).len(), 6);
    }

    #[test]
    fn names_round_trip() {
        for service in Service::ALL {
            assert_eq!(Service::from_name(service.name()), Some(service));
        }
    }

    #[test]
    fn containers_spread_over_app_hosts_with_ports_unique_per_host() {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/microservices.toml")).unwrap();
        let mut fleet = crate::inventory::parse(&text, std::path::Path::new("microservices.toml")).unwrap();
        let all = containers(&fleet);
        // account 2, authorization 1, presence 2, ddp-streamer 5 (2400 users), queue-worker 1, transcript 1.
        assert_eq!(all.len(), 12);
        let names: std::collections::BTreeSet<&str> = all.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names.len(), all.len(), "names are unique in the fleet (they are the containers' host names)");
        for host in ["app1", "app2"] {
            let mine: Vec<&ServiceContainer> = all.iter().filter(|c| c.host == host).collect();
            assert!(mine.len() >= 5, "{host}: spread over the app hosts, got {}", mine.len());
            let ports: std::collections::BTreeSet<u16> = mine.iter().flat_map(|c| [c.port, c.metrics_port]).collect();
            assert_eq!(ports.len(), 2 * mine.len(), "{host}: every port once");
            assert!(ports.iter().all(|p| *p >= FIRST_SERVICE_PORT && !(9458..9560).contains(p)));
        }
        for service in [Service::Account, Service::Presence, Service::DdpStreamer] {
            let hosts: std::collections::BTreeSet<&str> =
                all.iter().filter(|c| c.service == service).map(|c| c.host.as_str()).collect();
            assert_eq!(hosts.len(), 2, "{service}: its replicas spread over both app hosts");
        }
        assert_eq!(
            fleet.microservices.image(Service::DdpStreamer, &fleet.workspace.release).to_string(),
            "docker.io/rocketchat/ddp-streamer-service:8.6.1"
        );
        fleet.microservices.placement.insert(Service::Presence, vec!["app2".into()]);
        assert!(containers(&fleet).iter().filter(|c| c.service == Service::Presence).all(|c| c.host == "app2"));
        fleet.microservices.enabled = false;
        assert!(containers(&fleet).is_empty());
    }

    #[test]
    fn one_more_replica_moves_no_other_container() {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/microservices.toml")).unwrap();
        let mut fleet = crate::inventory::parse(&text, std::path::Path::new("microservices.toml")).unwrap();
        let before = containers(&fleet);
        fleet.microservices.ddp_streamers += 1;
        fleet.microservices.replicas.insert(Service::Account, 3);
        let after = containers(&fleet);
        assert_eq!(after.len(), before.len() + 2);
        for old in &before {
            assert!(after.contains(old), "{} moved", old.name);
        }
        let new_ones: Vec<&str> = after.iter().filter(|c| !before.contains(c)).map(|c| c.name.as_str()).collect();
        assert_eq!(new_ones, ["account-2", "ddp-streamer-5"]);
    }

    #[test]
    fn a_host_listed_twice_takes_two_turns() {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/microservices.toml")).unwrap();
        let mut fleet = crate::inventory::parse(&text, std::path::Path::new("microservices.toml")).unwrap();
        fleet.microservices.placement.insert(Service::DdpStreamer, vec!["app1".into(), "app2".into(), "app1".into()]);
        let hosts: Vec<String> =
            containers(&fleet).into_iter().filter(|c| c.service == Service::DdpStreamer).map(|c| c.host).collect();
        assert_eq!(hosts, ["app1", "app2", "app1", "app1", "app2"]);
    }

    #[test]
    fn ddp_streamers_one_per_500_users_at_least_one_per_app_host() {
        assert_eq!(ddp_streamers_for(1, 1), 1);
        assert_eq!(ddp_streamers_for(500, 1), 1);
        assert_eq!(ddp_streamers_for(501, 1), 2);
        assert_eq!(ddp_streamers_for(1200, 4), 4);
        assert_eq!(ddp_streamers_for(0, 0), 1);
    }
}

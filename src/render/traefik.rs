//! The Traefik unit: static configuration (entry points, file provider on a watched
//! directory, API and ping on 127.0.0.1 only, metrics on the private address, ACME when
//! asked) and the dynamic files: the Rocket.Chat router and servers, the Grafana route, the
//! certificate in `files` mode.

use serde_json::json;

use super::{digest, labels, templates, Artifact, Unit};
use crate::error::{Error, Result};
use crate::fleet::{Fleet, Host, Instance, Tls};
use crate::microservices::{self, Service, ServiceContainer};

/// The dynamic file listing the Rocket.Chat servers, relative to the deploy dir: rewrite it
/// (atomically, `*.tmp` then rename) to add, drain or remove instances; Traefik notices by itself.
pub const TRAEFIK_DYNAMIC_PATH: &str = "traefik/dynamic/rocketchat.yml";

/// Where the `files` mode certificate and key appear inside the container.
const CERT_IN_CONTAINER: &str = "/etc/traefik/certs/cert.pem";
const KEY_IN_CONTAINER: &str = "/etc/traefik/certs/key.pem";

/// The dynamic Rocket.Chat file with exactly `instances_in_service` behind the router (e.g.
/// every instance but the one being drained) and, in microservices mode, `ddp_streamers` behind
/// the `/websocket` and `/sockjs` router. Without ddp-streamers that router is left out, so
/// WebSocket and SockJS stay with the instances (a streamer is listed only once it is ready).
pub fn traefik_dynamic(fleet: &Fleet, instances_in_service: &[&Instance], ddp_streamers: &[&ServiceContainer]) -> Result<String> {
    let servers: Vec<String> = instances_in_service.iter().map(|instance| instance.url()).collect();
    let rule = host_rule(fleet)?;
    let mut data = router(fleet, rule.clone());
    data["servers"] = json!(servers);
    // Microservices: WebSocket and SockJS go to the ddp-streamers, the rest to the instances
    // (Rocket.Chat's Helm chart ingress and CI compose labels; reference A.6). Traefik tries
    // longer rules first, so this router wins over the plain host rule.
    let ddp_streamers: Vec<String> = ddp_streamers.iter().map(|c| c.url()).collect();
    data["ddp"] = if ddp_streamers.is_empty() {
        json!(null)
    } else {
        json!({
            "rule": format!("{rule} && (PathPrefix(`/websocket`) || PathPrefix(`/sockjs`))"),
            "servers": ddp_streamers,
        })
    };
    data["secure_cookie"] = json!(!matches!(fleet.traefik.tls, Tls::None));
    templates::render("traefik-rocketchat", &data)
}

/// Every ddp-streamer of the fleet (none when microservices are off).
pub fn ddp_streamers(fleet: &Fleet) -> Vec<ServiceContainer> {
    microservices::containers(fleet).into_iter().filter(|c| c.service == Service::DdpStreamer).collect()
}

/// ``Host(`domain`)``. Traefik's rule syntax has no escape inside backticks.
fn host_rule(fleet: &Fleet) -> Result<String> {
    let domain = &fleet.traefik.domain;
    if domain.contains('`') {
        return Err(Error::bad_input(
            "traefik.domain: contains a backtick, which cannot appear in a Traefik rule; give a DNS name",
        ));
    }
    Ok(format!("Host(`{domain}`)"))
}

/// What every router shares: entry point and TLS per mode.
fn router(fleet: &Fleet, rule: String) -> serde_json::Value {
    let (entry_point, cert_resolver, tls_files) = match &fleet.traefik.tls {
        Tls::None => ("web", None, false),
        Tls::LetsEncrypt { .. } => ("websecure", Some("letsencrypt"), false),
        Tls::Files { .. } => ("websecure", None, true),
    };
    json!({
        "entry_point": entry_point,
        "rule": rule,
        "cert_resolver": cert_resolver,
        "tls_files": tls_files,
    })
}

pub fn render(fleet: &Fleet, host: &Host, unit: &Unit) -> Result<Vec<Artifact>> {
    let dir = &unit.dir;
    let settings = &fleet.traefik;
    let tls = !matches!(settings.tls, Tls::None);
    let letsencrypt = match &settings.tls {
        Tls::LetsEncrypt { email } => json!({ "email": email }),
        _ => json!(null),
    };
    let static_config = Artifact::public(
        format!("{dir}/traefik.yml"),
        templates::render(
            "traefik-static",
            &json!({
                "tls": tls,
                "web_address": format!(":{}", settings.http_port),
                "websecure_address": format!(":{}", settings.https_port),
                "api_address": format!("127.0.0.1:{}", settings.api_port),
                "metrics_address": format!("{}:{}", host.private_address, settings.metrics_port),
                "letsencrypt": letsencrypt,
            }),
        )?,
    );

    // The file as it is once everything is ready (`up` publishes it step by step).
    let instances: Vec<&Instance> = fleet.instances().collect();
    let streamers = ddp_streamers(fleet);
    let streamers: Vec<&ServiceContainer> = streamers.iter().collect();
    let mut files = vec![Artifact::public(
        format!("{dir}/dynamic/rocketchat.yml"),
        traefik_dynamic(fleet, &instances, &streamers)?,
    )];
    debug_assert_eq!(files[0].path, TRAEFIK_DYNAMIC_PATH);

    if let Some(monitoring) = fleet.monitoring_host() {
        let mut data = router(fleet, format!("{} && PathPrefix(`/grafana`)", host_rule(fleet)?));
        data["url"] = json!(format!("http://{}:{}", monitoring.private_address, fleet.monitoring.grafana_port));
        files
            .push(Artifact::public(format!("{dir}/dynamic/grafana.yml"), templates::render("traefik-grafana", &data)?));
    }

    let tls_files = match &settings.tls {
        Tls::Files { cert, key } => {
            files.push(Artifact::public(
                format!("{dir}/dynamic/tls.yml"),
                templates::render("traefik-tls", &json!({ "cert": CERT_IN_CONTAINER, "key": KEY_IN_CONTAINER }))?,
            ));
            json!({ "cert": cert, "key": key })
        }
        _ => json!(null),
    };

    let compose = templates::render(
        "traefik",
        &json!({
            "image": fleet.images.traefik.to_string(),
            "labels": labels(fleet, unit),
            "letsencrypt": matches!(settings.tls, Tls::LetsEncrypt { .. }),
            "tls_files": tls_files,
            "digest": digest(&[&static_config]),
        }),
    )?;
    files.push(Artifact::public(unit.compose_file(), compose));
    files.push(static_config);
    Ok(files)
}

//! What rcfleet deploys when the inventory does not say: the one home of the default images
//! and versions. The inventory reader, `rcfleet init` and `rcfleet --version` all read these.

/// The Rocket.Chat release `rcfleet init` proposes: the `RELEASE` default of Rocket.Chat's
/// official compose file (`RocketChat/rocketchat-compose`, "Enforce version 8.0.1 as default").
/// An inventory always names its release (`workspace.release`); this is only a starting point.
pub const ROCKETCHAT_RELEASE: &str = "8.0.1";

/// What `[mongodb] version` is when absent: what Rocket.Chat's official compose deploys.
pub const MONGODB_VERSION: &str = "8.2";

/// One component's default image. `tag: None` means the tag is chosen elsewhere: Rocket.Chat's
/// is `workspace.release`, MongoDB's follows `mongodb.version` (`<version>-ubi8`).
pub struct DefaultImage {
    /// The key under `[images]`.
    pub key: &'static str,
    /// The name people know the component by.
    pub component: &'static str,
    pub repository: &'static str,
    pub tag: Option<&'static str>,
}

pub const ROCKETCHAT: DefaultImage = DefaultImage {
    key: "rocketchat",
    component: "Rocket.Chat",
    repository: "registry.rocket.chat/rocketchat/rocket.chat",
    tag: None,
};
pub const MONGODB: DefaultImage = DefaultImage {
    key: "mongodb",
    component: "MongoDB",
    repository: "docker.io/mongodb/mongodb-community-server",
    tag: None,
};
pub const NATS: DefaultImage =
    DefaultImage { key: "nats", component: "NATS", repository: "docker.io/nats", tag: Some("2.11-alpine") };
pub const PROMETHEUS: DefaultImage = DefaultImage {
    key: "prometheus",
    component: "Prometheus",
    repository: "docker.io/prom/prometheus",
    tag: Some("v3.5.3"),
};
pub const GRAFANA: DefaultImage =
    DefaultImage { key: "grafana", component: "Grafana", repository: "docker.io/grafana/grafana", tag: Some("12.0.2") };
pub const TRAEFIK: DefaultImage =
    DefaultImage { key: "traefik", component: "Traefik", repository: "docker.io/traefik", tag: Some("v3.4") };
/// The Docker Official Image `mongo` installs mongodb-org-tools, which brings the Database Tools
/// (mongodump): docker-library/mongo 8.2/Dockerfile. The tools are versioned apart from the
/// server (100.x); mongodump 100.20 supports servers 4.2 to 9.0 (MongoDB docs, "mongodump
/// Compatibility and Installation").
pub const MONGODB_TOOLS: DefaultImage = DefaultImage {
    key: "mongodb_tools",
    component: "MongoDB Database Tools",
    repository: "docker.io/mongo",
    tag: Some("8.2"),
};

/// The Prometheus project's own images (its quay.io organisation, as its READMEs name them).
pub const NODE_EXPORTER: DefaultImage = DefaultImage {
    key: "node_exporter",
    component: "Prometheus node exporter",
    repository: "quay.io/prometheus/node-exporter",
    tag: Some("v1.9.1"),
};
pub const BLACKBOX_EXPORTER: DefaultImage = DefaultImage {
    key: "blackbox_exporter",
    component: "Prometheus blackbox exporter",
    repository: "quay.io/prometheus/blackbox-exporter",
    tag: Some("v0.27.0"),
};
pub const ALERTMANAGER: DefaultImage = DefaultImage {
    key: "alertmanager",
    component: "Alertmanager",
    repository: "quay.io/prometheus/alertmanager",
    tag: Some("v0.28.1"),
};

/// Every default image, in the order of `[images]`.
pub const IMAGES: [&DefaultImage; 10] = [
    &ROCKETCHAT,
    &MONGODB,
    &NATS,
    &PROMETHEUS,
    &GRAFANA,
    &TRAEFIK,
    &MONGODB_TOOLS,
    &NODE_EXPORTER,
    &BLACKBOX_EXPORTER,
    &ALERTMANAGER,
];

/// The MongoDB image tag for a `major.minor` version: the official image's tag scheme.
pub fn mongodb_tag(version: &str) -> String {
    format!("{version}-ubi8")
}

/// The image reference a component gets when the inventory leaves it at its default.
pub fn image_reference(image: &DefaultImage) -> String {
    let tag = match image.key {
        "rocketchat" => ROCKETCHAT_RELEASE.to_string(),
        "mongodb" => mongodb_tag(MONGODB_VERSION),
        _ => image.tag.unwrap_or_default().to_string(),
    };
    format!("{}:{tag}", image.repository)
}

/// `rcfleet --version`: rcfleet's own version, then what it deploys by default.
pub fn version_text() -> String {
    let mut text = format!("{}\n\nDeploys by default:\n", env!("CARGO_PKG_VERSION"));
    for image in IMAGES {
        let note = match image.key {
            "rocketchat" => "  (the inventory's workspace.release; `init` proposes this one)",
            "mongodb" => "  (follows mongodb.version)",
            _ => "",
        };
        text.push_str(&format!("  {:<23} {}{note}\n", image.component, image_reference(image)));
    }
    text.push_str("Each image can be changed under [images] in the inventory.");
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_text_names_every_component_with_its_default() {
        let text = version_text();
        for expected in [
            "registry.rocket.chat/rocketchat/rocket.chat:8.0.1",
            "docker.io/mongodb/mongodb-community-server:8.2-ubi8",
            "docker.io/traefik:v3.4",
            "docker.io/nats:2.11-alpine",
            "docker.io/prom/prometheus:v3.5.3",
            "docker.io/grafana/grafana:12.0.2",
        ] {
            assert!(text.contains(expected), "{expected} missing from:\n{text}");
        }
    }
}

//! Warnings about the desired state that do not stop a run: `plan` lists them and `up` says
//! each once at its start. Pure: read from the fleet only.

use crate::compat::{self, Support};
use crate::fleet::Fleet;

pub fn warnings(fleet: &Fleet) -> Vec<String> {
    let mut warnings = Vec::new();
    let instances = fleet.instances().count();
    if instances > 1 && fleet.workspace.license.is_none() {
        // Rocket.Chat's InstanceService starts its broadcast between instances only when the
        // licence has the `scalability` module (ee/server/local-services/instance/service.ts).
        warnings.push(format!(
            "{instances} instances and no workspace.license: without an Enterprise licence carrying the `scalability` \
             module, Rocket.Chat instances do not broadcast to each other, so users on different instances miss typing \
             indicators and other live events (messages still arrive). Set workspace.license = {{ env = \"...\" }}, or \
             run one instance."
        ));
    }
    if fleet.microservices.enabled {
        // Rocket.Chat supports microservices only through its Helm chart ("Direct Docker
        // microservice deployment is not supported", docs.rocket.chat/docs/microservices).
        warnings.push(
            "[microservices] is enabled: Rocket.Chat supports microservices only on Kubernetes with its Helm chart; \
             rcfleet runs them on Compose the way Rocket.Chat's own CI does, which Rocket.Chat does not support. \
             `export helm-values` exports the same setup for the chart."
                .to_string(),
        );
    }
    let (release, version) = (&fleet.workspace.release, &fleet.mongodb.version);
    if fleet.mongodb.allow_unsupported {
        if let Support::Unsupported(list) = compat::mongodb_support(release, version) {
            warnings.push(format!(
                "MongoDB {version} is not supported by Rocket.Chat {release} ({}.x runs on {}); running it anyway because \
                 of mongodb.allow_unsupported = true. Move MongoDB to a supported version, then remove that line.",
                release.major,
                list.join(", ")
            ));
        }
    }
    warnings
}

//! A new, commented inventory from a few answers (`rcfleet init`): pure text, validated by the
//! caller with the same reader every other command uses before anything is written.

use super::defaults;

/// What `init` is told about the workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answers {
    pub name: String,
    pub domain: String,
    pub release: String,
    /// Let's Encrypt e-mail; `None` serves plain HTTP.
    pub email: Option<String>,
    pub db: String,
    pub lb: String,
    /// App host addresses with their instance count.
    pub apps: Vec<(String, u32)>,
}

/// One `[[hosts]]` entry to write.
struct NewHost {
    name: String,
    address: String,
    roles: Vec<&'static str>,
    instances: u32,
}

/// `ADDR[:N]`: an app host address and its instance count (2 when not given, so that one
/// instance can be upgraded while the other serves).
pub fn parse_app(text: &str) -> Result<(String, u32), String> {
    let (address, count) = match text.rsplit_once(':') {
        Some((address, count)) if !address.contains(':') => {
            let count = count
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=100).contains(n))
                .ok_or_else(|| format!("{text:?}: the instance count after ':' must be a number from 1 to 100"))?;
            (address, count)
        }
        _ => (text, 2),
    };
    super::values::address(address)?;
    Ok((address.to_string(), count))
}

/// Hosts named db, lb, app1, app2...; a server given for several roles becomes one host.
fn hosts(answers: &Answers) -> Vec<NewHost> {
    let mut hosts: Vec<NewHost> = Vec::new();
    let mut add = |name: String, address: &str, roles: &[&'static str], instances: u32| {
        match hosts.iter_mut().find(|host| host.address == address) {
            Some(host) => {
                for role in roles {
                    if !host.roles.contains(role) {
                        host.roles.push(role);
                    }
                }
                host.instances += instances;
            }
            None => hosts.push(NewHost { name, address: address.to_string(), roles: roles.to_vec(), instances }),
        }
    };
    add("db".into(), &answers.db, &["database", "monitoring"], 0);
    add("lb".into(), &answers.lb, &["traefik"], 0);
    for (index, (address, count)) in answers.apps.iter().enumerate() {
        add(format!("app{}", index + 1), address, &["rocketchat"], *count);
    }
    hosts
}

/// A TOML basic string, escaped.
fn quoted(text: &str) -> String {
    toml_edit::Value::from(text).to_string().trim().to_string()
}

/// The commented inventory for `answers`.
pub fn render(answers: &Answers) -> String {
    let (scheme, tls) = match &answers.email {
        Some(email) => ("https", format!("{{ mode = \"letsencrypt\", email = {} }}", quoted(email))),
        None => ("http", "{ mode = \"none\" }".to_string()),
    };
    let mut text = format!(
        r#"# rcfleet inventory, written by `rcfleet init`. `rcfleet plan` checks it and shows what
# would be deployed; `rcfleet up` deploys it. Every key is explained in inventory.example.toml
# and in `rcfleet schema` (which editors use for completion and checks as you type).
#
# Secrets are never written here: give {{ env = "NAME" }} or {{ file = "path" }} where one is needed.

[workspace]
name = {name}
# The URL users open; its host is traefik.domain.
root_url = {root_url}
# Rocket.Chat release (image tag). `rcfleet upgrade --release X.Y.Z` rewrites this line.
release = {release}

# How rcfleet logs in. Without these keys your ~/.ssh/config decides (User, Port,
# IdentityFile, ProxyJump for each address), then OpenSSH's defaults; `rcfleet plan` shows
# what applies to each host and where it came from.
[ssh]
# user = "root"
# port = 22
# identity_file = "~/.ssh/id_ed25519"
# Hosts never seen before are refused unless this is true (or --accept-new-host-keys is given).
accept_new_host_keys = false
"#,
        name = quoted(&answers.name),
        root_url = quoted(&format!("{scheme}://{}", answers.domain)),
        release = quoted(&answers.release),
    );
    for host in hosts(answers) {
        let roles: Vec<String> = host.roles.iter().map(|role| quoted(role)).collect();
        text.push_str(&format!(
            "\n[[hosts]]\nname = {}\naddress = {}\nroles = [{}]\n",
            quoted(&host.name),
            quoted(&host.address),
            roles.join(", ")
        ));
        if host.instances > 0 {
            text.push_str(&format!(
                "# Instance k listens on port + k and serves metrics on metrics_port + k.\ninstances = {}\nport = 3000\nmetrics_port = 9458\n",
                host.instances
            ));
        }
    }
    text.push_str(&format!(
        r#"
[traefik]
domain = {domain}
# "none" serves plain HTTP; "letsencrypt" needs an e-mail; "files" takes cert and key paths.
tls = {tls}

[mongodb]
# MongoDB major.minor; it must be one the Rocket.Chat release supports.
version = {mongodb}
"#,
        domain = quoted(&answers.domain),
        mongodb = quoted(defaults::MONGODB_VERSION),
    ));
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answers() -> Answers {
        Answers {
            name: "chat".into(),
            domain: "chat.example.com".into(),
            release: "8.0.1".into(),
            email: None,
            db: "10.0.0.10".into(),
            lb: "10.0.0.20".into(),
            apps: vec![("10.0.0.31".into(), 2), ("10.0.0.32".into(), 3)],
        }
    }

    #[test]
    fn the_rendered_inventory_is_accepted_by_the_reader() {
        let fleet = crate::inventory::parse(&render(&answers()), std::path::Path::new("inventory.toml")).unwrap();
        assert_eq!(fleet.hosts.len(), 4);
        assert_eq!(fleet.instances().count(), 5);
        assert_eq!(fleet.workspace.root_url, "http://chat.example.com");
    }

    #[test]
    fn one_server_for_several_roles_is_one_host() {
        let mut answers = answers();
        answers.lb = answers.db.clone();
        answers.apps = vec![(answers.db.clone(), 1)];
        answers.email = Some("ops@example.com".into());
        let fleet = crate::inventory::parse(&render(&answers), std::path::Path::new("inventory.toml")).unwrap();
        assert_eq!(fleet.hosts.len(), 1);
        assert_eq!(fleet.hosts[0].roles.len(), 4);
        assert_eq!(fleet.workspace.root_url, "https://chat.example.com");
    }

    #[test]
    fn app_addresses_take_an_instance_count() {
        assert_eq!(parse_app("10.0.0.31:3"), Ok(("10.0.0.31".into(), 3)));
        assert_eq!(parse_app("app.internal"), Ok(("app.internal".into(), 2)));
        assert!(parse_app("10.0.0.31:0").is_err());
        assert!(parse_app("bad host").is_err());
    }
}

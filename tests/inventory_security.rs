//! The inventory keys of the security defaults: on by default, opt-outs validated, secret
//! references only (never a plain password), and no password key beside an opt-out.

use std::path::Path;

const BASE: &str = r#"[workspace]
name = "chat"
root_url = "http://chat.example.com"
release = "8.0.1"

[[hosts]]
name = "db"
address = "10.0.0.10"
roles = ["database", "monitoring", "traefik", "rocketchat"]
instances = 1

[traefik]
domain = "chat.example.com"
"#;

fn parse(extra: &str) -> Result<rcfleet::fleet::Fleet, String> {
    rcfleet::inventory::parse(&format!("{BASE}{extra}"), Path::new("inventory.toml")).map_err(|e| e.to_string())
}

#[test]
fn authentication_is_on_by_default_with_generated_passwords() {
    let fleet = parse("").unwrap();
    assert!(fleet.mongodb.auth && fleet.nats.auth);
    assert!(fleet.mongodb.admin_password.is_none() && fleet.mongodb.app_password.is_none() && fleet.nats.password.is_none());
}

#[test]
fn opt_outs_and_references_are_read() {
    let fleet = parse("[mongodb]\nauth = false\n[nats]\nauth = false\n").unwrap();
    assert!(!fleet.mongodb.auth && !fleet.nats.auth);
    let fleet = parse(
        "[mongodb]\nadmin_password = { env = \"A\" }\napp_password = { file = \"/s/app\" }\n[nats]\npassword = { env = \"N\" }\n",
    )
    .unwrap();
    assert_eq!(fleet.mongodb.admin_password, Some(rcfleet::fleet::SecretRef::Env("A".into())));
    assert_eq!(fleet.mongodb.app_password, Some(rcfleet::fleet::SecretRef::File("/s/app".into())));
    assert_eq!(fleet.nats.password, Some(rcfleet::fleet::SecretRef::Env("N".into())));
}

#[test]
fn bad_values_are_refused_with_place_and_key() {
    for (extra, key, says) in [
        ("[mongodb]\nauth = \"no\"\n", "mongodb.auth", "true or false"),
        ("[nats]\nauth = 0\n", "nats.auth", "true or false"),
        ("[mongodb]\napp_password = \"hunter2\"\n", "mongodb.app_password", "never written in the inventory"),
        ("[nats]\npassword = \"hunter2\"\n", "nats.password", "never written in the inventory"),
        ("[mongodb]\nauth = false\nadmin_password = { env = \"A\" }\n", "mongodb.admin_password", "auth = false"),
        ("[nats]\nauth = false\npassword = { env = \"N\" }\n", "nats.password", "auth = false"),
        ("[mongodb]\nkeyfile = { env = \"K\" }\n", "mongodb.keyfile", "unknown"),
    ] {
        let err = parse(extra).expect_err(extra);
        assert!(err.contains("inventory.toml:") && err.contains(key) && err.contains(says), "{extra}:\n{err}");
        assert!(!err.contains("hunter2"), "a plain password was echoed: {err}");
    }
}

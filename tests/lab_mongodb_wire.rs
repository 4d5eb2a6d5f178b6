//! The lab's MongoDB speaks the real wire protocol (issue 14): after `rcfleet up`, the real
//! mongosh (npm, run on this machine, outside the lab's hosts) connects to the database host's
//! MongoDB as rcfleet's admin user over SCRAM; `db.version()`, `rs.status()`, inserting and
//! finding a document work; a wrong password fails with AuthenticationFailed (18). Inside the
//! MongoDB container, `mongosh` is the real one, and a script piped in without `--file` meets the
//! real REPL (its prompt before every output). The password travels on mongosh's stdin, never
//! on a command line.

mod lab_support;

use lab_support::{mongosh, rcfleet, text};

fn js(text: &str) -> String {
    serde_json::to_string(text).unwrap()
}

#[test]
fn the_real_mongosh_and_the_labs_mongodb_speak_the_wire_protocol_with_scram() {
    let Some(lab) = lab_support::lab() else { return };
    lab.reset_fleet();
    let up = rcfleet(&["-i", lab.inventory(), "up"]);
    assert!(up.status.success(), "up: {}", text(&up));
    let shown = rcfleet(&["-i", lab.inventory(), "secrets", "show", "mongodb-admin-password"]);
    assert!(shown.status.success(), "{}", text(&shown));
    let password = String::from_utf8_lossy(&shown.stdout).trim().to_string();

    let script = format!(
        "db.getSiblingDB(\"admin\").auth(\"rcfleet-admin\", {pw});\n\
         print(\"VERSION \" + db.version());\n\
         print(\"STATES \" + rs.status().members.map(m => m.stateStr).join(\",\"));\n\
         const c = db.getSiblingDB(\"rcfleet_wire_check\").things;\n\
         c.deleteMany({{}});\n\
         c.insertOne({{_id: \"probe\", n: 42}});\n\
         print(\"FOUND \" + JSON.stringify(c.findOne({{_id: \"probe\"}})));\n\
         c.drop();\n",
        pw = js(&password)
    );
    let out = mongosh(&lab, &script);
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("VERSION 8.2.0"), "{said}");
    assert!(said.contains("STATES PRIMARY"), "{said}");
    assert!(said.contains("FOUND {\"_id\":\"probe\",\"n\":42}"), "{said}");
    assert!(!said.contains(&password), "the password must not be printed");

    let wrong = mongosh(&lab, &format!("try {{ db.getSiblingDB(\"admin\").auth(\"rcfleet-admin\", {}); print(\"CODE none\"); }} catch (e) {{ print(\"CODE \" + e.code + \" \" + e.codeName); }}\n", js(&format!("{password}-wrong"))));
    assert!(text(&wrong).contains("CODE 18 AuthenticationFailed"), "{}", text(&wrong));
    // Without a login nothing but the handshake commands is allowed (users exist: no localhost
    // exception, and this client is not on the host's loopback anyway).
    let anonymous = mongosh(&lab, "db.getSiblingDB(\"rocketchat\").things.findOne();\n");
    assert!(!anonymous.status.success() && text(&anonymous).contains("requires authentication"), "{}", text(&anonymous));

    let container = lab.run("db", "docker ps -q --filter label=io.rcfleet.unit=database --filter label=com.docker.compose.service=mongodb");
    let container = container.trim();
    assert_eq!(lab.run("db", &format!("docker exec {container} mongosh --version")).trim(), "2.12.0");
    let repl = lab.run("db", &format!("printf 'print(\"hello\")\\n' | docker exec -i {container} mongosh --quiet 'mongodb://127.0.0.1:27017/?directConnection=true'"));
    assert!(repl.starts_with("rs0 [direct: primary] test> hello"), "the real REPL prints its prompt first: {repl:?}");
}

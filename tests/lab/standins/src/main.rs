//! One multi-call binary for the lab's stand-in images. What it does depends on the
//! name it is called by (argv[0]): `mongod`, `mongodump`, `mongorestore` (MongoDB; the shell is
//! the real mongosh), `grafana`/`grafana-server` (Grafana). The Rocket.Chat stand-in is a Node
//! program on Rocket.Chat's own client libraries (`tests/lab/standins/rocketchat/`).
//! The contracts are written down in tests/lab/README.md.

mod grafana;
mod http;
mod mongod;
mod mongotools;
mod util;
mod wire;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mut name = args
        .first()
        .map(|a| a.rsplit('/').next().unwrap_or(a).to_string())
        .unwrap_or_default();
    let mut rest: Vec<String> = args.iter().skip(1).cloned().collect();
    // `standin ROLE args...` also works (handy for local runs).
    if name == "standin" && !rest.is_empty() {
        name = rest.remove(0);
    }
    util::exit_on_sigterm();
    let code = match name.as_str() {
        "mongod" => mongod::mongod(rest),
        "mongodump" => mongotools::mongodump(rest),
        "mongorestore" => mongotools::mongorestore(rest),
        "grafana" | "grafana-server" => grafana::main(rest),
        other => {
            eprintln!("standin: unknown role {other:?} (call me as mongod, mongodump, mongorestore or grafana)");
            2
        }
    };
    std::process::exit(code);
}

//! `mongodump` and `mongorestore` stand-ins (the MongoDB Database Tools are in no registry the
//! lab reaches). They take the flags rcfleet uses, as the real tools read them, talk to mongod
//! over the wire protocol (`wire.rs`, SCRAM-SHA-256), and dump and restore the real documents.
//! The archive is not the real tools' multiplexed format (see tests/lab/README.md): a header
//! document, then one `{ns, doc}` (or `{ns, collection}`) BSON document per entry.

use crate::mongod::read_documents;
use crate::util;
use crate::wire::{self, Client, Failure};
use bson::{doc, Bson, Document};
use std::io::{Read, Write};
use std::time::Duration;

const MAGIC: &str = "rcfleet-lab-mongodump-archive";
const TOOLS_VERSION: &str = "100.12.0";

fn fail(msg: impl std::fmt::Display) -> i32 {
    eprintln!("{}\tFailed: {msg}", util::now_rfc3339());
    1
}

/// Where to connect and as whom: `--uri` (or `--config`'s `uri:`), `--host`/`--port`, the
/// credentials of the URI, `--username`/`--password`/`--authenticationDatabase`, and
/// `--config`'s `password:` (mongo-tools `options.go`: a config file may hold `password` and
/// `uri`; the password may complete a URI that names only the user).
struct Target {
    addr: String,
    user: Option<String>,
    password: Option<String>,
    source: String,
    database: Option<String>,
}

fn target(flags: &[(String, String)]) -> Result<Target, String> {
    let (config_password, config_uri) = match util::flag(flags, &["config"]) {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| format!("error opening config file: {e}"))?;
            let doc: serde_json::Value = yaml_serde::from_str(&text).map_err(|e| format!("error parsing config file: {e}"))?;
            let get = |k: &str| doc.get(k).and_then(|v| v.as_str()).map(str::to_string);
            (get("password"), get("uri"))
        }
        None => (None, None),
    };
    let uri = util::flag(flags, &["uri"]).map(str::to_string).or(config_uri);
    let mut t = Target { addr: "127.0.0.1:27017".into(), user: None, password: None, source: "admin".into(), database: None };
    if let Some(uri) = &uri {
        let u = wire::parse_uri(uri);
        t.addr = u.addr;
        t.user = u.user;
        t.password = u.password;
        t.source = u.auth_source.or_else(|| u.database.clone()).unwrap_or_else(|| "admin".into());
        t.database = u.database;
    } else {
        let host = util::flag(flags, &["host", "h"]).unwrap_or("127.0.0.1");
        let host = host.rsplit_once('/').map(|(_, h)| h).unwrap_or(host);
        let host = host.split(',').next().unwrap_or(host);
        let port = util::flag(flags, &["port"]).unwrap_or("27017");
        t.addr = if host.contains(':') { host.to_string() } else { format!("{host}:{port}") };
    }
    if let Some(u) = util::flag(flags, &["username", "u"]) {
        t.user = Some(u.to_string());
    }
    if let Some(p) = util::flag(flags, &["password", "p"]) {
        t.password = Some(p.to_string());
    }
    if let Some(p) = config_password {
        if t.password.as_ref().is_some_and(|q| *q != p) {
            return Err("the password in the config file conflicts with the one given in the URI".into());
        }
        t.password = Some(p);
    }
    if let Some(d) = util::flag(flags, &["authenticationDatabase"]) {
        t.source = d.to_string();
    }
    if let Some(d) = util::flag(flags, &["db", "d"]) {
        t.database = Some(d.to_string());
    }
    Ok(t)
}

fn connect(t: &Target) -> Result<Client, String> {
    let mut c = Client::connect(&t.addr, Duration::from_secs(5)).map_err(|e| format!("can't create session: failed to connect to mongodb://{}/: {e}", t.addr))?;
    if let Some(user) = &t.user {
        let pwd = t.password.clone().unwrap_or_default();
        c.authenticate(&t.source, user, &pwd).map_err(|e| format!("can't create session: failed to connect to mongodb://{}/: connection() error: auth error: sasl conversation error: unable to authenticate using mechanism \"SCRAM-SHA-256\": {e}", t.addr))?;
    }
    Ok(c)
}

fn collections(c: &mut Client, db: &str) -> Result<Vec<String>, Failure> {
    let reply = c.command(db, doc! {"listCollections": 1, "nameOnly": true})?;
    Ok(c.drain(db, reply)?.iter().filter_map(|d| d.get_str("name").ok().map(str::to_string)).filter(|n| !n.starts_with("system.")).collect())
}

fn push(out: &mut Vec<u8>, d: &Document) {
    let _ = d.to_writer(out);
}

pub fn mongodump(args: Vec<String>) -> i32 {
    let (flags, _) = util::parse_flags(&args, &["gzip", "quiet", "oplog", "verbose", "v", "version", "archive", "help"]);
    if util::flag(&flags, &["version"]).is_some() {
        println!("mongodump version: {TOOLS_VERSION} (rcfleet lab stand-in)");
        return 0;
    }
    let t = match target(&flags) {
        Ok(t) => t,
        Err(e) => return fail(e),
    };
    let quiet = util::flag(&flags, &["quiet"]).is_some();
    let gzip = util::flag(&flags, &["gzip"]).is_some();
    let mut c = match connect(&t) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let dbs: Vec<String> = match &t.database {
        Some(d) => vec![d.clone()],
        None => match c.command("admin", doc! {"listDatabases": 1, "nameOnly": true}) {
            Ok(r) => r.get_array("databases").cloned().unwrap_or_default().iter().filter_map(|d| d.as_document().and_then(|d| d.get_str("name").ok()).map(str::to_string)).filter(|d| d != "local" && d != "config").collect(),
            Err(e) => return fail(format!("error getting database names: {e}")),
        },
    };
    let only = util::flag(&flags, &["collection", "c"]).map(str::to_string);
    // Collected first, so a failure leaves no half-written archive behind.
    let mut entries: Vec<(String, Vec<Document>)> = Vec::new();
    for db in &dbs {
        let names = match collections(&mut c, db) {
            Ok(n) => n,
            Err(e) => return fail(format!("error creating intents to dump: error getting collections for database `{db}`: {e}")),
        };
        for coll in names.into_iter().filter(|n| only.as_ref().is_none_or(|o| o == n)) {
            let docs = match c.command(db, doc! {"find": coll.as_str(), "filter": {}}).and_then(|r| c.drain(db, r)) {
                Ok(d) => d,
                Err(e) => return fail(format!("error reading collection {db}.{coll}: {e}")),
            };
            if !quiet {
                eprintln!("{}\twriting {db}.{coll} to archive", util::now_rfc3339());
            }
            entries.push((format!("{db}.{coll}"), docs));
        }
    }
    let mut body = Vec::new();
    push(&mut body, &doc! {"magic": MAGIC, "toolsVersion": TOOLS_VERSION, "server": c.hello.get("maxWireVersion").cloned().unwrap_or(Bson::Null), "at": bson::DateTime::now()});
    for (ns, docs) in &entries {
        push(&mut body, &doc! {"ns": ns.as_str(), "collection": true});
        for d in docs {
            push(&mut body, &doc! {"ns": ns.as_str(), "doc": d.clone()});
        }
    }
    let archive = util::flag(&flags, &["archive"]);
    match archive {
        Some(path) => {
            let bytes = if gzip { gzip_bytes(&body) } else { body };
            let written = if path.is_empty() || path == "-" {
                std::io::stdout().write_all(&bytes).and_then(|_| std::io::stdout().flush())
            } else {
                std::fs::write(path, &bytes)
            };
            if let Err(e) = written {
                return fail(format!("error opening archive {path}: {e}"));
            }
        }
        None => {
            // Directory layout of the real tools: <out>/<db>/<collection>.bson[.gz].
            let out = util::flag(&flags, &["out", "o"]).unwrap_or("dump");
            for (ns, docs) in &entries {
                let (db, coll) = ns.split_once('.').unwrap_or((ns, ""));
                let dir = format!("{out}/{db}");
                let mut bytes = Vec::new();
                for d in docs {
                    push(&mut bytes, d);
                }
                let (path, bytes) = if gzip { (format!("{dir}/{coll}.bson.gz"), gzip_bytes(&bytes)) } else { (format!("{dir}/{coll}.bson"), bytes) };
                if let Err(e) = std::fs::create_dir_all(&dir).and_then(|_| std::fs::write(&path, bytes)) {
                    return fail(format!("error writing {path}: {e}"));
                }
            }
        }
    }
    if !quiet {
        for (ns, docs) in &entries {
            eprintln!("{}\tdone dumping {ns} ({} documents)", util::now_rfc3339(), docs.len());
        }
    }
    0
}

fn gzip_bytes(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let _ = e.write_all(bytes);
    e.finish().unwrap_or_default()
}

pub fn mongorestore(args: Vec<String>) -> i32 {
    let (flags, pos) = util::parse_flags(&args, &["gzip", "quiet", "drop", "archive", "version", "oplogReplay", "help"]);
    if util::flag(&flags, &["version"]).is_some() {
        println!("mongorestore version: {TOOLS_VERSION} (rcfleet lab stand-in)");
        return 0;
    }
    let Some(path) = util::flag(&flags, &["archive"]).map(str::to_string).or_else(|| pos.first().cloned()) else {
        return fail("the mongorestore stand-in restores archives only: give --archive[=PATH]");
    };
    let mut raw = Vec::new();
    let read = if path.is_empty() || path == "-" { std::io::stdin().read_to_end(&mut raw).map(|_| ()) } else { std::fs::read(&path).map(|b| raw = b) };
    if let Err(e) = read {
        return fail(format!("error opening archive {path}: {e}"));
    }
    let gzip = util::flag(&flags, &["gzip"]).is_some();
    if gzip {
        let mut out = Vec::new();
        if let Err(e) = flate2::read::GzDecoder::new(&raw[..]).read_to_end(&mut out) {
            return fail(format!("stream or file does not appear to be gzip compressed: {e}"));
        }
        raw = out;
    }
    let docs = match read_documents(&raw) {
        Ok(d) => d,
        Err(e) => return fail(format!("{path} is not an archive: {e}")),
    };
    if docs.first().and_then(|d| d.get_str("magic").ok()) != Some(MAGIC) {
        return fail(format!("{path} is not an archive written by the lab's mongodump stand-in{}", if gzip { "" } else { " (compressed? pass --gzip)" }));
    }
    let t = match target(&flags) {
        Ok(t) => t,
        Err(e) => return fail(e),
    };
    let mut c = match connect(&t) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let drop = util::flag(&flags, &["drop"]).is_some();
    let quiet = util::flag(&flags, &["quiet"]).is_some();
    let include: Vec<String> = flags.iter().filter(|(k, _)| k == "nsInclude").map(|(_, v)| v.clone()).collect();
    let (mut restored, mut failed) = (0usize, 0usize);
    for entry in &docs[1..] {
        let Ok(ns) = entry.get_str("ns") else { continue };
        let (db, coll) = ns.split_once('.').unwrap_or((ns, ""));
        if t.database.as_ref().is_some_and(|d| d != db) || !included(&include, ns) {
            continue;
        }
        if entry.get_bool("collection") == Ok(true) {
            if drop {
                if let Err(e) = c.command(db, doc! {"drop": coll}) {
                    return fail(format!("error dropping collection {ns}: {e}"));
                }
            }
            if !quiet {
                eprintln!("{}\trestoring {ns} from archive", util::now_rfc3339());
            }
            continue;
        }
        let Ok(d) = entry.get_document("doc") else { continue };
        match c.command(db, doc! {"insert": coll, "documents": [d.clone()], "ordered": true}) {
            Ok(r) if r.get_array("writeErrors").map(|e| !e.is_empty()).unwrap_or(false) => {
                // As the real tool: a duplicate key is reported and the restore goes on.
                failed += 1;
                if !quiet {
                    let msg = r.get_array("writeErrors").ok().and_then(|e| e.first()).and_then(|e| e.as_document()).and_then(|e| e.get_str("errmsg").ok()).unwrap_or("").to_string();
                    eprintln!("{}\tcontinuing through error: {msg}", util::now_rfc3339());
                }
            }
            Ok(_) => restored += 1,
            Err(e) => return fail(format!("{ns}: error restoring documents: {e}")),
        }
    }
    if !quiet {
        eprintln!("{}\t{restored} document(s) restored successfully. {failed} document(s) failed to restore.", util::now_rfc3339());
    }
    0
}

/// `--nsInclude` (repeatable): `db.coll`, with `*` matching any run of characters (mongo-tools
/// `mongorestore/ns`); none given includes everything.
fn included(patterns: &[String], ns: &str) -> bool {
    fn matches(pattern: &str, text: &str) -> bool {
        match pattern.split_once('*') {
            None => pattern == text,
            Some((head, tail)) => {
                text.starts_with(head) && (0..=text.len() - head.len()).any(|i| text.is_char_boundary(head.len() + i) && matches(tail, &text[head.len() + i..]))
            }
        }
    }
    patterns.is_empty() || patterns.iter().any(|p| matches(p, ns))
}

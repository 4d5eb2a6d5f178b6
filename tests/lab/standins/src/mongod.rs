//! The lab's `mongod`: a stand-in of the MongoDB server that speaks the real wire protocol
//! (`wire.rs`), so the real `mongosh` and the real Node driver talk to it as to a server.
//! Documents are kept per collection under `--dbpath` (`standin/<db>.<collection>.bson`, BSON
//! documents one after the other, as mongodump's `.bson` files). What it implements and the
//! sources it follows are in tests/lab/README.md; everything else answers CommandNotFound.

use crate::util;
use crate::wire::{self, Mechanism, Op};
use bson::{doc, oid::ObjectId, Bson, Document};
use serde_json::json;
use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long the single member takes to elect itself after `replSetInitiate` or a restart: the
/// real one is secondary for a moment first, and writes (the first user, too) must wait for it.
const ELECTION: Duration = Duration::from_millis(1200);
const USERS: &str = "admin.system.users";
const REPLSET: &str = "local.system.replset";
const VERSION_NS: &str = "admin.system.version";
const OPLOG: &str = "local.oplog.rs";
const OPLOG_ENTRIES: usize = 1000;

type Reply = Result<Document, Document>;

fn error(code: i32, name: &str, msg: impl Into<String>) -> Document {
    doc! {"ok": 0.0, "errmsg": msg.into(), "code": code, "codeName": name}
}

fn unauthorized(msg: impl Into<String>) -> Document {
    error(13, "Unauthorized", msg)
}

fn log_json(sev: &str, comp: &str, msg: &str, attr: serde_json::Value) {
    util::log(&json!({"t": {"$date": util::now_rfc3339()}, "s": sev, "c": comp, "ctx": "standin", "msg": msg, "attr": attr}).to_string());
}

/// Versions this binary can run with (feature compatibility): its own X.Y and the last LTS
/// before it (a 8.2 server runs on data of FCV 8.0, not 7.0; 5.0's is 4.4, the last 4.x).
/// MongoDB docs, "Feature Compatibility Version" and each `X.Y-upgrade-replica-set` page.
fn fcv_allowed(version: &str) -> (String, String) {
    let mut it = version.split('.');
    let (major, minor): (u32, u32) = (it.next().and_then(|m| m.parse().ok()).unwrap_or(8), it.next().and_then(|m| m.parse().ok()).unwrap_or(0));
    let own = format!("{major}.{minor}");
    let last_lts = match (major, minor) {
        (5, 0) => "4.4".to_string(),
        (_, 0) => format!("{}.0", major.saturating_sub(1)),
        _ => format!("{major}.0"),
    };
    (own, last_lts)
}

/// maxWireVersion of each server release (the Node driver's `MIN_SUPPORTED_QE_WIRE_VERSION` 21 =
/// 7.0, `MIN_SUPPORTED_RAW_DATA_WIRE_VERSION` 27 = 8.2; mongo `wire_version.h`).
fn wire_version(version: &str) -> i32 {
    match fcv_allowed(version).0.as_str() {
        "5.0" => 13,
        "6.0" => 17,
        "7.0" => 21,
        "8.0" => 25,
        "8.1" => 26,
        "8.2" => 27,
        "8.3" => 28,
        _ => 25,
    }
}

// ------------------------------------------------------------------------------------- storage

struct Store {
    dir: PathBuf,
    colls: BTreeMap<String, Vec<Document>>,
    /// Index specifications besides `_id_`, per namespace (`standin/indexes.bson`).
    indexes: BTreeMap<String, Vec<Document>>,
}

impl Store {
    fn file(&self, ns: &str) -> PathBuf {
        self.dir.join(format!("{}.bson", ns.replace('%', "%25").replace('/', "%2F")))
    }

    fn open(dbpath: &str) -> std::io::Result<Store> {
        let dir = PathBuf::from(dbpath).join("standin");
        std::fs::create_dir_all(&dir)?;
        let mut colls = BTreeMap::new();
        let mut indexes = BTreeMap::new();
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix(".bson")) else { continue };
            let bytes = std::fs::read(&path)?;
            let docs = read_documents(&bytes).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{}: {e}", path.display())))?;
            if name == "indexes" {
                for d in docs {
                    if let (Ok(ns), Ok(specs)) = (d.get_str("ns"), d.get_array("specs")) {
                        indexes.insert(ns.to_string(), specs.iter().filter_map(|s| s.as_document().cloned()).collect());
                    }
                }
            } else {
                colls.insert(name.replace("%2F", "/").replace("%25", "%"), docs);
            }
        }
        Ok(Store { dir, colls, indexes })
    }

    /// Writes a collection's file anew (temporary file, then rename: never half written).
    fn save(&self, ns: &str) {
        let path = self.file(ns);
        match self.colls.get(ns) {
            Some(docs) => {
                let mut bytes = Vec::new();
                for d in docs {
                    let _ = d.to_writer(&mut bytes);
                }
                let tmp = path.with_extension("tmp");
                if std::fs::write(&tmp, bytes).is_ok() {
                    let _ = std::fs::rename(&tmp, &path);
                }
            }
            None => {
                let _ = std::fs::remove_file(&path);
            }
        }
    }

    fn save_indexes(&self) {
        let mut bytes = Vec::new();
        for (ns, specs) in &self.indexes {
            let _ = doc! {"ns": ns, "specs": specs.iter().cloned().map(Bson::Document).collect::<Vec<_>>()}.to_writer(&mut bytes);
        }
        let path = self.dir.join("indexes.bson");
        let tmp = path.with_extension("tmp");
        if std::fs::write(&tmp, bytes).is_ok() {
            let _ = std::fs::rename(&tmp, &path);
        }
    }

    fn docs(&self, ns: &str) -> Vec<Document> {
        self.colls.get(ns).cloned().unwrap_or_default()
    }

    fn one(&self, ns: &str) -> Option<Document> {
        self.colls.get(ns).and_then(|d| d.first().cloned())
    }

    fn put(&mut self, ns: &str, docs: Vec<Document>) {
        self.colls.insert(ns.to_string(), docs);
        self.save(ns);
        if ns != OPLOG && self.colls.contains_key(REPLSET) {
            self.log_write(ns);
        }
    }

    /// A member of a replica set records every write in its oplog (`local.oplog.rs`, capped).
    /// The stand-in keeps one no-op entry per write, with the real fields `ts` (a timestamp:
    /// seconds, then a counter), `t`, `op`, `ns`, `o`, `wall`, oldest first, at most
    /// `OPLOG_ENTRIES` of them: enough for `$natural` reads of the oplog window.
    fn log_write(&mut self, ns: &str) {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0) as u32;
        let mut log = self.docs(OPLOG);
        let increment = match log.last().and_then(|e| e.get_timestamp("ts").ok()) {
            Some(last) if last.time == now => last.increment + 1,
            _ => 1,
        };
        log.push(doc! {"ts": bson::Timestamp { time: now, increment }, "t": 1i64, "op": "n", "ns": "", "o": {"msg": format!("rcfleet lab stand-in: write to {ns}")}, "wall": bson::DateTime::now()});
        let excess = log.len().saturating_sub(OPLOG_ENTRIES);
        log.drain(..excess);
        self.colls.insert(OPLOG.to_string(), log);
        self.save(OPLOG);
    }
}

pub fn read_documents(mut bytes: &[u8]) -> Result<Vec<Document>, String> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        if bytes.len() < 4 {
            return Err("truncated BSON".into());
        }
        let len = i32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
        if len < 5 || len > bytes.len() {
            return Err("truncated BSON".into());
        }
        out.push(Document::from_reader(&mut &bytes[..len]).map_err(|e| e.to_string())?);
        bytes = &bytes[len..];
    }
    Ok(out)
}

// --------------------------------------------------------------------------------------- server

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum State {
    Standalone,
    /// `--replSet` given, no config received yet.
    Startup,
    Secondary,
    Primary,
}

struct Cursor {
    ns: String,
    docs: std::collections::VecDeque<Document>,
    owner: Vec<(String, String)>,
}

struct Server {
    version: String,
    repl_set: Option<String>,
    port: u16,
    bind: Vec<String>,
    auth: bool,
    store: Mutex<Store>,
    cursors: Mutex<HashMap<i64, Cursor>>,
    next_id: AtomicI64,
    process_id: ObjectId,
    /// When the member becomes primary (an initiate or a start with a config sets it).
    primary_at: Mutex<Option<Instant>>,
}

/// One client connection: who it authenticated as, and a SCRAM conversation under way.
struct Conn {
    id: i64,
    peer: String,
    loopback: bool,
    users: Vec<(String, String)>,
    sasl: Option<Sasl>,
}

struct Sasl {
    mech: Mechanism,
    user: String,
    db: String,
    nonce: String,
    auth_prefix: String,
    stored_key: Vec<u8>,
    server_key: Vec<u8>,
    /// The client's proof was right and the server's signature sent; an empty saslContinue ends it.
    proven: bool,
    skip_empty: bool,
}

pub fn mongod(args: Vec<String>) -> i32 {
    // The lab's MongoDB images are one file system; each tag sets the version in its image
    // configuration (tests/lab/lab), so five server versions cost one image build.
    let version = std::env::var("STANDIN_MONGOD_VERSION").ok().filter(|v| !v.is_empty()).or_else(|| util::baked("version")).unwrap_or_else(|| "8.2.0".into());
    let (flags, _) = util::parse_flags(&args, &["bind_ip_all", "quiet", "fork", "auth", "noauth", "ipv6", "version"]);
    if util::flag(&flags, &["version"]).is_some() {
        println!("db version v{version}\n(rcfleet lab stand-in)");
        return 0;
    }
    let port: u16 = util::flag(&flags, &["port"]).and_then(|p| p.parse().ok()).unwrap_or(27017);
    let dbpath = util::flag(&flags, &["dbpath"]).unwrap_or("/data/db").to_string();
    let repl_set = util::flag(&flags, &["replSet"]).map(str::to_string).filter(|s| !s.is_empty());
    let bind: Vec<String> = if util::flag(&flags, &["bind_ip_all"]).is_some() {
        vec!["0.0.0.0".into()]
    } else {
        util::flag(&flags, &["bind_ip"]).unwrap_or("127.0.0.1").split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect()
    };
    let key_file = util::flag(&flags, &["keyFile"]).map(str::to_string);
    if let Some(path) = &key_file {
        if let Err(e) = check_key_file(path) {
            log_json("E", "ACCESS", "Unable to acquire security key[s]", json!({"error": e}));
            eprintln!("{e}");
            return 1;
        }
    }
    let auth = key_file.is_some() || util::flag(&flags, &["auth"]).is_some();
    if !std::path::Path::new(&dbpath).is_dir() {
        log_json("E", "CONTROL", "NonExistentPath", json!({"error": format!("Data directory {dbpath} not found")}));
        eprintln!("NonExistentPath: Data directory {dbpath} not found.");
        return 100;
    }
    // The real server takes a lock file in the data directory first: a directory the user it
    // runs as cannot write stops it here (exit 100), as with an ownership mistake on a server.
    let lock = format!("{dbpath}/mongod.lock");
    if let Err(e) = std::fs::write(&lock, format!("{}\n", std::process::id())) {
        log_json("E", "STORAGE", "Unable to create/open the lock file", json!({"path": lock, "error": e.to_string()}));
        eprintln!("Unable to create/open the lock file: {lock} ({e}). Ensure the user executing mongod is the owner of the lock file and has the appropriate permissions.");
        return 100;
    }
    let store = match Store::open(&dbpath) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cannot read the data files under {dbpath}: {e}");
            return 100;
        }
    };
    // Feature compatibility: a fresh data directory takes this binary's version; data left by a
    // release this one cannot run on stops it, as the real server refuses to start.
    let (own, last_lts) = fcv_allowed(&version);
    let mut store = store;
    match store.one(VERSION_NS).and_then(|d| d.get_str("version").ok().map(str::to_string)) {
        None => store.put(VERSION_NS, vec![doc! {"_id": "featureCompatibilityVersion", "version": own.clone()}]),
        Some(fcv) if fcv == own || fcv == last_lts => {}
        Some(fcv) => {
            let msg = format!(
                "UPGRADE PROBLEM: Found an invalid featureCompatibilityVersion document (ERROR: Location4926900: Invalid featureCompatibilityVersion document in admin.system.version: {{ _id: \"featureCompatibilityVersion\", version: \"{fcv}\" }}. See https://docs.mongodb.com/master/release-notes/{own}-compatibility/#feature-compatibility. :: caused by :: Invalid feature compatibility version value '{fcv}'; expected '{own}' or '{last_lts}'). If the current featureCompatibilityVersion is below {last_lts}, see the documentation on upgrading at https://docs.mongodb.com/master/release-notes/{own}/#upgrade-procedures."
            );
            log_json("F", "CONTROL", "Fatal assertion", json!({"error": msg}));
            eprintln!("{msg}");
            return 62;
        }
    }
    let addrs: Vec<String> = bind.iter().map(|b| format!("{b}:{port}")).collect();
    let listeners = match crate::http::bind(&addrs) {
        Ok(l) => l,
        Err(e) => {
            log_json("E", "NETWORK", "Failed to set up listener", json!({"error": e.to_string(), "addresses": addrs}));
            return 48;
        }
    };
    let has_config = store.one(REPLSET).is_some();
    let srv = Arc::new(Server {
        version: version.clone(),
        repl_set,
        port,
        bind,
        auth,
        store: Mutex::new(store),
        cursors: Mutex::new(HashMap::new()),
        next_id: AtomicI64::new(1),
        process_id: ObjectId::new(),
        primary_at: Mutex::new(has_config.then(|| Instant::now() + ELECTION)),
    });
    log_json("I", "CONTROL", "MongoDB starting (rcfleet lab stand-in)", json!({"version": version, "port": port, "dbPath": dbpath, "replSet": srv.repl_set, "authorization": if auth { "enabled" } else { "disabled" }, "uid": unsafe { libc::getuid() }}));
    log_json("I", "NETWORK", "Waiting for connections", json!({"port": port, "ssl": "off", "addresses": addrs}));
    let mut threads = Vec::new();
    for l in listeners {
        let srv = srv.clone();
        threads.push(std::thread::spawn(move || {
            for stream in l.incoming().flatten() {
                let srv = srv.clone();
                std::thread::spawn(move || serve(stream, &srv));
            }
        }));
    }
    for t in threads {
        let _ = t.join();
    }
    0
}

fn serve(mut stream: TcpStream, srv: &Server) {
    let peer = stream.peer_addr().map(|a| a.to_string()).unwrap_or_default();
    let loopback = stream.peer_addr().map(|a| a.ip().is_loopback()).unwrap_or(false);
    let _ = stream.set_nodelay(true);
    let mut conn = Conn { id: srv.next_id.fetch_add(1, AtomicOrdering::SeqCst), peer, loopback, users: Vec::new(), sasl: None };
    let mut out_id: i32 = 1;
    loop {
        let msg = match wire::read_message(&mut stream) {
            Ok(Some(m)) => m,
            _ => return,
        };
        match msg.op {
            Op::Msg { flags, body } => {
                let exhaust = flags & wire::EXHAUST_ALLOWED != 0;
                let reply = srv.command(&mut conn, &body);
                if flags & wire::MORE_TO_COME != 0 {
                    continue;
                }
                // An awaitable hello with exhaustAllowed: a stream of replies, each sent when the
                // topology changes or maxAwaitTimeMS passes (OP_MSG spec, "exhaustAllowed").
                let streaming = exhaust && is_awaitable_hello(&body);
                let mut response_to = msg.request_id;
                let mut reply = reply;
                loop {
                    out_id += 1;
                    let f = if streaming { wire::MORE_TO_COME } else { 0 };
                    if wire::write_msg_flags(&mut stream, out_id, response_to, f, &reply).is_err() {
                        return;
                    }
                    if !streaming {
                        break;
                    }
                    response_to = out_id;
                    let mut next = body.clone();
                    next.insert("topologyVersion", reply.get("topologyVersion").cloned().unwrap_or(Bson::Null));
                    reply = srv.command(&mut conn, &next);
                }
            }
            Op::Query { collection, query } => {
                // Only the handshake may use OP_QUERY (removed for everything else in 6.0).
                let query = match query.get_document("$query") {
                    Ok(q) => q.clone(),
                    Err(_) => query,
                };
                let name = query.keys().next().cloned().unwrap_or_default();
                let reply = if collection.ends_with(".$cmd") && matches!(name.as_str(), "hello" | "isMaster" | "ismaster") {
                    let mut q = query.clone();
                    q.insert("$db", collection.trim_end_matches(".$cmd"));
                    srv.command(&mut conn, &q)
                } else {
                    error(352, "UnsupportedOpQueryCommand", format!("Unsupported OP_QUERY command: {name}. The client driver may require an upgrade. For more details see https://dochub.mongodb.org/core/legacy-opcode-removal"))
                };
                out_id += 1;
                if wire::write_reply(&mut stream, out_id, msg.request_id, &reply).is_err() {
                    return;
                }
            }
            // OP_COMPRESSED without negotiated compression, or a removed legacy opcode: the
            // real server closes the connection.
            _ => return,
        }
    }
}

fn is_awaitable_hello(body: &Document) -> bool {
    let name = body.keys().next().map(String::as_str).unwrap_or("");
    matches!(name, "hello" | "isMaster" | "ismaster") && body.contains_key("maxAwaitTimeMS") && body.contains_key("topologyVersion")
}

fn num(v: Option<&Bson>) -> Option<f64> {
    match v? {
        Bson::Int32(n) => Some(*n as f64),
        Bson::Int64(n) => Some(*n as f64),
        Bson::Double(n) => Some(*n),
        Bson::Boolean(b) => Some(if *b { 1.0 } else { 0.0 }),
        _ => None,
    }
}

fn truthy(v: Option<&Bson>) -> bool {
    match v {
        None | Some(Bson::Null) => false,
        Some(Bson::Boolean(b)) => *b,
        Some(other) => num(Some(other)).map(|n| n != 0.0).unwrap_or(true),
    }
}

/// What a command needs from the caller's roles.
enum Need {
    Open,
    /// Authenticated, any user (the command itself limits what it shows).
    Anyone,
    ClusterStatus,
    ClusterConfigure,
    ClusterMonitor,
    ClusterAdmin,
    Read(String),
    Write(String),
    DbAdmin(String),
    UserAdmin(String),
}

impl Server {
    fn state(&self) -> State {
        if self.repl_set.is_none() {
            return State::Standalone;
        }
        match *self.primary_at.lock().unwrap() {
            None => State::Startup,
            Some(t) if Instant::now() >= t => State::Primary,
            Some(_) => State::Secondary,
        }
    }

    fn topology_counter(&self) -> i64 {
        match self.state() {
            State::Standalone | State::Startup => 0,
            State::Secondary => 1,
            State::Primary => 2,
        }
    }

    fn me(&self) -> String {
        let host = self.bind.iter().find(|b| *b != "127.0.0.1" && *b != "0.0.0.0").cloned().unwrap_or_else(|| self.bind[0].clone());
        format!("{host}:{}", self.port)
    }

    fn roles_of(&self, store: &Store, conn: &Conn) -> Vec<(String, String)> {
        let users = store.docs(USERS);
        let mut roles = Vec::new();
        for (user, db) in &conn.users {
            if let Some(u) = users.iter().find(|u| u.get_str("user") == Ok(user) && u.get_str("db") == Ok(db)) {
                for r in u.get_array("roles").cloned().unwrap_or_default() {
                    if let Bson::Document(r) = r {
                        roles.push((r.get_str("role").unwrap_or("").to_string(), r.get_str("db").unwrap_or("").to_string()));
                    }
                }
            }
        }
        roles
    }

    fn allowed(roles: &[(String, String)], need: &Need) -> bool {
        let has = |role: &str, db: &str| roles.iter().any(|(r, d)| r == role && d == db);
        if has("root", "admin") || has("__system", "admin") {
            return true;
        }
        match need {
            Need::Open | Need::Anyone => true,
            Need::ClusterStatus | Need::ClusterMonitor => has("clusterMonitor", "admin") || has("clusterAdmin", "admin"),
            Need::ClusterConfigure | Need::ClusterAdmin => has("clusterAdmin", "admin"),
            Need::Read(db) => {
                has("read", db) || has("readWrite", db) || has("dbOwner", db) || (!is_internal_db(db) && (has("readAnyDatabase", "admin") || has("readWriteAnyDatabase", "admin")))
            }
            Need::Write(db) => has("readWrite", db) || has("dbOwner", db) || (!is_internal_db(db) && has("readWriteAnyDatabase", "admin")),
            Need::DbAdmin(db) => has("dbAdmin", db) || has("dbOwner", db) || has("dbAdminAnyDatabase", "admin"),
            Need::UserAdmin(db) => has("userAdmin", db) || has("dbOwner", db) || has("userAdminAnyDatabase", "admin"),
        }
    }

    fn need(name: &str, db: &str) -> Option<Need> {
        let db = db.to_string();
        Some(match name {
            "hello" | "isMaster" | "ismaster" | "buildInfo" | "buildinfo" | "ping" | "saslStart" | "saslContinue" | "logout"
            | "connectionStatus" | "endSessions" | "whatsmyuri" => Need::Open,
            "listDatabases" | "killCursors" | "getMore" => Need::Anyone,
            "replSetGetStatus" => Need::ClusterStatus,
            "replSetInitiate" | "replSetReconfig" => Need::ClusterConfigure,
            "replSetGetConfig" | "serverStatus" | "getParameter" => Need::ClusterMonitor,
            "setFeatureCompatibilityVersion" => Need::ClusterAdmin,
            "find" | "count" | "aggregate" | "listCollections" | "listIndexes" | "dbStats" => Need::Read(db),
            "insert" | "update" | "delete" | "findAndModify" | "create" | "drop" | "createIndexes" | "dropIndexes" => Need::Write(db),
            "dropDatabase" => Need::DbAdmin(db),
            "createUser" | "updateUser" | "dropUser" | "usersInfo" => Need::UserAdmin(db),
            _ => return None,
        })
    }

    /// The localhost exception: a loopback client while no user exists gets exactly the
    /// privileges the real server's `getDefaultPrivileges` gives (mongo
    /// `authorization_session_impl.cpp`): createUser and grantRole on `admin`, createUser on
    /// `$external`, replSetConfigure, replSetGetStatus, addShard.
    fn localhost_exception(name: &str, db: &str, body: &Document) -> bool {
        match name {
            "replSetInitiate" | "replSetReconfig" | "replSetGetStatus" => true,
            "createUser" if db == "$external" => body.get_array("roles").map(|r| r.is_empty()).unwrap_or(true),
            // Granting a role needs grantRole on the role's database: admin only.
            "createUser" if db == "admin" => body.get_array("roles").cloned().unwrap_or_default().iter().all(|r| match r {
                Bson::String(_) => true,
                Bson::Document(d) => d.get_str("db") == Ok("admin"),
                _ => false,
            }),
            _ => false,
        }
    }

    fn command(&self, conn: &mut Conn, body: &Document) -> Document {
        let Some(name) = body.keys().next().cloned() else {
            return error(59, "CommandNotFound", "no such command: ''");
        };
        let Ok(db) = body.get_str("$db").map(str::to_string) else {
            return error(40571, "Location40571", "OP_MSG requests require a $db argument");
        };
        let Some(need) = Self::need(&name, &db) else {
            log_json("I", "COMMAND", "command not found", json!({"command": name, "client": conn.peer}));
            return error(59, "CommandNotFound", format!("no such command: '{name}'"));
        };
        if !matches!(name.as_str(), "hello" | "isMaster" | "ismaster" | "ping") {
            log_json("I", "COMMAND", "command", json!({"command": name, "db": db, "client": conn.peer, "conn": conn.id, "users": conn.users.iter().map(|(u, d)| format!("{u}@{d}")).collect::<Vec<_>>()}));
        }
        if self.auth && !matches!(need, Need::Open) {
            let store = self.store.lock().unwrap();
            if conn.users.is_empty() {
                let no_users = store.docs(USERS).is_empty();
                if !(no_users && conn.loopback && Self::localhost_exception(&name, &db, body)) {
                    return unauthorized(format!("Command {name} requires authentication"));
                }
            } else {
                let roles = self.roles_of(&store, conn);
                let own_user_info = name == "usersInfo" && self.asks_only_own_user(conn, &db, body);
                if !Self::allowed(&roles, &need) && !own_user_info {
                    return unauthorized(format!("not authorized on {db} to execute command {{ {name}: {} }}", body.get(&name).map(|v| v.to_string()).unwrap_or_default()));
                }
            }
        }
        match self.run(conn, &name, &db, body) {
            Ok(mut d) => {
                d.insert("ok", 1.0);
                d
            }
            Err(e) => e,
        }
    }

    fn asks_only_own_user(&self, conn: &Conn, db: &str, body: &Document) -> bool {
        match body.get("usersInfo") {
            Some(Bson::String(u)) => conn.users.iter().any(|(cu, cd)| cu == u && cd == db),
            Some(Bson::Document(d)) => conn.users.iter().any(|(cu, cd)| d.get_str("user") == Ok(cu) && d.get_str("db") == Ok(cd)),
            _ => false,
        }
    }

    fn writable(&self) -> Result<(), Document> {
        match self.state() {
            State::Standalone | State::Primary => Ok(()),
            _ => Err(error(10107, "NotWritablePrimary", "not primary")),
        }
    }

    fn readable(&self, body: &Document) -> Result<(), Document> {
        let mode = body.get_document("$readPreference").ok().and_then(|r| r.get_str("mode").ok()).unwrap_or("primary").to_string();
        match self.state() {
            State::Standalone | State::Primary => Ok(()),
            State::Secondary if mode != "primary" => Ok(()),
            State::Secondary => Err(error(13435, "NotPrimaryNoSecondaryOk", "not primary and secondaryOk=false")),
            State::Startup => Err(error(13436, "NotPrimaryOrSecondary", "node is not in primary or recovering state")),
        }
    }

    fn hello(&self, conn: &Conn, name: &str, body: &Document) -> Document {
        // An awaitable hello waits (up to maxAwaitTimeMS) for the topology to change.
        if let (Ok(tv), Some(wait)) = (body.get_document("topologyVersion"), num(body.get("maxAwaitTimeMS"))) {
            if tv.get_object_id("processId") == Ok(self.process_id) {
                let until = Instant::now() + Duration::from_millis(wait.max(0.0) as u64);
                let seen = tv.get_i64("counter").unwrap_or(-1);
                while self.topology_counter() == seen && Instant::now() < until {
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
        let state = self.state();
        let legacy = name != "hello";
        let primary = matches!(state, State::Standalone | State::Primary);
        let mut r = Document::new();
        if let Ok(true) = body.get_bool("helloOk") {
            r.insert("helloOk", true);
        }
        r.insert("topologyVersion", doc! {"processId": self.process_id, "counter": self.topology_counter()});
        let store = self.store.lock().unwrap();
        let config = store.one(REPLSET);
        if let (Some(set), Some(cfg)) = (&self.repl_set, &config) {
            r.insert("hosts", Bson::Array(members_hosts(cfg).into_iter().map(Bson::String).collect()));
            r.insert("setName", set.as_str());
            r.insert("setVersion", cfg.get_i32("version").unwrap_or(1));
        }
        r.insert(if legacy { "ismaster" } else { "isWritablePrimary" }, primary && state != State::Startup);
        r.insert("secondary", state == State::Secondary);
        match (state, &config) {
            (State::Primary, Some(cfg)) => {
                r.insert("primary", members_hosts(cfg).first().cloned().unwrap_or_else(|| self.me()));
                r.insert("me", members_hosts(cfg).first().cloned().unwrap_or_else(|| self.me()));
                r.insert("electionId", ObjectId::parse_str("7fffffff0000000000000001").expect("a valid ObjectId"));
            }
            (State::Secondary, Some(cfg)) => {
                r.insert("me", members_hosts(cfg).first().cloned().unwrap_or_else(|| self.me()));
            }
            (State::Startup, _) => {
                r.insert("info", "Does not have a valid replica set config");
                r.insert("isreplicaset", true);
            }
            _ => {}
        }
        r.insert("maxBsonObjectSize", 16_777_216);
        r.insert("maxMessageSizeBytes", 48_000_000);
        r.insert("maxWriteBatchSize", 100_000);
        r.insert("localTime", bson::DateTime::now());
        r.insert("logicalSessionTimeoutMinutes", 30);
        r.insert("connectionId", conn.id as i32);
        r.insert("minWireVersion", 0);
        r.insert("maxWireVersion", wire_version(&self.version));
        r.insert("readOnly", false);
        // A driver given credentials asks which SCRAM mechanisms the user has.
        if let Ok(who) = body.get_str("saslSupportedMechs") {
            if let Some((udb, user)) = who.split_once('.') {
                if let Some(u) = store.docs(USERS).iter().find(|u| u.get_str("user") == Ok(user) && u.get_str("db") == Ok(udb)) {
                    let mechs: Vec<Bson> = u.get_document("credentials").map(|c| c.keys().cloned().map(Bson::String).collect()).unwrap_or_default();
                    r.insert("saslSupportedMechs", mechs);
                }
            }
        }
        r
    }

    fn run(&self, conn: &mut Conn, name: &str, db: &str, body: &Document) -> Reply {
        let arg = body.get(name).cloned().unwrap_or(Bson::Null);
        match name {
            "hello" | "isMaster" | "ismaster" => {
                let mut r = self.hello(conn, name, body);
                if let Ok(spec) = body.get_document("speculativeAuthenticate") {
                    let sdb = spec.get_str("db").unwrap_or("admin").to_string();
                    if let Ok(first) = self.sasl_start(conn, &sdb, spec) {
                        let mut s = first;
                        s.remove("ok");
                        r.insert("speculativeAuthenticate", s);
                    }
                }
                Ok(r)
            }
            "ping" => Ok(doc! {}),
            "whatsmyuri" => Ok(doc! {"you": conn.peer.clone()}),
            "endSessions" => Ok(doc! {}),
            "logout" => {
                conn.users.clear();
                Ok(doc! {})
            }
            "connectionStatus" => {
                let store = self.store.lock().unwrap();
                let users: Vec<Bson> = conn.users.iter().map(|(u, d)| Bson::Document(doc! {"user": u, "db": d})).collect();
                let roles: Vec<Bson> = self.roles_of(&store, conn).into_iter().map(|(r, d)| Bson::Document(doc! {"role": r, "db": d})).collect();
                Ok(doc! {"authInfo": {"authenticatedUsers": users, "authenticatedUserRoles": roles}})
            }
            "buildInfo" | "buildinfo" => {
                let parts: Vec<Bson> = self.version.split('.').map(|p| Bson::Int32(p.parse().unwrap_or(0))).chain(std::iter::once(Bson::Int32(0))).collect();
                Ok(doc! {"version": self.version.clone(), "gitVersion": "rcfleet-lab-standin", "modules": [], "allocator": "tcmalloc-google",
                         "javascriptEngine": "mozjs", "sysInfo": "deprecated", "versionArray": parts, "bits": 64, "debug": false,
                         "maxBsonObjectSize": 16_777_216, "storageEngines": ["devnull", "wiredTiger"]})
            }
            "serverStatus" => Ok(doc! {"host": self.me(), "version": self.version.clone(), "process": "mongod", "pid": std::process::id() as i64, "localTime": bson::DateTime::now()}),
            "getParameter" => {
                let store = self.store.lock().unwrap();
                let fcv = store.one(VERSION_NS).and_then(|d| d.get_str("version").ok().map(str::to_string)).unwrap_or_default();
                if body.contains_key("featureCompatibilityVersion") || arg == Bson::String("*".into()) {
                    Ok(doc! {"featureCompatibilityVersion": {"version": fcv}})
                } else {
                    Err(error(72, "InvalidOptions", "no option found to get"))
                }
            }
            "setFeatureCompatibilityVersion" => {
                if db != "admin" {
                    return Err(unauthorized("setFeatureCompatibilityVersion may only be run against the admin database."));
                }
                let target = arg.as_str().unwrap_or("").to_string();
                let (own, last_lts) = fcv_allowed(&self.version);
                if target != own && target != last_lts {
                    return Err(error(2, "BadValue", format!("Invalid feature compatibility version value '{target}'; expected '{own}' or '{last_lts}'")));
                }
                // From 7.0 the command must be confirmed (MongoDB docs, setFeatureCompatibilityVersion: "confirm ... New in version 7.0").
                let major: u32 = own.split('.').next().and_then(|m| m.parse().ok()).unwrap_or(0);
                // Before 7.0 the field does not exist: the command's IDL parser refuses unknown fields.
                if major < 7 && body.contains_key("confirm") {
                    return Err(error(40415, "Location40415", "BSON field 'setFeatureCompatibilityVersion.confirm' is an unknown field."));
                }
                if major >= 7 && body.get_bool("confirm") != Ok(true) {
                    return Err(error(7369100, "Location7369100", format!("Once you have upgraded to {target}, you will not be able to downgrade FCV and binary version without support assistance. Please re-run this command with 'confirm: true' to acknowledge this and continue with the FCV upgrade.")));
                }
                self.writable()?;
                let mut store = self.store.lock().unwrap();
                store.put(VERSION_NS, vec![doc! {"_id": "featureCompatibilityVersion", "version": target}]);
                Ok(doc! {})
            }
            "replSetInitiate" => self.repl_set_initiate(&arg),
            "replSetReconfig" => Err(error(59, "CommandNotFound", "no such command: 'replSetReconfig' (not implemented by the lab's mongod stand-in)")),
            "replSetGetStatus" => self.repl_set_status(),
            "replSetGetConfig" => {
                let store = self.store.lock().unwrap();
                match (&self.repl_set, store.one(REPLSET)) {
                    (None, _) => Err(error(76, "NoReplicationEnabled", "not running with --replSet")),
                    (Some(_), None) => Err(error(94, "NotYetInitialized", "no replset config has been received")),
                    (Some(_), Some(cfg)) => Ok(doc! {"config": cfg}),
                }
            }
            "saslStart" => self.sasl_start(conn, db, body),
            "saslContinue" => self.sasl_continue(conn, body),
            "createUser" | "updateUser" | "dropUser" | "usersInfo" => self.users(name, db, &arg, body),
            _ => self.crud(conn, name, db, &arg, body),
        }
    }

    fn repl_set_initiate(&self, arg: &Bson) -> Reply {
        let Some(set) = &self.repl_set else {
            return Err(error(76, "NoReplicationEnabled", "This node was not started with replication enabled."));
        };
        let mut store = self.store.lock().unwrap();
        if store.one(REPLSET).is_some() {
            return Err(error(23, "AlreadyInitialized", "already initialized"));
        }
        let mut cfg = match arg {
            Bson::Document(d) if !d.is_empty() => d.clone(),
            _ => doc! {"_id": set.clone(), "members": [{"_id": 0, "host": self.me()}]},
        };
        let id = cfg.get_str("_id").unwrap_or("").to_string();
        if id != *set {
            return Err(error(93, "InvalidReplicaSetConfig", format!("Attempting to initiate a replica set with name {id}, but command line reports {set}; rejecting")));
        }
        let hosts = members_hosts(&cfg);
        if hosts.is_empty() {
            return Err(error(93, "InvalidReplicaSetConfig", "replica set configuration must have members, each with a host"));
        }
        // One member must be this node: its address and port (the real one resolves names too).
        let mine = |h: &String| {
            let (host, port) = h.rsplit_once(':').map(|(a, p)| (a.to_string(), p.parse::<u16>().unwrap_or(27017))).unwrap_or((h.clone(), 27017));
            port == self.port && (self.bind.iter().any(|b| *b == host || b == "0.0.0.0") || host == "localhost")
        };
        if !hosts.iter().any(mine) {
            return Err(error(93, "InvalidReplicaSetConfig", format!("No host described in new configuration with {{version: 1, term: 0}} for replica set {set} maps to this node")));
        }
        cfg.insert("version", 1);
        cfg.insert("term", 1);
        if !cfg.contains_key("protocolVersion") {
            cfg.insert("protocolVersion", 1i64);
        }
        let members: Vec<Bson> = cfg
            .get_array("members")
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(|m| match m {
                Bson::Document(mut m) => {
                    for (k, v) in [("arbiterOnly", Bson::Boolean(false)), ("buildIndexes", Bson::Boolean(true)), ("hidden", Bson::Boolean(false)), ("priority", Bson::Double(1.0)), ("tags", Bson::Document(doc! {})), ("secondaryDelaySecs", Bson::Int64(0)), ("votes", Bson::Int32(1))] {
                        if !m.contains_key(k) {
                            m.insert(k, v);
                        }
                    }
                    Bson::Document(m)
                }
                other => other,
            })
            .collect();
        cfg.insert("members", members);
        store.put(REPLSET, vec![cfg.clone()]);
        *self.primary_at.lock().unwrap() = Some(Instant::now() + ELECTION);
        log_json("I", "REPL", "replSetInitiate admin command received from client", json!({"set": set, "members": hosts}));
        Ok(doc! {})
    }

    fn repl_set_status(&self) -> Reply {
        let Some(set) = &self.repl_set else {
            return Err(error(76, "NoReplicationEnabled", "not running with --replSet"));
        };
        let store = self.store.lock().unwrap();
        let Some(cfg) = store.one(REPLSET) else {
            return Err(error(94, "NotYetInitialized", "no replset config has been received"));
        };
        let state = self.state();
        let (code, text) = if state == State::Primary { (1, "PRIMARY") } else { (2, "SECONDARY") };
        let members: Vec<Bson> = cfg
            .get_array("members")
            .cloned()
            .unwrap_or_default()
            .iter()
            .enumerate()
            .filter_map(|(i, m)| m.as_document().map(|m| (i, m.clone())))
            .map(|(i, m)| {
                let mut d = doc! {"_id": m.get("_id").cloned().unwrap_or(Bson::Int32(i as i32)), "name": m.get_str("host").unwrap_or(""), "health": 1.0};
                if i == 0 {
                    d.insert("state", code);
                    d.insert("stateStr", text);
                    d.insert("self", true);
                } else {
                    // Other members are not modelled: the lab runs one-member sets.
                    d.insert("health", 0.0);
                    d.insert("state", 8);
                    d.insert("stateStr", "(not reachable/healthy)");
                }
                Bson::Document(d)
            })
            .collect();
        Ok(doc! {"set": set.clone(), "date": bson::DateTime::now(), "myState": code, "term": 1i64, "members": members})
    }

    // -------------------------------------------------------------------------- SCRAM, server side

    fn sasl_start(&self, conn: &mut Conn, db: &str, body: &Document) -> Reply {
        let mech_name = body.get_str("mechanism").unwrap_or("");
        let Some(mech) = Mechanism::from_name(mech_name) else {
            return Err(error(334, "MechanismUnavailable", format!("Received authentication for mechanism {mech_name} which is unknown or not enabled")));
        };
        let failed = || error(18, "AuthenticationFailed", "Authentication failed.");
        let first = wire::payload_text(body).ok_or_else(failed)?;
        // gs2 header: no channel binding, no authzid.
        let Some(bare) = first.strip_prefix("n,,") else {
            return Err(failed());
        };
        let user = wire::scram_field(bare, 'n').map(|u| wire::scram_unescape(&u)).ok_or_else(failed)?;
        let client_nonce = wire::scram_field(bare, 'r').ok_or_else(failed)?;
        let store = self.store.lock().unwrap();
        let creds = store
            .docs(USERS)
            .into_iter()
            .find(|u| u.get_str("user") == Ok(&user) && u.get_str("db") == Ok(db))
            .and_then(|u| u.get_document("credentials").ok().and_then(|c| c.get_document(mech.name()).ok().cloned()));
        drop(store);
        let Some(creds) = creds else {
            log_json("I", "ACCESS", "Authentication failed", json!({"mechanism": mech.name(), "user": user, "db": db, "client": conn.peer, "error": "UserNotFound"}));
            return Err(failed());
        };
        let nonce = format!("{client_nonce}{}", wire::b64(&wire::random_bytes(24)));
        let server_first = format!("r={nonce},s={},i={}", creds.get_str("salt").unwrap_or(""), creds.get_i32("iterationCount").unwrap_or(15000));
        let skip_empty = body.get_document("options").ok().and_then(|o| o.get_bool("skipEmptyExchange").ok()).unwrap_or(false);
        conn.sasl = Some(Sasl {
            mech,
            user,
            db: db.to_string(),
            nonce,
            auth_prefix: format!("{bare},{server_first}"),
            stored_key: creds.get_str("storedKey").ok().and_then(wire::unb64).unwrap_or_default(),
            server_key: creds.get_str("serverKey").ok().and_then(wire::unb64).unwrap_or_default(),
            proven: false,
            skip_empty,
        });
        Ok(doc! {"conversationId": 1, "done": false, "payload": wire::binary(server_first.into_bytes())})
    }

    fn sasl_continue(&self, conn: &mut Conn, body: &Document) -> Reply {
        let failed = || error(18, "AuthenticationFailed", "Authentication failed.");
        let Some(sasl) = conn.sasl.take() else {
            return Err(error(17, "ProtocolError", "No SASL session state found"));
        };
        let payload = wire::payload_text(body).unwrap_or_default();
        if sasl.proven {
            conn.users.retain(|(u, d)| !(u == &sasl.user && d == &sasl.db));
            conn.users.push((sasl.user.clone(), sasl.db.clone()));
            return Ok(doc! {"conversationId": 1, "done": true, "payload": wire::binary(Vec::new())});
        }
        let fields = wire::scram_fields(&payload);
        let get = |k: char| fields.iter().find(|(f, _)| *f == k).map(|(_, v)| v.clone());
        let (Some(c), Some(r), Some(p)) = (get('c'), get('r'), get('p')) else { return Err(failed()) };
        let proof = wire::unb64(&p).unwrap_or_default();
        let without_proof = format!("c={c},r={r}");
        let auth_message = format!("{},{without_proof}", sasl.auth_prefix);
        let signature = sasl.mech.hmac(&sasl.stored_key, auth_message.as_bytes());
        let client_key: Vec<u8> = proof.iter().zip(&signature).map(|(a, b)| a ^ b).collect();
        if c != "biws" || r != sasl.nonce || proof.len() != signature.len() || sasl.mech.hash(&client_key) != sasl.stored_key {
            log_json("I", "ACCESS", "Authentication failed", json!({"mechanism": sasl.mech.name(), "user": sasl.user, "db": sasl.db, "client": conn.peer}));
            return Err(failed());
        }
        let verifier = format!("v={}", wire::b64(&sasl.mech.hmac(&sasl.server_key, auth_message.as_bytes())));
        log_json("I", "ACCESS", "Successfully authenticated", json!({"mechanism": sasl.mech.name(), "user": sasl.user, "db": sasl.db, "client": conn.peer}));
        if sasl.skip_empty {
            conn.users.retain(|(u, d)| !(u == &sasl.user && d == &sasl.db));
            conn.users.push((sasl.user.clone(), sasl.db.clone()));
            return Ok(doc! {"conversationId": 1, "done": true, "payload": wire::binary(verifier.into_bytes())});
        }
        conn.sasl = Some(Sasl { proven: true, ..sasl });
        Ok(doc! {"conversationId": 1, "done": false, "payload": wire::binary(verifier.into_bytes())})
    }

    // ---------------------------------------------------------------------------------- users

    fn users(&self, name: &str, db: &str, arg: &Bson, body: &Document) -> Reply {
        let mut store = self.store.lock().unwrap();
        let mut users = store.docs(USERS);
        let roles_of = |body: &Document| -> Result<Vec<Bson>, Document> {
            let mut out = Vec::new();
            for r in body.get_array("roles").cloned().unwrap_or_default() {
                match r {
                    Bson::String(role) => out.push(Bson::Document(doc! {"role": role, "db": db})),
                    Bson::Document(d) if d.get_str("role").is_ok() && d.get_str("db").is_ok() => out.push(Bson::Document(doc! {"role": d.get_str("role").unwrap(), "db": d.get_str("db").unwrap()})),
                    _ => return Err(error(2, "BadValue", "Role names must be either strings or objects")),
                }
            }
            Ok(out)
        };
        let credentials = |user: &str, pwd: &str, body: &Document| -> Document {
            let mechs: Vec<String> = body.get_array("mechanisms").map(|m| m.iter().filter_map(|x| x.as_str().map(str::to_string)).collect()).unwrap_or_else(|_| vec!["SCRAM-SHA-1".into(), "SCRAM-SHA-256".into()]);
            let mut c = Document::new();
            for m in mechs.iter().filter_map(|m| Mechanism::from_name(m)) {
                c.insert(m.name(), wire::stored_credentials(m, user, pwd));
            }
            c
        };
        match name {
            "createUser" => {
                self.writable()?;
                let user = arg.as_str().unwrap_or("").to_string();
                if user.is_empty() {
                    return Err(error(2, "BadValue", "User document needs 'user' field to be non-empty"));
                }
                if users.iter().any(|u| u.get_str("user") == Ok(&user) && u.get_str("db") == Ok(db)) {
                    return Err(error(51003, "Location51003", format!("User \"{user}@{db}\" already exists")));
                }
                let pwd = body.get_str("pwd").unwrap_or("");
                if pwd.is_empty() && db != "$external" {
                    return Err(error(2, "BadValue", "Must provide a 'pwd' field for all user documents, except those with '$external' as the user's source db"));
                }
                let roles = roles_of(body)?;
                users.push(doc! {"_id": format!("{db}.{user}"), "userId": bson::Binary { subtype: bson::spec::BinarySubtype::Uuid, bytes: wire::random_bytes(16) },
                                 "user": user.clone(), "db": db, "credentials": credentials(&user, pwd, body), "roles": roles});
                store.put(USERS, users);
                log_json("I", "ACCESS", "user created", json!({"user": user, "db": db}));
                Ok(doc! {})
            }
            "updateUser" => {
                self.writable()?;
                let user = arg.as_str().unwrap_or("").to_string();
                let roles = if body.contains_key("roles") { Some(roles_of(body)?) } else { None };
                let Some(u) = users.iter_mut().find(|u| u.get_str("user") == Ok(&user) && u.get_str("db") == Ok(db)) else {
                    return Err(error(11, "UserNotFound", format!("Could not find user \"{user}\" for db \"{db}\"")));
                };
                if let Ok(pwd) = body.get_str("pwd") {
                    u.insert("credentials", credentials(&user, pwd, body));
                }
                if let Some(roles) = roles {
                    u.insert("roles", roles);
                }
                store.put(USERS, users);
                Ok(doc! {})
            }
            "dropUser" => {
                self.writable()?;
                let user = arg.as_str().unwrap_or("").to_string();
                let before = users.len();
                users.retain(|u| !(u.get_str("user") == Ok(&user) && u.get_str("db") == Ok(db)));
                if users.len() == before {
                    return Err(error(11, "UserNotFound", format!("User '{user}@{db}' not found")));
                }
                store.put(USERS, users);
                Ok(doc! {})
            }
            _ => {
                let wanted = |u: &Document| match arg {
                    Bson::String(n) => u.get_str("user") == Ok(n) && u.get_str("db") == Ok(db),
                    Bson::Document(d) => u.get_str("user") == d.get_str("user") && u.get_str("db") == d.get_str("db"),
                    _ => u.get_str("db") == Ok(db),
                };
                let show_credentials = body.get_bool("showCredentials") == Ok(true);
                let list: Vec<Bson> = users
                    .iter()
                    .filter(|u| wanted(u))
                    .map(|u| {
                        let mut d = doc! {"_id": u.get_str("_id").unwrap_or(""), "userId": u.get("userId").cloned().unwrap_or(Bson::Null), "user": u.get_str("user").unwrap_or(""), "db": u.get_str("db").unwrap_or(""),
                                          "roles": u.get("roles").cloned().unwrap_or(Bson::Array(vec![])),
                                          "mechanisms": u.get_document("credentials").map(|c| c.keys().cloned().map(Bson::String).collect::<Vec<_>>()).unwrap_or_default()};
                        if show_credentials {
                            d.insert("credentials", u.get("credentials").cloned().unwrap_or(Bson::Null));
                        }
                        Bson::Document(d)
                    })
                    .collect();
                Ok(doc! {"users": list})
            }
        }
    }

    // ----------------------------------------------------------------------------------- CRUD

    fn new_cursor(&self, conn: &Conn, ns: &str, mut docs: Vec<Document>, first: usize, key: &str) -> Document {
        let rest: std::collections::VecDeque<Document> = if docs.len() > first { docs.split_off(first).into() } else { Default::default() };
        let id = if rest.is_empty() {
            0i64
        } else {
            let id = (self.next_id.fetch_add(1, AtomicOrdering::SeqCst) << 20) | (std::process::id() as i64 & 0xfffff);
            self.cursors.lock().unwrap().insert(id, Cursor { ns: ns.to_string(), docs: rest, owner: conn.users.clone() });
            id
        };
        doc! {"cursor": {key: docs.into_iter().map(Bson::Document).collect::<Vec<_>>(), "id": id, "ns": ns}}
    }

    fn crud(&self, conn: &mut Conn, name: &str, db: &str, arg: &Bson, body: &Document) -> Reply {
        let coll = arg.as_str().unwrap_or("").to_string();
        let ns = format!("{db}.{coll}");
        let need_coll = || -> Result<(), Document> {
            if coll.is_empty() {
                Err(error(73, "InvalidNamespace", format!("Invalid namespace specified '{db}.'")))
            } else {
                Ok(())
            }
        };
        match name {
            // MongoDB docs, dbStats: sizes in bytes of the database's documents (BSON).
            "dbStats" => {
                let store = self.store.lock().unwrap();
                let prefix = format!("{db}.");
                let colls: Vec<&Vec<Document>> = store.colls.iter().filter(|(ns, _)| ns.starts_with(&prefix)).map(|(_, d)| d).collect();
                let objects: i64 = colls.iter().map(|d| d.len() as i64).sum();
                let data: i64 = colls.iter().flat_map(|d| d.iter()).map(|d| bson::to_vec(d).map(|v| v.len() as i64).unwrap_or(0)).sum();
                Ok(doc! {"db": db, "collections": colls.len() as i64, "views": 0i64, "objects": objects,
                         "avgObjSize": if objects > 0 { data as f64 / objects as f64 } else { 0.0 }, "dataSize": data as f64,
                         "storageSize": (data + 4096 * colls.len() as i64) as f64, "indexes": colls.len() as i64, "scaleFactor": 1i64})
            }
            "listDatabases" => {
                let store = self.store.lock().unwrap();
                let roles = self.roles_of(&store, conn);
                let everything = !self.auth || Self::allowed(&roles, &Need::ClusterMonitor) || (conn.users.is_empty() && !self.auth);
                let mut sizes: BTreeMap<String, i64> = BTreeMap::new();
                for (ns, docs) in &store.colls {
                    let dbname = ns.split_once('.').map(|(d, _)| d).unwrap_or(ns).to_string();
                    let size: i64 = docs.iter().map(|d| bson::to_vec(d).map(|v| v.len() as i64).unwrap_or(0)).sum();
                    *sizes.entry(dbname).or_default() += size + 4096;
                }
                let filter = body.get_document("filter").cloned().unwrap_or_default();
                let list: Vec<Bson> = sizes
                    .iter()
                    .filter(|(d, _)| everything || Self::allowed(&roles, &Need::Read((*d).clone())))
                    .map(|(d, s)| doc! {"name": d.clone(), "sizeOnDisk": *s, "empty": false})
                    .filter(|d| matches(d, &filter).unwrap_or(false))
                    .map(|d| if body.get_bool("nameOnly") == Ok(true) { Bson::Document(doc! {"name": d.get_str("name").unwrap_or("")}) } else { Bson::Document(d) })
                    .collect();
                let total: i64 = sizes.values().sum();
                Ok(doc! {"databases": list, "totalSize": total, "totalSizeMb": total / (1 << 20)})
            }
            "listCollections" => {
                self.readable(body)?;
                let store = self.store.lock().unwrap();
                let filter = body.get_document("filter").cloned().unwrap_or_default();
                let prefix = format!("{db}.");
                let list: Vec<Document> = store
                    .colls
                    .keys()
                    .filter_map(|ns| ns.strip_prefix(&prefix))
                    .map(|c| doc! {"name": c, "type": "collection", "options": {}, "info": {"readOnly": false}, "idIndex": {"v": 2, "key": {"_id": 1}, "name": "_id_"}})
                    .filter(|d| matches(d, &filter).unwrap_or(false))
                    .map(|d| if body.get_bool("nameOnly") == Ok(true) { doc! {"name": d.get_str("name").unwrap_or(""), "type": "collection"} } else { d })
                    .collect();
                drop(store);
                Ok(self.new_cursor(conn, &format!("{db}.$cmd.listCollections"), list, usize::MAX, "firstBatch"))
            }
            "find" => {
                need_coll()?;
                self.readable(body)?;
                let store = self.store.lock().unwrap();
                let filter = body.get_document("filter").cloned().unwrap_or_default();
                let mut docs = Vec::new();
                for d in store.docs(&ns) {
                    if matches(&d, &filter).map_err(|e| error(2, "BadValue", e))? {
                        docs.push(d);
                    }
                }
                drop(store);
                if let Ok(sort) = body.get_document("sort") {
                    sort_docs(&mut docs, sort);
                }
                let skip = num(body.get("skip")).unwrap_or(0.0).max(0.0) as usize;
                let docs: Vec<Document> = docs.into_iter().skip(skip).collect();
                let limit = num(body.get("limit")).unwrap_or(0.0).abs() as usize;
                let mut docs: Vec<Document> = if limit > 0 { docs.into_iter().take(limit).collect() } else { docs };
                if let Ok(p) = body.get_document("projection") {
                    docs = docs.iter().map(|d| project(d, p)).collect::<Result<_, _>>().map_err(|e| error(2, "BadValue", e))?;
                }
                let batch = num(body.get("batchSize")).map(|b| b as usize).unwrap_or(101);
                let single = body.get_bool("singleBatch") == Ok(true);
                let first = if single { usize::MAX } else { batch };
                Ok(self.new_cursor(conn, &ns, docs, first, "firstBatch"))
            }
            "getMore" => {
                let id = match body.get("getMore") {
                    Some(Bson::Int64(i)) => *i,
                    Some(Bson::Int32(i)) => *i as i64,
                    _ => return Err(error(2, "BadValue", "getMore's cursor id must be a long")),
                };
                let mut cursors = self.cursors.lock().unwrap();
                let Some(c) = cursors.get_mut(&id) else {
                    return Err(error(43, "CursorNotFound", format!("cursor id {id} not found")));
                };
                if c.owner != conn.users {
                    return Err(unauthorized(format!("cursor id {id} was not created by the authenticated user")));
                }
                let n = num(body.get("batchSize")).map(|b| b as usize).filter(|b| *b > 0).unwrap_or(usize::MAX);
                let batch: Vec<Bson> = (0..n).map_while(|_| c.docs.pop_front()).map(Bson::Document).collect();
                let ns = c.ns.clone();
                let left = !c.docs.is_empty();
                if !left {
                    cursors.remove(&id);
                }
                Ok(doc! {"cursor": {"nextBatch": batch, "id": if left { id } else { 0 }, "ns": ns}})
            }
            "killCursors" => {
                let ids: Vec<i64> = body.get_array("cursors").cloned().unwrap_or_default().iter().filter_map(|b| b.as_i64()).collect();
                let mut cursors = self.cursors.lock().unwrap();
                let (mut killed, mut not_found) = (Vec::new(), Vec::new());
                for id in ids {
                    if cursors.remove(&id).is_some() { killed.push(id) } else { not_found.push(id) }
                }
                Ok(doc! {"cursorsKilled": killed, "cursorsNotFound": not_found, "cursorsAlive": [], "cursorsUnknown": []})
            }
            "count" => {
                need_coll()?;
                self.readable(body)?;
                let store = self.store.lock().unwrap();
                let q = body.get_document("query").cloned().unwrap_or_default();
                let mut n = 0i32;
                for d in store.docs(&ns) {
                    if matches(&d, &q).map_err(|e| error(2, "BadValue", e))? {
                        n += 1;
                    }
                }
                Ok(doc! {"n": n})
            }
            "aggregate" => {
                self.readable(body)?;
                if !body.contains_key("cursor") && body.get_bool("explain") != Ok(true) {
                    return Err(error(9, "FailedToParse", "The 'cursor' option is required, except for aggregate with the explain argument"));
                }
                let stages: Vec<String> = body.get_array("pipeline").map(|p| p.iter().filter_map(|s| s.as_document().and_then(|d| d.keys().next().cloned())).collect()).unwrap_or_default();
                log_json("I", "COMMAND", "aggregate", json!({"ns": ns, "stages": stages}));
                let pipeline: Vec<Document> = body.get_array("pipeline").map_err(|_| error(14, "TypeMismatch", "'pipeline' option must be specified as an array"))?.iter().filter_map(|s| s.as_document().cloned()).collect();
                let store = self.store.lock().unwrap();
                let docs = aggregate(store.docs(&ns), &pipeline).map_err(|(c, m)| error(c, if c == 40324 { "Location40324" } else { "BadValue" }, m))?;
                drop(store);
                let batch = body.get_document("cursor").ok().and_then(|c| num(c.get("batchSize"))).map(|b| b as usize).unwrap_or(101);
                Ok(self.new_cursor(conn, &ns, docs, batch, "firstBatch"))
            }
            "insert" => {
                need_coll()?;
                self.writable()?;
                let mut store = self.store.lock().unwrap();
                let mut docs = store.docs(&ns);
                let ordered = body.get_bool("ordered").unwrap_or(true);
                let mut n = 0;
                let mut errors = Vec::new();
                for (i, d) in body.get_array("documents").cloned().unwrap_or_default().into_iter().enumerate() {
                    let Bson::Document(mut d) = d else { continue };
                    // The server stores `_id` first, adding one when the client sent none.
                    let id = d.remove("_id").unwrap_or_else(|| Bson::ObjectId(ObjectId::new()));
                    let mut with_id = doc! {"_id": id};
                    with_id.extend(d);
                    d = with_id;
                    match unique_violation(&store, &ns, &docs, &d, None) {
                        Some(msg) => {
                            errors.push(Bson::Document(doc! {"index": i as i32, "code": 11000, "errmsg": msg}));
                            if ordered {
                                break;
                            }
                        }
                        None => {
                            docs.push(d);
                            n += 1;
                        }
                    }
                }
                store.put(&ns, docs);
                let mut r = doc! {"n": n};
                if !errors.is_empty() {
                    r.insert("writeErrors", errors);
                }
                Ok(r)
            }
            "update" => {
                need_coll()?;
                self.writable()?;
                let mut store = self.store.lock().unwrap();
                let mut docs = store.docs(&ns);
                let (mut n, mut modified) = (0i32, 0i32);
                let mut upserted = Vec::new();
                let mut errors = Vec::new();
                for (index, one) in body.get_array("updates").cloned().unwrap_or_default().into_iter().enumerate() {
                    let Bson::Document(one) = one else { continue };
                    let q = one.get_document("q").cloned().unwrap_or_default();
                    let u = match one.get("u") {
                        Some(Bson::Document(u)) => u.clone(),
                        Some(Bson::Array(_)) => return Err(error(2, "BadValue", "pipeline-style updates are not implemented by the lab's mongod stand-in")),
                        _ => return Err(error(9, "FailedToParse", "BSON field 'update.updates.u' is missing but a required field")),
                    };
                    let multi = one.get_bool("multi").unwrap_or(false);
                    let upsert = one.get_bool("upsert").unwrap_or(false);
                    let result = (|| -> Result<(), (i32, String)> {
                        let mut hit = false;
                        for i in 0..docs.len() {
                            if !matches(&docs[i], &q).map_err(|e| (2, e))? {
                                continue;
                            }
                            hit = true;
                            n += 1;
                            let new = apply_update(&docs[i], &u, false)?;
                            if let Some(msg) = unique_violation(&store, &ns, &docs, &new, Some(i)) {
                                return Err((11000, msg));
                            }
                            if new != docs[i] {
                                docs[i] = new;
                                modified += 1;
                            }
                            if !multi {
                                break;
                            }
                        }
                        if !hit && upsert {
                            let new = upsert_document(&q, &u)?;
                            if let Some(msg) = unique_violation(&store, &ns, &docs, &new, None) {
                                return Err((11000, msg));
                            }
                            upserted.push(Bson::Document(doc! {"index": index as i32, "_id": new.get("_id").cloned().unwrap_or(Bson::Null)}));
                            n += 1;
                            docs.push(new);
                        }
                        Ok(())
                    })();
                    if let Err((code, msg)) = result {
                        errors.push(Bson::Document(doc! {"index": index as i32, "code": code, "errmsg": msg}));
                        break;
                    }
                }
                store.put(&ns, docs);
                let mut r = doc! {"n": n, "nModified": modified};
                if !upserted.is_empty() {
                    r.insert("upserted", upserted);
                }
                if !errors.is_empty() {
                    r.insert("writeErrors", errors);
                }
                Ok(r)
            }
            "delete" => {
                need_coll()?;
                self.writable()?;
                let mut store = self.store.lock().unwrap();
                let mut docs = store.docs(&ns);
                let mut n = 0i32;
                for one in body.get_array("deletes").cloned().unwrap_or_default() {
                    let Bson::Document(one) = one else { continue };
                    let q = one.get_document("q").cloned().unwrap_or_default();
                    let limit = num(one.get("limit")).unwrap_or(0.0) as i32;
                    let mut keep = Vec::new();
                    let mut removed = 0;
                    for d in docs {
                        if (limit == 0 || removed < limit) && matches(&d, &q).map_err(|e| error(2, "BadValue", e))? {
                            removed += 1;
                        } else {
                            keep.push(d);
                        }
                    }
                    n += removed;
                    docs = keep;
                }
                if store.colls.contains_key(&ns) {
                    store.put(&ns, docs);
                }
                Ok(doc! {"n": n})
            }
            "findAndModify" => {
                need_coll()?;
                self.writable()?;
                let mut store = self.store.lock().unwrap();
                let mut docs = store.docs(&ns);
                let q = body.get_document("query").cloned().unwrap_or_default();
                let mut candidates: Vec<usize> = Vec::new();
                for (i, d) in docs.iter().enumerate() {
                    if matches(d, &q).map_err(|e| error(2, "BadValue", e))? {
                        candidates.push(i);
                    }
                }
                if let Ok(sort) = body.get_document("sort") {
                    candidates.sort_by(|a, b| compare_by(&docs[*a], &docs[*b], sort));
                }
                let fields = body.get_document("fields").ok().cloned();
                let shape = |d: Document| -> Result<Bson, Document> {
                    match &fields {
                        Some(f) => project(&d, f).map(Bson::Document).map_err(|e| error(2, "BadValue", e)),
                        None => Ok(Bson::Document(d)),
                    }
                };
                let want_new = body.get_bool("new").unwrap_or(false);
                if body.get_bool("remove").unwrap_or(false) {
                    let Some(&i) = candidates.first() else {
                        return Ok(doc! {"lastErrorObject": {"n": 0}, "value": Bson::Null});
                    };
                    let old = docs.remove(i);
                    store.put(&ns, docs);
                    return Ok(doc! {"lastErrorObject": {"n": 1}, "value": shape(old)?});
                }
                let u = match body.get("update") {
                    Some(Bson::Document(u)) => u.clone(),
                    Some(Bson::Array(_)) => return Err(error(2, "BadValue", "pipeline-style updates are not implemented by the lab's mongod stand-in")),
                    _ => return Err(error(9, "FailedToParse", "Either an update or remove=true must be specified")),
                };
                match candidates.first() {
                    Some(&i) => {
                        let old = docs[i].clone();
                        let new = apply_update(&old, &u, false).map_err(|(c, m)| error(c, "BadValue", m))?;
                        if let Some(msg) = unique_violation(&store, &ns, &docs, &new, Some(i)) {
                            return Err(error(11000, "DuplicateKey", msg));
                        }
                        docs[i] = new.clone();
                        store.put(&ns, docs);
                        Ok(doc! {"lastErrorObject": {"n": 1, "updatedExisting": true}, "value": shape(if want_new { new } else { old })?})
                    }
                    None if body.get_bool("upsert").unwrap_or(false) => {
                        let new = upsert_document(&q, &u).map_err(|(c, m)| error(c, "BadValue", m))?;
                        if let Some(msg) = unique_violation(&store, &ns, &docs, &new, None) {
                            return Err(error(11000, "DuplicateKey", msg));
                        }
                        let id = new.get("_id").cloned().unwrap_or(Bson::Null);
                        docs.push(new.clone());
                        store.put(&ns, docs);
                        Ok(doc! {"lastErrorObject": {"n": 1, "updatedExisting": false, "upserted": id}, "value": if want_new { shape(new)? } else { Bson::Null }})
                    }
                    None => Ok(doc! {"lastErrorObject": {"n": 0, "updatedExisting": false}, "value": Bson::Null}),
                }
            }
            "create" => {
                need_coll()?;
                self.writable()?;
                let mut store = self.store.lock().unwrap();
                if store.colls.contains_key(&ns) {
                    return Err(error(48, "NamespaceExists", format!("Collection {ns} already exists.")));
                }
                store.put(&ns, Vec::new());
                Ok(doc! {})
            }
            "drop" => {
                need_coll()?;
                self.writable()?;
                let mut store = self.store.lock().unwrap();
                if store.colls.remove(&ns).is_none() {
                    // 7.0+: dropping a collection that does not exist succeeds.
                    return Ok(doc! {"ns": ns});
                }
                store.save(&ns);
                if store.indexes.remove(&ns).is_some() {
                    store.save_indexes();
                }
                Ok(doc! {"ns": ns, "nIndexesWas": 1})
            }
            "dropDatabase" => {
                self.writable()?;
                let mut store = self.store.lock().unwrap();
                let prefix = format!("{db}.");
                let gone: Vec<String> = store.colls.keys().filter(|n| n.starts_with(&prefix)).cloned().collect();
                for ns in gone {
                    store.colls.remove(&ns);
                    store.save(&ns);
                    store.indexes.remove(&ns);
                }
                store.save_indexes();
                Ok(doc! {"dropped": db})
            }
            "createIndexes" => {
                need_coll()?;
                self.writable()?;
                let mut store = self.store.lock().unwrap();
                let created = !store.colls.contains_key(&ns);
                if created {
                    store.put(&ns, Vec::new());
                }
                let mut specs = store.indexes.get(&ns).cloned().unwrap_or_default();
                let before = specs.len() as i32 + 1;
                for spec in body.get_array("indexes").cloned().unwrap_or_default() {
                    let Bson::Document(spec) = spec else { continue };
                    let name = spec.get_str("name").unwrap_or("").to_string();
                    if spec.get_document("key").map(|k| k.is_empty()).unwrap_or(true) || name.is_empty() {
                        return Err(error(67, "CannotCreateIndex", "index specifications need a non-empty key and a name"));
                    }
                    if name == "_id_" || specs.iter().any(|s| s.get_str("name") == Ok(&name)) {
                        continue;
                    }
                    if spec.get_bool("unique") == Ok(true) {
                        let docs = store.docs(&ns);
                        let mut seen: Vec<Vec<Bson>> = Vec::new();
                        for d in &docs {
                            let k = index_key(d, spec.get_document("key").unwrap());
                            if seen.contains(&k) {
                                return Err(error(11000, "DuplicateKey", format!("Index build failed: E11000 duplicate key error collection: {ns} index: {name}")));
                            }
                            seen.push(k);
                        }
                    }
                    let mut s = doc! {"v": 2};
                    s.extend(spec);
                    specs.push(s);
                }
                let after = specs.len() as i32 + 1;
                store.indexes.insert(ns.clone(), specs);
                store.save_indexes();
                Ok(doc! {"numIndexesBefore": before, "numIndexesAfter": after, "createdCollectionAutomatically": created})
            }
            "listIndexes" => {
                need_coll()?;
                self.readable(body)?;
                let store = self.store.lock().unwrap();
                if !store.colls.contains_key(&ns) {
                    return Err(error(26, "NamespaceNotFound", format!("ns does not exist: {ns}")));
                }
                let mut list = vec![doc! {"v": 2, "key": {"_id": 1}, "name": "_id_"}];
                list.extend(store.indexes.get(&ns).cloned().unwrap_or_default());
                drop(store);
                Ok(self.new_cursor(conn, &ns, list, usize::MAX, "firstBatch"))
            }
            "dropIndexes" => {
                need_coll()?;
                self.writable()?;
                let mut store = self.store.lock().unwrap();
                let which = body.get("index").cloned().unwrap_or(Bson::Null);
                let mut specs = store.indexes.get(&ns).cloned().unwrap_or_default();
                let before = specs.len() as i32 + 1;
                match which {
                    Bson::String(s) if s == "*" => specs.clear(),
                    Bson::String(s) => specs.retain(|x| x.get_str("name") != Ok(&s)),
                    Bson::Document(k) => specs.retain(|x| x.get_document("key") != Ok(&k)),
                    _ => {}
                }
                store.indexes.insert(ns.clone(), specs);
                store.save_indexes();
                Ok(doc! {"nIndexesWas": before})
            }
            other => Err(error(59, "CommandNotFound", format!("no such command: '{other}'"))),
        }
    }
}

fn is_internal_db(db: &str) -> bool {
    matches!(db, "admin" | "local" | "config")
}

fn members_hosts(config: &Document) -> Vec<String> {
    config.get_array("members").map(|m| m.iter().filter_map(|x| x.as_document().and_then(|d| d.get_str("host").ok()).map(str::to_string)).collect()).unwrap_or_default()
}

/// The real mongod refuses a key file that group or others can read, that it cannot read, or
/// that is not 6 to 1024 base64 characters (mongo `security_file.cpp`, `readSecurityFile`).
fn check_key_file(path: &str) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|e| format!("error getting file {path}: {e}"))?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(format!("permissions on {path} are too open"));
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("error opening file: {path}: {e}"))?;
    let key: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    if key.len() < 6 || key.len() > 1024 {
        return Err(format!("security key in {path} must be between 6 and 1024 characters"));
    }
    if !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '/' || c == '=') {
        return Err(format!("invalid char in key file {path}: only base64 characters are allowed"));
    }
    Ok(())
}

// --------------------------------------------------------------------------- documents and queries

fn get_path<'a>(doc: &'a Document, path: &str) -> Option<&'a Bson> {
    let mut parts = path.split('.');
    let mut cur = doc.get(parts.next()?)?;
    for p in parts {
        cur = match cur {
            Bson::Document(d) => d.get(p)?,
            Bson::Array(a) => a.get(p.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

fn set_path(doc: &mut Document, path: &str, value: Bson) -> Result<(), String> {
    match path.split_once('.') {
        None => {
            doc.insert(path, value);
            Ok(())
        }
        Some((head, rest)) => {
            if !doc.contains_key(head) {
                doc.insert(head, Document::new());
            }
            match doc.get_mut(head) {
                Some(Bson::Document(d)) => set_path(d, rest, value),
                _ => Err(format!("Cannot create field '{rest}' in element {{{head}: ...}}")),
            }
        }
    }
}

fn unset_path(doc: &mut Document, path: &str) {
    match path.split_once('.') {
        None => {
            doc.remove(path);
        }
        Some((head, rest)) => {
            if let Some(Bson::Document(d)) = doc.get_mut(head) {
                unset_path(d, rest);
            }
        }
    }
}

/// BSON's comparison order between types (MongoDB manual, "Comparison/Sort Order").
fn type_rank(v: &Bson) -> u8 {
    match v {
        Bson::MinKey => 0,
        Bson::Null | Bson::Undefined => 1,
        Bson::Int32(_) | Bson::Int64(_) | Bson::Double(_) | Bson::Decimal128(_) => 2,
        Bson::String(_) | Bson::Symbol(_) => 3,
        Bson::Document(_) => 4,
        Bson::Array(_) => 5,
        Bson::Binary(_) => 6,
        Bson::ObjectId(_) => 7,
        Bson::Boolean(_) => 8,
        Bson::DateTime(_) => 9,
        Bson::Timestamp(_) => 10,
        Bson::RegularExpression(_) => 11,
        Bson::MaxKey => 13,
        _ => 12,
    }
}

fn compare(a: &Bson, b: &Bson) -> Ordering {
    let (ra, rb) = (type_rank(a), type_rank(b));
    if ra != rb {
        return ra.cmp(&rb);
    }
    match (a, b) {
        (Bson::String(x), Bson::String(y)) => x.cmp(y),
        (Bson::ObjectId(x), Bson::ObjectId(y)) => x.bytes().cmp(&y.bytes()),
        (Bson::Boolean(x), Bson::Boolean(y)) => x.cmp(y),
        (Bson::DateTime(x), Bson::DateTime(y)) => x.cmp(y),
        (Bson::Timestamp(x), Bson::Timestamp(y)) => (x.time, x.increment).cmp(&(y.time, y.increment)),
        (Bson::Document(x), Bson::Document(y)) => x.to_string().cmp(&y.to_string()),
        (Bson::Array(x), Bson::Array(y)) => {
            for (p, q) in x.iter().zip(y) {
                let o = compare(p, q);
                if o != Ordering::Equal {
                    return o;
                }
            }
            x.len().cmp(&y.len())
        }
        _ => match (num(Some(a)), num(Some(b))) {
            (Some(x), Some(y)) => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
            _ => Ordering::Equal,
        },
    }
}

fn equal(a: &Bson, b: &Bson) -> bool {
    compare(a, b) == Ordering::Equal && type_rank(a) == type_rank(b)
}

/// Equality as queries see it: an array field matches when it or one of its elements is equal.
fn field_equals(field: Option<&Bson>, value: &Bson) -> bool {
    match (field, value) {
        (None, Bson::Null) => true,
        (None, _) => false,
        (Some(Bson::Array(items)), v) if !matches!(v, Bson::Array(_)) => items.iter().any(|i| equal(i, v)),
        (Some(f), v) => equal(f, v),
    }
}

/// Query filters: equality on fields (dotted paths too), `$eq $ne $gt $gte $lt $lte $in $nin
/// $exists`, and `$and $or $nor`. Any other operator is refused, never matched loosely.
pub fn matches(doc: &Document, filter: &Document) -> Result<bool, String> {
    for (key, cond) in filter {
        let ok = match key.as_str() {
            "$and" | "$or" | "$nor" => {
                let parts = cond.as_array().ok_or_else(|| format!("{key} must be an array"))?;
                let mut results = Vec::new();
                for p in parts {
                    results.push(matches(doc, p.as_document().ok_or_else(|| format!("{key} entries must be objects"))?)?);
                }
                match key.as_str() {
                    "$and" => results.iter().all(|r| *r),
                    "$or" => results.iter().any(|r| *r),
                    _ => !results.iter().any(|r| *r),
                }
            }
            "$comment" => true,
            k if k.starts_with('$') => return Err(format!("unknown top level operator: {k}")),
            _ => {
                let field = get_path(doc, key);
                match cond {
                    Bson::Document(ops) if ops.keys().next().is_some_and(|k| k.starts_with('$')) => {
                        let mut all = true;
                        for (op, v) in ops {
                            let hit = match op.as_str() {
                                "$eq" => field_equals(field, v),
                                "$ne" => !field_equals(field, v),
                                "$gt" | "$gte" | "$lt" | "$lte" => field.is_some_and(|f| {
                                    type_rank(f) == type_rank(v) && {
                                        let o = compare(f, v);
                                        match op.as_str() {
                                            "$gt" => o == Ordering::Greater,
                                            "$gte" => o != Ordering::Less,
                                            "$lt" => o == Ordering::Less,
                                            _ => o != Ordering::Greater,
                                        }
                                    }
                                }),
                                "$in" => v.as_array().ok_or("$in needs an array")?.iter().any(|x| field_equals(field, x)),
                                "$nin" => !v.as_array().ok_or("$nin needs an array")?.iter().any(|x| field_equals(field, x)),
                                "$exists" => field.is_some() == truthy(Some(v)),
                                other => return Err(format!("unknown operator: {other} (the lab's mongod stand-in knows $eq $ne $gt $gte $lt $lte $in $nin $exists)")),
                            };
                            all &= hit;
                        }
                        all
                    }
                    v => field_equals(field, v),
                }
            }
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

fn compare_by(a: &Document, b: &Document, sort: &Document) -> Ordering {
    for (k, dir) in sort {
        let o = compare(get_path(a, k).unwrap_or(&Bson::Null), get_path(b, k).unwrap_or(&Bson::Null));
        let o = if num(Some(dir)).unwrap_or(1.0) < 0.0 { o.reverse() } else { o };
        if o != Ordering::Equal {
            return o;
        }
    }
    Ordering::Equal
}

fn sort_docs(docs: &mut [Document], sort: &Document) {
    // `{$natural: 1 | -1}`: the order documents are stored in, or its reverse (MongoDB docs,
    // "$natural"), how the oplog's first and last entries are read.
    if let Some(dir) = sort.get("$natural") {
        if num(Some(dir)).unwrap_or(1.0) < 0.0 {
            docs.reverse();
        }
        return;
    }
    docs.sort_by(|a, b| compare_by(a, b, sort));
}

/// Inclusion or exclusion of top-level fields (and `_id`).
fn project(doc: &Document, projection: &Document) -> Result<Document, String> {
    let mut include = None;
    for (k, v) in projection {
        if k.contains('.') || k.starts_with('$') || matches!(v, Bson::Document(_)) {
            return Err(format!("projection {k} is not supported by the lab's mongod stand-in (top-level fields only)"));
        }
        if k != "_id" {
            let on = truthy(Some(v));
            if include.is_some_and(|i| i != on) {
                return Err(format!("Cannot do {} on field {k} in {} projection", if on { "inclusion" } else { "exclusion" }, if on { "exclusion" } else { "inclusion" }));
            }
            include = Some(on);
        }
    }
    let keep_id = projection.get("_id").map(|v| truthy(Some(v))).unwrap_or(true);
    let mut out = Document::new();
    for (k, v) in doc {
        let listed = projection.get(k).map(|v| truthy(Some(v)));
        let keep = if k == "_id" { keep_id } else { match include { Some(true) => listed == Some(true), Some(false) => listed != Some(false), None => true } };
        if keep {
            out.insert(k, v.clone());
        }
    }
    Ok(out)
}

/// `doc` after an update document: a replacement (keeping `_id`), or `$set $unset $inc
/// $setOnInsert $currentDate` as the server applies them. Other operators are refused.
fn apply_update(doc: &Document, u: &Document, inserting: bool) -> Result<Document, (i32, String)> {
    if !u.keys().any(|k| k.starts_with('$')) {
        let mut out = Document::new();
        if let Some(id) = doc.get("_id") {
            if let Some(new_id) = u.get("_id") {
                if !equal(id, new_id) {
                    return Err((66, "After applying the update, the (immutable) field '_id' was found to have been altered".into()));
                }
            }
            out.insert("_id", id.clone());
        }
        for (k, v) in u {
            if k != "_id" {
                out.insert(k, v.clone());
            }
        }
        return Ok(out);
    }
    let mut out = doc.clone();
    for (op, args) in u {
        let args = args.as_document().ok_or_else(|| (9, format!("Modifiers operate on fields but we found type {} instead", "non-object")))?;
        for (path, value) in args {
            if path == "_id" && !inserting && op != "$setOnInsert" {
                if op == "$set" && doc.get("_id").is_some_and(|id| equal(id, value)) {
                    continue;
                }
                return Err((66, "Performing an update on the path '_id' would modify the immutable field '_id'".into()));
            }
            match op.as_str() {
                "$set" => set_path(&mut out, path, value.clone()).map_err(|e| (28, e))?,
                "$setOnInsert" => {
                    if inserting {
                        set_path(&mut out, path, value.clone()).map_err(|e| (28, e))?
                    }
                }
                "$unset" => unset_path(&mut out, path),
                "$inc" => {
                    let cur = get_path(&out, path).cloned();
                    let new = match (cur, value) {
                        (None, v) => v.clone(),
                        (Some(Bson::Int32(a)), Bson::Int32(b)) => Bson::Int32(a + b),
                        (Some(Bson::Int64(a)), Bson::Int32(b)) => Bson::Int64(a + *b as i64),
                        (Some(Bson::Int32(a)), Bson::Int64(b)) => Bson::Int64(a as i64 + b),
                        (Some(Bson::Int64(a)), Bson::Int64(b)) => Bson::Int64(a + b),
                        (Some(c), v) => match (num(Some(&c)), num(Some(v))) {
                            (Some(a), Some(b)) if !matches!(c, Bson::Boolean(_)) => Bson::Double(a + b),
                            _ => return Err((14, format!("Cannot apply $inc to a value of non-numeric type at {path}"))),
                        },
                    };
                    set_path(&mut out, path, new).map_err(|e| (28, e))?
                }
                "$currentDate" => set_path(&mut out, path, Bson::DateTime(bson::DateTime::now())).map_err(|e| (28, e))?,
                "$push" | "$pull" | "$addToSet" | "$rename" | "$mul" | "$min" | "$max" | "$pop" | "$pullAll" | "$bit" => {
                    return Err((2, format!("{op} is not implemented by the lab's mongod stand-in")))
                }
                other => return Err((9, format!("Unknown modifier: {other}. Expected a valid update modifier or pipeline-style update specified as an array"))),
            }
        }
    }
    Ok(out)
}

/// The document an upsert inserts: the filter's equality fields, then the update.
fn upsert_document(q: &Document, u: &Document) -> Result<Document, (i32, String)> {
    let mut seed = Document::new();
    for (k, v) in q {
        if k.starts_with('$') {
            continue;
        }
        match v {
            Bson::Document(d) if d.keys().next().is_some_and(|k| k.starts_with('$')) => {
                if let Some(eq) = d.get("$eq") {
                    set_path(&mut seed, k, eq.clone()).map_err(|e| (28, e))?;
                }
            }
            v => set_path(&mut seed, k, v.clone()).map_err(|e| (28, e))?,
        }
    }
    let mut new = if u.keys().any(|k| k.starts_with('$')) {
        apply_update(&seed, u, true)?
    } else {
        let mut r = apply_update(&Document::new(), u, true)?;
        if let (Some(id), false) = (seed.get("_id"), r.contains_key("_id")) {
            let mut with = doc! {"_id": id.clone()};
            with.extend(r);
            r = with;
        }
        r
    };
    if !new.contains_key("_id") {
        let mut with = doc! {"_id": ObjectId::new()};
        with.extend(new);
        new = with;
    }
    Ok(new)
}

fn index_key(doc: &Document, key: &Document) -> Vec<Bson> {
    key.keys().map(|k| get_path(doc, k).cloned().unwrap_or(Bson::Null)).collect()
}

/// E11000 for `_id` and for unique indexes, as the server reports a duplicate key.
fn unique_violation(store: &Store, ns: &str, docs: &[Document], new: &Document, skip: Option<usize>) -> Option<String> {
    let mut keys: Vec<(String, Document)> = vec![("_id_".into(), doc! {"_id": 1})];
    for s in store.indexes.get(ns).cloned().unwrap_or_default() {
        if s.get_bool("unique") == Ok(true) {
            if let Ok(k) = s.get_document("key") {
                keys.push((s.get_str("name").unwrap_or("").to_string(), k.clone()));
            }
        }
    }
    for (name, key) in keys {
        let mine = index_key(new, &key);
        for (i, d) in docs.iter().enumerate() {
            if Some(i) == skip {
                continue;
            }
            let theirs = index_key(d, &key);
            if mine.iter().zip(&theirs).all(|(a, b)| equal(a, b)) {
                let dup: Vec<String> = key.keys().zip(&mine).map(|(k, v)| format!("{k}: {v}")).collect();
                return Some(format!("E11000 duplicate key error collection: {ns} index: {name} dup key: {{ {} }}", dup.join(", ")));
            }
        }
    }
    None
}

/// Pipelines of `$match $project $sort $skip $limit $count`, and `$group` with a constant `_id`
/// and `$sum` (what `countDocuments` sends). Other stages are refused.
fn aggregate(mut docs: Vec<Document>, pipeline: &[Document]) -> Result<Vec<Document>, (i32, String)> {
    for stage in pipeline {
        let Some((name, arg)) = stage.iter().next() else { return Err((40323, "A pipeline stage specification object must contain exactly one field.".into())) };
        docs = match name.as_str() {
            "$match" => {
                let f = arg.as_document().ok_or((15959, "the match filter must be an expression in an object".to_string()))?;
                let mut out = Vec::new();
                for d in docs {
                    if matches(&d, f).map_err(|e| (2, e))? {
                        out.push(d);
                    }
                }
                out
            }
            "$project" => {
                let p = arg.as_document().ok_or((15969, "$project specification must be an object".to_string()))?;
                docs.iter().map(|d| project(d, p)).collect::<Result<_, _>>().map_err(|e| (2, e))?
            }
            "$sort" => {
                let s = arg.as_document().ok_or((15973, "the $sort key specification must be an object".to_string()))?;
                sort_docs(&mut docs, s);
                docs
            }
            "$skip" => docs.into_iter().skip(num(Some(arg)).unwrap_or(0.0) as usize).collect(),
            "$limit" => docs.into_iter().take(num(Some(arg)).unwrap_or(0.0) as usize).collect(),
            "$count" => {
                let field = arg.as_str().ok_or((40156, "the count field must be a non-empty string".to_string()))?;
                if docs.is_empty() { vec![] } else { vec![doc! {field: docs.len() as i32}] }
            }
            "$group" => {
                let g = arg.as_document().ok_or((15947, "a group's fields must be specified in an object".to_string()))?;
                let id = g.get("_id").cloned().ok_or((15955, "a group specification must include an _id".to_string()))?;
                if matches!(&id, Bson::String(s) if s.starts_with('$')) || matches!(&id, Bson::Document(_)) {
                    return Err((2, "$group by a field is not implemented by the lab's mongod stand-in (constant _id only)".into()));
                }
                if docs.is_empty() {
                    vec![]
                } else {
                    let mut out = doc! {"_id": id};
                    for (k, acc) in g.iter().filter(|(k, _)| *k != "_id") {
                        let per = acc.as_document().and_then(|a| a.get("$sum")).and_then(|v| num(Some(v))).ok_or((2, format!("accumulator {k} is not implemented by the lab's mongod stand-in ($sum of a number only)")))?;
                        let total = per * docs.len() as f64;
                        out.insert(k, if total.fract() == 0.0 && total.abs() < i32::MAX as f64 { Bson::Int32(total as i32) } else { Bson::Double(total) });
                    }
                    vec![out]
                }
            }
            other if other.starts_with('$') => return Err((40324, format!("Unrecognized pipeline stage name: '{other}' (or not implemented by the lab's mongod stand-in)"))),
            other => return Err((40323, format!("A pipeline stage specification object must contain exactly one field: {other}"))),
        };
    }
    Ok(docs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_refuse_what_they_do_not_know() {
        let d = doc! {"_id": "a", "n": 3, "tags": ["x", "y"], "sub": {"k": 1}};
        assert!(matches(&d, &doc! {"_id": "a"}).unwrap());
        assert!(matches(&d, &doc! {"n": {"$gte": 3, "$lt": 4}}).unwrap());
        assert!(matches(&d, &doc! {"tags": "y"}).unwrap());
        assert!(matches(&d, &doc! {"sub.k": 1.0}).unwrap());
        assert!(!matches(&d, &doc! {"missing": {"$exists": true}}).unwrap());
        assert!(matches(&d, &doc! {"$or": [{"n": 1}, {"n": 3}]}).unwrap());
        assert!(matches(&d, &doc! {"n": {"$regex": "x"}}).is_err());
    }

    #[test]
    fn natural_order_and_the_oplog_of_a_replica_set_member() {
        let mut docs = vec![doc! {"n": 2}, doc! {"n": 1}, doc! {"n": 3}];
        sort_docs(&mut docs, &doc! {"$natural": -1});
        assert_eq!(docs, vec![doc! {"n": 3}, doc! {"n": 1}, doc! {"n": 2}]);
        let dir = std::env::temp_dir().join(format!("standin-oplog-test-{}", std::process::id()));
        let mut store = Store::open(dir.to_str().unwrap()).unwrap();
        store.put("rocketchat.a", vec![doc! {"_id": 1}]);
        assert!(store.docs(OPLOG).is_empty(), "a standalone server keeps no oplog");
        store.put(REPLSET, vec![doc! {"_id": "rs0"}]);
        store.put("rocketchat.a", vec![doc! {"_id": 2}]);
        let log = store.docs(OPLOG);
        assert_eq!(log.len(), 2);
        let (first, last) = (log[0].get_timestamp("ts").unwrap(), log[1].get_timestamp("ts").unwrap());
        assert!((last.time, last.increment) > (first.time, first.increment));
        assert_eq!(Store::open(dir.to_str().unwrap()).unwrap().docs(OPLOG).len(), 2, "kept on disk");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn updates_and_upserts() {
        let d = doc! {"_id": 1, "a": 1};
        let u = apply_update(&d, &doc! {"$set": {"b.c": 2}, "$unset": {"a": ""}, "$inc": {"n": 1}}, false).unwrap();
        assert_eq!(u, doc! {"_id": 1, "b": {"c": 2}, "n": 1});
        assert!(apply_update(&d, &doc! {"$frob": {"a": 1}}, false).is_err());
        let up = upsert_document(&doc! {"_id": "control"}, &doc! {"$set": {"locked": true}, "$setOnInsert": {"version": 0}}).unwrap();
        assert_eq!(up, doc! {"_id": "control", "locked": true, "version": 0});
    }

    #[test]
    fn fcv_and_wire_versions() {
        assert_eq!(fcv_allowed("8.2.0"), ("8.2".into(), "8.0".into()));
        assert_eq!(fcv_allowed("7.0.0"), ("7.0".into(), "6.0".into()));
        assert_eq!(fcv_allowed("5.0.0"), ("5.0".into(), "4.4".into()));
        assert_eq!(wire_version("8.2.0"), 27);
        assert_eq!(wire_version("7.0.0"), 21);
    }
}

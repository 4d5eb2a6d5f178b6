//! MongoDB stand-in: `mongod` keeps the state (replica-set config, dumps and restores
//! asked for) in `<dbpath>/standin-state.json`; `mongosh`, `mongodump` and `mongorestore`
//! talk to it over TCP with a one-line JSON protocol of the lab's own:
//! request `{"cmd": {<command document>}}\n`, answer `{<reply document>}\n`.
//! The command documents and replies have the shapes of the real server commands
//! (`replSetInitiate`, `replSetGetStatus`, `ping`, `hello`, `buildInfo`, ...).

use crate::util;
use serde_json::{json, Map, Value};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::Duration;

// ---------------------------------------------------------------------------
// mongod

struct Server {
    version: String,
    repl_set: Option<String>,
    port: u16,
    first_addr: String,
    state_path: String,
    state: Mutex<Value>,
    /// `--keyFile` (or `--auth`) given: clients must authenticate, except on the localhost
    /// exception (a loopback client while no user exists), as with the real mongod.
    auth: bool,
}

pub fn mongod(args: Vec<String>) -> i32 {
    let version = util::baked("version").unwrap_or_else(|| "8.2.0".into());
    let (flags, _) = util::parse_flags(&args, &["bind_ip_all", "quiet", "fork", "auth", "noauth", "ipv6", "version"]);
    if util::flag(&flags, &["version"]).is_some() {
        println!("db version v{version}\n(rcfleet lab stand-in)");
        return 0;
    }
    let port: u16 = util::flag(&flags, &["port"]).and_then(|p| p.parse().ok()).unwrap_or(27017);
    let dbpath = util::flag(&flags, &["dbpath"]).unwrap_or("/data/db").to_string();
    let repl_set = util::flag(&flags, &["replSet"]).map(|s| s.to_string()).filter(|s| !s.is_empty());
    let bind: Vec<String> = if util::flag(&flags, &["bind_ip_all"]).is_some() {
        vec!["0.0.0.0".into()]
    } else {
        util::flag(&flags, &["bind_ip"])
            .unwrap_or("127.0.0.1")
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    };
    let key_file = util::flag(&flags, &["keyFile"]).map(str::to_string);
    if let Some(path) = &key_file {
        if let Err(e) = check_key_file(path) {
            log_json("E", "ACCESS", "Unable to acquire security key[s]", &json!({"error": e}));
            eprintln!("{e}");
            return 1;
        }
    }
    let auth = key_file.is_some() || util::flag(&flags, &["auth"]).is_some();
    if !std::path::Path::new(&dbpath).is_dir() {
        log_json("E", "CONTROL", "NonExistentPath", &json!({"error": format!("Data directory {dbpath} not found")}));
        eprintln!("NonExistentPath: Data directory {dbpath} not found.");
        return 100;
    }
    let state_path = format!("{dbpath}/standin-state.json");
    let state: Value = std::fs::read_to_string(&state_path)
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_else(|| json!({"replSetConfig": null, "dumps": [], "restores": []}));
    let addrs: Vec<String> = bind.iter().map(|b| format!("{b}:{port}")).collect();
    let listeners = match crate::http::bind(&addrs) {
        Ok(l) => l,
        Err(e) => {
            log_json("E", "NETWORK", "Failed to set up listener", &json!({"error": e.to_string(), "addresses": addrs}));
            return 48;
        }
    };
    let first_addr = bind.iter().find(|b| *b != "127.0.0.1" && *b != "0.0.0.0").cloned().unwrap_or_else(|| bind[0].clone());
    let srv = Arc::new(Server {
        version: version.clone(),
        repl_set,
        port,
        first_addr,
        state_path,
        state: Mutex::new(state),
        auth,
    });
    log_json("I", "CONTROL", "MongoDB starting (rcfleet lab stand-in)", &json!({"version": version, "port": port, "dbPath": dbpath, "replSet": srv.repl_set, "authorization": if auth { "enabled" } else { "disabled" }}));
    log_json("I", "NETWORK", "Waiting for connections", &json!({"port": port, "ssl": "off", "addresses": addrs}));
    let mut threads = Vec::new();
    for l in listeners {
        let srv = srv.clone();
        threads.push(std::thread::spawn(move || {
            for stream in l.incoming().flatten() {
                let srv = srv.clone();
                std::thread::spawn(move || serve_conn(stream, &srv));
            }
        }));
    }
    for t in threads {
        let _ = t.join();
    }
    0
}

fn log_json(sev: &str, comp: &str, msg: &str, attr: &Value) {
    util::log(&json!({"t": {"$date": util::now_rfc3339()}, "s": sev, "c": comp, "ctx": "standin", "msg": msg, "attr": attr}).to_string());
}

fn serve_conn(stream: TcpStream, srv: &Server) {
    let peer = stream.peer_addr().map(|a| a.to_string()).unwrap_or_default();
    let mut w = match stream.try_clone() {
        Ok(s) => s,
        Err(_) => return,
    };
    let reader = BufReader::new(stream);
    for line in reader.lines() {
        let Ok(line) = line else { return };
        if line.trim().is_empty() {
            continue;
        }
        let reply = match serde_json::from_str::<Value>(&line) {
            Ok(v) => match v.get("cmd") {
                Some(Value::Object(cmd)) => srv.command(cmd, v.get("auth"), &peer),
                _ => err_reply(9, "FailedToParse", "request has no cmd document"),
            },
            Err(e) => err_reply(9, "FailedToParse", &format!("bad request: {e}")),
        };
        if w.write_all(format!("{reply}\n").as_bytes()).is_err() {
            return;
        }
    }
}

fn err_reply(code: i64, name: &str, msg: &str) -> Value {
    json!({"ok": 0, "errmsg": msg, "code": code, "codeName": name})
}

impl Server {
    fn save(&self, state: &Value) {
        let tmp = format!("{}.tmp", self.state_path);
        if std::fs::write(&tmp, serde_json::to_string_pretty(state).unwrap_or_default()).is_ok() {
            let _ = std::fs::rename(&tmp, &self.state_path);
        }
    }

    fn command(&self, cmd: &Map<String, Value>, auth: Option<&Value>, peer: &str) -> Value {
        let Some((name, arg)) = cmd.iter().next() else {
            return err_reply(59, "CommandNotFound", "empty command");
        };
        log_json("I", "COMMAND", "command", &json!({"command": name, "client": peer}));
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        // Credentials travel with every request of the lab protocol; wrong ones fail whatever
        // the command, as a failed handshake does.
        let user = match auth.filter(|a| !a.is_null()) {
            Some(a) => match find_user(&st, a) {
                Some(user) => Some(user),
                None => {
                    log_json("I", "ACCESS", "Authentication failed", &json!({"user": a["user"], "client": peer}));
                    return err_reply(18, "AuthenticationFailed", "Authentication failed.");
                }
            },
            None => None,
        };
        let no_users = st["users"].as_array().map(|u| u.is_empty()).unwrap_or(true);
        let loopback = peer.starts_with("127.") || peer.starts_with("[::1]");
        let open = matches!(name.as_str(), "ping" | "hello" | "isMaster" | "ismaster" | "buildInfo" | "buildinfo" | "authenticate");
        if self.auth && user.is_none() && !open && !(no_users && loopback) {
            return err_reply(13, "Unauthorized", &format!("Command {name} requires authentication"));
        }
        let config = st.get("replSetConfig").cloned().unwrap_or(Value::Null);
        let initiated = !config.is_null();
        match name.as_str() {
            "ping" => json!({"ok": 1}),
            "buildInfo" | "buildinfo" => json!({"version": self.version, "gitVersion": "standin", "ok": 1}),
            "hello" | "isMaster" | "ismaster" => {
                let mut r = json!({
                    "isWritablePrimary": initiated,
                    "ismaster": initiated,
                    "secondary": false,
                    "maxWireVersion": 25,
                    "ok": 1
                });
                if let Some(set) = &self.repl_set {
                    r["setName"] = json!(set);
                    if initiated {
                        r["hosts"] = json!(members_hosts(&config));
                        r["primary"] = json!(members_hosts(&config).first());
                    } else {
                        r["isreplicaset"] = json!(true);
                    }
                }
                r
            }
            "serverStatus" => json!({"version": self.version, "process": "mongod", "ok": 1}),
            "replSetInitiate" => {
                let Some(set) = &self.repl_set else {
                    return err_reply(76, "NoReplicationEnabled", "This node was not started with replication enabled.");
                };
                if initiated {
                    return err_reply(23, "AlreadyInitialized", "already initialized");
                }
                let mut cfg = match arg {
                    Value::Object(o) if !o.is_empty() => Value::Object(o.clone()),
                    _ => json!({"_id": set, "members": [{"_id": 0, "host": format!("{}:{}", self.first_addr, self.port)}]}),
                };
                let id = cfg.get("_id").and_then(|v| v.as_str()).unwrap_or("").to_string();
                if id != *set {
                    return err_reply(
                        93,
                        "InvalidReplicaSetConfig",
                        &format!("Attempting to initiate a replica set with name {id}, but command line reports {set}; rejecting"),
                    );
                }
                let members_ok = cfg.get("members").and_then(|m| m.as_array()).map(|m| !m.is_empty() && m.iter().all(|x| x.get("host").and_then(|h| h.as_str()).is_some())).unwrap_or(false);
                if !members_ok {
                    return err_reply(93, "InvalidReplicaSetConfig", "replica set configuration must have members, each with a host");
                }
                cfg["version"] = json!(1);
                cfg["term"] = json!(1);
                st["replSetConfig"] = cfg.clone();
                st["initiatedAt"] = json!(util::now_rfc3339());
                self.save(&st);
                log_json("I", "REPL", "replSetInitiate admin command received from client", &json!({"config": cfg}));
                json!({"ok": 1})
            }
            "replSetGetStatus" => match (&self.repl_set, initiated) {
                (None, _) => err_reply(76, "NoReplicationEnabled", "not running with --replSet"),
                (Some(_), false) => err_reply(94, "NotYetInitialized", "no replset config has been received"),
                (Some(set), true) => {
                    let members: Vec<Value> = config["members"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default()
                        .iter()
                        .enumerate()
                        .map(|(i, m)| {
                            json!({
                                "_id": m.get("_id").cloned().unwrap_or(json!(i)),
                                "name": m.get("host").cloned().unwrap_or(Value::Null),
                                "health": 1,
                                "state": if i == 0 { 1 } else { 2 },
                                "stateStr": if i == 0 { "PRIMARY" } else { "SECONDARY" },
                                "self": i == 0,
                            })
                        })
                        .collect();
                    json!({"set": set, "date": util::now_rfc3339(), "myState": 1, "term": 1, "members": members, "ok": 1})
                }
            },
            "replSetGetConfig" => match (&self.repl_set, initiated) {
                (None, _) => err_reply(76, "NoReplicationEnabled", "not running with --replSet"),
                (Some(_), false) => err_reply(94, "NotYetInitialized", "no replset config has been received"),
                (Some(_), true) => json!({"config": config, "ok": 1}),
            },
            "standinDump" => {
                let mut rec = arg.clone();
                rec["at"] = json!(util::now_rfc3339());
                if let Some(a) = st["dumps"].as_array_mut() {
                    a.push(rec.clone());
                }
                self.save(&st);
                let payload = json!({
                    "standin": "rcfleet lab mongodump archive",
                    "request": rec,
                    "replSetConfig": config,
                    "serverVersion": self.version,
                });
                json!({"ok": 1, "payload": payload})
            }
            "standinRestore" => {
                let mut rec = arg.clone();
                rec["at"] = json!(util::now_rfc3339());
                if let Some(a) = st["restores"].as_array_mut() {
                    a.push(rec);
                }
                self.save(&st);
                json!({"ok": 1})
            }
            "authenticate" => match find_user(&st, arg) {
                Some(user) => json!({"user": user, "ok": 1}),
                None => err_reply(18, "AuthenticationFailed", "Authentication failed."),
            },
            "createUser" => {
                let name = arg.as_str().unwrap_or_default().to_string();
                let db = cmd.get("$db").and_then(|d| d.as_str()).unwrap_or("admin").to_string();
                let pwd = cmd.get("pwd").and_then(|p| p.as_str()).unwrap_or_default();
                if name.is_empty() || pwd.is_empty() {
                    return err_reply(2, "BadValue", "createUser needs a user name and pwd");
                }
                let users = st["users"].as_array().cloned().unwrap_or_default();
                if users.iter().any(|u| u["user"] == json!(name) && u["db"] == json!(db)) {
                    return err_reply(51003, "Location51003", &format!("User \"{name}@{db}\" already exists"));
                }
                let mut users = users;
                users.push(json!({"user": name, "db": db, "pwdHash": hash(pwd), "roles": cmd.get("roles").cloned().unwrap_or(json!([]))}));
                st["users"] = Value::Array(users);
                self.save(&st);
                json!({"ok": 1})
            }
            "updateUser" => {
                let name = arg.as_str().unwrap_or_default();
                let db = cmd.get("$db").and_then(|d| d.as_str()).unwrap_or("admin");
                let Some(users) = st["users"].as_array_mut() else {
                    return err_reply(11, "UserNotFound", &format!("Could not find user \"{name}\" for db \"{db}\""));
                };
                let Some(user) = users.iter_mut().find(|u| u["user"] == json!(name) && u["db"] == json!(db)) else {
                    return err_reply(11, "UserNotFound", &format!("Could not find user \"{name}\" for db \"{db}\""));
                };
                if let Some(pwd) = cmd.get("pwd").and_then(|p| p.as_str()) {
                    user["pwdHash"] = json!(hash(pwd));
                }
                if let Some(roles) = cmd.get("roles") {
                    user["roles"] = roles.clone();
                }
                self.save(&st);
                json!({"ok": 1})
            }
            "usersInfo" => {
                let db = cmd.get("$db").and_then(|d| d.as_str()).unwrap_or("admin");
                let users: Vec<Value> = st["users"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|u| u["db"] == json!(db) && (arg.as_str().is_none() || u["user"] == *arg))
                    .map(|u| json!({"_id": format!("{}.{}", u["db"].as_str().unwrap_or(""), u["user"].as_str().unwrap_or("")), "user": u["user"], "db": u["db"], "roles": u["roles"]}))
                    .collect();
                json!({"users": users, "ok": 1})
            }
            "listCollections" => json!({"cursor": {"id": 0, "ns": "rocketchat.$cmd.listCollections", "firstBatch": []}, "ok": 1}),
            // Documents, kept per `<db>.<collection>`: enough for Rocket.Chat's settings
            // (`rocketchat_settings`), which every instance of a workspace shares.
            "find" => {
                let Some(ns) = namespace(cmd, arg) else {
                    return err_reply(73, "InvalidNamespace", "collection name must be a non-empty string");
                };
                let filter = cmd.get("filter").cloned().unwrap_or(json!({}));
                if let Err(e) = check_filter(&filter) {
                    return err_reply(2, "BadValue", &e);
                }
                let batch: Vec<Value> =
                    documents(&st, &ns).into_iter().filter(|d| matches_filter(d, &filter)).collect();
                json!({"cursor": {"id": 0, "ns": ns, "firstBatch": batch}, "ok": 1})
            }
            "update" => {
                let Some(ns) = namespace(cmd, arg) else {
                    return err_reply(73, "InvalidNamespace", "collection name must be a non-empty string");
                };
                let Some(updates) = cmd.get("updates").and_then(|u| u.as_array()).filter(|u| !u.is_empty()) else {
                    return err_reply(9, "FailedToParse", "BSON field 'update.updates' is missing but a required field");
                };
                let mut docs = documents(&st, &ns);
                let (mut matched, mut modified, mut upserted) = (0, 0, Vec::new());
                for (index, one) in updates.iter().enumerate() {
                    let filter = one.get("q").cloned().unwrap_or(json!({}));
                    let Some(change) = one.get("u") else {
                        return err_reply(9, "FailedToParse", "BSON field 'update.updates.u' is missing but a required field");
                    };
                    if let Err(e) = check_filter(&filter) {
                        return err_reply(2, "BadValue", &e);
                    }
                    let multi = one.get("multi") == Some(&json!(true));
                    let mut hit = false;
                    for doc in docs.iter_mut().filter(|d| matches_filter(d, &filter)) {
                        hit = true;
                        matched += 1;
                        let updated = match apply_update(doc, change) {
                            Ok(updated) => updated,
                            Err(e) => return err_reply(9, "FailedToParse", &e),
                        };
                        if updated != *doc {
                            *doc = updated;
                            modified += 1;
                        }
                        if !multi {
                            break;
                        }
                    }
                    if !hit && one.get("upsert") == Some(&json!(true)) {
                        // The new document starts from the filter's equalities, as the server's does.
                        let seed = filter.as_object().cloned().map(Value::Object).unwrap_or(json!({}));
                        let mut doc = match apply_update(&seed, change) {
                            Ok(doc) => doc,
                            Err(e) => return err_reply(9, "FailedToParse", &e),
                        };
                        if doc.get("_id").is_none() {
                            doc["_id"] = json!(format!("{:x}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)));
                        }
                        upserted.push(json!({"index": index, "_id": doc["_id"]}));
                        docs.push(doc);
                    }
                }
                let upserts = upserted.len();
                st["collections"][ns.as_str()] = Value::Array(docs);
                self.save(&st);
                let mut reply = json!({"n": matched + upserts, "nModified": modified, "ok": 1});
                if upserts > 0 {
                    reply["upserted"] = Value::Array(upserted);
                }
                reply
            }
            "standinState" => json!({"state": st.clone(), "ok": 1}),
            other => err_reply(59, "CommandNotFound", &format!("no such command: '{other}'")),
        }
    }
}

/// `<db>.<collection>` of a `find`/`update` command (`{find: "coll", $db: "db"}`).
fn namespace(cmd: &Map<String, Value>, arg: &Value) -> Option<String> {
    let collection = arg.as_str().filter(|c| !c.is_empty())?;
    let db = cmd.get("$db").and_then(|d| d.as_str()).unwrap_or("test");
    Some(format!("{db}.{collection}"))
}

fn documents(state: &Value, ns: &str) -> Vec<Value> {
    state["collections"][ns].as_array().cloned().unwrap_or_default()
}

/// Filters are top-level equalities only (what the stand-in's clients send); anything else is
/// refused rather than matched wrongly.
fn check_filter(filter: &Value) -> Result<(), String> {
    let Some(fields) = filter.as_object() else { return Err("filter must be an object".into()) };
    for (key, value) in fields {
        let operator = key.starts_with('$') || value.as_object().is_some_and(|o| o.keys().any(|k| k.starts_with('$')));
        if operator {
            return Err(format!("the lab's mongod stand-in supports only equality filters, not {key}: {value}"));
        }
    }
    Ok(())
}

fn matches_filter(doc: &Value, filter: &Value) -> bool {
    filter.as_object().is_some_and(|fields| fields.iter().all(|(key, value)| doc.get(key) == Some(value)))
}

/// `doc` after an update: `$set`/`$unset` operators, or a replacement document (which keeps
/// `_id`), as the real server applies them.
fn apply_update(doc: &Value, change: &Value) -> Result<Value, String> {
    let Some(fields) = change.as_object() else { return Err("update must be an object".into()) };
    let mut out = doc.clone();
    if !fields.keys().any(|k| k.starts_with('$')) {
        let mut replacement = change.clone();
        if let Some(id) = doc.get("_id") {
            replacement["_id"] = id.clone();
        }
        return Ok(replacement);
    }
    for (operator, args) in fields {
        let Some(args) = args.as_object() else { return Err(format!("{operator} needs an object")) };
        for (key, value) in args {
            match operator.as_str() {
                "$set" => out[key.as_str()] = value.clone(),
                "$unset" => {
                    if let Some(o) = out.as_object_mut() {
                        o.remove(key);
                    }
                }
                other => return Err(format!("Unknown modifier: {other} (the lab's mongod stand-in knows $set and $unset)")),
            }
        }
    }
    Ok(out)
}

/// The real mongod refuses a key file that group or others can read, or that is not
/// 6 to 1024 base64 characters.
fn check_key_file(path: &str) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|e| format!("error getting file {path}: {e}"))?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(format!("permissions on {path} are too open"));
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("error reading file {path}: {e}"))?;
    let key: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    if key.len() < 6 || key.len() > 1024 {
        return Err(format!("security key in {path} must be between 6 and 1024 characters"));
    }
    if !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '/' || c == '=') {
        return Err(format!("invalid char in key file {path}: only base64 characters are allowed"));
    }
    Ok(())
}

/// Not SCRAM: the stand-in keeps an FNV-1a hash of the password, never the password.
fn hash(pwd: &str) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in pwd.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("fnv1a64:{h:016x}")
}

/// The user `auth` (`{user, pwd, db}`) names, when the password matches.
fn find_user(state: &Value, auth: &Value) -> Option<Value> {
    let user = auth["user"].as_str()?;
    let db = auth["db"].as_str().unwrap_or("admin");
    let pwd = auth["pwd"].as_str()?;
    state["users"]
        .as_array()?
        .iter()
        .find(|u| u["user"] == json!(user) && u["db"] == json!(db) && u["pwdHash"] == json!(hash(pwd)))
        .map(|u| json!({"user": u["user"], "db": u["db"]}))
}

fn members_hosts(config: &Value) -> Vec<String> {
    config["members"]
        .as_array()
        .map(|m| m.iter().filter_map(|x| x.get("host").and_then(|h| h.as_str()).map(String::from)).collect())
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------
// client side

struct Client {
    addr: String,
    /// `{user, pwd, db}` sent with every request once given (URI, flags or `db.auth`).
    auth: std::cell::RefCell<Option<Value>>,
}

impl Client {
    /// Connects (like the real tools, at once) and authenticates when credentials are given,
    /// or returns the error text.
    fn connect(addr: &str, auth: Option<Value>) -> Result<Client, String> {
        let c = Client { addr: addr.to_string(), auth: std::cell::RefCell::new(None) };
        c.run(&json!({"ping": 1}))?;
        if let Some(auth) = auth {
            c.authenticate(auth).map_err(|r| {
                format!("{} ({})", r["errmsg"].as_str().unwrap_or("Authentication failed."), r["codeName"].as_str().unwrap_or(""))
            })?;
        }
        Ok(c)
    }

    /// `Ok` and keeps the credentials, or the server's error reply.
    fn authenticate(&self, auth: Value) -> Result<Value, Value> {
        let reply = self.run(&json!({"authenticate": auth.clone()})).map_err(|e| err_reply(6, "HostUnreachable", &e))?;
        if reply["ok"] == json!(1) {
            *self.auth.borrow_mut() = Some(auth);
            Ok(reply)
        } else {
            Err(reply)
        }
    }

    fn run(&self, cmd: &Value) -> Result<Value, String> {
        let addrs: Vec<std::net::SocketAddr> = std::net::ToSocketAddrs::to_socket_addrs(&self.addr.as_str())
            .map_err(|e| format!("getaddrinfo {}: {e}", self.addr))?
            .collect();
        let mut last = format!("connect ECONNREFUSED {}", self.addr);
        let mut request = json!({"cmd": cmd});
        if let Some(auth) = self.auth.borrow().as_ref() {
            request["auth"] = auth.clone();
        }
        for a in addrs {
            match TcpStream::connect_timeout(&a, Duration::from_secs(5)) {
                Ok(mut s) => {
                    let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
                    s.write_all(format!("{request}\n").as_bytes()).map_err(|e| e.to_string())?;
                    let mut line = String::new();
                    BufReader::new(s).read_line(&mut line).map_err(|e| e.to_string())?;
                    return serde_json::from_str(&line).map_err(|e| format!("bad reply from {}: {e}", self.addr));
                }
                Err(e) => {
                    last = match e.kind() {
                        std::io::ErrorKind::ConnectionRefused => format!("connect ECONNREFUSED {a}"),
                        std::io::ErrorKind::TimedOut => format!("connect ETIMEDOUT {a}"),
                        _ => format!("connect {a}: {e}"),
                    }
                }
            }
        }
        Err(last)
    }
}

/// Credentials from a connection string (`user:pass@`, percent-decoded; `authSource`, else
/// the URI's database, else `admin`) and the `--username`/`--password`/
/// `--authenticationDatabase` options (and `password:` of a `--config` file), which win.
fn credentials(uri: Option<&str>, flags: &[(String, String)], config_password: Option<String>) -> Option<Value> {
    let (mut user, mut pwd, mut db) = (None, None, None);
    if let Some(uri) = uri {
        let rest = uri.split_once("://").map(|(_, r)| r).unwrap_or(uri);
        let (authority, tail) = match rest.find(['/', '?']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if let Some((userinfo, _)) = authority.rsplit_once('@') {
            let (u, p) = userinfo.split_once(':').map(|(u, p)| (u, Some(p))).unwrap_or((userinfo, None));
            user = Some(util::percent_decode(u));
            pwd = p.map(util::percent_decode);
        }
        let (path, query) = tail.split_once('?').unwrap_or((tail, ""));
        let path_db = path.trim_start_matches('/');
        if !path_db.is_empty() {
            db = Some(path_db.to_string());
        }
        if let Some(source) = query.split('&').find_map(|kv| kv.strip_prefix("authSource=")) {
            db = Some(util::percent_decode(source));
        }
    }
    if let Some(u) = util::flag(flags, &["username", "u"]) {
        user = Some(u.to_string());
    }
    if let Some(p) = util::flag(flags, &["password", "p"]) {
        pwd = Some(p.to_string());
    }
    if let Some(p) = config_password {
        pwd = Some(p);
    }
    if let Some(d) = util::flag(flags, &["authenticationDatabase"]) {
        db = Some(d.to_string());
    }
    let user = user.filter(|u| !u.is_empty())?;
    Some(json!({"user": user, "pwd": pwd.unwrap_or_default(), "db": db.unwrap_or_else(|| "admin".into())}))
}

/// `--config FILE` of the database tools: YAML with `password:` and/or `uri:`.
fn tool_config(flags: &[(String, String)]) -> Result<(Option<String>, Option<String>), String> {
    let Some(path) = util::flag(flags, &["config"]) else { return Ok((None, None)) };
    let text = std::fs::read_to_string(path).map_err(|e| format!("error opening config file {path}: {e}"))?;
    let doc: Value = yaml_serde::from_str(&text).map_err(|e| format!("error parsing config file {path}: {e}"))?;
    let get = |k: &str| doc.get(k).and_then(|v| v.as_str()).map(str::to_string);
    Ok((get("password"), get("uri")))
}

/// host:port to reach from a connection string (`mongodb://...`), `--host`/`--port`, or default.
fn target(positional: Option<&str>, flags: &[(String, String)]) -> String {
    let port = util::flag(flags, &["port"]).and_then(|p| p.parse::<u16>().ok());
    if let Some(uri) = util::flag(flags, &["uri"]).or(positional) {
        if let Some(hp) = util::url_hostport(uri, port.unwrap_or(27017)) {
            return hp;
        }
    }
    let host = util::flag(flags, &["host", "h"]).unwrap_or("127.0.0.1");
    // --host may be `rs0/a:1,b:2` or `a:1`
    let host = host.rsplit_once('/').map(|(_, h)| h).unwrap_or(host);
    let host = host.split(',').next().unwrap_or(host);
    if host.contains(':') {
        host.to_string()
    } else {
        format!("{host}:{}", port.unwrap_or(27017))
    }
}

pub fn mongodump(args: Vec<String>) -> i32 {
    let (flags, pos) = util::parse_flags(&args, &["gzip", "quiet", "oplog", "verbose", "v", "version", "archive"]);
    if util::flag(&flags, &["version"]).is_some() {
        println!("mongodump version: 100.12.0 (rcfleet lab stand-in)");
        return 0;
    }
    let (config_password, config_uri) = match tool_config(&flags) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{}\tFailed: {e}", util::now_rfc3339());
            return 1;
        }
    };
    let uri_given = util::flag(&flags, &["uri"]).map(str::to_string).or(config_uri).or_else(|| pos.first().cloned());
    let addr = target(uri_given.as_deref(), &flags);
    let quiet = util::flag(&flags, &["quiet"]).is_some();
    let gzip = util::flag(&flags, &["gzip"]).is_some();
    let archive = util::flag(&flags, &["archive"]).map(|s| s.to_string());
    let out = util::flag(&flags, &["out", "o"]).map(|s| s.to_string());
    let db = util::flag(&flags, &["db", "d"]).map(|s| s.to_string());
    let client = match Client::connect(&addr, credentials(uri_given.as_deref(), &flags, config_password)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{}\tFailed: can't create session: failed to connect to mongodb://{addr}/: {e}", util::now_rfc3339());
            return 1;
        }
    };
    let dest = match (&archive, &out) {
        (Some(a), _) if !a.is_empty() => a.clone(),
        (Some(_), _) => "-".to_string(),
        (None, Some(o)) => format!("{o}/standin-dump{}.json", if gzip { ".gz" } else { "" }),
        (None, None) => format!("dump/standin-dump{}.json", if gzip { ".gz" } else { "" }),
    };
    let uri = uri_given.unwrap_or_else(|| format!("mongodb://{addr}/"));
    let req = json!({"standinDump": {"archive": dest, "gzip": gzip, "uri": redact(&uri), "db": db}});
    let reply = match client.run(&req) {
        Ok(r) if r["ok"] == json!(1) => r,
        Ok(r) => {
            eprintln!("Failed: {}", r["errmsg"].as_str().unwrap_or("error"));
            return 1;
        }
        Err(e) => {
            eprintln!("Failed: {e}");
            return 1;
        }
    };
    let body = format!("RCFLEET-LAB-MONGODUMP-STANDIN\n{}\n", serde_json::to_string_pretty(&reply["payload"]).unwrap_or_default());
    if dest == "-" {
        let _ = std::io::stdout().write_all(body.as_bytes());
    } else {
        if let Some(parent) = std::path::Path::new(&dest).parent() {
            if archive.is_none() {
                let _ = std::fs::create_dir_all(parent);
            }
        }
        if let Err(e) = std::fs::write(&dest, body) {
            eprintln!("{}\tFailed: error opening {dest}: {e}", util::now_rfc3339());
            return 1;
        }
    }
    if !quiet {
        eprintln!("{}\twriting rocketchat to archive '{dest}'", util::now_rfc3339());
        eprintln!("{}\tdone dumping (rcfleet lab stand-in)", util::now_rfc3339());
    }
    0
}

fn redact(uri: &str) -> String {
    match (uri.find("://"), uri.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://***@{}", &uri[..s], &uri[at + 1..]),
        _ => uri.to_string(),
    }
}

pub fn mongorestore(args: Vec<String>) -> i32 {
    let (flags, pos) = util::parse_flags(&args, &["gzip", "quiet", "drop", "archive", "version", "oplogReplay"]);
    if util::flag(&flags, &["version"]).is_some() {
        println!("mongorestore version: 100.12.0 (rcfleet lab stand-in)");
        return 0;
    }
    let addr = target(None, &flags);
    let archive = util::flag(&flags, &["archive"]).map(String::from).filter(|a| !a.is_empty()).or_else(|| pos.first().cloned());
    let Some(path) = archive else {
        eprintln!("Failed: mongorestore stand-in needs --archive=PATH");
        return 1;
    };
    match std::fs::read_to_string(&path) {
        Ok(s) if s.starts_with("RCFLEET-LAB-MONGODUMP-STANDIN") => {}
        Ok(_) => {
            eprintln!("Failed: {path} is not an archive written by the mongodump stand-in");
            return 1;
        }
        Err(e) => {
            eprintln!("Failed: error opening {path}: {e}");
            return 1;
        }
    }
    let (config_password, _) = tool_config(&flags).unwrap_or_default();
    let client = match Client::connect(&addr, credentials(util::flag(&flags, &["uri"]), &flags, config_password)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("Failed: can't create session: failed to connect to mongodb://{addr}/: {e}");
            return 1;
        }
    };
    let uri = util::flag(&flags, &["uri"]).map(String::from).unwrap_or_else(|| format!("mongodb://{addr}/"));
    match client.run(&json!({"standinRestore": {"archive": path, "uri": redact(&uri), "drop": util::flag(&flags, &["drop"]).is_some()}})) {
        Ok(r) if r["ok"] == json!(1) => {
            eprintln!("{}\tdone (rcfleet lab stand-in)", util::now_rfc3339());
            0
        }
        Ok(r) => {
            eprintln!("Failed: {}", r["errmsg"].as_str().unwrap_or("error"));
            1
        }
        Err(e) => {
            eprintln!("Failed: {e}");
            1
        }
    }
}

// ---------------------------------------------------------------------------
// mongosh: a small JavaScript subset

pub fn mongosh(args: Vec<String>) -> i32 {
    let (flags, pos) = util::parse_flags(&args, &["quiet", "nodb", "norc", "version", "json", "verbose"]);
    if util::flag(&flags, &["version"]).is_some() {
        println!("2.5.0");
        return 0;
    }
    // mongosh [options] [connection string] [files...]
    let mut files: Vec<String> = args
        .windows(2)
        .filter(|w| w[0] == "--file" || w[0] == "-f")
        .map(|w| w[1].clone())
        .collect();
    files.extend(args.iter().filter_map(|a| a.strip_prefix("--file=").map(String::from)));
    let mut conn = None;
    for p in &pos {
        if files.contains(p) {
            continue;
        }
        if p.ends_with(".js") {
            files.push(p.clone());
        } else if conn.is_none() {
            conn = Some(p.clone());
        }
    }
    let evals: Vec<String> = args
        .windows(2)
        .filter(|w| w[0] == "--eval")
        .map(|w| w[1].clone())
        .chain(args.iter().filter_map(|a| a.strip_prefix("--eval=").map(String::from)))
        .collect();
    let nodb = util::flag(&flags, &["nodb"]).is_some();
    let client = if nodb {
        None
    } else {
        let addr = target(conn.as_deref(), &flags);
        let auth = credentials(conn.as_deref().or(util::flag(&flags, &["uri"])), &flags, None);
        let authenticating = auth.is_some();
        match Client::connect(&addr, auth) {
            Ok(c) => Some(c),
            Err(e) if authenticating && !e.starts_with("connect") && !e.starts_with("getaddrinfo") => {
                eprintln!("MongoServerError: {e}");
                return 1;
            }
            Err(e) => {
                eprintln!("MongoNetworkError: {e}");
                return 1;
            }
        }
    };
    let mut interp = Interp::new(client, Box::new(std::io::stdout()));
    let mut sources: Vec<(String, String, bool)> = evals.into_iter().map(|e| ("--eval".to_string(), e, true)).collect();
    for f in &files {
        match std::fs::read_to_string(f) {
            Ok(s) => sources.push((f.clone(), s, false)),
            Err(e) => {
                eprintln!("Error: ENOENT: could not read file {f}: {e}");
                return 1;
            }
        }
    }
    // Neither --eval nor a file: the interactive REPL, whether stdin is a terminal or a pipe
    // (mongosh cli-repl.ts getFileAndEvalInfo: willEnterInteractiveMode =
    // !willExecuteCommandLineScripts).
    if sources.is_empty() {
        let db = uri_database(conn.as_deref().or(util::flag(&flags, &["uri"])));
        return repl(&mut interp, std::io::stdin().lock(), &db);
    }
    // Script mode: no prompt; an uncaught error goes to stderr as `name: message` and ends the
    // run with exit 1 (mongosh run.ts prints `${e.name}: ${e.message}` and exits 1).
    for (name, src, print_last) in sources {
        let prog = match parse_program(&src) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("SyntaxError: {e} ({name}; the mongosh stand-in understands only a small subset, see tests/lab/README.md)");
                return 1;
            }
        };
        match interp.run_block(&prog) {
            Ok(Flow::Normal(last)) => {
                if print_last {
                    if let Some(v) = last {
                        if !matches!(v, V::Undef) {
                            interp.write(&format!("{}\n", display(&v)));
                        }
                    }
                }
            }
            Ok(Flow::Quit(code)) => return interp.finish(code),
            Err(Thrown(V::Ns("quit"))) => return interp.finish(interp.quit_code()),
            Err(Thrown(e)) => {
                interp.finish(0);
                eprintln!("{}", script_error_text(&e));
                return 1;
            }
        }
    }
    interp.finish(0)
}

/// The interactive REPL as mongosh 2.x runs it on piped input (checked byte for byte against
/// mongosh 2.12.0 with `--nodb --quiet`): the prompt before every input line, `... ` for each
/// line of a statement still open, then what the statement printed and its value (an empty
/// line for `undefined`). An uncaught error is written to stdout as `Uncaught <error>` and the
/// REPL goes on with the next line; at the end of input the exit status is 0 (`quit(n)`: n).
/// Sources: mongosh-repl.ts `startRepl` (setPrompt, displayPrompt), the prompt recomputed
/// after every evaluation, format-output.ts `formatError`.
fn repl(interp: &mut Interp, mut input: impl BufRead, db: &str) -> i32 {
    let mut pending = String::new();
    let prompt = interp.prompt(db);
    interp.write(&prompt);
    loop {
        let mut line = String::new();
        match input.read_line(&mut line) {
            Ok(0) | Err(_) => return interp.finish(0),
            Ok(_) => {}
        }
        pending.push_str(&line);
        if incomplete(&pending) {
            interp.write("... ");
            continue;
        }
        let src = std::mem::take(&mut pending);
        match parse_program(&src) {
            Err(e) => interp.write(&format!("Uncaught:\n\rSyntaxError: {e}\n\n")),
            Ok(prog) => match interp.run_block(&prog) {
                Ok(Flow::Normal(Some(v))) if !matches!(v, V::Undef) => interp.write(&format!("{}\n", display(&v))),
                Ok(Flow::Normal(_)) => interp.write("\n"),
                Ok(Flow::Quit(code)) => return interp.finish(code),
                Err(Thrown(V::Ns("quit"))) => {
                    let code = interp.quit_code();
                    return interp.finish(code);
                }
                Err(Thrown(e)) => interp.write(&format!("Uncaught {}\n", repl_error_text(&e))),
            },
        }
        let prompt = interp.prompt(db);
        interp.write(&prompt);
    }
}

/// mongosh's default prompt (shell-instance-state.ts `getDefaultPrompt`,
/// `getTopologySpecificPrompt`): `> ` without a connection (`--nodb`); else `<db>> `, preceded
/// for a member of an initiated replica set by `<set> [direct: primary|secondary|other] `, as
/// the server's `hello` describes it.
fn default_prompt(hello: Option<&Value>, db: &str) -> String {
    let Some(hello) = hello else { return "> ".to_string() };
    // An uninitiated member (`isreplicaset`) has no set name yet for the driver.
    let topology = match hello["setName"].as_str().filter(|_| hello["isreplicaset"] != json!(true)) {
        Some(set) => {
            let state = if hello["isWritablePrimary"] == json!(true) {
                "primary"
            } else if hello["secondary"] == json!(true) {
                "secondary"
            } else {
                "other"
            };
            format!("{set} [direct: {state}] ")
        }
        None => String::new(),
    };
    format!("{topology}{db}> ")
}

/// Whether `src` ends inside a statement (an open bracket), so the REPL reads another line.
fn incomplete(src: &str) -> bool {
    let Ok(tokens) = tokenize(src) else { return false };
    let depth: i64 = tokens
        .iter()
        .map(|t| match t {
            Tok::P(p) if matches!(p.as_str(), "(" | "[" | "{") => 1,
            Tok::P(p) if matches!(p.as_str(), ")" | "]" | "}") => -1,
            _ => 0,
        })
        .sum();
    depth > 0
}

/// The database a connection string names (`mongodb://host/db?...`), else `test`, as mongosh.
fn uri_database(uri: Option<&str>) -> String {
    let rest = uri.and_then(|u| u.split_once("://")).map(|(_, r)| r).unwrap_or("");
    let path = rest.split_once('/').map(|(_, p)| p).unwrap_or("");
    let db = path.split('?').next().unwrap_or("");
    if db.is_empty() { "test".to_string() } else { db.to_string() }
}

/// name, message and code name of a thrown error (an object with a `name`), else `None`.
fn error_parts(e: &V) -> Option<(String, String, Option<String>)> {
    let V::J(Value::Object(o)) = e else { return None };
    let name = o.get("name")?.as_str()?.to_string();
    let message = o.get("message").and_then(|v| v.as_str()).unwrap_or("").to_string();
    Some((name, message, o.get("codeName").and_then(|v| v.as_str()).map(String::from)))
}

/// Script mode's report of an uncaught error (mongosh run.ts: `${e.name}: ${e.message}`; a
/// thrown non-error is wrapped in an `Error`).
fn script_error_text(e: &V) -> String {
    match error_parts(e) {
        Some((name, message, _)) => format!("{name}: {message}"),
        None => format!("Error: {}", display(e)),
    }
}

/// The REPL's report of an uncaught error after `Uncaught ` (format-output.ts `formatError`:
/// a carriage return, the name, `[codeName]` when there is one, `: `, the message).
fn repl_error_text(e: &V) -> String {
    match error_parts(e) {
        Some((name, message, Some(code))) => format!("\r{name}[{code}]: {message}"),
        Some((name, message, None)) => format!("\r{name}: {message}"),
        None => format!("\rError: {}", display(e)),
    }
}

#[derive(Clone, Debug)]
enum V {
    Undef,
    J(Value),
    Db,
    Rs,
    Ns(&'static str),
}

struct Thrown(V);

enum Flow {
    Normal(Option<V>),
    Quit(i32),
}

#[derive(Debug, Clone)]
enum Stmt {
    Expr(Expr),
    Let(String, Option<Expr>),
    Try(Vec<Stmt>, Option<String>, Vec<Stmt>, Vec<Stmt>),
    If(Expr, Vec<Stmt>, Vec<Stmt>),
    Throw(Expr),
    Block(Vec<Stmt>),
}

#[derive(Debug, Clone)]
enum Expr {
    Lit(Value),
    Undef,
    Ident(String),
    Obj(Vec<(String, Expr)>),
    Arr(Vec<Expr>),
    Member(Box<Expr>, String),
    Index(Box<Expr>, Box<Expr>),
    Call(Box<Expr>, Vec<Expr>),
    Not(Box<Expr>),
    Neg(Box<Expr>),
    Bin(String, Box<Expr>, Box<Expr>),
    Cond(Box<Expr>, Box<Expr>, Box<Expr>),
    New(Box<Expr>),
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Id(String),
    Num(f64),
    Str(String),
    P(String),
}

fn tokenize(src: &str) -> Result<Vec<Tok>, String> {
    let c: Vec<char> = src.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    while i < c.len() {
        let ch = c[i];
        if ch.is_whitespace() {
            i += 1;
        } else if ch == '/' && c.get(i + 1) == Some(&'/') {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if ch == '/' && c.get(i + 1) == Some(&'*') {
            i += 2;
            while i + 1 < c.len() && !(c[i] == '*' && c[i + 1] == '/') {
                i += 1;
            }
            i += 2;
        } else if ch.is_ascii_alphabetic() || ch == '_' || ch == '$' {
            let s = i;
            while i < c.len() && (c[i].is_ascii_alphanumeric() || c[i] == '_' || c[i] == '$') {
                i += 1;
            }
            out.push(Tok::Id(c[s..i].iter().collect()));
        } else if ch.is_ascii_digit() {
            let s = i;
            while i < c.len() && (c[i].is_ascii_digit() || c[i] == '.' || c[i] == 'e' || c[i] == 'E') {
                i += 1;
            }
            let t: String = c[s..i].iter().collect();
            out.push(Tok::Num(t.parse().map_err(|_| format!("bad number {t}"))?));
        } else if ch == '"' || ch == '\'' || ch == '`' {
            let q = ch;
            i += 1;
            let mut s = String::new();
            while i < c.len() && c[i] != q {
                if c[i] == '\\' && i + 1 < c.len() {
                    i += 1;
                    s.push(match c[i] {
                        'n' => '\n',
                        't' => '\t',
                        'r' => '\r',
                        o => o,
                    });
                } else {
                    s.push(c[i]);
                }
                i += 1;
            }
            if i >= c.len() {
                return Err("unterminated string".into());
            }
            i += 1;
            out.push(Tok::Str(s));
        } else {
            let three: String = c[i..(i + 3).min(c.len())].iter().collect();
            let two: String = c[i..(i + 2).min(c.len())].iter().collect();
            if three == "===" || three == "!==" {
                out.push(Tok::P(three));
                i += 3;
            } else if ["==", "!=", "&&", "||", "<=", ">=", "=>"].contains(&two.as_str()) {
                out.push(Tok::P(two));
                i += 2;
            } else if "{}()[],;:.!=<>?+-*".contains(ch) {
                out.push(Tok::P(ch.to_string()));
                i += 1;
            } else {
                return Err(format!("unexpected character {ch:?}"));
            }
        }
    }
    Ok(out)
}

struct Parser {
    t: Vec<Tok>,
    i: usize,
}

fn parse_program(src: &str) -> Result<Vec<Stmt>, String> {
    let mut p = Parser { t: tokenize(src)?, i: 0 };
    let mut out = Vec::new();
    while p.i < p.t.len() {
        if p.eat(";") {
            continue;
        }
        out.push(p.stmt()?);
    }
    Ok(out)
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.t.get(self.i)
    }
    fn is(&self, p: &str) -> bool {
        matches!(self.peek(), Some(Tok::P(x)) if x == p)
    }
    fn is_id(&self, id: &str) -> bool {
        matches!(self.peek(), Some(Tok::Id(x)) if x == id)
    }
    fn eat(&mut self, p: &str) -> bool {
        if self.is(p) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn expect(&mut self, p: &str) -> Result<(), String> {
        if self.eat(p) {
            Ok(())
        } else {
            Err(format!("expected '{p}' at token {} ({:?})", self.i, self.peek()))
        }
    }
    fn ident(&mut self) -> Result<String, String> {
        match self.t.get(self.i).cloned() {
            Some(Tok::Id(s)) => {
                self.i += 1;
                Ok(s)
            }
            other => Err(format!("expected a name, found {other:?}")),
        }
    }
    fn block(&mut self) -> Result<Vec<Stmt>, String> {
        if self.eat("{") {
            let mut v = Vec::new();
            while !self.eat("}") {
                if self.i >= self.t.len() {
                    return Err("missing '}'".into());
                }
                if self.eat(";") {
                    continue;
                }
                v.push(self.stmt()?);
            }
            Ok(v)
        } else {
            Ok(vec![self.stmt()?])
        }
    }
    fn stmt(&mut self) -> Result<Stmt, String> {
        if self.is("{") {
            return Ok(Stmt::Block(self.block()?));
        }
        if self.is_id("try") {
            self.i += 1;
            let body = self.block()?;
            let (mut name, mut handler, mut fin) = (None, Vec::new(), Vec::new());
            if self.is_id("catch") {
                self.i += 1;
                if self.eat("(") {
                    name = Some(self.ident()?);
                    self.expect(")")?;
                }
                handler = self.block()?;
            }
            if self.is_id("finally") {
                self.i += 1;
                fin = self.block()?;
            }
            return Ok(Stmt::Try(body, name, handler, fin));
        }
        if self.is_id("if") {
            self.i += 1;
            self.expect("(")?;
            let c = self.expr()?;
            self.expect(")")?;
            let then = self.block()?;
            let els = if self.is_id("else") {
                self.i += 1;
                self.block()?
            } else {
                Vec::new()
            };
            return Ok(Stmt::If(c, then, els));
        }
        if self.is_id("throw") {
            self.i += 1;
            let e = self.expr()?;
            self.eat(";");
            return Ok(Stmt::Throw(e));
        }
        if self.is_id("var") || self.is_id("let") || self.is_id("const") {
            self.i += 1;
            let name = self.ident()?;
            let init = if self.eat("=") { Some(self.expr()?) } else { None };
            self.eat(";");
            return Ok(Stmt::Let(name, init));
        }
        let e = self.expr()?;
        self.eat(";");
        Ok(Stmt::Expr(e))
    }
    fn expr(&mut self) -> Result<Expr, String> {
        let c = self.or()?;
        if self.eat("?") {
            let a = self.expr()?;
            self.expect(":")?;
            let b = self.expr()?;
            return Ok(Expr::Cond(Box::new(c), Box::new(a), Box::new(b)));
        }
        Ok(c)
    }
    fn or(&mut self) -> Result<Expr, String> {
        let mut l = self.and()?;
        while self.eat("||") {
            l = Expr::Bin("||".into(), Box::new(l), Box::new(self.and()?));
        }
        Ok(l)
    }
    fn and(&mut self) -> Result<Expr, String> {
        let mut l = self.eq()?;
        while self.eat("&&") {
            l = Expr::Bin("&&".into(), Box::new(l), Box::new(self.eq()?));
        }
        Ok(l)
    }
    fn eq(&mut self) -> Result<Expr, String> {
        let mut l = self.add()?;
        loop {
            let op = match self.peek() {
                Some(Tok::P(p)) if ["===", "!==", "==", "!=", "<", ">", "<=", ">="].contains(&p.as_str()) => p.clone(),
                _ => break,
            };
            self.i += 1;
            l = Expr::Bin(op, Box::new(l), Box::new(self.add()?));
        }
        Ok(l)
    }
    fn add(&mut self) -> Result<Expr, String> {
        let mut l = self.unary()?;
        loop {
            let op = match self.peek() {
                Some(Tok::P(p)) if p == "+" || p == "-" || p == "*" => p.clone(),
                _ => break,
            };
            self.i += 1;
            l = Expr::Bin(op, Box::new(l), Box::new(self.unary()?));
        }
        Ok(l)
    }
    fn unary(&mut self) -> Result<Expr, String> {
        if self.eat("!") {
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        if self.eat("-") {
            return Ok(Expr::Neg(Box::new(self.unary()?)));
        }
        if self.is_id("new") {
            self.i += 1;
            return Ok(Expr::New(Box::new(self.postfix()?)));
        }
        self.postfix()
    }
    fn postfix(&mut self) -> Result<Expr, String> {
        let mut e = self.primary()?;
        loop {
            if self.eat(".") {
                e = Expr::Member(Box::new(e), self.ident()?);
            } else if self.eat("[") {
                let idx = self.expr()?;
                self.expect("]")?;
                e = Expr::Index(Box::new(e), Box::new(idx));
            } else if self.eat("(") {
                let mut args = Vec::new();
                while !self.eat(")") {
                    args.push(self.expr()?);
                    if !self.eat(",") {
                        self.expect(")")?;
                        break;
                    }
                }
                e = Expr::Call(Box::new(e), args);
            } else {
                break;
            }
        }
        Ok(e)
    }
    fn primary(&mut self) -> Result<Expr, String> {
        let t = self.t.get(self.i).cloned().ok_or("unexpected end of script")?;
        self.i += 1;
        Ok(match t {
            Tok::Num(n) => Expr::Lit(num(n)),
            Tok::Str(s) => Expr::Lit(Value::String(s)),
            Tok::Id(id) => match id.as_str() {
                "true" => Expr::Lit(Value::Bool(true)),
                "false" => Expr::Lit(Value::Bool(false)),
                "null" => Expr::Lit(Value::Null),
                "undefined" => Expr::Undef,
                _ => Expr::Ident(id),
            },
            Tok::P(p) if p == "(" => {
                let e = self.expr()?;
                self.expect(")")?;
                e
            }
            Tok::P(p) if p == "[" => {
                let mut v = Vec::new();
                while !self.eat("]") {
                    v.push(self.expr()?);
                    if !self.eat(",") {
                        self.expect("]")?;
                        break;
                    }
                }
                Expr::Arr(v)
            }
            Tok::P(p) if p == "{" => {
                let mut v = Vec::new();
                while !self.eat("}") {
                    let key = match self.t.get(self.i).cloned() {
                        Some(Tok::Id(s)) | Some(Tok::Str(s)) => s,
                        Some(Tok::Num(n)) => num(n).to_string(),
                        other => return Err(format!("bad object key {other:?}")),
                    };
                    self.i += 1;
                    self.expect(":")?;
                    v.push((key, self.expr()?));
                    if !self.eat(",") {
                        self.expect("}")?;
                        break;
                    }
                }
                Expr::Obj(v)
            }
            other => return Err(format!("unexpected token {other:?}")),
        })
    }
}

fn num(n: f64) -> Value {
    if n.fract() == 0.0 && n.abs() < 9e15 {
        json!(n as i64)
    } else {
        json!(n)
    }
}

fn truthy(v: &V) -> bool {
    match v {
        V::Undef => false,
        V::J(Value::Null) => false,
        V::J(Value::Bool(b)) => *b,
        V::J(Value::Number(n)) => n.as_f64().map(|f| f != 0.0).unwrap_or(false),
        V::J(Value::String(s)) => !s.is_empty(),
        _ => true,
    }
}

fn loose_eq(a: &V, b: &V) -> bool {
    match (a, b) {
        (V::Undef, V::Undef) => true,
        (V::Undef, V::J(Value::Null)) | (V::J(Value::Null), V::Undef) => true,
        (V::J(Value::Number(x)), V::J(Value::Number(y))) => x.as_f64() == y.as_f64(),
        (V::J(x), V::J(y)) => x == y,
        _ => false,
    }
}

fn strict_eq(a: &V, b: &V) -> bool {
    match (a, b) {
        (V::Undef, V::Undef) => true,
        (V::Undef, _) | (_, V::Undef) => false,
        _ => loose_eq(a, b),
    }
}

fn to_json(v: &V) -> Value {
    match v {
        V::J(j) => j.clone(),
        _ => Value::Null,
    }
}

fn display(v: &V) -> String {
    match v {
        V::Undef => "undefined".into(),
        V::J(Value::String(s)) => s.clone(),
        V::J(j) => serde_json::to_string_pretty(j).unwrap_or_default(),
        V::Db => "test".into(),
        V::Rs => "[rs]".into(),
        V::Ns(n) => format!("[{n}]"),
    }
}

fn server_error(reply: &Value) -> V {
    let msg = reply["errmsg"].as_str().unwrap_or("error").to_string();
    V::J(json!({
        "name": "MongoServerError",
        "message": msg,
        "errmsg": msg,
        "code": reply["code"],
        "codeName": reply["codeName"],
        "ok": 0,
    }))
}

fn plain_error(name: &str, msg: &str) -> Thrown {
    Thrown(V::J(json!({"name": name, "message": msg})))
}

struct Interp {
    client: Option<Client>,
    vars: std::collections::HashMap<String, V>,
    /// stdout: what scripts print, and the REPL's prompts and values, in order.
    out: Box<dyn Write>,
}

impl Interp {
    fn new(client: Option<Client>, out: Box<dyn Write>) -> Interp {
        Interp { client, vars: Default::default(), out }
    }

    fn write(&mut self, text: &str) {
        let _ = self.out.write_all(text.as_bytes());
    }

    /// Flushes stdout (the REPL's last prompt has no newline) and passes `code` on.
    fn finish(&mut self, code: i32) -> i32 {
        let _ = self.out.flush();
        code
    }

    fn quit_code(&self) -> i32 {
        self.vars.get("__quit").map(|v| to_json(v).as_i64().unwrap_or(0) as i32).unwrap_or(0)
    }

    fn prompt(&mut self, db: &str) -> String {
        let hello = self.client.as_ref().map(|c| c.run(&json!({"hello": 1})).unwrap_or(Value::Null));
        default_prompt(hello.as_ref(), db)
    }

    fn run_block(&mut self, stmts: &[Stmt]) -> Result<Flow, Thrown> {
        let mut last = None;
        for s in stmts {
            match self.run(s)? {
                Flow::Normal(v) => last = v,
                q @ Flow::Quit(_) => return Ok(q),
            }
        }
        Ok(Flow::Normal(last))
    }

    fn run(&mut self, s: &Stmt) -> Result<Flow, Thrown> {
        match s {
            Stmt::Expr(e) => match self.eval(e) {
                Err(Thrown(V::Ns("quit"))) => {
                    let code = self.vars.get("__quit").map(|v| to_json(v).as_i64().unwrap_or(0) as i32).unwrap_or(0);
                    Ok(Flow::Quit(code))
                }
                r => Ok(Flow::Normal(Some(r?))),
            },
            Stmt::Let(n, init) => {
                let v = match init {
                    Some(e) => self.eval(e)?,
                    None => V::Undef,
                };
                self.vars.insert(n.clone(), v);
                Ok(Flow::Normal(None))
            }
            Stmt::Block(b) => self.run_block(b),
            Stmt::Throw(e) => Err(Thrown(self.eval(e)?)),
            Stmt::If(c, a, b) => {
                if truthy(&self.eval(c)?) {
                    self.run_block(a)
                } else {
                    self.run_block(b)
                }
            }
            Stmt::Try(body, name, handler, fin) => {
                let r = match self.run_block(body) {
                    Err(Thrown(V::Ns("quit"))) => Err(Thrown(V::Ns("quit"))),
                    Err(Thrown(e)) => {
                        if let Some(n) = name {
                            self.vars.insert(n.clone(), e);
                        }
                        self.run_block(handler)
                    }
                    ok => ok,
                };
                if !fin.is_empty() {
                    self.run_block(fin)?;
                }
                r
            }
        }
    }

    fn eval(&mut self, e: &Expr) -> Result<V, Thrown> {
        Ok(match e {
            Expr::Lit(v) => V::J(v.clone()),
            Expr::Undef => V::Undef,
            Expr::Ident(n) => match n.as_str() {
                "db" => V::Db,
                "rs" => V::Rs,
                "JSON" => V::Ns("JSON"),
                "EJSON" => V::Ns("EJSON"),
                "console" => V::Ns("console"),
                "print" | "printjson" | "quit" | "exit" | "Error" | "sleep" => V::Ns("global"),
                _ => match self.vars.get(n) {
                    Some(v) => v.clone(),
                    None => return Err(plain_error("ReferenceError", &format!("{n} is not defined"))),
                },
            },
            Expr::Obj(kv) => {
                let mut m = Map::new();
                for (k, v) in kv {
                    m.insert(k.clone(), to_json(&self.eval(v)?));
                }
                V::J(Value::Object(m))
            }
            Expr::Arr(items) => {
                let mut a = Vec::new();
                for v in items {
                    a.push(to_json(&self.eval(v)?));
                }
                V::J(Value::Array(a))
            }
            Expr::Member(obj, name) => {
                let o = self.eval(obj)?;
                match o {
                    V::J(Value::Object(m)) => m.get(name).cloned().map(V::J).unwrap_or(V::Undef),
                    V::J(Value::Array(a)) if name == "length" => V::J(json!(a.len())),
                    V::J(Value::String(s)) if name == "length" => V::J(json!(s.chars().count())),
                    V::Undef | V::J(Value::Null) => {
                        return Err(plain_error("TypeError", &format!("Cannot read properties of undefined (reading '{name}')")))
                    }
                    _ => V::Undef,
                }
            }
            Expr::Index(obj, idx) => {
                let o = self.eval(obj)?;
                let i = self.eval(idx)?;
                match (o, to_json(&i)) {
                    (V::J(Value::Array(a)), Value::Number(n)) => {
                        a.get(n.as_u64().unwrap_or(u64::MAX) as usize).cloned().map(V::J).unwrap_or(V::Undef)
                    }
                    (V::J(Value::Object(m)), Value::String(k)) => m.get(&k).cloned().map(V::J).unwrap_or(V::Undef),
                    (V::Undef, _) | (V::J(Value::Null), _) => {
                        return Err(plain_error("TypeError", "Cannot read properties of undefined"))
                    }
                    _ => V::Undef,
                }
            }
            Expr::Not(x) => V::J(Value::Bool(!truthy(&self.eval(x)?))),
            Expr::Neg(x) => V::J(num(-to_json(&self.eval(x)?).as_f64().unwrap_or(f64::NAN))),
            Expr::Cond(c, a, b) => {
                if truthy(&self.eval(c)?) {
                    self.eval(a)?
                } else {
                    self.eval(b)?
                }
            }
            Expr::Bin(op, l, r) => {
                let lv = self.eval(l)?;
                match op.as_str() {
                    "&&" => {
                        if truthy(&lv) {
                            self.eval(r)?
                        } else {
                            lv
                        }
                    }
                    "||" => {
                        if truthy(&lv) {
                            lv
                        } else {
                            self.eval(r)?
                        }
                    }
                    _ => {
                        let rv = self.eval(r)?;
                        let (a, b) = (to_json(&lv), to_json(&rv));
                        let (x, y) = (a.as_f64().unwrap_or(f64::NAN), b.as_f64().unwrap_or(f64::NAN));
                        V::J(match op.as_str() {
                            "===" => Value::Bool(strict_eq(&lv, &rv)),
                            "!==" => Value::Bool(!strict_eq(&lv, &rv)),
                            "==" => Value::Bool(loose_eq(&lv, &rv)),
                            "!=" => Value::Bool(!loose_eq(&lv, &rv)),
                            "<" => Value::Bool(x < y),
                            ">" => Value::Bool(x > y),
                            "<=" => Value::Bool(x <= y),
                            ">=" => Value::Bool(x >= y),
                            "+" => match (&a, &b) {
                                (Value::Number(_), Value::Number(_)) => num(x + y),
                                _ => Value::String(format!("{}{}", display(&lv), display(&rv))),
                            },
                            "-" => num(x - y),
                            "*" => num(x * y),
                            _ => return Err(plain_error("SyntaxError", &format!("operator {op} not supported"))),
                        })
                    }
                }
            }
            Expr::New(inner) => self.eval(inner)?,
            Expr::Call(callee, args) => {
                let mut argv = Vec::new();
                for a in args {
                    argv.push(self.eval(a)?);
                }
                let (target, method) = match &**callee {
                    Expr::Member(obj, m) => (self.eval(obj)?, m.clone()),
                    Expr::Ident(n) => (V::Ns("global"), n.clone()),
                    _ => return Err(plain_error("TypeError", "expression is not a function")),
                };
                self.call(target, &method, argv)?
            }
        })
    }

    fn server(&mut self, cmd: Value) -> Result<Value, Thrown> {
        let Some(c) = &self.client else {
            return Err(plain_error("MongoshInvalidInputError", "[SHAPI-10004] No connected database"));
        };
        match c.run(&cmd) {
            Ok(r) if r["ok"] == json!(1) => Ok(r),
            Ok(r) => Err(Thrown(server_error(&r))),
            Err(e) => Err(plain_error("MongoNetworkError", &e)),
        }
    }

    fn call(&mut self, target: V, method: &str, argv: Vec<V>) -> Result<V, Thrown> {
        let arg = |i: usize| argv.get(i).map(to_json).unwrap_or(Value::Null);
        let doc = |v: Value| -> Value {
            match v {
                Value::String(s) => {
                    let mut m = Map::new();
                    m.insert(s, json!(1));
                    Value::Object(m)
                }
                other => other,
            }
        };
        Ok(match (&target, method) {
            (V::Rs, "initiate") => V::J(self.server(json!({"replSetInitiate": arg(0)}))?),
            (V::Rs, "status") => V::J(self.server(json!({"replSetGetStatus": 1}))?),
            (V::Rs, "conf") | (V::Rs, "config") => V::J(self.server(json!({"replSetGetConfig": 1}))?["config"].clone()),
            (V::Rs, "hello") | (V::Rs, "isMaster") => V::J(self.server(json!({"hello": 1}))?),
            (V::Db, "adminCommand") | (V::Db, "runCommand") => V::J(self.server(doc(arg(0)))?),
            (V::Db, "version") => V::J(self.server(json!({"buildInfo": 1}))?["version"].clone()),
            (V::Db, "hello") | (V::Db, "isMaster") => V::J(self.server(json!({"hello": 1}))?),
            (V::Db, "serverStatus") => V::J(self.server(json!({"serverStatus": 1}))?),
            (V::Db, "getSiblingDB") | (V::Db, "getMongo") => V::Db,
            (V::Db, "auth") => {
                let auth = match arg(0) {
                    Value::Object(o) => json!({"user": o.get("user").cloned().unwrap_or(Value::Null), "pwd": o.get("pwd").cloned().unwrap_or(Value::Null), "db": "admin"}),
                    user => json!({"user": user, "pwd": arg(1), "db": "admin"}),
                };
                let Some(c) = &self.client else {
                    return Err(plain_error("MongoshInvalidInputError", "[SHAPI-10004] No connected database"));
                };
                match c.authenticate(auth) {
                    Ok(_) => V::J(json!({"ok": 1})),
                    Err(reply) => return Err(Thrown(server_error(&reply))),
                }
            }
            (V::Db, "createUser") => {
                let d = arg(0);
                V::J(self.server(json!({"createUser": d["user"], "pwd": d["pwd"], "roles": d["roles"], "$db": "admin"}))?)
            }
            (V::Db, "updateUser") => {
                let d = arg(1);
                let mut cmd = json!({"updateUser": arg(0), "$db": "admin"});
                for k in ["pwd", "roles"] {
                    if let Some(v) = d.get(k) {
                        cmd[k] = v.clone();
                    }
                }
                V::J(self.server(cmd)?)
            }
            (V::Db, "getUser") => {
                let r = self.server(json!({"usersInfo": arg(0), "$db": "admin"}))?;
                V::J(r["users"].as_array().and_then(|u| u.first().cloned()).unwrap_or(Value::Null))
            }
            (V::Db, "getUsers") => V::J(self.server(json!({"usersInfo": 1, "$db": "admin"}))?["users"].clone()),
            (V::Db, "getName") => V::J(json!("test")),
            (V::Ns("JSON"), "stringify") | (V::Ns("EJSON"), "stringify") => {
                let v = argv.first().cloned().unwrap_or(V::Undef);
                match v {
                    V::Undef => V::Undef,
                    other => V::J(Value::String(to_json(&other).to_string())),
                }
            }
            (V::Ns("JSON"), "parse") | (V::Ns("EJSON"), "parse") => {
                let s = arg(0);
                V::J(serde_json::from_str(s.as_str().unwrap_or("null")).map_err(|e| plain_error("SyntaxError", &e.to_string()))?)
            }
            (V::Ns("console"), "log") | (V::Ns("global"), "print") | (V::Ns("global"), "printjson") => {
                let parts: Vec<String> = argv.iter().map(display).collect();
                self.write(&format!("{}\n", parts.join(" ")));
                V::Undef
            }
            (V::Ns("global"), "sleep") => {
                std::thread::sleep(Duration::from_millis(arg(0).as_u64().unwrap_or(0)));
                V::Undef
            }
            (V::Ns("global"), "Error") => V::J(json!({"name": "Error", "message": display(&argv.first().cloned().unwrap_or(V::Undef))})),
            (V::Ns("global"), "quit") | (V::Ns("global"), "exit") => {
                self.vars.insert("__quit".into(), V::J(json!(arg(0).as_i64().unwrap_or(0))));
                return Err(Thrown(V::Ns("quit")));
            }
            (V::J(Value::String(s)), "toString") => V::J(Value::String(s.clone())),
            (V::J(j), "toString") => V::J(Value::String(display(&V::J(j.clone())))),
            _ => {
                return Err(plain_error(
                    "TypeError",
                    &format!("{method} is not a function (the mongosh stand-in understands only what tests/lab/README.md lists)"),
                ))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rendered_script() {
        let src = r#"// Initiates the replica set once; AlreadyInitialized (23) means an earlier run did it.
try {
  rs.initiate({_id: "rs0", members: [{_id: 0, host: "10.0.0.10:27017"}]});
} catch (e) {
  if (e.code !== 23) throw e;
}
"#;
        let p = parse_program(src).unwrap();
        assert_eq!(p.len(), 1);
        assert!(matches!(p[0], Stmt::Try(..)));
    }

    #[test]
    fn catch_rethrows_other_codes() {
        let mut i = Interp::new(None, Box::new(std::io::sink()));
        let prog = parse_program(
            r#"try { throw {code: 23, name: "MongoServerError", message: "x"}; } catch (e) { if (e.code !== 23) throw e; }"#,
        )
        .unwrap();
        assert!(i.run_block(&prog).is_ok());
        let prog = parse_program(
            r#"try { throw {code: 94, name: "MongoServerError", message: "x"}; } catch (e) { if (e.code !== 23) throw e; }"#,
        )
        .unwrap();
        assert!(i.run_block(&prog).is_err());
    }

    #[test]
    fn default_prompt_follows_the_topology() {
        let primary = json!({"isWritablePrimary": true, "secondary": false, "setName": "rs0", "ok": 1});
        assert_eq!(default_prompt(Some(&primary), "test"), "rs0 [direct: primary] test> ");
        let uninitiated = json!({"isWritablePrimary": false, "setName": "rs0", "isreplicaset": true, "ok": 1});
        assert_eq!(default_prompt(Some(&uninitiated), "test"), "test> ");
        assert_eq!(default_prompt(Some(&json!({"isWritablePrimary": true, "ok": 1})), "admin"), "admin> ");
        assert_eq!(default_prompt(None, "test"), "> ");
        assert_eq!(uri_database(Some("mongodb://127.0.0.1:27017/?directConnection=true")), "test");
        assert_eq!(uri_database(Some("mongodb://u:p@h:1/rocketchat?authSource=admin")), "rocketchat");
    }

    #[test]
    fn strings_with_slashes_are_not_comments() {
        let t = tokenize(r#"x = "mongodb://a:1/"; // c"#).unwrap();
        assert!(t.contains(&Tok::Str("mongodb://a:1/".into())));
    }
}

//! Rocket.Chat stand-in. See tests/lab/README.md for the contract.
use crate::http::{self, Request, Response};
use crate::util;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long after registering its settings an instance configures its metrics server. The real
/// server does it in `Meteor.startup`, after every setting is registered, while its settings
/// cache follows the database: another instance's write that lands in this window is what it
/// sees (collectMetrics.ts, SettingsRegistry.ts; tests/lab/README.md).
const SETTINGS_SETTLE: Duration = Duration::from_secs(2);

pub fn main(_args: Vec<String>) -> i32 {
    let version = match util::baked("version") {
        Some(v) => v,
        None => {
            eprintln!("rocketchat stand-in: /etc/standin/version is missing from the image");
            return 1;
        }
    };
    let broken = util::baked("broken").is_some();
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());

    let transporter = env("TRANSPORTER");
    let nats = match &transporter {
        Some(t) if !t.starts_with("monolith+") => {
            eprintln!("Error: invalid transporter: {t}");
            util::log(&format!("Error: invalid transporter: {t}"));
            return 1;
        }
        Some(t) => util::url_hostport(t.trim_start_matches("monolith+"), 4222),
        None => None,
    };
    let mongo_url = env("MONGO_URL").unwrap_or_else(|| "mongodb://mongo:27017/rocketchat".into());
    let mongo = util::url_hostport(&mongo_url, 27017);
    let port: u16 = env("PORT").and_then(|p| p.parse().ok()).unwrap_or(3000);
    let bind_ip = env("BIND_IP").unwrap_or_else(|| "0.0.0.0".into());
    let instance = env("INSTANCE_IP").unwrap_or_else(|| bind_ip.clone());
    let boot = Duration::from_secs_f64(
        env("STANDIN_BOOT_SECONDS").and_then(|s| s.parse::<f64>().ok()).unwrap_or(3.0).max(0.0),
    );
    let root_url = env("ROOT_URL").unwrap_or_else(|| format!("http://localhost:{port}"));
    // Process-local, read before the setting (collectMetrics.ts: `process.env.PROMETHEUS_PORT ||
    // settings.get('Prometheus_Port')`).
    let process_metrics_port: Option<u16> = env("PROMETHEUS_PORT").and_then(|p| p.parse().ok());
    let overwrites: Vec<(String, Value)> = std::env::vars()
        .filter(|(_, v)| !v.is_empty())
        .filter_map(|(k, v)| k.strip_prefix("OVERWRITE_SETTING_").map(|id| (id.to_string(), setting_value(&v))))
        .collect();

    let listeners = match http::bind(&[format!("{bind_ip}:{port}")]) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("Error: cannot listen on {bind_ip}:{port}: {e}");
            return 1;
        }
    };
    let started = Instant::now();
    let major_minor = version.splitn(3, '.').take(2).collect::<Vec<_>>().join(".");

    let line = "+--------------------------------------------------+";
    for l in [
        line.to_string(),
        "|                  SERVER RUNNING                  |".to_string(),
        line.to_string(),
        format!("|  Rocket.Chat Version: {version} (lab stand-in{})", if broken { ", BROKEN: never ready" } else { "" }),
        format!("|       Process Port: {port}"),
        format!("|           Site URL: {root_url}"),
        format!("|          Instance: {instance}:{port}"),
        format!("|          MongoDB: {}", mongo.clone().unwrap_or_else(|| "?".into())),
        // Credentials are never logged (user info shown as `***`).
        format!("|        Transporter: {}", transporter.as_deref().map(util::redact_userinfo).unwrap_or_else(|| "(TCP, none set)".into())),
        line.to_string(),
    ] {
        util::log(&l);
    }

    let mongo_auth = util::url_credentials(&mongo_url).map(|(user, pwd)| {
        let source = mongo_url
            .split_once('?')
            .and_then(|(_, q)| q.split('&').find_map(|kv| kv.strip_prefix("authSource=")))
            .unwrap_or("admin");
        serde_json::json!({"user": user, "pwd": pwd, "db": util::percent_decode(source)})
    });
    let nats_auth = transporter.as_deref().and_then(util::url_credentials);
    let mongo_db = url_database(&mongo_url);
    if let Some(addr) = mongo.clone() {
        let settings = Settings { addr, auth: mongo_auth.clone(), db: mongo_db.clone() };
        let metrics = Metrics { bind_ip: bind_ip.clone(), process_port: process_metrics_port, version: version.clone(), site: root_url.clone() };
        std::thread::spawn(move || metrics.start(&settings, &overwrites));
    }
    let ready = move || -> (bool, &'static str) {
        let booted = started.elapsed() >= boot;
        let mongo_ok = mongo.as_deref().map(|m| mongo_accepts(m, mongo_auth.as_ref(), &mongo_db)).unwrap_or(false);
        let nats_ok = nats.as_deref().map(|n| nats_accepts(n, nats_auth.as_ref())).unwrap_or(true);
        let ok = booted && mongo_ok && nats_ok && !broken;
        (ok, if ok { r#"{"status":"ok"}"# } else { r#"{"status":"unavailable"}"# })
    };
    // Load the real /readyz and /livez (7.11+) refuse on: one heap or event-loop sample over
    // its threshold answers 503 (apps/meteor/server/routes/health.ts). With
    // STANDIN_READYZ_PRESSURE_EVERY=N, every Nth call of a ready instance is such a sample.
    let pressure_every: u64 = env("STANDIN_READYZ_PRESSURE_EVERY").and_then(|n| n.parse().ok()).unwrap_or(0);
    let probes = std::sync::atomic::AtomicU64::new(0);
    let v = version.clone();
    let handler: Arc<http::Handler> = Arc::new(move |r: &Request| match r.path.as_str() {
        "/health" => Response::json(200, r#"{"status":"ok"}"#),
        "/livez" | "/readyz" => {
            let (ok, body) = ready();
            let call = probes.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            if ok && pressure_every > 0 && call % pressure_every == 0 {
                return Response::json(503, r#"{"status":"error","reason":"heap usage above 85%"}"#);
            }
            Response::json(if ok { 200 } else { 503 }, body)
        }
        "/api/info" => Response::json(200, serde_json::json!({"version": major_minor, "success": true}).to_string()),
        "/" => Response::text(
            200,
            format!("Rocket.Chat stand-in {v} instance {instance}:{port}\n"),
        ),
        _ => Response::json(404, r#"{"success":false,"error":"not found"}"#),
    });
    http::serve(listeners, handler, true);
    0
}

/// Whether MongoDB at `addr` answers a command that needs authentication (`listCollections`)
/// with MONGO_URL's credentials, as the real server's first query would.
fn mongo_accepts(addr: &str, auth: Option<&serde_json::Value>, db: &str) -> bool {
    matches!(mongo_command(addr, auth, db, bson::doc! {"listCollections": 1, "nameOnly": true}), Some(Ok(_)))
}

/// One command to MongoDB over the wire protocol, after SCRAM with MONGO_URL's credentials
/// (`{user, pwd, db}`): the reply, the server's error, or `None` when nothing answered.
fn mongo_command(addr: &str, auth: Option<&Value>, db: &str, command: bson::Document) -> Option<Result<bson::Document, String>> {
    use crate::wire::{Client, Failure};
    let mut c = Client::connect(addr, Duration::from_millis(800)).ok()?;
    if let Some(a) = auth {
        let (user, pwd, source) = (a["user"].as_str().unwrap_or(""), a["pwd"].as_str().unwrap_or(""), a["db"].as_str().unwrap_or("admin"));
        match c.authenticate(source, user, pwd) {
            Ok(()) => {}
            Err(Failure::Network(_)) => return None,
            Err(e) => return Some(Err(e.to_string())),
        }
    }
    match c.command(db, command) {
        Ok(reply) => Some(Ok(reply)),
        Err(Failure::Network(_)) => None,
        Err(e) => Some(Err(e.to_string())),
    }
}

/// The database MONGO_URL names (its path), `test` when none, as the driver defaults.
fn url_database(url: &str) -> String {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let path = rest.split_once('/').map(|(_, p)| p).unwrap_or("");
    let db = path.split('?').next().unwrap_or("");
    if db.is_empty() { "test".into() } else { util::percent_decode(db) }
}

/// An OVERWRITE_SETTING_ value as the setting's type would take it: booleans and integers
/// are stored as such, everything else as a string.
fn setting_value(text: &str) -> Value {
    match text {
        "true" => json!(true),
        "false" => json!(false),
        _ => text.parse::<i64>().map(|n| json!(n)).unwrap_or_else(|_| json!(text)),
    }
}

/// The workspace's settings: the `rocketchat_settings` collection of MONGO_URL's database,
/// shared by every instance, as in the real server.
struct Settings {
    addr: String,
    auth: Option<Value>,
    db: String,
}

impl Settings {
    fn command(&self, command: bson::Document) -> Result<bson::Document, String> {
        mongo_command(&self.addr, self.auth.as_ref(), &self.db, command).ok_or("MongoDB does not answer")?
    }

    fn get(&self, id: &str) -> Result<Option<Value>, String> {
        let reply = self.command(bson::doc! {"find": "rocketchat_settings", "filter": {"_id": id}, "limit": 1, "singleBatch": true})?;
        let first = reply.get_document("cursor").ok().and_then(|c| c.get_array("firstBatch").ok()).and_then(|b| b.first().cloned());
        Ok(first.and_then(|d| d.as_document().and_then(|d| d.get("value").cloned())).map(|v| v.into_relaxed_extjson()))
    }

    fn save(&self, id: &str, value: &Value) -> Result<(), String> {
        let value = bson::to_bson(value).map_err(|e| e.to_string())?;
        self.command(bson::doc! {"update": "rocketchat_settings", "updates": [{"q": {"_id": id}, "u": {"$set": {"value": value}}, "upsert": true}]})
            .map(|_| ())
    }

    /// What SettingsRegistry.add() does for each setting at start: an overwritten value is
    /// saved to the database when it differs from the stored one; a setting stored nowhere is
    /// inserted with its default; a stored one is otherwise left as it is.
    fn register(&self, defaults: &[(&str, Value)], overwrites: &[(String, Value)]) -> Result<(), String> {
        for (id, value) in overwrites {
            if self.get(id)?.as_ref() != Some(value) {
                self.save(id, value)?;
            }
        }
        for (id, default) in defaults {
            if !overwrites.iter().any(|(o, _)| o == id) && self.get(id)?.is_none() {
                self.save(id, default)?;
            }
        }
        Ok(())
    }
}

/// The metrics server: configured once, after the settings are registered, and never moved.
struct Metrics {
    bind_ip: String,
    process_port: Option<u16>,
    version: String,
    site: String,
}

impl Metrics {
    fn start(self, settings: &Settings, overwrites: &[(String, Value)]) {
        let defaults = [("Prometheus_Enabled", json!(false)), ("Prometheus_Port", json!(9458))];
        // The real server does not get this far without MongoDB either. Each new reason to
        // wait is logged once.
        let mut said = String::new();
        let mut wait = |e: String| {
            if e != said {
                util::log(&format!("settings: waiting for MongoDB ({e})"));
                said = e;
            }
            std::thread::sleep(Duration::from_millis(500));
        };
        while let Err(e) = settings.register(&defaults, overwrites) {
            wait(e);
        }
        std::thread::sleep(SETTINGS_SETTLE);
        let (enabled, stored_port) = loop {
            match (settings.get("Prometheus_Enabled"), settings.get("Prometheus_Port")) {
                (Ok(enabled), Ok(port)) => break (enabled, port),
                (Err(e), _) | (_, Err(e)) => wait(e),
            }
        };
        if enabled != Some(json!(true)) {
            util::log("Prometheus metrics disabled (setting Prometheus_Enabled)");
            return;
        }
        let (port, from) = match (self.process_port, stored_port.as_ref().and_then(Value::as_u64)) {
            (Some(port), _) => (port, "PROMETHEUS_PORT".to_string()),
            (None, Some(port)) => (port as u16, format!("setting Prometheus_Port, stored {port}")),
            (None, None) => (9458, "default".to_string()),
        };
        let bind_ip = self.bind_ip.clone();
        let listeners = match http::bind(&[format!("{bind_ip}:{port}")]) {
            Ok(listeners) => listeners,
            Err(e) => {
                // Node's listen error, left unhandled by collectMetrics.ts: no metrics from
                // this instance; the rest of the server runs on.
                util::log(&format!("Error: listen EADDRINUSE: address already in use {bind_ip}:{port} ({e}; port from {from})"));
                return;
            }
        };
        util::log(&format!("Prometheus metrics on {bind_ip}:{port}/metrics (port from {from})"));
        let (v, site) = (self.version, self.site);
        let handler: Arc<http::Handler> = Arc::new(move |r: &Request| match r.path.as_str() {
            "/metrics" => Response::text(
                200,
                format!(
                    "# HELP rocketchat_info Rocket.Chat info\n# TYPE rocketchat_info gauge\nrocketchat_info{{version=\"{v}\",unique_id=\"lab-standin\",site_url=\"{site}\"}} 1\n# HELP rocketchat_version Rocket.Chat version\n# TYPE rocketchat_version gauge\nrocketchat_version{{version=\"{v}\"}} 1\n"
                ),
            ),
            "/" => Response::text(200, "<html><body><a href=\"/metrics\">metrics</a></body></html>"),
            _ => Response::text(404, "not found"),
        });
        http::serve(listeners, handler, false);
    }
}

/// Whether nats-server at `addr` accepts a client: after its `INFO` line, a verbose `CONNECT`
/// (with TRANSPORTER's user and password when it has them) must be answered `+OK`, not
/// `-ERR 'Authorization Violation'`.
fn nats_accepts(addr: &str, auth: Option<&(String, String)>) -> bool {
    use std::io::{BufRead, BufReader, Write};
    let attempt = || -> Option<bool> {
        let sock = addr.to_socket_addrs_first()?;
        let s = std::net::TcpStream::connect_timeout(&sock, Duration::from_millis(800)).ok()?;
        s.set_read_timeout(Some(Duration::from_millis(2000))).ok()?;
        let mut w = s.try_clone().ok()?;
        let mut r = BufReader::new(s);
        let mut line = String::new();
        r.read_line(&mut line).ok()?;
        if !line.starts_with("INFO ") {
            return Some(false);
        }
        let mut connect = serde_json::json!({"verbose": true, "pedantic": false, "name": "rocketchat-standin", "lang": "rust", "version": "0"});
        if let Some((user, pass)) = auth {
            connect["user"] = serde_json::json!(user);
            connect["pass"] = serde_json::json!(pass);
        }
        w.write_all(format!("CONNECT {connect}\r\nPING\r\n").as_bytes()).ok()?;
        line.clear();
        r.read_line(&mut line).ok()?;
        Some(line.starts_with("+OK"))
    };
    attempt().unwrap_or(false)
}

trait FirstAddr {
    fn to_socket_addrs_first(&self) -> Option<std::net::SocketAddr>;
}

impl FirstAddr for str {
    fn to_socket_addrs_first(&self) -> Option<std::net::SocketAddr> {
        std::net::ToSocketAddrs::to_socket_addrs(self).ok()?.next()
    }
}

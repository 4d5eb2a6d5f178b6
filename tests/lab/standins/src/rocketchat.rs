//! Rocket.Chat stand-in. See tests/lab/README.md for the contract.
use crate::http::{self, Request, Response};
use crate::util;
use std::sync::Arc;
use std::time::{Duration, Instant};

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
    let metrics_on = env("OVERWRITE_SETTING_Prometheus_Enabled").map(|v| v == "true").unwrap_or(false);
    let metrics_port: u16 = env("OVERWRITE_SETTING_Prometheus_Port").and_then(|p| p.parse().ok()).unwrap_or(9458);

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

    if metrics_on {
        let v = version.clone();
        let site = root_url.clone();
        match http::bind(&[format!("{bind_ip}:{metrics_port}")]) {
            Ok(ls) => {
                util::log(&format!("Prometheus metrics on {bind_ip}:{metrics_port}/metrics"));
                let h: Arc<http::Handler> = Arc::new(move |r: &Request| match r.path.as_str() {
                    "/metrics" => Response::text(
                        200,
                        format!(
                            "# HELP rocketchat_info Rocket.Chat info\n# TYPE rocketchat_info gauge\nrocketchat_info{{version=\"{v}\",unique_id=\"lab-standin\",site_url=\"{site}\"}} 1\n# HELP rocketchat_version Rocket.Chat version\n# TYPE rocketchat_version gauge\nrocketchat_version{{version=\"{v}\"}} 1\n"
                        ),
                    ),
                    "/" => Response::text(200, "<html><body><a href=\"/metrics\">metrics</a></body></html>"),
                    _ => Response::text(404, "not found"),
                });
                std::thread::spawn(move || http::serve(ls, h, false));
            }
            Err(e) => {
                eprintln!("Error: cannot listen on {bind_ip}:{metrics_port} for metrics: {e}");
                return 1;
            }
        }
    }

    let mongo_auth = util::url_credentials(&mongo_url).map(|(user, pwd)| {
        let source = mongo_url
            .split_once('?')
            .and_then(|(_, q)| q.split('&').find_map(|kv| kv.strip_prefix("authSource=")))
            .unwrap_or("admin");
        serde_json::json!({"user": user, "pwd": pwd, "db": util::percent_decode(source)})
    });
    let nats_auth = transporter.as_deref().and_then(util::url_credentials);
    let ready = move || -> (bool, &'static str) {
        let booted = started.elapsed() >= boot;
        let mongo_ok = mongo.as_deref().map(|m| mongo_accepts(m, mongo_auth.as_ref())).unwrap_or(false);
        let nats_ok = nats.as_deref().map(|n| nats_accepts(n, nats_auth.as_ref())).unwrap_or(true);
        let ok = booted && mongo_ok && nats_ok && !broken;
        (ok, if ok { r#"{"status":"ok"}"# } else { r#"{"status":"unavailable"}"# })
    };
    let v = version.clone();
    let handler: Arc<http::Handler> = Arc::new(move |r: &Request| match r.path.as_str() {
        "/health" => Response::json(200, r#"{"status":"ok"}"#),
        "/livez" | "/readyz" => {
            let (ok, body) = ready();
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

/// Whether the stand-in mongod at `addr` answers a command that needs authentication
/// (`listCollections`) with MONGO_URL's credentials, as the real server's first query would.
/// A mongod stand-in older than authentication (CommandNotFound) counts as accepting.
fn mongo_accepts(addr: &str, auth: Option<&serde_json::Value>) -> bool {
    use std::io::{BufRead, BufReader, Write};
    let attempt = || -> Option<bool> {
        let sock = addr.to_socket_addrs_first()?;
        let mut s = std::net::TcpStream::connect_timeout(&sock, Duration::from_millis(800)).ok()?;
        s.set_read_timeout(Some(Duration::from_millis(2000))).ok()?;
        let mut request = serde_json::json!({"cmd": {"listCollections": 1, "$db": "rocketchat"}});
        if let Some(auth) = auth {
            request["auth"] = auth.clone();
        }
        s.write_all(format!("{request}\n").as_bytes()).ok()?;
        let mut line = String::new();
        BufReader::new(s).read_line(&mut line).ok()?;
        let reply: serde_json::Value = serde_json::from_str(&line).ok()?;
        Some(reply["ok"] == serde_json::json!(1) || reply["code"] == serde_json::json!(59))
    };
    attempt().unwrap_or(false)
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

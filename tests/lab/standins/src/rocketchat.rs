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
        format!("|        Transporter: {}", transporter.clone().unwrap_or_else(|| "(TCP, none set)".into())),
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

    let ready = move || -> (bool, &'static str) {
        let booted = started.elapsed() >= boot;
        let mongo_ok = mongo.as_deref().map(|m| util::tcp_open(m, Duration::from_millis(800))).unwrap_or(false);
        let nats_ok = nats.as_deref().map(|n| util::tcp_open(n, Duration::from_millis(800))).unwrap_or(true);
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

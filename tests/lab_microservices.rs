//! `[microservices] enabled = true` against the lab (issue 18): `up` runs the monolith in
//! microservices mode and every service on the app hosts; DDP over WebSocket reaches a
//! ddp-streamer through Traefik while `GET /` reaches an instance; `status --json` lists every
//! service container healthy; containers sharing a host do not collide on moleculer's node ID;
//! `upgrade` under HTTP and WebSocket (DDP) load through Traefik fails no request, refuses no
//! handshake, cuts no session without a close frame and moves every container to the new
//! release; switching the running fleet monolith -> microservices -> monolith with `up`
//! fails no request either. One fleet for the whole file.

mod lab_support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use lab_support::{eventually, json, rcfleet, text, write_inventory, Lab, Load};

#[test]
fn microservices_run_behind_traefik_and_are_healthy() {
    let Some(lab) = lab_support::lab() else { return };
    lab.reset_fleet();
    let dir = tempfile::tempdir().unwrap();
    let inventory = microservices_inventory(&lab, dir.path());
    let inventory = inventory.to_str().unwrap();

    let started = Instant::now();
    let up = rcfleet(&["up", "-i", inventory, "--json"]);
    assert!(up.status.success(), "up failed:\n{}", text(&up));
    eprintln!("up with microservices from nothing: {:.1} s", started.elapsed().as_secs_f64());

    // DDP through Traefik: /websocket is routed to a ddp-streamer, which answers `connect`.
    let (status, frames) = ddp_connect(&lab).expect("WebSocket through Traefik");
    assert_eq!(status, 101, "upgrade refused: {frames:?}");
    assert!(frames.iter().any(|f| f.contains("\"server_id\":\"0\"")), "{frames:?}");
    assert!(frames.iter().any(|f| f.contains("\"msg\":\"connected\"")), "no DDP connected reply: {frames:?}");

    // Everything else goes to a monolith instance.
    let (code, body) = lab.get_through_traefik("/").expect("GET / through Traefik");
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("Rocket.Chat stand-in 8.0.0 instance"), "GET / not answered by an instance: {body}");

    // Every service container healthy, on the release, scraped by Prometheus.
    let mut last = serde_json::Value::Null;
    let all_up = eventually(90, || {
        let output = rcfleet(&["status", "-i", inventory, "--json"]);
        last = json(&output);
        let list = last["microservices"].as_array().cloned().unwrap_or_default();
        !list.is_empty() && list.iter().all(|m| m["healthy"] == true && m["prometheus"] == "up")
    });
    assert!(all_up, "microservices not all healthy and scraped: {:#}", last["microservices"]);
    let list = last["microservices"].as_array().unwrap();
    let services: std::collections::BTreeSet<&str> = list.iter().map(|m| m["service"].as_str().unwrap()).collect();
    assert_eq!(
        services.into_iter().collect::<Vec<_>>(),
        ["account", "authorization", "ddp-streamer", "omnichannel-transcript", "presence", "queue-worker"]
    );
    assert_eq!(list.iter().filter(|m| m["service"] == "ddp-streamer").count(), 3, "one ddp-streamer per app host");
    for m in list {
        assert_eq!(m["version"], "8.0.0", "{m}");
    }
    assert_eq!(last["healthy"], true, "status problems: {:#}", last["problems"]);

    // Two monoliths and several services per app host, all on one bus: no node-ID conflict.
    for host in ["app1", "app2", "app3"] {
        let names = lab.run(
            host,
            "for c in $(docker ps -q --filter label=io.rcfleet.fleet=lab); do docker inspect --format '{{.Config.Hostname}}' $c; done",
        );
        let names: Vec<&str> = names.lines().collect();
        let distinct: std::collections::BTreeSet<&&str> = names.iter().collect();
        assert!(names.len() >= 4, "{host}: expected two instances and at least two services, got {names:?}");
        assert_eq!(distinct.len(), names.len(), "{host}: containers share a host name: {names:?}");
        let logs = lab.run(host, "for c in $(docker ps -aq --filter label=io.rcfleet.fleet=lab); do docker logs $c 2>&1; done");
        assert!(!logs.contains("nodeID conflict"), "{host}: a node-ID conflict was logged");
        let stopped = lab.run(host, "docker ps -aq --filter label=io.rcfleet.fleet=lab --filter status=exited | wc -l");
        assert_eq!(stopped.trim(), "0", "{host}: a container stopped");
    }

    // Converged: a second `up` changes nothing.
    let second = rcfleet(&["up", "-i", inventory, "--json"]);
    assert!(second.status.success(), "second up failed:\n{}", text(&second));
    for host in json(&second)["hosts"].as_array().unwrap() {
        assert_eq!(host["unchanged"], true, "host changed on a converged up: {host}");
    }

    // One more ddp-streamer, on app1: started, healthy, in Traefik's /websocket route, nothing
    // else restarted; then taken away again.
    let running_before = running_containers(&lab);
    let started = Instant::now();
    let added = rcfleet(&["add-instance", "-i", inventory, "--service", "ddp-streamer", "--host", "app1", "--json"]);
    assert!(added.status.success(), "add-instance --service failed:\n{}", text(&added));
    eprintln!("add-instance --service ddp-streamer: {:.1} s", started.elapsed().as_secs_f64());
    let added = json(&added);
    assert_eq!(added["added"][0]["name"], "ddp-streamer-3", "{added:#}");
    assert_eq!(added["added"][0]["host"], "app1", "{added:#}");
    assert_eq!(added["ddp_streamers_in_traefik"].as_object().map(|m| m.len()), Some(4), "{added:#}");
    let running_after = running_containers(&lab);
    assert!(running_before.is_subset(&running_after), "a container was restarted by add-instance --service");
    assert_eq!(running_after.len(), running_before.len() + 1);
    let edited = std::fs::read_to_string(inventory).unwrap();
    assert!(edited.contains("ddp_streamers = 4"), "{edited}");
    let status = json(&rcfleet(&["status", "-i", inventory, "--json"]));
    let streamers = status["microservices"].as_array().unwrap().iter().filter(|m| m["service"] == "ddp-streamer").count();
    assert_eq!(streamers, 4, "{:#}", status["microservices"]);

    let started = Instant::now();
    let removed = rcfleet(&["remove-instance", "-i", inventory, "--service", "ddp-streamer", "--json"]);
    eprintln!("remove-instance --service ddp-streamer: {:.1} s", started.elapsed().as_secs_f64());
    assert!(removed.status.success(), "remove-instance --service failed:\n{}", text(&removed));
    assert_eq!(json(&removed)["removed"][0]["name"], "ddp-streamer-3");
    assert_eq!(running_containers(&lab), running_before, "remove-instance --service took away exactly the new one");
    let (status, frames) = ddp_connect(&lab).expect("WebSocket through Traefik after removing a ddp-streamer");
    assert!(status == 101 && frames.iter().any(|f| f.contains("\"msg\":\"connected\"")), "{status} {frames:?}");

    let unknown = rcfleet(&["add-instance", "-i", inventory, "--service", "ddp-streamers"]);
    assert_eq!(unknown.status.code(), Some(2), "{}", text(&unknown));
    let said = text(&unknown);
    assert!(said.contains(inventory) && said.contains("ddp-streamer, queue-worker"), "{said}");

    // A service taken out of the inventory: `up` stops and removes its container; status no
    // longer lists it.
    let edited = std::fs::read_to_string(inventory).unwrap().replace(
        "[microservices]\nenabled = true\n",
        "[microservices]\nenabled = true\nservices = [\"account\", \"authorization\", \"presence\", \"ddp-streamer\", \"queue-worker\"]\n",
    );
    std::fs::write(inventory, edited).unwrap();
    let started = Instant::now();
    let up = rcfleet(&["up", "-i", inventory, "--json"]);
    eprintln!("up removing omnichannel-transcript: {:.1} s", started.elapsed().as_secs_f64());
    assert!(up.status.success(), "up without omnichannel-transcript failed:\n{}", text(&up));
    for host in ["app1", "app2", "app3"] {
        let left = lab.run(host, "docker ps -aq --filter label=io.rcfleet.fleet=lab --filter label=io.rcfleet.unit=omnichannel-transcript-0 | wc -l");
        assert_eq!(left.trim(), "0", "{host}: omnichannel-transcript-0 is still there");
    }
    assert_eq!(running_containers(&lab).len(), running_before.len() - 1, "exactly omnichannel-transcript-0 went");
    let status = json(&rcfleet(&["status", "-i", inventory, "--json"]));
    assert!(status["microservices"].as_array().unwrap().iter().all(|m| m["service"] != "omnichannel-transcript"));

    // `upgrade` under load through Traefik: the instances roll through the engine, the services
    // follow; no request fails and every container ends on the new tag. Start-first: old and new
    // instances share the bus for a while (each needs a node ID of its own).
    // WebSocket clients through Traefik at the same time: the ddp-streamers move one at a time,
    // each out of the /websocket route and drained first, so no handshake fails and no session
    // is cut without a close frame.
    let load = Load::start(&lab);
    let sockets = DdpLoad::start(&lab, 4);
    let started = Instant::now();
    let upgrade = rcfleet(&["upgrade", "-i", inventory, "--release", "8.1.0", "--skip-backup", "--strategy", "start-first"]);
    let (ok, failed, errors) = load.finish();
    let ddp = sockets.finish();
    assert!(upgrade.status.success(), "upgrade failed:\n{}", text(&upgrade));
    eprintln!(
        "WebSocket load during the upgrade: {} DDP sessions completed ({} pings answered), {} closed by the server, {} \
         handshakes failed, {} cut without a close frame",
        ddp.completed,
        ddp.pongs,
        ddp.closed_by_server.len(),
        ddp.handshake_failures,
        ddp.resets
    );
    assert_eq!(
        (ddp.handshake_failures, ddp.resets),
        (0, 0),
        "WebSocket handshakes failed or sessions were cut without a close frame during the upgrade: {:?}\n{}",
        ddp.failures,
        text(&upgrade)
    );
    assert!(ddp.completed > 20, "the WebSocket load hardly ran ({} sessions)", ddp.completed);
    let said = text(&upgrade);
    for line in said.lines().skip_while(|l| !l.starts_with("Mixed versions:")).take(6) {
        eprintln!("  {line}");
    }
    assert!(said.contains("Mixed versions: 8.0.0 and 8.1.0 ran side by side for"), "{said}");
    for n in 0..3 {
        assert!(said.contains(&format!("  ddp-streamer-{n} ")), "ddp-streamer-{n} not moved one at a time:\n{said}");
    }
    eprintln!(
        "upgrade to 8.1.0 (rolling) with microservices under load: {:.1} s, {ok} requests answered, {failed} failed",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(failed, 0, "{failed} of {} requests failed during the upgrade: {errors:?}\n{}", ok + failed, text(&upgrade));
    assert!(ok > 50, "the load generator hardly ran ({ok} requests)");
    let images = rocketchat_images(&lab);
    assert!(images.iter().any(|(unit, _)| unit.contains("ddp-streamer")), "{images:?}");
    for (unit, image) in &images {
        assert!(image.ends_with(":8.1.0"), "{unit} still runs {image} after the upgrade");
    }
    let status = json(&rcfleet(&["status", "-i", inventory, "--json"]));
    for m in status["microservices"].as_array().unwrap() {
        assert_eq!((&m["version"], &m["healthy"]), (&"8.1.0".into(), &true.into()), "{m}");
    }
    let (status, frames) = ddp_connect(&lab).expect("WebSocket through Traefik after the upgrade");
    assert!(status == 101 && frames.iter().any(|f| f.contains("\"msg\":\"connected\"")), "{status} {frames:?}");

    // Switching a running fleet with `up`, under load the whole time: microservices off
    // (services leave, the instances roll back to the plain monolith), on again, and off again,
    // so that monolith -> microservices -> monolith is walked from a running monolith.
    for (step, enabled) in [("microservices -> monolith", false), ("monolith -> microservices", true), ("microservices -> monolith", false)] {
        switch_microservices(inventory, enabled);
        let load = Load::start(&lab);
        let started = Instant::now();
        let up = rcfleet(&["up", "-i", inventory]);
        let (ok, failed, errors) = load.finish();
        assert!(up.status.success(), "up switching {step} failed:\n{}", text(&up));
        eprintln!("up switching {step} under load: {:.1} s, {ok} requests answered, {failed} failed", started.elapsed().as_secs_f64());
        assert_eq!(failed, 0, "{failed} of {} requests failed switching {step}: {errors:?}\n{}", ok + failed, text(&up));
        assert!(ok > 50, "the load generator hardly ran ({ok} requests)");
        let images = rocketchat_images(&lab);
        let services = images.iter().filter(|(_, image)| !image.contains("/rocket.chat:")).count();
        let instances = images.len() - services;
        assert_eq!(instances, 6, "{step}: {images:?}");
        assert!(images.iter().all(|(_, image)| image.ends_with(":8.1.0")), "{step}: {images:?}");
        // Prometheus scrapes a new service container only at its next interval.
        let mut status = serde_json::Value::Null;
        let healthy = eventually(90, || {
            status = json(&rcfleet(&["status", "-i", inventory, "--json"]));
            status["healthy"] == true
        });
        assert!(healthy, "{step}: status problems: {:#}", status["problems"]);
        if enabled {
            assert!(services >= 5, "{step}: services missing: {images:?}");
            let (code, frames) = ddp_connect(&lab).expect("WebSocket through Traefik in microservices mode");
            assert!(code == 101 && frames.iter().any(|f| f.contains("\"msg\":\"connected\"")), "{code} {frames:?}");
        } else {
            assert_eq!(services, 0, "{step}: service containers left: {images:?}");
            let listed = status["microservices"].as_array().map(Vec::len).unwrap_or(0);
            assert_eq!(listed, 0, "{step}: {:#}", status["microservices"]);
        }
    }
}

/// Every running container of the lab fleet on the app hosts, by full ID: a recreated
/// container has a new one.
fn running_containers(lab: &Lab) -> std::collections::BTreeSet<String> {
    ["app1", "app2", "app3"]
        .iter()
        .flat_map(|host| {
            lab.run(host, "docker ps -q --no-trunc --filter label=io.rcfleet.fleet=lab").lines().map(str::to_string).collect::<Vec<_>>()
        })
        .collect()
}

/// `[microservices] enabled` set to `enabled` in the inventory, the rest of the table kept.
fn switch_microservices(inventory: &str, enabled: bool) {
    let text = std::fs::read_to_string(inventory).unwrap();
    let (from, to) = if enabled { ("enabled = false", "enabled = true") } else { ("enabled = true", "enabled = false") };
    let table = text.find("[microservices]\n").expect("a [microservices] table");
    let at = table + text[table..].find(from).expect("the enabled key");
    std::fs::write(inventory, format!("{}{to}{}", &text[..at], &text[at + from.len()..])).unwrap();
}

/// `(host/unit, image)` of every running Rocket.Chat container (instances and services) on the
/// app hosts.
fn rocketchat_images(lab: &Lab) -> Vec<(String, String)> {
    ["app1", "app2", "app3"]
        .iter()
        .flat_map(|host| {
            lab.run(host, "docker ps --filter label=io.rcfleet.fleet=lab --format '{{.Label \"io.rcfleet.unit\"}} {{.Image}}'")
                .lines()
                .filter_map(|line| line.split_once(' '))
                .filter(|(_, image)| image.contains("/rocketchat/"))
                .map(|(unit, image)| (format!("{host}/{unit}"), image.to_string()))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The lab's inventory with a licence carrying `scalability` and every service from the lab's
/// registry.
fn microservices_inventory(lab: &Lab, dir: &std::path::Path) -> std::path::PathBuf {
    let license = dir.join("license");
    std::fs::write(&license, "lab-licence modules=scalability").unwrap();
    let original = std::fs::read_to_string(lab.inventory()).unwrap();
    let registry = original
        .lines()
        .find_map(|line| line.strip_prefix("rocketchat = { repository = \""))
        .and_then(|rest| rest.split_once("/rocketchat/rocket.chat"))
        .map(|(registry, _)| registry.to_string())
        .expect("the lab's Rocket.Chat repository");
    let mut text = String::new();
    for line in original.lines() {
        // The upgrade's canary runs the migrations before it is ready; on a busy machine that
        // can take longer than the lab's 60 s.
        let line = if line.starts_with("readiness_timeout_seconds") { "readiness_timeout_seconds = 240" } else { line };
        text.push_str(line);
        text.push('\n');
        if line.starts_with("release = ") {
            text.push_str(&format!("license = {{ file = \"{}\" }}\n", license.display()));
        }
    }
    text.push_str(&format!("\n[microservices]\nenabled = true\nrepository = \"{registry}/rocketchat\"\n"));
    write_inventory(dir, &text)
}

/// A WebSocket handshake to `/websocket` through Traefik, then DDP's `connect`: the status of
/// the upgrade and the text frames read (the server's greeting, then its reply).
fn ddp_connect(lab: &Lab) -> std::io::Result<(u16, Vec<String>)> {
    let address = format!("{}:80", lab.addr("lb"));
    let mut stream = TcpStream::connect_timeout(&address.parse().unwrap(), Duration::from_secs(3))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET /websocket HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        lab.var("LAB_DOMAIN")
    )?;
    let head = read_head(&mut stream)?;
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    if status != 101 {
        return Ok((status, vec![head]));
    }
    let mut frames = vec![read_text_frame(&mut stream)?];
    send_text_frame(&mut stream, r#"{"msg":"connect","version":"1","support":["1"]}"#)?;
    frames.push(read_text_frame(&mut stream)?);
    Ok((status, frames))
}

/// The response head, up to the blank line, read byte by byte so no frame byte is consumed.
fn read_head(stream: &mut TcpStream) -> std::io::Result<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte)?;
        head.push(byte[0]);
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

/// One unfragmented, unmasked server frame (RFC 6455 5.2), as text.
fn read_text_frame(stream: &mut TcpStream) -> std::io::Result<String> {
    read_frame(stream).map(|(_, payload)| String::from_utf8_lossy(&payload).into_owned())
}

/// One unfragmented, unmasked server frame (RFC 6455 5.2): its opcode and payload.
fn read_frame(stream: &mut TcpStream) -> std::io::Result<(u8, Vec<u8>)> {
    let mut header = [0u8; 2];
    stream.read_exact(&mut header)?;
    let length = match header[1] & 0x7f {
        126 => {
            let mut extended = [0u8; 2];
            stream.read_exact(&mut extended)?;
            u16::from_be_bytes(extended) as usize
        }
        127 => {
            let mut extended = [0u8; 8];
            stream.read_exact(&mut extended)?;
            u64::from_be_bytes(extended) as usize
        }
        short => short as usize,
    };
    let mut payload = vec![0u8; length];
    stream.read_exact(&mut payload)?;
    Ok((header[0] & 0x0f, payload))
}

/// One masked text frame, as a client must send (RFC 6455 5.3); `text` under 126 bytes.
fn send_text_frame(stream: &mut TcpStream, text: &str) -> std::io::Result<()> {
    send_frame(stream, OPCODE_TEXT, text.as_bytes())
}

const OPCODE_TEXT: u8 = 0x1;
const OPCODE_CLOSE: u8 = 0x8;

/// One masked, final frame of `opcode`; `payload` under 126 bytes.
fn send_frame(stream: &mut TcpStream, opcode: u8, payload: &[u8]) -> std::io::Result<()> {
    assert!(payload.len() < 126);
    let mask = [0x12u8, 0x34, 0x56, 0x78];
    let mut frame = vec![0x80 | opcode, 0x80 | payload.len() as u8];
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    stream.write_all(&frame)
}

/// What the WebSocket load saw.
#[derive(Default)]
struct DdpCounts {
    /// Sessions that connected, kept up with DDP pings and were closed by the client.
    completed: usize,
    pongs: usize,
    /// Close codes of the sessions the server closed with a close frame (clients reconnect).
    closed_by_server: Vec<u16>,
    /// No 101, or no DDP `connected` after `connect`.
    handshake_failures: usize,
    /// Sessions that ended without a close frame (EOF, reset, timeout).
    resets: usize,
    /// The first failures, as seen.
    failures: Vec<String>,
}

/// DDP clients through Traefik's `/websocket`, `clients` in parallel, until stopped: each opens a
/// WebSocket, sends `connect`, expects `connected`, keeps the session with three DDP pings,
/// closes it and starts again, as Rocket.Chat's client reconnects.
struct DdpLoad {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    counts: std::sync::Arc<std::sync::Mutex<DdpCounts>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl DdpLoad {
    fn start(lab: &Lab, clients: usize) -> DdpLoad {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let counts = std::sync::Arc::new(std::sync::Mutex::new(DdpCounts::default()));
        let address = format!("{}:80", lab.addr("lb"));
        let domain = lab.var("LAB_DOMAIN").to_string();
        let threads = (0..clients)
            .map(|_| {
                let (stop, counts, address, domain) = (stop.clone(), counts.clone(), address.clone(), domain.clone());
                std::thread::spawn(move || {
                    // Bounded: at most 10 minutes, whatever happens to the test.
                    let deadline = Instant::now() + Duration::from_secs(600);
                    while !stop.load(std::sync::atomic::Ordering::SeqCst) && Instant::now() < deadline {
                        let end = ddp_session(&address, &domain);
                        let mut counts = counts.lock().unwrap();
                        match end {
                            SessionEnd::Completed { pongs } => {
                                counts.completed += 1;
                                counts.pongs += pongs;
                            }
                            SessionEnd::ClosedByServer(code) => counts.closed_by_server.push(code),
                            SessionEnd::HandshakeFailed(why) => {
                                counts.handshake_failures += 1;
                                counts.note(format!("handshake: {why}"));
                            }
                            SessionEnd::Reset(why) => {
                                counts.resets += 1;
                                counts.note(format!("no close frame: {why}"));
                            }
                        }
                    }
                })
            })
            .collect();
        DdpLoad { stop, counts, threads }
    }

    fn finish(self) -> DdpCounts {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        for thread in self.threads {
            thread.join().unwrap();
        }
        std::mem::take(&mut *self.counts.lock().unwrap())
    }
}

impl DdpCounts {
    fn note(&mut self, failure: String) {
        if self.failures.len() < 10 {
            self.failures.push(failure);
        }
    }
}

enum SessionEnd {
    Completed { pongs: usize },
    ClosedByServer(u16),
    HandshakeFailed(String),
    Reset(String),
}

/// One DDP session through Traefik (see [`DdpLoad`]).
fn ddp_session(address: &str, domain: &str) -> SessionEnd {
    let failed = |what: &str, err: std::io::Error| SessionEnd::HandshakeFailed(format!("{what}: {err}"));
    let mut stream = match TcpStream::connect_timeout(&address.parse().unwrap(), Duration::from_secs(3)) {
        Ok(stream) => stream,
        Err(err) => return failed("connect", err),
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let request = format!(
        "GET /websocket HTTP/1.1\r\nHost: {domain}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    if let Err(err) = stream.write_all(request.as_bytes()) {
        return failed("request", err);
    }
    let head = match read_head(&mut stream) {
        Ok(head) => head,
        Err(err) => return failed("response", err),
    };
    if !head.starts_with("HTTP/1.1 101") {
        return SessionEnd::HandshakeFailed(head.lines().next().unwrap_or_default().to_string());
    }
    // The greeting, then `connected` in reply to `connect`; anything else fails the handshake.
    let connect = r#"{"msg":"connect","version":"1","support":["1"]}"#;
    let reply = read_frame(&mut stream).and_then(|_| send_text_frame(&mut stream, connect)).and_then(|_| read_frame(&mut stream));
    match reply {
        Ok((OPCODE_TEXT, reply)) if String::from_utf8_lossy(&reply).contains(r#""msg":"connected""#) => {}
        Ok((opcode, reply)) => {
            return SessionEnd::HandshakeFailed(format!("no DDP connected: opcode {opcode} {}", String::from_utf8_lossy(&reply)))
        }
        Err(err) => return failed("DDP connect", err),
    }
    let mut pongs = 0;
    for id in 0..3 {
        std::thread::sleep(Duration::from_millis(150));
        let ping = format!(r#"{{"msg":"ping","id":"{id}"}}"#);
        if let Err(err) = send_text_frame(&mut stream, &ping) {
            return SessionEnd::Reset(format!("sending ping {id}: {err}"));
        }
        match read_frame(&mut stream) {
            Ok((OPCODE_TEXT, reply)) if String::from_utf8_lossy(&reply).contains(r#""msg":"pong""#) => pongs += 1,
            Ok((OPCODE_CLOSE, reason)) => {
                return SessionEnd::ClosedByServer(reason.get(..2).map_or(1005, |code| u16::from_be_bytes([code[0], code[1]])))
            }
            Ok((opcode, reply)) => return SessionEnd::Reset(format!("ping {id}: opcode {opcode} {}", String::from_utf8_lossy(&reply))),
            Err(err) => return SessionEnd::Reset(format!("ping {id}: {err}")),
        }
    }
    // The client ends the session: close 1000; the server's close frame answers it.
    let _ = send_frame(&mut stream, OPCODE_CLOSE, &1000u16.to_be_bytes());
    let _ = read_frame(&mut stream);
    SessionEnd::Completed { pongs }
}

//! A tiny HTTP/1.1 server: one thread per connection, one request per connection.
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;

pub struct Request {
    #[allow(dead_code)]
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub peer: String,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

impl Response {
    pub fn json(status: u16, body: impl Into<String>) -> Self {
        Response { status, content_type: "application/json", body: body.into() }
    }
    pub fn text(status: u16, body: impl Into<String>) -> Self {
        Response { status, content_type: "text/plain; charset=utf-8", body: body.into() }
    }
}

fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        401 => "Unauthorized",
        404 => "Not Found",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

pub type Handler = dyn Fn(&Request) -> Response + Send + Sync;

/// Binds every address (host:port) or returns the bind error.
pub fn bind(addrs: &[String]) -> std::io::Result<Vec<TcpListener>> {
    addrs.iter().map(TcpListener::bind).collect()
}

/// Serves forever on the listeners; `log` tells whether to print a line per request.
pub fn serve(listeners: Vec<TcpListener>, handler: Arc<Handler>, log: bool) {
    let mut threads = Vec::new();
    for l in listeners {
        let h = handler.clone();
        threads.push(std::thread::spawn(move || {
            for stream in l.incoming().flatten() {
                let h = h.clone();
                std::thread::spawn(move || handle(stream, &*h, log));
            }
        }));
    }
    for t in threads {
        let _ = t.join();
    }
}

fn handle(mut stream: TcpStream, handler: &Handler, log: bool) {
    let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(10)));
    let peer = stream.peer_addr().map(|a| a.to_string()).unwrap_or_default();
    let mut reader = BufReader::new(match stream.try_clone() {
        Ok(s) => s,
        Err(_) => return,
    });
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("/").to_string();
    let mut headers = Vec::new();
    let mut content_length = 0usize;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 {
            break;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            let (k, v) = (k.trim().to_string(), v.trim().to_string());
            if k.eq_ignore_ascii_case("content-length") {
                content_length = v.parse().unwrap_or(0);
            }
            headers.push((k, v));
        }
    }
    if content_length > 0 {
        let mut body = vec![0u8; content_length.min(1 << 20)];
        let _ = reader.read_exact(&mut body);
    }
    let path = target.split('?').next().unwrap_or("/").to_string();
    let req = Request { method: method.clone(), path, headers, peer };
    let resp = handler(&req);
    if log {
        crate::util::log(&format!(
            "{} {} {} {} {}",
            crate::util::now_rfc3339(),
            req.peer,
            method,
            target,
            resp.status
        ));
    }
    let body = if method == "HEAD" { "" } else { resp.body.as_str() };
    let head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store, no-cache, must-revalidate\r\nConnection: close\r\n\r\n",
        resp.status,
        reason(resp.status),
        resp.content_type,
        resp.body.len()
    );
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(body.as_bytes());
    let _ = stream.flush();
}

//! The MongoDB wire protocol, as much of it as the lab's mongod stand-in and its Rust clients
//! (mongodump, mongorestore, the Rocket.Chat stand-in) need: message framing (OP_MSG, and the
//! legacy OP_QUERY/OP_REPLY that drivers still use for their first `hello`), SCRAM-SHA-1 and
//! SCRAM-SHA-256 (both sides), and a small client. Documents are MongoDB's own `bson` crate.
//!
//! Sources: mongodb/specifications `source/message/OP_MSG.md` (header, flag bits, section kinds 0
//! and 1), `source/auth/auth.md` (SCRAM conversation, `saslStart`/`saslContinue`, SCRAM-SHA-1's
//! `hex(md5(user:mongo:pwd))` password, `skipEmptyExchange`, speculative authentication), RFC 5802
//! and RFC 7677 (the SCRAM messages and proofs).

use base64::Engine;
use bson::{doc, spec::BinarySubtype, Binary, Bson, Document};
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

pub const OP_REPLY: i32 = 1;
pub const OP_QUERY: i32 = 2004;
pub const OP_MSG: i32 = 2013;
/// The real server's `maxMessageSizeBytes`.
pub const MAX_MESSAGE: usize = 48_000_000;
const CHECKSUM_PRESENT: u32 = 1;
pub const MORE_TO_COME: u32 = 1 << 1;
pub const EXHAUST_ALLOWED: u32 = 1 << 16;

/// One message as read off the wire.
pub enum Op {
    /// OP_MSG: the body (kind 0) with every document sequence (kind 1) added to it as an array
    /// under its identifier, which is how the server reads them.
    Msg { flags: u32, body: Document },
    /// OP_QUERY (only the handshake's `admin.$cmd` query is served).
    Query { collection: String, query: Document },
    /// Anything else (OP_COMPRESSED, removed legacy opcodes): the server closes the connection.
    Other,
}

pub struct Message {
    pub request_id: i32,
    pub op: Op,
}

fn bad(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

fn take_i32(b: &[u8], at: &mut usize) -> io::Result<i32> {
    let s = b.get(*at..*at + 4).ok_or_else(|| bad("message too short"))?;
    *at += 4;
    Ok(i32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

fn take_cstring(b: &[u8], at: &mut usize) -> io::Result<String> {
    let rest = b.get(*at..).ok_or_else(|| bad("message too short"))?;
    let end = rest.iter().position(|&c| c == 0).ok_or_else(|| bad("unterminated cstring"))?;
    let s = String::from_utf8(rest[..end].to_vec()).map_err(|_| bad("cstring is not UTF-8"))?;
    *at += end + 1;
    Ok(s)
}

fn take_document(b: &[u8], at: &mut usize) -> io::Result<Document> {
    let mut at2 = *at;
    let len = take_i32(b, &mut at2)? as usize;
    let bytes = b.get(*at..*at + len).ok_or_else(|| bad("document runs past the message"))?;
    let doc = Document::from_reader(&mut &bytes[..]).map_err(|e| bad(format!("invalid BSON: {e}")))?;
    *at += len;
    Ok(doc)
}

/// The next message, or `None` when the peer closed the connection between messages.
pub fn read_message(r: &mut impl Read) -> io::Result<Option<Message>> {
    let mut header = [0u8; 16];
    match r.read_exact(&mut header[..4]) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    r.read_exact(&mut header[4..])?;
    let mut at = 0;
    let len = take_i32(&header, &mut at)? as usize;
    let request_id = take_i32(&header, &mut at)?;
    let _response_to = take_i32(&header, &mut at)?;
    let opcode = take_i32(&header, &mut at)?;
    if !(16..=MAX_MESSAGE).contains(&len) {
        return Err(bad(format!("message length {len} out of range")));
    }
    let mut body = vec![0u8; len - 16];
    r.read_exact(&mut body)?;
    let b = &body[..];
    let mut at = 0;
    let op = match opcode {
        OP_MSG => {
            let flags = take_i32(b, &mut at)? as u32;
            let end = if flags & CHECKSUM_PRESENT != 0 { b.len().saturating_sub(4) } else { b.len() };
            let mut main: Option<Document> = None;
            let mut sequences: Vec<(String, Vec<Document>)> = Vec::new();
            while at < end {
                let kind = b[at];
                at += 1;
                match kind {
                    0 => {
                        if main.is_some() {
                            return Err(bad("OP_MSG has two body sections"));
                        }
                        main = Some(take_document(b, &mut at)?);
                    }
                    1 => {
                        let start = at;
                        let size = take_i32(b, &mut at)? as usize;
                        let id = take_cstring(b, &mut at)?;
                        let mut docs = Vec::new();
                        while at < start + size {
                            docs.push(take_document(b, &mut at)?);
                        }
                        sequences.push((id, docs));
                    }
                    k => return Err(bad(format!("unknown OP_MSG section kind {k}"))),
                }
            }
            let mut body = main.ok_or_else(|| bad("OP_MSG without a body section"))?;
            for (id, docs) in sequences {
                if body.contains_key(&id) {
                    return Err(bad(format!("duplicate field {id} in OP_MSG")));
                }
                body.insert(id, Bson::Array(docs.into_iter().map(Bson::Document).collect()));
            }
            Op::Msg { flags, body }
        }
        OP_QUERY => {
            let _flags = take_i32(b, &mut at)?;
            let collection = take_cstring(b, &mut at)?;
            let _skip = take_i32(b, &mut at)?;
            let _return = take_i32(b, &mut at)?;
            let query = take_document(b, &mut at)?;
            Op::Query { collection, query }
        }
        _ => Op::Other,
    };
    Ok(Some(Message { request_id, op }))
}

fn frame(request_id: i32, response_to: i32, opcode: i32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + payload.len());
    out.extend_from_slice(&((16 + payload.len()) as i32).to_le_bytes());
    out.extend_from_slice(&request_id.to_le_bytes());
    out.extend_from_slice(&response_to.to_le_bytes());
    out.extend_from_slice(&opcode.to_le_bytes());
    out.extend_from_slice(payload);
    out
}

fn bson_bytes(doc: &Document) -> Vec<u8> {
    let mut v = Vec::new();
    doc.to_writer(&mut v).expect("a document serialises");
    v
}

/// An OP_MSG with one body section.
pub fn write_msg(w: &mut impl Write, request_id: i32, response_to: i32, body: &Document) -> io::Result<()> {
    write_msg_flags(w, request_id, response_to, 0, body)
}

/// An OP_MSG with one body section and `flags` (`MORE_TO_COME` for a streamed reply).
pub fn write_msg_flags(w: &mut impl Write, request_id: i32, response_to: i32, flags: u32, body: &Document) -> io::Result<()> {
    let mut payload = flags.to_le_bytes().to_vec();
    payload.push(0);
    payload.extend_from_slice(&bson_bytes(body));
    w.write_all(&frame(request_id, response_to, OP_MSG, &payload))
}

/// An OP_REPLY carrying one document (the answer to a handshake sent as OP_QUERY).
pub fn write_reply(w: &mut impl Write, request_id: i32, response_to: i32, doc: &Document) -> io::Result<()> {
    let mut payload = Vec::new();
    payload.extend_from_slice(&8i32.to_le_bytes()); // AwaitCapable, as servers set it
    payload.extend_from_slice(&0i64.to_le_bytes());
    payload.extend_from_slice(&0i32.to_le_bytes());
    payload.extend_from_slice(&1i32.to_le_bytes());
    payload.extend_from_slice(&bson_bytes(doc));
    w.write_all(&frame(request_id, response_to, OP_REPLY, &payload))
}

// ---------------------------------------------------------------------------------------- SCRAM

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mechanism {
    Sha1,
    Sha256,
}

impl Mechanism {
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Sha1 => "SCRAM-SHA-1",
            Mechanism::Sha256 => "SCRAM-SHA-256",
        }
    }

    pub fn from_name(name: &str) -> Option<Mechanism> {
        match name {
            "SCRAM-SHA-1" => Some(Mechanism::Sha1),
            "SCRAM-SHA-256" => Some(Mechanism::Sha256),
            _ => None,
        }
    }

    /// The server's defaults (`scramIterationCount` 10000, `scramSHA256IterationCount` 15000)
    /// and salt lengths (the hash length minus 4: 16 and 28 bytes).
    fn iterations_and_salt_len(self) -> (u32, usize) {
        match self {
            Mechanism::Sha1 => (10_000, 16),
            Mechanism::Sha256 => (15_000, 28),
        }
    }

    pub fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        match self {
            Mechanism::Sha1 => {
                let mut m = Hmac::<Sha1>::new_from_slice(key).expect("HMAC takes any key");
                m.update(data);
                m.finalize().into_bytes().to_vec()
            }
            Mechanism::Sha256 => {
                let mut m = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key");
                m.update(data);
                m.finalize().into_bytes().to_vec()
            }
        }
    }

    pub fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            Mechanism::Sha1 => Sha1::digest(data).to_vec(),
            Mechanism::Sha256 => Sha256::digest(data).to_vec(),
        }
    }

    /// Hi(password, salt, i) of RFC 5802. SCRAM-SHA-1's password is MongoDB's digest
    /// `hex(md5("user:mongo:password"))`; SCRAM-SHA-256's is the (SASLprep'd) password itself.
    pub fn salted_password(self, user: &str, password: &str, salt: &[u8], iterations: u32) -> Vec<u8> {
        match self {
            Mechanism::Sha1 => {
                let digest = hex(&md5::Md5::digest(format!("{user}:mongo:{password}").as_bytes()));
                let mut out = [0u8; 20];
                pbkdf2::pbkdf2_hmac::<Sha1>(digest.as_bytes(), salt, iterations, &mut out);
                out.to_vec()
            }
            Mechanism::Sha256 => {
                let mut out = [0u8; 32];
                pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), salt, iterations, &mut out);
                out.to_vec()
            }
        }
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

pub fn unb64(text: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD.decode(text).ok()
}

pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    getrandom::getrandom(&mut v).expect("the kernel's random source");
    v
}

/// What the server keeps per mechanism in `admin.system.users` (`credentials.SCRAM-SHA-256`):
/// never the password.
pub fn stored_credentials(mech: Mechanism, user: &str, password: &str) -> Document {
    let (iterations, salt_len) = mech.iterations_and_salt_len();
    let salt = random_bytes(salt_len);
    let salted = mech.salted_password(user, password, &salt, iterations);
    let client_key = mech.hmac(&salted, b"Client Key");
    let server_key = mech.hmac(&salted, b"Server Key");
    doc! {
        "iterationCount": iterations as i32,
        "salt": b64(&salt),
        "storedKey": b64(&mech.hash(&client_key)),
        "serverKey": b64(&server_key),
    }
}

/// `a=1,b=2` of a SCRAM message.
pub fn scram_fields(message: &str) -> Vec<(char, String)> {
    message
        .split(',')
        .filter_map(|part| {
            let mut chars = part.chars();
            let key = chars.next()?;
            let rest = chars.as_str();
            rest.strip_prefix('=').map(|v| (key, v.to_string()))
        })
        .collect()
}

pub fn scram_field(message: &str, key: char) -> Option<String> {
    scram_fields(message).into_iter().find(|(k, _)| *k == key).map(|(_, v)| v)
}

/// RFC 5802's saslname escaping (`,` and `=`).
pub fn scram_escape(user: &str) -> String {
    user.replace('=', "=3D").replace(',', "=2C")
}

pub fn scram_unescape(user: &str) -> String {
    user.replace("=2C", ",").replace("=3D", "=")
}

pub fn binary(bytes: Vec<u8>) -> Bson {
    Bson::Binary(Binary { subtype: BinarySubtype::Generic, bytes })
}

pub fn payload_text(doc: &Document) -> Option<String> {
    match doc.get("payload") {
        Some(Bson::Binary(b)) => String::from_utf8(b.bytes.clone()).ok(),
        Some(Bson::String(s)) => Some(s.clone()),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------- client

/// A connection to one server, authenticated or not. Errors are text for people: a network
/// error reads like the tools' (`connect ECONNREFUSED host:port`), a server error carries the
/// server's `errmsg` and code name.
pub struct Client {
    stream: TcpStream,
    next_id: i32,
    pub hello: Document,
}

/// A failed command: the server's reply (`ok: 0`) or a network problem.
#[derive(Debug)]
pub enum Failure {
    Network(String),
    Server(Document),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Network(e) => write!(f, "{e}"),
            Failure::Server(d) => write!(
                f,
                "({}) {}",
                d.get_str("codeName").unwrap_or("Error"),
                d.get_str("errmsg").unwrap_or("command failed")
            ),
        }
    }
}

impl Client {
    /// Connects to `addr` (host:port) and sends the handshake `hello`.
    pub fn connect(addr: &str, timeout: Duration) -> Result<Client, Failure> {
        let addrs: Vec<std::net::SocketAddr> = std::net::ToSocketAddrs::to_socket_addrs(addr)
            .map_err(|e| Failure::Network(format!("getaddrinfo {addr}: {e}")))?
            .collect();
        let mut last = format!("connect ECONNREFUSED {addr}");
        for a in addrs {
            match TcpStream::connect_timeout(&a, timeout) {
                Ok(stream) => {
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
                    let _ = stream.set_nodelay(true);
                    let mut c = Client { stream, next_id: 1, hello: Document::new() };
                    c.hello = c.command("admin", doc! {"hello": 1, "client": {"application": {"name": "rcfleet-lab-standin"}}})?;
                    return Ok(c);
                }
                Err(e) => {
                    last = match e.kind() {
                        io::ErrorKind::ConnectionRefused => format!("connect ECONNREFUSED {a}"),
                        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => format!("connect ETIMEDOUT {a}"),
                        _ => format!("connect {a}: {e}"),
                    }
                }
            }
        }
        Err(Failure::Network(last))
    }

    /// Runs `cmd` on database `db`: the reply when `ok` is 1.
    pub fn command(&mut self, db: &str, mut cmd: Document) -> Result<Document, Failure> {
        cmd.insert("$db", db);
        let id = self.next_id;
        self.next_id += 1;
        let net = |e: io::Error| Failure::Network(format!("connection to the server failed: {e}"));
        write_msg(&mut self.stream, id, 0, &cmd).map_err(net)?;
        let reply = read_message(&mut self.stream)
            .map_err(net)?
            .ok_or_else(|| Failure::Network("connection closed by the server".into()))?;
        let body = match reply.op {
            Op::Msg { body, .. } => body,
            _ => return Err(Failure::Network("unexpected reply opcode".into())),
        };
        let ok = match body.get("ok") {
            Some(Bson::Double(v)) => *v == 1.0,
            Some(Bson::Int32(v)) => *v == 1,
            Some(Bson::Int64(v)) => *v == 1,
            Some(Bson::Boolean(v)) => *v,
            _ => false,
        };
        if ok {
            Ok(body)
        } else {
            Err(Failure::Server(body))
        }
    }

    /// SCRAM-SHA-256 as user `user` of database `source`; the server's signature is checked
    /// too, so a server that does not know the password cannot pass for one that does.
    pub fn authenticate(&mut self, source: &str, user: &str, password: &str) -> Result<(), Failure> {
        let mech = Mechanism::Sha256;
        let nonce = b64(&random_bytes(24));
        let first_bare = format!("n={},r={nonce}", scram_escape(user));
        let start = self.command(
            source,
            doc! {"saslStart": 1, "mechanism": mech.name(), "payload": binary(format!("n,,{first_bare}").into_bytes()),
                  "autoAuthorize": 1, "options": {"skipEmptyExchange": true}},
        )?;
        let fail = |why: &str| Failure::Server(doc! {"ok": 0, "errmsg": why, "code": 18, "codeName": "AuthenticationFailed"});
        let server_first = payload_text(&start).ok_or_else(|| fail("no payload in saslStart's reply"))?;
        let conversation = start.get("conversationId").cloned().unwrap_or(Bson::Int32(1));
        let server_nonce = scram_field(&server_first, 'r').filter(|r| r.starts_with(&nonce)).ok_or_else(|| fail("server nonce does not extend ours"))?;
        let salt = scram_field(&server_first, 's').and_then(|s| unb64(&s)).ok_or_else(|| fail("no salt"))?;
        let iterations: u32 = scram_field(&server_first, 'i').and_then(|i| i.parse().ok()).filter(|i| *i >= 4096).ok_or_else(|| fail("bad iteration count"))?;
        let salted = mech.salted_password(user, password, &salt, iterations);
        let client_key = mech.hmac(&salted, b"Client Key");
        let stored_key = mech.hash(&client_key);
        let without_proof = format!("c=biws,r={server_nonce}");
        let auth_message = format!("{first_bare},{server_first},{without_proof}");
        let signature = mech.hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key.iter().zip(signature).map(|(a, b)| a ^ b).collect();
        let reply = self.command(
            source,
            doc! {"saslContinue": 1, "conversationId": conversation.clone(), "payload": binary(format!("{without_proof},p={}", b64(&proof)).into_bytes())},
        )?;
        let server_key = mech.hmac(&salted, b"Server Key");
        let expected = b64(&mech.hmac(&server_key, auth_message.as_bytes()));
        if payload_text(&reply).and_then(|p| scram_field(&p, 'v')) != Some(expected) {
            return Err(fail("the server's SCRAM signature is wrong"));
        }
        if reply.get_bool("done").unwrap_or(false) {
            return Ok(());
        }
        self.command(source, doc! {"saslContinue": 1, "conversationId": conversation, "payload": binary(Vec::new())}).map(|_| ())
    }

    /// Every document of a `find` (or `aggregate`/`listCollections`) reply's cursor, fetching
    /// further batches with `getMore`.
    pub fn drain(&mut self, db: &str, reply: Document) -> Result<Vec<Document>, Failure> {
        let mut cursor = reply.get_document("cursor").cloned().unwrap_or_default();
        let mut out: Vec<Document> = Vec::new();
        let mut key = "firstBatch";
        loop {
            for d in cursor.get_array(key).cloned().unwrap_or_default() {
                if let Bson::Document(d) = d {
                    out.push(d);
                }
            }
            let id = cursor.get_i64("id").unwrap_or(0);
            if id == 0 {
                return Ok(out);
            }
            let ns = cursor.get_str("ns").unwrap_or("").to_string();
            let coll = ns.split_once('.').map(|(_, c)| c.to_string()).unwrap_or_default();
            let more = self.command(db, doc! {"getMore": id, "collection": coll})?;
            cursor = more.get_document("cursor").cloned().unwrap_or_default();
            key = "nextBatch";
        }
    }
}

/// host:port of a connection string's first host, its credentials (percent-decoded) and
/// authentication database (`authSource`, else the URI's database, else `admin`), and its
/// database.
pub struct Uri {
    pub addr: String,
    pub user: Option<String>,
    pub password: Option<String>,
    pub auth_source: Option<String>,
    pub database: Option<String>,
}

pub fn parse_uri(uri: &str) -> Uri {
    let rest = uri.split_once("://").map(|(_, r)| r).unwrap_or(uri);
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let (userinfo, hosts) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let (user, password) = match userinfo {
        Some(u) => match u.split_once(':') {
            Some((u, p)) => (Some(crate::util::percent_decode(u)), Some(crate::util::percent_decode(p))),
            None => (Some(crate::util::percent_decode(u)), None),
        },
        None => (None, None),
    };
    let first = hosts.split(',').next().unwrap_or("127.0.0.1");
    let first = if first.is_empty() { "127.0.0.1" } else { first };
    let addr = if first.starts_with('[') || first.contains(':') { first.to_string() } else { format!("{first}:27017") };
    let (path, query) = tail.split_once('?').unwrap_or((tail, ""));
    let database = Some(crate::util::percent_decode(path.trim_start_matches('/'))).filter(|d| !d.is_empty());
    let auth_source = query.split('&').find_map(|kv| kv.strip_prefix("authSource=")).map(crate::util::percent_decode);
    Uri { addr, user, password, auth_source, database }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677 §3's example conversation (user "user", password "pencil").
    #[test]
    fn scram_sha256_proof_matches_rfc7677() {
        let m = Mechanism::Sha256;
        let salt = unb64("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let salted = m.salted_password("user", "pencil", &salt, 4096);
        let client_key = m.hmac(&salted, b"Client Key");
        let stored = m.hash(&client_key);
        let auth = "n=user,r=rOprNGfwEbeRWgbNEkqO,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
        let sig = m.hmac(&stored, auth.as_bytes());
        let proof: Vec<u8> = client_key.iter().zip(sig).map(|(a, b)| a ^ b).collect();
        assert_eq!(b64(&proof), "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=");
        let server_key = m.hmac(&salted, b"Server Key");
        assert_eq!(b64(&m.hmac(&server_key, auth.as_bytes())), "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
    }

    #[test]
    fn op_msg_round_trip_with_a_document_sequence() {
        let mut buf = Vec::new();
        write_msg(&mut buf, 7, 0, &doc! {"insert": "c", "$db": "x"}).unwrap();
        let m = read_message(&mut &buf[..]).unwrap().unwrap();
        assert_eq!(m.request_id, 7);
        match m.op {
            Op::Msg { body, .. } => assert_eq!(body.get_str("insert").unwrap(), "c"),
            _ => panic!(),
        }
    }

    #[test]
    fn uri_parts() {
        let u = parse_uri("mongodb://rocketchat:p%40ss@10.0.0.10:27017/rocketchat?replicaSet=rs0&authSource=admin");
        assert_eq!(u.addr, "10.0.0.10:27017");
        assert_eq!(u.user.as_deref(), Some("rocketchat"));
        assert_eq!(u.password.as_deref(), Some("p@ss"));
        assert_eq!(u.auth_source.as_deref(), Some("admin"));
        assert_eq!(u.database.as_deref(), Some("rocketchat"));
        assert_eq!(parse_uri("mongodb://h/").addr, "h:27017");
    }
}

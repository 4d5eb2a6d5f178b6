//! MongoDB's wire protocol, spoken by rcfleet itself for the looks it takes on every run (is
//! there a PRIMARY; do the users log in with their passwords and hold their roles). mongosh
//! answers the same in about a second, most of it starting Node inside the container; this
//! takes a few round trips through a tunnel to `127.0.0.1:<port>` on the database host, the
//! address mongosh connects to. It speaks OP_MSG (MongoDB 3.6 and later; rcfleet deploys 7.0
//! and later) and SCRAM-SHA-256 (the default mechanism since 4.0), nothing else: anything it
//! cannot settle is left to mongosh, which also makes every change (creating users).
//!
//! The formats: OP_MSG and its header, `docs/.../wire-protocol` of the MongoDB manual and
//! `src/mongo/rpc/op_msg.h`; SCRAM, RFC 5802 and RFC 7677 as MongoDB runs them
//! (`src/mongo/db/auth/sasl_scram_server_conversation.cpp`, the drivers' auth specification).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use bson::{doc, spec::BinarySubtype, Binary, Bson, Document};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::remote::{Connection, LocalEndpoint, Tunnel};

const OP_MSG: i32 = 2013;
/// OP_MSG's flag bit saying a CRC-32C follows the sections.
const CHECKSUM_PRESENT: u32 = 1;
const HEADER: usize = 16;
/// The largest reply MongoDB sends (its `maxMessageSizeBytes`).
const MAX_MESSAGE: usize = 48_000_000;
/// Each read or write; a look that takes longer is left to mongosh.
const TIMEOUT: Duration = Duration::from_secs(10);
/// MongoDB refuses SCRAM-SHA-256 credentials with fewer iterations.
const MIN_ITERATIONS: u32 = 4096;

type HmacSha256 = Hmac<Sha256>;

/// A command MongoDB refused, with its code (18 AuthenticationFailed, 13 Unauthorized, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub code: i32,
    pub code_name: String,
    pub message: String,
}

/// A connection to MongoDB on the database host, through a tunnel of its own.
pub struct Client {
    stream: TcpStream,
    next_request: i32,
    host: String,
    // Declared last: dropped after the stream, so the tunnel outlives the connection.
    tunnel: Arc<Tunnel>,
}

impl Client {
    /// Connects to MongoDB at `127.0.0.1:port` as the database host sees it.
    pub fn connect(conn: &Connection, port: u16) -> Result<Client> {
        let tunnel = Arc::new(conn.forward_tcp("127.0.0.1", port)?);
        Client::over(tunnel, format!("{}: MongoDB at 127.0.0.1:{port}", conn.name()))
    }

    /// Another connection through the same tunnel (MongoDB takes one login per connection).
    pub fn another(&self) -> Result<Client> {
        Client::over(self.tunnel.clone(), self.host.clone())
    }

    fn over(tunnel: Arc<Tunnel>, host: String) -> Result<Client> {
        let LocalEndpoint::Tcp(address) = tunnel.local().clone() else {
            return Err(Error::failed("a TCP tunnel listens on TCP"));
        };
        let fail = |e: std::io::Error| Error::failed(format!("{host}: {e}"));
        let stream = TcpStream::connect_timeout(&address, TIMEOUT).map_err(fail)?;
        stream.set_read_timeout(Some(TIMEOUT)).map_err(fail)?;
        stream.set_write_timeout(Some(TIMEOUT)).map_err(fail)?;
        stream.set_nodelay(true).map_err(fail)?;
        Ok(Client { stream, next_request: 1, host, tunnel })
    }

    /// The replica set's PRIMARY as this member sees it (`hello`, which needs no login), or
    /// why there is none yet.
    pub fn primary(&mut self) -> Result<std::result::Result<String, String>> {
        let hello = self.command("admin", doc! {"hello": 1})?.map_err(|r| self.fail(format!("hello refused: {}", r.message)))?;
        if hello.get_bool("isWritablePrimary") == Ok(true) {
            let primary = hello.get_str("primary").or_else(|_| hello.get_str("me")).unwrap_or("127.0.0.1");
            return Ok(Ok(primary.to_string()));
        }
        let state = if hello.get_bool("secondary") == Ok(true) {
            "this member is SECONDARY"
        } else if hello.get_str("setName").is_err() {
            "the replica set is not initiated"
        } else {
            "this member is neither PRIMARY nor SECONDARY"
        };
        Ok(Err(format!("no PRIMARY yet ({state})")))
    }

    /// Runs `command` against `db`: MongoDB's reply (`ok: 1`), or what it refused.
    pub fn command(&mut self, db: &str, mut command: Document) -> Result<std::result::Result<Document, Refused>> {
        command.insert("$db", db);
        let request = self.next_request;
        self.next_request += 1;
        self.stream.write_all(&op_msg(request, &command)?).map_err(|e| self.fail(format!("sending a command: {e}")))?;
        let mut header = [0u8; HEADER];
        self.stream.read_exact(&mut header).map_err(|e| self.fail(format!("reading a reply: {e}")))?;
        let field = |at: usize| i32::from_le_bytes(header[at..at + 4].try_into().expect("four bytes"));
        let (length, response_to, op_code) = (field(0), field(8), field(12));
        let length = usize::try_from(length).ok().filter(|l| (HEADER + 5..=MAX_MESSAGE).contains(l));
        let Some(length) = length.filter(|_| response_to == request && op_code == OP_MSG) else {
            return Err(self.fail(format!(
                "not an answer to this command (length {}, answering {response_to}, op code {op_code})",
                field(0)
            )));
        };
        let mut rest = vec![0u8; length - HEADER];
        self.stream.read_exact(&mut rest).map_err(|e| self.fail(format!("reading a reply: {e}")))?;
        let reply = reply_body(&rest).map_err(|what| self.fail(what))?;
        Ok(if ok(&reply) { Ok(reply) } else { Err(refused(&reply)) })
    }

    /// Logs in as `user` of the `admin` database with SCRAM-SHA-256: `Ok(Ok(()))` when MongoDB
    /// took the password, `Ok(Err(..))` when it did not (code 18 both for an unknown user and a
    /// wrong password: MongoDB does not say which). MongoDB's proof that it knows the password
    /// is checked too.
    pub fn login(&mut self, user: &str, password: &str) -> Result<std::result::Result<(), Refused>> {
        // SASLprep leaves printable ASCII as it is; anything else is mongosh's to prepare.
        if !password.bytes().all(|b| (0x20..0x7f).contains(&b)) {
            return Err(self.fail("the password is not printable ASCII (SASLprep is left to mongosh)".to_string()));
        }
        let nonce = base64::engine::general_purpose::STANDARD.encode(random_bytes(24)?);
        let client_first = format!("n={},r={nonce}", escape(user));
        let start = doc! {
            "saslStart": 1,
            "mechanism": "SCRAM-SHA-256",
            "payload": binary(format!("n,,{client_first}")),
            "autoAuthorize": 1,
            "options": {"skipEmptyExchange": true},
        };
        let reply = match self.command("admin", start)? {
            Ok(reply) => reply,
            Err(refused) => return Ok(Err(refused)),
        };
        let conversation = reply.get("conversationId").cloned().unwrap_or(Bson::Int32(1));
        let server_first = payload(&reply).map_err(|what| self.fail(what))?;
        let (salted, auth_message, proof) =
            prove(password, &client_first, &server_first, &nonce).map_err(|what| self.fail(what))?;
        let client_final = format!("c=biws,r={},p={proof}", scram_field(&server_first, 'r').unwrap_or_default());
        let next = doc! {"saslContinue": 1, "conversationId": conversation.clone(), "payload": binary(client_final)};
        let mut reply = match self.command("admin", next)? {
            Ok(reply) => reply,
            Err(refused) => return Ok(Err(refused)),
        };
        let server_final = payload(&reply).map_err(|what| self.fail(what))?;
        let expected = base64::engine::general_purpose::STANDARD.encode(hmac(&hmac(&salted, b"Server Key"), auth_message.as_bytes()));
        if scram_field(&server_final, 'v').as_deref() != Some(expected.as_str()) {
            return Err(self.fail("its answer does not prove it holds this user's credentials".to_string()));
        }
        // Without skipEmptyExchange (older servers) one empty step ends the conversation.
        while reply.get_bool("done") != Ok(true) {
            let empty = doc! {"saslContinue": 1, "conversationId": conversation.clone(), "payload": binary(String::new())};
            reply = match self.command("admin", empty)? {
                Ok(reply) => reply,
                Err(refused) => return Ok(Err(refused)),
            };
        }
        Ok(Ok(()))
    }

    fn fail(&self, what: String) -> Error {
        Error::failed(format!("{}: {what}", self.host))
    }
}

/// One OP_MSG: the header, no flags, and `command` as its one body section.
fn op_msg(request: i32, command: &Document) -> Result<Vec<u8>> {
    let mut body = Vec::new();
    command.to_writer(&mut body).map_err(|e| Error::failed(format!("encoding a MongoDB command: {e}")))?;
    let length = HEADER + 4 + 1 + body.len();
    let mut message = Vec::with_capacity(length);
    message.extend_from_slice(&(length as i32).to_le_bytes());
    message.extend_from_slice(&request.to_le_bytes());
    message.extend_from_slice(&0i32.to_le_bytes());
    message.extend_from_slice(&OP_MSG.to_le_bytes());
    message.extend_from_slice(&0u32.to_le_bytes());
    message.push(0);
    message.extend_from_slice(&body);
    Ok(message)
}

/// The body section of an OP_MSG reply (what follows its header).
fn reply_body(rest: &[u8]) -> std::result::Result<Document, String> {
    let flags = u32::from_le_bytes(rest[..4].try_into().expect("four bytes"));
    let end = if flags & CHECKSUM_PRESENT != 0 { rest.len().saturating_sub(4) } else { rest.len() };
    match rest.get(4) {
        Some(0) => Document::from_reader(&mut &rest[5..end]).map_err(|e| format!("a reply that is not BSON: {e}")),
        kind => Err(format!("a reply whose first section is of kind {kind:?}, not a body")),
    }
}

fn ok(reply: &Document) -> bool {
    match reply.get("ok") {
        Some(Bson::Double(ok)) => *ok == 1.0,
        Some(Bson::Int32(ok)) => *ok == 1,
        Some(Bson::Int64(ok)) => *ok == 1,
        Some(Bson::Boolean(ok)) => *ok,
        _ => false,
    }
}

fn refused(reply: &Document) -> Refused {
    Refused {
        code: reply.get_i32("code").unwrap_or(0),
        code_name: reply.get_str("codeName").unwrap_or_default().to_string(),
        message: reply.get_str("errmsg").unwrap_or_default().to_string(),
    }
}

fn binary(text: String) -> Binary {
    Binary { subtype: BinarySubtype::Generic, bytes: text.into_bytes() }
}

fn payload(reply: &Document) -> std::result::Result<String, String> {
    match reply.get("payload") {
        Some(Bson::Binary(binary)) => String::from_utf8(binary.bytes.clone()).map_err(|_| "a SCRAM message that is not text".to_string()),
        _ => Err("a SASL reply without its payload".to_string()),
    }
}

/// SCRAM's user name: `=` and `,` escaped (RFC 5802 5.1).
fn escape(user: &str) -> String {
    user.replace('=', "=3D").replace(',', "=2C")
}

/// The value of `key=` in a SCRAM message.
fn scram_field(message: &str, key: char) -> Option<String> {
    message.split(',').find_map(|part| part.strip_prefix(key)?.strip_prefix('=').map(str::to_string))
}

/// From the server's first message: the salted password, the auth message and the client
/// proof (base64) of RFC 5802 3.
fn prove(password: &str, client_first: &str, server_first: &str, nonce: &str) -> std::result::Result<([u8; 32], String, String), String> {
    let combined = scram_field(server_first, 'r').filter(|r| r.starts_with(nonce) && r.len() > nonce.len());
    let salt = scram_field(server_first, 's').and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok());
    let iterations = scram_field(server_first, 'i').and_then(|i| i.parse::<u32>().ok()).filter(|i| *i >= MIN_ITERATIONS);
    let (Some(combined), Some(salt), Some(iterations)) = (combined, salt, iterations) else {
        return Err(format!("an unexpected SCRAM challenge: {server_first:?}"));
    };
    let salted = pbkdf2_sha256(password.as_bytes(), &salt, iterations);
    let client_key = hmac(&salted, b"Client Key");
    let stored_key = Sha256::digest(client_key);
    let auth_message = format!("{client_first},{server_first},c=biws,r={combined}");
    let signature = hmac(&stored_key, auth_message.as_bytes());
    let proof: Vec<u8> = client_key.iter().zip(signature).map(|(k, s)| k ^ s).collect();
    Ok((salted, auth_message, base64::engine::general_purpose::STANDARD.encode(proof)))
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// PBKDF2 with HMAC-SHA-256, one block (RFC 8018 5.2; SCRAM-SHA-256's Hi()).
fn pbkdf2_sha256(password: &[u8], salt: &[u8], iterations: u32) -> [u8; 32] {
    let mac = HmacSha256::new_from_slice(password).expect("HMAC takes a key of any length");
    let mut first = mac.clone();
    first.update(salt);
    first.update(&1u32.to_be_bytes());
    let mut u: [u8; 32] = first.finalize().into_bytes().into();
    let mut result = u;
    for _ in 1..iterations {
        let mut next = mac.clone();
        next.update(&u);
        u = next.finalize().into_bytes().into();
        result.iter_mut().zip(u).for_each(|(r, b)| *r ^= b);
    }
    result
}

fn random_bytes(count: usize) -> Result<Vec<u8>> {
    let mut bytes = vec![0u8; count];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut random| random.read_exact(&mut bytes))
        .map_err(|e| Error::failed(format!("cannot read /dev/urandom for a SCRAM nonce: {e}")))?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677 section 3's example conversation (user "user", password "pencil").
    #[test]
    fn scram_sha_256_matches_rfc_7677() {
        let client_first = "n=user,r=rOprNGfwEbeRWgbNEkqO";
        let server_first = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        let (salted, auth_message, proof) = prove("pencil", client_first, server_first, "rOprNGfwEbeRWgbNEkqO").unwrap();
        assert_eq!(proof, "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=");
        let server_signature = base64::engine::general_purpose::STANDARD.encode(hmac(&hmac(&salted, b"Server Key"), auth_message.as_bytes()));
        assert_eq!(server_signature, "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
    }

    #[test]
    fn a_challenge_that_does_not_extend_our_nonce_or_is_weak_is_refused() {
        let client_first = "n=user,r=abc";
        assert!(prove("p", client_first, "r=xyz123,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", "abc").is_err());
        assert!(prove("p", client_first, "r=abc123,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=1000", "abc").is_err());
        assert!(prove("p", client_first, "r=abc,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", "abc").is_err());
    }

    #[test]
    fn an_op_msg_round_trips_its_body() {
        let message = op_msg(7, &doc! {"hello": 1, "$db": "admin"}).unwrap();
        assert_eq!(i32::from_le_bytes(message[..4].try_into().unwrap()) as usize, message.len());
        assert_eq!(i32::from_le_bytes(message[12..16].try_into().unwrap()), OP_MSG);
        assert_eq!(reply_body(&message[HEADER..]).unwrap(), doc! {"hello": 1, "$db": "admin"});
    }

    #[test]
    fn user_names_are_escaped() {
        assert_eq!(escape("a,b=c"), "a=2Cb=3Dc");
    }
}

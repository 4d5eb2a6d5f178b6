'use strict';
// The DDP side of ddp-streamer as a client meets it (ee/apps/ddp-streamer/src/Client.ts and
// DDPStreamer.ts): on a new WebSocket the server sends `{"server_id":"0"}` (and `o` first to a
// SockJS client, any path other than /websocket); the first message must be `connect`, answered
// with `{"msg":"connected","session":...}`, anything else closes the socket with 1002; `ping` is
// answered with `pong` (with the ping's id); a message that is not JSON closes with 1007.
const crypto = require('crypto');

const SERVER_ID = JSON.stringify({ server_id: '0' });
const CLOSE_PROTOCOL_ERROR = 1002;
const UNSUPPORTED_DATA = 1007;

function attachClient(ws, url) {
	const sockjs = url !== '/websocket';
	const session = crypto.randomUUID();
	const send = (payload) => ws.send(sockjs ? `a${JSON.stringify([payload])}` : payload);
	let connected = false;
	if (sockjs) {
		ws.send('o');
	}
	send(SERVER_ID);
	ws.on('message', (data) => {
		let packet;
		try {
			packet = JSON.parse(String(data));
		} catch {
			ws.close(UNSUPPORTED_DATA, 'unsupported data');
			return;
		}
		if (!connected) {
			if (packet.msg !== 'connect') {
				ws.close(CLOSE_PROTOCOL_ERROR, 'protocol error');
				return;
			}
			connected = true;
			send(JSON.stringify({ msg: 'connected', session }));
			return;
		}
		if (packet.msg === 'ping') {
			send(JSON.stringify({ msg: 'pong', ...(packet.id && { id: packet.id }) }));
		}
	});
	return session;
}

// What `GET *` answers on ddp-streamer (SockJS' info document).
function sockjsInfo() {
	return `{"websocket":true,"origins":["*:*"],"cookie_needed":false,"entropy":${crypto.randomBytes(4).readUInt32LE(0)},"ms":true}`;
}

module.exports = { attachClient, sockjsInfo, SERVER_ID };

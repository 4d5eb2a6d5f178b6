'use strict';
const test = require('node:test');
const assert = require('node:assert');
const http = require('node:http');
const WebSocket = require('ws');

const { serviceFor, SERVICES } = require('../lib/services');
const { attachClient, sockjsInfo } = require('../lib/ddp');
const { enterpriseCheck } = require('../lib/enterprise-check');

test('every image maps to the moleculer service Rocket.Chat registers', () => {
	assert.strictEqual(serviceFor('account-service').moleculerName, 'accounts');
	assert.strictEqual(serviceFor('ddp-streamer-service').moleculerName, 'streamer');
	assert.strictEqual(SERVICES['stream-hub-service'].lastMajor, 7);
	assert.throws(() => serviceFor('accounts-service'), /unknown Rocket.Chat service image 'accounts-service'/);
});

function ddpServer() {
	const server = http.createServer((_req, res) => res.end(sockjsInfo()));
	const wss = new WebSocket.Server({ server });
	wss.on('connection', (ws, req) => attachClient(ws, req.url));
	return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, wss })));
}

function messages(ws) {
	const queue = [];
	const waiters = [];
	ws.on('message', (d) => (waiters.length ? waiters.shift()(String(d)) : queue.push(String(d))));
	return () => (queue.length ? Promise.resolve(queue.shift()) : new Promise((r) => waiters.push(r)));
}

test('a DDP client on /websocket gets server_id, then connected, then pong', async () => {
	const { server, wss } = await ddpServer();
	const ws = new WebSocket(`ws://127.0.0.1:${server.address().port}/websocket`);
	const next = messages(ws);
	await new Promise((r) => ws.on('open', r));
	assert.deepStrictEqual(JSON.parse(await next()), { server_id: '0' });
	ws.send(JSON.stringify({ msg: 'connect', version: '1', support: ['1'] }));
	const connected = JSON.parse(await next());
	assert.strictEqual(connected.msg, 'connected');
	assert.match(connected.session, /^[0-9a-f-]{36}$/);
	ws.send(JSON.stringify({ msg: 'ping', id: 'p1' }));
	assert.deepStrictEqual(JSON.parse(await next()), { msg: 'pong', id: 'p1' });
	ws.close();
	wss.close();
	server.close();
});

test('a first message other than connect closes the socket with 1002', async () => {
	const { server, wss } = await ddpServer();
	const ws = new WebSocket(`ws://127.0.0.1:${server.address().port}/websocket`);
	await new Promise((r) => ws.on('open', r));
	ws.send(JSON.stringify({ msg: 'method', method: 'login', id: '1' }));
	const code = await new Promise((r) => ws.on('close', (c) => r(c)));
	assert.strictEqual(code, 1002);
	wss.close();
	server.close();
});

test('a SockJS path gets the o frame and array-framed messages', async () => {
	const { server, wss } = await ddpServer();
	const ws = new WebSocket(`ws://127.0.0.1:${server.address().port}/sockjs/123/abc/websocket`);
	const next = messages(ws);
	await new Promise((r) => ws.on('open', r));
	assert.strictEqual(await next(), 'o');
	assert.deepStrictEqual(JSON.parse((await next()).slice(1)), ['{"server_id":"0"}']);
	ws.close();
	wss.close();
	server.close();
});

test('GET * answers the SockJS info document', () => {
	const info = JSON.parse(sockjsInfo());
	assert.strictEqual(info.websocket, true);
	assert.strictEqual(info.ms, true);
});

// A broker double that answers the two calls EnterpriseCheck makes.
function fakeBroker({ nodeID, hasLicense, nodes }) {
	const fatal = [];
	return {
		nodeID,
		fatal: (m) => fatal.push(m),
		fatalMessages: fatal,
		call: async (action) => {
			if (action === 'license.hasValidLicense') {
				if (hasLicense instanceof Error) throw hasLicense;
				return hasLicense;
			}
			if (action === '$node.services') return [{ name: 'presence', nodes }];
			throw new Error(`unexpected call ${action}`);
		},
	};
}

async function runChecks(check, broker, times) {
	const timers = [];
	const realSetInterval = global.setInterval;
	global.setInterval = (fn) => timers.push(fn);
	const self = { name: 'presence', broker, ...check.methods };
	check.started.call(self);
	global.setInterval = realSetInterval;
	for (let i = 0; i < times; i++) await timers[0]();
}

test('without the scalability module a lone service stops after MAX_FAILS checks', async () => {
	const broker = fakeBroker({ nodeID: 'a', hasLicense: false, nodes: ['a'] });
	await runChecks(enterpriseCheck({}), broker, 1);
	assert.deepStrictEqual(broker.fatalMessages, []);
	await runChecks(enterpriseCheck({}), broker, 2);
	assert.deepStrictEqual(broker.fatalMessages, ['Enterprise license not found. Shutting down...']);
});

test('with the licence, or as the second of two nodes, a service keeps running', async () => {
	const licensed = fakeBroker({ nodeID: 'a', hasLicense: true, nodes: ['a'] });
	await runChecks(enterpriseCheck({}), licensed, 3);
	assert.deepStrictEqual(licensed.fatalMessages, []);
	const second = fakeBroker({ nodeID: 'b', hasLicense: new Error('no license service'), nodes: ['a', 'b'] });
	await runChecks(enterpriseCheck({}), second, 3);
	assert.deepStrictEqual(second.fatalMessages, []);
});

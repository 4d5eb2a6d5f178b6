'use strict';
// The services on a real NATS bus with the monolith stand-in and the MongoDB stand-in, all as
// processes on loopback. Needs NATS_SERVER_BIN and MONGOD_STANDIN_BIN (tests/lab/test sets both
// from the lab's cache) and root for `unshare` (the node-ID case); skipped otherwise.
const test = require('node:test');
const assert = require('node:assert');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const WebSocket = require('ws');

const NATS = process.env.NATS_SERVER_BIN;
const MONGOD = process.env.MONGOD_STANDIN_BIN;
const ROCKETCHAT = path.resolve(__dirname, '../../rocketchat');
const SERVICES = path.resolve(__dirname, '..');
const skip = !NATS || !MONGOD ? 'NATS_SERVER_BIN and MONGOD_STANDIN_BIN not set' : false;

const children = [];
// Whatever ends this process (the runner's timeout included) ends what it started.
const killChildren = () => children.forEach((c) => c.exitCode === null && c.kill('SIGKILL'));
process.on('exit', killChildren);
for (const signal of ['SIGTERM', 'SIGINT']) {
	process.on(signal, () => {
		killChildren();
		process.exit(1);
	});
}
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'services-bus-'));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function freePort() {
	return new Promise((resolve) => {
		const s = net.createServer().listen(0, '127.0.0.1', () => {
			const { port } = s.address();
			s.close(() => resolve(port));
		});
	});
}

function start(name, argv, { cwd, env = {}, etc } = {}) {
	let etcDir;
	if (etc) {
		etcDir = fs.mkdtempSync(path.join(work, `${name}-etc-`));
		for (const [k, v] of Object.entries(etc)) fs.writeFileSync(path.join(etcDir, k), `${v}\n`);
	}
	const child = spawn(argv[0], argv.slice(1), {
		cwd,
		env: { ...process.env, ...env, ...(etcDir && { STANDIN_ETC_FOR_LOCAL_TESTS_ONLY: etcDir }) },
		stdio: ['ignore', 'pipe', 'pipe'],
	});
	child.output = '';
	child.stdout.on('data', (d) => (child.output += d));
	child.stderr.on('data', (d) => (child.output += d));
	child.exited = new Promise((resolve) => child.on('exit', (code) => resolve(code)));
	children.push(child);
	return child;
}

async function until(what, fn, seconds = 20) {
	const end = Date.now() + seconds * 1000;
	for (;;) {
		if (await fn().catch(() => false)) return;
		if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
		await sleep(200);
	}
}

const get = (port, p) =>
	fetch(`http://127.0.0.1:${port}${p}`).then(async (r) => ({ status: r.status, body: await r.text() }));

let bus;
test.before(async () => {
	if (skip) return;
	const natsPort = await freePort();
	const mongoPort = await freePort();
	fs.mkdirSync(path.join(work, 'db'));
	start('nats', [NATS, '-a', '127.0.0.1', '-p', String(natsPort)]);
	start('mongod', [MONGOD, 'mongod', '--port', String(mongoPort), '--dbpath', path.join(work, 'db'), '--bind_ip', '127.0.0.1'], {
		etc: { version: '8.2.0' },
	});
	bus = {
		env: {
			MONGO_URL: `mongodb://127.0.0.1:${mongoPort}/rocketchat`,
			TRANSPORTER: `nats://127.0.0.1:${natsPort}`,
			LICENSE_CHECK_INTERVAL: '1',
		},
	};
	const rcPort = await freePort();
	start('monolith', [process.execPath, 'main.js'], {
		cwd: ROCKETCHAT,
		env: { ...bus.env, PORT: String(rcPort), STANDIN_BOOT_SECONDS: '0', ROCKETCHAT_LICENSE: 'lab licence without modules' },
		etc: { version: '8.1.0', migration: '801' },
	});
	await until('the monolith', async () => (await get(rcPort, '/readyz')).status === 200);
});

test.after(async () => {
	for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
	await Promise.all(children.map((c) => c.exited));
	fs.rmSync(work, { recursive: true, force: true });
});

async function service(image, env = {}, wrap = []) {
	const port = await freePort();
	const child = start(image, [...wrap, process.execPath, 'main.js'], {
		cwd: SERVICES,
		env: { ...bus.env, PORT: String(port), ...env },
		etc: { version: '8.1.0', service: image },
	});
	child.port = port;
	return child;
}

test('ddp-streamer answers a DDP connect on /websocket with connected', { skip }, async () => {
	const ddp = await service('ddp-streamer-service');
	await until('ddp-streamer /health', async () => (await get(ddp.port, '/health')).body === 'ok');
	const ws = new WebSocket(`ws://127.0.0.1:${ddp.port}/websocket`);
	// Every listener before the first event: the server's first frame can come in the same read
	// as the 101, and ws emits it at once.
	const replies = [];
	const conversation = new Promise((resolve, reject) => {
		ws.on('error', reject);
		ws.on('message', (m) => {
			replies.push(JSON.parse(String(m)));
			if (replies.length === 1) ws.send(JSON.stringify({ msg: 'connect', version: '1', support: ['1'] }));
			else resolve();
		});
	});
	const status = new Promise((resolve) => ws.on('upgrade', (res) => resolve(res.statusCode)));
	await Promise.race([conversation, sleep(20000).then(() => Promise.reject(new Error(`no DDP reply within 20 s: ${JSON.stringify(replies)}`)))]);
	assert.strictEqual(await status, 101);
	ws.close();
	assert.deepStrictEqual(replies[0], { server_id: '0' });
	assert.strictEqual(replies[1].msg, 'connected');
});

test('ddp-streamer counts open sessions in users_connected and cuts them without a close frame on SIGTERM', { skip }, async () => {
	const metricsPort = await freePort();
	const ddp = await service('ddp-streamer-service', { MS_METRICS: 'true', MS_METRICS_PORT: String(metricsPort) });
	await until('ddp-streamer /health', async () => (await get(ddp.port, '/health')).body === 'ok');
	const sessions = async () => {
		const { body } = await get(metricsPort, '/metrics');
		return body.split('\n').filter((l) => l.startsWith('users_connected{')).reduce((n, l) => n + Number(l.split(' ').pop()), 0);
	};
	const open = () =>
		new Promise((resolve, reject) => {
			const ws = new WebSocket(`ws://127.0.0.1:${ddp.port}/websocket`);
			ws.on('error', reject);
			ws.on('open', () => resolve(ws));
		});
	const [a, b] = [await open(), await open()];
	await until('two sessions counted', async () => (await sessions()) === 2);
	a.close();
	await until('one session counted', async () => (await sessions()) === 1);
	// DDPStreamer.stopped(): client.terminate(), so the client sees the socket end with no close frame (1006).
	const closed = new Promise((resolve) => b.on('close', (code) => resolve(code)));
	ddp.kill('SIGTERM');
	assert.strictEqual(await closed, 1006);
	assert.strictEqual(await ddp.exited, 0);
});

test('without the scalability module the first of two nodes of a service stops itself', { skip }, async () => {
	const a = await service('account-service');
	const b = await service('account-service');
	await until('both account services', async () => (await get(a.port, '/health')).body === 'ok' && (await get(b.port, '/health')).body === 'ok');
	const code = await Promise.race([Promise.race([a.exited, b.exited]), sleep(15000).then(() => 'still running')]);
	assert.notStrictEqual(code, 'still running', 'neither node stopped');
	const stopped = a.exitCode !== null ? a : b;
	assert.match(stopped.output, /Enterprise license not found\. Shutting down\.\.\./);
	const survivor = stopped === a ? b : a;
	assert.strictEqual(survivor.exitCode, null, 'the other node must keep running');
});

test('a monolith+ transporter is refused by the service', { skip }, async () => {
	const bad = await service('presence-service', { TRANSPORTER: bus.env.TRANSPORTER.replace('nats://', 'monolith+nats://') });
	assert.notStrictEqual(await bad.exited, 0);
	assert.match(bad.output, /transporter/i);
});

test('two services with the same host name and PID stop on the node-ID conflict', { skip: skip || (process.getuid() !== 0 && 'needs root for unshare') }, async () => {
	// Each in a PID namespace of its own: both are PID 1 on the same host name, as two containers
	// with host networking are.
	const wrap = ['unshare', '--pid', '--fork', '--kill-child'];
	const a = await service('presence-service', {}, wrap);
	await until('the first presence service', async () => (await get(a.port, '/health')).body === 'ok');
	const b = await service('presence-service', {}, wrap);
	const code = await Promise.race([Promise.race([a.exited, b.exited]), sleep(15000).then(() => 'still running')]);
	assert.notStrictEqual(code, 'still running', 'no node stopped on the conflict');
	assert.match(a.output + b.output, /nodeID conflict/);
});

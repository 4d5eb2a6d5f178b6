'use strict';
// The lab's stand-in for Rocket.Chat's microservice images (tests/lab/README.md, "Rocket.Chat
// microservices"). One program for every service; the image says which (/etc/standin/service)
// and which release (/etc/standin/version). It links the libraries the real services link: the
// MongoDB Node driver for MONGO_URL, moleculer with the NATS client for TRANSPORTER (so a
// `monolith+nats://` value, a wrong password or a duplicate node ID fail as they fail there), and
// `ws` for ddp-streamer's WebSocket.
const crypto = require('crypto');
const fs = require('fs');
const os = require('os');
const http = require('http');

const { serviceFor } = require('./lib/services');
const { enterpriseCheck } = require('./lib/enterprise-check');
const { attachClient, sockjsInfo } = require('./lib/ddp');

const env = (k) => (process.env[k] === undefined || process.env[k] === '' ? undefined : process.env[k]);
const log = (line) => process.stdout.write(`${line}\n`);

const etc = process.env.STANDIN_ETC_FOR_LOCAL_TESTS_ONLY || '/etc/standin';
const baked = (name) => {
	try {
		return fs.readFileSync(`${etc}/${name}`, 'utf8').trim();
	} catch {
		return undefined;
	}
};
const version = baked('version');
const image = baked('service');
if (!version || !image) {
	console.error('rocketchat service stand-in: /etc/standin/version or /etc/standin/service is missing from the image');
	process.exit(1);
}
const service = serviceFor(image);
const port = Number.parseInt(env('PORT') ?? String(service.defaultPort), 10);

// The broker as network-broker/src/moleculer.ts builds it: no nodeID (moleculer's default,
// hostname-pid: two services sharing a host name with the same PID collide) except on
// ddp-streamer, whose service.ts sets `${os.hostname().toLowerCase()}-${InstanceStatus.id()}`
// (a random id, so ddp-streamers never collide); TRANSPORTER
// as given (moleculer refuses what it cannot resolve), metrics on MS_METRICS_PORT when MS_METRICS
// is 'true'. The serializer is moleculer's JSON where Rocket.Chat has EJSON (the same text for
// the plain values the lab exchanges; the monolith stand-in uses JSON as well).
function createBroker() {
	const { ServiceBroker } = require('moleculer');
	const int = (k, dflt) => Number.parseInt(env(k) ?? dflt, 10);
	const nodeID = service.image === 'ddp-streamer-service' ? `${os.hostname().toLowerCase()}-${crypto.randomUUID()}` : undefined;
	return new ServiceBroker({
		...(nodeID && { nodeID }),
		namespace: env('MS_NAMESPACE') ?? '',
		transporter: env('TRANSPORTER') ?? '',
		serializer: 'JSON',
		logLevel: env('MOLECULER_LOG_LEVEL') ?? 'warn',
		requestTimeout: int('REQUEST_TIMEOUT', '60') * 1000,
		heartbeatInterval: int('HEARTBEAT_INTERVAL', '10'),
		heartbeatTimeout: int('HEARTBEAT_TIMEOUT', '30'),
		metrics: {
			enabled: env('MS_METRICS') === 'true',
			reporter: [{ type: 'Prometheus', options: { port: int('MS_METRICS_PORT', '9458') } }],
		},
	});
}

// NetworkBroker.call: a service that is not on the bus gives an Error value, not a throw.
async function callIfAvailable(broker, method, params) {
	const services = await broker.call('$node.services', { onlyAvailable: true });
	if (!services.find((s) => s.name === method.split('.')[0])) {
		return new Error('method-not-available');
	}
	return broker.call(method, params);
}

// `/health` as every service answers it (e.g. presence-service/src/service.ts): `ok` while the
// broker can list the nodes, 500 `not healthy` otherwise. ddp-streamer answers every other path
// with SockJS' info document and takes WebSockets on the same port (DDPStreamer.ts).
// ddp-streamer's WebSocket server, once it listens (DDPStreamer.started()).
let wss;

function listen(broker) {
	const server = http.createServer(async (req, res) => {
		const path = (req.url || '/').split('?')[0];
		if (path === '/health') {
			try {
				await broker.call('$node.list');
				res.end('ok');
			} catch (err) {
				console.error('Service not healthy', err.message);
				res.writeHead(500);
				res.end('not healthy');
			}
			return;
		}
		if (service.image === 'ddp-streamer-service') {
			res.setHeader('Access-Control-Allow-Origin', '*');
			res.setHeader('Content-Type', 'application/json');
			res.writeHead(200);
			res.end(sockjsInfo());
			return;
		}
		res.writeHead(404);
		res.end();
	});
	if (service.image === 'ddp-streamer-service') {
		const WebSocket = require('ws');
		wss = new WebSocket.Server({ server });
		// DDPStreamer.created(): the `users_connected` gauge per node, one up when a Client is
		// made (Client.ts emits CONNECTED in its constructor), one down when its socket closes.
		const nodeID = broker.nodeID;
		wss.on('connection', (ws, req) => {
			attachClient(ws, req.url);
			broker.metrics.increment('users_connected', { nodeID }, 1);
			ws.on('close', () => broker.metrics.decrement('users_connected', { nodeID }, 1));
		});
	}
	server.listen(port, () => log(`${service.image} ${version}: listening on ${port}`));
}

async function main() {
	// getConnection(): the service does not start without its database.
	const { MongoClient } = require('mongodb');
	const mongoUrl = env('MONGO_URL') || 'mongodb://localhost:27017/rocketchat';
	const client = new MongoClient(mongoUrl);
	await client.connect();
	await client.db().command({ ping: 1 });

	const broker = createBroker();
	// Every service but `license` depends on `license` (NetworkBroker.createService), so
	// broker.start() returns only once the monolith, which runs it, is on the bus;
	// omnichannel-transcript also waits for queue-worker (its service.ts).
	if (service.image === 'ddp-streamer-service') {
		broker.metrics.register({ name: 'users_connected', type: 'gauge', labelNames: ['nodeID'], description: 'Users connected by streamer' });
	}
	broker.createService({
		name: service.moleculerName,
		dependencies: ['license', ...(service.dependsOn || [])],
		mixins: [enterpriseCheck(process.env)],
		actions: { version: () => version },
		// DDPStreamer.stopped(), run by moleculer's SIGTERM handler (broker.stop()): every
		// client's socket is terminated (no WebSocket close frame), then the servers close.
		stopped() {
			wss?.clients.forEach((client) => client.terminate());
			wss?.close();
		},
	});
	await broker.start();
	log(`${service.image} ${version}: node ${broker.nodeID} started (moleculer service '${service.moleculerName}')`);
	if (service.image === 'ddp-streamer-service') {
		// DDPStreamer.started(): asks the monolith for the client versions first, then listens.
		await callIfAvailable(broker, 'meteor.getAutoUpdateClientVersions');
	}
	listen(broker);
}

main().catch((err) => {
	console.error(`${service.image} ${version}: ${err.message}`);
	process.exit(1);
});

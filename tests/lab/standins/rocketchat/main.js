'use strict';
// The lab's Rocket.Chat stand-in (tests/lab/README.md, "Rocket.Chat"): the HTTP endpoints,
// settings, migrations and metrics rcfleet depends on, on the client libraries the real server
// links against (the MongoDB Node driver, moleculer with the NATS client), so MONGO_URL and
// TRANSPORTER are read by the same code that reads them in production.
const crypto = require('crypto');
const fs = require('fs');
const http = require('http');

const { getTransporter, isRunningMs } = require('./lib/transporter');
const { redactUrl, urlSecrets, installScrubber } = require('./lib/redact');
const { migrateDatabase } = require('./lib/migrations');
const settings = require('./lib/settings');

// Exit at once, no drain: the real server does not drain either, and PID 1 in a container
// ignores SIGTERM unless a handler is installed.
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));

// How long after registering its settings an instance configures its metrics server. The real
// server does it in Meteor.startup, after every setting is registered, while its settings cache
// follows the database: another instance's write that lands in this window is what it sees
// (collectMetrics.ts, SettingsRegistry.ts; tests/lab/README.md).
const SETTINGS_SETTLE_MS = 2000;

const env = (k) => (process.env[k] === undefined || process.env[k] === '' ? undefined : process.env[k]);
const seconds = (k, dflt) => {
	const n = Number.parseFloat(env(k) ?? '');
	return Number.isFinite(n) ? Math.max(0, n) : dflt;
};
const log = (line) => process.stdout.write(`${line}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// What the image says it is: never read from the environment.
const etc = process.env.STANDIN_ETC_FOR_LOCAL_TESTS_ONLY || '/etc/standin';
const baked = (name) => {
	try {
		return fs.readFileSync(`${etc}/${name}`, 'utf8').trim();
	} catch {
		return undefined;
	}
};
const version = baked('version');
if (!version) {
	console.error('rocketchat stand-in: /etc/standin/version is missing from the image');
	process.exit(1);
}
const broken = baked('broken') !== undefined;
// A release whose start fails after its migrations ran (the lab's 8.3.0-rc.1): the case a
// rollback must not answer by starting the old release on the migrated database.
const brokenAfterMigration = baked('broken-after-migration') !== undefined;
const migrationVersion = Number.parseInt(baked('migration') ?? '', 10);
if (!Number.isInteger(migrationVersion) || migrationVersion <= 0) {
	console.error('rocketchat stand-in: /etc/standin/migration is missing from the image');
	process.exit(1);
}
// Info.build.date of the real server: the lock is stolen from another build (migrations.ts).
const build = baked('build') || version;

const mongoUrl = env('MONGO_URL') || 'mongodb://mongo:27017/rocketchat';
installScrubber([...urlSecrets(mongoUrl), ...urlSecrets(env('TRANSPORTER'))]);

// Microservices mode takes TRANSPORTER as it is (registerEEBroker); otherwise getTransporter
// throws `invalid transporter` (exit 1) before anything else starts, as the real server does.
const microservices = isRunningMs(env('TRANSPORTER'));
const transporter = microservices
	? env('TRANSPORTER')
	: getTransporter({ transporter: env('TRANSPORTER'), port: env('TCP_PORT'), extra: env('TRANSPORTER_EXTRA') });
// The licence (the Helm chart passes it as ROCKETCHAT_LICENSE). In the lab any string is a
// licence, and one that contains a module's name carries that module.
const license = env('ROCKETCHAT_LICENSE');

const port = Number.parseInt(env('PORT') ?? '3000', 10);
const bindIp = env('BIND_IP') || '0.0.0.0';
const instance = env('INSTANCE_IP') || bindIp;
const bootMs = seconds('STANDIN_BOOT_SECONDS', 3) * 1000;
const migrationSeconds = seconds('STANDIN_MIGRATION_SECONDS', 2);
const rootUrl = env('ROOT_URL') || `http://localhost:${port}`;
// Process-local, read before the setting (collectMetrics.ts: `process.env.PROMETHEUS_PORT ||
// settings.get('Prometheus_Port')`).
const processMetricsPort = env('PROMETHEUS_PORT') ? Number.parseInt(env('PROMETHEUS_PORT'), 10) : undefined;
const overwrites = settings.overwritesFrom(process.env);
const pressureEvery = Number.parseInt(env('STANDIN_READYZ_PRESSURE_EVERY') ?? '0', 10) || 0;
const majorMinor = version.split('.').slice(0, 2).join('.');
const started = Date.now();

// InstanceStatus.id(): a Meteor Random.id(), 17 characters of its unmistakable alphabet, new for
// every process; it is the moleculer nodeID, so two instances never share one.
const UNMISTAKABLE = '23456789ABCDEFGHJKLMNPQRSTWXYZabcdefghijkmnopqrstuvwxyz';
const randomId = () => Array.from({ length: 17 }, () => UNMISTAKABLE[crypto.randomInt(UNMISTAKABLE.length)]).join('');
const instanceId = randomId();

const state = { db: undefined, migrated: false, broker: undefined };

function json(res, status, body) {
	res.writeHead(status, {
		'Content-Type': 'application/json',
		'Cache-Control': 'no-store, no-cache, must-revalidate',
		Connection: 'close',
	});
	res.end(typeof body === 'string' ? body : JSON.stringify(body));
}

function text(res, status, body, type = 'text/plain; charset=utf-8') {
	res.writeHead(status, { 'Content-Type': type, 'Cache-Control': 'no-store, no-cache, must-revalidate', Connection: 'close' });
	res.end(body);
}

// A ping that answers within a probe's time: the driver would wait up to its server selection
// timeout (30 s) for a MongoDB that went away; the probe counts that as unavailable at once.
async function mongoAnswers() {
	if (!state.db) return false;
	const timeout = sleep(1500).then(() => false);
	const ping = state.db.command({ ping: 1 }).then(() => true, () => false);
	return Promise.race([ping, timeout]);
}

async function ready() {
	if (broken || !state.migrated || Date.now() - started < bootMs) return false;
	if (typeof transporter === 'string' && !(state.broker && state.broker.transit && state.broker.transit.connected)) return false;
	return mongoAnswers();
}

let probes = 0;
const server = http.createServer(async (req, res) => {
	const path = (req.url || '/').split('?')[0];
	res.on('finish', () => log(`${new Date().toISOString()} ${req.socket.remoteAddress}:${req.socket.remotePort} ${req.method} ${req.url} ${res.statusCode}`));
	switch (path) {
		case '/health':
			return json(res, 200, '{"status":"ok"}');
		case '/livez':
		case '/readyz': {
			const ok = await ready();
			probes += 1;
			// Load the real /readyz and /livez (7.11+) refuse on: one heap or event-loop sample
			// over its threshold answers 503 (apps/meteor/server/routes/health.ts). With
			// STANDIN_READYZ_PRESSURE_EVERY=N, every Nth call of a ready instance is such a sample.
			if (ok && pressureEvery > 0 && probes % pressureEvery === 0) {
				return json(res, 503, '{"status":"error","reason":"heap usage above 85%"}');
			}
			return json(res, ok ? 200 : 503, ok ? '{"status":"ok"}' : '{"status":"unavailable"}');
		}
		case '/api/info':
			return json(res, 200, { version: majorMinor, success: true });
		case '/':
			return text(res, 200, `Rocket.Chat stand-in ${version} instance ${instance}:${port}\n`);
		default:
			return json(res, 404, '{"success":false,"error":"not found"}');
	}
});
server.on('error', (e) => {
	console.error(`Error: cannot listen on ${bindIp}:${port}: ${e.message}`);
	process.exit(1);
});
server.listen(port, bindIp);

const bar = '+--------------------------------------------------+';
for (const line of [
	bar,
	'|                  SERVER RUNNING                  |',
	bar,
	`|  Rocket.Chat Version: ${version} (lab stand-in${broken ? ', BROKEN: never ready' : ''})`,
	`|       Process Port: ${port}`,
	`|           Site URL: ${rootUrl}`,
	`|          Instance: ${instance}:${port} (${instanceId})`,
	`|          MongoDB: ${redactUrl(mongoUrl)}`,
	`|        Transporter: ${env('TRANSPORTER') ? redactUrl(env('TRANSPORTER')) : '(TCP, none set)'}`,
	`|   Migration version: ${migrationVersion}`,
	bar,
]) {
	log(line);
}

// The network broker, as Rocket.Chat's InstanceService builds it for a monolith with NATS
// (ee/server/local-services/instance/service.ts: `new Transporters.NATS({ url })`, nodeID
// InstanceStatus.id()). moleculer retries a refused connection by itself; readiness follows
// `transit.connected`.
//
// In microservices mode the broker is network-broker's startBroker() instead (registerEEBroker in
// apps/meteor/ee/server/startup/index.ts): TRANSPORTER as given, moleculer's default nodeID
// (host name and PID, so two monoliths that share both collide), and the monolith's services on
// the bus; of those the lab models the two the microservices call first: `license`
// (hasValidLicense, which every service's EnterpriseCheck asks) and `meteor`
// (getAutoUpdateClientVersions, which ddp-streamer asks before it listens).
function startBroker(url) {
	const { ServiceBroker, Transporters } = require('moleculer');
	const logger = { type: 'Console', options: { level: 'info', colors: false, moduleColors: false, formatter: 'short' } };
	const broker = microservices
		? new ServiceBroker({ transporter: url, serializer: 'JSON', logger })
		: new ServiceBroker({ nodeID: instanceId, transporter: url.startsWith('nats://') ? new Transporters.NATS({ url }) : url, logger });
	if (microservices) {
		broker.createService({
			name: 'license',
			actions: { hasValidLicense: (ctx) => hasLicenseModules(ctx.params) },
		});
		broker.createService({
			name: 'meteor',
			dependencies: ['license'],
			actions: { getAutoUpdateClientVersions: () => ({}) },
		});
	}
	state.broker = broker;
	broker.start().then(
		() => log(`moleculer: node ${broker.nodeID} connected to ${redactUrl(url)}`),
		(e) => log(`moleculer: broker did not start: ${e.message}`),
	);
}

// License.hasValidLicense(modules): a licence, carrying every module asked for. NetworkBroker
// calls actions with the method's arguments as an array (`serviceInstance[method](...ctx.params)`).
function hasLicenseModules(params) {
	const modules = Array.isArray(params) ? params.flat() : [];
	return Boolean(license) && modules.every((m) => license.includes(m));
}

async function connectMongo() {
	const { MongoClient } = require('mongodb');
	let said = '';
	for (;;) {
		const client = new MongoClient(mongoUrl);
		try {
			await client.connect();
			log(`MongoDB: connected (${redactUrl(mongoUrl)})`);
			return client;
		} catch (e) {
			const why = `${e.name}: ${e.message}`;
			if (why !== said) {
				log(`MongoDB: waiting (${why})`);
				said = why;
			}
			await client.close().catch(() => {});
			await sleep(1000);
		}
	}
}

// Retried while MongoDB does not answer; each new reason logged once.
async function retrying(what, fn) {
	let said = '';
	for (;;) {
		try {
			return await fn();
		} catch (e) {
			const why = `${e.name}: ${e.message}`;
			if (why !== said) {
				log(`${what}: waiting for MongoDB (${why})`);
				said = why;
			}
			await sleep(500);
		}
	}
}

async function configureMetrics(settingsCollection) {
	const [enabled, storedPort] = await retrying('settings', async () => [
		await settings.get(settingsCollection, 'Prometheus_Enabled'),
		await settings.get(settingsCollection, 'Prometheus_Port'),
	]);
	if (enabled !== true) {
		log('Prometheus metrics disabled (setting Prometheus_Enabled)');
		return;
	}
	const uniqueId = await retrying('settings', () => settings.get(settingsCollection, 'uniqueID'));
	let metricsPort = 9458;
	let from = 'default';
	if (processMetricsPort) {
		[metricsPort, from] = [processMetricsPort, 'PROMETHEUS_PORT'];
	} else if (Number.isInteger(storedPort)) {
		[metricsPort, from] = [storedPort, `setting Prometheus_Port, stored ${storedPort}`];
	}
	const metrics = http.createServer((req, res) => {
		const path = (req.url || '/').split('?')[0];
		if (path === '/metrics') {
			return text(
				res,
				200,
				[
					'# HELP rocketchat_info Rocket.Chat info',
					'# TYPE rocketchat_info gauge',
					`rocketchat_info{version="${version}",unique_id="${uniqueId}",site_url="${rootUrl}"} 1`,
					'# HELP rocketchat_version Rocket.Chat version',
					'# TYPE rocketchat_version gauge',
					`rocketchat_version{version="${version}"} 1`,
					'# HELP rocketchat_migration migration',
					'# TYPE rocketchat_migration gauge',
					`rocketchat_migration ${migrationVersion}`,
					'',
				].join('\n'),
				'text/plain; version=0.0.4; charset=utf-8',
			);
		}
		if (path === '/') return text(res, 200, '<html><body><a href="/metrics">metrics</a></body></html>', 'text/html');
		return text(res, 404, 'not found');
	});
	// Node's listen error, left unhandled by collectMetrics.ts: no metrics from this instance;
	// the rest of the server runs on.
	metrics.on('error', (e) => log(`Error: ${e.message} (port from ${from})`));
	metrics.listen(metricsPort, bindIp, () => log(`Prometheus metrics on ${bindIp}:${metricsPort}/metrics (port from ${from})`));
}

async function boot() {
	if (typeof transporter === 'string') {
		startBroker(transporter);
	}
	const client = await connectMongo();
	// The database MONGO_URL names (the driver's default, `test`, when none).
	const db = client.db();
	state.db = db;
	if (broken) {
		// The lab's broken release fails before its migrations: it never finishes booting, so it
		// never migrates the database and never becomes ready (tests/lab/README.md says why).
		log('Boot does not finish (lab stand-in: a broken release, never ready)');
		return;
	}
	const settingsCollection = db.collection('rocketchat_settings');
	const defaults = [
		['Prometheus_Enabled', false],
		['Prometheus_Port', 9458],
		['uniqueID', randomId()],
	];
	await retrying('settings', () => settings.register(settingsCollection, defaults, overwrites));
	const registered = Date.now();
	// Outside any retry: a database a newer release migrated stops the server here, as it does
	// the real one (an unhandled rejection: Node prints the error and exits 1).
	await migrateDatabase(db.collection('migrations'), {
		latest: migrationVersion,
		build,
		versionText: version,
		migrationSeconds,
		log: (l) => log(`Migrations: ${l}`),
		warn: (l) => log(`Migrations: WARN ${l}`),
	});
	if (brokenAfterMigration) {
		log('Boot does not finish after the migrations (lab stand-in: a broken release, never ready)');
		return;
	}
	state.migrated = true;
	await sleep(Math.max(0, registered + SETTINGS_SETTLE_MS - Date.now()));
	await configureMetrics(settingsCollection);
}

boot();

'use strict';
// Rocket.Chat's microservices as their images run them (shared/reference/microservices-and-mongodb.md,
// A.1 and A.4): the moleculer service each registers (`protected name = ...` in its ServiceClass),
// and the HTTP port its code falls back to when PORT is unset (ee/apps/*/src/service.ts; the
// images set PORT=3000, so the fallback only matters outside them).
const SERVICES = {
	'account-service': { moleculerName: 'accounts', defaultPort: 3033 },
	'authorization-service': { moleculerName: 'authorization', defaultPort: 3034 },
	'presence-service': { moleculerName: 'presence', defaultPort: 3031 },
	'ddp-streamer-service': { moleculerName: 'streamer', defaultPort: 4000 },
	'queue-worker-service': { moleculerName: 'queue-worker', defaultPort: 3038 },
	'omnichannel-transcript-service': { moleculerName: 'omnichannel-transcript', defaultPort: 3036, dependsOn: ['queue-worker'] },
	// Removed in 8.0.0 (PR #35964): no 8.x image exists, so the lab builds none either.
	'stream-hub-service': { moleculerName: 'hub', defaultPort: 3035, lastMajor: 7 },
};

function serviceFor(image) {
	const service = SERVICES[image];
	if (!service) {
		throw new Error(`unknown Rocket.Chat service image '${image}' (known: ${Object.keys(SERVICES).join(', ')})`);
	}
	return { image, ...service };
}

module.exports = { SERVICES, serviceFor };

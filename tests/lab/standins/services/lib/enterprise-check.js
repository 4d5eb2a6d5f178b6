'use strict';
// The licence rule every Rocket.Chat service carries (ee/packages/network-broker/src/EnterpriseCheck.ts,
// mixed into every non-internal service by NetworkBroker.createService): every
// LICENSE_CHECK_INTERVAL seconds (20) it asks the `license` service on the bus whether the
// licence has the `scalability` module; after MAX_FAILS (2) failed checks in a row, the first of
// the nodes running this service (sorted by nodeID), or a lone one, stops the broker with
// `broker.fatal('Enterprise license not found. Shutting down...')`.
function enterpriseCheck(env = process.env) {
	const interval = (Number.parseInt(env.LICENSE_CHECK_INTERVAL ?? '20', 10) || 20) * 1000;
	const maxFails = Number.parseInt(env.MAX_FAILS ?? '2', 10) || 2;
	let checkFails = 0;
	return {
		name: 'EnterpriseCheck',
		methods: {
			async shouldShutdown() {
				const services = await this.broker.call('$node.services', { skipInternal: true });
				const current = services.find((service) => service.name === this.name);
				if (!current) {
					return true;
				}
				const nodes = current.nodes.slice().sort();
				const first = nodes.shift();
				return first === this.broker.nodeID && (nodes.length > 0 || services.length === 1);
			},
		},
		started() {
			this.licenseTimer = setInterval(async () => {
				try {
					if (await this.broker.call('license.hasValidLicense', ['scalability'])) {
						checkFails = 0;
						return;
					}
				} catch {
					// a failed call counts as a failed check
				}
				if (++checkFails < maxFails) {
					return;
				}
				if (await this.shouldShutdown()) {
					this.broker.fatal('Enterprise license not found. Shutting down...');
				}
			}, interval);
		},
		stopped() {
			clearInterval(this.licenseTimer);
		},
	};
}

module.exports = { enterpriseCheck };

'use strict';
// TRANSPORTER as Rocket.Chat's getTransporter reads it (packages/network-broker, getTransporter.ts):
// a value must start with `monolith+` (anything else throws `invalid transporter`), and every `+`
// is removed from it (`transporter.split('+')`, the tail joined with ''), so
// `monolith+nats://u:p@h:4222` gives `nats://u:p@h:4222`. Credentials are left percent-encoded,
// as moleculer takes them from `new URL()` (fidelity audit C). Unset: moleculer's TCP
// transporter options (not started by the stand-in, see tests/lab/README.md).
function getTransporter({ transporter, port, extra } = {}) {
	if (transporter) {
		if (!/^monolith\+/.test(transporter)) {
			throw new Error('invalid transporter');
		}
		return transporter.split('+').slice(1).join('');
	}
	return {
		port: port ? port.trim() : 0,
		udpDiscovery: false,
		useHostname: false,
		...(extra ? JSON.parse(extra) : {}),
	};
}

// isRunningMs (apps/meteor/server/lib/isRunningMs.ts): a TRANSPORTER that starts with `nats` or
// `TCP` puts the server in microservices mode; `monolith+...` does not.
function isRunningMs(transporter) {
	return /^(?:nats|TCP)/.test(transporter || '');
}

module.exports = { getTransporter, isRunningMs };

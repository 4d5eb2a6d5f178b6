'use strict';
const test = require('node:test');
const assert = require('node:assert');
const { FakeCollection } = require('./fake-collection');
const { getTransporter } = require('../lib/transporter');
const { redactUrl, urlSecrets, scrub } = require('../lib/redact');
const settings = require('../lib/settings');

test('TRANSPORTER: monolith+ is required and every + is removed, credentials left encoded', () => {
	assert.strictEqual(getTransporter({ transporter: 'monolith+nats://address' }), 'nats://address');
	assert.strictEqual(getTransporter({ transporter: 'monolith+nats://rc:p%40ss@10.0.0.1:4222' }), 'nats://rc:p%40ss@10.0.0.1:4222');
	assert.throws(() => getTransporter({ transporter: 'nats://10.0.0.1:4222' }), { message: 'invalid transporter' });
	assert.throws(() => getTransporter({ transporter: 'Monolith+nats://x' }), { message: 'invalid transporter' });
	assert.deepStrictEqual(getTransporter({}), { port: 0, udpDiscovery: false, useHostname: false });
});

test('credentials never shown', () => {
	assert.strictEqual(redactUrl('mongodb://rocketchat:s3cr%2Ft@db:27017/rc?replicaSet=rs0'), 'mongodb://***@db:27017/rc?replicaSet=rs0');
	assert.strictEqual(redactUrl('mongodb://db:27017/rc'), 'mongodb://db:27017/rc');
	const secrets = urlSecrets('mongodb://rocketchat:s3cr%2Ft@db:27017/rc');
	assert.deepStrictEqual(secrets.sort(), ['s3cr%2Ft', 's3cr/t'].sort());
	assert.strictEqual(scrub('auth s3cr/t and s3cr%2Ft', secrets), 'auth *** and ***');
	assert.deepStrictEqual(urlSecrets('nats://10.0.0.1:4222'), []);
});

test('OVERWRITE_SETTING_ values are saved when they differ; defaults only where nothing is stored', async () => {
	const c = new FakeCollection([{ _id: 'Prometheus_Port', value: 9460 }]);
	const overwrites = settings.overwritesFrom({ OVERWRITE_SETTING_Prometheus_Enabled: 'true', OVERWRITE_SETTING_Site_Name: 'Lab', OTHER: 'x', OVERWRITE_SETTING_Empty: '' });
	assert.deepStrictEqual(overwrites, [['Prometheus_Enabled', true], ['Site_Name', 'Lab']]);
	await settings.register(c, [['Prometheus_Enabled', false], ['Prometheus_Port', 9458]], overwrites);
	assert.strictEqual(await settings.get(c, 'Prometheus_Enabled'), true);
	assert.strictEqual(await settings.get(c, 'Prometheus_Port'), 9460, 'a stored value is not replaced by the default');
	assert.strictEqual(await settings.get(c, 'Site_Name'), 'Lab');
	const writes = c.calls.filter(([op]) => op === 'updateOne').length;
	await settings.register(c, [['Prometheus_Enabled', false], ['Prometheus_Port', 9458]], overwrites);
	assert.strictEqual(c.calls.filter(([op]) => op === 'updateOne').length, writes, 'an unchanged value is not written again');
	assert.strictEqual(settings.settingValue('9458'), 9458);
	assert.strictEqual(settings.settingValue('false'), false);
	assert.strictEqual(settings.settingValue('completed'), 'completed');
});

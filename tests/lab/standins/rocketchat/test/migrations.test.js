'use strict';
const test = require('node:test');
const assert = require('node:assert');
const { FakeCollection } = require('./fake-collection');
const { migrateDatabase } = require('../lib/migrations');

function options(extra = {}) {
	const said = [];
	const slept = [];
	return {
		said,
		slept,
		opts: {
			latest: 801,
			build: 'build-8.1.0',
			versionText: '8.1.0',
			migrationSeconds: 2,
			log: (l) => said.push(l),
			sleep: async (ms) => slept.push(ms),
			exit: (code) => said.push(`exit ${code}`),
			...extra,
		},
	};
}

const control = (c) => c.docs.find((d) => d._id === 'control');

test('a fresh database is set to the release version, with no lock and no migration time', async () => {
	const c = new FakeCollection();
	const { opts, slept } = options();
	await migrateDatabase(c, opts);
	assert.deepStrictEqual(control(c), { _id: 'control', version: 801, locked: false });
	assert.deepStrictEqual(slept, []);
});

test('an older database is migrated forward under the lock, taking the migration time', async () => {
	const c = new FakeCollection([{ _id: 'control', version: 800, locked: false }]);
	const { opts, said, slept } = options();
	const seen = [];
	opts.sleep = async (ms) => {
		seen.push({ ...control(c) });
		slept.push(ms);
	};
	await migrateDatabase(c, opts);
	assert.strictEqual(seen[0].locked, true, 'the lock is held while migrating');
	assert.strictEqual(seen[0].buildAt, 'build-8.1.0');
	assert.deepStrictEqual(slept, [2000]);
	assert.strictEqual(control(c).version, 801);
	assert.strictEqual(control(c).locked, false);
	assert.ok(said.includes('Migrating from version 800 -> 801'), said.join('\n'));
	assert.ok(said.includes('Finished migrating.'));
});

test('at its own version: not migrating, unlocked', async () => {
	const c = new FakeCollection([{ _id: 'control', version: 801, locked: false }]);
	const { opts, said, slept } = options();
	await migrateDatabase(c, opts);
	assert.ok(said.includes('Not migrating, already at version 801'));
	assert.deepStrictEqual(slept, []);
	assert.strictEqual(control(c).locked, false);
});

test('a database a newer release migrated: "Can\'t find migration version", lock left taken', async () => {
	const c = new FakeCollection([{ _id: 'control', version: 900, locked: false, buildAt: 'build-9.0.0' }]);
	const { opts } = options();
	await assert.rejects(migrateDatabase(c, opts), { message: "Can't find migration version 900" });
	assert.strictEqual(control(c).version, 900, 'never migrated down');
	assert.strictEqual(control(c).locked, true);
	assert.strictEqual(control(c).buildAt, 'build-8.1.0');
});

test('a lock held by the same build is waited for, 10 s at a time, and won once released', async () => {
	const c = new FakeCollection([{ _id: 'control', version: 800, locked: true, lockedAt: new Date(), buildAt: 'build-8.1.0' }]);
	const { opts, said, slept } = options();
	opts.sleep = async (ms) => {
		slept.push(ms);
		if (slept.length === 2) control(c).locked = false;
	};
	await migrateDatabase(c, opts);
	assert.deepStrictEqual(slept.slice(0, 2), [10000, 10000]);
	assert.ok(said[0].startsWith('Not migrating, control is locked. Attempt 0/30'), said[0]);
	assert.strictEqual(control(c).version, 801);
});

test('a lock held by the same build for 31 retries stops the server', async () => {
	const c = new FakeCollection([{ _id: 'control', version: 800, locked: true, lockedAt: new Date(), buildAt: 'build-8.1.0' }]);
	const { opts, said } = options({ maxAttempts: 2 });
	const errors = [];
	const original = console.error;
	console.error = (t) => errors.push(t);
	try {
		await migrateDatabase(c, opts);
	} finally {
		console.error = original;
	}
	assert.ok(said.includes('exit 1'), said.join('\n'));
	assert.match(errors.join('\n'), /Your database migration control is locked\./);
	assert.match(errors.join('\n'), /Database locked at version: 800/);
});

test('a lock from another build, or older than 5 minutes, is taken over', async () => {
	for (const held of [
		{ lockedAt: new Date(), buildAt: 'build-8.0.0' },
		{ lockedAt: new Date(Date.now() - 6 * 60 * 1000), buildAt: 'build-8.1.0' },
	]) {
		const c = new FakeCollection([{ _id: 'control', version: 800, locked: true, ...held }]);
		const { opts, slept } = options();
		await migrateDatabase(c, opts);
		assert.deepStrictEqual(slept, [2000]);
		assert.strictEqual(control(c).version, 801);
	}
});

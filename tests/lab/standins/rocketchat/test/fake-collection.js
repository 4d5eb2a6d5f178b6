'use strict';
// An in-memory collection with the operations and query operators the stand-in sends through
// the driver (findOne, updateOne, updateMany; equality, $or, $lt, $ne; $set, upsert), for unit
// tests without a server. Unknown operators throw, so a test cannot pass on a query the fake
// did not really evaluate.

function compare(a, b) {
	const x = a instanceof Date ? a.getTime() : a;
	const y = b instanceof Date ? b.getTime() : b;
	return x < y ? -1 : x > y ? 1 : 0;
}

function equal(a, b) {
	if (a instanceof Date || b instanceof Date) return a instanceof Date && b instanceof Date && a.getTime() === b.getTime();
	return a === b;
}

function matches(doc, filter) {
	return Object.entries(filter).every(([key, cond]) => {
		if (key === '$or') return cond.some((f) => matches(doc, f));
		if (key.startsWith('$')) throw new Error(`fake collection: unsupported operator ${key}`);
		const value = doc[key];
		if (cond !== null && typeof cond === 'object' && !(cond instanceof Date)) {
			return Object.entries(cond).every(([op, arg]) => {
				if (op === '$lt') return value !== undefined && compare(value, arg) < 0;
				if (op === '$ne') return !equal(value, arg);
				throw new Error(`fake collection: unsupported operator ${op}`);
			});
		}
		return equal(value, cond);
	});
}

class FakeCollection {
	constructor(docs = []) {
		this.docs = docs.map((d) => ({ ...d }));
		this.calls = [];
	}

	async findOne(filter) {
		this.calls.push(['findOne', filter]);
		const doc = this.docs.find((d) => matches(d, filter));
		return doc ? { ...doc } : null;
	}

	async update(filter, update, options, many) {
		const keys = Object.keys(update);
		if (keys.length !== 1 || keys[0] !== '$set') throw new Error(`fake collection: unsupported update ${keys}`);
		const hits = this.docs.filter((d) => matches(d, filter));
		const targets = many ? hits : hits.slice(0, 1);
		for (const d of targets) Object.assign(d, update.$set);
		if (targets.length === 0 && options && options.upsert) {
			const base = Object.fromEntries(Object.entries(filter).filter(([k, v]) => !k.startsWith('$') && (typeof v !== 'object' || v === null)));
			this.docs.push({ ...base, ...update.$set });
			return { matchedCount: 0, modifiedCount: 0, upsertedCount: 1 };
		}
		return { matchedCount: targets.length, modifiedCount: targets.length, upsertedCount: 0 };
	}

	async updateOne(filter, update, options) {
		this.calls.push(['updateOne', filter, update, options]);
		return this.update(filter, update, options, false);
	}

	async updateMany(filter, update, options) {
		this.calls.push(['updateMany', filter, update, options]);
		return this.update(filter, update, options, true);
	}
}

module.exports = { FakeCollection };

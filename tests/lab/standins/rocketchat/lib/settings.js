'use strict';
// The workspace's settings, as Rocket.Chat keeps them: the `rocketchat_settings` collection of
// MONGO_URL's database, shared by every instance. When an instance registers a setting, an
// OVERWRITE_SETTING_<id> value is saved to the database if it differs from the stored one
// (apps/meteor/app/settings/server/SettingsRegistry.ts, `add()`: `updateOne({ _id }, ...,
// { upsert: true })`); a setting stored nowhere is inserted with its default; a stored one is
// otherwise left as it is.

// An OVERWRITE_SETTING_ value as the setting's type takes it: booleans and integers as such,
// anything else as text.
function settingValue(text) {
	if (text === 'true') return true;
	if (text === 'false') return false;
	if (/^-?\d+$/.test(text)) return Number(text);
	return text;
}

function overwritesFrom(env) {
	return Object.entries(env)
		.filter(([k, v]) => k.startsWith('OVERWRITE_SETTING_') && v !== '')
		.map(([k, v]) => [k.slice('OVERWRITE_SETTING_'.length), settingValue(v)]);
}

async function stored(settings, id) {
	const doc = await settings.findOne({ _id: id });
	return doc ? { value: doc.value } : undefined;
}

async function register(settings, defaults, overwrites) {
	for (const [id, value] of overwrites) {
		const s = await stored(settings, id);
		if (!s || s.value !== value) {
			await settings.updateOne({ _id: id }, { $set: { value } }, { upsert: true });
		}
	}
	for (const [id, value] of defaults) {
		if (overwrites.some(([o]) => o === id)) continue;
		if (!(await stored(settings, id))) {
			await settings.updateOne({ _id: id }, { $set: { value } }, { upsert: true });
		}
	}
}

async function get(settings, id) {
	const s = await stored(settings, id);
	return s ? s.value : undefined;
}

module.exports = { settingValue, overwritesFrom, register, get };

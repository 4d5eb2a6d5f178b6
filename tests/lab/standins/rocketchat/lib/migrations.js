'use strict';
// Rocket.Chat's migration control, as the real server runs it at start
// (RocketChat/Rocket.Chat apps/meteor/server/lib/migrations.ts, `migrateDatabase`, called by
// `performMigrationProcedure` in server/startup/migrations/xrun.ts before the server is up):
//
// - one document `{_id: 'control', version, locked, lockedAt, buildAt}` in the `migrations`
//   collection; none yet means version 0;
// - version 0 is a fresh database: the control is set to the newest version this release knows,
//   nothing is run and no lock is taken;
// - otherwise the lock is taken with one atomic update whose filter matches only an unlocked
//   control, one locked more than 5 minutes ago, or one locked by another build (`buildAt`);
//   when it is not won: "Not migrating, control is locked. Attempt n/30", again in 10 s, and
//   after the 30th retry the "Your database migration control is locked." box and exit 1;
// - at the release's own version: "Not migrating, already at version N", unlocked;
// - a database at a version this release does not know, as one migrated by a newer release:
//   `throw new Error("Can't find migration version N")`, outside any catch, with the lock
//   still held, so the start fails (the real code looks the version up among its own
//   migrations, `startIdx === -1`);
// - older: every migration up to the release's own runs, the control following each, then
//   unlocked at the new version: "Finished migrating.".
//
// The lab's releases each know the migrations of every lab release up to their own, so the one
// thing the stand-in needs to know is its own version (baked into the image) and how long a
// migration takes (STANDIN_MIGRATION_SECONDS, a real one takes minutes).

const LOCK_STALE_MS = 5 * 60 * 1000;
const MAX_ATTEMPTS = 30;
const RETRY_SECONDS = 10;

async function setControl(migrations, { version, locked }) {
	await migrations.updateMany({ _id: 'control' }, { $set: { version, locked } }, { upsert: true });
}

async function getControl(migrations) {
	const control = await migrations.findOne({ _id: 'control' });
	if (control) {
		return control;
	}
	await setControl(migrations, { version: 0, locked: false });
	return { version: 0, locked: false };
}

async function lock(migrations, build, now) {
	const stale = new Date(now.getTime() - LOCK_STALE_MS);
	const result = await migrations.updateMany(
		{ _id: 'control', $or: [{ locked: false }, { lockedAt: { $lt: stale } }, { buildAt: { $ne: build } }] },
		{ $set: { locked: true, lockedAt: now, buildAt: build } },
	);
	return result.matchedCount === 1;
}

function errorBox(title, lines) {
	const width = Math.max(title.length, ...lines.map((l) => l.length)) + 4;
	const bar = `+${'-'.repeat(width)}+`;
	return [bar, `|  ${title.padEnd(width - 2)}|`, bar, ...lines.map((l) => `|  ${l.padEnd(width - 2)}|`), bar].join('\n');
}

/**
 * Runs the migration procedure against `migrations` (a collection: findOne, updateMany).
 * opts: { latest, build, versionText, migrationSeconds, log, warn, sleep, now, exit,
 *         maxAttempts, retrySeconds }
 * Resolves when the server may go on; throws "Can't find migration version N" on a database
 * a newer release migrated; calls opts.exit(1) when the lock is never won.
 */
async function migrateDatabase(migrations, opts) {
	const {
		latest,
		build,
		versionText = String(latest),
		migrationSeconds = 0,
		log = () => {},
		warn = log,
		sleep = (ms) => new Promise((r) => setTimeout(r, ms)),
		now = () => new Date(),
		exit = (code) => process.exit(code),
		maxAttempts = MAX_ATTEMPTS,
		retrySeconds = RETRY_SECONDS,
	} = opts;

	const control = await getControl(migrations);
	const current = control.version;
	if (current === 0) {
		await setControl(migrations, { version: latest, locked: false });
		return { from: 0, to: latest, fresh: true };
	}

	for (let attempt = 0; !(await lock(migrations, build, now())); attempt++) {
		if (attempt > maxAttempts) {
			const seen = await getControl(migrations);
			console.error(
				errorBox('ERROR! SERVER STOPPED', [
					'Your database migration control is locked.',
					'Please make sure you are running the latest version and try again.',
					'If the problem persists, please contact support.',
					'',
					`This Rocket.Chat version: ${versionText}`,
					`Database locked at version: ${seen.version}`,
					`Database target version: ${latest}`,
				]),
			);
			exit(1);
			return { from: current, to: current, locked: true };
		}
		warn(`Not migrating, control is locked. Attempt ${attempt}/${maxAttempts}. Trying again in ${retrySeconds} seconds.`);
		await sleep(retrySeconds * 1000);
	}

	if (current === latest) {
		log(`Not migrating, already at version ${latest}`);
		await setControl(migrations, { version: current, locked: false });
		return { from: current, to: current };
	}
	if (current > latest) {
		throw new Error(`Can't find migration version ${current}`);
	}

	log(`Migrating from version ${current} -> ${latest}`);
	log(`Running up() on version ${latest}`);
	await sleep(migrationSeconds * 1000);
	await setControl(migrations, { version: latest, locked: true });
	await setControl(migrations, { version: latest, locked: false });
	log('Finished migrating.');
	return { from: current, to: latest };
}

module.exports = { migrateDatabase, getControl, errorBox };

'use strict';
// Secrets never reach the logs: the user info of MONGO_URL and TRANSPORTER is shown as `***`,
// and every write to stdout/stderr (ours, the driver's, moleculer's, Node's own crash report)
// has the passwords, raw and percent-decoded, replaced.

function redactUrl(url) {
	return String(url).replace(/^([a-z][a-z0-9+.-]*:\/\/)[^@/]*@/i, '$1***@');
}

// The password in a URL's user info, as written and percent-decoded.
function urlSecrets(url) {
	const m = /^[a-z][a-z0-9+.-]*:\/\/([^@/]*)@/i.exec(String(url || ''));
	if (!m) {
		return [];
	}
	const userinfo = m[1];
	const colon = userinfo.indexOf(':');
	const raw = colon === -1 ? '' : userinfo.slice(colon + 1);
	const found = new Set([raw]);
	try {
		found.add(decodeURIComponent(raw));
	} catch {
		// A malformed escape: the raw text is all there is to hide.
	}
	return [...found].filter((s) => s.length > 0);
}

function scrub(text, secrets) {
	let out = text;
	for (const s of secrets) {
		out = out.split(s).join('***');
	}
	return out;
}

// Wraps process.stdout and process.stderr so that nothing written through them holds a secret.
function installScrubber(secrets) {
	const list = secrets.filter((s) => s && s.length > 0).sort((a, b) => b.length - a.length);
	if (list.length === 0) {
		return;
	}
	for (const stream of [process.stdout, process.stderr]) {
		const write = stream.write.bind(stream);
		stream.write = (chunk, ...rest) => {
			const text = Buffer.isBuffer(chunk) ? chunk.toString('utf8') : String(chunk);
			return write(scrub(text, list), ...rest);
		};
	}
}

module.exports = { redactUrl, urlSecrets, scrub, installScrubber };

// The waiting room's too-early status polls answered before the application, by nginx: an
// experiment of the benchmark (`bench/run.py --edge`, docs/decisions/0003), not part of the
// product. A poll carrying a valid ticket whose time (`nb`) has not come, and the bearer token
// of the ticket's own citizen, gets the 429 + Retry-After the application would give; anything
// else goes on to the application unchanged. It does not know the room's state: an admitted
// person polling early hears of their turn only at their ticket's time (the application's
// fast path tells them at once), and the room's closing likewise.
const crypto = require('crypto');

const SECRET = process.env.TEEKA_SECRET_KEY || '';
const HEADER = 'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9';  // {"alg":"HS256","typ":"JWT"}
const STATUS = /^\/api\/v1\/openings\/(\d{1,9})\/status$/;
const TEXT = {
    en: 'Too many requests. Please try again in {seconds} seconds.',
    hi: 'बहुत अधिक अनुरोध। कृपया {seconds} सेकंड बाद फिर प्रयास करें।',
};

function claims(token) {
    if (!SECRET || !token || token.length > 4096) {
        return null;
    }
    const parts = token.split('.');
    if (parts.length !== 3 || parts[0] !== HEADER) {
        return null;
    }
    const mac = crypto.createHmac('sha256', SECRET).update(parts[0] + '.' + parts[1])
        .digest('base64url');
    // Compared as HMACs of both (a difference in timing tells nothing about the signature).
    const key = 'compare:' + SECRET;
    if (crypto.createHmac('sha256', key).update(mac).digest('base64url')
        !== crypto.createHmac('sha256', key).update(parts[2]).digest('base64url')) {
        return null;
    }
    try {
        const found = JSON.parse(Buffer.from(parts[1], 'base64url').toString());
        return typeof found === 'object' && found !== null ? found : null;
    } catch (e) {
        return null;
    }
}

function language(r) {
    const cookie = (r.headersIn.Cookie || '').match(/(?:^|;\s*)lang=(hi|en)(?:;|$)/);
    if (cookie) {
        return cookie[1];
    }
    const tags = (r.headersIn['Accept-Language'] || '').split(',');
    for (let i = 0; i < tags.length; i++) {
        const base = tags[i].split(';')[0].trim().toLowerCase().split(/[-_]/)[0];
        if (base === 'hi' || base === 'en') {
            return base;
        }
    }
    return 'hi';
}

function tooEarly(r) {
    const path = r.uri.match(STATUS);
    const auth = r.headersIn.Authorization || '';
    if (!path || r.method !== 'GET' || auth.slice(0, 7).toLowerCase() !== 'bearer ') {
        return 0;
    }
    const now = Date.now() / 1000;
    const ticket = claims(r.headersIn['X-Queue-Token'] || '');
    if (!ticket || ticket.knd !== 'queue' || !(Math.floor(ticket.exp) > Math.floor(now))
        || ticket.op !== Number(path[1]) || ticket.told !== undefined || !(ticket.nb > now)) {
        return 0;
    }
    const citizen = claims(auth.slice(7).trim());
    if (!citizen || citizen.knd !== 'citizen' || !(Math.floor(citizen.exp) > Math.floor(now))
        || citizen.sub !== ticket.sub) {
        return 0;
    }
    return Math.max(1, Math.ceil(ticket.nb - now));
}

function status(r) {
    const seconds = tooEarly(r);
    if (!seconds) {
        r.internalRedirect('@app');
        return;
    }
    const lang = language(r);
    r.headersOut['Content-Type'] = 'application/json';
    r.headersOut['Cache-Control'] = 'no-store';
    r.headersOut['Retry-After'] = String(seconds);
    r.return(429, JSON.stringify({code: 'RateLimited',
                                  message: TEXT[lang].replace('{seconds}', String(seconds))}));
}

export default {status};

// Copyright (C) ngx_tidal authors
// SPDX-License-Identifier: BSD-2-Clause

// Sessions: a client that comes back with its session id and last seq in
// the initialize _meta is resumed and gets exactly the events it missed;
// an unknown, malformed or expired id gets a fresh session and nothing of
// anyone else's.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startNginx, sleep, SLOW } from './lib/nginx.mjs';
import {
    TidalWs, PUBLISH_AND_STATUS, SESSION_ID, publish, closeAll, streamProblems, randomHex,
} from './lib/tidal.mjs';

const T = { timeout: 60000 * SLOW };

let ngx;
let shortLived;

after(async () => {
    await ngx?.stop();
    await shortLived?.stop();
});

async function server() {
    ngx ??= await startNginx({ zone: 'tidal_zone tidal 8m;', server: PUBLISH_AND_STATUS });
    return ngx;
}


test('a client that comes back with its session and last seq is resumed and gets exactly what it missed, then live events', T, async () => {
    await server();
    const c = await TidalWs.join(ngx.url, { name: 'returning' });
    const id = c.session;
    const seen = await publish(ngx.port, { id: 'seen' });
    await c.untilCustom('seen');
    await c.close();

    const missed = [];
    for (let i = 0; i < 5; i++) {
        missed.push(await publish(ngx.port, { id: `missed-${i}` }));
    }
    const back = await TidalWs.join(ngx.url, { name: 'returning', session: id, lastSeq: seen });
    try {
        assert.equal(back.meta['tidal/resumed'], true, `_meta: ${JSON.stringify(back.meta)}`);
        assert.equal(back.session, id, 'the same session id');
        await back.untilCustom('missed-4');
        const live = await publish(ngx.port, { id: 'live' });
        await back.untilCustom('live');
        const stream = back.stream();
        assert.deepEqual(stream.map((e) => e.data?.id), ['missed-0', 'missed-1', 'missed-2', 'missed-3', 'missed-4', 'live']);
        assert.deepEqual(stream.map((e) => e.seq), [...missed, live]);
        assert.deepEqual(streamProblems(stream, seen), []);
    } finally {
        await back.close();
    }
});

test('a resumed client that missed nothing gets nothing until the next event', T, async () => {
    await server();
    const c = await TidalWs.join(ngx.url, { name: 'blinker' });
    const last = await publish(ngx.port, { id: 'blink' });
    await c.untilCustom('blink');
    await c.close();
    const back = await TidalWs.join(ngx.url, { name: 'blinker', session: c.session, lastSeq: last });
    try {
        assert.equal(back.meta['tidal/resumed'], true);
        const next = await publish(ngx.port, { id: 'after-blink' });
        await back.untilCustom('after-blink');
        assert.deepEqual(back.stream().map((e) => e.seq), [next]);
    } finally {
        await back.close();
    }
});

test('a session id is never in the URL: a session in the query string is not resumed', T, async () => {
    await server();
    const c = await TidalWs.join(ngx.url, { name: 'url' });
    await c.close();
    const other = await TidalWs.join(`${ngx.url}?tidal_session=${c.session}`, { name: 'url' });
    try {
        assert.equal(other.meta['tidal/resumed'], false);
        assert.notEqual(other.session, c.session);
    } finally {
        await other.close();
    }
});

const forged = [
    ['a random 32-hex id', () => randomHex(16)],
    ['garbage', () => 'not-a-session!'],
    ['an empty string', () => ''],
    ['a huge string', () => 'a'.repeat(200 * 1024)],
    ['a number', () => 12345678901234],
    ['an object', () => ({ id: randomHex(16) })],
];

for (const [what, make] of forged) {
    test(`a forged session id (${what}) gets a fresh session and no earlier events`, T, async () => {
        await server();
        // someone else's events, all in the ring
        const witness = await TidalWs.join(ngx.url, { name: 'witness' });
        let forger;
        try {
            await publish(ngx.port, { id: `private-1 ${what}` });
            const last = await publish(ngx.port, { id: `private-2 ${what}` });
            await witness.untilCustom(`private-2 ${what}`);
            forger = await TidalWs.join(ngx.url, { name: 'forger', session: make(), lastSeq: 0 });
            assert.equal(forger.meta['tidal/resumed'], false, `_meta: ${JSON.stringify(forger.meta).slice(0, 300)}`);
            assert.match(String(forger.session), SESSION_ID);
            assert.equal(forger.joinSeq, last);
            const own = await publish(ngx.port, { id: `own ${what}` });
            await forger.untilCustom(`own ${what}`);
            assert.deepEqual(forger.stream().map((e) => e.seq), [own], 'only events after its own join');
        } finally {
            await closeAll([witness, forger].filter(Boolean));
        }
    });
}

test('a session expires tidal_session_timeout after its last connection closed', T, async () => {
    shortLived = await startNginx({
        zone: 'tidal_zone tidal 8m;',
        http: 'tidal_session_timeout 1s;',
        server: PUBLISH_AND_STATUS,
    });
    const c = await TidalWs.join(shortLived.url, { name: 'leaver' });
    const seen = await publish(shortLived.port, { id: 'before-expiry' });
    await c.untilCustom('before-expiry');
    await c.close();
    await publish(shortLived.port, { id: 'while-away' });
    // the timeout itself is under test: wait it out, with a margin
    await sleep(2500 * SLOW);
    const back = await TidalWs.join(shortLived.url, { name: 'leaver', session: c.session, lastSeq: seen });
    try {
        assert.equal(back.meta['tidal/resumed'], false, `_meta: ${JSON.stringify(back.meta)}`);
        assert.match(String(back.session), SESSION_ID);
        assert.notEqual(back.session, c.session, 'a new id');
        const own = await publish(shortLived.port, { id: 'after-expiry' });
        await back.untilCustom('after-expiry');
        assert.deepEqual(back.stream().map((e) => e.seq), [own], 'nothing from the expired session');
    } finally {
        await back.close();
    }
});

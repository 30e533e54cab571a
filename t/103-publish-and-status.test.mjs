// Copyright (C) ngx_tidal authors
// SPDX-License-Identifier: BSD-2-Clause

// The HTTP side: a JSON object POSTed to a tidal_publish location reaches
// every client as a custom event and is answered {"seq": N}; anything else
// is refused (400, 413, 405) and broadcasts nothing, which the next valid
// publish proves by taking the very next seq.  tidal_status answers JSON.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { startNginx, SLOW } from './lib/nginx.mjs';
import {
    TidalWs, SESSION_ID, httpCall, publish, tidalStatus, closeAll, streamProblems,
    eventShapeProblems, assertMethodsMatchTypes,
} from './lib/tidal.mjs';

const T = { timeout: 60000 * SLOW };

let ngx;
let clients = [];

before(async () => {
    ngx = await startNginx({
        // a 1m zone: a 1.5 MB object cannot fit its ring
        zone: 'tidal_zone tidal 1m;',
        server: `
        location = /publish {
            tidal_publish;
            client_max_body_size 4m;
        }
        location = /publish-small {
            tidal_publish;
            client_max_body_size 1k;
        }
        location = /tidal-status {
            tidal_status;
        }`,
    });
    clients = await Promise.all(Array.from({ length: 6 }, (_, i) => TidalWs.join(ngx.url, { name: `listener-${i}` })));
});

after(async () => {
    await closeAll(clients);
    await ngx?.stop();
});


// every client gets the custom event with this id; returns their events
async function everyoneGets(id) {
    return Promise.all(clients.map((c) => c.untilCustom(id, 10000 * SLOW)));
}


test('a POSTed JSON object is answered 200 {"seq": N} and every client gets it as a custom event', T, async () => {
    const data = { id: 'hello', nested: { list: [1, 2.5, null, true], text: 'drop in 4 \u{1F941} "quoted"\n' } };
    const r = await httpCall(ngx.port, { method: 'POST', path: '/publish', body: data });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(Object.keys(r.json), ['seq']);
    const seq = r.json.seq;
    assert.ok(Number.isSafeInteger(seq) && seq > 0, `seq ${seq}`);
    const events = await everyoneGets('hello');
    for (const ev of events) {
        assert.equal(ev.type, 'custom');
        assert.equal(ev.seq, seq);
        assert.deepEqual(ev.data, data, 'data is the object as POSTed');
        assert.deepEqual(eventShapeProblems([ev]), []);
    }
    clients.forEach(assertMethodsMatchTypes);
});

test('seq increases by one per published event', T, async () => {
    const a = await publish(ngx.port, { id: 'one' });
    const b = await publish(ngx.port, { id: 'two' });
    const c = await publish(ngx.port, { id: 'three' });
    assert.deepEqual([b - a, c - b], [1, 1]);
    await everyoneGets('three');
});

test('a body sent chunked and a 100 KB body are published whole', T, async () => {
    const r = await httpCall(ngx.port, { method: 'POST', path: '/publish', body: { id: 'chunked' }, chunked: true });
    assert.equal(r.status, 200, r.text);
    const big = { id: 'big', blob: crypto.randomBytes(75 * 1024).toString('base64') };
    const seq = await publish(ngx.port, big);
    assert.equal(seq, r.json.seq + 1);
    const events = await everyoneGets('big');
    events.forEach((ev) => assert.deepEqual(ev.data, big));
});

// A worker copies new events out of the ring in batches of at most 64
// kB (one larger event alone grows that buffer, as the 100 KB body above
// does); a burst published during a fan-out pause is more than one batch.
test('a burst of 80 events of 2 kB reaches every client whole, in order and without a hole', T, async () => {
    const before = await publish(ngx.port, { id: 'before-burst' });
    await everyoneGets('before-burst');
    const pad = 'b'.repeat(2048);
    const seqs = await Promise.all(Array.from({ length: 80 }, (_, i) => publish(ngx.port, { id: `burst-${i}`, pad })));
    const last = Math.max(...seqs);
    await Promise.all(clients.map((c) => c.untilEvent((e) => e.seq === last, `event ${last}`, 10000 * SLOW)));
    for (const c of clients) {
        const burst = c.stream().filter((e) => e.seq > before && e.seq <= last);
        assert.deepEqual(streamProblems(burst, before), [], c.label);
        assert.equal(burst.length, 80, c.label);
        assert.ok(burst.every((e) => e.type === 'custom' && e.data.pad === pad), `${c.label}: every event whole`);
    }
});

const notObjects = [
    ['truncated JSON', '{"a": 1'],
    ['not JSON at all', 'hello'],
    ['an array', '[1, 2]'],
    ['a number', '42'],
    ['a string', '"text"'],
    ['null', 'null'],
    ['an empty body', ''],
    ['two objects', '{"a":1}{"b":2}'],
    ['an object and trailing garbage', '{"a":1} x'],
    ['binary garbage', crypto.randomBytes(64)],
    ['invalid UTF-8 inside a string', Buffer.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xc3, 0x28, 0x22, 0x7d])],
];

// the refused request broadcast nothing: the next valid publish takes the
// next seq, and it is the next event every client sees
async function assertNothingBroadcast(before, label) {
    const next = await publish(ngx.port, { id: `after-${label}` });
    assert.equal(next, before + 1, `the seq moved from ${before} to ${next}: something was broadcast`);
    const events = await everyoneGets(`after-${label}`);
    for (const [i, c] of clients.entries()) {
        const stream = c.stream();
        const at = stream.indexOf(events[i]);
        assert.equal(stream[at - 1]?.seq, before, `${c.label}: the event before is the last valid one`);
    }
}

for (const [what, body] of notObjects) {
    test(`POST of ${what} gets 400 and broadcasts nothing`, T, async () => {
        const before = await publish(ngx.port, { id: `before-${what}` });
        const r = await httpCall(ngx.port, { method: 'POST', path: '/publish', body });
        assert.equal(r.status, 400, `${what}: ${r.status} ${r.text.slice(0, 200)}`);
        await assertNothingBroadcast(before, what);
    });
}

test('a body over client_max_body_size gets 413 and broadcasts nothing', T, async () => {
    const before = await publish(ngx.port, { id: 'before-413' });
    const r = await httpCall(ngx.port, { method: 'POST', path: '/publish-small', body: { id: 'too-big', pad: 'x'.repeat(2048) } });
    assert.equal(r.status, 413, r.text.slice(0, 200));
    await assertNothingBroadcast(before, '413');
});

test('an object too large for the ring gets 413 and broadcasts nothing', T, async () => {
    const before = await publish(ngx.port, { id: 'before-ring-413' });
    const r = await httpCall(ngx.port, { method: 'POST', path: '/publish', body: { id: 'huge', pad: 'y'.repeat(1536 * 1024) } });
    assert.equal(r.status, 413, r.text.slice(0, 200));
    await assertNothingBroadcast(before, 'ring-413');
});

for (const method of ['GET', 'PUT', 'DELETE', 'PATCH']) {
    test(`${method} on tidal_publish gets 405 and broadcasts nothing`, T, async () => {
        const before = await publish(ngx.port, { id: `before-${method}` });
        const r = await httpCall(ngx.port, {
            method, path: '/publish', body: method === 'GET' || method === 'DELETE' ? undefined : { id: 'by-put' },
        });
        assert.equal(r.status, 405, `${method}: ${r.status} ${r.text.slice(0, 200)}`);
        await assertNothingBroadcast(before, method);
    });
}

test('tidal_status answers the documented JSON', T, async () => {
    const last = await publish(ngx.port, { id: 'status' });
    await everyoneGets('status');
    const s = await tidalStatus(ngx.port);
    assert.equal(typeof s.version, 'string');
    assert.ok(s.version.length > 0);
    assert.equal(s.connections, clients.length, `connections: ${JSON.stringify(s)}`);
    assert.equal(s.max_connections, 0, 'no tidal_max_connections: 0');
    assert.deepEqual(s.workers.map((w) => w.pid).sort((a, b) => a - b), ngx.workerPids(),
        `workers: ${JSON.stringify(s.workers)}`);
    assert.equal(s.workers.reduce((n, w) => n + w.clients, 0), clients.length);
    assert.equal(s.seq.last, last);
    assert.ok(Number.isSafeInteger(s.seq.first) && s.seq.first >= 1 && s.seq.first <= last, `seq: ${JSON.stringify(s.seq)}`);
    assert.equal(typeof s.events_per_second, 'number');
    assert.ok(s.events_per_second >= 0);
    assert.ok(Number.isSafeInteger(s.sessions) && s.sessions >= clients.length, `sessions: ${s.sessions}`);
    assert.equal(s.zone.size, 1024 * 1024);
    assert.ok(s.zone.ring_bytes > 0 && s.zone.ring_bytes < s.zone.size, `zone: ${JSON.stringify(s.zone)}`);
    assert.ok(!JSON.stringify(s).match(new RegExp(clients.map((c) => c.session).join('|'))),
        'no session id is shown');
});

test('every event so far reached every client once, in order, with no session id in it', T, async () => {
    for (const c of clients) {
        assert.match(String(c.session), SESSION_ID);
        assert.deepEqual(streamProblems(c.stream(), c.joinSeq), [], c.label);
        assert.deepEqual(eventShapeProblems(c.stream()), [], c.label);
    }
    const ids = clients[0].stream().map((e) => e.seq);
    clients.forEach((c) => assert.deepEqual(c.stream().map((e) => e.seq), ids, `${c.label} saw the same events`));
});

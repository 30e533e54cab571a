// Copyright (C) ngx_tidal authors
// SPDX-License-Identifier: BSD-2-Clause

// The module behind `listen ... ssl`: nginx's TLS buffers what a write
// gives it, so a frame handed over is not yet a frame sent.  Every answer
// and every event arrives once and in order, a burst larger than TLS's
// buffer too, and the close handshake completes; no worker crashes (the
// log check of stop()).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { startNginx, makeTempDir, SLOW } from './lib/nginx.mjs';
import { TidalWs, streamProblems } from './lib/tidal.mjs';
import { makeCertificates } from './lib/tls.mjs';

const T = { timeout: 30000 * SLOW };

let certDir;
let ca;
let ngx;
const clients = [];

before(async () => {
    certDir = makeTempDir('tidal-tls-');
    const files = makeCertificates(certDir);
    ca = files.ca;
    // one worker: both clients on it, its fan-out writes to both
    ngx = await startNginx({ ssl: files, workers: 1 });
});

after(async () => {
    for (const c of clients) {
        c.terminate();
    }
    await ngx?.stop();
    if (certDir) {
        fs.rmSync(certDir, { recursive: true, force: true });
    }
});


async function join(name) {
    const c = await TidalWs.join(ngx.url, { name, ca });
    clients.push(c);
    return c;
}


function answersTo(c, id) {
    return c.log.filter(({ m }) => m.id === id && ('result' in m || 'error' in m)).length;
}


test('over TLS each request has one answer and each chat line arrives once, in order, a 40-line burst too', T, async () => {
    assert.match(ngx.url, /^wss:/);
    const a = await join('a');
    const b = await join('b');

    // answers that queue behind each other
    const ids = await Promise.all(Array.from({ length: 20 }, async () => {
        const r = await a.request('ping', {});
        assert.deepEqual(r.result, {});
        return r.id;
    }));
    for (const id of ids) {
        assert.equal(answersTo(a, id), 1, `one answer to ${id}`);
    }

    // events with text long enough that a burst outgrows TLS's 16k buffer
    const pad = 'x'.repeat(900);   // tidal_say takes 1000 characters
    const said = await Promise.all(Array.from({ length: 40 }, (_, i) => b.call('tidal_say', { text: `${i} ${pad}` })));
    said.forEach((r) => assert.ok(r.result && r.result.isError !== true, JSON.stringify(r).slice(0, 300)));
    for (const c of [a, b]) {
        await c.untilEvent((e) => e.type === 'chat' && e.text === `39 ${pad}`, 'the last chat line', 10000 * SLOW);
        const lines = c.events('chat').map((e) => Number(e.text.split(' ')[0]));
        assert.equal(lines.length, 40, `${c.label}: ${lines.join(' ')}`);
        assert.deepEqual([...lines].sort((x, y) => x - y), lines.map((_, i) => i), `${c.label}: each line once`);
        assert.deepEqual(streamProblems(c.stream(), c.joinSeq), [], c.label);
    }
    assert.equal(answersTo(a, ids[0]), 1, 'still one answer: nothing was sent again');
});

test('over TLS the close handshake completes: the client\'s 1000 is echoed', T, async () => {
    const c = await join('closer');
    await c.request('ping', {});
    const info = await c.close();
    assert.equal(info.code, 1000);
});

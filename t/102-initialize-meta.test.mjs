// Copyright (C) ngx_tidal authors
// SPDX-License-Identifier: BSD-2-Clause

// What a client learns from initialize: its _meta names a fresh session
// (128 bits as 32 lowercase hex digits), the seq it joined at and its
// role; events start after the initialize response, right after that seq.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { startNginx, SLOW } from './lib/nginx.mjs';
import { TidalWs, PUBLISH_AND_STATUS, SESSION_ID, publish, closeAll, streamProblems, isEvent } from './lib/tidal.mjs';
import { connectRaw, INIT_PARAMS } from './lib/ws.mjs';

const T = { timeout: 60000 * SLOW };

let ngx;

before(async () => {
    ngx = await startNginx({ zone: 'tidal_zone tidal 8m;', server: PUBLISH_AND_STATUS });
});

after(async () => {
    await ngx?.stop();
});


test('initialize answers with _meta: a 32-hex session, the join seq, resumed false, role performer', T, async () => {
    const c = await TidalWs.join(ngx.url);
    try {
        const meta = c.meta;
        assert.match(String(meta['tidal/session']), SESSION_ID, `_meta: ${JSON.stringify(meta)}`);
        assert.ok(Number.isSafeInteger(meta['tidal/seq']) && meta['tidal/seq'] >= 0, `tidal/seq: ${JSON.stringify(meta)}`);
        assert.equal(meta['tidal/resumed'], false);
        assert.equal(meta['tidal/role'], 'performer', 'tidal_role defaults to performer');
    } finally {
        await c.close();
    }
});

test('every client gets a different session id', T, async () => {
    const clients = await Promise.all(Array.from({ length: 20 }, (_, i) => TidalWs.join(ngx.url, { name: `c${i}` })));
    try {
        const ids = clients.map((c) => c.session);
        ids.forEach((id) => assert.match(String(id), SESSION_ID));
        assert.equal(new Set(ids).size, ids.length, `duplicate session ids: ${ids.join(' ')}`);
    } finally {
        await closeAll(clients);
    }
});

test('tidal/seq is the last event before the client joined; the first event it gets is the next one', T, async () => {
    await publish(ngx.port, { id: 'before-1' });
    const last = await publish(ngx.port, { id: 'before-2' });
    const c = await TidalWs.join(ngx.url);
    try {
        assert.equal(c.joinSeq, last, 'tidal/seq is the seq of the last event published before the join');
        const next = await publish(ngx.port, { id: 'after' });
        assert.equal(next, last + 1);
        const ev = await c.untilCustom('after');
        assert.equal(ev.seq, last + 1);
        assert.deepEqual(c.stream().map((e) => e.data?.id), ['after'], 'nothing from before the join');
    } finally {
        await c.close();
    }
});

// publishes {id: prefix-i} one after another until stopped; count(n)
// resolves once n have been answered
function startFlow(prefix) {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const seqs = [];
    const waiters = [];
    let stopped = false;
    const done = (async () => {
        try {
            for (let i = 0; !stopped && i < 10000; i++) {
                seqs.push(await publish(ngx.port, { id: `${prefix}-${i}` }, { agent }));
                waiters.filter((w) => seqs.length >= w.n).forEach((w) => w.resolve());
            }
        } finally {
            agent.destroy();
        }
    })();
    return {
        seqs,
        count: (n) => (seqs.length >= n ? Promise.resolve()
            : new Promise((resolve, reject) => {
                waiters.push({ n, resolve });
                done.then(() => reject(new Error(`the flow ended after ${seqs.length} events`)), reject);
            })),
        stop: async () => { stopped = true; await done; },
    };
}

test('a client joining while events flow gets every event after its tidal/seq, once, and none before its initialize response', T, async () => {
    const flow = startFlow('flow');
    let raw;
    try {
        await flow.count(20);
        raw = await connectRaw(ngx.port);
        const first = await raw.request('initialize', INIT_PARAMS, 'init');
        assert.ok(first.result, `initialize: ${JSON.stringify(first)}`);
        const joinSeq = first.result._meta['tidal/seq'];
        await raw.sendText(JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }));
        await flow.count(60);
        await flow.stop();
        const lastSeq = flow.seqs[flow.seqs.length - 1];
        assert.ok(joinSeq >= flow.seqs[0] - 1 && joinSeq < lastSeq, `joined at ${joinSeq}, flow ${flow.seqs[0]}..${lastSeq}`);
        const events = [];
        while (!events.length || events[events.length - 1].seq < lastSeq) {
            const m = await raw.message(10000 * SLOW);
            assert.ok(isEvent(m), `only events after the response: ${JSON.stringify(m).slice(0, 200)}`);
            if (m.params.type !== 'metrics') {
                events.push(m.params);
            }
        }
        assert.deepEqual(streamProblems(events, joinSeq), []);
        assert.equal(events[0].seq, joinSeq + 1);
        assert.equal(events.length, lastSeq - joinSeq);
    } finally {
        raw?.destroy();
        await flow.stop().catch(() => {});
    }
});

test('a connection gets no events before its initialize, and none from before it after', T, async () => {
    const raw = await connectRaw(ngx.port);
    const c = await TidalWs.join(ngx.url);
    try {
        await publish(ngx.port, { id: 'pre-1' });
        const last = await publish(ngx.port, { id: 'pre-2' });
        await c.untilCustom('pre-2');
        assert.deepEqual(await raw.request('ping', undefined, 'p'), { jsonrpc: '2.0', id: 'p', result: {} },
            'the answer to ping is the first message: no event came before it');
        const init = await raw.request('initialize', INIT_PARAMS, 'init');
        assert.ok(init.result, `initialize: ${JSON.stringify(init)}`);
        assert.equal(init.result._meta['tidal/seq'], last);
        await raw.sendText(JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }));
        const next = await publish(ngx.port, { id: 'post' });
        let m;
        do {
            m = await raw.message();
        } while (isEvent(m) && m.params.type === 'metrics');
        assert.ok(isEvent(m), `an event: ${JSON.stringify(m).slice(0, 200)}`);
        assert.equal(m.params.type, 'custom');
        assert.equal(m.params.seq, next);
        assert.deepEqual(m.params.data, { id: 'post' });
    } finally {
        raw.destroy();
        await c.close();
    }
});

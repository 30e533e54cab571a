// Copyright (C) ngx_tidal authors
// SPDX-License-Identifier: BSD-2-Clause

// Metrics: every tidal_metrics_interval each client gets a metrics
// notification (connections, workers, events per second, nginx's cpu and
// memory, ghci null, seq = the last event); `off` sends none.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startNginx, SLOW } from './lib/nginx.mjs';
import { TidalWs, PUBLISH_AND_STATUS, publish, closeAll, assertMethodsMatchTypes } from './lib/tidal.mjs';

const T = { timeout: 60000 * SLOW };

let ngx;

before(async () => {
    ngx = await startNginx({
        zone: 'tidal_zone tidal 8m;',
        location: 'tidal_metrics_interval 200ms;',
        server: `${PUBLISH_AND_STATUS}
        location /mcp-quiet {
            tidal_mcp;
            tidal_metrics_interval off;
        }`,
    });
});

after(async () => {
    await ngx?.stop();
});


function metricsAfter(c, index) {
    return c.log.slice(index).filter(({ m }) => m.method === 'notifications/tidal/metrics');
}


test('metrics arrive every 200ms with the documented fields', T, async () => {
    const c = await TidalWs.join(ngx.url, { name: 'dashboard' });
    try {
        const start = c.log.length;
        const got = await c.until(() => {
            const ms = metricsAfter(c, start);
            return ms.length >= 6 ? ms : null;
        }, 'six metrics notifications', 15000 * SLOW);
        // timers do not fire early: five intervals take about a second
        const span = got[5].at - got[0].at;
        assert.ok(span >= 5 * 200 * 0.7, `six metrics within ${span} ms`);
        const pids = ngx.workerPids();
        for (const { m } of got) {
            const p = m.params;
            assert.equal(p.type, 'metrics');
            assert.ok(Number.isSafeInteger(p.seq) && p.seq >= 0, `seq: ${JSON.stringify(p)}`);
            assert.ok(Number.isSafeInteger(p.connections) && p.connections >= 1, `connections: ${JSON.stringify(p)}`);
            assert.ok(Array.isArray(p.workers), `workers: ${JSON.stringify(p)}`);
            assert.deepEqual(p.workers.map((w) => w.pid).sort((a, b) => a - b), pids);
            p.workers.forEach((w) => assert.ok(Number.isSafeInteger(w.clients) && w.clients >= 0, JSON.stringify(w)));
            assert.equal(p.workers.reduce((n, w) => n + w.clients, 0), p.connections);
            assert.equal(typeof p.events_per_second, 'number');
            assert.ok(p.events_per_second >= 0);
            assert.equal(typeof p.nginx, 'object');
            assert.ok(typeof p.nginx.cpu_seconds === 'number' && p.nginx.cpu_seconds >= 0, JSON.stringify(p.nginx));
            assert.ok(Number.isSafeInteger(p.nginx.rss_bytes) && p.nginx.rss_bytes > 1024 * 1024, JSON.stringify(p.nginx));
            assert.equal(p.ghci, null);
        }
        assertMethodsMatchTypes(c);
    } finally {
        await c.close();
    }
});

test('a metrics notification carries the seq of the last event and takes none itself', T, async () => {
    const c = await TidalWs.join(ngx.url, { name: 'dashboard-2' });
    try {
        const seq = await publish(ngx.port, { id: 'm1' });
        await c.untilCustom('m1');
        const start = c.log.length;
        const ms = await c.until(() => {
            const got = metricsAfter(c, start);
            return got.length >= 2 ? got : null;
        }, 'two metrics after the event');
        ms.forEach(({ m }) => assert.equal(m.params.seq, seq));
        assert.equal(await publish(ngx.port, { id: 'm2' }), seq + 1, 'metrics took no seq');
    } finally {
        await c.close();
    }
});

test('with tidal_metrics_interval off a client gets no metrics', T, async () => {
    const quiet = await TidalWs.join(`ws://127.0.0.1:${ngx.port}/mcp-quiet`, { name: 'quiet' });
    const clock = await TidalWs.join(ngx.url, { name: 'clock' });
    try {
        // the clock client's metrics measure time: three of them after both
        // joined mean the quiet one has been connected over two intervals
        const start = clock.log.length;
        await clock.until(() => metricsAfter(clock, start).length >= 3, 'three metrics on the clock client', 15000 * SLOW);
        await publish(ngx.port, { id: 'fence' });
        await quiet.untilCustom('fence');
        await clock.untilCustom('fence');
        assert.deepEqual(quiet.events('metrics'), [], 'the quiet client got metrics');
        assert.deepEqual(quiet.stream().map((e) => e.data?.id), ['fence']);
    } finally {
        await closeAll([quiet, clock]);
    }
});

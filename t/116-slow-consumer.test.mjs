// Copyright (C) ngx_tidal authors
// SPDX-License-Identifier: BSD-2-Clause

// A client that stops reading while large events are broadcast cannot make
// its worker grow: it is closed with 1008 once its queue passes
// tidal_message_queue_bytes, and every other client still gets everything;
// a client that reads is never closed, however much passes in total.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { startNginx, rssAnonKb, ASAN, SLOW } from './lib/nginx.mjs';
import { TidalWs, publish, closeAll, streamProblems, joinUntilEveryWorker } from './lib/tidal.mjs';
import { connectRaw } from './lib/ws.mjs';

const T = { timeout: 180000 * SLOW };
const EVENTS = 150;
const EVENT_BYTES = 200 * 1024;

let ngx;

before(async () => {
    ngx = await startNginx({
        // a ring (at most the zone) that holds all 30 MB: a reader never
        // falls behind it, so it must get every event
        zone: 'tidal_zone tidal 96m;',
        location: `
            tidal_message_queue_bytes 4m;
            tidal_metrics_interval off;`,
        server: `
        location = /publish {
            tidal_publish;
            client_max_body_size 1m;
            client_body_buffer_size 1m;
        }
        location = /tidal-status {
            tidal_status;
        }`,
    });
});

after(async () => {
    await ngx?.stop();
});


test('a client that reads keeps getting events long past tidal_message_queue_bytes in total', T, async () => {
    // one event at a time, each read before the next is published: the
    // queue never holds more than one, 6 MB pass in all
    const reader = await TidalWs.join(ngx.url, { name: 'steady' });
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
        for (let i = 0; i < 30; i++) {
            await publish(ngx.port, { id: `steady-${i}`, pad: 's'.repeat(EVENT_BYTES) }, { agent });
            await reader.untilCustom(`steady-${i}`, 10000 * SLOW);
        }
        assert.equal(reader.closeInfo, null);
        assert.deepEqual(streamProblems(reader.stream(), reader.joinSeq), []);
    } finally {
        agent.destroy();
        await reader.close().catch(() => reader.terminate());
    }
});

test('a client that stops reading is closed with 1008, its worker does not grow, the others get all events', T, async (t) => {
    const readers = await joinUntilEveryWorker(ngx, (i) => TidalWs.join(ngx.url, { name: `reader-${i}` }), { min: 2 });
    const slow = await connectRaw(ngx.port);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
        await slow.initialize();
        // warm up: every worker has sent a large event once
        await publish(ngx.port, { id: 'warm-up', pad: 'w'.repeat(EVENT_BYTES) }, { agent });
        await Promise.all(readers.map((c) => c.untilCustom('warm-up', 20000 * SLOW)));
        await slow.message(10000 * SLOW);

        slow.socket.pause();
        const base = new Map(ngx.workerPids().map((pid) => [pid, rssAnonKb(pid)]));
        let worst = 0;
        const sample = () => {
            for (const [pid, kb] of base) {
                worst = Math.max(worst, rssAnonKb(pid) - kb);
            }
        };
        for (let i = 0; i < EVENTS; i++) {
            await publish(ngx.port, { id: `big-${i}`, pad: String(i % 10).repeat(EVENT_BYTES) }, { agent });
            sample();
        }
        await Promise.all(readers.map((c) => c.untilCustom(`big-${EVENTS - 1}`, 60000 * SLOW)));
        sample();
        // without a bound the slow client's queue would hold most of the
        // 30 MB; with it: the 4m queue, a few events in flight, allocator slack
        const limitKb = (4 * 1024 * 1024 + 4 * EVENT_BYTES + 12 * 1024 * 1024) / 1024;
        t.diagnostic(`largest growth of a worker's anonymous memory: ${worst} kB (limit ${limitKb} kB)`);
        assert.ok(ASAN || worst < limitKb, `a worker's anonymous memory grew by ${worst} kB (limit ${limitKb} kB)`);

        slow.socket.resume();
        const c = await slow.readUntilClose({ timeout: 30000 * SLOW });
        assert.equal(c.code, 1008, `close code (reason "${c.reason}")`);
        assert.ok(c.before.every((ev) => ev.type === 'text' || ev.type === 'ping'), 'only messages before the close frame');
        const got = c.before.filter((ev) => ev.type === 'text').length;
        assert.ok(got < EVENTS, `all ${got} events reached the slow client: the queue was never bounded`);
        assert.equal(c.tcpClosed, true);

        for (const r of readers) {
            const stream = r.stream();
            assert.deepEqual(streamProblems(stream, r.joinSeq), [], r.label);
            assert.equal(stream.filter((e) => e.data?.id?.startsWith('big-')).length, EVENTS, r.label);
            const last = stream.at(-1);
            assert.equal(last.data.pad.length, EVENT_BYTES);
            assert.equal(r.closeInfo, null, `${r.label} was closed`);
        }
    } finally {
        agent.destroy();
        slow.destroy();
        await closeAll(readers);
    }
});

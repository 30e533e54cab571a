// Copyright (C) ngx_tidal authors
// SPDX-License-Identifier: BSD-2-Clause

// Fan-out at scale: with worker_processes 4 and clients on every worker
// (as tidal_status shows), 1000 events from four concurrent publishers
// reach each of 200 clients exactly once, with consecutive seqs, in one
// order that is the same for every client.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { startNginx, SLOW } from './lib/nginx.mjs';
import {
    TidalWs, PUBLISH_AND_STATUS, publish, clientsPerWorker, joinUntilEveryWorker, closeAll, streamProblems,
    eventShapeProblems,
} from './lib/tidal.mjs';

const T = { timeout: 240000 * SLOW };
const CLIENTS = 200;
const PUBLISHERS = 4;
const PER_PUBLISHER = 250;

let ngx;
let clients = [];

before(async () => {
    ngx = await startNginx({ workers: 4, zone: 'tidal_zone tidal 32m;', server: PUBLISH_AND_STATUS });
});

after(async () => {
    await closeAll(clients);
    await ngx?.stop();
});


test('200 clients on 4 workers each get all 1000 events from 4 publishers once, in the same order', T, async () => {
    clients = await joinUntilEveryWorker(ngx,
        (i) => TidalWs.join(ngx.url, { name: `fan-${i}`, timeout: 20000 * SLOW }),
        { min: CLIENTS, batch: 20, max: 600 });
    const per = await clientsPerWorker(ngx.port);
    const pids = ngx.workerPids();
    assert.equal(pids.length, 4);
    for (const pid of pids) {
        assert.ok(per.get(pid) > 0, `worker ${pid} holds no client: ${JSON.stringify([...per])}`);
    }

    // four publishers, each on its own keep-alive connection, 250 each
    const answers = new Map();
    await Promise.all(Array.from({ length: PUBLISHERS }, async (_, p) => {
        const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
        try {
            for (let i = 0; i < PER_PUBLISHER; i++) {
                const id = `${p}:${i}`;
                answers.set(id, await publish(ngx.port, { id, publisher: p, i }, { agent }));
            }
        } finally {
            agent.destroy();
        }
    }));
    const total = PUBLISHERS * PER_PUBLISHER;
    const seqs = [...answers.values()].sort((a, b) => a - b);
    assert.equal(new Set(seqs).size, total, 'every publish got its own seq');
    assert.equal(seqs.at(-1) - seqs[0], total - 1, 'the answered seqs are consecutive');

    // a last event after all of them: once a client has it, it has had
    // every event it will ever get before it
    const fence = await publish(ngx.port, { id: 'fence' });
    assert.equal(fence, seqs.at(-1) + 1);
    await Promise.all(clients.map((c) => c.untilCustom('fence', 120000 * SLOW)));

    const reference = clients[0].stream().filter((e) => e.type === 'custom').map((e) => e.data.id);
    assert.equal(reference.length, total + 1);
    const wrong = [];
    for (const c of clients) {
        const stream = c.stream();
        const problems = [
            ...streamProblems(stream, c.joinSeq),
            ...eventShapeProblems(stream),
        ];
        if (stream.some((e) => e.type !== 'custom')) {
            problems.push(`non-custom events: ${stream.filter((e) => e.type !== 'custom').map((e) => e.type)}`);
        }
        const ids = stream.map((e) => e.data?.id);
        if (ids.length !== total + 1) {
            problems.push(`${ids.length} events, not ${total + 1}`);
        } else if (ids.some((id, k) => id !== reference[k])) {
            const k = ids.findIndex((id, j) => id !== reference[j]);
            problems.push(`order differs from ${clients[0].label} at ${k}: ${ids[k]} vs ${reference[k]}`);
        }
        for (const e of stream) {
            if (e.data?.id !== 'fence' && answers.get(e.data?.id) !== e.seq) {
                problems.push(`${e.data?.id} has seq ${e.seq}, its POST was answered ${answers.get(e.data?.id)}`);
                break;
            }
        }
        if (problems.length) {
            wrong.push(`${c.label}: ${problems.slice(0, 3).join('; ')}`);
        }
    }
    assert.deepEqual(wrong.slice(0, 10), [], `${wrong.length} of ${clients.length} clients got a wrong stream`);

    // each publisher's events in the order it sent them
    for (let p = 0; p < PUBLISHERS; p++) {
        const mine = reference.filter((id) => id.startsWith(`${p}:`));
        assert.deepEqual(mine, Array.from({ length: PER_PUBLISHER }, (_, i) => `${p}:${i}`));
    }
});

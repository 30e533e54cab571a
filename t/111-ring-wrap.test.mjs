// Copyright (C) ngx_tidal authors
// SPDX-License-Identifier: BSD-2-Clause

// When the event ring wraps past what a client still needs, it gets a
// session_restore snapshot instead of a hole: a client resuming after its
// events left the ring, and every client of a worker that was stopped
// while more than the ring holds was published.  A 128k zone keeps the
// ring small.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startNginx, SLOW } from './lib/nginx.mjs';
import {
    TidalWs, PUBLISH_AND_STATUS, publish, tidalStatus, joinAndLocate, closeAll, streamProblems,
    assertMethodsMatchTypes,
} from './lib/tidal.mjs';

const T = { timeout: 90000 * SLOW };

// more than the whole zone, so surely more than its ring
const FLOOD_EVENTS = 200;
const PAD = 'p'.repeat(900);

let ngx;

before(async () => {
    ngx = await startNginx({ zone: 'tidal_zone tidal 128k;', server: PUBLISH_AND_STATUS });
});

after(async () => {
    await ngx?.stop();
});


function assertSnapshot(ev) {
    assert.equal(ev.type, 'session_restore');
    assert.ok(ev.channels && typeof ev.channels === 'object' && !Array.isArray(ev.channels), `channels: ${JSON.stringify(ev).slice(0, 300)}`);
    assert.ok(ev.tempo && typeof ev.tempo === 'object', `tempo: ${JSON.stringify(ev).slice(0, 300)}`);
    assert.ok(Array.isArray(ev.history), `history: ${JSON.stringify(ev).slice(0, 300)}`);
    assert.ok(Number.isSafeInteger(ev.seq), `seq: ${JSON.stringify(ev).slice(0, 300)}`);
}


test('a client resuming after its missed events left the ring gets one session_restore, then live events', T, async () => {
    const c = await TidalWs.join(ngx.url, { name: 'away' });
    const seen = await publish(ngx.port, { id: 'seen' });
    await c.untilCustom('seen');
    await c.close();

    let last;
    for (let i = 0; i < FLOOD_EVENTS; i++) {
        last = await publish(ngx.port, { id: `flood-${i}`, pad: PAD });
    }
    const s = await tidalStatus(ngx.port);
    assert.equal(s.seq.last, last);
    assert.ok(s.seq.first > seen + 1, `the ring should have wrapped past ${seen + 1}: ${JSON.stringify(s.seq)}`);

    const back = await TidalWs.join(ngx.url, { name: 'away', session: c.session, lastSeq: seen });
    try {
        assert.equal(back.meta['tidal/resumed'], true, `_meta: ${JSON.stringify(back.meta)}`);
        assert.equal(back.session, c.session);
        const restore = await back.untilEvent((e) => e.type === 'session_restore', 'a session_restore');
        assertSnapshot(restore);
        assert.equal(restore.seq, last, 'the snapshot includes every event so far');
        const live = await publish(ngx.port, { id: 'live' });
        await back.untilCustom('live');
        const stream = back.stream();
        assert.deepEqual(stream.map((e) => e.type), ['session_restore', 'custom'], 'no partial replay around the snapshot');
        assert.equal(stream[1].seq, live);
        assert.equal(live, last + 1);
        assertMethodsMatchTypes(back);
    } finally {
        await back.close();
    }
});

test('every client of a worker that fell behind the ring gets a session_restore, then live events; other workers\' clients miss nothing', T, async () => {
    // clients one at a time, each located through tidal_status
    const byPid = new Map();
    const all = [];
    try {
        for (let i = 0; i < 60 && !(byPid.size >= 2 && [...byPid.values()].every((l) => l.length >= 1)); i++) {
            const { client, pid } = await joinAndLocate(ngx, () => TidalWs.join(ngx.url, { name: `c${i}` }));
            all.push(client);
            byPid.set(pid, [...(byPid.get(pid) || []), client]);
        }
        assert.equal(byPid.size, 2, `could not get a client on each worker: ${[...byPid.keys()]}`);
        const [victimPid, otherPid] = [...byPid.keys()];
        const victims = byPid.get(victimPid);
        const others = byPid.get(otherPid);
        const speaker = others[0];

        process.kill(victimPid, 'SIGSTOP');
        try {
            // only the speaker's open connection is used while a worker is
            // stopped: a new connection might wait for the stopped worker
            for (let i = 0; i < FLOOD_EVENTS; i++) {
                const r = await speaker.call('tidal_say', { text: `flood ${i} ${PAD}` });
                assert.ok(r.result && r.result.isError !== true, JSON.stringify(r).slice(0, 300));
            }
            await Promise.all(others.map((c) => c.untilEvent((e) => e.type === 'chat' && e.text.startsWith(`flood ${FLOOD_EVENTS - 1} `), 'the last flood line')));
        } finally {
            process.kill(victimPid, 'SIGCONT');
        }

        // the snapshot first: an event published before the stopped worker
        // has caught up would be inside it, not after it
        await Promise.all(victims.map((c) => c.untilEvent((e) => e.type === 'session_restore',
            'a session_restore on the worker that was stopped', 20000 * SLOW)));
        const r = await speaker.call('tidal_say', { text: 'after the resync' });
        assert.ok(r.result && r.result.isError !== true, JSON.stringify(r));
        const done = (c) => c.untilEvent((e) => e.type === 'chat' && e.text === 'after the resync', 'the chat after the resync', 20000 * SLOW);
        await Promise.all(all.map(done));

        for (const c of victims) {
            const stream = c.stream();
            assert.deepEqual(streamProblems(stream, c.joinSeq), [], `${c.label} (on the stopped worker)`);
            const restores = stream.filter((e) => e.type === 'session_restore');
            assert.ok(restores.length >= 1, `${c.label} got no session_restore: ${stream.map((e) => `${e.type}:${e.seq}`).join(' ')}`);
            restores.forEach(assertSnapshot);
            assert.equal(stream.at(-1).text, 'after the resync', 'live events go on after the snapshot');
        }
        for (const c of others) {
            const stream = c.stream();
            assert.deepEqual(streamProblems(stream, c.joinSeq), [], c.label);
            assert.deepEqual(stream.filter((e) => e.type === 'session_restore'), [], `${c.label} did not fall behind`);
            assert.equal(stream.filter((e) => e.type === 'chat' && e.text.startsWith('flood ')).length, FLOOD_EVENTS);
        }
        assert.ok(ngx.workerPids().includes(victimPid), 'the stopped worker is still running');
        all.forEach((c) => assert.equal(c.closeInfo, null, `${c.label} was disconnected`));
    } finally {
        await closeAll(all);
    }
});

// Copyright (C) ngx_tidal authors
// SPDX-License-Identifier: BSD-2-Clause

// tidal_max_connections: the upgrade past the limit gets 503 and never a
// 101, counted across workers - also while old workers still hold
// connections during a reload - and a worker killed with SIGKILL gives
// its connections back.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startNginx, waitFor, waitPidsGone, pidAlive, sleep, SLOW } from './lib/nginx.mjs';
import { TidalWs, PUBLISH_AND_STATUS, tidalStatus, closeAll } from './lib/tidal.mjs';
import { handshake, connectRaw, textFrame, rpc } from './lib/ws.mjs';

const T = { timeout: 90000 * SLOW };
const LIMIT = 8;

let ngx;

before(async () => {
    ngx = await startNginx({
        workers: 2,
        zone: 'tidal_zone tidal 8m;',
        http: `tidal_max_connections ${LIMIT};`,
        // room for the unread answers of a blocked connection below
        location: 'tidal_message_queue_bytes 64m;',
        server: `${PUBLISH_AND_STATUS}
        send_timeout 60s;`,
    });
});

after(async () => {
    await ngx?.stop();
});


// one upgrade: the open RawWs on 101, null on 503, a failure otherwise
async function tryUpgrade() {
    const res = await handshake(ngx.port, { 'Sec-WebSocket-Protocol': 'mcp' });
    if (res.status === 101) {
        return res.ws;
    }
    assert.equal(res.status, 503, `an upgrade over the limit: ${res.head}${res.body}`);
    return null;
}

// retries an upgrade refused with 503 until it succeeds (for slots that are
// given back asynchronously), bounded in time
async function upgradeSoon(what) {
    let ws = null;
    await waitFor(async () => (ws = await tryUpgrade()), { timeout: 15000, interval: 25, what });
    return ws;
}

function destroyAll(list) {
    list.forEach((c) => (c.destroy ? c.destroy() : c.terminate()));
}


test('8 upgrades succeed, the 9th gets 503 and no 101, and closing one frees a slot', T, async () => {
    const ws = await Promise.all(Array.from({ length: 4 }, (_, i) => TidalWs.join(ngx.url, { name: `in-${i}` })));
    // an upgrade counts from the 101, initialized or not
    const raw = await Promise.all(Array.from({ length: 4 }, () => connectRaw(ngx.port)));
    const extra = [];
    try {
        const s = await tidalStatus(ngx.port);
        assert.equal(s.connections, LIMIT);
        assert.equal(s.max_connections, LIMIT);

        for (let i = 0; i < 3; i++) {
            assert.equal(await tryUpgrade(), null, `upgrade ${LIMIT + 1 + i} got a 101`);
        }
        await assert.rejects(TidalWs.open(ngx.url), (e) => e.status === 503);

        await ws[0].close();
        extra.push(await upgradeSoon('the closed client\'s slot'));
        assert.equal(await tryUpgrade(), null, 'the limit holds again');
    } finally {
        await closeAll(ws);
        destroyAll([...raw, ...extra.filter(Boolean)]);
        await waitFor(async () => (await tidalStatus(ngx.port)).connections === 0, { what: 'all connections to end' });
    }
});

// A connection that does not read while about 16 MB of answers are
// waiting for it: its worker cannot finish it (not even with the 1001 of
// a reload) until it reads again or send_timeout passes.
async function blockedConnection() {
    const ws = await connectRaw(ngx.port);
    await ws.initialize();
    ws.socket.pause();
    const pad = 'b'.repeat(400 * 1024);
    for (let i = 0; i < 40; i++) {
        await ws.send(textFrame(rpc('ping', undefined, `${i}:${pad}`)));
    }
    return ws;
}

test('during a reload the count spans old and new workers: never more than 8 at once, and all 8 again once the old workers are gone', T, async (t) => {
    const HOLDOUTS = 3;
    const holdouts = [];
    const returners = [];
    const accepted = [];
    try {
        for (let i = 0; i < HOLDOUTS; i++) {
            holdouts.push(await blockedConnection());
        }
        returners.push(...await Promise.all(Array.from({ length: LIMIT - HOLDOUTS }, (_, i) => TidalWs.join(ngx.url, { name: `r${i}` }))));
        assert.equal((await tidalStatus(ngx.port)).connections, LIMIT);
        const { oldPids } = await ngx.reload();

        // the clients that read get the 1001 and come back, four newcomers
        // join the rush, while the old workers still hold the blocked ones
        await Promise.all(returners.map(async (c) => assert.equal((await c.closed).code, 1001)));
        const parties = LIMIT - HOLDOUTS + 4;
        const tries = new Array(parties).fill(0);
        const room = LIMIT - HOLDOUTS;
        const deadline = Date.now() + 20000 * SLOW;
        await Promise.all(Array.from({ length: parties }, async (_, p) => {
            while (accepted.length < room) {
                assert.ok(Date.now() < deadline,
                    `only ${accepted.length} of ${room} upgrades got in after the reload (${tries.join(' ')} tries)`);
                tries[p]++;
                const ws = await tryUpgrade();
                if (ws) {
                    accepted.push(ws);
                    return;
                }
                await sleep(20);
            }
        }));
        // everyone still out tries again: all refused while the old
        // connections are there
        for (let round = 0; round < 3; round++) {
            for (let p = 0; p < parties - room; p++) {
                const ws = await tryUpgrade();
                if (ws) {
                    accepted.push(ws);
                }
            }
        }
        assert.ok(oldPids.some(pidAlive), 'an old worker still holds the blocked connections');
        t.diagnostic(`${accepted.length} new upgrades got in while ${HOLDOUTS} blocked ones stayed on old workers`);
        assert.equal(accepted.length, room,
            `more than ${LIMIT} connections: ${accepted.length} new ones and ${HOLDOUTS} on an old worker`);

        // the blocked ones read: they get their answers and the 1001, the
        // old workers exit, and their slots are free
        const closes = await Promise.all(holdouts.map((h) => {
            h.socket.resume();
            return h.readUntilClose({ timeout: 30000 * SLOW });
        }));
        closes.forEach((c) => assert.equal(c.code, 1001));
        await waitPidsGone(oldPids);
        while (accepted.length < LIMIT) {
            accepted.push(await upgradeSoon('a slot given back by an old worker'));
        }
        assert.equal(await tryUpgrade(), null, `upgrade ${LIMIT + 1} after the reload got a 101`);
        assert.equal((await tidalStatus(ngx.port)).connections, LIMIT);
    } finally {
        destroyAll([...holdouts, ...accepted, ...returners]);
        await waitFor(async () => (await tidalStatus(ngx.port)).connections === 0, { what: 'all connections to end' });
    }
});

test('a worker killed with SIGKILL gives back its connections once the master has replaced it', T, async () => {
    const clients = await Promise.all(Array.from({ length: LIMIT }, (_, i) => TidalWs.join(ngx.url, { name: `k${i}` })));
    const fresh = [];
    try {
        assert.equal(await tryUpgrade(), null);
        const s = await tidalStatus(ngx.port);
        const victim = s.workers.reduce((a, b) => (b.clients > a.clients ? b : a));
        assert.ok(victim.clients > 0, `no worker holds clients: ${JSON.stringify(s.workers)}`);

        ngx.expectLogLines(new RegExp(`worker process ${victim.pid} exited on signal 9`));
        process.kill(victim.pid, 'SIGKILL');
        await waitFor(() => {
            const pids = ngx.workerPids();
            return pids.length === 2 && !pids.includes(victim.pid);
        }, { what: 'the master to start a new worker' });
        // its clients lost their connection; the others leave cleanly
        await waitFor(() => clients.filter((c) => c.closeInfo).length >= victim.clients,
            { what: `the killed worker's ${victim.clients} clients to see their connection end` });
        await closeAll(clients.filter((c) => !c.closeInfo));

        for (let i = 0; i < LIMIT; i++) {
            fresh.push(await upgradeSoon(`connection ${i + 1} of ${LIMIT} after the kill`));
        }
        assert.equal(await tryUpgrade(), null, `upgrade ${LIMIT + 1} after the kill got a 101`);
        const after = await tidalStatus(ngx.port);
        assert.equal(after.connections, LIMIT, JSON.stringify(after));
        assert.ok(!after.workers.some((w) => w.pid === victim.pid && w.clients > 0),
            `the dead worker is still counted: ${JSON.stringify(after.workers)}`);
    } finally {
        destroyAll([...clients, ...fresh]);
    }
});

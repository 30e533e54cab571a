// Copyright (C) ngx_tidal authors
// SPDX-License-Identifier: BSD-2-Clause

// html/tidal-client.js against a real nginx: a TidalClient that loses its
// connection (a network drop, nginx -s reload) resumes its session and
// delivers each event once and in order; after the ring wrapped it gets
// a session_restore.  Every frame the server sends it is validated too.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { startNginx, freePort, waitPidsGone, SLOW } from './lib/nginx.mjs';
import { PUBLISH_AND_STATUS, publish, tidalStatus, isEvent, streamProblems } from './lib/tidal.mjs';
import { parseServerMessage } from './lib/ws.mjs';
import { TidalClient } from '../html/tidal-client.js';

const T = { timeout: 90000 * SLOW };

let ngx;
let tiny;

before(async () => {
    ngx = await startNginx({ zone: 'tidal_zone tidal 8m;', server: PUBLISH_AND_STATUS });
});

after(async () => {
    await ngx?.stop();
    await tiny?.stop();
});


// A 'ws' WebSocket class for TidalClient that validates and keeps every
// message of every socket, and can be sent "offline": new sockets then go
// to a port nothing listens on, so reconnects fail until it is back.
async function socketKit() {
    const kit = {
        sockets: [],
        problems: [],
        offlineUrl: `ws://127.0.0.1:${await freePort()}/mcp`,
        offline: false,
    };
    kit.Socket = class extends WebSocket {
        constructor(url, protocols) {
            super(kit.offline ? kit.offlineUrl : url, protocols);
            this.received = [];
            kit.sockets.push(this);
            this.on('message', (data, isBinary) => {
                try {
                    if (isBinary) {
                        throw new Error('binary message');
                    }
                    this.received.push(parseServerMessage(Buffer.from(data)).json);
                } catch (e) {
                    kit.problems.push(e.message);
                }
            });
        }
    };
    // the events (not metrics) each socket that got any was sent
    kit.rawStreams = () => kit.sockets
        .map((s) => s.received.filter((m) => isEvent(m) && m.params.type !== 'metrics').map((m) => m.params))
        .filter((l) => l.length);
    return kit;
}


// a TidalClient and what it delivered: events, statuses, errors
function recorded(url, kit, name) {
    const client = new TidalClient(url, {
        name, version: '1.0.0', WebSocket: kit.Socket,
        minDelay: 50, maxDelay: 200, random: () => 1, timeout: 10000 * SLOW,
    });
    const rec = { client, events: [], statuses: [], errors: [], watchers: new Set() };
    const check = () => rec.watchers.forEach((w) => w());
    client.addEventListener('event', (e) => { rec.events.push(e.detail); check(); });
    client.addEventListener('status', (e) => { rec.statuses.push(e.detail); check(); });
    client.addEventListener('error', (e) => { rec.errors.push(e.detail); check(); });
    rec.until = (pred, what, timeout = 20000 * SLOW) => new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
            rec.watchers.delete(w);
            reject(new Error(`${name}: timed out waiting for ${what}; statuses `
                + `${JSON.stringify(rec.statuses.slice(-4))}, last events ${JSON.stringify(rec.events.slice(-3)).slice(0, 400)}`));
        }, timeout);
        const w = () => {
            const v = pred();
            if (v) {
                clearTimeout(timer);
                rec.watchers.delete(w);
                resolve(v);
            }
        };
        rec.watchers.add(w);
        w();
    });
    rec.untilCustom = (id) => rec.until(() => rec.events.find((e) => e.type === 'custom' && e.data?.id === id), `the event ${id}`);
    rec.customs = () => rec.events.filter((e) => e.type === 'custom');
    return rec;
}

// a new status 'open' after index from
function reopened(rec, from) {
    return rec.until(() => rec.statuses.slice(from).find((s) => s.state === 'open'), 'the client to be open again');
}


test('a TidalClient that lost its connection resumes its session and gets what it missed, once and in order', T, async () => {
    const kit = await socketKit();
    const rec = recorded(ngx.url, kit, 'dropped');
    try {
        await rec.client.connect();
        const session = rec.client.session;
        const joined = rec.client.lastSeq;
        const first = await publish(ngx.port, { id: 'before-drop' });
        await rec.untilCustom('before-drop');

        kit.offline = true;
        const mark = rec.statuses.length;
        kit.sockets.at(-1).terminate();
        await rec.until(() => rec.statuses.slice(mark).filter((s) => s.state === 'closed').length >= 2,
            'a failed reconnect while offline');
        const missed = [];
        for (let i = 0; i < 5; i++) {
            missed.push(await publish(ngx.port, { id: `missed-${i}` }));
        }
        kit.offline = false;
        const open = await reopened(rec, mark);
        assert.equal(open.resumed, true, `status: ${JSON.stringify(open)}`);
        assert.equal(rec.client.session, session);

        await rec.untilCustom('missed-4');
        const live = await publish(ngx.port, { id: 'live' });
        await rec.untilCustom('live');
        assert.deepEqual(rec.customs().map((e) => e.seq), [first, ...missed, live]);
        assert.deepEqual(streamProblems(rec.events.filter((e) => e.type !== 'metrics'), joined), []);

        // what the server sent on the resumed socket: the missed events,
        // none it had delivered before
        const streams = kit.rawStreams();
        assert.deepEqual(streams.at(-1).map((e) => e.seq), [...missed, live]);
        assert.deepEqual(kit.problems, []);
        assert.deepEqual(rec.errors, []);
    } finally {
        rec.client.close();
    }
});

test('a TidalClient rides through nginx -s reload while events keep coming: none lost, none twice', T, async () => {
    const kit = await socketKit();
    const rec = recorded(ngx.url, kit, 'reloaded');
    let stop = false;
    const answered = new Map();
    let flow;
    try {
        await rec.client.connect();
        const session = rec.client.session;
        const joined = rec.client.lastSeq;
        // a new connection per publish: a keep-alive one would be closed by
        // the reload under a request in flight
        flow = (async () => {
            for (let i = 0; !stop && i < 100000; i++) {
                answered.set(`flow-${i}`, await publish(ngx.port, { id: `flow-${i}` }));
            }
        })();
        await rec.until(() => rec.customs().length >= 20, '20 events before the reload');
        const mark = rec.statuses.length;
        const { oldPids } = await ngx.reload();
        const closed = await rec.until(() => rec.statuses.slice(mark).find((s) => s.state === 'closed'), 'the 1001');
        assert.equal(closed.code, 1001);
        const open = await reopened(rec, mark);
        assert.equal(open.resumed, true, `status: ${JSON.stringify(open)}`);
        assert.equal(rec.client.session, session);
        await waitPidsGone(oldPids);
        const n = rec.customs().length;
        await rec.until(() => rec.customs().length >= n + 20, '20 events after the reload');
        stop = true;
        await flow;
        const fence = await publish(ngx.port, { id: 'fence' });
        await rec.untilCustom('fence');

        const events = rec.events.filter((e) => e.type !== 'metrics');
        assert.deepEqual(streamProblems(events, joined), []);
        for (const e of rec.customs()) {
            if (e.data.id !== 'fence') {
                assert.equal(e.seq, answered.get(e.data.id), `${e.data.id}`);
            }
        }
        assert.equal(rec.customs().length, answered.size + 1, 'every published event, once');
        assert.equal(events.at(-1).seq, fence);

        // on the wire: each socket after the first starts right after the
        // last event the one before delivered
        const streams = kit.rawStreams();
        assert.ok(streams.length >= 2, 'the client reconnected');
        for (let k = 1; k < streams.length; k++) {
            assert.equal(streams[k][0].seq, streams[k - 1].at(-1).seq + 1,
                `socket ${k} starts at ${streams[k][0].seq} after ${streams[k - 1].at(-1).seq}`);
        }
        assert.deepEqual(kit.problems, []);
        assert.deepEqual(rec.errors, []);
    } finally {
        stop = true;
        await flow?.catch(() => {});
        rec.client.close();
    }
});

test('a TidalClient that comes back after the ring wrapped gets a session_restore, then live events', T, async () => {
    tiny = await startNginx({ zone: 'tidal_zone tidal 128k;', server: PUBLISH_AND_STATUS });
    const kit = await socketKit();
    const rec = recorded(tiny.url, kit, 'wrapped');
    try {
        await rec.client.connect();
        const session = rec.client.session;
        const seen = await publish(tiny.port, { id: 'seen' });
        await rec.untilCustom('seen');

        kit.offline = true;
        const mark = rec.statuses.length;
        kit.sockets.at(-1).terminate();
        await rec.until(() => rec.statuses.slice(mark).some((s) => s.state === 'closed'), 'the drop');
        let last;
        for (let i = 0; i < 200; i++) {
            last = await publish(tiny.port, { id: `flood-${i}`, pad: 'f'.repeat(1000) });
        }
        assert.ok((await tidalStatus(tiny.port)).seq.first > seen + 1, 'the ring wrapped');
        kit.offline = false;
        const open = await reopened(rec, mark);
        assert.equal(open.resumed, true, `status: ${JSON.stringify(open)}`);
        assert.equal(rec.client.session, session);

        const restore = await rec.until(() => rec.events.find((e) => e.type === 'session_restore'), 'a session_restore');
        assert.equal(restore.seq, last);
        assert.equal(rec.client.lastSeq, last);
        const live = await publish(tiny.port, { id: 'live' });
        await rec.untilCustom('live');
        const after = rec.events.filter((e) => e.type !== 'metrics').slice(rec.events.filter((e) => e.type !== 'metrics').indexOf(restore));
        assert.deepEqual(after.map((e) => [e.type, e.seq]), [['session_restore', last], ['custom', live]]);
        assert.equal(live, last + 1);
        assert.equal(rec.client.lastSeq, live);
        assert.deepEqual(rec.customs().map((e) => e.data.id), ['seen', 'live'], 'no event from inside the gap');
        assert.deepEqual(kit.problems, []);
    } finally {
        rec.client.close();
    }
});

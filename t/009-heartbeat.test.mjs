// Copyright (C) ngx_tidal authors
// SPDX-License-Identifier: BSD-2-Clause

// Heartbeat: with tidal_heartbeat_interval the server PINGs each client; a
// client that answers stays, one that does not is closed with 1008.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startNginx, SLOW } from './lib/nginx.mjs';
import { WsClient, connectRaw, pongFrame, rpc, describeEvent } from './lib/ws.mjs';

const T = { timeout: 30000 * SLOW };
const INTERVAL_MS = 1000;

let ngx;

before(async () => {
    ngx = await startNginx({ location: 'tidal_heartbeat_interval 1s;' });
});

after(async () => {
    await ngx?.stop();
});


test('a ws client that answers PINGs stays connected across 3 heartbeats', T, async () => {
    const c = await WsClient.open(ngx.url);
    try {
        await c.initialize();
        const pinged = new Promise((resolve) => {
            let n = 0;
            c.ws.on('ping', () => {
                if (++n === 3) {
                    resolve();
                }
            });
        });
        const closed = c.closed.then((r) => { throw new Error(`closed during heartbeats: ${r.code} ${r.reason}`); });
        closed.catch(() => {});
        await Promise.race([pinged, closed]);
        assert.equal(c.ws.readyState, c.ws.OPEN);
        assert.deepEqual(await c.request('ping', undefined, 'alive'), { jsonrpc: '2.0', id: 'alive', result: {} });
    } finally {
        c.terminate();
    }
});

test('a raw client that echoes each PING in a PONG stays connected across 3 heartbeats', T, async () => {
    const ws = await connectRaw(ngx.port);
    try {
        let pings = 0;
        while (pings < 3) {
            const ev = await ws.next(10 * INTERVAL_MS * SLOW, 'a heartbeat PING');
            assert.equal(ev.type, 'ping', `expected a PING, got ${describeEvent(ev)}`);
            pings++;
            await ws.send(pongFrame(ev.data));
        }
        await ws.sendText(rpc('ping', undefined, 'alive'));
        assert.deepEqual(await ws.message(), { jsonrpc: '2.0', id: 'alive', result: {} });
    } finally {
        ws.destroy();
    }
});

test('a raw client that never answers PINGs is closed with 1008 about the missing pong', T, async () => {
    const ws = await connectRaw(ngx.port);
    try {
        const first = await ws.next(10 * INTERVAL_MS * SLOW, 'the first heartbeat PING');
        assert.equal(first.type, 'ping', `expected a PING, got ${describeEvent(first)}`);
        const c = await ws.readUntilClose({ reply: false, timeout: 10 * INTERVAL_MS * SLOW });
        assert.ok(c.before.every((ev) => ev.type === 'ping'),
            `only PINGs may precede the close: ${c.before.map(describeEvent).join(', ')}`);
        assert.equal(c.code, 1008);
        assert.match(c.reason, /pong/i);
        // the server waits for the PONG before giving up (an interval; half of
        // it here, as a stall of this process can delay reading the PING)
        assert.ok(c.at - first.at >= INTERVAL_MS * 0.5,
            `closed ${c.at - first.at} ms after the unanswered PING`);
        assert.equal(c.tcpClosed, true, 'TCP should close after the 1008');
    } finally {
        ws.destroy();
    }
});

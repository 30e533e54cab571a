// Copyright (C) ngx_tidal authors
// SPDX-License-Identifier: BSD-2-Clause

// Graceful shutdown and reload: every WebSocket client, idle or busy, gets a
// close frame with 1001, the old workers exit, and after a reload the new
// workers serve new connections with the new configuration.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startNginx, waitPidsGone, SLOW } from './lib/nginx.mjs';
import {
    WsClient, connectRaw, textFrame, framePrefix, rpc, describeEvent, OP,
} from './lib/ws.mjs';

const T = { timeout: 60000 * SLOW };


// Opens one client of each kind; each entry's closed() resolves to the close
// code the server sent it (with the text messages that came before).
async function openClients(ngx) {
    const clients = [];

    const wsClient = await WsClient.open(ngx.url);
    await wsClient.initialize();
    clients.push({
        name: 'idle ws client',
        closed: async () => ({ code: (await wsClient.closed).code, before: [] }),
        destroy: () => wsClient.terminate(),
    });

    const fresh = await connectRaw(ngx.port);
    clients.push(rawEntry('idle raw client that never sent a message', fresh));

    const idle = await connectRaw(ngx.port);
    await idle.initialize();
    clients.push(rawEntry('idle raw client after initialize', idle));

    const fragmented = await connectRaw(ngx.port);
    await fragmented.initialize();
    await fragmented.send(textFrame('{"jsonrpc":"2.0",', { fin: false }));
    clients.push(rawEntry('raw client in the middle of a fragmented message', fragmented));

    const midFrame = await connectRaw(ngx.port);
    await midFrame.send(framePrefix(OP.TEXT, Buffer.alloc(100, 0x20), 10));
    clients.push(rawEntry('raw client in the middle of a frame', midFrame));

    // about 12 MB of answers asked for, not read: more than the kernel's
    // buffers hold, less than the default 8m queue beyond them
    const unread = await connectRaw(ngx.port);
    await unread.initialize();
    unread.socket.pause();
    const pad = 'u'.repeat(400 * 1024);
    for (let i = 0; i < 30; i++) {
        await unread.send(textFrame(rpc('ping', undefined, `${i}:${pad}`)));
    }
    clients.push(rawEntry('raw client with unread output', unread, () => unread.socket.resume()));

    return clients;
}

function rawEntry(name, ws, beforeRead = () => {}) {
    return {
        name,
        closed: async () => {
            beforeRead();
            const c = await ws.readUntilClose({ timeout: 20000 * SLOW });
            assert.equal(c.tcpClosed, true, `${name}: TCP should close after the close frame`);
            return c;
        },
        destroy: () => ws.destroy(),
    };
}

// every client gets 1001, and only answers before it
async function assertAllGoingAway(clients) {
    const results = await Promise.all(clients.map(async (c) => {
        try {
            return { c, r: await c.closed() };
        } catch (e) {
            return { c, e };
        }
    }));
    const wrong = [];
    for (const { c, r, e } of results) {
        if (e) {
            wrong.push(`${c.name}: ${e.message}`);
        } else if (r.code !== 1001) {
            wrong.push(`${c.name}: close code ${r.code} "${r.reason ?? ''}"`);
        } else if (!r.before.every((ev) => ev.type === 'text')) {
            wrong.push(`${c.name}: ${r.before.map(describeEvent).join(', ')} before the close`);
        }
    }
    assert.deepEqual(wrong, [], 'every client should be closed with 1001');
}


// the unread output must stay below the send queue bound, whatever the
// kernel's socket buffers take, or the client is closed with 1008 first
const ROOMY = { location: 'tidal_message_queue_bytes 64m;' };


test('nginx -s quit closes idle and busy WebSocket clients with 1001 and exits', T, async () => {
    const ngx = await startNginx(ROOMY);
    let clients = [];
    try {
        clients = await openClients(ngx);
        const workers = ngx.workerPids();
        assert.equal(workers.length, 2);
        const quitting = ngx.quit(30000);
        quitting.catch(() => {});  // awaited below, after the clients
        await assertAllGoingAway(clients);
        await quitting;
        await waitPidsGone(workers);
    } finally {
        clients.forEach((c) => c.destroy());
        await ngx.stop().catch(() => {});
    }
});

test('reload closes idle and busy WebSocket clients with 1001; old workers exit; new ones serve', T, async () => {
    const ngx = await startNginx(ROOMY);
    let clients = [];
    try {
        clients = await openClients(ngx);
        const closing = assertAllGoingAway(clients);
        const { oldPids, newPids } = await ngx.reload();
        await closing;
        await waitPidsGone(oldPids);
        assert.deepEqual(ngx.workerPids(), newPids);

        const c = await WsClient.open(ngx.url);
        try {
            await c.initialize();
            assert.deepEqual(await c.request('ping', undefined, 'new'), { jsonrpc: '2.0', id: 'new', result: {} });
        } finally {
            await c.close();
        }
    } finally {
        clients.forEach((c) => c.destroy());
        await ngx.stop();
    }
});

test('a reload applies a new tidal_max_message_size to new connections', T, async () => {
    const ngx = await startNginx();
    try {
        const before = await connectRaw(ngx.port);
        const closing = before.readUntilClose({ timeout: 20000 * SLOW });
        const { oldPids } = await ngx.reload({ location: 'tidal_max_message_size 4k;' });
        assert.equal((await closing).code, 1001);
        await waitPidsGone(oldPids);

        const ws = await connectRaw(ngx.port);
        try {
            await ws.send(framePrefix(OP.TEXT, '', 0, { length: 4097 }));
            const c = await ws.readUntilClose();
            assert.equal(c.code, 1009);
        } finally {
            ws.destroy();
        }
    } finally {
        await ngx.stop();
    }
});

test('two reloads in a row leave no worker behind', T, async () => {
    const ngx = await startNginx();
    try {
        const c = await WsClient.open(ngx.url);
        await c.initialize();
        const first = await ngx.reload();
        assert.equal((await c.closed).code, 1001);
        const second = await ngx.reload();
        await waitPidsGone([...first.oldPids, ...second.oldPids]);
        assert.deepEqual(ngx.workerPids(), second.newPids);
    } finally {
        await ngx.stop();
    }
});

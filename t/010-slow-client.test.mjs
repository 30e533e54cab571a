// Copyright (C) ngx_tidal authors
// SPDX-License-Identifier: BSD-2-Clause

// A client that stops reading cannot make a worker grow: its send queue is
// bounded by tidal_message_queue_size and tidal_message_queue_bytes, and the
// client is closed with 1008 when either bound is exceeded.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startNginx, rssKb, hwmKb, ASAN, SLOW } from './lib/nginx.mjs';
import { connectRaw, textFrame, rpc } from './lib/ws.mjs';

const T = { timeout: 120000 * SLOW };
const MB = 1024 * 1024;

let ngx;

before(async () => {
    ngx = await startNginx({
        location: `
            tidal_message_queue_size 64;
            tidal_message_queue_bytes 4m;
            tidal_max_message_size 2m;`,
        // a huge byte bound: only the count bound can stop this client
        server: `
        location /mcp-count {
            tidal_mcp;
            tidal_message_queue_size 64;
            tidal_message_queue_bytes 256m;
        }`,
    });
});

after(async () => {
    await ngx?.stop();
});


// Resolves 'drain', 'closed' or 'stalled' (no drain for a while: the
// server has stopped reading from us).
function drainOrStall(socket, ms) {
    return new Promise((resolve) => {
        const done = (what) => {
            clearTimeout(timer);
            socket.off('drain', onDrain);
            socket.off('close', onClose);
            socket.off('error', onClose);
            resolve(what);
        };
        const onDrain = () => done('drain');
        const onClose = () => done('closed');
        const timer = setTimeout(() => done('stalled'), ms);
        socket.on('drain', onDrain);
        socket.on('close', onClose);
        socket.on('error', onClose);
    });
}

// With reading paused, sends ping requests whose ids make each answer about
// idBytes long, until total bytes of answers were asked for or the server
// stops reading.  Returns how much was asked for and how it ended.
async function floodWhilePaused(ws, { idBytes, total }) {
    ws.socket.pause();
    const pad = 'q'.repeat(idBytes);
    let requested = 0;
    let count = 0;
    let end = 'all sent';
    while (requested < total) {
        const f = textFrame(rpc('ping', undefined, `${count}:${pad}`));
        count++;
        requested += idBytes;
        if (ws.socket.destroyed) {
            end = 'closed';
            break;
        }
        if (!ws.socket.write(f)) {
            const r = await drainOrStall(ws.socket, 3000 * SLOW);
            if (r !== 'drain') {
                end = r;
                break;
            }
        }
    }
    return { requested, count, end };
}

function workerMemory() {
    return ngx.workerPids().map((pid) => ({ pid, rss: rssKb(pid) }));
}

// the largest growth of any worker since base: RSS now and the peak (HWM)
function growthKb(base) {
    let worst = 0;
    for (const { pid, rss } of base) {
        worst = Math.max(worst, rssKb(pid) - rss, hwmKb(pid) - rss);
    }
    return worst;
}

async function slowClientCase({ path, idBytes, total, limitKb }) {
    const ws = await connectRaw(ngx.port, { path });
    try {
        await ws.initialize();
        const base = workerMemory();

        const flood = await floodWhilePaused(ws, { idBytes, total });
        const afterFlood = growthKb(base);
        // ASan's quarantine keeps freed memory resident: RSS says nothing
        // about the queue there, so only the plain build checks it
        assert.ok(ASAN || afterFlood < limitKb,
            `a worker grew by ${afterFlood} kB (limit ${limitKb} kB) after ${flood.count} requests (${flood.end})`);

        ws.socket.resume();
        const c = await ws.readUntilClose({ timeout: 30000 * SLOW });
        assert.ok(c.before.every((ev) => ev.type === 'text'),
            'only answers may precede the close frame');
        assert.ok(c.before.length < flood.count,
            `all ${flood.count} requests were answered: the queue was never bounded`);
        assert.equal(c.code, 1008, `close code (reason "${c.reason}") after ${c.before.length} answers`);
        assert.equal(c.tcpClosed, true, 'TCP should close after the 1008');

        const overall = growthKb(base);
        assert.ok(ASAN || overall < limitKb, `a worker's peak grew by ${overall} kB (limit ${limitKb} kB)`);
    } finally {
        ws.destroy();
    }
}


test('a client that stops reading is closed with 1008 once its queue passes 4m (bytes bound)', T, async () => {
    // ~500 KB answers, 50 MB asked for; the queue may hold 4m, messages
    // in flight up to twice the 2m message size, plus 16 MB of slack
    await slowClientCase({
        path: '/mcp', idBytes: 500 * 1024, total: 50 * MB,
        limitKb: (4 * MB + 2 * 2 * MB + 16 * MB) / 1024,
    });
});

test('a client that stops reading is closed with 1008 once its queue passes 64 messages (count bound)', T, async () => {
    // ~8 KB answers, 40 MB asked for: far more than 64 messages beyond what
    // the kernel buffers hold, far less than the 256m byte bound
    await slowClientCase({
        path: '/mcp-count', idBytes: 8 * 1024, total: 40 * MB,
        limitKb: (64 * 8 * 1024 + 2 * MB + 16 * MB) / 1024,
    });
});

test('the worker still serves other clients after closing a slow one', T, async () => {
    const ws = await connectRaw(ngx.port);
    try {
        await ws.sendText(rpc('ping', undefined, 'fine'));
        assert.deepEqual(await ws.message(), { jsonrpc: '2.0', id: 'fine', result: {} });
    } finally {
        ws.destroy();
    }
});

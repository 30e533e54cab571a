// Copyright (C) ngx_tidal authors
// SPDX-License-Identifier: BSD-2-Clause

// The closing handshake (RFC 6455 sections 5.5.1, 7): the server echoes a
// valid close, refuses an invalid one with 1002, closes TCP afterwards, and
// forgets connections that vanish without a close frame.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startNginx, activeConnections, waitFor, SLOW } from './lib/nginx.mjs';
import {
    connectRaw, closeFrame, frame, textFrame, rpc, describeEvent, OP,
} from './lib/ws.mjs';

const T = { timeout: 30000 * SLOW };

let ngx;

before(async () => {
    ngx = await startNginx();
});

after(async () => {
    await ngx?.stop();
});


async function withConn(fn) {
    const ws = await connectRaw(ngx.port);
    try {
        await fn(ws);
    } finally {
        ws.destroy();
    }
}

// the server's close frame, read without answering it
async function serverClose(ws) {
    const ev = await ws.next(undefined, 'the server\'s close frame');
    assert.equal(ev.type, 'close', `expected a close frame, got ${describeEvent(ev)}`);
    return ev;
}


test('close 1000 "bye" is echoed with 1000, then the server closes TCP', T, () => withConn(async (ws) => {
    await ws.send(closeFrame(1000, 'bye'));
    const ev = await serverClose(ws);
    assert.equal(ev.code, 1000);
    // the client does not close its side: the server must
    assert.equal(await ws.tcpClosedWithin(), true, 'the server should close TCP');
    assert.equal((await ws.next()).type, 'eof');
}));

test('close 4000 (private use) is echoed with 4000', T, () => withConn(async (ws) => {
    await ws.send(closeFrame(4000, 'app says bye'));
    const ev = await serverClose(ws);
    assert.equal(ev.code, 4000);
    assert.equal(await ws.tcpClosedWithin(), true, 'the server should close TCP');
}));

test('close 3000 (registered use) is echoed with 3000', T, () => withConn(async (ws) => {
    await ws.send(closeFrame(3000));
    const ev = await serverClose(ws);
    assert.equal(ev.code, 3000);
    assert.equal(await ws.tcpClosedWithin(), true, 'the server should close TCP');
}));

test('an empty close frame gets an empty close frame back', T, () => withConn(async (ws) => {
    await ws.send(frame(OP.CLOSE, Buffer.alloc(0)));
    const ev = await serverClose(ws);
    assert.equal(ev.payload.length, 0, `close payload ${ev.payload.toString('hex')}`);
    assert.equal(await ws.tcpClosedWithin(), true, 'the server should close TCP');
}));

test('a close frame split across TCP segments is echoed', T, () => withConn(async (ws) => {
    const f = closeFrame(1000, 'split');
    await ws.send(f.subarray(0, 1));
    await ws.send(f.subarray(1, 7));
    await ws.send(f.subarray(7));
    const ev = await serverClose(ws);
    assert.equal(ev.code, 1000);
}));

for (const code of [0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535]) {
    test(`close code ${code} is invalid: the server closes with 1002`, T, () => withConn(async (ws) => {
        await ws.send(closeFrame(code));
        const ev = await serverClose(ws);
        assert.equal(ev.code, 1002);
    }));
}

test('a 1-byte close payload is closed with 1002', T, () => withConn(async (ws) => {
    await ws.send(frame(OP.CLOSE, Buffer.from([0x03])));
    const ev = await serverClose(ws);
    assert.equal(ev.code, 1002);
}));

test('frames after the client\'s close frame are not answered', T, () => withConn(async (ws) => {
    await ws.send(Buffer.concat([closeFrame(1000), textFrame(rpc('ping', undefined, 'late'))]));
    const c = await ws.readUntilClose();
    assert.deepEqual(c.before.map(describeEvent), []);
    assert.equal(c.code, 1000);
    assert.equal(c.tcpClosed, true);
}));

test('after a server-initiated close, the client\'s echo lets the server close TCP', T, () => withConn(async (ws) => {
    await ws.send(frame(0x3, 'x'));
    const c = await ws.readUntilClose({ reply: true });
    assert.equal(c.code, 1002);
    assert.equal(c.tcpClosed, true);
}));

test('after a server-initiated close, a client that never answers is disconnected anyway', T, () => withConn(async (ws) => {
    await ws.send(frame(0x3, 'x'));
    const c = await ws.readUntilClose({ reply: false, tcpTimeout: 30000 * SLOW });
    assert.equal(c.code, 1002);
    assert.equal(c.tcpClosed, true, 'the server should close TCP after a linger');
}));

test('connections dropped without a close frame are cleaned up (stub_status)', T, async () => {
    const n = 10;
    const conns = [];
    try {
        for (let i = 0; i < n; i++) {
            const ws = await connectRaw(ngx.port);
            await ws.sendText(rpc('ping', undefined, i));
            await ws.message();
            conns.push(ws);
        }
        // the open WebSockets and the status request itself are counted
        assert.ok(await activeConnections(ngx.port) >= n + 1);
        // one of them in the middle of a fragmented message
        await conns[0].send(textFrame('{"jsonrpc":', { fin: false }));
    } finally {
        for (const ws of conns) {
            ws.socket.destroy();
        }
    }
    await waitFor(async () => (await activeConnections(ngx.port)) === 1, {
        timeout: 15000, what: '"Active connections: 1" on /status',
    });
});

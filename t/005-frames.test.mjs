// Copyright (C) ngx_tidal authors
// SPDX-License-Identifier: BSD-2-Clause

// Client frames (RFC 6455 section 5): what the server answers to valid and
// invalid frames, control frames and fragmented messages, byte for byte.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { startNginx, SLOW } from './lib/nginx.mjs';
import {
    connectRaw, frame, framePrefix, textFrame, contFrame, binaryFrame, pingFrame,
    pongFrame, rpc, describeEvent, OP,
} from './lib/ws.mjs';

const T = { timeout: 30000 * SLOW };

let ngx;

before(async () => {
    ngx = await startNginx();
});

after(async () => {
    await ngx?.stop();
});


const conn = () => connectRaw(ngx.port);

// The server's close frame comes first, with this code, and TCP closes.
async function assertClosedWith(ws, code) {
    const c = await ws.readUntilClose();
    assert.deepEqual(c.before.map(describeEvent), [], 'nothing should come before the close frame');
    assert.equal(c.code, code, `close code (reason "${c.reason}")`);
    assert.equal(c.tcpClosed, true, 'TCP should close after the close handshake');
}

// the connection still answers a ping request, and nothing else is pending
async function assertStillUsable(ws, id = 'still-there') {
    await ws.sendText(rpc('ping', undefined, id));
    assert.deepEqual(await ws.message(), { jsonrpc: '2.0', id, result: {} });
}

async function withConn(fn) {
    const ws = await conn();
    try {
        await fn(ws);
    } finally {
        ws.destroy();
    }
}


test('a masked text frame with a ping request gets one text frame with the result', T, () => withConn(async (ws) => {
    await ws.send(textFrame(rpc('ping', undefined, 7)));
    const ev = await ws.expect('text');
    assert.deepEqual(ev.json, { jsonrpc: '2.0', id: 7, result: {} });
}));

test('a message with a 16-bit length (200 bytes) is answered', T, () => withConn(async (ws) => {
    const id = 'x'.repeat(200 - rpc('ping', undefined, '').length);
    const msg = rpc('ping', undefined, id);
    assert.equal(msg.length, 200);
    await ws.send(textFrame(msg));
    assert.deepEqual(await ws.message(), { jsonrpc: '2.0', id, result: {} });
}));

test('a message with a 64-bit length (70000 bytes) is answered', T, () => withConn(async (ws) => {
    const id = 'y'.repeat(70000 - rpc('ping', undefined, '').length);
    const msg = rpc('ping', undefined, id);
    assert.equal(msg.length, 70000);
    await ws.send(textFrame(msg));
    assert.deepEqual(await ws.message(), { jsonrpc: '2.0', id, result: {} });
}));

test('a frame sent one byte per TCP segment is answered', T, () => withConn(async (ws) => {
    const bytes = textFrame(rpc('ping', undefined, 'slow'));
    for (const b of bytes) {
        await ws.send(Buffer.from([b]));
    }
    assert.deepEqual(await ws.message(), { jsonrpc: '2.0', id: 'slow', result: {} });
}));

test('two frames in one TCP segment get two answers, in order', T, () => withConn(async (ws) => {
    await ws.send(Buffer.concat([textFrame(rpc('ping', undefined, 1)), textFrame(rpc('ping', undefined, 2))]));
    assert.deepEqual(await ws.message(), { jsonrpc: '2.0', id: 1, result: {} });
    assert.deepEqual(await ws.message(), { jsonrpc: '2.0', id: 2, result: {} });
}));

test('an unmasked client frame is closed with 1002', T, () => withConn(async (ws) => {
    await ws.send(textFrame(rpc('ping', undefined, 1), { mask: false }));
    await assertClosedWith(ws, 1002);
}));

for (const [name, rsv] of [['RSV1', 4], ['RSV2', 2], ['RSV3', 1]]) {
    test(`a frame with ${name} set is closed with 1002`, T, () => withConn(async (ws) => {
        await ws.send(textFrame(rpc('ping', undefined, 1), { rsv }));
        await assertClosedWith(ws, 1002);
    }));
}

for (const opcode of [0x3, 0x4, 0x5, 0x6, 0x7, 0xb, 0xc, 0xd, 0xe, 0xf]) {
    test(`reserved opcode 0x${opcode.toString(16)} is closed with 1002`, T, () => withConn(async (ws) => {
        await ws.send(frame(opcode, 'abc'));
        await assertClosedWith(ws, 1002);
    }));
}

test('a PING with a 126-byte payload is closed with 1002', T, () => withConn(async (ws) => {
    await ws.send(pingFrame(Buffer.alloc(126, 0x61)));
    await assertClosedWith(ws, 1002);
}));

test('a PONG with a 126-byte payload is closed with 1002', T, () => withConn(async (ws) => {
    await ws.send(pongFrame(Buffer.alloc(126, 0x61)));
    await assertClosedWith(ws, 1002);
}));

test('a PING with FIN=0 is closed with 1002', T, () => withConn(async (ws) => {
    await ws.send(pingFrame('x', { fin: false }));
    await assertClosedWith(ws, 1002);
}));

test('a fragmented ping request (TEXT, CONT, CONT) gets exactly one answer', T, () => withConn(async (ws) => {
    await ws.send(textFrame('{"jsonrpc":"2.0",', { fin: false }));
    await ws.send(contFrame('"id":"frag","met', { fin: false }));
    await ws.send(contFrame('hod":"ping"}', { fin: true }));
    assert.deepEqual(await ws.message(), { jsonrpc: '2.0', id: 'frag', result: {} });
    await assertStillUsable(ws);
}));

test('fragments with empty payloads are reassembled', T, () => withConn(async (ws) => {
    await ws.send(textFrame('', { fin: false }));
    await ws.send(contFrame(rpc('ping', undefined, 'e'), { fin: false }));
    await ws.send(contFrame('', { fin: true }));
    assert.deepEqual(await ws.message(), { jsonrpc: '2.0', id: 'e', result: {} });
    await assertStillUsable(ws);
}));

test('a PING between fragments is answered with a PONG before the message completes', T, () => withConn(async (ws) => {
    await ws.send(textFrame('{"jsonrpc":"2.0","id":"mid",', { fin: false }));
    await ws.send(pingFrame('between'));
    const pong = await ws.expect('pong');
    assert.equal(pong.data.toString(), 'between');
    await ws.send(contFrame('"method":"ping"}', { fin: true }));
    assert.deepEqual(await ws.message(), { jsonrpc: '2.0', id: 'mid', result: {} });
    await assertStillUsable(ws);
}));

test('a CONT frame without a started message is closed with 1002', T, () => withConn(async (ws) => {
    await ws.send(contFrame(rpc('ping', undefined, 1), { fin: true }));
    await assertClosedWith(ws, 1002);
}));

test('a new TEXT frame inside a fragmented message is closed with 1002', T, () => withConn(async (ws) => {
    await ws.send(textFrame('{"jsonrpc":"2.0",', { fin: false }));
    await ws.send(textFrame(rpc('ping', undefined, 1)));
    await assertClosedWith(ws, 1002);
}));

test('a binary frame is closed with 1003', T, () => withConn(async (ws) => {
    await ws.send(binaryFrame(Buffer.from(rpc('ping', undefined, 1))));
    await assertClosedWith(ws, 1003);
}));

test('PING gets a PONG with the same payload', T, () => withConn(async (ws) => {
    await ws.send(pingFrame('hello tidal'));
    const pong = await ws.expect('pong');
    assert.equal(pong.data.toString(), 'hello tidal');
    await assertStillUsable(ws);
}));

test('PING with an empty payload gets an empty PONG', T, () => withConn(async (ws) => {
    await ws.send(pingFrame(''));
    const pong = await ws.expect('pong');
    assert.equal(pong.data.length, 0);
    await assertStillUsable(ws);
}));

test('PING with a 125-byte binary payload gets the same 125 bytes back', T, () => withConn(async (ws) => {
    const payload = crypto.randomBytes(125);
    await ws.send(pingFrame(payload));
    const pong = await ws.expect('pong');
    assert.deepEqual(pong.data, payload);
    await assertStillUsable(ws);
}));

test('a PING split across TCP segments gets its PONG', T, () => withConn(async (ws) => {
    const f = pingFrame('split ping');
    await ws.send(f.subarray(0, 3));
    await ws.send(f.subarray(3, 9));
    await ws.send(f.subarray(9));
    const pong = await ws.expect('pong');
    assert.equal(pong.data.toString(), 'split ping');
}));

test('an unsolicited PONG is ignored', T, () => withConn(async (ws) => {
    await ws.send(pongFrame('nobody asked'));
    await assertStillUsable(ws);
}));

test('the default tidal_max_message_size is 1m: 1048576 bytes are answered', T, () => withConn(async (ws) => {
    const id = 'z'.repeat(1048576 - rpc('ping', undefined, '').length);
    const msg = rpc('ping', undefined, id);
    assert.equal(msg.length, 1048576);
    await ws.send(textFrame(msg));
    assert.deepEqual(await ws.message(), { jsonrpc: '2.0', id, result: {} });
}));

test('the default tidal_max_message_size is 1m: a header declaring 1048577 bytes is closed with 1009', T, () => withConn(async (ws) => {
    await ws.send(framePrefix(OP.TEXT, '', 0, { length: 1048577 }));
    await assertClosedWith(ws, 1009);
}));

// Copyright (C) ngx_tidal authors
// SPDX-License-Identifier: BSD-2-Clause

// Text messages must be UTF-8 (1007 as soon as a byte proves otherwise) and
// at most tidal_max_message_size (1009 as soon as a length says otherwise).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startNginx, SLOW } from './lib/nginx.mjs';
import {
    connectRaw, textFrame, contFrame, framePrefix, rpc, describeEvent, OP,
} from './lib/ws.mjs';

const T = { timeout: 30000 * SLOW };

let ngx;

// 4k at http level, 8k in one location: the location's value wins there
before(async () => {
    ngx = await startNginx({
        http: '    tidal_max_message_size 4k;',
        server: `
        location /mcp-big {
            tidal_mcp;
            tidal_max_message_size 8k;
        }`,
    });
});

after(async () => {
    await ngx?.stop();
});


async function withConn(fn, path) {
    const ws = await connectRaw(ngx.port, { path });
    try {
        await fn(ws);
    } finally {
        ws.destroy();
    }
}

async function assertClosedWith(ws, code) {
    const c = await ws.readUntilClose();
    assert.deepEqual(c.before.map(describeEvent), [], 'nothing should come before the close frame');
    assert.equal(c.code, code, `close code (reason "${c.reason}")`);
    assert.equal(c.tcpClosed, true, 'TCP should close after the close handshake');
}

// a ping request of exactly n bytes (its id pads it)
function pingOfSize(n, id = 'p') {
    const pad = n - rpc('ping', undefined, id).length;
    const msg = rpc('ping', undefined, id + 'p'.repeat(pad));
    assert.equal(Buffer.byteLength(msg), n);
    return { msg, id: id + 'p'.repeat(pad) };
}


// -- UTF-8 -----------------------------------------------------------------

test('multi-byte UTF-8 in a message comes back intact', T, () => withConn(async (ws) => {
    const id = 'héllo wörld ♪ 🎵 日本';
    await ws.sendText(rpc('ping', undefined, id));
    assert.deepEqual(await ws.message(), { jsonrpc: '2.0', id, result: {} });
}));

test('a 4-byte sequence split across fragments is accepted', T, () => withConn(async (ws) => {
    const msg = Buffer.from(rpc('ping', undefined, 'a🎵b'));
    const cut = msg.indexOf(Buffer.from('🎵')) + 2;
    await ws.send(textFrame(msg.subarray(0, cut), { fin: false }));
    await ws.send(contFrame(msg.subarray(cut), { fin: true }));
    assert.deepEqual(await ws.message(), { jsonrpc: '2.0', id: 'a🎵b', result: {} });
}));

// fail fast: the frame declares 100 bytes, only the first few are sent
const failFast = [
    ['an overlong encoding (0xC0 0x80)', [0xc0, 0x80]],
    ['a UTF-16 surrogate (0xED 0xA0)', [0xed, 0xa0]],
    ['a code point above U+10FFFF (0xF4 0x90)', [0xf4, 0x90]],
    ['a lone continuation byte (0x80)', [0x80]],
    ['a byte that never occurs (0xFF)', [0xff]],
    ['an overlong 3-byte encoding (0xE0 0x80)', [0xe0, 0x80]],
];

for (const [what, bad] of failFast) {
    test(`${what} is closed with 1007 before the rest of the frame arrives`, T, () => withConn(async (ws) => {
        const payload = Buffer.concat([Buffer.from('{"id":"'), Buffer.from(bad), Buffer.alloc(100, 0x61)])
            .subarray(0, 100);
        await ws.send(framePrefix(OP.TEXT, payload, 7 + bad.length));
        await assertClosedWith(ws, 1007);
    }));
}

test('invalid UTF-8 across fragments (0xE2 0x82 | "A") is closed with 1007', T, () => withConn(async (ws) => {
    await ws.send(textFrame(Buffer.concat([Buffer.from('{"id":"'), Buffer.from([0xe2, 0x82])]), { fin: false }));
    // the second fragment declares 50 bytes; its first byte already fails
    await ws.send(framePrefix(OP.CONT, Buffer.alloc(50, 0x41), 1, { fin: true }));
    await assertClosedWith(ws, 1007);
}));

test('a message ending inside a UTF-8 sequence is closed with 1007', T, () => withConn(async (ws) => {
    await ws.send(textFrame(Buffer.concat([Buffer.from('{"id":"'), Buffer.from([0xe2, 0x82])])));
    await assertClosedWith(ws, 1007);
}));

test('a fragmented message ending inside a UTF-8 sequence is closed with 1007', T, () => withConn(async (ws) => {
    await ws.send(textFrame('{"id":"', { fin: false }));
    await ws.send(contFrame(Buffer.from([0xf0, 0x9f, 0x8e]), { fin: true }));
    await assertClosedWith(ws, 1007);
}));


// -- size ------------------------------------------------------------------

test('http-level 4k: a message of exactly 4096 bytes is answered', T, () => withConn(async (ws) => {
    const { msg, id } = pingOfSize(4096);
    await ws.sendText(msg);
    assert.deepEqual(await ws.message(), { jsonrpc: '2.0', id, result: {} });
}));

test('http-level 4k: a header declaring 4097 bytes is closed with 1009 at once', T, () => withConn(async (ws) => {
    await ws.send(framePrefix(OP.TEXT, '', 0, { length: 4097 }));
    await assertClosedWith(ws, 1009);
}));

test('http-level 4k: a header declaring 2^40 bytes (64-bit length) is closed with 1009', T, () => withConn(async (ws) => {
    await ws.send(framePrefix(OP.TEXT, '', 0, { length: 2 ** 40 }));
    await assertClosedWith(ws, 1009);
}));

test('http-level 4k: fragments of 4096 bytes in total are answered', T, () => withConn(async (ws) => {
    const { msg, id } = pingOfSize(4096);
    await ws.send(textFrame(msg.slice(0, 2000), { fin: false }));
    await ws.send(contFrame(msg.slice(2000, 4000), { fin: false }));
    await ws.send(contFrame(msg.slice(4000), { fin: true }));
    assert.deepEqual(await ws.message(), { jsonrpc: '2.0', id, result: {} });
}));

test('http-level 4k: a fragment taking the total past 4096 is closed with 1009 at its header', T, () => withConn(async (ws) => {
    await ws.send(textFrame('{' + ' '.repeat(2999), { fin: false }));
    // 3000 + 1097 > 4096: only the header of the second fragment is sent
    await ws.send(framePrefix(OP.CONT, '', 0, { length: 1097, fin: false }));
    await assertClosedWith(ws, 1009);
}));

test('location-level 8k overrides http-level 4k: 8192 bytes are answered', T, () => withConn(async (ws) => {
    const { msg, id } = pingOfSize(8192);
    await ws.sendText(msg);
    assert.deepEqual(await ws.message(), { jsonrpc: '2.0', id, result: {} });
}, '/mcp-big'));

test('location-level 8k: a header declaring 8193 bytes is closed with 1009', T, () => withConn(async (ws) => {
    await ws.send(framePrefix(OP.TEXT, '', 0, { length: 8193 }));
    await assertClosedWith(ws, 1009);
}, '/mcp-big'));

test('control frames do not count toward the message size', T, () => withConn(async (ws) => {
    const { msg, id } = pingOfSize(4096);
    await ws.send(textFrame(msg.slice(0, 4000), { fin: false }));
    await ws.send(framePrefix(OP.PING, Buffer.alloc(125, 0x70), 125));
    const pong = await ws.expect('pong');
    assert.equal(pong.data.length, 125);
    await ws.send(contFrame(msg.slice(4000), { fin: true }));
    assert.deepEqual(await ws.message(), { jsonrpc: '2.0', id, result: {} });
}));

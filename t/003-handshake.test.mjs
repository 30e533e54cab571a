// Copyright (C) ngx_tidal authors
// SPDX-License-Identifier: BSD-2-Clause

// The opening handshake on the MCP location (RFC 6455 section 4), and what
// plain HTTP requests to it get.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startNginx, SLOW } from './lib/nginx.mjs';
import { handshake, httpRequest, acceptFor, rpc } from './lib/ws.mjs';

const T = { timeout: 30000 * SLOW };

let ngx;

before(async () => {
    ngx = await startNginx();
});

after(async () => {
    await ngx?.stop();
});


// the header's values, one per line it was sent on
function headerLines(res, name) {
    return res.rawHeaders.filter(([n]) => n === name).map(([, v]) => v);
}

async function upgrade(headers) {
    const res = await handshake(ngx.port, headers);
    return res;
}

function closeConn(res) {
    res.socket?.destroy();
}


test('the RFC 6455 sample key gets the sample accept value', T, async () => {
    const res = await upgrade({ 'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==' });
    try {
        assert.equal(res.status, 101, res.head);
        assert.equal(res.headers['sec-websocket-accept'], 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=');
        assert.match(res.headers.upgrade || '', /^websocket$/i);
        assert.match(res.headers.connection || '', /\bupgrade\b/i);
    } finally {
        closeConn(res);
    }
});

test('a random key gets the matching accept value and a working connection', T, async () => {
    const res = await upgrade({ 'Sec-WebSocket-Protocol': 'mcp' });
    try {
        assert.equal(res.status, 101, res.head);
        assert.equal(res.headers['sec-websocket-accept'], acceptFor(res.key));
        await res.ws.sendText(rpc('ping', undefined, 1));
        assert.deepEqual(await res.ws.message(), { jsonrpc: '2.0', id: 1, result: {} });
    } finally {
        closeConn(res);
    }
});

test('subprotocol mcp offered alone is echoed', T, async () => {
    const res = await upgrade({ 'Sec-WebSocket-Protocol': 'mcp' });
    try {
        assert.equal(res.status, 101, res.head);
        assert.deepEqual(headerLines(res, 'sec-websocket-protocol'), ['mcp']);
    } finally {
        closeConn(res);
    }
});

test('subprotocol mcp offered in a list ("foo, mcp") is chosen', T, async () => {
    const res = await upgrade({ 'Sec-WebSocket-Protocol': 'foo, mcp' });
    try {
        assert.equal(res.status, 101, res.head);
        assert.deepEqual(headerLines(res, 'sec-websocket-protocol'), ['mcp']);
    } finally {
        closeConn(res);
    }
});

test('subprotocol mcp offered on a second header line is chosen', T, async () => {
    const res = await upgrade({ 'Sec-WebSocket-Protocol': ['foo', 'mcp'] });
    try {
        assert.equal(res.status, 101, res.head);
        assert.deepEqual(headerLines(res, 'sec-websocket-protocol'), ['mcp']);
    } finally {
        closeConn(res);
    }
});

test('no subprotocol offered: no Sec-WebSocket-Protocol in the answer', T, async () => {
    const res = await upgrade({});
    try {
        assert.equal(res.status, 101, res.head);
        assert.deepEqual(headerLines(res, 'sec-websocket-protocol'), []);
    } finally {
        closeConn(res);
    }
});

test('subprotocols without mcp ("foo, bar"): no Sec-WebSocket-Protocol in the answer', T, async () => {
    const res = await upgrade({ 'Sec-WebSocket-Protocol': 'foo, bar' });
    try {
        assert.equal(res.status, 101, res.head);
        assert.deepEqual(headerLines(res, 'sec-websocket-protocol'), []);
    } finally {
        closeConn(res);
    }
});

test('"mcpx" is not mistaken for mcp', T, async () => {
    const res = await upgrade({ 'Sec-WebSocket-Protocol': 'mcpx, xmcp' });
    try {
        assert.equal(res.status, 101, res.head);
        assert.deepEqual(headerLines(res, 'sec-websocket-protocol'), []);
    } finally {
        closeConn(res);
    }
});

test('upgrade header values are case-insensitive ("WebSocket", "keep-alive, Upgrade")', T, async () => {
    const res = await upgrade({ Upgrade: 'WebSocket', Connection: 'keep-alive, Upgrade' });
    try {
        assert.equal(res.status, 101, res.head);
        assert.equal(res.headers['sec-websocket-accept'], acceptFor(res.key));
    } finally {
        closeConn(res);
    }
});

test('a missing Sec-WebSocket-Key is refused with 400', T, async () => {
    const res = await upgrade({ 'Sec-WebSocket-Key': null });
    assert.equal(res.status, 400, res.head);
});

const badKeys = [
    ['not base64', 'not a base64 key!!'],
    ['base64 of 15 bytes', Buffer.alloc(15, 1).toString('base64')],
    ['base64 of 17 bytes', Buffer.alloc(17, 1).toString('base64')],
    ['24 characters with a bad padding', 'dGhlIHNhbXBsZSBub25jZQ=A'],
    ['empty', ''],
];

for (const [what, key] of badKeys) {
    test(`an invalid Sec-WebSocket-Key (${what}) is refused with 400`, T, async () => {
        const res = await upgrade({ 'Sec-WebSocket-Key': key });
        assert.equal(res.status, 400, res.head);
    });
}

test('Sec-WebSocket-Version 8 is refused with 426 and Sec-WebSocket-Version: 13', T, async () => {
    const res = await upgrade({ 'Sec-WebSocket-Version': '8' });
    assert.equal(res.status, 426, res.head);
    assert.equal(res.headers['sec-websocket-version'], '13');
});

test('a missing Sec-WebSocket-Version is refused (400 or 426)', T, async () => {
    const res = await upgrade({ 'Sec-WebSocket-Version': null });
    assert.ok([400, 426].includes(res.status), res.head);
    if (res.status === 426) {
        assert.equal(res.headers['sec-websocket-version'], '13');
    }
});

// a plain request: status, and a one-line text body saying what is expected
async function assertPlainRefusal(method, status) {
    const res = await httpRequest(ngx.port, {
        method, path: '/mcp', body: method === 'POST' ? rpc('ping', undefined, 1) : undefined,
        headers: method === 'POST' ? { 'Content-Type': 'application/json' } : {},
    });
    assert.equal(res.status, status, res.head);
    assert.match(res.headers['content-type'] || '', /^text\//, `content-type: ${res.headers['content-type']}`);
    const body = res.body.toString('utf8');
    assert.match(body, /^[^\n]+\n$/, `not a one-line body ending in a newline: ${JSON.stringify(body)}`);
    assert.match(body, /websocket/i, `the body should say the endpoint expects a WebSocket: ${JSON.stringify(body)}`);
}

// POST and DELETE without Upgrade are Streamable HTTP (t/120)
for (const method of ['POST', 'DELETE']) {
    test(`${method} without Upgrade and without a session gets 400 with a JSON-RPC error`, T, async () => {
        const res = await httpRequest(ngx.port, {
            method, path: '/mcp', body: method === 'POST' ? rpc('ping', undefined, 1) : undefined,
            headers: method === 'POST' ? { 'Content-Type': 'application/json' } : {},
        });
        assert.equal(res.status, 400, res.head);
        assert.equal(res.headers['content-type'], 'application/json');
        const body = JSON.parse(res.body.toString('utf8'));
        assert.equal(body.error.code, -32600);
        assert.match(body.error.message, /Mcp-Session-Id/);
    });
}

test('PUT without Upgrade gets 405 naming the methods', T, async () => {
    const res = await httpRequest(ngx.port, { method: 'PUT', path: '/mcp' });
    assert.equal(res.status, 405, res.head);
    assert.match(res.headers.allow, /GET, POST, DELETE/);
});

test('GET without Upgrade gets 426 with a one-line text body', T, async () => {
    await assertPlainRefusal('GET', 426);
});

test('a location without tidal_mcp is untouched by the module', T, async () => {
    const res = await httpRequest(ngx.port, { path: '/status' });
    assert.equal(res.status, 200);
    assert.match(res.body.toString(), /^Active connections: \d+/);
});

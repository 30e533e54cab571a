// Copyright (C) ngx_tidal authors
// SPDX-License-Identifier: BSD-2-Clause

// JSON-RPC 2.0 and the MCP lifecycle over a real WebSocket client ('ws',
// subprotocol mcp): error codes, notifications, initialize negotiation.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startNginx, SLOW } from './lib/nginx.mjs';
import { WsClient, rpc, INIT_PARAMS, LATEST_VERSION } from './lib/ws.mjs';

const T = { timeout: 30000 * SLOW };

let ngx;

before(async () => {
    ngx = await startNginx();
});

after(async () => {
    await ngx?.stop();
});


async function withClient(fn, { initialize = false } = {}) {
    const c = await WsClient.open(ngx.url);
    try {
        assert.equal(c.ws.protocol, 'mcp');
        if (initialize) {
            await c.initialize();
        }
        await fn(c);
    } finally {
        c.terminate();
    }
}

// an error reply with this code, whose id could not be read: JSON-RPC 2.0
// says null; MCP 2025-11-25 lets it be left out
function assertErrorWithoutId(m, code) {
    assert.ok(m.error, `expected an error, got ${JSON.stringify(m)}`);
    assert.equal(m.error.code, code, JSON.stringify(m));
    assert.equal(typeof m.error.message, 'string');
    assert.ok(m.id === null || !('id' in m), `id should be null: ${JSON.stringify(m)}`);
    assert.ok(!('result' in m));
}

function assertError(m, id, code) {
    assert.ok(m.error, `expected an error, got ${JSON.stringify(m)}`);
    assert.equal(m.id, id, JSON.stringify(m));
    assert.equal(m.error.code, code, JSON.stringify(m));
    assert.equal(typeof m.error.message, 'string');
    assert.ok(!('result' in m));
}

async function sendRaw(c, text) {
    c.send(text);
    return c.reply();
}


// -- malformed messages ----------------------------------------------------

test('"{" is a parse error (-32700) with id null', T, () => withClient(async (c) => {
    assertErrorWithoutId(await sendRaw(c, '{'), -32700);
}));

test('an empty message is a parse error (-32700) with id null', T, () => withClient(async (c) => {
    assertErrorWithoutId(await sendRaw(c, ''), -32700);
}));

test('a truncated request is a parse error (-32700)', T, () => withClient(async (c) => {
    assertErrorWithoutId(await sendRaw(c, '{"jsonrpc":"2.0","id":1,"method":"pi'), -32700);
}));

test('"[]" is an invalid request (-32600) with id null', T, () => withClient(async (c) => {
    assertErrorWithoutId(await sendRaw(c, '[]'), -32600);
}));

test('a batch is an invalid request (-32600) with id null, answered once', T, () => withClient(async (c) => {
    const batch = `[${rpc('ping', undefined, 1)},${rpc('ping', undefined, 2)}]`;
    assertErrorWithoutId(await sendRaw(c, batch), -32600);
    // nothing else was queued for the batch's members
    assert.deepEqual(await c.request('ping', undefined, 'next'), { jsonrpc: '2.0', id: 'next', result: {} });
}));

for (const [what, text] of [
    ['42', '42'],
    ['"x"', '"x"'],
    ['null', 'null'],
    ['true', 'true'],
    ['{}', '{}'],
]) {
    test(`${what} is an invalid request (-32600) with id null`, T, () => withClient(async (c) => {
        assertErrorWithoutId(await sendRaw(c, text), -32600);
    }));
}

test('a request without "jsonrpc" is an invalid request (-32600)', T, () => withClient(async (c) => {
    const m = await sendRaw(c, '{"id":1,"method":"ping"}');
    assert.equal(m.error?.code, -32600, JSON.stringify(m));
    assert.ok(m.id === 1 || m.id === null || !('id' in m), JSON.stringify(m));
}));

test('"jsonrpc":"1.0" is an invalid request (-32600)', T, () => withClient(async (c) => {
    const m = await sendRaw(c, '{"jsonrpc":"1.0","id":1,"method":"ping"}');
    assert.equal(m.error?.code, -32600, JSON.stringify(m));
    assert.ok(m.id === 1 || m.id === null || !('id' in m), JSON.stringify(m));
}));

test('a non-string method is an invalid request (-32600)', T, () => withClient(async (c) => {
    const m = await sendRaw(c, '{"jsonrpc":"2.0","id":1,"method":5}');
    assert.equal(m.error?.code, -32600, JSON.stringify(m));
    assert.ok(m.id === 1 || m.id === null || !('id' in m), JSON.stringify(m));
}));

test('an object id is an invalid request (-32600) with id null', T, () => withClient(async (c) => {
    assertErrorWithoutId(await sendRaw(c, '{"jsonrpc":"2.0","id":{"a":1},"method":"ping"}'), -32600);
}));


// -- ids -------------------------------------------------------------------

for (const id of [0, -5, 9007199254740991, '', 'abc', 'ünïcødé ♪']) {
    test(`ping with id ${JSON.stringify(id)} is answered with the same id`, T, () => withClient(async (c) => {
        c.send(rpc('ping', undefined, id));
        assert.deepEqual(await c.reply(), { jsonrpc: '2.0', id, result: {} });
    }));
}


// -- lifecycle -------------------------------------------------------------

test('ping works before initialize', T, () => withClient(async (c) => {
    assert.deepEqual(await c.request('ping', undefined, 1), { jsonrpc: '2.0', id: 1, result: {} });
}));

test('tools/list before initialize is an error that mentions initialize', T, () => withClient(async (c) => {
    const m = await c.request('tools/list', {}, 2);
    assertError(m, 2, -32600);
    assert.match(m.error.message, /initiali[sz]/i);
}));

test('initialize answers the server info, capabilities and protocol version', T, () => withClient(async (c) => {
    const m = await c.request('initialize', INIT_PARAMS, 'init');
    assert.ok(m.result, JSON.stringify(m));
    assert.equal(m.result.protocolVersion, LATEST_VERSION);
    assert.equal(m.result.serverInfo.name, 'ngx_tidal');
    assert.equal(typeof m.result.serverInfo.version, 'string');
    assert.ok(m.result.serverInfo.version.length > 0);
    assert.equal(typeof m.result.capabilities, 'object');
    assert.equal(typeof m.result.capabilities.tools, 'object');
}));

for (const [asked, expected] of [
    ['2025-11-25', '2025-11-25'],
    ['2025-06-18', '2025-06-18'],
    ['2025-03-26', '2025-03-26'],
    ['2024-11-05', '2025-11-25'],
    ['1999-01-01', '2025-11-25'],
]) {
    test(`initialize asking for ${asked} gets ${expected}`, T, () => withClient(async (c) => {
        const m = await c.request('initialize', { ...INIT_PARAMS, protocolVersion: asked }, 1);
        assert.ok(m.result, JSON.stringify(m));
        assert.equal(m.result.protocolVersion, expected);
    }));
}

test('a second initialize is an error', T, () => withClient(async (c) => {
    const m = await c.request('initialize', INIT_PARAMS, 'again');
    assert.ok(m.error, JSON.stringify(m));
    assert.equal(m.id, 'again');
    // the session is still usable
    assert.deepEqual(await c.request('ping', undefined, 3), { jsonrpc: '2.0', id: 3, result: {} });
}, { initialize: true }));

test('initialize without protocolVersion is invalid params (-32602)', T, () => withClient(async (c) => {
    const { protocolVersion, ...params } = INIT_PARAMS;
    assertError(await c.request('initialize', params, 5), 5, -32602);
}));

test('tools/list after initialize lists the tools', T, () => withClient(async (c) => {
    const m = await c.request('tools/list', {}, 'tl');
    assert.ok(m.result, JSON.stringify(m));
    assert.ok(Array.isArray(m.result.tools));
}, { initialize: true }));

test('an unknown method after initialize is method not found (-32601)', T, () => withClient(async (c) => {
    assertError(await c.request('tidal/no-such-method', {}, 9), 9, -32601);
}, { initialize: true }));

test('logging/setLevel "debug" is accepted', T, () => withClient(async (c) => {
    assert.deepEqual(await c.request('logging/setLevel', { level: 'debug' }, 'lv'),
        { jsonrpc: '2.0', id: 'lv', result: {} });
}, { initialize: true }));

test('logging/setLevel "loud" is invalid params (-32602)', T, () => withClient(async (c) => {
    assertError(await c.request('logging/setLevel', { level: 'loud' }, 'lv'), 'lv', -32602);
}, { initialize: true }));

test('tools/call without a name is invalid params (-32602)', T, () => withClient(async (c) => {
    assertError(await c.request('tools/call', { arguments: {} }, 'tc'), 'tc', -32602);
}, { initialize: true }));


// -- notifications ---------------------------------------------------------

const notifications = [
    ['notifications/initialized', rpc('notifications/initialized')],
    ['an unknown notification', rpc('notifications/tidal/unknown', { x: 1 })],
    ['a notification with malformed params', '{"jsonrpc":"2.0","method":"notifications/cancelled","params":42}'],
    ['notifications/cancelled for an unknown request', rpc('notifications/cancelled', { requestId: 'nope' })],
];

for (const [what, text] of notifications) {
    test(`${what} gets no response`, T, () => withClient(async (c) => {
        c.send(text);
        assert.deepEqual(await c.request('ping', undefined, 'after'), { jsonrpc: '2.0', id: 'after', result: {} });
    }, { initialize: true }));
}

test('a notification before initialize gets no response', T, () => withClient(async (c) => {
    c.send(rpc('notifications/tidal/unknown'));
    assert.deepEqual(await c.request('ping', undefined, 'after'), { jsonrpc: '2.0', id: 'after', result: {} });
}));

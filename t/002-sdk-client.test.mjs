// Copyright (C) ngx_tidal authors
// SPDX-License-Identifier: BSD-2-Clause

// The user's flow: the official MCP TypeScript SDK connects over WebSocket,
// initializes, pings and lists tools.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { startNginx, SLOW } from './lib/nginx.mjs';
import { validateJsonRpc } from './lib/ws.mjs';

// Node 20 has no global WebSocket; the SDK's transport expects one.
globalThis.WebSocket = WebSocket;

const { Client } = await import('@modelcontextprotocol/sdk/client/index.js');
const { WebSocketClientTransport } = await import('@modelcontextprotocol/sdk/client/websocket.js');

const T = { timeout: 30000 * SLOW };

let ngx;

before(async () => {
    ngx = await startNginx({ workers: 2 });
});

after(async () => {
    await ngx?.stop();
});


// An SDK client whose transport validates every message it receives, both
// the raw text off the socket and what the transport hands to the client.
async function connectSdk(name = 'sdk-test') {
    const transport = new WebSocketClientTransport(new URL(ngx.url));
    const seen = { raw: [], parsed: [], errors: [] };

    const start = transport.start.bind(transport);
    transport.start = async () => {
        const p = start();
        transport._socket.addEventListener('message', (ev) => {
            try {
                seen.raw.push(validateJsonRpc(JSON.parse(ev.data)));
            } catch (e) {
                seen.errors.push(e);
            }
        });
        return p;
    };

    let inner;
    Object.defineProperty(transport, 'onmessage', {
        configurable: true,
        get: () => (inner && ((m, extra) => {
            try {
                validateJsonRpc(m);
                seen.parsed.push(m);
            } catch (e) {
                seen.errors.push(e);
            }
            inner(m, extra);
        })),
        set: (fn) => { inner = fn; },
    });

    const client = new Client({ name, version: '1.0.0' }, { capabilities: {} });
    // the client replaces transport.onerror; keep recording through it
    client.onerror = (e) => seen.errors.push(e);
    await client.connect(transport);
    return { client, transport, seen };
}

function assertAllValid(seen) {
    assert.deepEqual(seen.errors.map(String), [], 'the transport saw invalid messages');
    assert.ok(seen.raw.length > 0, 'no message was seen on the socket');
    assert.equal(seen.parsed.length, seen.raw.length, 'every message on the socket reaches the client');
}


test('the SDK client connects, initializes and gets the server info', T, async () => {
    const { client, seen } = await connectSdk();
    try {
        const info = client.getServerVersion();
        assert.equal(info.name, 'ngx_tidal');
        assert.equal(typeof info.version, 'string');
        assert.ok(info.version.length > 0, 'serverInfo.version is empty');

        const caps = client.getServerCapabilities();
        assert.ok(caps && typeof caps.tools === 'object', `capabilities lack tools: ${JSON.stringify(caps)}`);

        const init = seen.raw.find((m) => m.result && m.result.protocolVersion);
        assert.ok(init, 'no initialize result seen');
        assert.equal(init.result.protocolVersion, '2025-11-25');
        assertAllValid(seen);
    } finally {
        await client.close();
    }
});

const PERFORMER_TOOLS = [
    'tidal_eval', 'tidal_get_history', 'tidal_get_state', 'tidal_hush',
    'tidal_mute', 'tidal_say', 'tidal_set_tempo', 'tidal_silence',
    'tidal_solo', 'tidal_unmute', 'tidal_unsolo', 'tidal_who',
];


test('the SDK client pings and lists tools', T, async () => {
    const { client, seen } = await connectSdk();
    try {
        assert.deepEqual(await client.ping(), {});
        const tools = await client.listTools();
        // a performer (the default role) sees every tool
        assert.deepEqual(tools.tools.map((t) => t.name).sort(), PERFORMER_TOOLS);
        for (const t of tools.tools) {
            assert.equal(typeof t.description, 'string');
            assert.equal(t.inputSchema.type, 'object');
        }
        assert.deepEqual(await client.ping(), {});
        assertAllValid(seen);
    } finally {
        await client.close();
    }
});

test('closing the SDK client closes the WebSocket cleanly', T, async () => {
    const { client, transport } = await connectSdk();
    const closed = new Promise((resolve) => {
        transport._socket.addEventListener('close', (ev) => resolve(ev));
    });
    await client.close();
    const ev = await closed;
    // the client sent an empty close frame: the server answers with one too
    assert.equal(ev.code, 1005);
    assert.equal(ev.wasClean, true);
});

test('eight SDK clients work concurrently across two workers', T, async () => {
    const clients = await Promise.all(Array.from({ length: 8 }, (_, i) => connectSdk(`sdk-${i}`)));
    try {
        const results = await Promise.all(clients.map(async ({ client }) => {
            const pings = [];
            for (let i = 0; i < 5; i++) {
                pings.push(await client.ping());
            }
            return { pings, tools: await client.listTools() };
        }));
        for (const r of results) {
            assert.deepEqual(r.pings, [{}, {}, {}, {}, {}]);
            assert.deepEqual(r.tools.tools.map((t) => t.name).sort(), PERFORMER_TOOLS);
        }
        for (const { seen } of clients) {
            assertAllValid(seen);
        }
    } finally {
        await Promise.all(clients.map(({ client }) => client.close()));
    }
});

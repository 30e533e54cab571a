// Copyright (C) ngx_tidal authors
// SPDX-License-Identifier: BSD-2-Clause

// No required boilerplate: `location /mcp { tidal_mcp; }` works without a
// tidal_zone line, in the implicit zone "tidal" of 32m (README); an SDK
// client calls a tool and the event reaches another client through it.
// tidal_zone still names and sizes the zone.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { startNginx, nginxT, SLOW } from './lib/nginx.mjs';
import { TidalWs, PUBLISH_AND_STATUS, tidalStatus, closeAll } from './lib/tidal.mjs';

// Node 20 has no global WebSocket; the SDK's transport expects one.
globalThis.WebSocket = WebSocket;

const { Client } = await import('@modelcontextprotocol/sdk/client/index.js');
const { WebSocketClientTransport } = await import('@modelcontextprotocol/sdk/client/websocket.js');

const T = { timeout: 60000 * SLOW };

const running = [];

after(async () => {
    await Promise.all(running.map((n) => n.stop()));
});


test('nginx -t accepts tidal_mcp, tidal_publish and tidal_status without tidal_zone', T, () => {
    const r = nginxT({ zone: '', server: PUBLISH_AND_STATUS });
    assert.equal(r.code, 0, `nginx -t should accept the config:\n${r.output}\n--- config:\n${r.conf}`);
    assert.match(r.output, /test is successful/);
});

test('the implicit zone is named "tidal": another module\'s zone of that name is refused', T, () => {
    const r = nginxT({ zone: '', http: 'limit_conn_zone $binary_remote_addr zone=tidal:1m;' });
    assert.notEqual(r.code, 0, `nginx -t should reject the config:\n${r.output}`);
    assert.match(r.output, /\[emerg\].*"tidal"/);
});

test('without tidal_zone an SDK client calls a tool and another client gets its event', T, async () => {
    const ngx = await startNginx({ zone: '', server: PUBLISH_AND_STATUS });
    running.push(ngx);

    const status = await tidalStatus(ngx.port);
    assert.equal(status.zone.size, 32 * 1024 * 1024, `the implicit zone is 32m: ${JSON.stringify(status.zone)}`);

    const listener = await TidalWs.join(ngx.url, { name: 'listener' });
    const client = new Client({ name: 'no-boilerplate', version: '1.0.0' }, { capabilities: {} });
    try {
        await client.connect(new WebSocketClientTransport(new URL(ngx.url)));
        const heard = listener.untilEvent((e) => e.type === 'chat' && e.text === 'no zone line',
            'the chat event', 10000 * SLOW);
        const r = await client.callTool({ name: 'tidal_say', arguments: { text: 'no zone line' } });
        assert.notEqual(r.isError, true, `tidal_say: ${JSON.stringify(r)}`);
        const ev = await heard;
        assert.equal(ev.who, 'no-boilerplate');
        const state = await client.callTool({ name: 'tidal_get_state', arguments: {} });
        assert.notEqual(state.isError, true, `tidal_get_state: ${JSON.stringify(state)}`);
    } finally {
        await client.close();
        await closeAll([listener]);
    }
});

test('tidal_zone still sets the zone: its size is what tidal_status reports', T, async () => {
    const ngx = await startNginx({ zone: 'tidal_zone room 2m;', server: PUBLISH_AND_STATUS });
    running.push(ngx);
    const status = await tidalStatus(ngx.port);
    assert.equal(status.zone.size, 2 * 1024 * 1024, `tidal_zone room 2m: ${JSON.stringify(status.zone)}`);
});

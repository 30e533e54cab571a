// Copyright (C) ngx_tidal authors
// SPDX-License-Identifier: BSD-2-Clause

// Roles: tidal_role (here from a map on a request header) decides what a
// client may call; tools/list shows only that; a forbidden call gets
// -32602 "Tool X requires role performer"; a role value that is not
// listener, performer or admin refuses the upgrade with 403.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startNginx, waitFor, SLOW } from './lib/nginx.mjs';
import {
    TidalWs, PUBLISH_AND_STATUS, ALL_TOOLS, LISTENER_TOOLS, publish, closeAll,
} from './lib/tidal.mjs';
import { handshake } from './lib/ws.mjs';

const T = { timeout: 60000 * SLOW };

const MUSIC_TOOLS = ALL_TOOLS.filter((t) => !['tidal_get_state', 'tidal_get_history', 'tidal_who', 'tidal_say'].includes(t));

let ngx;
let listener;
let performer;
let admin;

before(async () => {
    ngx = await startNginx({
        zone: 'tidal_zone tidal 8m;',
        http: `
    map $http_x_role $tidal_role {
        default  listener;
        perf     performer;
        boss     admin;
    }`,
        location: 'tidal_role $tidal_role;',
        server: `${PUBLISH_AND_STATUS}
        location /mcp-direct {
            tidal_mcp;
            tidal_role $http_x_role;
        }`,
    });
    [listener, performer, admin] = await Promise.all([
        TidalWs.join(ngx.url, { name: 'lis' }),
        TidalWs.join(ngx.url, { name: 'perf', headers: { 'X-Role': 'perf' } }),
        TidalWs.join(ngx.url, { name: 'boss', headers: { 'X-Role': 'boss' } }),
    ]);
});

after(async () => {
    await closeAll([listener, performer, admin].filter(Boolean));
    await ngx?.stop();
});


const sorted = (a) => [...a].sort();

test('the role from the map is in the initialize _meta', T, () => {
    assert.equal(listener.meta['tidal/role'], 'listener');
    assert.equal(performer.meta['tidal/role'], 'performer');
    assert.equal(admin.meta['tidal/role'], 'admin');
});

test('tools/list shows a listener only tidal_get_state, tidal_get_history and tidal_who', T, async () => {
    assert.deepEqual(sorted(await listener.listTools()), sorted(LISTENER_TOOLS));
});

test('tools/list shows a performer and an admin every tool', T, async () => {
    assert.deepEqual(sorted(await performer.listTools()), sorted(ALL_TOOLS));
    assert.deepEqual(sorted(await admin.listTools()), sorted(ALL_TOOLS));
});

for (const tool of ['tidal_say', 'tidal_hush', 'tidal_eval', 'tidal_set_tempo']) {
    test(`a listener calling ${tool} gets -32602 "Tool ${tool} requires role performer" and nothing is broadcast`, T, async () => {
        const before = await publish(ngx.port, { id: `before-${tool}` });
        const args = tool === 'tidal_say' ? { text: 'let me in' }
            : tool === 'tidal_eval' ? { channel: 'd1', pattern: 'sound "bd"' }
                : tool === 'tidal_set_tempo' ? { cps: 1 } : {};
        const r = await listener.call(tool, args);
        assert.ok(r.error, `expected an error: ${JSON.stringify(r)}`);
        assert.equal(r.error.code, -32602);
        assert.equal(r.error.message, `Tool ${tool} requires role performer`);
        const next = await publish(ngx.port, { id: `after-${tool}` });
        assert.equal(next, before + 1, 'the refused call broadcast nothing');
        const ev = await performer.untilCustom(`after-${tool}`);
        const stream = performer.stream();
        assert.equal(stream[stream.indexOf(ev) - 1].seq, before);
    });
}

test('a listener may call tidal_get_state and tidal_get_history', T, async () => {
    const state = await listener.state();
    assert.equal(typeof state.channels, 'object');
    assert.equal(typeof state.tempo, 'object');
    assert.equal(typeof state.seq, 'number');
    const h = await listener.call('tidal_get_history', {});
    assert.ok(h.result && h.result.isError !== true, JSON.stringify(h));
});

test('the table\'s argument checks answer in the worker, the helper or none: unknown arguments, a bad limit, a bad chat line', T, async () => {
    const cases = [
        [listener, 'tidal_get_history', { limit: 3, since: 1 }, 'Unknown argument "since"'],
        [listener, 'tidal_get_history', { limit: 1001 }, 'Invalid argument "limit": an integer from 1 to 1000'],
        [listener, 'tidal_get_state', { verbose: true }, 'Unknown argument "verbose"'],
        [performer, 'tidal_say', { text: 'hi', to: 'all' }, 'Unknown argument "to"'],
        [performer, 'tidal_say', { text: '' }, 'Invalid argument "text": a string of 1 to 1000 characters is required'],
        [performer, 'tidal_eval', { channel: 'd17', pattern: 'silence' }, 'Invalid argument "channel": "d17" is not one of d1 .. d16'],
    ];
    const before = await publish(ngx.port, { id: 'before-checks' });
    for (const [c, tool, args, text] of cases) {
        const r = await c.call(tool, args);
        assert.ok(r.result, `${tool}: ${JSON.stringify(r)}`);
        assert.equal(r.result.isError, true, `${tool}: ${JSON.stringify(r.result)}`);
        assert.deepEqual(r.result.content, [{ type: 'text', text }]);
    }
    assert.equal(await publish(ngx.port, { id: 'after-checks' }), before + 1, 'nothing was broadcast');
});

test('a performer and an admin may chat', T, async () => {
    for (const c of [performer, admin]) {
        const r = await c.call('tidal_say', { text: `hi from ${c.label}` });
        assert.ok(r.result && r.result.isError !== true, JSON.stringify(r));
        const ev = await listener.untilEvent((e) => e.type === 'chat' && e.text === `hi from ${c.label}`, 'the chat');
        assert.equal(ev.who, c.label);
    }
});

test('a performer\'s music tools answer isError "Tidal is not running" until the GHCi helper exists', T, async () => {
    for (const tool of ['tidal_hush', 'tidal_silence']) {
        const r = await performer.call(tool, tool === 'tidal_silence' ? { channel: 'd1' } : {});
        assert.ok(r.result, `${tool}: ${JSON.stringify(r)}`);
        assert.equal(r.result.isError, true, `${tool}: ${JSON.stringify(r.result)}`);
        assert.match(JSON.stringify(r.result.content), /Tidal is not running/);
    }
});

test('a role value that is not listener, performer or admin refuses the upgrade with 403 and says why in error_log', T, async () => {
    const logBefore = ngx.errorLog().length;
    const res = await handshake(ngx.port, { 'Sec-WebSocket-Protocol': 'mcp', 'X-Role': 'superuser' }, { path: '/mcp-direct' });
    res.socket?.destroy();
    assert.equal(res.status, 403, res.head);
    // nginx writes error_log as it goes; a short bounded wait covers the
    // log line being written after the response
    await waitFor(() => ngx.errorLog().slice(logBefore).split('\n').some((l) => /role/i.test(l) && l.includes('superuser')), {
        timeout: 3000, what: 'an error_log line naming the bad role',
    }).catch(() => assert.fail(`error_log should say the role is invalid; it got:\n${ngx.errorLog().slice(logBefore)}`));
});

test('a valid role from a header directly is taken', T, async () => {
    const c = await TidalWs.join(`ws://127.0.0.1:${ngx.port}/mcp-direct`, { name: 'direct', headers: { 'X-Role': 'admin' } });
    try {
        assert.equal(c.meta['tidal/role'], 'admin');
    } finally {
        await c.close();
    }
});

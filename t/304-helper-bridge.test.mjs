// Copyright (C) ngx_tidal authors
// SPDX-License-Identifier: BSD-2-Clause

// tidal-helper --stdio --connect ws://...: a bridge from an MCP stdio
// client to a room of the module.  The official SDK's StdioClientTransport
// spawns it and talks through it to a real nginx (serverInfo is the
// module's, chat reaches a direct WebSocket client and back); a refused
// upgrade, a lost server and the server's own close end it with a non-zero
// status and a line on stderr that says why, stdin's end with 0.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { CallToolResultSchema } from '@modelcontextprotocol/sdk/types.js';
import {
    startNginx, freePort, makeTempDir, childPids, SLOW,
} from './lib/nginx.mjs';
import { TidalWs } from './lib/tidal.mjs';
import { Bridge, sdkClient, gone, killBridges } from './lib/bridge.mjs';

const T = { timeout: 30000 * SLOW };

const USER = 'dj';
const PASSWORD = 'hunter2-secret-value';
const BASIC = Buffer.from(`${USER}:${PASSWORD}`).toString('base64');

let ngx;
let authDir;

before(async () => {
    // nginx workers (nobody) read the password file
    authDir = makeTempDir('tidal-bridge-auth-');
    const users = path.join(authDir, 'users');
    fs.writeFileSync(users, `${USER}:{PLAIN}${PASSWORD}\n`);
    fs.chmodSync(users, 0o644);
    ngx = await startNginx({
        server: `
        location /mcp-role {
            tidal_mcp;
            tidal_role $http_x_role;
        }
        location /mcp-auth {
            tidal_mcp;
            auth_basic "room";
            auth_basic_user_file ${users};
        }
        location /mcp-small {
            tidal_mcp;
            tidal_max_message_size 1k;
        }
        location /mcp-heartbeat {
            tidal_mcp;
            tidal_heartbeat_interval 100ms;
        }`,
    });
});

after(async () => {
    killBridges();
    await ngx?.stop();
    if (authDir) {
        fs.rmSync(authDir, { recursive: true, force: true });
    }
});


function url(p = '/mcp') {
    return `ws://127.0.0.1:${ngx.port}${p}`;
}


test('a stdio client that does not ask for the events gets their log lines at its level through the bridge, and no notifications/tidal/*', T, async () => {
    const direct = await TidalWs.join(url(), { name: 'direct' });
    const c = await sdkClient(['--connect', url()], 'generic', undefined, { events: false });
    const lines = () => c.notes.filter((n) => n.method === 'notifications/message');
    try {
        await direct.call('tidal_say', { text: 'hello generic' });
        const line = await c.until(() => lines().find((n) => n.params.data === 'chat direct: hello generic'),
            'the chat as a log line');
        assert.deepEqual(line.params, { level: 'notice', logger: 'tidal', data: 'chat direct: hello generic' });

        // above its level: nothing; the bridge read the level on its way
        await c.client.setLoggingLevel('warning');
        await direct.call('tidal_say', { text: 'quiet' });
        await c.client.setLoggingLevel('info');
        await direct.call('tidal_say', { text: 'loud' });
        await c.until(() => lines().find((n) => n.params.data === 'chat direct: loud'), 'the chat after setLevel info');
        assert.equal(lines().filter((n) => /quiet/.test(n.params.data)).length, 0,
            JSON.stringify(lines()));

        assert.deepEqual(c.notes.filter((n) => n.method.startsWith('notifications/tidal/')), [],
            'no notifications/tidal/* for a client that did not ask');
    } finally {
        await c.client.close();
        await direct.close();
    }
    await gone(c);
});


test('a stdio client that asks for the events gets them through the bridge, and no log lines', T, async () => {
    const direct = await TidalWs.join(url(), { name: 'direct' });
    const c = await sdkClient(['--connect', url()], 'eventful');
    try {
        await direct.call('tidal_say', { text: 'hello eventful' });
        await c.until(() => c.notes.find((n) => n.method === 'notifications/tidal/chat'
            && n.params.text === 'hello eventful'), 'the chat event');
        assert.deepEqual(c.notes.filter((n) => n.method === 'notifications/message'), []);
    } finally {
        await c.client.close();
        await direct.close();
    }
    await gone(c);
});


test('through the bridge the SDK client is in the room: serverInfo is the module\'s, ping, tools/list, and chat both ways', T, async () => {
    const direct = await TidalWs.join(url(), { name: 'direct' });
    const c = await sdkClient(['--connect', url()], 'via-bridge');
    try {
        assert.equal(c.client.getServerVersion().name, 'ngx_tidal', 'initialize went through nginx');
        assert.deepEqual(childPids(c.pid), [], 'the bridge starts no GHCi');
        assert.match(c.log, /stdio bridge to ws:\/\/127\.0\.0\.1:\d+\/mcp, no GHCi/);
        assert.match(c.log, /connected to ws:/);

        assert.deepEqual(await c.client.ping(), {});
        const { tools } = await c.client.listTools();
        assert.ok(tools.some((t) => t.name === 'tidal_say'), tools.map((t) => t.name).join(' '));

        const text = 'through the bridge \u{1F941} "quoted"\nand a second line';
        const r = await c.client.callTool({ name: 'tidal_say', arguments: { text } }, CallToolResultSchema);
        assert.notEqual(r.isError, true, JSON.stringify(r));
        const heard = await direct.untilEvent((e) => e.type === 'chat' && e.text === text, 'the chat from the bridge');
        assert.equal(heard.who, 'via-bridge');
        const own = await c.until(() => c.notes.find((n) => n.method === 'notifications/tidal/chat'
            && n.params.text === text), 'the chat back through the bridge');
        assert.equal(own.params.seq, heard.seq, 'one event, the same for both');

        await direct.call('tidal_say', { text: 'hello bridge' });
        await c.until(() => c.notes.find((n) => n.method === 'notifications/tidal/chat'
            && n.params.text === 'hello bridge' && n.params.who === 'direct'), 'the direct client\'s chat');
    } finally {
        await c.client.close();
        await direct.close();
    }
    await gone(c);
    assert.match(c.log, /stdin closed/);
    assert.match(c.log, /closed \(1000\)/, c.log);
});

test('stdin\'s end: close 1000, answered by the server, and exit status 0', T, async () => {
    const b = new Bridge(['--connect', url()]);
    const info = await b.initialize();
    assert.equal(info.serverInfo.name, 'ngx_tidal');
    b.send({ jsonrpc: '2.0', id: 2, method: 'ping' });
    assert.deepEqual((await b.reply(2)).result, {});
    b.proc.stdin.end();
    assert.deepEqual(await b.exitStatus(), { code: 0, signal: null }, b.log);
    assert.match(b.log, /closed \(1000\)/);
    assert.doesNotMatch(b.log, /error:/);
});

test('SIGTERM: the bridge says going away (1001), the server answers, exit status 0', T, async () => {
    const b = new Bridge(['--connect', url()]);
    try {
        await b.initialize();
        b.proc.kill('SIGTERM');
        assert.deepEqual(await b.exitStatus(), { code: 0, signal: null }, b.log);
        assert.match(b.log, /info: signal 15/);
        assert.match(b.log, /closed \(1001\)/, b.log);
    } finally {
        b.kill();
    }
});

test('a refused upgrade ends the bridge with status 1 and the HTTP status line on stderr', T, async () => {
    const cases = [
        { p: '/mcp-role', args: ['--header', 'X-Role: superuser'], status: /"HTTP\/1\.1 403 Forbidden"/ },
        { p: '/nowhere', args: [], status: /"HTTP\/1\.1 404 Not Found"/ },
        { p: '/mcp-auth', args: [], status: /"HTTP\/1\.1 401 Unauthorized".*credentials go in --header/ },
        { p: '/mcp-auth', args: ['--header', 'Authorization: Basic d3Jvbmc6d3Jvbmc='], status: /"HTTP\/1\.1 401 Unauthorized"/ },
    ];
    for (const k of cases) {
        const b = new Bridge(['--connect', url(k.p), ...k.args]);
        // stdin stays open: the refusal alone ends it
        const r = await b.exitStatus();
        b.proc.stdin.end();
        assert.deepEqual(r, { code: 1, signal: null }, `${k.p}: ${b.log}`);
        assert.match(b.log, /error: handshake failed: /, k.p);
        assert.match(b.log, k.status, b.log);
        assert.deepEqual(b.lines, [], 'nothing on stdout');
    }
});

test('--header carries credentials to an auth_basic room; the log names the header, never its value', T, async () => {
    const c = await sdkClient(['--connect', url('/mcp-auth'), '--verbose',
        '--header', `Authorization: Basic ${BASIC}`, '--header', 'X-Trace:  42'], 'with-credentials');
    try {
        assert.equal(c.client.getServerVersion().name, 'ngx_tidal');
        assert.deepEqual(await c.client.ping(), {});
    } finally {
        await c.client.close();
    }
    await gone(c);
    assert.match(c.log, /sending the header Authorization/);
    assert.match(c.log, /sending the header X-Trace/);
    assert.ok(!c.log.includes(BASIC) && !c.log.includes(PASSWORD), `a credential in the log:\n${c.log}`);
});

test('--header-env takes the header from the environment, so the credential is not in ps', T, async () => {
    const c = await sdkClient(['--connect', url('/mcp-auth'), '--verbose', '--header-env', 'TIDAL_AUTH'],
        'with-env-credentials', { ...process.env, TIDAL_AUTH: `Authorization: Basic ${BASIC}` });
    try {
        assert.equal(c.client.getServerVersion().name, 'ngx_tidal');
        assert.deepEqual(await c.client.ping(), {});
        const argv = fs.readFileSync(`/proc/${c.transport.pid}/cmdline`, 'utf8');
        assert.ok(!argv.includes(BASIC), `the credential in argv: ${argv}`);
    } finally {
        await c.client.close();
    }
    await gone(c);
    assert.match(c.log, /sending the header Authorization/);
    assert.ok(!c.log.includes(BASIC), `a credential in the log:\n${c.log}`);

    const b = new Bridge(['--connect', url('/mcp-auth'), '--header-env', 'TIDAL_NO_SUCH_VARIABLE']);
    assert.deepEqual(await b.exitStatus(), { code: 2, signal: null });
    b.proc.stdin.end();
    assert.match(b.log, /--header-env: the environment has no TIDAL_NO_SUCH_VARIABLE/);
});

test('the server\'s close is reported: a message over tidal_max_message_size gets 1009, the bridge exits 1 and the SDK client sees the end', T, async () => {
    const b = new Bridge(['--connect', url('/mcp-small')]);
    await b.initialize();
    b.send({ jsonrpc: '2.0', id: 3, method: 'ping', params: { pad: 'x'.repeat(2000) } });
    assert.deepEqual(await b.exitStatus(), { code: 1, signal: null }, b.log);
    b.proc.stdin.end();
    assert.match(b.log, /error: the server closed the connection: 1009 "[^"]*"/, b.log);

    const c = await sdkClient(['--connect', url('/mcp-small')]);
    await assert.rejects(c.client.request({ method: 'ping', params: { pad: 'y'.repeat(2000) } },
        (await import('@modelcontextprotocol/sdk/types.js')).EmptyResultSchema), /closed/i);
    await c.until(() => c.closed, 'the SDK transport to close');
    await gone(c);
    assert.match(c.log, /the server closed the connection: 1009/);
});

test('nginx -s quit: the bridge reports close 1001 and exits 1', T, async () => {
    const other = await startNginx({});
    const b = new Bridge(['--connect', `ws://127.0.0.1:${other.port}/mcp`]);
    try {
        await b.initialize();
        await other.quit();
        assert.deepEqual(await b.exitStatus(), { code: 1, signal: null }, b.log);
        assert.match(b.log, /the server closed the connection: 1001/, b.log);
    } finally {
        b.kill();
        await other.stop().catch(() => {});
    }
});

test('pings are answered with pongs: with a 100 ms heartbeat the connection outlives many intervals', T, async () => {
    const b = new Bridge(['--connect', url('/mcp-heartbeat'), '--verbose']);
    try {
        await b.initialize();
        // without pongs the server closes with 1008 at its second ping
        await b.until(() => (b.log.match(/debug: ping/g) || []).length >= 5, 'five pings');
        b.send({ jsonrpc: '2.0', id: 'after-pings', method: 'ping' });
        assert.deepEqual((await b.reply('after-pings')).result, {});
        b.proc.stdin.end();
        assert.deepEqual(await b.exitStatus(), { code: 0, signal: null }, b.log);
    } finally {
        b.kill();
    }
});

test('a line over 4 MiB is not sent (a log line says so) and the connection goes on', T, async () => {
    const b = new Bridge(['--connect', url()]);
    try {
        await b.initialize();
        b.send(`{"jsonrpc":"2.0","id":"big","method":"ping","params":{"x":"${'z'.repeat(4 * 1024 * 1024)}"}}`);
        b.send({ jsonrpc: '2.0', id: 'small', method: 'ping' });
        assert.deepEqual((await b.reply('small')).result, {});
        assert.match(b.log, /warn: a message from stdin longer than 4194304 bytes was dropped/);
        assert.equal(b.lines.find((m) => m.id === 'big'), undefined);
        b.proc.stdin.end();
        assert.equal((await b.exitStatus()).code, 0, b.log);
    } finally {
        b.kill();
    }
});

test('no connection: nothing listening is a clear error', T, async () => {
    const port = await freePort();
    const b = new Bridge(['--connect', `ws://127.0.0.1:${port}/mcp`]);
    assert.deepEqual(await b.exitStatus(), { code: 1, signal: null });
    b.proc.stdin.end();
    assert.match(b.log, new RegExp(`error: cannot connect to 127\\.0\\.0\\.1:${port}: Connection refused`));
});
